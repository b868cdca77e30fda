//! The OpenID Connect provider over HTTP, on every backend: a browser's
//! sign-in on the hosted page (cookies kept by hand), `/authorize`, the code
//! exchange, ID tokens, userinfo, consent, client credentials and
//! RP-initiated logout. The rules that keep it safe each have a test.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::auth::NewClient;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::helpers::{ALICE_PASSWORD, TestApp, claims, json_with_status};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A browser: no redirects followed, cookies kept by hand.
struct Browser {
    http: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let response = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    /// The form token on a page.
    async fn form_token(&mut self, url: &str) -> String {
        let page = self.get(url).await.text().await.unwrap();
        form_token_of(&page)
    }

    /// Signs in on the hosted page.
    async fn sign_in(&mut self, app: &TestApp, login: &str, password: &str) {
        let token = self.form_token(&app.url("/sign-in")).await;
        let response = self
            .post(
                &app.url("/sign-in"),
                &[
                    ("form_token", &token),
                    ("login", login),
                    ("password", password),
                    ("continue", "/account"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/account");
        assert!(self.cookies.contains_key("latchkey-session"));
    }
}

/// A hidden field's value on a page.
fn hidden_of(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).expect("the field") + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}

fn form_token_of(page: &str) -> String {
    let start = page
        .find("name=\"form_token\" value=\"")
        .expect("a form token")
        + 25;
    page[start..start + 64].to_owned()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    let query = url
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

async fn client(app: &TestApp, public: bool, first_party: bool) -> (String, Option<String>) {
    let created = app
        .auth
        .create_oidc_client(&NewClient {
            name: "Example App".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            post_logout_redirect_uris: vec!["http://127.0.0.1:9/bye".to_owned()],
            public,
            first_party,
            scopes: Vec::new(),
            client_credentials: false,
        })
        .await
        .unwrap();
    let secret = created
        .secret
        .map(|secret| secrecy::ExposeSecret::expose_secret(&secret).to_owned());
    (created.id, secret)
}

fn authorize_url(app: &TestApp, client_id: &str, extra: &str) -> String {
    app.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile%20email&state=st-1&nonce=n-1&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        urlencode(REDIRECT)
    ))
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn exchange(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap()
}

/// Alice, signed in on the hosted page of a fresh server, and a first-party public client.
async fn signed_in() -> (TestApp, Browser, String) {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (client_id, _) = client(&app, true, true).await;
    let mut browser = Browser::new();
    browser.sign_in(&app, "alice", ALICE_PASSWORD).await;
    (app, browser, client_id)
}

/// The code `/authorize` sends back (asserting `state` and `iss` come with it).
async fn code_for(app: &TestApp, browser: &mut Browser, client_id: &str) -> String {
    let response = browser.get(&authorize_url(app, client_id, "")).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{}",
        response.text().await.unwrap()
    );
    let target = location(&response);
    assert!(target.starts_with(&format!("{REDIRECT}?")), "{target}");
    let params = query_of(&target);
    assert_eq!(params["state"], "st-1");
    assert_eq!(params["iss"], app.auth.provider_metadata().issuer);
    params["code"].clone()
}

#[tokio::test]
async fn the_code_flow_with_pkce_issues_an_id_token_that_names_the_sign_in() {
    let (app, mut browser, client_id) = signed_in().await;
    let code = code_for(&app, &mut browser, &client_id).await;
    let tokens = json_with_status(exchange(&app, &client_id, &code, VERIFIER).await, 200).await;
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["aud"], client_id);
    assert_eq!(id_token["iss"], app.auth.provider_metadata().issuer);
    assert_eq!(id_token["nonce"], "n-1");
    assert_eq!(id_token["preferred_username"], "alice");
    assert_eq!(id_token["email"], "alice@example.com");
    assert_eq!(id_token["amr"], serde_json::json!(["pwd"]));
    assert_eq!(id_token["acr"], "aal1");
    assert!(id_token["auth_time"].as_i64().unwrap() <= id_token["iat"].as_i64().unwrap());
    // at_hash: the left half of SHA-512 of the access token (Ed25519).
    let access = tokens["access_token"].as_str().unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, access.as_bytes());
    assert_eq!(
        id_token["at_hash"],
        URL_SAFE_NO_PAD.encode(&digest.as_ref()[..32])
    );
    // The access token works on the API and carries the client and scopes.
    assert_eq!(app.get_resource(access).await.status(), 200);
    assert_eq!(claims(access)["client_id"], client_id);
    let info = json_with_status(app.get_with_token("/userinfo", access).await, 200).await;
    assert_eq!(info["email"], "alice@example.com");
}

