//! The email lifecycle: verification, password reset, email change and
//! sign-in codes.
//!
//! Every emailed token has 256 random bits, is stored only as its SHA-256,
//! works once, for one purpose and one account, and expires. The routes that
//! take an address (forgot password, sign-in codes) answer before looking it
//! up: the lookup and the queueing run in the background, so neither the
//! answer nor its timing depends on whether an account has the address; their
//! throttles count the address as typed, account or not.

use std::sync::Arc;

use super::secrets::{hash_secret, new_secret};
use super::{
    Account, AuditEvent, Auth, AuthError, ClientContext, FieldProblem, LoginOutcome, Principal,
};
use crate::domain::{EmailAddress, Password, normalize_login_name};
use crate::mail::{Facts, LocalePreference, MessageKind, Page};
use crate::store::{EmailSwitch, EmailTokenRecord, NewEmailToken, Outgoing, UserRecord};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};

/// How long a verification link works.
const VERIFY_LIFETIME: Duration = Duration::hours(24);
/// How long the link confirming a new address works.
const EMAIL_CHANGE_LIFETIME: Duration = Duration::hours(24);
/// How long a sign-in code and its link work.
const SIGN_IN_LIFETIME: Duration = Duration::minutes(10);
/// Wrong codes a sign-in code survives.
const SIGN_IN_TRIES: i32 = 5;

/// What each kind of emailed token is for; stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
    SignIn,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
            Self::SignIn => "sign_in",
        }
    }
}

/// How the email flows behave, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct EmailPolicy {
    /// Login refuses accounts whose address is unverified.
    pub require_verified: bool,
    pub reset_lifetime: Duration,
    pub sign_in_enabled: bool,
}

impl Default for EmailPolicy {
    fn default() -> Self {
        Self {
            require_verified: false,
            reset_lifetime: Duration::hours(1),
            sign_in_enabled: false,
        }
    }
}

/// A token made for a message: the secret for the link, the row to store.
struct Minted {
    token: SecretString,
    row: NewEmailToken,
}

impl Auth {
    /// The mailer, or 503 naming the setting when email is not configured.
    fn mailer(&self) -> Result<&crate::mail::Mailer, AuthError> {
        self.mail
            .mailer
            .as_deref()
            .ok_or(AuthError::MailNotConfigured)
    }

    /// The language of messages to `user`: theirs, else the request's.
    fn preference(user: &UserRecord, context: &ClientContext) -> LocalePreference {
        LocalePreference {
            account: user.locale.clone(),
            accepted: context.languages.clone(),
        }
    }

    fn mint(
        &self,
        user: &UserRecord,
        purpose: Purpose,
        lifetime: Duration,
    ) -> Result<Minted, AuthError> {
        let (token, token_hash) = new_secret()?;
        Ok(Minted {
            token,
            row: NewEmailToken {
                token_hash,
                user_id: user.id,
                purpose: purpose.name(),
                email_normalized: normalize_login_name(&user.email),
                new_email: None,
                session_id: None,
                code_hash: None,
                credential_version: user.credential_version,
                expires_at: self.clock.now() + lifetime,
            },
        })
    }

    /// Renders a message to `to` and adds it to `outgoing`.
    fn queue(
        &self,
        outgoing: &mut Outgoing,
        kind: MessageKind,
        to: &str,
        preference: &LocalePreference,
        facts: &Facts,
    ) -> Result<(), AuthError> {
        let mail = self.mailer()?.compose(kind, to, preference, facts)?;
        outgoing.mail.push(mail);
        Ok(())
    }

    /// Facts every message to `user` starts from.
    fn facts_for(user: &UserRecord) -> Facts {
        Facts {
            username: user.username.clone(),
            email: user.email.clone(),
            ..Facts::default()
        }
    }

