//! The busiest requests served without the router (issue #14): a user's
//! presence read and setPresence.
//!
//! `GET /v1.0/users/{id}/presence` is the request a presence server gets
//! most, and `POST …/presence/setPresence` the write it gets most (an app
//! renews each session with it). Through the router each pays for axum's
//! routing (the route lookup, the path parameters percent-decoded onto the
//! request, the matched path) and for every layer of [`super::router`]'s
//! stack, each a boxed service cloned and polled per request: CORS, the
//! edge, panics caught, the body limit, the method router, the extractors.
//! Under load that was about a quarter of a getPresence's CPU
//! (BENCHMARKS.md, "the direct read").
//!
//! So [`Direct::try_serve`] answers the plainest form of those requests
//! itself, with the functions the router's path calls, in the same order:
//! the edge's ids and access line ([`super::edges`], [`super::access`]),
//! [`Call::authenticated`] (the token, throttling, then the id), for a
//! write the body ([`JsonBody`], read only once the caller is known), the
//! handler ([`presence::read_presence`], [`presence::set_presence`]), the
//! edge's stamp (request ids, Graph errors rendered), the CORS layer's
//! `Vary: Origin`, the router's `Content-Length`, and a panic answered as
//! the panic layer answers it.
//!
//! Everything else goes to the router untouched, before any of that work:
//! another method, path or spelling of it, a query string (`$select`), a
//! percent-escape in the id, an `Origin` (CORS), a read with a body, a
//! write whose body has no declared length (the router's body limit is a
//! layer; a declared length within the limit bounds the body as well), a
//! head over the limits, and every request in emulator mode, whose fault
//! rules and request journal are router layers.
//! `tests/api/presence/direct.rs` sends each case both ways and compares
//! the answers.

use std::ops::Range;
use std::panic::AssertUnwindSafe;

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;

use super::extract::{verify_token, ApiVersion, Call, JsonBody};
use super::{access, edges, panic_response, presence, AppState};

/// Serves the busiest requests without the router (see the module doc).
#[derive(Clone)]
pub struct Direct {
    state: AppState,
}

/// A request [`Direct`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// `GET /{version}/users/{id}/presence`.
    Read,
    /// `POST /{version}/users/{id}/presence/setPresence`.
    SetPresence,
    /// The same, by its namespaced name (`microsoft.graph.setPresence`).
    SetPresenceNamespaced,
}

impl Served {
    /// The route template the router matches this request by, which its
    /// access line and metrics name.
    fn template(self) -> &'static str {
        match self {
            Served::Read => "/{version}/users/{id}/presence",
            Served::SetPresence => "/{version}/users/{id}/presence/setPresence",
            Served::SetPresenceNamespaced => {
                "/{version}/users/{id}/presence/microsoft.graph.setPresence"
            }
        }
    }

    fn method(self) -> Method {
        match self {
            Served::Read => Method::GET,
            Served::SetPresence | Served::SetPresenceNamespaced => Method::POST,
        }
    }
}

/// What [`direct_target`] found: the request, its API version, and where
/// the user's id is in the path.
struct Target {
    served: Served,
    version: ApiVersion,
    id: Range<usize>,
}

impl Direct {
    /// The direct path for `state`'s server; `None` in emulator mode, where
    /// the emulator's layer must see every request.
    pub fn new(state: AppState) -> Option<Self> {
        state.emulator.is_none().then_some(Self { state })
    }

