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
        let account_key = normalize_login_name(&user.username);
        self.refuse_while_locked(&account_key, Some(user.id), client)
            .await?;
        match self
            .hasher
            .verify(current, Some(&user.password_hash))
            .await?
        {
            Verification::Match { .. } => {
                self.throttle.login_succeeded(&account_key, client.ip).await
            }
            Verification::Mismatch => {
                let outcome = "wrong current password";
                self.count_wrong_password(&account_key, Some(user.id), client, outcome)
                    .await;
                return Err(AuthError::WrongCurrentPassword);
            }
        }
        let hash = self.hasher.hash(&new).await?;
        let now = self.clock.now();
        self.store
            .set_password_hash(user.id, &hash, now, Some(principal.session_id))
            .await?;
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
