//! Second factors, black-box: TOTP codes are computed from the returned
//! secret by a third-party library (Python's pyotp), at the time of the
//! server's injected clock.

use chrono::Duration;
use latchkey::clock::{Clock, ManualClock};
use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, claims, json_with_status, post};

/// The TOTP code of `secret` (base32) at `unix_time`, by pyotp.
fn pyotp_code(secret: &str, unix_time: i64) -> String {
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = std::process::Command::new(&python)
        .args([
            "-c",
            "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &unix_time.to_string(),
        ])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    assert!(
        output.status.success(),
        "pyotp is needed (pip install pyotp): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A server on a manual clock, with alice registered; her access token.
async fn alice_on_a_clock() -> (TestApp, ManualClock, String) {
    let clock = ManualClock::new(chrono::Utc::now());
    let app = TestApp::spawn_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let token = app.alice_token().await;
    (app, clock, token)
}

/// Enrols TOTP for the token's account; the secret and the recovery codes.
async fn enrol(app: &TestApp, clock: &ManualClock, token: &str) -> (String, Vec<String>) {
    let started = post(
        app,
        "/me/mfa/totp",
        Some(token),
        json!({"password": ALICE_PASSWORD}),
    )
    .await;
    let enrolment = json_with_status(started, 200).await;
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let code = pyotp_code(&secret, clock.now().timestamp());
    let confirmed = post(
        app,
        "/me/mfa/totp/confirm",
        Some(token),
        json!({"code": code}),
    )
    .await;
    let codes = json_with_status(confirmed, 200).await["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

/// `/login` with alice's right password, expecting the step-up; its mfa_token.
async fn mfa_token(app: &TestApp) -> String {
    let body = json_with_status(app.login("alice", ALICE_PASSWORD).await, 403).await;
    assert_eq!(body["error"], "mfa_required");
    body["mfa_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_turns_a_right_password_into_a_step_up_that_a_current_code_completes() {
    let (app, clock, token) = alice_on_a_clock().await;
    let started = post(
        &app,
        "/me/mfa/totp",
        Some(&token),
        json!({"password": "not her password"}),
    )
    .await;
    assert_eq!(started.status(), 400);
    let started = post(
        &app,
        "/me/mfa/totp",
        Some(&token),
        json!({"password": ALICE_PASSWORD}),
    )
    .await;
    let enrolment = json_with_status(started, 200).await;
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert!(
        enrolment["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/latchkey%3Aalice?secret=")
    );
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    // Until confirmed, the password alone still logs in.
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
    let wrong = post(
        &app,
        "/me/mfa/totp/confirm",
        Some(&token),
        json!({"code": "000000"}),
    )
    .await;
    assert_eq!(
        json_with_status(wrong, 400).await,
        json!({"detail": "Invalid code"})
    );
    let code = pyotp_code(&secret, clock.now().timestamp());
    let confirmed = post(
        &app,
        "/me/mfa/totp/confirm",
        Some(&token),
        json!({"code": code}),
    )
    .await;
    let codes = json_with_status(confirmed, 200).await;
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
    let sealed = app.stored_text("SELECT secret FROM totp_factors").await;
    assert!(sealed.starts_with("v1."), "sealed at rest: {sealed}");
    // A server given another key refuses to start rather than fail every
    // second-factor login later.
    let other_key = Options::customized(|settings| {
        settings.tokens.encryption_key =
            Some(serde_json::from_value(json!("ab".repeat(32))).unwrap());
    });
    let refused = app.try_sibling(other_key).await;
    let error = refused.expect_err("a different key is refused");
    assert!(error.contains("LATCHKEY_ENCRYPTION_KEY"), "{error}");

    // The right password yields no token, through either route.
    let wrong_password = app.login("alice", "not her password").await;
    assert_eq!(
        json_with_status(wrong_password, 400).await,
        json!({"detail": "Incorrect username or password"})
    );
    let step_up = json_with_status(app.login("alice", ALICE_PASSWORD).await, 403).await;
    assert_eq!(step_up["error"], "mfa_required");
    assert_eq!(step_up["detail"], "Multi-factor authentication required");
    assert_eq!(step_up["mfa_methods"], json!(["totp", "recovery_code"]));
    assert!(step_up.get("access_token").is_none());
    let grant = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", ALICE_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let grant = json_with_status(grant, 403).await;
    assert_eq!(grant["error"], "mfa_required");
    assert!(grant["mfa_token"].is_string());

    // The code of the step already used at confirmation is refused (replay);
    // the next step's code completes the login.
    let replayed = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": step_up["mfa_token"], "code": code}),
    )
    .await;
    assert_eq!(
        json_with_status(replayed, 400).await,
        json!({"detail": "Invalid code"})
    );
    clock.advance(Duration::seconds(30));
    let code = pyotp_code(&secret, clock.now().timestamp());
    let completed = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": step_up["mfa_token"], "code": code}),
    )
    .await;
    let tokens = json_with_status(completed, 200).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(tokens["refresh_token"].is_string());
    let claims = claims(access);
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "aal2");
    assert_eq!(app.get_resource(access).await.status(), 200);
    // The same code again, with a fresh mfa_token: refused.
    let again = mfa_token(&app).await;
    let replayed = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": again, "code": code}),
    )
    .await;
    assert_eq!(replayed.status(), 400);
    // The spent mfa_token is dead.
    let spent = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": step_up["mfa_token"], "code": code}),
    )
    .await;
    assert_eq!(
        json_with_status(spent, 400).await,
        json!({"detail": "Invalid or expired mfa_token"})
    );

    // A refresh keeps the session's methods; introspection reports them.
    let refreshed = json_with_status(
        app.refresh(tokens["refresh_token"].as_str().unwrap()).await,
        200,
    )
    .await;
    assert_eq!(claims_of(&refreshed)["acr"], "aal2");
    let client = app.auth.create_client("resource server").await.unwrap();
    let introspected = app
        .client
        .post(app.url("/oauth/introspect"))
        .basic_auth(
            &client.id,
            Some(secrecy::ExposeSecret::expose_secret(
                client.secret.as_ref().unwrap(),
            )),
        )
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    let introspected = json_with_status(introspected, 200).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(introspected["acr"], "aal2");
}

