//! The email lifecycle's routes: verification, password reset, email change
//! and sign-in codes. Routes that take an address answer 202 with one body
//! for every address; a missing mail configuration answers 503 naming the
//! setting.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorDetail, MfaRequired, ValidationErrors, ValidationIssue};
use super::extract::{ApiJson, Client, CurrentUser};
use super::origin::{TokenResponse, no_store};
use super::state::AppState;
use super::throttle::{Login, Other, Throttled};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(request_email_change))
        .routes(routes!(confirm_email_change))
        .routes(routes!(request_sign_in_code))
        .routes(routes!(sign_in_with_email))
}

/// A token from a message's link.
#[derive(Deserialize, ToSchema)]
pub struct TokenBody {
    #[schema(value_type = String, min_length = 1)]
    token: SecretString,
}

/// An address to send to.
#[derive(Deserialize, ToSchema)]
pub struct EmailBody {
    #[schema(example = "alice@example.com")]
    email: String,
}

/// `{"detail": "..."}`, the same for every address.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    detail: &'static str,
}

fn accepted(detail: &'static str) -> Response {
    (StatusCode::ACCEPTED, Json(Accepted { detail })).into_response()
}

/// Verify the account's address with the token of its verification message.
#[utoipa::path(post, path = "/email/verify", tag = "email",
    request_body = TokenBody,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 204, description = "Verified"),
        (status = 400, description = "Invalid or expired token", body = ErrorDetail),
        (status = 422, description = "No token", body = ValidationErrors),
        (status = 429, description = "Too many requests from this client", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn verify_email(
    State(state): State<AppState>,
    _: Throttled<Other>,
    Client(client): Client,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<StatusCode, ApiError> {
    state.auth.verify_email(&body.token, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send the caller a new verification message (nothing if already verified).
#[utoipa::path(post, path = "/email/verify/resend", tag = "email",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A message is on its way unless the address is verified", body = Accepted),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 429, description = "Too many messages for this client or address; see Retry-After", body = ErrorDetail),
        (status = 503, description = "Email is not configured (LATCHKEY_SMTP_URL), or the database is unreachable", body = ErrorDetail),
    ))]
async fn resend_verification(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
) -> Result<Response, ApiError> {
    state.auth.resend_verification(&principal, &client).await?;
    Ok(accepted("A verification message is on its way"))
}

/// Ask for a password-reset message; the same answer whether or not an account has the address.
#[utoipa::path(post, path = "/password/forgot", tag = "email",
    request_body = EmailBody,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 202, description = "If an account has the address, a message is on its way", body = Accepted),
        (status = 422, description = "Not an email address", body = ValidationErrors),
        (status = 429, description = "Too many messages for this client or address; see Retry-After", body = ErrorDetail),
        (status = 503, description = "Email is not configured (LATCHKEY_SMTP_URL), or too busy", body = ErrorDetail),
    ))]
async fn forgot_password(
    State(state): State<AppState>,
    _: Throttled<Other>,
    Client(client): Client,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<Response, ApiError> {
    state.auth.forgot_password(&body.email, &client).await?;
    Ok(accepted(
        "If an account has this address, a message is on its way",
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordReset {
    #[schema(value_type = String, min_length = 1)]
    token: SecretString,
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: SecretString,
}

/// Set a new password with the token of a reset message; every session of the account ends.
#[utoipa::path(post, path = "/password/reset", tag = "email",
    request_body = PasswordReset,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 204, description = "Password set"),
        (status = 400, description = "Invalid or expired token", body = ErrorDetail),
        (status = 422, description = "The new password breaks a rule", body = ValidationErrors),
        (status = 429, description = "Too many requests from this client", body = ErrorDetail),
        (status = 503, description = "Password hashing at capacity, or the database is unreachable; retry", body = ErrorDetail),
    ))]
