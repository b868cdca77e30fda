//! The admin API's persistence: API keys, roles, account edits and
//! deletion, and pages of users and audit events ordered by an immutable key
//! (the id), so a cursor never skips or repeats a row that existed when
//! paging started, whatever is inserted meanwhile.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use super::AuditRecord;
use super::audit::insert_audit_row;
use super::entities::{api_key, audit_event, deleted_user, role, user};
use super::error::{classify_write, with_retry};
use super::outbox::{Outgoing, write_outgoing};
use super::users::raised_version;
use super::{Store, StoreError, UserRecord};

/// An API key as stored (its hash only).
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_key::Model> for ApiKeyRecord {
    fn from(row: api_key::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RoleRecord {
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which users a page holds.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    /// A prefix of the normalized username or email.
    pub prefix: Option<String>,
    pub disabled: Option<bool>,
    pub email_verified: Option<bool>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Only ids after this one.
    pub after: Option<Uuid>,
}

/// Which audit events a page holds (newest first).
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub user_id: Option<Uuid>,
    pub event: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only events older than this id.
    pub before_id: Option<i64>,
}

/// An admin's edit of an account; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct UserChanges {
    pub username: Option<(String, String)>,
    pub email: Option<(String, String)>,
    pub email_verified: Option<bool>,
    pub disabled: Option<bool>,
    pub app_metadata: Option<Option<String>>,
    pub user_metadata: Option<Option<String>>,
    pub roles: Option<Vec<String>>,
}

