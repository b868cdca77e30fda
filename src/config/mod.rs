//! Typed configuration: defaults, then an optional TOML file, then environment
//! variables (`LATCHKEY_*`, plus the origin's `SECRET_KEY`,
//! `ACCESS_TOKEN_EXPIRE_MINUTES` and the common `DATABASE_URL`).
//!
//! Settings are parsed, not validated: every field has a type that keeps its
//! rule ([`values`]), so a [`Settings`] that exists is usable, and a bad
//! setting stops loading with one line naming it. They are grouped into
//! [`sections`]; the keys stay flat, as earlier versions read them.
//!
//! This module imports nothing from the layers: `startup` turns these
//! settings into each layer's own parameter types. Nothing here is global.

pub mod sections;
pub mod values;

use std::collections::BTreeSet;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::{Figment, Provider};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use sections::{
    DatabaseSettings, LogSettings, MailSettings, PasskeySettings, PasswordSettings, ServerSettings,
    SessionSettings, ThrottleSettings, TokenSettings, UiSettings, WebhookSettings,
};
pub use values::{
    Bounded, DatabaseKind, DatabaseUrl, EncryptionKey, ForwardedHeader, Issuer, LogFormat,
    MIN_SECRET_KEY_BYTES, Networks, Origins, SecretUrl, SigningSecret, Switch, mask_url_password,
};

/// Every setting latchkey reads, by section.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub tokens: TokenSettings,
    pub sessions: SessionSettings,
    pub passwords: PasswordSettings,
    pub throttle: ThrottleSettings,
    pub logging: LogSettings,
    pub mail: MailSettings,
    pub passkeys: PasskeySettings,
    pub webhooks: WebhookSettings,
    pub ui: UiSettings,
}

/// A configuration problem, worded as one line that names the setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn setting(name: &str, problem: impl std::fmt::Display) -> Self {
        Self(format!("{name}: {problem}"))
    }
}

/// Names the origin documented, read without the `LATCHKEY_` prefix.
const UNPREFIXED: &[&str] = &["database_url", "secret_key", "access_token_expire_minutes"];

impl Settings {
    /// Layers defaults, the TOML file (if any) and the environment, and parses them.
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
        let figment = figment.merge(Env::raw().only(UNPREFIXED)).merge(
            Env::prefixed("LATCHKEY_")
                .ignore(&["config"])
                // The test suite's own variables (LATCHKEY_TEST_*) are not settings.
                .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_")),
        );
        Self::from_figment(&figment)
    }

    fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        reject_unknown_keys(figment)?;
        let settings = Self {
            server: extract(figment)?,
            database: extract(figment)?,
            tokens: extract(figment)?,
            sessions: extract(figment)?,
            passwords: extract(figment)?,
            throttle: extract(figment)?,
            logging: extract(figment)?,
            mail: extract(figment)?,
            passkeys: extract(figment)?,
            webhooks: extract(figment)?,
            ui: extract(figment)?,
        };
        settings.check()?;
        Ok(settings)
    }

    /// The `iss` of tokens and the base of discovery: `LATCHKEY_ISSUER`, else
    /// `LATCHKEY_PUBLIC_URL`, else derived from the listen address.
    pub fn issuer(&self) -> String {
        match (&self.server.issuer, &self.mail.public_url) {
            (None, Some(public)) => public.as_str().to_owned(),
            _ => self.server.issuer(),
        }
    }

    /// Whether the issuer was guessed from an unspecified listen address.
    pub fn issuer_is_guessed(&self) -> bool {
        self.server.issuer.is_none()
            && self.mail.public_url.is_none()
            && self.server.listen.ip().is_unspecified()
    }

    /// The rules that tie two settings together, which no single type keeps.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.tokens.check()?;
        self.passwords.check()?;
        self.throttle.check()?;
        self.mail.check()?;
        self.ui.check()
    }

    /// Each section as a JSON object of its keys, secrets already masked.
    fn sections(&self) -> [(&'static str, serde_json::Value); 11] {
        [
            ("server", as_json(&self.server)),
            ("database", as_json(&self.database)),
            ("tokens", as_json(&self.tokens)),
            ("sessions", as_json(&self.sessions)),
            ("passwords", as_json(&self.passwords)),
            ("throttle", as_json(&self.throttle)),
            ("logging", as_json(&self.logging)),
            ("mail", as_json(&self.mail)),
            ("passkeys", as_json(&self.passkeys)),
            ("webhooks", as_json(&self.webhooks)),
            ("ui", as_json(&self.ui)),
        ]
    }

    /// The effective configuration as TOML, secrets masked, unset settings
    /// as comments; for `check-config`. Derived from the sections' own
    /// serialization, so a new setting appears here without further work.
    pub fn masked(&self) -> String {
        let mut text = String::new();
        for (section, value) in self.sections() {
            text.push_str(&format!("# {section}\n"));
            for (key, value) in value.as_object().into_iter().flatten() {
                match value {
                    serde_json::Value::Null => text.push_str(&format!("# {key} = (unset)\n")),
                    value => text.push_str(&format!("{key} = {value}\n")),
                }
            }
        }
        text
    }
}

