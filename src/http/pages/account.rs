//! The account page: profile and email, password, authenticator app and
//! recovery codes, passkeys, sessions, and the apps given consent. Each
//! action is a form posting to its own route, which shows the page again
//! with what happened.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, PreEscaped, html};
use secrecy::{ExposeSecret, SecretString};

use super::super::extract::Client;
use super::{PageContext, PageForm, Ui, accepted, alert, field, flash};
use crate::auth::{
    AuthError, BrowserSession, ClientContext, Reauthentication, RouteGroup, TotpEnrolment,
};
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/email", post(change_email))
        .route("/account/verification", post(resend_verification))
        .route("/account/password", post(change_password))
        .route("/account/totp", post(start_totp))
        .route("/account/totp/confirm", post(confirm_totp))
        .route("/account/totp/remove", post(remove_totp))
        .route("/account/recovery-codes", post(recovery_codes))
        .route("/account/passkeys/start", post(passkey_start))
        .route("/account/passkeys/finish", post(passkey_finish))
        .route("/account/passkeys/{id}/remove", post(remove_passkey))
        .route("/account/sessions/{id}/end", post(end_session))
        .route("/account/consents/{client}/revoke", post(revoke_consent))
}

/// What an action leaves for the page to show.
#[derive(Default)]
struct Outcome {
    done: Option<String>,
    error: Option<String>,
    /// A TOTP enrolment waiting for its first code.
    enrolment: Option<TotpEnrolment>,
    /// Recovery codes, shown once.
    codes: Vec<SecretString>,
}

impl Outcome {
    fn done(text: &str) -> Self {
        Self {
            done: Some(text.to_owned()),
            ..Self::default()
        }
    }

    fn error(text: &str) -> Self {
        Self {
            error: Some(text.to_owned()),
            ..Self::default()
        }
    }
}

/// The signed-in session, or a redirect to sign in first.
async fn signed_in(
    state: &AppState,
    context: PageContext,
) -> Result<(PageContext, BrowserSession), Response> {
    match context.session(state).await {
        Ok(Some(session)) => Ok((context, session)),
        Ok(None) => Err(context.redirect("/sign-in?continue=%2Faccount")),
        Err(error) => Err(context.failure(&error)),
    }
}

async fn account_page(State(state): State<AppState>, context: PageContext) -> Response {
    match signed_in(&state, context).await {
        Ok((context, session)) => {
            render(
                &state,
                context,
                &session,
                StatusCode::OK,
                Outcome::default(),
            )
            .await
        }
        Err(response) => response,
    }
}