fn claims_of(tokens: &Value) -> Value {
    claims(tokens["access_token"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_within_one_step_of_drift_work_and_older_ones_do_not() {
    let (app, clock, token) = alice_on_a_clock().await;
    let (secret, _) = enrol(&app, &clock, &token).await;
    clock.advance(Duration::seconds(120));
    let now = clock.now().timestamp();
    let stale = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": mfa_token(&app).await, "code": pyotp_code(&secret, now - 60)}),
    )
    .await;
    assert_eq!(stale.status(), 400);
    let behind = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": mfa_token(&app).await, "code": pyotp_code(&secret, now - 30)}),
    )
    .await;
    assert_eq!(behind.status(), 200, "one step behind");
    let ahead = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": mfa_token(&app).await, "code": pyotp_code(&secret, now + 30)}),
    )
    .await;
    assert_eq!(ahead.status(), 200, "one step ahead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_code_works_once_and_regenerating_replaces_them() {
    let (app, clock, token) = alice_on_a_clock().await;
    let (_, codes) = enrol(&app, &clock, &token).await;
    let used = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": mfa_token(&app).await, "recovery_code": codes[0].to_uppercase()}),
    )
    .await;
    let tokens = json_with_status(used, 200).await;
    assert_eq!(claims_of(&tokens)["amr"], json!(["pwd", "mfa"]));
    let again = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": mfa_token(&app).await, "recovery_code": codes[0]}),
    )
    .await;
    assert_eq!(again.status(), 400);
    let both = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": "x", "code": "123456", "recovery_code": codes[1]}),
    )
    .await;
    assert_eq!(both.status(), 422);

    let current = tokens["access_token"].as_str().unwrap();
    let regenerated = post(
        &app,
        "/me/mfa/recovery-codes",
        Some(current),
        json!({"password": ALICE_PASSWORD}),
    )
    .await;
    let fresh = json_with_status(regenerated, 200).await;
    assert_eq!(fresh["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        app.get_resource(&token).await.status(),
        401,
        "other sessions end"
    );
    assert_eq!(app.get_resource(current).await.status(), 200);
    let old = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": mfa_token(&app).await, "recovery_code": codes[1]}),
    )
    .await;
    assert_eq!(old.status(), 400);
    let new = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": mfa_token(&app).await, "recovery_code": fresh["recovery_codes"][0]}),
    )
    .await;
    assert_eq!(new.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mfa_token_allows_five_tries_expires_and_wrong_codes_lock_the_account() {
    let (app, clock, token) = alice_on_a_clock().await;
    let (secret, _) = enrol(&app, &clock, &token).await;
    clock.advance(Duration::seconds(30));
    let challenge = mfa_token(&app).await;
    for _ in 0..5 {
        let wrong = post(
            &app,
            "/login/mfa",
            None,
            json!({"mfa_token": challenge, "code": "000000"}),
        )
        .await;
        assert_eq!(wrong.status(), 400);
    }
    let right = pyotp_code(&secret, clock.now().timestamp());
    let dead = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": challenge, "code": right}),
    )
    .await;
    assert_eq!(
        json_with_status(dead, 400).await,
        json!({"detail": "Invalid or expired mfa_token"})
    );

    let challenge = mfa_token(&app).await;
    clock.advance(Duration::minutes(5) + Duration::seconds(1));
    let right = pyotp_code(&secret, clock.now().timestamp());
    let expired = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": challenge, "code": right}),
    )
    .await;
    assert_eq!(expired.status(), 400);

    // Wrong codes count like wrong passwords, across fresh mfa_tokens (the
    // right password does not reset them): five more make the ten that lock.
    let challenge = mfa_token(&app).await;
    for _ in 0..5 {
        post(
            &app,
            "/login/mfa",
            None,
            json!({"mfa_token": challenge, "code": "000000"}),
        )
        .await;
    }
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_totp_needs_the_password_and_a_code_and_ends_other_sessions() {
    let (app, clock, token) = alice_on_a_clock().await;
    let (secret, _) = enrol(&app, &clock, &token).await;
    clock.advance(Duration::seconds(30));
    let code = pyotp_code(&secret, clock.now().timestamp());
    let tokens = json_with_status(
        post(
            &app,
            "/login/mfa",
            None,
            json!({"mfa_token": mfa_token(&app).await, "code": code}),
        )
        .await,
        200,
    )
    .await;
    let current = tokens["access_token"].as_str().unwrap();
    clock.advance(Duration::seconds(30));
    let code = pyotp_code(&secret, clock.now().timestamp());
    let delete = |body: Value| {
        app.client
            .delete(app.url("/me/mfa/totp"))
            .bearer_auth(current)
            .json(&body)
            .send()
    };
    assert_eq!(
        delete(json!({"password": "not her password", "code": code}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        delete(json!({"password": ALICE_PASSWORD, "code": "000000"}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        delete(json!({"password": ALICE_PASSWORD, "code": code}))
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        app.get_resource(&token).await.status(),
        401,
        "other sessions end"
    );
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
    assert_eq!(
        app.stored_text("SELECT user_id FROM recovery_codes").await,
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_can_reset_an_accounts_factors() {
    let (app, clock, token) = alice_on_a_clock().await;
    enrol(&app, &clock, &token).await;
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 403);
    assert_eq!(app.auth.reset_factors("alice").await.unwrap(), Some(true));
    assert_eq!(app.auth.reset_factors("alice").await.unwrap(), Some(false));
    assert_eq!(app.auth.reset_factors("nobody").await.unwrap(), None);
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
    let trail = app.stored_text("SELECT event FROM audit_events").await;
    assert!(
        trail.contains("mfa_enabled") && trail.contains("mfa_disabled"),
        "{trail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emailed_sign_in_code_is_one_factor_and_steps_up_too() {
    let smtp = crate::smtp::SmtpSink::start();
    let clock = ManualClock::new(chrono::Utc::now());
    let url = smtp.url();
    let app = TestApp::spawn_with(Options {
        clock: Some(clock.clone()),
        ..Options::customized(move |settings| {
            settings.mail.smtp_url = Some(latchkey::config::SecretUrl::parse(&url).unwrap());
            settings.mail.email_sign_in = latchkey::config::Switch::On;
            settings.mail.mail_poll_milliseconds = 100.try_into().unwrap();
        })
    })
    .await;
    let token = app.alice_token().await;
    let (secret, _) = enrol(&app, &clock, &token).await;
    let asked = post(
        &app,
        "/login/email",
        None,
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(asked.status(), 202);
    let message = smtp.wait_for_message_to("alice@example.com", 3).await;
    let code = message.code();
    let step_up = post(
        &app,
        "/login/email/verify",
        None,
        json!({"email": "alice@example.com", "code": code}),
    )
    .await;
    let step_up = json_with_status(step_up, 403).await;
    assert_eq!(step_up["error"], "mfa_required");
    assert!(step_up.get("access_token").is_none());
    clock.advance(Duration::seconds(30));
    let totp = pyotp_code(&secret, clock.now().timestamp());
    let done = post(
        &app,
        "/login/mfa",
        None,
        json!({"mfa_token": step_up["mfa_token"], "code": totp}),
    )
    .await;
    let tokens = json_with_status(done, 200).await;
    assert_eq!(claims_of(&tokens)["amr"], json!(["otp", "mfa"]));
    assert_eq!(claims_of(&tokens)["acr"], "aal2");
}
