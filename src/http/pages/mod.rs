//! The hosted pages: sign in (password, passkey, email code), the second
//! step, sign up, password reset, email verification and change, consent,
//! and the account page. Server-rendered (maud), working without
//! JavaScript; `app.js` adds passkeys.
//!
//! Every page is sent with a Content-Security-Policy that allows only this
//! origin and the page's nonce (`frame-ancestors 'none'`, nothing from
//! anywhere else), `Referrer-Policy: no-referrer` and `Cache-Control:
//! no-store`. Every form carries a token bound to a random per-browser
//! cookie and is refused without it. The sign-in itself is a latchkey
//! session named by an HttpOnly, SameSite=Lax cookie (`__Host-` and
//! `Secure` when the public URL is https): it is listed in `/sessions` and
//! ended by logout like any other.

mod account;
mod authorize;
mod messages;
mod sign_in;

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::extract::{FORM, media_type, read_body};
use super::state::AppState;
use crate::auth::{AuthError, BrowserSession};
pub use messages::Messages;

/// Branding and text of the hosted pages, built once at start.
pub struct Ui {
    pub product: String,
    pub logo_url: Option<String>,
    pub accent: String,
    pub messages: Messages,
    /// Served over https: `__Host-` cookies with `Secure`.
    pub secure: bool,
    /// Whether email sign-in codes are on.
    pub email_sign_in: bool,
    pub min_password_chars: usize,
}

impl Ui {
    fn cookie_name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https.
    fn cookie(&self, base: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut text = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax",
            self.cookie_name(base)
        );
        if let Some(seconds) = max_age {
            text.push_str(&format!("; Max-Age={seconds}"));
        }
        if self.secure {
            text.push_str("; Secure");
        }
        // Cookie values are ours: ids, MACs and base64url.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A refused value, in the catalogue's words (`invalid_<kind>`), else the rule's own.
    pub fn invalid(&self, invalid: &crate::domain::Invalid) -> String {
        let key = format!("invalid_{}", invalid.kind);
        match self.messages.get(&key) {
            text if text == key => invalid.message.clone(),
            text => text.to_owned(),
        }
    }

    /// WCAG contrast: black or white text, whichever reads better on the accent.
    fn accent_text(&self) -> &'static str {
        let channel = |index: usize| {
            let value = u8::from_str_radix(&self.accent[index..index + 2], 16).unwrap_or(0);
            let c = f64::from(value) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
        // Contrast with white: 1.05 / (L + 0.05); with black: (L + 0.05) / 0.05.
        if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.05 {
            "#ffffff"
        } else {
            "#000000"
        }
    }
}

const SESSION_COOKIE: &str = "latchkey-session";
const FORM_COOKIE: &str = "latchkey-form";
const MFA_COOKIE: &str = "latchkey-mfa";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/style.css", get(style))
        .route("/ui/app.js", get(script))
        .merge(sign_in::router())
        .merge(account::router())
        .merge(authorize::router())
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("style.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("app.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// What every page request knows: the browser's cookies, its form anchor,
/// and a fresh nonce for the page's script and style.
pub struct PageContext {
    pub ui: Arc<Ui>,
    cookies: HashMap<String, String>,
    /// The random value this browser's form tokens are bound to.
    anchor: String,
    /// Set when the anchor is new and must be stored in a cookie.
    new_anchor: bool,
    nonce: String,
    /// Extra origins the page's forms may be sent to (a client's redirect URI).
    pub form_targets: Vec<String>,
    set_cookies: Vec<HeaderValue>,
}

fn random_text(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // The system RNG does not fail on supported platforms; an all-zero
    // value would only make one page's nonce guessable.
    let _ = SystemRandom::new().fill(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

fn parse_cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut cookies = HashMap::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    cookies
}

impl FromRequestParts<AppState> for PageContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ui = Arc::clone(&state.ui);
        let cookies = parse_cookies(&parts.headers);
        let existing = cookies
            .get(&ui.cookie_name(FORM_COOKIE))
            .filter(|value| value.len() == 43)
            .cloned();
        let new_anchor = existing.is_none();
        Ok(Self {
            anchor: existing.unwrap_or_else(|| random_text(32)),
            new_anchor,
            nonce: random_text(16),
            form_targets: Vec::new(),
            set_cookies: Vec::new(),
            cookies,
            ui,
        })
    }
}

impl PageContext {
    pub fn t<'a>(&'a self, key: &'a str) -> &'a str {
        self.ui.messages.get(key)
    }

