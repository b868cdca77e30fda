//! Signing in and everything before it: password, passkey and emailed
//! code, the second step, sign-up, password reset, and the pages the email
//! links open (verify email, confirm an email change, sign in by link).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use secrecy::SecretString;
use serde::Deserialize;

use super::super::extract::Client;
use super::super::throttle::admit;
use super::{
    Lenient, MFA_COOKIE, PageContext, PageForm, accepted, alert, field, form_ok, safe_continue,
};
use crate::auth::{AuthError, LoginOutcome, Registration, RouteGroup, SecondFactor};
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-in/passkey", post(sign_in_passkey))
        .route("/sign-in/email", post(email_code_request))
        .route("/sign-in/email/code", post(email_code))
        .route("/sign-in/link", post(sign_in_link))
        .route(
            "/sign-in/second-factor",
            get(second_factor_page).post(second_factor),
        )
        .route(
            "/sign-in/second-factor/passkey",
            post(second_factor_passkey_start),
        )
        .route("/sign-up", get(sign_up_page).post(sign_up))
        .route("/forgot-password", get(forgot_page).post(forgot))
        .route("/reset-password", get(reset_page).post(reset))
        .route("/verify-email", get(verify_page).post(verify))
        .route("/confirm-email-change", get(change_page).post(change))
        .route("/sign-out", post(sign_out))
}

/// Query of the sign-in page.
#[derive(Deserialize, Default)]
pub struct SignInQuery {
    #[serde(rename = "continue")]
    next: Option<String>,
    login_hint: Option<String>,
    /// Show the form even to a signed-in browser (`prompt=login`, `max_age`).
    reauth: Option<String>,
    /// The token of an emailed sign-in link.
    token: Option<String>,
}

/// What the sign-in form shows besides its fields.
#[derive(Default)]
struct SignInView<'a> {
    next: &'a str,
    login: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

async fn sign_in_page(
    State(state): State<AppState>,
    context: PageContext,
    Lenient(query): Lenient<SignInQuery>,
) -> Response {
    let next = safe_continue(query.next.as_deref());
    if let Some(token) = query.token.filter(|token| !token.is_empty()) {
        return link_page(&state, context, &token, &next);
    }
    if query.reauth.is_none() {
        match context.session(&state).await {
            Ok(Some(_)) => return context.redirect(&next),
            Ok(None) => {}
            Err(error) => return context.failure(&error),
        }
    }
    let login = query.login_hint.unwrap_or_default();
    sign_in_view(
        &state,
        context,
        StatusCode::OK,
        &SignInView {
            next: &next,
            login: &login,
            ..Default::default()
        },
    )
}

fn sign_in_view(
    state: &AppState,
    mut context: PageContext,
    status: StatusCode,
    view: &SignInView<'_>,
) -> Response {
    context.form_targets = redirect_target(state, view.next);
    let title = context.t("sign_in_title").to_owned();
    let token = context.form_token(state);
    let main = html! {
        h1 { (title) }
        p { (context.tf("sign_in_lead", &[("product", &context.ui.product)])) }
        (alert(view.error))
        @if let Some(notice) = view.notice {
            div class="flash" role="status" { (notice) }
        }
        form method="post" action="/sign-in" novalidate {
            (context.token_field(state))
            input type="hidden" name="continue" value=(view.next);
            (field("login", context.t("username_or_email"), "text", view.login, "username webauthn", None, None))
            (field("password", context.t("password"), "password", "", "current-password", None, None))
            button type="submit" { (context.t("sign_in_button")) }
        }
        div class="passkey" hidden data-passkey-sign-in data-continue=(view.next) data-form-token=(token) {
            p class="or" { span { (context.t("or")) } }
            button type="button" class="secondary" data-action="passkey-sign-in" { (context.t("sign_in_passkey")) }
            p class="error" role="alert" data-passkey-error hidden { (context.t("passkey_failed")) }
        }
        @if context.ui.email_sign_in {
            details {
                summary { (context.t("email_code_heading")) }
                form method="post" action="/sign-in/email" {
                    (context.token_field(state))
                    input type="hidden" name="continue" value=(view.next);
                    (field("email", context.t("email"), "email", "", "email", None, None))
                    button type="submit" class="secondary" { (context.t("email_code_send")) }
                }
            }
        }
        nav class="links" {
            a href="/forgot-password" { (context.t("forgot_password_link")) }
            span { (context.t("no_account")) " " a href={"/sign-up?continue=" (encode(view.next))} { (context.t("sign_up_link")) } }
        }
    };
    context.render(status, &title, main)
}

