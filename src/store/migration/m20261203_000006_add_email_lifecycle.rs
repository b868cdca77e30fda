//! The email lifecycle: whether an address is verified and the language an
//! account reads, the tokens sent by email (stored only as hashes), and the
//! outbox every message waits in until it is delivered.
//!
//! An outbox row is written in the same transaction as the change that
//! causes it, and claimed by one instance at a time through its lease
//! (`lease_owner`, `lease_until`): a message is never lost by a crash and
//! never sent twice by two instances.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, integer, string_len, string_len_null, text, uuid, uuid_null,
};

use super::{optional_timestamp, timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    EmailVerifiedAt,
    Locale,
}

#[derive(DeriveIden)]
enum EmailTokens {
    Table,
    TokenHash,
    UserId,
    Purpose,
    EmailNormalized,
    NewEmail,
    SessionId,
    CodeHash,
    Attempts,
    CredentialVersion,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Kind,
    Recipient,
    Payload,
    CreatedAt,
    DueAt,
    Attempts,
    LeaseOwner,
    LeaseUntil,
    SentAt,
    FailedAt,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(optional_timestamp(manager, Users::EmailVerifiedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(string_len_null(Users::Locale, 35))
                    .to_owned(),
            )
            .await?;

        let tokens = Table::create()
            .table(EmailTokens::Table)
            .col(string_len(EmailTokens::TokenHash, 64).primary_key())
            .col(uuid(EmailTokens::UserId))
            .col(string_len(EmailTokens::Purpose, 32))
            .col(string_len(EmailTokens::EmailNormalized, 512))
            .col(string_len_null(EmailTokens::NewEmail, 320))
            .col(uuid_null(EmailTokens::SessionId))
            .col(string_len_null(EmailTokens::CodeHash, 64))
            .col(integer(EmailTokens::Attempts).default(0))
            .col(big_integer(EmailTokens::CredentialVersion))
            .col(timestamp(manager, EmailTokens::CreatedAt))
            .col(timestamp(manager, EmailTokens::ExpiresAt))
            .col(optional_timestamp(manager, EmailTokens::UsedAt))
            .foreign_key(
                ForeignKey::create()
                    .from(EmailTokens::Table, EmailTokens::UserId)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned();
        manager
            .create_table(with_table_options(manager, tokens))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_tokens_user_id")
                    .table(EmailTokens::Table)
                    .col(EmailTokens::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_tokens_purpose_email")
                    .table(EmailTokens::Table)
                    .col(EmailTokens::Purpose)
                    .col(EmailTokens::EmailNormalized)
                    .to_owned(),
            )
            .await?;

        let outbox = Table::create()
            .table(Outbox::Table)
            .col(uuid(Outbox::Id).primary_key())
            .col(string_len(Outbox::Kind, 40))
            .col(string_len(Outbox::Recipient, 320))
            .col(text(Outbox::Payload))
            .col(timestamp(manager, Outbox::CreatedAt))
            .col(timestamp(manager, Outbox::DueAt))
            .col(integer(Outbox::Attempts).default(0))
            .col(uuid_null(Outbox::LeaseOwner))
            .col(optional_timestamp(manager, Outbox::LeaseUntil))
            .col(optional_timestamp(manager, Outbox::SentAt))
            .col(optional_timestamp(manager, Outbox::FailedAt))
            .col(string_len_null(Outbox::LastError, 500))
            .to_owned();
        manager
            .create_table(with_table_options(manager, outbox))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_pending")
                    .table(Outbox::Table)
                    .col(Outbox::SentAt)
                    .col(Outbox::FailedAt)
                    .col(Outbox::DueAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(EmailTokens::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::Locale)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::EmailVerifiedAt)
                    .to_owned(),
            )
            .await
    }
}
