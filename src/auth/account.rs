//! Account administration: password change by the user; disable, enable and
//! list by an operator (the CLI). Both end sessions: a password change every
//! other session of the user, disabling all of them.
//!
//! A wrong current password counts against the account's lockout and the
//! client's failure cap exactly like a failed login, so a stolen access token
//! cannot be used to guess the password.

use secrecy::SecretString;

use super::views::UserSummary;
use crate::domain::{Password, normalize_login_name};

use super::{AuditEvent, Auth, AuthError, ClientContext, FieldProblem, Principal, Verification};

impl Auth {
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &SecretString,
        new: &SecretString,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let new = Password::parse(new, self.policy).map_err(|invalid| {
            AuthError::Invalid(vec![FieldProblem {
                field: "new_password",
                invalid,
            }])
        })?;
        let user = self
            .store
            .find_user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        self.check_password(&user, current, client).await?;
        let hash = self.hasher.hash(&new).await?;
        let now = self.clock.now();
        let notice = self.password_changed_notice(&user, client)?;
        self.store
            .set_password_hash(user.id, &hash, now, Some(principal.session_id), &notice)
            .await?;
        self.mail_queued();
        self.store
            .revoke_user_sessions(user.id, Some(principal.session_id), "password_changed", now)
            .await?;
        self.audit(
            AuditEvent::PasswordChange,
            Some(user.id),
            client,
            "other sessions ended",
        )
        .await;
        self.sync_revocations().await
    }

    /// Checks the signed-in user's password before a sensitive change; a
    /// wrong one counts against the lockout exactly like a failed login.
    pub(crate) async fn check_password(
        &self,
        user: &crate::store::UserRecord,
        password: &SecretString,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        self.check_password_keeping_count(user, password, client)
            .await?;
        let account_key = normalize_login_name(&user.username);
        self.throttle.login_succeeded(&account_key, client.ip).await;
        Ok(())
    }

    /// [`Self::check_password`] without clearing the failure count, for a
    /// request whose second factor is still to be checked.
    pub(crate) async fn check_password_keeping_count(
        &self,
        user: &crate::store::UserRecord,
        password: &SecretString,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let account_key = normalize_login_name(&user.username);
        self.refuse_while_locked(&account_key, Some(user.id), client)
            .await?;
        match self
            .hasher
            .verify(password, Some(&user.password_hash))
            .await?
        {
            Verification::Match { .. } => Ok(()),
            Verification::Mismatch => {
                let outcome = "wrong current password";
                self.count_wrong_password(&account_key, Some(user.id), client, outcome)
                    .await;
                Err(AuthError::WrongCurrentPassword)
            }
        }
    }

    /// Sets or clears the language of the caller's messages.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn set_locale(
        &self,
        principal: &Principal,
        locale: Option<&str>,
    ) -> Result<super::Account, AuthError> {
        let locale = match locale {
            Some(raw) => Some(crate::mail::parse_locale(raw).ok_or_else(|| {
                AuthError::Invalid(vec![FieldProblem {
                    field: "locale",
                    invalid: crate::domain::Invalid::new(
                        "value_error.locale",
                        "is not a language tag (like en, de or pt-BR)",
                    ),
                }])
            })?),
            None => None,
        };
        let user = self.current_user(principal).await?;
        self.store
            .set_locale(user.id, locale.as_deref(), self.clock.now())
            .await?;
        Ok(super::Account {
            locale,
            ..super::Account::from(user)
        })
    }

    /// Disables or enables an account by username or email; disabling ends
    /// every session at once. Returns whether the account exists.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn set_disabled(&self, login_name: &str, disabled: bool) -> Result<bool, AuthError> {
        let now = self.clock.now();
        let Some(user_id) = self
            .store
            .set_disabled(&normalize_login_name(login_name), disabled, now)
            .await?
        else {
            return Ok(false);
        };
        let operator = ClientContext {
            user_agent: Some("latchkey command line".to_owned()),
            ip: None,
            languages: Vec::new(),
        };
        if disabled {
            self.store
                .revoke_user_sessions(user_id, None, "user_disabled", now)
                .await?;
            self.sync_revocations().await?;
            self.audit(
                AuditEvent::UserDisabled,
                Some(user_id),
                &operator,
                "all sessions ended",
            )
            .await;
        } else {
            self.audit(AuditEvent::UserEnabled, Some(user_id), &operator, "enabled")
                .await;
        }
        Ok(true)
    }

    #[tracing::instrument(level = "info", skip_all)]
    pub async fn list_users(&self, limit: u64) -> Result<Vec<UserSummary>, AuthError> {
        let users = self.store.list_users(limit).await?;
        Ok(users.into_iter().map(UserSummary::from).collect())
    }
}
