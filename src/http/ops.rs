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
    let store = state.auth.store();
    store
        .ping()
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    store
        .check_migrations()
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
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
    let keys = state.auth.tokens().keyring().public_keys().to_vec();
    let mut response = Json(JwkSet { keys }).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
