//! Password hashing, isolated: argon2id for new hashes, bcrypt verified for
//! hashes imported from the origin, dispatched by the PHC prefix.
//!
//! Hashing runs on its own threads ([`pool`]), one per core by default, with
//! a bounded queue: past it, or after waiting too long, callers get
//! [`HashingError::Busy`] instead of queueing without bound. Unknown users
//! cost one argon2id hash at the configured parameters, like a verification.

mod argon2id;
mod pool;

use argon2::password_hash::phc::PasswordHash;
use argon2::{ARGON2ID_IDENT, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{Password, normalize_password};

/// How much more than the configured parameters a stored argon2 hash may ask
/// for, in memory and in iterations: hashes made before the settings were
/// lowered still verify, but a stored hash cannot make one login allocate
/// gigabytes or hold a hashing thread for minutes.
const MAX_STORED_COST_FACTOR: u32 = 4;

/// The highest bcrypt cost verified or imported: 2^14 rounds, about a second
/// on one core. The origin wrote cost 12.
pub const MAX_BCRYPT_COST: u32 = 14;

/// The argon2id parameters new hashes are made with.
#[derive(Debug, Clone)]
pub struct HashingParams(Params);

impl HashingParams {
    /// Memory in KiB, iterations and lanes, within argon2's own limits.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, HashingError> {
        Params::new(memory_kib, iterations, parallelism, None)
            .map(Self)
            .map_err(|error| HashingError::Failed(format!("invalid argon2 parameters: {error}")))
    }
}

/// The number of CPUs, which is how many hashes may run at once by default.
pub fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What a verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Mismatch,
    /// The password is right; `needs_rehash` when the stored hash uses an
    /// outdated scheme or parameters.
    Match {
        needs_rehash: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("every password-hashing thread is busy and the queue is full")]
    Busy,
    /// What went wrong, in words: the causes come from three crates (argon2,
    /// its PHC parser, bcrypt) and from the pool, so they are described here.
    #[error("{0}")]
    Failed(String),
}

pub struct PasswordHasher {
    params: HashingParams,
    pool: pool::Pool,
}

impl PasswordHasher {
    /// Starts `concurrency` hashing threads; at most `queue_limit` hashes
    /// wait for one, each for at most `wait_limit`.
    pub fn new(
        params: HashingParams,
        concurrency: usize,
        queue_limit: usize,
        wait_limit: std::time::Duration,
    ) -> Result<Self, HashingError> {
        let pool = pool::Pool::start(concurrency, queue_limit, wait_limit)?;
        Ok(Self { params, pool })
    }

    /// Where the time hashes wait and take is recorded.
    pub fn observe(&mut self, timings: crate::metrics::HashTimings) {
        self.pool.observe(timings);
    }

    /// Requests waiting for a hashing thread now, for `/metrics`.
    pub fn waiting(&self) -> usize {
        self.pool.waiting()
    }

    /// Hashes a password with argon2id and a fresh salt, as a PHC string.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        self.hash_normalized(SecretString::from(password.expose_secret()))
            .await
    }

    /// Hashes a password as typed (NFKC applied, no policy): for replacing an
    /// outdated hash of a password that already verified.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn hash_typed(&self, password: &SecretString) -> Result<String, HashingError> {
        self.hash_normalized(normalize_password(password.expose_secret()))
            .await
    }

    /// Hashes an already NFKC-normalized password at the configured parameters.
    async fn hash_normalized(&self, password: SecretString) -> Result<String, HashingError> {
        let params = self.params.0.clone();
        self.pool
            .run(move |scratch| {
                argon2id::hash(&params, password.expose_secret().as_bytes(), scratch)
            })
            .await?
    }

    /// Verifies a password (as typed) against a stored hash. With no stored
    /// hash (no such account) the password is hashed anyway, at the same
    /// cost, and the answer is always a mismatch.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verification, HashingError> {
        let Some(stored) = stored.map(str::to_owned) else {
            self.hash_typed(password).await?;
            return Ok(Verification::Mismatch);
        };
        let params = self.params.0.clone();
        let password = password.clone();
        self.pool
            .run(move |scratch| verify_now(&params, &password, &stored, scratch))
            .await?
    }
}

/// Dispatches on the stored hash's prefix. argon2 hashes were made from the
/// NFKC form; bcrypt ones (from the origin) from the bytes as typed.
fn verify_now(
    params: &Params,
    password: &SecretString,
    stored: &str,
    scratch: &mut pool::Scratch,
) -> Result<Verification, HashingError> {
    if stored.starts_with("$argon2") {
        let parsed = PasswordHash::new(stored)
            .map_err(|error| HashingError::Failed(format!("stored hash: {error}")))?;
        let stored_params = Params::try_from(&parsed)
            .map_err(|error| HashingError::Failed(format!("stored hash: {error}")))?;
        if !affordable(&stored_params, params) {
            return Err(HashingError::Failed(
                "stored hash costs more than the configured parameters allow".to_owned(),
            ));
        }
        let normalized = normalize_password(password.expose_secret());
        if !argon2id::verify(normalized.expose_secret().as_bytes(), &parsed, scratch)? {
            return Ok(Verification::Mismatch);
        }
        let current = parsed.algorithm.as_str() == ARGON2ID_IDENT.as_str()
            && parsed.version == Some(Version::V0x13.into())
            && same_cost(&stored_params, params);
        return Ok(Verification::Match {
            needs_rehash: !current,
        });
    }
    if is_bcrypt(stored) {
        if !bcrypt_cost_allowed(stored) {
            return Err(HashingError::Failed(format!(
                "stored bcrypt hash is malformed or costs more than {MAX_BCRYPT_COST}"
            )));
        }
        return match bcrypt::verify(password.expose_secret().as_bytes(), stored) {
            Ok(true) => Ok(Verification::Match { needs_rehash: true }),
            Ok(false) => Ok(Verification::Mismatch),
            Err(error) => Err(HashingError::Failed(format!("stored bcrypt hash: {error}"))),
        };
    }
    Err(HashingError::Failed(
        "stored hash has an unknown scheme".to_owned(),
    ))
}

