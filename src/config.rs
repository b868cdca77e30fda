//! Typed configuration: defaults, then an optional TOML file, then environment
//! variables (`LATCHKEY_*`, plus the origin's `SECRET_KEY`,
//! `ACCESS_TOKEN_EXPIRE_MINUTES` and the common `DATABASE_URL`).
//!
//! [`Settings::load`] either returns settings that passed [`Settings::validate`]
//! or one error line naming the offending setting. Nothing here is global: the
//! settings are passed to [`crate::startup::Application::build`].

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The shortest HS256 secret we accept (RFC 7518 section 3.2: at least the hash size).
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// Every setting latchkey reads. Field names are the TOML keys; the environment
/// variable of each is `LATCHKEY_` followed by the name in capitals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server binds to (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Database URL; its scheme picks the backend: `sqlite:`, `mysql:`/`mariadb:`, `postgres:`.
    pub database_url: SecretString,
    /// Most connections the pool opens to the database.
    pub database_max_connections: u32,
    /// Origin compatibility: when set, access tokens are HS256 with this secret instead of EdDSA.
    pub secret_key: Option<SecretString>,
    /// Access-token lifetime in minutes.
    pub access_token_expire_minutes: u32,
    /// A session ends this many hours after login, whatever its activity.
    pub session_lifetime_hours: u32,
    /// A session ends after this many hours without a refresh.
    pub session_idle_timeout_hours: u32,
    /// How often, in milliseconds, revocations and keys are re-read from the database.
    pub revocation_poll_milliseconds: u64,
    /// `iss` of issued tokens; defaults to `http://<listen>`.
    pub issuer: Option<String>,
    /// `aud` of issued tokens, checked on every verification.
    pub audience: String,
    /// Shortest password accepted at registration, in Unicode scalar values.
    pub password_min_length: usize,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Hashing threads, i.e. password hashes computed at once; defaults to the number of CPUs.
    pub hash_concurrency: Option<usize>,
    /// Requests allowed to wait for a hashing thread before new ones get 503.
    pub hash_queue_limit: usize,
    /// Longest wait, in milliseconds, for a hashing thread before the request gets 503.
    pub hash_wait_timeout_milliseconds: u64,
    /// Longest a request may take, body upload included, before it gets 408;
    /// also the longest wait for a request head, and how long in-flight
    /// requests get to finish at shutdown.
    pub request_timeout_seconds: u32,
    /// Redis for counters shared by every instance (`redis://host:6379`); unset: in memory.
    pub redis_url: Option<SecretString>,
    /// Prefix of latchkey's Redis keys, so several deployments can share a server.
    pub redis_prefix: String,
    /// `on`, or `off` to turn every throttle off (load benchmarks, trusted internal deployments).
    pub rate_limits: String,
    /// Comma-separated addresses or CIDR ranges of proxies whose forwarding header is believed.
    pub trusted_proxies: String,
    /// The header those proxies write: `x-forwarded-for` or `forwarded` (RFC 7239);
    /// only that one is read, so a client cannot slip in the other.
    pub forwarded_header: String,
    /// Failed logins for one account within the window before it is locked.
    pub login_max_failures: u32,
    /// The window failed logins are counted in, in seconds.
    pub login_failure_window_seconds: u32,
    /// First lock, in seconds; each further failure doubles it.
    pub login_lockout_seconds: u32,
    /// Longest lock, in seconds.
    pub login_lockout_max_seconds: u32,
    /// Failed logins from one client, across all accounts, within the window before it is locked.
    pub client_max_failed_logins: u32,
    /// Password logins per client per minute.
    pub rate_login_per_minute: u32,
    /// Registrations per client per hour.
    pub rate_register_per_hour: u32,
    /// Refresh-token exchanges per client per minute.
    pub rate_refresh_per_minute: u32,
    /// Other unauthenticated requests that do work (revocation, introspection) per client per minute.
    pub rate_other_per_minute: u32,
    /// Log filter in `tracing` syntax (`RUST_LOG` overrides it).
    pub log: String,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: SecretString::from("sqlite://latchkey.db?mode=rwc"),
            database_max_connections: 10,
            secret_key: None,
            access_token_expire_minutes: 15,
            session_lifetime_hours: 30 * 24,
            session_idle_timeout_hours: 7 * 24,
            revocation_poll_milliseconds: 250,
            issuer: None,
            audience: "latchkey".to_owned(),
            password_min_length: 8,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: None,
            hash_queue_limit: 64,
            hash_wait_timeout_milliseconds: 2_000,
            request_timeout_seconds: 30,
            redis_url: None,
            redis_prefix: "latchkey:".to_owned(),
            rate_limits: "on".to_owned(),
            trusted_proxies: String::new(),
            forwarded_header: "x-forwarded-for".to_owned(),
            login_max_failures: 10,
            login_failure_window_seconds: 15 * 60,
            login_lockout_seconds: 30,
            login_lockout_max_seconds: 15 * 60,
            client_max_failed_logins: 50,
            rate_login_per_minute: 60,
            rate_register_per_hour: 100,
            rate_refresh_per_minute: 120,
            rate_other_per_minute: 300,
            log: "info".to_owned(),
            log_format: LogFormat::Text,
        }
    }
}

