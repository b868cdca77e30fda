//! `TestApp`: a real latchkey on a random port with a database of its own.
//!
//! SQLite always runs. MySQL/MariaDB and PostgreSQL run when
//! `LATCHKEY_TEST_MYSQL_URL` / `LATCHKEY_TEST_POSTGRES_URL` name a server where
//! each test may create and drop its own database. With
//! `LATCHKEY_TEST_REQUIRE_ALL_BACKENDS=1` (as CI sets) a missing URL fails the
//! test instead of skipping it.

use std::sync::Arc;

use latchkey::auth::Auth;
use latchkey::clock::{Clock, ManualClock, SystemClock};
use latchkey::config::Settings;
use latchkey::startup::Application;
use latchkey::store::Store;
use reqwest::{Client, Response};
use sea_orm::{ConnectionTrait, Database};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
    Postgres,
}

/// Generates one test per backend for each named `async fn(TestApp)`.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            use $crate::helpers::{Backend, TestApp};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::spawn(Backend::Sqlite).await.expect("SQLite always runs");
                super::$test(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                if let Some(app) = TestApp::spawn(Backend::MySql).await {
                    super::$test(app).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::spawn(Backend::Postgres).await {
                    super::$test(app).await;
                }
            }
        }
    )*};
}

/// A database created for one test and dropped after it.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _directory: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A fresh database on `backend`, or `None` when that backend is not configured.
    pub async fn create(backend: Backend) -> Option<Self> {
        let name = format!("lk_{}", uuid::Uuid::now_v7().simple());
        if backend == Backend::Sqlite {
            let directory = tempfile::tempdir().expect("temporary directory");
            let url = format!(
                "sqlite://{}/latchkey.db?mode=rwc",
                directory.path().display()
            );
            return Some(Self {
                backend,
                url,
                admin_url: None,
                name,
                _directory: Some(directory),
            });
        }
        let variable = match backend {
            Backend::MySql => "LATCHKEY_TEST_MYSQL_URL",
            _ => "LATCHKEY_TEST_POSTGRES_URL",
        };
        let Ok(admin_url) = std::env::var(variable) else {
            assert!(
                std::env::var("LATCHKEY_TEST_REQUIRE_ALL_BACKENDS").is_err(),
                "{variable} is not set but every backend is required"
            );
            eprintln!("skipped: {variable} is not set");
            return None;
        };
        let admin = Database::connect(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("cannot reach {variable}: {error}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("database URL");
        url.set_path(&format!("/{name}"));
        Some(Self {
            backend,
            url: url.to_string(),
            admin_url: Some(admin_url),
            name,
            _directory: None,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let statement = match self.backend {
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        // Drop runs outside any runtime we may block, so use a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin.execute_unprepared(&statement).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Changes a test makes to the default test settings.
pub type Customize = Arc<dyn Fn(&mut Settings) + Send + Sync>;

/// How a test wants its server set up.
#[derive(Clone, Default)]
pub struct Options {
    pub secret_key: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub clock: Option<ManualClock>,
    pub customize: Option<Customize>,
}

impl Options {
    pub fn customized(customize: impl Fn(&mut Settings) + Send + Sync + 'static) -> Self {
        Self {
            customize: Some(Arc::new(customize)),
            ..Self::default()
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub store: Store,
    pub auth: Arc<Auth>,
    pub database: Arc<TestDatabase>,
    options: Options,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Option<Self> {
        let database = Arc::new(TestDatabase::create(backend).await?);
        Some(Self::start(database, options).await)
    }

    /// Another server on the same database, with its own options.
    pub async fn sibling(&self, options: Options) -> Self {
        Self::start(Arc::clone(&self.database), options).await
    }

    /// Stops this server and starts a new one on the same database and options.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        Self::start(Arc::clone(&self.database), self.options.clone()).await
    }

    async fn start(database: Arc<TestDatabase>, options: Options) -> Self {
        let settings = test_settings(&database.url, &options);
        let clock: Arc<dyn Clock> = match &options.clock {
            Some(clock) => Arc::new(clock.clone()),
            None => Arc::new(SystemClock),
        };
        let application = Application::build_with_clock(settings, clock)
            .await
            .expect("application builds");
        let address = format!("http://{}", application.address());
        let auth = Arc::clone(&application.state().auth);
        let store = auth.store().clone();
        let (shutdown, signal) = oneshot::channel();
        let server = tokio::spawn(application.run_until(async {
            let _ = signal.await;
        }));
        Self {
            address,
            client: Client::new(),
            store,
            auth,
            database,
            options,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/register"))
            .json(&json!({"username": username, "email": email, "password": password}))
            .send()
            .await
            .expect("request")
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request")
    }

    /// Registers `alice` and returns a fresh access token for her.
    pub async fn alice_token(&self) -> String {
        let registered = self
            .register("alice", "alice@example.com", ALICE_PASSWORD)
            .await;
        assert_eq!(registered.status(), 200);
        self.token_for("alice", ALICE_PASSWORD).await
    }

    /// Logs in, asserting success, and returns the access token.
    pub async fn token_for(&self, username: &str, password: &str) -> String {
        let body = json_with_status(self.login(username, password).await, 200).await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Logs in, asserting success; returns the access and refresh tokens.
    pub async fn token_pair(&self, username: &str, password: &str) -> (String, String) {
        let body = json_with_status(self.login(username, password).await, 200).await;
        let access = body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        (
            access,
            body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        )
    }

    /// `POST /oauth/token` with `grant_type=refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.client
            .post(self.url("/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .expect("request")
    }

    pub async fn jwks(&self) -> Value {
        let response = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("request");
        json_with_status(response, 200).await
    }

    /// `GET path` with a bearer token.
    pub async fn get_with_token(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// A server on the same database whose time moves only when the test says.
    pub async fn with_manual_clock(&self) -> (TestApp, ManualClock) {
        let clock = ManualClock::new(chrono::Utc::now());
        let app = self
            .sibling(Options {
                clock: Some(clock.clone()),
                ..Options::default()
            })
            .await;
        (app, clock)
    }

    pub async fn get_resource(&self, token: &str) -> Response {
        self.client
            .get(self.url("/get-resource"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Runs SQL on the test's database, for arranging states no route creates.
    pub async fn execute(&self, sql: &str) {
        self.store
            .execute_unprepared(sql)
            .await
            .expect("statement runs");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub const ALICE_PASSWORD: &str = "tangerine lantern 42";

fn test_settings(database_url: &str, options: &Options) -> Settings {
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        database_url: SecretString::from(database_url),
        database_max_connections: 5,
        ..Settings::default()
    };
    settings.secret_key = options.secret_key.clone().map(SecretString::from);
    settings.issuer.clone_from(&options.issuer);
    if let Some(audience) = &options.audience {
        settings.audience.clone_from(audience);
    }
    if let Some(customize) = &options.customize {
        customize(&mut settings);
    }
    settings.validate().expect("test settings are valid");
    settings
}

/// The JSON body of a response, asserting its status first.
pub async fn json_with_status(response: Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    response.json().await.expect("a JSON body")
}
