//! Extractors that turn requests into checked, typed input — or into a
//! Graph error, never into axum's plain-text rejections.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams};
use axum::http::request::Parts;
use axum::http::StatusCode;
use uuid::Uuid;

use super::error::GraphError;
use super::AppState;
use crate::auth::{bearer_token, Principal, PrincipalKind};
use crate::clock::{wall_now, Instant};
use crate::domain::parse_guid;

/// A JSON object body parsed with Graph-style errors: a body that is not a
/// JSON object, bad JSON or a bad field → 400 `invalidRequest`, wrong
/// content type → 415, too large → 413.
#[derive(Debug)]
pub struct GraphJson<T>(pub T);

/// Whether the request declares a JSON body (`application/json`, any
/// parameters, or a `+json` type).
fn declares_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|mime| {
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// A JSON object body, read and checked (content type, size, an object) but
/// not yet deserialized, so a handler can authorise the caller before it
/// validates fields: a caller without permission learns nothing about them.
#[derive(Debug)]
pub struct JsonBody(axum::body::Bytes);

impl JsonBody {
    /// Deserializes the body; a bad or missing field is a 400 naming it.
    ///
    /// A body that parses is parsed once, plainly; only one that does not
    /// is parsed again through axum's `Json`, which tracks the path to the
    /// bad field (`serde_path_to_error`) for the message. Tracking it on
    /// every body cost a setPresence about 2 % of its CPU.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, GraphError> {
        if let Ok(value) = serde_json::from_slice(&self.0) {
            return Ok(value);
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&self.0)?;
        Ok(value)
    }
}

/// Reads a request body, allowing the client `timeout` for the upload
/// (408 `requestTimeout` beyond) and the body limit (413 beyond).
pub async fn read_body(
    req: axum::extract::Request,
    timeout: std::time::Duration,
) -> Result<axum::body::Bytes, GraphError> {
    match tokio::time::timeout(timeout, axum::body::Bytes::from_request(req, &())).await {
        Ok(bytes) => bytes.map_err(|e| GraphError::from(JsonRejection::from(e))),
        Err(_) => Err(GraphError::new(
            StatusCode::REQUEST_TIMEOUT,
            "requestTimeout",
            format!(
                "The request body was not received within {} seconds.",
                timeout.as_secs_f64()
            ),
        )),
    }
}

/// A body declared as JSON, read within the upload timeout and the size
/// limit, and not checked further: `$batch` parses it itself, so that every
/// malformed batch gets the batch's own answer.
#[derive(Debug)]
pub struct JsonBytes(axum::body::Bytes);

impl JsonBytes {
    /// The body's bytes, as received.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest<AppState> for JsonBytes {
    type Rejection = GraphError;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, GraphError> {
        if !declares_json(req.headers()) {
            return Err(unsupported_media_type());
        }
        Ok(JsonBytes(read_body(req, state.request_timeout).await?))
    }
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = GraphError;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, GraphError> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        // Serde would also read a JSON array as a struct, in field order;
        // Graph bodies are objects, so anything else is refused here.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(GraphError::bad_request(
                "The request body must be a JSON object.",
            ));
        }
        Ok(JsonBody(bytes))
    }
}

impl<T> FromRequest<AppState> for GraphJson<T>
where
    T: serde::de::DeserializeOwned,
{
    type Rejection = GraphError;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, GraphError> {
        let body = JsonBody::from_request(req, state).await?;
        Ok(GraphJson(body.parse()?))
    }
}

fn unsupported_media_type() -> GraphError {
    GraphError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupportedMediaType",
        "The request body must be JSON, sent with 'Content-Type: application/json'.",
    )
}

impl From<JsonRejection> for GraphError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                GraphError::bad_request(format!("The request body is invalid: {}", e.body_text()))
            }
            JsonRejection::JsonSyntaxError(e) => GraphError::bad_request(format!(
                "The request body is not valid JSON: {}",
                e.body_text()
            )),
            JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                GraphError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "requestTooLarge",
                    format!(
                        "The request body is larger than the limit of {} bytes.",
                        super::MAX_BODY_BYTES
                    ),
                )
            }
            other => GraphError::bad_request(format!(
                "The request body could not be read: {}",
                other.body_text()
            )),
        }
    }
}

