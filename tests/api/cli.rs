//! The binary itself: configuration errors, `check-config`, `migrate`, and
//! graceful shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_latchkey");

pub(crate) fn latchkey(directory: &std::path::Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(directory)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LATCHKEY_LOG", "warn");
    command
}

#[test]
fn bad_configuration_fails_with_one_line_naming_the_setting() {
    let directory = tempfile::tempdir().unwrap();
    let cases = [
        ("LATCHKEY_LISTEN", "not-an-address", "listen"),
        ("SECRET_KEY", "too-short", "SECRET_KEY"),
        (
            "LATCHKEY_DATABASE_URL",
            "oracle://x",
            "LATCHKEY_DATABASE_URL",
        ),
        (
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            "0",
            "ACCESS_TOKEN_EXPIRE_MINUTES",
        ),
        ("LATCHKEY_ARGON2_MEMORY_KIB", "lots", "argon2_memory_kib"),
    ];
    for (variable, value, named) in cases {
        let output = latchkey(directory.path())
            .arg("check-config")
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(
            !stderr.contains("too-short"),
            "a secret was printed: {stderr}"
        );
    }
}

#[test]
fn check_config_prints_the_effective_settings_with_secrets_masked() {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("latchkey.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:9999\"\naudience = \"from-file\"\n",
    )
    .unwrap();
    let output = latchkey(directory.path())
        .args(["--config", config.to_str().unwrap(), "check-config"])
        .env("SECRET_KEY", "s3cret-s3cret-s3cret-s3cret-s3cret")
        .env("DATABASE_URL", "postgres://app:hunter2@db/app")
        .env("LATCHKEY_AUDIENCE", "from-env")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("listen = \"127.0.0.1:9999\""), "{stdout}");
    assert!(stdout.contains("audience = \"from-env\""), "{stdout}");
    assert!(stdout.contains("app:********@db"), "{stdout}");
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("s3cret"),
        "{stdout}"
    );
}

