//! The email lifecycle against a real SMTP server (aiosmtpd): verification,
//! password reset, email change, sign-in codes, languages, and delivery
//! across SMTP outages, restarts and two instances.

use std::collections::HashSet;
use std::time::Duration;

use latchkey::config::{SecretUrl, Settings, Switch};
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, claims, json_with_status};
use crate::smtp::{SmtpSink, free_port, smtp_url};

const PUBLIC_URL: &str = "https://accounts.example.com";
const NEW_PASSWORD: &str = "marmalade orbit 77";

/// Settings that send mail to `url`, with links under [`PUBLIC_URL`].
fn mail_settings(settings: &mut Settings, url: &str) {
    settings.mail.smtp_url = Some(SecretUrl::parse(url).expect("SMTP URL"));
    settings.mail.public_url = Some(latchkey::config::Issuer::parse(PUBLIC_URL).unwrap());
    settings.mail.mail_from = Some("Acme Accounts <accounts@example.com>".to_owned());
    settings.mail.product_name = "Acme".to_owned();
    settings.mail.mail_poll_milliseconds = 100.try_into().unwrap();
}

fn mail_options(url: String) -> Options {
    Options::customized(move |settings| mail_settings(settings, &url))
}

fn mail_options_with(url: String, more: impl Fn(&mut Settings) + Send + Sync + 'static) -> Options {
    Options::customized(move |settings| {
        mail_settings(settings, &url);
        more(settings);
    })
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn post_json_with_token(app: &TestApp, path: &str, token: &str, body: Value) -> Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn me(app: &TestApp, token: &str) -> Value {
    json_with_status(app.get_with_token("/me", token).await, 200).await
}

async fn register_alice(app: &TestApp) {
    let response = app
        .register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_sends_a_verification_message_whose_token_verifies_once() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options(smtp.url())).await;
    register_alice(&app).await;

    let message = smtp.wait_for_message_to("alice@example.com", 1).await;
    assert_eq!(message.subject(), "Confirm your email address for Acme");
    assert_eq!(
        message.0["header_from"],
        "Acme Accounts <accounts@example.com>"
    );
    assert!(
        message
            .text()
            .contains(&format!("{PUBLIC_URL}/verify-email?token="))
    );
    // minijinja escapes `/` in HTML as `&#x2f;`, which browsers read back.
    let html = message.html().replace("&#x2f;", "/");
    assert!(
        html.contains("<a href=\"https://accounts.example.com/verify-email?token="),
        "{html}"
    );
    let token = message.token("verify-email");
    assert!(token.len() >= 43, "at least 256 bits: {token}");

    let access = app.token_for("alice", ALICE_PASSWORD).await;
    assert_eq!(me(&app, &access).await["email_verified"], false);
    assert_eq!(claims(&access)["email_verified"], false);

    let verified = post_json(&app, "/email/verify", json!({"token": token})).await;
    assert_eq!(verified.status(), 204);
    assert_eq!(me(&app, &access).await["email_verified"], true);
    let userinfo = json_with_status(app.get_with_token("/userinfo", &access).await, 200).await;
    assert_eq!(userinfo["email_verified"], true);
    let access = app.token_for("alice", ALICE_PASSWORD).await;
    assert_eq!(claims(&access)["email_verified"], true);

    let again = post_json(&app, "/email/verify", json!({"token": token})).await;
    let body = json_with_status(again, 400).await;
    assert_eq!(body, json!({"detail": "Invalid or expired token"}));
    let forged = post_json(&app, "/email/verify", json!({"token": "A".repeat(43)})).await;
    assert_eq!(forged.status(), 400);

    // Only the hash is stored: the token appears nowhere in the database.
    let stored = app.stored_text("SELECT token_hash FROM email_tokens").await;
    assert!(!stored.contains(&token));
    assert!(!stored.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_queues_a_new_verification_until_the_address_is_verified() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options(smtp.url())).await;
    register_alice(&app).await;
    let access = app.token_for("alice", ALICE_PASSWORD).await;
    smtp.wait_for_message_to("alice@example.com", 1).await;

    let resent = post_json_with_token(&app, "/email/verify/resend", &access, json!({})).await;
    assert_eq!(resent.status(), 202);
    let second = smtp.wait_for_message_to("alice@example.com", 2).await;
    let verified = post_json(
        &app,
        "/email/verify",
        json!({"token": second.token("verify-email")}),
    )
    .await;
    assert_eq!(verified.status(), 204);

    let resent = post_json_with_token(&app, "/email/verify/resend", &access, json!({})).await;
    assert_eq!(resent.status(), 202);
    // Resending queues in the request itself: the outbox already tells.
    let queued = app
        .stored_text("SELECT kind FROM outbox WHERE recipient = 'alice@example.com'")
        .await;
    assert_eq!(
        queued.lines().count(),
        2,
        "nothing for a verified address: {queued}"
    );
    let anonymous = post_json(&app, "/email/verify/resend", json!({})).await;
    assert_eq!(anonymous.status(), 401);
}

