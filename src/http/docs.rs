//! The OpenAPI 3.1 document (`/openapi.json`) and the interactive docs page
//! (`/docs`), whose assets are compiled into the binary. The document is built
//! from the routers themselves; this file only adds what no route knows: the
//! title, and the security scheme (OAuth 2.0 password flow against `/login`,
//! so the page's Authorize button works). The page calls nothing external.

use axum::Router;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "latchkey", description = "User-authentication API: registration, login, tokens."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "origin", description = "The origin service's routes, unchanged for its clients"),
        (name = "account", description = "The caller's account"),
        (name = "sessions", description = "The caller's sessions"),
        (name = "email", description = "Email verification, password reset, email change and sign-in codes"),
        (name = "mfa", description = "Second factors: TOTP, recovery codes, and the second step of a login"),
        (name = "passkeys", description = "Passkeys (WebAuthn): registration, management and passwordless sign-in"),
        (name = "admin", description = "The admin API: an API key with the route's scope, or an account holding the admin role"),
        (name = "oauth", description = "OAuth 2.0 and OpenID Connect endpoints"),
        (name = "operations", description = "Health, readiness and signing keys"),
    )
)]
struct BaseDocument;

pub fn base_document() -> utoipa::openapi::OpenApi {
    BaseDocument::openapi()
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/login",
                Scopes::new(),
            ))])),
        );
    }
}

pub fn router(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    // No validator: the page makes no request beyond this server.
    let config = Config::from("/openapi.json").validator_url("none");
    Router::from(
        SwaggerUi::new("/docs")
            .url("/openapi.json", openapi)
            .config(config),
    )
}
