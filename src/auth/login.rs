//! Login: one path for every outcome. The password is always hashed, at the
//! configured cost even when the account does not exist, and disabled accounts fail
//! after the same work, so neither status, body nor timing tells which
//! accounts exist. Outdated hashes (bcrypt, old argon2 parameters) are
//! replaced after a successful login.

use crate::metrics::LoginOutcome as Counted;
use secrecy::SecretString;
use uuid::Uuid;

use crate::domain::normalize_login_name;
use crate::store::UserRecord;

use super::{Account, AuditEvent, Auth, AuthError, ClientContext, TokenPair, Verification};

/// Longer login names cannot belong to an account (emails are at most 254
/// characters), nor can names with control characters; such names skip the
/// lookup but not the password work.
const MAX_LOGIN_NAME_CHARS: usize = 320;

pub struct LoginOutcome {
    pub account: Account,
    pub tokens: TokenPair,
}

impl Auth {
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn login(
        &self,
        login_name: &str,
        password: &SecretString,
        context: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        let impossible = login_name.chars().count() > MAX_LOGIN_NAME_CHARS
            || login_name.chars().any(char::is_control);
        let user = if impossible {
            None
        } else {
            self.store
                .find_user_by_login(&normalize_login_name(login_name))
                .await?
        };
        // One throttle key per account, whether named by username or email;
        // unknown names are throttled under the name itself.
        let account_key = match &user {
            Some(user) => normalize_login_name(&user.username),
            None => normalize_login_name(login_name)
                .chars()
                .take(MAX_LOGIN_NAME_CHARS)
                .collect(),
        };
        self.refuse_while_locked(&account_key, user.as_ref().map(|user| user.id), context)
            .await
            .inspect_err(|_| self.metrics.login(Counted::Locked))?;
        let stored_hash = user.as_ref().map(|user| user.password_hash.as_str());
        let verification = self.hasher.verify(password, stored_hash).await?;
        let user = match (user, verification) {
            (Some(user), Verification::Match { needs_rehash }) if !user.disabled => {
                if needs_rehash {
                    self.rehash(&user, password).await;
                }
                user
            }
            (user, _) => {
                self.metrics.login(if user.is_some() {
                    Counted::WrongPassword
                } else {
                    Counted::UnknownUser
                });
                let user_id = user.as_ref().map(|user| user.id);
                self.count_wrong_password(&account_key, user_id, context, "invalid credentials")
                    .await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        if self.mail.policy.require_verified && user.email_verified_at.is_none() {
            // Only now, after the right password: the answer tells nothing
            // to someone who does not know it.
            self.throttle
                .login_succeeded(&account_key, context.ip)
                .await;
            return Err(AuthError::EmailNotVerified);
        }
        let factors = self.factor_methods(user.id).await?;
        if !factors.is_empty() {
            // The password alone opens nothing: the second factor follows at
            // `/login/mfa`, whatever route this came through. The failure
            // count stays as it is until that step succeeds, so wrong codes
            // add up across fresh mfa_tokens.
            self.metrics.login(Counted::MfaRequired);
            return Err(self.step_up(&user, "pwd", factors).await?);
        }
        let verified = user.email_verified_at.is_some();
        // The session first: a login that raced a password change opens
        // nothing, and must not be recorded as a success.
        let tokens = self
            .open_session(&user, verified, &super::AuthMethods::password(), context)
            .await?;
        self.metrics.login(Counted::Success);
        self.throttle
            .login_succeeded(&account_key, context.ip)
            .await;
        self.audit(
            AuditEvent::LoginSuccess,
            Some(user.id),
            context,
            "session opened",
        )
        .await;
        Ok(LoginOutcome {
            account: Account::from(user),
            tokens,
        })
    }

    /// Answers at once, before any password work, while the account or the
    /// client is locked out.
    #[tracing::instrument(level = "info", skip_all)]
    pub(crate) async fn refuse_while_locked(
        &self,
        account_key: &str,
        user_id: Option<Uuid>,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let Some(wait) = self.throttle.login_blocked(account_key, context.ip).await else {
            return Ok(());
        };
        self.audit(AuditEvent::LoginThrottled, user_id, context, "refused")
            .await;
        Err(AuthError::Throttled(wait))
    }

    /// Counts a wrong password against the account and the client, and
    /// audits it and any lock it starts.
    #[tracing::instrument(level = "info", skip_all)]
    pub(crate) async fn count_wrong_password(
        &self,
        account_key: &str,
        user_id: Option<Uuid>,
        context: &ClientContext,
        outcome: &str,
    ) {
        // The account key hashed: the log says which account without naming it.
        let account = &super::secrets::hash_secret(account_key)[..16];
        tracing::warn!(account, client = ?context.ip, outcome, "login failed");
        if let Some(lock) = self.throttle.login_failed(account_key, context.ip).await {
            tracing::warn!(account, client = ?context.ip, seconds = lock.as_secs(), "login locked");
            let locked = format!("locked for {}s", lock.as_secs());
            self.audit(AuditEvent::Lockout, user_id, context, &locked)
                .await;
        }
        self.audit(AuditEvent::LoginFailure, user_id, context, outcome)
            .await;
    }

    /// Best effort: a failed rehash leaves the old, still valid hash in place.
    async fn rehash(&self, user: &UserRecord, password: &SecretString) {
        let replacement = match self.hasher.hash_typed(password).await {
            Ok(hash) => hash,
            Err(error) => {
                tracing::warn!(user_id = %user.id, error = %crate::telemetry::error_chain(&error), "could not rehash an outdated password hash");
                return;
            }
        };
        match self
            .store
            .replace_password_hash(user.id, &user.password_hash, &replacement, self.clock.now())
            .await
        {
            Ok(_) => tracing::info!(user_id = %user.id, "rehashed an outdated password hash"),
            Err(error) => {
                tracing::warn!(user_id = %user.id, error = %crate::telemetry::error_chain(&error), "could not store a rehashed password")
            }
        }
    }
}
