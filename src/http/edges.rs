//! The edge of every request (SPEC §6): refuses heads and declared bodies
//! over the limits, gives the response `request-id` and `client-request-id`
//! and renders a pending Graph error with them. The request runs in a
//! `request` span carrying its request id, or in the lighter request scope
//! that stands for it ([`crate::logs::request`]), and ends with its one
//! access line ([`access`]).

use std::future::Future;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tracing::Instrument;
use uuid::Uuid;

use super::error::{GraphError, PendingError};
use super::{
    access, RequestIds, MAX_BODY_BYTES, MAX_CLIENT_REQUEST_ID, MAX_HEADER_BYTES, MAX_URI_BYTES,
};
use crate::clock::wall_now;

/// The edge middleware (see the module doc), for
/// `axum::middleware::from_fn_with_state`.
///
/// With `expose_ids` (the emulator's journal wants them) the ids are also
/// set on the request as [`RequestIds`] for the layers inside; otherwise
/// requests pay nothing for it.
pub(super) async fn graph_edges(
    State(expose_ids): State<bool>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let ids = EdgeIds::new(req.headers());
    if expose_ids {
        req.extensions_mut().insert(ids.exposed());
    }
    let entry = access::Entry::begin(&mut req);
    let response = match over_limits(req.uri(), req.headers()) {
        Some(refused) => refused,
        None => in_request(&ids, next.run(req)).await,
    };
    let (response, failure) = ids.stamp(response);
    entry.finish(&ids, &response, failure.as_ref(), started);
    response
}

/// Runs `request` as the request `ids` names: in its `request` span, or in
/// the lighter request scope that writes the same lines (see
/// `logs::request`). Not an `async fn`: one would hold `request` three
/// times over (its argument and both wrappers), and a request's future is
/// moved whole, so each byte costs on every request (issue #14).
pub(super) fn in_request<F>(ids: &EdgeIds, request: F) -> impl Future<Output = Response>
where
    F: Future<Output = Response>,
{
    if crate::logs::request::scopes_in_use() {
        Either::Left(crate::logs::request::run_in_scope(ids.uuid, request))
    } else {
        let span = tracing::info_span!("request", request_id = ids.request_id());
        Either::Right(request.instrument(span))
    }
}

/// A request's ids. The request id is formatted on the stack and becomes a
/// header value once; the client's id is its own header value, shared.
pub(super) struct EdgeIds {
    /// The request id, as generated.
    uuid: Uuid,
    /// The same, as a header value.
    request_id: HeaderValue,
    /// `None`: the client sent no usable id, so it is the request id.
    client_request_id: Option<HeaderValue>,
}

impl EdgeIds {
    /// A new request id, and the client's `client-request-id` (from the
    /// request's `headers`) if usable.
    pub(super) fn new(headers: &HeaderMap) -> Self {
        let uuid = Uuid::new_v4();
        let mut buffer = Uuid::encode_buffer();
        let text = uuid.hyphenated().encode_lower(&mut buffer);
        let request_id = HeaderValue::from_str(text)
            .unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-0000-0000-000000000000"));
        let client_request_id = headers
            .get(&CLIENT_REQUEST_ID)
            .filter(|v| !v.is_empty() && v.len() <= MAX_CLIENT_REQUEST_ID && v.to_str().is_ok())
            .cloned();
        Self {
            uuid,
            request_id,
            client_request_id,
        }
    }

    /// The request id as text (formatted ASCII: never empty in practice).
    pub(super) fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// The client's request id as text, or the request id when it sent none.
    pub(super) fn client_request_id(&self) -> &str {
        self.client_request_id
            .as_ref()
            .map_or_else(|| self.request_id(), |v| v.to_str().unwrap_or_default())
    }

    /// The ids as the layers inside may read them.
    fn exposed(&self) -> RequestIds {
        let text = |v: &HeaderValue| v.to_str().unwrap_or_default().to_string();
        let request_id = text(&self.request_id);
        RequestIds {
            client_request_id: self
                .client_request_id
                .as_ref()
                .map_or_else(|| request_id.clone(), text),
            request_id,
        }
    }

    /// Renders a pending Graph error with the ids and sets both id headers.
    /// A server error is handed back, for the access line to log its cause
    /// once.
    pub(super) fn stamp(&self, mut response: Response) -> (Response, Option<GraphError>) {
        let client = self
            .client_request_id
            .clone()
            .unwrap_or_else(|| self.request_id.clone());
        let mut failure = None;
        if let Some(PendingError(err)) = response.extensions_mut().remove::<PendingError>() {
            // Both are visible ASCII: checked or formatted above.
            let request_id = self.request_id.to_str().unwrap_or_default();
            let client_request_id = client.to_str().unwrap_or_default();
            let headers = std::mem::take(response.headers_mut());
            response = err.render(wall_now(), request_id, client_request_id);
            for (name, value) in headers.iter() {
                if name != axum::http::header::CONTENT_LENGTH
                    && name != axum::http::header::CONTENT_TYPE
                {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
            }
            if err.status.is_server_error() {
                failure = Some(err);
            }
        }
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID.clone(), self.request_id.clone());
        headers.insert(CLIENT_REQUEST_ID.clone(), client);
        (response, failure)
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
static CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

/// Refuses, with a Graph error, a head (`uri`, `headers`) over our limits (hyper's own bare
/// 431 only applies far beyond them) or a body whose declared length is
/// over the limit, before it is read, whether or not the handler would
/// read it.
pub(super) fn over_limits(uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let uri_length = uri_length(uri);
    if uri_length > MAX_URI_BYTES {
        return Some(
            GraphError::new(
                StatusCode::URI_TOO_LONG,
                "requestUriTooLong",
                format!(
                    "The request URI is {uri_length} bytes long; the limit is {MAX_URI_BYTES}."
                ),
            )
            .into_response(),
        );
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(
            GraphError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "requestHeadersTooLarge",
                format!(
                    "The request headers are {header_bytes} bytes long; the limit is {MAX_HEADER_BYTES}."
                ),
            )
            .into_response(),
        );
    }
    if declared_length(headers).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Some(
            GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "requestTooLarge",
                format!("The request body is larger than the limit of {MAX_BODY_BYTES} bytes."),
            )
            .into_response(),
        );
    }
    None
}

/// The body's length as its (first) `Content-Length` declares it, if that
/// is a number.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The length of `uri` as written (`Uri`'s `Display`), without writing it.
fn uri_length(uri: &Uri) -> usize {
    let prefix = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => scheme.len() + 3 + authority.as_str().len(),
        (None, Some(authority)) => authority.as_str().len(),
        _ => 0,
    };
    let rest = match uri.path_and_query() {
        Some(pq) => pq.as_str().len(),
        // An authority-form URI (CONNECT) is written without a path.
        None if prefix > 0 => 0,
        None => 1,
    };
    prefix + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_length_is_the_length_of_the_written_uri() {
        for text in [
            "/v1.0/me/presence",
            "/v1.0/users?$filter=x%20eq%201",
            "/",
            "*",
            "http://example.com/a/b?c=d",
            "https://user@example.com:8443/",
            "example.com:443",
        ] {
            let uri: axum::http::Uri = text.parse().unwrap();
            assert_eq!(uri_length(&uri), uri.to_string().len(), "{text}");
        }
    }
}
