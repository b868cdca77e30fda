//! The in-memory set of revoked sessions, checked on every bearer request
//! without touching the database.
//!
//! The database (`sessions.revoked_at`) is the only source of truth: the set
//! is loaded from it at start and refreshed by a short poll, so a revocation
//! made by any instance on the same database reaches this one within one poll
//! interval, and a restart never resurrects a revoked session. Entries are
//! dropped once every access token of their session must have expired.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::store::{Store, StoreError};

#[derive(Debug, Default)]
pub struct RevokedSessions {
    revoked: RwLock<HashMap<Uuid, DateTime<Utc>>>,
    /// Disabled and recently deleted accounts; disabling also revokes their
    /// sessions, but an account disabled in the database by other means is
    /// caught here too.
    disabled_users: RwLock<HashSet<Uuid>>,
    /// When the last reload from the database succeeded.
    synced_at: RwLock<Option<std::time::Instant>>,
}

impl RevokedSessions {
    pub fn contains(&self, session_id: &Uuid) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(session_id)
    }

    pub fn is_disabled(&self, user_id: &Uuid) -> bool {
        self.disabled_users
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(user_id)
    }

    /// Records an account disabled or deleted here, before the next poll.
    pub fn insert_user(&self, user_id: Uuid) {
        self.disabled_users
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(user_id);
    }

    /// Records a revocation made here, so this instance honours it before the next poll.
    pub fn insert(&self, session_id: Uuid, at: DateTime<Utc>) {
        self.revoked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(session_id, at);
    }

    /// Reloads from the database every revocation that may still have live
    /// access tokens (revoked after `now - retention`), and forgets older ones.
    pub async fn refresh(
        &self,
        store: &Store,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<(), StoreError> {
        let cutoff = now - retention;
        let recent = store.revoked_since(cutoff).await?;
        let mut disabled = store.disabled_user_ids().await?;
        // Deleted accounts are gone from `users`: their ids are kept apart.
        disabled.extend(store.deleted_since(cutoff).await?);
        *self
            .disabled_users
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = disabled;
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        revoked.retain(|_, at| *at > cutoff);
        revoked.extend(recent);
        *self
            .synced_at
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(std::time::Instant::now());
        Ok(())
    }

    /// How long ago the set was last reloaded from the database.
    pub fn age(&self) -> Option<std::time::Duration> {
        self.synced_at
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .map(|at| at.elapsed())
    }

    pub fn len(&self) -> usize {
        self.revoked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