#[tokio::test]
async fn userinfo_and_the_id_token_release_only_what_the_scopes_allow() {
    let (app, mut browser, client_id) = signed_in().await;
    let url =
        authorize_url(&app, &client_id, "").replace("openid%20profile%20email", "openid%20email");
    let response = browser.get(&url).await;
    let code = query_of(&location(&response))["code"].clone();
    let tokens = json_with_status(exchange(&app, &client_id, &code, VERIFIER).await, 200).await;
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["email"], "alice@example.com");
    assert!(id_token.get("preferred_username").is_none());
    let info: Value = json_with_status(
        app.get_with_token("/userinfo", tokens["access_token"].as_str().unwrap())
            .await,
        200,
    )
    .await;
    assert_eq!(info["email"], "alice@example.com");
    assert!(info.get("preferred_username").is_none(), "{info}");
}

#[tokio::test]
async fn redirect_uris_match_exactly_and_a_bad_one_is_never_redirected_to() {
    let (app, mut browser, client_id) = signed_in().await;
    for bad in [
        "http://127.0.0.1:9/callback/",
        "http://127.0.0.1:9/callback/../evil",
        "http://127.0.0.1:9/callbackx",
        "http://127.0.0.1:9/callback?x=1",
        "http://127.0.0.1:90/callback",
        "http://127.0.0.1:9/CALLBACK",
        "https://evil.example/callback",
        "//evil.example/callback",
        "",
    ] {
        let url =
            authorize_url(&app, &client_id, "").replace(&urlencode(REDIRECT), &urlencode(bad));
        let response = browser.get(&url).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(response.headers().get("location").is_none(), "{bad}");
    }
    // An unknown client, and a repeated redirect_uri, also get the page.
    let response = browser.get(&authorize_url(&app, "client_nope", "")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let repeated = authorize_url(
        &app,
        &client_id,
        &format!("&redirect_uri={}", urlencode("https://evil.example/")),
    );
    assert_eq!(
        browser.get(&repeated).await.status(),
        StatusCode::BAD_REQUEST
    );
    // The sign-in page's `continue` cannot leave the server either.
    let token = browser.form_token(&app.url("/sign-in?reauth=1")).await;
    let response = browser
        .post(
            &app.url("/sign-in"),
            &[
                ("form_token", &token),
                ("login", "alice"),
                ("password", ALICE_PASSWORD),
                ("continue", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/account");
}

#[tokio::test]
async fn a_public_client_must_use_pkce_with_s256_and_the_verifier_is_checked() {
    let (app, mut browser, client_id) = signed_in().await;
    let without = authorize_url(&app, &client_id, "").replace(
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
        "",
    );
    let params = query_of(&location(&browser.get(&without).await));
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], "st-1");
    let plain = authorize_url(&app, &client_id, "").replace("S256", "plain");
    assert_eq!(
        query_of(&location(&browser.get(&plain).await))["error"],
        "invalid_request"
    );
    let code = code_for(&app, &mut browser, &client_id).await;
    let wrong = "x".repeat(43);
    let refused = json_with_status(exchange(&app, &client_id, &code, &wrong).await, 400).await;
    assert_eq!(refused["error"], "invalid_grant");
    // The code was spent by the failed attempt: the right verifier is too late.
    assert_eq!(
        exchange(&app, &client_id, &code, VERIFIER).await.status(),
        400
    );
    let code = code_for(&app, &mut browser, &client_id).await;
    let missing = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(missing, 400).await["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_replayed_code_fails_and_ends_what_the_first_exchange_opened() {
    let (app, mut browser, client_id) = signed_in().await;
    let code = code_for(&app, &mut browser, &client_id).await;
    let tokens = json_with_status(exchange(&app, &client_id, &code, VERIFIER).await, 200).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.get_resource(access).await.status(), 200);
    let replay = json_with_status(exchange(&app, &client_id, &code, VERIFIER).await, 400).await;
    assert_eq!(replay["error"], "invalid_grant");
    assert_eq!(app.get_resource(access).await.status(), 401);
    // Another client cannot use a code either.
    let (other, secret) = client(&app, false, true).await;
    let code = code_for(&app, &mut browser, &client_id).await;
    let stolen = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&other, secret)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(stolen, 400).await["error"],
        "invalid_grant"
    );
    // ...nor burn it: the client it was issued to still can.
    assert_eq!(
        exchange(&app, &client_id, &code, VERIFIER).await.status(),
        200
    );
}

