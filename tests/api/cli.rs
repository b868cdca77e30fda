//! The binary itself: configuration errors, `check-config`, `migrate`, and
//! graceful shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_latchkey");

fn latchkey(directory: &std::path::Path) -> Command {
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

#[test]
fn sigterm_stops_the_server_cleanly() {
    let directory = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = latchkey(directory.path())
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    register_alice(port);
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    // A clean stop folds SQLite's write-ahead log into the database file.
    let wal = directory.path().join("latchkey.db-wal");
    let wal_bytes = std::fs::metadata(&wal).map_or(0, |metadata| metadata.len());
    assert_eq!(wal_bytes, 0, "{} still holds writes", wal.display());
}

/// Sends one HTTP/1.1 request over a fresh connection; answers the status line and body.
fn exchange(port: u16, method: &str, path: &str, content_type: &str, body: &str) -> String {
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

fn wait_until_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(port) {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn register_alice(port: u16) {
    let registered = exchange(
        port,
        "POST",
        "/register",
        "application/json",
        r#"{"username":"alice","email":"alice@example.com","password":"tangerine lantern 42"}"#,
    );
    assert!(registered.starts_with("HTTP/1.1 200"), "{registered}");
}

fn free_port() -> u16 {
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

fn run_ok(directory: &std::path::Path, args: &[&str]) -> String {
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