    /// A message with `{name}` filled in.
    pub fn tf(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    pub fn cookie(&self, base: &str) -> Option<&str> {
        self.cookies
            .get(&self.ui.cookie_name(base))
            .map(String::as_str)
    }

    /// The browser's signed-in session, if any.
    pub async fn session(&self, state: &AppState) -> Result<Option<BrowserSession>, AuthError> {
        match self.cookie(SESSION_COOKIE) {
            Some(value) if value.len() < 200 => state.auth.browser_session(value).await,
            _ => Ok(None),
        }
    }

    /// Signs this browser in as `session_id`, ending the sign-in it replaces.
    pub async fn sign_in(&mut self, state: &AppState, session_id: uuid::Uuid) {
        if let Ok(Some(previous)) = self.session(state).await
            && previous.principal.session_id != session_id
            && let Err(error) = state
                .auth
                .end_browser_session(previous.principal.session_id)
                .await
        {
            let error = crate::telemetry::error_chain(&error);
            tracing::warn!(%error, "the replaced browser session could not be ended; it idles out");
        }
        let value = state.auth.browser_cookie(session_id);
        self.set_cookies
            .push(self.ui.cookie(SESSION_COOKIE, &value, None));
        self.forget(MFA_COOKIE);
    }

    pub fn sign_out(&mut self) {
        self.forget(SESSION_COOKIE);
    }

    pub fn remember(&mut self, base: &str, value: &str, seconds: i64) {
        self.set_cookies
            .push(self.ui.cookie(base, value, Some(seconds)));
    }

    pub fn forget(&mut self, base: &str) {
        self.set_cookies.push(self.ui.cookie(base, "", Some(0)));
    }

    /// The token every form of this page carries.
    pub fn form_token(&self, state: &AppState) -> String {
        state.auth.form_token(&self.anchor)
    }

    /// Whether a posted form (or a script's header) carries this browser's token.
    pub fn form_token_ok(&self, state: &AppState, presented: Option<&str>) -> bool {
        !self.new_anchor
            && presented.is_some_and(|token| state.auth.form_token_matches(&self.anchor, token))
    }

    /// The hidden field with the form token.
    pub fn token_field(&self, state: &AppState) -> Markup {
        html! { input type="hidden" name="form_token" value=(self.form_token(state)); }
    }

    /// A whole page: the layout around `main`, with its security headers.
    pub fn render(mut self, status: StatusCode, title: &str, main: Markup) -> Response {
        let ui = Arc::clone(&self.ui);
        let nonce = self.nonce.clone();
        let document = html! {
            (DOCTYPE)
            html lang=(self.t("lang")) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    title { (title) " – " (ui.product) }
                    link rel="stylesheet" href="/ui/style.css";
                    style nonce=(nonce) {
                        (PreEscaped(format!(":root{{--accent:{};--accent-text:{}}}", ui.accent, ui.accent_text())))
                    }
                    script nonce=(nonce) src="/ui/app.js" defer {}
                }
                body {
                    a class="skip" href="#main" { (self.t("skip_to_content")) }
                    header class="brand" {
                        @if let Some(logo) = &ui.logo_url {
                            img src=(logo) alt=(ui.product) height="40";
                        } @else {
                            span class="product" { (ui.product) }
                        }
                    }
                    main id="main" tabindex="-1" {
                        (main)
                    }
                }
            }
        };
        let mut response = (status, axum::response::Html(document.into_string())).into_response();
        let headers = response.headers_mut();
        let mut img = "'self' data:".to_owned();
        if let Some(origin) = ui.logo_url.as_deref().and_then(origin_of) {
            img.push(' ');
            img.push_str(&origin);
        }
        let mut forms = "'self'".to_owned();
        for target in &self.form_targets {
            forms.push(' ');
            forms.push_str(target);
        }
        let policy = format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; \
             img-src {img}; connect-src 'self'; form-action {forms}; frame-ancestors 'none'; \
             base-uri 'none'"
        );
        if let Ok(value) = HeaderValue::from_str(&policy) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        security_headers(headers);
        if self.new_anchor {
            let anchor = self.anchor.clone();
            self.set_cookies.push(ui.cookie(FORM_COOKIE, &anchor, None));
        }
        for cookie in self.set_cookies.drain(..) {
            headers.append(header::SET_COOKIE, cookie);
        }
        response
    }

    /// A redirect (303 after a form) carrying this context's cookies.
    pub fn redirect(mut self, to: &str) -> Response {
        let mut response = Redirect::to(to).into_response();
        let headers = response.headers_mut();
        security_headers(headers);
        for cookie in self.set_cookies.drain(..) {
            headers.append(header::SET_COOKIE, cookie);
        }
        response
    }

    /// A JSON answer to the page's script, carrying this context's cookies.
    pub fn json(mut self, status: StatusCode, body: serde_json::Value) -> Response {
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        security_headers(headers);
        for cookie in self.set_cookies.drain(..) {
            headers.append(header::SET_COOKIE, cookie);
        }
        response
    }

    /// A page with one message (and a way on).
    pub fn notice(
        self,
        status: StatusCode,
        title: &str,
        text: &str,
        link: Option<(&str, &str)>,
    ) -> Response {
        let main = html! {
            h1 { (title) }
            p role=(if status.is_success() { "status" } else { "alert" }) { (text) }
            @if let Some((href, label)) = link {
                p { a href=(href) { (label) } }
            }
        };
        self.render(status, title, main)
    }

    /// The page for an error a form cannot show by a field.
    pub fn failure(self, error: &AuthError) -> Response {
        let (status, key) = failure_message(error);
        let title = self.t("error_summary").to_owned();
        let text = self.t(key).to_owned();
        if status.is_server_error() {
            tracing::error!(error = %crate::telemetry::error_chain(error), "a page failed");
        }
        let link = self.t("sign_in_link").to_owned();
        self.notice(status, &title, &text, Some(("/sign-in", &link)))
    }

    pub fn expired_form(self) -> Response {
        let title = self.t("error_summary").to_owned();
        let text = self.t("session_expired").to_owned();
        self.notice(StatusCode::FORBIDDEN, &title, &text, None)
    }
}

