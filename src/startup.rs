//! Building and running the application; shared by `main` and the tests.
//!
//! [`Application::build`] binds first (so tests can ask for port 0 and learn
//! the port), connects to the database and migrates it, loads or creates the
//! signing keys, and prepares the password hasher. Nothing is global: two
//! applications with different settings can run in one process.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use chrono::Duration;
use tokio::net::TcpListener;

use crate::auth::{
    Auth, HashingError, HashingParams, KeyError, Keyring, PasswordHasher, TokenService,
    default_hash_concurrency,
};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::{PasswordPolicy, load_common_passwords};
use crate::http::{self, AppState};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Hashing(String),
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    address: settings.listen,
                    source,
                })?;
        // The hasher's dummy hash and the password list cost CPU; make them
        // while the database connects.
        let hasher = tokio::task::spawn_blocking({
            let settings = settings.clone();
            move || build_hasher(&settings)
        });
        let store =
            Store::connect(&settings.database_url, settings.database_max_connections).await?;
        store.migrate().await?;
        let keyring = match &settings.secret_key {
            Some(secret) => Keyring::from_secret(secret),
            None => Keyring::load_or_create(&store, clock.as_ref()).await?,
        };
        let tokens = TokenService::new(
            keyring,
            settings.issuer(),
            settings.audience.clone(),
            Duration::minutes(i64::from(settings.access_token_expire_minutes)),
            Arc::clone(&clock),
        );
        let hasher = hasher
            .await
            .map_err(|error| StartupError::Hashing(error.to_string()))?
            .map_err(|error| StartupError::Hashing(error.to_string()))?;
        let policy = PasswordPolicy {
            min_length: settings.password_min_length,
        };
        let state = AppState {
            auth: Arc::new(Auth::new(store, hasher, tokens, clock, policy)),
        };
        Ok(Self {
            listener,
            router: http::router(state.clone()),
            state,
        })
    }

    pub fn address(&self) -> SocketAddr {
        // A bound listener always has a local address.
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

fn build_hasher(settings: &Settings) -> Result<PasswordHasher, HashingError> {
    load_common_passwords();
    let params = HashingParams::from_settings(settings).map_err(HashingError::Failed)?;
    let concurrency = settings
        .hash_concurrency
        .unwrap_or_else(default_hash_concurrency);
    PasswordHasher::new(params, concurrency, settings.hash_queue_limit)
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
