//! A database outage, made real: the server reaches its database through a
//! TCP relay that the test cuts and restores. Requests that need the database
//! answer 503 with `Retry-After` quickly, `/ready` says so within a second,
//! and service comes back by itself once the database is reachable again.
//!
//! SQLite has no network to cut, so these tests are ignored by a plain
//! `cargo test` (and reported as such); CI runs them on MariaDB and
//! PostgreSQL with `--include-ignored`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey::config::DatabaseUrl;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{ALICE_PASSWORD, Backend, Options, TestApp};

/// A TCP relay to the database that can be cut and restored on the same port.
struct Relay {
    port: u16,
    target: String,
    accepting: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Self {
            port,
            target,
            accepting: None,
            connections: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let (target, connections) = (self.target.clone(), Arc::clone(&self.connections));
        self.accepting = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(relay);
            }
        }));
    }

    /// The database becomes unreachable: open connections drop, new ones are refused.
    fn cut(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    async fn restore(&mut self) {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(address).await {
                Ok(listener) => break listener,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("cannot listen on {address} again: {error}"),
            }
        };
        self.serve(listener);
    }
}

/// A server whose database connections go through a relay.
async fn behind_a_relay() -> (TestApp, TestApp, Relay) {
    assert_ne!(
        Backend::under_test(),
        Backend::Sqlite,
        "the outage tests need a network database: LATCHKEY_TEST_DATABASE=mysql or postgres"
    );
    let app = TestApp::spawn().await;
    let direct = url::Url::parse(&app.database.url).unwrap();
    let target = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port_or_known_default().unwrap()
    );
    let relay = Relay::start(target).await;
    let mut relayed = direct.clone();
    relayed.set_port(Some(relay.port)).unwrap();
    let relayed = relayed.to_string();
    let options = Options::customized(move |settings| {
        settings.database.url = DatabaseUrl::parse(&relayed).unwrap();
    });
    let served = app.sibling(options).await;
    (app, served, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a network database: LATCHKEY_TEST_DATABASE=mysql|postgres, run with --include-ignored"]
async fn a_database_outage_answers_503_quickly_and_service_returns_by_itself() {
    let (_direct, app, mut relay) = behind_a_relay().await;
    assert_eq!(
        app.register("alice", "alice@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
    relay.cut();

    let asked = Instant::now();
    let response = app.login("alice", ALICE_PASSWORD).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["detail"], "Service unavailable");

    let asked = Instant::now();
    let ready = app.get("/ready").await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));

    let refresh = app.refresh("a-refresh-token").await;
    assert_eq!(refresh.status(), 503, "the token endpoint too");

    relay.restore().await;
    let restored = Instant::now();
    while app.get("/ready").await.status() != 200 {
        assert!(
            restored.elapsed() < Duration::from_secs(2),
            "not ready 2 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
}