/// The status and message of an error no field explains.
fn failure_message(error: &AuthError) -> (StatusCode, &'static str) {
    match error {
        AuthError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
        AuthError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        AuthError::Store(store) if store.is_unavailable() => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        AuthError::InvalidEmailToken | AuthError::InvalidCode => {
            (StatusCode::BAD_REQUEST, "link_invalid")
        }
        AuthError::InvalidMfaToken => (StatusCode::BAD_REQUEST, "second_factor_expired"),
        AuthError::EmailNotVerified => (StatusCode::FORBIDDEN, "email_not_verified"),
        AuthError::InvalidCredentials | AuthError::InvalidToken => {
            (StatusCode::UNAUTHORIZED, "wrong_credentials")
        }
        AuthError::WrongCurrentPassword => (StatusCode::BAD_REQUEST, "wrong_password"),
        AuthError::Store(_)
        | AuthError::Hashing(_)
        | AuthError::Signing(_)
        | AuthError::Keys(_)
        | AuthError::Random
        | AuthError::Seal(_)
        | AuthError::NotReady(_)
        | AuthError::Mail(_) => (StatusCode::INTERNAL_SERVER_ERROR, "something_wrong"),
        _ => (StatusCode::BAD_REQUEST, "something_wrong"),
    }
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

/// `scheme://host[:port]` of an absolute URL.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        origin @ url::Origin::Tuple(..) => Some(origin.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// Where a page may send the browser next: only `/authorize?…` or `/account`
/// on this server, in printable ASCII (it becomes a `Location`), so
/// `continue` cannot be an open redirect.
pub(crate) fn safe_continue(value: Option<&str>) -> String {
    match value {
        Some(path)
            if (path.starts_with("/authorize?") || path == "/account")
                && !path.contains('\\')
                && path.bytes().all(|byte| byte.is_ascii_graphic())
                && path.len() <= 16 * 1024 =>
        {
            path.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

/// What a page's `form-action` must allow for a redirect URI its forms'
/// redirects end at: the origin of an http(s) URI, the scheme of a native app's.
pub(crate) fn form_target(uri: &str) -> Option<String> {
    let parsed = url::Url::parse(uri).ok()?;
    match parsed.scheme() {
        "http" | "https" => origin_of(uri),
        scheme => Some(format!("{scheme}:")),
    }
}

/// A page's query, read leniently: a page answers whatever its query holds
/// (a malformed one reads as empty) rather than a bare rejection.
pub struct Lenient<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default, S: Send + Sync> FromRequestParts<S> for Lenient<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Self(serde_urlencoded::from_str(query).unwrap_or_default()))
    }
}

/// A posted page form: `application/x-www-form-urlencoded`, each field once.
pub struct PageForm(pub HashMap<String, String>);

impl PageForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }

    pub fn secret(&self, name: &str) -> secrecy::SecretString {
        secrecy::SecretString::from(self.get(name).unwrap_or_default().to_owned())
    }
}

