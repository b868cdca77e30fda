//! OpenID Connect provider: the authorization code flow with PKCE (RFC 6749
//! section 4.1, RFC 7636, OpenID Connect Core 1.0), client credentials,
//! ID tokens, consents, and the browser sessions the hosted pages keep.
//!
//! Rules kept here: a redirect URI is matched exactly against the client's
//! list, and until it is, nothing is sent to it; a public client must use
//! PKCE with S256; a code works once, for 60 seconds, for the client,
//! redirect URI and verifier it was issued to, and a second use ends the
//! session the first one opened.

use std::collections::HashMap;

use aws_lc_rs::digest::{SHA256, SHA512, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::store::{ClientRecord, CodeRecord, CodeUse, SessionRecord, UserRecord};

use super::secrets::{hash_secret, hashes_match, new_secret};
use super::{Auth, AuthError, AuthMethods, ClientContext, Principal, TokenPair};

/// The scopes latchkey knows; a client may be limited to fewer.
pub const SUPPORTED_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// How long an authorization code lives.
const CODE_LIFETIME_SECONDS: i64 = 60;
/// Parameters longer than this are refused (a nonce or a state is an opaque value).
const MAX_PARAMETER_CHARS: usize = 1024;
/// How often a browser session's last use is written (it keeps it from idling out).
const TOUCH_EVERY_SECONDS: i64 = 60;

/// The reason shown when the database could not be asked about a client:
/// the page answers 503, not 400.
pub const CLIENT_LOOKUP_FAILED: &str = "the client could not be looked up; try again";

/// Why an authorization request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI is unknown or unproven: the error is
    /// shown on a page, and nothing is sent anywhere (RFC 6749 section 4.1.2.1).
    Page(&'static str),
    /// Sent back to the (verified) redirect URI.
    Redirect(RedirectError),
}

/// An error response to a verified redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub error: &'static str,
    pub description: &'static str,
}

/// What `prompt` asked for (a set: `login consent` asks for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prompt {
    /// Answer at once: `login_required` or `consent_required` rather than a page.
    pub none: bool,
    /// Sign in again even with a session.
    pub login: bool,
    /// Ask for consent even when it was given before.
    pub consent: bool,
}

/// An authorization request whose client and redirect URI are proven.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: ClientRecord,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// Sent back from `prompt=login`: the sign-in must be this recent (Unix milliseconds).
    pub signed_in_after: Option<i64>,
}

impl AuthorizationRequest {
    /// An error to send back to the client.
    pub fn refuse(&self, error: &'static str, description: &'static str) -> RedirectError {
        RedirectError {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            error,
            description,
        }
    }

    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// A browser's sign-in on the hosted pages: a latchkey session, named by a cookie.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub principal: Principal,
    pub user: UserRecord,
    /// When the user authenticated (the session's start).
    pub auth_time: DateTime<Utc>,
    pub methods: AuthMethods,
}

/// What the code exchange hands out.
pub struct CodeTokens {
    pub tokens: TokenPair,
    /// Only with `offline_access`.
    pub refresh: bool,
    pub id_token: Option<String>,
    pub scope: String,
}

/// A machine client's token.
pub struct MachineToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
}

/// A client to create.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub first_party: bool,
    pub scopes: Vec<String>,
    /// A machine client, allowed the client-credentials grant.
    pub client_credentials: bool,
}

/// A consent, for the account page.
#[derive(Debug, Clone)]
pub struct GivenConsent {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: DateTime<Utc>,
}

/// How the token endpoint's caller identified itself.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    pub id: Option<String>,
    pub secret: Option<String>,
}

/// An `id_token_hint` that verified: who is signing out, from which client.
#[derive(Debug, Clone)]
pub struct LogoutHint {
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
}

