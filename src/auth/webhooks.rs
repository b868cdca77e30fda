//! Webhooks: endpoints an admin registers for event types, and the events
//! themselves, signed per the Standard Webhooks specification.
//!
//! An event is an outbox row (`webhook:<type>`, addressed to the endpoint)
//! written in the transaction of the audit event it reports (and, for
//! `user.created`, of the new account), so it survives crashes and restarts;
//! the delivery worker posts it with the same `webhook-id` on every attempt,
//! retrying with backoff for 24 hours. An endpoint failing for 24 hours is
//! disabled and logged.
//!
//! Against server-side request forgery, an endpoint must be `https` and
//! every address its host resolves to must be public, checked when it is
//! saved and again at each delivery (the connection then goes to the address
//! checked, and redirects are not followed), unless
//! `LATCHKEY_WEBHOOK_ALLOW_PRIVATE_NETWORKS` is on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration as StdDuration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use secrecy::SecretString;
use uuid::Uuid;

use super::admin::Actor;
use super::{AuditEvent, Auth, AuthError, ClientContext, FieldProblem};
use crate::domain::Invalid;
use crate::mail::SendError;
use crate::mail::delivery::Courier;
use crate::store::{NewMail, OutboxRecord, Outgoing, UserRecord, WebhookEndpointRecord};

/// Every event type an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 11] = [
    "user.created",
    "user.email_verified",
    "user.updated",
    "user.deleted",
    "user.disabled",
    "login.succeeded",
    "login.failed",
    "password.changed",
    "session.revoked",
    "mfa.enabled",
    "mfa.disabled",
];

/// The outbox kind of an event type.
fn kind_of(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "user.created" => "webhook:user.created",
        "user.email_verified" => "webhook:user.email_verified",
        "user.updated" => "webhook:user.updated",
        "user.deleted" => "webhook:user.deleted",
        "user.disabled" => "webhook:user.disabled",
        "login.succeeded" => "webhook:login.succeeded",
        "login.failed" => "webhook:login.failed",
        "password.changed" => "webhook:password.changed",
        "session.revoked" => "webhook:session.revoked",
        "mfa.enabled" => "webhook:mfa.enabled",
        "mfa.disabled" => "webhook:mfa.disabled",
        _ => return None,
    })
}

/// The event type an audited event is reported as, if any.
pub(super) fn event_type_of(event: AuditEvent) -> Option<&'static str> {
    Some(match event {
        AuditEvent::LoginSuccess => "login.succeeded",
        AuditEvent::LoginFailure => "login.failed",
        AuditEvent::PasswordChange | AuditEvent::PasswordReset => "password.changed",
        AuditEvent::UserDisabled => "user.disabled",
        AuditEvent::EmailVerified => "user.email_verified",
        AuditEvent::MfaEnabled | AuditEvent::PasskeyAdded => "mfa.enabled",
        AuditEvent::MfaDisabled | AuditEvent::PasskeyRemoved => "mfa.disabled",
        AuditEvent::Logout | AuditEvent::SessionsEnded => "session.revoked",
        AuditEvent::UserUpdated | AuditEvent::RolesChanged | AuditEvent::EmailChanged => {
            "user.updated"
        }
        _ => return None,
    })
}

/// Retries stop, and a failing endpoint is disabled, after this long.
const GIVE_UP_AFTER: Duration = Duration::hours(24);
/// How long the list of endpoints is trusted before it is read again.
const TARGETS_FOR: StdDuration = StdDuration::from_secs(1);
const SEND_TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// Enabled endpoints and the event types each subscribes to.
type Targets = Arc<Vec<(Uuid, Vec<String>)>>;

/// The endpoints events go to, read from the database at most once a second.
#[derive(Default)]
pub(crate) struct WebhookHub {
    allow_private: bool,
    targets: RwLock<Option<(Instant, Targets)>>,
}

