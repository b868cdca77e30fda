//! Passkeys, black-box: a software authenticator from outside the project
//! (PyPI's soft-webauthn, driven by `tests/webauthn/authenticator.py`)
//! registers a passkey and signs in with it, alone or after a password; a
//! copy of its state is a cloned authenticator.

use std::path::{Path, PathBuf};

use chrono::Duration;
use latchkey::clock::ManualClock;
use latchkey::config::Origins;
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, claims, json_with_status, post};

const ORIGIN: &str = "http://localhost:3000";

/// One software authenticator, its key and counter kept in a file.
struct Authenticator {
    _folder: tempfile::TempDir,
    state: PathBuf,
    /// `uv` (verifies the user), `be` (a synced passkey), comma-separated.
    flags: &'static str,
}

impl Authenticator {
    fn new() -> Self {
        Self::with_flags("")
    }

    fn with_flags(flags: &'static str) -> Self {
        let folder = tempfile::tempdir().expect("temporary folder");
        let state = folder.path().join("authenticator.json");
        Self {
            _folder: folder,
            state,
            flags,
        }
    }

    /// Another authenticator holding the same key and counter.
    fn clone_device(&self) -> Self {
        let clone = Self::new();
        std::fs::copy(&self.state, &clone.state).expect("copy the authenticator");
        clone
    }

    fn create(&self, options: &Value, origin: &str) -> Value {
        run(&self.state, "create", options, origin, self.flags)
    }

    fn get(&self, options: &Value, origin: &str) -> Value {
        run(&self.state, "get", options, origin, self.flags)
    }
}

fn run(state: &Path, command: &str, options: &Value, origin: &str, flags: &str) -> Value {
    use std::io::Write;
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/webauthn/authenticator.py"
    );
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .arg(command)
        .arg(state)
        .arg(origin)
        .arg(flags)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(options.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "soft-webauthn is needed (pip install soft-webauthn): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the authenticator prints JSON")
}

/// A server whose relying party is `localhost` at [`ORIGIN`], on a manual
/// clock, with alice registered; her access token.
async fn alice_with_passkeys() -> (TestApp, ManualClock, String) {
    let clock = ManualClock::new(chrono::Utc::now());
    let app = TestApp::spawn_with(Options {
        clock: Some(clock.clone()),
        ..Options::customized(|settings| {
            settings.passkeys.webauthn_rp_id = Some("localhost".to_owned());
            settings.passkeys.webauthn_origins = Some(Origins::parse(ORIGIN).unwrap());
        })
    })
    .await;
    let token = app.alice_token().await;
    (app, clock, token)
}

/// Registers a passkey on the token's account; the authenticator and the stored passkey.
async fn register(app: &TestApp, token: &str) -> (Authenticator, Value) {
    register_with(app, token, Authenticator::new()).await
}

async fn register_with(
    app: &TestApp,
    token: &str,
    authenticator: Authenticator,
) -> (Authenticator, Value) {
    let started = post(app, "/me/passkeys/register/start", Some(token), json!({})).await;
    let options = json_with_status(started, 200).await;
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "preferred");
    assert_eq!(selection["userVerification"], "preferred");
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    let credential = authenticator.create(&options, ORIGIN);
    let finished = post(
        app,
        "/me/passkeys/register/finish",
        Some(token),
        json!({"name": "Soft key", "credential": credential}),
    )
    .await;
    let passkey = json_with_status(finished, 201).await;
    assert_eq!(passkey["name"], "Soft key");
    (authenticator, passkey)
}

