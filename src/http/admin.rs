//! The admin API under `/admin`: every route takes `Authorization: Bearer`
//! with an API key (`lk_…`) holding the route's scope, or the access token of
//! an account holding the `admin` role. The caller is checked before anything
//! else is read: no or unknown credentials answer 401, a normal account or a
//! key without the scope 403.

use std::marker::PhantomData;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorDetail, ValidationErrors, ValidationIssue};
use super::extract::{ApiJson, Client, bearer_token};
use super::origin::no_store;
use super::state::AppState;
use crate::auth::{
    AccountEdit, Actor, AdminAuditEntry, AdminScope, AdminUser, LiveSession, NewAccount, UserQuery,
};
use crate::store::{ApiKeyRecord, AuditFilter, OutboxRecord, RoleRecord, WebhookEndpointRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(unlock_user))
        .routes(routes!(reset_user_factors))
        .routes(routes!(user_sessions, end_user_sessions))
        .routes(routes!(set_user_roles))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(list_audit))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(delete_webhook))
        .routes(routes!(webhook_deliveries))
}

/// A route's scope, as a type.
pub trait Scope {
    const SCOPE: AdminScope;
}

pub struct UsersScope;
impl Scope for UsersScope {
    const SCOPE: AdminScope = AdminScope::Users;
}
pub struct AuditScope;
impl Scope for AuditScope {
    const SCOPE: AdminScope = AdminScope::Audit;
}
pub struct KeysScope;
impl Scope for KeysScope {
    const SCOPE: AdminScope = AdminScope::Keys;
}
pub struct WebhooksScope;
impl Scope for WebhooksScope {
    const SCOPE: AdminScope = AdminScope::Webhooks;
}

/// The caller of an admin route, allowed the route's scope.
pub struct Admin<S: Scope>(pub Actor, PhantomData<S>);

impl<S: Scope> FromRequestParts<AppState> for Admin<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)
            .ok_or(ApiError::NotAuthenticated)?
            .to_owned();
        let actor = state.auth.authorize_admin(&token, S::SCOPE).await?;
        Ok(Self(actor, PhantomData))
    }
}

fn path_id(id: Result<Path<Uuid>, PathRejection>, what: &str) -> Result<Uuid, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::NotFoundDetail(format!("{what} not found")))
}

fn bad_query(rejection: &QueryRejection) -> ApiError {
    ApiError::Validation(vec![ValidationIssue {
        loc: vec!["query".to_owned()],
        msg: rejection.body_text(),
        kind: "value_error".to_owned(),
    }])
}

/// An account as admins see it.
#[derive(Serialize, ToSchema)]
pub struct AdminUserView {
    id: Uuid,
    username: String,
    email: String,
    email_verified: bool,
    disabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    locale: Option<String>,
    roles: Vec<String>,
    #[schema(value_type = Object)]
    app_metadata: serde_json::Value,
    #[schema(value_type = Object)]
    user_metadata: serde_json::Value,
}

impl From<AdminUser> for AdminUserView {
    fn from(user: AdminUser) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            email_verified: user.email_verified,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
            locale: user.locale,
            roles: user.roles,
            app_metadata: user.app_metadata,
            user_metadata: user.user_metadata,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<AdminUserView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// A prefix of the username or the email (case-insensitive).
    q: Option<String>,
    disabled: Option<bool>,
    email_verified: Option<bool>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
}

const UNAUTHORIZED: &str = "No, unknown or revoked credentials";
const FORBIDDEN: &str = "Not an admin, or the key lacks the scope";

