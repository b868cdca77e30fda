//! Counters for throttling: token buckets and failure counts with lockouts.
//!
//! They live in memory by default, or in Redis when a URL is configured, so
//! every instance enforces one limit. Each Redis operation is one Lua script,
//! hence atomic. If Redis stops answering, the counters fall back to memory
//! (logged, and visible in `/metrics`) and go back to Redis by themselves once
//! a background probe sees it answer again.
//!
//! Locks survive an outage both ways: every lock read from or set in Redis is
//! also remembered in memory, so it is still enforced while Redis is down,
//! and when Redis answers again every lock memory holds (set during the
//! outage, or learnt before it and perhaps lost by a Redis restarted without
//! persistence) is written to it.
//!
//! Both keep one rule, stated by [`CounterStore`]: the Redis scripts restate
//! in Lua what the memory tables do in Rust, and one conformance suite
//! (`conformance`) runs against both so they cannot drift.

#[cfg(test)]
mod conformance;
mod memory;
mod redis;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use self::memory::MemoryCounters;
pub use self::redis::RedisCounters;

/// A token bucket: `capacity` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub capacity: f64,
    pub per_second: f64,
}

/// Failures counted in a fixed window; from `threshold` failures on, each one
/// locks the key for `base` doubled per extra failure, at most `cap`.
#[derive(Debug, Clone, Copy)]
pub struct FailureRule {
    pub window_ms: i64,
    pub threshold: u32,
    pub base_ms: i64,
    pub cap_ms: i64,
}

/// A counter store could not answer; only Redis can fail.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] ::redis::RedisError),
    #[error("Redis refused the request")]
    Redis(#[source] ::redis::RedisError),
    #[error("Redis gave no answer in time")]
    NoAnswer,
}

/// The throttling rule, as every store keeps it. Times are milliseconds on
/// the caller's clock, so stores never read a clock of their own.
pub trait CounterStore: Send + Sync {
    /// Takes a token; `Ok(Err(wait))` when the bucket is empty.
    fn take(
        &self,
        key: &str,
        bucket: Bucket,
        now_ms: i64,
    ) -> impl Future<Output = Result<Result<(), Duration>, CounterError>> + Send;

