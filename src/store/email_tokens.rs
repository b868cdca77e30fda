//! Tokens sent by email, and the changes that spend them. Each spend marks
//! its token used only if nobody did first (`used_at IS NULL`), in the same
//! transaction as the change it makes, so a token works once and a change
//! is never half-made.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use uuid::Uuid;

use super::entities::{SecretColumn, email_token, session, user};
use super::error::{classify_write, with_retry};
use super::outbox::{Outgoing, write_outgoing};
use super::sessions::revoke_where;
use super::users::raise_credential_version;
use super::{Store, StoreError};

/// A live token as stored (its hash, never the token).
#[derive(Clone)]
pub struct EmailTokenRecord {
    pub token_hash: String,
    pub user_id: Uuid,
    pub purpose: String,
    pub email_normalized: String,
    pub new_email: Option<String>,
    pub session_id: Option<Uuid>,
    pub code_hash: Option<String>,
    pub attempts: i32,
    pub credential_version: i64,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for EmailTokenRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hashes let a reader test guesses (a code has six digits): never shown.
        formatter
            .debug_struct("EmailTokenRecord")
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl From<email_token::Model> for EmailTokenRecord {
    fn from(row: email_token::Model) -> Self {
        Self {
            token_hash: row.token_hash,
            user_id: row.user_id,
            purpose: row.purpose,
            email_normalized: row.email_normalized,
            new_email: row.new_email,
            session_id: row.session_id,
            code_hash: row.code_hash,
            attempts: row.attempts,
            credential_version: row.credential_version,
            expires_at: row.expires_at,
        }
    }
}

/// A new address for an account, confirmed by its token.
pub struct EmailSwitch<'a> {
    pub email: &'a str,
    pub email_normalized: &'a str,
    /// The session that asked; the others end.
    pub keep: Option<Uuid>,
}

impl Store {
    /// The unused, unexpired token with this hash and purpose.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_email_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<EmailTokenRecord>, StoreError> {
        let row = email_token::Entity::find_by_id(token_hash.to_owned())
            .filter(email_token::Column::Purpose.eq(purpose))
            .filter(email_token::Column::UsedAt.is_null())
            .filter(email_token::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?;
        Ok(row.map(EmailTokenRecord::from))
    }

    /// The newest live token of this purpose sent to this address.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_token_for_address(
        &self,
        email_normalized: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<EmailTokenRecord>, StoreError> {
        let row = email_token::Entity::find()
            .filter(email_token::Column::EmailNormalized.eq(email_normalized))
            .filter(email_token::Column::Purpose.eq(purpose))
            .filter(email_token::Column::UsedAt.is_null())
            .filter(email_token::Column::ExpiresAt.gt(now))
            .order_by_desc(email_token::Column::CreatedAt)
            .one(&self.db)
            .await?;
        Ok(row.map(EmailTokenRecord::from))
    }

