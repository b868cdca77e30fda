//! Second factors: the TOTP secret (sealed by the caller), recovery codes
//! (hashed), login challenges waiting for a second factor, and the
//! instance's generated secrets. Each use is a conditional update, so a code,
//! a time step or a challenge is accepted once however requests race.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{SecretColumn, instance_secret, mfa_challenge, recovery_code, totp_factor};
use super::error::{classify_write, with_retry};
use super::{Store, StoreError};

/// An account's TOTP factor; the secret as sealed, never in the clear.
#[derive(Clone)]
pub struct TotpRecord {
    pub sealed_secret: String,
    pub last_used_step: i64,
    pub confirmed: bool,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TotpRecord")
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

/// A login waiting for its second factor.
#[derive(Clone)]
pub struct ChallengeRecord {
    pub token_hash: String,
    pub user_id: Uuid,
    pub credential_version: i64,
    pub first_factor: String,
    pub attempts: i32,
}

impl std::fmt::Debug for ChallengeRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChallengeRecord")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn totp_factor(&self, user_id: Uuid) -> Result<Option<TotpRecord>, StoreError> {
        let row = totp_factor::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?;
        Ok(row.map(|row| TotpRecord {
            sealed_secret: row.secret.0,
            last_used_step: row.last_used_step,
            confirmed: row.confirmed_at.is_some(),
        }))
    }

    /// Stores a new, unconfirmed TOTP secret, replacing an unconfirmed one;
    /// `false` when a confirmed one exists.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn put_pending_totp(
        &self,
        user_id: Uuid,
        sealed_secret: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            totp_factor::Entity::delete_many()
                .filter(totp_factor::Column::UserId.eq(user_id))
                .filter(totp_factor::Column::ConfirmedAt.is_null())
                .exec(&transaction)
                .await?;
            let inserted = totp_factor::Entity::insert(totp_factor::ActiveModel {
                user_id: Set(user_id),
                secret: Set(SecretColumn(sealed_secret.to_owned())),
                last_used_step: Set(0),
                created_at: Set(now),
                confirmed_at: Set(None),
            })
            .exec_without_returning(&transaction)
            .await
            .map_err(classify_write);
            match inserted {
                Ok(_) => {
                    transaction.commit().await?;
                    Ok(true)
                }
                // A confirmed factor holds the row.
                Err(StoreError::Conflict) => Ok(false),
                Err(error) => Err(error),
            }
        })
        .await
    }

    /// Accepts a TOTP code's time step once: raises `last_used_step` only
    /// past the last accepted one. With `confirm`, the factor must be
    /// pending and becomes active, with these recovery codes (replacing any).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn accept_totp_step(
        &self,
        user_id: Uuid,
        step: i64,
        confirm: Option<(&[String], DateTime<Utc>)>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            let mut update = totp_factor::Entity::update_many()
                .col_expr(totp_factor::Column::LastUsedStep, step.into())
                .filter(totp_factor::Column::UserId.eq(user_id))
                .filter(totp_factor::Column::LastUsedStep.lt(step));
            update = match confirm {
                Some((_, now)) => update
                    .col_expr(totp_factor::Column::ConfirmedAt, Some(now).into())
                    .filter(totp_factor::Column::ConfirmedAt.is_null()),
                None => update.filter(totp_factor::Column::ConfirmedAt.is_not_null()),
            };
            if update.exec(&transaction).await?.rows_affected != 1 {
                return Ok(false);
            }
            if let Some((codes, now)) = confirm {
                write_recovery_codes(&transaction, user_id, codes, now).await?;
            }
            transaction.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Replaces the account's recovery codes.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            write_recovery_codes(&transaction, user_id, code_hashes, now).await?;
            transaction.commit().await?;
            Ok(())
        })
        .await
    }

    /// Spends a recovery code of this account; `false` if unknown or used.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let result = recovery_code::Entity::update_many()
                .col_expr(recovery_code::Column::UsedAt, Some(now).into())
                .filter(recovery_code::Column::CodeHash.eq(code_hash))
                .filter(recovery_code::Column::UserId.eq(user_id))
                .filter(recovery_code::Column::UsedAt.is_null())
                .exec(&self.writer)
                .await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Unused recovery codes left.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn recovery_codes_left(&self, user_id: Uuid) -> Result<u64, StoreError> {
        Ok(recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::UsedAt.is_null())
            .count(&self.db)
            .await?)
    }

    /// Removes the account's TOTP factor, and its recovery codes unless a
    /// passkey remains for them to back up.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn remove_totp(&self, user_id: Uuid) -> Result<(), StoreError> {
        use super::entities::passkey;
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            totp_factor::Entity::delete_many()
                .filter(totp_factor::Column::UserId.eq(user_id))
                .exec(&transaction)
                .await?;
            let passkeys = passkey::Entity::find()
                .filter(passkey::Column::UserId.eq(user_id))
                .count(&transaction)
                .await?;
            if passkeys == 0 {
                recovery_code::Entity::delete_many()
                    .filter(recovery_code::Column::UserId.eq(user_id))
                    .exec(&transaction)
                    .await?;
            }
            transaction.commit().await?;
            Ok(())
        })
        .await
    }

    /// Removes TOTP and the recovery codes of the account.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn remove_factors(&self, user_id: Uuid) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            let totp = totp_factor::Entity::delete_many()
                .filter(totp_factor::Column::UserId.eq(user_id))
                .exec(&transaction)
                .await?;
            let codes = recovery_code::Entity::delete_many()
                .filter(recovery_code::Column::UserId.eq(user_id))
                .exec(&transaction)
                .await?;
            transaction.commit().await?;
            Ok(totp.rows_affected + codes.rows_affected > 0)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_mfa_challenge(
        &self,
        token_hash: &str,
        user_id: Uuid,
        credential_version: i64,
        first_factor: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            // Challenges an hour past their expiry are only clutter.
            mfa_challenge::Entity::delete_many()
                .filter(mfa_challenge::Column::ExpiresAt.lt(now - chrono::Duration::hours(1)))
                .exec(&self.writer)
                .await?;
            mfa_challenge::Entity::insert(mfa_challenge::ActiveModel {
                token_hash: Set(token_hash.to_owned()),
                user_id: Set(user_id),
                credential_version: Set(credential_version),
                first_factor: Set(first_factor.to_owned()),
                attempts: Set(0),
                created_at: Set(now),
                expires_at: Set(expires_at),
                used_at: Set(None),
            })
            .exec_without_returning(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// The live challenge with this hash.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_mfa_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        let row = mfa_challenge::Entity::find_by_id(token_hash.to_owned())
            .filter(mfa_challenge::Column::UsedAt.is_null())
            .filter(mfa_challenge::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?;
        Ok(row.map(|row| ChallengeRecord {
            token_hash: row.token_hash,
            user_id: row.user_id,
            credential_version: row.credential_version,
            first_factor: row.first_factor,
            attempts: row.attempts,
        }))
    }

    /// Counts one try against a challenge; `false` once it has none left.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn count_mfa_try(
        &self,
        token_hash: &str,
        max_tries: i32,
    ) -> Result<bool, StoreError> {
        use sea_orm::sea_query::{Expr, ExprTrait};
        with_retry(|| async {
            let result = mfa_challenge::Entity::update_many()
                .col_expr(
                    mfa_challenge::Column::Attempts,
                    Expr::col(mfa_challenge::Column::Attempts).add(1),
                )
                .filter(mfa_challenge::Column::TokenHash.eq(token_hash))
                .filter(mfa_challenge::Column::UsedAt.is_null())
                .filter(mfa_challenge::Column::Attempts.lt(max_tries))
                .exec(&self.writer)
                .await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Spends a challenge; `false` if another request did first.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn spend_mfa_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let result = mfa_challenge::Entity::update_many()
                .col_expr(mfa_challenge::Column::UsedAt, Some(now).into())
                .filter(mfa_challenge::Column::TokenHash.eq(token_hash))
                .filter(mfa_challenge::Column::UsedAt.is_null())
                .exec(&self.writer)
                .await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// The instance secret `name`, created with `generate` if absent; when
    /// two instances start together, both end up with the first one stored.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn instance_secret(
        &self,
        name: &str,
        generate: impl Fn() -> String,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        if let Some(row) = instance_secret::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
        {
            return Ok(row.value.0);
        }
        let inserted = instance_secret::Entity::insert(instance_secret::ActiveModel {
            name: Set(name.to_owned()),
            value: Set(SecretColumn(generate())),
            created_at: Set(now),
        })
        .exec_without_returning(&self.writer)
        .await
        .map_err(classify_write);
        match inserted {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(error) => return Err(error),
        }
        instance_secret::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .map(|row| row.value.0)
            .ok_or_else(|| StoreError::Corrupt(format!("instance secret {name} vanished")))
    }
}

async fn write_recovery_codes(
    transaction: &sea_orm::DatabaseTransaction,
    user_id: Uuid,
    code_hashes: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(transaction)
        .await?;
    for hash in code_hashes {
        recovery_code::Entity::insert(recovery_code::ActiveModel {
            code_hash: Set(hash.clone()),
            user_id: Set(user_id),
            created_at: Set(now),
            used_at: Set(None),
        })
        .exec_without_returning(transaction)
        .await?;
    }
    Ok(())
}
