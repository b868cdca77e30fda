//! Passkeys (WebAuthn, through webauthn-rs' core): registration, passwordless
//! sign-in with discoverable credentials, and a passkey as the second factor
//! of a password login.
//!
//! Every ceremony's state is stored under the hash of its challenge for 5
//! minutes and taken once, so any instance finishes what another started and
//! an answer cannot be replayed. User verification is preferred, not
//! required: a passkey that verified the user signs in at `aal2`, one that
//! did not at `aal1`. The signature counter only moves forward (a
//! conditional update), so a cloned authenticator is refused and audited.
//! `amr` says `swk` for a backup-eligible (synced, software-held) credential
//! and `hwk` for a device-bound one.

use std::time::Duration as StdDuration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use url::Url;
use uuid::Uuid;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AuthenticationResult, AuthenticationState, COSEAlgorithm, Credential, PublicKeyCredential,
    RegisterPublicKeyCredential, RegistrationState, ResidentKeyRequirement, UserVerificationPolicy,
};

use super::secrets::hash_secret;
use super::{
    Account, AuditEvent, Auth, AuthError, AuthMethods, ClientContext, FieldProblem, LoginOutcome,
    Principal,
};
use crate::domain::{Invalid, normalize_login_name};
use crate::store::{CeremonyRecord, NewPasskey, PasskeyRecord, UserRecord};

/// How long a ceremony waits for the browser's answer.
const CEREMONY_LIFETIME: Duration = Duration::minutes(5);
const MAX_PASSKEYS: usize = 20;
const MAX_NAME_CHARS: usize = 64;
/// How recent a sign-in must be to add a passkey.
const RECENT_SIGN_IN: Duration = Duration::minutes(15);

const REGISTER: &str = "register";
const LOGIN: &str = "login";
const STEP_UP: &str = "step_up";

/// The relying party passkeys are bound to: its id and allowed origins.
pub struct RelyingParty {
    core: WebauthnCore,
}

impl RelyingParty {
    /// `rp_id` must be a domain; each origin must be within it (`rp_id` or a
    /// subdomain), except loopback addresses, allowed for development.
    pub fn new(name: &str, rp_id: &str, origins: &[Url]) -> Result<Self, String> {
        let valid_id = !rp_id.is_empty()
            && rp_id.len() <= 253
            && rp_id.parse::<std::net::IpAddr>().is_err()
            && rp_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_id {
            return Err(format!(
                "{rp_id:?} is not a relying-party id (a lower-case domain such as example.com)"
            ));
        }
        if origins.is_empty() {
            return Err("name at least one origin".to_owned());
        }
        for origin in origins {
            let within = match origin.host() {
                Some(url::Host::Domain(host)) => {
                    host == rp_id || host.ends_with(&format!(".{rp_id}"))
                }
                Some(url::Host::Ipv4(address)) => address.is_loopback(),
                Some(url::Host::Ipv6(address)) => address.is_loopback(),
                None => false,
            };
            if !within {
                return Err(format!(
                    "the origin {} is not within the relying-party id {rp_id:?}",
                    origin.origin().ascii_serialization()
                ));
            }
        }
        let core = WebauthnCore::new_unsafe_experts_only(
            name,
            rp_id,
            origins.to_vec(),
            StdDuration::from_secs(300),
            Some(false),
            Some(false),
        );
        Ok(Self { core })
    }

    /// `localhost` over http on any port: what a server without settings uses.
    pub fn development() -> Self {
        let origin = Url::parse("http://localhost").expect("a constant URL");
        Self {
            core: WebauthnCore::new_unsafe_experts_only(
                "latchkey",
                "localhost",
                vec![origin],
                StdDuration::from_secs(300),
                Some(false),
                Some(true),
            ),
        }
    }
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeySummary {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Synced (or syncable) between devices.
    pub backup_eligible: bool,
    pub backed_up: bool,
}

/// How `DELETE /me/passkeys/{id}` proves it is the owner.
pub enum Reauthentication {
    Password(secrecy::SecretString),
    /// An assertion answering a `/login/passkey/start` challenge.
    Passkey(serde_json::Value),
}

/// A verified assertion: whose passkey, and how it was used.
struct Asserted {
    user: UserRecord,
    methods: AuthMethods,
}

impl Auth {
    fn relying_party(&self) -> &WebauthnCore {
        &self.passkeys.core
    }

