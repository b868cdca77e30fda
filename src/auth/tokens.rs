//! Access tokens: JWTs after RFC 9068 and RFC 8725.
//!
//! Issued with header `typ: at+jwt` and a `kid`, and claims `iss`, `aud`,
//! `sub` (the user id), `preferred_username`, `iat`, `nbf`, `exp`, `jti`.
//! Verification looks the key up by `kid` (untrusted input, only ever a map
//! key), pins the algorithm to that key, requires every claim, and checks the
//! times against the injected clock with a small leeway. Headers such as
//! `jwk`, `jku`, `x5u` and `x5c` are never followed.

use std::sync::{Arc, RwLock};

use chrono::Duration;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::Keyring;
use crate::clock::Clock;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (RFC 8725 allows a few minutes; we keep it small).
pub const LEEWAY_SECONDS: i64 = 30;
/// How long after its last token was issued a key or a revocation must be
/// remembered: the token lifetime, the leeway, and a minute for clock skew.
pub fn token_retention(lifetime: Duration) -> Duration {
    lifetime + Duration::seconds(LEEWAY_SECONDS) + Duration::minutes(1)
}

/// Longer tokens are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;
const TOKEN_TYPE: &str = "at+jwt";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Absent only in `SECRET_KEY` mode, where the origin's verifiers would
    /// refuse a token with an audience they were not told about.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub aud: String,
    /// The account's id; in `SECRET_KEY` mode its username, as the origin's.
    pub sub: String,
    #[serde(default)]
    pub preferred_username: String,
    /// The session the token belongs to (absent from the origin's tokens).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    /// In `SECRET_KEY` mode, where `sub` is the username: the account's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Whether the account's address was verified when the token was issued.
    #[serde(default)]
    pub email_verified: bool,
    /// How the session was authenticated (RFC 8176).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The assurance level: `aal1`, or `aal2` with a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The roles the account held when the token was issued.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The account's `app_metadata`, under the configured claim name.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub iat: i64,
    #[serde(default)]
    pub nbf: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
}

impl AccessClaims {
    /// The account and session a token of latchkey's names; `None` for a
    /// token the origin issued (`sub` a username, no session).
    pub fn account_ids(&self) -> Option<(Uuid, Uuid)> {
        let user = match &self.uid {
            Some(uid) => Uuid::parse_str(uid).ok()?,
            None => Uuid::parse_str(&self.sub).ok()?,
        };
        Some((user, Uuid::parse_str(&self.sid).ok()?))
    }
}

/// How a session was authenticated: RFC 8176 `amr` values, and the
/// assurance level when the methods alone do not tell it (a passkey is
/// `aal2` only when the authenticator verified the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMethods {
    methods: Vec<String>,
    level: Option<&'static str>,
}

impl AuthMethods {
    /// A password alone.
    pub fn password() -> Self {
        Self::from(&["pwd"][..])
    }

    /// `methods` at an assurance level stated rather than derived.
    pub fn at_level(methods: &[&str], aal2: bool) -> Self {
        Self {
            level: Some(if aal2 { "aal2" } else { "aal1" }),
            ..Self::from(methods)
        }
    }

    /// As stored with a session (comma-separated, then `;aal2` when stated);
    /// sessions from before factors existed were opened with a password.
    pub fn parse(stored: Option<&str>) -> Self {
        let Some(text) = stored.filter(|text| !text.is_empty()) else {
            return Self::password();
        };
        let (methods, level) = match text.split_once(';') {
            Some((methods, "aal2")) => (methods, Some("aal2")),
            Some((methods, _)) => (methods, Some("aal1")),
            None => (text, None),
        };
        Self {
            methods: methods.split(',').map(str::to_owned).collect(),
            level,
        }
    }

    pub fn stored(&self) -> String {
        let methods = self.methods.join(",");
        match self.level {
            Some(level) => format!("{methods};{level}"),
            None => methods,
        }
    }

    pub fn values(&self) -> &[String] {
        &self.methods
    }

