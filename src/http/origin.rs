//! The origin service's three routes, kept exactly as its clients use them
//! (`shared/seed/CONTRACT.md`): `POST /register`, `POST /login`,
//! `GET /get-resource`. Extras that cannot break those clients: JSON login,
//! `expires_in`, and `id`/`created_at` in the registration answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorDetail, ValidationErrors, ValidationIssue};
use super::extract::{ApiJson, Client, CurrentUser, JsonOrForm};
use super::state::AppState;
use super::throttle::{Login, Register, Throttled};
use crate::auth::{Account, Registration, TokenPair};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(get_resource))
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3 to 32 letters, digits, `.`, `_`, `-` (after NFKC).
    #[schema(example = "alice", min_length = 3, max_length = 32)]
    username: String,
    #[schema(example = "alice@example.com", min_length = 3, max_length = 254)]
    email: String,
    /// 8 to 128 characters (the minimum is configurable), not a common password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple",
        min_length = 8, max_length = 128)]
    password: SecretString,
    /// The language of the account's messages, a BCP 47 tag (`en`, `de`, `pt-BR`); optional.
    #[schema(example = "en", max_length = 35)]
    locale: Option<String>,
}

/// A registered account; never a password or hash.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    id: Uuid,
    username: String,
    email: String,
    created_at: DateTime<Utc>,
}

impl From<Account> for AccountView {
    fn from(account: Account) -> Self {
        Self {
            id: account.id,
            username: account.username,
            email: account.email,
            created_at: account.created_at,
        }
    }
}

/// Register a new account.
///
/// Usernames: 3 to 32 letters, digits, `.`, `_`, `-`. Passwords: 8 to 128
/// characters, not among the most common passwords.
#[utoipa::path(post, path = "/register", tag = "origin",
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered", body = AccountView),
        (status = 400, description = "Username already registered / Email already registered", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "A field breaks a rule", body = ValidationErrors),
        (status = 429, description = "Too many registrations from this client; see Retry-After", body = ErrorDetail),
        (status = 503, description = "Password hashing at capacity, or the database is unreachable; retry", body = ErrorDetail),
    ))]
async fn register(
    State(state): State<AppState>,
    _: Throttled<Register>,
    Client(client): Client,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Json<AccountView>, ApiError> {
    let account = state
        .auth
        .register(
            Registration {
                username: request.username,
                email: request.email,
                password: request.password,
                locale: request.locale,
            },
            &client,
        )
        .await?;
    Ok(Json(AccountView::from(account)))
}

/// The OAuth 2.0 password-grant form (RFC 6749 section 4.3), or the same as JSON.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username or email.
    #[schema(example = "alice")]
    username: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// When present, must be `password`.
    #[schema(example = "password", pattern = "^password$")]
    grant_type: Option<String>,
    /// Accepted and ignored.
    #[allow(dead_code)]
    scope: Option<String>,
}

/// The token answer of `/login` and `/oauth/token` (RFC 6749 section 5.1).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    #[schema(example = "bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    expires_in: i64,
    /// Single use: exchange it at `/oauth/token` for a new pair.
    refresh_token: String,
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access.access_token,
            token_type: "bearer",
            expires_in: pair.access.expires_in,
            refresh_token: pair.refresh_token.expose_secret().to_owned(),
        }
    }
}

/// Log in and get an access token.
#[utoipa::path(post, path = "/login", tag = "origin",
    request_body(content(
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Incorrect username or password", body = ErrorDetail),
        (status = 403, description = "Email not verified (only with LATCHKEY_REQUIRE_VERIFIED_EMAIL, after the right password); or, for an account with a second factor, `mfa_required` with an `mfa_token` for `/login/mfa` (see MfaRequired)", body = ErrorDetail),
        (status = 415, description = "Neither a form nor JSON", body = ErrorDetail),
        (status = 422, description = "A field is missing or malformed", body = ValidationErrors),
        (status = 429, description = "Too many attempts for this account or from this client; see Retry-After", body = ErrorDetail),
        (status = 503, description = "Password hashing at capacity, or the database is unreachable; retry", body = ErrorDetail),
    ))]
async fn login(
    State(state): State<AppState>,
    _: Throttled<Login>,
    Client(client): Client,
    JsonOrForm(request): JsonOrForm<LoginRequest>,
) -> Result<Response, ApiError> {
    if request
        .grant_type
        .as_deref()
        .is_some_and(|grant| grant != "password")
    {
        return Err(ApiError::Validation(vec![ValidationIssue::body(
            Some("grant_type"),
            "String should match pattern '^password$'",
            "string_pattern_mismatch",
        )]));
    }
    let outcome = state
        .auth
        .login(&request.username, &request.password, &client)
        .await?;
    Ok(no_store(Json(TokenResponse::from(outcome.tokens))))
}

#[derive(Serialize, ToSchema)]
pub struct ResourceMessage {
    #[schema(example = "You have access to the protected resource")]
    message: &'static str,
}

/// The origin's protected resource.
#[utoipa::path(get, path = "/get-resource", tag = "origin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token is valid", body = ResourceMessage),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
    ))]
async fn get_resource(CurrentUser(_account): CurrentUser) -> Json<ResourceMessage> {
    Json(ResourceMessage {
        message: "You have access to the protected resource",
    })
}

/// Responses that carry a token must not be stored by any cache (RFC 6749 section 5.1).
pub(crate) fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
