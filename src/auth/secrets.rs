//! Opaque secrets: refresh tokens and client secrets. 256 random bits from
//! the operating system's generator, base64url; only their SHA-256 is stored,
//! and stored hashes are compared in constant time.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use subtle::ConstantTimeEq;

use super::AuthError;

/// A fresh secret and the hash to store for it.
pub(crate) fn new_secret() -> Result<(SecretString, String), AuthError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Random)?;
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_secret(&secret);
    Ok((SecretString::from(secret), hash))
}

/// SHA-256, hex: enough for 256-bit random secrets, which no one can guess or brute-force.
pub(crate) fn hash_secret(secret: &str) -> String {
    digest(&SHA256, secret.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub(crate) fn hashes_match(stored: &str, presented_secret: &str) -> bool {
    stored
        .as_bytes()
        .ct_eq(hash_secret(presented_secret).as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secrets_are_long_unique_and_checked_by_hash() {
        let (first, hash) = new_secret().unwrap();
        let (second, _) = new_secret().unwrap();
        assert_eq!(first.expose_secret().len(), 43);
        assert_ne!(first.expose_secret(), second.expose_secret());
        assert_eq!(hash.len(), 64);
        assert!(hashes_match(&hash, first.expose_secret()));
        assert!(!hashes_match(&hash, second.expose_secret()));
    }
}
