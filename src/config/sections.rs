//! The settings, grouped by what they configure. Each field's serialized name
//! is its TOML key; its environment variable is `LATCHKEY_` followed by that
//! key in capitals. Keys stay flat (`database_url`, not `database.url`) so the
//! files and environments written for earlier versions keep working.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::values::{
    Bounded, DatabaseUrl, EncryptionKey, ForwardedHeader, Issuer, LogFormat, Networks, Origins,
    SecretUrl, SigningSecret, Switch,
};

/// The listener, what it is called publicly, and which peers are proxies.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Address the HTTP server binds to (port 0 picks a free port).
    pub listen: SocketAddr,
    /// `iss` of issued tokens; defaults to `http://<listen>`.
    pub issuer: Option<Issuer>,
    /// Longest a request may take, body upload included, before it gets 408;
    /// also the longest wait for a request head, and how long in-flight
    /// requests get to finish at shutdown.
    pub request_timeout_seconds: Bounded<1, 3600>,
    /// After SIGTERM, how long readiness answers 503 while requests are still
    /// served (so a load balancer moves traffic away) before the listener closes.
    pub shutdown_delay_seconds: Bounded<0, 300>,
    /// Addresses or CIDR ranges of proxies whose forwarding header is believed.
    pub trusted_proxies: Networks,
    /// The header those proxies write; only that one is read, so a client
    /// cannot slip in the other.
    pub forwarded_header: ForwardedHeader,
    /// Connections served at once; past it, new ones get a 503 and are
    /// closed. Default: the open-file limit less room for the database pool
    /// and files.
    pub max_connections: Option<NonZeroUsize>,
    /// Web origins whose pages may call the API from a browser (CORS), each
    /// exact (`https://app.example.com`); unset: none.
    pub cors_origins: Option<Origins>,
    /// A bearer token `/metrics` requires (at least 32 bytes); unset, it
    /// answers only peers on loopback or private networks whose request
    /// carries no forwarding header (it came through no proxy).
    pub metrics_token: Option<SigningSecret>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            request_timeout_seconds: Bounded::clamped(30),
            shutdown_delay_seconds: Bounded::clamped(5),
            trusted_proxies: Networks::default(),
            forwarded_header: ForwardedHeader::XForwardedFor,
            max_connections: None,
            cors_origins: None,
            metrics_token: None,
        }
    }
}

impl ServerSettings {
    /// The `iss` claim: the configured issuer without a trailing slash, or the
    /// listen address as a URL.
    /// `LATCHKEY_ISSUER`, else `http://` the listen address, with
    /// `localhost` for an unspecified one (`0.0.0.0`, `[::]`), which no
    /// client can use. See `Settings::issuer`, which prefers the public URL.
    pub fn issuer(&self) -> String {
        match &self.issuer {
            Some(issuer) => issuer.as_str().to_owned(),
            None if self.listen.ip().is_unspecified() => {
                format!("http://localhost:{}", self.listen.port())
            }
            None => format!("http://{}", self.listen),
        }
    }
}

/// Where the data lives.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// Database URL; its scheme picks the backend: `sqlite:`, `mysql:`/`mariadb:`, `postgres:`.
    #[serde(rename = "database_url")]
    pub url: DatabaseUrl,
    /// Most connections the pool opens to the database.
    #[serde(rename = "database_max_connections")]
    pub max_connections: NonZeroU32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::default(),
            max_connections: NonZeroU32::MIN.saturating_add(9),
        }
    }
}

