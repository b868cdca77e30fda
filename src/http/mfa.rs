//! Second factors: TOTP enrolment and removal, recovery codes, and the
//! second step of a login (`/login/mfa`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorDetail, ValidationErrors, ValidationIssue};
use super::extract::{ApiJson, Client, CurrentUser};
use super::origin::{TokenResponse, no_store};
use super::state::AppState;
use super::throttle::{Login, Throttled};
use crate::auth::SecondFactor;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_totp, remove_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(regenerate_recovery_codes))
        .routes(routes!(login_mfa))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordBody {
    /// The current password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// A new TOTP secret: type `secret` into an app, or scan `qr_svg`.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// Base32.
    secret: String,
    #[schema(
        example = "otpauth://totp/latchkey%3Aalice?secret=…&issuer=latchkey&algorithm=SHA1&digits=6&period=30"
    )]
    otpauth_uri: String,
    /// The `otpauth_uri` as an SVG QR code.
    qr_svg: String,
}

/// Start TOTP enrolment; the factor is active once a code confirms it.
#[utoipa::path(post, path = "/me/mfa/totp", tag = "mfa",
    security(("bearer" = [])),
    request_body = PasswordBody,
    responses(
        (status = 200, description = "A pending secret", body = TotpEnrolmentView),
        (status = 400, description = "Current password is incorrect / TOTP is already enabled", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "No password", body = ValidationErrors),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn start_totp(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Response, ApiError> {
    let enrolment = state
        .auth
        .start_totp(&principal, &body.password, &client)
        .await?;
    Ok(no_store(Json(TotpEnrolmentView {
        secret: enrolment.secret.expose_secret().to_owned(),
        otpauth_uri: enrolment.otpauth_uri.expose_secret().to_owned(),
        qr_svg: enrolment.qr_svg,
    })))
}

#[derive(Deserialize, ToSchema)]
pub struct CodeBody {
    /// Six digits from the app.
    #[schema(value_type = String, example = "123456")]
    code: SecretString,
}

/// Single-use recovery codes, shown only now.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    #[schema(example = json!(["abcde-fghij"]))]
    recovery_codes: Vec<String>,
}

fn codes_response(codes: Vec<SecretString>) -> Response {
    no_store(Json(RecoveryCodes {
        recovery_codes: codes
            .iter()
            .map(|code| code.expose_secret().to_owned())
            .collect(),
    }))
}

/// Confirm TOTP enrolment with a current code; answers 10 recovery codes, once.
#[utoipa::path(post, path = "/me/mfa/totp/confirm", tag = "mfa",
    security(("bearer" = [])),
    request_body = CodeBody,
    responses(
        (status = 200, description = "TOTP is active", body = RecoveryCodes),
        (status = 400, description = "Invalid code / No TOTP enrolment to confirm", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "No code", body = ValidationErrors),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn confirm_totp(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    let codes = state
        .auth
        .confirm_totp(&principal, &body.code, &client)
        .await?;
    Ok(codes_response(codes))
}

#[derive(Deserialize, ToSchema)]
pub struct RemoveTotp {
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    #[schema(value_type = String, example = "123456")]
    code: SecretString,
}

/// Remove TOTP (and the recovery codes) with the password and a current code; other sessions end.
#[utoipa::path(delete, path = "/me/mfa/totp", tag = "mfa",
    security(("bearer" = [])),
    request_body = RemoveTotp,
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Current password is incorrect / Invalid code / TOTP is not enabled", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "A field is missing", body = ValidationErrors),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn remove_totp(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    ApiJson(body): ApiJson<RemoveTotp>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .remove_totp(&principal, &body.password, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the recovery codes; answers 10 new ones, once; other sessions end.
#[utoipa::path(post, path = "/me/mfa/recovery-codes", tag = "mfa",
    security(("bearer" = [])),
    request_body = PasswordBody,
    responses(
        (status = 200, description = "New codes; the old ones no longer work", body = RecoveryCodes),
        (status = 400, description = "Current password is incorrect / TOTP is not enabled", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "No password", body = ValidationErrors),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Response, ApiError> {
    let codes = state
        .auth
        .regenerate_recovery_codes(&principal, &body.password, &client)
        .await?;
    Ok(codes_response(codes))
}

/// `{mfa_token, code}`, `{mfa_token, recovery_code}` or `{mfa_token, webauthn}`.
#[derive(Deserialize, ToSchema)]
pub struct MfaLogin {
    #[schema(value_type = String)]
    mfa_token: SecretString,
    /// Six digits from the authenticator app.
    #[schema(value_type = Option<String>, example = "123456")]
    code: Option<SecretString>,
    #[schema(value_type = Option<String>, example = "abcde-fghij")]
    recovery_code: Option<SecretString>,
    /// A passkey assertion answering `/login/mfa/webauthn/start`, as
    /// `PublicKeyCredential.toJSON()` gives it.
    #[schema(value_type = Option<Object>)]
    webauthn: Option<serde_json::Value>,
}

/// The second step of a login: the `mfa_token` of a 403 `mfa_required` and a second factor; answers like `/login`.
#[utoipa::path(post, path = "/login/mfa", tag = "mfa",
    request_body = MfaLogin,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Invalid code / Invalid or expired mfa_token", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "Not exactly one of code, recovery_code and webauthn", body = ValidationErrors),
        (status = 429, description = "Too many attempts for this account or client; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn login_mfa(
    State(state): State<AppState>,
    _: Throttled<Login>,
    Client(client): Client,
    ApiJson(body): ApiJson<MfaLogin>,
) -> Result<Response, ApiError> {
    let factor = match (body.code, body.recovery_code, body.webauthn) {
        (Some(code), None, None) => SecondFactor::Code(code),
        (None, Some(code), None) => SecondFactor::RecoveryCode(code),
        (None, None, Some(assertion)) => SecondFactor::Passkey(assertion),
        _ => {
            return Err(ApiError::Validation(vec![ValidationIssue::body(
                None,
                "Send exactly one of code, recovery_code and webauthn",
                "value_error",
            )]));
        }
    };
    let outcome = state
        .auth
        .login_second_factor(&body.mfa_token, factor, &client)
        .await?;
    Ok(no_store(Json(TokenResponse::from(outcome.tokens))))
}
