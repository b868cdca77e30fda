//! The keys tokens are signed and verified with.
//!
//! By default an Ed25519 key is generated on first start and kept in the
//! database, so restarts and other instances on the same database sign and
//! verify alike. With the origin's `SECRET_KEY`, one HS256 key is used instead
//! and nothing symmetric is ever published. Each key carries its algorithm:
//! verification pins the algorithm to the key found by `kid`, never to the
//! token's header. Private keys are sealed at rest with the instance's
//! encryption key ([`super::sealing`]); rows stored before that are sealed
//! at the next start.

use std::collections::HashMap;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::sealing::Sealer;
use super::views::SigningKeySummary;
use crate::clock::Clock;
use crate::store::{KeyState, SigningKeyRecord, Store, StoreError};

/// The `kid` of the HS256 key made from `SECRET_KEY`.
const SECRET_KEY_KID: &str = "secret-key";

/// A key that verifies, with the one algorithm it may be used for.
pub(crate) struct VerifyingKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

pub(crate) struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub key: EncodingKey,
}

/// A public key as published in the JWKS (RFC 7517, RFC 8037 for OKP).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub usage: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing keys")]
    Store(#[from] StoreError),
    #[error("a stored signing key is unusable: {0}")]
    Corrupt(String),
    #[error("SECRET_KEY is set: tokens are HS256 with that secret and there are no stored keys")]
    NotStored,
    #[error("cannot generate a signing key")]
    Generate,
}

/// Every key this instance signs or verifies with.
pub struct Keyring {
    pub(crate) signing: SigningKey,
    pub(crate) verifying: HashMap<String, VerifyingKey>,
    published: Vec<PublicJwk>,
}

impl Keyring {
    /// HS256 with the origin's `SECRET_KEY`.
    pub fn from_secret(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let verifying = VerifyingKey {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(bytes),
        };
        Self {
            signing: SigningKey {
                kid: SECRET_KEY_KID.to_owned(),
                algorithm: Algorithm::HS256,
                key: EncodingKey::from_secret(bytes),
            },
            verifying: HashMap::from([(SECRET_KEY_KID.to_owned(), verifying)]),
            published: Vec::new(),
        }
    }

    /// Loads the Ed25519 keys from the database, creating the first one if there is none.
    /// Retired keys are kept while a token they signed may still be live:
    /// those retired after `retention_cutoff`.
    #[tracing::instrument(level = "info", skip_all)]
    /// `activation`: how long a new key is published before it signs, so
    /// consumers that cache the JWKS know it first (staged rotation).
    pub async fn load_or_create(
        store: &Store,
        clock: &dyn Clock,
        retention_cutoff: DateTime<Utc>,
        activation: chrono::Duration,
        sealer: &Sealer,
    ) -> Result<Self, KeyError> {
        let mut records = store.signing_keys().await?;
        if records.iter().any(|record| !is_sealed(record)) {
            seal_stored_keys(store, &records, sealer).await?;
            records = store.signing_keys().await?;
        }
        if !records.iter().any(|key| key.state == KeyState::Active) {
            let generation = records.first().map_or(1, |newest| newest.generation + 1);
            match store
                .insert_signing_key(&sealed(generate(generation, clock)?, sealer)?)
                .await
            {
                // Another instance created this generation first: use theirs.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
            records = store.signing_keys().await?;
        }
        Self::staged(&records, retention_cutoff, clock.now() - activation, sealer)
    }

    /// Every stored key, without private halves; for `keys list`.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn list(store: &Store) -> Result<Vec<SigningKeySummary>, KeyError> {
        let keys = store.signing_keys().await?;
        Ok(keys.into_iter().map(SigningKeySummary::from).collect())
    }

