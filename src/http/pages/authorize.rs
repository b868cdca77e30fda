//! The authorization endpoint (`/authorize`), its consent page, and
//! RP-initiated logout (`/end-session`).

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::html;

use super::sign_in::encode;
use super::{PageContext, PageForm, form_ok, form_target};
use crate::auth::{
    AuthError, AuthorizationRequest, AuthorizeError, BrowserSession, CLIENT_LOOKUP_FAILED,
    RedirectError,
};
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(authorize).post(consent))
        .route("/end-session", get(end_session).post(end_session_confirmed))
}

/// Sends the browser back to the client with `params` (and `iss`, RFC 9207).
fn back_to_client(state: &AppState, redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut target = redirect_uri.to_owned();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    query.append_pair("iss", &state.auth.provider_metadata().issuer);
    target.push(if redirect_uri.contains('?') { '&' } else { '?' });
    target.push_str(&query.finish());
    let mut response = Redirect::to(&target).into_response();
    response.headers_mut().insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

fn refuse(state: &AppState, error: &RedirectError) -> Response {
    let mut params = vec![
        ("error", error.error),
        ("error_description", error.description),
    ];
    if let Some(value) = &error.state {
        params.push(("state", value));
    }
    back_to_client(state, &error.redirect_uri, &params)
}

/// The page for a request whose client or redirect URI is not proven.
fn bad_request_page(context: PageContext, reason: &str) -> Response {
    if reason == CLIENT_LOOKUP_FAILED {
        return context.failure(&AuthError::Busy);
    }
    let title = context.t("authorize_error_title").to_owned();
    let main = html! {
        h1 { (title) }
        p { (context.t("authorize_error_lead")) }
        p role="alert" class="alert" { code { (reason) } }
    };
    context.render(StatusCode::BAD_REQUEST, &title, main)
}

async fn authorize(
    State(state): State<AppState>,
    context: PageContext,
    RawQuery(query): RawQuery,
) -> Response {
    authorize_query(&state, context, query.unwrap_or_default()).await
}

/// Form fields as a query string, for the requests OpenID Connect lets a
/// client send by POST as well as GET.
fn as_query(form: &PageForm) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.0.iter())
        .finish()
}

/// An authorization request, from a query or a POSTed form.
async fn authorize_query(state: &AppState, context: PageContext, query: String) -> Response {
    let state = state.clone();
    let request = match state.auth.authorization_request(&query).await {
        Ok(request) => request,
        Err(AuthorizeError::Page(reason)) => return bad_request_page(context, reason),
        Err(AuthorizeError::Redirect(error)) => return refuse(&state, &error),
    };
    let session = match context.session(&state).await {
        Ok(session) => session,
        Err(error) => return context.failure(&error),
    };
    let session = session.filter(|session| !state.auth.needs_fresh_sign_in(&request, session));
    let Some(session) = session.filter(|_| !request.prompt.login) else {
        if request.prompt.none {
            return refuse(
                &state,
                &request.refuse("login_required", "the user is not signed in"),
            );
        }
        return context.redirect(&sign_in_again(&state, &request, &query));
    };
    match state.auth.needs_consent(session.user.id, &request).await {
        Ok(false) => issue(&state, context, &session, &request).await,
        Ok(true) if request.prompt.none => refuse(
            &state,
            &request.refuse("consent_required", "the user has not allowed this client"),
        ),
        Ok(true) => consent_page(&state, context, &session, &request, &query),
        Err(error) => context.failure(&error),
    }
}

/// Where to sign in, coming back to this request. `prompt=login` comes
/// back as `login_after` (a MAC'd time the sign-in must follow), so the way
/// back does not loop and cannot be taken without signing in again;
/// `consent` stays asked.
fn sign_in_again(state: &AppState, request: &AuthorizationRequest, query: &str) -> String {
    let mut again = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "login_after" => {}
            "prompt" if request.prompt.login => {
                let kept: Vec<&str> = value.split_whitespace().filter(|v| *v != "login").collect();
                if !kept.is_empty() {
                    again.append_pair("prompt", &kept.join(" "));
                }
            }
            _ => {
                again.append_pair(&name, &value);
            }
        }
    }
    if request.prompt.login {
        again.append_pair("login_after", &state.auth.login_after_now());
    }
    let mut target = format!(
        "/sign-in?reauth=1&continue={}",
        encode(&format!("/authorize?{}", again.finish()))
    );
    if let Some(hint) = &request.login_hint {
        target.push_str(&format!("&login_hint={}", encode(hint)));
    }
    target
}

