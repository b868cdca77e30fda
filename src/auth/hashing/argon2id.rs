//! argon2 PHC strings made and checked in a hashing thread's own memory.
//!
//! The `argon2` crate does the hashing and the `phc` crate the encoding and
//! the constant-time comparison; the only thing done here is passing the
//! thread's kept memory instead of letting each hash allocate its own.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::password_hash::try_generate_salt;
use argon2::{Algorithm, Argon2, Params, Version};

use super::HashingError;
use super::pool::Scratch;

/// Hashes `password` with argon2id (v19), `params` and a fresh 16-byte salt.
pub fn hash(
    params: &Params,
    password: &[u8],
    scratch: &mut Scratch,
) -> Result<String, HashingError> {
    let salt = try_generate_salt().map_err(failed("salt"))?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let params = params.clone();
    let blocks = scratch.blocks(params.block_count())?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut output, blocks)
        .map_err(failed("argon2"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(failed("parameters"))?,
        salt: Some(Salt::new(&salt).map_err(failed("salt"))?),
        hash: Some(Output::new(&output).map_err(failed("output"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to `stored`, with the algorithm, version and
/// parameters `stored` names (argon2i, argon2d and argon2id alike).
pub fn verify(
    password: &[u8],
    stored: &PasswordHash,
    scratch: &mut Scratch,
) -> Result<bool, HashingError> {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(HashingError::Failed(
            "stored hash: no salt or no output".to_owned(),
        ));
    };
    let algorithm =
        Algorithm::try_from(stored.algorithm.as_str()).map_err(failed("stored hash"))?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(failed("stored hash"))?
        .unwrap_or_default();
    // Carries the stored output's length, so the computed one matches it.
    let params = Params::try_from(stored).map_err(failed("stored hash"))?;
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let output = &mut buffer[..expected.len()];
    let blocks = scratch.blocks(params.block_count())?;
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, output, blocks)
        .map_err(failed("argon2"))?;
    let computed = Output::new(output).map_err(failed("output"))?;
    // `Output`'s equality is constant-time.
    Ok(computed == *expected)
}

fn failed<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> HashingError {
    move |error| HashingError::Failed(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    fn cheap() -> Params {
        Params::new(1024, 1, 1, None).unwrap()
    }

    #[test]
    fn our_hashes_verify_with_the_argon2_crate_and_back() {
        let mut scratch = Scratch::default();
        let ours = hash(&cheap(), b"tangerine lantern", &mut scratch).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        let parsed = PasswordHash::new(&ours).unwrap();
        let library = Argon2::new(Algorithm::Argon2id, Version::V0x13, cheap());
        assert!(
            library
                .verify_password(b"tangerine lantern", &parsed)
                .is_ok()
        );

        let theirs = library.hash_password(b"tangerine lantern").unwrap();
        assert!(verify(b"tangerine lantern", &theirs, &mut scratch).unwrap());
        assert!(!verify(b"tangerine lanterN", &theirs, &mut scratch).unwrap());
    }

    #[test]
    fn other_variants_versions_and_lengths_verify_too() {
        // Written by the reference implementation (argon2 CLI), password "password".
        let reference =
            "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        let parsed = PasswordHash::new(reference).unwrap();
        let mut scratch = Scratch::default();
        assert!(verify(b"password", &parsed, &mut scratch).unwrap());
        assert!(!verify(b"passwore", &parsed, &mut scratch).unwrap());
        // The same memory serves a smaller hash next.
        let ours = hash(&cheap(), b"password", &mut scratch).unwrap();
        assert!(
            verify(
                b"password",
                &PasswordHash::new(&ours).unwrap(),
                &mut scratch
            )
            .unwrap()
        );
    }

    #[test]
    fn hashes_without_salt_or_output_are_errors() {
        let parsed = PasswordHash::new("$argon2id$v=19$m=1024,t=1,p=1").unwrap();
        let mut scratch = Scratch::default();
        assert!(verify(b"password", &parsed, &mut scratch).is_err());
    }
}