#[tokio::test]
async fn prompt_none_without_a_session_answers_login_required() {
    let app = TestApp::spawn().await;
    let (client_id, _) = client(&app, true, true).await;
    let mut browser = Browser::new();
    let response = browser
        .get(&authorize_url(&app, &client_id, "&prompt=none"))
        .await;
    let params = query_of(&location(&response));
    assert_eq!(params["error"], "login_required");
    assert_eq!(params["state"], "st-1");
    // Without prompt=none, the browser is sent to sign in, and comes back.
    let response = browser.get(&authorize_url(&app, &client_id, "")).await;
    assert!(
        location(&response).starts_with("/sign-in?"),
        "{}",
        location(&response)
    );
}

#[tokio::test]
async fn a_third_party_client_gets_consent_once_and_the_user_can_withdraw_it() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (client_id, secret) = client(&app, false, false).await;
    let mut browser = Browser::new();
    browser.sign_in(&app, "alice", ALICE_PASSWORD).await;
    let url = authorize_url(&app, &client_id, "");
    let none = browser.get(&format!("{url}&prompt=none")).await;
    assert_eq!(query_of(&location(&none))["error"], "consent_required");
    let page = browser.get(&url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("'nonce-"),
        "{csp}"
    );
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("Example App"));
    let token = form_token_of(&html);
    let session = hidden_of(&html, "session");
    let request = url.split_once('?').unwrap().1;
    // An answer for another sign-in (a tab that switched accounts) starts over.
    let stale = browser
        .post(
            &app.url("/authorize"),
            &[
                ("form_token", &token),
                ("request", request),
                ("session", "00000000-0000-0000-0000-000000000000"),
                ("decision", "allow"),
            ],
        )
        .await;
    assert!(
        location(&stale).starts_with("/authorize?"),
        "{}",
        location(&stale)
    );
    let denied = browser
        .post(
            &app.url("/authorize"),
            &[
                ("form_token", &token),
                ("request", request),
                ("session", &session),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(query_of(&location(&denied))["error"], "access_denied");
    let allowed = browser
        .post(
            &app.url("/authorize"),
            &[
                ("form_token", &token),
                ("request", request),
                ("session", &session),
                ("decision", "allow"),
            ],
        )
        .await;
    let code = query_of(&location(&allowed))["code"].clone();
    let tokens = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&client_id, secret)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let tokens = json_with_status(tokens, 200).await;
    // A third-party client's token says who the user is, and no more: not
    // the account API, not the origin's route, no roles.
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_with_token("/userinfo", &access).await.status(), 200);
    assert_eq!(app.get_with_token("/me", &access).await.status(), 401);
    assert_eq!(app.get_resource(&access).await.status(), 401);
    assert_eq!(claims(&access)["roles"], serde_json::json!([]));
    // Remembered: the next request goes straight back.
    let again = browser.get(&url).await;
    assert!(query_of(&location(&again)).contains_key("code"));
    // Listed on the account page, and revocable there.
    let account = browser
        .get(&app.url("/account"))
        .await
        .text()
        .await
        .unwrap();
    assert!(account.contains("Example App"));
    let token = form_token_of(&account);
    browser
        .post(
            &app.url(&format!("/account/consents/{client_id}/revoke")),
            &[("form_token", &token)],
        )
        .await;
    assert_eq!(
        browser.get(&url).await.status(),
        StatusCode::OK,
        "asked again"
    );
    // Withdrawing consent ends what the client held.
    assert_eq!(app.get_with_token("/userinfo", &access).await.status(), 401);
}

