//! Passkeys: registration and management under `/me/passkeys`, passwordless
//! sign-in at `/login/passkey/*`, and the options for a passkey as the second
//! step of a login (`/login/mfa/webauthn/start`).
//!
//! Options are the WebAuthn JSON a browser passes to
//! `navigator.credentials.create()` / `.get()` (`{"publicKey": {...}}`, binary
//! fields as base64url); credentials come back as `PublicKeyCredential.toJSON()`
//! gives them (base64url, padded or not).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorDetail, ValidationErrors, ValidationIssue};
use super::extract::{ApiJson, Client, CurrentUser};
use super::origin::{TokenResponse, no_store};
use super::state::AppState;
use super::throttle::{Login, Throttled};
use crate::auth::{PasskeySummary, Reauthentication};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_registration))
        .routes(routes!(finish_registration))
        .routes(routes!(list_passkeys))
        .routes(routes!(rename_passkey, remove_passkey))
        .routes(routes!(start_login))
        .routes(routes!(finish_login))
        .routes(routes!(start_mfa))
}

/// WebAuthn options, as `navigator.credentials.create()` or `.get()` takes them.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"publicKey": {"challenge": "…", "rpId": "example.com"}}))]
pub struct WebauthnOptions {
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
}

fn options_response(options: serde_json::Value) -> Response {
    no_store(Json(options))
}

/// A passkey of the caller.
#[derive(Serialize, ToSchema)]
pub struct PasskeyView {
    id: Uuid,
    #[schema(example = "MacBook Touch ID")]
    name: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    /// Synced (or syncable) between devices.
    backup_eligible: bool,
    /// Currently backed up or synced.
    backed_up: bool,
}

impl From<PasskeySummary> for PasskeyView {
    fn from(passkey: PasskeySummary) -> Self {
        Self {
            id: passkey.id,
            name: passkey.name,
            created_at: passkey.created_at,
            last_used_at: passkey.last_used_at,
            backup_eligible: passkey.backup_eligible,
            backed_up: passkey.backed_up,
        }
    }
}

/// Start registering a passkey: answers creation options (resident key and user verification preferred).
#[utoipa::path(post, path = "/me/passkeys/register/start", tag = "passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Creation options for navigator.credentials.create()", body = WebauthnOptions),
        (status = 400, description = "An account holds at most 20 passkeys", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn start_registration(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
) -> Result<Response, ApiError> {
    let options = state.auth.start_passkey_registration(&principal).await?;
    Ok(options_response(options))
}

/// `{name, credential}`: the browser's answer to the creation options.
#[derive(Deserialize, ToSchema)]
pub struct FinishRegistration {
    /// Up to 64 characters; `Passkey` when absent.
    #[schema(example = "MacBook Touch ID")]
    name: Option<String>,
    /// The `PublicKeyCredential` from `navigator.credentials.create()`, as JSON.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// Finish registering a passkey; other sessions end.
#[utoipa::path(post, path = "/me/passkeys/register/finish", tag = "passkeys",
    security(("bearer" = [])),
    request_body = FinishRegistration,
    responses(
        (status = 201, description = "Stored", body = PasskeyView),
        (status = 400, description = "Passkey verification failed (wrong origin, unknown, used or expired challenge, already registered)", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "No credential, or a name too long", body = ValidationErrors),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn finish_registration(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    ApiJson(body): ApiJson<FinishRegistration>,
) -> Result<Response, ApiError> {
    let passkey = state
        .auth
        .finish_passkey_registration(&principal, body.name.as_deref(), body.credential, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(PasskeyView::from(passkey))).into_response())
}

/// The caller's passkeys, oldest first.
#[utoipa::path(get, path = "/me/passkeys", tag = "passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Passkeys", body = Vec<PasskeyView>),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn list_passkeys(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Json<Vec<PasskeyView>>, ApiError> {
    let passkeys = state.auth.list_passkeys(&principal).await?;
    Ok(Json(passkeys.into_iter().map(PasskeyView::from).collect()))
}

fn passkey_id(id: Result<Path<Uuid>, PathRejection>) -> Result<Uuid, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::NotFoundDetail("Passkey not found".to_owned()))
}

#[derive(Deserialize, ToSchema)]
pub struct RenamePasskey {
    #[schema(example = "Work laptop")]
    name: String,
}

