//! Setting value types: each parses from the TOML or environment text and
//! keeps its invariant, so code past loading never re-checks a setting.
//! Secrets serialize masked, which is how `check-config` prints them.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a masked secret prints as.
const MASK: &str = "********";

/// An integer within `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// `value`, brought into range; for defaults, which tests check are in range.
    pub const fn clamped(value: u64) -> Self {
        if value < MIN {
            Self(MIN)
        } else if value > MAX {
            Self(MAX)
        } else {
            Self(value)
        }
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<u64> for Bounded<MIN, MAX> {
    type Error = String;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        if (MIN..=MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be between {MIN} and {MAX}, not {value}"))
        }
    }
}

impl<const MIN: u64, const MAX: u64> From<Bounded<MIN, MAX>> for u64 {
    fn from(value: Bounded<MIN, MAX>) -> Self {
        value.0
    }
}

/// The database behind a URL, told by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    MySql,
    Postgres,
}

/// A database URL whose scheme names a backend latchkey speaks. It may carry
/// a password, so it is kept secret and prints masked.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: SecretString,
    kind: DatabaseKind,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let scheme = raw.split_once(':').map(|(scheme, _)| scheme);
        let kind = match scheme {
            Some("sqlite") => DatabaseKind::Sqlite,
            Some("mysql" | "mariadb") => DatabaseKind::MySql,
            Some("postgres" | "postgresql") => DatabaseKind::Postgres,
            _ => return Err("the scheme must be sqlite:, mysql:, mariadb: or postgres:".into()),
        };
        Ok(Self {
            url: SecretString::from(raw),
            kind,
        })
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    pub fn secret(&self) -> &SecretString {
        &self.url
    }
}

/// The zero-setup default: SQLite in the working directory.
impl Default for DatabaseUrl {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://latchkey.db?mode=rwc"),
            kind: DatabaseKind::Sqlite,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&mask_url_password(self.url.expose_secret()))
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&mask_url_password(self.url.expose_secret()))
    }
}

/// A URL that may carry a password (Redis): secret, printed masked.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        url::Url::parse(raw).map_err(|error| error.to_string())?;
        Ok(Self(SecretString::from(raw)))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// The scheme, lower-cased.
    pub fn scheme(&self) -> String {
        self.0
            .expose_secret()
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&mask_url_password(self.0.expose_secret()))
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&mask_url_password(self.0.expose_secret()))
    }
}

/// The shortest HS256 secret accepted (RFC 7518 section 3.2: at least the hash size).
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// A secret of at least [`MIN_SECRET_KEY_BYTES`]: the origin's HS256
/// `SECRET_KEY`, or the token Prometheus presents for `/metrics`.
#[derive(Clone)]
pub struct SigningSecret(SecretString);

impl SigningSecret {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.len() < MIN_SECRET_KEY_BYTES {
            return Err(format!(
                "must be at least {MIN_SECRET_KEY_BYTES} bytes long"
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(MASK)
    }
}

impl<'de> Deserialize<'de> for SigningSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(SecretText)?;
        Self::parse(text).map_err(serde::de::Error::custom)
    }
}

/// `LATCHKEY_ENCRYPTION_KEY`: 32 bytes as base64 or hex, checked at start
/// by the code that uses it; masked wherever settings are shown.
#[derive(Clone)]
pub struct EncryptionKey(SecretString);

impl EncryptionKey {
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(MASK)
    }
}

impl Serialize for EncryptionKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for EncryptionKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(SecretText)?;
        if !is_key_text(text.trim()) {
            // Never echo the value.
            return Err(serde::de::Error::custom(
                "must be 32 bytes as base64 (44 characters) or hex (64 characters)",
            ));
        }
        Ok(Self(SecretString::from(text)))
    }
}

/// Whether `text` is 32 bytes in hex or base64 (either alphabet, padding optional).
fn is_key_text(text: &str) -> bool {
    use base64::Engine;
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    let unpadded = text
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(unpadded)
        .is_ok_and(|bytes| bytes.len() == 32)
}

/// Reads a secret as text; anything else is refused without echoing it
/// (serde's own message would quote the value).
struct SecretText;

impl serde::de::Visitor<'_> for SecretText {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_owned())
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<String, E> {
        Err(E::custom(format!(
            "must be a string of at least {MIN_SECRET_KEY_BYTES} bytes"
        )))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<String, E> {
        self.visit_i64(0)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<String, E> {
        self.visit_i64(0)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<String, E> {
        self.visit_i64(0)
    }
}

/// The `iss` of tokens as configured, minus trailing slashes; it must parse as
/// a URL but is kept as written, since verifiers compare it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issuer(String);

impl Issuer {
    pub fn parse(raw: &str) -> Result<Self, String> {
        url::Url::parse(raw).map_err(|error| error.to_string())?;
        Ok(Self(raw.trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Issuer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SigningSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

/// `on` or `off`, in any case; never a number (figment would read `1` as
/// the second variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_lowercase().as_str() {
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is neither on nor off"
            ))),
        }
    }
}