/// The redirect URI's origin of the authorization request a page continues to:
/// the form's redirect chain ends there, so `form-action` must allow it.
fn redirect_target(_state: &AppState, next: &str) -> Vec<String> {
    let Some(query) = next.strip_prefix("/authorize?") else {
        return Vec::new();
    };
    // Only loosens this page's own form-action; `/authorize` checks the URI.
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "redirect_uri")
        .filter(|(_, uri)| crate::auth::valid_redirect_uri(uri))
        .and_then(|(_, uri)| super::form_target(&uri))
        .into_iter()
        .collect()
}

pub(crate) fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn sign_in(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    if !form_ok(&context, &state, &form) {
        return context.expired_form();
    }
    let next = safe_continue(form.get("continue"));
    let login = form.text("login");
    if let Err(error) = admit(&state, RouteGroup::Login, &client).await {
        let _ = error;
        let text = context.t("too_many_attempts").to_owned();
        return sign_in_view(
            &state,
            context,
            StatusCode::TOO_MANY_REQUESTS,
            &SignInView {
                next: &next,
                login: &login,
                error: Some(&text),
                ..Default::default()
            },
        );
    }
    let outcome = state
        .auth
        .login(&login, &form.secret("password"), &client)
        .await;
    finish_sign_in(&state, context, outcome, &next, &login).await
}

/// After a first factor: signed in, on to the second step, or the form again.
async fn finish_sign_in(
    state: &AppState,
    mut context: PageContext,
    outcome: Result<LoginOutcome, AuthError>,
    next: &str,
    login: &str,
) -> Response {
    match outcome {
        Ok(outcome) => {
            context.sign_in(state, outcome.tokens.session_id).await;
            context.redirect(next)
        }
        Err(AuthError::MfaRequired { mfa_token, .. }) => {
            context.remember(
                MFA_COOKIE,
                secrecy::ExposeSecret::expose_secret(&mfa_token),
                300,
            );
            context.redirect(&format!("/sign-in/second-factor?continue={}", encode(next)))
        }
        Err(AuthError::InvalidCredentials) => {
            let text = context.t("wrong_credentials").to_owned();
            sign_in_view(
                state,
                context,
                StatusCode::UNAUTHORIZED,
                &SignInView {
                    next,
                    login,
                    error: Some(&text),
                    ..Default::default()
                },
            )
        }
        Err(AuthError::EmailNotVerified) => {
            let text = context.t("email_not_verified").to_owned();
            sign_in_view(
                state,
                context,
                StatusCode::FORBIDDEN,
                &SignInView {
                    next,
                    login,
                    error: Some(&text),
                    ..Default::default()
                },
            )
        }
        Err(AuthError::InvalidCode) => {
            let text = context.t("wrong_code").to_owned();
            sign_in_view(
                state,
                context,
                StatusCode::UNAUTHORIZED,
                &SignInView {
                    next,
                    login,
                    error: Some(&text),
                    ..Default::default()
                },
            )
        }
        Err(error) => context.failure(&error),
    }
}

