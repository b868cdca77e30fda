//! Encryption at rest: AES-256-GCM (aws-lc-rs) under the instance's
//! encryption key, `LATCHKEY_ENCRYPTION_KEY` or one generated on first start
//! and stored like the signing key. Each sealed value is bound to what it
//! belongs to (its associated data, e.g. `totp:<user id>`), so a value moved
//! to another row does not open. The same key, through HMAC-SHA256, keys
//! the hashes of short secrets (recovery codes, emailed sign-in codes), so a
//! copy of the database alone cannot brute-force them.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use super::AuthError;

/// The prefix of sealed values, naming the scheme for future rotations.
const VERSION: &str = "v1.";
const CHECK_PLAINTEXT: &[u8] = b"latchkey encryption key check";
const CHECK_BINDING: &str = "key-check";

pub struct Sealer {
    key: LessSafeKey,
    /// HMAC key for short secrets, derived from the encryption key.
    mac: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Sealer([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the encryption key must be 32 bytes, base64 or hex")]
    BadKey,
    #[error("a sealed value does not open with this encryption key")]
    Unopenable,
}

impl Sealer {
    /// From 32 key bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, SealError> {
        use aws_lc_rs::hmac;
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadKey)?;
        // A separate key for hashing: HMAC(key, label), never the AES key itself.
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, bytes),
            b"latchkey short-secret hashing",
        );
        Ok(Self {
            key: LessSafeKey::new(key),
            mac: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        })
    }

    /// HMAC-SHA256 of a short secret and what it belongs to, hex: a keyed
    /// hash, for values too small to store under a plain hash.
    pub fn keyed_hash(&self, secret: &str, bound_to: &str) -> String {
        let mut context = aws_lc_rs::hmac::Context::with_key(&self.mac);
        context.update(bound_to.as_bytes());
        context.update(b"\0");
        context.update(secret.as_bytes());
        context
            .sign()
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// A value sealed under this key, stored once, that tells at start
    /// whether the configured key is the one earlier secrets were sealed with.
    pub fn check_value(&self) -> Result<String, AuthError> {
        self.seal(CHECK_PLAINTEXT, CHECK_BINDING)
    }

    /// Whether `stored` (a [`Self::check_value`]) was sealed with this key.
    pub fn matches_check(&self, stored: &str) -> bool {
        self.open(stored, CHECK_BINDING)
            .is_ok_and(|plain| plain.as_slice() == CHECK_PLAINTEXT)
    }

    /// From the text form of a key: base64 (standard or URL-safe, padded or
    /// not) or hex of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SealError::BadKey)?
        } else {
            let unpadded = text
                .trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_");
            URL_SAFE_NO_PAD
                .decode(unpadded)
                .map_err(|_| SealError::BadKey)?
        };
        let bytes = Zeroizing::new(bytes);
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        Self::new(&bytes)
    }

    /// A fresh key's text form.
    pub fn generate() -> Result<String, AuthError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| AuthError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
    }

    pub fn seal(&self, plaintext: &[u8], bound_to: &str) -> Result<String, AuthError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| AuthError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(bound_to.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| AuthError::Random)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    pub fn open(&self, sealed: &str, bound_to: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let encoded = sealed.strip_prefix(VERSION).ok_or(SealError::Unopenable)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| SealError::Unopenable)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Unopenable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unopenable)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(bound_to.as_bytes()), in_out.as_mut())
            .map_err(|_| SealError::Unopenable)?;
        Ok(Zeroizing::new(plaintext.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_binding() {
        let sealer = Sealer::parse(&Sealer::generate().unwrap()).unwrap();
        let sealed = sealer.seal(b"JBSWY3DPEHPK3PXP", "totp:alice").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("JBSWY3DP"));
        assert_eq!(
            &sealer.open(&sealed, "totp:alice").unwrap()[..],
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(sealer.open(&sealed, "totp:bob").is_err());
        let other = Sealer::parse(&"ab".repeat(32)).unwrap();
        assert!(other.open(&sealed, "totp:alice").is_err());
        assert!(sealer.open("v1.AAAA", "totp:alice").is_err());
        assert!(sealer.open("plain", "totp:alice").is_err());
        assert!(Sealer::parse("too short").is_err());
        let check = sealer.check_value().unwrap();
        assert!(sealer.matches_check(&check));
        assert!(!other.matches_check(&check));
        assert_ne!(
            sealer.keyed_hash("123456", "a"),
            other.keyed_hash("123456", "a")
        );
        assert_ne!(
            sealer.keyed_hash("123456", "a"),
            sealer.keyed_hash("123456", "b")
        );
        assert!(Sealer::parse(&"a".repeat(63)).is_err());
    }
}