/// The one forwarding header trusted proxies write; matched in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    XForwardedFor,
    Forwarded,
}

impl<'de> Deserialize<'de> for ForwardedHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(serde::de::Error::custom(format!(
                "{name:?} is neither x-forwarded-for nor forwarded"
            ))),
        }
    }
}

/// Addresses and CIDR ranges: `"10.0.0.0/8, 192.168.1.7, ::1"` or a TOML list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_network)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn as_slice(&self) -> &[IpNet] {
        &self.0
    }
}

fn parse_network(entry: &str) -> Result<IpNet, String> {
    if let Ok(network) = entry.parse::<IpNet>() {
        return Ok(network);
    }
    entry
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{entry:?} is not an address or CIDR range"))
}

/// A list setting as one comma-separated string, from a string or a TOML list.
fn comma_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Text::deserialize(deserializer)? {
        Text::One(list) => list,
        Text::Many(entries) => entries.join(","),
    })
}

impl<'de> Deserialize<'de> for Networks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&comma_list(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Networks {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        serializer.serialize_str(&list.join(","))
    }
}

/// Web origins (`scheme://host[:port]`), from a comma-separated string or a
/// TOML list; each must be `http` or `https` with a host and nothing after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(Vec<url::Url>);

impl Origins {
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_origin)
            .collect::<Result<Vec<_>, _>>()
            .and_then(|origins| {
                if origins.is_empty() {
                    Err("name at least one origin".to_owned())
                } else {
                    Ok(Self(origins))
                }
            })
    }

    pub fn as_slice(&self) -> &[url::Url] {
        &self.0
    }
}

fn parse_origin(entry: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(entry).map_err(|error| format!("{entry:?}: {error}"))?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err(format!(
            "{entry:?} is not an origin (http(s)://host[:port], no path)"
        ));
    }
    Ok(url)
}

impl<'de> Deserialize<'de> for Origins {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&comma_list(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Origins {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let list: Vec<String> = self
            .0
            .iter()
            .map(|url| url.origin().ascii_serialization())
            .collect();
        serializer.serialize_str(&list.join(","))
    }
}

/// Log line format: `text` or `json`, in any case; never a number.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is neither text nor json"
            ))),
        }
    }
}

/// Replaces the password of a URL, if it has one, so it can be printed.
pub fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails on URLs that cannot have one.
            let _ = parsed.set_password(Some(MASK));
            parsed.to_string()
        }
        Ok(_) => raw.to_owned(),
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_values_refuse_what_is_out_of_range() {
        assert!(Bounded::<1, 10>::try_from(0).is_err());
        assert!(Bounded::<1, 10>::try_from(11).is_err());
        assert_eq!(Bounded::<1, 10>::try_from(10).map(Bounded::get), Ok(10));
        assert_eq!(Bounded::<1, 10>::clamped(99).get(), 10);
    }

    #[test]
    fn url_passwords_are_masked() {
        let masked = mask_url_password("postgres://root:hunter2@db:5432/app");
        assert!(!masked.contains("hunter2"));
        assert!(masked.contains("root:********@db"));
        assert_eq!(mask_url_password("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn database_schemes_name_their_backend() {
        let kind = |raw: &str| DatabaseUrl::parse(raw).map(|url| url.kind());
        assert_eq!(kind("sqlite://x.db"), Ok(DatabaseKind::Sqlite));
        assert_eq!(kind("mariadb://h/db"), Ok(DatabaseKind::MySql));
        assert_eq!(kind("postgresql://h/db"), Ok(DatabaseKind::Postgres));
        assert!(kind("oracle://h").is_err());
    }

    #[test]
    fn networks_accept_addresses_and_ranges_and_refuse_garbage() {
        let networks = Networks::parse("10.0.0.0/8, 192.168.1.7 ,::1").expect("valid");
        assert_eq!(networks.as_slice().len(), 3);
        assert_eq!(networks.as_slice()[1].prefix_len(), 32);
        assert!(Networks::parse("10.0.0.0/33").is_err());
        assert!(Networks::parse("proxy.example").is_err());
        assert_eq!(Networks::parse("").expect("empty").as_slice().len(), 0);
    }
}