async fn reset_password(
    State(state): State<AppState>,
    _: Throttled<Other>,
    Client(client): Client,
    ApiJson(body): ApiJson<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .reset_password(&body.token, &body.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct EmailChange {
    #[schema(example = "alice@new.example.com")]
    new_email: String,
    /// The current password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Ask to change the caller's address: a confirmation goes to the new one, a notice to the old.
#[utoipa::path(post, path = "/me/email", tag = "email",
    security(("bearer" = [])),
    request_body = EmailChange,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 202, description = "Confirmation sent to the new address", body = Accepted),
        (status = 400, description = "Current password is incorrect / Email already registered / The new email is the current one", body = ErrorDetail),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 422, description = "Not an email address", body = ValidationErrors),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorDetail),
        (status = 503, description = "Email is not configured (LATCHKEY_SMTP_URL), or the database is unreachable", body = ErrorDetail),
    ))]
async fn request_email_change(
    State(state): State<AppState>,
    _: Throttled<Login>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    ApiJson(body): ApiJson<EmailChange>,
) -> Result<Response, ApiError> {
    state
        .auth
        .request_email_change(&principal, &body.new_email, &body.password, &client)
        .await?;
    Ok(accepted("Confirmation sent to the new address"))
}

/// Confirm an address change with the token sent to the new address; the account's other sessions end.
#[utoipa::path(post, path = "/email/change/confirm", tag = "email",
    request_body = TokenBody,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 204, description = "The address is changed"),
        (status = 400, description = "Invalid or expired token / Email already registered", body = ErrorDetail),
        (status = 422, description = "No token", body = ValidationErrors),
        (status = 429, description = "Too many requests from this client", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn confirm_email_change(
    State(state): State<AppState>,
    _: Throttled<Other>,
    Client(client): Client,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .confirm_email_change(&body.token, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a sign-in code by email (when `LATCHKEY_EMAIL_SIGN_IN=on`); the same answer for every address.
#[utoipa::path(post, path = "/login/email", tag = "email",
    request_body = EmailBody,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 202, description = "If an account has the address, a code is on its way", body = Accepted),
        (status = 404, description = "Email sign-in is not enabled", body = ErrorDetail),
        (status = 422, description = "Not an email address", body = ValidationErrors),
        (status = 429, description = "Too many messages for this client or address; see Retry-After", body = ErrorDetail),
        (status = 503, description = "Email is not configured (LATCHKEY_SMTP_URL), or too busy", body = ErrorDetail),
    ))]
async fn request_sign_in_code(
    State(state): State<AppState>,
    _: Throttled<Other>,
    Client(client): Client,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<Response, ApiError> {
    state
        .auth
        .request_sign_in_code(&body.email, &client)
        .await?;
    Ok(accepted(
        "If an account has this address, a code is on its way",
    ))
}

/// `{email, code}` from the message, or `{token}` from its link.
#[derive(Deserialize, ToSchema)]
pub struct EmailSignIn {
    email: Option<String>,
    /// Six digits.
    #[schema(value_type = Option<String>, pattern = "^[0-9]{6}$")]
    code: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    token: Option<SecretString>,
}

/// Sign in with an emailed code or link; answers like `/login`.
#[utoipa::path(post, path = "/login/email/verify", tag = "email",
    request_body = EmailSignIn,
    responses(
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Invalid or expired code / Invalid or expired token", body = ErrorDetail),
        (status = 403, description = "The account has a second factor: `mfa_required` with an `mfa_token` for `/login/mfa`", body = MfaRequired),
        (status = 404, description = "Email sign-in is not enabled", body = ErrorDetail),
        (status = 422, description = "Neither {email, code} nor {token}", body = ValidationErrors),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn sign_in_with_email(
    State(state): State<AppState>,
    _: Throttled<Login>,
    Client(client): Client,
    ApiJson(body): ApiJson<EmailSignIn>,
) -> Result<Response, ApiError> {
    let outcome = match body {
        EmailSignIn {
            token: Some(token),
            email: None,
            code: None,
        } => state.auth.sign_in_with_link(&token, &client).await?,
        EmailSignIn {
            token: None,
            email: Some(email),
            code: Some(code),
        } => state.auth.sign_in_with_code(&email, &code, &client).await?,
        _ => {
            return Err(ApiError::Validation(vec![ValidationIssue::body(
                None,
                "Send either email and code, or token",
                "value_error",
            )]));
        }
    };
    Ok(no_store(Json(TokenResponse::from(outcome.tokens))))
}
