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
    Auth, AuthError, HashingError, HashingParams, KeyError, Keyring, PasswordHasher, SessionPolicy,
    TokenService, default_hash_concurrency, token_retention,
};
use crate::auth::{EmailPolicy, MailSetup, RelyingParty, Sealer, WebhookCourier};

/// The stored name of a generated encryption key.
const ENCRYPTION_KEY_NAME: &str = "encryption_key";
/// A value sealed with the key in use, to recognise a different key at start.
const ENCRYPTION_KEY_CHECK: &str = "encryption_key_check";
use crate::auth::{Throttle, ThrottlePolicy};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Settings, Switch};
use crate::domain::PasswordPolicy;
use crate::http::{self, AppState, ForwardingHeader, TrustedProxies};
use crate::mail::delivery::Delivery;
use crate::mail::{Mailer, Templates, Transport};
use crate::store::counters::{Bucket, CounterError, Counters, FailureRule};
use crate::store::{Store, StoreError};
use secrecy::ExposeSecret;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Hashing(#[from] HashingError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("LATCHKEY_REDIS_URL")]
    Redis(#[source] CounterError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("{0}")]
    Setting(String),
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    poll_every: std::time::Duration,
    request_timeout: std::time::Duration,
    max_connections: usize,
    shutdown_delay: std::time::Duration,
    delivery: Option<Delivery>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let server = &settings.server;
        let max_connections = connection_cap(&settings);
        let listener =
            TcpListener::bind(server.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    address: server.listen,
                    source,
                })?;
        let (auth, delivery) = build_parts(&settings, clock).await?;
        let cors_origins = server
            .cors_origins
            .as_ref()
            .map(|origins| {
                origins
                    .as_slice()
                    .iter()
                    .filter_map(|origin| {
                        axum::http::HeaderValue::from_str(&origin.origin().ascii_serialization())
                            .ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let state = AppState {
            auth,
            trusted_proxies: Arc::new(trusted_proxies(server)),
            cors_origins: Arc::new(cors_origins),
            draining: Arc::default(),
            metrics_token: server
                .metrics_token
                .as_ref()
                .map(|token| Arc::new(token.secret().clone())),
            ui: Arc::new(ui(&settings)?),
        };
        let request_timeout = std::time::Duration::from_secs(server.request_timeout_seconds.get());
        Ok(Self {
            listener,
            router: http::router(state.clone(), request_timeout),
            state,
            poll_every: std::time::Duration::from_millis(
                settings.sessions.revocation_poll_milliseconds.get(),
            ),
            request_timeout,
            max_connections,
            shutdown_delay: std::time::Duration::from_secs(server.shutdown_delay_seconds.get()),
            delivery,
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

    /// Serves until `shutdown` completes, then stops accepting and lets
    /// in-flight requests finish, for at most the request timeout. The same
    /// limit bounds how long a connection may take to send a request head.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let poller = tokio::spawn(poll_shared_state(
            Arc::clone(&self.state.auth),
            self.poll_every,
        ));
        let (stop_delivery, stopped) = tokio::sync::watch::channel(false);
        let delivery = self
            .delivery
            .map(|delivery| tokio::spawn(delivery.run(stopped)));
        http::serve(
            self.listener,
            self.router,
            self.request_timeout,
            self.max_connections,
            shutdown,
        )
        .await;
        poller.abort();
        // The message being sent finishes; claimed ones are handed back.
        let _ = stop_delivery.send(true);
        if let Some(delivery) = delivery {
            let limit = crate::mail::delivery::STOP_WITHIN;
            if tokio::time::timeout(limit, delivery).await.is_err() {
                tracing::warn!(
                    "the mail worker did not stop in time; its messages wait for their lease to lapse"
                );
            }
        }
        self.state.auth.shut_down().await;
        Ok(())
    }

    /// Serves until SIGTERM or SIGINT. After SIGTERM (an orchestrator's
    /// stop), readiness answers 503 for the shutdown delay while requests are
    /// still served, so load balancers stop sending any before the listener
    /// closes; SIGINT (Ctrl-C) skips the delay.
    pub async fn run(self) -> std::io::Result<()> {
        let draining = Arc::clone(&self.state.draining);
        let delay = self.shutdown_delay;
        self.run_until(async move {
            if shutdown_signal().await == Stop::Terminate && !delay.is_zero() {
                draining.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    seconds = delay.as_secs(),
                    "stopping: /ready answers 503 while requests are still served"
                );
                // A second signal stops waiting.
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = shutdown_signal() => {}
                }
            }
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await
    }
}

/// Connects and migrates the database, loads or creates the signing keys and
/// prepares the hasher: everything but the listener. Also used by the CLI.
pub async fn build_auth(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Auth>, StartupError> {
    Ok(build_parts(settings, clock).await?.0)
}

/// The use-cases, and the mail worker when email is configured.
async fn build_parts(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Auth>, Option<Delivery>), StartupError> {
    let hasher = build_hasher(&settings.passwords)?;
    let store = Store::connect(
        settings.database.url.secret(),
        settings.database.max_connections.get(),
    )
    .await?;
    store.migrate().await?;
    let sealer = build_sealer(settings, &store, clock.as_ref()).await?;
    let tokens = build_tokens(settings, &store, &clock, &sealer).await?;
    let policy = PasswordPolicy {
        // Bounded to 8..=128 by its type.
        min_length: settings.passwords.password_min_length.get() as usize,
    };
    let sessions = SessionPolicy {
        lifetime: Duration::hours(i64::from(settings.sessions.lifetime_hours.get())),
        idle_timeout: Duration::hours(i64::from(settings.sessions.idle_timeout_hours.get())),
        refresh_grace: Duration::seconds(settings.sessions.refresh_grace_seconds.get() as i64),
    };
    let counters = match &settings.throttle.redis_url {
        Some(url) => Counters::with_redis(
            url.secret().expose_secret(),
            &settings.throttle.redis_prefix,
            MAX_COUNTER_KEYS,
        )
        .await
        .map_err(StartupError::Redis)?,
        None => Counters::in_memory(MAX_COUNTER_KEYS),
    };
    if settings.issuer_is_guessed() {
        tracing::warn!(
            issuer = %settings.issuer(),
            "listening on every interface with neither LATCHKEY_ISSUER nor LATCHKEY_PUBLIC_URL set: tokens and discovery name {}; set LATCHKEY_PUBLIC_URL to the URL clients use",
            settings.issuer()
        );
    } else if settings.server.issuer.is_none()
        && settings.mail.public_url.is_none()
        && !settings.server.trusted_proxies.as_slice().is_empty()
    {
        // Behind a balancer, instances named after their own listen address
        // refuse each other's tokens.
        tracing::warn!(
            issuer = %settings.issuer(),
            "behind a proxy (LATCHKEY_TRUSTED_PROXIES is set) with neither LATCHKEY_ISSUER nor LATCHKEY_PUBLIC_URL: tokens name this instance's listen address, so other instances refuse them; set LATCHKEY_PUBLIC_URL to the URL clients use"
        );
    }
    let throttle_policy = throttle_policy(&settings.throttle);
    if !throttle_policy.enabled {
        tracing::warn!(
            "LATCHKEY_RATE_LIMITS=off: logins, registrations and token requests are not throttled"
        );
    }
    let throttle = Throttle::new(counters, throttle_policy, Arc::clone(&clock));
    let (mail, delivery) = build_mail(settings, &store, &clock)?;
    let auth = Arc::new(
        Auth::new(
            store, hasher, tokens, clock, policy, sessions, throttle, sealer,
        )
        .with_mail(mail)
        .with_passkeys(build_relying_party(settings)?)
        .with_webhook_policy(settings.webhooks.webhook_allow_private_networks),
    );
    if settings.webhooks.webhook_allow_private_networks {
        tracing::warn!(
            "LATCHKEY_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true: webhooks may use http and reach loopback and private addresses; for development only"
        );
    }
    let delivery = Some(delivery.with_webhooks(Arc::new(WebhookCourier::new(Arc::clone(&auth)))));
    // Sessions revoked before a restart stay revoked from the first request on.
    auth.sync_revocations().await?;
    Ok((auth, delivery))
}

/// The key that seals secrets at rest: configured, or generated once and
/// kept in the database so every instance shares it.
async fn build_sealer(
    settings: &Settings,
    store: &Store,
    clock: &dyn Clock,
) -> Result<Sealer, StartupError> {
    let text = match &settings.tokens.encryption_key {
        Some(key) => key.secret().expose_secret().to_owned(),
        None => {
            let generated = Sealer::generate()?;
            store
                .instance_secret(ENCRYPTION_KEY_NAME, || generated.clone(), clock.now())
                .await?
        }
    };
    let sealer = Sealer::parse(&text)
        .map_err(|error| StartupError::Setting(format!("LATCHKEY_ENCRYPTION_KEY: {error}")))?;
    // Refuse a key other than the one earlier secrets were sealed with,
    // rather than failing every second-factor login later.
    let check = sealer.check_value()?;
    let stored = store
        .instance_secret(ENCRYPTION_KEY_CHECK, || check.clone(), clock.now())
        .await?;
    if !sealer.matches_check(&stored) {
        return Err(StartupError::Setting(
            "LATCHKEY_ENCRYPTION_KEY: this is not the key this database's secrets were sealed with \
             (the generated one is in instance_secrets; set the earlier key)"
                .to_owned(),
        ));
    }
    Ok(sealer)
}

/// The renderer, the flows' policy and the delivery worker, from the mail settings.
fn build_mail(
    settings: &Settings,
    store: &Store,
    clock: &Arc<dyn Clock>,
) -> Result<(MailSetup, Delivery), StartupError> {
    let mail = &settings.mail;
    let mut setup = MailSetup {
        product: mail.product_name.clone(),
        policy: EmailPolicy {
            require_verified: mail.require_verified_email,
            reset_lifetime: Duration::minutes(mail.reset_token_minutes.get() as i64),
            sign_in_enabled: mail.email_sign_in == Switch::On,
        },
        ..MailSetup::default()
    };
    let poll_every = std::time::Duration::from_millis(mail.mail_poll_milliseconds.get());
    let Some(url) = &mail.smtp_url else {
        if mail.require_verified_email {
            tracing::warn!(
                "LATCHKEY_REQUIRE_VERIFIED_EMAIL is on but LATCHKEY_SMTP_URL is unset: no address can be verified"
            );
        }
        // The outbox still carries webhooks.
        let delivery = Delivery::new(
            store.clone(),
            None,
            Arc::clone(clock),
            poll_every,
            Arc::clone(&setup.wake),
        );
        return Ok((setup, delivery));
    };
    let transport = Transport::from_url(url.secret().expose_secret())
        .map_err(|reason| StartupError::Setting(format!("LATCHKEY_SMTP_URL: {reason}")))?;
    if transport.is_log() {
        tracing::warn!(
            "LATCHKEY_SMTP_URL=log: messages are written to standard error and NEVER SENT; for development only"
        );
    }
    let public_url = mail
        .public_url
        .as_ref()
        .map_or_else(|| settings.issuer(), |url| url.as_str().to_owned());
    let from = match &mail.mail_from {
        Some(from) => from.clone(),
        None => default_sender(&public_url),
    };
    let from = from.parse().map_err(|error| {
        StartupError::Setting(format!(
            "LATCHKEY_MAIL_FROM: {from:?} is not a mailbox: {error}"
        ))
    })?;
    let templates = Templates::load(mail.mail_templates.as_deref())?;
    setup.mailer = Some(Arc::new(Mailer::new(
        templates,
        mail.product_name.clone(),
        &public_url,
    )));
    let delivery = Delivery::new(
        store.clone(),
        Some((transport, from)),
        Arc::clone(clock),
        poll_every,
        Arc::clone(&setup.wake),
    );
    Ok((setup, delivery))
}

/// The relying party of passkeys: `LATCHKEY_WEBAUTHN_RP_ID` and
/// `LATCHKEY_WEBAUTHN_ORIGINS`, each defaulting from the public URL (the
/// issuer unless `LATCHKEY_PUBLIC_URL` is set). A public URL on an address
/// (no domain) gives `localhost`, and its origin plus `localhost` on its port.
fn build_relying_party(settings: &Settings) -> Result<RelyingParty, StartupError> {
    let public_url = settings
        .mail
        .public_url
        .as_ref()
        .map_or_else(|| settings.issuer(), |url| url.as_str().to_owned());
    let public = url::Url::parse(&public_url)
        .map_err(|error| StartupError::Setting(format!("LATCHKEY_PUBLIC_URL: {error}")))?;
    let domain = match public.host() {
        Some(url::Host::Domain(domain)) => Some(domain.to_ascii_lowercase()),
        _ => None,
    };
    let passkeys = &settings.passkeys;
    let rp_id = passkeys
        .webauthn_rp_id
        .clone()
        .or_else(|| domain.clone())
        .unwrap_or_else(|| "localhost".to_owned());
    let origins = match &passkeys.webauthn_origins {
        Some(origins) => origins.as_slice().to_vec(),
        None => {
            let mut origins = vec![public.clone()];
            if domain.is_none() {
                let mut local = public.clone();
                local.set_host(Some("localhost")).map_err(|error| {
                    StartupError::Setting(format!("LATCHKEY_PUBLIC_URL: {error}"))
                })?;
                origins.push(local);
                origins.retain(|origin| match origin.host() {
                    Some(url::Host::Ipv4(address)) => address.is_loopback(),
                    Some(url::Host::Ipv6(address)) => address.is_loopback(),
                    _ => true,
                });
            }
            origins
        }
    };
    let setting = if passkeys.webauthn_origins.is_some() {
        "LATCHKEY_WEBAUTHN_ORIGINS"
    } else {
        "LATCHKEY_WEBAUTHN_RP_ID"
    };
    RelyingParty::new(&settings.mail.product_name, &rp_id, &origins)
        .map_err(|problem| StartupError::Setting(format!("{setting}: {problem}")))
}

/// `no-reply@` the public URL's host name (`localhost` for an address).
fn default_sender(public_url: &str) -> String {
    let host = url::Url::parse(public_url)
        .ok()
        .and_then(|url| match url.host() {
            Some(url::Host::Domain(domain)) => Some(domain.to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "localhost".to_owned());
    format!("no-reply@{host}")
}

/// The signing keys (the stored ones, or the origin's secret) and how tokens are stamped.
async fn build_tokens(
    settings: &Settings,
    store: &Store,
    clock: &Arc<dyn Clock>,
    sealer: &Sealer,
) -> Result<TokenService, StartupError> {
    let lifetime = Duration::minutes(settings.tokens.access_token_expire_minutes.get() as i64);
    let activation = Duration::seconds(settings.tokens.key_activation_seconds.get() as i64);
    let keyring = match &settings.tokens.secret_key {
        Some(secret) => Keyring::from_secret(secret.secret()),
        None => {
            let cutoff = clock.now() - token_retention(lifetime);
            Keyring::load_or_create(store, clock.as_ref(), cutoff, activation, sealer).await?
        }
    };
    Ok(TokenService::new(
        keyring,
        settings.issuer(),
        settings.tokens.audience.clone(),
        lifetime,
        Arc::clone(clock),
    )
    .with_metadata_claim(settings.tokens.app_metadata_claim.clone())
    .with_key_activation(activation))
}

fn trusted_proxies(server: &config::ServerSettings) -> TrustedProxies {
    let header = match server.forwarded_header {
        config::ForwardedHeader::XForwardedFor => ForwardingHeader::XForwardedFor,
        config::ForwardedHeader::Forwarded => ForwardingHeader::Forwarded,
    };
    TrustedProxies::new(server.trusted_proxies.as_slice(), header)
}

/// File descriptors kept free of client connections: the listener, logs,
/// the SQLite files, Redis, and some slack.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft open-file limit to the hard one, then caps connections
/// below it, leaving room for the database pool and the process's own files.
fn connection_cap(settings: &Settings) -> usize {
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the open-file limit; assuming 1024");
            1024
        }
    };
    let derived = files
        .saturating_sub(u64::from(settings.database.max_connections.get()))
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(16);
    let cap = settings
        .server
        .max_connections
        .map_or(derived, |cap| cap.get() as u64);
    if cap > derived {
        tracing::warn!(
            cap,
            open_file_limit = files,
            "LATCHKEY_MAX_CONNECTIONS is above what the open-file limit allows"
        );
    }
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Keeps revocations (every tick) and signing keys (every fourth) in step with
/// the database, so changes made by other instances or the CLI reach this one.
async fn poll_shared_state(auth: Arc<Auth>, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        ticker.tick().await;
        if let Err(error) = auth.poll_shared_state(tick % 4 == 3).await {
            let error = crate::telemetry::error_chain(&error);
            tracing::warn!(%error, "could not refresh revocations or keys from the database");
        }
    }
}

/// Most keys the in-memory counters track at once (about 100 bytes each).
const MAX_COUNTER_KEYS: usize = 100_000;

fn throttle_policy(settings: &config::ThrottleSettings) -> ThrottlePolicy {
    let milliseconds = |seconds: std::num::NonZeroU32| i64::from(seconds.get()) * 1000;
    let lockouts = |threshold: std::num::NonZeroU32| FailureRule {
        window_ms: milliseconds(settings.login_failure_window_seconds),
        threshold: threshold.get(),
        base_ms: milliseconds(settings.login_lockout_seconds),
        cap_ms: milliseconds(settings.login_lockout_max_seconds),
    };
    let per = |count: std::num::NonZeroU32, period_seconds: f64| Bucket {
        capacity: f64::from(count.get()),
        per_second: f64::from(count.get()) / period_seconds,
    };
    ThrottlePolicy {
        enabled: settings.rate_limits == Switch::On,
        account_failures: lockouts(settings.login_max_failures),
        account_wide_failures: lockouts(settings.login_max_failures_all_clients),
        client_failures: lockouts(settings.client_max_failed_logins),
        login: per(settings.rate_login_per_minute, 60.0),
        register: per(settings.rate_register_per_hour, 3600.0),
        refresh: per(settings.rate_refresh_per_minute, 60.0),
        other: per(settings.rate_other_per_minute, 60.0),
        email: per(settings.rate_email_per_hour, 3600.0),
        email_per_address: per(settings.rate_email_per_address_per_hour, 3600.0),
    }
}

/// The argon2id parameters new hashes are made with.
pub fn hashing_params(settings: &config::PasswordSettings) -> Result<HashingParams, HashingError> {
    HashingParams::new(
        settings.argon2_memory_kib,
        settings.argon2_iterations,
        settings.argon2_parallelism,
    )
}

/// The password hasher and its threads, from the password settings.
pub fn build_hasher(settings: &config::PasswordSettings) -> Result<PasswordHasher, HashingError> {
    let params = hashing_params(settings)?;
    let concurrency = settings
        .hash_concurrency
        .map_or_else(default_hash_concurrency, std::num::NonZeroUsize::get);
    let wait_limit =
        std::time::Duration::from_millis(settings.hash_wait_timeout_milliseconds.get());
    PasswordHasher::new(
        params,
        concurrency,
        settings.hash_queue_limit.get(),
        wait_limit,
    )
}

/// Which signal asked the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Interrupt,
    Terminate,
}

async fn shutdown_signal() -> Stop {
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
        () = interrupt => Stop::Interrupt,
        () = terminate => Stop::Terminate,
    }
}

/// The hosted pages' branding and messages.
fn ui(settings: &Settings) -> Result<http::Ui, StartupError> {
    let messages = http::Messages::load(settings.ui.ui_messages.as_deref())
        .map_err(|problem| StartupError::Setting(format!("LATCHKEY_UI_MESSAGES: {problem}")))?;
    Ok(http::Ui {
        product: settings.mail.product_name.clone(),
        logo_url: settings.ui.logo_url.as_ref().map(ToString::to_string),
        accent: settings.ui.accent_color.to_ascii_lowercase(),
        messages,
        secure: settings.issuer().starts_with("https://"),
        email_sign_in: matches!(settings.mail.email_sign_in, crate::config::Switch::On),
        min_password_chars: settings.passwords.password_min_length.get() as usize,
    })
}