/// `LIKE` pattern for a prefix, with the wildcards in it escaped.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_api_key(
        &self,
        name: &str,
        key_hash: &str,
        scopes: &[String],
        now: DateTime<Utc>,
    ) -> Result<ApiKeyRecord, StoreError> {
        let row = api_key::Model {
            id: Uuid::now_v7(),
            name: name.to_owned(),
            key_hash: key_hash.to_owned(),
            scopes: scopes.join(" "),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        api_key::Entity::insert(api_key::ActiveModel::from(row.clone()))
            .exec_without_returning(&self.writer)
            .await?;
        Ok(ApiKeyRecord::from(row))
    }

    /// The live key with this hash, marked as used now.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn use_api_key(
        &self,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let Some(row) = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(key_hash))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(Some(now)))
            .filter(api_key::Column::Id.eq(row.id))
            .exec(&self.writer)
            .await?;
        Ok(Some(ApiKeyRecord {
            last_used_at: Some(now),
            ..ApiKeyRecord::from(row)
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(api_key::Entity::find()
            .order_by_asc(api_key::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(ApiKeyRecord::from)
            .collect())
    }

    /// Revokes a key; `false` if there is no such live key.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn revoke_api_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(Some(now)))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.writer)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Creates a role; `Conflict` when the name is taken.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_role(
        &self,
        name: &str,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RoleRecord, StoreError> {
        role::Entity::insert(role::ActiveModel {
            name: Set(name.to_owned()),
            description: Set(description.map(str::to_owned)),
            created_at: Set(now),
        })
        .exec_without_returning(&self.writer)
        .await
        .map_err(classify_write)?;
        Ok(RoleRecord {
            name: name.to_owned(),
            description: description.map(str::to_owned),
            created_at: now,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn list_roles(&self) -> Result<Vec<RoleRecord>, StoreError> {
        Ok(role::Entity::find()
            .order_by_asc(role::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| RoleRecord {
                name: row.name,
                description: row.description,
                created_at: row.created_at,
            })
            .collect())
    }

    /// The names among `names` that are not roles.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn unknown_roles(&self, names: &[String]) -> Result<Vec<String>, StoreError> {
        let known: HashSet<String> = role::Entity::find()
            .filter(role::Column::Name.is_in(names.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| row.name)
            .collect();
        Ok(names
            .iter()
            .filter(|name| !known.contains(*name))
            .cloned()
            .collect())
    }

    /// A page of users in id order.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn user_page(
        &self,
        filter: &UserFilter,
        limit: u64,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let mut query = user::Entity::find();
        if let Some(prefix) = &filter.prefix {
            let pattern = prefix_pattern(prefix);
            query = query.filter(
                Condition::any()
                    .add(
                        Expr::col(user::Column::UsernameNormalized)
                            .like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\')),
                    )
                    .add(
                        Expr::col(user::Column::EmailNormalized)
                            .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
                    ),
            );
        }
        if let Some(disabled) = filter.disabled {
            query = query.filter(user::Column::Disabled.eq(disabled));
        }
        match filter.email_verified {
            Some(true) => query = query.filter(user::Column::EmailVerifiedAt.is_not_null()),
            Some(false) => query = query.filter(user::Column::EmailVerifiedAt.is_null()),
            None => {}
        }
        if let Some(after) = filter.created_after {
            query = query.filter(user::Column::CreatedAt.gt(after));
        }
        if let Some(before) = filter.created_before {
            query = query.filter(user::Column::CreatedAt.lt(before));
        }
        if let Some(after) = filter.after {
            query = query.filter(user::Column::Id.gt(after));
        }
        Ok(query
            .order_by_asc(user::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(UserRecord::from)
            .collect())
    }

    /// Applies an admin's edit in one statement; disabling raises the
    /// credential version, so refresh tokens of the old state stop. `Conflict` when the new username or email is taken;
    /// `false` when there is no such account.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn update_user(
        &self,
        id: Uuid,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let mut update = user::Entity::update_many()
                .col_expr(user::Column::UpdatedAt, Expr::value(now))
                .filter(user::Column::Id.eq(id));
            if let Some((name, normalized)) = &changes.username {
                update = update
                    .col_expr(user::Column::Username, Expr::value(name.clone()))
                    .col_expr(
                        user::Column::UsernameNormalized,
                        Expr::value(normalized.clone()),
                    );
            }
            if let Some((email, normalized)) = &changes.email {
                update = update
                    .col_expr(user::Column::Email, Expr::value(email.clone()))
                    .col_expr(
                        user::Column::EmailNormalized,
                        Expr::value(normalized.clone()),
                    );
            }
            if let Some(verified) = changes.email_verified {
                update = update.col_expr(
                    user::Column::EmailVerifiedAt,
                    Expr::value(verified.then_some(now)),
                );
            }
            if let Some(disabled) = changes.disabled {
                update = update.col_expr(user::Column::Disabled, Expr::value(disabled));
                if disabled {
                    update = update.col_expr(user::Column::CredentialVersion, raised_version());
                }
            }
            if let Some(metadata) = &changes.app_metadata {
                update = update.col_expr(user::Column::AppMetadata, Expr::value(metadata.clone()));
            }
            if let Some(metadata) = &changes.user_metadata {
                update = update.col_expr(user::Column::UserMetadata, Expr::value(metadata.clone()));
            }
            if let Some(roles) = &changes.roles {
                let text = serde_json::to_string(roles).unwrap_or_else(|_| "[]".to_owned());
                update = update.col_expr(user::Column::Roles, Expr::value(text));
            }
            let result = update.exec(&self.writer).await.map_err(classify_write)?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Deletes an account and everything tied to it (sessions, tokens,
    /// factors: by cascade), its audit trail (personal data: addresses and
    /// user agents), and leaves its id in `deleted_users` and one audit
    /// tombstone without personal data. `false` when there is no such account.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn delete_user(
        &self,
        id: Uuid,
        tombstone_outcome: &str,
        outgoing: &Outgoing,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            let deleted = user::Entity::delete_many()
                .filter(user::Column::Id.eq(id))
                .exec(&transaction)
                .await?;
            if deleted.rows_affected != 1 {
                return Ok(false);
            }
            audit_event::Entity::delete_many()
                .filter(audit_event::Column::UserId.eq(id))
                .exec(&transaction)
                .await?;
            let tombstone = AuditRecord {
                at: now,
                event: "user_deleted".to_owned(),
                user_id: Some(id),
                client_ip: None,
                user_agent: None,
                outcome: tombstone_outcome.chars().take(64).collect(),
            };
            insert_audit_row(&transaction, &tombstone).await?;
            deleted_user::Entity::insert(deleted_user::ActiveModel {
                user_id: Set(id),
                deleted_at: Set(now),
            })
            .exec_without_returning(&transaction)
            .await?;
            write_outgoing(&transaction, outgoing, now).await?;
            transaction.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Accounts deleted after `since`: their tokens may still be alive.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn deleted_since(&self, since: DateTime<Utc>) -> Result<HashSet<Uuid>, StoreError> {
        Ok(deleted_user::Entity::find()
            .filter(deleted_user::Column::DeletedAt.gt(since))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| row.user_id)
            .collect())
    }

    /// A page of audit events, newest first.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        limit: u64,
    ) -> Result<Vec<(i64, AuditRecord)>, StoreError> {
        let mut query = audit_event::Entity::find();
        if let Some(user_id) = filter.user_id {
            query = query.filter(audit_event::Column::UserId.eq(user_id));
        }
        if let Some(event) = &filter.event {
            query = query.filter(audit_event::Column::Event.eq(event.clone()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_event::Column::At.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_event::Column::At.lt(until));
        }
        if let Some(before) = filter.before_id {
            query = query.filter(audit_event::Column::Id.lt(before));
        }
        Ok(query
            .order_by_desc(audit_event::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.id, AuditRecord::from(row)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_pattern;

    #[test]
    fn prefixes_match_literally() {
        assert_eq!(prefix_pattern("al"), "al%");
        assert_eq!(prefix_pattern("a_%\\"), "a\\_\\%\\\\%");
    }
}
