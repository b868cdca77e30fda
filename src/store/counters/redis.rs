//! Counters in Redis: one Lua script per operation, so each is atomic across
//! every instance sharing the server. Keys carry a configurable prefix and expire
//! on their own once they hold nothing worth keeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{Bucket, CounterError, CounterStore, FailureRule};

/// Longest wait for one Redis answer before falling back to memory.
const ANSWER_WITHIN: Duration = Duration::from_millis(250);
/// How often a fallen-back instance checks whether Redis answers again.
const PROBE_EVERY: Duration = Duration::from_millis(500);

const TAKE: &str = r"
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_ms)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / per_ms) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_ms) + 1000)
return wait
";

const EXTEND_LOCK: &str = r"
local lock_end = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local held = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
if lock_end > held then
  redis.call('HSET', KEYS[1], 'until', lock_end)
  if redis.call('PTTL', KEYS[1]) < lock_end - now then
    redis.call('PEXPIRE', KEYS[1], lock_end - now + 1000)
  end
end
return 0
";

const FAIL: &str = r"
local window = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'failures', 'since', 'last', 'until')
local failures = tonumber(state[1]) or 0
local since = tonumber(state[2]) or now
local last = tonumber(state[3]) or now
local locked_until = tonumber(state[4]) or 0
local counted_from = since
if failures >= threshold then counted_from = math.max(last, locked_until) end
if now - counted_from >= window then failures = 0; since = now end
failures = failures + 1
local lock = 0
if failures >= threshold then
  lock = math.min(base * 2 ^ math.min(failures - threshold, 40), cap)
  redis.call('HSET', KEYS[1], 'until', now + lock)
end
redis.call('HSET', KEYS[1], 'failures', failures, 'since', since, 'last', now)
redis.call('PEXPIRE', KEYS[1], lock + window + 1000)
return lock
";

#[derive(Clone)]
pub struct RedisCounters {
    connection: ConnectionManager,
    prefix: String,
    take: Arc<Script>,
    fail: Arc<Script>,
    extend_lock: Arc<Script>,
}

impl RedisCounters {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CounterError> {
        let client = redis::Client::open(url).map_err(CounterError::InvalidUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(ANSWER_WITHIN))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(CounterError::Redis)?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            take: Arc::new(Script::new(TAKE)),
            fail: Arc::new(Script::new(FAIL)),
            extend_lock: Arc::new(Script::new(EXTEND_LOCK)),
        })
    }

    /// Makes sure `key` is locked until at least `until_ms` (a lock set
    /// while Redis was unreachable); a longer lock already held stays.
    pub async fn extend_lock(
        &self,
        key: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<(), CounterError> {
        if until_ms <= now_ms {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        let mut invocation = self.extend_lock.key(self.prefixed(key));
        invocation.arg(until_ms).arg(now_ms);
        answer::<i64>(invocation.invoke_async(&mut connection))
            .await
            .map(drop)
    }

    fn prefixed(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Watches Redis: clears `degraded` once it answers again, and sets it
    /// when a first ping fails (so a server started during an outage knows).
    pub fn spawn_probe(&self, degraded: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        let mut connection = self.connection.clone();
        tokio::spawn(async move {
            loop {
                let answered = answer::<String>(redis::cmd("PING").query_async(&mut connection))
                    .await
                    .is_ok();
                match (answered, degraded.load(Ordering::Relaxed)) {
                    (true, true) => {
                        degraded.store(false, Ordering::Relaxed);
                        tracing::info!(
                            "Redis answers again: rate limits are shared across instances"
                        );
                    }
                    (false, false) => {
                        degraded.store(true, Ordering::Relaxed);
                        tracing::warn!(
                            "Redis is unreachable: rate limits fall back to this instance's memory"
                        );
                    }
                    _ => {}
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
        })
    }
}

impl CounterStore for RedisCounters {
    async fn take(
        &self,
        key: &str,
        bucket: Bucket,
        now_ms: i64,
    ) -> Result<Result<(), Duration>, CounterError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.take.key(self.prefixed(key));
        invocation
            .arg(bucket.capacity)
            .arg(bucket.per_second / 1000.0)
            .arg(now_ms);
        let wait_ms: i64 = answer(invocation.invoke_async(&mut connection)).await?;
        Ok(if wait_ms <= 0 {
            Ok(())
        } else {
            Err(Duration::from_millis(wait_ms as u64))
        })
    }

    async fn fail(
        &self,
        key: &str,
        rule: FailureRule,
        now_ms: i64,
    ) -> Result<Option<Duration>, CounterError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.fail.key(self.prefixed(key));
        invocation
            .arg(rule.window_ms)
            .arg(rule.threshold)
            .arg(rule.base_ms)
            .arg(rule.cap_ms)
            .arg(now_ms);
        let lock_ms: i64 = answer(invocation.invoke_async(&mut connection)).await?;
        Ok((lock_ms > 0).then(|| Duration::from_millis(lock_ms as u64)))
    }

    async fn locked(&self, key: &str, now_ms: i64) -> Result<Option<Duration>, CounterError> {
        let mut connection = self.connection.clone();
        let until: Option<i64> = answer(connection.hget(self.prefixed(key), "until")).await?;
        Ok(until
            .filter(|until| *until > now_ms)
            .map(|until| Duration::from_millis((until - now_ms) as u64)))
    }

    async fn clear(&self, key: &str) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        answer::<()>(connection.del(self.prefixed(key))).await
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<(), CounterError> {
        // SCAN's MATCH is a glob: the literal part is escaped.
        let mut pattern = String::new();
        for c in self.prefixed(prefix).chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let mut connection = self.connection.clone();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = answer(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut connection),
            )
            .await?;
            if !keys.is_empty() {
                answer::<()>(connection.del(keys)).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

async fn answer<T>(
    request: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, CounterError> {
    match tokio::time::timeout(ANSWER_WITHIN, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(CounterError::Redis(error)),
        Err(_) => Err(CounterError::NoAnswer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the Redis named by `LATCHKEY_TEST_REDIS_URL` (default: the
    /// local one); a Redis that cannot be reached fails this test.
    #[tokio::test]
    async fn redis_keeps_the_counter_rule() {
        let url = std::env::var("LATCHKEY_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!("latchkey-conformance-{}:", uuid::Uuid::now_v7().simple());
        let store = RedisCounters::connect(&url, &prefix)
            .await
            .expect("Redis URL");
        super::super::conformance::keeps_the_rule(&store).await;
    }
}