/// Access tokens.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TokenSettings {
    /// Origin compatibility: when set, access tokens are HS256 with this secret instead of EdDSA.
    pub secret_key: Option<SigningSecret>,
    /// Access-token lifetime in minutes.
    pub access_token_expire_minutes: Bounded<1, 1440>,
    /// `aud` of issued tokens, checked on every verification.
    pub audience: String,
    /// Key (32 bytes, base64 or hex) that seals second-factor secrets at
    /// rest; unset: one is generated on first start and kept in the database.
    pub encryption_key: Option<EncryptionKey>,
    /// The access-token claim an account's `app_metadata` is copied under.
    pub app_metadata_claim: String,
    /// Seconds a rotated-in signing key is published (in the JWKS) before it
    /// signs, longer than consumers cache the JWKS.
    pub key_activation_seconds: Bounded<0, 86400>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            secret_key: None,
            access_token_expire_minutes: Bounded::clamped(15),
            audience: "latchkey".to_owned(),
            encryption_key: None,
            app_metadata_claim: "app_metadata".to_owned(),
            key_activation_seconds: Bounded::clamped(900),
        }
    }
}

/// Claims a token always has; `app_metadata` must not take their place.
const REGISTERED_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "sub",
    "uid",
    "preferred_username",
    "sid",
    "email_verified",
    "amr",
    "acr",
    "roles",
    "iat",
    "nbf",
    "exp",
    "jti",
    "scope",
    "client_id",
];

impl TokenSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let claim = &self.app_metadata_claim;
        let shaped = !claim.is_empty()
            && claim.len() <= 64
            && claim.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || b == b'_'
                    || b == b'-'
                    || b == b':'
                    || b == b'/'
                    || b == b'.'
            });
        if !shaped || REGISTERED_CLAIMS.contains(&claim.as_str()) {
            return Err(ConfigError::setting(
                "LATCHKEY_APP_METADATA_CLAIM",
                "must be 1 to 64 letters, digits or _-:/. and not a claim latchkey sets",
            ));
        }
        Ok(())
    }
}

/// The admin API's webhooks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// Let webhook URLs use http and reach loopback, private and link-local
    /// addresses: development and tests only.
    pub webhook_allow_private_networks: bool,
}

/// Sessions and how fast their revocation spreads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SessionSettings {
    /// A session ends this many hours after login, whatever its activity.
    #[serde(rename = "session_lifetime_hours")]
    pub lifetime_hours: NonZeroU32,
    /// A session ends after this many hours without a refresh.
    #[serde(rename = "session_idle_timeout_hours")]
    pub idle_timeout_hours: NonZeroU32,
    /// How often, in milliseconds, revocations and keys are re-read from the database.
    pub revocation_poll_milliseconds: Bounded<10, 5000>,
    /// Seconds during which a just-spent refresh token answers its successor
    /// again (while that is unused); 0 turns the grace window off.
    pub refresh_grace_seconds: Bounded<0, 60>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            lifetime_hours: NonZeroU32::MIN.saturating_add(30 * 24 - 1),
            idle_timeout_hours: NonZeroU32::MIN.saturating_add(7 * 24 - 1),
            revocation_poll_milliseconds: Bounded::clamped(250),
            refresh_grace_seconds: Bounded::clamped(10),
        }
    }
}

/// Password rules and the hashing that protects them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct PasswordSettings {
    /// Shortest password accepted at registration, in Unicode scalar values.
    pub password_min_length: Bounded<8, 128>,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Hashing threads, i.e. password hashes computed at once; defaults to the number of CPUs.
    pub hash_concurrency: Option<NonZeroUsize>,
    /// Requests allowed to wait for a hashing thread before new ones get 503.
    pub hash_queue_limit: NonZeroUsize,
    /// Longest wait, in milliseconds, for a hashing thread before the request gets 503.
    pub hash_wait_timeout_milliseconds: NonZeroU64,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            password_min_length: Bounded::clamped(8),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: None,
            hash_queue_limit: NonZeroUsize::MIN.saturating_add(63),
            hash_wait_timeout_milliseconds: NonZeroU64::MIN.saturating_add(1_999),
        }
    }
}

