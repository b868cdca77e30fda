//! The bearer path, kept free of database reads: a token's signature and
//! claims are verified once and remembered (keyed by the whole token) until
//! it expires; every request still checks expiry and the in-memory
//! revocations (revoked sessions and disabled users, both reloaded from the
//! database).
//!
//! The memory is a bounded concurrent cache (quick_cache, randomly keyed
//! hashing): when full it evicts its coldest entries, not all of them, and an
//! entry past its token's `exp` is dropped on its next lookup.

use std::sync::Arc;

use quick_cache::sync::Cache;
use uuid::Uuid;

use super::{Account, Auth, AuthError, LEEWAY_SECONDS, Principal};

/// Most verified tokens remembered at once (about 600 bytes each).
const CAPACITY: usize = 10_000;

#[derive(Clone)]
struct Verified {
    user_id: Uuid,
    session_id: Uuid,
    username: Arc<str>,
    exp: i64,
    /// Issued to a third-party client through `/authorize`: good for
    /// `/userinfo` and the client's own resource servers, never for
    /// latchkey's account and admin API.
    third_party: bool,
}

pub(crate) struct VerifiedTokens {
    entries: Cache<Box<str>, Verified>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self {
            entries: Cache::new(CAPACITY),
        }
    }
}

impl VerifiedTokens {
    /// The remembered verification of `token`, unless its token has expired
    /// (then it is forgotten).
    fn get(&self, token: &str, now: i64) -> Option<Verified> {
        let verified = self.entries.get(token)?;
        if verified.exp > now - LEEWAY_SECONDS {
            return Some(verified);
        }
        self.entries.remove(token);
        None
    }

    /// Forgets every verified token; the next request of each verifies again.
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    fn insert(&self, token: &str, verified: Verified) {
        self.entries.insert(Box::from(token), verified);
    }
}

impl Auth {
    /// The caller behind a bearer token: it verifies (or verified before and
    /// has not expired), its session is not revoked and its user not disabled.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let (principal, third_party) = self.authenticate_any(token).await?;
        if third_party {
            return Err(AuthError::InvalidToken);
        }
        Ok(principal)
    }

    /// [`Self::authenticate`], also for a third-party client's token (for
    /// `/userinfo` and introspection); tells which it is.
    pub(crate) async fn authenticate_any(
        &self,
        token: &str,
    ) -> Result<(Principal, bool), AuthError> {
        let now = self.clock.now().timestamp();
        let verified = match self.verified.get(token, now) {
            Some(verified) => verified,
            None => {
                let claims = self.tokens.verify(token).map_err(|error| {
                    tracing::debug!(error = %crate::telemetry::error_chain(&error), "bearer token refused");
                    AuthError::InvalidToken
                })?;
                let third_party = match claims.extra.get("client_id").and_then(|id| id.as_str()) {
                    Some(client_id) => !self
                        .store
                        .find_client(client_id)
                        .await?
                        .is_some_and(|client| client.first_party),
                    None => false,
                };
                let verified = match claims.account_ids() {
                    Some((user_id, session_id)) => Verified {
                        user_id,
                        session_id,
                        username: Arc::from(claims.preferred_username),
                        exp: claims.exp,
                        third_party,
                    },
                    None if self.tokens.is_origin_shaped() => {
                        self.origin_token(&claims.sub, claims.exp).await?
                    }
                    None => return Err(AuthError::InvalidToken),
                };
                self.check_session_exists(&verified).await?;
                self.verified.insert(token, verified.clone());
                verified
            }
        };
        if self.revoked.contains(&verified.session_id)
            || self.revoked.is_disabled(&verified.user_id)
        {
            return Err(AuthError::InvalidToken);
        }
        Ok((
            Principal {
                user_id: verified.user_id,
                username: verified.username,
                session_id: verified.session_id,
            },
            verified.third_party,
        ))
    }

    /// Once per token and instance (the verification is remembered after):
    /// its session must exist for its user, so a validly signed token whose
    /// `sub` or `sid` names nothing (a deleted account, a session that never
    /// was) is refused. While the database is unreachable the signature is
    /// trusted, as every later request of a remembered token is.
    async fn check_session_exists(&self, verified: &Verified) -> Result<(), AuthError> {
        if verified.session_id.is_nil() {
            // A token the origin issued: its account was looked up already.
            return Ok(());
        }
        match self.store.find_session(verified.session_id).await {
            Ok(Some(session)) if session.user_id == verified.user_id => Ok(()),
            Ok(_) => Err(AuthError::InvalidToken),
            Err(error) if error.is_unavailable() => {
                tracing::debug!(error = %crate::telemetry::error_chain(&error), "the session of a new token could not be looked up; trusting its signature");
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// A token the origin issued before the switch (same `SECRET_KEY`,
    /// `sub` = username, no session): honoured until it expires, for an
    /// account that exists and is enabled. It belongs to no session (the nil
    /// id), so only disabling or deleting the account ends it early.
    async fn origin_token(&self, username: &str, exp: i64) -> Result<Verified, AuthError> {
        let user = self
            .store
            .find_user_by_login(&crate::domain::normalize_login_name(username))
            .await?
            .filter(|user| !user.disabled && user.username == username)
            .ok_or(AuthError::InvalidToken)?;
        Ok(Verified {
            user_id: user.id,
            session_id: Uuid::nil(),
            username: Arc::from(user.username),
            exp,
            third_party: false,
        })
    }

    /// The caller's account, read from the database; for routes that show it.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn account(&self, principal: &Principal) -> Result<Account, AuthError> {
        self.current_user(principal).await.map(Account::from)
    }

    /// The caller's account row; a token of a vanished or disabled account is invalid.
    pub(crate) async fn current_user(
        &self,
        principal: &Principal,
    ) -> Result<crate::store::UserRecord, AuthError> {
        match self.store.find_user_by_id(principal.user_id).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(AuthError::InvalidToken),
        }
    }
}