/// Whether `uri` may be registered as a redirect URI: absolute, no
/// fragment, https or http on a loopback host (RFC 8252), or a private-use
/// scheme for native apps.
pub fn valid_redirect_uri(uri: &str) -> bool {
    let Ok(parsed) = url::Url::parse(uri) else {
        return false;
    };
    if parsed.fragment().is_some() || uri.len() > 2000 {
        return false;
    }
    match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        // javascript:, data: and the like must never be a redirect target.
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" => false,
        scheme => scheme.contains('.'),
    }
}

/// The S256 challenge of a verifier (RFC 7636 section 4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// RFC 7636 section 4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn valid_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
}

/// `at_hash` (OpenID Connect Core section 3.1.3.6): the left half of the
/// access token's hash, the hash being SHA-512 for Ed25519 and SHA-256 for HS256.
fn at_hash(access_token: &str, algorithm: &str) -> String {
    let hashed = if algorithm == "EdDSA" {
        digest(&SHA512, access_token.as_bytes())
    } else {
        digest(&SHA256, access_token.as_bytes())
    };
    let bytes = hashed.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

/// `prompt`'s values (OpenID Connect Core section 3.1.2.1); `none` stands alone.
pub fn parse_prompt(value: Option<&str>) -> Result<Prompt, &'static str> {
    let mut prompt = Prompt::default();
    let values: Vec<&str> = value.unwrap_or_default().split_whitespace().collect();
    for value in &values {
        match *value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {}
            _ => return Err("prompt has an unknown value"),
        }
    }
    if prompt.none && values.len() > 1 {
        return Err("prompt=none cannot be combined with other values");
    }
    Ok(prompt)
}

impl Auth {
    /// Whether sign-in needs a verified address.
    pub fn requires_verified_email(&self) -> bool {
        self.mail.policy.require_verified
    }

    /// Whether emailed sign-in codes are on.
    pub fn email_sign_in_enabled(&self) -> bool {
        self.mail.policy.sign_in_enabled
    }

    /// Whether OpenID Connect is available: ID tokens need latchkey's own
    /// (published) keys, which `SECRET_KEY` mode does not have.
    pub fn oidc_available(&self) -> bool {
        self.tokens.keyring().is_stored()
    }