    /// Counts one try of a code against its token; `false` when the token
    /// has no tries left or is spent. After `max_tries` tries it is dead,
    /// whatever the codes were, link included. An unknown hash runs the same
    /// statement and counts nothing.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn count_code_try(
        &self,
        token_hash: &str,
        max_tries: i32,
    ) -> Result<bool, StoreError> {
        use sea_orm::sea_query::{Expr, ExprTrait};
        with_retry(|| async {
            let counted = email_token::Entity::update_many()
                .col_expr(
                    email_token::Column::Attempts,
                    Expr::col(email_token::Column::Attempts).add(1),
                )
                .filter(email_token::Column::TokenHash.eq(token_hash))
                .filter(email_token::Column::UsedAt.is_null())
                .filter(email_token::Column::Attempts.lt(max_tries))
                .exec(&self.writer)
                .await?;
            Ok(counted.rows_affected == 1)
        })
        .await
    }

    /// Spends a sign-in token; `false` if it was already spent, or the
    /// account's credential or address changed since it was sent. Marks the
    /// address verified, since the message reached it.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn spend_sign_in_token(
        &self,
        token: &EmailTokenRecord,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            if !spend(&transaction, &token.token_hash, now).await?
                || !unchanged_since(&transaction, token).await?
            {
                return Ok(false);
            }
            mark_verified(&transaction, token.user_id, now).await?;
            transaction.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Purges tokens that expired a day ago or more.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn purge_email_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = email_token::Entity::delete_many()
            .filter(email_token::Column::ExpiresAt.lt(now - chrono::TimeDelta::days(1)))
            .exec(&self.writer)
            .await?;
        Ok(result.rows_affected)
    }

    /// Spends a verification token and marks the address verified, if the
    /// account still has the address the token was sent to.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify_email(
        &self,
        token: &EmailTokenRecord,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            if !spend(&transaction, &token.token_hash, now).await? {
                return Ok(false);
            }
            let still_the_address = user::Entity::find_by_id(token.user_id)
                .filter(user::Column::EmailNormalized.eq(&token.email_normalized))
                .one(&transaction)
                .await?
                .is_some();
            if !still_the_address {
                return Ok(false);
            }
            mark_verified(&transaction, token.user_id, now).await?;
            transaction.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Spends a reset token and sets the new password hash, if the account's
    /// credential has not changed since the token was made. Raises the
    /// credential version (so every other emailed token and every session
    /// dies), ends every session, marks the address verified and queues
    /// `outgoing`: all or nothing.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn reset_password(
        &self,
        token: &EmailTokenRecord,
        password_hash: &str,
        outgoing: &Outgoing,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            if !spend(&transaction, &token.token_hash, now).await? {
                return Ok(false);
            }
            let updated = user::Entity::update_many()
                .col_expr(
                    user::Column::PasswordHash,
                    SecretColumn(password_hash.to_owned()).into(),
                )
                .col_expr(user::Column::UpdatedAt, now.into())
                .filter(user::Column::Id.eq(token.user_id))
                .filter(user::Column::CredentialVersion.eq(token.credential_version))
                .exec(&transaction)
                .await?;
            if updated.rows_affected != 1 {
                return Ok(false);
            }
            raise_credential_version(&transaction, token.user_id, None, now).await?;
            revoke_where(
                &transaction,
                session::Column::UserId.eq(token.user_id),
                "password_reset",
                now,
            )
            .await?;
            mark_verified(&transaction, token.user_id, now).await?;
            write_outgoing(&transaction, outgoing, now).await?;
            transaction.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Spends an email-change token and switches the address, if the account
    /// still has the address and the credential the change was asked with
    /// (a password reset since kills it). Ends the other sessions. A taken
    /// address comes back as [`StoreError::Conflict`], with nothing changed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn switch_email(
        &self,
        token: &EmailTokenRecord,
        switch: &EmailSwitch<'_>,
        outgoing: &Outgoing,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            if !spend(&transaction, &token.token_hash, now).await? {
                return Ok(false);
            }
            let updated = user::Entity::update_many()
                .col_expr(user::Column::Email, switch.email.into())
                .col_expr(
                    user::Column::EmailNormalized,
                    switch.email_normalized.into(),
                )
                .col_expr(user::Column::EmailVerifiedAt, Some(now).into())
                .col_expr(user::Column::UpdatedAt, now.into())
                .filter(user::Column::Id.eq(token.user_id))
                .filter(user::Column::EmailNormalized.eq(&token.email_normalized))
                .filter(user::Column::CredentialVersion.eq(token.credential_version))
                .exec(&transaction)
                .await
                .map_err(classify_write)?;
            if updated.rows_affected != 1 {
                return Ok(false);
            }
            raise_credential_version(&transaction, token.user_id, switch.keep, now).await?;
            let mut others =
                sea_orm::Condition::all().add(session::Column::UserId.eq(token.user_id));
            if let Some(keep) = switch.keep {
                others = others.add(session::Column::Id.ne(keep));
            }
            revoke_where(&transaction, others, "email_changed", now).await?;
            write_outgoing(&transaction, outgoing, now).await?;
            transaction.commit().await?;
            Ok(true)
        })
        .await
    }
}

/// Marks a token used unless it already was; `true` if this call spent it.
async fn spend(
    transaction: &DatabaseTransaction,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = email_token::Entity::update_many()
        .col_expr(email_token::Column::UsedAt, now.into())
        .filter(email_token::Column::TokenHash.eq(token_hash))
        .filter(email_token::Column::UsedAt.is_null())
        .exec(transaction)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Whether the account still has the credential and address the token was made for.
async fn unchanged_since(
    transaction: &DatabaseTransaction,
    token: &EmailTokenRecord,
) -> Result<bool, StoreError> {
    Ok(user::Entity::find_by_id(token.user_id)
        .filter(user::Column::CredentialVersion.eq(token.credential_version))
        .filter(user::Column::EmailNormalized.eq(&token.email_normalized))
        .one(transaction)
        .await?
        .is_some())
}

/// Sets `email_verified_at` if unset.
async fn mark_verified<C: ConnectionTrait>(
    connection: &C,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerifiedAt, Some(now).into())
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::EmailVerifiedAt.is_null())
        .exec(connection)
        .await?;
    Ok(())
}
