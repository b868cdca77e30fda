//! Queries on the `signing_keys` table: the token-signing keys every instance
//! sharing the database signs and verifies with.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};

use super::entities::{SecretColumn, signing_key};
use super::error::classify_write;
use super::{Store, StoreError};

/// Where a key is in its life: `Active` keys may sign; `Retired` ones only verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Retired,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "active" => Ok(Self::Active),
            "retired" => Ok(Self::Retired),
            other => Err(StoreError::Corrupt(format!(
                "unknown signing key state {other:?}"
            ))),
        }
    }
}

/// A signing key as stored; the private half stays wrapped in [`SecretString`].
#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// Increases by one per key; unique, so two instances cannot both create "the first" key.
    pub generation: i64,
    pub algorithm: String,
    /// PKCS#8 document, base64.
    pub private_key: SecretString,
    /// Raw public key, base64url without padding.
    pub public_key: String,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    /// When a newer key took over signing; `None` while active.
    pub retired_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Every stored key, newest generation first.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = signing_key::Entity::find()
            .order_by_desc(signing_key::Column::Generation)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    state: KeyState::parse(&row.state)?,
                    kid: row.kid,
                    generation: row.generation,
                    algorithm: row.algorithm,
                    private_key: SecretString::from(row.private_key.0),
                    public_key: row.public_key,
                    created_at: row.created_at,
                    retired_at: row.retired_at,
                })
            })
            .collect()
    }

    /// Stores a new key; [`StoreError::Conflict`] if its generation was taken meanwhile.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let row = signing_key::ActiveModel {
            kid: Set(key.kid.clone()),
            generation: Set(key.generation),
            algorithm: Set(key.algorithm.clone()),
            private_key: Set(SecretColumn(key.private_key.expose_secret().to_owned())),
            public_key: Set(key.public_key.clone()),
            state: Set(key.state.as_str().to_owned()),
            created_at: Set(key.created_at),
            retired_at: Set(key.retired_at),
        };
        signing_key::Entity::insert(row)
            .exec_without_returning(&self.writer)
            .await
            .map_err(classify_write)?;
        Ok(())
    }

    /// Replaces a key's stored private half, only if it is still `expected`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn replace_private_key(
        &self,
        kid: &str,
        expected: &str,
        replacement: &str,
    ) -> Result<(), StoreError> {
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::PrivateKey,
                SecretColumn(replacement.to_owned()).into(),
            )
            .filter(signing_key::Column::Kid.eq(kid))
            .filter(signing_key::Column::PrivateKey.eq(SecretColumn(expected.to_owned())))
            .exec(&self.writer)
            .await?;
        Ok(())
    }

    /// Makes `key` the active signing key and retires every other active key, in one transaction.
    #[tracing::instrument(level = "debug", skip_all)]
    /// Inserts `key` as the active key; the one active until now is retired
    /// at `retire_at` (it signs until then, while `key` is published).
    pub async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retire_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let transaction = self.writer.begin().await?;
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::State,
                Expr::value(KeyState::Retired.as_str()),
            )
            .col_expr(signing_key::Column::RetiredAt, Expr::value(retire_at))
            .filter(signing_key::Column::State.eq(KeyState::Active.as_str()))
            .exec(&transaction)
            .await?;
        signing_key::Entity::insert(signing_key::ActiveModel {
            kid: Set(key.kid.clone()),
            generation: Set(key.generation),
            algorithm: Set(key.algorithm.clone()),
            private_key: Set(SecretColumn(key.private_key.expose_secret().to_owned())),
            public_key: Set(key.public_key.clone()),
            state: Set(KeyState::Active.as_str().to_owned()),
            created_at: Set(key.created_at),
            retired_at: Set(None),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(classify_write)?;
        transaction.commit().await?;
        Ok(())
    }
}
