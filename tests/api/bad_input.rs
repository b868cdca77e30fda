//! Malformed, oversized and hostile input: always a 4xx JSON error with a
//! `detail`, never a 5xx, and nothing written.

use serde_json::json;

use crate::edge::post_register;
use crate::helpers::{ALICE_PASSWORD, TestApp, json_with_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_registrations_write_nothing() {
    let app = TestApp::spawn().await;
    let response = post_register(
        &app,
        json!({"username": "alice", "email": "alice@example.com", "password": "short"}),
    )
    .await;
    assert_eq!(response.status(), 422);
    // Every field is reported at once.
    let response = post_register(
        &app,
        json!({"username": "a", "email": "b", "password": "c"}),
    )
    .await;
    assert_eq!(
        json_with_status(response, 422).await["detail"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        app.register("alice", "alice@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_login_input_never_causes_a_server_error() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let names = [
        "' OR '1'='1",
        "alice'--",
        "%",
        "_____",
        "alice\u{0}",
        "\u{202e}ecila",
        "ＡＬＩＣＥ",
        "",
    ];
    for name in names {
        let status = app.login(name, ALICE_PASSWORD).await.status().as_u16();
        assert!(
            status == 400 || status == 422 || (name == "ＡＬＩＣＥ" && status == 200),
            "{name:?} gave {status}"
        );
    }
    for header in [
        "Bearer",
        "Bearer a.b.c",
        "Bearer ....",
        "Bearer eyJ0eXAiOiJKV1QifQ.e30.",
        "Bearer \u{7f}",
    ] {
        let request = app
            .client
            .get(app.url("/get-resource"))
            .header("authorization", header);
        let Ok(response) = request.send().await else {
            continue;
        };
        assert_eq!(response.status(), 401, "{header:?}");
    }
}
