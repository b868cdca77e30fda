//! The audit trail of security events. Never holds a secret, and holds a user
//! id only when the event concerns an existing account.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{pk_auto, string_len, string_len_null, uuid_null};

use super::{timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Event,
    UserId,
    ClientIp,
    UserAgent,
    Outcome,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table(AuditEvents::Table)
            .col(pk_auto(AuditEvents::Id).big_integer())
            .col(timestamp(manager, AuditEvents::At))
            .col(string_len(AuditEvents::Event, 32))
            .col(uuid_null(AuditEvents::UserId))
            .col(string_len_null(AuditEvents::ClientIp, 64))
            .col(string_len_null(AuditEvents::UserAgent, 512))
            .col(string_len(AuditEvents::Outcome, 64))
            .to_owned();
        manager
            .create_table(with_table_options(manager, table))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_user_id_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::UserId)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}