async fn issue(
    state: &AppState,
    context: PageContext,
    session: &BrowserSession,
    request: &AuthorizationRequest,
) -> Response {
    match state.auth.issue_code(session, request).await {
        Ok(code) => {
            let code = secrecy::ExposeSecret::expose_secret(&code).to_owned();
            let mut params = vec![("code", code.as_str())];
            if let Some(value) = &request.state {
                params.push(("state", value));
            }
            back_to_client(state, &request.redirect_uri, &params)
        }
        Err(error) => {
            tracing::error!(error = %crate::telemetry::error_chain(&error), "could not issue an authorization code");
            let _ = context;
            refuse(
                state,
                &request.refuse("server_error", "the code could not be issued; try again"),
            )
        }
    }
}

fn consent_page(
    state: &AppState,
    mut context: PageContext,
    session: &BrowserSession,
    request: &AuthorizationRequest,
    query: &str,
) -> Response {
    context.form_targets = form_target(&request.redirect_uri).into_iter().collect();
    let title = context.t("consent_title").to_owned();
    let main = html! {
        h1 { (title) }
        p { (context.tf("consent_lead", &[("client", &request.client.name)])) }
        ul class="scopes" {
            @for scope in &request.scopes {
                li { (context.t(&format!("scope_{scope}"))) }
            }
        }
        p class="hint" { (context.tf("consent_signed_in_as", &[("username", &session.user.username)])) }
        form method="post" action="/authorize" class="actions" {
            (context.token_field(state))
            input type="hidden" name="request" value=(query);
            input type="hidden" name="session" value=(session.principal.session_id.to_string());
            button type="submit" name="decision" value="allow" { (context.t("consent_allow")) }
            button type="submit" name="decision" value="deny" class="secondary" { (context.t("consent_deny")) }
        }
    };
    context.render(StatusCode::OK, &title, main)
}

/// The consent form's answer, or an authorization request sent by POST
/// (OpenID Connect Core section 3.1.2.1). A cross-site POST carries no
/// SameSite=Lax cookie, so the request goes on as the GET it could have
/// been, which does.
async fn consent(State(state): State<AppState>, context: PageContext, form: PageForm) -> Response {
    if form.get("decision").is_none() {
        return context.redirect(&format!("/authorize?{}", as_query(&form)));
    }
    if !form_ok(&context, &state, &form) {
        return context.expired_form();
    }
    let query = form.get("request").unwrap_or_default().to_owned();
    let request = match state.auth.authorization_request(&query).await {
        Ok(request) => request,
        Err(AuthorizeError::Page(reason)) => return bad_request_page(context, reason),
        Err(AuthorizeError::Redirect(error)) => return refuse(&state, &error),
    };
    let session = match context.session(&state).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return context.redirect(&format!(
                "/sign-in?continue={}",
                encode(&format!("/authorize?{query}"))
            ));
        }
        Err(error) => return context.failure(&error),
    };
    // The page was shown to this sign-in; another (a tab that switched
    // accounts) or a stale one (max_age, prompt=login) starts over.
    if form.get("session") != Some(session.principal.session_id.to_string().as_str()) {
        return context.redirect(&format!("/authorize?{query}"));
    }
    if state.auth.needs_fresh_sign_in(&request, &session) {
        return context.redirect(&sign_in_again(&state, &request, &query));
    }
    if form.get("decision") != Some("allow") {
        return refuse(
            &state,
            &request.refuse("access_denied", "the user denied access"),
        );
    }
    if let Err(error) = state.auth.grant_consent(session.user.id, &request).await {
        return context.failure(&error);
    }
    issue(&state, context, &session, &request).await
}

/// The parameters of an RP-initiated logout.
struct Logout {
    hint: Option<crate::auth::LogoutHint>,
    redirect: Option<String>,
    state: Option<String>,
}

