//! Counters in this process's memory, bounded in size.
//!
//! Token buckets and failure counts live in separate tables, so a flood of
//! cheap requests (each new client address makes a bucket) cannot push out
//! the lockouts that failed logins, each costing a hash, have built up. A
//! full table never stops counting: it evicts its least valuable entries
//! (unlocked before locked, then the soonest to expire) to make room.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{Bucket, CounterError, CounterStore, FailureRule};

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    tokens: f64,
    refilled_at_ms: i64,
    failures: u32,
    window_start_ms: i64,
    last_failure_ms: i64,
    locked_until_ms: i64,
    /// After this, the entry holds nothing worth keeping.
    expires_at_ms: i64,
}

/// Each table holds at most `max_keys` entries.
pub struct MemoryCounters {
    buckets: Table,
    failures: Table,
}

impl MemoryCounters {
    pub fn new(max_keys: usize) -> Self {
        Self {
            buckets: Table::new(max_keys),
            failures: Table::new(max_keys),
        }
    }

    pub fn take_now(&self, key: &str, bucket: Bucket, now_ms: i64) -> Result<(), Duration> {
        let refill_ms = (bucket.capacity / bucket.per_second * 1000.0).ceil() as i64;
        self.buckets.with_entry(key, now_ms, |entry, fresh| {
            if fresh {
                entry.tokens = bucket.capacity;
                entry.refilled_at_ms = now_ms;
            }
            let elapsed = (now_ms - entry.refilled_at_ms).max(0) as f64 / 1000.0;
            entry.tokens = (entry.tokens + elapsed * bucket.per_second).min(bucket.capacity);
            entry.refilled_at_ms = now_ms;
            entry.expires_at_ms = entry.expires_at_ms.max(now_ms + refill_ms);
            if entry.tokens >= 1.0 {
                entry.tokens -= 1.0;
                Ok(())
            } else {
                Err(Duration::from_secs_f64(
                    (1.0 - entry.tokens) / bucket.per_second,
                ))
            }
        })
    }

    pub fn fail_now(&self, key: &str, rule: FailureRule, now_ms: i64) -> Option<Duration> {
        self.failures.with_entry(key, now_ms, |entry, _| {
            if window_over(entry, rule, now_ms) {
                entry.failures = 0;
                entry.window_start_ms = now_ms;
            }
            entry.failures += 1;
            entry.last_failure_ms = now_ms;
            entry.expires_at_ms = entry.expires_at_ms.max(now_ms + rule.window_ms);
            let lock_ms = lock_for(entry.failures, rule)?;
            entry.locked_until_ms = now_ms + lock_ms;
            // The count outlives the lock by a window (see `window_over`).
            entry.expires_at_ms = entry
                .expires_at_ms
                .max(entry.locked_until_ms + rule.window_ms);
            Some(Duration::from_millis(lock_ms as u64))
        })
    }

    pub fn locked_now(&self, key: &str, now_ms: i64) -> Option<Duration> {
        let entries = self.failures.lock();
        let until = entries.get(key)?.locked_until_ms;
        (until > now_ms).then(|| Duration::from_millis((until - now_ms) as u64))
    }

    /// Keeps a lock learnt elsewhere (from Redis) until `until_ms`, so it
    /// holds here while Redis cannot be asked; a longer lock already known wins.
    pub fn remember_lock(&self, key: &str, until_ms: i64, now_ms: i64) {
        self.failures.with_entry(key, now_ms, |entry, _| {
            entry.locked_until_ms = entry.locked_until_ms.max(until_ms);
            entry.expires_at_ms = entry.expires_at_ms.max(until_ms);
        });
    }

    /// Keys locked at `now_ms` and when their locks end, longest first, at most `limit`.
    pub fn active_locks(&self, now_ms: i64, limit: usize) -> Vec<(String, i64)> {
        let mut locks: Vec<(String, i64)> = self
            .failures
            .lock()
            .iter()
            .filter(|(_, entry)| entry.locked_until_ms > now_ms)
            .map(|(key, entry)| (key.clone(), entry.locked_until_ms))
            .collect();
        locks.sort_unstable_by_key(|(_, until)| std::cmp::Reverse(*until));
        locks.truncate(limit);
        locks
    }