/// A passwordless sign-in: the options, the assertion, the answer.
async fn sign_in(app: &TestApp, authenticator: &Authenticator) -> (Value, Response) {
    let started = post(app, "/login/passkey/start", None, json!({})).await;
    let options = json_with_status(started, 200).await;
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "discoverable: no credential is named"
    );
    let assertion = authenticator.get(&options, ORIGIN);
    let answer = post(
        app,
        "/login/passkey/finish",
        None,
        json!({"credential": assertion}),
    )
    .await;
    (assertion, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_passkey_signs_in_alone_once_per_challenge() {
    let (app, _clock, token) = alice_with_passkeys().await;
    let (authenticator, passkey) = register(&app, &token).await;

    let listed = json_with_status(app.get_with_token("/me/passkeys", &token).await, 200).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], passkey["id"]);

    let (assertion, answer) = sign_in(&app, &authenticator).await;
    let tokens = json_with_status(answer, 200).await;
    let access = claims(tokens["access_token"].as_str().unwrap());
    // soft-webauthn's key is device-bound (not backup-eligible) and it does
    // not verify the user: hwk at aal1.
    assert_eq!(access["amr"], json!(["hwk"]));
    assert_eq!(access["acr"], "aal1");
    let me = app
        .get_with_token("/me", tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(json_with_status(me, 200).await["username"], "alice");

    // The same answer again: its challenge is spent.
    let replayed = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({"credential": assertion}),
    )
    .await;
    assert_eq!(
        json_with_status(replayed, 400).await["detail"],
        "Passkey verification failed"
    );
    let listed = json_with_status(app.get_with_token("/me/passkeys", &token).await, 200).await;
    assert!(listed[0]["last_used_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_passkey_that_verifies_the_user_signs_in_as_swk_at_aal2() {
    let (app, _clock, token) = alice_with_passkeys().await;
    let (authenticator, passkey) =
        register_with(&app, &token, Authenticator::with_flags("uv,be")).await;
    assert_eq!(passkey["backup_eligible"], true);
    assert_eq!(passkey["backed_up"], true);
    let (_, answer) = sign_in(&app, &authenticator).await;
    let tokens = json_with_status(answer, 200).await;
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["swk"]));
    assert_eq!(access["acr"], "aal2");
    // A refresh keeps how the session was opened.
    let refreshed = json_with_status(
        app.refresh(tokens["refresh_token"].as_str().unwrap()).await,
        200,
    )
    .await;
    let access = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["swk"]));
    assert_eq!(access["acr"], "aal2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_authenticator_is_refused_and_audited() {
    let (app, _clock, token) = alice_with_passkeys().await;
    let (original, _) = register(&app, &token).await;
    let clone = original.clone_device();

    let (_, answer) = sign_in(&app, &original).await;
    assert_eq!(answer.status(), 200);
    // The clone signs with the counter the original already used.
    let (_, answer) = sign_in(&app, &clone).await;
    assert_eq!(answer.status(), 400);
    let audited = app
        .stored_text("SELECT COUNT(*) FROM audit_events WHERE event = 'passkey_clone_suspected'")
        .await;
    assert_eq!(audited, "1");
    // The original, a step ahead, still works.
    let (_, answer) = sign_in(&app, &original).await;
    assert_eq!(answer.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_origins_foreign_and_expired_challenges_are_refused() {
    let (app, clock, token) = alice_with_passkeys().await;
    // Registration from another origin.
    let started = post(&app, "/me/passkeys/register/start", Some(&token), json!({})).await;
    let options = json_with_status(started, 200).await;
    let stranger = Authenticator::new();
    let credential = stranger.create(&options, "http://evil.example");
    let finished = post(
        &app,
        "/me/passkeys/register/finish",
        Some(&token),
        json!({"credential": credential}),
    )
    .await;
    assert_eq!(finished.status(), 400);

    let (authenticator, _) = register(&app, &token).await;
    // An assertion from another origin.
    let options = json_with_status(
        post(&app, "/login/passkey/start", None, json!({})).await,
        200,
    )
    .await;
    let assertion = authenticator.get(&options, "http://evil.example");
    let answer = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({"credential": assertion}),
    )
    .await;
    assert_eq!(answer.status(), 400);

    // A registration challenge is not a login challenge.
    let options = json_with_status(
        post(&app, "/me/passkeys/register/start", Some(&token), json!({})).await,
        200,
    )
    .await;
    let mut as_request = json!({"publicKey": {
        "challenge": options["publicKey"]["challenge"],
        "rpId": "localhost",
    }});
    let assertion = authenticator.get(&as_request, ORIGIN);
    let answer = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({"credential": assertion}),
    )
    .await;
    assert_eq!(answer.status(), 400);

    // A challenge older than five minutes.
    let options = json_with_status(
        post(&app, "/login/passkey/start", None, json!({})).await,
        200,
    )
    .await;
    clock.advance(Duration::minutes(6));
    as_request["publicKey"]["challenge"] = options["publicKey"]["challenge"].clone();
    let assertion = authenticator.get(&as_request, ORIGIN);
    let answer = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({"credential": assertion}),
    )
    .await;
    assert_eq!(answer.status(), 400);

    // Garbage in the credential: a 4xx, never a 5xx.
    for credential in [
        json!("text"),
        json!({}),
        json!({"id": "x", "rawId": "!!", "type": "public-key", "response": {}}),
    ] {
        let answer = post(
            &app,
            "/login/passkey/finish",
            None,
            json!({"credential": credential}),
        )
        .await;
        assert_eq!(answer.status(), 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_is_the_second_step_after_a_right_password() {
    let (app, _clock, token) = alice_with_passkeys().await;
    let (authenticator, _) = register(&app, &token).await;
    // The password alone opens nothing now, on the origin's route too.
    let stepped = json_with_status(app.login("alice", ALICE_PASSWORD).await, 403).await;
    assert_eq!(stepped["error"], "mfa_required");
    assert_eq!(stepped["mfa_methods"], json!(["webauthn"]));
    let mfa_token = stepped["mfa_token"].as_str().unwrap();

    let started = post(
        &app,
        "/login/mfa/webauthn/start",
        None,
        json!({"mfa_token": mfa_token}),
    )
    .await;
    let options = json_with_status(started, 200).await;
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let assertion = authenticator.get(&options, ORIGIN);
    let answer = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": mfa_token, "webauthn": assertion}),
    )
    .await;
    let tokens = json_with_status(answer, 200).await;
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["pwd", "hwk", "mfa"]));
    assert_eq!(access["acr"], "aal2");
    // The mfa_token is spent.
    let again = post(
        &app,
        "/login/mfa/webauthn/start",
        None,
        json!({"mfa_token": mfa_token}),
    )
    .await;
    assert_eq!(again.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_are_renamed_and_removed_with_proof_ending_other_sessions() {
    let (app, _clock, token) = alice_with_passkeys().await;
    let other_session = app.token_for("alice", ALICE_PASSWORD).await;
    let (authenticator, passkey) = register(&app, &token).await;
    // Adding a passkey ended the other session.
    let refused = app.get_with_token("/me", &other_session).await;
    assert_eq!(refused.status(), 401);
    let id = passkey["id"].as_str().unwrap();

    let renamed = app
        .client
        .patch(app.url(&format!("/me/passkeys/{id}")))
        .bearer_auth(&token)
        .json(&json!({"name": "Laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(renamed, 200).await["name"], "Laptop");
    let missing = app
        .client
        .patch(app.url("/me/passkeys/not-a-uuid"))
        .bearer_auth(&token)
        .json(&json!({"name": "Laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let delete = |body: Value| {
        app.client
            .delete(app.url(&format!("/me/passkeys/{id}")))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let wrong = delete(json!({"password": "not her password"}))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    // A fresh assertion of the passkey proves the owner.
    let options = json_with_status(
        post(&app, "/login/passkey/start", None, json!({})).await,
        200,
    )
    .await;
    let assertion = authenticator.get(&options, ORIGIN);
    let removed = delete(json!({"credential": assertion})).await.unwrap();
    assert_eq!(removed.status(), 204);
    let listed = json_with_status(app.get_with_token("/me/passkeys", &token).await, 200).await;
    assert_eq!(listed, json!([]));
    // With no factor left, the password alone signs in again.
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
    let audited = app
        .stored_text("SELECT event FROM audit_events WHERE event LIKE 'passkey%' ORDER BY at")
        .await;
    assert_eq!(audited, "passkey_added\npasskey_removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relying_party_follows_the_public_url_and_refuses_origins_outside_it() {
    // No settings: the issuer is an address, so the relying party is localhost.
    let app = TestApp::spawn().await;
    let options = json_with_status(
        post(&app, "/login/passkey/start", None, json!({})).await,
        200,
    )
    .await;
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    assert_eq!(options["publicKey"]["userVerification"], "preferred");

    let public = app
        .sibling(Options::customized(|settings| {
            settings.mail.public_url =
                Some(latchkey::config::Issuer::parse("https://id.example.com").unwrap());
        }))
        .await;
    let options = json_with_status(
        post(&public, "/login/passkey/start", None, json!({})).await,
        200,
    )
    .await;
    assert_eq!(options["publicKey"]["rpId"], "id.example.com");

    let refused = app
        .try_sibling(Options::customized(|settings| {
            settings.passkeys.webauthn_rp_id = Some("example.com".to_owned());
            settings.passkeys.webauthn_origins =
                Some(Origins::parse("https://example.org").unwrap());
        }))
        .await;
    let error = refused.expect_err("an origin outside the relying-party id is refused");
    assert!(error.contains("LATCHKEY_WEBAUTHN_ORIGINS"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_passkey_needs_a_recent_sign_in() {
    let (app, clock, _) = alice_with_passkeys().await;
    let tokens = json_with_status(app.login("alice", ALICE_PASSWORD).await, 200).await;
    clock.advance(Duration::minutes(16));
    // The same session, a fresh access token: still an old sign-in.
    let refreshed = json_with_status(
        app.refresh(tokens["refresh_token"].as_str().unwrap()).await,
        200,
    )
    .await;
    let token = refreshed["access_token"].as_str().unwrap();
    let refused = post(&app, "/me/passkeys/register/start", Some(token), json!({})).await;
    assert_eq!(refused.status(), 403);
    let fresh = json_with_status(app.login("alice", ALICE_PASSWORD).await, 200).await;
    let started = post(
        &app,
        "/me/passkeys/register/start",
        fresh["access_token"].as_str(),
        json!({}),
    )
    .await;
    assert_eq!(started.status(), 200);
}