/// Status, body, and header names (less the per-request ones) of an answer.
async fn shape(response: Response) -> (u16, Vec<String>, String) {
    let status = response.status().as_u16();
    let mut headers: Vec<String> = response
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name != "x-request-id" && name != "date")
        .collect();
    headers.sort();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_answers_alike_and_the_reset_ends_every_session() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options(smtp.url())).await;
    register_alice(&app).await;
    smtp.wait_for_message_to("alice@example.com", 1).await;
    let (old_access, old_refresh) = app.token_pair("alice", ALICE_PASSWORD).await;

    let known = post_json(
        &app,
        "/password/forgot",
        json!({"email": "Alice@Example.com"}),
    )
    .await;
    let unknown = post_json(
        &app,
        "/password/forgot",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    let (known, unknown) = (shape(known).await, shape(unknown).await);
    assert_eq!(known, unknown);
    assert_eq!(known.0, 202);
    assert_eq!(
        serde_json::from_str::<Value>(&known.2).unwrap(),
        json!({"detail": "If an account has this address, a message is on its way"})
    );

    let first = smtp.wait_for_message_to("alice@example.com", 2).await;
    assert_eq!(first.subject(), "Reset your Acme password");
    assert!(first.text().contains("60 minutes"));
    // A second request: both links work until one of them is used.
    let again = post_json(
        &app,
        "/password/forgot",
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(again.status(), 202);
    let second = smtp.wait_for_message_to("alice@example.com", 3).await;
    let (first, second) = (
        first.token("reset-password"),
        second.token("reset-password"),
    );

    let weak = post_json(
        &app,
        "/password/reset",
        json!({"token": first, "new_password": "password"}),
    )
    .await;
    assert_eq!(weak.status(), 422);
    let reset = post_json(
        &app,
        "/password/reset",
        json!({"token": first, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(reset.status(), 204);

    // Every session ended, the old password is gone, the new one works.
    assert_eq!(app.get_resource(&old_access).await.status(), 401);
    assert_eq!(app.refresh(&old_refresh).await.status(), 400);
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 400);
    let access = app.token_for("alice", NEW_PASSWORD).await;
    assert_eq!(
        me(&app, &access).await["email_verified"],
        true,
        "a reset proves the address"
    );

    // The used token and every other one are dead.
    for token in [&first, &second] {
        let reused = post_json(
            &app,
            "/password/reset",
            json!({"token": token, "new_password": "another fine secret 9"}),
        )
        .await;
        assert_eq!(
            json_with_status(reused, 400).await,
            json!({"detail": "Invalid or expired token"})
        );
    }
    let notice = smtp.wait_for_message_to("alice@example.com", 4).await;
    assert_eq!(notice.subject(), "Your Acme password was changed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(smtp.messages_to("nobody@example.com").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_token_expires_and_dies_with_any_password_change() {
    let smtp = SmtpSink::start();
    let clock = latchkey::clock::ManualClock::new(chrono::Utc::now());
    let app = TestApp::spawn_with(Options {
        clock: Some(clock.clone()),
        ..mail_options(smtp.url())
    })
    .await;
    register_alice(&app).await;
    let forgot = post_json(
        &app,
        "/password/forgot",
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(forgot.status(), 202);
    let expired = smtp
        .wait_for_message_to("alice@example.com", 2)
        .await
        .token("reset-password");
    clock.advance(chrono::Duration::minutes(61));
    let late = post_json(
        &app,
        "/password/reset",
        json!({"token": expired, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(late.status(), 400);

    let forgot = post_json(
        &app,
        "/password/forgot",
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(forgot.status(), 202);
    let token = smtp
        .wait_for_message_to("alice@example.com", 3)
        .await
        .token("reset-password");
    let access = app.token_for("alice", ALICE_PASSWORD).await;
    let changed = post_json_with_token(
        &app,
        "/me/password",
        &access,
        json!({"current_password": ALICE_PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(changed.status(), 204);
    let stale = post_json(
        &app,
        "/password/reset",
        json!({"token": token, "new_password": "another fine secret 9"}),
    )
    .await;
    assert_eq!(stale.status(), 400);
    let notice = smtp.wait_for_message_to("alice@example.com", 4).await;
    assert_eq!(notice.subject(), "Your Acme password was changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_works_while_the_account_is_locked_and_clears_the_lock() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options(smtp.url())).await;
    register_alice(&app).await;
    for _ in 0..10 {
        app.login("alice", "wrong password 1").await;
    }
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 429);
    let forgot = post_json(
        &app,
        "/password/forgot",
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(forgot.status(), 202);
    let token = smtp
        .wait_for_message_to("alice@example.com", 2)
        .await
        .token("reset-password");
    let reset = post_json(
        &app,
        "/password/reset",
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(reset.status(), 204);
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_the_mail_routes_answer_503_naming_the_setting() {
    let app = TestApp::spawn().await;
    register_alice(&app).await;
    let access = app.token_for("alice", ALICE_PASSWORD).await;
    let expected =
        json!({"detail": "Email is not configured on this server (LATCHKEY_SMTP_URL is unset)"});
    for response in [
        post_json(
            &app,
            "/password/forgot",
            json!({"email": "alice@example.com"}),
        )
        .await,
        post_json_with_token(&app, "/email/verify/resend", &access, json!({})).await,
        post_json_with_token(
            &app,
            "/me/email",
            &access,
            json!({"new_email": "a2@example.com", "password": ALICE_PASSWORD}),
        )
        .await,
    ] {
        assert_eq!(json_with_status(response, 503).await, expected);
    }
    let pending = app.stored_text("SELECT recipient FROM outbox").await;
    assert!(pending.is_empty(), "nothing queued: {pending}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_is_confirmed_at_the_new_address_and_ends_other_sessions() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options(smtp.url())).await;
    register_alice(&app).await;
    let (asking, _) = app.token_pair("alice", ALICE_PASSWORD).await;
    let (other, other_refresh) = app.token_pair("alice", ALICE_PASSWORD).await;

    let wrong = post_json_with_token(
        &app,
        "/me/email",
        &asking,
        json!({"new_email": "alice@new.example.com", "password": "not her password"}),
    )
    .await;
    assert_eq!(
        json_with_status(wrong, 400).await,
        json!({"detail": "Current password is incorrect"})
    );
    let taken = app
        .register("bob", "bob@example.com", "bob's long password 1")
        .await;
    assert_eq!(taken.status(), 200);
    let clash = post_json_with_token(
        &app,
        "/me/email",
        &asking,
        json!({"new_email": "BOB@example.com", "password": ALICE_PASSWORD}),
    )
    .await;
    assert_eq!(
        json_with_status(clash, 400).await,
        json!({"detail": "Email already registered"})
    );

    let asked = post_json_with_token(
        &app,
        "/me/email",
        &asking,
        json!({"new_email": "alice@new.example.com", "password": ALICE_PASSWORD}),
    )
    .await;
    assert_eq!(asked.status(), 202);
    let confirmation = smtp.wait_for_message_to("alice@new.example.com", 1).await;
    assert!(confirmation.text().contains("alice@new.example.com"));
    let notice = smtp.wait_for_message_to("alice@example.com", 2).await;
    assert_eq!(
        notice.subject(),
        "A change of your Acme email address was requested"
    );
    assert_eq!(
        me(&app, &asking).await["email"],
        "alice@example.com",
        "not before the confirmation"
    );

    let token = confirmation.token("confirm-email-change");
    let confirmed = post_json(&app, "/email/change/confirm", json!({"token": token})).await;
    assert_eq!(confirmed.status(), 204);
    let account = me(&app, &asking).await;
    assert_eq!(account["email"], "alice@new.example.com");
    assert_eq!(account["email_verified"], true);
    assert_eq!(app.get_resource(&other).await.status(), 401);
    assert_eq!(app.refresh(&other_refresh).await.status(), 400);
    assert_eq!(
        app.login("alice@new.example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.login("alice@example.com", ALICE_PASSWORD)
            .await
            .status(),
        400
    );
    let changed = smtp.wait_for_message_to("alice@example.com", 3).await;
    assert_eq!(changed.subject(), "Your Acme email address was changed");
    let reused = post_json(&app, "/email/change/confirm", json!({"token": token})).await;
    assert_eq!(reused.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_taken_before_the_confirmation_is_refused_then() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options(smtp.url())).await;
    register_alice(&app).await;
    let access = app.token_for("alice", ALICE_PASSWORD).await;
    let asked = post_json_with_token(
        &app,
        "/me/email",
        &access,
        json!({"new_email": "shared@example.com", "password": ALICE_PASSWORD}),
    )
    .await;
    assert_eq!(asked.status(), 202);
    let token = smtp
        .wait_for_message_to("shared@example.com", 1)
        .await
        .token("confirm-email-change");
    let bob = app
        .register("bob", "shared@example.com", "bob's long password 1")
        .await;
    assert_eq!(bob.status(), 200);
    let confirmed = post_json(&app, "/email/change/confirm", json!({"token": token})).await;
    assert_eq!(
        json_with_status(confirmed, 400).await,
        json!({"detail": "Email already registered"})
    );
    assert_eq!(me(&app, &access).await["email"], "alice@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_sign_in_codes_answer_alike_allow_five_tries_and_open_a_session() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options_with(smtp.url(), |settings| {
        settings.mail.email_sign_in = Switch::On;
    }))
    .await;
    register_alice(&app).await;
    smtp.wait_for_message_to("alice@example.com", 1).await;

    let known =
        shape(post_json(&app, "/login/email", json!({"email": "alice@example.com"})).await).await;
    let unknown =
        shape(post_json(&app, "/login/email", json!({"email": "nobody@example.com"})).await).await;
    assert_eq!(known, unknown);
    assert_eq!(known.0, 202);
    let message = smtp.wait_for_message_to("alice@example.com", 2).await;
    let code = message.code();
    assert!(message.text().contains(&code));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let refused = post_json(
            &app,
            "/login/email/verify",
            json!({"email": "alice@example.com", "code": wrong}),
        )
        .await;
        assert_eq!(
            json_with_status(refused, 400).await,
            json!({"detail": "Invalid or expired code"})
        );
    }
    let dead = post_json(
        &app,
        "/login/email/verify",
        json!({"email": "alice@example.com", "code": code}),
    )
    .await;
    assert_eq!(dead.status(), 400, "five wrong tries kill the code");
    let link = post_json(
        &app,
        "/login/email/verify",
        json!({"token": message.token("sign-in")}),
    )
    .await;
    assert_eq!(link.status(), 400, "and its link");

    let again = post_json(&app, "/login/email", json!({"email": "alice@example.com"})).await;
    assert_eq!(again.status(), 202);
    let message = smtp.wait_for_message_to("alice@example.com", 3).await;
    let unknown = post_json(
        &app,
        "/login/email/verify",
        json!({"email": "nobody@example.com", "code": message.code()}),
    )
    .await;
    assert_eq!(
        json_with_status(unknown, 400).await,
        json!({"detail": "Invalid or expired code"})
    );
    let signed_in = post_json(
        &app,
        "/login/email/verify",
        json!({"email": "alice@example.com", "code": message.code()}),
    )
    .await;
    let tokens = json_with_status(signed_in, 200).await;
    assert!(tokens["refresh_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.get_resource(access).await.status(), 200);
    assert_eq!(me(&app, access).await["email_verified"], true);
    let reused = post_json(
        &app,
        "/login/email/verify",
        json!({"token": message.token("sign-in")}),
    )
    .await;
    assert_eq!(reused.status(), 400, "the link died with its code");

    let again = post_json(&app, "/login/email", json!({"email": "alice@example.com"})).await;
    assert_eq!(again.status(), 202);
    let message = smtp.wait_for_message_to("alice@example.com", 4).await;
    let by_link = post_json(
        &app,
        "/login/email/verify",
        json!({"token": message.token("sign-in")}),
    )
    .await;
    assert_eq!(by_link.status(), 200);
    let neither = post_json(
        &app,
        "/login/email/verify",
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(neither.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_kills_a_pending_email_change_and_sign_in_code() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options_with(smtp.url(), |settings| {
        settings.mail.email_sign_in = Switch::On;
    }))
    .await;
    register_alice(&app).await;
    // An intruder who knows the password asks to move the address...
    let intruder = app.token_for("alice", ALICE_PASSWORD).await;
    let asked = post_json_with_token(
        &app,
        "/me/email",
        &intruder,
        json!({"new_email": "intruder@example.com", "password": ALICE_PASSWORD}),
    )
    .await;
    assert_eq!(asked.status(), 202);
    let change = smtp
        .wait_for_message_to("intruder@example.com", 1)
        .await
        .token("confirm-email-change");
    let code = post_json(&app, "/login/email", json!({"email": "alice@example.com"})).await;
    assert_eq!(code.status(), 202);
    let sign_in = smtp.wait_for_message_to("alice@example.com", 3).await;
    assert!(
        sign_in.subject().contains("sign-in code"),
        "{}",
        sign_in.subject()
    );
    // ... and the owner resets the password.
    let forgot = post_json(
        &app,
        "/password/forgot",
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(forgot.status(), 202);
    let reset = smtp
        .wait_for_message_to("alice@example.com", 4)
        .await
        .token("reset-password");
    let done = post_json(
        &app,
        "/password/reset",
        json!({"token": reset, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(done.status(), 204);

    let confirmed = post_json(&app, "/email/change/confirm", json!({"token": change})).await;
    assert_eq!(
        confirmed.status(),
        400,
        "the change died with the old password"
    );
    let by_code = post_json(
        &app,
        "/login/email/verify",
        json!({"email": "alice@example.com", "code": sign_in.code()}),
    )
    .await;
    assert_eq!(by_code.status(), 400, "so did the sign-in code");
    let owner = app.token_for("alice", NEW_PASSWORD).await;
    assert_eq!(me(&app, &owner).await["email"], "alice@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_sign_in_is_off_unless_enabled() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options(smtp.url())).await;
    let off = post_json(&app, "/login/email", json!({"email": "alice@example.com"})).await;
    assert_eq!(
        json_with_status(off, 404).await,
        json!({"detail": "Email sign-in is not enabled (LATCHKEY_EMAIL_SIGN_IN)"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_verification_refuses_login_only_after_the_right_password() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options_with(smtp.url(), |settings| {
        settings.mail.require_verified_email = true;
    }))
    .await;
    register_alice(&app).await;
    assert_eq!(app.login("alice", "not her password").await.status(), 400);
    let refused = app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(
        json_with_status(refused, 403).await,
        json!({"detail": "Email not verified"})
    );
    let token = smtp
        .wait_for_message_to("alice@example.com", 1)
        .await
        .token("verify-email");
    let verified = post_json(&app, "/email/verify", json!({"token": token})).await;
    assert_eq!(verified.status(), 204);
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_written_in_the_accounts_language_then_the_requests() {
    let smtp = SmtpSink::start();
    let templates = tempfile::tempdir().unwrap();
    std::fs::create_dir(templates.path().join("de")).unwrap();
    std::fs::write(
        templates.path().join("de/verify_email.jinja"),
        "{% block subject %}Bitte bestätigen Sie Ihre Adresse für {{ product }}{% endblock %}\
         {% block text %}Hallo {{ username }}, bitte öffnen Sie {{ link }}{% endblock %}\
         {% block html %}<p>Hallo {{ username }}, <a href=\"{{ link }}\">bestätigen</a></p>{% endblock %}",
    )
    .unwrap();
    let folder = templates.path().to_path_buf();
    let app = TestApp::spawn_with(mail_options_with(smtp.url(), move |settings| {
        settings.mail.mail_templates = Some(folder.clone());
    }))
    .await;
    // The account's language.
    let registered = post_json(&app, "/register", json!({"username": "dora", "email": "dora@example.com", "password": ALICE_PASSWORD, "locale": "de-AT"})).await;
    assert_eq!(registered.status(), 200);
    let german = smtp.wait_for_message_to("dora@example.com", 1).await;
    assert_eq!(
        german.subject(),
        "Bitte bestätigen Sie Ihre Adresse für Acme"
    );
    assert!(german.text().contains("/verify-email?token="));
    // The request's language, when the account has none.
    let registered = app
        .client
        .post(app.url("/register"))
        .header("accept-language", "fr;q=0.9, de;q=0.8")
        .json(&json!({"username": "erik", "email": "erik@example.com", "password": ALICE_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    assert_eq!(
        smtp.wait_for_message_to("erik@example.com", 1)
            .await
            .subject(),
        "Bitte bestätigen Sie Ihre Adresse für Acme"
    );
    // English for a language without templates.
    let registered = post_json(&app, "/register", json!({"username": "fanny", "email": "fanny@example.com", "password": ALICE_PASSWORD, "locale": "fr"})).await;
    assert_eq!(registered.status(), 200);
    assert_eq!(
        smtp.wait_for_message_to("fanny@example.com", 1)
            .await
            .subject(),
        "Confirm your email address for Acme"
    );
    let bad = post_json(&app, "/register", json!({"username": "gus", "email": "gus@example.com", "password": ALICE_PASSWORD, "locale": "../../etc"})).await;
    assert_eq!(bad.status(), 422);

    // The language can be set later.
    let access = app.token_for("fanny", ALICE_PASSWORD).await;
    let patched = app
        .client
        .patch(app.url("/me"))
        .bearer_auth(&access)
        .json(&json!({"locale": "de"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(patched, 200).await["locale"], "de");
    let resent = post_json_with_token(&app, "/email/verify/resend", &access, json!({})).await;
    assert_eq!(resent.status(), 202);
    assert_eq!(
        smtp.wait_for_message_to("fanny@example.com", 2)
            .await
            .subject(),
        "Bitte bestätigen Sie Ihre Adresse für Acme"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_while_smtp_is_down_arrives_once_after_a_restart() {
    let port = free_port();
    let app = TestApp::spawn_with(mail_options(smtp_url(port))).await;
    for name in ["ann", "ben", "cat"] {
        let response = app
            .register(name, &format!("{name}@example.com"), ALICE_PASSWORD)
            .await;
        assert_eq!(response.status(), 200);
    }
    // Wait for the worker to have failed against the closed port.
    let mut attempts = String::new();
    for _ in 0..100 {
        attempts = app.stored_text("SELECT attempts FROM outbox").await;
        if attempts.split_whitespace().any(|n| n != "0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        attempts.split_whitespace().any(|n| n != "0"),
        "tried and failed: {attempts}"
    );
    let app = app.restart().await;
    let smtp = SmtpSink::start_on(port);
    let messages = smtp.wait_for(3).await;
    // Time for any duplicate to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.messages().len(), 3, "{messages:?}");
    let recipients: HashSet<String> = smtp.messages().iter().flat_map(|m| m.to()).collect();
    assert_eq!(recipients.len(), 3);
    let unsent = app
        .stored_text("SELECT id FROM outbox WHERE sent_at IS NULL")
        .await;
    assert!(unsent.is_empty(), "{unsent}");
    let payloads = app.stored_text("SELECT payload FROM outbox").await;
    assert!(!payloads.contains("token="), "sent messages keep no link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_a_burst_of_200_messages_exactly_once() {
    let smtp = SmtpSink::start();
    let options = mail_options_with(smtp.url(), |settings| {
        settings.throttle.rate_limits = Switch::Off;
    });
    let first = TestApp::spawn_with(options.clone()).await;
    let second = first.sibling(options).await;
    for index in 0..10 {
        let app = if index % 2 == 0 { &first } else { &second };
        let response = app
            .register(
                &format!("user{index}"),
                &format!("user{index}@example.com"),
                ALICE_PASSWORD,
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    for index in 0..190 {
        let app = if index % 2 == 0 { &first } else { &second };
        let body = json!({"email": format!("user{}@example.com", index % 10)});
        assert_eq!(post_json(app, "/password/forgot", body).await.status(), 202);
    }
    smtp.wait_for(200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 200);
    let ids: HashSet<&str> = messages.iter().map(|m| m.message_id()).collect();
    assert_eq!(ids.len(), 200, "no message twice");
    let unsent = first
        .stored_text("SELECT id FROM outbox WHERE sent_at IS NULL")
        .await;
    assert!(unsent.is_empty(), "{unsent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recipient_fails_for_good_and_a_transient_refusal_is_retried() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn_with(mail_options(smtp.url())).await;
    assert_eq!(
        app.register("bouncy", "bounce@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.register("later", "defer@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
    let mut failed = String::new();
    for _ in 0..100 {
        failed = app
            .stored_text("SELECT recipient FROM outbox WHERE failed_at IS NOT NULL")
            .await;
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed.trim(), "bounce@example.com");
    let waiting = "SELECT attempts FROM outbox WHERE recipient = 'defer@example.com' \
                   AND failed_at IS NULL AND sent_at IS NULL";
    let mut attempts = 0;
    for _ in 0..150 {
        attempts = app
            .stored_text(waiting)
            .await
            .trim()
            .parse()
            .expect("still waiting");
        if attempts >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(attempts >= 2, "retried after a 451: {attempts}");
    assert!(smtp.messages().is_empty());
}
