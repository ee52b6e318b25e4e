//! The emulator's request edge: fault injection ([`super::faults`]) and
//! the request journal ([`super::journal`]). Mounted only in emulator mode
//! (`--manual-clock`), so production requests never pass through it.
//!
//! It runs inside the Graph edges (body limits, request ids, error
//! rendering) and before routing reaches any handler: a faulted request is
//! answered here and changes nothing. Requests to presenced's own paths
//! under `/_presenced/`, and to the dashboard page at `/`, pass through
//! untouched and unjournaled.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::GraphError;
use super::faults::Faults;
use super::journal::{redacted_path, Journal, JournalEntry};
use super::{AppState, RequestIds, MAX_BODY_BYTES};
use crate::clock::wall_now;

/// The emulator's tools, present in emulator mode only.
#[derive(Debug)]
pub struct EmulatorTools {
    /// Fault rules.
    pub faults: Faults,
    /// Recent Graph requests.
    pub journal: Journal,
}

/// Reads a whole body within the upload timeout and the body limit.
async fn buffer(body: Body, timeout: std::time::Duration) -> Result<axum::body::Bytes, GraphError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(GraphError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "requestTooLarge",
            format!("The request body is larger than the limit of {MAX_BODY_BYTES} bytes."),
        )),
        Err(_) => Err(GraphError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "requestTimeout",
            format!(
                "The request body was not received within {} seconds.",
                timeout.as_secs_f64()
            ),
        )),
    }
}

/// The middleware: decides faults, runs the request, journals it.
pub(crate) async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(tools) = state.emulator.clone() else {
        return next.run(req).await;
    };
    // presenced's own paths and the dashboard page are not Graph's: never
    // faulted, never journaled.
    let path = req.uri().path();
    if path.starts_with("/_presenced/") || path == "/" {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_string();
    let path = redacted_path(req.uri());
    let ids = req.extensions().get::<RequestIds>().cloned();
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Who is calling, for `appId` rules and the journal: the token is
    // verified as the handler would, and only its tenant and app kept.
    let principal = match crate::auth::bearer_token(header) {
        Ok(token) => state.verifier.verify(token, wall_now()).await.ok(),
        Err(_) => None,
    };
    let (parts, body) = req.into_parts();
    let (response, body_json, injected) = match buffer(body, state.request_timeout).await {
        Err(e) => (e.into_response(), None, None),
        Ok(bytes) => {
            let body_json = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .filter(serde_json::Value::is_object);
            let injected = tools.faults.decide(
                &method,
                parts.uri.path(),
                principal.as_ref().map(|p| p.app_id.as_str()),
            );
            let response = match &injected {
                Some(fault) => {
                    if fault.delay_ms > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(fault.delay_ms)).await;
                    }
                    fault.error().into_response()
                }
                None => {
                    next.run(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
            };
            (response, body_json, injected)
        }
    };
    let (request_id, client_request_id) = ids
        .map(|i| (i.request_id, i.client_request_id))
        .unwrap_or_default();
    tools.journal.record(JournalEntry {
        date_time: crate::notify::utc_timestamp(state.clock.now()),
        method,
        path,
        status: response.status().as_u16(),
        tenant_id: principal.as_ref().map(|p| p.tenant),
        app_id: principal.map(|p| p.app_id.clone()),
        request_id,
        client_request_id,
        body: body_json,
        faulted: injected.is_some(),
        fault_rule_id: injected.map(|i| i.rule),
    });
    response
}
