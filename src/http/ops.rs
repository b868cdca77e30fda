//! Operations: liveness, readiness and the published signing keys.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorDetail};
use super::state::AppState;
use crate::auth::PublicJwk;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(jwks))
        .routes(routes!(metrics))
}

/// Prometheus text format: request durations by route, login outcomes,
/// hashing, database pool, revocation snapshot, outbox and process metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "`LATCHKEY_METRICS_TOKEN` is set and the bearer token is not it", body = ErrorDetail),
        (status = 403, description = "No token is set and the request came from a public address or through a proxy", body = ErrorDetail),
    ))]
async fn metrics(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let peer = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let proxied = peer.is_some_and(|peer| state.trusted_proxies.contains(peer));
    scrape_allowed(state.metrics_token.as_deref(), peer, proxied, &headers)?;
    let mut response = state.auth.metrics_text().await.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Loopback, RFC 1918 or IPv6 unique-local (IPv4-mapped forms count as IPv4).
fn is_local(address: IpAddr) -> bool {
    match address.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Headers a proxy adds: a request carrying one came from beyond it.
const FORWARDING_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Login outcomes by kind are for operators only (they would tell a stranger
/// whether the account they just tried exists): with a token configured,
/// the scraper presents it; without one, only a peer on loopback or a
/// private network (RFC 1918, IPv6 unique local) reaching the server
/// directly is answered: not a configured trusted proxy, and no forwarding
/// header.
fn scrape_allowed(
    token: Option<&SecretString>,
    peer: Option<IpAddr>,
    proxied: bool,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if let Some(token) = token {
        let presented = super::extract::bearer_token(headers).unwrap_or_default();
        let matches: bool = presented
            .as_bytes()
            .ct_eq(token.expose_secret().as_bytes())
            .into();
        return if matches {
            Ok(())
        } else {
            Err(ApiError::NotAuthenticated)
        };
    }
    let direct = !proxied
        && FORWARDING_HEADERS
            .iter()
            .all(|name| !headers.contains_key(*name));
    if direct && peer.is_some_and(is_local) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Metrics are served to the local network only, or with LATCHKEY_METRICS_TOKEN"
                .to_owned(),
        ))
    }
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = Status)))]
async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Ready: the database answers, its schema is current, and no stop was asked for.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Database unreachable, migrations pending, or shutting down", body = ErrorDetail),
    ))]
async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::Draining);
    }
    state.auth.readiness().await?;
    Ok(Json(Status { status: "ready" }))
}

/// RFC 7517 key set.
#[derive(Serialize, ToSchema)]
pub struct JwkSet {
    keys: Vec<PublicJwk>,
}

/// The public keys access tokens are signed with (empty when HS256 `SECRET_KEY` is in use).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "Public signing keys", body = JwkSet)))]
async fn jwks(State(state): State<AppState>) -> Response {
    let keys = state.auth.public_keys();
    let mut response = Json(JwkSet { keys }).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