/// The page's script, finishing a passkey sign-in: `{credential, continue}`
/// with the form token in `X-Form-Token`; answers `{redirect}`.
async fn sign_in_passkey(
    State(state): State<AppState>,
    mut context: PageContext,
    Client(client): Client,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !context.form_token_ok(&state, header_token(&headers)) {
        return context.json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"detail": "Form expired"}),
        );
    }
    let Ok(body) = serde_json::from_slice::<PasskeyAnswer>(&body) else {
        return context.json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": "Malformed credential"}),
        );
    };
    let next = safe_continue(body.next.as_deref());
    if admit(&state, RouteGroup::Login, &client).await.is_err() {
        return context.json(
            StatusCode::TOO_MANY_REQUESTS,
            serde_json::json!({"detail": "Too many attempts"}),
        );
    }
    let outcome = match body.mfa {
        true => match context
            .cookie(MFA_COOKIE)
            .map(|token| SecretString::from(token.to_owned()))
        {
            Some(token) => {
                state
                    .auth
                    .login_second_factor(&token, SecondFactor::Passkey(body.credential), &client)
                    .await
            }
            None => Err(AuthError::InvalidMfaToken),
        },
        false => {
            state
                .auth
                .finish_passkey_login(body.credential, &client)
                .await
        }
    };
    match outcome {
        Ok(outcome) => {
            context.sign_in(&state, outcome.tokens.session_id).await;
            context.json(StatusCode::OK, serde_json::json!({"redirect": next}))
        }
        Err(AuthError::MfaRequired { .. }) | Err(_) => context.json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"detail": "The passkey was not accepted"}),
        ),
    }
}

#[derive(Deserialize)]
struct PasskeyAnswer {
    credential: serde_json::Value,
    #[serde(rename = "continue")]
    next: Option<String>,
    /// Answering the second step's challenge rather than a sign-in.
    #[serde(default)]
    mfa: bool,
}

fn header_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-form-token")
        .and_then(|value| value.to_str().ok())
}

async fn email_code_request(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let context = match accepted(context, &state, &form, &client, RouteGroup::Other).await {
        Ok(context) => context,
        Err(refused) => return refused,
    };
    let next = safe_continue(form.get("continue"));
    let email = form.text("email");
    match state.auth.request_sign_in_code(&email, &client).await {
        Ok(()) => code_view(&state, context, StatusCode::OK, &email, &next, None),
        Err(AuthError::Invalid(_)) => {
            let text = context.t("wrong_code").to_owned();
            code_view(
                &state,
                context,
                StatusCode::BAD_REQUEST,
                &email,
                &next,
                Some(&text),
            )
        }
        Err(error) => context.failure(&error),
    }
}

fn code_view(
    state: &AppState,
    mut context: PageContext,
    status: StatusCode,
    email: &str,
    next: &str,
    error: Option<&str>,
) -> Response {
    context.form_targets = redirect_target(state, next);
    let title = context.t("sign_in_title").to_owned();
    let main = html! {
        h1 { (title) }
        (alert(error))
        p role="status" { (context.t("email_code_sent")) }
        form method="post" action="/sign-in/email/code" {
            (context.token_field(state))
            input type="hidden" name="continue" value=(next);
            input type="hidden" name="email" value=(email);
            (field("code", context.t("code"), "text", "", "one-time-code", None, Some(context.t("code_hint"))))
            button type="submit" { (context.t("sign_in_button")) }
        }
        p { a href="/sign-in" { (context.t("back_to_sign_in")) } }
    };
    context.render(status, &title, main)
}

async fn email_code(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    if !form_ok(&context, &state, &form) {
        return context.expired_form();
    }
    let next = safe_continue(form.get("continue"));
    let email = form.text("email");
    if admit(&state, RouteGroup::Login, &client).await.is_err() {
        let text = context.t("too_many_attempts").to_owned();
        return code_view(
            &state,
            context,
            StatusCode::TOO_MANY_REQUESTS,
            &email,
            &next,
            Some(&text),
        );
    }
    match state
        .auth
        .sign_in_with_code(&email, &form.secret("code"), &client)
        .await
    {
        Err(AuthError::InvalidCode) => {
            let text = context.t("wrong_code").to_owned();
            code_view(
                &state,
                context,
                StatusCode::UNAUTHORIZED,
                &email,
                &next,
                Some(&text),
            )
        }
        outcome => finish_sign_in(&state, context, outcome, &next, &email).await,
    }
}

