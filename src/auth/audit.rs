//! The audit trail: security events with time, user, client address, user
//! agent and outcome, never a secret. Writing one never fails the request it
//! records; a failed write is logged.

use uuid::Uuid;

use super::views::AuditEntry;
use crate::store::AuditRecord;

use super::{Auth, AuthError, ClientContext};

/// The events written to the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    LoginSuccess,
    LoginFailure,
    LoginThrottled,
    Lockout,
    RefreshReuse,
    Logout,
    PasswordChange,
    UserDisabled,
    UserEnabled,
    EmailVerified,
    PasswordResetRequested,
    PasswordReset,
    EmailChangeRequested,
    EmailChanged,
    SignInCodeRequested,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodesRegenerated,
    PasskeyAdded,
    PasskeyRemoved,
    /// A passkey's signature counter went backwards: possibly a clone.
    PasskeyCloneSuspected,
    UserCreated,
    UserUpdated,
    UserUnlocked,
    RolesChanged,
    RoleCreated,
    SessionsEnded,
    ApiKeyCreated,
    ApiKeyRevoked,
    WebhookCreated,
    WebhookDeleted,
}

impl AuditEvent {
    fn name(self) -> &'static str {
        match self {
            Self::LoginSuccess => "login_success",
            Self::LoginFailure => "login_failure",
            Self::LoginThrottled => "login_throttled",
            Self::Lockout => "lockout",
            Self::RefreshReuse => "refresh_reuse",
            Self::Logout => "logout",
            Self::PasswordChange => "password_change",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::EmailVerified => "email_verified",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::SignInCodeRequested => "sign_in_code_requested",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::PasskeyCloneSuspected => "passkey_clone_suspected",
            Self::UserCreated => "user_created",
            Self::UserUpdated => "user_updated",
            Self::UserUnlocked => "user_unlocked",
            Self::RolesChanged => "roles_changed",
            Self::RoleCreated => "role_created",
            Self::SessionsEnded => "sessions_ended",
            Self::ApiKeyCreated => "api_key_created",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::WebhookCreated => "webhook_created",
            Self::WebhookDeleted => "webhook_deleted",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
        }
    }
}

impl Auth {
    pub(crate) async fn audit(
        &self,
        event: AuditEvent,
        user_id: Option<Uuid>,
        client: &ClientContext,
        outcome: &str,
    ) {
        let record = AuditRecord {
            at: self.clock.now(),
            event: event.name().to_owned(),
            user_id,
            client_ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client
                .user_agent
                .as_deref()
                .map(|agent| agent.chars().take(512).collect()),
            outcome: outcome.chars().take(64).collect(),
        };
        let webhooks = self
            .webhooks_for_audit(event, user_id, client, outcome)
            .await;
        let written = if webhooks.is_empty() {
            self.store.insert_audit(&record).await
        } else {
            let written = self.store.insert_audit_with(&record, &webhooks).await;
            self.mail_queued();
            written
        };
        if let Err(error) = written {
            let error = crate::telemetry::error_chain(&error);
            tracing::warn!(%error, event = event.name(), "could not write an audit event");
        }
    }

    /// The audit trail of an account (by username or email), newest first.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn audit_trail(
        &self,
        login_name: &str,
        limit: u64,
    ) -> Result<Option<Vec<AuditEntry>>, AuthError> {
        let normalized = crate::domain::normalize_login_name(login_name);
        let Some(user) = self.store.find_user_by_login(&normalized).await? else {
            return Ok(None);
        };
        let records = self.store.audit_for_user(user.id, limit).await?;
        Ok(Some(records.into_iter().map(AuditEntry::from).collect()))
    }
}
