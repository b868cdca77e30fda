//! Abuse protection: lockouts, per-client limits, trusted proxies, Redis
//! shared across instances (and its outage), the hashing bound, the audit trail.

use std::num::{NonZeroU32, NonZeroUsize};
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use latchkey::clock::ManualClock;
use latchkey::config::{Networks, SecretUrl, Switch};
use serde_json::json;

use crate::helpers::{ALICE_PASSWORD, Options, TestApp, json_with_status};

fn count(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).expect("a count above zero")
}

const WRONG: &str = "not the right password";

async fn login_from(
    app: &TestApp,
    username: &str,
    password: &str,
    forwarded_for: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/login"))
        .header("x-forwarded-for", forwarded_for)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

fn retry_after(response: &reqwest::Response) -> i64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_wrong_passwords_lock_the_account_until_the_wait_is_over() {
    let app = TestApp::spawn().await;
    let (app, clock) = app.with_manual_clock().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let mut first_throttled = None;
    for attempt in 1..=30 {
        let response = app.login("alice", WRONG).await;
        match response.status().as_u16() {
            400 => assert!(
                first_throttled.is_none(),
                "a 400 after a 429 at attempt {attempt}"
            ),
            429 => {
                assert!(retry_after(&response) >= 1);
                first_throttled.get_or_insert(attempt);
            }
            other => panic!("attempt {attempt}: status {other}"),
        }
    }
    assert!(
        first_throttled.is_some_and(|attempt| attempt <= 11),
        "{first_throttled:?}"
    );

    // While locked: the right password, a wrong one, and the account's email all get the same answer.
    let right = app.login("alice", ALICE_PASSWORD).await;
    let wait = retry_after(&right);
    let right_body = json_with_status(right, 429).await;
    let wrong_body = json_with_status(app.login("alice", WRONG).await, 429).await;
    let by_email =
        json_with_status(app.login("alice@example.com", ALICE_PASSWORD).await, 429).await;
    assert_eq!(right_body, wrong_body);
    assert_eq!(right_body, by_email);
    assert_eq!(
        right_body,
        json!({"detail": "Too many attempts; retry later"})
    );

    // Unknown accounts are throttled the same way, so the lock reveals nothing.
    for _ in 0..10 {
        app.login("mallory", WRONG).await;
    }
    assert_eq!(
        json_with_status(app.login("mallory", WRONG).await, 429).await,
        right_body
    );

    clock.advance(Duration::seconds(wait));
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 200);
    // A success clears the count.
    assert_eq!(app.login("alice", WRONG).await.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_doubles_with_each_further_failure_up_to_its_cap() {
    let clock = ManualClock::new(chrono::Utc::now());
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    let app = TestApp::spawn_with(options).await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    for _ in 0..10 {
        app.login("alice", WRONG).await;
    }
    let mut waits = Vec::new();
    for _ in 0..8 {
        let response = app.login("alice", WRONG).await;
        assert_eq!(response.status(), 429, "after waits {waits:?}");
        let wait = retry_after(&response);
        waits.push(wait);
        clock.advance(Duration::seconds(wait));
        assert_eq!(
            app.login("alice", WRONG).await.status(),
            400,
            "the lock ended"
        );
    }
    assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900, 900]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_failures_over_fifty_usernames_throttle_the_client_even_with_spoofed_headers() {
    let app = TestApp::spawn().await;
    for n in 0..50 {
        let response =
            login_from(&app, &format!("user{n}"), WRONG, &format!("198.51.100.{n}")).await;
        assert_eq!(response.status(), 400, "attempt {n}");
    }
    let response = login_from(&app, "someone-new", WRONG, "203.0.113.77").await;
    assert_eq!(response.status(), 429);
    assert!(retry_after(&response) >= 1);
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    assert_eq!(
        login_from(&app, "alice", ALICE_PASSWORD, "203.0.113.78")
            .await
            .status(),
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let options = Options::customized(|settings| {
        settings.server.trusted_proxies = Networks::parse("127.0.0.1").unwrap()
    });
    let app = TestApp::spawn_with(options).await;
    for n in 0..50 {
        login_from(&app, &format!("user{n}"), WRONG, "198.51.100.1").await;
    }
    assert_eq!(
        login_from(&app, "user-x", WRONG, "198.51.100.1")
            .await
            .status(),
        429
    );
    assert_eq!(
        login_from(&app, "user-x", WRONG, "198.51.100.2")
            .await
            .status(),
        400
    );
    // The address recorded for the session is the forwarded client's.
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let body = json_with_status(
        login_from(&app, "alice", ALICE_PASSWORD, "192.0.2.5, 127.0.0.1").await,
        200,
    )
    .await;
    let token = body["access_token"].as_str().unwrap();
    let sessions = app.get_with_token("/sessions", token).await;
    assert_eq!(json_with_status(sessions, 200).await[0]["ip"], "192.0.2.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_per_client_are_limited() {
    let options =
        Options::customized(|settings| settings.throttle.rate_register_per_hour = count(3));
    let app = TestApp::spawn_with(options).await;
    for n in 0..3 {
        let response = app
            .register(
                &format!("user{n}"),
                &format!("user{n}@example.com"),
                ALICE_PASSWORD,
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let response = app
        .register("user9", "user9@example.com", ALICE_PASSWORD)
        .await;
    assert_eq!(response.status(), 429);
    assert!(
        retry_after(&response) > 60,
        "a slot frees in about 20 minutes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_per_client_are_limited_with_an_rfc_6749_body() {
    let options =
        Options::customized(|settings| settings.throttle.rate_refresh_per_minute = count(2));
    let app = TestApp::spawn_with(options).await;
    for _ in 0..2 {
        assert_eq!(app.refresh("unknown").await.status(), 400);
    }
    let response = app.refresh("unknown").await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        json_with_status(response, 429).await["error"],
        "temporarily_unavailable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_off_turns_every_throttle_off() {
    let options = Options::customized(|settings| settings.throttle.rate_limits = Switch::Off);
    let app = TestApp::spawn_with(options).await;
    for _ in 0..30 {
        assert_eq!(app.login("alice", WRONG).await.status(), 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_gets_fast_503s_and_never_starves_protected_routes() {
    let options = Options::customized(|settings| {
        settings.passwords.hash_concurrency = NonZeroUsize::new(1);
        settings.passwords.hash_queue_limit = NonZeroUsize::MIN.saturating_add(1);
        settings.throttle.rate_limits = Switch::Off;
    });
    let app = TestApp::spawn_with(options).await;
    let token = app.alice_token().await;
    let flood: Vec<_> = (0..24)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/login");
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .form(&[("username", "alice"), ("password", WRONG)])
                    .send()
                    .await
                    .unwrap();
                let retry = response.headers().get("retry-after").is_some();
                (response.status().as_u16(), retry)
            })
        })
        .collect();
    for _ in 0..10 {
        assert_eq!(app.get_resource(&token).await.status(), 200);
    }
    let mut busy = 0;
    for attempt in flood {
        match attempt.await.unwrap() {
            (400, _) => {}
            (503, true) => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        busy > 0,
        "with one slot and two queue places, most of 24 logins must be refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_are_audited_without_secrets() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    for _ in 0..10 {
        app.login("alice", WRONG).await;
    }
    app.login("alice", ALICE_PASSWORD).await;
    let trail = app.auth.audit_trail("alice", 50).await.unwrap().unwrap();
    let events: Vec<&str> = trail.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(
        events
            .iter()
            .filter(|event| **event == "login_failure")
            .count(),
        10
    );
    assert!(events.contains(&"lockout"));
    assert!(events.contains(&"login_throttled"));
    assert!(
        trail
            .iter()
            .all(|event| event.client_ip.as_deref() == Some("127.0.0.1"))
    );
    let text = format!("{trail:?}");
    assert!(!text.contains(WRONG) && !text.contains(ALICE_PASSWORD));
    assert!(app.auth.audit_trail("nobody", 5).await.unwrap().is_none());
}

/// The Redis server shared-counter tests use: `LATCHKEY_TEST_REDIS_URL`, or
/// the local default. A server that cannot be reached fails those tests.
fn redis_url() -> String {
    std::env::var("LATCHKEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn with_redis(url: String, prefix: String) -> Options {
    Options::customized(move |settings| {
        settings.throttle.redis_url = Some(SecretUrl::parse(&url).unwrap());
        settings.throttle.redis_prefix.clone_from(&prefix);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_enforce_one_account_limit() {
    let url = redis_url();
    let prefix = format!("latchkey-test-{}:", uuid::Uuid::now_v7().simple());
    let first = TestApp::spawn_with(with_redis(url.clone(), prefix.clone())).await;
    let second = first.sibling(with_redis(url, prefix)).await;
    first
        .register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    for n in 0..10 {
        let instance = if n % 2 == 0 { &first } else { &second };
        assert_eq!(instance.login("alice", WRONG).await.status(), 400);
    }
    assert_eq!(first.login("alice", ALICE_PASSWORD).await.status(), 429);
    assert_eq!(second.login("alice", ALICE_PASSWORD).await.status(), 429);
}

/// A Redis server of the test's own, so it can be stopped and started.
struct OwnRedis {
    port: u16,
    process: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let process = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + StdDuration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(StdDuration::from_millis(20));
        }
        Self { port, process }
    }

    fn stop(mut self) -> u16 {
        let _ = self.process.kill();
        let _ = self.process.wait();
        self.port
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.process.kill();
    }
}

async fn degraded(app: &TestApp) -> bool {
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .any(|line| line == "latchkey_rate_limit_redis_degraded 1")
}

async fn wait_until_degraded_is(app: &TestApp, expected: bool) {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while degraded(app).await != expected {
        assert!(
            Instant::now() < deadline,
            "degraded never became {expected}"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_falls_back_to_local_counters_and_recovers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = OwnRedis::start(port);
    let options = with_redis(format!("redis://127.0.0.1:{port}"), "latchkey:".to_owned());
    let app = TestApp::spawn_with(options).await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    assert!(!degraded(&app).await);

    let port = redis.stop();
    for _ in 0..10 {
        assert_eq!(
            app.login("alice", WRONG).await.status(),
            400,
            "served from local counters"
        );
    }
    assert_eq!(
        app.login("alice", WRONG).await.status(),
        429,
        "local counters still throttle"
    );
    wait_until_degraded_is(&app, true).await;

    let _redis = OwnRedis::start(port);
    wait_until_degraded_is(&app, false).await;
    // Back on Redis (which lost its counters): the account starts afresh there.
    assert_eq!(app.login("bob", WRONG).await.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_current_passwords_count_towards_the_account_lockout() {
    let app = TestApp::spawn_with(Options::default()).await;
    let token = app.alice_token().await;
    let body = json!({"current_password": WRONG, "new_password": "a brand new passphrase"});
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = app
            .client
            .post(app.url("/me/password"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..10], [400; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    // The lock is the account's: logging in with the right password waits too.
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 429);
    let events: Vec<String> = app
        .auth
        .audit_trail("alice", 50)
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert!(events.contains(&"lockout".to_owned()), "{events:?}");
}

/// An attacker polls the account from one address, a wrong password each
/// minute, for thirty minutes (injected time): that address stays locked out,
/// and the owner, from another address, logs in whenever they try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_polling_an_account_never_locks_its_owner_out() {
    let clock = ManualClock::new(chrono::Utc::now());
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::customized(|settings| {
            settings.server.trusted_proxies = Networks::parse("127.0.0.1").unwrap();
        })
    };
    let app = TestApp::spawn_with(options).await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (attacker, owner) = ("203.0.113.9", "198.51.100.7");
    let mut refused = 0;
    for minute in 0..30 {
        for _ in 0..11 {
            if login_from(&app, "alice", WRONG, attacker).await.status() == 429 {
                refused += 1;
            }
        }
        if minute % 5 == 4 {
            let response = login_from(&app, "alice", ALICE_PASSWORD, owner).await;
            assert_eq!(response.status(), 200, "minute {minute}");
        }
        clock.advance(Duration::minutes(1));
    }
    assert!(refused > 0, "the attacker's address was never locked");
    // The attacker's own lock stands, whatever password it sends.
    let response = login_from(&app, "alice", ALICE_PASSWORD, attacker).await;
    assert_eq!(response.status(), 429);
}

/// Failures from many addresses add up: past the account-wide threshold the
/// account locks for everyone, the owner included, until the lock ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_many_addresses_lock_the_account_for_everyone() {
    let clock = ManualClock::new(chrono::Utc::now());
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::customized(|settings| {
            settings.server.trusted_proxies = Networks::parse("127.0.0.1").unwrap();
            settings.throttle.login_max_failures_all_clients = count(20);
        })
    };
    let app = TestApp::spawn_with(options).await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    for address in 1..=20 {
        let response = login_from(&app, "alice", WRONG, &format!("203.0.113.{address}")).await;
        assert_eq!(response.status(), 400, "address {address}");
    }
    let owner = login_from(&app, "alice", ALICE_PASSWORD, "198.51.100.7").await;
    assert_eq!(owner.status(), 429);
    clock.advance(Duration::seconds(retry_after(&owner)));
    let owner = login_from(&app, "alice", ALICE_PASSWORD, "198.51.100.7").await;
    assert_eq!(owner.status(), 200);
}

/// Locks outlive a Redis outage both ways: a lock held in Redis is still
/// enforced while Redis is down, and a lock set during the outage reaches
/// Redis when it returns, where another instance finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_survive_a_redis_outage_in_both_directions() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = format!("latchkey-test-{}:", uuid::Uuid::now_v7().simple());
    let redis = OwnRedis::start(port);
    let app = TestApp::spawn_with(with_redis(url.clone(), prefix.clone())).await;
    for name in ["alice", "bob"] {
        app.register(name, &format!("{name}@example.com"), ALICE_PASSWORD)
            .await;
    }
    for _ in 0..10 {
        assert_eq!(app.login("alice", WRONG).await.status(), 400);
    }
    assert_eq!(app.login("alice", ALICE_PASSWORD).await.status(), 429);

    let port = redis.stop();
    wait_until_degraded_is(&app, true).await;
    assert_eq!(
        app.login("alice", ALICE_PASSWORD).await.status(),
        429,
        "the lock Redis held is still enforced"
    );
    for _ in 0..10 {
        app.login("bob", WRONG).await;
    }
    assert_eq!(app.login("bob", ALICE_PASSWORD).await.status(), 429);

    let _redis = OwnRedis::start(port);
    wait_until_degraded_is(&app, false).await;
    // The next counter operation writes the outage's locks back.
    assert_eq!(app.login("nobody", WRONG).await.status(), 400);
    let other = app.sibling(with_redis(url, prefix)).await;
    assert_eq!(
        other.login("bob", ALICE_PASSWORD).await.status(),
        429,
        "the lock set during the outage reached Redis"
    );
    assert_eq!(
        other.login("alice", ALICE_PASSWORD).await.status(),
        429,
        "the lock held before the outage is back in the restarted Redis"
    );
}