/// Checks an RP-initiated logout: a hint must be ours, and a post-logout
/// redirect URI must be registered, exactly, for the client it names.
async fn logout_request(state: &AppState, query: &str) -> Result<Logout, &'static str> {
    let mut params = std::collections::HashMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if params
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return Err("a parameter is repeated");
        }
    }
    let hint = match params.get("id_token_hint") {
        Some(token) => Some(
            state
                .auth
                .logout_hint(token)
                .ok_or("id_token_hint is not a valid ID token from this server")?,
        ),
        None => None,
    };
    // An ID token names its client in `aud`: one that exists.
    if let Some(hinted) = hint.as_ref().and_then(|hint| hint.client_id.as_deref())
        && state
            .auth
            .client(hinted)
            .await
            .map_err(|_| CLIENT_LOOKUP_FAILED)?
            .is_none()
    {
        return Err("id_token_hint was not issued to a client of this server");
    }
    let client_id = params
        .get("client_id")
        .cloned()
        .or_else(|| hint.as_ref().and_then(|hint| hint.client_id.clone()));
    if let (Some(hinted), Some(named)) = (
        hint.as_ref().and_then(|h| h.client_id.as_deref()),
        params.get("client_id"),
    ) && hinted != named
    {
        return Err("client_id differs from the id_token_hint's audience");
    }
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client_id =
                client_id.ok_or("post_logout_redirect_uri needs id_token_hint or client_id")?;
            let client = state
                .auth
                .client(&client_id)
                .await
                .map_err(|_| CLIENT_LOOKUP_FAILED)?
                .ok_or("the client is unknown")?;
            if !client
                .post_logout_redirect_uris
                .iter()
                .any(|registered| registered == uri)
            {
                return Err("post_logout_redirect_uri is not registered for this client");
            }
            Some(uri.clone())
        }
    };
    Ok(Logout {
        hint,
        redirect,
        state: params.get("state").cloned(),
    })
}

async fn end_session(
    State(state): State<AppState>,
    context: PageContext,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let logout = match logout_request(&state, &query).await {
        Ok(logout) => logout,
        Err(reason) => return bad_request_page(context, reason),
    };
    let session = match context.session(&state).await {
        Ok(session) => session,
        Err(error) => return context.failure(&error),
    };
    match session {
        // The hint names this browser's user: the client asked, sign out at once.
        Some(session)
            if logout
                .hint
                .as_ref()
                .is_some_and(|hint| hint.user_id == Some(session.user.id)) =>
        {
            signed_out(&state, context, Some(&session), &logout).await
        }
        None => signed_out(&state, context, None, &logout).await,
        // Otherwise the user confirms, so a link cannot sign anyone out.
        Some(_) => {
            let title = context.t("sign_out_title").to_owned();
            let main = html! {
                h1 { (title) }
                p { (context.tf("sign_out_lead", &[("product", &context.ui.product)])) }
                form method="post" action="/end-session" {
                    (context.token_field(&state))
                    input type="hidden" name="request" value=(query);
                    button type="submit" { (context.t("sign_out_button")) }
                }
            };
            let mut context = context;
            context.form_targets = logout
                .redirect
                .as_deref()
                .and_then(form_target)
                .into_iter()
                .collect();
            context.render(StatusCode::OK, &title, main)
        }
    }
}

/// The sign-out confirmation, or a logout request sent by POST.
async fn end_session_confirmed(
    State(state): State<AppState>,
    context: PageContext,
    form: PageForm,
) -> Response {
    if form.get("form_token").is_none() {
        // As for `/authorize`: on as a GET, which carries the session cookie.
        return context.redirect(&format!("/end-session?{}", as_query(&form)));
    }
    if !form_ok(&context, &state, &form) {
        return context.expired_form();
    }
    let logout = match logout_request(&state, form.get("request").unwrap_or_default()).await {
        Ok(logout) => logout,
        Err(reason) => return bad_request_page(context, reason),
    };
    let session = match context.session(&state).await {
        Ok(session) => session,
        Err(error) => return context.failure(&error),
    };
    signed_out(&state, context, session.as_ref(), &logout).await
}

async fn signed_out(
    state: &AppState,
    mut context: PageContext,
    session: Option<&BrowserSession>,
    logout: &Logout,
) -> Response {
    if let Some(session) = session
        && let Err(error) = state
            .auth
            .end_browser_session(session.principal.session_id)
            .await
    {
        return context.failure(&error);
    }
    context.sign_out();
    if let Some(uri) = &logout.redirect {
        let mut target = uri.clone();
        if let Some(value) = &logout.state {
            target.push(if uri.contains('?') { '&' } else { '?' });
            target.push_str(&format!("state={}", encode(value)));
        }
        return context.redirect(&target);
    }
    let title = context.t("signed_out_title").to_owned();
    let text = context.t("signed_out_lead").to_owned();
    let link = context.t("sign_in_link").to_owned();
    context.notice(StatusCode::OK, &title, &text, Some(("/sign-in", &link)))
}
