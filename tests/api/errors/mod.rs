//! Bad input of every kind (SPEC §4, §5, §6): each is a clear Graph error —
//! status, code and a message that names the problem — never a 5xx, and never
//! a change to stored data.
//!
//! Split by theme: `validation` (the table of bad requests, and nothing
//! stored changes), `limits` (the edges that are still accepted, and a
//! chunked body over the limit), `auth` (bad tokens, leeway, personal
//! accounts) and `request_ids` (the ids on every response and error).

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{reply, Reply, TestServer};

mod auth;
mod limits;
mod request_ids;
mod validation;

/// What a table row sends as its body.
enum Body {
    /// No body at all.
    None,
    /// JSON text sent with `Content-Type: application/json`.
    Json(Value),
    /// Raw bytes with the given content type (none when `None`).
    Raw(Vec<u8>, Option<&'static str>),
}

/// Sends `method path` with an optional `Authorization` header value, extra
/// headers and a body, and reads the reply.
async fn send_with(
    server: &TestServer,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
    body: Body,
) -> Reply {
    let mut req = server
        .client
        .request(method, format!("{}{}", server.url, path));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req = match body {
        Body::None => req,
        Body::Json(value) => req
            .header("content-type", "application/json")
            .body(value.to_string()),
        Body::Raw(bytes, Some(content_type)) => {
            req.header("content-type", content_type).body(bytes)
        }
        Body::Raw(bytes, None) => req.body(bytes),
    };
    reply(req.send().await.unwrap()).await
}
