//! Operations: liveness, readiness and the published signing keys.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
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

/// A few gauges and counters in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.auth.metrics_snapshot();
    let body = format!(
        "# HELP latchkey_rate_limit_redis_degraded 1 while Redis is configured but unreachable, so limits are per instance.\n\
         # TYPE latchkey_rate_limit_redis_degraded gauge\n\
         latchkey_rate_limit_redis_degraded {}\n\
         # HELP latchkey_throttled_requests_total Requests refused by a rate limit or lockout.\n\
         # TYPE latchkey_throttled_requests_total counter\n\
         latchkey_throttled_requests_total {}\n\
         # HELP latchkey_hashing_waiting Requests waiting for a password-hashing slot.\n\
         # TYPE latchkey_hashing_waiting gauge\n\
         latchkey_hashing_waiting {}\n\
         # HELP latchkey_revoked_sessions Revoked sessions whose access tokens may still be presented.\n\
         # TYPE latchkey_revoked_sessions gauge\n\
         latchkey_revoked_sessions {}\n",
        u8::from(snapshot.redis_degraded),
        snapshot.throttled_requests,
        snapshot.hashing_waiting,
        snapshot.revoked_sessions,
    );
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
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

/// Ready: the database answers and its schema is current.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Database unreachable or migrations pending", body = ErrorDetail),
    ))]
async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
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
