//! Webhooks, black-box: endpoints refused when they could reach inside the
//! network, and every event of a burst delivered, signed, to a real receiver
//! that verifies with the Standard Webhooks reference library (PyPI
//! `standardwebhooks`, in `tests/webhooks/receiver.py`), across the
//! receiver's outage and a restart of latchkey.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, api_key, call, json_with_status};

/// The receiver process; killed when dropped.
struct Receiver {
    child: Child,
}

impl Receiver {
    fn start(port: u16, secret: &str, output: &PathBuf) -> Self {
        let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/receiver.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg(port.to_string())
            .arg(secret)
            .arg(output)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        if line.trim() != "ready" {
            let output = child.wait_with_output().unwrap();
            panic!(
                "the receiver did not start (pip install standardwebhooks): {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Self { child }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn received(output: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(output)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_that_could_reach_inside_the_network_are_refused() {
    let app = TestApp::spawn().await;
    let key = api_key(&app, &["admin:webhooks"]).await;
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "http://example.com/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let created = call(
            &app,
            Method::POST,
            "/admin/webhooks",
            Some(&key),
            Some(json!({"url": url, "events": ["user.created"]})),
        )
        .await;
        assert_eq!(created.status(), 422, "{url}");
    }
    let unknown = call(
        &app,
        Method::POST,
        "/admin/webhooks",
        Some(&key),
        Some(json!({"url": "https://example.com/hook", "events": ["user.exploded"]})),
    )
    .await;
    assert_eq!(unknown.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_burst_arrives_signed_across_an_outage_and_a_restart() {
    let app = TestApp::spawn_with(Options::customized(|settings| {
        settings.webhooks.webhook_allow_private_networks = true;
    }))
    .await;
    let key = api_key(&app, &["admin:webhooks", "admin:users"]).await;
    let port = free_port();
    let folder = tempfile::tempdir().unwrap();
    let output = folder.path().join("received.jsonl");
    let created = call(&app, Method::POST, "/admin/webhooks", Some(&key),
        Some(json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["user.created", "user.updated"]})),
    )
    .await;
    let endpoint = json_with_status(created, 201).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    let listed = json_with_status(
        call(&app, Method::GET, "/admin/webhooks", Some(&key), None).await,
        200,
    )
    .await;
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once"
    );

    let receiver = Receiver::start(port, &secret, &output);
    let registered = app
        .register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    assert_eq!(registered.status(), 200);
    let alice = json_with_status(registered, 200).await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let user_path = format!("/admin/users/{alice_id}");
    let touch = |index: usize| {
        call(
            &app,
            Method::PATCH,
            &user_path,
            Some(&key),
            Some(json!({"app_metadata": {"n": index}})),
        )
    };
    for index in 0..200 {
        assert_eq!(touch(index).await.status(), 200);
    }
    // The receiver goes down; events keep coming; latchkey restarts.
    drop(receiver);
    for index in 200..499 {
        assert_eq!(touch(index).await.status(), 200);
    }
    // Until a delivery has failed against the stopped receiver, so that the
    // restart below has attempts to carry over.
    let failing = Instant::now();
    loop {
        let deliveries = latest_deliveries(&app, &key, &endpoint_id).await;
        let failed = deliveries.iter().any(|delivery| {
            delivery["delivered_at"].is_null() && delivery["attempts"].as_i64().unwrap() > 0
        });
        if failed {
            break;
        }
        assert!(
            failing.elapsed() < Duration::from_secs(30),
            "no delivery failed while the receiver was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = app.restart().await;
    let receiver = Receiver::start(port, &secret, &output);

    let started = Instant::now();
    let expected = 500;
    let ids = loop {
        let ids: HashSet<String> = received(&output)
            .iter()
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect();
        if ids.len() >= expected || started.elapsed() > Duration::from_secs(90) {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(receiver);
    assert_eq!(ids.len(), expected, "every event, at least once");
    let events = received(&output);
    assert_eq!(
        events
            .iter()
            .filter(|event| event["type"] == "user.created")
            .count(),
        1
    );
    let numbers: HashSet<i64> = events
        .iter()
        .filter(|event| event["type"] == "user.updated")
        .map(|event| event["data"]["app_metadata"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers.len(), 499);

    let deliveries = latest_deliveries(&app, &key, &endpoint_id).await;
    assert!(
        deliveries
            .iter()
            .all(|delivery| delivery["delivered_at"].is_string())
    );
    assert!(
        deliveries
            .iter()
            .any(|delivery| delivery["attempts"].as_i64().unwrap() > 1),
        "some were retried after the outage"
    );
}

/// The endpoint's 200 latest deliveries, as the admin API lists them.
async fn latest_deliveries(app: &TestApp, key: &str, endpoint_id: &str) -> Vec<Value> {
    let listed = json_with_status(
        call(
            app,
            Method::GET,
            &format!("/admin/webhooks/{endpoint_id}/deliveries?limit=200"),
            Some(key),
            None,
        )
        .await,
        200,
    )
    .await;
    listed["deliveries"].as_array().unwrap().clone()
}
