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
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(change_password))
        .routes(routes!(export_me))
        .routes(routes!(security_events))
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
    /// Roles an admin gave the account.
    roles: Vec<String>,
    /// A JSON object the user writes with `PATCH /me`.
    #[schema(value_type = Object)]
    user_metadata: serde_json::Value,
}

impl From<Account> for MeView {
    fn from(account: Account) -> Self {
        Self {
            roles: account.roles,
            user_metadata: account.user_metadata,
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
    /// A JSON object of at most 4 KiB, replacing the stored one.
    #[schema(value_type = Option<Object>)]
    user_metadata: Option<serde_json::Value>,
}

/// A field that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Change the caller's account settings: the language of its messages, its `user_metadata`.
#[utoipa::path(patch, path = "/me", tag = "account",
    security(("bearer" = [])),
    request_body = MeUpdate,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 200, description = "The updated account", body = MeView),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 422, description = "Not a language tag / user_metadata not an object of at most 4 KiB", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn update_me(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    ApiJson(update): ApiJson<MeUpdate>,
) -> Result<Json<MeView>, ApiError> {
    if let Some(metadata) = &update.user_metadata {
        crate::auth::Auth::check_user_metadata(metadata)?;
    }
    // The locale is checked as it is set; the metadata, already checked, after.
    let mut account = match update.locale {
        Some(locale) => state.auth.set_locale(&principal, locale.as_deref()).await?,
        None => state.auth.account(&principal).await?,
    };
    if let Some(metadata) = &update.user_metadata {
        state.auth.set_user_metadata(&principal, metadata).await?;
        account.user_metadata = metadata.clone();
    }
    Ok(Json(MeView::from(account)))
}

/// `{password}` or `{code}` (a current TOTP code).
#[derive(Deserialize, ToSchema)]
pub struct DeleteMe {
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    #[schema(value_type = Option<String>, example = "123456")]
    code: Option<SecretString>,
}

/// Delete the caller's account and everything tied to it; its tokens stop at once, an audit tombstone without personal data stays.
#[utoipa::path(delete, path = "/me", tag = "account",
    security(("bearer" = [])),
    request_body = DeleteMe,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Current password is incorrect / Invalid code / TOTP is not enabled", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "Not exactly one of password and code", body = ValidationErrors),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn delete_me(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    ApiJson(body): ApiJson<DeleteMe>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .delete_own_account(
            &principal,
            body.password.as_ref(),
            body.code.as_ref(),
            &client,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything kept about the caller, as JSON: account, sessions, factors (without secrets), audit events.
#[utoipa::path(get, path = "/me/export", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's data", body = Object),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn export_me(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<axum::response::Response, ApiError> {
    let data = state.auth.export_account(&principal).await?;
    Ok(super::origin::no_store(Json(data)))
}

/// One of the caller's security events.
#[derive(Serialize, ToSchema)]
pub struct SecurityEvent {
    at: DateTime<Utc>,
    #[schema(example = "login_success")]
    event: String,
    outcome: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

/// The caller's latest 100 security events, newest first.
#[utoipa::path(get, path = "/me/security-events", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Events", body = Vec<SecurityEvent>),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn security_events(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Json<Vec<SecurityEvent>>, ApiError> {
    let events = state.auth.security_events(&principal).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|event| SecurityEvent {
                at: event.at,
                event: event.event,
                outcome: event.outcome,
                ip: event.client_ip,
                user_agent: event.user_agent,
            })
            .collect(),
    ))
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
