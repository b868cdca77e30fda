//! Registration: parse every field, refuse taken names, hash, insert. The
//! database's unique indexes are the final word when two requests race.

use secrecy::SecretString;
use uuid::Uuid;

use crate::domain::{EmailAddress, Invalid, Password, Username};
use crate::store::{NewUser, StoreError};

use super::{Account, Auth, AuthError, FieldProblem};

/// The fields of a registration, as received.
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: SecretString,
}

impl Auth {
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn register(&self, registration: Registration) -> Result<Account, AuthError> {
        let mut problems = Vec::new();
        let username = collect(
            &mut problems,
            "username",
            Username::parse(&registration.username),
        );
        let email = collect(
            &mut problems,
            "email",
            EmailAddress::parse(&registration.email),
        );
        let password = collect(
            &mut problems,
            "password",
            Password::parse(&registration.password, self.policy),
        );
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(AuthError::Invalid(problems));
        };

        self.refuse_taken(&username, &email).await?;
        let password_hash = self.hasher.hash(&password).await?;
        let id = Uuid::now_v7();
        let now = self.clock.now();
        let inserted = self
            .store
            .insert_user(NewUser {
                id,
                username: username.as_str(),
                username_normalized: username.normalized(),
                email: email.as_str(),
                email_normalized: email.normalized(),
                password_hash: &password_hash,
                now,
            })
            .await;
        match inserted {
            Ok(()) => Ok(Account {
                id,
                username: username.as_str().to_owned(),
                email: email.as_str().to_owned(),
                created_at: now,
            }),
            // A concurrent registration won the race; say which field it took.
            Err(StoreError::Conflict) => {
                self.refuse_taken(&username, &email).await?;
                Err(AuthError::UsernameTaken)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The origin checked the username first, then the email; so do we.
    async fn refuse_taken(
        &self,
        username: &Username,
        email: &EmailAddress,
    ) -> Result<(), AuthError> {
        if self.store.username_taken(username.normalized()).await? {
            return Err(AuthError::UsernameTaken);
        }
        if self.store.email_taken(email.normalized()).await? {
            return Err(AuthError::EmailTaken);
        }
        Ok(())
    }
}

fn collect<T>(
    problems: &mut Vec<FieldProblem>,
    field: &'static str,
    parsed: Result<T, Invalid>,
) -> Option<T> {
    parsed
        .map_err(|invalid| problems.push(FieldProblem { field, invalid }))
        .ok()
}
