//! Queries on `clients`: applications that sign users in through
//! `/authorize`, machine clients, and resource servers allowed to introspect.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait, QueryOrder};

use super::entities::client;
use super::error::classify_write;
use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret, hex; empty for a public client, which has none.
    /// The secret itself is never stored.
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    /// Exact redirect URIs; none for machine and introspection clients.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (a browser or mobile app) holds no secret and must use PKCE.
    pub public: bool,
    /// A first-party client skips consent.
    pub first_party: bool,
    /// The scopes it may ask for.
    pub scopes: Vec<String>,
    /// A machine client: may use the client-credentials grant.
    pub client_credentials: bool,
}

fn list(text: Option<&str>) -> Vec<String> {
    text.and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

impl From<client::Model> for ClientRecord {
    fn from(row: client::Model) -> Self {
        Self {
            redirect_uris: list(row.redirect_uris.as_deref()),
            post_logout_redirect_uris: list(row.post_logout_redirect_uris.as_deref()),
            scopes: row
                .scopes
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            id: row.id,
            name: row.name,
            secret_hash: row.secret_hash,
            created_at: row.created_at,
            public: row.is_public,
            first_party: row.first_party,
            client_credentials: row.client_credentials,
        }
    }
}

impl Store {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let json = |uris: &[String]| {
            (!uris.is_empty()).then(|| serde_json::to_string(uris).unwrap_or_default())
        };
        client::Entity::insert(client::ActiveModel {
            id: Set(client.id.clone()),
            name: Set(client.name.clone()),
            secret_hash: Set(client.secret_hash.clone()),
            created_at: Set(client.created_at),
            redirect_uris: Set(json(&client.redirect_uris)),
            post_logout_redirect_uris: Set(json(&client.post_logout_redirect_uris)),
            is_public: Set(client.public),
            first_party: Set(client.first_party),
            scopes: Set((!client.scopes.is_empty()).then(|| client.scopes.join(" "))),
            client_credentials: Set(client.client_credentials),
        })
        .exec_without_returning(&self.writer)
        .await
        .map_err(classify_write)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = client::Entity::find_by_id(id).one(&self.db).await?;
        Ok(row.map(ClientRecord::from))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = client::Entity::find()
            .order_by_asc(client::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(ClientRecord::from).collect())
    }
}
