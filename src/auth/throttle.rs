//! Abuse protection rules: lockouts after failed logins, a cap on failed
//! logins per client across all accounts, and token buckets per client and
//! route group.
//!
//! Failed logins lock an account *for the client that failed*: one address
//! polling an account keeps only itself out, never the owner elsewhere. The
//! whole account locks only when failures from many clients add up to the
//! account-wide threshold (a distributed guessing campaign). The counters themselves live in
//! [`crate::store::counters`] (memory or Redis).
//!
//! Locks are always temporary, grow exponentially to a cap, and are cleared
//! by a successful login. A throttled login is answered before any password
//! work, identically for right and wrong passwords and for unknown accounts.
//!
//! A client is an IPv4 address or an IPv6 /64: one host can pick any address
//! of its /64, so counting single IPv6 addresses would give it endless budgets.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::store::counters::{Bucket, Counters, FailureRule};

/// Which per-client budget a route draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteGroup {
    /// Password logins (`/login`, `/oauth/token` with the password grant).
    Login,
    Register,
    /// Refresh-token exchanges.
    Refresh,
    /// Every other unauthenticated route that does work (revocation, introspection).
    Other,
}

impl RouteGroup {
    fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
            Self::Refresh => "refresh",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// `false` turns every throttle off (benchmarks, trusted internal deployments).
    pub enabled: bool,
    /// Failures of one client against one account.
    pub account_failures: FailureRule,
    /// Failures against one account from every client together.
    pub account_wide_failures: FailureRule,
    pub client_failures: FailureRule,
    pub login: Bucket,
    pub register: Bucket,
    pub refresh: Bucket,
    pub other: Bucket,
    /// Requests that send email, per client.
    pub email: Bucket,
    /// Requests that send email, per address.
    pub email_per_address: Bucket,
}

pub struct Throttle {
    counters: Counters,
    policy: ThrottlePolicy,
    clock: Arc<dyn Clock>,
    refused: AtomicU64,
}

impl Throttle {
    pub fn new(counters: Counters, policy: ThrottlePolicy, clock: Arc<dyn Clock>) -> Self {
        Self {
            counters,
            policy,
            clock,
            refused: AtomicU64::new(0),
        }
    }

    /// Redis is configured but unreachable: counting locally meanwhile.
    pub fn is_degraded(&self) -> bool {
        self.counters.is_degraded()
    }

    /// Requests refused by a throttle since start, for `/metrics`.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn count_refusal<T>(&self, outcome: T, refused: bool) -> T {
        if refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    /// Takes one request from the client's budget for the route group; `Err(wait)` when spent.
    pub async fn admit(&self, group: RouteGroup, client: Option<IpAddr>) -> Result<(), Duration> {
        if !self.policy.enabled {
            return Ok(());
        }
        let bucket = match group {
            RouteGroup::Login => self.policy.login,
            RouteGroup::Register => self.policy.register,
            RouteGroup::Refresh => self.policy.refresh,
            RouteGroup::Other => self.policy.other,
        };
        let key = format!("bucket:{}:{}", group.name(), client_unit(client));
        let outcome = self.counters.take(&key, bucket, self.now_ms()).await;
        let refused = outcome.is_err();
        self.count_refusal(outcome, refused)
    }

    /// Takes one request that sends email from the client's budget and from
    /// the address's (counted whether or not an account has it).
    pub async fn admit_email(&self, address: &str, client: Option<IpAddr>) -> Result<(), Duration> {
        if !self.policy.enabled {
            return Ok(());
        }
        let now = self.now_ms();
        let by_client = format!("bucket:email:{}", client_unit(client));
        let outcome = match self.counters.take(&by_client, self.policy.email, now).await {
            Ok(()) => {
                let by_address = format!("bucket:email-address:{address}");
                self.counters
                    .take(&by_address, self.policy.email_per_address, now)
                    .await
            }
            refused => refused,
        };
        let refused = outcome.is_err();
        self.count_refusal(outcome, refused)
    }

