//! The one mapping from errors to HTTP responses.
//!
//! Every error body is JSON with a `detail` member, the origin's shape: a
//! string, or for validation failures a list of `{loc, msg, type}`. Server
//! faults answer an opaque 500 (or 503) and travel whole, causes included, in
//! the response's extensions as a [`ServerFault`]; [`log_server_faults`] logs
//! each once, inside the request's span (which carries the request id). Their
//! text is never sent.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::telemetry::error_chain;

/// What went wrong on our side, kept with its causes for the log.
#[derive(Clone)]
pub struct ServerFault(Arc<dyn std::error::Error + Send + Sync>);

impl ServerFault {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }
}

impl std::fmt::Debug for ServerFault {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&error_chain(self.0.as_ref()))
    }
}

impl std::fmt::Display for ServerFault {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

/// Attaches a fault to its response, for [`log_server_faults`].
pub(crate) fn attach(mut response: Response, fault: ServerFault) -> Response {
    response.extensions_mut().insert(fault);
    response
}

/// Logs the fault a response carries, once, with the request's span: 5xx
/// other than 503 at error, unavailability at warn.
pub(crate) async fn log_server_faults(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(fault) = response.extensions().get::<ServerFault>() {
        let status = response.status().as_u16();
        let error = error_chain(fault.0.as_ref());
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(status, %error, "service unavailable");
        } else {
            tracing::error!(status, %error, "request failed");
        }
    }
    response
}

/// A handler panicked; the panic's message is logged by the panic hook.
#[derive(Debug, thiserror::Error)]
#[error("a handler panicked")]
pub struct Panicked;

/// `{"detail": "..."}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "Incorrect username or password")]
    pub detail: String,
}

/// The answer to a right password on an account with a second factor: both
/// error shapes (`detail` for the origin's clients, `error` for OAuth ones),
/// and the `mfa_token` to present at `/login/mfa` with one of `mfa_methods`.
#[derive(Serialize, ToSchema)]
pub struct MfaRequired {
    #[schema(example = "mfa_required")]
    error: &'static str,
    error_description: &'static str,
    #[schema(example = "Multi-factor authentication required")]
    detail: &'static str,
    /// Single use, 5 minutes, 5 tries.
    mfa_token: String,
    #[schema(example = json!(["totp", "recovery_code"]))]
    mfa_methods: Vec<&'static str>,
}

impl std::fmt::Debug for MfaRequired {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MfaRequired")
            .field("mfa_methods", &self.mfa_methods)
            .finish_non_exhaustive()
    }
}

impl MfaRequired {
    pub fn new(token: &secrecy::SecretString, methods: Vec<&'static str>) -> Self {
        Self {
            error: "mfa_required",
            error_description: "The password was right; send a second factor with the mfa_token to /login/mfa",
            detail: "Multi-factor authentication required",
            mfa_token: secrecy::ExposeSecret::expose_secret(token).to_owned(),
            mfa_methods: methods,
        }
    }

    pub fn into_response(self) -> Response {
        super::origin::no_store((StatusCode::FORBIDDEN, Json(self)))
    }
}

/// `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrors {
    pub detail: Vec<ValidationIssue>,
}

