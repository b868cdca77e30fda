//! The outbox: messages written in the transaction of the change that causes
//! them, then claimed, sent and settled by the delivery worker of whichever
//! instance leases them first.
//!
//! A claim sets `lease_owner` to a fresh id and `lease_until` to when the
//! lease lapses, only on rows nobody holds; settling a message checks that
//! the lease is still the claimer's. PostgreSQL and MariaDB pick candidates
//! with `FOR UPDATE SKIP LOCKED`, so instances claim disjoint batches
//! without waiting on each other; SQLite has one writer and claims in one
//! statement.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{email_token, outbox};
use super::error::with_retry;
use super::{Store, StoreError};

/// A message to queue, already rendered.
#[derive(Clone)]
pub struct NewMail {
    pub id: Uuid,
    pub kind: &'static str,
    pub recipient: String,
    /// The rendered message, as the mail layer serialized it.
    pub payload: String,
}

/// A token to store, by its hash; see [`super::EmailTokenRecord`].
#[derive(Clone)]
pub struct NewEmailToken {
    pub token_hash: String,
    pub user_id: Uuid,
    pub purpose: &'static str,
    pub email_normalized: String,
    pub new_email: Option<String>,
    pub session_id: Option<Uuid>,
    pub code_hash: Option<String>,
    pub credential_version: i64,
    pub expires_at: DateTime<Utc>,
}

/// What a change leaves behind in its own transaction: tokens to store,
/// older tokens to retire, messages to queue.
#[derive(Clone, Default)]
pub struct Outgoing {
    /// Live tokens of this user and purpose die (a new sign-in code replaces the old).
    pub retire: Option<(Uuid, &'static str)>,
    pub tokens: Vec<NewEmailToken>,
    pub mail: Vec<NewMail>,
}

impl Outgoing {
    pub fn is_empty(&self) -> bool {
        self.retire.is_none() && self.tokens.is_empty() && self.mail.is_empty()
    }
}

/// Writes `outgoing` on `connection` (the caller's transaction).
pub(super) async fn write_outgoing<C: ConnectionTrait>(
    connection: &C,
    outgoing: &Outgoing,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if let Some((user_id, purpose)) = outgoing.retire {
        email_token::Entity::update_many()
            .col_expr(email_token::Column::UsedAt, now.into())
            .filter(email_token::Column::UserId.eq(user_id))
            .filter(email_token::Column::Purpose.eq(purpose))
            .filter(email_token::Column::UsedAt.is_null())
            .exec(connection)
            .await?;
    }
    for token in &outgoing.tokens {
        let row = email_token::ActiveModel {
            token_hash: Set(token.token_hash.clone()),
            user_id: Set(token.user_id),
            purpose: Set(token.purpose.to_owned()),
            email_normalized: Set(token.email_normalized.clone()),
            new_email: Set(token.new_email.clone()),
            session_id: Set(token.session_id),
            code_hash: Set(token.code_hash.clone()),
            attempts: Set(0),
            credential_version: Set(token.credential_version),
            created_at: Set(now),
            expires_at: Set(token.expires_at),
            used_at: Set(None),
        };
        email_token::Entity::insert(row)
            .exec_without_returning(connection)
            .await?;
    }
    for mail in &outgoing.mail {
        let row = outbox::ActiveModel {
            id: Set(mail.id),
            kind: Set(mail.kind.to_owned()),
            recipient: Set(mail.recipient.clone()),
            payload: Set(mail.payload.clone()),
            created_at: Set(now),
            due_at: Set(now),
            attempts: Set(0),
            lease_owner: Set(None),
            lease_until: Set(None),
            sent_at: Set(None),
            failed_at: Set(None),
            last_error: Set(None),
        };
        outbox::Entity::insert(row)
            .exec_without_returning(connection)
            .await?;
    }
    Ok(())
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Settlement<'a> {
    Sent {
        at: DateTime<Utc>,
    },
    /// A transient failure: try again at `until`.
    Deferred {
        until: DateTime<Utc>,
        error: &'a str,
    },
    /// A permanent failure, or retries exhausted: kept for `outbox retry`.
    Failed {
        at: DateTime<Utc>,
        error: &'a str,
    },
}

/// A queued message as stored.
#[derive(Clone)]
pub struct OutboxRecord {
    pub id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl std::fmt::Debug for OutboxRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload holds the links and codes: never shown.
        formatter
            .debug_struct("OutboxRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl From<outbox::Model> for OutboxRecord {
    fn from(row: outbox::Model) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            recipient: row.recipient,
            payload: row.payload,
            created_at: row.created_at,
            due_at: row.due_at,
            attempts: row.attempts,
            sent_at: row.sent_at,
            failed_at: row.failed_at,
            last_error: row.last_error,
        }
    }
}

