//! `/metrics`: request durations by route template, login outcomes, hashing,
//! pool and outbox gauges, in the Prometheus text format; and who may read it.

use crate::helpers::{ALICE_PASSWORD, Options, TestApp};

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_login_outcomes_are_counted_by_route_and_kind() {
    let app = TestApp::spawn().await;
    let token = app.alice_token().await;
    for _ in 0..3 {
        assert_eq!(app.get_resource(&token).await.status(), 200);
    }
    assert_eq!(app.get_resource("not-a-token").await.status(), 401);
    assert_eq!(app.login("alice", "wrong password 1").await.status(), 400);
    assert_eq!(app.login("nobody", ALICE_PASSWORD).await.status(), 400);
    assert_eq!(app.login("nobody", ALICE_PASSWORD).await.status(), 400);
    // A path with an id is counted under its template, not the id.
    let session = uuid::Uuid::now_v7();
    assert_eq!(
        app.get_with_token(&format!("/sessions/{session}"), &token)
            .await
            .status(),
        405
    );
    let text = scrape(&app).await;
    let series = |route: &str, status: u16| {
        format!(
            "latchkey_http_request_duration_seconds_count{{method=\"GET\",route=\"{route}\",status=\"{status}\"}}"
        )
    };
    assert_eq!(
        sample(&text, &series("/get-resource", 200)),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &series("/get-resource", 401)),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains(&session.to_string()), "{text}");
    assert!(
        text.contains("# TYPE latchkey_http_request_duration_seconds histogram"),
        "{text}"
    );
    let outcome = |kind: &str| {
        sample(
            &text,
            &format!("latchkey_logins_total{{outcome=\"{kind}\"}}"),
        )
    };
    assert_eq!(outcome("success"), Some(1.0), "{text}");
    assert_eq!(outcome("wrong_password"), Some(1.0), "{text}");
    assert_eq!(outcome("unknown_user"), Some(2.0), "{text}");
    assert_eq!(outcome("locked"), Some(0.0), "{text}");
    // Registration and four logins hashed a password each.
    let hashes = sample(&text, "latchkey_hashing_duration_seconds_count").unwrap();
    assert!(hashes >= 5.0, "{text}");
    assert!(
        sample(&text, "latchkey_hashing_queue_wait_seconds_count").unwrap() >= 5.0,
        "{text}"
    );
    for gauge in [
        "latchkey_db_pool_connections{state=\"in_use\"}",
        "latchkey_db_pool_connections{state=\"idle\"}",
        "latchkey_outbox_depth",
        "latchkey_outbox_oldest_age_seconds",
        "latchkey_revocation_snapshot_age_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(sample(&text, gauge).is_some(), "{gauge} missing:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_served_through_a_proxy_or_without_the_configured_token() {
    let app = TestApp::spawn().await;
    let forwarded = app
        .client
        .get(app.url("/metrics"))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 403);
    let token = "a scrape token of at least thirty-two bytes";
    let guarded = TestApp::spawn_with(Options::customized(move |settings| {
        settings.server.metrics_token =
            Some(latchkey::config::SigningSecret::parse(token.to_owned()).unwrap());
    }))
    .await;
    assert_eq!(guarded.get("/metrics").await.status(), 401);
    assert_eq!(
        guarded
            .get_with_token("/metrics", "a scrape token of at least thirty-two bytez")
            .await
            .status(),
        401
    );
    let scraped = guarded.get_with_token("/metrics", token).await;
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("latchkey_logins_total")
    );
}

/// The docs page is served from the binary and points at nothing outside
/// it: no validator, no other host; its one security scheme is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_calls_nothing_external() {
    let app = TestApp::spawn_edge().await;
    let initializer = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), 200);
    let script = initializer.text().await.unwrap();
    assert!(script.contains("\"validatorUrl\": \"none\""), "{script}");
    assert!(!script.contains("https://"), "{script}");
    let page = app.get("/docs/").await.text().await.unwrap();
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "{page}"
    );
    let document: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    assert_eq!(
        schemes.keys().collect::<Vec<_>>(),
        ["bearer"],
        "{schemes:?}"
    );
}