    /// Stores a ceremony's state under its challenge.
    async fn begin_ceremony(
        &self,
        challenge: &[u8],
        purpose: &str,
        user_id: Option<Uuid>,
        mfa_token_hash: Option<String>,
        state: &impl serde::Serialize,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let ceremony = CeremonyRecord {
            purpose: purpose.to_owned(),
            user_id,
            mfa_token_hash,
            state: serde_json::to_string(state).map_err(|_| AuthError::Random)?,
        };
        self.store
            .insert_ceremony(
                &challenge_key(challenge),
                &ceremony,
                now,
                now + CEREMONY_LIFETIME,
            )
            .await?;
        Ok(())
    }

    /// The ceremony the answer's signed client data names, taken once.
    async fn take_ceremony(
        &self,
        client_data_json: &[u8],
        purpose: &str,
    ) -> Result<CeremonyRecord, AuthError> {
        #[derive(Deserialize)]
        struct ClientData {
            challenge: String,
        }
        let challenge = serde_json::from_slice::<ClientData>(client_data_json)
            .ok()
            .and_then(|data| decode_base64url(&data.challenge))
            .ok_or(AuthError::PasskeyRejected)?;
        self.store
            .take_ceremony(&challenge_key(&challenge), purpose, self.clock.now())
            .await?
            .ok_or(AuthError::PasskeyRejected)
    }

