//! A user's presence read served without the router (issue #14).
//!
//! `GET /v1.0/users/{id}/presence` is the request a presence server gets
//! most. Through the router it pays for axum's routing (the route lookup,
//! the path parameters percent-decoded onto the request, the matched path)
//! and for every layer of [`super::router`]'s stack, each a boxed service
//! cloned and polled per request: CORS, the edge, panics caught, the body
//! limit, the method router, the extractors. Under load that was about a
//! quarter of a getPresence's CPU (BENCHMARKS.md, "the direct read").
//!
//! So [`Direct::try_serve`] answers the plainest form of that request
//! itself, with the functions the router's path calls, in the same order:
//! the edge's ids and access line ([`super::edges`], [`super::access`]),
//! [`Call::authenticated`] (the token, throttling, then the id), the read
//! ([`super::presence::read_presence`]), the edge's stamp (request ids,
//! Graph errors rendered), the CORS layer's `Vary: Origin`, the router's `Content-Length`, and a panic
//! answered as the panic layer answers it.
//!
//! Everything else goes to the router untouched, before any of that work:
//! another method, path or spelling of it, a query string (`$select`), a
//! percent-escape in the id, an `Origin` (CORS), a body, a head over the
//! limits, and every request in emulator mode, whose fault rules and
//! request journal are router layers. `tests/api/presence/direct.rs` sends
//! each case both ways and compares the answers.

use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;

use super::extract::{ApiVersion, Call};
use super::{access, edges, panic_response, presence, AppState, USER_PRESENCE};

/// Serves a user's presence read without the router (see the module doc).
#[derive(Clone)]
pub struct Direct {
    state: AppState,
}

impl Direct {
    /// The direct path for `state`'s server; `None` in emulator mode, where
    /// the emulator's layer must see every request.
    pub fn new(state: AppState) -> Option<Self> {
        state.emulator.is_none().then_some(Self { state })
    }

    /// Answers `req` as the router would if it is a plain read of a user's
    /// presence; else hands it back, untouched, for the router.
    pub async fn try_serve(&self, req: Request) -> Result<Response, Request> {
        let (mut parts, body) = req.into_parts();
        let Some((version, id)) = direct_read(&parts.method, &parts.uri, &parts.headers) else {
            return Err(Request::from_parts(parts, body));
        };
        let started = std::time::Instant::now();
        let ids = edges::EdgeIds::new(&parts.headers);
        let entry =
            access::Entry::begin_direct(&parts.method, &mut parts.extensions, USER_PRESENCE);
        // The read's future is built where it runs: built outside and moved
        // in, it was copied whole on every request (callgrind showed it).
        let response = edges::in_request(&ids, async {
            AssertUnwindSafe(async {
                let call = Call::authenticated(&parts, &self.state, version, Some(id)).await?;
                presence::read_presence(&self.state, call, None).await
            })
            .catch_unwind()
            .await
            .map_or_else(panic_response, IntoResponse::into_response)
        })
        .await;
        let (mut response, failure) = ids.stamp(response);
        entry.finish(&ids, &response, failure.as_ref(), started);
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
        set_content_length(&mut response);
        Ok(response)
    }
}

/// Sets `Content-Length` when the body's size is known, as axum's router
/// does for every answer.
fn set_content_length(response: &mut Response) {
    let size = http_body::Body::size_hint(response.body()).exact();
    let headers = response.headers_mut();
    if let Some(size) = size.filter(|_| !headers.contains_key(header::CONTENT_LENGTH)) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
}

/// Whether a request with this head is a plain read of a user's presence:
/// `GET` on `/v1.0/users/{id}/presence` (or `/beta/…`) with an id the
/// router would pass on as written, no query, no `Origin`, no body, and
/// within the edge's limits. Its API version and the id if so.
fn direct_read<'a>(
    method: &Method,
    uri: &'a Uri,
    headers: &HeaderMap,
) -> Option<(ApiVersion, &'a str)> {
    let read = user_presence_path(uri.path())?;
    let plain = *method == Method::GET
        && uri.query().is_none()
        && !headers.contains_key(header::ORIGIN)
        && !headers.contains_key(header::CONTENT_LENGTH)
        && !headers.contains_key(header::TRANSFER_ENCODING)
        && edges::over_limits(uri, headers).is_none();
    plain.then_some(read)
}

