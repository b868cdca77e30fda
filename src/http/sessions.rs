//! The caller's sessions: log out (this one, the others, or all), list them,
//! end one.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorDetail, ValidationErrors, ValidationIssue};
use super::extract::{Client, CurrentUser};
use super::state::AppState;
use crate::auth::LogoutScope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutQuery {
    /// `current` (default): this session; `others`: every other session; `global`: all of them.
    #[param(pattern = "^(current|local|others|global)$")]
    scope: Option<String>,
}

/// End sessions of the caller. Idempotent.
#[utoipa::path(post, path = "/logout", tag = "sessions",
    security(("bearer" = [])),
    params(LogoutQuery),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 422, description = "Unknown scope", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn logout(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Client(client): Client,
    query: Result<Query<LogoutQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    // A query that does not parse (a repeated `scope`, say) is refused, not ignored.
    let Ok(Query(query)) = query else {
        return Err(unknown_scope());
    };
    let scope = match query.scope.as_deref() {
        None | Some("current" | "local") => LogoutScope::Current,
        Some("others") => LogoutScope::Others,
        Some("global") => LogoutScope::Global,
        Some(_) => return Err(unknown_scope()),
    };
    state.auth.logout(&principal, scope, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn unknown_scope() -> ApiError {
    ApiError::Validation(vec![ValidationIssue {
        loc: vec!["query".to_owned(), "scope".to_owned()],
        msg: "Scope must be current, others or global".to_owned(),
        kind: "enum".to_owned(),
    }])
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
    /// Whether this is the session of the token making the request.
    current: bool,
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/sessions", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = Vec<SessionView>),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let sessions = state.auth.sessions(&principal).await?;
    let views = sessions
        .into_iter()
        .map(|session| SessionView {
            current: session.current,
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent,
            ip: session.client_ip,
        })
        .collect();
    Ok(Json(views))
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 404, description = "No such session of the caller", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn end_session(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFoundDetail("Session not found".to_owned()));
    };
    state.auth.end_own_session(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