    /// As stated, else `aal2` with a second factor (`mfa`), else `aal1`.
    pub fn acr(&self) -> &'static str {
        match self.level {
            Some(level) => level,
            None if self.methods.iter().any(|m| m == "mfa") => "aal2",
            None => "aal1",
        }
    }
}

impl From<&[&str]> for AuthMethods {
    fn from(values: &[&str]) -> Self {
        Self {
            methods: values.iter().map(|value| (*value).to_owned()).collect(),
            level: None,
        }
    }
}

/// A freshly signed token and its lifetime.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("IssuedToken([REDACTED])")
    }
}

/// Why a token was refused; the reason is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token rejected: {0}")]
    Rejected(&'static str),
    #[error("token rejected by the JWT library")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

pub struct TokenService {
    keyring: RwLock<Arc<Keyring>>,
    issuer: String,
    audience: String,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
    /// The claim `app_metadata` is copied under.
    metadata_claim: String,
    /// `SECRET_KEY` mode: tokens shaped as the origin's (`sub` = username,
    /// no `iss` or `aud`), and the origin's own tokens accepted.
    origin_shaped: bool,
    /// How long a rotated-in key is published before it signs.
    key_activation: Duration,
}

/// What an account adds to its tokens beyond who it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct Grants<'a> {
    pub roles: &'a [String],
    /// A JSON object, as stored.
    pub app_metadata: Option<&'a str>,
    /// For a session opened through `/authorize`: the client and the scopes
    /// it was granted, as the `client_id` and `scope` claims (RFC 9068).
    pub client: Option<(&'a str, &'a str)>,
}

