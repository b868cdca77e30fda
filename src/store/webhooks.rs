//! Webhook endpoints and their deliveries. A delivery is an outbox row of
//! kind `webhook:<event type>` addressed to the endpoint's id, written in the
//! same transaction as the audit event it reports.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use super::audit::insert_audit_row;
use super::entities::{SecretColumn, outbox, webhook_endpoint};
use super::error::with_retry;
use super::outbox::{Outgoing, write_outgoing};
use super::{AuditRecord, OutboxRecord, Store, StoreError};

/// An endpoint as stored; its signing secret sealed.
#[derive(Clone)]
pub struct WebhookEndpointRecord {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub sealed_secret: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl std::fmt::Debug for WebhookEndpointRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WebhookEndpointRecord")
            .field("id", &self.id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl From<webhook_endpoint::Model> for WebhookEndpointRecord {
    fn from(row: webhook_endpoint::Model) -> Self {
        Self {
            id: row.id,
            url: row.url,
            events: row.events.split_whitespace().map(str::to_owned).collect(),
            sealed_secret: row.secret.0,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
            failing_since: row.failing_since,
            last_error: row.last_error,
        }
    }
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpointRecord,
    ) -> Result<(), StoreError> {
        webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel {
            id: Set(endpoint.id),
            url: Set(endpoint.url.clone()),
            events: Set(endpoint.events.join(" ")),
            secret: Set(SecretColumn(endpoint.sealed_secret.clone())),
            created_at: Set(endpoint.created_at),
            disabled_at: Set(None),
            failing_since: Set(None),
            last_error: Set(None),
        })
        .exec_without_returning(&self.writer)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpointRecord>, StoreError> {
        Ok(webhook_endpoint::Entity::find()
            .order_by_asc(webhook_endpoint::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(WebhookEndpointRecord::from)
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn webhook_endpoint(
        &self,
        id: Uuid,
    ) -> Result<Option<WebhookEndpointRecord>, StoreError> {
        Ok(webhook_endpoint::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(WebhookEndpointRecord::from))
    }

    /// Deletes an endpoint; its undelivered events fail at their next try.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn delete_webhook_endpoint(&self, id: Uuid) -> Result<bool, StoreError> {
        let result = webhook_endpoint::Entity::delete_many()
            .filter(webhook_endpoint::Column::Id.eq(id))
            .exec(&self.writer)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// A delivery succeeded: the endpoint is healthy again.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn webhook_succeeded(&self, id: Uuid) -> Result<(), StoreError> {
        webhook_endpoint::Entity::update_many()
            .col_expr(
                webhook_endpoint::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                webhook_endpoint::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::FailingSince.is_not_null())
            .exec(&self.writer)
            .await?;
        Ok(())
    }

    /// A delivery failed. An endpoint failing for `give_up` is disabled;
    /// returns whether this failure disabled it.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn webhook_failed(
        &self,
        endpoint: &WebhookEndpointRecord,
        error: &str,
        now: DateTime<Utc>,
        give_up: Duration,
    ) -> Result<bool, StoreError> {
        let since = endpoint.failing_since.unwrap_or(now);
        let disable = endpoint.disabled_at.is_none() && now - since >= give_up;
        let mut update = webhook_endpoint::Entity::update_many()
            .col_expr(
                webhook_endpoint::Column::FailingSince,
                Expr::value(Some(since)),
            )
            .col_expr(
                webhook_endpoint::Column::LastError,
                Expr::value(Some(error.chars().take(500).collect::<String>())),
            )
            .filter(webhook_endpoint::Column::Id.eq(endpoint.id));
        if disable {
            update = update.col_expr(webhook_endpoint::Column::DisabledAt, Expr::value(Some(now)));
        }
        update.exec(&self.writer).await?;
        Ok(disable)
    }

    /// The latest deliveries to an endpoint, newest first.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn webhook_deliveries(
        &self,
        endpoint_id: Uuid,
        limit: u64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Ok(outbox::Entity::find()
            .filter(outbox::Column::Recipient.eq(endpoint_id.to_string()))
            .filter(outbox::Column::Kind.starts_with("webhook:"))
            .order_by_desc(outbox::Column::CreatedAt)
            .order_by_desc(outbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(OutboxRecord::from)
            .collect())
    }

    /// An audit event and what it sends (webhook deliveries), together.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_audit_with(
        &self,
        record: &AuditRecord,
        outgoing: &Outgoing,
    ) -> Result<(), StoreError> {
        with_retry(|| async {
            let transaction = self.writer.begin().await?;
            insert_audit_row(&transaction, record).await?;
            write_outgoing(&transaction, outgoing, record.at).await?;
            transaction.commit().await?;
            Ok(())
        })
        .await
    }
}
