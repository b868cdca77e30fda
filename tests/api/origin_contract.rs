//! The origin's three routes, exactly as `shared/seed/CONTRACT.md` describes them.

use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, TestApp, json_with_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_answers_the_account_and_never_the_password() {
    let app = TestApp::spawn().await;
    let body = json_with_status(
        app.register("Alice", "Alice@Example.com", ALICE_PASSWORD)
            .await,
        200,
    )
    .await;
    assert_eq!(body["username"], "Alice");
    assert_eq!(body["email"], "Alice@Example.com");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
    );
    let text = body.to_string();
    assert!(!text.contains(ALICE_PASSWORD));
    assert!(!text.contains("$argon2"));
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["created_at", "email", "id", "username"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_username_is_refused_case_insensitively() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("alice", "alice@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
    let body = json_with_status(
        app.register("ALICE", "other@example.com", ALICE_PASSWORD)
            .await,
        400,
    )
    .await;
    assert_eq!(body, json!({"detail": "Username already registered"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_email_is_refused_case_insensitively() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("alice", "alice@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
    let body = json_with_status(
        app.register("bob", "ALICE@example.COM", ALICE_PASSWORD)
            .await,
        400,
    )
    .await;
    assert_eq!(body, json!({"detail": "Email already registered"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_login_answers_a_bearer_token_that_is_not_cached() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let response = app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_with_status(response, 200).await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 15 * 60);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_login_and_login_by_email_work() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let response = app
        .client
        .post(app.url("/login"))
        .json(&json!({"username": "ALICE@example.com", "password": ALICE_PASSWORD}))
        .send()
        .await
        .unwrap();
    let body = json_with_status(response, 200).await;
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.get_resource(token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_accepts_the_oauth_password_grant_fields() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("scope", ""),
        ("client_id", "x"),
    ];
    let response = app
        .client
        .post(app.url("/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let form = [
        ("grant_type", "client_credentials"),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
    ];
    let response = app
        .client
        .post(app.url("/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_user_fail_identically() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let expected = json!({"detail": "Incorrect username or password"});
    let wrong_password =
        json_with_status(app.login("alice", "tangerine lantern 43").await, 400).await;
    let unknown_user = json_with_status(app.login("mallory", ALICE_PASSWORD).await, 400).await;
    let impossible_name =
        json_with_status(app.login(&"m".repeat(400), ALICE_PASSWORD).await, 400).await;
    assert_eq!(wrong_password, expected);
    assert_eq!(unknown_user, expected);
    assert_eq!(impossible_name, expected);
}

/// MariaDB's PAD SPACE collations compare `'alice '` equal to `'alice'`;
/// PostgreSQL and SQLite do not. Every backend must refuse it alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_trailing_spaces_never_log_in() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    for name in ["alice ", "alice  ", "alice@example.com "] {
        let body = json_with_status(app.login(name, ALICE_PASSWORD).await, 400).await;
        assert_eq!(
            body,
            json!({"detail": "Incorrect username or password"}),
            "{name:?}"
        );
    }
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protected_resource_needs_a_valid_bearer_token() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let body = json_with_status(app.get_resource(&token).await, 200).await;
    assert_eq!(
        body,
        json!({"message": "You have access to the protected resource"})
    );

    let missing = app
        .client
        .get(app.url("/get-resource"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        json_with_status(missing, 401).await,
        json!({"detail": "Not authenticated"})
    );

    let basic = app
        .client
        .get(app.url("/get-resource"))
        .basic_auth("alice", Some(ALICE_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(basic, 401).await,
        json!({"detail": "Not authenticated"})
    );

    let garbage = app.get_resource("not-a-token").await;
    assert_eq!(garbage.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        json_with_status(garbage, 401).await,
        json!({"detail": "Invalid token"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_returns_the_tokens_account() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let response = app.get_with_token("/me", &token).await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    assert!(body["created_at"].is_string());
    let unauthenticated = app.client.get(app.url("/me")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_travel_in_a_header_never_in_the_body() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/get-resource"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let body = response.text().await.unwrap();
    assert_eq!(body, r#"{"detail":"Not authenticated"}"#);

    let generated = app.login("nobody", "whatever-password").await;
    assert!(!generated.headers()["x-request-id"].is_empty());
    let body: Value = generated.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_simultaneous_registrations_of_one_username_make_one_account() {
    let app = TestApp::spawn().await;
    let attempts = (0..20).map(|n| {
        let client = app.client.clone();
        let url = app.url("/register");
        async move {
            let body = json!({"username": "racer", "email": format!("racer{n}@example.com"), "password": ALICE_PASSWORD});
            let response = client.post(url).json(&body).send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    });
    let outcomes = futures_join_all(attempts).await;
    let created = outcomes.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(created, 1, "{outcomes:?}");
    for (status, body) in outcomes.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body, &json!({"detail": "Username already registered"}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_can_neither_log_in_nor_use_a_token() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    // Disabled behind latchkey's back, straight in the database: bearer checks
    // read no database, so the change arrives with the next revocation poll,
    // triggered here rather than waited for.
    app.execute("UPDATE users SET disabled = TRUE WHERE username_normalized = 'alice'")
        .await;
    app.auth.poll_shared_state(false).await.unwrap();
    assert_eq!(
        json_with_status(app.get_resource(&token).await, 401).await,
        json!({"detail": "Invalid token"})
    );
    let body = json_with_status(app.login("alice", ALICE_PASSWORD).await, 400).await;
    assert_eq!(body, json!({"detail": "Incorrect username or password"}));
}

/// Runs every future at once on the test's runtime.
async fn futures_join_all<F: Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}