/// Unsent, not given up on, due, and held by nobody.
fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(outbox::Column::SentAt.is_null())
        .add(outbox::Column::FailedAt.is_null())
        .add(outbox::Column::DueAt.lte(now))
        .add(
            Condition::any()
                .add(outbox::Column::LeaseUntil.is_null())
                .add(outbox::Column::LeaseUntil.lte(now)),
        )
}

/// Still held by this claim.
fn held_by(id: Uuid, owner: Uuid) -> Condition {
    Condition::all()
        .add(outbox::Column::Id.eq(id))
        .add(outbox::Column::LeaseOwner.eq(owner))
        .add(outbox::Column::SentAt.is_null())
}

impl Store {
    /// Queues what `outgoing` holds in a transaction of its own.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn write_outgoing(
        &self,
        outgoing: &Outgoing,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            write_outgoing(&transaction, outgoing, now).await?;
            transaction.commit().await?;
            Ok(())
        })
        .await
    }

    /// Leases up to `limit` due messages to `owner` until `lease_until`, and
    /// returns them.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn claim_mail(
        &self,
        owner: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let candidates = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::Id)
            .filter(claimable(now))
            .order_by_asc(outbox::Column::DueAt)
            .limit(limit);
        let lease = outbox::Entity::update_many()
            .col_expr(outbox::Column::LeaseOwner, owner.into())
            .col_expr(outbox::Column::LeaseUntil, lease_until.into())
            .filter(claimable(now));
        with_retry(|| async {
            if self.db.get_database_backend() == DbBackend::Sqlite {
                // One statement: SQLite runs it under its single write lock.
                lease
                    .clone()
                    .filter(outbox::Column::Id.in_subquery(candidates.clone().into_query()))
                    .exec(&self.writer)
                    .await?;
            } else {
                let transaction = self.writer.begin().await?;
                let ids: Vec<Uuid> = candidates
                    .clone()
                    .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                    .into_tuple()
                    .all(&transaction)
                    .await?;
                if !ids.is_empty() {
                    lease
                        .clone()
                        .filter(outbox::Column::Id.is_in(ids))
                        .exec(&transaction)
                        .await?;
                }
                transaction.commit().await?;
            }
            Ok(())
        })
        .await?;
        let rows = outbox::Entity::find()
            .filter(outbox::Column::LeaseOwner.eq(owner))
            .filter(outbox::Column::SentAt.is_null())
            .filter(outbox::Column::FailedAt.is_null())
            .order_by_asc(outbox::Column::DueAt)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(OutboxRecord::from).collect())
    }

    /// Extends this claim's lease on one message just before sending it;
    /// `false` if the claim was lost (its lease lapsed and another instance
    /// took the message), in which case it must not be sent.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn renew_lease(
        &self,
        id: Uuid,
        owner: Uuid,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let result = outbox::Entity::update_many()
                .col_expr(outbox::Column::LeaseUntil, lease_until.into())
                .filter(held_by(id, owner))
                .filter(outbox::Column::FailedAt.is_null())
                .exec(&self.writer)
                .await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Deletes messages sent before `before`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn purge_sent_mail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = outbox::Entity::delete_many()
            .filter(outbox::Column::SentAt.lt(before))
            .exec(&self.writer)
            .await?;
        Ok(result.rows_affected)
    }

    /// Records how an attempt ended and lets go of the lease; `false` if the
    /// claim was lost meanwhile (another instance holds the message).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn settle_mail(
        &self,
        id: Uuid,
        owner: Uuid,
        outcome: Settlement<'_>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            let mut update = outbox::Entity::update_many()
                .col_expr(outbox::Column::Attempts, attempts_plus_one())
                .col_expr(
                    outbox::Column::LeaseUntil,
                    Option::<DateTime<Utc>>::None.into(),
                )
                .col_expr(outbox::Column::LeaseOwner, Option::<Uuid>::None.into());
            update = match outcome {
                // Done, and its payload (links, codes) erased.
                Settlement::Sent { at } => update
                    .col_expr(outbox::Column::SentAt, at.into())
                    .col_expr(outbox::Column::Payload, String::new().into())
                    .col_expr(outbox::Column::LastError, Option::<String>::None.into()),
                Settlement::Deferred { until, error } => update
                    .col_expr(outbox::Column::DueAt, until.into())
                    .col_expr(outbox::Column::LastError, short(error).into()),
                Settlement::Failed { at, error } => update
                    .col_expr(outbox::Column::FailedAt, at.into())
                    .col_expr(outbox::Column::LastError, short(error).into()),
            };
            let result = update.filter(held_by(id, owner)).exec(&self.writer).await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Hands back the messages `owner` claimed and did not settle, for
    /// another instance (or this one's successor) to send at once.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn release_mail(&self, owner: Uuid) -> Result<(), StoreError> {
        outbox::Entity::update_many()
            .col_expr(
                outbox::Column::LeaseUntil,
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(outbox::Column::LeaseOwner, Option::<Uuid>::None.into())
            .filter(outbox::Column::LeaseOwner.eq(owner))
            .filter(outbox::Column::SentAt.is_null())
            .exec(&self.writer)
            .await?;
        Ok(())
    }

    /// The newest messages first, for `latchkey outbox list`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn list_mail(&self, limit: u64) -> Result<Vec<OutboxRecord>, StoreError> {
        let rows = outbox::Entity::find()
            .order_by_desc(outbox::Column::CreatedAt)
            .order_by_desc(outbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(OutboxRecord::from).collect())
    }

    /// Queues an unsent message again, due now, with a fresh retry budget;
    /// `false` when no such message is failed or waiting. One an instance
    /// is sending right now (its lease holds) is left to it.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn retry_mail(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::FailedAt,
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(outbox::Column::DueAt, now.into())
            .col_expr(outbox::Column::CreatedAt, now.into())
            .col_expr(outbox::Column::Attempts, 0.into())
            .col_expr(
                outbox::Column::LeaseUntil,
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(outbox::Column::LeaseOwner, Option::<Uuid>::None.into())
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::SentAt.is_null())
            .filter(
                Condition::any()
                    .add(outbox::Column::FailedAt.is_not_null())
                    .add(outbox::Column::LeaseUntil.is_null())
                    .add(outbox::Column::LeaseUntil.lte(now)),
            )
            .exec(&self.writer)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Deliveries (mail and webhooks) waiting, and when the oldest was
    /// written, for `/metrics`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn outbox_backlog(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        use sea_orm::sea_query::Func;
        let (waiting, oldest): (i64, Option<DateTime<Utc>>) = outbox::Entity::find()
            .select_only()
            .column_as(
                Expr::from(Func::count(Expr::col(outbox::Column::Id))),
                "waiting",
            )
            .column_as(
                Expr::from(Func::min(Expr::col(outbox::Column::CreatedAt))),
                "oldest",
            )
            .filter(outbox::Column::SentAt.is_null())
            .filter(outbox::Column::FailedAt.is_null())
            .into_tuple()
            .one(&self.db)
            .await?
            .unwrap_or((0, None));
        Ok((u64::try_from(waiting).unwrap_or_default(), oldest))
    }
}

fn attempts_plus_one() -> sea_orm::sea_query::Expr {
    use sea_orm::sea_query::ExprTrait;
    sea_orm::sea_query::Expr::col(outbox::Column::Attempts).add(1)
}

/// Error text fits its column (500 characters), cut at a character boundary.
fn short(error: &str) -> String {
    error.chars().take(500).collect()
}