impl TokenService {
    pub fn new(
        keyring: Keyring,
        issuer: String,
        audience: String,
        lifetime: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            origin_shaped: !keyring.is_stored(),
            keyring: RwLock::new(Arc::new(keyring)),
            issuer,
            audience,
            lifetime,
            clock,
            metadata_claim: "app_metadata".to_owned(),
            key_activation: Duration::zero(),
        }
    }

    /// A new signing key is published this long before it signs.
    pub fn with_key_activation(mut self, activation: Duration) -> Self {
        self.key_activation = activation;
        self
    }

    pub fn key_activation(&self) -> Duration {
        self.key_activation
    }

    /// Copies `app_metadata` into tokens under `claim` instead.
    pub fn with_metadata_claim(mut self, claim: String) -> Self {
        self.metadata_claim = claim;
        self
    }

    /// The keys in use now; cheap (an `Arc` clone).
    pub fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(
            &self
                .keyring
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Swaps in keys reloaded from the database (after a rotation elsewhere).
    pub fn replace_keyring(&self, keyring: Keyring) {
        *self
            .keyring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keyring);
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether tokens are shaped as the origin's (`SECRET_KEY` mode).
    pub fn is_origin_shaped(&self) -> bool {
        self.origin_shaped
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        username: &str,
        session_id: Uuid,
        email_verified: bool,
        methods: &AuthMethods,
    ) -> Result<IssuedToken, TokenError> {
        self.issue_with(
            user_id,
            username,
            session_id,
            email_verified,
            methods,
            Grants::default(),
        )
    }

    /// A token that also carries the account's roles and `app_metadata`.
    pub fn issue_with(
        &self,
        user_id: Uuid,
        username: &str,
        session_id: Uuid,
        email_verified: bool,
        methods: &AuthMethods,
        grants: Grants<'_>,
    ) -> Result<IssuedToken, TokenError> {
        let now = self.clock.now().timestamp();
        let mut extra = serde_json::Map::new();
        if let Some(metadata) = grants
            .app_metadata
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .filter(|value| value.as_object().is_some_and(|object| !object.is_empty()))
        {
            extra.insert(self.metadata_claim.clone(), metadata);
        }
        if let Some((client_id, scope)) = grants.client {
            extra.insert("client_id".to_owned(), client_id.into());
            extra.insert("scope".to_owned(), scope.into());
        }
        let (iss, aud, sub, uid) = if self.origin_shaped {
            (
                String::new(),
                String::new(),
                username.to_owned(),
                Some(user_id.to_string()),
            )
        } else {
            (
                self.issuer.clone(),
                self.audience.clone(),
                user_id.to_string(),
                None,
            )
        };
        let claims = AccessClaims {
            iss,
            aud,
            sub,
            uid,
            preferred_username: username.to_owned(),
            sid: session_id.to_string(),
            email_verified,
            amr: methods.values().to_vec(),
            acr: Some(methods.acr().to_owned()),
            iat: now,
            nbf: now,
            exp: now + self.lifetime.num_seconds(),
            jti: Uuid::now_v7().to_string(),
            roles: grants.roles.to_vec(),
            extra,
        };
        let keyring = self.keyring();
        let signing = &keyring.signing;
        let mut header = Header::new(signing.algorithm);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(signing.kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &signing.key)?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.lifetime.num_seconds(),
        })
    }

    /// Signs any claims with the current key, `typ` in the header (ID
    /// tokens are `JWT`, machine access tokens `at+jwt`).
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> Result<String, TokenError> {
        let keyring = self.keyring();
        let signing = &keyring.signing;
        let mut header = Header::new(signing.algorithm);
        header.typ = Some(typ.to_owned());
        header.kid = Some(signing.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &signing.key)?)
    }

    /// A token this issuer signed with a key it still holds, whatever its
    /// type and however long ago it expired: for an `id_token_hint`, which
    /// names who is signing out, and never grants anything.
    pub fn verify_own(&self, token: &str, typ: &str) -> Result<serde_json::Value, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Rejected("too long"));
        }
        if self.origin_shaped {
            return Err(TokenError::Rejected("no ID tokens in SECRET_KEY mode"));
        }
        let header = jsonwebtoken::decode_header(token)?;
        if names_critical_extensions(token) {
            return Err(TokenError::Rejected("critical header extension"));
        }
        // An ID token is `JWT`; an access token (`at+jwt`) is not a hint.
        if header.typ.as_deref() != Some(typ) {
            return Err(TokenError::Rejected("wrong typ"));
        }
        let kid = header.kid.ok_or(TokenError::Rejected("no kid"))?;
        let keyring = self.keyring();
        let key = keyring
            .verifying
            .get(&kid)
            .ok_or(TokenError::Rejected("unknown kid"))?;
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["iss", "sub"]);
        Ok(jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation)?.claims)
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Rejected("too long"));
        }
        let header = jsonwebtoken::decode_header(token)?;
        if names_critical_extensions(token) {
            return Err(TokenError::Rejected("critical header extension"));
        }
        let keyring = self.keyring();
        let key = if self.origin_shaped {
            // The origin's tokens: `typ: JWT` (or none) and no `kid`; the
            // one key there is, HS256, pinned.
            if !header
                .typ
                .as_deref()
                .is_none_or(|typ| typ.eq_ignore_ascii_case("JWT") || is_access_token_type(typ))
            {
                return Err(TokenError::Rejected("wrong typ"));
            }
            keyring
                .verifying
                .values()
                .next()
                .ok_or(TokenError::Rejected("no key"))?
        } else {
            if !header.typ.as_deref().is_some_and(is_access_token_type) {
                return Err(TokenError::Rejected("wrong typ"));
            }
            let kid = header.kid.ok_or(TokenError::Rejected("no kid"))?;
            keyring
                .verifying
                .get(&kid)
                .ok_or(TokenError::Rejected("unknown kid"))?
        };
        let mut validation = Validation::new(key.algorithm);
        if self.origin_shaped {
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp", "sub"]);
        } else {
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        }
        // Times are checked below against our clock, not the library's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation)?.claims;
        let now = self.clock.now().timestamp();
        if claims.exp <= now - LEEWAY_SECONDS {
            return Err(TokenError::Rejected("expired"));
        }
        if claims.nbf > now + LEEWAY_SECONDS || claims.iat > now + LEEWAY_SECONDS {
            return Err(TokenError::Rejected("not yet valid"));
        }
        Ok(claims)
    }
}

