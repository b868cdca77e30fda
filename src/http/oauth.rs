//! OAuth 2.0 and OpenID endpoints: the token endpoint (RFC 6749, password and
//! refresh-token grants), revocation (RFC 7009), introspection (RFC 7662),
//! userinfo and discovery. Errors here use RFC 6749 section 5.2's body,
//! `{"error": ..., "error_description": ...}`, not `detail`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorDetail, MfaRequired, ServerFault, attach, retry_after_seconds};
use super::extract::{Client, FORM, bearer_token, media_type, read_body};
use super::origin::{TokenResponse, no_store};
use super::state::AppState;
use super::throttle::{Other, Throttled, admit};
use crate::auth::{AuthError, Introspection, RouteGroup};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(revoke))
        .routes(routes!(introspect))
        .routes(routes!(userinfo, userinfo_post))
        .routes(routes!(discovery))
}

/// The token request form (RFC 6749 sections 4.3 and 6); which fields are
/// required depends on `grant_type`. Unrecognized parameters are ignored
/// (RFC 6749 section 3.2); a parameter given twice is an error.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TokenForm {
    /// `password`, `refresh_token`, `authorization_code` or `client_credentials`.
    #[schema(
        pattern = "^(password|refresh_token|authorization_code|client_credentials)$",
        example = "refresh_token"
    )]
    grant_type: String,
    /// With `password`: the username or email.
    username: Option<String>,
    /// With `password`.
    #[schema(format = Password)]
    password: Option<String>,
    /// With `refresh_token`.
    refresh_token: Option<String>,
    /// With `client_credentials`: the scopes wanted (default: all the client's); otherwise ignored.
    scope: Option<String>,
    /// With `authorization_code`: the code from `/authorize`.
    code: Option<String>,
    /// With `authorization_code`: exactly as sent to `/authorize`.
    redirect_uri: Option<String>,
    /// With `authorization_code`: the PKCE verifier.
    code_verifier: Option<String>,
    /// A public client's id (confidential clients may send it with `client_secret`, or use HTTP Basic).
    client_id: Option<String>,
    /// `client_secret_post`.
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// A token to revoke (RFC 7009) or introspect (RFC 7662).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TokenHintForm {
    /// An access or refresh token.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; a hint only.
    token_type_hint: Option<String>,
}

/// RFC 6749 section 5.2.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    #[schema(example = "invalid_grant")]
    error: &'static str,
    error_description: String,
    #[serde(skip)]
    status: StatusCode,
    #[serde(skip)]
    retry_after: Option<u64>,
    #[serde(skip)]
    fault: Option<ServerFault>,
    /// A right password on an account with a second factor.
    #[serde(skip)]
    mfa: Option<Box<MfaRequired>>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: description.into(),
            status: StatusCode::BAD_REQUEST,
            retry_after: None,
            fault: None,
            mfa: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    fn throttled(wait: std::time::Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(retry_after_seconds(wait)),
            ..Self::new("temporarily_unavailable", "Too many attempts; retry later")
        }
    }

    fn from_auth(error: AuthError) -> Self {
        match error {
            AuthError::InvalidCredentials => {
                Self::new("invalid_grant", "Incorrect username or password")
            }
            AuthError::InvalidGrant(reason) => Self::new("invalid_grant", reason),
            AuthError::InvalidScope => Self::new(
                "invalid_scope",
                "a requested scope is not allowed for this client",
            ),
            AuthError::UnauthorizedClient => {
                Self::new("unauthorized_client", "this client may not use this grant")
            }
            AuthError::EmailNotVerified => Self::new("invalid_grant", "Email not verified"),
            AuthError::MfaRequired { mfa_token, methods } => Self {
                mfa: Some(Box::new(MfaRequired::new(&mfa_token, methods))),
                ..Self::new("mfa_required", "Multi-factor authentication required")
            },
            AuthError::InvalidClient => Self {
                status: StatusCode::UNAUTHORIZED,
                ..Self::new("invalid_client", "Client authentication failed")
            },
            AuthError::Throttled(wait) => Self::throttled(wait),
            AuthError::Busy => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..Self::new("temporarily_unavailable", "Server busy, retry shortly")
            },
            AuthError::Store(ref store) if store.is_unavailable() => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                fault: Some(ServerFault::new(error)),
                ..Self::new(
                    "temporarily_unavailable",
                    "Service unavailable, retry shortly",
                )
            },
            other => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                fault: Some(ServerFault::new(other)),
                ..Self::new("server_error", "Internal server error")
            },
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(mut self) -> Response {
        if let Some(mfa) = self.mfa.take() {
            return mfa.into_response();
        }
        let status = self.status;
        let retry_after = self.retry_after;
        let fault = self.fault.clone();
        let mut response = no_store((status, Json(self)));
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latchkey\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        match fault {
            Some(fault) => attach(response, fault),
            None => response,
        }
    }
}

