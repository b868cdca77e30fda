//! Persistence only: rows in, domain types out. One [`Store`] over SQLite,
//! MySQL/MariaDB and PostgreSQL, picked by the URL scheme.
//!
//! Queries are written once with SeaORM; where a dialect truly differs (column
//! types, table options) the difference lives in one place in [`migration`].
//! Errors leave this layer as [`StoreError`], never as database text.

mod admin;
mod audit;
mod clients;
pub mod counters;
mod email_tokens;
mod entities;
mod error;
mod keys;
mod mfa;
pub mod migration;
mod oidc;
pub mod origin;
mod outbox;
mod passkeys;
mod sessions;
mod users;
mod webhooks;

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};

pub use admin::{ApiKeyRecord, AuditFilter, RoleRecord, UserChanges, UserFilter};
pub use audit::AuditRecord;
pub use clients::ClientRecord;
pub use email_tokens::{EmailSwitch, EmailTokenRecord};
pub use error::StoreError;
pub use keys::{KeyState, SigningKeyRecord};
pub use mfa::{ChallengeRecord, TotpRecord};
pub use oidc::{CodeRecord, CodeUse, ConsentRecord};
pub use outbox::{NewEmailToken, NewMail, OutboxRecord, Outgoing, Settlement};
pub use passkeys::{CeremonyRecord, NewPasskey, PasskeyRecord};
pub use sessions::{NewSession, Rotation, SessionRecord};
pub use users::{NewUser, UserRecord};
pub use webhooks::WebhookEndpointRecord;

/// The three database families latchkey speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
    Postgres,
}

impl Backend {
    /// Picks the backend from a database URL's scheme.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "mysql" | "mariadb" => Ok(Self::MySql),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err("the scheme must be sqlite:, mysql:, mariadb: or postgres:".to_owned()),
        }
    }
}

/// Below this much free space next to the SQLite file, writes are about to
/// fail: the instance reports itself not ready.
const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Names a network database that did not connect, by host and port, with
/// a reason: the driver's, or, when the driver only says its pool timed out
/// (what it says for a refused connection), what a plain TCP connection says.
async fn connect_failure(url: &str, error: sea_orm::DbErr) -> StoreError {
    let Ok(parsed) = url::Url::parse(url) else {
        return StoreError::Connect(error);
    };
    let default_port = match parsed.scheme() {
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        _ => return StoreError::Connect(error),
    };
    let Some(host) = parsed.host_str().map(str::to_owned) else {
        return StoreError::Connect(error);
    };
    let port = parsed.port().unwrap_or(default_port);
    // The innermost cause: the driver's own words, said once.
    let mut innermost: &dyn std::error::Error = &error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let driver = innermost.to_string();
    let reason = if driver.contains("pool timed out") {
        let attempt = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        match attempt {
            Err(_) => "no answer within 3 s".to_owned(),
            Ok(Err(refused)) => refused.to_string(),
            Ok(Ok(_)) => "the server accepts connections but the driver gave up waiting".to_owned(),
        }
    } else {
        driver
    };
    StoreError::Unreachable {
        target: format!("{host}:{port}"),
        reason,
    }
}

