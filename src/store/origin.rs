//! Reads the origin service's `users` table (see `shared/seed/CONTRACT.md`):
//! `id`, `username`, `email` and `password` (a bcrypt hash). Read-only.

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use secrecy::{ExposeSecret, SecretString};

use super::StoreError;

/// One row of the origin's table; any column may be NULL there.
pub struct OriginUserRow {
    pub id: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
}

/// Every row of the origin's `users` table, in id order.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn read_origin_users(url: &SecretString) -> Result<Vec<OriginUserRow>, StoreError> {
    let url = url.expose_secret();
    let driver_url = match url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => url.to_owned(),
    };
    let db = Database::connect(driver_url)
        .await
        .map_err(StoreError::Connect)?;
    let backend = db.get_database_backend();
    // The id is read as text so its integer width does not matter.
    let id_as_text = match backend {
        DbBackend::MySql => "CAST(id AS CHAR)",
        _ => "CAST(id AS TEXT)",
    };
    let sql =
        format!("SELECT {id_as_text} AS id, username, email, password FROM users ORDER BY id");
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await?;
    let users = rows
        .iter()
        .map(|row| {
            Ok(OriginUserRow {
                id: row.try_get("", "id")?,
                username: row.try_get("", "username")?,
                email: row.try_get("", "email")?,
                password_hash: row.try_get("", "password")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    let _ = db.close().await;
    Ok(users)
}