    /// Publishes a new key, which signs once `activation` has passed; the
    /// current one signs until then, and verifies until retention ends.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn rotate(
        store: &Store,
        clock: &dyn Clock,
        activation: chrono::Duration,
        sealer: &Sealer,
    ) -> Result<String, KeyError> {
        let records = store.signing_keys().await?;
        let generation = records.first().map_or(1, |newest| newest.generation + 1);
        let key = sealed(generate(generation, clock)?, sealer)?;
        store
            .rotate_signing_key(&key, key.created_at + activation)
            .await?;
        Ok(key.kid)
    }

    #[cfg(test)]
    fn from_records(
        records: &[SigningKeyRecord],
        retention_cutoff: DateTime<Utc>,
        sealer: &Sealer,
    ) -> Result<Self, KeyError> {
        Self::staged(records, retention_cutoff, DateTime::<Utc>::MAX_UTC, sealer)
    }

    /// The keys to verify with and publish, and the one to sign with: the
    /// newest created at or before `signable_from`, or, when none is that
    /// old, the oldest that may still sign (a first key signs at once; a
    /// young key keeps signing while its successor waits).
    fn staged(
        records: &[SigningKeyRecord],
        retention_cutoff: DateTime<Utc>,
        signable_from: DateTime<Utc>,
        sealer: &Sealer,
    ) -> Result<Self, KeyError> {
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        let mut signing = None;
        let mut oldest = None;
        let usable = records.iter().filter(|record| {
            record.state == KeyState::Active
                || record.retired_at.is_some_and(|at| at > retention_cutoff)
        });
        // Newest first, so the first active key is the one to sign with.
        for record in usable {
            if record.algorithm != "EdDSA" {
                return Err(KeyError::Corrupt(format!(
                    "key {} has algorithm {}",
                    record.kid, record.algorithm
                )));
            }
            let pkcs8 = private_pkcs8(record, sealer)?;
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| {
                KeyError::Corrupt(format!("key {} is not an Ed25519 PKCS#8 key", record.kid))
            })?;
            let public = pair.public_key().as_ref();
            verifying.insert(
                record.kid.clone(),
                VerifyingKey {
                    algorithm: Algorithm::EdDSA,
                    key: DecodingKey::from_ed_der(public),
                },
            );
            published.push(public_jwk(&record.kid, public));
            let key = || SigningKey {
                kid: record.kid.clone(),
                algorithm: Algorithm::EdDSA,
                key: EncodingKey::from_ed_der(&pkcs8),
            };
            // A retired key signs while its successor waits to activate.
            let still_signing = record.state == KeyState::Active
                || record.retired_at.is_some_and(|at| at > signable_from);
            if signing.is_none() && still_signing && record.created_at <= signable_from {
                signing = Some(key());
            }
            if still_signing {
                // Records come newest first: this ends as the oldest.
                oldest = Some(key());
            }
        }
        let signing = signing
            .or(oldest)
            .ok_or_else(|| KeyError::Corrupt("no active signing key".to_owned()))?;
        Ok(Self {
            signing,
            verifying,
            published,
        })
    }

    /// The JOSE name of the signing algorithm (`EdDSA` or `HS256`).
    pub fn signing_algorithm(&self) -> &'static str {
        if self.is_stored() { "EdDSA" } else { "HS256" }
    }

    /// Whether these keys live in the database (EdDSA), rather than coming from `SECRET_KEY`.
    pub fn is_stored(&self) -> bool {
        self.signing.algorithm == Algorithm::EdDSA
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn public_keys(&self) -> &[PublicJwk] {
        &self.published
    }
}

/// A fresh Ed25519 key whose `kid` is its RFC 7638 thumbprint.
fn generate(generation: i64, clock: &dyn Clock) -> Result<SigningKeyRecord, KeyError> {
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyError::Generate)?;
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    Ok(SigningKeyRecord {
        kid: thumbprint(&x),
        generation,
        algorithm: "EdDSA".to_owned(),
        private_key: SecretString::from(STANDARD.encode(pkcs8.as_ref())),
        public_key: x,
        state: KeyState::Active,
        created_at: clock.now(),
        retired_at: None,
    })
}

/// What a private key is bound to when sealed.
fn binding(kid: &str) -> String {
    format!("signing-key:{kid}")
}

fn is_sealed(record: &SigningKeyRecord) -> bool {
    record.private_key.expose_secret().starts_with("v1.")
}

/// `record` with its private key sealed.
fn sealed(mut record: SigningKeyRecord, sealer: &Sealer) -> Result<SigningKeyRecord, KeyError> {
    let text = sealer
        .seal(
            record.private_key.expose_secret().as_bytes(),
            &binding(&record.kid),
        )
        .map_err(|_| KeyError::Generate)?;
    record.private_key = SecretString::from(text);
    Ok(record)
}

