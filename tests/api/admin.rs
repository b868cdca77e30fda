//! The admin API, black-box: who may call what (every `/admin/*` route in
//! the OpenAPI document against five kinds of caller), users and their
//! pages, roles and metadata in tokens, deletion on every instance, export.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use latchkey::auth::{Actor, ClientContext};
use latchkey::store::{NewUser, Outgoing};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, TestApp, api_key, call, claims, json_with_status};

/// bob, holding the `admin` role; his access token.
async fn admin_token(app: &TestApp) -> String {
    let registered = app.register("bob", "bob@example.com", ALICE_PASSWORD).await;
    assert_eq!(registered.status(), 200);
    let operator = (Actor::Operator, ClientContext::default());
    app.auth
        .create_role("admin", None, &operator.0, &operator.1)
        .await
        .unwrap();
    let bob = app.auth.find_account("bob").await.unwrap().unwrap();
    app.auth
        .set_roles(bob.id, vec!["admin".to_owned()], &operator.0, &operator.1)
        .await
        .unwrap();
    app.token_for("bob", ALICE_PASSWORD).await
}

fn scope_of(path: &str) -> &'static str {
    if path.starts_with("/admin/audit") {
        "admin:audit"
    } else if path.starts_with("/admin/api-keys") {
        "admin:keys"
    } else if path.starts_with("/admin/webhooks") {
        "admin:webhooks"
    } else {
        "admin:users"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_checks_its_caller_before_anything_else() {
    let app = TestApp::spawn().await;
    let user = app.alice_token().await;
    let admin = admin_token(&app).await;
    let document = json_with_status(app.get("/openapi.json").await, 200).await;
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.starts_with("/admin") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    assert!(
        routes.len() >= 15,
        "the admin routes are documented: {routes:?}"
    );
    let nobody = format!("/admin/users/{}", uuid::Uuid::now_v7());
    for (method, path) in &routes {
        let concrete = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method != Method::GET).then(|| json!({}));
        let scope = scope_of(path);
        let wrong = api_key(
            &app,
            &[if scope == "admin:audit" {
                "admin:users"
            } else {
                "admin:audit"
            }],
        )
        .await;
        let right = api_key(&app, &[scope]).await;
        let cases: [(&str, Option<&str>, &[u16]); 6] = [
            ("no credentials", None, &[401]),
            ("an unknown key", Some("lk_unknown"), &[401]),
            ("a normal account", Some(&user), &[403]),
            ("a key without the scope", Some(&wrong), &[403]),
            ("a key with the scope", Some(&right), &[]),
            ("an admin account", Some(&admin), &[]),
        ];
        for (who, token, expected) in cases {
            let status = call(&app, method.clone(), &concrete, token, body.clone())
                .await
                .status()
                .as_u16();
            if expected.is_empty() {
                assert!(
                    ![401, 403].contains(&status) && status < 500,
                    "{method} {path} as {who}: {status}"
                );
            } else {
                assert!(
                    expected.contains(&status),
                    "{method} {path} as {who}: {status}"
                );
            }
        }
    }
    // A revoked key is unknown from then on.
    let key = api_key(&app, &["admin:users"]).await;
    assert_eq!(
        call(&app, Method::GET, &nobody, Some(&key), None)
            .await
            .status(),
        404
    );
    let listed = json_with_status(
        call(&app, Method::GET, "/admin/api-keys", Some(&admin), None).await,
        200,
    )
    .await;
    let id = listed.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(listed.as_array().unwrap().last().unwrap()["last_used_at"].is_string());
    let revoked = call(
        &app,
        Method::DELETE,
        &format!("/admin/api-keys/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        call(&app, Method::GET, &nobody, Some(&key), None)
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_users_skip_and_repeat_nothing_while_others_sign_up() {
    let app = TestApp::spawn().await;
    let key = api_key(&app, &["admin:users"]).await;
    let now = chrono::Utc::now();
    let mut expected = HashSet::new();
    for index in 0..1000 {
        let id = uuid::Uuid::now_v7();
        let name = format!("user{index:04}");
        let email = format!("{name}@example.com");
        app.store
            .insert_user(
                NewUser {
                    id,
                    username: &name,
                    username_normalized: &name,
                    email: &email,
                    email_normalized: &email,
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                    locale: None,
                    now,
                },
                &Outgoing::default(),
            )
            .await
            .unwrap();
        expected.insert(id.to_string());
    }
    // Others sign up while the pages are read.
    let store = app.store.clone();
    let inserts = tokio::spawn(async move {
        for index in 0..200 {
            let name = format!("late{index:04}");
            let email = format!("{name}@example.com");
            store
                .insert_user(
                    NewUser {
                        id: uuid::Uuid::now_v7(),
                        username: &name,
                        username_normalized: &name,
                        email: &email,
                        email_normalized: &email,
                        password_hash: "x",
                        locale: None,
                        now: chrono::Utc::now(),
                    },
                    &Outgoing::default(),
                )
                .await
                .unwrap();
        }
    });
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/admin/users?limit=37&cursor={cursor}"),
            None => "/admin/users?limit=37".to_owned(),
        };
        let page =
            json_with_status(call(&app, Method::GET, &path, Some(&key), None).await, 200).await;
        for user in page["users"].as_array().unwrap() {
            let id = user["id"].as_str().unwrap().to_owned();
            assert!(seen.insert(id.clone()), "{id} twice");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    inserts.await.unwrap();
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(missing.is_empty(), "skipped: {missing:?}");

    // Filters: a prefix of the name or the address, case-insensitive.
    let page = json_with_status(
        call(
            &app,
            Method::GET,
            "/admin/users?q=USER099&limit=200",
            Some(&key),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["users"].as_array().unwrap().len(), 10);
    let page = json_with_status(
        call(
            &app,
            Method::GET,
            "/admin/users?q=user_&limit=200",
            Some(&key),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["users"].as_array().unwrap().len(), 0, "_ is literal");
    let bad = call(
        &app,
        Method::GET,
        "/admin/users?cursor=%21%21",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(bad.status(), 422);
    let bad = call(
        &app,
        Method::GET,
        "/admin/users?disabled=maybe",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_metadata_reach_tokens_at_the_next_refresh() {
    let app = TestApp::spawn().await;
    let key = api_key(&app, &["admin:users"]).await;
    let registered = app
        .register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    assert_eq!(registered.status(), 200);
    let (access, refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    assert_eq!(claims(&access)["roles"], json!([]));
    let id = claims(&access)["sub"].as_str().unwrap().to_owned();

    let unknown = call(
        &app,
        Method::PUT,
        &format!("/admin/users/{id}/roles"),
        Some(&key),
        Some(json!({"roles": ["editor"]})),
    )
    .await;
    assert_eq!(unknown.status(), 422);
    let created = call(
        &app,
        Method::POST,
        "/admin/roles",
        Some(&key),
        Some(json!({"name": "editor"})),
    )
    .await;
    assert_eq!(created.status(), 201);
    let again = call(
        &app,
        Method::POST,
        "/admin/roles",
        Some(&key),
        Some(json!({"name": "editor"})),
    )
    .await;
    assert_eq!(again.status(), 409);
    let set = call(
        &app,
        Method::PUT,
        &format!("/admin/users/{id}/roles"),
        Some(&key),
        Some(json!({"roles": ["editor"]})),
    )
    .await;
    assert_eq!(json_with_status(set, 200).await["roles"], json!(["editor"]));
    let patched = call(
        &app,
        Method::PATCH,
        &format!("/admin/users/{id}"),
        Some(&key),
        Some(json!({"app_metadata": {"plan": "pro"}})),
    )
    .await;
    assert_eq!(
        json_with_status(patched, 200).await["app_metadata"],
        json!({"plan": "pro"})
    );
    let too_big = call(
        &app,
        Method::PATCH,
        &format!("/admin/users/{id}"),
        Some(&key),
        Some(json!({"app_metadata": {"x": "y".repeat(5000)}})),
    )
    .await;
    assert_eq!(too_big.status(), 422);
    let not_object = call(
        &app,
        Method::PATCH,
        &format!("/admin/users/{id}"),
        Some(&key),
        Some(json!({"app_metadata": [1]})),
    )
    .await;
    assert_eq!(not_object.status(), 422);

    let refreshed = json_with_status(app.refresh(&refresh).await, 200).await;
    let access = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(access["roles"], json!(["editor"]));
    assert_eq!(access["app_metadata"], json!({"plan": "pro"}));

    // user_metadata is the user's own.
    let token = refreshed["access_token"].as_str().unwrap();
    let patched = app
        .client
        .patch(app.url("/me"))
        .bearer_auth(token)
        .json(&json!({"user_metadata": {"theme": "dark"}}))
        .send()
        .await
        .unwrap();
    let me = json_with_status(patched, 200).await;
    assert_eq!(me["user_metadata"], json!({"theme": "dark"}));
    assert_eq!(me["roles"], json!(["editor"]));
    let too_big = app
        .client
        .patch(app.url("/me"))
        .bearer_auth(token)
        .json(&json!({"user_metadata": {"x": "y".repeat(5000)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 422);

    // Disabling ends the sessions at once.
    let disabled = call(
        &app,
        Method::PATCH,
        &format!("/admin/users/{id}"),
        Some(&key),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(json_with_status(disabled, 200).await["disabled"], true);
    assert_eq!(app.get_with_token("/me", token).await.status(), 401);
    let audit_key = api_key(&app, &["admin:audit"]).await;
    let audit = json_with_status(
        call(
            &app,
            Method::GET,
            &format!("/admin/audit?user_id={id}&event=user_disabled"),
            Some(&audit_key),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(audit["events"][0]["outcome"], "by key test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_is_gone_everywhere_within_a_second_but_its_tombstone() {
    let app = TestApp::spawn().await;
    let other = app.sibling(crate::helpers::Options::default()).await;
    let token = app.alice_token().await;
    let id = claims(&token)["sub"].as_str().unwrap().to_owned();
    // Known to the other instance before the deletion.
    assert_eq!(other.get_with_token("/me", &token).await.status(), 200);
    let export = json_with_status(app.get_with_token("/me/export", &token).await, 200).await;
    assert_eq!(export["account"]["username"], "alice");
    assert!(!export["sessions"].as_array().unwrap().is_empty());
    assert!(!export["audit_events"].as_array().unwrap().is_empty());
    let events =
        json_with_status(app.get_with_token("/me/security-events", &token).await, 200).await;
    assert_eq!(events[0]["event"], "login_success");

    let wrong = app
        .client
        .delete(app.url("/me"))
        .bearer_auth(&token)
        .json(&json!({"password": "not her password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    let deleted = app
        .client
        .delete(app.url("/me"))
        .bearer_auth(&token)
        .json(&json!({"password": ALICE_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get_with_token("/me", &token).await.status(), 401);
    let started = Instant::now();
    while other.get_with_token("/me", &token).await.status() != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still accepted after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 400);
    // Only a tombstone is left: no address, no user agent.
    let audit_key = api_key(&app, &["admin:audit"]).await;
    let trail = json_with_status(
        call(
            &app,
            Method::GET,
            &format!("/admin/audit?user_id={id}"),
            Some(&audit_key),
            None,
        )
        .await,
        200,
    )
    .await;
    let events = trail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{trail}");
    assert_eq!(events[0]["event"], "user_deleted");
    assert_eq!(events[0]["outcome"], "by the account holder");
    assert_eq!(events[0]["ip"], Value::Null);
    assert_eq!(events[0]["user_agent"], Value::Null);
    // The name is free again.
    assert_eq!(
        app.register("alice", "alice@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_edit_unlock_and_delete_accounts() {
    let app = TestApp::spawn().await;
    let key = api_key(&app, &["admin:users"]).await;
    let created = call(&app, Method::POST, "/admin/users", Some(&key), Some(json!({
        "username": "carol", "email": "carol@example.com", "password": ALICE_PASSWORD, "email_verified": true
    }))).await;
    let carol = json_with_status(created, 201).await;
    assert_eq!(carol["email_verified"], true);
    let id = carol["id"].as_str().unwrap().to_owned();
    let token = app.token_for("carol", ALICE_PASSWORD).await;
    // Validation as at registration.
    let weak = call(
        &app,
        Method::POST,
        "/admin/users",
        Some(&key),
        Some(json!({
            "username": "dave", "email": "dave@example.com", "password": "password"
        })),
    )
    .await;
    assert_eq!(weak.status(), 422);
    let taken = call(
        &app,
        Method::POST,
        "/admin/users",
        Some(&key),
        Some(json!({
            "username": "Carol", "email": "x@example.com", "password": ALICE_PASSWORD
        })),
    )
    .await;
    assert_eq!(taken.status(), 400);
    let no_mail = call(
        &app,
        Method::POST,
        "/admin/users",
        Some(&key),
        Some(json!({
            "username": "erin", "email": "erin@example.com"
        })),
    )
    .await;
    assert_eq!(no_mail.status(), 503, "an invitation needs email");

    let sessions = json_with_status(
        call(
            &app,
            Method::GET,
            &format!("/admin/users/{id}/sessions"),
            Some(&key),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    let ended = call(
        &app,
        Method::DELETE,
        &format!("/admin/users/{id}/sessions"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(ended.status(), 204);
    assert_eq!(app.get_with_token("/me", &token).await.status(), 401);

    for _ in 0..10 {
        app.login("carol", "wrong password here").await;
    }
    assert_eq!(app.login("carol", ALICE_PASSWORD).await.status(), 429);
    let unlocked = call(
        &app,
        Method::POST,
        &format!("/admin/users/{id}/unlock"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(unlocked.status(), 204);
    assert_eq!(app.login("carol", ALICE_PASSWORD).await.status(), 200);

    let renamed = call(
        &app,
        Method::PATCH,
        &format!("/admin/users/{id}"),
        Some(&key),
        Some(json!({"username": "caroline"})),
    )
    .await;
    assert_eq!(json_with_status(renamed, 200).await["username"], "caroline");
    let factors = call(
        &app,
        Method::DELETE,
        &format!("/admin/users/{id}/mfa"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(json_with_status(factors, 200).await["removed"], false);
    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/admin/users/{id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(deleted.status(), 204);
    let gone = call(
        &app,
        Method::GET,
        &format!("/admin/users/{id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(gone.status(), 404);
    let audit_key = api_key(&app, &["admin:audit"]).await;
    let trail = json_with_status(
        call(
            &app,
            Method::GET,
            &format!("/admin/audit?user_id={id}"),
            Some(&audit_key),
            None,
        )
        .await,
        200,
    )
    .await;
    let events = trail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{trail}");
    assert_eq!(events[0]["event"], "user_deleted");
    assert_eq!(events[0]["outcome"], "by key test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_users_cannot_make_or_touch_an_admin() {
    let app = TestApp::spawn().await;
    let key = api_key(&app, &["admin:users"]).await;
    let refused = call(
        &app,
        Method::POST,
        "/admin/roles",
        Some(&key),
        Some(json!({"name": "admin"})),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let admin = admin_token(&app).await;
    let bob = claims(&admin)["sub"].as_str().unwrap().to_owned();
    let created = call(&app, Method::POST, "/admin/users", Some(&key), Some(json!({
        "username": "mallory", "email": "mallory@example.com", "password": ALICE_PASSWORD, "roles": ["admin"]
    }))).await;
    assert_eq!(created.status(), 403);
    let created = call(
        &app,
        Method::POST,
        "/admin/users",
        Some(&key),
        Some(json!({
            "username": "mallory", "email": "mallory@example.com", "password": ALICE_PASSWORD
        })),
    )
    .await;
    let mallory = json_with_status(created, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let granted = call(
        &app,
        Method::PUT,
        &format!("/admin/users/{mallory}/roles"),
        Some(&key),
        Some(json!({"roles": ["admin"]})),
    )
    .await;
    assert_eq!(granted.status(), 403);
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/admin/users/{bob}"),
            Some(json!({"email": "mallory2@example.com"})),
        ),
        (Method::DELETE, format!("/admin/users/{bob}"), None),
        (Method::DELETE, format!("/admin/users/{bob}/mfa"), None),
        (Method::DELETE, format!("/admin/users/{bob}/sessions"), None),
    ] {
        let status = call(&app, method.clone(), &path, Some(&key), body)
            .await
            .status();
        assert_eq!(status, 403, "{method} {path}");
    }
    // An admin may.
    let granted = call(
        &app,
        Method::PUT,
        &format!("/admin/users/{mallory}/roles"),
        Some(&admin),
        Some(json!({"roles": ["admin"]})),
    )
    .await;
    assert_eq!(granted.status(), 200);
}