    /// `POST /me/passkeys/register/start`: creation options for the browser.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn start_passkey_registration(
        &self,
        principal: &Principal,
    ) -> Result<serde_json::Value, AuthError> {
        let user = self.current_user(principal).await?;
        self.require_recent_sign_in(principal).await?;
        let existing = self.stored_credentials(&user).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(AuthError::TooManyPasskeys);
        }
        let exclude = existing
            .iter()
            .map(|(_, credential)| credential.cred_id.clone())
            .collect();
        let builder = self
            .relying_party()
            .new_challenge_register_builder(user.id.as_bytes(), &user.username, &user.username)
            .map_err(AuthError::Webauthn)?
            .credential_algorithms(COSEAlgorithm::secure_algs())
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .exclude_credentials(Some(exclude));
        let (mut options, state) = self
            .relying_party()
            .generate_challenge_register(builder)
            .map_err(AuthError::Webauthn)?;
        // A discoverable credential where the authenticator can keep one, so
        // that it signs in without a username; never required.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
        }
        self.begin_ceremony(
            &options.public_key.challenge,
            REGISTER,
            Some(user.id),
            None,
            &state,
        )
        .await?;
        serde_json::to_value(&options).map_err(|_| AuthError::Random)
    }

    /// `POST /me/passkeys/register/finish`: verifies the new credential and
    /// stores it; the other sessions end, and the address gets a notice.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn finish_passkey_registration(
        &self,
        principal: &Principal,
        name: Option<&str>,
        credential: serde_json::Value,
        context: &ClientContext,
    ) -> Result<PasskeySummary, AuthError> {
        let name = passkey_name(name)?;
        let user = self.current_user(principal).await?;
        if self.store.passkey_count(user.id).await? >= MAX_PASSKEYS as u64 {
            return Err(AuthError::TooManyPasskeys);
        }
        let response: RegisterPublicKeyCredential =
            parse_credential(credential).ok_or(AuthError::PasskeyRejected)?;
        let ceremony = self
            .take_ceremony(&response.response.client_data_json, REGISTER)
            .await?;
        if ceremony.user_id != Some(user.id) {
            return Err(AuthError::PasskeyRejected);
        }
        let state: RegistrationState =
            serde_json::from_str(&ceremony.state).map_err(|_| AuthError::PasskeyRejected)?;
        let credential = self
            .relying_party()
            .register_credential(&response, &state, None)
            .map_err(|error| {
                tracing::info!(%error, "passkey registration refused");
                AuthError::PasskeyRejected
            })?;
        let stored = serde_json::to_string(&credential).map_err(|_| AuthError::Random)?;
        let key = challenge_key(&credential.cred_id);
        let record = self
            .store
            .insert_passkey(
                &NewPasskey {
                    user_id: user.id,
                    credential_key: &key,
                    name: &name,
                    credential: &stored,
                    sign_count: i64::from(credential.counter),
                },
                self.clock.now(),
            )
            .await
            .map_err(|error| match error {
                crate::store::StoreError::Conflict => AuthError::PasskeyRejected,
                other => AuthError::Store(other),
            })?;
        self.audit(AuditEvent::PasskeyAdded, Some(user.id), context, &name)
            .await;
        self.factors_changed(&user, principal, context, "A passkey was added")
            .await;
        Ok(summary(record, &credential))
    }

    /// Adding a sign-in method needs a session opened in the last 15
    /// minutes, so a stolen access token of an old session cannot plant a
    /// passkey of its own.
    async fn require_recent_sign_in(&self, principal: &Principal) -> Result<(), AuthError> {
        let recent = self
            .store
            .find_session(principal.session_id)
            .await?
            .is_some_and(|session| session.created_at > self.clock.now() - RECENT_SIGN_IN);
        if recent {
            Ok(())
        } else {
            Err(AuthError::Forbidden(
                "Sign in again to add a passkey (the session must be less than 15 minutes old)",
            ))
        }
    }

    /// `GET /me/passkeys`.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn list_passkeys(
        &self,
        principal: &Principal,
    ) -> Result<Vec<PasskeySummary>, AuthError> {
        let user = self.current_user(principal).await?;
        Ok(self
            .stored_credentials(&user)
            .await?
            .into_iter()
            .map(|(record, credential)| summary(record, &credential))
            .collect())
    }

    /// `PATCH /me/passkeys/{id}`.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn rename_passkey(
        &self,
        principal: &Principal,
        id: Uuid,
        name: Option<&str>,
    ) -> Result<PasskeySummary, AuthError> {
        let name = passkey_name(name)?;
        let user = self.current_user(principal).await?;
        if !self.store.rename_passkey(user.id, id, &name).await? {
            return Err(AuthError::PasskeyNotFound);
        }
        self.list_passkeys(principal)
            .await?
            .into_iter()
            .find(|passkey| passkey.id == id)
            .ok_or(AuthError::PasskeyNotFound)
    }

    /// `DELETE /me/passkeys/{id}`: with the password or a fresh assertion of
    /// one of the account's passkeys; the other sessions end.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn remove_passkey(
        &self,
        principal: &Principal,
        id: Uuid,
        proof: Reauthentication,
        context: &ClientContext,
    ) -> Result<(), AuthError> {
        let user = self.current_user(principal).await?;
        match proof {
            Reauthentication::Password(password) => {
                self.check_password(&user, &password, context).await?;
            }
            Reauthentication::Passkey(credential) => {
                let asserted = self.verify_discoverable(credential, context).await?;
                if asserted.user.id != user.id {
                    return Err(AuthError::PasskeyRejected);
                }
            }
        }
        if !self.store.delete_passkey(user.id, id).await? {
            return Err(AuthError::PasskeyNotFound);
        }
        self.audit(
            AuditEvent::PasskeyRemoved,
            Some(user.id),
            context,
            "other sessions ended",
        )
        .await;
        self.factors_changed(&user, principal, context, "A passkey was removed")
            .await;
        Ok(())
    }

    /// `POST /login/passkey/start`: request options for a discoverable
    /// credential (no username; works with conditional mediation).
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn start_passkey_login(&self) -> Result<serde_json::Value, AuthError> {
        let builder = self
            .relying_party()
            .new_challenge_authenticate_builder(Vec::new(), Some(UserVerificationPolicy::Preferred))
            .map_err(AuthError::Webauthn)?
            .allow_backup_eligible_upgrade(true);
        let (options, state) = self
            .relying_party()
            .generate_challenge_authenticate(builder)
            .map_err(AuthError::Webauthn)?;
        self.begin_ceremony(&options.public_key.challenge, LOGIN, None, None, &state)
            .await?;
        serde_json::to_value(&options).map_err(|_| AuthError::Random)
    }

    /// `POST /login/passkey/finish`: a passkey alone opens a session.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn finish_passkey_login(
        &self,
        credential: serde_json::Value,
        context: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        let asserted = match self.verify_discoverable(credential, context).await {
            Ok(asserted) => asserted,
            Err(error) => {
                if matches!(error, AuthError::PasskeyRejected) {
                    self.audit(AuditEvent::LoginFailure, None, context, "passkey refused")
                        .await;
                }
                return Err(error);
            }
        };
        let user = asserted.user;
        if self.mail.policy.require_verified && user.email_verified_at.is_none() {
            return Err(AuthError::EmailNotVerified);
        }
        let tokens = self
            .open_session(
                &user,
                user.email_verified_at.is_some(),
                &asserted.methods,
                context,
            )
            .await?;
        self.throttle
            .login_succeeded(&normalize_login_name(&user.username), context.ip)
            .await;
        self.audit(
            AuditEvent::LoginSuccess,
            Some(user.id),
            context,
            "session opened with a passkey",
        )
        .await;
        Ok(LoginOutcome {
            account: Account::from(user),
            tokens,
        })
    }

    /// An answer to a `/login/passkey/start` challenge, verified against the
    /// passkey it names, whose owner must be the user handle it carries.
    async fn verify_discoverable(
        &self,
        credential: serde_json::Value,
        context: &ClientContext,
    ) -> Result<Asserted, AuthError> {
        let response: PublicKeyCredential =
            parse_credential(credential).ok_or(AuthError::PasskeyRejected)?;
        let ceremony = self
            .take_ceremony(&response.response.client_data_json, LOGIN)
            .await?;
        let state: AuthenticationState =
            serde_json::from_str(&ceremony.state).map_err(|_| AuthError::PasskeyRejected)?;
        let record = self
            .store
            .passkey_by_key(&challenge_key(response.get_credential_id()))
            .await?
            .ok_or(AuthError::PasskeyRejected)?;
        let handle = response
            .get_user_unique_id()
            .and_then(|bytes| Uuid::from_slice(bytes).ok());
        if handle != Some(record.user_id) {
            return Err(AuthError::PasskeyRejected);
        }
        let user = self
            .store
            .find_user_by_id(record.user_id)
            .await?
            .filter(|user| !user.disabled)
            .ok_or(AuthError::PasskeyRejected)?;
        let methods = self
            .verify_assertion(&response, &state, &record, &user, context)
            .await?;
        Ok(Asserted {
            user,
            methods: AuthMethods::at_level(&[methods.0], methods.1),
        })
    }

    /// Checks an assertion against one stored passkey and moves its counter
    /// forward; the `amr` value it proves and whether the user was verified.
    async fn verify_assertion(
        &self,
        response: &PublicKeyCredential,
        state: &AuthenticationState,
        record: &PasskeyRecord,
        user: &UserRecord,
        context: &ClientContext,
    ) -> Result<(&'static str, bool), AuthError> {
        let mut credential: Credential =
            serde_json::from_str(&record.credential).map_err(|_| AuthError::PasskeyRejected)?;
        let result =
            match self
                .relying_party()
                .authenticate_single_credential(response, state, &credential)
            {
                Ok(result) => result,
                Err(WebauthnError::CredentialPossibleCompromise) => {
                    return Err(self.clone_suspected(user, context).await);
                }
                Err(error) => {
                    tracing::info!(%error, "passkey assertion refused");
                    return Err(AuthError::PasskeyRejected);
                }
            };
        update_credential(&mut credential, &result);
        let stored = serde_json::to_string(&credential).map_err(|_| AuthError::Random)?;
        if !self
            .store
            .record_passkey_use(
                record.id,
                i64::from(result.counter()),
                &stored,
                self.clock.now(),
            )
            .await?
        {
            return Err(self.clone_suspected(user, context).await);
        }
        let kind = if credential.backup_eligible {
            "swk"
        } else {
            "hwk"
        };
        Ok((kind, result.user_verified()))
    }

    async fn clone_suspected(&self, user: &UserRecord, context: &ClientContext) -> AuthError {
        tracing::warn!(user_id = %user.id, "a passkey's signature counter did not move forward: refused as a possible clone");
        self.audit(
            AuditEvent::PasskeyCloneSuspected,
            Some(user.id),
            context,
            "signature counter did not move forward",
        )
        .await;
        AuthError::PasskeyRejected
    }

    /// `POST /login/mfa/webauthn/start`: request options for the account's
    /// passkeys, bound to this `mfa_token`.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn start_mfa_passkey(
        &self,
        mfa_token: &secrecy::SecretString,
    ) -> Result<serde_json::Value, AuthError> {
        let challenge = self.live_mfa_challenge(mfa_token).await?;
        let user = self
            .store
            .find_user_by_id(challenge.user_id)
            .await?
            .ok_or(AuthError::InvalidMfaToken)?;
        let credentials: Vec<Credential> = self
            .stored_credentials(&user)
            .await?
            .into_iter()
            .map(|(_, credential)| credential)
            .collect();
        if credentials.is_empty() {
            return Err(AuthError::NoPasskey);
        }
        let builder = self
            .relying_party()
            .new_challenge_authenticate_builder(
                credentials,
                Some(UserVerificationPolicy::Preferred),
            )
            .map_err(AuthError::Webauthn)?
            .allow_backup_eligible_upgrade(true);
        let (options, state) = self
            .relying_party()
            .generate_challenge_authenticate(builder)
            .map_err(AuthError::Webauthn)?;
        self.begin_ceremony(
            &options.public_key.challenge,
            STEP_UP,
            Some(user.id),
            Some(challenge.token_hash),
            &state,
        )
        .await?;
        serde_json::to_value(&options).map_err(|_| AuthError::Random)
    }

    /// The second step with a passkey: the assertion must answer a challenge
    /// started for this `mfa_token`. `None` when it does not verify.
    pub(super) async fn check_passkey_factor(
        &self,
        user: &UserRecord,
        mfa_token_hash: &str,
        credential: &serde_json::Value,
        context: &ClientContext,
    ) -> Result<Option<(&'static str, bool)>, AuthError> {
        let Some(response) = parse_credential::<PublicKeyCredential>(credential.clone()) else {
            return Ok(None);
        };
        let ceremony = match self
            .take_ceremony(&response.response.client_data_json, STEP_UP)
            .await
        {
            Ok(ceremony) => ceremony,
            Err(AuthError::PasskeyRejected) => return Ok(None),
            Err(error) => return Err(error),
        };
        if ceremony.user_id != Some(user.id)
            || ceremony.mfa_token_hash.as_deref() != Some(mfa_token_hash)
        {
            return Ok(None);
        }
        let Ok(state) = serde_json::from_str::<AuthenticationState>(&ceremony.state) else {
            return Ok(None);
        };
        let Some(record) = self
            .store
            .passkey_by_key(&challenge_key(response.get_credential_id()))
            .await?
            .filter(|record| record.user_id == user.id)
        else {
            return Ok(None);
        };
        match self
            .verify_assertion(&response, &state, &record, user, context)
            .await
        {
            Ok(proved) => Ok(Some(proved)),
            Err(AuthError::PasskeyRejected) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The account's passkeys, each with its parsed credential; a row that
    /// does not parse is skipped (and logged), never fatal.
    async fn stored_credentials(
        &self,
        user: &UserRecord,
    ) -> Result<Vec<(PasskeyRecord, Credential)>, AuthError> {
        Ok(self
            .store
            .passkeys_of(user.id)
            .await?
            .into_iter()
            .filter_map(|record| match serde_json::from_str(&record.credential) {
                Ok(credential) => Some((record, credential)),
                Err(error) => {
                    tracing::error!(passkey_id = %record.id, %error, "a stored passkey does not parse");
                    None
                }
            })
            .collect())
    }
}

/// What webauthn-rs advises after a successful assertion: the counter
/// forward, the backup flags as the authenticator now reports them.
fn update_credential(credential: &mut Credential, result: &AuthenticationResult) {
    if result.counter() > credential.counter {
        credential.counter = result.counter();
    }
    credential.backup_state = result.backup_state();
    if result.backup_eligible() {
        credential.backup_eligible = true;
    }
}

fn summary(record: PasskeyRecord, credential: &Credential) -> PasskeySummary {
    PasskeySummary {
        id: record.id,
        name: record.name,
        created_at: record.created_at,
        last_used_at: record.last_used_at,
        backup_eligible: credential.backup_eligible,
        backed_up: credential.backup_state,
    }
}

/// A passkey's name: trimmed, 1 to 64 characters, no control characters;
/// `Passkey` when none is given.
fn passkey_name(name: Option<&str>) -> Result<String, AuthError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Ok("Passkey".to_owned());
    }
    let problem = if name.chars().count() > MAX_NAME_CHARS {
        Some("must be at most 64 characters")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    };
    match problem {
        Some(message) => Err(AuthError::Invalid(vec![FieldProblem {
            field: "name",
            invalid: Invalid::new("value_error", message),
        }])),
        None => Ok(name.to_owned()),
    }
}

