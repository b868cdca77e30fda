//! Sessions: created at login, extended by refresh-token rotation, ended by
//! logout, reuse detection, password change or disabling the user.
//!
//! Every revocation is written to the database first, then to this
//! instance's in-memory set; other instances pick it up by polling.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::store::{NewSession, Rotation, StoreError, UserRecord};

use super::views::LiveSession;

use super::secrets::{hash_secret, new_secret};
use super::{AuditEvent, Auth, AuthError, IssuedToken, Principal, token_retention};

/// Where a login came from, recorded on its session.
#[derive(Debug, Clone, Default)]
pub struct ClientContext {
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
    /// The request's `Accept-Language`, most wanted first.
    pub languages: Vec<String>,
}

/// The client a session is opened for, through `/authorize`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientGrant<'a> {
    pub id: &'a str,
    /// The scopes granted, space-separated.
    pub scope: &'a str,
    /// Its tokens carry the account's roles and `app_metadata` (others' do not).
    pub first_party: bool,
}

/// What a successful login or refresh hands out.
pub struct TokenPair {
    pub access: IssuedToken,
    pub refresh_token: SecretString,
    pub session_id: Uuid,
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The caller's session.
    Current,
    /// Every other session of the caller.
    Others,
    /// All the caller's sessions.
    Global,
}

/// What a refresh token of a client's session (opened through `/authorize`) starts with.
const CLIENT_TOKEN_PREFIX: &str = "oc_";

/// Longest refresh token we look up; ours are 43 characters.
const MAX_REFRESH_TOKEN_BYTES: usize = 256;

impl Auth {
    /// Opens a session for a user whose password (or emailed code) just
    /// verified. `user` is the account as read before that check: if its
    /// credential version has changed since, nothing is opened.
    #[tracing::instrument(level = "info", skip_all)]
    pub(crate) async fn open_session(
        &self,
        user: &UserRecord,
        email_verified: bool,
        methods: &super::AuthMethods,
        context: &ClientContext,
    ) -> Result<TokenPair, AuthError> {
        self.open_client_session(Uuid::now_v7(), user, email_verified, methods, context, None)
            .await
    }

    /// [`Self::open_session`] with the id chosen, for a client of
    /// `/authorize` when `client` (its id and granted scopes) is given;
    /// roles and `app_metadata` only for first-party clients.
    pub(crate) async fn open_client_session(
        &self,
        session_id: Uuid,
        user: &UserRecord,
        email_verified: bool,
        methods: &super::AuthMethods,
        context: &ClientContext,
        client: Option<ClientGrant<'_>>,
    ) -> Result<TokenPair, AuthError> {
        let first_party = client.is_none_or(|client| client.first_party);
        let client = client.map(|client| (client.id, client.scope));
        let (user_id, credential_version) = (user.id, user.credential_version);
        let now = self.clock.now();
        let (refresh_token, refresh_hash) = match client {
            // A client's refresh tokens say so, so that the client is
            // checked before one is spent (see `refresh`).
            Some(_) => {
                let (secret, _) = new_secret()?;
                let token = format!("{CLIENT_TOKEN_PREFIX}{}", secret.expose_secret());
                let hash = hash_secret(&token);
                (SecretString::from(token), hash)
            }
            None => new_secret()?,
        };
        let user_agent = context
            .user_agent
            .as_deref()
            .map(|agent| truncate(agent, 512));
        self.store
            .insert_session(NewSession {
                id: session_id,
                user_id,
                now,
                expires_at: now + self.sessions.lifetime,
                user_agent,
                client_ip: context.ip,
                refresh_token_hash: &refresh_hash,
                credential_version,
                amr: &methods.stored(),
                client,
            })
            .await
            .map_err(|error| match error {
                // The password just verified is no longer the account's.
                StoreError::StaleCredential => AuthError::InvalidCredentials,
                other => AuthError::Store(other),
            })?;
        let access = self.tokens.issue_with(
            user_id,
            &user.username,
            session_id,
            email_verified,
            methods,
            // A third-party client gets who the user is, not what they may do here.
            super::tokens::Grants {
                roles: if first_party { &user.roles } else { &[] },
                app_metadata: user.app_metadata.as_deref().filter(|_| first_party),
                client,
            },
        )?;
        Ok(TokenPair {
            access,
            refresh_token,
            session_id,
        })
    }