impl WebhookHub {
    fn forget(&self) {
        *self
            .targets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    fn fresh(&self) -> Option<Targets> {
        let targets = self
            .targets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        targets
            .as_ref()
            .filter(|(at, _)| at.elapsed() < TARGETS_FOR)
            .map(|(_, targets)| Arc::clone(targets))
    }
}

/// A new endpoint, with its secret shown once.
pub struct CreatedWebhook {
    pub endpoint: WebhookEndpointRecord,
    pub secret: SecretString,
}

/// Whether an address is one a webhook must never reach: loopback, private,
/// link-local (cloud metadata lives there), shared, unspecified, multicast,
/// reserved or documentation ranges, in IPv4 and IPv6 (and IPv4 inside IPv6).
pub fn is_internal(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let segments = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local
                || (segments[0] & 0xffc0) == 0xfe80 // link-local
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || (segments[0] == 0x0064 && segments[1] == 0xff9b) // NAT64
                || segments[0] == 0x2002 // 6to4 (an IPv4 address inside)
                || (segments[0] == 0x2001 && segments[1] == 0) // Teredo
                || (segments[0] & 0xffc0) == 0xfec0 // site-local
                || segments[..4] == [0x0100, 0, 0, 0] // discard-only
                || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
        || a >= 240 // reserved
}

/// Why a URL may not be a webhook endpoint.
fn url_problem(message: String) -> AuthError {
    AuthError::Invalid(vec![FieldProblem {
        field: "url",
        invalid: Invalid::new("value_error.url", message),
    }])
}

/// Why an endpoint's address cannot be used.
enum AddressProblem {
    /// The name did not resolve (now): worth trying again.
    Unresolved(String),
    /// Not https, or an internal address: never.
    Refused(String),
}

impl std::fmt::Display for AddressProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unresolved(reason) | Self::Refused(reason) => formatter.write_str(reason),
        }
    }
}

/// The address to connect to for `url`: every address its host resolves
/// to must be public (unless private networks are allowed).
async fn checked_address(
    url: &url::Url,
    allow_private: bool,
) -> Result<SocketAddr, AddressProblem> {
    use AddressProblem::{Refused, Unresolved};
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(Refused("must be an https URL".to_owned())),
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Refused("has no port".to_owned()))?;
    let addresses: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(v4)) => vec![SocketAddr::new(IpAddr::V4(v4), port)],
        Some(url::Host::Ipv6(v6)) => vec![SocketAddr::new(IpAddr::V6(v6), port)],
        Some(url::Host::Domain(domain)) => tokio::time::timeout(
            StdDuration::from_secs(5),
            tokio::net::lookup_host((domain, port)),
        )
        .await
        .map_err(|_| Unresolved(format!("{domain} did not resolve in time")))?
        .map_err(|_| Unresolved(format!("{domain} does not resolve")))?
        .collect(),
        None => return Err(Refused("has no host".to_owned())),
    };
    if !allow_private
        && let Some(internal) = addresses.iter().find(|address| is_internal(address.ip()))
    {
        return Err(Refused(format!(
            "reaches {}, a loopback, private, link-local or reserved address",
            internal.ip()
        )));
    }
    addresses
        .into_iter()
        .next()
        .ok_or_else(|| Unresolved("resolves to no address".to_owned()))
}

/// The Standard Webhooks signature of one attempt: `v1,<base64 HMAC-SHA256>`
/// of `<id>.<timestamp>.<body>`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signed = hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(signed.as_ref()))
}

impl Auth {
    /// Webhook URLs may reach private networks (development and tests).
    pub fn with_webhook_policy(mut self, allow_private: bool) -> Self {
        self.webhooks = WebhookHub {
            allow_private,
            ..WebhookHub::default()
        };
        self
    }

    fn webhook_binding(id: Uuid) -> String {
        format!("webhook:{id}")
    }

