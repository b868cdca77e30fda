//! The caller's own account: read it, set its language, change its password.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Account;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorDetail, ValidationErrors};
use super::extract::{ApiJson, Client, CurrentUser};
use super::state::AppState;
use super::throttle::{Login, Throttled};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
}

/// The account the bearer token belongs to.
#[utoipa::path(get, path = "/me", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = MeView),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn me(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Json<MeView>, ApiError> {
    let account = state.auth.account(&principal).await?;
    Ok(Json(MeView::from(account)))
}

/// The caller's account as `/me` shows it.
#[derive(Serialize, ToSchema)]
pub struct MeView {
    id: Uuid,
    username: String,
    email: String,
    created_at: DateTime<Utc>,
    email_verified: bool,
    /// The language of the account's messages, if set.
    locale: Option<String>,
}

impl From<Account> for MeView {
    fn from(account: Account) -> Self {
        Self {
            id: account.id,
            username: account.username,
            email: account.email,
            created_at: account.created_at,
            email_verified: account.email_verified,
            locale: account.locale,
        }
    }
}

/// What `PATCH /me` may change.
#[derive(Deserialize, ToSchema)]
pub struct MeUpdate {
    /// A BCP 47 tag (`en`, `de`, `pt-BR`), or `null` to use the request's language.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "de", max_length = 35)]
    locale: Option<Option<String>>,
}

/// A field that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Change the caller's account settings: the language of its messages.
#[utoipa::path(patch, path = "/me", tag = "account",
    security(("bearer" = [])),
    request_body = MeUpdate,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 200, description = "The updated account", body = MeView),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 422, description = "Not a language tag", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn update_me(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    ApiJson(update): ApiJson<MeUpdate>,
) -> Result<Json<MeView>, ApiError> {
    let account = match update.locale {
        Some(locale) => state.auth.set_locale(&principal, locale.as_deref()).await?,
        None => state.auth.account(&principal).await?,
    };
    Ok(Json(MeView::from(account)))
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