    pub fn clear_now(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

/// The memory tables never fail: each answer is immediate.
impl CounterStore for MemoryCounters {
    async fn take(
        &self,
        key: &str,
        bucket: Bucket,
        now_ms: i64,
    ) -> Result<Result<(), Duration>, CounterError> {
        Ok(self.take_now(key, bucket, now_ms))
    }

    async fn fail(
        &self,
        key: &str,
        rule: FailureRule,
        now_ms: i64,
    ) -> Result<Option<Duration>, CounterError> {
        Ok(self.fail_now(key, rule, now_ms))
    }

    async fn locked(&self, key: &str, now_ms: i64) -> Result<Option<Duration>, CounterError> {
        Ok(self.locked_now(key, now_ms))
    }

    async fn clear(&self, key: &str) -> Result<(), CounterError> {
        self.clear_now(key);
        Ok(())
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<(), CounterError> {
        self.failures
            .lock()
            .retain(|key, _| !key.starts_with(prefix));
        Ok(())
    }
}

struct Table {
    entries: Mutex<HashMap<String, Entry>>,
    max_keys: usize,
}

impl Table {
    fn new(max_keys: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    /// Entries are only ever replaced whole, so a poisoned lock still holds consistent data.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `update` on the key's entry (`fresh` when just created), making
    /// room first when the table is full.
    fn with_entry<T>(
        &self,
        key: &str,
        now_ms: i64,
        update: impl FnOnce(&mut Entry, bool) -> T,
    ) -> T {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(key) {
            let expired = entry.expires_at_ms <= now_ms;
            if expired {
                *entry = Entry::default();
            }
            return update(entry, expired);
        }
        if entries.len() >= self.max_keys {
            make_room(&mut entries, self.max_keys, now_ms);
        }
        let entry = entries.entry(key.to_owned()).or_default();
        update(entry, true)
    }
}

/// Drops expired entries; if that frees less than an eighth of the table,
/// also the least valuable ones up to that eighth, so that the scan is paid
/// once per many insertions rather than on each one.
fn make_room(entries: &mut HashMap<String, Entry>, max_keys: usize, now_ms: i64) {
    entries.retain(|_, entry| entry.expires_at_ms > now_ms);
    let target = max_keys - (max_keys / 8).max(1);
    if entries.len() <= target {
        return;
    }
    let mut ranks: Vec<(bool, i64)> = entries
        .values()
        .map(|entry| (entry.locked_until_ms > now_ms, entry.expires_at_ms))
        .collect();
    let excess = entries.len() - target;
    let (_, cutoff, _) = ranks.select_nth_unstable(excess - 1);
    let cutoff = *cutoff;
    let mut evicted = 0;
    entries.retain(|_, entry| {
        let rank = (entry.locked_until_ms > now_ms, entry.expires_at_ms);
        let evict = rank <= cutoff && evicted < excess;
        evicted += usize::from(evict);
        !evict
    });
}

/// Below the threshold, failures count in a fixed window from the first one;
/// once locked, the count (and so the doubling) lasts until a whole window
/// passes, after the lock ends, without a failure.
fn window_over(entry: &Entry, rule: FailureRule, now_ms: i64) -> bool {
    let since = if entry.failures >= rule.threshold {
        entry.last_failure_ms.max(entry.locked_until_ms)
    } else {
        entry.window_start_ms
    };
    now_ms - since >= rule.window_ms
}

/// The lock a failure count earns: none below the threshold, then doubling up to the cap.
pub(super) fn lock_for(failures: u32, rule: FailureRule) -> Option<i64> {
    let extra = failures.checked_sub(rule.threshold)?;
    let doubled = rule.base_ms.saturating_mul(1_i64 << extra.min(40));
    Some(doubled.min(rule.cap_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: FailureRule = super::super::conformance::RULE;

    #[tokio::test]
    async fn memory_keeps_the_counter_rule() {
        super::super::conformance::keeps_the_rule(&MemoryCounters::new(10)).await;
    }

    const SLOW: Bucket = Bucket {
        capacity: 1.0,
        per_second: 0.001,
    };

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let counters = MemoryCounters::new(100);
        for n in 0..10_000 {
            let _ = counters.take_now(&format!("flood-{n}"), SLOW, 0);
        }
        assert!(counters.buckets.lock().len() <= 100);
    }

    #[test]
    fn a_full_table_still_counts_new_keys() {
        let counters = MemoryCounters::new(100);
        for n in 0..1_000 {
            let _ = counters.take_now(&format!("flood-{n}"), SLOW, 0);
        }
        assert!(counters.take_now("newcomer", SLOW, 0).is_ok());
        assert!(counters.take_now("newcomer", SLOW, 0).is_err());
    }

    /// A table of 100 keys in which "victim" is locked.
    fn with_a_locked_victim() -> MemoryCounters {
        let counters = MemoryCounters::new(100);
        for at in 0..3 {
            counters.fail_now("victim", RULE, at);
        }
        counters
    }

    #[test]
    fn a_bucket_flood_cannot_push_out_a_lockout() {
        let counters = with_a_locked_victim();
        for n in 0..10_000 {
            let _ = counters.take_now(&format!("flood-{n}"), SLOW, 10);
        }
        assert!(counters.locked_now("victim", 10).is_some());
    }

    #[test]
    fn a_failure_flood_evicts_unlocked_counts_before_locks() {
        let counters = with_a_locked_victim();
        for n in 0..10_000 {
            counters.fail_now(&format!("stranger-{n}"), RULE, 10);
        }
        assert!(counters.locked_now("victim", 10).is_some());
        assert!(counters.failures.lock().len() <= 100);
    }
}