/// An emailed sign-in link: a button, so that a mail scanner opening the
/// link does not spend it.
fn link_page(state: &AppState, context: PageContext, token: &str, next: &str) -> Response {
    let title = context.t("link_sign_in_title").to_owned();
    let main = html! {
        h1 { (title) }
        p { (context.t("link_sign_in_lead")) }
        form method="post" action="/sign-in/link" {
            (context.token_field(state))
            input type="hidden" name="token" value=(token);
            input type="hidden" name="continue" value=(next);
            button type="submit" { (context.t("sign_in_button")) }
        }
    };
    context.render(StatusCode::OK, &title, main)
}

async fn sign_in_link(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let context = match accepted(context, &state, &form, &client, RouteGroup::Login).await {
        Ok(context) => context,
        Err(refused) => return refused,
    };
    let next = safe_continue(form.get("continue"));
    match state
        .auth
        .sign_in_with_link(&form.secret("token"), &client)
        .await
    {
        Err(AuthError::InvalidEmailToken | AuthError::InvalidCode) => {
            let title = context.t("link_sign_in_title").to_owned();
            let text = context.t("link_invalid").to_owned();
            let back = context.t("back_to_sign_in").to_owned();
            context.notice(
                StatusCode::BAD_REQUEST,
                &title,
                &text,
                Some(("/sign-in", &back)),
            )
        }
        outcome => finish_sign_in(&state, context, outcome, &next, "").await,
    }
}

#[derive(Deserialize, Default)]
pub struct ContinueQuery {
    #[serde(rename = "continue")]
    next: Option<String>,
}

async fn second_factor_page(
    State(state): State<AppState>,
    context: PageContext,
    Lenient(query): Lenient<ContinueQuery>,
) -> Response {
    let next = safe_continue(query.next.as_deref());
    if context.cookie(MFA_COOKIE).is_none() {
        return context.redirect(&format!("/sign-in?continue={}", encode(&next)));
    }
    second_factor_view(&state, context, StatusCode::OK, &next, None)
}

fn second_factor_view(
    state: &AppState,
    mut context: PageContext,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> Response {
    context.form_targets = redirect_target(state, next);
    let title = context.t("second_factor_title").to_owned();
    let token = context.form_token(state);
    let main = html! {
        h1 { (title) }
        p { (context.t("second_factor_lead")) }
        form method="post" action="/sign-in/second-factor" novalidate {
            (context.token_field(state))
            input type="hidden" name="continue" value=(next);
            (field("code", context.t("authentication_code"), "text", "", "one-time-code", error, None))
            button type="submit" { (context.t("verify_button")) }
        }
        div class="passkey" hidden data-passkey-second-factor data-continue=(next) data-form-token=(token) {
            p class="or" { span { (context.t("or")) } }
            button type="button" class="secondary" data-action="passkey-second-factor" { (context.t("second_factor_passkey")) }
            p class="error" role="alert" data-passkey-error hidden { (context.t("passkey_failed")) }
        }
        p { a href="/sign-in" { (context.t("back_to_sign_in")) } }
    };
    context.render(status, &title, main)
}

async fn second_factor(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let context = match accepted(context, &state, &form, &client, RouteGroup::Login).await {
        Ok(context) => context,
        Err(refused) => return refused,
    };
    let next = safe_continue(form.get("continue"));
    let Some(mfa_token) = context
        .cookie(MFA_COOKIE)
        .map(|token| SecretString::from(token.to_owned()))
    else {
        let text = context.t("second_factor_expired").to_owned();
        return sign_in_view(
            &state,
            context,
            StatusCode::BAD_REQUEST,
            &SignInView {
                next: &next,
                error: Some(&text),
                ..Default::default()
            },
        );
    };
    let code: String = form
        .text("code")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let factor = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        SecondFactor::Code(SecretString::from(code))
    } else {
        SecondFactor::RecoveryCode(SecretString::from(code))
    };
    match state
        .auth
        .login_second_factor(&mfa_token, factor, &client)
        .await
    {
        Err(AuthError::InvalidMfaCode) => {
            let text = context.t("wrong_code").to_owned();
            second_factor_view(
                &state,
                context,
                StatusCode::UNAUTHORIZED,
                &next,
                Some(&text),
            )
        }
        Err(AuthError::InvalidMfaToken) => {
            let text = context.t("second_factor_expired").to_owned();
            let mut context = context;
            context.forget(MFA_COOKIE);
            sign_in_view(
                &state,
                context,
                StatusCode::BAD_REQUEST,
                &SignInView {
                    next: &next,
                    error: Some(&text),
                    ..Default::default()
                },
            )
        }
        outcome => finish_sign_in(&state, context, outcome, &next, "").await,
    }
}