#[tokio::test]
async fn the_browser_session_is_a_session_logout_ends() {
    let (app, mut browser, _) = signed_in().await;
    let token = app.token_for("alice", ALICE_PASSWORD).await;
    let sessions = json_with_status(app.get_with_token("/sessions", &token).await, 200).await;
    assert_eq!(sessions.as_array().unwrap().len(), 2, "{sessions}");
    assert_eq!(
        browser.get(&app.url("/account")).await.status(),
        StatusCode::OK
    );
    let logout = app
        .client
        .post(app.url("/logout?scope=global"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "{}", logout.status());
    let response = browser.get(&app.url("/account")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/sign-in"));
}

#[tokio::test]
async fn forms_without_their_token_are_refused() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let mut browser = Browser::new();
    browser.get(&app.url("/sign-in")).await;
    let response = browser
        .post(
            &app.url("/sign-in"),
            &[("login", "alice"), ("password", ALICE_PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!browser.cookies.contains_key("latchkey-session"));
    let forged = browser
        .post(
            &app.url("/sign-in"),
            &[
                ("form_token", &"0".repeat(64)),
                ("login", "alice"),
                ("password", ALICE_PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_browser_session_and_returns_to_the_client() {
    let (app, mut browser, client_id) = signed_in().await;
    let code = code_for(&app, &mut browser, &client_id).await;
    let tokens = json_with_status(exchange(&app, &client_id, &code, VERIFIER).await, 200).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let bad = browser
        .get(&app.url(&format!(
            "/end-session?id_token_hint={hint}&post_logout_redirect_uri={}",
            urlencode("https://evil.example/")
        )))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let response = browser
        .get(&app.url(&format!(
            "/end-session?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye-1",
            urlencode("http://127.0.0.1:9/bye")
        )))
        .await;
    assert_eq!(location(&response), "http://127.0.0.1:9/bye?state=bye-1");
    let account = browser.get(&app.url("/account")).await;
    assert_eq!(account.status(), StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn client_credentials_give_a_machine_token_resource_servers_can_introspect() {
    let app = TestApp::spawn().await;
    let created = app
        .auth
        .create_oidc_client(&NewClient {
            name: "billing job".to_owned(),
            scopes: vec!["invoices:read".to_owned()],
            client_credentials: true,
            ..NewClient::default()
        })
        .await
        .unwrap();
    let secret = secrecy::ExposeSecret::expose_secret(created.secret.as_ref().unwrap()).to_owned();
    let token = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&created.id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let token = json_with_status(token, 200).await;
    assert_eq!(token["scope"], "invoices:read");
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["sub"], created.id);
    // Not a user: the user API refuses it; introspection reports it.
    assert_eq!(app.get_resource(access).await.status(), 401);
    let introspected = app
        .client
        .post(app.url("/oauth/introspect"))
        .basic_auth(&created.id, Some(&secret))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    let introspected = json_with_status(introspected, 200).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["client_id"], created.id);
    let wrong = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&created.id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(wrong, 401).await["error"],
        "invalid_client"
    );
    let scope = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&created.id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(scope, 400).await["error"], "invalid_scope");
    // A client made for introspection alone may not mint tokens.
    let introspector = app.auth.create_client("resource server").await.unwrap();
    let introspector_secret =
        secrecy::ExposeSecret::expose_secret(introspector.secret.as_ref().unwrap()).to_owned();
    let refused = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&introspector.id, Some(introspector_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(refused, 400).await["error"],
        "unauthorized_client"
    );
}

#[tokio::test]
async fn discovery_lists_the_provider() {
    let app = TestApp::spawn().await;
    let metadata = json_with_status(app.get("/.well-known/openid-configuration").await, 200).await;
    let issuer = metadata["issuer"].as_str().unwrap();
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{issuer}/authorize")
    );
    assert_eq!(
        metadata["end_session_endpoint"],
        format!("{issuer}/end-session")
    );
    assert_eq!(
        metadata["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&"authorization_code".into())
    );
    assert!(
        metadata["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&"offline_access".into())
    );
}

#[tokio::test]
async fn offline_access_adds_a_refresh_token_that_keeps_the_scope() {
    let (app, mut browser, client_id) = signed_in().await;
    let url = authorize_url(&app, &client_id, "")
        .replace("openid%20profile%20email", "openid%20offline_access");
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let tokens = json_with_status(exchange(&app, &client_id, &code, VERIFIER).await, 200).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    // The session is the client's: refreshing it needs the client.
    let anonymous = json_with_status(app.refresh(refresh_token).await, 401).await;
    assert_eq!(anonymous["error"], "invalid_client");
    let refreshed = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap();
    let refreshed = json_with_status(refreshed, 200).await;
    let access = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(access["scope"], "openid offline_access");
    assert_eq!(access["client_id"], client_id);
}

#[tokio::test]
async fn a_code_lives_sixty_seconds() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (client_id, _) = client(&app, true, true).await;
    let (timed, clock) = app.with_manual_clock().await;
    let mut browser = Browser::new();
    browser.sign_in(&timed, "alice", ALICE_PASSWORD).await;
    let code = code_for(&timed, &mut browser, &client_id).await;
    clock.advance(chrono::Duration::seconds(61));
    let late = json_with_status(exchange(&timed, &client_id, &code, VERIFIER).await, 400).await;
    assert_eq!(late["error"], "invalid_grant");
    let code = code_for(&timed, &mut browser, &client_id).await;
    clock.advance(chrono::Duration::seconds(59));
    assert_eq!(
        exchange(&timed, &client_id, &code, VERIFIER).await.status(),
        200
    );
}

#[tokio::test]
async fn prompt_login_and_max_age_send_a_signed_in_browser_to_sign_in_again() {
    let app = TestApp::spawn().await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (client_id, _) = client(&app, true, true).await;
    let (timed, clock) = app.with_manual_clock().await;
    let mut browser = Browser::new();
    browser.sign_in(&timed, "alice", ALICE_PASSWORD).await;
    for extra in [
        "&prompt=login",
        "&max_age=30&login_hint=alice%40example.com",
    ] {
        clock.advance(chrono::Duration::seconds(60));
        let response = browser.get(&authorize_url(&timed, &client_id, extra)).await;
        let target = location(&response);
        assert!(
            target.starts_with("/sign-in?reauth=1&continue="),
            "{extra}: {target}"
        );
        let page = browser.get(&timed.url(&target)).await.text().await.unwrap();
        if extra.contains("login_hint") {
            assert!(
                page.contains("value=\"alice@example.com\""),
                "the hint fills the field"
            );
        }
        let continued =
            query_of(&format!("x?{}", target.split_once('?').unwrap().1))["continue"].clone();
        assert!(!continued.contains("prompt=login"), "no loop: {continued}");
        let token = form_token_of(&page);
        let signed = browser
            .post(
                &timed.url("/sign-in"),
                &[
                    ("form_token", &token),
                    ("login", "alice"),
                    ("password", ALICE_PASSWORD),
                    ("continue", &continued),
                ],
            )
            .await;
        assert_eq!(location(&signed), continued);
        let back = browser.get(&timed.url(&continued)).await;
        let code = query_of(&location(&back))["code"].clone();
        let tokens =
            json_with_status(exchange(&timed, &client_id, &code, VERIFIER).await, 200).await;
        let id_token = claims(tokens["id_token"].as_str().unwrap());
        let age = id_token["iat"].as_i64().unwrap() - id_token["auth_time"].as_i64().unwrap();
        assert!(
            age < 5,
            "{extra}: auth_time is the new sign-in ({age} s old)"
        );
    }
}

#[tokio::test]
async fn a_confidential_client_authenticates_by_post_or_basic_and_never_as_public() {
    let (app, mut browser, _) = signed_in().await;
    let (client_id, secret) = client(&app, false, true).await;
    let secret = secret.unwrap();
    // Without a challenge: PKCE is optional for a confidential client.
    let url = authorize_url(&app, &client_id, "").replace(
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
        "",
    );
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let public = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(public, 401).await["error"],
        "invalid_client"
    );
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let posted = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    // A verifier for a code issued without a challenge is refused.
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let stray = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(stray, 400).await["error"], "invalid_grant");
}

#[tokio::test]
async fn hostile_authorization_requests_get_4xx_pages_or_errors_never_5xx() {
    let (app, mut browser, client_id) = signed_in().await;
    // Each case replaces one parameter of a good request, so the check it
    // aims at is the one that answers (not "repeated").
    let long = "n".repeat(5000);
    for (name, value, error) in [
        ("nonce", "a\u{0}b", "invalid_request"),
        ("state", "a\u{7}b", "invalid_request"),
        ("nonce", long.as_str(), "invalid_request"),
        ("scope", "openid admin", "invalid_scope"),
        ("response_type", "token", "unsupported_response_type"),
        ("max_age", "-1", "invalid_request"),
        ("prompt", "none login", "invalid_request"),
        ("login_after", "1.forged", "invalid_request"),
        ("code_challenge", "short", "invalid_request"),
    ] {
        let mut params = query_of(&authorize_url(&app, &client_id, ""));
        params.insert(name.to_owned(), value.to_owned());
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let response = browser.get(&app.url(&format!("/authorize?{query}"))).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{name}={value:.20}"
        );
        let target = location(&response);
        assert!(target.starts_with(REDIRECT), "{name}: {target}");
        let answer = query_of(&target);
        assert_eq!(
            answer.get("error").map(String::as_str),
            Some(error),
            "{name}: {target}"
        );
        assert!(!answer.contains_key("code"), "{name}: {target}");
    }
    for hostile in [
        "client_id=%00",
        "client_id=a%00b&redirect_uri=x",
        &format!("client_id={}", "c".repeat(5000)),
        "%FF=%FE",
    ] {
        let response = browser
            .get(&app.url(&format!("/authorize?{hostile}")))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{hostile}");
    }
}

#[tokio::test]
async fn secret_key_mode_has_no_openid_provider() {
    let app = TestApp::spawn_with(crate::helpers::Options {
        secret_key: Some("an origin secret that is long enough to sign HS256 tokens".to_owned()),
        ..Default::default()
    })
    .await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (client_id, _) = client(&app, true, true).await;
    let mut browser = Browser::new();
    browser.sign_in(&app, "alice", ALICE_PASSWORD).await;
    let response = browser.get(&authorize_url(&app, &client_id, "")).await;
    assert_eq!(query_of(&location(&response))["error"], "server_error");
}

#[tokio::test]
async fn authorization_and_logout_requests_may_come_by_post() {
    let (app, mut browser, client_id) = signed_in().await;
    let url = authorize_url(&app, &client_id, "");
    let fields: Vec<(String, String)> = query_of(&url).into_iter().collect();
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // A cross-site POST carries no SameSite=Lax cookie: the request goes on
    // as a GET, which does (this client sends none either way).
    let posted = Browser::new().post(&app.url("/authorize"), &fields).await;
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let again = location(&posted);
    assert!(again.starts_with("/authorize?"), "{again}");
    let response = browser.get(&app.url(&again)).await;
    let params = query_of(&location(&response));
    assert_eq!(params["state"], "st-1");
    let tokens = json_with_status(
        exchange(&app, &client_id, &params["code"], VERIFIER).await,
        200,
    )
    .await;
    let hint = tokens["id_token"].as_str().unwrap();
    // An access token is no ID token, even though latchkey signed it.
    let access_hint = browser
        .get(&app.url(&format!(
            "/end-session?id_token_hint={}",
            tokens["access_token"].as_str().unwrap()
        )))
        .await;
    assert_eq!(access_hint.status(), StatusCode::BAD_REQUEST);
    let posted = Browser::new()
        .post(
            &app.url("/end-session"),
            &[
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
            ],
        )
        .await;
    let again = location(&posted);
    assert!(again.starts_with("/end-session?"), "{again}");
    let response = browser.get(&app.url(&again)).await;
    assert_eq!(location(&response), "http://127.0.0.1:9/bye");
    assert_eq!(
        browser.get(&app.url("/account")).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_way_back_from_prompt_login_cannot_skip_the_sign_in() {
    let (app, mut browser, client_id) = signed_in().await;
    let response = browser
        .get(&authorize_url(&app, &client_id, "&prompt=login"))
        .await;
    let target = location(&response);
    let continued =
        query_of(&format!("x?{}", target.split_once('?').unwrap().1))["continue"].clone();
    assert!(continued.contains("login_after="), "{continued}");
    // The old sign-in, straight back: sent to sign in again, no code.
    let skipped = browser.get(&app.url(&continued)).await;
    assert!(
        location(&skipped).starts_with("/sign-in?reauth=1"),
        "{}",
        location(&skipped)
    );
}

/// Refresh grace off: a spent token cannot be asked for again, so a refresh
/// refused for the wrong client must not have spent it.
#[tokio::test]
async fn a_clients_refresh_token_is_neither_spent_nor_revoked_by_anyone_else() {
    let app = TestApp::spawn_with(crate::helpers::Options::customized(|settings| {
        settings.sessions.refresh_grace_seconds = latchkey::config::Bounded::clamped(0);
    }))
    .await;
    app.register("alice", "alice@example.com", ALICE_PASSWORD)
        .await;
    let (client_id, _) = client(&app, true, true).await;
    let (other, _) = client(&app, true, true).await;
    let mut browser = Browser::new();
    browser.sign_in(&app, "alice", ALICE_PASSWORD).await;
    let url = authorize_url(&app, &client_id, "")
        .replace("openid%20profile%20email", "openid%20offline_access");
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let tokens = json_with_status(exchange(&app, &client_id, &code, VERIFIER).await, 200).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let refresh_as = |client: Option<&str>| {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.to_owned()),
        ];
        if let Some(client) = client {
            form.push(("client_id", client.to_owned()));
        }
        app.client.post(app.url("/oauth/token")).form(&form).send()
    };
    let anonymous = json_with_status(refresh_as(None).await.unwrap(), 401).await;
    assert_eq!(anonymous["error"], "invalid_client");
    let wrong = json_with_status(refresh_as(Some(&other)).await.unwrap(), 400).await;
    assert_eq!(wrong["error"], "invalid_grant");
    let revoke = |client: &str| {
        app.client
            .post(app.url("/oauth/revoke"))
            .form(&[("token", refresh_token), ("client_id", client)])
            .send()
    };
    assert_eq!(revoke(&other).await.unwrap().status(), 400);
    // Still the client's: it refreshes, then revokes.
    json_with_status(refresh_as(Some(&client_id)).await.unwrap(), 200).await;
    assert_eq!(revoke(&client_id).await.unwrap().status(), 200);
}

#[tokio::test]
async fn pages_answer_hostile_input_with_4xx_never_5xx() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new();
    let long = "t".repeat(5000);
    for path in [
        "/sign-in?continue=%FF%FE&reauth",
        "/sign-in?continue=/account&continue=/authorize%3F",
        "/sign-in?token=%00",
        "/sign-up?continue=javascript:alert(1)",
        &format!("/reset-password?token={long}"),
        "/verify-email?token=%E2%80%AE",
        "/confirm-email-change",
        "/sign-in/second-factor?continue=//evil.example",
        "/forgot-password",
        "/end-session?id_token_hint=not.a.jwt",
        "/end-session?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F",
    ] {
        let response = browser.get(&app.url(path)).await;
        assert!(
            response.status().as_u16() < 500,
            "{path}: {}",
            response.status()
        );
        if let Some(target) = response.headers().get("location") {
            let target = target.to_str().unwrap();
            assert!(
                target.starts_with('/') && !target.starts_with("//"),
                "{path} → {target}"
            );
        }
    }
    for path in [
        "/sign-in",
        "/sign-in/email",
        "/sign-in/second-factor",
        "/sign-up",
        "/forgot-password",
        "/reset-password",
        "/verify-email",
        "/account/password",
        "/authorize",
        "/end-session",
        "/sign-out",
    ] {
        let json = app
            .client
            .post(app.url(path))
            .json(&serde_json::json!({"login": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(json.status(), 400, "{path}");
        assert!(json.text().await.unwrap().contains("\"detail\""), "{path}");
        let tokenless = browser
            .post(&app.url(path), &[("login", "x"), ("decision", "allow")])
            .await;
        // A logout request by POST needs no form token: without a session
        // it just says "signed out".
        let fine = tokenless.status().is_client_error()
            || tokenless.status().is_redirection()
            || (path == "/end-session" && tokenless.status().is_success());
        assert!(fine, "{path}: {}", tokenless.status());
    }
    for path in [
        "/sign-in/passkey",
        "/account/passkeys/start",
        "/account/passkeys/finish",
        "/sign-in/second-factor/passkey",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}: no form token");
    }
}