/// An `application/x-www-form-urlencoded` body; a parameter given twice is an error (RFC 6749 section 3.2).
pub struct OAuthForm(HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if media_type(request.headers()) != Some(FORM) {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let body = read_body(request, state).await.map_err(|_| {
            OAuthError::invalid_request("the body could not be read or is too large")
        })?;
        let mut fields = HashMap::new();
        for (name, value) in form_urlencoded::parse(&body) {
            if fields
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name} is repeated"
                )));
            }
        }
        Ok(Self(fields))
    }
}

impl OAuthForm {
    fn required(&mut self, name: &str) -> Result<String, OAuthError> {
        self.0
            .remove(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }
}

/// Exchange credentials, a refresh token or an authorization code for tokens.
///
/// Form fields: `grant_type=password` with `username` and `password`;
/// `grant_type=refresh_token` with `refresh_token` (each works once;
/// presenting a spent one ends its session); `grant_type=authorization_code`
/// with `code`, `redirect_uri`, `code_verifier` and the client (HTTP Basic,
/// `client_secret_post`, or `client_id` alone for a public client), answered
/// with an `id_token` for the `openid` scope; `grant_type=client_credentials`
/// for a confidential client, answered with a token naming the client.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content_type = "application/x-www-form-urlencoded", content = TokenForm),
    responses(
        (status = 200, description = "Tokens", body = TokenResponse),
        (status = 400, description = "RFC 6749 error", body = OAuthError),
        (status = 401, description = "Client authentication failed", body = OAuthError),
        (status = 403, description = "Password grant for an account with a second factor: `mfa_required`, with an `mfa_token` for `/login/mfa`", body = MfaRequired),
        (status = 503, description = "Password hashing at capacity, or the database is unreachable; retry", body = OAuthError),
    ))]
async fn token(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<Response, OAuthError> {
    let grant_type = form.required("grant_type")?;
    if matches!(
        grant_type.as_str(),
        "authorization_code" | "client_credentials"
    ) {
        return client_grant(&state, &client, &headers, &grant_type, form).await;
    }
    let group = match grant_type.as_str() {
        "refresh_token" => RouteGroup::Refresh,
        _ => RouteGroup::Login,
    };
    if let Err(ApiError::Throttled(wait)) = admit(&state, group, &client).await {
        return Err(OAuthError::throttled(wait));
    }
    let pair = match grant_type.as_str() {
        "password" => {
            let username = form.required("username")?;
            let password = SecretString::from(form.required("password")?);
            state
                .auth
                .login(&username, &password, &client)
                .await
                .map(|outcome| outcome.tokens)
        }
        "refresh_token" => {
            let refresh_token = SecretString::from(form.required("refresh_token")?);
            // Only a session opened for a client needs one; others ignore it.
            let credentials = client_credentials(&headers, &mut form).unwrap_or_default();
            state
                .auth
                .refresh(&refresh_token, &client, &credentials)
                .await
        }
        _ => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type must be password, refresh_token, authorization_code or client_credentials",
            ));
        }
    };
    let pair = pair.map_err(OAuthError::from_auth)?;
    Ok(no_store(Json(TokenResponse::from(pair))))
}

