//! Extractors at the edge, each with our own rejections so that malformed
//! input always becomes our JSON error, never a plain-text default.
//!
//! - [`ApiJson`]: a JSON body (415 for another media type, 413 past the body
//!   limit, 422 for malformed JSON or missing/mistyped fields).
//! - [`JsonOrForm`]: a JSON or `application/x-www-form-urlencoded` body, as the
//!   login route takes.
//! - [`CurrentUser`]: the account behind a verified `Authorization: Bearer` token.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header, request::Parts};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ValidationIssue};
use super::state::AppState;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;

use crate::auth::{ClientContext, Principal};

const JSON: &str = "application/json";
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// A JSON request body deserialized into `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if media_type(request.headers()) != Some(JSON) {
            return Err(ApiError::UnsupportedMediaType(JSON));
        }
        let body = read_body(request, state).await?;
        parse_json(&body).map(Self)
    }
}

/// A body that may come as JSON or as an HTML/OAuth form.
pub struct JsonOrForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let expected = "application/x-www-form-urlencoded or application/json";
        match media_type(request.headers()) {
            Some(JSON) => parse_json(&read_body(request, state).await?).map(Self),
            Some(FORM) => parse_form(&read_body(request, state).await?).map(Self),
            _ => Err(ApiError::UnsupportedMediaType(expected)),
        }
    }
}

/// The caller of the verified bearer token in the `Authorization` header.
pub struct CurrentUser(pub Principal);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)
            .ok_or(ApiError::NotAuthenticated)?
            .to_owned();
        let principal = state.auth.authenticate(&token).await?;
        Ok(Self(principal))
    }
}

/// Where a request came from: its user agent and the client's address (see [`super::TrustedProxies`]).
pub struct Client(pub ClientContext);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| state.trusted_proxies.client(*peer, &parts.headers));
        let languages = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .map(crate::mail::accepted_languages)
            .unwrap_or_default();
        Ok(Self(ClientContext {
            user_agent,
            ip,
            languages,
        }))
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive (RFC 9110).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The media type of the body, without parameters, lower-cased.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    if essence == JSON || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Some(JSON)
    } else if essence == FORM {
        Some(FORM)
    } else {
        None
    }
}

pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(failure) if is_length_limit(&failure) => {
                ApiError::PayloadTooLarge
            }
            _ => ApiError::BadRequest("Could not read the request body".to_owned()),
        })
}

fn is_length_limit(failure: &axum::extract::rejection::FailedToBufferBody) -> bool {
    matches!(
        failure,
        axum::extract::rejection::FailedToBufferBody::LengthLimitError(_)
    )
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from an array; bodies must be objects.
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        let well_formed = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
        return Err(ApiError::Validation(vec![issue(
            ".",
            "not an object",
            !well_formed,
        )]));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let syntax = !error.inner().is_data();
        let message = error.inner().to_string();
        ApiError::Validation(vec![issue(&error.path().to_string(), &message, syntax)])
    })?;
    // Anything after the document is as malformed as a broken document.
    deserializer
        .end()
        .map_err(|_| ApiError::Validation(vec![issue(".", "trailing characters", true)]))?;
    Ok(value)
}

fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(body));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let message = error.inner().to_string();
        ApiError::Validation(vec![issue(&error.path().to_string(), &message, false)])
    })
}

/// Turns a serde message into the origin framework's `{loc, msg, type}`.
fn issue(path: &str, message: &str, syntax: bool) -> ValidationIssue {
    // serde_json appends the position; the path already says where.
    let message = message.split(" at line ").next().unwrap_or(message);
    if syntax {
        return ValidationIssue::body(None, "JSON decode error", "json_invalid");
    }
    let path = (path != ".").then_some(path);
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let field = path.map_or_else(|| field.to_owned(), |path| format!("{path}.{field}"));
        return ValidationIssue::body(Some(&field), "Field required", "missing");
    }
    match path {
        None => ValidationIssue::body(
            None,
            "Input should be a valid object",
            "model_attributes_type",
        ),
        Some(field) if message.contains("expected a string") => {
            ValidationIssue::body(Some(field), "Input should be a valid string", "string_type")
        }
        Some(field) => ValidationIssue::body(Some(field), message, "value_error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Pair {
        #[allow(dead_code)]
        left: String,
        #[allow(dead_code)]
        right: String,
    }

    fn validation(error: ApiError) -> Vec<ValidationIssue> {
        match error {
            ApiError::Validation(issues) => issues,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_json_field_is_named() {
        let issues = validation(parse_json::<Pair>(br#"{"left": "a"}"#).unwrap_err());
        assert_eq!(issues[0].loc, ["body", "right"]);
        assert_eq!(issues[0].kind, "missing");
    }

    #[test]
    fn a_mistyped_json_field_is_named() {
        let issues = validation(parse_json::<Pair>(br#"{"left": 1, "right": "b"}"#).unwrap_err());
        assert_eq!(issues[0].loc, ["body", "left"]);
        assert_eq!(issues[0].kind, "string_type");
    }

    #[test]
    fn malformed_json_and_trailing_garbage_are_refused() {
        for body in [
            &b"{\"left\": "[..],
            b"\xff",
            br#"{"left":"a","right":"b"} x"#,
        ] {
            let issues = validation(parse_json::<Pair>(body).unwrap_err());
            assert_eq!(issues[0].loc, ["body"], "{body:?}");
        }
        let issues = validation(parse_json::<Pair>(b"[1]").unwrap_err());
        assert_eq!(issues[0].kind, "model_attributes_type");
    }

    #[test]
    fn a_missing_form_field_is_named() {
        let issues = validation(parse_form::<Pair>(b"left=a").unwrap_err());
        assert_eq!(issues[0].loc, ["body", "right"]);
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert_eq!(media_type(&headers), Some(JSON));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(media_type(&headers), None);
    }
}
