//! What operators and the edge ask of the running service, in its own words:
//! readiness, the figures `/metrics` publishes, the published keys, what
//! discovery advertises, and a client's request budget. The edge reaches no
//! further into the use-cases than these.

use std::net::IpAddr;
use std::time::Duration;

use super::keys::PublicJwk;
use super::throttle::RouteGroup;
use super::{Auth, AuthError};
use crate::metrics::{Metrics, Snapshot};
use crate::store::StoreError;

/// Longest `/ready` waits for the database.
const READINESS_WITHIN: Duration = Duration::from_millis(800);

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

    /// The metrics of this instance in the Prometheus text format, gauges
    /// read now. The outbox is counted within [`READINESS_WITHIN`], or left out.
    pub async fn metrics_text(&self) -> String {
        let (pool_in_use, pool_idle) = self.store.pool_connections().unzip();
        let backlog = tokio::time::timeout(READINESS_WITHIN, self.store.outbox_backlog())
            .await
            .ok()
            .and_then(Result::ok);
        let now = self.clock.now();
        let snapshot = Snapshot {
            pool_in_use,
            pool_idle,
            revocation_snapshot_age: self.revoked.age(),
            outbox_depth: backlog.map(|(waiting, _)| waiting),
            outbox_oldest_age: backlog
                .and_then(|(_, oldest)| oldest)
                .and_then(|oldest| (now - oldest).to_std().ok()),
            hashing_waiting: self.hasher.waiting() as u64,
            revoked_sessions: self.revoked.len() as u64,
            throttled_requests: self.throttle.refused(),
            redis_degraded: self.throttle.is_degraded(),
        };
        self.metrics.render(&snapshot)
    }

    /// Where requests and logins are counted.
    pub fn metrics(&self) -> &std::sync::Arc<Metrics> {
        &self.metrics
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
