//! Authorization codes and consents. A code is spent by one conditional
//! update, so two instances racing on the same code cannot both win; a
//! spent code keeps its row until it expires, so a replay is recognised.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::entities::{authorization_code, consent};
use super::error::{classify_write, with_retry};
use super::{Store, StoreError};

/// A code as issued by `/authorize`.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    pub client_id: String,
    pub user_id: Uuid,
    /// The browser session the user signed in with.
    pub browser_session_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    /// The PKCE S256 challenge, if one was sent.
    pub code_challenge: Option<String>,
    /// When the user last authenticated.
    pub auth_time: DateTime<Utc>,
    /// How: RFC 8176 values as stored with sessions.
    pub amr: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<authorization_code::Model> for CodeRecord {
    fn from(row: authorization_code::Model) -> Self {
        Self {
            code_hash: row.code_hash,
            client_id: row.client_id,
            user_id: row.user_id,
            browser_session_id: row.browser_session_id,
            redirect_uri: row.redirect_uri,
            scope: row.scope,
            nonce: row.nonce,
            code_challenge: row.code_challenge,
            auth_time: row.auth_time,
            amr: row.amr,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }
    }
}

/// What presenting a code led to.
#[derive(Debug)]
pub enum CodeUse {
    /// Spent now, by this caller; the session it will open is `session_id`.
    Fresh(Box<CodeRecord>),
    /// Spent before: the session it opened (if it got that far) must end.
    Replayed { issued_session_id: Option<Uuid> },
    /// Unknown or expired.
    Invalid,
}

/// A consent as listed on the account page.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub client_id: String,
    pub scope: String,
    pub granted_at: DateTime<Utc>,
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        authorization_code::Entity::insert(authorization_code::ActiveModel {
            code_hash: Set(code.code_hash.clone()),
            client_id: Set(code.client_id.clone()),
            user_id: Set(code.user_id),
            browser_session_id: Set(code.browser_session_id),
            redirect_uri: Set(code.redirect_uri.clone()),
            scope: Set(code.scope.clone()),
            nonce: Set(code.nonce.clone()),
            code_challenge: Set(code.code_challenge.clone()),
            auth_time: Set(code.auth_time),
            amr: Set(code.amr.clone()),
            created_at: Set(code.created_at),
            expires_at: Set(code.expires_at),
            used_at: Set(None),
            issued_session_id: Set(None),
            replayed_at: Set(None),
        })
        .exec_without_returning(&self.writer)
        .await
        .map_err(classify_write)?;
        Ok(())
    }

    /// Spends a code, naming the session its exchange will open, in one
    /// conditional update; or tells a replay from an unknown code.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn spend_code(
        &self,
        code_hash: &str,
        client_id: &str,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<CodeUse, StoreError> {
        let spent = with_retry(|| async {
            Ok(authorization_code::Entity::update_many()
                .col_expr(authorization_code::Column::UsedAt, Expr::value(now))
                .col_expr(
                    authorization_code::Column::IssuedSessionId,
                    Expr::value(session_id),
                )
                .filter(authorization_code::Column::CodeHash.eq(code_hash))
                // Another client's code is not theirs to spend (or to burn).
                .filter(authorization_code::Column::ClientId.eq(client_id))
                .filter(authorization_code::Column::UsedAt.is_null())
                .filter(authorization_code::Column::ExpiresAt.gt(now))
                .exec(&self.writer)
                .await?
                .rows_affected)
        })
        .await?;
        let row = authorization_code::Entity::find_by_id(code_hash)
            .one(&self.writer)
            .await?;
        match row {
            Some(row) if spent == 1 => Ok(CodeUse::Fresh(Box::new(row.into()))),
            Some(row) if row.used_at.is_some() && row.client_id == client_id => {
                // Marked first, so an exchange still opening its session
                // sees the mark when it checks (see `code_replayed`).
                authorization_code::Entity::update_many()
                    .col_expr(authorization_code::Column::ReplayedAt, Expr::value(now))
                    .filter(authorization_code::Column::CodeHash.eq(code_hash))
                    .exec(&self.writer)
                    .await?;
                Ok(CodeUse::Replayed {
                    issued_session_id: row.issued_session_id,
                })
            }
            _ => Ok(CodeUse::Invalid),
        }
    }

    /// Whether a code was presented again after it was spent.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn code_replayed(&self, code_hash: &str) -> Result<bool, StoreError> {
        Ok(authorization_code::Entity::find_by_id(code_hash)
            .one(&self.writer)
            .await?
            .is_some_and(|row| row.replayed_at.is_some()))
    }

    /// Purges codes that expired a day ago or more.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn purge_codes(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = authorization_code::Entity::delete_many()
            .filter(authorization_code::Column::ExpiresAt.lt(now - chrono::TimeDelta::days(1)))
            .exec(&self.writer)
            .await?;
        Ok(result.rows_affected)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        let row = consent::Entity::find_by_id((user_id, client_id.to_owned()))
            .one(&self.db)
            .await?;
        Ok(row.map(|row| ConsentRecord {
            client_id: row.client_id,
            scope: row.scope,
            granted_at: row.granted_at,
        }))
    }

    /// Records (or widens) what a user allowed a client.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn save_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            consent::Entity::insert(consent::ActiveModel {
                user_id: Set(user_id),
                client_id: Set(client_id.to_owned()),
                scope: Set(scope.to_owned()),
                granted_at: Set(now),
            })
            .on_conflict(
                OnConflict::columns([consent::Column::UserId, consent::Column::ClientId])
                    .update_columns([consent::Column::Scope, consent::Column::GrantedAt])
                    .to_owned(),
            )
            .exec_without_returning(&self.writer)
            .await
            .map_err(classify_write)?;
            Ok(())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn list_consents(&self, user_id: Uuid) -> Result<Vec<ConsentRecord>, StoreError> {
        let rows = consent::Entity::find()
            .filter(consent::Column::UserId.eq(user_id))
            .order_by_desc(consent::Column::GrantedAt)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| ConsentRecord {
                client_id: row.client_id,
                scope: row.scope,
                granted_at: row.granted_at,
            })
            .collect())
    }

    /// Withdraws a consent; returns whether there was one.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn delete_consent(&self, user_id: Uuid, client_id: &str) -> Result<bool, StoreError> {
        let result = consent::Entity::delete_many()
            .filter(consent::Column::UserId.eq(user_id))
            .filter(consent::Column::ClientId.eq(client_id))
            .exec(&self.writer)
            .await?;
        Ok(result.rows_affected > 0)
    }
}
