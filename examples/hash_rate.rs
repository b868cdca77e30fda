//! Measures one argon2id verification at the configured parameters (defaults,
//! then `LATCHKEY_*` overrides) and prints the machine's login limit:
//! cores × (1 / verify time). Used by `bench/run.sh`.

use std::time::Instant;

use latchkey::auth::{HashingParams, PasswordHasher, default_hash_concurrency};
use latchkey::config::Settings;
use latchkey::domain::{Password, PasswordPolicy};
use secrecy::SecretString;

#[tokio::main]
async fn main() {
    let settings = Settings::load(None).expect("configuration");
    let params = HashingParams::from_settings(&settings).expect("argon2 parameters");
    let hasher =
        PasswordHasher::new(params, 1, 1, std::time::Duration::from_secs(60)).expect("hasher");
    let typed = SecretString::from("benchmark passphrase 42");
    let password = Password::parse(&typed, PasswordPolicy { min_length: 8 }).expect("password");
    let hash = hasher.hash(&password).await.expect("hash");
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        hasher.verify(&typed, Some(&hash)).await.expect("verify");
    }
    let verify_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    let cores = default_hash_concurrency();
    println!(
        "verify_ms={verify_ms:.2} cores={cores} limit_per_second={:.1}",
        cores as f64 * 1000.0 / verify_ms
    );
}