/// The grants a client makes for itself: the code exchange and client credentials.
async fn client_grant(
    state: &AppState,
    client: &crate::auth::ClientContext,
    headers: &HeaderMap,
    grant_type: &str,
    mut form: OAuthForm,
) -> Result<Response, OAuthError> {
    if let Err(ApiError::Throttled(wait)) = admit(state, RouteGroup::Other, client).await {
        return Err(OAuthError::throttled(wait));
    }
    let credentials = client_credentials(headers, &mut form)?;
    if grant_type == "client_credentials" {
        let scope = form.0.remove("scope");
        let token = state
            .auth
            .client_credentials(&credentials, scope.as_deref())
            .await
            .map_err(OAuthError::from_auth)?;
        let mut body = json!({
            "access_token": token.access_token,
            "token_type": "Bearer",
            "expires_in": token.expires_in,
        });
        if !token.scope.is_empty() {
            body["scope"] = json!(token.scope);
        }
        return Ok(no_store(Json(body)));
    }
    let code = SecretString::from(form.required("code")?);
    let redirect_uri = form.0.remove("redirect_uri");
    let verifier = form.0.remove("code_verifier");
    let issued = state
        .auth
        .exchange_code(
            &code,
            &credentials,
            redirect_uri.as_deref(),
            verifier.as_deref(),
            client,
        )
        .await
        .map_err(OAuthError::from_auth)?;
    let mut body = json!({
        "access_token": issued.tokens.access.access_token,
        "token_type": "Bearer",
        "expires_in": issued.tokens.access.expires_in,
        "scope": issued.scope,
    });
    if issued.refresh {
        body["refresh_token"] = json!(secrecy::ExposeSecret::expose_secret(
            &issued.tokens.refresh_token
        ));
    }
    if let Some(id_token) = issued.id_token {
        body["id_token"] = json!(id_token);
    }
    Ok(no_store(Json(body)))
}

/// The client's id and secret: HTTP Basic, or `client_id` and
/// `client_secret` in the form (never both), or `client_id` alone.
fn client_credentials(
    headers: &HeaderMap,
    form: &mut OAuthForm,
) -> Result<crate::auth::ClientCredentials, OAuthError> {
    let posted_id = form.0.remove("client_id").filter(|id| !id.is_empty());
    let posted_secret = form.0.remove("client_secret").filter(|s| !s.is_empty());
    if headers.contains_key(header::AUTHORIZATION) {
        let (id, secret) = basic_credentials(headers)
            .ok_or_else(|| OAuthError::from_auth(AuthError::InvalidClient))?;
        if posted_secret.is_some() || posted_id.as_ref().is_some_and(|posted| *posted != id) {
            return Err(OAuthError::invalid_request(
                "use one client authentication method",
            ));
        }
        return Ok(crate::auth::ClientCredentials {
            id: Some(id),
            secret: Some(secret),
        });
    }
    Ok(crate::auth::ClientCredentials {
        id: posted_id,
        secret: posted_secret,
    })
}

/// Revoke the session of an access or refresh token (RFC 7009). Always 200 for a well-formed request.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content_type = "application/x-www-form-urlencoded", content = TokenHintForm),
    responses(
        (status = 200, description = "Revoked, or there was nothing to revoke"),
        (status = 401, description = "A token issued to a client through `/authorize`, without that client's authentication", body = OAuthError),
        (status = 400, description = "RFC 6749 error", body = OAuthError),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = OAuthError),
    ))]
async fn revoke(
    State(state): State<AppState>,
    _: Throttled<Other>,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<Response, OAuthError> {
    let token = SecretString::from(form.required("token")?);
    // Only a token issued to a client needs the client.
    let credentials = client_credentials(&headers, &mut form).unwrap_or_default();
    state
        .auth
        .revoke_token(&token, &credentials)
        .await
        .map_err(OAuthError::from_auth)?;
    Ok(no_store(StatusCode::OK))
}

/// Whether a token is live, and its claims (RFC 7662). For resource servers,
/// authenticated with HTTP Basic by a client id and secret (`latchkey clients create`).
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content_type = "application/x-www-form-urlencoded", content = TokenHintForm),
    responses(
        (status = 200, description = "`{\"active\": true, ...claims}` or `{\"active\": false}`", body = Object),
        (status = 401, description = "Client authentication failed", body = OAuthError),
        (status = 400, description = "RFC 6749 error: the token parameter is missing or repeated", body = OAuthError),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = OAuthError),
    ))]
