//! The OAuth 2.0 / OpenID endpoints: RFC 6749 errors, revocation,
//! introspection, userinfo, discovery, and verification of our tokens by a
//! JOSE implementation we do not sign with, fed only our JWKS.

use jwt_compact::alg::Ed25519;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Token, UntrustedToken};
use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, TestApp, json_with_status};

async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_with_status(response, status).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    assert!(body.get("detail").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_answers_rfc_6749_errors() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    assert_oauth_error(
        token_request(&app, &[("username", "alice")]).await,
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        token_request(&app, &[("grant_type", "implicit")]).await,
        400,
        "unsupported_grant_type",
    )
    .await;
    assert_oauth_error(
        token_request(&app, &[("grant_type", "password"), ("username", "alice")]).await,
        400,
        "invalid_request",
    )
    .await;
    let wrong = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "not the password"),
    ];
    assert_oauth_error(token_request(&app, &wrong).await, 400, "invalid_grant").await;
    let unknown = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "no-such-token"),
    ];
    assert_oauth_error(token_request(&app, &unknown).await, 400, "invalid_grant").await;
    let repeated = [
        ("grant_type", "password"),
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
    ];
    assert_oauth_error(token_request(&app, &repeated).await, 400, "invalid_request").await;
    let json_body = app
        .client
        .post(app.url("/oauth/token"))
        .json(&json!({"grant_type": "password"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(json_body, 400, "invalid_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_grant_issues_a_pair() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("scope", "openid"),
    ];
    let response = token_request(&app, &form).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_with_status(response, 200).await;
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(refresh.len() >= 43, "at least 256 bits");
    assert_eq!(
        app.get_resource(body["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_refresh_token_ends_its_session() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (access, refresh) = app.token_pair("alice", ALICE_PASSWORD).await;
    let revoke = |token: String| {
        app.client
            .post(app.url("/oauth/revoke"))
            .form(&[("token", token)])
            .send()
    };
    assert_eq!(revoke("never-issued".into()).await.unwrap().status(), 200);
    assert_eq!(revoke(refresh.clone()).await.unwrap().status(), 200);
    assert_eq!(app.get_resource(&access).await.status(), 401);
    assert_eq!(app.refresh(&refresh).await.status(), 400);

    let (access, _) = app.token_pair("alice", ALICE_PASSWORD).await;
    assert_eq!(revoke(access.clone()).await.unwrap().status(), 200);
    assert_eq!(app.get_resource(&access).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_needs_a_client_and_reports_liveness() {
    let app = TestApp::spawn().await;
    let client = app.auth.create_client("resource-server").await.unwrap();
    let secret = secrecy::ExposeSecret::expose_secret(client.secret.as_ref().unwrap()).to_owned();
    let token = app.alice_token().await;
    let introspect = |id: &str, secret: &str, token: &str| {
        app.client
            .post(app.url("/oauth/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
    };
    assert_oauth_error(
        introspect(&client.id, "wrong secret", &token)
            .await
            .unwrap(),
        401,
        "invalid_client",
    )
    .await;
    assert_oauth_error(
        introspect("no-such-client", &secret, &token).await.unwrap(),
        401,
        "invalid_client",
    )
    .await;
    let hostile = introspect("bad\u{0}client", &secret, &token).await.unwrap();
    assert_oauth_error(hostile, 401, "invalid_client").await;
    let anonymous = app
        .client
        .post(app.url("/oauth/introspect"))
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let active =
        json_with_status(introspect(&client.id, &secret, &token).await.unwrap(), 200).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["username"], "alice");
    assert!(active["sub"].is_string() && active["exp"].is_i64() && active["sid"].is_string());
    let inactive = json_with_status(
        introspect(&client.id, &secret, "garbage").await.unwrap(),
        200,
    )
    .await;
    assert_eq!(inactive, json!({"active": false}));
    app.client
        .post(app.url("/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let revoked =
        json_with_status(introspect(&client.id, &secret, &token).await.unwrap(), 200).await;
    assert_eq!(revoked, json!({"active": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_and_discovery_describe_the_caller_and_the_issuer() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let response = app.get_with_token("/userinfo", &token).await;
    let info = json_with_status(response, 200).await;
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert!(info["sub"].is_string());

    let response = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    let metadata = json_with_status(response, 200).await;
    let issuer = metadata["issuer"].as_str().unwrap();
    assert_eq!(
        metadata["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
    for endpoint in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "userinfo_endpoint",
    ] {
        assert!(
            metadata[endpoint].as_str().unwrap().starts_with(issuer),
            "{endpoint}"
        );
    }
    assert_eq!(
        metadata["id_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password"
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_jose_library_verifies_our_tokens_from_the_jwks_alone() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let jwks = app.jwks().await;
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let key = ed25519_compact::PublicKey::try_from(&jwk).unwrap();
    let untrusted = UntrustedToken::new(&token).unwrap();
    assert_eq!(
        untrusted.header().key_id.as_deref(),
        jwks["keys"][0]["kid"].as_str()
    );
    let verified: Token<Value> = Ed25519.validator(&key).validate(&untrusted).unwrap();
    assert_eq!(verified.claims().custom["preferred_username"], "alice");

    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let untrusted = UntrustedToken::new(&forged).unwrap();
    assert!(
        Ed25519
            .validator::<Value>(&key)
            .validate(&untrusted)
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_on_configured_origins_may_call_others_may_not() {
    let app = TestApp::spawn_with(crate::helpers::Options::customized(|settings| {
        settings.server.cors_origins =
            Some(latchkey::config::Origins::parse("https://app.example.com").unwrap());
    }))
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        allowed.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let login = app
        .client
        .post(app.url("/login"))
        .header("origin", "https://app.example.com")
        .form(&[("username", "alice"), ("password", ALICE_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(
        login.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Without the setting, no CORS headers at all.
    let plain = TestApp::spawn().await;
    let response = plain
        .client
        .request(reqwest::Method::OPTIONS, plain.url("/login"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
