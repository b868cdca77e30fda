//! The HTTP edge, where no request reaches the database: size limits, content
//! types, malformed JSON, field rules, unknown routes and methods, slow
//! clients. These run once, on SQLite, whichever backend the run targets
//! (CI skips `edge::` on the other backends); where no socket is involved,
//! in-process through the router (`TestApp::in_process`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use latchkey::config::Bounded;

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, json_with_status};

/// `POST /register` with any JSON body.
pub async fn post_register(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/register"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

fn first_issue(body: &Value) -> (&Value, &str) {
    let issue = &body["detail"][0];
    (&issue["loc"], issue["type"].as_str().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_64_kib_get_413() {
    let app = TestApp::spawn_edge().await;
    let body = json!({"username": "alice", "email": "alice@example.com", "password": "x".repeat(70 * 1024)});
    let (status, body) = app
        .in_process("POST", "/register", Some(JSON), body.to_string())
        .await;
    assert_eq!(status, 413);
    assert!(body["detail"].is_string());
    let form = format!("username=alice&password={}", "x".repeat(70 * 1024));
    let (status, body) = app.in_process("POST", "/login", Some(FORM), form).await;
    assert_eq!(status, 413);
    assert!(body["detail"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_content_type_gets_415() {
    let app = TestApp::spawn_edge().await;
    let json_body = r#"{"username":"alice","email":"alice@example.com","password":"x"}"#;
    let (status, body) = app
        .in_process("POST", "/register", Some("text/plain"), json_body)
        .await;
    assert_eq!(status, 415);
    assert!(body["detail"].is_string());
    let (status, body) = app
        .in_process("POST", "/login", None, "username=a&password=b")
        .await;
    assert_eq!(status, 415);
    assert!(body["detail"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_gets_422_with_a_detail_list() {
    let app = TestApp::spawn_edge().await;
    for raw in [
        "{",
        "{\"username\": ",
        "[]",
        "null",
        "\u{0}",
        r#"{"username": "a", "email": "b", "password": "c"} x"#,
    ] {
        let (status, body) = app.in_process("POST", "/register", Some(JSON), raw).await;
        assert_eq!(status, 422, "{raw:?}");
        let (loc, _) = first_issue(&body);
        assert_eq!(loc, &json!(["body"]), "{raw:?}");
        assert!(body["detail"][0]["msg"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_mistyped_fields_are_named() {
    let app = TestApp::spawn_edge().await;
    let body = json_with_status(
        post_register(
            &app,
            json!({"username": "alice", "password": ALICE_PASSWORD}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(first_issue(&body), (&json!(["body", "email"]), "missing"));
    let body = json_with_status(
        post_register(
            &app,
            json!({"username": 7, "email": "a@b.co", "password": ALICE_PASSWORD}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        first_issue(&body),
        (&json!(["body", "username"]), "string_type")
    );
    let response = app
        .client
        .post(app.url("/login"))
        .form(&[("username", "alice")])
        .send()
        .await
        .unwrap();
    let body = json_with_status(response, 422).await;
    assert_eq!(
        first_issue(&body),
        (&json!(["body", "password"]), "missing")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_identifier_rule_is_enforced_and_named() {
    let app = TestApp::spawn_edge().await;
    let long_email = format!("{}@{}.com", "a".repeat(64), "b".repeat(186));
    let cases = [
        ("ab", "a@example.com", "username", "string_too_short"),
        (
            "a".repeat(33).as_str(),
            "a@example.com",
            "username",
            "string_too_long",
        ),
        (
            "bob smith",
            "a@example.com",
            "username",
            "username_character",
        ),
        (
            "bob\u{0}x",
            "a@example.com",
            "username",
            "control_character",
        ),
        ("bob", "not-an-email", "email", "value_error"),
        ("bob", "bob@localhost", "email", "value_error"),
        ("bob", long_email.as_str(), "email", "string_too_long"),
        ("bob", "bob\u{7}@example.com", "email", "control_character"),
    ]
    .map(|(username, email, field, kind)| (username.to_owned(), email.to_owned(), field, kind));
    for (username, email, field, kind) in cases {
        let response = post_register(
            &app,
            json!({"username": username, "email": email, "password": ALICE_PASSWORD}),
        )
        .await;
        let body = json_with_status(response, 422).await;
        assert_eq!(
            first_issue(&body),
            (&json!(["body", field]), kind),
            "{username:?} {email:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_password_rule_is_enforced_and_named() {
    let app = TestApp::spawn_edge().await;
    let cases = [
        ("short12", "string_too_short"),
        (&"p".repeat(129), "string_too_long"),
        ("Password123", "password_common"),
        ("correct\u{0}horse", "control_character"),
    ];
    for (password, kind) in cases {
        let response = post_register(
            &app,
            json!({"username": "alice", "email": "alice@example.com", "password": password}),
        )
        .await;
        let body = json_with_status(response, 422).await;
        assert_eq!(first_issue(&body), (&json!(["body", "password"]), kind));
        assert!(
            body["detail"][0]["msg"]
                .as_str()
                .unwrap()
                .starts_with("Password ")
        );
    }
    // 128 characters, counted as characters not bytes, is fine: only the
    // (deliberately) bad email is reported, and nothing reaches the database.
    let response = post_register(
        &app,
        json!({"username": "alice", "email": "not-an-email", "password": "é".repeat(128)}),
    )
    .await;
    let body = json_with_status(response, 422).await;
    assert_eq!(body["detail"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(first_issue(&body).0, &json!(["body", "email"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn_edge().await;
    let answer = app.in_process("GET", "/no-such-route", None, "").await;
    assert_eq!(answer, (404, json!({"detail": "Not Found"})));
    let answer = app.in_process("GET", "/register", None, "").await;
    assert_eq!(answer, (405, json!({"detail": "Method Not Allowed"})));
    let (status, _) = app.in_process("DELETE", "/get-resource", None, "").await;
    assert_eq!(status, 405);
}

/// Starts a server whose requests time out after one second, sends it
/// `bytes` over a raw socket and goes quiet; returns the server, what it
/// answered before closing (`None` if still open after 10 s), and how long that took.
async fn send_and_go_quiet(bytes: &[u8]) -> (TestApp, Option<String>, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let options = Options::customized(|settings| {
        settings.server.request_timeout_seconds = Bounded::clamped(1)
    });
    let app = TestApp::spawn_edge_with(options).await;
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .is_ok();
    let answer = closed.then(|| String::from_utf8_lossy(&answer).into_owned());
    (app, answer, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_gets_408_after_the_request_timeout() {
    // Promises 100 bytes, sends 10, then goes quiet.
    let (app, answer, waited) = send_and_go_quiet(
        b"POST /login HTTP/1.1\r\nHost: latchkey\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"username",
    )
    .await;
    let answer = answer.expect("no answer within 10 s");
    assert!(waited >= Duration::from_millis(900));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.ends_with(r#"{"detail":"Request took too long"}"#),
        "{answer}"
    );
    // Nothing else is affected.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_finishes_is_cut_off() {
    // Half a request head, then silence: the slowloris pattern.
    let (app, answer, _) = send_and_go_quiet(b"GET /health HTTP/1.1\r\nHost: latchkey\r\n").await;
    let answer = answer.expect("the connection was still open after 10 s");
    assert!(!answer.contains("200 OK"));
    // The server goes on serving everyone else.
    assert_eq!(app.get("/health").await.status(), 200);
}

/// Past `LATCHKEY_MAX_CONNECTIONS`, a new connection is answered 503 with
/// `Retry-After` at once and closed; once a slot frees, clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_at_once_not_stalled() {
    use tokio::io::AsyncReadExt;

    let options = Options::customized(|settings| {
        settings.server.max_connections = std::num::NonZeroUsize::new(3);
    });
    let app = TestApp::spawn_edge_with(options).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&host).await.unwrap());
    }
    // Give the server a moment to accept them into their slots.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = tokio::net::TcpStream::connect(&host).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), refused.read_to_string(&mut answer))
        .await
        .expect("answered at once")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(
        answer.ends_with(r#"{"detail":"Server busy, retry shortly"}"#),
        "{answer}"
    );

    drop(idle);
    let started = Instant::now();
    loop {
        if let Ok(response) = app.client.get(app.url("/health")).send().await
            && response.status() == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slots never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
