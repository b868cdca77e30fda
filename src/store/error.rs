//! Errors of the persistence layer, in its own words. Database text stays in
//! the `Database` variant, which callers log and never send to clients.

use std::ops::Deref;

use sea_orm::{DbErr, RuntimeErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write.
    #[error("a unique constraint refused the write")]
    Conflict,
    #[error("invalid database configuration: {0}")]
    Config(String),
    #[error("cannot connect to the database")]
    Connect(#[source] DbErr),
    /// The database server could not be reached or refused the connection:
    /// where (host and port, never the password), and why.
    #[error("cannot connect to the database at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    /// The database was migrated by a newer latchkey than this one.
    #[error(
        "the database schema is newer than this latchkey (it has migration {0}, unknown here); \
         run a latchkey at least as new as the one that migrated it"
    )]
    SchemaTooNew(String),
    /// The account's credential changed between a login's check and its session.
    #[error("the credential changed while the session was being opened")]
    StaleCredential,
    #[error("the database has migrations still to apply")]
    MigrationsPending,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[from] DbErr),
    /// The SQLite file's disk is (nearly) full: writes fail or are about to.
    #[error("the database's disk is full")]
    DiskFull,
    /// The database did not answer within the time the caller allowed.
    #[error("the database did not answer in time")]
    NoAnswer,
}

impl StoreError {
    /// Whether the database could not be reached or did not answer: an
    /// outage (503, retry later), not a fault of this request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::NoAnswer | Self::Connect(_) | Self::Unreachable { .. } | Self::DiskFull => true,
            Self::Database(error) if is_disk_full(error) => true,
            Self::Database(DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) => true,
            Self::Database(
                DbErr::Exec(RuntimeErr::SqlxError(error))
                | DbErr::Query(RuntimeErr::SqlxError(error)),
            ) => matches!(
                error.deref(),
                sea_orm::sqlx::Error::Io(_)
                    | sea_orm::sqlx::Error::PoolTimedOut
                    | sea_orm::sqlx::Error::PoolClosed
                    | sea_orm::sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }

    /// Whether the database asked us to try again: a deadlock, a serialization
    /// failure or a busy SQLite file.
    pub fn is_retryable(&self) -> bool {
        let Self::Database(
            DbErr::Exec(RuntimeErr::SqlxError(error)) | DbErr::Query(RuntimeErr::SqlxError(error)),
        ) = self
        else {
            return false;
        };
        let sea_orm::sqlx::Error::Database(error) = error.deref() else {
            return false;
        };
        let code = error.code().unwrap_or_default();
        // SQLSTATE 40001 (MySQL/MariaDB deadlock, serialization failure), 40P01
        // (PostgreSQL deadlock); SQLite reports SQLITE_BUSY (5) and its extended codes.
        matches!(code.as_ref(), "40001" | "40P01") || sqlite_code(error.as_ref()) == Some(5)
    }
}

/// SQLite's `SQLITE_FULL` (13): a write failed for lack of disk space.
fn is_disk_full(error: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(error)) | DbErr::Query(RuntimeErr::SqlxError(error))) =
        error
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(error) = error.deref() else {
        return false;
    };
    sqlite_code(error.as_ref()) == Some(13)
}

/// SQLite's primary result code (the low byte of an extended code), for
/// SQLite errors only: other backends' numeric codes mean other things.
fn sqlite_code(error: &dyn sea_orm::sqlx::error::DatabaseError) -> Option<i32> {
    error.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()?;
    error
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .map(|code| code & 0xff)
}

/// Maps a write error, naming unique violations as [`StoreError::Conflict`].
pub(crate) fn classify_write(error: DbErr) -> StoreError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => StoreError::Conflict,
        _ => StoreError::Database(error),
    }
}

/// Runs a write, retrying a few times when the database reports a transient conflict.
pub(crate) async fn with_retry<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    const ATTEMPTS: u32 = 5;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(error) if tries < ATTEMPTS && error.is_retryable() => {
                tracing::debug!(tries, "retrying a write the database asked to retry");
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(tries))).await;
            }
            result => return result,
        }
    }
}
