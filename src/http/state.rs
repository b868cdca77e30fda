//! What every handler can reach.

use std::sync::Arc;

use super::TrustedProxies;
use crate::auth::Auth;

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Auth>,
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Origins allowed to call from a browser (`Origin` values, exact).
    pub cors_origins: Arc<Vec<axum::http::HeaderValue>>,
    /// Set when a stop was asked for: readiness answers 503 while requests
    /// are still served, so load balancers move traffic away first.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// The bearer token `/metrics` requires, if one is configured.
    pub metrics_token: Option<Arc<secrecy::SecretString>>,
    /// Branding and text of the hosted pages.
    pub ui: Arc<super::pages::Ui>,
}