/// Rename one of the caller's passkeys.
#[utoipa::path(patch, path = "/me/passkeys/{id}", tag = "passkeys",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Passkey id")),
    request_body = RenamePasskey,
    responses(
        (status = 200, description = "Renamed", body = PasskeyView),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 404, description = "No such passkey of the caller", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "No name, or one too long", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn rename_passkey(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<RenamePasskey>,
) -> Result<Json<PasskeyView>, ApiError> {
    let id = passkey_id(id)?;
    let passkey = state
        .auth
        .rename_passkey(&principal, id, Some(&body.name))
        .await?;
    Ok(Json(PasskeyView::from(passkey)))
}

/// `{password}`, or `{credential}`: a fresh assertion answering `/login/passkey/start`.
#[derive(Deserialize, ToSchema)]
pub struct RemovePasskey {
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

/// Remove one of the caller's passkeys, with the password or a fresh passkey assertion; other sessions end.
#[utoipa::path(delete, path = "/me/passkeys/{id}", tag = "passkeys",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Passkey id")),
    request_body = RemovePasskey,
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Current password is incorrect / Passkey verification failed", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 404, description = "No such passkey of the caller", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "Neither a password nor a credential", body = ValidationErrors),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn remove_passkey(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<RemovePasskey>,
) -> Result<StatusCode, ApiError> {
    let id = passkey_id(id)?;
    let proof = match (body.password, body.credential) {
        (Some(password), None) => Reauthentication::Password(password),
        (None, Some(credential)) => Reauthentication::Passkey(credential),
        _ => {
            return Err(ApiError::Validation(vec![ValidationIssue::body(
                None,
                "Send exactly one of password and credential",
                "value_error",
            )]));
        }
    };
    state
        .auth
        .remove_passkey(&principal, id, proof, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start a passwordless sign-in: request options for a discoverable passkey (no username; add `mediation: "conditional"` for autofill).
#[utoipa::path(post, path = "/login/passkey/start", tag = "passkeys",
    responses(
        (status = 200, description = "Request options for navigator.credentials.get()", body = WebauthnOptions),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn start_login(
    State(state): State<AppState>,
    _: Throttled<Login>,
) -> Result<Response, ApiError> {
    let options = state.auth.start_passkey_login().await?;
    Ok(options_response(options))
}

/// `{credential}`: the browser's answer to the request options.
#[derive(Deserialize, ToSchema)]
pub struct FinishLogin {
    /// The `PublicKeyCredential` from `navigator.credentials.get()`, as JSON.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// Finish a passwordless sign-in; answers like `/login`, with `amr` `hwk` or `swk`.
#[utoipa::path(post, path = "/login/passkey/finish", tag = "passkeys",
    request_body = FinishLogin,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Passkey verification failed", body = ErrorDetail),
        (status = 403, description = "Email not verified (LATCHKEY_REQUIRE_VERIFIED_EMAIL)", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "No credential", body = ValidationErrors),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn finish_login(
    State(state): State<AppState>,
    _: Throttled<Login>,
    Client(client): Client,
    ApiJson(body): ApiJson<FinishLogin>,
) -> Result<Response, ApiError> {
    let outcome = state
        .auth
        .finish_passkey_login(body.credential, &client)
        .await?;
    Ok(no_store(Json(TokenResponse::from(outcome.tokens))))
}

#[derive(Deserialize, ToSchema)]
pub struct MfaTokenBody {
    /// From the 403 `mfa_required` answer.
    #[schema(value_type = String)]
    mfa_token: SecretString,
}

/// Request options for a passkey as the second step of a login; answer at `/login/mfa` with `{mfa_token, webauthn}`.
#[utoipa::path(post, path = "/login/mfa/webauthn/start", tag = "mfa",
    request_body = MfaTokenBody,
    responses(
        (status = 200, description = "Request options for navigator.credentials.get()", body = WebauthnOptions),
        (status = 400, description = "Invalid or expired mfa_token / No passkey on this account", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "No mfa_token", body = ValidationErrors),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn start_mfa(
    State(state): State<AppState>,
    _: Throttled<Login>,
    ApiJson(body): ApiJson<MfaTokenBody>,
) -> Result<Response, ApiError> {
    let options = state.auth.start_mfa_passkey(&body.mfa_token).await?;
    Ok(options_response(options))
}