    /// A password reset proved the owner: the account-wide lock and this
    /// client's lock on the account end.
    pub async fn clear_lockout(&self, account: &str, client: Option<IpAddr>) {
        if self.policy.enabled {
            let now = self.now_ms();
            self.counters.clear(&account_key(account), now).await;
            self.counters
                .clear(&account_client_key(account, client), now)
                .await;
        }
    }

    /// An operator's unlock: the account-wide lock and every client's lock
    /// on the account end.
    pub async fn unlock(&self, account: &str) {
        if self.policy.enabled {
            let now = self.now_ms();
            self.counters.clear(&account_key(account), now).await;
            self.counters
                .clear_prefix(&account_clients_prefix(account), now)
                .await;
        }
    }

    /// How long logins for this account, or from this client, are refused.
    pub async fn login_blocked(&self, account: &str, client: Option<IpAddr>) -> Option<Duration> {
        if !self.policy.enabled {
            return None;
        }
        let now = self.now_ms();
        let pair_wait = self
            .counters
            .locked(&account_client_key(account, client), now)
            .await;
        let account_wait = self.counters.locked(&account_key(account), now).await;
        let client_wait = match client {
            Some(client) => self.counters.locked(&client_key(Some(client)), now).await,
            None => None,
        };
        let wait = pair_wait.max(account_wait).max(client_wait);
        self.count_refusal(wait, wait.is_some())
    }

    /// Counts a failed login; returns the lock it started for this client on
    /// this account (or for the whole account), if any.
    pub async fn login_failed(&self, account: &str, client: Option<IpAddr>) -> Option<Duration> {
        if !self.policy.enabled {
            return None;
        }
        let now = self.now_ms();
        if let Some(client) = client {
            self.counters
                .fail(&client_key(Some(client)), self.policy.client_failures, now)
                .await;
        }
        let pair_lock = self
            .counters
            .fail(
                &account_client_key(account, client),
                self.policy.account_failures,
                now,
            )
            .await;
        let account_lock = self
            .counters
            .fail(
                &account_key(account),
                self.policy.account_wide_failures,
                now,
            )
            .await;
        pair_lock.max(account_lock)
    }

    /// The right password from this client: its count on the account starts over.
    pub async fn login_succeeded(&self, account: &str, client: Option<IpAddr>) {
        if self.policy.enabled {
            self.counters
                .clear(&account_client_key(account, client), self.now_ms())
                .await;
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }
}

fn account_key(account: &str) -> String {
    format!("account:{account}")
}

/// The account first, then a separator no login name holds (control
/// characters are refused everywhere), so every client's lock on one account
/// shares a prefix.
fn account_client_key(account: &str, client: Option<IpAddr>) -> String {
    format!("{}{}", account_clients_prefix(account), client_unit(client))
}

fn account_clients_prefix(account: &str) -> String {
    format!("account-client:{account}\u{1f}")
}

fn client_key(client: Option<IpAddr>) -> String {
    format!("client-failures:{}", client_unit(client))
}

/// What a client is counted as: IPv6 addresses by their /64, IPv4 ones
/// alone; a request without a peer address (only in-process) as `unknown`.
fn client_unit(client: Option<IpAddr>) -> String {
    match client {
        Some(IpAddr::V6(address)) if address.to_ipv4_mapped().is_none() => {
            let [a, b, c, d, ..] = address.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        Some(address) => address.to_string(),
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::client_unit;

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_ipv4_ones_alone() {
        let unit = |address: &str| client_unit(Some(address.parse().unwrap()));
        assert_eq!(unit("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            unit("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(unit("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(unit("203.0.113.7"), "203.0.113.7");
        assert_eq!(unit("::ffff:203.0.113.7"), "::ffff:203.0.113.7");
        assert_eq!(client_unit(None), "unknown");
    }
}
