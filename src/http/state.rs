//! What every handler can reach.

use std::sync::Arc;

use crate::auth::Auth;

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Auth>,
}