    /// The verification message for a new or unverified account, if email is configured.
    pub(crate) fn verification_outgoing(
        &self,
        user: &UserRecord,
        context: &ClientContext,
    ) -> Result<Outgoing, AuthError> {
        let mut outgoing = Outgoing::default();
        let Some(mailer) = self.mail.mailer.as_deref() else {
            return Ok(outgoing);
        };
        let minted = self.mint(user, Purpose::VerifyEmail, VERIFY_LIFETIME)?;
        let facts = Facts {
            link: Some(mailer.link(Page::VerifyEmail, minted.token.expose_secret())),
            hours: Some(VERIFY_LIFETIME.num_hours()),
            ..Self::facts_for(user)
        };
        outgoing.tokens.push(minted.row);
        self.queue(
            &mut outgoing,
            MessageKind::VerifyEmail,
            &user.email,
            &Self::preference(user, context),
            &facts,
        )?;
        Ok(outgoing)
    }

    /// A security notice to the account's address, if email is configured.
    pub(crate) fn security_notice(
        &self,
        user: &UserRecord,
        context: &ClientContext,
        what: &str,
    ) -> Result<Outgoing, AuthError> {
        let mut outgoing = Outgoing::default();
        if self.mail.mailer.is_some() {
            let facts = Facts {
                change: Some(what.to_owned()),
                ..Self::facts_for(user)
            };
            self.queue(
                &mut outgoing,
                MessageKind::SecurityNotice,
                &user.email,
                &Self::preference(user, context),
                &facts,
            )?;
        }
        Ok(outgoing)
    }

    /// Tells the delivery worker there is mail.
    pub(crate) fn mail_queued(&self) {
        self.mail.wake.notify_one();
    }

