//! Queries on `sessions` and `refresh_tokens`.
//!
//! Refresh-token rotation is one transaction that starts with a conditional
//! write (`used_at IS NULL` → now), so exactly one of any number of concurrent
//! presenters of the same token wins on every backend, without row locks; a
//! loser sees a spent token, which is reuse, and ends the session.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{refresh_token, session, user};
use super::error::{classify_write, with_retry};
use super::{Store, StoreError, UserRecord};

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    /// How it was opened: RFC 8176 method values, comma-separated.
    pub amr: Option<String>,
    /// The OpenID client the session serves, and the scopes it was granted.
    pub client_id: Option<String>,
    pub scope: Option<String>,
    /// The account's credential version when the session was opened.
    pub credential_version: i64,
}

impl From<session::Model> for SessionRecord {
    fn from(row: session::Model) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            user_agent: row.user_agent,
            client_ip: row.client_ip,
            revoked_at: row.revoked_at,
            revoked_reason: row.revoked_reason,
            amr: row.amr,
            client_id: row.client_id,
            scope: row.scope,
            credential_version: row.credential_version,
        }
    }
}

pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    /// SHA-256 (hex) of the session's first refresh token.
    pub refresh_token_hash: &'a str,
    /// The account's credential version the login verified against.
    pub credential_version: i64,
    /// How the login authenticated (RFC 8176 values, comma-separated).
    pub amr: &'a str,
    /// For a session opened through `/authorize`: the client and its scopes.
    pub client: Option<(&'a str, &'a str)>,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live; it is now spent and `successor` is stored in its
    /// place. The account as it is now comes along.
    Rotated(SessionRecord, UserRecord),
    /// The token was already spent: the session is now revoked.
    Reused {
        session_id: Uuid,
        user_id: Uuid,
    },
    /// The token was spent within the grace window and its successor is
    /// still unused: the caller answers the same successor again.
    Repeated(SessionRecord, UserRecord),
    /// The session was opened with a credential that has changed since (a
    /// password change raced its login): the session is now revoked.
    CredentialChanged {
        session_id: Uuid,
    },
    /// The token was live but its session had ended (revoked or expired).
    SessionEnded,
    Unknown,
}

