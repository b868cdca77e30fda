//! The caller's own account.

use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorDetail;
use super::extract::CurrentUser;
use super::origin::AccountView;
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The account the bearer token belongs to.
#[utoipa::path(get, path = "/me", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = AccountView),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
    ))]
async fn me(CurrentUser(account): CurrentUser) -> Json<AccountView> {
    Json(AccountView::from(account))
}