    /// `POST /email/verify`.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn verify_email(
        &self,
        token: &SecretString,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let record = self.live_token(token, Purpose::VerifyEmail).await?;
        if !self.store.verify_email(&record, self.clock.now()).await? {
            return Err(AuthError::InvalidEmailToken);
        }
        self.audit(
            AuditEvent::EmailVerified,
            Some(record.user_id),
            context,
            "verified",
        )
        .await;
        Ok(())
    }

    /// `POST /email/verify/resend`: a new verification message, unless the
    /// address is verified already (then nothing, with the same answer).
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn resend_verification(
        &self,
        principal: &Principal,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        self.mailer()?;
        let user = self.current_user(principal).await?;
        self.email_budget(&user.email, context).await?;
        if user.email_verified_at.is_some() {
            return Ok(());
        }
        let outgoing = self.verification_outgoing(&user, context)?;
        self.store
            .write_outgoing(&outgoing, self.clock.now())
            .await?;
        self.mail_queued();
        Ok(())
    }

    /// `POST /password/forgot`: answers at once; the lookup and the message
    /// happen in the background.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn forgot_password(
        self: &Arc<Self>,
        email: &str,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        self.mailer()?;
        let email = parse_email(email, "email")?;
        self.email_budget(email.as_str(), context).await?;
        let normalized = email.normalized().to_owned();
        let notice = Notice {
            kind: MessageKind::ResetPassword,
            event: AuditEvent::PasswordResetRequested,
            outcome: "message queued",
        };
        self.mail_account_in_background(normalized, context, notice, |auth, user| {
            auth.reset_link(user)
        })
    }

    /// A password-reset token for `user` and the facts of its message.
    fn reset_link(&self, user: &UserRecord) -> Result<(Outgoing, Facts), AuthError> {
        let lifetime = self.mail.policy.reset_lifetime;
        let minted = self.mint(user, Purpose::ResetPassword, lifetime)?;
        let facts = Facts {
            link: Some(
                self.mailer()?
                    .link(Page::ResetPassword, minted.token.expose_secret()),
            ),
            minutes: Some(lifetime.num_minutes()),
            ..Self::facts_for(user)
        };
        let outgoing = Outgoing {
            tokens: vec![minted.row],
            ..Outgoing::default()
        };
        Ok((outgoing, facts))
    }

    /// An account made by an admin without a password: a password-reset link
    /// to choose one, queued now (the admin knows the account exists).
    pub(crate) async fn invite(
        &self,
        user: &UserRecord,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let (mut outgoing, facts) = self.reset_link(user)?;
        let preference = Self::preference(user, context);
        self.queue(
            &mut outgoing,
            MessageKind::ResetPassword,
            &user.email,
            &preference,
            &facts,
        )?;
        self.store
            .write_outgoing(&outgoing, self.clock.now())
            .await?;
        self.mail_queued();
        self.audit(
            AuditEvent::PasswordResetRequested,
            Some(user.id),
            context,
            "invitation queued",
        )
        .await;
        Ok(())
    }

    /// `POST /password/reset`: sets the password, ends every session, clears
    /// the account's lockout and marks the address verified.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn reset_password(
        &self,
        token: &SecretString,
        new_password: &SecretString,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let password = Password::parse(new_password, self.policy).map_err(|invalid| {
            AuthError::Invalid(vec![FieldProblem {
                field: "new_password",
                invalid,
            }])
        })?;
        let record = self.live_token(token, Purpose::ResetPassword).await?;
        let user = self
            .store
            .find_user_by_id(record.user_id)
            .await?
            .filter(|user| user.credential_version == record.credential_version && !user.disabled)
            .ok_or(AuthError::InvalidEmailToken)?;
        let hash = self.hasher.hash(&password).await?;
        let outgoing = self.password_changed_notice(&user, context)?;
        let now = self.clock.now();
        if !self
            .store
            .reset_password(&record, &hash, &outgoing, now)
            .await?
        {
            return Err(AuthError::InvalidEmailToken);
        }
        self.mail_queued();
        self.throttle
            .clear_lockout(&normalize_login_name(&user.username), context.ip)
            .await;
        self.audit(
            AuditEvent::PasswordReset,
            Some(user.id),
            context,
            "every session ended",
        )
        .await;
        self.sync_revocations().await
    }

    /// The notice a password change sends, if email is configured.
    pub(crate) fn password_changed_notice(
        &self,
        user: &UserRecord,
        context: &ClientContext,
    ) -> Result<Outgoing, AuthError> {
        let mut outgoing = Outgoing::default();
        if self.mail.mailer.is_some() {
            self.queue(
                &mut outgoing,
                MessageKind::PasswordChanged,
                &user.email,
                &Self::preference(user, context),
                &Self::facts_for(user),
            )?;
        }
        Ok(outgoing)
    }

    /// `POST /me/email`: a confirmation to the new address, a notice to the old.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn request_email_change(
        &self,
        principal: &Principal,
        new_email: &str,
        password: &SecretString,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        self.mailer()?;
        let new_email = parse_email(new_email, "new_email")?;
        let user = self.current_user(principal).await?;
        self.email_budget(new_email.as_str(), context).await?;
        self.check_password(&user, password, context).await?;
        if new_email.normalized() == normalize_login_name(&user.email) {
            return Err(AuthError::SameEmail);
        }
        if self.store.email_taken(new_email.normalized()).await? {
            return Err(AuthError::EmailTaken);
        }
        let mut minted = self.mint(&user, Purpose::ChangeEmail, EMAIL_CHANGE_LIFETIME)?;
        minted.row.new_email = Some(new_email.as_str().to_owned());
        minted.row.session_id = Some(principal.session_id);
        let preference = Self::preference(&user, context);
        let mut outgoing = Outgoing::default();
        let facts = Facts {
            new_email: Some(new_email.as_str().to_owned()),
            ..Self::facts_for(&user)
        };
        let confirm = Facts {
            link: Some(
                self.mailer()?
                    .link(Page::ConfirmEmailChange, minted.token.expose_secret()),
            ),
            hours: Some(EMAIL_CHANGE_LIFETIME.num_hours()),
            minutes: Some(EMAIL_CHANGE_LIFETIME.num_minutes()),
            ..facts.clone()
        };
        outgoing.tokens.push(minted.row);
        self.queue(
            &mut outgoing,
            MessageKind::ConfirmEmailChange,
            new_email.as_str(),
            &preference,
            &confirm,
        )?;
        self.queue(
            &mut outgoing,
            MessageKind::EmailChangeRequested,
            &user.email,
            &preference,
            &facts,
        )?;
        self.store
            .write_outgoing(&outgoing, self.clock.now())
            .await?;
        self.mail_queued();
        self.audit(
            AuditEvent::EmailChangeRequested,
            Some(user.id),
            context,
            "confirmation queued",
        )
        .await;
        Ok(())
    }

    /// `POST /email/change/confirm`: switches the address (if still free)
    /// and ends the account's other sessions.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn confirm_email_change(
        &self,
        token: &SecretString,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let record = self.live_token(token, Purpose::ChangeEmail).await?;
        let new_email = record
            .new_email
            .as_deref()
            .and_then(|email| EmailAddress::parse(email).ok())
            .ok_or(AuthError::InvalidEmailToken)?;
        let user = self
            .store
            .find_user_by_id(record.user_id)
            .await?
            .ok_or(AuthError::InvalidEmailToken)?;
        let mut outgoing = Outgoing::default();
        if self.mail.mailer.is_some() {
            let facts = Facts {
                new_email: Some(new_email.as_str().to_owned()),
                ..Self::facts_for(&user)
            };
            self.queue(
                &mut outgoing,
                MessageKind::EmailChanged,
                &user.email,
                &Self::preference(&user, context),
                &facts,
            )?;
        }
        let switch = EmailSwitch {
            email: new_email.as_str(),
            email_normalized: new_email.normalized(),
            keep: record.session_id,
        };
        let now = self.clock.now();
        let switched = match self
            .store
            .switch_email(&record, &switch, &outgoing, now)
            .await
        {
            Ok(switched) => switched,
            Err(crate::store::StoreError::Conflict) => return Err(AuthError::EmailTaken),
            Err(error) => return Err(error.into()),
        };
        if !switched {
            return Err(AuthError::InvalidEmailToken);
        }
        self.mail_queued();
        self.audit(
            AuditEvent::EmailChanged,
            Some(user.id),
            context,
            "other sessions ended",
        )
        .await;
        self.sync_revocations().await
    }

    /// `POST /login/email`: answers at once; a code goes out in the
    /// background if an enabled account has the address.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn request_sign_in_code(
        self: &Arc<Self>,
        email: &str,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        if !self.mail.policy.sign_in_enabled {
            return Err(AuthError::EmailSignInDisabled);
        }
        self.mailer()?;
        let email = parse_email(email, "email")?;
        self.email_budget(email.as_str(), context).await?;
        let normalized = email.normalized().to_owned();
        let notice = Notice {
            kind: MessageKind::SignIn,
            event: AuditEvent::SignInCodeRequested,
            outcome: "code queued",
        };
        self.mail_account_in_background(normalized, context, notice, |auth, user| {
            let mut minted = auth.mint(user, Purpose::SignIn, SIGN_IN_LIFETIME)?;
            let code = six_digits()?;
            minted.row.code_hash = Some(auth.code_hash(&minted.row.token_hash, &code));
            let facts = Facts {
                link: Some(
                    auth.mailer()?
                        .link(Page::SignIn, minted.token.expose_secret()),
                ),
                code: Some(code),
                minutes: Some(SIGN_IN_LIFETIME.num_minutes()),
                ..Self::facts_for(user)
            };
            let outgoing = Outgoing {
                // One live code per account: a new one replaces the old.
                retire: Some((user.id, Purpose::SignIn.name())),
                tokens: vec![minted.row],
                mail: Vec::new(),
            };
            Ok((outgoing, facts))
        })
    }

    /// `POST /login/email/verify` with `{email, code}`.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn sign_in_with_code(
        &self,
        email: &str,
        code: &SecretString,
        context: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        if !self.mail.policy.sign_in_enabled {
            return Err(AuthError::EmailSignInDisabled);
        }
        let code = code.expose_secret();
        let well_formed = code.len() == 6 && code.bytes().all(|byte| byte.is_ascii_digit());
        let normalized = normalize_login_name(email);
        let now = self.clock.now();
        let record = self
            .store
            .find_token_for_address(&normalized, Purpose::SignIn.name(), now)
            .await?;
        // The same statements and the same hashing whether or not the
        // address has a live code, so timing does not tell.
        let (token_hash, expected) = match &record {
            Some(record) => (
                record.token_hash.clone(),
                record.code_hash.clone().unwrap_or_default(),
            ),
            None => (String::new(), self.code_hash("", "no code")),
        };
        let counted = self
            .store
            .count_code_try(&token_hash, SIGN_IN_TRIES)
            .await?;
        let presented = self.code_hash(&token_hash, code);
        let matches: bool =
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), presented.as_bytes()).into();
        match record {
            Some(record) if counted && matches && well_formed => {
                self.sign_in(record, context).await
            }
            _ => Err(AuthError::InvalidCode),
        }
    }

    /// `POST /login/email/verify` with `{token}` (the message's link).
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn sign_in_with_link(
        &self,
        token: &SecretString,
        context: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        if !self.mail.policy.sign_in_enabled {
            return Err(AuthError::EmailSignInDisabled);
        }
        let record = self.live_token(token, Purpose::SignIn).await?;
        if record.attempts >= SIGN_IN_TRIES {
            // Its code was guessed at too often: the link dies with it.
            return Err(AuthError::InvalidEmailToken);
        }
        self.sign_in(record, context).await
    }

    /// Spends a sign-in token and opens a session, like a login.
    async fn sign_in(
        &self,
        record: EmailTokenRecord,
        context: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        let user = self
            .store
            .find_user_by_id(record.user_id)
            .await?
            .filter(|user| !user.disabled)
            .ok_or(AuthError::InvalidEmailToken)?;
        if !self
            .store
            .spend_sign_in_token(&record, self.clock.now())
            .await?
        {
            return Err(AuthError::InvalidEmailToken);
        }
        // An emailed code is one factor: an account with a second one must
        // present it, as after a password.
        let factors = self.factor_methods(user.id).await?;
        if !factors.is_empty() {
            return Err(self.step_up(&user, "otp", factors).await?);
        }
        let methods = super::AuthMethods::from(&["otp"][..]);
        let tokens = self.open_session(&user, true, &methods, context).await?;
        self.audit(
            AuditEvent::LoginSuccess,
            Some(user.id),
            context,
            "session opened by email",
        )
        .await;
        Ok(LoginOutcome {
            account: Account::from(user),
            tokens,
        })
    }

    /// The live token of `purpose` the presented secret designates.
    async fn live_token(
        &self,
        token: &SecretString,
        purpose: Purpose,
    ) -> Result<EmailTokenRecord, AuthError> {
        let token = token.expose_secret();
        // Ours are 43 characters; anything far off is not worth a query.
        if token.is_empty() || token.len() > 256 {
            return Err(AuthError::InvalidEmailToken);
        }
        self.store
            .find_email_token(&hash_secret(token), purpose.name(), self.clock.now())
            .await?
            .ok_or(AuthError::InvalidEmailToken)
    }

    /// A sign-in code's stored form: keyed with the instance's key and bound
    /// to its token, so neither a copy of the table nor equal codes of two
    /// tokens tell anything.
    fn code_hash(&self, token_hash: &str, code: &str) -> String {
        self.sealer
            .keyed_hash(code, &format!("sign-in:{token_hash}"))
    }

    /// Draws on the client's and the address's email budgets.
    async fn email_budget(&self, address: &str, context: &ClientContext) -> Result<(), AuthError> {
        self.throttle
            .admit_email(&normalize_login_name(address), context.ip)
            .await
            .map_err(AuthError::Throttled)
    }

    /// After the answer: finds the enabled account that has the address
    /// and queues the message `prepare` makes for it (with its tokens);
    /// nothing at all for an unknown or disabled account.
    fn mail_account_in_background<F>(
        self: &Arc<Self>,
        normalized: String,
        context: &ClientContext,
        notice: Notice,
        prepare: F,
    ) -> Result<(), AuthError>
    where
        F: FnOnce(&Self, &UserRecord) -> Result<(Outgoing, Facts), AuthError> + Send + 'static,
    {
        self.in_background(context, move |auth, context| async move {
            let Some(user) = auth.store.find_user_by_email(&normalized).await? else {
                return Ok(());
            };
            if user.disabled {
                return Ok(());
            }
            let (mut outgoing, facts) = prepare(&auth, &user)?;
            let preference = Self::preference(&user, &context);
            auth.queue(&mut outgoing, notice.kind, &user.email, &preference, &facts)?;
            auth.store
                .write_outgoing(&outgoing, auth.clock.now())
                .await?;
            auth.mail_queued();
            auth.audit(notice.event, Some(user.id), &context, notice.outcome)
                .await;
            Ok(())
        })
    }

    /// Runs `work` after the answer, bounded: when too much is already
    /// running, the request gets 503 (the same for every address).
    fn in_background<F, Fut>(
        self: &Arc<Self>,
        context: &ClientContext,
        work: F,
    ) -> Result<(), AuthError>
    where
        F: FnOnce(Arc<Self>, ClientContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), AuthError>> + Send + 'static,
    {
        let permit = Arc::clone(&self.mail.background)
            .try_acquire_owned()
            .map_err(|_| AuthError::Busy)?;
        let auth = Arc::clone(self);
        let context = context.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = work(auth, context).await {
                let error = crate::telemetry::error_chain(&error);
                tracing::error!(%error, "could not queue a message");
            }
        });
        Ok(())
    }
}

