//! Queries on the `users` table.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{SecretColumn, session, user};
use super::error::{classify_write, with_retry};
use super::outbox::{Outgoing, write_outgoing};
use super::{Store, StoreError};

/// A user as stored. Holds the password hash, so it has no revealing `Debug`.
#[derive(Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Sessions opened with an older version belong to a changed credential.
    pub credential_version: i64,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub locale: Option<String>,
    /// Role names the account holds.
    pub roles: Vec<String>,
    /// JSON objects (text); `None` when never set.
    pub app_metadata: Option<String>,
    pub user_metadata: Option<String>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl From<user::Model> for UserRecord {
    fn from(row: user::Model) -> Self {
        Self {
            id: row.id,
            username: row.username,
            email: row.email,
            password_hash: row.password_hash.0,
            disabled: row.disabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
            credential_version: row.credential_version,
            email_verified_at: row.email_verified_at,
            locale: row.locale,
            roles: row
                .roles
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default(),
            app_metadata: row.app_metadata,
            user_metadata: row.user_metadata,
        }
    }
}

/// What a new account row is made of; the caller has parsed every field.
pub struct NewUser<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub username_normalized: &'a str,
    pub email: &'a str,
    pub email_normalized: &'a str,
    pub password_hash: &'a str,
    pub locale: Option<&'a str>,
    pub now: DateTime<Utc>,
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn username_taken(&self, normalized: &str) -> Result<bool, StoreError> {
        self.any_user_where(user::Column::UsernameNormalized, normalized)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn email_taken(&self, normalized: &str) -> Result<bool, StoreError> {
        self.any_user_where(user::Column::EmailNormalized, normalized)
            .await
    }

    async fn any_user_where(&self, column: user::Column, value: &str) -> Result<bool, StoreError> {
        let found = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(column.eq(value))
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await?;
        Ok(found.is_some())
    }

    /// Inserts a user, and what the registration queues (its verification
    /// message) in the same transaction; a taken username or email comes
    /// back as [`StoreError::Conflict`].
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_user(
        &self,
        new: NewUser<'_>,
        outgoing: &Outgoing,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            let row = user::ActiveModel {
                id: Set(new.id),
                username: Set(new.username.to_owned()),
                username_normalized: Set(new.username_normalized.to_owned()),
                email: Set(new.email.to_owned()),
                email_normalized: Set(new.email_normalized.to_owned()),
                password_hash: Set(SecretColumn(new.password_hash.to_owned())),
                disabled: Set(false),
                created_at: Set(new.now),
                updated_at: Set(new.now),
                credential_version: Set(0),
                email_verified_at: Set(None),
                locale: Set(new.locale.map(str::to_owned)),
                roles: Set(None),
                app_metadata: Set(None),
                user_metadata: Set(None),
            };
            if outgoing.is_empty() {
                user::Entity::insert(row)
                    .exec_without_returning(&self.writer)
                    .await
                    .map_err(classify_write)?;
                return Ok(());
            }
            let transaction = self.writer.begin().await?;
            user::Entity::insert(row)
                .exec_without_returning(&transaction)
                .await
                .map_err(classify_write)?;
            write_outgoing(&transaction, outgoing, new.now).await?;
            transaction.commit().await?;
            Ok(())
        })
        .await
    }

    /// Finds the account a login name designates: its username or its email, both normalized.
    ///
    /// No stored key ends in a space (usernames and emails cannot), and
    /// MariaDB's PAD SPACE collations would match `'alice '` to `'alice'`
    /// where PostgreSQL and SQLite do not: such names find nothing anywhere.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_user_by_login(
        &self,
        normalized: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        if normalized.ends_with(' ') {
            return Ok(None);
        }
        let row = user::Entity::find()
            .filter(
                Condition::any()
                    .add(user::Column::UsernameNormalized.eq(normalized))
                    .add(user::Column::EmailNormalized.eq(normalized)),
            )
            .one(&self.db)
            .await?;
        Ok(row.map(UserRecord::from))
    }

    /// The account with this normalized email address (never a username).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_user_by_email(
        &self,
        normalized: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        if normalized.ends_with(' ') {
            return Ok(None);
        }
        let row = user::Entity::find()
            .filter(user::Column::EmailNormalized.eq(normalized))
            .one(&self.db)
            .await?;
        Ok(row.map(UserRecord::from))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        let row = user::Entity::find_by_id(id).one(&self.db).await?;
        Ok(row.map(UserRecord::from))
    }

    /// Replaces a password hash, but only if it is still `expected`, so a
    /// rehash at login never overwrites a password changed in the meantime.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn replace_password_hash(
        &self,
        id: Uuid,
        expected: &str,
        replacement: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let result = user::Entity::update_many()
                .col_expr(user::Column::PasswordHash, replacement.into())
                .col_expr(user::Column::UpdatedAt, now.into())
                .filter(user::Column::Id.eq(id))
                .filter(user::Column::PasswordHash.eq(expected))
                .exec(&self.writer)
                .await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Sets a new password hash unconditionally (a password change) and
    /// raises the credential version, which ends the old sessions' right to
    /// refresh and stops logins with the old password still in flight. The
    /// session the change was made from (`keep`) moves to the new version in
    /// the same transaction, so it alone lives on.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn set_password_hash(
        &self,
        id: Uuid,
        hash: &str,
        now: DateTime<Utc>,
        keep: Option<Uuid>,
        outgoing: &Outgoing,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            user::Entity::update_many()
                .col_expr(user::Column::PasswordHash, hash.into())
                .col_expr(user::Column::UpdatedAt, now.into())
                .filter(user::Column::Id.eq(id))
                .exec(&transaction)
                .await?;
            raise_credential_version(&transaction, id, keep, now).await?;
            write_outgoing(&transaction, outgoing, now).await?;
            transaction.commit().await?;
            Ok(())
        })
        .await
    }

    /// Enables or disables the account a login name designates; returns its id if found.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn set_disabled(
        &self,
        normalized: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>, StoreError> {
        let Some(user) = self.find_user_by_login(normalized).await? else {
            return Ok(None);
        };
        let mut update = user::Entity::update_many()
            .col_expr(user::Column::Disabled, disabled.into())
            .col_expr(user::Column::UpdatedAt, now.into());
        if disabled {
            update = update.col_expr(user::Column::CredentialVersion, raised_version());
        }
        update
            .filter(user::Column::Id.eq(user.id))
            .exec(&self.writer)
            .await?;
        Ok(Some(user.id))
    }

    /// Sets or clears the language the account's messages are written in.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn set_locale(
        &self,
        id: Uuid,
        locale: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            user::Entity::update_many()
                .col_expr(user::Column::Locale, locale.map(str::to_owned).into())
                .col_expr(user::Column::UpdatedAt, now.into())
                .filter(user::Column::Id.eq(id))
                .exec(&self.writer)
                .await?;
            Ok(())
        })
        .await
    }

    /// Users in creation order, for the CLI.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn list_users(&self, limit: u64) -> Result<Vec<UserRecord>, StoreError> {
        let rows = user::Entity::find()
            .order_by_asc(user::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(UserRecord::from).collect())
    }

    /// Ids of disabled accounts, for the in-memory revocation check.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn disabled_user_ids(&self) -> Result<std::collections::HashSet<Uuid>, StoreError> {
        let ids = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Disabled.eq(true))
            .into_tuple::<Uuid>()
            .all(&self.db)
            .await?;
        Ok(ids.into_iter().collect())
    }
}

/// Raises the account's credential version, ending every session opened
/// with the old one; the session `keep` moves to the new version.
pub(super) async fn raise_credential_version<C: ConnectionTrait>(
    connection: &C,
    id: Uuid,
    keep: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    user::Entity::update_many()
        .col_expr(user::Column::CredentialVersion, raised_version())
        .col_expr(user::Column::UpdatedAt, now.into())
        .filter(user::Column::Id.eq(id))
        .exec(connection)
        .await?;
    if let Some(session_id) = keep {
        let version: Option<i64> = user::Entity::find_by_id(id)
            .select_only()
            .column(user::Column::CredentialVersion)
            .into_tuple()
            .one(connection)
            .await?;
        session::Entity::update_many()
            .col_expr(
                session::Column::CredentialVersion,
                version.unwrap_or(0).into(),
            )
            .filter(session::Column::Id.eq(session_id))
            .filter(session::Column::UserId.eq(id))
            .exec(connection)
            .await?;
    }
    Ok(())
}

/// `credential_version + 1`.
pub(super) fn raised_version() -> sea_orm::sea_query::Expr {
    use sea_orm::sea_query::ExprTrait;
    sea_orm::sea_query::Expr::col(user::Column::CredentialVersion).add(1)
}
