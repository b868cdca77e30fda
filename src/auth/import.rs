//! Importing the origin's users: username, email and bcrypt hash are copied
//! when they satisfy our rules; rows that do not are skipped and reported.
//! Running it again changes nothing: accounts already present are left alone.
//! Imported users log in with their old passwords, and their bcrypt hash is
//! replaced by argon2id at that first login.

use secrecy::SecretString;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::{EmailAddress, Username};
use crate::store::origin::{OriginUserRow, read_origin_users};
use crate::store::{NewUser, Store, StoreError};

use super::hashing::{MAX_BCRYPT_COST, bcrypt_cost_allowed, is_bcrypt};

/// A row that was not imported, and why; never carries the hash.
#[derive(Debug, Clone)]
pub struct SkippedRow {
    pub origin_id: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub already_present: usize,
    pub skipped: Vec<SkippedRow>,
}

#[tracing::instrument(level = "info", skip_all)]
pub async fn import_origin_users(
    store: &Store,
    origin_url: &SecretString,
    clock: &dyn Clock,
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    for row in read_origin_users(origin_url).await? {
        let origin_id = row.id.clone();
        let (username, email, hash) = match parse_row(row) {
            Ok(parsed) => parsed,
            Err(reason) => {
                report.skipped.push(SkippedRow { origin_id, reason });
                continue;
            }
        };
        if store.username_taken(username.normalized()).await?
            || store.email_taken(email.normalized()).await?
        {
            report.already_present += 1;
            continue;
        }
        let inserted = store
            .insert_user(
                NewUser {
                    locale: None,
                    id: Uuid::now_v7(),
                    username: username.as_str(),
                    username_normalized: username.normalized(),
                    email: email.as_str(),
                    email_normalized: email.normalized(),
                    password_hash: &hash,
                    now: clock.now(),
                },
                &crate::store::Outgoing::default(),
            )
            .await;
        match inserted {
            Ok(()) => report.imported += 1,
            Err(StoreError::Conflict) => report.already_present += 1,
            Err(error) => return Err(error),
        }
    }
    Ok(report)
}

fn parse_row(row: OriginUserRow) -> Result<(Username, EmailAddress, String), String> {
    let username = row.username.ok_or("username is NULL")?;
    let username =
        Username::parse(&username).map_err(|invalid| format!("username {}", invalid.message))?;
    let email = row.email.ok_or("email is NULL")?;
    let email =
        EmailAddress::parse(&email).map_err(|invalid| format!("email {}", invalid.message))?;
    let hash = row.password_hash.ok_or("password hash is NULL")?;
    if !is_bcrypt(&hash) || hash.parse::<bcrypt::HashParts>().is_err() {
        return Err("password is not a bcrypt hash ($2a$, $2b$ or $2y$)".to_owned());
    }
    if !bcrypt_cost_allowed(&hash) {
        return Err(format!("bcrypt cost above {MAX_BCRYPT_COST}"));
    }
    Ok((username, email, hash))
}
