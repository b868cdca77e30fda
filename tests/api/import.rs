//! Moving users over from the origin: its `users` table is built here (on the
//! backend under test; the origin ran on MySQL), imported, and its users log
//! in with their old passwords.

use latchkey::auth::import_origin_users;
use latchkey::clock::SystemClock;
use sea_orm::{ConnectionTrait, Database};
use secrecy::SecretString;

use crate::helpers::{Backend, TestApp, TestDatabase};

/// The origin's table, as its SQLAlchemy model creates it on each backend.
fn origin_table(backend: Backend) -> String {
    let id = match backend {
        Backend::MySql => "INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY",
        Backend::Postgres => "SERIAL PRIMARY KEY",
        Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
    };
    format!(
        "CREATE TABLE users (id {id}, username VARCHAR(50) UNIQUE, \
         email VARCHAR(100) UNIQUE, password VARCHAR(255))"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_users_import_once_and_log_in_with_their_old_passwords() {
    let app = TestApp::spawn().await;
    let origin = TestDatabase::create(Backend::under_test()).await;
    let connection = Database::connect(&origin.url).await.unwrap();
    connection
        .execute_unprepared(&origin_table(origin.backend))
        .await
        .unwrap();
    let carol_hash = bcrypt::hash("carols-old-password", 4).unwrap();
    let dave_hash = bcrypt::hash_with_result("short", 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA);
    let rows = [
        ("carol", "carol@example.com", carol_hash.as_str()),
        ("Dave", "dave@example.com", dave_hash.as_str()),
        ("x", "tiny@example.com", carol_hash.as_str()),
        ("erin", "not an email", carol_hash.as_str()),
        ("frank", "frank@example.com", "plaintext-password"),
    ];
    for (username, email, hash) in rows {
        let sql = format!(
            "INSERT INTO users (username, email, password) VALUES ('{username}', '{email}', '{hash}')"
        );
        connection.execute_unprepared(&sql).await.unwrap();
    }
    connection
        .execute_unprepared("INSERT INTO users (username) VALUES ('nulls')")
        .await
        .unwrap();
    let _ = connection.close().await;

    let origin_url = SecretString::from(origin.url.clone());
    let report = import_origin_users(&app.store, &origin_url, &SystemClock)
        .await
        .unwrap();
    assert_eq!(
        (
            report.imported,
            report.already_present,
            report.skipped.len()
        ),
        (2, 0, 4),
        "{report:?}"
    );
    assert!(
        report
            .skipped
            .iter()
            .all(|row| !row.reason.contains(&carol_hash))
    );
    let again = import_origin_users(&app.store, &origin_url, &SystemClock)
        .await
        .unwrap();
    assert_eq!((again.imported, again.already_present), (0, 2));

    // Origin passwords below today's minimum still log in: rules apply to new passwords.
    assert_eq!(app.login("dave", "short").await.status(), 200);
    assert_eq!(app.login("carol", "wrong-password").await.status(), 400);
    assert_eq!(
        app.login("carol", "carols-old-password").await.status(),
        200
    );
    let stored = app
        .store
        .find_user_by_login("carol")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$"),
        "rehashed at login"
    );
    assert_eq!(
        app.login("carol", "carols-old-password").await.status(),
        200
    );
}
