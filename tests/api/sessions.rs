//! Sessions and the token lifecycle: rotation, reuse detection, expiry,
//! logout, listing, and revocation reaching every instance.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, json_with_status};

async fn new_refresh_token(response: reqwest::Response) -> (String, String) {
    let body = json_with_status(response, 200).await;
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn assert_invalid_grant(response: reqwest::Response) {
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body["error_description"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_refresh_token_ends_the_session_and_every_token_of_it() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (first_access, first_refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (second_access, second_refresh) =
        new_refresh_token(app.refresh(&first_refresh).await).await;
    assert_ne!(first_refresh, second_refresh);
    assert_eq!(app.get_resource(&second_access).await.status(), 200);
    // Within the grace window, while the successor is unused, the spent token
    // answers the same successor again.
    let (_, again) = new_refresh_token(app.refresh(&first_refresh).await).await;
    assert_eq!(again, second_refresh);
    let (third_access, third_refresh) = new_refresh_token(app.refresh(&second_refresh).await).await;

    // The successor is used now: presenting the first token is a reuse.
    assert_invalid_grant(app.refresh(&first_refresh).await).await;
    assert_invalid_grant(app.refresh(&third_refresh).await).await;
    for access in [&first_access, &second_access, &third_access] {
        assert_eq!(app.get_resource(access).await.status(), 401);
    }
    let (other_session, _) = app.token_pair("alice", ALICE_PASSWORD).await;
    assert_eq!(app.get_resource(&other_session).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_refresh_token_is_a_reuse_after_the_grace_window_or_without_one() {
    let app = TestApp::spawn().await;
    let (app, clock) = app.with_manual_clock().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (_, first) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (_, second) = new_refresh_token(app.refresh(&first).await).await;
    clock.advance(Duration::seconds(11));
    assert_invalid_grant(app.refresh(&first).await).await;
    assert_invalid_grant(app.refresh(&second).await).await;

    let strict = app
        .sibling(Options::customized(|settings| {
            settings.sessions.refresh_grace_seconds = latchkey::config::Bounded::clamped(0);
        }))
        .await;
    let (_, first) = strict.token_pair("alice", ALICE_PASSWORD).await;
    let (_, second) = new_refresh_token(strict.refresh(&first).await).await;
    assert_invalid_grant(strict.refresh(&first).await).await;
    assert_invalid_grant(strict.refresh(&second).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_simultaneous_refreshes_all_receive_the_one_live_successor() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (_, refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/oauth/token");
            let refresh = refresh.clone();
            tokio::spawn(async move {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                ];
                let response = client.post(url).form(&form).send().await.unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        assert_eq!(status, 200, "{body}");
        successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        successors.len(),
        1,
        "every presenter got the same successor"
    );
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(
        app.refresh(&successor).await.status(),
        200,
        "and it is live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_when_idle_and_at_their_absolute_limit() {
    let app = TestApp::spawn().await;
    let (app, clock) = app.with_manual_clock().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;

    let (_, idle) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (_, mut active) = app.token_pair("alice", ALICE_PASSWORD).await;
    clock.advance(Duration::days(6));
    active = new_refresh_token(app.refresh(&active).await).await.1;
    clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_invalid_grant(app.refresh(&idle).await).await;

    // Used every six days, the active session still ends 30 days after login.
    for _ in 0..3 {
        active = new_refresh_token(app.refresh(&active).await).await.1;
        clock.advance(Duration::days(6));
    }
    active = new_refresh_token(app.refresh(&active).await).await.1;
    clock.advance(Duration::days(5));
    assert_invalid_grant(app.refresh(&active).await).await;
}

async fn logout(app: &TestApp, token: &str, scope: Option<&str>) -> u16 {
    let mut request = app.client.post(app.url("/logout")).bearer_auth(token);
    if let Some(scope) = scope {
        request = request.query(&[("scope", scope)]);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_this_session_the_others_or_all_of_them() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (first, first_refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (second, _) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (third, _) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (fourth, _) = app.token_pair("alice", ALICE_PASSWORD).await;

    assert_eq!(logout(&app, &first, None).await, 204);
    assert_eq!(app.get_resource(&first).await.status(), 401);
    assert_invalid_grant(app.refresh(&first_refresh).await).await;
    assert_eq!(app.get_resource(&second).await.status(), 200);

    assert_eq!(logout(&app, &second, Some("others")).await, 204);
    assert_eq!(app.get_resource(&third).await.status(), 401);
    assert_eq!(app.get_resource(&fourth).await.status(), 401);
    assert_eq!(app.get_resource(&second).await.status(), 200);
    assert_eq!(
        logout(&app, &second, Some("others")).await,
        204,
        "idempotent"
    );

    assert_eq!(logout(&app, &second, Some("sideways")).await, 422);
    assert_eq!(logout(&app, &second, Some("global")).await, 204);
    assert_eq!(app.get_resource(&second).await.status(), 401);
    assert_eq!(logout(&app, &second, None).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_only_their_owner_can_end_them() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    app.register("bob", "bob@example.com", ALICE_PASSWORD).await;
    let (alice, _) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (alice_elsewhere, _) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (bob, _) = app.token_pair("bob", ALICE_PASSWORD).await;

    let list = |token: String| {
        let request = app.client.get(app.url("/sessions")).bearer_auth(token);
        async move { json_with_status(request.send().await.unwrap(), 200).await }
    };
    let sessions = list(alice.clone()).await;
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions
            .iter()
            .filter(|session| session["current"] == json!(true))
            .count(),
        1
    );
    assert!(
        sessions[0]["ip"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("127."))
    );
    let other = sessions
        .iter()
        .find(|session| session["current"] == json!(false))
        .unwrap();
    let other_id = other["id"].as_str().unwrap();

    let bob_tries = app
        .client
        .delete(app.url(&format!("/sessions/{other_id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(bob_tries, 404).await,
        json!({"detail": "Session not found"})
    );
    assert_eq!(app.get_resource(&alice_elsewhere).await.status(), 200);
    let not_a_uuid = app
        .client
        .delete(app.url("/sessions/nope"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_uuid.status(), 404);

    let ended = app
        .client
        .delete(app.url(&format!("/sessions/{other_id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(app.get_resource(&alice_elsewhere).await.status(), 401);
    assert_eq!(list(alice).await.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_reaches_another_at_its_next_reload() {
    let app = TestApp::spawn().await;
    let second = app.sibling(Options::default()).await;
    let token = app.alice_token().await;
    assert_eq!(second.get_resource(&token).await.status(), 200);
    assert_eq!(logout(&app, &token, None).await, 204);
    second.auth.poll_shared_state(false).await.unwrap();
    assert_eq!(second.get_resource(&token).await.status(), 401);
}

/// The background reload runs by itself, every 250 ms by default: the one
/// test that watches the real poller, for the promise made in the README.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_reaches_another_within_a_second() {
    let app = TestApp::spawn().await;
    let second = app.sibling(Options::default()).await;
    let token = app.alice_token().await;
    assert_eq!(second.get_resource(&token).await.status(), 200);
    assert_eq!(logout(&app, &token, None).await, 204);
    let logged_out = Instant::now();
    loop {
        if second.get_resource(&token).await.status() == 401 {
            break;
        }
        assert!(
            logged_out.elapsed() < StdDuration::from_secs(1),
            "the second instance still accepts the token"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_a_restart() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    assert_eq!(logout(&app, &token, None).await, 204);
    let app = app.restart().await;
    assert_eq!(app.get_resource(&token).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_published_before_it_signs_and_old_tokens_still_verify() {
    let app = TestApp::spawn().await;
    let (app, clock) = app.with_manual_clock().await;
    let before = app.alice_token().await;
    let old_kid = token_header(&before)["kid"].as_str().unwrap().to_owned();
    let new_kid = app.auth.rotate_signing_key().await.unwrap();
    // The running server picks the new key up from the database at its next
    // key reload, triggered here rather than waited for.
    app.auth.poll_shared_state(true).await.unwrap();
    assert_eq!(app.jwks().await["keys"].as_array().unwrap().len(), 2);
    assert_eq!(app.get_resource(&before).await.status(), 200);
    // Published, not signing yet: consumers learn it first.
    let during = app.token_for("alice", ALICE_PASSWORD).await;
    assert_eq!(token_header(&during)["kid"], old_kid);
    clock.advance(Duration::seconds(901));
    app.auth.poll_shared_state(true).await.unwrap();
    let after = app.token_for("alice", ALICE_PASSWORD).await;
    assert_eq!(token_header(&after)["kid"], new_kid);
    assert_eq!(app.get_resource(&after).await.status(), 200);
    let restarted = app.restart().await;
    assert_eq!(restarted.get_resource(&after).await.status(), 200);
    assert_eq!(restarted.jwks().await["keys"].as_array().unwrap().len(), 2);
    let again = restarted.token_for("alice", ALICE_PASSWORD).await;
    assert_eq!(token_header(&again)["kid"], new_kid);
}

fn token_header(token: &str) -> Value {
    serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_signing_key_stops_its_tokens_even_once_verified() {
    let app = TestApp::spawn().await;
    let before = app.alice_token().await;
    // Verified once, so remembered by the bearer cache.
    assert_eq!(app.get_resource(&before).await.status(), 200);
    let old_kid = token_header(&before)["kid"].as_str().unwrap().to_owned();
    app.auth.rotate_signing_key().await.unwrap();
    // An operator removes the old key, say because it leaked.
    app.execute(&format!("DELETE FROM signing_keys WHERE kid = '{old_kid}'"))
        .await;
    app.auth.poll_shared_state(true).await.unwrap();
    assert_eq!(app.get_resource(&before).await.status(), 401);
    let after = app.token_for("alice", ALICE_PASSWORD).await;
    assert_eq!(app.get_resource(&after).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_other_session() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (current, current_refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (other, other_refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    let change = |current_password: &str, new_password: &str| {
        let body = json!({"current_password": current_password, "new_password": new_password});
        app.client
            .post(app.url("/me/password"))
            .bearer_auth(&current)
            .json(&body)
            .send()
    };
    let wrong = change("not my password", "a brand new passphrase")
        .await
        .unwrap();
    assert_eq!(
        json_with_status(wrong, 400).await,
        json!({"detail": "Current password is incorrect"})
    );
    let weak = change(ALICE_PASSWORD, "password").await.unwrap();
    assert_eq!(
        json_with_status(weak, 422).await["detail"][0]["loc"],
        json!(["body", "new_password"])
    );
    assert_eq!(app.get_resource(&other).await.status(), 200);

    assert_eq!(
        change(ALICE_PASSWORD, "a brand new passphrase")
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(app.get_resource(&current).await.status(), 200);
    // The session the change was made from lives on, refreshes included.
    assert_eq!(app.refresh(&current_refresh).await.status(), 200);
    assert_eq!(app.get_resource(&other).await.status(), 401);
    assert_invalid_grant(app.refresh(&other_refresh).await).await;
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 400);
    assert_eq!(
        app.login("alice", "a brand new passphrase").await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_sessions_at_once() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (access, refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    assert!(app.auth.set_disabled("ALICE", true).await.unwrap());
    assert_eq!(app.get_resource(&access).await.status(), 401);
    assert_invalid_grant(app.refresh(&refresh).await).await;
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 400);
    assert!(
        app.auth
            .set_disabled("alice@example.com", false)
            .await
            .unwrap()
    );
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
    assert!(!app.auth.set_disabled("nobody", true).await.unwrap());
}

/// Twelve logins with the old password race each password change, twenty
/// times: once the change has answered, none of them holds a usable session
/// (its access token is refused and its refresh token spent nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_racing_a_password_change_never_keep_a_session() {
    let options = Options::customized(|settings| {
        settings.throttle.rate_limits = latchkey::config::Switch::Off;
    });
    let app = TestApp::spawn_with(options).await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let mut password = ALICE_PASSWORD.to_owned();
    let mut survivors = Vec::new();
    for round in 0..20 {
        let token = app.token_for("alice", &password).await;
        let logins: Vec<_> = (0..12)
            .map(|_| {
                let (client, url, password) =
                    (app.client.clone(), app.url("/login"), password.clone());
                tokio::spawn(async move {
                    let form = [("username", "alice"), ("password", password.as_str())];
                    let response = client.post(url).form(&form).send().await.unwrap();
                    (response.status().as_u16() == 200).then_some(response)
                })
            })
            .collect();
        let new_password = format!("{ALICE_PASSWORD} round {round}");
        let change = app
            .client
            .post(app.url("/me/password"))
            .bearer_auth(&token)
            .json(&json!({"current_password": password, "new_password": new_password}))
            .send()
            .await
            .unwrap();
        assert_eq!(change.status(), 204, "round {round}");
        password = new_password;
        for login in logins {
            if let Some(response) = login.await.unwrap() {
                survivors.push(new_refresh_token(response).await);
            }
        }
        // Logins that finished after the change answered were refused above;
        // the earlier ones' sessions must be dead everywhere.
        app.auth.poll_shared_state(false).await.unwrap();
        for (access, refresh) in survivors.drain(..) {
            assert_eq!(
                app.get_resource(&access).await.status(),
                401,
                "round {round}"
            );
            assert_eq!(app.refresh(&refresh).await.status(), 400, "round {round}");
        }
    }
}

/// A spent refresh token presented after its session ended (a logout) is an
/// ended session, not a reuse: no `refresh_reuse` event, no warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_token_of_a_logged_out_session_is_not_reported_as_reuse() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (access, refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    assert_eq!(logout(&app, &access, None).await, 204);
    for _ in 0..3 {
        assert_invalid_grant(app.refresh(&refresh).await).await;
    }
    let reuses = app
        .stored_text("SELECT COUNT(*) FROM audit_events WHERE event = 'refresh_reuse'")
        .await;
    assert_eq!(reuses.trim(), "0");
}

/// A session whose account's credential changed behind it (as a password
/// change racing its login would leave it) refreshes nothing, on the first
/// presentation or any repeat within the grace window, and is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_older_than_its_accounts_credential_never_refreshes() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (access, refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    app.execute(
        "UPDATE users SET credential_version = credential_version + 1 WHERE username = 'alice'",
    )
    .await;
    for _ in 0..3 {
        assert_invalid_grant(app.refresh(&refresh).await).await;
    }
    assert_eq!(app.get_resource(&access).await.status(), 401);
    let revoked = app
        .stored_text("SELECT revoked_reason FROM sessions WHERE revoked_at IS NOT NULL")
        .await;
    assert_eq!(revoked.trim(), "credential_changed");
}
