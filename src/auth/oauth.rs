//! OAuth 2.0 support beyond the token endpoint: revocation (RFC 7009),
//! introspection for resource servers (RFC 7662), and their clients.

use secrecy::{ExposeSecret, SecretString};

use super::secrets::{hash_secret, hashes_match};
use super::{AccessClaims, Auth, AuthError};

/// What introspection may say about a token.
pub enum Introspection {
    Active(Box<AccessClaims>),
    Inactive,
}

/// A client as created; the secret is shown this once and never stored.
pub struct CreatedClient {
    pub id: String,
    pub name: String,
    /// None for a public client.
    pub secret: Option<SecretString>,
}

impl Auth {
    /// Revokes the session behind an access or refresh token. Unknown and
    /// invalid tokens are not an error (RFC 7009 section 2.2).
    #[tracing::instrument(level = "info", skip_all)]
    /// A token issued to a client through `/authorize` is revoked only by
    /// that client, authenticated (RFC 7009 section 2.1).
    pub async fn revoke_token(
        &self,
        token: &SecretString,
        credentials: &super::ClientCredentials,
    ) -> Result<(), AuthError> {
        let token = token.expose_secret();
        if token.contains('.') {
            if let Ok(claims) = self.verify_access_token(token)
                && let Ok(session_id) = uuid::Uuid::parse_str(&claims.sid)
            {
                let client = claims.extra.get("client_id").and_then(|id| id.as_str());
                self.check_revoking_client(client, credentials).await?;
                self.end_session(session_id, "token_revoked").await?;
            }
            return Ok(());
        }
        if token.len() <= 256
            && let Some(session) = self
                .store
                .session_of_refresh_token(&hash_secret(token))
                .await?
        {
            self.check_revoking_client(session.client_id.as_deref(), credentials)
                .await?;
            self.end_session(session.id, "token_revoked").await?;
        }
        Ok(())
    }

    async fn check_revoking_client(
        &self,
        issued_to: Option<&str>,
        credentials: &super::ClientCredentials,
    ) -> Result<(), AuthError> {
        let Some(issued_to) = issued_to else {
            return Ok(());
        };
        let client = self.authenticate_token_client(credentials).await?;
        if client.id == issued_to {
            Ok(())
        } else {
            Err(AuthError::UnauthorizedClient)
        }
    }

    /// RFC 7662 for an authenticated client: the claims of a live access token, else inactive.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn introspect(
        &self,
        client_id: &str,
        client_secret: &str,
        token: &str,
    ) -> Result<Introspection, AuthError> {
        self.authenticate_client(client_id, client_secret).await?;
        match self.authenticate_any(token).await {
            Ok(_) => Ok(Introspection::Active(Box::new(
                self.verify_access_token(token)?,
            ))),
            Err(AuthError::InvalidToken) => Ok(match self.machine_claims(token).await {
                Some(claims) => Introspection::Active(Box::new(claims)),
                None => Introspection::Inactive,
            }),
            Err(error) => Err(error),
        }
    }

    async fn authenticate_client(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<(), AuthError> {
        // Ours are short and printable; anything else cannot exist, and must
        // not reach the database (PostgreSQL refuses NUL in text).
        let plausible = client_id.len() <= 64 && !client_id.chars().any(char::is_control);
        let client = if plausible {
            self.store.find_client(client_id).await?
        } else {
            None
        };
        // Hash even for unknown clients, so timing does not tell which exist.
        let stored = client
            .as_ref()
            .map_or("", |client| client.secret_hash.as_str());
        let matches = hashes_match(stored, client_secret);
        if client.is_some() && matches {
            Ok(())
        } else {
            Err(AuthError::InvalidClient)
        }
    }
}
