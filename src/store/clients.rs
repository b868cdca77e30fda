//! Queries on `clients`: resource servers allowed to introspect tokens.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::entities::client;
use super::error::classify_write;
use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret, hex; the secret itself is never stored.
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        client::Entity::insert(client::ActiveModel {
            id: Set(client.id.clone()),
            name: Set(client.name.clone()),
            secret_hash: Set(client.secret_hash.clone()),
            created_at: Set(client.created_at),
        })
        .exec_without_returning(&self.writer)
        .await
        .map_err(classify_write)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = client::Entity::find_by_id(id).one(&self.db).await?;
        Ok(row.map(|row| ClientRecord {
            id: row.id,
            name: row.name,
            secret_hash: row.secret_hash,
            created_at: row.created_at,
        }))
    }
}