#[test]
fn version_and_help_answer() {
    let directory = tempfile::tempdir().unwrap();
    let version = latchkey(directory.path())
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    assert!(version.starts_with("latchkey "), "{version}");
    // The commit it was built from, as git names it (or `unknown` without git).
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    let help = latchkey(directory.path()).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for command in ["serve", "migrate", "check-config", "import-users"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn migrate_creates_the_default_sqlite_database() {
    let directory = tempfile::tempdir().unwrap();
    let output = latchkey(directory.path()).arg("migrate").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(directory.path().join("latchkey.db").exists());
    let again = latchkey(directory.path()).arg("migrate").output().unwrap();
    assert!(again.status.success());
}

/// SIGTERM: readiness turns 503 at once while requests are still served for
/// the shutdown delay (a load balancer moves traffic away), then the server
/// stops, cleanly.
#[test]
fn sigterm_drains_then_stops_the_server_cleanly() {
    let directory = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = latchkey(directory.path())
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_SHUTDOWN_DELAY_SECONDS", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    register_alice(port);
    let signalled = std::time::Instant::now();
    terminate(&server);
    let not_ready = loop {
        let ready = exchange(port, "GET", "/ready", "application/json", "");
        if !ready.starts_with("HTTP/1.1 200") {
            break ready;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(2),
            "/ready still 200 after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    assert!(not_ready.contains("Shutting down"), "{not_ready}");
    // Still serving while draining: a login works.
    let login = exchange(
        port,
        "POST",
        "/login",
        "application/x-www-form-urlencoded",
        "username=alice&password=tangerine+lantern+42",
    );
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    assert!(
        server.try_wait().unwrap().is_none(),
        "stopped before the delay"
    );
    let status = server.wait().unwrap();
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "stopped before the delay ended"
    );
    assert!(status.success(), "exit status {status}");
    // A clean stop folds SQLite's write-ahead log into the database file.
    let wal = directory.path().join("latchkey.db-wal");
    let wal_bytes = std::fs::metadata(&wal).map_or(0, |metadata| metadata.len());
    assert_eq!(wal_bytes, 0, "{} still holds writes", wal.display());
}

/// Sends one HTTP/1.1 request over a fresh connection; answers the status line and body.
pub(crate) fn exchange(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Started with the usual soft limit of 1,024 open files, the server raises
/// it to the hard limit: 5,000 idle connections then leave room for a login.
#[test]
fn five_thousand_idle_connections_do_not_stop_a_login() {
    let directory = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new("bash")
        .args(["-c", "ulimit -Sn 1024 && exec \"$0\"", BINARY])
        .current_dir(directory.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LATCHKEY_LOG", "error")
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    let idle: Vec<std::net::TcpStream> = (0..5_000)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    register_alice(port);
    let login = exchange(
        port,
        "POST",
        "/login",
        "application/x-www-form-urlencoded",
        "username=alice&password=tangerine+lantern+42",
    );
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    assert!(login.contains("access_token"), "{login}");
    drop(idle);
    let _ = server.kill();
    let _ = server.wait();
}

pub(crate) fn wait_until_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(port) {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn register_alice(port: u16) {
    let registered = exchange(
        port,
        "POST",
        "/register",
        "application/json",
        r#"{"username":"alice","email":"alice@example.com","password":"tangerine lantern 42"}"#,
    );
    assert!(registered.starts_with("HTTP/1.1 200"), "{registered}");
}

/// Sends SIGTERM, as an orchestrator stopping the server would.
fn terminate(server: &std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

pub(crate) fn run_ok(directory: &std::path::Path, args: &[&str]) -> String {
    let output = latchkey(directory).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "latchkey {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn api_keys_roles_and_webhooks_are_managed_from_the_command_line() {
    let directory = tempfile::tempdir().unwrap();
    let created = run_ok(
        directory.path(),
        &[
            "api-keys",
            "create",
            "support",
            "--scope",
            "admin:users,admin:audit",
        ],
    );
    let key = created
        .lines()
        .find_map(|line| line.strip_prefix("key: "))
        .expect("the key is printed");
    assert!(key.starts_with("lk_"));
    let id = created
        .lines()
        .find_map(|line| line.strip_prefix("id: "))
        .unwrap()
        .to_owned();
    let listed = run_ok(directory.path(), &["api-keys", "list"]);
    assert!(
        listed.contains("support\tadmin:users,admin:audit"),
        "{listed}"
    );
    assert!(!listed.contains(key), "the key is never listed");
    run_ok(directory.path(), &["api-keys", "revoke", &id]);
    assert!(run_ok(directory.path(), &["api-keys", "list"]).contains("revoked 20"));
    let unknown_scope = latchkey(directory.path())
        .args(["api-keys", "create", "x", "--scope", "root"])
        .output()
        .unwrap();
    assert!(!unknown_scope.status.success());

    run_ok(directory.path(), &["roles", "create", "admin"]);
    assert!(run_ok(directory.path(), &["roles", "list"]).starts_with("admin"));

    let refused = latchkey(directory.path())
        .args([
            "webhooks",
            "create",
            "https://127.0.0.1/x",
            "--events",
            "user.created",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let hook = run_ok(
        directory.path(),
        &[
            "webhooks",
            "create",
            "https://8.8.8.8/hook",
            "--events",
            "user.created,login.failed",
        ],
    );
    assert!(hook.contains("secret: whsec_"), "{hook}");
    let listed = run_ok(directory.path(), &["webhooks", "list"]);
    assert!(
        listed.contains("https://8.8.8.8/hook\tuser.created,login.failed\thealthy"),
        "{listed}"
    );
    assert!(!listed.contains("whsec_"));
}

#[test]
fn an_unreachable_database_is_named_by_host_and_reason_without_its_password() {
    let directory = tempfile::tempdir().unwrap();
    let output = latchkey(directory.path())
        .env(
            "LATCHKEY_DATABASE_URL",
            "postgres://app:hunter2secret@127.0.0.1:1/app",
        )
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    assert!(!stderr.contains("hunter2secret"), "{stderr}");
}

/// At the default log level each request writes one access line: method,
/// route template, status, latency in milliseconds as a number, request id;
/// a wrong password writes a warning naming the account only by a hash.
#[test]
fn requests_are_logged_at_info_without_secrets() {
    let directory = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = latchkey(directory.path())
        .env("LATCHKEY_LOG", "info")
        .env("LATCHKEY_LOG_FORMAT", "json")
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_SHUTDOWN_DELAY_SECONDS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    register_alice(port);
    let refused = exchange(
        port,
        "POST",
        "/login",
        "application/x-www-form-urlencoded",
        "username=alice&password=not+her+secret+77",
    );
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    terminate(&server);
    let output = server.wait_with_output().unwrap();
    let logs = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let access = lines
        .iter()
        .find(|line| line["target"] == "latchkey::access" && line["route"] == "/login")
        .unwrap_or_else(|| panic!("no access line for /login:\n{logs}"));
    assert_eq!(access["level"], "INFO", "{access}");
    assert_eq!(access["status"], 400, "{access}");
    assert!(access["latency_ms"].is_f64(), "{access}");
    assert_eq!(access["span"]["method"], "POST", "{access}");
    assert!(
        access["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{access}"
    );
    let failed = lines
        .iter()
        .find(|line| {
            line["fields"]["message"] == "login failed" || line["message"] == "login failed"
        })
        .unwrap_or_else(|| panic!("no warning for the failed login:\n{logs}"));
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert!(!logs.contains("alice"), "the account was named:\n{logs}");
    assert!(
        !logs.contains("not+her+secret"),
        "a password was logged:\n{logs}"
    );
    assert!(
        !logs.contains("not her secret"),
        "a password was logged:\n{logs}"
    );
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, request spans reach a real OTLP
/// receiver (`tests/otlp/receiver.py`, decoding the protobuf with the
/// OpenTelemetry project's classes), as children of the caller's
/// `traceparent`.
#[test]
fn request_spans_are_exported_over_otlp_continuing_the_callers_trace() {
    use std::io::BufRead;
    let directory = tempfile::tempdir().unwrap();
    let spans = directory.path().join("spans.jsonl");
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut receiver = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/otlp/receiver.py"
        ))
        .arg(&spans)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    let mut first_line = String::new();
    std::io::BufReader::new(receiver.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let receiver_port: u16 = first_line.trim().parse().unwrap_or_else(|_| {
        panic!("the receiver did not start (pip install opentelemetry-proto): {first_line:?}")
    });
    let port = free_port();
    let mut server = latchkey(directory.path())
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{receiver_port}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let answer = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             traceparent: 00-{trace_id}-{caller_span}-01\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let span = loop {
        let recorded = std::fs::read_to_string(&spans).unwrap_or_default();
        let found = recorded
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|span| span["trace_id"] == trace_id);
        if let Some(span) = found {
            break span;
        }
        assert!(
            Instant::now() < deadline,
            "no span of trace {trace_id} reached the receiver: {recorded}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = server.kill();
    let _ = server.wait();
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert_eq!(span["parent_span_id"], caller_span, "{span}");
    assert_eq!(span["name"], "request", "{span}");
    assert_eq!(span["service"], "latchkey", "{span}");
    assert_eq!(span["attributes"]["path"], "/health", "{span}");
    assert_eq!(span["attributes"]["method"], "GET", "{span}");
}

/// Behind a proxy without a public URL, instances would refuse each other's
/// tokens: start-up says so, naming the setting.
#[test]
fn a_proxied_instance_without_a_public_url_is_warned_about() {
    let directory = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = latchkey(directory.path())
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8")
        .env("LATCHKEY_SHUTDOWN_DELAY_SECONDS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    terminate(&server);
    let stderr = server.stderr.take().unwrap();
    let _ = server.wait();
    let logs = std::io::read_to_string(stderr).unwrap();
    assert!(
        logs.contains("WARN") && logs.contains("set LATCHKEY_PUBLIC_URL"),
        "{logs}"
    );
}
