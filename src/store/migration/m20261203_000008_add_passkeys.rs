//! Passkeys (WebAuthn credentials: public keys, never secrets) and the
//! ceremonies in progress, keyed by their challenge so that any instance can
//! finish what another started.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string_len, string_len_null, text, uuid, uuid_null};

use super::{optional_timestamp, timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialKey,
    Name,
    Credential,
    SignCount,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum WebauthnCeremonies {
    Table,
    ChallengeHash,
    Purpose,
    UserId,
    MfaTokenHash,
    State,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let passkeys = Table::create()
            .table(Passkeys::Table)
            .col(uuid(Passkeys::Id).primary_key())
            .col(uuid(Passkeys::UserId))
            // SHA-256 of the credential id (up to 1,023 bytes: too long to index).
            .col(string_len(Passkeys::CredentialKey, 64).unique_key())
            .col(string_len(Passkeys::Name, 64))
            .col(text(Passkeys::Credential))
            .col(big_integer(Passkeys::SignCount).default(0))
            .col(timestamp(manager, Passkeys::CreatedAt))
            .col(optional_timestamp(manager, Passkeys::LastUsedAt))
            .foreign_key(
                ForeignKey::create()
                    .from(Passkeys::Table, Passkeys::UserId)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned();
        manager
            .create_table(with_table_options(manager, passkeys))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("passkeys_user_id")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .to_owned(),
            )
            .await?;
        let ceremonies = Table::create()
            .table(WebauthnCeremonies::Table)
            .col(string_len(WebauthnCeremonies::ChallengeHash, 64).primary_key())
            .col(string_len(WebauthnCeremonies::Purpose, 16))
            .col(uuid_null(WebauthnCeremonies::UserId))
            .col(string_len_null(WebauthnCeremonies::MfaTokenHash, 64))
            .col(text(WebauthnCeremonies::State))
            .col(timestamp(manager, WebauthnCeremonies::CreatedAt))
            .col(timestamp(manager, WebauthnCeremonies::ExpiresAt))
            .foreign_key(
                ForeignKey::create()
                    .from(WebauthnCeremonies::Table, WebauthnCeremonies::UserId)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned();
        manager
            .create_table(with_table_options(manager, ceremonies))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webauthn_ceremonies_expires_at")
                    .table(WebauthnCeremonies::Table)
                    .col(WebauthnCeremonies::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebauthnCeremonies::Table.into_iden(),
            Passkeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
