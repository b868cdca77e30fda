//! The admin API's use-cases: who may call it (API keys with scopes, or an
//! account holding the `admin` role), accounts, roles, deletion, export and
//! the audit trail. Every change is audited with who made it.

use std::str::FromStr;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use super::secrets::hash_secret;
use super::{
    Account, AuditEntry, AuditEvent, Auth, AuthError, ClientContext, FieldProblem, LiveSession,
    Principal, Registration,
};
use crate::domain::{EmailAddress, Invalid, Username, normalize_login_name};
use crate::store::{
    ApiKeyRecord, AuditFilter, Outgoing, RoleRecord, StoreError, UserChanges, UserFilter,
    UserRecord,
};

/// The prefix that tells an API key from an access token.
pub const API_KEY_PREFIX: &str = "lk_";
/// The role that opens the whole admin API to an account.
pub const ADMIN_ROLE: &str = "admin";
const MAX_METADATA_BYTES: usize = 4096;
const MAX_PAGE: u64 = 200;

/// What a caller of the admin API may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminScope {
    Users,
    Audit,
    Webhooks,
    Keys,
}

impl AdminScope {
    pub const ALL: [Self; 4] = [Self::Users, Self::Audit, Self::Webhooks, Self::Keys];

    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "admin:users",
            Self::Audit => "admin:audit",
            Self::Webhooks => "admin:webhooks",
            Self::Keys => "admin:keys",
        }
    }
}

impl FromStr for AdminScope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.name() == text)
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a scope (admin:users, admin:audit, admin:webhooks, admin:keys)"
                )
            })
    }
}

/// Who is calling the admin API.
#[derive(Debug, Clone)]
pub enum Actor {
    Key {
        id: Uuid,
        name: String,
        scopes: Vec<String>,
    },
    Admin {
        user_id: Uuid,
        username: String,
    },
    /// The command line on the server.
    Operator,
}

impl Actor {
    /// How the audit trail names it (at most 64 characters).
    pub fn describe(&self) -> String {
        let text = match self {
            Self::Key { name, .. } => format!("by key {name}"),
            Self::Admin { username, .. } => format!("by admin {username}"),
            Self::Operator => "by the command line".to_owned(),
        };
        text.chars().take(64).collect()
    }

    fn holds(&self, scope: &str) -> bool {
        match self {
            Self::Key { scopes, .. } => scopes.iter().any(|held| held == scope),
            Self::Admin { .. } | Self::Operator => true,
        }
    }

    /// Only a caller with every scope (an admin, the command line, or a key
    /// holding them all) may make or touch an admin: anything less could
    /// raise itself to one.
    fn require_full_access(&self) -> Result<(), AuthError> {
        if AdminScope::ALL.iter().all(|scope| self.holds(scope.name())) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(
                "Granting or changing the admin role, or an account holding it, needs every admin scope",
            ))
        }
    }
}

/// An account as the admin API shows it.
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub locale: Option<String>,
    pub roles: Vec<String>,
    pub app_metadata: serde_json::Value,
    pub user_metadata: serde_json::Value,
}

pub(crate) fn metadata_value(stored: Option<&str>) -> serde_json::Value {
    stored
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()))
}

impl From<UserRecord> for AdminUser {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            email_verified: user.email_verified_at.is_some(),
            app_metadata: metadata_value(user.app_metadata.as_deref()),
            user_metadata: metadata_value(user.user_metadata.as_deref()),
            username: user.username,
            email: user.email,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
            locale: user.locale,
            roles: user.roles,
        }
    }
}

/// A page and the cursor of the next one (`None`: this was the last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// An audit event with the account it concerns.
#[derive(Debug, Clone)]
pub struct AdminAuditEntry {
    pub id: i64,
    pub user_id: Option<Uuid>,
    pub entry: AuditEntry,
}

