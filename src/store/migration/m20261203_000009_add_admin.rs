//! Running it for a product: API keys for the admin API, roles and metadata
//! on accounts, the ids of deleted accounts (so their tokens stop on every
//! instance), and webhook endpoints (deliveries ride the outbox).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, string_len_null, text, text_null, uuid};

use super::{optional_timestamp, timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Roles,
    AppMetadata,
    UserMetadata,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    KeyHash,
    Scopes,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Name,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DeletedUsers {
    Table,
    UserId,
    DeletedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    Url,
    Events,
    Secret,
    CreatedAt,
    DisabledAt,
    FailingSince,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for column in [
            string_len_null(Users::Roles, 1024),
            text_null(Users::AppMetadata),
            text_null(Users::UserMetadata),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        let keys = Table::create()
            .table(ApiKeys::Table)
            .col(uuid(ApiKeys::Id).primary_key())
            .col(string_len(ApiKeys::Name, 64))
            .col(string_len(ApiKeys::KeyHash, 64).unique_key())
            .col(string_len(ApiKeys::Scopes, 256))
            .col(timestamp(manager, ApiKeys::CreatedAt))
            .col(optional_timestamp(manager, ApiKeys::LastUsedAt))
            .col(optional_timestamp(manager, ApiKeys::RevokedAt))
            .to_owned();
        manager
            .create_table(with_table_options(manager, keys))
            .await?;
        let roles = Table::create()
            .table(Roles::Table)
            .col(string_len(Roles::Name, 64).primary_key())
            .col(string_len_null(Roles::Description, 256))
            .col(timestamp(manager, Roles::CreatedAt))
            .to_owned();
        manager
            .create_table(with_table_options(manager, roles))
            .await?;
        let deleted = Table::create()
            .table(DeletedUsers::Table)
            .col(uuid(DeletedUsers::UserId).primary_key())
            .col(timestamp(manager, DeletedUsers::DeletedAt))
            .to_owned();
        manager
            .create_table(with_table_options(manager, deleted))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deleted_users_deleted_at")
                    .table(DeletedUsers::Table)
                    .col(DeletedUsers::DeletedAt)
                    .to_owned(),
            )
            .await?;
        let endpoints = Table::create()
            .table(WebhookEndpoints::Table)
            .col(uuid(WebhookEndpoints::Id).primary_key())
            .col(string_len(WebhookEndpoints::Url, 2048))
            .col(string_len(WebhookEndpoints::Events, 1024))
            .col(text(WebhookEndpoints::Secret))
            .col(timestamp(manager, WebhookEndpoints::CreatedAt))
            .col(optional_timestamp(manager, WebhookEndpoints::DisabledAt))
            .col(optional_timestamp(manager, WebhookEndpoints::FailingSince))
            .col(string_len_null(WebhookEndpoints::LastError, 512))
            .to_owned();
        manager
            .create_table(with_table_options(manager, endpoints))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookEndpoints::Table.into_iden(),
            DeletedUsers::Table.into_iden(),
            Roles::Table.into_iden(),
            ApiKeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [Users::UserMetadata, Users::AppMetadata, Users::Roles] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