    /// Answers `req` as the router would if it is the plain form of a
    /// request served here; else hands it back, untouched, for the router.
    pub async fn try_serve(&self, req: Request) -> Result<Response, Request> {
        let (parts, body) = req.into_parts();
        let Some(target) = direct_target(&parts.method, &parts.uri, &parts.headers) else {
            return Err(Request::from_parts(parts, body));
        };
        let started = std::time::Instant::now();
        let ids = edges::EdgeIds::new(&parts.headers);
        let entry = access::Entry::begin_direct(&parts.method, target.served.template());
        let state = &self.state;
        let noted = &entry;
        // The future is built where it runs: built outside and moved in, it
        // was copied whole on every request (callgrind showed it). For the
        // same reason it is kept small: hyper moves it whole onto the heap,
        // so each byte is copied on every request (7.3 KB once; 1.5 KB with
        // the write boxed, no `async` wrapper around `catch_unwind` and
        // `edges::in_request` no `async fn`).
        let response = edges::in_request(
            &ids,
            AssertUnwindSafe(async move {
                let id = &parts.uri.path()[target.id.clone()];
                // `Call::authenticated` in its two steps, with the caller
                // noted for the access line between them, where the
                // router's path notes it (in `verify_token`).
                let principal = verify_token(&parts, state).await?;
                noted.note_caller(&principal);
                let call = Call::verified(&parts, state, target.version, Some(id), principal)?;
                match target.served {
                    Served::Read => presence::read_presence(state, call, None).await,
                    Served::SetPresence | Served::SetPresenceNamespaced => {
                        // On the heap: inline, the write's larger state
                        // would make every read's future as large.
                        Box::pin(async move {
                            // Read only now, as the router's extractors do:
                            // a caller without a valid token sends no body.
                            let body =
                                JsonBody::from_request(Request::from_parts(parts, body), state)
                                    .await?;
                            presence::set_presence(State(state.clone()), call, body)
                                .await
                                .map(IntoResponse::into_response)
                        })
                        .await
                    }
                }
            })
            .catch_unwind()
            .map(|answer| answer.map_or_else(panic_response, IntoResponse::into_response)),
        )
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

/// Whether a request with this head is the plain form of one served here:
/// the method and path of [`Served`] with an id the router would pass on
/// as written, no query, no `Origin`, within the edge's limits, and for a
/// read no body, for a write a body of declared length (one
/// `Content-Length`, a number). What it is if so.
fn direct_target(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Target> {
    let target = user_presence_path(uri.path())?;
    let body = if target.served.method() == Method::GET {
        !headers.contains_key(header::CONTENT_LENGTH)
    } else {
        edges::declared_length(headers).is_some()
            && headers
                .get_all(header::CONTENT_LENGTH)
                .iter()
                .nth(1)
                .is_none()
    };
    let plain = *method == target.served.method()
        && body
        && !headers.contains_key(header::TRANSFER_ENCODING)
        && uri.query().is_none()
        && !headers.contains_key(header::ORIGIN)
        && edges::over_limits(uri, headers).is_none();
    plain.then_some(target)
}

/// Splits `/{version}/users/{id}/presence[/setPresence]` into what is
/// asked, its version and the id's place, if the router would match it
/// there with both as written: a known version, and an id segment that is
/// not empty and holds no percent-escape.
fn user_presence_path(path: &str) -> Option<Target> {
    let (version, prefix) = if path.starts_with("/v1.0/users/") {
        (ApiVersion::V1, "/v1.0/users/".len())
    } else if path.starts_with("/beta/users/") {
        (ApiVersion::Beta, "/beta/users/".len())
    } else {
        return None;
    };
    let rest = &path[prefix..];
    let end = rest.find('/')?;
    let (id, tail) = rest.split_at(end);
    let served = match tail {
        "/presence" => Served::Read,
        "/presence/setPresence" => Served::SetPresence,
        "/presence/microsoft.graph.setPresence" => Served::SetPresenceNamespaced,
        _ => return None,
    };
    let as_written = !id.is_empty() && !id.contains('%');
    as_written.then_some(Target {
        served,
        version,
        id: prefix..prefix + end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version `try_serve` would serve `req` in, if any.
    fn qualifies(req: &Request) -> Option<ApiVersion> {
        direct_target(req.method(), req.uri(), req.headers()).map(|target| target.version)
    }

    /// What `try_serve` would serve `req` as, and the id it would read.
    fn target(req: &Request) -> Option<(Served, &str)> {
        direct_target(req.method(), req.uri(), req.headers())
            .map(|target| (target.served, &req.uri().path()[target.id]))
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
    fn the_templates_are_the_routers() {
        use super::super::USER_PRESENCE;
        assert_eq!(Served::Read.template(), USER_PRESENCE);
        assert_eq!(
            Served::SetPresence.template(),
            format!("{USER_PRESENCE}/setPresence")
        );
        assert_eq!(
            Served::SetPresenceNamespaced.template(),
            format!("{USER_PRESENCE}/microsoft.graph.setPresence")
        );
        let actions: Vec<&str> = super::super::action_table()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert!(actions.contains(&"setPresence"), "{actions:?}");
    }

    #[test]
    fn a_plain_set_presence_qualifies_by_either_name() {
        let json = [
            ("authorization", "Bearer x"),
            ("content-type", "application/json"),
            ("content-length", "80"),
        ];
        for (uri, served) in [
            (
                format!("/v1.0/users/{ID}/presence/setPresence"),
                Served::SetPresence,
            ),
            (
                format!("/beta/users/{ID}/presence/microsoft.graph.setPresence"),
                Served::SetPresenceNamespaced,
            ),
            (
                "/v1.0/users/x/presence/setPresence".to_string(),
                Served::SetPresence,
            ),
        ] {
            let req = request(Method::POST, &uri, &json);
            let id = uri.split('/').nth(3).unwrap();
            assert_eq!(target(&req), Some((served, id)), "{uri}");
        }
        // Not JSON, or an empty body: the handler's own 415 and 400.
        for headers in [
            vec![("content-length", "0")],
            vec![("content-type", "text/plain"), ("content-length", "2")],
        ] {
            let req = request(
                Method::POST,
                &format!("/v1.0/users/{ID}/presence/setPresence"),
                &headers,
            );
            assert_eq!(target(&req).map(|(s, _)| s), Some(Served::SetPresence));
        }
    }

    #[test]
    fn a_set_presence_without_a_plain_body_goes_to_the_router() {
        let set = format!("/v1.0/users/{ID}/presence/setPresence");
        type Case = (Method, String, Vec<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            // No declared length: chunked, or none at all.
            (Method::POST, set.clone(), vec![]),
            (
                Method::POST,
                set.clone(),
                vec![("transfer-encoding", "chunked")],
            ),
            (
                Method::POST,
                set.clone(),
                vec![("content-length", "2"), ("transfer-encoding", "chunked")],
            ),
            (Method::POST, set.clone(), vec![("content-length", "two")]),
            (
                Method::POST,
                set.clone(),
                vec![("content-length", "2"), ("content-length", "2")],
            ),
            // Over the body limit: the edge's 413, through the router.
            (
                Method::POST,
                set.clone(),
                vec![("content-length", "9999999")],
            ),
            (Method::GET, set.clone(), vec![]),
            (Method::PUT, set.clone(), vec![("content-length", "2")]),
            (
                Method::POST,
                format!("{set}?x=1"),
                vec![("content-length", "2")],
            ),
            (
                Method::POST,
                set.clone(),
                vec![("content-length", "2"), ("origin", "https://app.example")],
            ),
            (
                Method::POST,
                format!("/v1.0/users/{ID}/presence/clearPresence"),
                vec![("content-length", "2")],
            ),
            (
                Method::POST,
                format!("/v1.0/users/{ID}/presence/setpresence"),
                vec![("content-length", "2")],
            ),
            (
                Method::POST,
                format!("/v1.0/users/{ID}/presence/setPresence/"),
                vec![("content-length", "2")],
            ),
            (
                Method::POST,
                "/v1.0/users/%35f0c/presence/setPresence".to_string(),
                vec![("content-length", "2")],
            ),
            (
                Method::POST,
                "/v1.0/me/presence/setPresence".to_string(),
                vec![("content-length", "2")],
            ),
        ];
        for (method, uri, headers) in cases {
            let req = request(method.clone(), &uri, &headers);
            assert_eq!(target(&req), None, "{method} {uri} {headers:?}");
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