fn as_json(section: &impl Serialize) -> serde_json::Value {
    // Sections hold only strings, numbers, lists and options: serializing cannot fail.
    serde_json::to_value(section).unwrap_or_default()
}

fn extract<T: DeserializeOwned>(figment: &Figment) -> Result<T, ConfigError> {
    figment
        .extract()
        .map_err(|error| ConfigError(first_line(&error)))
}

/// A key no section reads is a typo or a setting of another version: refuse
/// it rather than run without what the operator meant to set.
fn reject_unknown_keys(figment: &Figment) -> Result<(), ConfigError> {
    let known: BTreeSet<String> = Settings::default()
        .sections()
        .into_iter()
        .flat_map(|(_, value)| value.as_object().cloned().unwrap_or_default())
        .map(|(key, _)| key)
        .collect();
    let data = figment
        .data()
        .map_err(|error| ConfigError(first_line(&error)))?;
    let unknown = data
        .values()
        .flat_map(|dict| dict.keys())
        .find(|key| !known.contains(key.as_str()));
    match unknown {
        Some(key) => Err(ConfigError::setting(
            &format!("{key} (LATCHKEY_{})", key.to_uppercase()),
            "unknown setting",
        )),
        None => Ok(()),
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
    use figment::providers::Serialized;

    use super::*;

    fn parsed(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        for (key, value) in pairs {
            // As the environment provider does: "60" is a number, "on" a string.
            let value: figment::value::Value = value.parse().unwrap_or_else(|never| match never {});
            figment = figment.merge(Serialized::default(key, value));
        }
        Settings::from_figment(&figment)
    }

    #[test]
    fn defaults_parse_and_pass_their_checks() {
        let settings = parsed(&[]).expect("defaults are valid");
        settings.check().expect("checks pass");
        assert_eq!(settings.server.issuer(), "http://127.0.0.1:8080");
        assert_eq!(settings.issuer(), "http://127.0.0.1:8080");
    }

    #[test]
    fn a_short_secret_key_is_refused_and_named_without_its_value() {
        let error = parsed(&[("secret_key", "too-short")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("SECRET_KEY"), "{error}");
        assert!(!error.contains("too-short"), "{error}");
    }

    #[test]
    fn an_unknown_database_scheme_is_refused() {
        let error = parsed(&[("database_url", "oracle://x")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("LATCHKEY_DATABASE_URL"), "{error}");
    }

    #[test]
    fn an_unknown_key_is_refused_and_named() {
        let error = parsed(&[("lisen", "127.0.0.1:1")]).unwrap_err().to_string();
        assert!(error.contains("LATCHKEY_LISEN"), "{error}");
    }

    #[test]
    fn a_lockout_cap_below_the_first_lock_is_refused() {
        let error = parsed(&[
            ("login_lockout_seconds", "60"),
            ("login_lockout_max_seconds", "30"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("LATCHKEY_LOGIN_LOCKOUT_MAX_SECONDS"),
            "{error}"
        );
    }

    #[test]
    fn masked_output_never_contains_secrets_and_shows_every_setting() {
        let settings = parsed(&[
            ("secret_key", &"s".repeat(40)),
            ("database_url", "postgres://app:hunter2@db/app"),
            ("redis_url", "redis://:hunter3@cache:6379"),
        ])
        .expect("valid");
        let masked = settings.masked();
        for secret in ["sssssssss", "hunter2", "hunter3"] {
            assert!(!masked.contains(secret), "{masked}");
        }
        assert!(
            masked.contains("database_url = \"postgres://app:********@db/app\""),
            "{masked}"
        );
        assert!(masked.contains("# issuer = (unset)"), "{masked}");
        assert!(masked.contains("rate_login_per_minute = 60"), "{masked}");
    }

    #[test]
    fn the_issuer_prefers_the_public_url_and_never_names_every_interface() {
        let settings = parsed(&[("listen", "0.0.0.0:9000")]).expect("valid");
        assert_eq!(settings.issuer(), "http://localhost:9000");
        assert!(settings.issuer_is_guessed());
        let settings = parsed(&[
            ("listen", "0.0.0.0:9000"),
            ("public_url", "https://id.example.com"),
        ])
        .expect("valid");
        assert_eq!(settings.issuer(), "https://id.example.com");
        assert!(!settings.issuer_is_guessed());
        let settings = parsed(&[
            ("issuer", "https://auth.example.com"),
            ("public_url", "https://id.example.com"),
        ])
        .expect("valid");
        assert_eq!(settings.issuer(), "https://auth.example.com");
    }

    #[test]
    fn switches_and_formats_are_words_never_numbers() {
        let error = parsed(&[("rate_limits", "1")]).unwrap_err().to_string();
        assert!(error.contains("LATCHKEY_RATE_LIMITS"), "{error}");
        assert!(parsed(&[("log_format", "0")]).is_err());
        let settings = parsed(&[("rate_limits", "OFF"), ("log_format", "Json")]).expect("valid");
        assert_eq!(settings.throttle.rate_limits, Switch::Off);
        assert_eq!(settings.logging.log_format, LogFormat::Json);
    }

    #[test]
    fn the_forwarded_header_is_matched_in_any_case_and_others_are_refused() {
        let settings = parsed(&[("forwarded_header", "Forwarded")]).expect("valid");
        assert_eq!(settings.server.forwarded_header, ForwardedHeader::Forwarded);
        let error = parsed(&[("forwarded_header", "x-real-ip")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("LATCHKEY_FORWARDED_HEADER"), "{error}");
    }

    #[test]
    fn the_issuer_is_kept_as_written_less_trailing_slashes() {
        let settings = parsed(&[("issuer", "https://Auth.Example.com:443/x//")]).expect("valid");
        assert_eq!(settings.server.issuer(), "https://Auth.Example.com:443/x");
        assert!(parsed(&[("issuer", "not a url")]).is_err());
    }

    #[test]
    fn a_numeric_secret_key_is_refused_without_echoing_it() {
        let error = parsed(&[("secret_key", "12345678901234")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("SECRET_KEY"), "{error}");
        assert!(!error.contains("12345678901234"), "{error}");
    }

    #[test]
    fn trusted_proxies_accept_a_list_or_a_comma_separated_string() {
        let settings = parsed(&[("trusted_proxies", "10.0.0.0/8, ::1")]).expect("valid");
        assert_eq!(settings.server.trusted_proxies.as_slice().len(), 2);
        let error = parsed(&[("trusted_proxies", "10.0.0.0/33")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("LATCHKEY_TRUSTED_PROXIES"), "{error}");
    }

    #[test]
    fn the_password_length_bounds_agree_with_the_domain() {
        assert_eq!(
            Bounded::<8, 128>::try_from(crate::domain::PASSWORD_MAX_LENGTH as u64)
                .map(Bounded::get),
            Ok(128)
        );
        assert!(
            Bounded::<8, 128>::try_from(crate::domain::PASSWORD_MAX_LENGTH as u64 + 1).is_err()
        );
    }
}
