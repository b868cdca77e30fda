//! Second factors: a TOTP secret per account (sealed with the instance's
//! encryption key), single-use recovery codes (hashed), the login
//! challenges that wait for a second factor (`mfa_token`, hashed), the
//! authentication methods each session was opened with (`amr`), and the
//! instance's generated secrets.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string_len, string_len_null, text, uuid};

use super::{optional_timestamp, timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Amr,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    UserId,
    Secret,
    LastUsedStep,
    CreatedAt,
    ConfirmedAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    CodeHash,
    UserId,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum MfaChallenges {
    Table,
    TokenHash,
    UserId,
    CredentialVersion,
    FirstFactor,
    Attempts,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum InstanceSecrets {
    Table,
    Name,
    Value,
    CreatedAt,
}

fn cascade_to_users<T: IntoIden>(table: T, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(string_len_null(Sessions::Amr, 64))
                    .to_owned(),
            )
            .await?;
        let totp = Table::create()
            .table(TotpFactors::Table)
            .col(uuid(TotpFactors::UserId).primary_key())
            .col(text(TotpFactors::Secret))
            .col(big_integer(TotpFactors::LastUsedStep).default(0))
            .col(timestamp(manager, TotpFactors::CreatedAt))
            .col(optional_timestamp(manager, TotpFactors::ConfirmedAt))
            .foreign_key(&mut cascade_to_users(
                TotpFactors::Table,
                TotpFactors::UserId,
            ))
            .to_owned();
        manager
            .create_table(with_table_options(manager, totp))
            .await?;
        let codes = Table::create()
            .table(RecoveryCodes::Table)
            .col(string_len(RecoveryCodes::CodeHash, 64).primary_key())
            .col(uuid(RecoveryCodes::UserId))
            .col(timestamp(manager, RecoveryCodes::CreatedAt))
            .col(optional_timestamp(manager, RecoveryCodes::UsedAt))
            .foreign_key(&mut cascade_to_users(
                RecoveryCodes::Table,
                RecoveryCodes::UserId,
            ))
            .to_owned();
        manager
            .create_table(with_table_options(manager, codes))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("recovery_codes_user_id")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .to_owned(),
            )
            .await?;
        let challenges = Table::create()
            .table(MfaChallenges::Table)
            .col(string_len(MfaChallenges::TokenHash, 64).primary_key())
            .col(uuid(MfaChallenges::UserId))
            .col(big_integer(MfaChallenges::CredentialVersion))
            .col(string_len(MfaChallenges::FirstFactor, 16))
            .col(integer(MfaChallenges::Attempts).default(0))
            .col(timestamp(manager, MfaChallenges::CreatedAt))
            .col(timestamp(manager, MfaChallenges::ExpiresAt))
            .col(optional_timestamp(manager, MfaChallenges::UsedAt))
            .foreign_key(&mut cascade_to_users(
                MfaChallenges::Table,
                MfaChallenges::UserId,
            ))
            .to_owned();
        manager
            .create_table(with_table_options(manager, challenges))
            .await?;
        let secrets = Table::create()
            .table(InstanceSecrets::Table)
            .col(string_len(InstanceSecrets::Name, 64).primary_key())
            .col(text(InstanceSecrets::Value))
            .col(timestamp(manager, InstanceSecrets::CreatedAt))
            .to_owned();
        manager
            .create_table(with_table_options(manager, secrets))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            InstanceSecrets::Table.into_iden(),
            MfaChallenges::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpFactors::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::Amr)
                    .to_owned(),
            )
            .await
    }
}
