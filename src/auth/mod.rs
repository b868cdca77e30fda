//! Use-cases in domain words: register, log in, authenticate a bearer token,
//! import the origin's users. No axum, no SQL: input arrives as plain values,
//! is parsed into [`crate::domain`] types, and persistence goes through
//! [`crate::store::Store`].
//!
//! Rules kept here: login fails the same way, after the same work, for unknown
//! users, disabled users and wrong passwords; a token is only honoured while
//! its user exists and is enabled.

mod error;
mod hashing;
mod import;
mod keys;
mod login;
mod register;
mod tokens;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::PasswordPolicy;
use crate::store::{Store, UserRecord};

pub use error::{AuthError, FieldProblem};
pub use hashing::{
    HashingError, HashingParams, PasswordHasher, Verification, default_hash_concurrency, is_bcrypt,
};
pub use import::{ImportReport, SkippedRow, import_origin_users};
pub use keys::{KeyError, Keyring, PublicJwk};
pub use login::LoginOutcome;
pub use register::Registration;
pub use tokens::{AccessClaims, IssuedToken, LEEWAY_SECONDS, TokenError, TokenService};

/// An account as clients may see it: no hash, no internal flags.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for Account {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            created_at: user.created_at,
        }
    }
}

/// Everything the use-cases need, built once at start-up.
pub struct Auth {
    store: Store,
    hasher: PasswordHasher,
    tokens: TokenService,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
}

impl Auth {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        tokens: TokenService,
        clock: Arc<dyn Clock>,
        policy: PasswordPolicy,
    ) -> Self {
        Self {
            store,
            hasher,
            tokens,
            clock,
            policy,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// The account behind a bearer token, if the token verifies and the account is still enabled.
    pub async fn authenticate(&self, token: &str) -> Result<Account, AuthError> {
        let claims = self.tokens.verify(token).map_err(|error| {
            tracing::debug!(%error, "bearer token refused");
            AuthError::InvalidToken
        })?;
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| AuthError::InvalidToken)?;
        match self.store.find_user_by_id(user_id).await? {
            Some(user) if !user.disabled => Ok(Account::from(user)),
            _ => Err(AuthError::InvalidToken),
        }
    }
}