impl PasswordSettings {
    /// argon2's own limits on its parameters.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
        .map(drop)
        .map_err(|error| {
            ConfigError::setting(
                "LATCHKEY_ARGON2_*",
                format!("invalid argon2 parameters: {error}"),
            )
        })
    }
}

/// Rate limits, lockouts, and where their counters live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ThrottleSettings {
    /// `on`, or `off` to turn every throttle off (load benchmarks, trusted internal deployments).
    pub rate_limits: Switch,
    /// Redis for counters shared by every instance (`redis://host:6379`); unset: in memory.
    pub redis_url: Option<SecretUrl>,
    /// Prefix of latchkey's Redis keys, so several deployments can share a server.
    pub redis_prefix: String,
    /// Failed logins of one client for one account within the window before
    /// the account is locked for that client.
    pub login_max_failures: NonZeroU32,
    /// Failed logins for one account from all clients together within the
    /// window before the account is locked for everyone.
    pub login_max_failures_all_clients: NonZeroU32,
    /// The window failed logins are counted in, in seconds.
    pub login_failure_window_seconds: NonZeroU32,
    /// First lock, in seconds; each further failure doubles it.
    pub login_lockout_seconds: NonZeroU32,
    /// Longest lock, in seconds.
    pub login_lockout_max_seconds: NonZeroU32,
    /// Failed logins from one client, across all accounts, within the window before it is locked.
    pub client_max_failed_logins: NonZeroU32,
    /// Password logins per client per minute.
    pub rate_login_per_minute: NonZeroU32,
    /// Registrations per client per hour.
    pub rate_register_per_hour: NonZeroU32,
    /// Refresh-token exchanges per client per minute.
    pub rate_refresh_per_minute: NonZeroU32,
    /// Other unauthenticated requests that do work (revocation, introspection) per client per minute.
    pub rate_other_per_minute: NonZeroU32,
    /// Requests that send email (forgot password, resend verification, email
    /// change, sign-in codes) per client per hour.
    pub rate_email_per_hour: NonZeroU32,
    /// The same requests per email address per hour, whether or not an account has it.
    pub rate_email_per_address_per_hour: NonZeroU32,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        let count = |value: u32| NonZeroU32::MIN.saturating_add(value - 1);
        Self {
            rate_limits: Switch::On,
            redis_url: None,
            redis_prefix: "latchkey:".to_owned(),
            login_max_failures: count(10),
            login_max_failures_all_clients: count(100),
            login_failure_window_seconds: count(15 * 60),
            login_lockout_seconds: count(30),
            login_lockout_max_seconds: count(15 * 60),
            client_max_failed_logins: count(50),
            rate_login_per_minute: count(60),
            rate_register_per_hour: count(100),
            rate_refresh_per_minute: count(120),
            rate_other_per_minute: count(300),
            rate_email_per_hour: count(30),
            rate_email_per_address_per_hour: count(5),
        }
    }
}

impl ThrottleSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.login_max_failures_all_clients < self.login_max_failures {
            return Err(ConfigError::setting(
                "LATCHKEY_LOGIN_MAX_FAILURES_ALL_CLIENTS",
                "must be at least LATCHKEY_LOGIN_MAX_FAILURES",
            ));
        }
        if self.login_lockout_max_seconds < self.login_lockout_seconds {
            return Err(ConfigError::setting(
                "LATCHKEY_LOGIN_LOCKOUT_MAX_SECONDS",
                "must be at least LATCHKEY_LOGIN_LOCKOUT_SECONDS",
            ));
        }
        Ok(())
    }
}

/// What is logged, and how.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct LogSettings {
    /// Log filter in `tracing` syntax (`RUST_LOG` overrides it).
    pub log: String,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            log: "info".to_owned(),
            log_format: LogFormat::Text,
        }
    }
}