/// List accounts, in a stable order, a page at a time.
#[utoipa::path(get, path = "/admin/users", tag = "admin",
    security(("bearer" = [])),
    params(UserListQuery),
    responses(
        (status = 200, description = "A page of accounts", body = UserPage),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 422, description = "A parameter does not parse", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn list_users(
    State(state): State<AppState>,
    _: Admin<UsersScope>,
    query: Result<Query<UserListQuery>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    let Query(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let page = state
        .auth
        .admin_users(UserQuery {
            q: query.q,
            disabled: query.disabled,
            email_verified: query.email_verified,
            created_after: query.created_after,
            created_before: query.created_before,
            limit: query.limit,
            cursor: query.cursor,
        })
        .await?;
    Ok(Json(UserPage {
        users: page.items.into_iter().map(AdminUserView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateUser {
    username: String,
    email: String,
    /// Without one, the account is invited by email to choose it.
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    roles: Vec<String>,
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<serde_json::Value>,
}

/// Create an account, validated as at registration; without a password, an invitation is emailed.
#[utoipa::path(post, path = "/admin/users", tag = "admin",
    security(("bearer" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = AdminUserView),
        (status = 400, description = "Username or email already registered", body = ErrorDetail),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "A field breaks its rule, or an unknown role", body = ValidationErrors),
        (status = 503, description = "No password and no email configured / the database is unreachable", body = ErrorDetail),
    ))]
async fn create_user(
    State(state): State<AppState>,
    Admin(actor, _): Admin<UsersScope>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    let user = state
        .auth
        .admin_create_user(
            NewAccount {
                username: body.username,
                email: body.email,
                password: body.password,
                email_verified: body.email_verified,
                roles: body.roles,
                app_metadata: body.app_metadata,
            },
            &actor,
            &client,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(AdminUserView::from(user))).into_response())
}

/// One account.
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account", body = AdminUserView),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn get_user(
    State(state): State<AppState>,
    _: Admin<UsersScope>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<AdminUserView>, ApiError> {
    let id = path_id(id, "User")?;
    Ok(Json(AdminUserView::from(state.auth.admin_user(id).await?)))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateUser {
    username: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    /// Disabling ends every session at once.
    disabled: Option<bool>,
    /// A JSON object of at most 4 KiB, copied into access tokens.
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<serde_json::Value>,
}

/// Change an account; fields left out stay as they are.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The account as changed", body = AdminUserView),
        (status = 400, description = "Username or email already registered", body = ErrorDetail),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "A field breaks its rule", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn update_user(
    State(state): State<AppState>,
    Admin(actor, _): Admin<UsersScope>,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<AdminUserView>, ApiError> {
    let id = path_id(id, "User")?;
    let edit = AccountEdit {
        username: body.username,
        email: body.email,
        email_verified: body.email_verified,
        disabled: body.disabled,
        app_metadata: body.app_metadata,
    };
    let user = state
        .auth
        .admin_update_user(id, edit, &actor, &client)
        .await?;
    Ok(Json(AdminUserView::from(user)))
}

/// Delete an account and everything tied to it; its tokens stop at once.
#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn delete_user(
    State(state): State<AppState>,
    Admin(actor, _): Admin<UsersScope>,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id, "User")?;
    state.auth.admin_delete_user(id, &actor, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End the account-wide login lockout.
#[utoipa::path(post, path = "/admin/users/{id}/unlock", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 204, description = "Unlocked"),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn unlock_user(
    State(state): State<AppState>,
    Admin(actor, _): Admin<UsersScope>,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id, "User")?;
    state.auth.admin_unlock(id, &actor, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct FactorsRemoved {
    /// Whether the account had any factor.
    removed: bool,
}

/// Remove every second factor (TOTP, passkeys, recovery codes); the account's sessions end.
#[utoipa::path(delete, path = "/admin/users/{id}/mfa", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "Done", body = FactorsRemoved),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn reset_user_factors(
    State(state): State<AppState>,
    Admin(actor, _): Admin<UsersScope>,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<FactorsRemoved>, ApiError> {
    let id = path_id(id, "User")?;
    let removed = state.auth.admin_reset_factors(id, &actor, &client).await?;
    Ok(Json(FactorsRemoved { removed }))
}

#[derive(Serialize, ToSchema)]
pub struct AdminSessionView {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
}

impl From<LiveSession> for AdminSessionView {
    fn from(session: LiveSession) -> Self {
        Self {
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent,
            ip: session.client_ip,
        }
    }
}

/// The account's live sessions.
#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "Live sessions", body = Vec<AdminSessionView>),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn user_sessions(
    State(state): State<AppState>,
    _: Admin<UsersScope>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Vec<AdminSessionView>>, ApiError> {
    let id = path_id(id, "User")?;
    let sessions = state.auth.admin_sessions(id).await?;
    Ok(Json(
        sessions.into_iter().map(AdminSessionView::from).collect(),
    ))
}

/// End every session of the account at once.
#[utoipa::path(delete, path = "/admin/users/{id}/sessions", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn end_user_sessions(
    State(state): State<AppState>,
    Admin(actor, _): Admin<UsersScope>,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id, "User")?;
    state.auth.admin_end_sessions(id, &actor, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct RolesBody {
    /// Every role the account holds from now on (each created first).
    roles: Vec<String>,
}

/// Set the account's roles; tokens carry them from its next refresh or login.
#[utoipa::path(put, path = "/admin/users/{id}/roles", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    request_body = RolesBody,
    responses(
        (status = 200, description = "The account with its roles", body = AdminUserView),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "An unknown role", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn set_user_roles(
    State(state): State<AppState>,
    Admin(actor, _): Admin<UsersScope>,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<RolesBody>,
) -> Result<Json<AdminUserView>, ApiError> {
    let id = path_id(id, "User")?;
    let user = state
        .auth
        .set_roles(id, body.roles, &actor, &client)
        .await?;
    Ok(Json(AdminUserView::from(user)))
}

#[derive(Serialize, ToSchema)]
pub struct RoleView {
    name: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<RoleRecord> for RoleView {
    fn from(role: RoleRecord) -> Self {
        Self {
            name: role.name,
            description: role.description,
            created_at: role.created_at,
        }
    }
}

/// Every role.
#[utoipa::path(get, path = "/admin/roles", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Roles by name", body = Vec<RoleView>),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn list_roles(
    State(state): State<AppState>,
    _: Admin<UsersScope>,
) -> Result<Json<Vec<RoleView>>, ApiError> {
    let roles = state.auth.list_roles().await?;
    Ok(Json(roles.into_iter().map(RoleView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateRole {
    /// 1 to 64 letters, digits or `_-:.`; `admin` opens the admin API.
    #[schema(example = "editor")]
    name: String,
    description: Option<String>,
}

/// Create a role.
#[utoipa::path(post, path = "/admin/roles", tag = "admin",
    security(("bearer" = [])),
    request_body = CreateRole,
    responses(
        (status = 201, description = "Created", body = RoleView),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 409, description = "Role already exists", body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "A name that breaks the rule", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn create_role(
    State(state): State<AppState>,
    Admin(actor, _): Admin<UsersScope>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateRole>,
) -> Result<Response, ApiError> {
    let role = state
        .auth
        .create_role(&body.name, body.description.as_deref(), &actor, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(RoleView::from(role))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this account's events.
    user_id: Option<Uuid>,
    /// Only this event (`login_success`, `user_deleted`, ...).
    event: Option<String>,
    /// At or after.
    since: Option<DateTime<Utc>>,
    /// Before.
    until: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    id: i64,
    at: DateTime<Utc>,
    event: String,
    user_id: Option<Uuid>,
    /// What happened, and who did it for admin actions.
    outcome: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<AdminAuditEntry> for AuditEventView {
    fn from(entry: AdminAuditEntry) -> Self {
        Self {
            id: entry.id,
            at: entry.entry.at,
            event: entry.entry.event,
            user_id: entry.user_id,
            outcome: entry.entry.outcome,
            ip: entry.entry.client_ip,
            user_agent: entry.entry.user_agent,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    events: Vec<AuditEventView>,
    next_cursor: Option<String>,
}

/// The audit trail, newest first, a page at a time.
#[utoipa::path(get, path = "/admin/audit", tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditPage),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 422, description = "A parameter does not parse", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn list_audit(
    State(state): State<AppState>,
    _: Admin<AuditScope>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let filter = AuditFilter {
        user_id: query.user_id,
        event: query.event,
        since: query.since,
        until: query.until,
        before_id: None,
    };
    let page = state
        .auth
        .admin_audit(filter, query.limit, query.cursor.as_deref())
        .await?;
    Ok(Json(AuditPage {
        events: page.items.into_iter().map(AuditEventView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    id: Uuid,
    name: String,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRecord> for ApiKeyView {
    fn from(key: ApiKeyRecord) -> Self {
        Self {
            id: key.id,
            name: key.name,
            scopes: key.scopes,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// Every API key (never the keys themselves).
#[utoipa::path(get, path = "/admin/api-keys", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "API keys", body = Vec<ApiKeyView>),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn list_api_keys(
    State(state): State<AppState>,
    _: Admin<KeysScope>,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let keys = state.auth.list_api_keys().await?;
    Ok(Json(keys.into_iter().map(ApiKeyView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateApiKey {
    #[schema(example = "support-tool")]
    name: String,
    /// `admin:users`, `admin:audit`, `admin:webhooks`, `admin:keys`; a key grants only scopes it holds.
    #[schema(example = json!(["admin:users"]))]
    scopes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// Shown only now; stored hashed.
    #[schema(example = "lk_…")]
    key: String,
    #[serde(flatten)]
    api_key: ApiKeyView,
}

/// Create an API key; the key is in this answer only.
#[utoipa::path(post, path = "/admin/api-keys", tag = "admin",
    security(("bearer" = [])),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created", body = CreatedApiKey),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "A name or scope that breaks its rule", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    Admin(actor, _): Admin<KeysScope>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<Response, ApiError> {
    let (record, key) = state
        .auth
        .create_api_key(&body.name, &body.scopes, &actor, &client)
        .await?;
    let created = CreatedApiKey {
        key: key.expose_secret().to_owned(),
        api_key: ApiKeyView::from(record),
    };
    Ok((StatusCode::CREATED, no_store(Json(created))).into_response())
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/admin/api-keys/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "No such live key", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn revoke_api_key(
    State(state): State<AppState>,
    Admin(actor, _): Admin<KeysScope>,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id, "API key")?;
    if state.auth.revoke_api_key(id, &actor, &client).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFoundDetail("API key not found".to_owned()))
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    id: Uuid,
    url: String,
    events: Vec<String>,
    created_at: DateTime<Utc>,
    /// Set when the endpoint failed for 24 hours; nothing is sent to it since.
    disabled_at: Option<DateTime<Utc>>,
    /// Since when deliveries have been failing, if they are.
    failing_since: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl From<WebhookEndpointRecord> for WebhookView {
    fn from(endpoint: WebhookEndpointRecord) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url,
            events: endpoint.events,
            created_at: endpoint.created_at,
            disabled_at: endpoint.disabled_at,
            failing_since: endpoint.failing_since,
            last_error: endpoint.last_error,
        }
    }
}

/// Every webhook endpoint (never their secrets).
#[utoipa::path(get, path = "/admin/webhooks", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Endpoints", body = Vec<WebhookView>),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn list_webhooks(
    State(state): State<AppState>,
    _: Admin<WebhooksScope>,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    let endpoints = state.auth.list_webhooks().await?;
    Ok(Json(endpoints.into_iter().map(WebhookView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateWebhook {
    /// https, and its host must resolve to public addresses only.
    #[schema(example = "https://hooks.example.com/latchkey")]
    url: String,
    /// Event types: user.created, user.email_verified, user.updated, user.deleted,
    /// user.disabled, login.succeeded, login.failed, password.changed,
    /// session.revoked, mfa.enabled, mfa.disabled.
    #[schema(example = json!(["user.created", "user.deleted"]))]
    events: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedWebhookView {
    /// The signing secret (Standard Webhooks, `whsec_…`), shown only now.
    secret: String,
    #[serde(flatten)]
    endpoint: WebhookView,
}

/// Register a webhook endpoint; the answer holds its signing secret, once.
#[utoipa::path(post, path = "/admin/webhooks", tag = "admin",
    security(("bearer" = [])),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created", body = CreatedWebhookView),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 413, description = "Body over 64 KiB", body = ErrorDetail),
        (status = 415, description = "Not JSON", body = ErrorDetail),
        (status = 422, description = "Not https, an internal address, or an unknown event type", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn create_webhook(
    State(state): State<AppState>,
    Admin(actor, _): Admin<WebhooksScope>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<Response, ApiError> {
    let created = state
        .auth
        .create_webhook(&body.url, &body.events, &actor, &client)
        .await?;
    let view = CreatedWebhookView {
        secret: created.secret.expose_secret().to_owned(),
        endpoint: WebhookView::from(created.endpoint),
    };
    Ok((StatusCode::CREATED, no_store(Json(view))).into_response())
}

/// Delete a webhook endpoint; what it has not received yet is dropped.
#[utoipa::path(delete, path = "/admin/webhooks/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "Webhook not found", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn delete_webhook(
    State(state): State<AppState>,
    Admin(actor, _): Admin<WebhooksScope>,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id, "Webhook")?;
    if state.auth.delete_webhook(id, &actor, &client).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFoundDetail("Webhook not found".to_owned()))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
}

/// One event sent (or to be sent) to an endpoint.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id` header: the same on every attempt.
    id: String,
    #[schema(example = "user.created")]
    event_type: String,
    created_at: DateTime<Utc>,
    attempts: i32,
    /// When the next attempt is due, while undelivered.
    next_attempt_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    /// Set when retries stopped (24 hours, or the endpoint is gone).
    failed_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl From<OutboxRecord> for DeliveryView {
    fn from(row: OutboxRecord) -> Self {
        let pending = row.sent_at.is_none() && row.failed_at.is_none();
        Self {
            id: format!("msg_{}", row.id.simple()),
            event_type: row.kind.trim_start_matches("webhook:").to_owned(),
            created_at: row.created_at,
            attempts: row.attempts,
            next_attempt_at: pending.then_some(row.due_at),
            delivered_at: row.sent_at,
            failed_at: row.failed_at,
            last_error: row.last_error,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    deliveries: Vec<DeliveryView>,
}

/// The latest deliveries to an endpoint, newest first, with their attempts.
#[utoipa::path(get, path = "/admin/webhooks/{id}/deliveries", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), DeliveriesQuery),
    responses(
        (status = 200, description = "Deliveries", body = DeliveryPage),
        (status = 401, description = UNAUTHORIZED, body = ErrorDetail),
        (status = 403, description = FORBIDDEN, body = ErrorDetail),
        (status = 404, description = "Webhook not found", body = ErrorDetail),
        (status = 422, description = "A parameter does not parse", body = ValidationErrors),
        (status = 503, description = "The database is unreachable; retry", body = ErrorDetail),
    ))]
async fn webhook_deliveries(
    State(state): State<AppState>,
    _: Admin<WebhooksScope>,
    id: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let id = path_id(id, "Webhook")?;
    let Query(query) = query.map_err(|rejection| bad_query(&rejection))?;
    let deliveries = state
        .auth
        .webhook_deliveries(id, query.limit.unwrap_or(50))
        .await?;
    Ok(Json(DeliveryPage {
        deliveries: deliveries.into_iter().map(DeliveryView::from).collect(),
    }))
}
