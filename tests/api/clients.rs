//! Third-party clients against the real binary: authlib's auto-refresh from
//! four threads, openid-client's discovery and introspection, and a page on
//! another origin in headless Chromium through CORS. The clients are the
//! scripts in `tests/clients/` (see its README); each exits 0 only when the
//! library got what it needed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::cli::{exchange, free_port, latchkey, register_alice, run_ok, wait_until_ready};

/// A `latchkey` process with its own SQLite database, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
    directory: tempfile::TempDir,
}

impl Server {
    /// Serves on a free port, with the issuer its own URL, plus `settings`.
    fn start(settings: &[(&str, String)]) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = latchkey(directory.path());
        command
            .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_ISSUER", format!("http://127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in settings {
            command.env(name, value);
        }
        let child = command.spawn().unwrap();
        wait_until_ready(port);
        Self {
            child,
            port,
            directory,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clients_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn python(script: &str, args: &[&str]) -> Output {
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    Command::new(&python)
        .arg(clients_folder().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"))
}

fn report(output: &Output) -> String {
    format!(
        "exit {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Four threads share one authlib session whose token expires under them,
/// round after round: the grace window answers every concurrent refresh the
/// same successor and the session lives. With the window off, the same
/// script fails: reuse detection ends the session.
#[test]
fn four_threads_of_authlib_auto_refresh_keep_the_session_alive() {
    let server = Server::start(&[]);
    register_alice(server.port);
    let run = python(
        "authlib_refresh.py",
        &[&server.url(), "alice", "tangerine lantern 42"],
    );
    assert!(run.status.success(), "{}", report(&run));

    let strict = Server::start(&[("LATCHKEY_REFRESH_GRACE_SECONDS", "0".to_owned())]);
    register_alice(strict.port);
    let run = python(
        "authlib_refresh.py",
        &[&strict.url(), "alice", "tangerine lantern 42"],
    );
    assert_eq!(run.status.code(), Some(1), "{}", report(&run));
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        said.contains("FAIL:") && said.contains("already used"),
        "{}",
        report(&run)
    );
}

/// A Node resource server on openid-client discovers latchkey and
/// introspects its tokens with a client made by `latchkey clients create`,
/// authenticating with HTTP Basic as RFC 6749 section 2.3.1 encodes it.
#[test]
fn openid_client_introspects_with_a_cli_created_client() {
    let folder = clients_folder();
    if !folder.join("node_modules/openid-client").is_dir() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&folder)
            .output()
            .expect("npm is needed for the openid-client test (see README)");
        assert!(installed.status.success(), "npm ci: {}", report(&installed));
    }
    let server = Server::start(&[]);
    register_alice(server.port);
    let created = run_ok(server.directory.path(), &["clients", "create", "node-api"]);
    let line = |prefix: &str| {
        created
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {prefix} in {created}"))
            .to_owned()
    };
    let (client_id, client_secret) = (line("client_id:"), line("client_secret:"));
    let login = exchange(
        server.port,
        "POST",
        "/login",
        "application/x-www-form-urlencoded",
        "username=alice&password=tangerine+lantern+42",
    );
    let body = login.split("\r\n\r\n").nth(1).unwrap_or_default();
    let token = serde_json::from_str::<serde_json::Value>(body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = Command::new("node")
        .arg(folder.join("openid_client_introspect.mjs"))
        .args([&server.url(), &client_id, &client_secret, &token])
        .output()
        .expect("node is needed for the openid-client test (see README)");
    assert!(run.status.success(), "{}", report(&run));
    // The same script refuses a wrong secret: it can fail.
    let run = Command::new("node")
        .arg(folder.join("openid_client_introspect.mjs"))
        .args([&server.url(), &client_id, "not-the-secret", &token])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", report(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("401")
            || String::from_utf8_lossy(&run.stdout).contains("401"),
        "{}",
        report(&run)
    );
}

/// A page on another origin logs in and calls a protected route from
/// headless Chromium; the same page on an origin not listed is refused by
/// the browser.
#[test]
fn a_page_on_another_origin_logs_in_through_cors_in_chromium() {
    let page_port = free_port();
    let server = Server::start(&[(
        "LATCHKEY_CORS_ORIGINS",
        format!("http://127.0.0.1:{page_port}"),
    )]);
    let run = python("cors_page.py", &[&server.url(), &page_port.to_string()]);
    assert!(run.status.success(), "{}", report(&run));
}

/// The hosted pages in headless Chromium with a real SMTP server: sign up
/// and verify by the emailed link, enrol TOTP, add a passkey and sign in
/// with it (the virtual authenticator), an authlib relying party's code
/// flow with PKCE through the second factor and consent (it verifies the ID
/// token from discovery alone), a password reset and an email change from
/// their links; axe-core on every page. `LATCHKEY_UPDATE_SCREENSHOTS=1`
/// writes the screenshots to `docs/pages/`.
#[test]
fn the_hosted_pages_work_end_to_end_in_chromium() {
    let folder = clients_folder();
    if !folder.join("node_modules/axe-core").is_dir() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&folder)
            .output()
            .expect("npm is needed for axe-core (see README)");
        assert!(installed.status.success(), "npm ci: {}", report(&installed));
    }
    let (smtp_port, rp_port, port) = (free_port(), free_port(), free_port());
    let base = format!("http://localhost:{port}");
    let directory = tempfile::tempdir().unwrap();
    let mut command = latchkey(directory.path());
    command
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_ISSUER", &base)
        .env("LATCHKEY_PUBLIC_URL", &base)
        .env(
            "LATCHKEY_SMTP_URL",
            format!("smtp://127.0.0.1:{smtp_port}?tls=none"),
        )
        .env("LATCHKEY_MAIL_POLL_MILLISECONDS", "100")
        .env("LATCHKEY_PRODUCT_NAME", "Acme")
        .env("LATCHKEY_EMAIL_SIGN_IN", "on")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(directory.path().join("server.log")).unwrap());
    let created = run_ok(
        directory.path(),
        &[
            "clients",
            "create",
            "Acme Notes",
            "--redirect-uri",
            &format!("http://127.0.0.1:{rp_port}/callback"),
            "--public",
        ],
    );
    let client_id = created
        .lines()
        .find_map(|line| line.strip_prefix("client_id: "))
        .unwrap()
        .to_owned();
    let mut child = command.spawn().unwrap();
    wait_until_ready(port);
    let shots = match std::env::var("LATCHKEY_UPDATE_SCREENSHOTS") {
        Ok(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/pages"),
        Err(_) => directory.path().join("shots"),
    };
    let run = python(
        "hosted_pages.py",
        &[
            &base,
            &smtp_port.to_string(),
            &client_id,
            &rp_port.to_string(),
            shots.to_str().unwrap(),
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(directory.path().join("server.log")).unwrap_or_default();
    assert!(run.status.success(), "{}\nserver log:\n{log}", report(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("\nOK"),
        "{}",
        report(&run)
    );
    for page in [
        "sign-in",
        "second-factor",
        "consent",
        "account",
        "sign-up",
        "reset-password",
    ] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "no screenshot of {page}"
        );
    }
}