/// The passkey challenge for the second step (the step's token is in its cookie).
async fn second_factor_passkey_start(
    State(state): State<AppState>,
    context: PageContext,
    headers: HeaderMap,
) -> Response {
    if !context.form_token_ok(&state, header_token(&headers)) {
        return context.json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"detail": "Form expired"}),
        );
    }
    let Some(mfa_token) = context
        .cookie(MFA_COOKIE)
        .map(|token| SecretString::from(token.to_owned()))
    else {
        return context.json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": "Sign in again"}),
        );
    };
    match state.auth.start_mfa_passkey(&mfa_token).await {
        Ok(options) => context.json(StatusCode::OK, options),
        Err(_) => context.json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": "No passkey for this step"}),
        ),
    }
}

async fn sign_up_page(
    State(state): State<AppState>,
    context: PageContext,
    Lenient(query): Lenient<ContinueQuery>,
) -> Response {
    let next = safe_continue(query.next.as_deref());
    sign_up_view(&state, context, StatusCode::OK, &next, ("", ""), &[])
}

fn sign_up_view(
    state: &AppState,
    mut context: PageContext,
    status: StatusCode,
    next: &str,
    (username, email): (&str, &str),
    problems: &[(&str, String)],
) -> Response {
    context.form_targets = redirect_target(state, next);
    let problem = |name: &str| {
        problems
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, text)| text.as_str())
    };
    let title = context.t("sign_up_title").to_owned();
    let min = context.ui.min_password_chars.to_string();
    let main = html! {
        h1 { (title) }
        @if !problems.is_empty() {
            (alert(Some(context.t("error_summary"))))
        }
        form method="post" action="/sign-up" novalidate {
            (context.token_field(state))
            input type="hidden" name="continue" value=(next);
            (field("username", context.t("username"), "text", username, "username", problem("username"), Some(context.t("username_hint"))))
            (field("email", context.t("email"), "email", email, "email", problem("email"), None))
            (field("password", context.t("password"), "password", "", "new-password", problem("password"), Some(&context.tf("password_hint", &[("min", &min)]))))
            button type="submit" { (context.t("sign_up_button")) }
        }
        p { (context.t("have_account")) " " a href={"/sign-in?continue=" (encode(next))} { (context.t("sign_in_link")) } }
    };
    context.render(status, &title, main)
}

