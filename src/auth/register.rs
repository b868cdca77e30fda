//! Registration: parse every field, refuse taken names, hash, insert. The
//! database's unique indexes are the final word when two requests race.

use secrecy::SecretString;
use uuid::Uuid;

use crate::domain::{EmailAddress, Invalid, Password, Username};
use crate::store::{NewUser, StoreError, UserRecord};

use super::{Account, Auth, AuthError, ClientContext, FieldProblem};

/// The fields of a registration, as received.
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: SecretString,
    /// The language of the account's messages (a BCP 47 tag); optional.
    pub locale: Option<String>,
}

impl Auth {
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn register(
        &self,
        registration: Registration,
        context: &ClientContext,
    ) -> Result<Account, AuthError> {
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
        let locale = match registration.locale.as_deref() {
            None => None,
            Some(raw) => collect(
                &mut problems,
                "locale",
                crate::mail::parse_locale(raw).ok_or_else(|| {
                    Invalid::new(
                        "value_error.locale",
                        "is not a language tag (like en, de or pt-BR)",
                    )
                }),
            ),
        };
        let (Some(username), Some(email), Some(password), true) =
            (username, email, password, problems.is_empty())
        else {
            return Err(AuthError::Invalid(problems));
        };

        self.refuse_taken(&username, &email).await?;
        let password_hash = self.hasher.hash(&password).await?;
        let now = self.clock.now();
        let user = UserRecord {
            id: Uuid::now_v7(),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            password_hash,
            disabled: false,
            created_at: now,
            updated_at: now,
            credential_version: 0,
            email_verified_at: None,
            locale,
            roles: Vec::new(),
            app_metadata: None,
            user_metadata: None,
        };
        let mut outgoing = self.verification_outgoing(&user, context)?;
        // `user.created` goes out with the account, or not at all.
        outgoing.mail.extend(
            self.webhook_events(
                "user.created",
                Some(user.id),
                Some(&user),
                Default::default(),
            )
            .await?,
        );
        let inserted = self
            .store
            .insert_user(
                NewUser {
                    id: user.id,
                    username: username.as_str(),
                    username_normalized: username.normalized(),
                    email: email.as_str(),
                    email_normalized: email.normalized(),
                    password_hash: &user.password_hash,
                    locale: user.locale.as_deref(),
                    now,
                },
                &outgoing,
            )
            .await;
        match inserted {
            Ok(()) => {
                if !outgoing.is_empty() {
                    self.mail_queued();
                }
                Ok(Account::from(user))
            }
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