/// Seals the rows stored in the clear by an earlier latchkey; a row another
/// instance sealed meanwhile is left as it is.
async fn seal_stored_keys(
    store: &Store,
    records: &[SigningKeyRecord],
    sealer: &Sealer,
) -> Result<(), KeyError> {
    for record in records.iter().filter(|record| !is_sealed(record)) {
        let replacement = sealed(record.clone(), sealer)?;
        store
            .replace_private_key(
                &record.kid,
                record.private_key.expose_secret(),
                replacement.private_key.expose_secret(),
            )
            .await?;
        tracing::info!(kid = %record.kid, "sealed a stored signing key with the encryption key");
    }
    Ok(())
}

/// The PKCS#8 document of a stored key, sealed or (from before sealing) not.
fn private_pkcs8(
    record: &SigningKeyRecord,
    sealer: &Sealer,
) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
    let stored = record.private_key.expose_secret();
    let base64_text = if is_sealed(record) {
        sealer.open(stored, &binding(&record.kid)).map_err(|_| {
            KeyError::Corrupt(format!(
                "key {} does not open with the encryption key",
                record.kid
            ))
        })?
    } else {
        zeroize::Zeroizing::new(stored.as_bytes().to_vec())
    };
    STANDARD
        .decode(base64_text.as_slice())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| KeyError::Corrupt(format!("key {} is not base64", record.kid)))
}

/// RFC 7638 thumbprint of an Ed25519 public JWK: SHA-256 over its required members in order.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()).as_ref())
}

fn public_jwk(kid: &str, public: &[u8]) -> PublicJwk {
    PublicJwk {
        kty: "OKP",
        crv: "Ed25519",
        x: URL_SAFE_NO_PAD.encode(public),
        kid: kid.to_owned(),
        alg: "EdDSA",
        usage: "sig",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn sealer() -> crate::auth::Sealer {
        crate::auth::Sealer::parse(&crate::auth::Sealer::generate().unwrap()).unwrap()
    }

    #[test]
    fn sealed_and_legacy_private_keys_both_load() {
        let sealer = sealer();
        let plain = generate(1, &SystemClock).unwrap();
        let sealed = super::sealed(plain.clone(), &sealer).unwrap();
        assert!(sealed.private_key.expose_secret().starts_with("v1."));
        for record in [plain.clone(), sealed.clone()] {
            let records = std::slice::from_ref(&record);
            let keyring = Keyring::from_records(records, Utc::now(), &sealer).unwrap();
            assert_eq!(keyring.signing.kid, plain.kid);
        }
        let stranger = self::sealer();
        let refused = Keyring::from_records(std::slice::from_ref(&sealed), Utc::now(), &stranger);
        assert!(refused.is_err());
    }

    #[test]
    fn generated_keys_load_and_publish_only_the_public_half() {
        let record = generate(1, &SystemClock).unwrap();
        let keyring =
            Keyring::from_records(std::slice::from_ref(&record), Utc::now(), &sealer()).unwrap();
        assert_eq!(keyring.signing.kid, record.kid);
        let published = serde_json::to_string(keyring.public_keys()).unwrap();
        assert!(!published.contains(record.private_key.expose_secret()));
        assert!(!published.contains("\"d\""));
        assert_eq!(keyring.public_keys()[0].x, record.public_key);
    }

    #[test]
    fn retired_keys_verify_until_retention_ends_and_never_sign() {
        let now = Utc::now();
        let old = SigningKeyRecord {
            state: KeyState::Retired,
            retired_at: Some(now),
            ..generate(1, &SystemClock).unwrap()
        };
        let new = generate(2, &SystemClock).unwrap();
        let records = [new.clone(), old.clone()];
        let keyring =
            Keyring::from_records(&records, now - chrono::Duration::minutes(16), &sealer())
                .unwrap();
        assert_eq!(keyring.signing.kid, new.kid);
        assert!(keyring.verifying.contains_key(&old.kid));
        assert_eq!(keyring.public_keys().len(), 2);
        let later =
            Keyring::from_records(&records, now + chrono::Duration::seconds(1), &sealer()).unwrap();
        assert!(!later.verifying.contains_key(&old.kid));
        assert_eq!(later.public_keys().len(), 1);
    }

    #[test]
    fn the_thumbprint_matches_rfc_8037() {
        // RFC 8037 appendix A.3.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn the_secret_key_is_never_published() {
        let keyring = Keyring::from_secret(&SecretString::from("x".repeat(32)));
        assert!(keyring.public_keys().is_empty());
    }
}
