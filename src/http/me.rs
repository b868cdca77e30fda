//! The caller's own account: read it, change its password.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorDetail, ValidationErrors};
use super::extract::{ApiJson, Client, CurrentUser};
use super::origin::AccountView;
use super::state::AppState;
use super::throttle::{Login, Throttled};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(change_password))
}

/// The account the bearer token belongs to.
#[utoipa::path(get, path = "/me", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = AccountView),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn me(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Json<AccountView>, ApiError> {
    let account = state.auth.account(&principal).await?;
    Ok(Json(AccountView::from(account)))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

/// Change the caller's password; every other session of the account ends.
#[utoipa::path(post, path = "/me/password", tag = "account",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Current password is incorrect", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "The new password breaks a rule", body = ValidationErrors),
        (status = 429, description = "Too many wrong passwords for this account or client; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn change_password(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    ApiJson(request): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .change_password(
            &principal,
            &request.current_password,
            &request.new_password,
            &client,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
