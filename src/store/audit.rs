//! Queries on `audit_events`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::audit_event;
use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub event: String,
    pub user_id: Option<Uuid>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: String,
}

impl From<audit_event::Model> for AuditRecord {
    fn from(row: audit_event::Model) -> Self {
        Self {
            at: row.at,
            event: row.event,
            user_id: row.user_id,
            client_ip: row.client_ip,
            user_agent: row.user_agent,
            outcome: row.outcome,
        }
    }
}

/// Writes one audit event, on its own or inside a caller's transaction.
pub(super) async fn insert_audit_row(
    connection: &impl ConnectionTrait,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    audit_event::Entity::insert(audit_event::ActiveModel {
        id: NotSet,
        at: Set(record.at),
        event: Set(record.event.clone()),
        user_id: Set(record.user_id),
        client_ip: Set(record.client_ip.clone()),
        user_agent: Set(record.user_agent.clone()),
        outcome: Set(record.outcome.clone()),
    })
    .exec_without_returning(connection)
    .await?;
    Ok(())
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        insert_audit_row(&self.writer, record).await
    }

    /// A user's events, newest first.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn audit_for_user(
        &self,
        user_id: Uuid,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::UserId.eq(user_id))
            .order_by_desc(audit_event::Column::At)
            .order_by_desc(audit_event::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }
}
