//! Passkeys and WebAuthn ceremonies. A ceremony is taken (read and deleted)
//! once; a passkey's signature counter only moves forward, by a conditional
//! update, so a cloned authenticator or a replayed assertion cannot slip in
//! between two instances.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use uuid::Uuid;

use super::entities::{passkey, recovery_code, totp_factor, webauthn_ceremony};
use super::error::{classify_write, with_retry};
use super::{Store, StoreError};

/// A stored passkey: the credential as JSON (public key, counter, flags).
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub credential: String,
    pub sign_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<passkey::Model> for PasskeyRecord {
    fn from(row: passkey::Model) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            credential: row.credential,
            sign_count: row.sign_count,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// A new passkey.
pub struct NewPasskey<'a> {
    pub user_id: Uuid,
    pub credential_key: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub sign_count: i64,
}

/// A ceremony in progress: who started it, for what, and the library's state.
#[derive(Debug, Clone)]
pub struct CeremonyRecord {
    pub purpose: String,
    pub user_id: Option<Uuid>,
    pub mfa_token_hash: Option<String>,
    pub state: String,
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn passkeys_of(&self, user_id: Uuid) -> Result<Vec<PasskeyRecord>, StoreError> {
        Ok(passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user_id))
            .order_by_asc(passkey::Column::CreatedAt)
            .order_by_asc(passkey::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(PasskeyRecord::from)
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn passkey_count(&self, user_id: Uuid) -> Result<u64, StoreError> {
        Ok(passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user_id))
            .count(&self.db)
            .await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn passkey_by_key(
        &self,
        credential_key: &str,
    ) -> Result<Option<PasskeyRecord>, StoreError> {
        Ok(passkey::Entity::find()
            .filter(passkey::Column::CredentialKey.eq(credential_key))
            .one(&self.db)
            .await?
            .map(PasskeyRecord::from))
    }

    /// Stores a passkey; `Conflict` when its credential is already stored.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_passkey(
        &self,
        new: &NewPasskey<'_>,
        now: DateTime<Utc>,
    ) -> Result<PasskeyRecord, StoreError> {
        let row = passkey::Model {
            id: Uuid::now_v7(),
            user_id: new.user_id,
            credential_key: new.credential_key.to_owned(),
            name: new.name.to_owned(),
            credential: new.credential.to_owned(),
            sign_count: new.sign_count,
            created_at: now,
            last_used_at: None,
        };
        with_retry(|| async {
            passkey::Entity::insert(passkey::ActiveModel {
                id: Set(row.id),
                user_id: Set(row.user_id),
                credential_key: Set(row.credential_key.clone()),
                name: Set(row.name.clone()),
                credential: Set(row.credential.clone()),
                sign_count: Set(row.sign_count),
                created_at: Set(now),
                last_used_at: Set(None),
            })
            .exec_without_returning(&self.writer)
            .await
            .map_err(classify_write)?;
            Ok(())
        })
        .await?;
        Ok(PasskeyRecord::from(row))
    }

    /// Records a use: the new counter and credential, only if the counter
    /// moved forward (or both are zero: authenticators without a counter).
    /// `false` means another use got there first, or a clone.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn record_passkey_use(
        &self,
        id: Uuid,
        sign_count: i64,
        credential: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let mut update = passkey::Entity::update_many()
                .col_expr(passkey::Column::SignCount, Expr::value(sign_count))
                .col_expr(passkey::Column::Credential, Expr::value(credential))
                .col_expr(passkey::Column::LastUsedAt, Expr::value(Some(now)))
                .filter(passkey::Column::Id.eq(id));
            update = if sign_count == 0 {
                update.filter(passkey::Column::SignCount.eq(0))
            } else {
                update.filter(passkey::Column::SignCount.lt(sign_count))
            };
            Ok(update.exec(&self.writer).await?.rows_affected == 1)
        })
        .await
    }

    /// Renames one of the account's passkeys; `false` if it has no such one.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: &str,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let result = passkey::Entity::update_many()
                .col_expr(passkey::Column::Name, Expr::value(name))
                .filter(passkey::Column::Id.eq(id))
                .filter(passkey::Column::UserId.eq(user_id))
                .exec(&self.writer)
                .await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Deletes one of the account's passkeys; `false` if it has no such one.
    /// With it goes the last factor, the recovery codes go too.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn delete_passkey(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            let deleted = passkey::Entity::delete_many()
                .filter(passkey::Column::Id.eq(id))
                .filter(passkey::Column::UserId.eq(user_id))
                .exec(&transaction)
                .await?;
            if deleted.rows_affected != 1 {
                return Ok(false);
            }
            let passkeys = passkey::Entity::find()
                .filter(passkey::Column::UserId.eq(user_id))
                .count(&transaction)
                .await?;
            let totp = totp_factor::Entity::find()
                .filter(totp_factor::Column::UserId.eq(user_id))
                .filter(totp_factor::Column::ConfirmedAt.is_not_null())
                .count(&transaction)
                .await?;
            if passkeys == 0 && totp == 0 {
                recovery_code::Entity::delete_many()
                    .filter(recovery_code::Column::UserId.eq(user_id))
                    .exec(&transaction)
                    .await?;
            }
            transaction.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Deletes every passkey of the account; how many there were.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn delete_passkeys_of(&self, user_id: Uuid) -> Result<u64, StoreError> {
        with_retry(|| async {
            Ok(passkey::Entity::delete_many()
                .filter(passkey::Column::UserId.eq(user_id))
                .exec(&self.writer)
                .await?
                .rows_affected)
        })
        .await
    }

    /// Stores a ceremony under its challenge's hash, and drops ceremonies
    /// that expired an hour ago or more (so abandoned ones never pile up).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_ceremony(
        &self,
        challenge_hash: &str,
        ceremony: &CeremonyRecord,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            webauthn_ceremony::Entity::delete_many()
                .filter(webauthn_ceremony::Column::ExpiresAt.lt(now - chrono::Duration::hours(1)))
                .exec(&self.writer)
                .await?;
            webauthn_ceremony::Entity::insert(webauthn_ceremony::ActiveModel {
                challenge_hash: Set(challenge_hash.to_owned()),
                purpose: Set(ceremony.purpose.clone()),
                user_id: Set(ceremony.user_id),
                mfa_token_hash: Set(ceremony.mfa_token_hash.clone()),
                state: Set(ceremony.state.clone()),
                created_at: Set(now),
                expires_at: Set(expires_at),
            })
            .exec_without_returning(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// Takes the live ceremony with this challenge for `purpose`: it is
    /// deleted, so a second answer to the same challenge finds nothing.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn take_ceremony(
        &self,
        challenge_hash: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CeremonyRecord>, StoreError> {
        let Some(row) = webauthn_ceremony::Entity::find_by_id(challenge_hash.to_owned())
            .filter(webauthn_ceremony::Column::Purpose.eq(purpose))
            .filter(webauthn_ceremony::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let taken = with_retry(|| async {
            Ok(webauthn_ceremony::Entity::delete_many()
                .filter(webauthn_ceremony::Column::ChallengeHash.eq(challenge_hash))
                .exec(&self.writer)
                .await?
                .rows_affected
                == 1)
        })
        .await?;
        Ok(taken.then_some(CeremonyRecord {
            purpose: row.purpose,
            user_id: row.user_id,
            mfa_token_hash: row.mfa_token_hash,
            state: row.state,
        }))
    }
}