/// The folder holding the database file of an `sqlite:` URL (not for `:memory:`).
fn sqlite_folder(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = path.split('?').next()?;
    if path.is_empty() || path.starts_with(':') {
        return None;
    }
    let path = std::path::Path::new(path);
    let folder = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty());
    Some(folder.map_or_else(
        || std::path::PathBuf::from("."),
        std::path::Path::to_path_buf,
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::sqlite_folder;

    #[test]
    fn the_sqlite_folder_comes_from_the_url() {
        let folder = |url: &str| sqlite_folder(url);
        assert_eq!(
            folder("sqlite:///var/lib/lk/db.sqlite?mode=rwc"),
            Some(PathBuf::from("/var/lib/lk"))
        );
        assert_eq!(
            folder("sqlite://latchkey.db?mode=rwc"),
            Some(PathBuf::from("."))
        );
        assert_eq!(
            folder("sqlite://data/latchkey.db"),
            Some(PathBuf::from("data"))
        );
        assert_eq!(folder("sqlite::memory:"), None);
        assert_eq!(folder("postgres://h/db"), None);
    }
}

/// Bytes an unprivileged writer may still use on the file system of `folder`.
fn free_bytes(folder: &std::path::Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(folder).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Longest wait for a pooled connection before a request gives up (503):
/// an unreachable database must not hold clients for long.
const ACQUIRE_WITHIN: Duration = Duration::from_millis(1500);

/// Longest wait for SQLite's one writer connection, as for its lock.
const SQLITE_WRITER_WAIT: Duration = Duration::from_secs(10);

/// The pool's options: its size, its waits, and SQLite's pragmas.
fn connect_options(driver_url: &str, max_connections: u32, wait: Duration) -> ConnectOptions {
    let mut options = ConnectOptions::new(driver_url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        // A request waits `wait` for a connection, then answers 503.
        .acquire_timeout(wait)
        .sqlx_logging(false)
        // Concurrent writers wait for SQLite's lock instead of failing at once.
        .map_sqlx_sqlite_opts(|options| {
            options
                .busy_timeout(Duration::from_secs(10))
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                // With WAL, NORMAL never corrupts the database; it only
                // skips the fsync per commit (a power loss can drop the
                // last commits). FULL made every login wait on the disk.
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
        });
    options
}

/// The application's handle on its database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads, on every backend; writes too, except on SQLite.
    db: DatabaseConnection,
    /// Where writes go: on SQLite a pool of one connection, so writers queue
    /// for it in order instead of meeting at SQLite's single write lock,
    /// backing off and retrying; elsewhere the same pool as `db`.
    writer: DatabaseConnection,
    /// The folder of the SQLite database file, whose free space readiness watches.
    sqlite_folder: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens a connection pool; `mariadb:` URLs are spoken to with the MySQL driver.
    pub async fn connect(url: &SecretString, max_connections: u32) -> Result<Self, StoreError> {
        let url = url.expose_secret();
        // A clear refusal of an unknown scheme, before the driver's own words.
        Backend::from_url(url).map_err(StoreError::Config)?;
        let driver_url = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_owned(),
        };
        let db = match Database::connect(connect_options(
            &driver_url,
            max_connections,
            ACQUIRE_WITHIN,
        ))
        .await
        {
            Ok(db) => db,
            Err(error) => return Err(connect_failure(url, error).await),
        };
        let sqlite_folder = sqlite_folder(url);
        // A file, not `:memory:`, where a second pool would open another database.
        let writer = if sqlite_folder.is_some() {
            // Writers queue here as they used to wait for SQLite's lock.
            Database::connect(connect_options(&driver_url, 1, SQLITE_WRITER_WAIT))
                .await
                .map_err(StoreError::Connect)?
        } else {
            db.clone()
        };
        Ok(Self {
            db,
            writer,
            sqlite_folder,
        })
    }

    /// Connections of the main pool in use and idle, for `/metrics`.
    pub fn pool_connections(&self) -> Option<(u64, u64)> {
        let (size, idle) = match self.db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            sea_orm::DbBackend::MySql => {
                let pool = self.db.get_mysql_connection_pool();
                (pool.size(), pool.num_idle())
            }
            sea_orm::DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => return None,
        };
        let idle = idle as u64;
        Some((u64::from(size).saturating_sub(idle), idle))
    }

    /// The raw connection, for the migrator and for tests that inspect rows.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Cheap liveness check of the database; on SQLite also that its disk
    /// has room for writes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(StoreError::from)?;
        match &self.sqlite_folder {
            Some(folder) if free_bytes(folder).is_some_and(|free| free < MIN_FREE_BYTES) => {
                Err(StoreError::DiskFull)
            }
            _ => Ok(()),
        }
    }

    /// Executes one raw statement; used by tooling that manages databases, not by use-cases.
    pub async fn execute_unprepared(&self, sql: &str) -> Result<(), StoreError> {
        self.db.execute_unprepared(sql).await?;
        Ok(())
    }

    /// Folds SQLite's write-ahead log back into the database file, so a
    /// stopped server leaves one self-contained file; nothing elsewhere.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.db.get_database_backend() == sea_orm::DbBackend::Sqlite {
            self.writer
                .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await?;
        }
        Ok(())
    }

    pub async fn close(self) {
        // Closing only fails if already closed; nothing to do about it then.
        let _ = self.writer.clone().close().await;
        let _ = self.db.close().await;
    }
}