    /// Counts a failure; returns the lock it started, if any.
    fn fail(
        &self,
        key: &str,
        rule: FailureRule,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<Duration>, CounterError>> + Send;

    /// How long the key stays locked, if it is.
    fn locked(
        &self,
        key: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<Duration>, CounterError>> + Send;

    /// Forgets a key's failures and lock.
    fn clear(&self, key: &str) -> impl Future<Output = Result<(), CounterError>> + Send;

    /// Forgets the failures and locks of every key starting with `prefix`.
    fn clear_prefix(&self, prefix: &str) -> impl Future<Output = Result<(), CounterError>> + Send;
}

/// Most locks written back to Redis after an outage (the longest-lasting first).
const MAX_WRITTEN_BACK: usize = 10_000;

/// Where the counters are kept, with the fallback from Redis to memory.
pub struct Counters {
    memory: MemoryCounters,
    redis: Option<RedisCounters>,
    /// Set while counting in memory with Redis configured: once Redis
    /// answers again, the locks memory holds are written to it.
    write_back_pending: AtomicBool,
    degraded: Arc<AtomicBool>,
    probe: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Counters {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.take() {
            probe.abort();
        }
    }
}

impl Counters {
    pub fn in_memory(max_keys: usize) -> Self {
        Self {
            memory: MemoryCounters::new(max_keys),
            redis: None,
            write_back_pending: AtomicBool::new(false),
            degraded: Arc::new(AtomicBool::new(false)),
            probe: None,
        }
    }

    /// Counters in Redis; starts even if Redis is down (then in memory until it answers).
    pub async fn with_redis(
        url: &str,
        prefix: &str,
        max_keys: usize,
    ) -> Result<Self, CounterError> {
        let redis = RedisCounters::connect(url, prefix).await?;
        let degraded = Arc::new(AtomicBool::new(false));
        let probe = redis.spawn_probe(Arc::clone(&degraded));
        Ok(Self {
            memory: MemoryCounters::new(max_keys),
            redis: Some(redis),
            write_back_pending: AtomicBool::new(false),
            degraded,
            probe: Some(probe),
        })
    }

    /// Whether Redis is configured but not answering, so limits are per instance.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Takes a token; `Err(wait)` when the bucket is empty.
    pub async fn take(&self, key: &str, bucket: Bucket, now_ms: i64) -> Result<(), Duration> {
        if let Some(redis) = self.healthy_redis(now_ms).await {
            match redis.take(key, bucket, now_ms).await {
                Ok(result) => return result,
                Err(error) => self.degrade(&error),
            }
        }
        self.memory.take_now(key, bucket, now_ms)
    }

    /// Counts a failure; returns the lock it started, if any.
    pub async fn fail(&self, key: &str, rule: FailureRule, now_ms: i64) -> Option<Duration> {
        if let Some(redis) = self.healthy_redis(now_ms).await {
            match redis.fail(key, rule, now_ms).await {
                Ok(lock) => return self.remembered(key, lock, now_ms),
                Err(error) => self.degrade(&error),
            }
        }
        self.counting_locally();
        self.memory.fail_now(key, rule, now_ms)
    }

    /// How long the key stays locked, if it is.
    pub async fn locked(&self, key: &str, now_ms: i64) -> Option<Duration> {
        if let Some(redis) = self.healthy_redis(now_ms).await {
            match redis.locked(key, now_ms).await {
                Ok(lock) => return self.remembered(key, lock, now_ms),
                Err(error) => self.degrade(&error),
            }
        }
        self.counting_locally();
        self.memory.locked_now(key, now_ms)
    }

    /// A lock Redis reported, kept in memory too for an outage to come.
    fn remembered(&self, key: &str, lock: Option<Duration>, now_ms: i64) -> Option<Duration> {
        if let Some(lock) = lock {
            self.memory
                .remember_lock(key, now_ms + lock.as_millis() as i64, now_ms);
        }
        lock
    }

    /// Notes that memory is standing in for a configured Redis.
    fn counting_locally(&self) {
        if self.redis.is_some() {
            self.write_back_pending.store(true, Ordering::Relaxed);
        }
    }

    /// Writes every lock memory holds (those learnt from Redis before the
    /// outage, which a restarted Redis may have lost, and those set during
    /// it) to Redis, now that it answers; a longer lock there stays.
    async fn write_back_locks(&self, redis: &RedisCounters, now_ms: i64) {
        let locks = self.memory.active_locks(now_ms, MAX_WRITTEN_BACK);
        for (key, until_ms) in &locks {
            if let Err(error) = redis.extend_lock(key, *until_ms, now_ms).await {
                self.write_back_pending.store(true, Ordering::Relaxed);
                self.degrade(&error);
                return;
            }
        }
        if !locks.is_empty() {
            tracing::info!(
                locks = locks.len(),
                "locks held during the Redis outage written back"
            );
        }
    }

    pub async fn clear(&self, key: &str, now_ms: i64) {
        self.memory.clear_now(key);
        if let Some(redis) = self.healthy_redis(now_ms).await
            && let Err(error) = redis.clear(key).await
        {
            self.degrade(&error);
        }
    }

    pub async fn clear_prefix(&self, prefix: &str, now_ms: i64) {
        // Memory too: it holds what was counted during a Redis outage.
        let _ = self.memory.clear_prefix(prefix).await;
        if let Some(redis) = self.healthy_redis(now_ms).await
            && let Err(error) = redis.clear_prefix(prefix).await
        {
            self.degrade(&error);
        }
    }

    /// Redis, when configured and answering; first writes back what an
    /// outage left to write.
    async fn healthy_redis(&self, now_ms: i64) -> Option<&RedisCounters> {
        let redis = self.redis.as_ref().filter(|_| !self.is_degraded())?;
        if self.write_back_pending.swap(false, Ordering::Relaxed) {
            self.write_back_locks(redis, now_ms).await;
        }
        Some(redis).filter(|_| !self.is_degraded())
    }

    fn degrade(&self, error: &CounterError) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %crate::telemetry::error_chain(error), "Redis is unreachable: rate limits fall back to this instance's memory");
        }
    }
}
