//! The axum edge: routes, extractors, request/response types and the one error
//! mapping. No SQL and no business rules: handlers extract, call one
//! [`crate::auth`] function, and map the result.
//!
//! Each feature module exposes `router()`, documented where it is routed, so
//! the OpenAPI document cannot drift from the router. [`router`] only merges
//! them and adds the layers every request goes through.

mod admin;
mod client_ip;
mod docs;
mod email;
mod error;
mod extract;
mod me;
mod mfa;
mod oauth;
mod ops;
mod origin;
mod pages;
mod passkeys;
mod serve;
mod sessions;
mod state;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::metrics::Metrics;
pub use client_ip::{ForwardingHeader, TrustedProxies};
pub use error::{ApiError, ErrorDetail, ValidationErrors, ValidationIssue};
use error::{Panicked, ServerFault, log_server_faults};
pub use pages::{Messages, Ui};
pub use serve::serve;
pub use state::AppState;

/// Request bodies past this size get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route, documented, with the layers every request goes through;
/// requests past `request_timeout` get 408.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let (routes, openapi) = OpenApiRouter::with_openapi(docs::base_document())
        .merge(origin::router())
        .merge(me::router())
        .merge(email::router())
        .merge(mfa::router())
        .merge(passkeys::router())
        .merge(admin::router())
        .merge(sessions::router())
        .merge(oauth::router())
        .merge(ops::router())
        .split_for_parts();
    let cors = cors(&state.cors_origins);
    let routes = with_edge(
        routes.merge(docs::router(openapi)).merge(pages::router()),
        request_timeout,
        Arc::clone(state.auth.metrics()),
    );
    match cors {
        Some(cors) => routes.layer(cors).with_state(state),
        None => routes.with_state(state),
    }
}

/// CORS for the configured origins, exactly (no wildcard): bearer tokens
/// in `Authorization`, no cookies, so no credentials mode.
fn cors(origins: &[HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
            .expose_headers([header::RETRY_AFTER, REQUEST_ID])
            .max_age(Duration::from_secs(600)),
    )
}

/// What every route gets: JSON 404/405, the body limit, request ids, an
/// access log line and a duration in the metrics, `nosniff`, a JSON 500 for a
/// panicking handler, and a deadline.
fn with_edge<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    request_timeout: Duration,
    metrics: Arc<Metrics>,
) -> Router<S> {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        // Server faults are logged once, with their causes, by
                        // `log_server_faults`; the trace layer's own line would repeat them.
                        .on_failure(())
                        // The access log line is `observe`'s.
                        .on_response(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(middleware::from_fn_with_state(metrics, observe))
                .layer(middleware::from_fn(log_server_faults))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(middleware::from_fn_with_state(request_timeout, deadline)),
        )
}

/// Records each request's duration by route template, method and status,
/// and writes its access log line (target `latchkey::access`, at info):
/// the route template, never the path or the query, which may hold tokens.
async fn observe(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let took = started.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status().as_u16();
    metrics.request(method.as_str(), route, status, took);
    tracing::info!(
        target: "latchkey::access",
        route,
        status,
        latency_ms = took.as_secs_f64() * 1000.0,
        "served"
    );
    response
}

/// Ends a request that takes longer than the limit, slow uploads included,
/// with a JSON 408. Its work is dropped, which rolls back any open transaction.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    tokio::time::timeout(limit, next.run(request))
        .await
        .unwrap_or_else(|_| ApiError::Timeout.into_response())
}

/// One span per request; the path only, since query strings may carry secrets.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id);
    crate::telemetry::continue_trace(&span, request.headers());
    span
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A panic in a handler becomes an opaque JSON 500; the server keeps serving.
fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal(ServerFault::new(Panicked)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("a bug in a handler")
    }

    /// Log lines, captured for one test.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the disk is on fire")]
    struct Cause;

    #[derive(Debug, thiserror::Error)]
    #[error("could not save")]
    struct Outer(#[source] Cause);

    async fn failing() -> ApiError {
        ApiError::Internal(ServerFault::new(Outer(Cause)))
    }

    #[tokio::test]
    async fn a_server_fault_is_logged_once_with_its_causes_and_never_sent() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let router = with_edge(
            Router::new().route("/fail", get(failing)),
            Duration::from_secs(5),
            Arc::new(Metrics::new()),
        );
        let response = router
            .oneshot(Request::get("/fail").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"detail":"Internal server error"}"#);
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = logs.lines().filter(|line| line.contains("ERROR")).collect();
        assert_eq!(lines.len(), 1, "{logs}");
        assert!(
            lines[0].contains("could not save: the disk is on fire"),
            "{logs}"
        );
        assert!(lines[0].contains("request_id="), "{logs}");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_json_500_and_the_router_keeps_serving() {
        let router = with_edge(
            Router::new()
                .route("/boom", get(boom))
                .route("/fine", get(|| async { "fine" })),
            Duration::from_secs(5),
            Arc::new(Metrics::new()),
        );
        let response = router
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().contains_key("x-request-id"));
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"detail":"Internal server error"}"#);
        let response = router
            .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