/// A configuration problem, worded as one line that names the setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn setting(name: &str, problem: impl std::fmt::Display) -> Self {
        Self(format!("{name}: {problem}"))
    }
}

/// Names the origin documented, read without the `LATCHKEY_` prefix.
const UNPREFIXED: &[&str] = &["database_url", "secret_key", "access_token_expire_minutes"];

impl Settings {
    /// Layers defaults, the TOML file (if any) and the environment, then validates.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(ConfigError::setting(
                    "LATCHKEY_CONFIG",
                    format!("no such file: {}", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let settings: Settings = figment
            .merge(Env::raw().only(UNPREFIXED))
            .merge(
                Env::prefixed("LATCHKEY_")
                    .ignore(&["config"])
                    // The test suite's own variables (LATCHKEY_TEST_*) are not settings.
                    .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_")),
            )
            .extract()
            .map_err(|error| ConfigError(first_line(&error)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.secret_key
            && secret.expose_secret().len() < MIN_SECRET_KEY_BYTES
        {
            return Err(ConfigError::setting(
                "SECRET_KEY",
                format!("must be at least {MIN_SECRET_KEY_BYTES} bytes long"),
            ));
        }
        if !(1..=24 * 60).contains(&self.access_token_expire_minutes) {
            return Err(ConfigError::setting(
                "ACCESS_TOKEN_EXPIRE_MINUTES",
                "must be between 1 and 1440",
            ));
        }
        if self.session_lifetime_hours == 0 || self.session_idle_timeout_hours == 0 {
            return Err(ConfigError::setting(
                "LATCHKEY_SESSION_LIFETIME_HOURS / LATCHKEY_SESSION_IDLE_TIMEOUT_HOURS",
                "must be at least 1",
            ));
        }
        if !(10..=5_000).contains(&self.revocation_poll_milliseconds) {
            return Err(ConfigError::setting(
                "LATCHKEY_REVOCATION_POLL_MILLISECONDS",
                "must be between 10 and 5000",
            ));
        }
        if !(8..=crate::domain::PASSWORD_MAX_LENGTH).contains(&self.password_min_length) {
            return Err(ConfigError::setting(
                "LATCHKEY_PASSWORD_MIN_LENGTH",
                "must be between 8 and 128",
            ));
        }
        crate::auth::HashingParams::from_settings(self)
            .map_err(|problem| ConfigError::setting("LATCHKEY_ARGON2_*", problem))?;
        if self.hash_concurrency == Some(0) || self.hash_queue_limit == 0 {
            return Err(ConfigError::setting(
                "LATCHKEY_HASH_CONCURRENCY / LATCHKEY_HASH_QUEUE_LIMIT",
                "must be at least 1",
            ));
        }
        if !(1..=3600).contains(&self.request_timeout_seconds) {
            return Err(ConfigError::setting(
                "LATCHKEY_REQUEST_TIMEOUT_SECONDS",
                "must be between 1 and 3600",
            ));
        }
        if self.hash_wait_timeout_milliseconds == 0 {
            return Err(ConfigError::setting(
                "LATCHKEY_HASH_WAIT_TIMEOUT_MILLISECONDS",
                "must be at least 1",
            ));
        }
        if !matches!(self.rate_limits.as_str(), "on" | "off") {
            return Err(ConfigError::setting(
                "LATCHKEY_RATE_LIMITS",
                "must be on or off",
            ));
        }
        self.client_addressing()?;
        let limits = [
            ("LATCHKEY_LOGIN_MAX_FAILURES", self.login_max_failures),
            (
                "LATCHKEY_LOGIN_FAILURE_WINDOW_SECONDS",
                self.login_failure_window_seconds,
            ),
            ("LATCHKEY_LOGIN_LOCKOUT_SECONDS", self.login_lockout_seconds),
            (
                "LATCHKEY_LOGIN_LOCKOUT_MAX_SECONDS",
                self.login_lockout_max_seconds,
            ),
            (
                "LATCHKEY_CLIENT_MAX_FAILED_LOGINS",
                self.client_max_failed_logins,
            ),
            ("LATCHKEY_RATE_LOGIN_PER_MINUTE", self.rate_login_per_minute),
            (
                "LATCHKEY_RATE_REGISTER_PER_HOUR",
                self.rate_register_per_hour,
            ),
            (
                "LATCHKEY_RATE_REFRESH_PER_MINUTE",
                self.rate_refresh_per_minute,
            ),
            ("LATCHKEY_RATE_OTHER_PER_MINUTE", self.rate_other_per_minute),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::setting(name, "must be at least 1"));
        }
        if self.login_lockout_max_seconds < self.login_lockout_seconds {
            return Err(ConfigError::setting(
                "LATCHKEY_LOGIN_LOCKOUT_MAX_SECONDS",
                "must be at least LATCHKEY_LOGIN_LOCKOUT_SECONDS",
            ));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::setting(
                "LATCHKEY_DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        crate::store::Backend::from_url(self.database_url.expose_secret())
            .map_err(|problem| ConfigError::setting("LATCHKEY_DATABASE_URL", problem))?;
        url::Url::parse(&self.issuer())
            .map_err(|problem| ConfigError::setting("LATCHKEY_ISSUER", problem))?;
        Ok(())
    }

    /// The `iss` claim: the configured issuer, or the listen address as a URL.
    /// Which peers' forwarding header is believed, and which header that is.
    pub fn client_addressing(&self) -> Result<crate::http::TrustedProxies, ConfigError> {
        let header = crate::http::ForwardingHeader::parse(&self.forwarded_header)
            .map_err(|problem| ConfigError::setting("LATCHKEY_FORWARDED_HEADER", problem))?;
        crate::http::TrustedProxies::parse(&self.trusted_proxies, header)
            .map_err(|problem| ConfigError::setting("LATCHKEY_TRUSTED_PROXIES", problem))
    }

    pub fn issuer(&self) -> String {
        match &self.issuer {
            Some(issuer) => issuer.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The effective configuration as TOML, secrets masked; for `check-config`.
    pub fn masked(&self) -> String {
        let mask = |present: bool| if present { "\"********\"" } else { "(unset)" };
        let hashing = match self.hash_concurrency {
            Some(threads) => threads.to_string(),
            None => format!(
                "(number of CPUs: {})",
                crate::auth::default_hash_concurrency()
            ),
        };
        format!(
            "listen = \"{}\"\ndatabase_url = \"{}\"\ndatabase_max_connections = {}\n\
             secret_key = {}\naccess_token_expire_minutes = {}\nsession_lifetime_hours = {}\n\
             session_idle_timeout_hours = {}\nrevocation_poll_milliseconds = {}\nissuer = \"{}\"\n\
             audience = \"{}\"\npassword_min_length = {}\nargon2_memory_kib = {}\n\
             argon2_iterations = {}\nargon2_parallelism = {}\nhash_concurrency = {}\n\
             hash_queue_limit = {}\nhash_wait_timeout_milliseconds = {}\nrequest_timeout_seconds = {}\nredis_url = {}\n\
             redis_prefix = \"{}\"\nrate_limits = \"{}\"\ntrusted_proxies = \"{}\"\nforwarded_header = \"{}\"\n\
             login_max_failures = {}\nlogin_failure_window_seconds = {}\nlogin_lockout_seconds = {}\n\
             login_lockout_max_seconds = {}\nclient_max_failed_logins = {}\nrate_login_per_minute = {}\n\
             rate_register_per_hour = {}\nrate_refresh_per_minute = {}\nrate_other_per_minute = {}\n\
             log = \"{}\"\nlog_format = \"{:?}\"\n",
            self.listen,
            mask_url_password(self.database_url.expose_secret()),
            self.database_max_connections,
            mask(self.secret_key.is_some()),
            self.access_token_expire_minutes,
            self.session_lifetime_hours,
            self.session_idle_timeout_hours,
            self.revocation_poll_milliseconds,
            self.issuer(),
            self.audience,
            self.password_min_length,
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            hashing,
            self.hash_queue_limit,
            self.hash_wait_timeout_milliseconds,
            self.request_timeout_seconds,
            match &self.redis_url {
                Some(url) => format!("\"{}\"", mask_url_password(url.expose_secret())),
                None => "(unset)".to_owned(),
            },
            self.redis_prefix,
            self.rate_limits,
            self.trusted_proxies,
            self.forwarded_header,
            self.login_max_failures,
            self.login_failure_window_seconds,
            self.login_lockout_seconds,
            self.login_lockout_max_seconds,
            self.client_max_failed_logins,
            self.rate_login_per_minute,
            self.rate_register_per_hour,
            self.rate_refresh_per_minute,
            self.rate_other_per_minute,
            self.log,
            self.log_format,
        )
    }
}

/// Replaces the password of a URL, if it has one, so it can be printed.
pub fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails on URLs that cannot have one.
            let _ = parsed.set_password(Some("********"));
            parsed.to_string()
        }
        Ok(_) => raw.to_owned(),
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

/// figment reports one error per problem; the first, on one line and naming
/// the setting (by its TOML key and its environment variable), is enough to act on.
fn first_line(error: &figment::Error) -> String {
    let first = error
        .clone()
        .into_iter()
        .next()
        .unwrap_or_else(|| error.clone());
    let key = first
        .path
        .iter()
        .filter(|part| part.as_str() != "default")
        .map(|part| part.to_lowercase())
        .collect::<Vec<_>>()
        .join(".");
    let source = first
        .metadata
        .as_ref()
        .map(|metadata| metadata.name.to_string());
    let problem = first.kind.to_string().replace('\n', " ");
    match (key.is_empty(), source) {
        (true, _) => first.to_string().replace('\n', " "),
        (false, Some(source)) => format!(
            "{key} (LATCHKEY_{}, from {source}): {problem}",
            key.to_uppercase()
        ),
        (false, None) => format!("{key} (LATCHKEY_{}): {problem}", key.to_uppercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().expect("defaults validate");
    }

    #[test]
    fn a_short_secret_key_is_refused_and_named() {
        let settings = Settings {
            secret_key: Some(SecretString::from("too-short")),
            ..Settings::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("SECRET_KEY"), "{error}");
    }

    #[test]
    fn an_unknown_database_scheme_is_refused() {
        let settings = Settings {
            database_url: SecretString::from("oracle://x"),
            ..Settings::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("LATCHKEY_DATABASE_URL"), "{error}");
    }

    #[test]
    fn url_passwords_are_masked() {
        let masked = mask_url_password("postgres://root:hunter2@db:5432/app");
        assert!(!masked.contains("hunter2"));
        assert!(masked.contains("root:********@db"));
        assert_eq!(mask_url_password("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn masked_output_never_contains_the_secret_key() {
        let settings = Settings {
            secret_key: Some(SecretString::from("s".repeat(40))),
            ..Settings::default()
        };
        assert!(!settings.masked().contains(&"s".repeat(40)));
    }
}
