//! The counter rule, as a suite any [`CounterStore`] must pass: memory and
//! Redis each run it (see their tests), so the Lua scripts and the Rust
//! tables keep one behaviour. Keys are prefixed by the caller's store.

use std::time::Duration;

use super::{Bucket, CounterStore, FailureRule};

/// Three failures lock for a second, doubling to at most five.
pub const RULE: FailureRule = FailureRule {
    window_ms: 900_000,
    threshold: 3,
    base_ms: 1_000,
    cap_ms: 5_000,
};

/// Runs every case against `store`.
pub async fn keeps_the_rule(store: &impl CounterStore) {
    locks_start_at_the_threshold_double_and_stop_at_the_cap(store).await;
    failures_outside_the_window_start_over(store).await;
    once_locked_the_count_lasts_until_a_quiet_window(store).await;
    buckets_empty_and_refill(store).await;
    keys_are_counted_apart(store).await;
    a_prefix_clears_only_its_keys(store).await;
}

async fn fail(store: &impl CounterStore, key: &str, at: i64) -> Option<Duration> {
    store.fail(key, RULE, at).await.expect("the store answers")
}

async fn locked(store: &impl CounterStore, key: &str, at: i64) -> Option<Duration> {
    store.locked(key, at).await.expect("the store answers")
}

async fn locks_start_at_the_threshold_double_and_stop_at_the_cap(store: &impl CounterStore) {
    let key = "account:cap";
    assert_eq!(fail(store, key, 0).await, None);
    assert_eq!(fail(store, key, 1).await, None);
    assert_eq!(fail(store, key, 2).await, Some(Duration::from_secs(1)));
    assert_eq!(locked(store, key, 2).await, Some(Duration::from_secs(1)));
    assert_eq!(locked(store, key, 1_002).await, None);
    assert_eq!(fail(store, key, 1_003).await, Some(Duration::from_secs(2)));
    assert_eq!(fail(store, key, 3_004).await, Some(Duration::from_secs(4)));
    assert_eq!(fail(store, key, 7_005).await, Some(Duration::from_secs(5)));
    store.clear(key).await.expect("the store answers");
    assert_eq!(locked(store, key, 7_006).await, None);
    assert_eq!(fail(store, key, 7_006).await, None);
}

async fn failures_outside_the_window_start_over(store: &impl CounterStore) {
    let key = "account:window";
    fail(store, key, 0).await;
    fail(store, key, 1).await;
    assert_eq!(fail(store, key, 900_001).await, None);
}

async fn once_locked_the_count_lasts_until_a_quiet_window(store: &impl CounterStore) {
    let key = "account:quiet";
    for at in 0..3 {
        fail(store, key, at).await;
    }
    // Past the first window, but failures kept coming: the doubling goes on.
    assert_eq!(
        fail(store, key, 899_000).await,
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        fail(store, key, 1_500_000).await,
        Some(Duration::from_secs(4))
    );
    // A whole window after the last lock ended, without a failure, starts over.
    assert_eq!(fail(store, key, 2_404_000).await, None);
}

async fn buckets_empty_and_refill(store: &impl CounterStore) {
    let bucket = Bucket {
        capacity: 2.0,
        per_second: 1.0,
    };
    let take = |at: i64| store.take("bucket:refill", bucket, at);
    assert_eq!(take(0).await.expect("answers"), Ok(()));
    assert_eq!(take(0).await.expect("answers"), Ok(()));
    assert_eq!(take(0).await.expect("answers"), Err(Duration::from_secs(1)));
    assert_eq!(
        take(500).await.expect("answers"),
        Err(Duration::from_millis(500))
    );
    assert_eq!(take(1_500).await.expect("answers"), Ok(()));
}

async fn keys_are_counted_apart(store: &impl CounterStore) {
    for at in 0..3 {
        fail(store, "account:one", at).await;
    }
    assert!(locked(store, "account:one", 3).await.is_some());
    assert_eq!(locked(store, "account:other", 3).await, None);
    assert_eq!(fail(store, "account:other", 3).await, None);
}

async fn a_prefix_clears_only_its_keys(store: &impl CounterStore) {
    // Glob characters in the prefix are literal.
    for key in ["pair:a*\u{1f}1", "pair:a*\u{1f}2", "pair:ab\u{1f}1"] {
        for at in 0..3 {
            fail(store, key, at).await;
        }
    }
    store
        .clear_prefix("pair:a*\u{1f}")
        .await
        .expect("the store answers");
    assert_eq!(locked(store, "pair:a*\u{1f}1", 3).await, None);
    assert_eq!(locked(store, "pair:a*\u{1f}2", 3).await, None);
    assert!(locked(store, "pair:ab\u{1f}1", 3).await.is_some());
}
