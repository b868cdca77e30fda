//! Login: one path for every outcome. The password is always verified, against
//! the dummy hash when the account does not exist, and disabled accounts fail
//! after the same work, so neither status, body nor timing tells which
//! accounts exist. Outdated hashes (bcrypt, old argon2 parameters) are
//! replaced after a successful login.

use secrecy::SecretString;

use crate::domain::normalize_login_name;
use crate::store::UserRecord;

use super::{Account, Auth, AuthError, ClientContext, TokenPair, Verification};

/// Longer login names cannot belong to an account (emails are at most 254
/// characters), nor can names with control characters; such names skip the
/// lookup but not the password work.
const MAX_LOGIN_NAME_CHARS: usize = 320;

pub struct LoginOutcome {
    pub account: Account,
    pub tokens: TokenPair,
}

impl Auth {
    pub async fn login(
        &self,
        login_name: &str,
        password: &SecretString,
        context: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        let impossible = login_name.chars().count() > MAX_LOGIN_NAME_CHARS
            || login_name.chars().any(char::is_control);
        let user = if impossible {
            None
        } else {
            self.store
                .find_user_by_login(&normalize_login_name(login_name))
                .await?
        };
        let verification = self
            .hasher
            .verify(
                password,
                user.as_ref().map(|user| user.password_hash.as_str()),
            )
            .await?;
        let user = match (user, verification) {
            (Some(user), Verification::Match { needs_rehash }) if !user.disabled => {
                if needs_rehash {
                    self.rehash(&user, password).await;
                }
                user
            }
            _ => return Err(AuthError::InvalidCredentials),
        };
        let tokens = self.open_session(user.id, &user.username, context).await?;
        Ok(LoginOutcome {
            account: Account::from(user),
            tokens,
        })
    }

    /// Best effort: a failed rehash leaves the old, still valid hash in place.
    async fn rehash(&self, user: &UserRecord, password: &SecretString) {
        let replacement = match self.hasher.hash_typed(password).await {
            Ok(hash) => hash,
            Err(error) => {
                tracing::warn!(user_id = %user.id, %error, "could not rehash an outdated password hash");
                return;
            }
        };
        match self
            .store
            .replace_password_hash(user.id, &user.password_hash, &replacement, self.clock.now())
            .await
        {
            Ok(_) => tracing::info!(user_id = %user.id, "rehashed an outdated password hash"),
            Err(error) => {
                tracing::warn!(user_id = %user.id, %error, "could not store a rehashed password")
            }
        }
    }
}