/// What a background message is and how it is audited.
struct Notice {
    kind: MessageKind,
    event: AuditEvent,
    outcome: &'static str,
}

/// The mail side of [`Auth`]: the renderer (when email is configured), the
/// delivery worker's doorbell, the flows' policy and the background budget.
pub struct MailSetup {
    pub mailer: Option<Arc<crate::mail::Mailer>>,
    /// The product's name, also the issuer of TOTP entries.
    pub product: String,
    pub wake: Arc<tokio::sync::Notify>,
    pub policy: EmailPolicy,
    pub background: Arc<tokio::sync::Semaphore>,
}

impl Default for MailSetup {
    fn default() -> Self {
        Self {
            mailer: None,
            product: "latchkey".to_owned(),
            wake: Arc::new(tokio::sync::Notify::new()),
            policy: EmailPolicy::default(),
            background: Arc::new(tokio::sync::Semaphore::new(BACKGROUND_LOOKUPS)),
        }
    }
}

impl MailSetup {
    pub fn product_name(&self) -> &str {
        &self.product
    }
}

/// Address lookups running after their answer, at most.
pub const BACKGROUND_LOOKUPS: usize = 256;

fn parse_email(raw: &str, field: &'static str) -> Result<EmailAddress, AuthError> {
    EmailAddress::parse(raw)
        .map_err(|invalid| AuthError::Invalid(vec![FieldProblem { field, invalid }]))
}

/// A uniformly drawn six-digit code.
fn six_digits() -> Result<String, AuthError> {
    let random = SystemRandom::new();
    loop {
        let mut bytes = [0u8; 4];
        random.fill(&mut bytes).map_err(|_| AuthError::Random)?;
        let value = u32::from_le_bytes(bytes);
        // Reject the top sliver so every code is equally likely.
        if value < u32::MAX - u32::MAX % 1_000_000 {
            return Ok(format!("{:06}", value % 1_000_000));
        }
    }
}
