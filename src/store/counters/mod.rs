//! Counters for throttling: token buckets and failure counts with lockouts.
//!
//! They live in memory by default, or in Redis when a URL is configured, so
//! every instance enforces one limit. Each Redis operation is one Lua script,
//! hence atomic. If Redis stops answering, the counters fall back to memory
//! (logged, and visible in `/metrics`) and go back to Redis by themselves once
//! a background probe sees it answer again.
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
}

/// Where the counters are kept, with the fallback from Redis to memory.
pub struct Counters {
    memory: MemoryCounters,
    redis: Option<RedisCounters>,
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
        if let Some(redis) = self.healthy_redis() {
            match redis.take(key, bucket, now_ms).await {
                Ok(result) => return result,
                Err(error) => self.degrade(&error),
            }
        }
        self.memory.take_now(key, bucket, now_ms)
    }

    /// Counts a failure; returns the lock it started, if any.
    pub async fn fail(&self, key: &str, rule: FailureRule, now_ms: i64) -> Option<Duration> {
        if let Some(redis) = self.healthy_redis() {
            match redis.fail(key, rule, now_ms).await {
                Ok(result) => return result,
                Err(error) => self.degrade(&error),
            }
        }
        self.memory.fail_now(key, rule, now_ms)
    }

    /// How long the key stays locked, if it is.
    pub async fn locked(&self, key: &str, now_ms: i64) -> Option<Duration> {
        if let Some(redis) = self.healthy_redis() {
            match redis.locked(key, now_ms).await {
                Ok(result) => return result,
                Err(error) => self.degrade(&error),
            }
        }
        self.memory.locked_now(key, now_ms)
    }

    pub async fn clear(&self, key: &str) {
        self.memory.clear_now(key);
        if let Some(redis) = self.healthy_redis()
            && let Err(error) = redis.clear(key).await
        {
            self.degrade(&error);
        }
    }

    fn healthy_redis(&self) -> Option<&RedisCounters> {
        self.redis.as_ref().filter(|_| !self.is_degraded())
    }

    fn degrade(&self, error: &CounterError) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %crate::telemetry::error_chain(error), "Redis is unreachable: rate limits fall back to this instance's memory");
        }
    }
}