/// Path parameters with a Graph-style 400 when they cannot be read (e.g.
/// percent-encoded bytes that are not UTF-8), instead of axum's plain text.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(Path), rejection(GraphError))]
pub struct GraphPath<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for GraphError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        GraphError::bad_request(format!(
            "The request path is invalid: {}",
            rejection.body_text()
        ))
    }
}

/// Which API version the path named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/v1.0`.
    V1,
    /// `/beta`.
    Beta,
}

impl ApiVersion {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

/// An authenticated Graph call: who calls, about whom, when.
#[derive(Debug, Clone)]
pub struct Call {
    /// The verified caller.
    pub principal: Arc<Principal>,
    /// The subject user (`/me` resolved to the caller), when the path has one.
    pub user: Option<Uuid>,
    /// The API version of the path.
    pub version: ApiVersion,
    /// The presence clock's reading for this request (read once).
    pub now: Instant,
    /// `scheme://host` of the request, for `@odata.context`.
    pub base: Arc<str>,
}

impl Call {
    /// The subject user; the router only uses this on paths that have one.
    pub fn subject(&self) -> Result<Uuid, GraphError> {
        self.user
            .ok_or_else(|| GraphError::bad_request("This path does not name a user."))
    }

    /// Whether the caller is the subject (owner view of the status message).
    pub fn is_self(&self, user: Uuid) -> bool {
        self.principal.user() == Some(user)
    }

    /// The tenant every read and write of this call is scoped to.
    pub fn tenant(&self) -> Uuid {
        self.principal.tenant
    }
}

/// The API version of a Graph path (`/v1.0` or `/beta`; anything else is a
/// 404) and the path's parameters, as the router decoded them (read in
/// place, not copied into a map).
pub async fn versioned_path(
    parts: &mut Parts,
    state: &AppState,
) -> Result<(ApiVersion, PathParams), GraphError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| GraphError::bad_request("The request path is invalid."))?;
    let params = PathParams(params);
    let version = match params.get("version") {
        Some("v1.0") => ApiVersion::V1,
        Some("beta") => ApiVersion::Beta,
        _ => return Err(not_found_path(parts)),
    };
    Ok((version, params))
}

/// A request's path parameters, percent-decoded.
#[derive(Debug)]
pub struct PathParams(RawPathParams);

impl PathParams {
    /// The parameter called `name`, if the route has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find_map(|(key, value)| (key == name).then_some(value))
    }
}

/// Verifies the bearer token of a request against wall time (SPEC §8),
/// without taking from the throttling budget: a `$batch` is checked this
/// way, and each request in it is throttled on its own.
pub async fn verify_token(parts: &Parts, state: &AppState) -> Result<Arc<Principal>, GraphError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let token = bearer_token(header)?;
    let principal = state.verifier.verify(token, wall_now()).await?;
    super::access::note_caller(&parts.extensions, &principal);
    Ok(principal)
}

/// Verifies the bearer token of a request (against wall time, SPEC §8) and,
/// when throttling is on, takes one request from the caller's application's
/// budget in its tenant (429 beyond it).
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Arc<Principal>, GraphError> {
    let principal = verify_token(parts, state).await?;
    throttle(state, &principal)?;
    Ok(principal)
}

/// When throttling is on, takes one request from `principal`'s
/// application's budget in its tenant (429 beyond it).
fn throttle(state: &AppState, principal: &Principal) -> Result<(), GraphError> {
    match &state.throttle {
        Some(throttle) => throttle
            .take(
                principal.tenant,
                &principal.app_id,
                std::time::Instant::now(),
            )
            .map_err(GraphError::too_many_requests),
        None => Ok(()),
    }
}

impl FromRequestParts<AppState> for Call {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GraphError> {
        let (version, params) = versioned_path(parts, state).await?;
        Call::authenticated(parts, state, version, params.get("id")).await
    }
}

impl Call {
    /// What the extractor does once the path is routed and split: the
    /// caller authenticated (and throttled), then the subject user parsed
    /// from the path's `id` (percent-decoded) or, on `/me` paths, taken
    /// from the caller. The direct path ([`super::direct`]: getPresence and
    /// setPresence) calls it as the extractor does, so both answer alike.
    pub async fn authenticated(
        parts: &Parts,
        state: &AppState,
        version: ApiVersion,
        id: Option<&str>,
    ) -> Result<Self, GraphError> {
        let principal = verify_token(parts, state).await?;
        Self::verified(parts, state, version, id, principal)
    }