async fn sign_up(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    if !form_ok(&context, &state, &form) {
        return context.expired_form();
    }
    let next = safe_continue(form.get("continue"));
    let (username, email) = (form.text("username"), form.text("email"));
    if admit(&state, RouteGroup::Register, &client).await.is_err() {
        let text = context.t("too_many_attempts").to_owned();
        return sign_up_view(
            &state,
            context,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            (&username, &email),
            &[("username", text)],
        );
    }
    let registration = Registration {
        username: username.clone(),
        email: email.clone(),
        password: form.secret("password"),
        locale: None,
    };
    match state.auth.register(registration, &client).await {
        Ok(account) => {
            if state.auth.requires_verified_email() && !account.email_verified {
                let title = context.t("check_email_title").to_owned();
                let text = context.tf("check_email_lead", &[("email", &account.email)]);
                let link = context.t("sign_in_link").to_owned();
                return context.notice(StatusCode::OK, &title, &text, Some(("/sign-in", &link)));
            }
            let outcome = state
                .auth
                .login(&account.username, &form.secret("password"), &client)
                .await;
            finish_sign_in(&state, context, outcome, &next, &username).await
        }
        Err(AuthError::Invalid(problems)) => {
            let problems: Vec<(&str, String)> = problems
                .iter()
                .map(|problem| (problem.field, context.ui.invalid(&problem.invalid)))
                .collect();
            sign_up_view(
                &state,
                context,
                StatusCode::UNPROCESSABLE_ENTITY,
                &next,
                (&username, &email),
                &problems,
            )
        }
        Err(AuthError::UsernameTaken) => {
            let text = context.t("username_taken").to_owned();
            sign_up_view(
                &state,
                context,
                StatusCode::BAD_REQUEST,
                &next,
                (&username, &email),
                &[("username", text)],
            )
        }
        Err(AuthError::EmailTaken) => {
            let text = context.t("email_taken").to_owned();
            sign_up_view(
                &state,
                context,
                StatusCode::BAD_REQUEST,
                &next,
                (&username, &email),
                &[("email", text)],
            )
        }
        Err(error) => context.failure(&error),
    }
}

async fn forgot_page(State(state): State<AppState>, context: PageContext) -> Response {
    forgot_view(&state, context, StatusCode::OK, None, None)
}

fn forgot_view(
    state: &AppState,
    context: PageContext,
    status: StatusCode,
    sent: Option<&str>,
    error: Option<&str>,
) -> Response {
    let title = context.t("forgot_title").to_owned();
    let main = html! {
        h1 { (title) }
        @if let Some(sent) = sent {
            div class="flash" role="status" { (sent) }
        }
        p { (context.t("forgot_lead")) }
        form method="post" action="/forgot-password" novalidate {
            (context.token_field(state))
            (field("email", context.t("email"), "email", "", "email", error, None))
            button type="submit" { (context.t("forgot_button")) }
        }
        p { a href="/sign-in" { (context.t("back_to_sign_in")) } }
    };
    context.render(status, &title, main)
}

async fn forgot(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let context = match accepted(context, &state, &form, &client, RouteGroup::Other).await {
        Ok(context) => context,
        Err(refused) => return refused,
    };
    match state
        .auth
        .forgot_password(&form.text("email"), &client)
        .await
    {
        Ok(()) => {
            let text = context.t("forgot_sent").to_owned();
            forgot_view(&state, context, StatusCode::OK, Some(&text), None)
        }
        Err(AuthError::Invalid(problems)) => {
            let text = problems
                .first()
                .map(|p| context.ui.invalid(&p.invalid))
                .unwrap_or_default();
            forgot_view(
                &state,
                context,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&text),
            )
        }
        Err(error) => context.failure(&error),
    }
}

#[derive(Deserialize, Default)]
pub struct TokenQuery {
    token: Option<String>,
}

async fn reset_page(
    State(state): State<AppState>,
    context: PageContext,
    Lenient(query): Lenient<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    reset_view(&state, context, StatusCode::OK, &token, None)
}

fn reset_view(
    state: &AppState,
    context: PageContext,
    status: StatusCode,
    token: &str,
    error: Option<&str>,
) -> Response {
    let title = context.t("reset_title").to_owned();
    let min = context.ui.min_password_chars.to_string();
    let main = html! {
        h1 { (title) }
        form method="post" action="/reset-password" novalidate {
            (context.token_field(state))
            input type="hidden" name="token" value=(token);
            (field("new_password", context.t("new_password"), "password", "", "new-password", error, Some(&context.tf("password_hint", &[("min", &min)]))))
            button type="submit" { (context.t("reset_button")) }
        }
    };
    context.render(status, &title, main)
}