impl FromRequest<AppState> for PageForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // The API's error shape: only a hand-made request gets here.
        let bad =
            || super::ApiError::BadRequest("The form could not be read".to_owned()).into_response();
        if media_type(request.headers()) != Some(FORM) {
            return Err(bad());
        }
        let body = read_body(request, state).await.map_err(|_| bad())?;
        let mut fields = HashMap::new();
        for (name, value) in form_urlencoded::parse(&body) {
            if value.chars().any(|c| c == '\0') {
                return Err(bad());
            }
            if fields
                .insert(name.into_owned(), value.into_owned())
                .is_some()
            {
                return Err(bad());
            }
        }
        Ok(Self(fields))
    }
}

/// A field of a form, labelled, with its error tied to it.
pub fn field(
    name: &str,
    label: &str,
    kind: &str,
    value: &str,
    autocomplete: &str,
    error: Option<&str>,
    hint: Option<&str>,
) -> Markup {
    let hint_id = format!("{name}-hint");
    let error_id = format!("{name}-error");
    let described = match (hint.is_some(), error.is_some()) {
        (true, true) => format!("{hint_id} {error_id}"),
        (true, false) => hint_id.clone(),
        (false, true) => error_id.clone(),
        (false, false) => String::new(),
    };
    html! {
        div class="field" {
            label for=(name) { (label) }
            @if let Some(hint) = hint {
                p class="hint" id=(hint_id) { (hint) }
            }
            @if let Some(error) = error {
                p class="error" id=(error_id) { (error) }
            }
            input id=(name) name=(name) type=(kind) value=(value) autocomplete=(autocomplete) required
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[(!described.is_empty()).then_some(described.as_str())];
        }
    }
}

/// A message for the top of a form (role=alert).
pub fn alert(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text {
            div class="alert" role="alert" tabindex="-1" { (text) }
        }
    }
}

/// A confirmation after an action (role=status).
pub fn flash(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text {
            div class="flash" role="status" { (text) }
        }
    }
}

/// A posted form's gate: its token, then the API's per-address budget for
/// `group`; the context back, or the page that refuses.
pub(crate) async fn accepted(
    context: PageContext,
    state: &AppState,
    form: &PageForm,
    client: &crate::auth::ClientContext,
    group: crate::auth::RouteGroup,
) -> Result<PageContext, Response> {
    if !form_ok(&context, state, form) {
        return Err(context.expired_form());
    }
    if super::throttle::admit(state, group, client).await.is_err() {
        return Err(context.failure(&AuthError::Throttled(std::time::Duration::from_secs(1))));
    }
    Ok(context)
}

/// The form field and client context a page's action needs.
pub(crate) fn form_ok(context: &PageContext, state: &AppState, form: &PageForm) -> bool {
    context.form_token_ok(state, form.get("form_token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_never_leaves_the_server() {
        assert_eq!(
            safe_continue(Some("/authorize?client_id=a")),
            "/authorize?client_id=a"
        );
        assert_eq!(safe_continue(Some("/account")), "/account");
        assert_eq!(safe_continue(Some("https://evil.example/")), "/account");
        assert_eq!(safe_continue(Some("//evil.example/authorize?")), "/account");
        assert_eq!(safe_continue(Some("/\\evil.example")), "/account");
        assert_eq!(safe_continue(Some("/authorize?a=\u{1}")), "/account");
        assert_eq!(safe_continue(Some("/authorize?a=\u{7f}")), "/account");
        assert_eq!(safe_continue(Some("/authorize?a b")), "/account");
        assert_eq!(safe_continue(None), "/account");
    }

    fn ui(accent: &str) -> Ui {
        Ui {
            product: "p".into(),
            logo_url: None,
            accent: accent.into(),
            messages: Messages::english(),
            secure: false,
            email_sign_in: false,
            min_password_chars: 8,
        }
    }

    #[test]
    fn accent_text_is_the_more_readable_of_black_and_white() {
        assert_eq!(ui("#000000").accent_text(), "#ffffff");
        assert_eq!(ui("#ffffff").accent_text(), "#000000");
        assert_eq!(ui("#3b5bdb").accent_text(), "#ffffff");
        assert_eq!(ui("#ffd43b").accent_text(), "#000000");
    }

    #[test]
    fn cookies_are_host_prefixed_and_secure_over_https() {
        let mut secure = ui("#000000");
        secure.secure = true;
        let value = secure.cookie(SESSION_COOKIE, "v", None);
        assert_eq!(
            value.to_str().unwrap(),
            "__Host-latchkey-session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let plain = ui("#000000").cookie(SESSION_COOKIE, "v", Some(0));
        assert_eq!(
            plain.to_str().unwrap(),
            "latchkey-session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }
}