impl Store {
    /// Creates a session and its first refresh token, together or not at all.
    ///
    /// The account row is locked first, by a write that changes nothing and
    /// matches only while the credential version is the one the login read: a
    /// password change or disabling that committed since makes this
    /// [`StoreError::StaleCredential`] (a change holding the lock is waited
    /// for, then seen), and one that comes later waits for this session,
    /// which its sweep then ends. Row counts are of matched rows on every
    /// backend (sqlx asks MySQL for `CLIENT_FOUND_ROWS`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_session(&self, new: NewSession<'_>) -> Result<(), StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            let locked = user::Entity::update_many()
                .col_expr(
                    user::Column::CredentialVersion,
                    Expr::col(user::Column::CredentialVersion),
                )
                .filter(user::Column::Id.eq(new.user_id))
                .filter(user::Column::CredentialVersion.eq(new.credential_version))
                .exec(&transaction)
                .await?;
            if locked.rows_affected != 1 {
                transaction.rollback().await?;
                return Err(StoreError::StaleCredential);
            }
            session::Entity::insert(session::ActiveModel {
                id: Set(new.id),
                user_id: Set(new.user_id),
                created_at: Set(new.now),
                last_used_at: Set(new.now),
                expires_at: Set(new.expires_at),
                user_agent: Set(new.user_agent.map(str::to_owned)),
                client_ip: Set(new.client_ip.map(|ip| ip.to_string())),
                revoked_at: Set(None),
                revoked_reason: Set(None),
                credential_version: Set(new.credential_version),
                amr: Set(Some(new.amr.to_owned())),
                client_id: Set(new.client.map(|(id, _)| id.to_owned())),
                scope: Set(new.client.map(|(_, scope)| scope.to_owned())),
            })
            .exec_without_returning(&transaction)
            .await
            .map_err(classify_write)?;
            insert_refresh_token(&transaction, new.refresh_token_hash, new.id, new.now).await?;
            transaction.commit().await?;
            Ok(())
        })
        .await
    }

    /// Spends `presented` and stores `successor`, if the token and its session are live.
    /// `idle_cutoff`: sessions last used before it have expired.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn rotate_refresh_token(
        &self,
        presented: &str,
        successor: &str,
        grace: Duration,
        now: DateTime<Utc>,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        if self.writer.get_database_backend() == DbBackend::Postgres
            && let Some(rotation) = with_retry(|| {
                rotate_in_one_statement(&self.writer, presented, successor, now, idle_cutoff)
            })
            .await?
        {
            return Ok(rotation);
        }
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            let spent = refresh_token::Entity::update_many()
                .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
                .filter(refresh_token::Column::TokenHash.eq(presented))
                .filter(refresh_token::Column::UsedAt.is_null())
                .exec(&transaction)
                .await?;
            // The token, its session and its user in one read.
            let found = refresh_token::Entity::find_by_id(presented)
                .find_also_related(session::Entity)
                .and_also_related(user::Entity)
                .one(&transaction)
                .await?;
            let Some((token, Some(session), user)) = found else {
                transaction.commit().await?;
                return Ok(Rotation::Unknown);
            };
            // Sessions go with their account: none without one.
            let Some(user) = user.map(UserRecord::from) else {
                transaction.commit().await?;
                return Ok(Rotation::Unknown);
            };
            let ended = session.revoked_at.is_some()
                || session.expires_at <= now
                || session.last_used_at <= idle_cutoff;
            if ended {
                // Spent now or before: an ended session (a logout, say) has
                // nothing left to protect, and nothing to report as reuse.
                transaction.commit().await?;
                return Ok(Rotation::SessionEnded);
            }
            if session.credential_version != user.credential_version {
                // Opened with a credential that has changed since: it ends
                // here, whoever presents which of its tokens.
                revoke_where(
                    &transaction,
                    session::Column::Id.eq(session.id),
                    "credential_changed",
                    now,
                )
                .await?;
                transaction.commit().await?;
                return Ok(Rotation::CredentialChanged {
                    session_id: session.id,
                });
            }
            if spent.rows_affected == 0
                && repeatable_within_grace(&transaction, &token, successor, &session, grace, now)
                    .await?
            {
                transaction.commit().await?;
                return Ok(Rotation::Repeated(SessionRecord::from(session), user));
            }
            if spent.rows_affected == 0 {
                revoke_where(
                    &transaction,
                    session::Column::Id.eq(session.id),
                    "refresh_token_reuse",
                    now,
                )
                .await?;
                transaction.commit().await?;
                return Ok(Rotation::Reused {
                    session_id: session.id,
                    user_id: session.user_id,
                });
            }
            // Conditional, so a revocation that committed since the session
            // was read (a logout, a password change's sweep) wins, and only
            // while the session's credential is still the user's.
            let extended = session::Entity::update_many()
                .col_expr(session::Column::LastUsedAt, Expr::value(now))
                .filter(session::Column::Id.eq(session.id))
                .filter(session::Column::RevokedAt.is_null())
                .filter(
                    session::Column::CredentialVersion.in_subquery(
                        Query::select()
                            .column(user::Column::CredentialVersion)
                            .from(user::Entity)
                            .and_where(user::Column::Id.eq(session.user_id))
                            .to_owned(),
                    ),
                )
                .exec(&transaction)
                .await?;
            if extended.rows_affected == 1 {
                insert_refresh_token(&transaction, successor, session.id, now).await?;
                transaction.commit().await?;
                return Ok(Rotation::Rotated(
                    SessionRecord {
                        last_used_at: now,
                        ..SessionRecord::from(session)
                    },
                    user,
                ));
            }
            // Revoked meanwhile, or opened with a credential that has changed since.
            let current: Option<i64> = user::Entity::find_by_id(session.user_id)
                .select_only()
                .column(user::Column::CredentialVersion)
                .into_tuple()
                .one(&transaction)
                .await?;
            if current != Some(session.credential_version) {
                // Opened with a credential that has changed since: it ends here.
                revoke_where(
                    &transaction,
                    session::Column::Id.eq(session.id),
                    "credential_changed",
                    now,
                )
                .await?;
                transaction.commit().await?;
                return Ok(Rotation::CredentialChanged {
                    session_id: session.id,
                });
            }
            transaction.commit().await?;
            Ok(Rotation::SessionEnded)
        })
        .await
    }

    /// The session a refresh token belongs to, spent or not.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn session_of_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(token) = refresh_token::Entity::find_by_id(hash)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        self.find_session(token.session_id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        Ok(session::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(SessionRecord::from))
    }

    /// Marks a session used now (browser sessions have no refresh to do it).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn touch_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, Expr::value(now))
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&self.writer)
            .await?;
        Ok(())
    }

    /// The user's sessions that are neither revoked nor expired, newest first.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn live_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now))
            .filter(session::Column::LastUsedAt.gt(idle_cutoff))
            .order_by_desc(session::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(SessionRecord::from).collect())
    }

    /// Revokes one session; returns whether it was live.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn revoke_session(
        &self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_retry(|| async {
            revoke_where(&self.writer, session::Column::Id.eq(id), reason, now).await
        })
        .await
    }

    /// Revokes every live session of a user, except `keep` when given.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut condition = sea_orm::Condition::all().add(session::Column::UserId.eq(user_id));
        if let Some(keep) = keep {
            condition = condition.add(session::Column::Id.ne(keep));
        }
        with_retry(|| async {
            revoke_where(&self.writer, condition.clone(), reason, now)
                .await
                .map(drop)
        })
        .await
    }

    /// Revokes every live session a user opened for one client.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn revoke_client_sessions(
        &self,
        user_id: Uuid,
        client_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let condition = sea_orm::Condition::all()
            .add(session::Column::UserId.eq(user_id))
            .add(session::Column::ClientId.eq(client_id));
        with_retry(|| async {
            revoke_where(&self.writer, condition.clone(), reason, now)
                .await
                .map(drop)
        })
        .await
    }

    /// Sessions revoked after `since`, for the in-memory revocation set.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn revoked_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
        let rows = session::Entity::find()
            .filter(session::Column::RevokedAt.gt(since))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| Some((row.id, row.revoked_at?)))
            .collect())
    }
}