async fn reset(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let mut context = match accepted(context, &state, &form, &client, RouteGroup::Other).await {
        Ok(context) => context,
        Err(refused) => return refused,
    };
    let token = form.text("token");
    match state
        .auth
        .reset_password(
            &SecretString::from(token.clone()),
            &form.secret("new_password"),
            &client,
        )
        .await
    {
        Ok(()) => {
            context.sign_out();
            let title = context.t("reset_title").to_owned();
            let text = context.t("reset_done").to_owned();
            let link = context.t("sign_in_link").to_owned();
            context.notice(StatusCode::OK, &title, &text, Some(("/sign-in", &link)))
        }
        Err(AuthError::Invalid(problems)) => {
            let text = problems
                .first()
                .map(|p| context.ui.invalid(&p.invalid))
                .unwrap_or_default();
            reset_view(
                &state,
                context,
                StatusCode::UNPROCESSABLE_ENTITY,
                &token,
                Some(&text),
            )
        }
        Err(AuthError::InvalidEmailToken) => {
            let title = context.t("reset_title").to_owned();
            let text = context.t("link_invalid").to_owned();
            let again = context.t("forgot_title").to_owned();
            context.notice(
                StatusCode::BAD_REQUEST,
                &title,
                &text,
                Some(("/forgot-password", &again)),
            )
        }
        Err(error) => context.failure(&error),
    }
}

/// A page with one button that posts the link's token.
fn confirm_view(
    state: &AppState,
    context: PageContext,
    action: &str,
    keys: (&str, &str, &str),
    token: &str,
) -> Response {
    let (title_key, lead_key, button_key) = keys;
    let title = context.t(title_key).to_owned();
    let main: Markup = html! {
        h1 { (title) }
        p { (context.t(lead_key)) }
        form method="post" action=(action) {
            (context.token_field(state))
            input type="hidden" name="token" value=(token);
            button type="submit" { (context.t(button_key)) }
        }
    };
    context.render(StatusCode::OK, &title, main)
}

async fn verify_page(
    State(state): State<AppState>,
    context: PageContext,
    Lenient(query): Lenient<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    confirm_view(
        &state,
        context,
        "/verify-email",
        ("verify_title", "verify_lead", "verify_button_email"),
        &token,
    )
}

async fn verify(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let context = match accepted(context, &state, &form, &client, RouteGroup::Other).await {
        Ok(context) => context,
        Err(refused) => return refused,
    };
    let outcome = state
        .auth
        .verify_email(&form.secret("token"), &client)
        .await;
    link_outcome(context, outcome, "verify_title", "verify_done")
}

async fn change_page(
    State(state): State<AppState>,
    context: PageContext,
    Lenient(query): Lenient<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    confirm_view(
        &state,
        context,
        "/confirm-email-change",
        ("change_title", "change_lead", "change_button"),
        &token,
    )
}

async fn change(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let context = match accepted(context, &state, &form, &client, RouteGroup::Other).await {
        Ok(context) => context,
        Err(refused) => return refused,
    };
    let outcome = state
        .auth
        .confirm_email_change(&form.secret("token"), &client)
        .await;
    link_outcome(context, outcome, "change_title", "change_done")
}

fn link_outcome(
    context: PageContext,
    outcome: Result<(), AuthError>,
    title_key: &str,
    done_key: &str,
) -> Response {
    let title = context.t(title_key).to_owned();
    let link = context.t("continue").to_owned();
    match outcome {
        Ok(()) => {
            let text = context.t(done_key).to_owned();
            context.notice(StatusCode::OK, &title, &text, Some(("/account", &link)))
        }
        Err(AuthError::InvalidEmailToken | AuthError::Invalid(_)) => {
            let text = context.t("link_invalid").to_owned();
            context.notice(
                StatusCode::BAD_REQUEST,
                &title,
                &text,
                Some(("/account", &link)),
            )
        }
        Err(error) => context.failure(&error),
    }
}

async fn sign_out(
    State(state): State<AppState>,
    mut context: PageContext,
    form: PageForm,
) -> Response {
    if !form_ok(&context, &state, &form) {
        return context.expired_form();
    }
    if let Ok(Some(session)) = context.session(&state).await
        && let Err(error) = state
            .auth
            .end_browser_session(session.principal.session_id)
            .await
    {
        return context.failure(&error);
    }
    context.sign_out();
    context.redirect("/sign-in")
}
