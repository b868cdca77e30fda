//! Token verification failures: every forged, altered or stale token gets
//! 401 `Invalid token`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, json_with_status};

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn assert_invalid(app: &TestApp, token: &str) {
    let body = json_with_status(app.get_resource(token).await, 401).await;
    assert_eq!(body, json!({"detail": "Invalid token"}), "{token}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_payload_is_rejected() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = decode_part(parts[1]);
    claims["sub"] = json!(uuid::Uuid::now_v7().to_string());
    assert_invalid(
        &app,
        &format!("{}.{}.{}", parts[0], encode_part(&claims), parts[2]),
    )
    .await;
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    assert_invalid(
        &app,
        &format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(signature)
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_is_rejected() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut header = decode_part(parts[0]);
    header["alg"] = json!("none");
    assert_invalid(&app, &format!("{}.{}.", encode_part(&header), parts[1])).await;
    header["alg"] = json!("None");
    assert_invalid(&app, &format!("{}.{}.", encode_part(&header), parts[1])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_signed_with_our_public_key_is_rejected() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let parts: Vec<&str> = token.split('.').collect();
    let original = decode_part(parts[0]);
    let claims = decode_part(parts[1]);
    let jwks = app.jwks().await;
    let public_x = jwks["keys"][0]["x"].as_str().unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = original["kid"].as_str().map(str::to_owned);
    for secret in [
        public_x.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(public_x).unwrap(),
    ] {
        let forged =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_invalid(&app, &forged).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_is_rejected() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let parts: Vec<&str> = token.split('.').collect();
    for kid in [
        json!("no-such-key"),
        json!("../../etc/passwd"),
        json!(""),
        json!(7),
        Value::Null,
    ] {
        let mut header = decode_part(parts[0]);
        header["kid"] = kid;
        assert_invalid(
            &app,
            &format!("{}.{}.{}", encode_part(&header), parts[1], parts[2]),
        )
        .await;
    }
    // An embedded key is never trusted either.
    let mut header = decode_part(parts[0]);
    header["jwk"] =
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    header["kid"] = json!("attacker");
    assert_invalid(
        &app,
        &format!("{}.{}.{}", encode_part(&header), parts[1], parts[2]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_rejected() {
    let app = TestApp::spawn().await;
    let (app, clock) = app.with_manual_clock().await;
    let token = app.alice_token().await;
    clock.advance(Duration::minutes(14));
    assert_eq!(app.get_resource(&token).await.status(), 200);
    clock.advance(Duration::minutes(2));
    assert_invalid(&app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_for_another_audience_or_issuer_are_rejected() {
    let app = TestApp::spawn().await;
    app.alice_token().await;
    let others = [
        Options {
            audience: Some("another-api".into()),
            ..Options::default()
        },
        Options {
            issuer: Some("https://elsewhere.example".into()),
            ..Options::default()
        },
    ];
    for options in others {
        let other = app.sibling(options).await;
        let token = other.token_for("alice", ALICE_PASSWORD).await;
        assert_eq!(other.get_resource(&token).await.status(), 200);
        assert_invalid(&app, &token).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_publishes_the_signing_key_and_nothing_private() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    let kid = decode_part(token.split('.').next().unwrap())["kid"].clone();
    let header = decode_part(token.split('.').next().unwrap());
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let jwks = app.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], kid);
    assert_eq!(keys[0]["kty"], "OKP");
    assert!(keys[0].get("d").is_none());
    let claims = decode_part(token.split('.').nth(1).unwrap());
    for claim in [
        "iss",
        "aud",
        "sub",
        "preferred_username",
        "iat",
        "nbf",
        "exp",
        "jti",
    ] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
    assert_eq!(claims["preferred_username"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_key_mode_signs_hs256_and_publishes_nothing() {
    let app = TestApp::spawn().await;
    let secret = "an origin secret key of at least 32 bytes";
    let app = app
        .sibling(Options {
            secret_key: Some(secret.into()),
            ..Options::default()
        })
        .await;
    let token = app.alice_token().await;
    assert_eq!(
        decode_part(token.split('.').next().unwrap())["alg"],
        "HS256"
    );
    assert_eq!(app.get_resource(&token).await.status(), 200);
    let jwks = app.jwks().await;
    assert_eq!(jwks, json!({"keys": []}));
}

/// Runs Python (with python-jose, as the origin used it) on `script`.
fn python_jose(script: &str, args: &[&str]) -> String {
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    assert!(
        output.status.success(),
        "python-jose is needed (pip install python-jose): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_secret_key_mode_the_origins_verifiers_and_tokens_keep_working() {
    let secret = "an origin secret key of at least 32 bytes";
    let app = TestApp::spawn_with(Options {
        secret_key: Some(secret.into()),
        ..Options::default()
    })
    .await;
    let token = app.alice_token().await;
    // The origin's own decode call: HS256, the secret, no audience.
    let subject = python_jose(
        "import sys; from jose import jwt; print(jwt.decode(sys.argv[1], sys.argv[2], algorithms=['HS256'])['sub'])",
        &[&token, secret],
    );
    assert_eq!(subject, "alice");
    assert_eq!(app.get_resource(&token).await.status(), 200);

    // A token the origin issued before the switch: sub = username, exp.
    let origin = |subject: &str| {
        python_jose(
            "import sys, time; from jose import jwt; print(jwt.encode({'sub': sys.argv[1], 'exp': int(time.time()) + 1800}, sys.argv[2], algorithm='HS256'))",
            &[subject, secret],
        )
    };
    let before_switch = origin("alice");
    let resource = app.get_resource(&before_switch).await;
    assert_eq!(
        json_with_status(resource, 200).await,
        json!({"message": "You have access to the protected resource"})
    );
    // A validly signed token that names no account is refused.
    assert_invalid(&app, &origin("nobody")).await;
    // Nor does the origin's shape open anything without SECRET_KEY mode.
    let standard = TestApp::spawn().await;
    standard
        .register("alice", "alice@example.com", crate::helpers::ALICE_PASSWORD)
        .await;
    assert_invalid(&standard, &before_switch).await;
}
