//! `TestApp`: a real latchkey on a random port with a database of its own.
//!
//! A run targets one backend, chosen by `LATCHKEY_TEST_DATABASE`
//! (`sqlite`, the default, `mysql` or `postgres`). MySQL/MariaDB and
//! PostgreSQL tests create a database of their own on the server named by
//! `LATCHKEY_TEST_MYSQL_URL` / `LATCHKEY_TEST_POSTGRES_URL` (defaults: root
//! on 127.0.0.1) and drop it after; a server that cannot be reached fails the
//! test, never skips it. `TEST_LOG=1` shows the servers' logs.

use std::sync::{Arc, Once};

use latchkey::auth::Auth;
use latchkey::clock::{Clock, ManualClock, SystemClock};
use latchkey::config::{DatabaseUrl, Settings};
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

impl Backend {
    /// The backend this run targets, from `LATCHKEY_TEST_DATABASE`.
    pub fn under_test() -> Self {
        let name = std::env::var("LATCHKEY_TEST_DATABASE").unwrap_or_default();
        match name.to_ascii_lowercase().as_str() {
            "" | "sqlite" => Self::Sqlite,
            "mysql" | "mariadb" => Self::MySql,
            "postgres" | "postgresql" => Self::Postgres,
            other => panic!("LATCHKEY_TEST_DATABASE={other}: use sqlite, mysql or postgres"),
        }
    }

    /// The server where tests of this backend create their databases.
    fn server_url(self) -> Option<(&'static str, String)> {
        let (variable, default) = match self {
            Self::Sqlite => return None,
            Self::MySql => (
                "LATCHKEY_TEST_MYSQL_URL",
                "mysql://root@127.0.0.1:3306/test",
            ),
            Self::Postgres => (
                "LATCHKEY_TEST_POSTGRES_URL",
                "postgres://root@127.0.0.1:5432/test",
            ),
        };
        Some((
            variable,
            std::env::var(variable).unwrap_or_else(|_| default.to_owned()),
        ))
    }
}

