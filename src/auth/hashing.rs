//! Password hashing, isolated: argon2id for new hashes, bcrypt verified for
//! hashes imported from the origin, dispatched by the PHC prefix.
//!
//! Hashing runs on the blocking pool, at most `concurrency` at a time, with at
//! most `queue_limit` callers waiting; past that, callers get
//! [`HashingError::Busy`] at once instead of queueing without bound. Unknown
//! users are verified against a dummy hash so they cost the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::Settings;
use crate::domain::{Password, normalize_password};

/// The argon2id parameters new hashes are made with.
#[derive(Debug, Clone)]
pub struct HashingParams(Params);

impl HashingParams {
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map(Self)
        .map_err(|error| format!("invalid argon2 parameters: {error}"))
    }

    fn hasher(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.0.clone())
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
    #[error("every password-hashing slot is busy and the queue is full")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

pub struct PasswordHasher {
    params: HashingParams,
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue_limit: usize,
    wait_limit: std::time::Duration,
    dummy_hash: String,
}

impl PasswordHasher {
    /// Builds the hasher; computes the dummy hash once, so call it at start-up.
    pub fn new(
        params: HashingParams,
        concurrency: usize,
        queue_limit: usize,
        wait_limit: std::time::Duration,
    ) -> Result<Self, HashingError> {
        let dummy_hash = hash_now(&params, "latchkey dummy password for unknown users")?;
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_limit,
            wait_limit,
            dummy_hash,
        })
    }

    /// Requests waiting for a hashing slot now, for `/metrics`.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes a password with argon2id and a fresh salt, as a PHC string.
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let params = self.params.clone();
        let password = SecretString::from(password.expose_secret());
        self.run(move || hash_now(&params, password.expose_secret()))
            .await?
    }

    /// Hashes a password as typed (NFKC applied, no policy): for replacing an
    /// outdated hash of a password that already verified.
    pub async fn hash_typed(&self, password: &SecretString) -> Result<String, HashingError> {
        let params = self.params.clone();
        let password = normalize_password(password.expose_secret());
        self.run(move || hash_now(&params, password.expose_secret()))
            .await?
    }

    /// Verifies a password (as typed) against a stored hash, or against the
    /// dummy hash when there is no account, which always ends in a mismatch.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verification, HashingError> {
        let (hash, known_user) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let params = self.params.clone();
        let password = password.clone();
        let verification = self
            .run(move || verify_now(&params, &password, &hash))
            .await??;
        Ok(if known_user {
            verification
        } else {
            Verification::Mismatch
        })
    }

    /// Runs CPU-heavy work on the blocking pool under the concurrency and queue bounds.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let queued =
            QueueTicket::take(&self.waiting, self.queue_limit).ok_or(HashingError::Busy)?;
        // Waiting is bounded in count (the queue) and in time: past either, a fast 503.
        let permit = tokio::time::timeout(self.wait_limit, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| HashingError::Busy)?
            .map_err(|_| HashingError::Failed("hashing pool closed".to_owned()))?;
        drop(queued);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .instrument(tracing::Span::current())
        .await
        .map_err(|error| HashingError::Failed(format!("hashing task failed: {error}")))
    }
}

/// A place in the wait queue, given back when dropped (also when the request is abandoned).
struct QueueTicket<'a>(&'a AtomicUsize);

impl<'a> QueueTicket<'a> {
    fn take(waiting: &'a AtomicUsize, limit: usize) -> Option<Self> {
        let before = waiting.fetch_add(1, Ordering::AcqRel);
        if before >= limit {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(waiting))
    }
}

impl Drop for QueueTicket<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn hash_now(params: &HashingParams, password: &str) -> Result<String, HashingError> {
    params
        .hasher()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| HashingError::Failed(error.to_string()))
}

/// Dispatches on the stored hash's prefix. argon2 hashes were made from the
/// NFKC form; bcrypt ones (from the origin) from the bytes as typed.
fn verify_now(
    params: &HashingParams,
    password: &SecretString,
    stored: &str,
) -> Result<Verification, HashingError> {
    if stored.starts_with("$argon2") {
        let parsed = PasswordHash::new(stored)
            .map_err(|error| HashingError::Failed(format!("stored hash: {error}")))?;
        let normalized = normalize_password(password.expose_secret());
        if params
            .hasher()
            .verify_password(normalized.expose_secret().as_bytes(), &parsed)
            .is_err()
        {
            return Ok(Verification::Mismatch);
        }
        let current = parsed.algorithm.as_str() == argon2::ARGON2ID_IDENT.as_str()
            && Params::try_from(&parsed).is_ok_and(|stored| same_cost(&stored, &params.0));
        return Ok(Verification::Match {
            needs_rehash: !current,
        });
    }
    if is_bcrypt(stored) {
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
    async fn unknown_users_never_match() {
        let hasher = PasswordHasher::new(cheap(), 1, 8, WAIT).unwrap();
        let typed = SecretString::from("latchkey dummy password for unknown users");
        assert_eq!(
            hasher.verify(&typed, None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let hasher = Arc::new(PasswordHasher::new(cheap(), 1, 1, WAIT).unwrap());
        // Hold the only slot, then fill the only queue place.
        let slot = Arc::clone(&hasher.slots).acquire_owned().await.unwrap();
        let waiter = {
            let hasher = Arc::clone(&hasher);
            tokio::spawn(async move { hasher.hash(&password("tangerine lantern")).await })
        };
        while hasher.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = hasher.hash(&password("tangerine lantern")).await;
        assert!(matches!(refused, Err(HashingError::Busy)));
        drop(slot);
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(hasher.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_long_wait_for_a_slot_answers_busy() {
        let hasher =
            PasswordHasher::new(cheap(), 1, 8, std::time::Duration::from_millis(20)).unwrap();
        let _slot = Arc::clone(&hasher.slots).acquire_owned().await.unwrap();
        let refused = hasher.hash(&password("tangerine lantern")).await;
        assert!(matches!(refused, Err(HashingError::Busy)));
        assert_eq!(hasher.waiting.load(Ordering::Acquire), 0);
    }
}
