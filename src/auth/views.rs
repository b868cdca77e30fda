//! What the use-cases hand up to the edge and the command line: views of
//! stored rows, in the use-cases' words and without what callers must not see
//! (hashes, revocation bookkeeping, other users' data). Store record types
//! stop here.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{AuditRecord, SessionRecord, SigningKeyRecord, UserRecord};

/// One of the caller's live sessions.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
    /// The session of the token that asked.
    pub current: bool,
}

impl LiveSession {
    pub(crate) fn of(record: SessionRecord, current_session: Uuid) -> Self {
        Self {
            current: record.id == current_session,
            id: record.id,
            created_at: record.created_at,
            last_used_at: record.last_used_at,
            expires_at: record.expires_at,
            user_agent: record.user_agent,
            client_ip: record.client_ip,
        }
    }
}

/// An account as operators list it.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for UserSummary {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            disabled: user.disabled,
            created_at: user.created_at,
        }
    }
}

/// One security event of an account.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub event: String,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        Self {
            at: record.at,
            event: record.event,
            outcome: record.outcome,
            client_ip: record.client_ip,
            user_agent: record.user_agent,
        }
    }
}

/// A signing key, without its private half.
#[derive(Debug, Clone)]
pub struct SigningKeySummary {
    pub kid: String,
    pub algorithm: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl From<SigningKeyRecord> for SigningKeySummary {
    fn from(key: SigningKeyRecord) -> Self {
        Self {
            state: format!("{:?}", key.state),
            kid: key.kid,
            algorithm: key.algorithm,
            created_at: key.created_at,
            retired_at: key.retired_at,
        }
    }
}
