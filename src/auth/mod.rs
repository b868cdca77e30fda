//! Use-cases in domain words: register, log in, authenticate a bearer token,
//! import the origin's users. No axum, no SQL: input arrives as plain values,
//! is parsed into [`crate::domain`] types, and persistence goes through
//! [`crate::store::Store`].
//!
//! Rules kept here: login fails the same way, after the same work, for unknown
//! users, disabled users and wrong passwords; a token is only honoured while
//! its user exists and is enabled.

mod account;
mod admin;
mod audit;
mod bearer;
mod email;
mod error;
mod hashing;
mod import;
mod keys;
mod login;
mod mfa;
mod oauth;
mod oidc;
mod operations;
mod passkeys;
mod register;
mod revocation;
mod sealing;
mod secrets;
mod sessions;
mod throttle;
mod tokens;
mod views;
mod webhooks;

use crate::metrics::Metrics;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::PasswordPolicy;
use crate::store::{Store, UserRecord};

pub use admin::{
    ADMIN_ROLE, API_KEY_PREFIX, AccountEdit, Actor, AdminAuditEntry, AdminScope, AdminUser,
    NewAccount, Page, UserQuery,
};
pub use audit::AuditEvent;
pub use email::{BACKGROUND_LOOKUPS, EmailPolicy, MailSetup};
pub use error::{AuthError, FieldProblem};
pub use hashing::{
    HashingError, HashingParams, PasswordHasher, Verification, default_hash_concurrency, is_bcrypt,
};
pub use import::{ImportReport, SkippedRow, import_origin_users};
pub use keys::{KeyError, Keyring, PublicJwk};
pub use login::LoginOutcome;
pub use mfa::{SecondFactor, TotpEnrolment};
pub use oauth::{CreatedClient, Introspection};
pub use oidc::{
    AuthorizationRequest, AuthorizeError, BrowserSession, CLIENT_LOOKUP_FAILED, ClientCredentials,
    CodeTokens, GivenConsent, LogoutHint, MachineToken, NewClient, Prompt, RedirectError,
    SUPPORTED_SCOPES, valid_redirect_uri,
};
pub use operations::ProviderMetadata;
pub use passkeys::{PasskeySummary, Reauthentication, RelyingParty};
pub use register::Registration;
pub use revocation::RevokedSessions;
pub use sealing::{SealError, Sealer};
pub use sessions::{ClientContext, LogoutScope, TokenPair};
pub use throttle::{RouteGroup, Throttle, ThrottlePolicy};
pub use tokens::{
    AccessClaims, AuthMethods, IssuedToken, LEEWAY_SECONDS, TokenError, TokenService,
    token_retention,
};
pub use views::{AuditEntry, LiveSession, SigningKeySummary, UserSummary};
pub use webhooks::{CreatedWebhook, EVENT_TYPES, WebhookCourier, is_internal};

/// An account as clients may see it: no hash, no internal flags.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub email_verified: bool,
    pub locale: Option<String>,
    pub roles: Vec<String>,
    /// A JSON object the user writes (`{}` when never set).
    pub user_metadata: serde_json::Value,
}

impl From<UserRecord> for Account {
    fn from(user: UserRecord) -> Self {
        Self {
            user_metadata: admin::metadata_value(user.user_metadata.as_deref()),
            roles: user.roles,
            id: user.id,
            username: user.username,
            email: user.email,
            created_at: user.created_at,
            email_verified: user.email_verified_at.is_some(),
            locale: user.locale,
        }
    }
}

/// The caller behind a verified bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub username: Arc<str>,
    pub session_id: Uuid,
}

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// From login, whatever the activity.
    pub lifetime: Duration,
    /// Without a refresh.
    pub idle_timeout: Duration,
    /// How long a spent refresh token still answers its (unused) successor;
    /// zero: reuse ends the session at once.
    pub refresh_grace: Duration,
}

/// Everything the use-cases need, built once at start-up.
pub struct Auth {
    store: Store,
    hasher: PasswordHasher,
    tokens: TokenService,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
    sessions: SessionPolicy,
    revoked: RevokedSessions,
    verified: bearer::VerifiedTokens,
    throttle: Throttle,
    mail: MailSetup,
    /// Seals second-factor secrets at rest.
    sealer: Sealer,
    /// The relying party passkeys are bound to.
    passkeys: RelyingParty,
    /// Where events go.
    webhooks: webhooks::WebhookHub,
    /// What `/metrics` publishes.
    metrics: Arc<Metrics>,
}

impl Auth {
    /// Every service the use-cases share; each is built by `startup`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        tokens: TokenService,
        clock: Arc<dyn Clock>,
        policy: PasswordPolicy,
        sessions: SessionPolicy,
        throttle: Throttle,
        sealer: Sealer,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let mut hasher = hasher;
        hasher.observe(metrics.hashing());
        Self {
            store,
            hasher,
            tokens,
            clock,
            policy,
            sessions,
            revoked: RevokedSessions::default(),
            verified: bearer::VerifiedTokens::default(),
            throttle,
            mail: MailSetup::default(),
            sealer,
            passkeys: RelyingParty::development(),
            webhooks: webhooks::WebhookHub::default(),
            metrics,
        }
    }

    /// The relying party passkeys are bound to (by default `localhost`).
    pub fn with_passkeys(mut self, relying_party: RelyingParty) -> Self {
        self.passkeys = relying_party;
        self
    }

    /// Email: the renderer (when configured), the delivery worker's
    /// doorbell, and the policy of the email flows.
    pub fn with_mail(mut self, mail: MailSetup) -> Self {
        self.mail = mail;
        self
    }

    /// Signature, claims and revocation; no database.
    pub(crate) fn verify_access_token(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let claims = self.tokens.verify(token).map_err(|error| {
            tracing::debug!(error = %crate::telemetry::error_chain(&error), "bearer token refused");
            AuthError::InvalidToken
        })?;
        // The origin's own tokens name no session: not introspectable.
        let (user_id, session_id) = claims.account_ids().ok_or(AuthError::InvalidToken)?;
        if self.revoked.contains(&session_id) || self.revoked.is_disabled(&user_id) {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }

    /// Publishes a new signing key (sealed with the encryption key), which
    /// signs once the activation delay has passed; earlier ones keep
    /// verifying until their tokens expire.
    pub async fn rotate_signing_key(&self) -> Result<String, AuthError> {
        if !self.tokens.keyring().is_stored() {
            return Err(AuthError::Keys(KeyError::NotStored));
        }
        Ok(Keyring::rotate(
            &self.store,
            self.clock.as_ref(),
            self.tokens.key_activation(),
            &self.sealer,
        )
        .await?)
    }

    /// Brings the revocation set and the signing keys up to date with the
    /// database; run on a short interval by the server.
    pub async fn poll_shared_state(&self, reload_keys: bool) -> Result<(), AuthError> {
        self.sync_revocations().await?;
        if reload_keys && self.tokens.keyring().is_stored() {
            let cutoff = self.clock.now() - token_retention(self.tokens.lifetime());
            let keyring = Keyring::load_or_create(
                &self.store,
                self.clock.as_ref(),
                cutoff,
                self.tokens.key_activation(),
                &self.sealer,
            )
            .await?;
            // A key gone from the database (an operator removing a leaked
            // one) must stop its tokens at once, cached or not.
            let before = self.tokens.keyring();
            let removed = before
                .public_keys()
                .iter()
                .any(|old| !keyring.public_keys().iter().any(|new| new.kid == old.kid));
            self.tokens.replace_keyring(keyring);
            if removed {
                self.verified.clear();
            }
        }
        Ok(())
    }
}
