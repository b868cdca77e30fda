//! OpenID Connect: what a client may do (redirect URIs, public or
//! confidential, first-party, scopes), authorization codes (only their
//! hashes), consents given, and which client and scopes a session serves.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, string_len, string_len_null, text, text_null, uuid, uuid_null,
};

use super::{optional_timestamp, timestamp, with_table_options};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    RedirectUris,
    PostLogoutRedirectUris,
    IsPublic,
    FirstParty,
    Scopes,
    ClientCredentials,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ClientId,
    Scope,
}

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    CodeHash,
    ClientId,
    UserId,
    BrowserSessionId,
    RedirectUri,
    Scope,
    Nonce,
    CodeChallenge,
    AuthTime,
    Amr,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    IssuedSessionId,
    ReplayedAt,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    UserId,
    ClientId,
    Scope,
    GrantedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for column in [
            text_null(Clients::RedirectUris),
            text_null(Clients::PostLogoutRedirectUris),
            boolean(Clients::IsPublic).default(false).to_owned(),
            boolean(Clients::FirstParty).default(false).to_owned(),
            string_len_null(Clients::Scopes, 256),
            // Introspection clients made before this do not get to mint tokens.
            boolean(Clients::ClientCredentials)
                .default(false)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Clients::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            string_len_null(Sessions::ClientId, 64),
            string_len_null(Sessions::Scope, 256),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        let codes = Table::create()
            .table(AuthorizationCodes::Table)
            .col(string_len(AuthorizationCodes::CodeHash, 64).primary_key())
            .col(string_len(AuthorizationCodes::ClientId, 64))
            .col(uuid(AuthorizationCodes::UserId))
            .col(uuid(AuthorizationCodes::BrowserSessionId))
            .col(text(AuthorizationCodes::RedirectUri))
            .col(string_len(AuthorizationCodes::Scope, 256))
            .col(text_null(AuthorizationCodes::Nonce))
            .col(string_len_null(AuthorizationCodes::CodeChallenge, 128))
            .col(timestamp(manager, AuthorizationCodes::AuthTime))
            .col(string_len(AuthorizationCodes::Amr, 64))
            .col(timestamp(manager, AuthorizationCodes::CreatedAt))
            .col(timestamp(manager, AuthorizationCodes::ExpiresAt))
            .col(optional_timestamp(manager, AuthorizationCodes::UsedAt))
            .col(uuid_null(AuthorizationCodes::IssuedSessionId))
            .col(optional_timestamp(manager, AuthorizationCodes::ReplayedAt))
            .foreign_key(
                ForeignKey::create()
                    .from(AuthorizationCodes::Table, AuthorizationCodes::UserId)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned();
        manager
            .create_table(with_table_options(manager, codes))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("authorization_codes_expires_at")
                    .table(AuthorizationCodes::Table)
                    .col(AuthorizationCodes::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        let consents = Table::create()
            .table(Consents::Table)
            .col(uuid(Consents::UserId))
            .col(string_len(Consents::ClientId, 64))
            .col(string_len(Consents::Scope, 256))
            .col(timestamp(manager, Consents::GrantedAt))
            .primary_key(
                Index::create()
                    .col(Consents::UserId)
                    .col(Consents::ClientId),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(Consents::Table, Consents::UserId)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(Consents::Table, Consents::ClientId)
                    .to(Clients::Table, Clients::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned();
        manager
            .create_table(with_table_options(manager, consents))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Consents::Table.into_iden(),
            AuthorizationCodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