    /// [`Call::authenticated`] once [`verify_token`] has given the caller:
    /// throttling, then the subject user.
    pub fn verified(
        parts: &Parts,
        state: &AppState,
        version: ApiVersion,
        id: Option<&str>,
        principal: Arc<Principal>,
    ) -> Result<Self, GraphError> {
        throttle(state, &principal)?;
        let user = match id {
            Some(id) => Some(parse_guid(id)?),
            None if original_path(parts).contains("/me/presence") => match principal.kind {
                PrincipalKind::Delegated { user } => Some(user),
                PrincipalKind::Application => {
                    return Err(GraphError::bad_request(
                        "/me request is only valid with delegated authentication flow.",
                    ))
                }
            },
            None => None,
        };
        Ok(Call {
            principal,
            user,
            version,
            now: state.clock.now(),
            base: request_base(parts, state),
        })
    }
}

/// Where this server says it lives, for `@odata.context`: the configured
/// `--public-url`, else (with `--trust-forwarded-headers` only) what a proxy
/// or the client says in `X-Forwarded-Proto`/`X-Forwarded-Host`/`Host`, else
/// the address the listener is bound to. Request headers are never echoed
/// unless the operator trusts them.
#[derive(Debug, Default)]
pub struct Origin {
    /// `--public-url`, without a trailing slash.
    pub public: Option<Arc<str>>,
    /// `--trust-forwarded-headers`.
    pub trust_forwarded: bool,
    /// `http://{bound address}`, set when the listener is bound.
    pub bound: std::sync::OnceLock<Arc<str>>,
}

/// A header value that may be used as a host (`host[:port]`), if plausible.
fn plausible_host(value: Option<&axum::http::HeaderValue>) -> Option<&str> {
    value.and_then(|h| h.to_str().ok()).filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    })
}

impl Origin {
    /// `scheme://host[:port]` for a request.
    pub fn base(&self, parts: &Parts) -> Arc<str> {
        if let Some(public) = &self.public {
            return public.clone();
        }
        if self.trust_forwarded {
            let headers = &parts.headers;
            let host = plausible_host(headers.get("x-forwarded-host"))
                .or(plausible_host(headers.get(axum::http::header::HOST)));
            if let Some(host) = host {
                let scheme = match headers
                    .get("x-forwarded-proto")
                    .and_then(|h| h.to_str().ok())
                {
                    Some(p) if p.eq_ignore_ascii_case("https") => "https",
                    _ => "http",
                };
                return Arc::from(format!("{scheme}://{host}"));
            }
        }
        self.bound
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::from("http://localhost"))
    }
}

/// `scheme://host` of a request, for `@odata.context` (see [`Origin`]).
pub fn request_base(parts: &Parts, state: &AppState) -> Arc<str> {
    state.origin.base(parts)
}

/// The request's path as sent, before any nesting stripped a prefix.
fn original_path(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(parts.uri.path(), |uri| uri.0.path())
}

/// The 404 for a path that does not exist.
pub fn not_found_path(parts: &Parts) -> GraphError {
    GraphError::not_found(format!(
        "Resource not found for the segment '{}'.",
        original_path(parts)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        session_id: String,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Inner {
        n: u8,
    }

    fn parse(text: &str) -> Result<Body, GraphError> {
        JsonBody(axum::body::Bytes::copy_from_slice(text.as_bytes())).parse()
    }

    #[test]
    fn a_good_body_parses() {
        let body = parse(r#"{"sessionId":"s","inner":{"n":7}}"#).unwrap();
        assert_eq!(
            body,
            Body {
                session_id: "s".into(),
                inner: Inner { n: 7 }
            }
        );
    }

    #[test]
    fn a_bad_field_is_a_400_naming_its_path() {
        let err = parse(r#"{"sessionId":"s","inner":{"n":"seven"}}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message.starts_with("The request body is invalid: ")
                && err.message.contains(": inner.n: invalid type"),
            "{}",
            err.message
        );
        let err = parse(r#"{"inner":{"n":1}}"#).unwrap_err();
        assert!(
            err.message.contains("missing field `sessionId`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_body_that_is_not_json_or_has_trailing_text_is_refused() {
        for text in ["{", r#"{"sessionId":"s","inner":{"n":1}} x"#] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{text}");
            assert!(
                err.message
                    .starts_with("The request body is not valid JSON"),
                "{text}: {}",
                err.message
            );
        }
    }
}