    /// `POST /admin/webhooks`: the endpoint, and its secret once.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn create_webhook(
        &self,
        url: &str,
        events: &[String],
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<CreatedWebhook, AuthError> {
        let parsed = url::Url::parse(url.trim())
            .map_err(|error| url_problem(format!("is not a URL: {error}")))?;
        if url.len() > 2048 {
            return Err(url_problem("must be at most 2048 characters".to_owned()));
        }
        if parsed.as_str().len() > 2048 {
            return Err(url_problem("must be at most 2048 characters".to_owned()));
        }
        checked_address(&parsed, self.webhooks.allow_private)
            .await
            .map_err(|problem| url_problem(problem.to_string()))?;
        let mut subscribed: Vec<String> = Vec::new();
        for event in events {
            if !EVENT_TYPES.contains(&event.as_str()) {
                return Err(AuthError::Invalid(vec![FieldProblem {
                    field: "events",
                    invalid: Invalid::new(
                        "value_error",
                        format!(
                            "{event:?} is not an event type ({})",
                            EVENT_TYPES.join(", ")
                        ),
                    ),
                }]));
            }
            if !subscribed.contains(event) {
                subscribed.push(event.clone());
            }
        }
        if subscribed.is_empty() {
            return Err(AuthError::Invalid(vec![FieldProblem {
                field: "events",
                invalid: Invalid::new("value_error", "name at least one event type"),
            }]));
        }
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| AuthError::Random)?;
        let id = Uuid::now_v7();
        let endpoint = WebhookEndpointRecord {
            id,
            url: parsed.to_string(),
            events: subscribed,
            sealed_secret: self
                .sealer
                .seal(bytes.as_ref(), &Self::webhook_binding(id))?,
            created_at: self.clock.now(),
            disabled_at: None,
            failing_since: None,
            last_error: None,
        };
        self.store.insert_webhook_endpoint(&endpoint).await?;
        self.webhooks.forget();
        self.audit(AuditEvent::WebhookCreated, None, context, &actor.describe())
            .await;
        Ok(CreatedWebhook {
            endpoint,
            secret: SecretString::from(format!("whsec_{}", STANDARD.encode(bytes.as_ref()))),
        })
    }

    pub async fn list_webhooks(&self) -> Result<Vec<WebhookEndpointRecord>, AuthError> {
        Ok(self.store.webhook_endpoints().await?)
    }

    /// Deletes an endpoint; `false` if there was none.
    pub async fn delete_webhook(
        &self,
        id: Uuid,
        actor: &Actor,
        context: &ClientContext,
    ) -> Result<bool, AuthError> {
        let deleted = self.store.delete_webhook_endpoint(id).await?;
        if deleted {
            self.webhooks.forget();
            self.audit(AuditEvent::WebhookDeleted, None, context, &actor.describe())
                .await;
        }
        Ok(deleted)
    }

    /// The latest deliveries to an endpoint, newest first.
    pub async fn webhook_deliveries(
        &self,
        id: Uuid,
        limit: u64,
    ) -> Result<Vec<OutboxRecord>, AuthError> {
        if self.store.webhook_endpoint(id).await?.is_none() {
            return Err(AuthError::WebhookNotFound);
        }
        Ok(self
            .store
            .webhook_deliveries(id, limit.clamp(1, 200))
            .await?)
    }

    async fn webhook_targets(&self) -> Result<Targets, AuthError> {
        if let Some(targets) = self.webhooks.fresh() {
            return Ok(targets);
        }
        let targets: Vec<(Uuid, Vec<String>)> = self
            .store
            .webhook_endpoints()
            .await?
            .into_iter()
            .filter(|endpoint| endpoint.disabled_at.is_none())
            .map(|endpoint| (endpoint.id, endpoint.events))
            .collect();
        let targets = Arc::new(targets);
        *self
            .webhooks
            .targets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((Instant::now(), Arc::clone(&targets)));
        Ok(targets)
    }

    /// The deliveries of one event to every endpoint subscribed to it.
    /// `user` describes the account in `data`; `extra` adds to it.
    pub(crate) async fn webhook_events(
        &self,
        event_type: &'static str,
        user_id: Option<Uuid>,
        user: Option<&UserRecord>,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<NewMail>, AuthError> {
        let Some(kind) = kind_of(event_type) else {
            return Ok(Vec::new());
        };
        let targets = self.webhook_targets().await?;
        let subscribed: Vec<Uuid> = targets
            .iter()
            .filter(|(_, events)| events.iter().any(|event| event == event_type))
            .map(|(id, _)| *id)
            .collect();
        if subscribed.is_empty() {
            return Ok(Vec::new());
        }
        let loaded;
        let user = match (user, user_id) {
            (Some(user), _) => Some(user),
            (None, Some(id)) => {
                loaded = self.store.find_user_by_id(id).await?;
                loaded.as_ref()
            }
            (None, None) => None,
        };
        let mut data = serde_json::Map::new();
        data.insert("user_id".to_owned(), serde_json::json!(user_id));
        if let Some(user) = user {
            data.insert("username".to_owned(), serde_json::json!(user.username));
            data.insert("email".to_owned(), serde_json::json!(user.email));
            data.insert(
                "email_verified".to_owned(),
                serde_json::json!(user.email_verified_at.is_some()),
            );
            data.insert("disabled".to_owned(), serde_json::json!(user.disabled));
            data.insert("roles".to_owned(), serde_json::json!(user.roles));
            data.insert(
                "app_metadata".to_owned(),
                super::admin::metadata_value(user.app_metadata.as_deref()),
            );
        }
        data.extend(extra);
        let payload = serde_json::json!({
            "type": event_type,
            "timestamp": self.clock.now(),
            "data": data,
        })
        .to_string();
        Ok(subscribed
            .into_iter()
            .map(|endpoint| NewMail {
                id: Uuid::now_v7(),
                kind,
                recipient: endpoint.to_string(),
                payload: payload.clone(),
            })
            .collect())
    }

    /// The webhook deliveries an audited event makes; empty when it makes
    /// none, or when they cannot be prepared (logged).
    pub(super) async fn webhooks_for_audit(
        &self,
        event: AuditEvent,
        user_id: Option<Uuid>,
        client: &ClientContext,
        outcome: &str,
    ) -> Outgoing {
        let Some(event_type) = event_type_of(event) else {
            return Outgoing::default();
        };
        let mut extra = serde_json::Map::new();
        extra.insert("outcome".to_owned(), serde_json::json!(outcome));
        extra.insert(
            "ip".to_owned(),
            serde_json::json!(client.ip.map(|ip| ip.to_string())),
        );
        match self.webhook_events(event_type, user_id, None, extra).await {
            Ok(mail) => Outgoing {
                mail,
                ..Outgoing::default()
            },
            Err(error) => {
                let error = crate::telemetry::error_chain(&error);
                tracing::error!(%error, event_type, "could not prepare webhook events");
                Outgoing::default()
            }
        }
    }
}