/// Splits `/{version}/users/{id}/presence` into its version and id, if the
/// router would match it there with both as written: a known version, and
/// an id segment that is not empty and holds no percent-escape.
fn user_presence_path(path: &str) -> Option<(ApiVersion, &str)> {
    let (version, rest) = if let Some(rest) = path.strip_prefix("/v1.0/users/") {
        (ApiVersion::V1, rest)
    } else {
        (ApiVersion::Beta, path.strip_prefix("/beta/users/")?)
    };
    let id = rest.strip_suffix("/presence")?;
    let as_written = !id.is_empty() && !id.bytes().any(|b| b == b'/' || b == b'%');
    as_written.then_some((version, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version `try_serve` would serve `req` in, if any.
    fn qualifies(req: &Request) -> Option<ApiVersion> {
        direct_read(req.method(), req.uri(), req.headers()).map(|(version, _)| version)
    }

    fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    const ID: &str = "5f0c1e5e-8d3b-4f5e-9c41-7a0f2b1d9e33";

    #[test]
    fn a_plain_read_of_a_users_presence_qualifies_in_either_version() {
        for (uri, version) in [
            (format!("/v1.0/users/{ID}/presence"), ApiVersion::V1),
            (format!("/beta/users/{ID}/presence"), ApiVersion::Beta),
            // Not a GUID: the id's 400 is the read's own answer, after the
            // token is checked, as through the router.
            (
                "/v1.0/users/not-a-guid/presence".to_string(),
                ApiVersion::V1,
            ),
        ] {
            let req = request(
                Method::GET,
                &uri,
                &[("authorization", "Bearer x"), ("client-request-id", "c")],
            );
            assert_eq!(qualifies(&req), Some(version), "{uri}");
        }
    }

    #[test]
    fn everything_else_goes_to_the_router() {
        let plain = format!("/v1.0/users/{ID}/presence");
        type Case = (Method, String, Vec<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            (Method::HEAD, plain.clone(), vec![]),
            (Method::POST, plain.clone(), vec![]),
            (Method::GET, format!("{plain}?$select=availability"), vec![]),
            (Method::GET, format!("{plain}?"), vec![]),
            (Method::GET, format!("{plain}/"), vec![]),
            (Method::GET, format!("{plain}/setPresence"), vec![]),
            (Method::GET, format!("/V1.0/users/{ID}/presence"), vec![]),
            (Method::GET, format!("/v1.0/Users/{ID}/presence"), vec![]),
            (Method::GET, format!("/v2.0/users/{ID}/presence"), vec![]),
            (Method::GET, "/v1.0/users//presence".to_string(), vec![]),
            (Method::GET, "/v1.0/users/a/b/presence".to_string(), vec![]),
            (
                Method::GET,
                "/v1.0/users/%35f0c/presence".to_string(),
                vec![],
            ),
            (Method::GET, "/v1.0/me/presence".to_string(), vec![]),
            (
                Method::GET,
                format!("/v1.0/communications/presences/{ID}"),
                vec![],
            ),
            (
                Method::GET,
                plain.clone(),
                vec![("origin", "https://app.example")],
            ),
            (Method::GET, plain.clone(), vec![("content-length", "2")]),
            (
                Method::GET,
                plain.clone(),
                vec![("transfer-encoding", "chunked")],
            ),
        ];
        for (method, uri, headers) in cases {
            let req = request(method.clone(), &uri, &headers);
            assert_eq!(qualifies(&req), None, "{method} {uri} {headers:?}");
        }
    }
}