/// RFC 7515 section 4.1.11: a `crit` header names extensions the verifier
/// must understand or refuse; we understand none, so any `crit` (and a header
/// that cannot be read to tell) refuses the token.
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine;

    let Some(encoded) = token.split('.').next() else {
        return true;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
        return true;
    };
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
        .map_or(true, |header| header.contains_key("crit"))
}

/// RFC 9068 section 4: `at+jwt`, or its full media type, compared case-insensitively.
fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use secrecy::SecretString;

    fn service(clock: &ManualClock) -> TokenService {
        let keyring = Keyring::from_secret(&SecretString::from("k".repeat(32)));
        TokenService::new(
            keyring,
            "http://issuer".into(),
            "latchkey".into(),
            Duration::minutes(15),
            Arc::new(clock.clone()),
        )
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let clock = ManualClock::new(chrono::Utc::now());
        let tokens = service(&clock);
        let user = Uuid::now_v7();
        let issued = tokens
            .issue(
                user,
                "alice",
                Uuid::now_v7(),
                false,
                &AuthMethods::password(),
            )
            .unwrap();
        let claims = tokens.verify(&issued.access_token).unwrap();
        // SECRET_KEY mode: the origin's shape, the account id alongside.
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.account_ids().map(|ids| ids.0), Some(user));
        assert!(claims.aud.is_empty() && claims.iss.is_empty());
        assert_eq!(claims.exp - claims.iat, 900);
        clock.advance(Duration::seconds(900 + LEEWAY_SECONDS));
        assert!(tokens.verify(&issued.access_token).is_err());
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
        let clock = ManualClock::new(chrono::Utc::now());
        let tokens = service(&clock);
        let issued = tokens
            .issue(
                Uuid::now_v7(),
                "alice",
                Uuid::now_v7(),
                false,
                &AuthMethods::password(),
            )
            .unwrap();
        clock.advance(Duration::seconds(-(LEEWAY_SECONDS + 5)));
        assert!(tokens.verify(&issued.access_token).is_err());
    }

    #[test]
    fn unsigned_and_retyped_tokens_are_refused() {
        let clock = ManualClock::new(chrono::Utc::now());
        let tokens = service(&clock);
        let issued = tokens
            .issue(
                Uuid::now_v7(),
                "alice",
                Uuid::now_v7(),
                false,
                &AuthMethods::password(),
            )
            .unwrap();
        let parts: Vec<&str> = issued.access_token.split('.').collect();
        let none_header =
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt","kid":"secret-key"}"#);
        assert!(
            tokens
                .verify(&format!("{none_header}.{}.", parts[1]))
                .is_err()
        );
        let id_token_header =
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT","kid":"secret-key"}"#);
        assert!(
            tokens
                .verify(&format!("{id_token_header}.{}.{}", parts[1], parts[2]))
                .is_err()
        );
        assert!(tokens.verify("").is_err());
        assert!(tokens.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)).is_err());
    }

    #[test]
    fn a_header_naming_a_critical_extension_is_refused_even_when_signed() {
        let clock = ManualClock::new(chrono::Utc::now());
        let tokens = service(&clock);
        let issued = tokens
            .issue(
                Uuid::now_v7(),
                "alice",
                Uuid::now_v7(),
                false,
                &AuthMethods::password(),
            )
            .unwrap();
        let payload = issued.access_token.split('.').nth(1).unwrap().to_owned();
        let header = URL_SAFE_NO_PAD.encode(
            r#"{"alg":"HS256","typ":"at+jwt","kid":"secret-key","crit":["x-unknown"],"x-unknown":1}"#,
        );
        let message = format!("{header}.{payload}");
        let key = jsonwebtoken::EncodingKey::from_secret("k".repeat(32).as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        let forged = format!("{message}.{signature}");
        assert!(matches!(
            tokens.verify(&forged),
            Err(TokenError::Rejected("critical header extension"))
        ));
        // The same header without `crit` verifies: the signature was good.
        let plain = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"at+jwt","kid":"secret-key"}"#);
        let message = format!("{plain}.{payload}");
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        assert!(tokens.verify(&format!("{message}.{signature}")).is_ok());
    }
}
