//! Second factors: TOTP (RFC 6238: SHA-1, 6 digits, 30 s, one step of drift
//! either way, each time step accepted once), recovery codes, and the step-up
//! a login takes when the account has a factor.
//!
//! For such an account the right password yields no token anywhere (`/login`,
//! the password grant): only an `mfa_token` (256 random bits, stored hashed,
//! single use, 5 minutes, bound to the account and its credential, 5 tries),
//! which `/login/mfa` exchanges with a code for tokens. Wrong codes count
//! towards the account's lockout like wrong passwords. The TOTP secret is
//! sealed at rest ([`super::sealing`]).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

use super::secrets::{hash_secret, new_secret};
use super::{
    Account, AuditEvent, Auth, AuthError, AuthMethods, ClientContext, LoginOutcome, Principal,
};
use crate::domain::normalize_login_name;
use crate::store::{ChallengeRecord, UserRecord};

const MFA_TOKEN_LIFETIME: Duration = Duration::minutes(5);
const MFA_TRIES: i32 = 5;
const RECOVERY_CODES: usize = 10;
const TOTP_STEP_SECONDS: u64 = 30;

/// What `POST /me/mfa/totp` answers: the secret three ways.
pub struct TotpEnrolment {
    /// Base32, for typing into an app.
    pub secret: SecretString,
    pub otpauth_uri: SecretString,
    pub qr_svg: String,
}

/// The second factor presented at `/login/mfa`.
pub enum SecondFactor {
    Code(SecretString),
    RecoveryCode(SecretString),
    /// An assertion answering `/login/mfa/webauthn/start`.
    Passkey(serde_json::Value),
}

impl Auth {
    fn totp_binding(user_id: Uuid) -> String {
        format!("totp:{user_id}")
    }

