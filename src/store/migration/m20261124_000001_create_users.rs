//! Accounts: a UUIDv7 public id, display and normalized forms of username and
//! email (the normalized ones unique), a PHC password hash and a disabled flag.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{boolean, string_len, uuid};

use super::{timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameNormalized,
    Email,
    EmailNormalized,
    PasswordHash,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table(Users::Table)
            .col(uuid(Users::Id).primary_key())
            .col(string_len(Users::Username, 64))
            .col(string_len(Users::UsernameNormalized, 128).unique_key())
            .col(string_len(Users::Email, 254))
            .col(string_len(Users::EmailNormalized, 512).unique_key())
            .col(string_len(Users::PasswordHash, 255))
            .col(boolean(Users::Disabled).default(false))
            .col(timestamp(manager, Users::CreatedAt))
            .col(timestamp(manager, Users::UpdatedAt))
            .to_owned();
        manager
            .create_table(with_table_options(manager, table))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