/// Which users to list, as received.
#[derive(Debug, Default, Clone)]
pub struct UserQuery {
    pub q: Option<String>,
    pub disabled: Option<bool>,
    pub email_verified: Option<bool>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// A new account made by an admin.
pub struct NewAccount {
    pub username: String,
    pub email: String,
    /// Without one, the account is invited by email to choose it.
    pub password: Option<SecretString>,
    pub email_verified: bool,
    pub roles: Vec<String>,
    pub app_metadata: Option<serde_json::Value>,
}

/// An admin's edit; absent fields stay as they are.
#[derive(Default)]
pub struct AccountEdit {
    pub username: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub disabled: Option<bool>,
    pub app_metadata: Option<serde_json::Value>,
}

fn cursor_of<T: ToString>(value: T) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn parse_cursor<T: FromStr>(cursor: &str) -> Result<T, AuthError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| invalid("cursor", "is not a cursor this server gave"))
}

fn invalid(field: &'static str, message: &str) -> AuthError {
    AuthError::Invalid(vec![FieldProblem {
        field,
        invalid: Invalid::new("value_error", message),
    }])
}

fn page_limit(limit: Option<u64>) -> u64 {
    limit.unwrap_or(50).clamp(1, MAX_PAGE)
}

/// A JSON object of at most 4 KiB, as stored.
pub(crate) fn metadata_text(
    field: &'static str,
    value: &serde_json::Value,
) -> Result<Option<String>, AuthError> {
    if !value.is_object() {
        return Err(invalid(field, "must be a JSON object"));
    }
    let text = value.to_string();
    if text.len() > MAX_METADATA_BYTES {
        return Err(invalid(field, "must be at most 4 KiB as JSON"));
    }
    Ok(Some(text))
}