fn affordable(stored: &Params, configured: &Params) -> bool {
    stored.m_cost() <= configured.m_cost().saturating_mul(MAX_STORED_COST_FACTOR)
        && stored.t_cost() <= configured.t_cost().saturating_mul(MAX_STORED_COST_FACTOR)
}

/// Whether a bcrypt hash parses and costs at most [`MAX_BCRYPT_COST`].
pub fn bcrypt_cost_allowed(hash: &str) -> bool {
    hash.parse::<bcrypt::HashParts>()
        .is_ok_and(|parts| parts.get_cost() <= MAX_BCRYPT_COST)
}

fn same_cost(stored: &Params, wanted: &Params) -> bool {
    stored.m_cost() == wanted.m_cost()
        && stored.t_cost() == wanted.t_cost()
        && stored.p_cost() == wanted.p_cost()
}

/// Whether a stored hash is one of the bcrypt variants the origin could have written.
pub fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PasswordPolicy;

    const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

    fn cheap() -> HashingParams {
        HashingParams(Params::new(1024, 1, 1, None).unwrap())
    }

    fn password(raw: &str) -> Password {
        Password::parse(&SecretString::from(raw), PasswordPolicy { min_length: 8 }).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_salts_differ() {
        let hasher = PasswordHasher::new(cheap(), 2, 8, WAIT).unwrap();
        let first = hasher.hash(&password("tangerine lantern")).await.unwrap();
        let second = hasher.hash(&password("tangerine lantern")).await.unwrap();
        assert!(first.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_ne!(first, second);
        let typed = SecretString::from("tangerine lantern");
        assert_eq!(
            hasher.verify(&typed, Some(&first)).await.unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        let wrong = SecretString::from("tangerine lanterns");
        assert_eq!(
            hasher.verify(&wrong, Some(&first)).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn outdated_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(cheap(), 1, 8, WAIT).unwrap();
        let hash = old.hash(&password("tangerine lantern")).await.unwrap();
        let stronger = PasswordHasher::new(
            HashingParams(Params::new(2048, 1, 1, None).unwrap()),
            1,
            8,
            WAIT,
        )
        .unwrap();
        let typed = SecretString::from("tangerine lantern");
        assert_eq!(
            stronger.verify(&typed, Some(&hash)).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn origin_bcrypt_hashes_verify_and_ask_for_a_rehash() {
        let hasher = PasswordHasher::new(cheap(), 1, 8, WAIT).unwrap();
        for variant in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let stored = bcrypt::hash_with_result("origin-pass", 4)
                .unwrap()
                .format_for_version(variant);
            let right = SecretString::from("origin-pass");
            assert_eq!(
                hasher.verify(&right, Some(&stored)).await.unwrap(),
                Verification::Match { needs_rehash: true }
            );
            let wrong = SecretString::from("origin-pas");
            assert_eq!(
                hasher.verify(&wrong, Some(&stored)).await.unwrap(),
                Verification::Mismatch
            );
        }
    }

    #[tokio::test]
    async fn older_argon2_versions_ask_for_a_rehash() {
        let hasher = PasswordHasher::new(cheap(), 1, 8, WAIT).unwrap();
        let old = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            Version::V0x10,
            Params::new(1024, 1, 1, None).unwrap(),
        );
        let stored = argon2::PasswordHasher::hash_password(&old, b"tangerine lantern")
            .unwrap()
            .to_string();
        assert!(stored.starts_with("$argon2id$v=16$m=1024,t=1,p=1$"));
        let typed = SecretString::from("tangerine lantern");
        assert_eq!(
            hasher.verify(&typed, Some(&stored)).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn stored_hashes_that_cost_far_more_than_configured_are_refused_unrun() {
        let hasher = PasswordHasher::new(cheap(), 1, 8, WAIT).unwrap();
        let typed = SecretString::from("tangerine lantern");
        for stored in [
            "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
            "$argon2id$v=19$m=1024,t=4000000,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
            "$2b$31$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
        ] {
            assert!(matches!(
                hasher.verify(&typed, Some(stored)).await,
                Err(HashingError::Failed(_))
            ));
        }
        // Four times the configured cost still verifies.
        let stronger = PasswordHasher::new(
            HashingParams(Params::new(4096, 4, 1, None).unwrap()),
            1,
            8,
            WAIT,
        )
        .unwrap();
        let stored = stronger.hash(&password("tangerine lantern")).await.unwrap();
        assert_eq!(
            hasher.verify(&typed, Some(&stored)).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn bcrypt_costs_are_capped() {
        let cheap = bcrypt::hash("origin-pass", 4).unwrap();
        assert!(bcrypt_cost_allowed(&cheap));
        assert!(!bcrypt_cost_allowed(&cheap.replacen("$04$", "$15$", 1)));
        assert!(!bcrypt_cost_allowed("$2b$not a hash"));
    }

    #[tokio::test]
    async fn unknown_users_never_match() {
        let hasher = PasswordHasher::new(cheap(), 1, 8, WAIT).unwrap();
        let typed = SecretString::from("tangerine lantern");
        assert_eq!(
            hasher.verify(&typed, None).await.unwrap(),
            Verification::Mismatch
        );
    }
}