/// A token spent at most `grace` ago whose successor (by its hash) is still
/// unused (its session is live; the caller checked): the same successor again.
async fn repeatable_within_grace(
    connection: &impl ConnectionTrait,
    token: &refresh_token::Model,
    successor: &str,
    session: &session::Model,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(used_at) = token.used_at else {
        return Ok(false);
    };
    if grace <= Duration::zero() || now - used_at > grace {
        return Ok(false);
    }
    Ok(refresh_token::Entity::find_by_id(successor.to_owned())
        .filter(refresh_token::Column::SessionId.eq(session.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .one(connection)
        .await?
        .is_some())
}

/// PostgreSQL: the common case of a rotation (a live token of a live
/// session) in one statement, and so one round trip: spend the token, extend
/// its session, store the successor, and read the session and its account.
/// `None` when the token was not live, or its session had ended or its
/// credential changed (the token is then spent): the caller's transaction
/// tells which case it was.
async fn rotate_in_one_statement(
    connection: &impl ConnectionTrait,
    presented: &str,
    successor: &str,
    now: DateTime<Utc>,
    idle_cutoff: DateTime<Utc>,
) -> Result<Option<Rotation>, StoreError> {
    use sea_orm::{FromQueryResult, IdenStatic, Iterable, Statement};
    let columns = |table: &str, prefix: &str, names: Vec<String>| {
        names
            .iter()
            .map(|name| format!("{table}.\"{name}\" AS \"{prefix}{name}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let session_columns = columns(
        "live",
        "s_",
        session::Column::iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    );
    let user_columns = columns(
        "users",
        "u_",
        user::Column::iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    );
    let sql = format!(
        "WITH spent AS (\
           UPDATE refresh_tokens SET used_at = $1 \
           WHERE token_hash = $2 AND used_at IS NULL RETURNING session_id), \
         live AS (\
           UPDATE sessions SET last_used_at = $1 FROM spent \
           WHERE sessions.id = spent.session_id AND sessions.revoked_at IS NULL \
             AND sessions.expires_at > $1 AND sessions.last_used_at > $3 \
             AND sessions.credential_version = \
               (SELECT credential_version FROM users WHERE users.id = sessions.user_id) \
           RETURNING sessions.*), \
         stored AS (\
           INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) \
           SELECT $4, live.id, $1, NULL FROM live) \
         SELECT {session_columns}, {user_columns} FROM live JOIN users ON users.id = live.user_id"
    );
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [
            now.into(),
            presented.into(),
            idle_cutoff.into(),
            successor.into(),
        ],
    );
    let Some(row) = connection
        .query_one_raw(statement)
        .await
        .map_err(classify_write)?
    else {
        return Ok(None);
    };
    let session = session::Model::from_query_result(&row, "s_")?;
    let user = user::Model::from_query_result(&row, "u_")?;
    Ok(Some(Rotation::Rotated(
        SessionRecord::from(session),
        UserRecord::from(user),
    )))
}

async fn insert_refresh_token(
    connection: &impl ConnectionTrait,
    hash: &str,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    refresh_token::Entity::insert(refresh_token::ActiveModel {
        token_hash: Set(hash.to_owned()),
        session_id: Set(session_id),
        created_at: Set(now),
        used_at: Set(None),
    })
    .exec_without_returning(connection)
    .await
    .map_err(classify_write)?;
    Ok(())
}

/// Marks matching live sessions revoked; returns whether any was.
pub(super) async fn revoke_where(
    connection: &impl ConnectionTrait,
    condition: impl sea_orm::sea_query::IntoCondition,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .filter(condition)
        .filter(session::Column::RevokedAt.is_null())
        .exec(connection)
        .await?;
    Ok(result.rows_affected > 0)
}