impl Auth {
    /// The caller of an admin route, if it may use `scope`: an API key
    /// holding it, or an account holding the `admin` role now.
    /// No credentials or unknown ones: 401; others: 403.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn authorize_admin(
        &self,
        bearer: &str,
        scope: AdminScope,
    ) -> Result<Actor, AuthError> {
        let actor = if bearer.starts_with(API_KEY_PREFIX) {
            let key = self
                .store
                .use_api_key(&hash_secret(bearer), self.clock.now())
                .await?
                .ok_or(AuthError::InvalidToken)?;
            Actor::Key {
                id: key.id,
                name: key.name,
                scopes: key.scopes,
            }
        } else {
            let principal = self.authenticate(bearer).await?;
            let user = self.current_user(&principal).await?;
            if !user.roles.iter().any(|role| role == ADMIN_ROLE) {
                return Err(AuthError::Forbidden("Admin access required"));
            }
            Actor::Admin {
                user_id: user.id,
                username: user.username,
            }
        };
        if !actor.holds(scope.name()) {
            return Err(AuthError::Forbidden("The API key lacks the scope"));
        }
        Ok(actor)
    }

    async fn audit_by(
        &self,
        event: AuditEvent,
        user_id: Option<Uuid>,
        actor: &Actor,
        context: &ClientContext,
    ) {
        self.audit(event, user_id, context, &actor.describe()).await;
    }

    /// `latchkey api-keys create` and `POST /admin/api-keys`: the key, once.
    /// A key can only make keys with scopes it holds itself.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn create_api_key(
        &self,
        name: &str,
        scopes: &[String],
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<(ApiKeyRecord, SecretString), AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(invalid("name", "must be 1 to 64 printable characters"));
        }
        let mut parsed = Vec::new();
        for scope in scopes {
            let scope = AdminScope::from_str(scope.trim())
                .map_err(|message| invalid("scopes", &message))?;
            if !actor.holds(scope.name()) {
                return Err(AuthError::Forbidden("A key can only grant scopes it holds"));
            }
            if !parsed.contains(&scope.name().to_owned()) {
                parsed.push(scope.name().to_owned());
            }
        }
        if parsed.is_empty() {
            return Err(invalid("scopes", "name at least one scope"));
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| AuthError::Random)?;
        let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let record = self
            .store
            .insert_api_key(name, &hash_secret(&key), &parsed, self.clock.now())
            .await?;
        self.audit_by(AuditEvent::ApiKeyCreated, None, actor, context)
            .await;
        Ok((record, SecretString::from(key)))
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, AuthError> {
        Ok(self.store.list_api_keys().await?)
    }

    /// Revokes a key; `false` if there was no such live key.
    pub async fn revoke_api_key(
        &self,
        id: Uuid,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<bool, AuthError> {
        let revoked = self.store.revoke_api_key(id, self.clock.now()).await?;
        if revoked {
            self.audit_by(AuditEvent::ApiKeyRevoked, None, actor, context)
                .await;
        }
        Ok(revoked)
    }

    /// `GET /admin/users`: a page in id order, stable under inserts.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn admin_users(&self, query: UserQuery) -> Result<Page<AdminUser>, AuthError> {
        let limit = page_limit(query.limit);
        let filter = UserFilter {
            prefix: query
                .q
                .as_deref()
                .map(normalize_login_name)
                .filter(|q| !q.is_empty()),
            disabled: query.disabled,
            email_verified: query.email_verified,
            created_after: query.created_after,
            created_before: query.created_before,
            after: query.cursor.as_deref().map(parse_cursor).transpose()?,
        };
        let users = self.store.user_page(&filter, limit).await?;
        let next_cursor = if users.len() as u64 == limit {
            users.last().map(|user| cursor_of(user.id))
        } else {
            None
        };
        Ok(Page {
            items: users.into_iter().map(AdminUser::from).collect(),
            next_cursor,
        })
    }

    async fn user_by_id(&self, id: Uuid) -> Result<UserRecord, AuthError> {
        self.store
            .find_user_by_id(id)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// The account an admin action changes; one holding the admin role
    /// only for a caller with every scope.
    async fn user_to_change(&self, id: Uuid, actor: &Actor) -> Result<UserRecord, AuthError> {
        let user = self.user_by_id(id).await?;
        if user.roles.iter().any(|role| role == ADMIN_ROLE) {
            actor.require_full_access()?;
        }
        Ok(user)
    }

    /// An account by username or email, for the command line.
    pub async fn find_account(&self, login_name: &str) -> Result<Option<AdminUser>, AuthError> {
        Ok(self
            .store
            .find_user_by_login(&normalize_login_name(login_name))
            .await?
            .map(AdminUser::from))
    }

    pub async fn admin_user(&self, id: Uuid) -> Result<AdminUser, AuthError> {
        Ok(AdminUser::from(self.user_by_id(id).await?))
    }

    /// `POST /admin/users`: validated as at registration. Without a
    /// password, the account gets a random one and an invitation (a
    /// password-reset link) by email.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn admin_create_user(
        &self,
        new: NewAccount,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        let app_metadata = match &new.app_metadata {
            Some(value) => metadata_text("app_metadata", value)?,
            None => None,
        };
        self.check_roles(&new.roles).await?;
        if new.roles.iter().any(|role| role == ADMIN_ROLE) {
            actor.require_full_access()?;
        }
        let invite = new.password.is_none();
        if invite && self.mail.mailer.is_none() {
            return Err(AuthError::MailNotConfigured);
        }
        let password = match new.password {
            Some(password) => password,
            None => {
                let mut bytes = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| AuthError::Random)?;
                SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
            }
        };
        let account = self
            .register(
                Registration {
                    username: new.username,
                    email: new.email,
                    password,
                    locale: None,
                },
                context,
            )
            .await?;
        let changes = UserChanges {
            email_verified: new.email_verified.then_some(true),
            app_metadata: app_metadata.map(Some),
            roles: (!new.roles.is_empty()).then_some(new.roles),
            ..UserChanges::default()
        };
        self.store
            .update_user(account.id, &changes, self.clock.now())
            .await?;
        self.audit_by(AuditEvent::UserCreated, Some(account.id), actor, context)
            .await;
        let user = self.user_by_id(account.id).await?;
        if invite {
            self.invite(&user, context).await?;
        }
        Ok(AdminUser::from(user))
    }

    async fn check_roles(&self, roles: &[String]) -> Result<(), AuthError> {
        let unknown = self.store.unknown_roles(roles).await?;
        match unknown.first() {
            Some(name) => Err(invalid(
                "roles",
                &format!("{name:?} is not a role; create it with POST /admin/roles"),
            )),
            None => Ok(()),
        }
    }

    /// `PATCH /admin/users/{id}`. Disabling ends every session at once.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn admin_update_user(
        &self,
        id: Uuid,
        edit: AccountEdit,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        let before = self.user_to_change(id, actor).await?;
        let mut problems = Vec::new();
        let username = edit.username.as_deref().and_then(|raw| {
            Username::parse(raw)
                .map_err(|invalid| {
                    problems.push(FieldProblem {
                        field: "username",
                        invalid,
                    })
                })
                .ok()
        });
        let email = edit.email.as_deref().and_then(|raw| {
            EmailAddress::parse(raw)
                .map_err(|invalid| {
                    problems.push(FieldProblem {
                        field: "email",
                        invalid,
                    })
                })
                .ok()
        });
        if !problems.is_empty() {
            return Err(AuthError::Invalid(problems));
        }
        let app_metadata = match &edit.app_metadata {
            Some(value) => Some(metadata_text("app_metadata", value)?),
            None => None,
        };
        let changes = UserChanges {
            username: username.map(|u| (u.as_str().to_owned(), u.normalized().to_owned())),
            email: email.map(|e| (e.as_str().to_owned(), e.normalized().to_owned())),
            // A new address is unverified unless the admin says otherwise.
            email_verified: edit
                .email_verified
                .or(edit.email.is_some().then_some(false)),
            disabled: edit.disabled,
            app_metadata,
            ..UserChanges::default()
        };
        match self.store.update_user(id, &changes, self.clock.now()).await {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::UserNotFound),
            Err(StoreError::Conflict) => {
                return Err(if changes.username.is_some() {
                    AuthError::UsernameTaken
                } else {
                    AuthError::EmailTaken
                });
            }
            Err(error) => return Err(error.into()),
        }
        if edit.disabled == Some(true) && !before.disabled {
            self.end_all_sessions(id, "user_disabled").await?;
            self.revoked.insert_user(id);
            self.audit_by(AuditEvent::UserDisabled, Some(id), actor, context)
                .await;
        } else if edit.disabled == Some(false) && before.disabled {
            self.audit_by(AuditEvent::UserEnabled, Some(id), actor, context)
                .await;
        }
        self.audit_by(AuditEvent::UserUpdated, Some(id), actor, context)
            .await;
        self.admin_user(id).await
    }

    async fn end_all_sessions(&self, user_id: Uuid, reason: &str) -> Result<(), AuthError> {
        self.store
            .revoke_user_sessions(user_id, None, reason, self.clock.now())
            .await?;
        self.sync_revocations().await
    }

    /// `PUT /admin/users/{id}/roles`: in tokens from the next refresh on.
    pub async fn set_roles(
        &self,
        id: Uuid,
        roles: Vec<String>,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        if roles.len() > 20 || roles.iter().any(|role| role.len() > 64) {
            return Err(invalid(
                "roles",
                "at most 20 roles of at most 64 characters",
            ));
        }
        self.check_roles(&roles).await?;
        let before = self.user_to_change(id, actor).await?;
        if roles.iter().any(|role| role == ADMIN_ROLE)
            && !before.roles.iter().any(|r| r == ADMIN_ROLE)
        {
            actor.require_full_access()?;
        }
        let changes = UserChanges {
            roles: Some(roles),
            ..UserChanges::default()
        };
        if !self
            .store
            .update_user(id, &changes, self.clock.now())
            .await?
        {
            return Err(AuthError::UserNotFound);
        }
        self.audit_by(AuditEvent::RolesChanged, Some(id), actor, context)
            .await;
        self.admin_user(id).await
    }

    pub async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<RoleRecord, AuthError> {
        let shaped = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'));
        if !shaped {
            return Err(invalid(
                "name",
                "must be 1 to 64 letters, digits or _-:. (no spaces)",
            ));
        }
        if name == ADMIN_ROLE {
            actor.require_full_access()?;
        }
        if description.is_some_and(|d| d.chars().count() > 256 || d.chars().any(char::is_control)) {
            return Err(invalid(
                "description",
                "must be at most 256 printable characters",
            ));
        }
        let role = self
            .store
            .insert_role(name, description, self.clock.now())
            .await
            .map_err(|error| match error {
                StoreError::Conflict => AuthError::RoleExists,
                other => other.into(),
            })?;
        self.audit_by(AuditEvent::RoleCreated, None, actor, context)
            .await;
        Ok(role)
    }

    pub async fn list_roles(&self) -> Result<Vec<RoleRecord>, AuthError> {
        Ok(self.store.list_roles().await?)
    }

    /// `DELETE /admin/users/{id}`.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn admin_delete_user(
        &self,
        id: Uuid,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        self.user_to_change(id, actor).await?;
        self.erase_account(id, &actor.describe(), context).await
    }

    /// Deletes the account and everything tied to it; its tokens stop here
    /// at once and on other instances at their next poll.
    async fn erase_account(
        &self,
        id: Uuid,
        outcome: &str,
        _context: &ClientContext,
    ) -> Result<(), AuthError> {
        let mut extra = serde_json::Map::new();
        extra.insert("outcome".to_owned(), serde_json::json!(outcome));
        let events = Outgoing {
            mail: self
                .webhook_events("user.deleted", Some(id), None, extra)
                .await?,
            ..Outgoing::default()
        };
        if !self
            .store
            .delete_user(id, outcome, &events, self.clock.now())
            .await?
        {
            return Err(AuthError::UserNotFound);
        }
        self.revoked.insert_user(id);
        if !events.is_empty() {
            self.mail_queued();
        }
        Ok(())
    }

    /// `DELETE /me`: with the password, or a current TOTP code.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn delete_own_account(
        &self,
        principal: &Principal,
        password: Option<&SecretString>,
        code: Option<&SecretString>,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let user = self.current_user(principal).await?;
        match (password, code) {
            (Some(password), None) => self.check_password(&user, password, context).await?,
            (None, Some(code)) => {
                if !self.check_current_totp(&user, code, context).await? {
                    return Err(AuthError::InvalidMfaCode);
                }
            }
            _ => return Err(invalid("password", "send exactly one of password and code")),
        }
        self.erase_account(user.id, "by the account holder", context)
            .await
    }

    /// `POST /admin/users/{id}/unlock`: every login lock on the account ends.
    pub async fn admin_unlock(
        &self,
        id: Uuid,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let user = self.user_to_change(id, actor).await?;
        self.throttle
            .unlock(&normalize_login_name(&user.username))
            .await;
        self.audit_by(AuditEvent::UserUnlocked, Some(id), actor, context)
            .await;
        Ok(())
    }

    /// `DELETE /admin/users/{id}/mfa`: every factor goes; sessions end.
    pub async fn admin_reset_factors(
        &self,
        id: Uuid,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<bool, AuthError> {
        let user = self.user_to_change(id, actor).await?;
        let removed = self.remove_every_factor(&user, &actor.describe()).await?;
        if removed {
            self.end_all_sessions(id, "factors_changed").await?;
            self.audit_by(AuditEvent::MfaDisabled, Some(id), actor, context)
                .await;
        }
        Ok(removed)
    }

    pub async fn admin_sessions(&self, id: Uuid) -> Result<Vec<LiveSession>, AuthError> {
        self.user_by_id(id).await?;
        let now = self.clock.now();
        let records = self
            .store
            .live_sessions(id, now, now - self.sessions.idle_timeout)
            .await?;
        Ok(records
            .into_iter()
            .map(|record| LiveSession::of(record, Uuid::nil()))
            .collect())
    }

    pub async fn admin_end_sessions(
        &self,
        id: Uuid,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        self.user_to_change(id, actor).await?;
        self.end_all_sessions(id, "ended_by_admin").await?;
        self.audit_by(AuditEvent::SessionsEnded, Some(id), actor, context)
            .await;
        Ok(())
    }

    /// `GET /admin/audit`: newest first.
    pub async fn admin_audit(
        &self,
        mut filter: AuditFilter,
        limit: Option<u64>,
        cursor: Option<&str>,
    ) -> Result<Page<AdminAuditEntry>, AuthError> {
        let limit = page_limit(limit);
        filter.before_id = cursor.map(parse_cursor).transpose()?;
        let rows = self.store.audit_page(&filter, limit).await?;
        let next_cursor = if rows.len() as u64 == limit {
            rows.last().map(|(id, _)| cursor_of(id))
        } else {
            None
        };
        Ok(Page {
            items: rows
                .into_iter()
                .map(|(id, record)| AdminAuditEntry {
                    id,
                    user_id: record.user_id,
                    entry: AuditEntry::from(record),
                })
                .collect(),
            next_cursor,
        })
    }

    /// `GET /me/security-events`: the caller's latest 100.
    pub async fn security_events(
        &self,
        principal: &Principal,
    ) -> Result<Vec<AuditEntry>, AuthError> {
        let user = self.current_user(principal).await?;
        Ok(self
            .store
            .audit_for_user(user.id, 100)
            .await?
            .into_iter()
            .map(AuditEntry::from)
            .collect())
    }

    /// Whether `value` may be stored as `user_metadata` (a JSON object of
    /// at most 4 KiB); checked before any part of `PATCH /me` is written.
    pub fn check_user_metadata(value: &serde_json::Value) -> Result<(), AuthError> {
        metadata_text("user_metadata", value).map(drop)
    }

    /// `PATCH /me` `{user_metadata}`.
    pub async fn set_user_metadata(
        &self,
        principal: &Principal,
        value: &serde_json::Value,
    ) -> Result<(), AuthError> {
        let text = metadata_text("user_metadata", value)?;
        let changes = UserChanges {
            user_metadata: Some(text),
            ..UserChanges::default()
        };
        self.store
            .update_user(principal.user_id, &changes, self.clock.now())
            .await?;
        Ok(())
    }

    /// `GET /me/export`: everything kept about the caller, without secrets.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn export_account(
        &self,
        principal: &Principal,
    ) -> Result<serde_json::Value, AuthError> {
        let user = self.current_user(principal).await?;
        let now = self.clock.now();
        let sessions = self
            .store
            .live_sessions(user.id, now, now - self.sessions.idle_timeout)
            .await?;
        let totp = self.store.totp_factor(user.id).await?;
        let passkeys = self.list_passkeys(principal).await?;
        let recovery_left = self.store.recovery_codes_left(user.id).await?;
        let events = self.store.audit_for_user(user.id, 1000).await?;
        let account = Account::from(user.clone());
        Ok(serde_json::json!({
            "exported_at": now,
            "account": {
                "id": account.id,
                "username": account.username,
                "email": account.email,
                "email_verified": account.email_verified,
                "locale": account.locale,
                "created_at": account.created_at,
                "updated_at": user.updated_at,
                "disabled": user.disabled,
                "roles": user.roles,
                "app_metadata": metadata_value(user.app_metadata.as_deref()),
                "user_metadata": metadata_value(user.user_metadata.as_deref()),
            },
            "sessions": sessions.iter().map(|session| serde_json::json!({
                "id": session.id,
                "created_at": session.created_at,
                "last_used_at": session.last_used_at,
                "expires_at": session.expires_at,
                "user_agent": session.user_agent,
                "ip": session.client_ip,
                "amr": session.amr,
            })).collect::<Vec<_>>(),
            "factors": {
                "totp": totp.as_ref().map(|factor| serde_json::json!({"confirmed": factor.confirmed})),
                "passkeys": passkeys.iter().map(|passkey| serde_json::json!({
                    "id": passkey.id,
                    "name": passkey.name,
                    "created_at": passkey.created_at,
                    "last_used_at": passkey.last_used_at,
                    "backup_eligible": passkey.backup_eligible,
                })).collect::<Vec<_>>(),
                "recovery_codes_left": recovery_left,
            },
            "audit_events": events.into_iter().map(|event| serde_json::json!({
                "at": event.at,
                "event": event.event,
                "outcome": event.outcome,
                "ip": event.client_ip,
                "user_agent": event.user_agent,
            })).collect::<Vec<_>>(),
        }))
    }
}