async fn introspect(
    State(state): State<AppState>,
    _: Throttled<Other>,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<Response, OAuthError> {
    let (client_id, client_secret) = basic_credentials(&headers)
        .ok_or_else(|| OAuthError::from_auth(AuthError::InvalidClient))?;
    let token = form.required("token")?;
    let answer = match state
        .auth
        .introspect(&client_id, &client_secret, &token)
        .await
        .map_err(OAuthError::from_auth)?
    {
        Introspection::Active(claims) => {
            let mut body = serde_json::to_value(&claims).unwrap_or_else(|_| json!({}));
            body["active"] = Value::Bool(true);
            body["token_type"] = json!("Bearer");
            body["username"] = json!(claims.preferred_username);
            body
        }
        Introspection::Inactive => json!({"active": false}),
    };
    Ok(no_store(Json(answer)))
}

/// `Authorization: Basic base64(id:secret)`.
/// HTTP Basic client credentials. RFC 6749 section 2.3.1 has clients
/// form-encode the id and the secret before Base64, so both are decoded
/// (`+` is a space, `%XX` a byte) after splitting at the first `:`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decoded(id)?, form_decoded(secret)?))
}

/// One `application/x-www-form-urlencoded` value; `None` if not UTF-8 once decoded.
fn form_decoded(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Claims about the caller: `sub` always; `preferred_username`, `name`,
/// `locale` and `updated_at` with the `profile` scope; `email` and
/// `email_verified` with `email`. A token from the password grant has every scope.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    sub: String,
    preferred_username: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
}

/// OpenID Connect userinfo for the bearer token's account.
#[utoipa::path(get, path = "/userinfo", tag = "oauth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Claims about the caller", body = UserInfo),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = bearer_token(&headers).ok_or(ApiError::NotAuthenticated)?;
    let claims = state.auth.userinfo(token).await?;
    Ok(no_store(Json(claims)))
}

/// `/userinfo` by POST (OpenID Connect Core section 5.3.1), the same answer.
#[utoipa::path(post, path = "/userinfo", tag = "oauth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Claims about the caller", body = UserInfo),
        (status = 401, description = "Not authenticated / Invalid token", body = ErrorDetail),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorDetail),
    ))]
async fn userinfo_post(state: State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    userinfo(state, headers).await
}

/// OpenID Provider metadata, so standard libraries need only the issuer URL.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth",
    responses((status = 200, description = "Provider metadata", body = Object)))]
async fn discovery(State(state): State<AppState>) -> Json<Value> {
    let metadata = state.auth.provider_metadata();
    let issuer = metadata.issuer;
    let algorithm = metadata.signing_algorithm;
    let mut metadata = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "grant_types_supported": ["refresh_token", "password"],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "id_token_signing_alg_values_supported": [algorithm],
        "claims_supported": ["iss", "aud", "sub", "sid", "auth_time", "nonce", "at_hash", "azp", "preferred_username", "name", "locale", "updated_at", "email", "email_verified", "amr", "acr", "iat", "exp"],
    });
    // `SECRET_KEY` mode publishes no keys, so it cannot sign ID tokens.
    if state.auth.oidc_available() {
        let oidc = json!({
            "authorization_endpoint": format!("{issuer}/authorize"),
            "end_session_endpoint": format!("{issuer}/end-session"),
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "scopes_supported": crate::auth::SUPPORTED_SCOPES,
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "authorization_response_iss_parameter_supported": true,
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
        });
        for (key, value) in oidc.as_object().into_iter().flatten() {
            metadata[key] = value.clone();
        }
    }
    Json(metadata)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn basic(raw: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(raw));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded_as_rfc_6749_asks() {
        assert_eq!(
            basic_credentials(&basic("my%3Aclient:s%2Bcret+x%25")),
            Some(("my:client".to_owned(), "s+cret x%".to_owned()))
        );
        assert_eq!(
            basic_credentials(&basic("plain-id:plain_secret-42")),
            Some(("plain-id".to_owned(), "plain_secret-42".to_owned()))
        );
        assert_eq!(basic_credentials(&basic("no-colon")), None);
        assert_eq!(basic_credentials(&basic("id:%FF")), None);
    }
}