/// SHA-256 (hex) of a challenge or credential id: the key it is stored under.
fn challenge_key(bytes: &[u8]) -> String {
    hash_secret(&URL_SAFE_NO_PAD.encode(bytes))
}

/// Base64url with or without padding, or standard base64: browsers and
/// libraries differ in what they send.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(normalized).ok()
}

/// A browser's credential JSON in the library's form: its binary fields
/// re-encoded as unpadded base64url whatever base64 they came in.
fn parse_credential<T: serde::de::DeserializeOwned>(mut value: serde_json::Value) -> Option<T> {
    fn normalize(field: Option<&mut serde_json::Value>) {
        if let Some(slot) = field
            && let Some(text) = slot.as_str()
            && let Some(bytes) = decode_base64url(text)
        {
            *slot = serde_json::Value::String(URL_SAFE_NO_PAD.encode(bytes));
        }
    }
    let object = value.as_object_mut()?;
    normalize(object.get_mut("rawId"));
    normalize(object.get_mut("id"));
    if let Some(response) = object.get_mut("response").and_then(|r| r.as_object_mut()) {
        for field in [
            "clientDataJSON",
            "attestationObject",
            "authenticatorData",
            "signature",
            "userHandle",
        ] {
            normalize(response.get_mut(field));
        }
    }
    serde_json::from_value(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_any_dialect_decodes_the_same() {
        let bytes = [0xfb, 0xff, 0x00, 0x10];
        let url = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(decode_base64url(&url).as_deref(), Some(&bytes[..]));
        assert_eq!(decode_base64url("+/8AEA==").as_deref(), Some(&bytes[..]));
        assert_eq!(decode_base64url("-_8AEA==").as_deref(), Some(&bytes[..]));
        assert!(decode_base64url("not base64!").is_none());
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(passkey_name(None).unwrap(), "Passkey");
        assert_eq!(passkey_name(Some("  Laptop ")).unwrap(), "Laptop");
        assert!(passkey_name(Some(&"x".repeat(65))).is_err());
        assert!(passkey_name(Some("a\u{0}b")).is_err());
    }

    #[test]
    fn the_relying_party_id_must_cover_every_origin() {
        let origin = |text: &str| Url::parse(text).unwrap();
        assert!(RelyingParty::new("x", "example.com", &[origin("https://id.example.com")]).is_ok());
        assert!(RelyingParty::new("x", "example.com", &[origin("https://example.org")]).is_err());
        assert!(RelyingParty::new("x", "localhost", &[origin("http://127.0.0.1:8080")]).is_ok());
        assert!(RelyingParty::new("x", "127.0.0.1", &[origin("http://127.0.0.1:8080")]).is_err());
        assert!(RelyingParty::new("x", "Example.com", &[origin("https://example.com")]).is_err());
    }

    #[test]
    fn a_stated_level_survives_storage() {
        let methods = AuthMethods::at_level(&["swk"], true);
        let stored = methods.stored();
        assert_eq!(stored, "swk;aal2");
        let parsed = AuthMethods::parse(Some(&stored));
        assert_eq!(parsed, methods);
        assert_eq!(parsed.acr(), "aal2");
        assert_eq!(AuthMethods::at_level(&["hwk"], false).acr(), "aal1");
        assert_eq!(AuthMethods::parse(Some("pwd,otp,mfa")).acr(), "aal2");
        assert_eq!(AuthMethods::parse(None).acr(), "aal1");
    }
}