/// Installs a log subscriber once when `TEST_LOG` is set.
fn init_test_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug")),
                )
                .with_test_writer()
                .try_init();
        }
    });
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
    /// A fresh database on `backend`; panics, naming the setting, when its
    /// server cannot be reached.
    pub async fn create(backend: Backend) -> Self {
        let name = format!("lk_{}", uuid::Uuid::now_v7().simple());
        let Some((variable, admin_url)) = backend.server_url() else {
            let directory = tempfile::tempdir().expect("temporary directory");
            let url = format!(
                "sqlite://{}/latchkey.db?mode=rwc",
                directory.path().display()
            );
            return Self {
                backend,
                url,
                admin_url: None,
                name,
                _directory: Some(directory),
            };
        };
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|error| {
            panic!("{backend:?} is under test but {variable} cannot be reached: {error}")
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("database URL");
        url.set_path(&format!("/{name}"));
        Self {
            backend,
            url: url.to_string(),
            admin_url: Some(admin_url),
            name,
            _directory: None,
        }
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
    /// The same routes and layers as the server's, for in-process requests.
    router: axum::Router,
    pub client: Client,
    pub store: Store,
    pub auth: Arc<Auth>,
    pub database: Arc<TestDatabase>,
    options: Options,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// A server with default test settings on the backend under test.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        Self::spawn_on(Backend::under_test(), options).await
    }

    /// A server for tests of the HTTP edge, whose requests never reach the
    /// database: SQLite whatever the backend under test.
    pub async fn spawn_edge() -> Self {
        Self::spawn_edge_with(Options::default()).await
    }

    pub async fn spawn_edge_with(options: Options) -> Self {
        Self::spawn_on(Backend::Sqlite, options).await
    }

    async fn spawn_on(backend: Backend, options: Options) -> Self {
        init_test_logging();
        let database = Arc::new(TestDatabase::create(backend).await);
        Self::start(database, options).await
    }

    /// Another server on the same database, with its own options.
    pub async fn sibling(&self, options: Options) -> Self {
        Self::start(Arc::clone(&self.database), options).await
    }

    /// Builds (but does not start) a server on the same database, for
    /// settings that must be refused at start; the error's text.
    pub async fn try_sibling(&self, options: Options) -> Result<(), String> {
        let settings = test_settings(&self.database.url, &options);
        Application::build(settings)
            .await
            .map(drop)
            .map_err(|error| latchkey::telemetry::error_chain(&error))
    }

    /// Stops this server and starts a new one on the same database and options.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        Self::start(Arc::clone(&self.database), self.options.clone()).await
    }

    async fn start(database: Arc<TestDatabase>, options: Options) -> Self {
        let settings = test_settings(&database.url, &options);
        let request_timeout =
            std::time::Duration::from_secs(settings.server.request_timeout_seconds.get());
        let clock: Arc<dyn Clock> = match &options.clock {
            Some(clock) => Arc::new(clock.clone()),
            None => Arc::new(SystemClock),
        };
        let application = Application::build_with_clock(settings, clock)
            .await
            .expect("application builds");
        let address = format!("http://{}", application.address());
        let router = latchkey::http::router(application.state().clone(), request_timeout);
        let auth = Arc::clone(&application.state().auth);
        // The test's own handle on the database, for arranging and inspecting rows.
        let store = Store::connect(&SecretString::from(database.url.clone()), 2)
            .await
            .expect("the test database answers");
        let (shutdown, signal) = oneshot::channel();
        let server = tokio::spawn(application.run_until(async {
            let _ = signal.await;
        }));
        Self {
            address,
            router,
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

    /// Sends a request in-process (`tower::ServiceExt::oneshot`), through
    /// every layer but without a socket; answers the status and JSON body.
    pub async fn in_process(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<String>,
    ) -> (u16, Value) {
        use tower::ServiceExt;

        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request
            .body(axum::body::Body::from(body.into()))
            .expect("a valid request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
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

    /// `GET path`, over HTTP.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
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

    /// The values a query returns, one row per line, columns separated by
    /// spaces; for inspecting rows whatever the backend's column types.
    pub async fn stored_text(&self, sql: &str) -> String {
        let connection = self.store.connection();
        let statement = sea_orm::Statement::from_string(connection.get_database_backend(), sql);
        let rows = connection
            .query_all_raw(statement)
            .await
            .expect("query runs");
        rows.iter()
            .map(|row| {
                (0..row.column_names().len())
                    .map(|index| {
                        if let Ok(text) = row.try_get_by_index::<Option<String>>(index) {
                            text.unwrap_or_default()
                        } else if let Ok(number) = row.try_get_by_index::<Option<i64>>(index) {
                            number.map(|n| n.to_string()).unwrap_or_default()
                        } else if let Ok(number) = row.try_get_by_index::<Option<i32>>(index) {
                            number.map(|n| n.to_string()).unwrap_or_default()
                        } else if let Ok(id) = row.try_get_by_index::<Option<uuid::Uuid>>(index) {
                            id.map(|id| id.to_string()).unwrap_or_default()
                        } else {
                            "?".to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
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
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    settings.database.url = DatabaseUrl::parse(database_url).expect("test database URL");
    settings.database.max_connections = 5.try_into().expect("non-zero");
    settings.tokens.secret_key = options
        .secret_key
        .as_deref()
        .map(|secret| latchkey::config::SigningSecret::parse(secret.to_owned()).expect("secret"));
    settings.server.issuer = options
        .issuer
        .as_deref()
        .map(|issuer| latchkey::config::Issuer::parse(issuer).expect("issuer URL"));
    if let Some(audience) = &options.audience {
        settings.tokens.audience.clone_from(audience);
    }
    if let Some(customize) = &options.customize {
        customize(&mut settings);
    }
    settings.check().expect("test settings are valid");
    settings
}

/// The JSON body of a response, asserting its status first.
pub async fn json_with_status(response: Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    response.json().await.expect("a JSON body")
}

/// An API key named `test` holding `scopes`, made as the command line makes it.
pub async fn api_key(app: &TestApp, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let (_, key) = app
        .auth
        .create_api_key(
            "test",
            &scopes,
            &latchkey::auth::Actor::Operator,
            &latchkey::auth::ClientContext::default(),
        )
        .await
        .expect("key");
    secrecy::ExposeSecret::expose_secret(&key).to_owned()
}

/// A request with an optional bearer token and an optional JSON body.
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// The claims of a JWT, unverified.
pub fn claims(access_token: &str) -> Value {
    use base64::Engine;
    let payload = access_token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// A JSON POST, with a bearer token when given.
pub async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Response {
    call(app, reqwest::Method::POST, path, token, Some(body)).await
}
