//! Sessions and their refresh tokens, OAuth clients (for introspection), and
//! the retirement time of signing keys (so retired keys leave the JWKS once
//! every token they signed has expired).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, string_len_null, uuid};

use super::{optional_timestamp, timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    UserAgent,
    ClientIp,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    SessionId,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    Name,
    SecretHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    RetiredAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sessions = Table::create()
            .table(Sessions::Table)
            .col(uuid(Sessions::Id).primary_key())
            .col(uuid(Sessions::UserId))
            .col(timestamp(manager, Sessions::CreatedAt))
            .col(timestamp(manager, Sessions::LastUsedAt))
            .col(timestamp(manager, Sessions::ExpiresAt))
            .col(string_len_null(Sessions::UserAgent, 512))
            .col(string_len_null(Sessions::ClientIp, 64))
            .col(optional_timestamp(manager, Sessions::RevokedAt))
            .col(string_len_null(Sessions::RevokedReason, 32))
            .foreign_key(
                ForeignKey::create()
                    .from(Sessions::Table, Sessions::UserId)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned();
        manager
            .create_table(with_table_options(manager, sessions))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_revoked_at")
                    .table(Sessions::Table)
                    .col(Sessions::RevokedAt)
                    .to_owned(),
            )
            .await?;

        let refresh_tokens = Table::create()
            .table(RefreshTokens::Table)
            .col(string_len(RefreshTokens::TokenHash, 64).primary_key())
            .col(uuid(RefreshTokens::SessionId))
            .col(timestamp(manager, RefreshTokens::CreatedAt))
            .col(optional_timestamp(manager, RefreshTokens::UsedAt))
            .foreign_key(
                ForeignKey::create()
                    .from(RefreshTokens::Table, RefreshTokens::SessionId)
                    .to(Sessions::Table, Sessions::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned();
        manager
            .create_table(with_table_options(manager, refresh_tokens))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refresh_tokens_session_id")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await?;

        let clients = Table::create()
            .table(Clients::Table)
            .col(string_len(Clients::Id, 64).primary_key())
            .col(string_len(Clients::Name, 128))
            .col(string_len(Clients::SecretHash, 64))
            .col(timestamp(manager, Clients::CreatedAt))
            .to_owned();
        manager
            .create_table(with_table_options(manager, clients))
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .add_column(optional_timestamp(manager, SigningKeys::RetiredAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .drop_column(SigningKeys::RetiredAt)
                    .to_owned(),
            )
            .await?;
        for table in [
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Clients::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