    /// Spends a refresh token for a new pair. A spent token presented again
    /// ends its session, and every token of it, at once.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn refresh(
        &self,
        presented: &SecretString,
        context: &ClientContext,
        credentials: &super::ClientCredentials,
    ) -> Result<TokenPair, AuthError> {
        let presented = presented.expose_secret();
        if presented.is_empty() || presented.len() > MAX_REFRESH_TOKEN_BYTES {
            return Err(AuthError::InvalidGrant("the refresh token is invalid"));
        }
        let now = self.clock.now();
        let for_client = presented.starts_with(CLIENT_TOKEN_PREFIX);
        if for_client {
            self.check_refreshing_client(presented, credentials).await?;
        }
        // The successor is derived from the presented token with the
        // instance's key: a repeat within the grace window gets the same one
        // without it being stored anywhere (unguessable without the key).
        let derived = self.sealer.keyed_hash(presented, "refresh-token-successor");
        let successor = SecretString::from(if for_client {
            format!("{CLIENT_TOKEN_PREFIX}{derived}")
        } else {
            derived
        });
        let successor_hash = hash_secret(successor.expose_secret());
        let rotation = self
            .store
            .rotate_refresh_token(
                &hash_secret(presented),
                &successor_hash,
                self.sessions.refresh_grace,
                now,
                now - self.sessions.idle_timeout,
            )
            .await?;
        let (session, user) = match rotation {
            Rotation::Rotated(session, user) | Rotation::Repeated(session, user) => (session, user),
            Rotation::Reused {
                session_id,
                user_id,
            } => {
                tracing::warn!(%session_id, %user_id, "refresh token reused: session revoked");
                self.revoked.insert(session_id, now);
                self.audit(
                    AuditEvent::RefreshReuse,
                    Some(user_id),
                    context,
                    "session revoked",
                )
                .await;
                return Err(AuthError::InvalidGrant(
                    "the refresh token was already used",
                ));
            }
            Rotation::CredentialChanged { session_id } => {
                self.revoked.insert(session_id, now);
                return Err(AuthError::InvalidGrant(
                    "the refresh token is invalid or its session ended",
                ));
            }
            Rotation::SessionEnded | Rotation::Unknown => {
                return Err(AuthError::InvalidGrant(
                    "the refresh token is invalid or its session ended",
                ));
            }
        };
        if user.disabled {
            self.end_session(session.id, "user_disabled").await?;
            return Err(AuthError::InvalidGrant("the account is disabled"));
        }
        // A session opened for a client refreshes only for that client,
        // authenticated as it must be (RFC 6749 section 6): checked before
        // the token was spent (its prefix says so), and again here.
        let first_party = match &session.client_id {
            Some(client_id) => {
                let client = self.authenticate_token_client(credentials).await?;
                if client.id != *client_id {
                    return Err(AuthError::InvalidGrant(
                        "the refresh token was issued to another client",
                    ));
                }
                client.first_party
            }
            None => true,
        };
        let access = self.tokens.issue_with(
            user.id,
            &user.username,
            session.id,
            user.email_verified_at.is_some(),
            &super::AuthMethods::parse(session.amr.as_deref()),
            super::tokens::Grants {
                roles: if first_party { &user.roles } else { &[] },
                app_metadata: user.app_metadata.as_deref().filter(|_| first_party),
                client: session
                    .client_id
                    .as_deref()
                    .map(|id| (id, session.scope.as_deref().unwrap_or_default())),
            },
        )?;
        Ok(TokenPair {
            access,
            refresh_token: successor,
            session_id: session.id,
        })
    }

    /// Before a client's refresh token is spent: the caller must be that
    /// client, authenticated, so that a stolen token alone spends nothing.
    async fn check_refreshing_client(
        &self,
        presented: &str,
        credentials: &super::ClientCredentials,
    ) -> Result<(), AuthError> {
        let Some(session) = self
            .store
            .session_of_refresh_token(&hash_secret(presented))
            .await?
        else {
            // Unknown: the rotation says so.
            return Ok(());
        };
        let Some(client_id) = session.client_id else {
            return Ok(());
        };
        let client = self.authenticate_token_client(credentials).await?;
        if client.id == client_id {
            Ok(())
        } else {
            Err(AuthError::InvalidGrant(
                "the refresh token was issued to another client",
            ))
        }
    }

    #[tracing::instrument(level = "info", skip_all)]
    pub async fn logout(
        &self,
        principal: &Principal,
        scope: LogoutScope,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let outcome = match scope {
            LogoutScope::Current => "current session",
            LogoutScope::Others => "other sessions",
            LogoutScope::Global => "all sessions",
        };
        self.audit(AuditEvent::Logout, Some(principal.user_id), client, outcome)
            .await;
        match scope {
            LogoutScope::Current => return self.end_session(principal.session_id, "logout").await,
            LogoutScope::Others => {
                self.store
                    .revoke_user_sessions(
                        principal.user_id,
                        Some(principal.session_id),
                        "logout_others",
                        now,
                    )
                    .await?
            }
            LogoutScope::Global => {
                self.store
                    .revoke_user_sessions(principal.user_id, None, "logout_global", now)
                    .await?
            }
        }
        self.sync_revocations().await
    }

    /// The caller's live sessions, newest first.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<LiveSession>, AuthError> {
        let now = self.clock.now();
        let records = self
            .store
            .live_sessions(principal.user_id, now, now - self.sessions.idle_timeout)
            .await?;
        Ok(records
            .into_iter()
            .map(|record| LiveSession::of(record, principal.session_id))
            .collect())
    }

    /// Ends one of the caller's sessions; someone else's is [`AuthError::SessionNotFound`].
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn end_own_session(
        &self,
        principal: &Principal,
        session_id: Uuid,
    ) -> Result<(), AuthError> {
        match self.store.find_session(session_id).await? {
            Some(session) if session.user_id == principal.user_id => {
                self.end_session(session_id, "ended_by_user").await
            }
            _ => Err(AuthError::SessionNotFound),
        }
    }

    #[tracing::instrument(level = "info", skip_all)]
    pub(crate) async fn end_session(
        &self,
        session_id: Uuid,
        reason: &str,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        self.store.revoke_session(session_id, reason, now).await?;
        self.revoked.insert(session_id, now);
        Ok(())
    }

    /// Reloads the revocation set now rather than at the next poll.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sync_revocations(&self) -> Result<(), AuthError> {
        self.revoked
            .refresh(
                &self.store,
                self.clock.now(),
                token_retention(self.tokens.lifetime()),
            )
            .await?;
        Ok(())
    }
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}