    fn totp(secret: &[u8]) -> Result<Totp, AuthError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(TOTP_STEP_SECONDS)
            .with_secret(secret.to_vec())
            .build()
            .map_err(|_| AuthError::Random)
    }

    /// The time step a code is valid for now (±1 step), if any.
    fn totp_step(&self, user_id: Uuid, sealed: &str, code: &str) -> Result<Option<i64>, AuthError> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let secret = self.sealer.open(sealed, &Self::totp_binding(user_id))?;
        let totp = Self::totp(&secret)?;
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or_default();
        Ok(totp
            .check(code, now)
            .and_then(|counter| i64::try_from(counter).ok()))
    }

    /// The second-factor methods an account has, for `mfa_methods`; empty
    /// when it has none.
    pub(crate) async fn factor_methods(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<&'static str>, AuthError> {
        let mut methods = Vec::new();
        if self
            .store
            .totp_factor(user_id)
            .await?
            .is_some_and(|factor| factor.confirmed)
        {
            methods.push("totp");
        }
        if self.store.passkey_count(user_id).await? > 0 {
            methods.push("webauthn");
        }
        if !methods.is_empty() && self.store.recovery_codes_left(user_id).await? > 0 {
            methods.push("recovery_code");
        }
        Ok(methods)
    }

    /// A challenge for a login whose password was right on an account with
    /// factors: the error that carries its `mfa_token`.
    /// `first_factor` is how the first step authenticated: `pwd`, or `otp`
    /// for an emailed sign-in code.
    pub(crate) async fn step_up(
        &self,
        user: &UserRecord,
        first_factor: &str,
        methods: Vec<&'static str>,
    ) -> Result<AuthError, AuthError> {
        let (token, token_hash) = new_secret()?;
        let now = self.clock.now();
        self.store
            .insert_mfa_challenge(
                &token_hash,
                user.id,
                user.credential_version,
                first_factor,
                now,
                now + MFA_TOKEN_LIFETIME,
            )
            .await?;
        Ok(AuthError::MfaRequired {
            mfa_token: token,
            methods,
        })
    }

    /// `POST /login/mfa`: the challenge and a second factor, for tokens.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn login_second_factor(
        &self,
        mfa_token: &SecretString,
        factor: SecondFactor,
        context: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        let challenge = self.live_mfa_challenge(mfa_token).await?;
        let user = self
            .store
            .find_user_by_id(challenge.user_id)
            .await?
            .filter(|user| {
                !user.disabled && user.credential_version == challenge.credential_version
            })
            .ok_or(AuthError::InvalidMfaToken)?;
        let account_key = normalize_login_name(&user.username);
        self.refuse_while_locked(&account_key, Some(user.id), context)
            .await?;
        if !self
            .store
            .count_mfa_try(&challenge.token_hash, MFA_TRIES)
            .await?
        {
            return Err(AuthError::InvalidMfaToken);
        }
        let methods = match self
            .check_factor(&user, &challenge, &factor, context)
            .await?
        {
            Some(methods) => methods,
            None => {
                self.count_wrong_password(
                    &account_key,
                    Some(user.id),
                    context,
                    "wrong second factor",
                )
                .await;
                return Err(AuthError::InvalidMfaCode);
            }
        };
        self.finish_challenge(&challenge, &user, &account_key, &methods, context)
            .await
    }

    /// The unspent, unexpired challenge an `mfa_token` names.
    pub(super) async fn live_mfa_challenge(
        &self,
        mfa_token: &SecretString,
    ) -> Result<ChallengeRecord, AuthError> {
        let presented = mfa_token.expose_secret();
        if presented.is_empty() || presented.len() > 256 {
            return Err(AuthError::InvalidMfaToken);
        }
        self.store
            .find_mfa_challenge(&hash_secret(presented), self.clock.now())
            .await?
            .ok_or(AuthError::InvalidMfaToken)
    }

    /// Whether `factor` is right for `user` now; the methods it proves.
    async fn check_factor(
        &self,
        user: &UserRecord,
        challenge: &ChallengeRecord,
        factor: &SecondFactor,
        context: &ClientContext,
    ) -> Result<Option<AuthMethods>, AuthError> {
        let first = if challenge.first_factor == "otp" {
            "otp"
        } else {
            "pwd"
        };
        let now = self.clock.now();
        match factor {
            SecondFactor::Code(code) => {
                let Some(totp) = self
                    .store
                    .totp_factor(user.id)
                    .await?
                    .filter(|f| f.confirmed)
                else {
                    return Ok(None);
                };
                let Some(step) =
                    self.totp_step(user.id, &totp.sealed_secret, code.expose_secret())?
                else {
                    return Ok(None);
                };
                // Each time step once: a replayed code is refused.
                let fresh = self.store.accept_totp_step(user.id, step, None).await?;
                let methods: &[&str] = if first == "otp" {
                    &["otp", "mfa"]
                } else {
                    &["pwd", "otp", "mfa"]
                };
                Ok(fresh.then(|| AuthMethods::from(methods)))
            }
            SecondFactor::RecoveryCode(code) => {
                let hash = self.recovery_code_hash(user.id, code.expose_secret());
                let used = self.store.use_recovery_code(user.id, &hash, now).await?;
                Ok(used.then(|| AuthMethods::from(&[first, "mfa"][..])))
            }
            SecondFactor::Passkey(credential) => Ok(self
                .check_passkey_factor(user, &challenge.token_hash, credential, context)
                .await?
                .map(|(kind, _)| AuthMethods::from(&[first, kind, "mfa"][..]))),
        }
    }

    async fn finish_challenge(
        &self,
        challenge: &ChallengeRecord,
        user: &UserRecord,
        account_key: &str,
        methods: &AuthMethods,
        context: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        if !self
            .store
            .spend_mfa_challenge(&challenge.token_hash, self.clock.now())
            .await?
        {
            return Err(AuthError::InvalidMfaToken);
        }
        let tokens = self
            .open_session(user, user.email_verified_at.is_some(), methods, context)
            .await?;
        self.throttle.login_succeeded(account_key, context.ip).await;
        self.audit(
            AuditEvent::LoginSuccess,
            Some(user.id),
            context,
            "session opened with a second factor",
        )
        .await;
        Ok(LoginOutcome {
            account: Account::from(user.clone()),
            tokens,
        })
    }

    /// `POST /me/mfa/totp`: a new secret, pending until a code confirms it.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn start_totp(
        &self,
        principal: &Principal,
        password: &SecretString,
        context: &ClientContext,
    ) -> Result<TotpEnrolment, AuthError> {
        let user = self.current_user(principal).await?;
        self.check_password(&user, password, context).await?;
        let mut bytes = zeroize::Zeroizing::new([0u8; 20]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| AuthError::Random)?;
        let sealed = self
            .sealer
            .seal(bytes.as_ref(), &Self::totp_binding(user.id))?;
        if !self
            .store
            .put_pending_totp(user.id, &sealed, self.clock.now())
            .await?
        {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        let secret = Secret::from(bytes.to_vec()).to_base32();
        let issuer = self.mail.product_name();
        let label = format!("{issuer}:{}", user.username);
        let encode = |text: &str| {
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        let uri = format!(
            "otpauth://totp/{}?secret={secret}&issuer={}&algorithm=SHA1&digits=6&period={TOTP_STEP_SECONDS}",
            encode(&label),
            encode(issuer),
        );
        let qr_svg = qrcode::QrCode::new(uri.as_bytes())
            .map_err(|_| AuthError::Random)?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        Ok(TotpEnrolment {
            secret: SecretString::from(secret),
            otpauth_uri: SecretString::from(uri),
            qr_svg,
        })
    }

    /// `POST /me/mfa/totp/confirm`: a code proves the app has the secret; the
    /// factor becomes active with 10 new recovery codes, returned once.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        code: &SecretString,
        context: &ClientContext,
    ) -> Result<Vec<SecretString>, AuthError> {
        let user = self.current_user(principal).await?;
        let pending = self
            .store
            .totp_factor(user.id)
            .await?
            .filter(|factor| !factor.confirmed)
            .ok_or(AuthError::TotpNotPending)?;
        let step = self
            .totp_step(user.id, &pending.sealed_secret, code.expose_secret())?
            .ok_or(AuthError::InvalidMfaCode)?;
        let (codes, hashes) = self.recovery_codes(user.id)?;
        if !self
            .store
            .accept_totp_step(user.id, step, Some((&hashes, self.clock.now())))
            .await?
        {
            return Err(AuthError::InvalidMfaCode);
        }
        self.audit(AuditEvent::MfaEnabled, Some(user.id), context, "totp")
            .await;
        self.factors_changed(
            &user,
            principal,
            context,
            "A second factor (an authenticator app) was added",
        )
        .await;
        Ok(codes)
    }

    /// `POST /me/mfa/recovery-codes`: 10 new codes replace the old ones;
    /// the other sessions end.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        password: &SecretString,
        context: &ClientContext,
    ) -> Result<Vec<SecretString>, AuthError> {
        let user = self.current_user(principal).await?;
        self.check_password(&user, password, context).await?;
        if self.factor_methods(user.id).await?.is_empty() {
            return Err(AuthError::TotpNotEnabled);
        }
        let (codes, hashes) = self.recovery_codes(user.id)?;
        self.store
            .replace_recovery_codes(user.id, &hashes, self.clock.now())
            .await?;
        self.audit(
            AuditEvent::RecoveryCodesRegenerated,
            Some(user.id),
            context,
            "other sessions ended",
        )
        .await;
        self.factors_changed(
            &user,
            principal,
            context,
            "New recovery codes were made; the old ones no longer work",
        )
        .await;
        Ok(codes)
    }

    /// `DELETE /me/mfa/totp`: with the password and a current code; the
    /// recovery codes go with it, and the other sessions end.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn remove_totp(
        &self,
        principal: &Principal,
        password: &SecretString,
        code: &SecretString,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let user = self.current_user(principal).await?;
        let account_key = normalize_login_name(&user.username);
        // The failure count stays until the code is right too.
        self.check_password_keeping_count(&user, password, context)
            .await?;
        if !self.check_current_totp(&user, code, context).await? {
            return Err(AuthError::InvalidMfaCode);
        }
        self.throttle
            .login_succeeded(&account_key, context.ip)
            .await;
        self.store.remove_totp(user.id).await?;
        self.audit(
            AuditEvent::MfaDisabled,
            Some(user.id),
            context,
            "totp removed",
        )
        .await;
        self.factors_changed(
            &user,
            principal,
            context,
            "The authenticator app was removed from your account",
        )
        .await;
        Ok(())
    }

    /// `latchkey users mfa-reset NAME`: removes every factor (support) and
    /// tells the account's address. `None`: no such account; `Some(false)`:
    /// it had no factor.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn reset_factors(&self, login_name: &str) -> Result<Option<bool>, AuthError> {
        let Some(user) = self
            .store
            .find_user_by_login(&normalize_login_name(login_name))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(
            self.remove_every_factor(&user, "every factor removed by an operator")
                .await?,
        ))
    }

    /// Removes TOTP, passkeys and recovery codes; audits it and tells the
    /// account's address. `false` when it had none.
    pub(super) async fn remove_every_factor(
        &self,
        user: &UserRecord,
        outcome: &str,
    ) -> Result<bool, AuthError> {
        let passkeys = self.store.delete_passkeys_of(user.id).await?;
        if !self.store.remove_factors(user.id).await? && passkeys == 0 {
            return Ok(false);
        }
        let operator = ClientContext {
            user_agent: Some("latchkey command line".to_owned()),
            ..ClientContext::default()
        };
        self.audit(AuditEvent::MfaDisabled, Some(user.id), &operator, outcome)
            .await;
        let notice = self.security_notice(
            user,
            &operator,
            "Support removed every second factor from your account; it is protected by its password alone",
        )?;
        if !notice.is_empty() {
            self.store.write_outgoing(&notice, self.clock.now()).await?;
            self.mail_queued();
        }
        Ok(true)
    }

    /// Whether `code` is the account's current TOTP code (each time step
    /// once); a wrong one counts towards the lockout.
    pub(super) async fn check_current_totp(
        &self,
        user: &UserRecord,
        code: &SecretString,
        context: &ClientContext,
    ) -> Result<bool, AuthError> {
        let Some(totp) = self
            .store
            .totp_factor(user.id)
            .await?
            .filter(|factor| factor.confirmed)
        else {
            return Err(AuthError::TotpNotEnabled);
        };
        let fresh = match self.totp_step(user.id, &totp.sealed_secret, code.expose_secret())? {
            Some(step) => self.store.accept_totp_step(user.id, step, None).await?,
            None => false,
        };
        if !fresh {
            let account_key = normalize_login_name(&user.username);
            self.count_wrong_password(&account_key, Some(user.id), context, "wrong second factor")
                .await;
        }
        Ok(fresh)
    }

    /// After a change of factors (already committed): the other sessions end,
    /// and the account's address gets a notice when email is configured.
    /// Best effort, so the caller still receives its new recovery codes; a
    /// failure is logged.
    pub(super) async fn factors_changed(
        &self,
        user: &UserRecord,
        principal: &Principal,
        context: &ClientContext,
        what: &str,
    ) {
        let now = self.clock.now();
        let follow_up = async {
            self.store
                .revoke_user_sessions(user.id, Some(principal.session_id), "factors_changed", now)
                .await?;
            let notice = self.security_notice(user, context, what)?;
            if !notice.is_empty() {
                self.store.write_outgoing(&notice, now).await?;
                self.mail_queued();
            }
            self.sync_revocations().await
        };
        if let Err(error) = follow_up.await {
            let error = crate::telemetry::error_chain(&error);
            tracing::error!(user_id = %user.id, %error, "second factors changed, but the other sessions or the notice could not follow");
        }
    }

    /// The keyed hash a recovery code is stored as.
    fn recovery_code_hash(&self, user_id: Uuid, code: &str) -> String {
        self.sealer.keyed_hash(
            &normalize_recovery_code(code),
            &format!("recovery:{user_id}"),
        )
    }

    /// Ten codes of 10 base32 characters (50 bits) as `xxxxx-xxxxx`, and
    /// their keyed hashes.
    fn recovery_codes(&self, user_id: Uuid) -> Result<(Vec<SecretString>, Vec<String>), AuthError> {
        let random = SystemRandom::new();
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let mut bytes = [0u8; 10];
            random.fill(&mut bytes).map_err(|_| AuthError::Random)?;
            let text: String = bytes
                .iter()
                .map(|byte| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[usize::from(byte % 32)]))
                .collect();
            let code = format!("{}-{}", &text[..5], &text[5..]);
            hashes.push(self.recovery_code_hash(user_id, &code));
            codes.push(SecretString::from(code));
        }
        Ok((codes, hashes))
    }
}

/// Lower case, without spaces or dashes: how a code is typed does not matter.
fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .take(64)
        .collect()
}
