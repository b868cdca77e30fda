//! Email: the messages latchkey sends, rendered from templates in the
//! recipient's language, and their delivery over SMTP from the outbox.
//!
//! [`Mailer`] renders a message into a [`NewMail`] that the use-case writes
//! to the outbox in its own transaction; [`delivery`] sends what the outbox
//! holds. Nothing here decides *whether* to send: that is [`crate::auth`]'s.

pub mod delivery;
mod locale;
mod templates;
mod transport;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::NewMail;

pub use locale::{LocalePreference, accepted_languages, parse_locale};
pub use templates::Templates;
pub use transport::{SendError, Transport};

/// The messages latchkey sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    VerifyEmail,
    ResetPassword,
    ConfirmEmailChange,
    /// To the old address, when a change is asked for.
    EmailChangeRequested,
    /// To the old address, once the change is confirmed.
    EmailChanged,
    PasswordChanged,
    SignIn,
    /// Any other change to how the account signs in (second factors).
    SecurityNotice,
}

impl MessageKind {
    pub const ALL: [Self; 8] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::ConfirmEmailChange,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::PasswordChanged,
        Self::SignIn,
        Self::SecurityNotice,
    ];

    /// The template's file name without `.jinja`, and the outbox's `kind`.
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ConfirmEmailChange => "confirm_email_change",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::PasswordChanged => "password_changed",
            Self::SignIn => "sign_in",
            Self::SecurityNotice => "security_notice",
        }
    }
}

/// The page a message's link opens: `<public URL>/<page>?token=…`.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    VerifyEmail,
    ResetPassword,
    ConfirmEmailChange,
    SignIn,
}

impl Page {
    fn path(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify-email",
            Self::ResetPassword => "reset-password",
            Self::ConfirmEmailChange => "confirm-email-change",
            Self::SignIn => "sign-in",
        }
    }
}

/// What a message says; each template uses the facts its kind has.
#[derive(Clone, Default, Serialize)]
pub struct Facts {
    pub username: String,
    pub email: String,
    pub link: Option<String>,
    pub code: Option<String>,
    pub new_email: Option<String>,
    pub minutes: Option<i64>,
    pub hours: Option<i64>,
    /// For a security notice: what changed, in a sentence.
    pub change: Option<String>,
}

impl std::fmt::Debug for Facts {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The link and the code are credentials: never shown.
        formatter
            .debug_struct("Facts")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A rendered message, as the outbox keeps it until it is sent.
#[derive(Clone, Serialize, Deserialize)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail template {name}: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot read the mail templates in {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mail template folder {0}: {1}")]
    Layout(String, String),
}

/// Renders messages; present only when email is configured.
pub struct Mailer {
    templates: Templates,
    product: String,
    public_url: String,
}

impl Mailer {
    pub fn new(templates: Templates, product: String, public_url: &str) -> Self {
        Self {
            templates,
            product,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// `<public URL>/<page>?token=<token>`; tokens are base64url, so need no escaping.
    pub fn link(&self, page: Page, token: &str) -> String {
        format!("{}/{}?token={token}", self.public_url, page.path())
    }

    /// Renders `kind` for `to` in the best language `preference` allows.
    pub fn compose(
        &self,
        kind: MessageKind,
        to: &str,
        preference: &LocalePreference,
        facts: &Facts,
    ) -> Result<NewMail, MailError> {
        let locale = self.templates.choose(preference, kind);
        let letter = self.templates.render(&locale, kind, &self.product, facts)?;
        Ok(NewMail {
            id: Uuid::now_v7(),
            kind: kind.name(),
            recipient: to.to_owned(),
            // A struct of three strings always serializes.
            payload: serde_json::to_string(&letter).unwrap_or_default(),
        })
    }
}