async fn render(
    state: &AppState,
    context: PageContext,
    session: &BrowserSession,
    status: StatusCode,
    outcome: Outcome,
) -> Response {
    let auth = &state.auth;
    let principal = &session.principal;
    let loaded = async {
        Ok::<_, AuthError>((
            auth.account(principal).await?,
            auth.factor_methods(principal.user_id).await?,
            auth.list_passkeys(principal).await?,
            auth.sessions(principal).await?,
            auth.consents(principal.user_id).await?,
        ))
    };
    let (account, methods, passkeys, sessions, consents) = match loaded.await {
        Ok(loaded) => loaded,
        Err(error) => return context.failure(&error),
    };
    let totp_on = methods.contains(&"totp");
    let title = context.t("account_title").to_owned();
    let token = context.form_token(state);
    let main: Markup = html! {
        h1 { (title) }
        (alert(outcome.error.as_deref()))
        (flash(outcome.done.as_deref()))
        @if !outcome.codes.is_empty() {
            section aria-labelledby="codes-heading" class="card" {
                h2 id="codes-heading" { (context.t("recovery_heading")) }
                p { (context.t("recovery_lead")) }
                ul class="codes" {
                    @for code in &outcome.codes {
                        li { code { (code.expose_secret()) } }
                    }
                }
            }
        }
        section aria-labelledby="profile-heading" class="card" {
            h2 id="profile-heading" { (context.t("profile_heading")) }
            dl {
                dt { (context.t("username")) } dd { (account.username) }
                dt { (context.t("email")) }
                dd {
                    (account.email) " "
                    span class="badge" { (if account.email_verified { context.t("email_verified") } else { context.t("email_unverified") }) }
                }
            }
            @if !account.email_verified {
                form method="post" action="/account/verification" {
                    (context.token_field(state))
                    button type="submit" class="secondary" { (context.t("resend_verification")) }
                }
            }
            details {
                summary { (context.t("change_email_heading")) }
                form method="post" action="/account/email" novalidate {
                    (context.token_field(state))
                    (field("new_email", context.t("new_email"), "email", "", "email", None, None))
                    (field("email_password", context.t("current_password"), "password", "", "current-password", None, None))
                    button type="submit" { (context.t("change_email_button")) }
                }
            }
        }
        section aria-labelledby="password-heading" class="card" {
            h2 id="password-heading" { (context.t("password_heading")) }
            form method="post" action="/account/password" novalidate {
                (context.token_field(state))
                (field("current_password", context.t("current_password"), "password", "", "current-password", None, None))
                (field("new_password", context.t("new_password"), "password", "", "new-password", None, None))
                button type="submit" { (context.t("change_password_button")) }
            }
        }
        section aria-labelledby="totp-heading" class="card" {
            h2 id="totp-heading" { (context.t("totp_heading")) }
            @if let Some(enrolment) = &outcome.enrolment {
                p { (context.t("totp_scan")) }
                div class="qr" role="img" aria-label="QR code" { (PreEscaped(&enrolment.qr_svg)) }
                p { (context.t("totp_key")) ": " code class="secret" { (enrolment.secret.expose_secret()) } }
                form method="post" action="/account/totp/confirm" novalidate {
                    (context.token_field(state))
                    (field("totp_code", context.t("code"), "text", "", "one-time-code", None, Some(context.t("code_hint"))))
                    button type="submit" { (context.t("totp_confirm_button")) }
                }
            } @else if totp_on {
                p { (context.t("totp_on")) }
                details {
                    summary { (context.t("totp_remove_button")) }
                    form method="post" action="/account/totp/remove" novalidate {
                        (context.token_field(state))
                        (field("remove_password", context.t("current_password"), "password", "", "current-password", None, None))
                        (field("remove_code", context.t("authentication_code"), "text", "", "one-time-code", None, None))
                        button type="submit" class="danger" { (context.t("totp_remove_button")) }
                    }
                }
                details {
                    summary { (context.t("recovery_button")) }
                    form method="post" action="/account/recovery-codes" novalidate {
                        (context.token_field(state))
                        (field("codes_password", context.t("current_password"), "password", "", "current-password", None, None))
                        button type="submit" class="secondary" { (context.t("recovery_button")) }
                    }
                }
            } @else {
                p { (context.t("totp_off")) }
                form method="post" action="/account/totp" novalidate {
                    (context.token_field(state))
                    (field("totp_password", context.t("current_password"), "password", "", "current-password", None, None))
                    button type="submit" { (context.t("totp_start_button")) }
                }
            }
        }
        section aria-labelledby="passkeys-heading" class="card" {
            h2 id="passkeys-heading" { (context.t("passkeys_heading")) }
            @if passkeys.is_empty() {
                p { (context.t("passkeys_none")) }
            } @else {
                ul class="rows" {
                    @for passkey in &passkeys {
                        li {
                            span { strong { (passkey.name) } " · " (context.tf("passkey_created", &[("date", &passkey.created_at.format("%Y-%m-%d").to_string())])) }
                            details {
                                summary { (context.t("passkey_remove")) span class="visually-hidden" { " " (passkey.name) } }
                                form method="post" action={"/account/passkeys/" (passkey.id) "/remove"} novalidate {
                                    (context.token_field(state))
                                    (field(&format!("passkey-password-{}", passkey.id), context.t("current_password"), "password", "", "current-password", None, None))
                                    button type="submit" class="danger" { (context.t("passkey_remove")) }
                                }
                            }
                        }
                    }
                }
            }
            noscript { p class="hint" { (context.t("javascript_needed")) } }
            div hidden data-passkey-register data-form-token=(token) {
                button type="button" class="secondary" data-action="passkey-register" { (context.t("passkey_add")) }
                p class="error" role="alert" data-passkey-error hidden { (context.t("passkey_recent_needed")) }
            }
        }
        section aria-labelledby="sessions-heading" class="card" {
            h2 id="sessions-heading" { (context.t("sessions_heading")) }
            ul class="rows" {
                @for live in &sessions {
                    li {
                        span {
                            @if live.id == principal.session_id { strong { (context.t("session_this")) } " · " }
                            (live.user_agent.as_deref().map(short_agent).unwrap_or("–")) " · "
                            (context.tf("session_started", &[("date", &live.created_at.format("%Y-%m-%d %H:%M UTC").to_string())]))
                        }
                        form method="post" action={"/account/sessions/" (live.id) "/end"} {
                            (context.token_field(state))
                            button type="submit" class="link" { (context.t("session_end")) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="consents-heading" class="card" {
            h2 id="consents-heading" { (context.t("consents_heading")) }
            @if consents.is_empty() {
                p { (context.t("consents_none")) }
            } @else {
                ul class="rows" {
                    @for consent in &consents {
                        li {
                            span { strong { (consent.client_name) } " · " (consent.scopes.join(", ")) }
                            form method="post" action={"/account/consents/" (super::sign_in::encode(&consent.client_id)) "/revoke"} {
                                (context.token_field(state))
                                button type="submit" class="link" aria-label={(context.t("consent_revoke")) " " (consent.client_name)} { (context.t("consent_revoke")) }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action="/sign-out" class="sign-out" {
            (context.token_field(state))
            button type="submit" class="secondary" { (context.t("sign_out_everywhere")) }
        }
    };
    context.render(status, &title, main)
}

/// A short name for a user agent: the browser and platform words people know.
fn short_agent(agent: &str) -> &str {
    for name in ["Firefox", "Edg", "Chrome", "Safari", "curl", "python"] {
        if agent.contains(name) {
            return match name {
                "Edg" => "Edge",
                other => other,
            };
        }
    }
    "Unknown browser"
}

/// Runs an account action for a signed-in browser with a valid form, and
/// shows the page with its outcome.
async fn act<F, Fut>(
    state: AppState,
    context: PageContext,
    client: ClientContext,
    form: PageForm,
    action: F,
) -> Response
where
    F: FnOnce(BrowserSession, PageForm) -> Fut,
    Fut: Future<Output = (StatusCode, Outcome)>,
{
    // The API's per-address budget: these actions check passwords and codes.
    let context = match accepted(context, &state, &form, &client, RouteGroup::Login).await {
        Ok(context) => context,
        Err(refused) => return refused,
    };
    let (context, session) = match signed_in(&state, context).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let (status, outcome) = action(session.clone(), form).await;
    render(&state, context, &session, status, outcome).await
}

/// An error an action shows on the page, in the catalogue's words.
fn shown(ui: &Ui, error: &AuthError) -> (StatusCode, Outcome) {
    let text = |key: &str| Outcome::error(ui.messages.get(key));
    match error {
        AuthError::WrongCurrentPassword => (StatusCode::BAD_REQUEST, text("wrong_password")),
        AuthError::InvalidMfaCode | AuthError::InvalidCode => {
            (StatusCode::BAD_REQUEST, text("wrong_code"))
        }
        AuthError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, text("too_many_attempts")),
        AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, text("passkey_recent_needed")),
        AuthError::Invalid(problems) => {
            let shown = problems
                .first()
                .map(|problem| ui.invalid(&problem.invalid))
                .unwrap_or_default();
            (StatusCode::UNPROCESSABLE_ENTITY, Outcome::error(&shown))
        }
        AuthError::EmailTaken => (StatusCode::BAD_REQUEST, text("email_taken")),
        AuthError::SameEmail => (StatusCode::BAD_REQUEST, text("same_email")),
        AuthError::TotpAlreadyEnabled
        | AuthError::TotpNotPending
        | AuthError::TotpNotEnabled
        | AuthError::NoPasskey
        | AuthError::PasskeyNotFound
        | AuthError::SessionNotFound => (StatusCode::CONFLICT, text("something_wrong")),
        AuthError::Store(store) if store.is_unavailable() => {
            (StatusCode::SERVICE_UNAVAILABLE, text("unavailable"))
        }
        other => {
            tracing::error!(error = %crate::telemetry::error_chain(other), "an account action failed");
            (StatusCode::INTERNAL_SERVER_ERROR, text("something_wrong"))
        }
    }
}

async fn change_email(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let done = context.t("change_email_sent").to_owned();
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, form| async move {
            match auth
                .request_email_change(
                    &session.principal,
                    &form.text("new_email"),
                    &form.secret("email_password"),
                    &client,
                )
                .await
            {
                Ok(()) => (StatusCode::OK, Outcome::done(&done)),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn resend_verification(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let done = context.t("verification_sent").to_owned();
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, _form| async move {
            match auth.resend_verification(&session.principal, &client).await {
                Ok(()) => (StatusCode::OK, Outcome::done(&done)),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn change_password(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let done = context.t("password_changed").to_owned();
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, form| async move {
            match auth
                .change_password(
                    &session.principal,
                    &form.secret("current_password"),
                    &form.secret("new_password"),
                    &client,
                )
                .await
            {
                Ok(()) => (StatusCode::OK, Outcome::done(&done)),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn start_totp(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, form| async move {
            match auth
                .start_totp(&session.principal, &form.secret("totp_password"), &client)
                .await
            {
                Ok(enrolment) => (
                    StatusCode::OK,
                    Outcome {
                        enrolment: Some(enrolment),
                        ..Outcome::default()
                    },
                ),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn confirm_totp(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, form| async move {
            let code: String = form
                .text("totp_code")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            match auth
                .confirm_totp(&session.principal, &SecretString::from(code), &client)
                .await
            {
                Ok(codes) => (
                    StatusCode::OK,
                    Outcome {
                        codes,
                        ..Outcome::default()
                    },
                ),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn remove_totp(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let done = context.t("totp_removed").to_owned();
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, form| async move {
            match auth
                .remove_totp(
                    &session.principal,
                    &form.secret("remove_password"),
                    &form.secret("remove_code"),
                    &client,
                )
                .await
            {
                Ok(()) => (StatusCode::OK, Outcome::done(&done)),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn recovery_codes(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    form: PageForm,
) -> Response {
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, form| async move {
            match auth
                .regenerate_recovery_codes(
                    &session.principal,
                    &form.secret("codes_password"),
                    &client,
                )
                .await
            {
                Ok(codes) => (
                    StatusCode::OK,
                    Outcome {
                        codes,
                        ..Outcome::default()
                    },
                ),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn remove_passkey(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    Path(id): Path<String>,
    form: PageForm,
) -> Response {
    let done = context.t("passkey_removed").to_owned();
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, form| async move {
            let Ok(id) = uuid::Uuid::parse_str(&id) else {
                return shown(&ui, &AuthError::PasskeyNotFound);
            };
            let password = form.secret(&format!("passkey-password-{id}"));
            match auth
                .remove_passkey(
                    &session.principal,
                    id,
                    Reauthentication::Password(password),
                    &client,
                )
                .await
            {
                Ok(()) => (StatusCode::OK, Outcome::done(&done)),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn end_session(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    Path(id): Path<String>,
    form: PageForm,
) -> Response {
    let done = context.t("session_ended").to_owned();
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, _form| async move {
            let Ok(id) = uuid::Uuid::parse_str(&id) else {
                return shown(&ui, &AuthError::SessionNotFound);
            };
            match auth.end_own_session(&session.principal, id).await {
                Ok(()) => (StatusCode::OK, Outcome::done(&done)),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

async fn revoke_consent(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    Path(client_id): Path<String>,
    form: PageForm,
) -> Response {
    let done = context.t("consent_revoked").to_owned();
    let ui = std::sync::Arc::clone(&context.ui);
    let auth = state.auth.clone();
    act(
        state,
        context,
        client.clone(),
        form,
        |session, _form| async move {
            match auth
                .revoke_consent(session.principal.user_id, &client_id)
                .await
            {
                Ok(_) => (StatusCode::OK, Outcome::done(&done)),
                Err(error) => shown(&ui, &error),
            }
        },
    )
    .await
}

/// The script's passkey registration: creation options for this account.
async fn passkey_start(
    State(state): State<AppState>,
    context: PageContext,
    headers: HeaderMap,
) -> Response {
    if !context.form_token_ok(
        &state,
        headers.get("x-form-token").and_then(|v| v.to_str().ok()),
    ) {
        return context.json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"detail": "Form expired"}),
        );
    }
    let session = match context.session(&state).await {
        Ok(Some(session)) => session,
        _ => {
            return context.json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"detail": "Sign in again"}),
            );
        }
    };
    match state
        .auth
        .start_passkey_registration(&session.principal)
        .await
    {
        Ok(options) => context.json(StatusCode::OK, options),
        Err(AuthError::Forbidden(reason)) => {
            context.json(StatusCode::FORBIDDEN, serde_json::json!({"detail": reason}))
        }
        Err(_) => context.json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": "Cannot add a passkey now"}),
        ),
    }
}

/// The script's passkey registration: the browser's credential, `{credential}`.
async fn passkey_finish(
    State(state): State<AppState>,
    context: PageContext,
    Client(client): Client,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !context.form_token_ok(
        &state,
        headers.get("x-form-token").and_then(|v| v.to_str().ok()),
    ) {
        return context.json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"detail": "Form expired"}),
        );
    }
    let session = match context.session(&state).await {
        Ok(Some(session)) => session,
        _ => {
            return context.json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"detail": "Sign in again"}),
            );
        }
    };
    let Some(credential) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|mut body| body.get_mut("credential").map(serde_json::Value::take))
    else {
        return context.json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": "Malformed credential"}),
        );
    };
    match state
        .auth
        .finish_passkey_registration(&session.principal, None, credential, &client)
        .await
    {
        Ok(_) => context.json(StatusCode::OK, serde_json::json!({"redirect": "/account"})),
        Err(_) => context.json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": "The passkey was not accepted"}),
        ),
    }
}