/// One failed rule: where (`["body", "password"]`), what, and a stable type.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidationIssue {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl ValidationIssue {
    pub fn body(field: Option<&str>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        let mut loc = vec!["body".to_owned()];
        loc.extend(field.map(str::to_owned));
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<ValidationIssue>),
    #[error("{0}")]
    BadRequest(String),
    #[error("Not authenticated")]
    NotAuthenticated,
    #[error("Invalid token")]
    InvalidToken,
    #[error("{0}")]
    Forbidden(String),
    #[error("Multi-factor authentication required")]
    MfaRequired(MfaRequired),
    /// A feature this server is not configured for (503, naming the setting).
    #[error("{0}")]
    NotConfigured(String),
    #[error("Not Found")]
    NotFound,
    #[error("{0}")]
    NotFoundDetail(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("Request body too large")]
    PayloadTooLarge,
    #[error("Unsupported media type")]
    UnsupportedMediaType(&'static str),
    #[error("Request took too long")]
    Timeout,
    #[error("Too many attempts; retry later")]
    Throttled(std::time::Duration),
    #[error("Server busy, retry shortly")]
    Busy,
    /// Readiness while the server drains before stopping.
    #[error("Shutting down")]
    Draining,
    #[error("Service unavailable")]
    Unavailable(ServerFault),
    #[error("Internal server error")]
    Internal(ServerFault),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Invalid(problems) => Self::Validation(
                problems
                    .into_iter()
                    .map(|problem| {
                        let msg =
                            format!("{} {}", capitalized(problem.field), problem.invalid.message);
                        ValidationIssue::body(Some(problem.field), msg, problem.invalid.kind)
                    })
                    .collect(),
            ),
            AuthError::UsernameTaken
            | AuthError::EmailTaken
            | AuthError::InvalidCredentials
            | AuthError::InvalidGrant(_)
            | AuthError::WrongCurrentPassword
            | AuthError::InvalidEmailToken
            | AuthError::InvalidCode
            | AuthError::SameEmail
            | AuthError::InvalidMfaToken
            | AuthError::InvalidMfaCode
            | AuthError::TotpAlreadyEnabled
            | AuthError::TotpNotPending
            | AuthError::TotpNotEnabled
            | AuthError::PasskeyRejected
            | AuthError::TooManyPasskeys
            | AuthError::NoPasskey
            | AuthError::ClientSettings(_)
            | AuthError::InvalidScope
            | AuthError::UnauthorizedClient => Self::BadRequest(error.to_string()),
            AuthError::RoleExists => Self::Conflict(error.to_string()),
            AuthError::UserNotFound | AuthError::WebhookNotFound => {
                Self::NotFoundDetail(error.to_string())
            }
            AuthError::Forbidden(_) => Self::Forbidden(error.to_string()),
            AuthError::PasskeyNotFound => Self::NotFoundDetail(error.to_string()),
            AuthError::MfaRequired { mfa_token, methods } => {
                Self::MfaRequired(MfaRequired::new(&mfa_token, methods))
            }
            AuthError::EmailNotVerified => Self::Forbidden(error.to_string()),
            AuthError::MailNotConfigured => Self::NotConfigured(error.to_string()),
            AuthError::EmailSignInDisabled => Self::NotFoundDetail(error.to_string()),
            AuthError::SessionNotFound => Self::NotFoundDetail(error.to_string()),
            AuthError::InvalidClient => Self::InvalidToken,
            AuthError::InvalidToken => Self::InvalidToken,
            AuthError::Throttled(wait) => Self::Throttled(wait),
            AuthError::Busy => Self::Busy,
            AuthError::NotReady(_) => Self::Unavailable(ServerFault::new(error)),
            AuthError::Store(ref store) if store.is_unavailable() => {
                Self::Unavailable(ServerFault::new(error))
            }
            AuthError::Store(_)
            | AuthError::Hashing(_)
            | AuthError::Signing(_)
            | AuthError::Keys(_)
            | AuthError::Mail(_)
            | AuthError::Seal(_)
            | AuthError::Webauthn(_)
            | AuthError::Random => Self::Internal(ServerFault::new(error)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::MfaRequired(body) = self {
            return body.into_response();
        }
        let status = match &self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotAuthenticated | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::MfaRequired(_) => StatusCode::FORBIDDEN,
            Self::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound | Self::NotFoundDetail(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy | Self::Draining | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match &self {
            Self::Throttled(wait) => Some(retry_after_seconds(*wait)),
            Self::Busy | Self::Unavailable(_) => Some(1),
            _ => None,
        };
        let mut fault = None;
        let detail = match self {
            Self::Validation(issues) => {
                return (status, Json(ValidationErrors { detail: issues })).into_response();
            }
            Self::Internal(cause) | Self::Unavailable(cause) => {
                let detail = if status == StatusCode::SERVICE_UNAVAILABLE {
                    "Service unavailable"
                } else {
                    "Internal server error"
                };
                fault = Some(cause);
                detail.to_owned()
            }
            Self::UnsupportedMediaType(expected) => {
                format!("Unsupported media type: send {expected}")
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(ErrorDetail { detail })).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        match fault {
            Some(fault) => attach(response, fault),
            None => response,
        }
    }
}

/// Whole seconds, rounded up, at least one: a client that waits that long is admitted.
pub(crate) fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
