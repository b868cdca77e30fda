//! Errors of the use-cases, in their own words; `http` maps each to a status.

use crate::domain::Invalid;
use crate::store::StoreError;

use super::hashing::HashingError;
use super::tokens::TokenError;

/// One field that failed its rule.
#[derive(Debug, Clone)]
pub struct FieldProblem {
    pub field: &'static str,
    pub invalid: Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldProblem>),
    #[error("{0}")]
    ClientSettings(&'static str),
    #[error("a requested scope is not allowed for this client")]
    InvalidScope,
    #[error("this client may not use this grant")]
    UnauthorizedClient,
    #[error("Username already registered")]
    UsernameTaken,
    #[error("Email already registered")]
    EmailTaken,
    #[error("Incorrect username or password")]
    InvalidCredentials,
    #[error("Invalid token")]
    InvalidToken,
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("Current password is incorrect")]
    WrongCurrentPassword,
    #[error("Email not verified")]
    EmailNotVerified,
    #[error("Invalid or expired token")]
    InvalidEmailToken,
    #[error("Invalid or expired code")]
    InvalidCode,
    #[error("The new email is the current one")]
    SameEmail,
    /// Email delivery is not configured, so flows that send mail cannot run.
    #[error("Email is not configured on this server (LATCHKEY_SMTP_URL is unset)")]
    MailNotConfigured,
    #[error("Email sign-in is not enabled (LATCHKEY_EMAIL_SIGN_IN)")]
    EmailSignInDisabled,
    #[error("cannot render a message")]
    Mail(#[from] crate::mail::MailError),
    /// The password was right; a second factor must follow at `/login/mfa`.
    #[error("Multi-factor authentication required")]
    MfaRequired {
        mfa_token: secrecy::SecretString,
        methods: Vec<&'static str>,
    },
    #[error("Invalid or expired mfa_token")]
    InvalidMfaToken,
    #[error("Invalid code")]
    InvalidMfaCode,
    #[error("TOTP is already enabled")]
    TotpAlreadyEnabled,
    #[error("No TOTP enrolment to confirm: start one with POST /me/mfa/totp")]
    TotpNotPending,
    #[error("TOTP is not enabled")]
    TotpNotEnabled,
    /// A WebAuthn answer that did not verify: unknown or cloned credential,
    /// wrong origin, bad signature, or a challenge used, expired or unknown.
    #[error("Passkey verification failed")]
    PasskeyRejected,
    #[error("Passkey not found")]
    PasskeyNotFound,
    #[error("An account holds at most 20 passkeys")]
    TooManyPasskeys,
    #[error("No passkey on this account")]
    NoPasskey,
    /// Authenticated, but not allowed (a normal account at an admin route,
    /// an API key without the route's scope).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("User not found")]
    UserNotFound,
    #[error("Role already exists")]
    RoleExists,
    #[error("Webhook not found")]
    WebhookNotFound,
    #[error(transparent)]
    Seal(#[from] super::sealing::SealError),
    #[error("Session not found")]
    SessionNotFound,
    #[error("client authentication failed")]
    InvalidClient,
    #[error("Too many attempts; retry later")]
    Throttled(std::time::Duration),
    #[error("password hashing is at capacity")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service cannot serve: database unreachable or schema not current.
    #[error("not ready")]
    NotReady(#[source] StoreError),
    #[error("password hashing failed")]
    Hashing(#[source] HashingError),
    #[error("cannot sign a token")]
    Signing(#[from] TokenError),
    #[error(transparent)]
    Keys(#[from] super::keys::KeyError),
    #[error("the system random generator failed")]
    Random,
    #[error("the WebAuthn library failed")]
    Webauthn(#[source] webauthn_rs_core::error::WebauthnError),
}

impl From<HashingError> for AuthError {
    fn from(error: HashingError) -> Self {
        match error {
            HashingError::Busy => Self::Busy,
            failed @ HashingError::Failed(_) => Self::Hashing(failed),
        }
    }
}