/// Passkeys (WebAuthn): the relying party they are bound to.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PasskeySettings {
    /// The relying-party id (a domain) passkeys are bound to; default the
    /// public URL's host, or `localhost` when that is an address.
    pub webauthn_rp_id: Option<String>,
    /// The origins ceremonies may come from (a list); default the public
    /// URL's origin (and `localhost` on its port when that is an address).
    pub webauthn_origins: Option<Origins>,
}

/// Email: delivery, messages, and the flows that send them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MailSettings {
    /// `smtp://[user:pass@]host[:port]` (STARTTLS when offered; `?tls=required`
    /// insists, `?tls=none` never tries), `smtps://` (TLS from the start), or
    /// `log:` (messages to standard error, for development). Unset: no email.
    pub smtp_url: Option<SecretUrl>,
    /// The `From` of every message, `Name <address>` or an address; default
    /// `no-reply@` the public URL's host.
    pub mail_from: Option<String>,
    /// The base of every link in a message; defaults to the issuer.
    pub public_url: Option<Issuer>,
    /// The product's name in messages.
    pub product_name: String,
    /// A folder of message templates (`<locale>/<kind>.jinja`) that replace or
    /// add to the built-in ones; read at start.
    pub mail_templates: Option<PathBuf>,
    /// Refuse login (403) to accounts whose address is not verified.
    pub require_verified_email: bool,
    /// How long a password-reset link works, in minutes.
    pub reset_token_minutes: Bounded<5, 1440>,
    /// Passwordless sign-in with a code sent by email: `on` or `off`.
    pub email_sign_in: Switch,
    /// How often, in milliseconds, each instance looks for messages to send.
    pub mail_poll_milliseconds: Bounded<50, 60000>,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            mail_from: None,
            public_url: None,
            product_name: "latchkey".to_owned(),
            mail_templates: None,
            require_verified_email: false,
            reset_token_minutes: Bounded::clamped(60),
            email_sign_in: Switch::Off,
            mail_poll_milliseconds: Bounded::clamped(1000),
        }
    }
}

impl MailSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.smtp_url {
            let scheme = url.scheme();
            if !matches!(scheme.as_str(), "smtp" | "smtps" | "log") {
                return Err(ConfigError::setting(
                    "LATCHKEY_SMTP_URL",
                    "the scheme must be smtp:, smtps: or log:",
                ));
            }
        }
        if let Some(from) = &self.mail_from {
            from.parse::<lettre::message::Mailbox>().map_err(|error| {
                ConfigError::setting("LATCHKEY_MAIL_FROM", format!("not a mailbox: {error}"))
            })?;
        }
        if self.product_name.trim().is_empty() || self.product_name.chars().any(char::is_control) {
            return Err(ConfigError::setting(
                "LATCHKEY_PRODUCT_NAME",
                "must be a non-empty line of text",
            ));
        }
        Ok(())
    }
}

/// The hosted pages: branding and their text.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct UiSettings {
    /// An `https:` (or same-origin) URL of the logo shown above every page.
    pub logo_url: Option<url::Url>,
    /// The accent colour of buttons and links, `#rrggbb`.
    pub accent_color: String,
    /// A TOML file of page messages (`key = "text"`) replacing the built-in
    /// English ones: a translation, or your own wording. Read at start.
    pub ui_messages: Option<PathBuf>,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            logo_url: None,
            accent_color: "#3b5bdb".to_owned(),
            ui_messages: None,
        }
    }
}

impl UiSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let colour = self.accent_color.as_bytes();
        if colour.len() != 7 || colour[0] != b'#' || !colour[1..].iter().all(u8::is_ascii_hexdigit)
        {
            return Err(ConfigError::setting(
                "LATCHKEY_ACCENT_COLOR",
                "must be a colour written #rrggbb",
            ));
        }
        if let Some(logo) = &self.logo_url
            && !matches!(logo.scheme(), "https" | "http")
        {
            return Err(ConfigError::setting(
                "LATCHKEY_LOGO_URL",
                "must be an https: URL",
            ));
        }
        Ok(())
    }
}