/// Posts `webhook:*` outbox rows to their endpoints.
pub struct WebhookCourier {
    auth: Arc<Auth>,
}

impl WebhookCourier {
    pub fn new(auth: Arc<Auth>) -> Self {
        Self { auth }
    }

    async fn post(&self, message: &OutboxRecord) -> Result<(), SendError> {
        let auth = &self.auth;
        let endpoint_id = Uuid::parse_str(&message.recipient)
            .map_err(|_| SendError::Permanent("not an endpoint id".to_owned()))?;
        let endpoint = auth
            .store
            .webhook_endpoint(endpoint_id)
            .await
            .map_err(|error| SendError::Transient(error.to_string()))?
            .ok_or_else(|| SendError::Permanent("the endpoint was deleted".to_owned()))?;
        if endpoint.disabled_at.is_some() {
            return Err(SendError::Permanent("the endpoint is disabled".to_owned()));
        }
        let outcome = self.attempt(&endpoint, message).await;
        let now = auth.clock.now();
        let recorded = match &outcome {
            Ok(()) => auth.store.webhook_succeeded(endpoint.id).await,
            Err(error) => {
                let disabled = auth
                    .store
                    .webhook_failed(&endpoint, &error.to_string(), now, GIVE_UP_AFTER)
                    .await;
                if let Ok(true) = disabled {
                    tracing::error!(endpoint_id = %endpoint.id, url = %endpoint.url, "a webhook endpoint failed for 24 hours and is disabled");
                }
                disabled.map(drop)
            }
        };
        if let Err(error) = recorded {
            let error = crate::telemetry::error_chain(&error);
            tracing::warn!(%error, "could not record a webhook endpoint's health");
        }
        outcome
    }

    async fn attempt(
        &self,
        endpoint: &WebhookEndpointRecord,
        message: &OutboxRecord,
    ) -> Result<(), SendError> {
        let auth = &self.auth;
        let url = url::Url::parse(&endpoint.url)
            .map_err(|error| SendError::Permanent(format!("url: {error}")))?;
        let address = checked_address(&url, auth.webhooks.allow_private)
            .await
            .map_err(|problem| match problem {
                // A name that does not resolve now may resolve later.
                AddressProblem::Unresolved(reason) => {
                    SendError::Transient(format!("the endpoint {reason}"))
                }
                AddressProblem::Refused(reason) => {
                    SendError::Permanent(format!("the endpoint {reason}"))
                }
            })?;
        let secret = auth
            .sealer
            .open(&endpoint.sealed_secret, &Auth::webhook_binding(endpoint.id))
            .map_err(|error| SendError::Permanent(error.to_string()))?;
        let id = format!("msg_{}", message.id.simple());
        let timestamp = auth.clock.now().timestamp();
        let signature = sign(&secret, &id, timestamp, &message.payload);
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name again, past the check.
            .no_proxy()
            .timeout(SEND_TIMEOUT)
            .user_agent("latchkey-webhooks");
        // Connect to the address that was checked, not to a second lookup.
        if let Some(url::Host::Domain(domain)) = url.host() {
            client = client.resolve(domain, address);
        }
        let client = client
            .build()
            .map_err(|error| SendError::Transient(format!("client: {error}")))?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.payload.clone())
            .send()
            .await
            .map_err(|error| SendError::Transient(without_url(&error)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError::Transient(format!(
                "the endpoint answered {status}"
            )))
        }
    }
}

/// A request error's description without the URL (it may hold a token).
fn without_url(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the endpoint did not answer in time".to_owned()
    } else if error.is_connect() {
        "cannot connect to the endpoint".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

impl Courier for WebhookCourier {
    fn deliver<'a>(
        &'a self,
        message: &'a OutboxRecord,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(self.post(message))
    }
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CreatedWebhook")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The specification's example: secret, id, timestamp and body.
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[tokio::test]
    async fn urls_must_be_https_to_public_addresses() {
        let check = |url: &str, allow: bool| {
            let url = url::Url::parse(url).unwrap();
            async move { checked_address(&url, allow).await }
        };
        assert!(check("https://127.0.0.1/x", false).await.is_err());
        assert!(check("https://[::1]/x", false).await.is_err());
        assert!(check("http://8.8.8.8/x", false).await.is_err());
        assert!(check("https://8.8.8.8/x", false).await.is_ok());
        assert!(check("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(check("https://localhost/x", false).await.is_err());
    }
}