    /// The client an authorization request names, and the request checked
    /// against it.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn authorization_request(
        &self,
        query: &str,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let mut params: HashMap<String, String> = HashMap::new();
        let mut repeated: Vec<String> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                repeated.push(name.into_owned());
            }
        }
        let page = AuthorizeError::Page;
        if repeated
            .iter()
            .any(|name| name == "client_id" || name == "redirect_uri")
        {
            return Err(page("client_id or redirect_uri is repeated"));
        }
        let client_id = params
            .get("client_id")
            .filter(|id| !id.is_empty())
            .ok_or(page("client_id is missing"))?;
        let client = self
            .find_oidc_client(client_id)
            .await
            .map_err(|_| page(CLIENT_LOOKUP_FAILED))?
            .filter(|client| !client.redirect_uris.is_empty())
            .ok_or(page("the client is unknown"))?;
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or(page("redirect_uri is missing"))?;
        // Exactly as registered: no prefix, no normalisation.
        if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
            return Err(page("redirect_uri is not registered for this client"));
        }
        let state = params.get("state").cloned();
        let refuse = |error, description| {
            AuthorizeError::Redirect(RedirectError {
                redirect_uri: redirect_uri.clone(),
                state: state.clone(),
                error,
                description,
            })
        };
        if !repeated.is_empty() {
            return Err(refuse("invalid_request", "a parameter is repeated"));
        }
        if params
            .values()
            .any(|value| value.chars().count() > MAX_PARAMETER_CHARS)
        {
            return Err(refuse("invalid_request", "a parameter is too long"));
        }
        if params
            .values()
            .any(|value| value.chars().any(char::is_control))
        {
            return Err(refuse(
                "invalid_request",
                "a parameter holds control characters",
            ));
        }
        if !self.oidc_available() {
            return Err(refuse(
                "server_error",
                "OpenID Connect needs latchkey's own signing keys (SECRET_KEY is set)",
            ));
        }
        if params.contains_key("request") || params.contains_key("request_uri") {
            return Err(refuse(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        match params.get("response_type").map(String::as_str) {
            Some("code") => {}
            None => return Err(refuse("invalid_request", "response_type is missing")),
            Some(_) => {
                return Err(refuse(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        if params
            .get("response_mode")
            .is_some_and(|mode| mode != "query")
        {
            return Err(refuse(
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in params
            .get("scope")
            .map(String::as_str)
            .unwrap_or_default()
            .split_whitespace()
        {
            let allowed = SUPPORTED_SCOPES.contains(&scope)
                && (client.scopes.is_empty() || client.scopes.iter().any(|s| s == scope));
            if !allowed {
                return Err(refuse(
                    "invalid_scope",
                    "a scope is unknown or not allowed for this client",
                ));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if scopes.is_empty() {
            return Err(refuse("invalid_scope", "scope is missing"));
        }
        let code_challenge = match (
            params.get("code_challenge"),
            params.get("code_challenge_method").map(String::as_str),
        ) {
            (Some(challenge), Some("S256")) => {
                // The S256 of a verifier: 43 characters of base64url.
                if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
                    return Err(refuse("invalid_request", "code_challenge is malformed"));
                }
                Some(challenge.clone())
            }
            (Some(_), None | Some("plain")) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
            (None, Some(_)) => {
                return Err(refuse("invalid_request", "code_challenge is missing"));
            }
            (None, None) if client.public => {
                return Err(refuse(
                    "invalid_request",
                    "PKCE (code_challenge with S256) is required for this client",
                ));
            }
            (None, None) => None,
        };
        let prompt = parse_prompt(params.get("prompt").map(String::as_str))
            .map_err(|description| refuse("invalid_request", description))?;
        let max_age = match params.get("max_age") {
            None => None,
            Some(text) => Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|age| *age >= 0)
                    .ok_or_else(|| {
                        refuse(
                            "invalid_request",
                            "max_age must be a whole number of seconds",
                        )
                    })?,
            ),
        };
        let signed_in_after = match params.get("login_after") {
            None => None,
            Some(value) => Some(
                self.login_after(value)
                    .ok_or_else(|| refuse("invalid_request", "login_after is not valid"))?,
            ),
        };
        Ok(AuthorizationRequest {
            signed_in_after,
            redirect_uri: redirect_uri.clone(),
            scopes,
            state,
            nonce: params.get("nonce").cloned(),
            code_challenge,
            prompt,
            max_age,
            login_hint: params.get("login_hint").cloned(),
            client,
        })
    }

    /// Whether a signed-in user must sign in again for `request`.
    pub fn needs_fresh_sign_in(
        &self,
        request: &AuthorizationRequest,
        session: &BrowserSession,
    ) -> bool {
        let age = (self.clock.now() - session.auth_time).num_seconds();
        request.max_age.is_some_and(|max| age > max)
            || request
                .signed_in_after
                .is_some_and(|after| session.auth_time.timestamp_millis() < after)
    }

    /// The value of `login_after`, which a request sent to sign in again
    /// (`prompt=login`) comes back with: the time, and a MAC so that no one
    /// can make a request that asks for less.
    pub fn login_after_now(&self) -> String {
        let now = self.clock.now().timestamp_millis().to_string();
        let mac = self.sealer.keyed_hash(&now, "login-after");
        format!("{now}.{mac}")
    }

    fn login_after(&self, value: &str) -> Option<i64> {
        let (time, mac) = value.split_once('.')?;
        let expected = self.sealer.keyed_hash(time, "login-after");
        bool::from(expected.as_bytes().ct_eq(mac.as_bytes()))
            .then(|| time.parse().ok())
            .flatten()
    }

    /// Whether `user` must be asked before `client` gets `scopes`.
    pub async fn needs_consent(
        &self,
        user_id: Uuid,
        request: &AuthorizationRequest,
    ) -> Result<bool, AuthError> {
        if request.client.first_party {
            return Ok(false);
        }
        if request.prompt.consent {
            return Ok(true);
        }
        let given = self.store.find_consent(user_id, &request.client.id).await?;
        Ok(!given.is_some_and(|given| {
            let granted: Vec<&str> = given.scope.split_whitespace().collect();
            request
                .scopes
                .iter()
                .all(|scope| granted.contains(&scope.as_str()))
        }))
    }

    /// Remembers that `user` allowed `request`'s scopes (with what was allowed before).
    pub async fn grant_consent(
        &self,
        user_id: Uuid,
        request: &AuthorizationRequest,
    ) -> Result<(), AuthError> {
        let mut scopes = request.scopes.clone();
        if let Some(given) = self.store.find_consent(user_id, &request.client.id).await? {
            for scope in given.scope.split_whitespace() {
                if !scopes.iter().any(|s| s == scope) {
                    scopes.push(scope.to_owned());
                }
            }
        }
        self.store
            .save_consent(
                user_id,
                &request.client.id,
                &scopes.join(" "),
                self.clock.now(),
            )
            .await?;
        Ok(())
    }

    /// The consents `user` has given, with the clients' names.
    pub async fn consents(&self, user_id: Uuid) -> Result<Vec<GivenConsent>, AuthError> {
        let mut given = Vec::new();
        for consent in self.store.list_consents(user_id).await? {
            let client_name = self
                .store
                .find_client(&consent.client_id)
                .await?
                .map_or_else(|| consent.client_id.clone(), |client| client.name);
            given.push(GivenConsent {
                client_id: consent.client_id,
                client_name,
                scopes: consent
                    .scope
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                granted_at: consent.granted_at,
            });
        }
        Ok(given)
    }

    /// Withdraws a consent: the client's sessions end (its tokens stop, its
    /// refresh tokens with them) and it must ask again.
    pub async fn revoke_consent(&self, user_id: Uuid, client_id: &str) -> Result<bool, AuthError> {
        // Ours are short and printable; anything else was never consented to.
        if client_id.is_empty() || client_id.len() > 64 || client_id.chars().any(char::is_control) {
            return Ok(false);
        }
        let had = self.store.delete_consent(user_id, client_id).await?;
        self.store
            .revoke_client_sessions(user_id, client_id, "consent_revoked", self.clock.now())
            .await?;
        self.sync_revocations().await?;
        Ok(had)
    }

    /// A code for `request`, for the browser's signed-in user.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn issue_code(
        &self,
        session: &BrowserSession,
        request: &AuthorizationRequest,
    ) -> Result<SecretString, AuthError> {
        let (code, code_hash) = new_secret()?;
        let now = self.clock.now();
        self.store
            .insert_code(&CodeRecord {
                code_hash,
                client_id: request.client.id.clone(),
                user_id: session.user.id,
                browser_session_id: session.principal.session_id,
                redirect_uri: request.redirect_uri.clone(),
                scope: request.scope(),
                nonce: request.nonce.clone(),
                code_challenge: request.code_challenge.clone(),
                auth_time: session.auth_time,
                amr: session.methods.stored(),
                created_at: now,
                expires_at: now + Duration::seconds(CODE_LIFETIME_SECONDS),
            })
            .await?;
        Ok(code)
    }

    /// `grant_type=authorization_code`.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        credentials: &ClientCredentials,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        context: &ClientContext,
    ) -> Result<CodeTokens, AuthError> {
        let client = self.authenticate_token_client(credentials).await?;
        let code = code.expose_secret();
        if code.len() > 256 {
            return Err(AuthError::InvalidGrant("the code is invalid or expired"));
        }
        let session_id = Uuid::now_v7();
        let code_hash = hash_secret(code);
        let record = match self
            .store
            .spend_code(&code_hash, &client.id, session_id, self.clock.now())
            .await?
        {
            CodeUse::Fresh(record) => record,
            CodeUse::Replayed { issued_session_id } => {
                if let Some(issued) = issued_session_id {
                    tracing::warn!(session_id = %issued, "authorization code replayed: its session revoked");
                    self.end_session(issued, "code_replayed").await?;
                }
                return Err(AuthError::InvalidGrant("the code was already used"));
            }
            CodeUse::Invalid => {
                return Err(AuthError::InvalidGrant("the code is invalid or expired"));
            }
        };
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(AuthError::InvalidGrant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        match (&record.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) if valid_verifier(verifier) => {
                if !bool::from(challenge.as_bytes().ct_eq(s256(verifier).as_bytes())) {
                    return Err(AuthError::InvalidGrant("code_verifier does not match"));
                }
            }
            (Some(_), _) => {
                return Err(AuthError::InvalidGrant(
                    "code_verifier is missing or malformed",
                ));
            }
            (None, Some(_)) => {
                return Err(AuthError::InvalidGrant(
                    "code_verifier given for a code issued without a challenge",
                ));
            }
            (None, None) => {}
        }
        let user = self
            .store
            .find_user_by_id(record.user_id)
            .await?
            .filter(|user| !user.disabled)
            .ok_or(AuthError::InvalidGrant(
                "the account is no longer available",
            ))?;
        let browser = self.store.find_session(record.browser_session_id).await?;
        if browser.is_none_or(|session| session.revoked_at.is_some()) {
            return Err(AuthError::InvalidGrant(
                "the sign-in behind the code has ended",
            ));
        }
        let methods = AuthMethods::parse(Some(&record.amr));
        let tokens = self
            .open_client_session(
                session_id,
                &user,
                user.email_verified_at.is_some(),
                &methods,
                context,
                Some(super::sessions::ClientGrant {
                    id: &client.id,
                    scope: &record.scope,
                    first_party: client.first_party,
                }),
            )
            .await?;
        // A replay that came while the session was being opened found no
        // session to end: this one ends it instead.
        if self.store.code_replayed(&code_hash).await? {
            self.end_session(session_id, "code_replayed").await?;
            return Err(AuthError::InvalidGrant("the code was already used"));
        }
        let scopes: Vec<&str> = record.scope.split_whitespace().collect();
        let id_token = if scopes.contains(&"openid") {
            Some(self.id_token(&user, &client.id, &record, &tokens)?)
        } else {
            None
        };
        Ok(CodeTokens {
            refresh: scopes.contains(&"offline_access"),
            scope: record.scope.clone(),
            tokens,
            id_token,
        })
    }

    fn id_token(
        &self,
        user: &UserRecord,
        client_id: &str,
        code: &CodeRecord,
        tokens: &TokenPair,
    ) -> Result<String, AuthError> {
        let now = self.clock.now().timestamp();
        let methods = AuthMethods::parse(Some(&code.amr));
        let keyring = self.tokens.keyring();
        let mut claims = json!({
            "iss": self.tokens.issuer(),
            "sub": user.id.to_string(),
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self.tokens.lifetime().num_seconds(),
            "auth_time": code.auth_time.timestamp(),
            "sid": code.browser_session_id.to_string(),
            "amr": methods.values(),
            "acr": methods.acr(),
            "at_hash": at_hash(&tokens.access.access_token, keyring.signing_algorithm()),
        });
        if let Some(nonce) = &code.nonce {
            claims["nonce"] = json!(nonce);
        }
        let scopes: Vec<&str> = code.scope.split_whitespace().collect();
        user_claims(&mut claims, user, &scopes);
        self.tokens.sign("JWT", &claims).map_err(AuthError::Signing)
    }

    /// `/userinfo` for a bearer token: what its scopes allow (every claim for
    /// a token from the password grant, which has no scope).
    pub async fn userinfo(&self, token: &str) -> Result<Value, AuthError> {
        let (principal, _) = self.authenticate_any(token).await?;
        let claims = self.verify_access_token(token)?;
        let user = self
            .store
            .find_user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let mut body = json!({ "sub": user.id.to_string() });
        match claims.extra.get("scope").and_then(Value::as_str) {
            Some(scope) => {
                let scopes: Vec<&str> = scope.split_whitespace().collect();
                user_claims(&mut body, &user, &scopes);
            }
            None => user_claims(&mut body, &user, &["profile", "email"]),
        }
        Ok(body)
    }

    /// `grant_type=client_credentials`: a token naming the client itself.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn client_credentials(
        &self,
        credentials: &ClientCredentials,
        scope: Option<&str>,
    ) -> Result<MachineToken, AuthError> {
        let client = self.authenticate_token_client(credentials).await?;
        if client.public {
            return Err(AuthError::InvalidClient);
        }
        if !client.client_credentials {
            return Err(AuthError::UnauthorizedClient);
        }
        if !self.oidc_available() {
            return Err(AuthError::InvalidGrant(
                "client credentials need latchkey's own signing keys (SECRET_KEY is set)",
            ));
        }
        let mut granted: Vec<&str> = Vec::new();
        for wanted in scope.unwrap_or_default().split_whitespace() {
            if !client.scopes.iter().any(|scope| scope == wanted) {
                return Err(AuthError::InvalidScope);
            }
            granted.push(wanted);
        }
        let scope = if scope.is_none() {
            client.scopes.join(" ")
        } else {
            granted.join(" ")
        };
        let now = self.clock.now().timestamp();
        let lifetime = self.tokens.lifetime().num_seconds();
        let claims = json!({
            "iss": self.tokens.issuer(),
            "sub": client.id,
            "aud": self.tokens.audience(),
            "client_id": client.id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": Uuid::now_v7().to_string(),
        });
        let access_token = self
            .tokens
            .sign("at+jwt", &claims)
            .map_err(AuthError::Signing)?;
        Ok(MachineToken {
            access_token,
            expires_in: lifetime,
            scope,
        })
    }

    /// A machine token (client credentials) that verifies, and whose client still exists.
    pub(crate) async fn machine_claims(&self, token: &str) -> Option<super::AccessClaims> {
        let claims = self.tokens.verify(token).ok()?;
        if !claims.sid.is_empty() {
            return None;
        }
        let client_id = claims.extra.get("client_id")?.as_str()?;
        if client_id != claims.sub {
            return None;
        }
        self.store.find_client(client_id).await.ok()??;
        Some(claims)
    }

    /// The client calling the token endpoint: a confidential client by its
    /// secret, a public one by its id alone.
    pub(crate) async fn authenticate_token_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<ClientRecord, AuthError> {
        let id = credentials.id.as_deref().ok_or(AuthError::InvalidClient)?;
        match &credentials.secret {
            Some(secret) => {
                let client = self.find_oidc_client(id).await?;
                let stored = client
                    .as_ref()
                    .filter(|client| !client.public)
                    .map_or("", |client| client.secret_hash.as_str());
                if hashes_match(stored, secret) && client.as_ref().is_some_and(|c| !c.public) {
                    client.ok_or(AuthError::InvalidClient)
                } else {
                    Err(AuthError::InvalidClient)
                }
            }
            None => self
                .find_oidc_client(id)
                .await?
                .filter(|client| client.public)
                .ok_or(AuthError::InvalidClient),
        }
    }

    async fn find_oidc_client(&self, id: &str) -> Result<Option<ClientRecord>, AuthError> {
        // Ours are short and printable; anything else cannot exist, and must
        // not reach the database (PostgreSQL refuses NUL in text).
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
            return Ok(None);
        }
        Ok(self.store.find_client(id).await?)
    }

    /// Creates a client; the secret (for a confidential client) is shown this once.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn create_oidc_client(
        &self,
        new: &NewClient,
    ) -> Result<super::CreatedClient, AuthError> {
        for uri in new
            .redirect_uris
            .iter()
            .chain(&new.post_logout_redirect_uris)
        {
            if !valid_redirect_uri(uri) {
                return Err(AuthError::ClientSettings(
                    "must be an absolute https URI (http only on localhost), without a fragment",
                ));
            }
        }
        for scope in &new.scopes {
            if scope.is_empty()
                || scope.len() > 64
                || !scope
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
            {
                return Err(AuthError::ClientSettings(
                    "a scope is one word of printable ASCII",
                ));
            }
        }
        if new.name.trim().is_empty() || new.name.chars().count() > 128 {
            return Err(AuthError::ClientSettings("must be 1 to 128 characters"));
        }
        let (id_secret, _) = new_secret()?;
        let id = format!("client_{}", &id_secret.expose_secret()[..16]);
        let (secret, secret_hash) = new_secret()?;
        self.store
            .insert_client(&ClientRecord {
                id: id.clone(),
                name: new.name.clone(),
                secret_hash: if new.public {
                    String::new()
                } else {
                    secret_hash
                },
                created_at: self.clock.now(),
                redirect_uris: new.redirect_uris.clone(),
                post_logout_redirect_uris: new.post_logout_redirect_uris.clone(),
                public: new.public,
                first_party: new.first_party,
                scopes: new.scopes.clone(),
                client_credentials: new.client_credentials,
            })
            .await?;
        Ok(super::CreatedClient {
            id,
            name: new.name.clone(),
            secret: (!new.public).then_some(secret),
        })
    }

    /// A machine client (client credentials, introspection) named `name`.
    pub async fn create_client(&self, name: &str) -> Result<super::CreatedClient, AuthError> {
        self.create_oidc_client(&NewClient {
            name: name.to_owned(),
            ..NewClient::default()
        })
        .await
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, AuthError> {
        Ok(self.store.list_clients().await?)
    }

    /// A client by id, for pages that name it.
    pub async fn client(&self, id: &str) -> Result<Option<ClientRecord>, AuthError> {
        self.find_oidc_client(id).await
    }

    /// The cookie value naming a browser session: its id and a MAC of it
    /// under the instance key, so only latchkey can make one.
    pub fn browser_cookie(&self, session_id: Uuid) -> String {
        let id = session_id.to_string();
        let mac = self.sealer.keyed_hash(&id, "browser-session");
        format!("{id}.{mac}")
    }

    /// The live browser session a cookie names, if any.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn browser_session(&self, cookie: &str) -> Result<Option<BrowserSession>, AuthError> {
        let Some((id, mac)) = cookie.split_once('.') else {
            return Ok(None);
        };
        let Ok(session_id) = Uuid::parse_str(id) else {
            return Ok(None);
        };
        let expected = self.sealer.keyed_hash(id, "browser-session");
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Ok(None);
        }
        let now = self.clock.now();
        if self.revoked.contains(&session_id) {
            return Ok(None);
        }
        let Some(session) = self.store.find_session(session_id).await? else {
            return Ok(None);
        };
        if !self.is_live(&session, now) {
            return Ok(None);
        }
        let Some(user) = self
            .store
            .find_user_by_id(session.user_id)
            .await?
            .filter(|user| !user.disabled && user.credential_version == session.credential_version)
        else {
            return Ok(None);
        };
        if (now - session.last_used_at).num_seconds() > TOUCH_EVERY_SECONDS {
            self.store.touch_session(session.id, now).await?;
        }
        Ok(Some(BrowserSession {
            principal: Principal {
                user_id: user.id,
                username: std::sync::Arc::from(user.username.as_str()),
                session_id,
            },
            auth_time: session.created_at,
            methods: AuthMethods::parse(session.amr.as_deref()),
            user,
        }))
    }

    fn is_live(&self, session: &SessionRecord, now: DateTime<Utc>) -> bool {
        session.revoked_at.is_none()
            && session.expires_at > now
            && session.last_used_at > now - self.sessions.idle_timeout
    }

    /// Ends a browser session (signing out of the hosted pages).
    pub async fn end_browser_session(&self, session_id: Uuid) -> Result<(), AuthError> {
        self.end_session(session_id, "signed_out").await
    }

    /// A CSRF token for forms, bound to a per-browser random value.
    pub fn form_token(&self, anchor: &str) -> String {
        self.sealer.keyed_hash(anchor, "form-token")
    }

    pub fn form_token_matches(&self, anchor: &str, presented: &str) -> bool {
        !anchor.is_empty()
            && bool::from(
                self.form_token(anchor)
                    .as_bytes()
                    .ct_eq(presented.as_bytes()),
            )
    }

    /// Reads an `id_token_hint`: one of ours, expired or not.
    pub fn logout_hint(&self, id_token: &str) -> Option<LogoutHint> {
        let claims = self.tokens.verify_own(id_token, "JWT").ok()?;
        Some(LogoutHint {
            user_id: claims["sub"]
                .as_str()
                .and_then(|sub| Uuid::parse_str(sub).ok()),
            client_id: Some(claims["aud"].as_str()?.to_owned()),
        })
    }
}

/// The claims `scopes` release about `user`.
fn user_claims(claims: &mut Value, user: &UserRecord, scopes: &[&str]) {
    if scopes.contains(&"profile") {
        claims["preferred_username"] = json!(user.username);
        claims["name"] = json!(user.username);
        if let Some(locale) = &user.locale {
            claims["locale"] = json!(locale);
        }
        claims["updated_at"] = json!(user.updated_at.timestamp());
    }
    if scopes.contains(&"email") {
        claims["email"] = json!(user.email);
        claims["email_verified"] = json!(user.email_verified_at.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_absolute_and_safe() {
        assert!(valid_redirect_uri("https://app.example.com/callback"));
        assert!(valid_redirect_uri("http://127.0.0.1:8080/cb"));
        assert!(valid_redirect_uri("http://localhost/cb"));
        assert!(valid_redirect_uri("com.example.app:/callback"));
        assert!(!valid_redirect_uri("http://app.example.com/cb"));
        assert!(!valid_redirect_uri("https://app.example.com/cb#frag"));
        assert!(!valid_redirect_uri("javascript:alert(1)"));
        assert!(!valid_redirect_uri("data:text/html,hi"));
        assert!(!valid_redirect_uri("/relative"));
    }

    #[test]
    fn the_s256_challenge_is_rfc_7636s_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(50))));
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // OpenID Connect Core's RS256 example value uses SHA-256.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "HS256").len(),
            22
        );
        assert_eq!(at_hash("token", "EdDSA").len(), 43);
        assert_ne!(at_hash("token", "EdDSA")[..22], at_hash("token", "HS256"));
    }

    #[test]
    fn prompt_values_combine_as_the_specification_says() {
        let prompt = |none, login, consent| Prompt {
            none,
            login,
            consent,
        };
        assert_eq!(parse_prompt(None), Ok(Prompt::default()));
        assert_eq!(parse_prompt(Some("none")), Ok(prompt(true, false, false)));
        assert_eq!(
            parse_prompt(Some("login consent")),
            Ok(prompt(false, true, true))
        );
        assert_eq!(
            parse_prompt(Some("consent select_account")),
            Ok(prompt(false, false, true))
        );
        assert!(parse_prompt(Some("none login")).is_err());
        assert!(parse_prompt(Some("bogus")).is_err());
    }
}
