//! What operators and the edge ask of the running service, in its own words:
//! readiness, the figures `/metrics` publishes, the published keys, what
//! discovery advertises, and a client's request budget. The edge reaches no
//! further into the use-cases than these.

use std::net::IpAddr;
use std::time::Duration;

use super::keys::PublicJwk;
use super::throttle::RouteGroup;
use super::{Auth, AuthError};
use crate::store::StoreError;

/// Longest `/ready` waits for the database.
const READINESS_WITHIN: Duration = Duration::from_millis(800);

/// Gauges and counters of this instance, at one moment.
#[derive(Debug, Clone, Copy)]
pub struct MetricsSnapshot {
    /// Redis is configured but unreachable, so limits are per instance.
    pub redis_degraded: bool,
    /// Requests refused by a rate limit or lockout since start.
    pub throttled_requests: u64,
    /// Requests waiting for a password-hashing thread now.
    pub hashing_waiting: usize,
    /// Revoked sessions whose access tokens may still be presented.
    pub revoked_sessions: usize,
}

/// What OpenID discovery describes.
#[derive(Debug, Clone)]
pub struct ProviderMetadata {
    pub issuer: String,
    /// The JWS algorithm tokens are signed with.
    pub signing_algorithm: &'static str,
}

impl Auth {
    /// Ready to serve: the database answers and its schema is current.
    /// Answers within [`READINESS_WITHIN`] whatever the database does, so a
    /// load balancer learns of an outage at once.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn readiness(&self) -> Result<(), AuthError> {
        let check = async {
            self.store.ping().await?;
            self.store.check_migrations().await
        };
        match tokio::time::timeout(READINESS_WITHIN, check).await {
            Ok(outcome) => outcome.map_err(AuthError::NotReady),
            Err(_) => Err(AuthError::NotReady(StoreError::NoAnswer)),
        }
    }

    /// Leaves the database tidy when the server stops (SQLite's log folded in).
    pub async fn shut_down(&self) {
        if let Err(error) = self.store.checkpoint().await {
            let error = crate::telemetry::error_chain(&error);
            tracing::warn!(%error, "could not checkpoint the database at shutdown");
        }
    }

    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            redis_degraded: self.throttle.is_degraded(),
            throttled_requests: self.throttle.refused(),
            hashing_waiting: self.hasher.waiting(),
            revoked_sessions: self.revoked.len(),
        }
    }

    /// The public halves of the signing keys (none with the origin's HS256 secret).
    pub fn public_keys(&self) -> Vec<PublicJwk> {
        self.tokens.keyring().public_keys().to_vec()
    }

    pub fn provider_metadata(&self) -> ProviderMetadata {
        ProviderMetadata {
            issuer: self.tokens.issuer().to_owned(),
            signing_algorithm: self.tokens.keyring().signing_algorithm(),
        }
    }

    /// Takes one request from the client's budget for `group`; `Err(wait)` when spent.
    pub async fn admit(&self, group: RouteGroup, client: Option<IpAddr>) -> Result<(), Duration> {
        self.throttle.admit(group, client).await
    }
}
