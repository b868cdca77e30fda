//! Measures argon2id verification at the configured parameters (defaults,
//! then `LATCHKEY_*` overrides) and prints the machine's login limit,
//! cores × (1 / verify time), next to what all cores sustain together (they
//! share memory bandwidth and cache). Used by `bench/run.sh`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::auth::{PasswordHasher, default_hash_concurrency};
use latchkey::config::Settings;
use latchkey::domain::{Password, PasswordPolicy};
use latchkey::startup::hashing_params;
use secrecy::SecretString;

const ROUNDS: usize = 20;

/// The server's allocator and its settings (`.cargo/config.toml`), so the
/// limit is measured with the same memory the server hashes in.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let settings = Settings::load(None).expect("configuration");
    let cores = default_hash_concurrency();
    let hasher = |concurrency: usize| {
        let params = hashing_params(&settings.passwords).expect("argon2 parameters");
        let queue = ROUNDS * cores;
        Arc::new(
            PasswordHasher::new(params, concurrency, queue, Duration::from_secs(600))
                .expect("hasher"),
        )
    };
    let typed = SecretString::from("benchmark passphrase 42");
    let password = Password::parse(&typed, PasswordPolicy { min_length: 8 }).expect("password");
    let single = hasher(1);
    let hash = single.hash(&password).await.expect("hash");

    let started = Instant::now();
    for _ in 0..ROUNDS {
        single.verify(&typed, Some(&hash)).await.expect("verify");
    }
    let verify_ms = started.elapsed().as_secs_f64() * 1000.0 / ROUNDS as f64;

    let parallel = hasher(cores);
    let started = Instant::now();
    let tasks: Vec<_> = (0..ROUNDS * cores)
        .map(|_| {
            let (parallel, typed, hash) = (Arc::clone(&parallel), typed.clone(), hash.clone());
            tokio::spawn(async move { parallel.verify(&typed, Some(&hash)).await.expect("verify") })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let parallel_per_second = (ROUNDS * cores) as f64 / started.elapsed().as_secs_f64();
    let limit = cores as f64 * 1000.0 / verify_ms;
    println!(
        "verify_ms={verify_ms:.2} cores={cores} limit_per_second={limit:.1} parallel_per_second={parallel_per_second:.1}"
    );
}
