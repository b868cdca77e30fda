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
}
