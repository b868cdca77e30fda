//! Token-signing keys shared by every instance on the database. `generation`
//! is unique so that two instances starting at once agree on one first key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string_len, text};

use super::{timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Generation,
    Algorithm,
    PrivateKey,
    PublicKey,
    State,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table(SigningKeys::Table)
            .col(string_len(SigningKeys::Kid, 64).primary_key())
            .col(big_integer(SigningKeys::Generation).unique_key())
            .col(string_len(SigningKeys::Algorithm, 16))
            .col(text(SigningKeys::PrivateKey))
            .col(string_len(SigningKeys::PublicKey, 128))
            .col(string_len(SigningKeys::State, 16))
            .col(timestamp(manager, SigningKeys::CreatedAt))
            .to_owned();
        manager
            .create_table(with_table_options(manager, table))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SigningKeys::Table).to_owned())
            .await
    }
}
