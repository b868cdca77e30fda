//! What must survive a restart, and what the schema check refuses.

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, json_with_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_signing_keys_survive_a_restart() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let jwks_before = app.jwks().await;
    let app = app.restart().await;
    assert_eq!(app.get_resource(&token).await.status(), 200);
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
    let jwks_after = app.jwks().await;
    assert_eq!(jwks_before, jwks_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_share_their_keys() {
    let app = TestApp::spawn().await;
    let second = app.sibling(Options::default()).await;
    let token = second.alice_token().await;
    assert_eq!(app.get_resource(&token).await.status(), 200);
    // The private half is sealed with the shared encryption key.
    let stored = app
        .stored_text("SELECT private_key FROM signing_keys")
        .await;
    assert!(stored.starts_with("v1."), "sealed at rest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_a_newer_schema_is_refused() {
    let app = TestApp::spawn().await;
    app.store
        .migrate()
        .await
        .expect("a second migration run changes nothing");
    let ready =
        json_with_status(app.client.get(app.url("/ready")).send().await.unwrap(), 200).await;
    assert_eq!(ready["status"], "ready");

    app.execute("INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29990101_000001_from_the_future', 0)").await;
    let refused = app
        .store
        .migrate()
        .await
        .expect_err("a newer schema is refused");
    let refused = latchkey::telemetry::error_chain(&refused);
    assert!(
        refused.contains("m29990101_000001_from_the_future"),
        "{refused}"
    );
    let not_ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    assert_eq!(not_ready.headers()["retry-after"], "1");
}
