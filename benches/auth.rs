//! Micro-benchmarks: argon2id hash and verify at the default parameters,
//! access-token signing and verification, and the full bearer path (token to
//! verified principal, including the revocation check) cold and cached.
//!
//! `cargo bench` (criterion); the load benchmark is `bench/run.sh`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::auth::{AuthMethods, ClientContext, Keyring, PasswordHasher, Sealer, TokenService};
use latchkey::clock::SystemClock;
use latchkey::config::{DatabaseUrl, Settings};
use latchkey::domain::{Password, PasswordPolicy};
use latchkey::startup::{build_auth, hashing_params};
use latchkey::store::Store;
use secrecy::SecretString;
use uuid::Uuid;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn hashing(criterion: &mut Criterion) {
    let runtime = runtime();
    let settings = Settings::default();
    let params = hashing_params(&settings.passwords).expect("params");
    let hasher = PasswordHasher::new(params, 1, 8, Duration::from_secs(60)).expect("hasher");
    let typed = SecretString::from("benchmark passphrase 42");
    let password = Password::parse(&typed, PasswordPolicy { min_length: 8 }).expect("password");
    let hash = runtime.block_on(hasher.hash(&password)).expect("hash");
    let mut group = criterion.benchmark_group("argon2id m=19456 t=2 p=1");
    group.sample_size(20);
    group.bench_function("hash", |bench| {
        bench.iter(|| runtime.block_on(hasher.hash(&password)).expect("hash"))
    });
    group.bench_function("verify", |bench| {
        bench.iter(|| {
            runtime
                .block_on(hasher.verify(&typed, Some(&hash)))
                .expect("verify")
        })
    });
    group.finish();
}

fn tokens(criterion: &mut Criterion) {
    let runtime = runtime();
    let directory = tempfile::tempdir().expect("directory");
    let mut settings = Settings::default();
    settings.database.url = DatabaseUrl::parse(&format!(
        "sqlite://{}/bench.db?mode=rwc",
        directory.path().display()
    ))
    .expect("database URL");
    // One encryption key for the server and for the keyring loaded below.
    let key_text = Sealer::generate().expect("a key");
    settings.tokens.encryption_key =
        Some(serde_json::from_value(serde_json::json!(key_text)).expect("key setting"));
    let sealer = Sealer::parse(&key_text).expect("key");
    let auth = runtime
        .block_on(build_auth(&settings, Arc::new(SystemClock)))
        .expect("auth");
    let store = runtime
        .block_on(Store::connect(settings.database.url.secret(), 1))
        .expect("store");
    let keyring = runtime
        .block_on(Keyring::load_or_create(
            &store,
            &SystemClock,
            chrono::Utc::now(),
            chrono::Duration::zero(),
            &sealer,
        ))
        .expect("keys");
    let service = TokenService::new(
        keyring,
        settings.server.issuer(),
        settings.tokens.audience.clone(),
        chrono::Duration::minutes(15),
        Arc::new(SystemClock),
    );
    let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
    criterion.bench_function("EdDSA access token: sign", |bench| {
        bench.iter(|| {
            service
                .issue(user, "alice", session, false, &AuthMethods::password())
                .expect("issue")
        })
    });
    let token = service
        .issue(user, "alice", session, false, &AuthMethods::password())
        .expect("issue")
        .access_token;
    criterion.bench_function("EdDSA access token: verify", |bench| {
        bench.iter(|| service.verify(&token).expect("verify"))
    });

    // The bearer path needs a real user and session, so log in once.
    let registration = latchkey::auth::Registration {
        username: "alice".to_owned(),
        email: "alice@example.com".to_owned(),
        password: SecretString::from("benchmark passphrase 42"),
        locale: None,
    };
    runtime
        .block_on(auth.register(registration, &ClientContext::default()))
        .expect("register");
    let login = runtime
        .block_on(auth.login(
            "alice",
            &SecretString::from("benchmark passphrase 42"),
            &ClientContext::default(),
        ))
        .expect("login");
    let token = login.tokens.access.access_token;
    criterion.bench_function("bearer path: token to principal (cached)", |bench| {
        bench.iter(|| {
            runtime
                .block_on(auth.authenticate(&token))
                .expect("authenticate")
        })
    });
}

criterion_group!(benches, hashing, tokens);
criterion_main!(benches);
