//! Versioned schema migrations, written once for all three dialects and run on
//! start (and by `latchkey migrate`). Applied migrations are recorded in
//! `seaql_migrations`, so running them again changes nothing.
//!
//! The dialect differences live here and nowhere else: MySQL tables are
//! `utf8mb4` with binary collation (so the normalized forms compare the same
//! way on every backend), and timestamps are `DATETIME(6)` on MySQL (its
//! `TIMESTAMP` ends in 2038) but `TIMESTAMPTZ` elsewhere.

mod m20261124_000001_create_users;
mod m20261124_000002_create_signing_keys;
mod m20261124_000003_create_sessions;
mod m20261124_000004_create_audit_events;
mod m20261202_000005_add_credential_versions;
mod m20261203_000006_add_email_lifecycle;
mod m20261203_000007_add_second_factors;
mod m20261203_000008_add_passkeys;
mod m20261203_000009_add_admin;
mod m20261207_000010_add_oidc;

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use super::{Store, StoreError};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261124_000002_create_signing_keys::Migration),
            Box::new(m20261124_000003_create_sessions::Migration),
            Box::new(m20261124_000004_create_audit_events::Migration),
            Box::new(m20261202_000005_add_credential_versions::Migration),
            Box::new(m20261203_000006_add_email_lifecycle::Migration),
            Box::new(m20261203_000007_add_second_factors::Migration),
            Box::new(m20261203_000008_add_passkeys::Migration),
            Box::new(m20261203_000009_add_admin::Migration),
            Box::new(m20261207_000010_add_oidc::Migration),
        ]
    }
}

/// Table options every `CREATE TABLE` gets on this backend.
fn with_table_options(
    manager: &SchemaManager,
    mut table: TableCreateStatement,
) -> TableCreateStatement {
    if manager.get_database_backend() == DbBackend::MySql {
        table
            .engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_bin");
    }
    table
}

/// A non-null UTC timestamp column with microsecond precision.
fn timestamp(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {
    optional_timestamp(manager, column).not_null().to_owned()
}

/// A nullable UTC timestamp column with microsecond precision.
fn optional_timestamp(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {
    let mut definition = ColumnDef::new(column);
    match manager.get_database_backend() {
        DbBackend::MySql => definition.custom(Alias::new("DATETIME(6)")),
        _ => definition.timestamp_with_time_zone(),
    };
    definition.null().to_owned()
}

impl Store {
    /// Applies pending migrations, refusing a database migrated by a newer latchkey.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.refuse_newer_schema().await?;
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Whether the schema is exactly what this binary expects; for `/ready`.
    pub async fn check_migrations(&self) -> Result<(), StoreError> {
        self.refuse_newer_schema().await?;
        if Migrator::get_pending_migrations_read_only(&self.db)
            .await?
            .is_empty()
        {
            Ok(())
        } else {
            Err(StoreError::MigrationsPending)
        }
    }

    async fn refuse_newer_schema(&self) -> Result<(), StoreError> {
        let known: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        let applied = Migrator::get_applied_migrations_read_only(&self.db).await?;
        match applied
            .iter()
            .find(|m| !known.iter().any(|name| name == m.name()))
        {
            Some(unknown) => Err(StoreError::SchemaTooNew(unknown.name().to_owned())),
            None => Ok(()),
        }
    }
}
