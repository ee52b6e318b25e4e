//! Graph JSON batching: `POST /{version}/$batch` (SPEC §3a).
//!
//! The batch is checked as a whole ([`crate::domain::Batch`]); then every
//! request in it is sent through the same router as a request of its own,
//! with the batch's bearer token, so authorisation, throttling, validation,
//! the write path (durable before it answers, same notifications and
//! events) and error bodies are exactly those of the request sent alone.
//! Requests run after the requests they depend on; one whose dependency
//! failed is not run and answers 424. Independent requests run
//! concurrently, at most [`MAX_BATCH_REQUESTS`] at once (a whole batch), so
//! the store's group commit can take a batch's writes together.

use std::collections::{BTreeMap, VecDeque};

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use axum::{Json, Router};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use serde_json::value::RawValue;
use tower::ServiceExt;
use tracing::instrument;
use uuid::Uuid;

use super::error::GraphError;
use super::extract::{verify_token, versioned_path, ApiVersion, JsonBytes};
use super::AppState;
use crate::clock::wall_now;
use crate::domain::{Batch, BatchRequest, MAX_BATCH_REQUESTS};

/// The largest answer of one batched request that is passed on, in bytes
/// (a 650-id getPresencesByUserId answer is well under it).
const MAX_INNER_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Request headers of the batch itself that every batched request carries:
/// the bearer token, and what [`super::extract::Origin`] may read to name
/// this server in `@odata.context`. They replace any given per request.
const INHERITED: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::HOST,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
];

/// Request headers a batched request may not set: the transport's own.
const TRANSPORT: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
];

/// Response headers passed on in a batched answer's `headers`, with the
/// spelling Graph uses (the JS client looks up `Content-Type` exactly).
const PASSED_ON: [(HeaderName, &str); 5] = [
    (header::CONTENT_TYPE, "Content-Type"),
    (header::RETRY_AFTER, "Retry-After"),
    (header::WWW_AUTHENTICATE, "WWW-Authenticate"),
    (header::LOCATION, "Location"),
    (header::CACHE_CONTROL, "Cache-Control"),
];

/// The body of `POST /$batch`: the requests to run. (Documents the wire
/// shape; the domain's `Batch` parses it.)
#[derive(Debug, utoipa::ToSchema)]
pub struct BatchRequestBody {
    /// 1 to 20 requests.
    #[schema(min_items = 1, max_items = 20)]
    pub requests: Vec<BatchRequestItem>,
}

/// One request of a batch.
#[derive(Debug, utoipa::ToSchema)]
pub struct BatchRequestItem {
    /// Unique in the batch (ignoring case); the answer carries it.
    pub id: String,
    /// GET, POST, PUT, PATCH or DELETE (case is ignored).
    #[schema(pattern = "^(GET|POST|PUT|PATCH|DELETE)$")]
    pub method: String,
    /// Relative to the version, e.g. `/users/{id}/presence/setPresence`.
    pub url: String,
    /// Request headers; `Content-Type` is required with a body.
    pub headers: Option<BTreeMap<String, String>>,
    /// A JSON body, or a base64 string for other bodies.
    #[schema(required = false)]
    pub body: Option<serde_json::Value>,
    /// Ids of requests of this batch that must succeed before this one runs.
    #[serde(rename = "dependsOn")]
    #[schema(rename = "dependsOn")]
    pub depends_on: Option<Vec<String>>,
}

/// The answer of `POST /$batch`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponseBody {
    /// One answer per request, in the order of the requests.
    pub responses: Vec<BatchResponseItem>,
}

/// The answer of one batched request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponseItem {
    /// The request's id.
    pub id: String,
    /// Its HTTP status (`424` when a dependency failed).
    pub status: u16,
    /// Its response headers (`Content-Type`, `Retry-After`, …).
    pub headers: BTreeMap<String, String>,
    /// Its body: JSON as JSON (a Graph error for failures); absent when
    /// the request answered without a body.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>, required = false)]
    pub body: Option<Box<RawValue>>,
}

/// The authenticated caller of a batch: the API version and the headers
/// each batched request inherits. The token is verified here (401 for the
/// whole batch) but not throttled: each batched request is.
#[derive(Debug)]
pub struct BatchCaller {
    version: ApiVersion,
    tenant: Uuid,
    inherited: Vec<(HeaderName, HeaderValue)>,
}

impl FromRequestParts<AppState> for BatchCaller {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GraphError> {
        let (version, _) = versioned_path(parts, state).await?;
        let principal = verify_token(parts, state).await?;
        let inherited = INHERITED
            .iter()
            .filter_map(|name| Some((name.clone(), parts.headers.get(name)?.clone())))
            .collect();
        Ok(BatchCaller {
            version,
            tenant: principal.tenant,
            inherited,
        })
    }
}

/// The `$batch` route, dispatching batched requests through `dispatch`
/// (the router without the batch route, with every layer).
pub(crate) fn route(dispatch: Router) -> MethodRouter<AppState> {
    post(move |caller: BatchCaller, body: JsonBytes| {
        let dispatch = dispatch.clone();
        async move { batch(caller, body, dispatch).await }
    })
}

/// JSON batching: `POST /{version}/$batch`.
#[instrument(level = "debug", skip_all, fields(tenant, requests))]
async fn batch(
    caller: BatchCaller,
    body: JsonBytes,
    dispatch: Router,
) -> Result<Json<BatchResponseBody>, GraphError> {
    tracing::Span::current().record("tenant", tracing::field::display(caller.tenant));
    let batch = Batch::try_from(body.bytes())?;
    batch.check_version(caller.version.as_str())?;
    let requests = batch.into_requests();
    tracing::Span::current().record("requests", requests.len());
    let answers = run(&requests, &caller, &dispatch).await;
    let responses = requests
        .iter()
        .zip(answers)
        .map(|(request, answer)| {
            answer.unwrap_or_else(|| {
                tracing::error!(id = %request.id, "a batched request was never settled");
                error_item(&request.id, &GraphError::internal(), None)
            })
        })
        .collect();
    Ok(Json(BatchResponseBody { responses }))
}

/// Runs `requests` in dependency order, independent ones concurrently, and
/// returns their answers by index. A request whose dependency answered
/// anything but 2xx is not run and answers 424 (which its own dependents
/// then see as a failure too).
async fn run(
    requests: &[BatchRequest],
    caller: &BatchCaller,
    dispatch: &Router,
) -> Vec<Option<BatchResponseItem>> {
    let n = requests.len();
    let mut waiting: Vec<usize> = requests.iter().map(|r| r.depends_on.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, request) in requests.iter().enumerate() {
        for &dependency in &request.depends_on {
            dependents[dependency].push(i);
        }
    }
    let mut answers: Vec<Option<BatchResponseItem>> = (0..n).map(|_| None).collect();
    let mut settled = vec![false; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < MAX_BATCH_REQUESTS {
            let Some(i) = ready.pop_front() else { break };
            running.push(async move { (i, send(&requests[i], caller, dispatch).await) });
        }
        let Some((i, answer)) = running.next().await else {
            break;
        };
        let mut done = vec![(i, answer)];
        while let Some((i, answer)) = done.pop() {
            settled[i] = true;
            let failed = !(200..300).contains(&answer.status);
            for &j in &dependents[i] {
                if settled[j] {
                    continue;
                }
                if failed {
                    settled[j] = true;
                    let err = GraphError::new(
                        StatusCode::FAILED_DEPENDENCY,
                        "failedDependency",
                        format!(
                            "Request '{}' was not run: it depends on request '{}', which failed with status {}.",
                            requests[j].id, requests[i].id, answer.status
                        ),
                    );
                    done.push((j, error_item(&requests[j].id, &err, Some(&requests[j]))));
                } else {
                    waiting[j] -= 1;
                    if waiting[j] == 0 {
                        ready.push_back(j);
                    }
                }
            }
            answers[i] = Some(answer);
        }
    }
    answers
}

/// Sends one batched request through the router and reads its answer.
async fn send(
    request: &BatchRequest,
    caller: &BatchCaller,
    dispatch: &Router,
) -> BatchResponseItem {
    let uri = format!("/{}{}", caller.version.as_str(), request.url);
    let mut builder = axum::http::Request::builder()
        .method(request.method.as_str())
        .uri(uri);
    for (name, value) in &request.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue; // the domain only lets valid names and values through
        };
        if !INHERITED.contains(&name) && !TRANSPORT.contains(&name) {
            builder = builder.header(name, value);
        }
    }
    for (name, value) in &caller.inherited {
        builder = builder.header(name, value);
    }
    let body = request.body.clone().map_or_else(Body::empty, Body::from);
    let inner = match builder.body(body) {
        Ok(inner) => inner,
        Err(_) => {
            let err = GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "Request '{}' could not be formed from its url and headers.",
                    request.id
                ),
            );
            return error_item(&request.id, &err, Some(request));
        }
    };
    let response = dispatch
        .clone()
        .oneshot(Request::from(inner))
        .await
        .unwrap_or_else(|never| match never {});
    item(&request.id, response).await
}

/// A batched answer from a response of the router.
async fn item(id: &str, response: Response) -> BatchResponseItem {
    let (parts, body) = response.into_parts();
    let mut headers = BTreeMap::new();
    for (name, spelling) in &PASSED_ON {
        if let Some(value) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(spelling.to_string(), value.to_string());
        }
    }
    let bytes = match axum::body::to_bytes(body, MAX_INNER_RESPONSE_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            tracing::error!(%id, "a batched answer could not be read");
            return error_item(id, &GraphError::internal(), None);
        }
    };
    let is_json = headers.get("Content-Type").is_some_and(|t| {
        let mime = t.split(';').next().unwrap_or("").trim();
        mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
    });
    // JSON bodies are passed on as they are (no re-serialising, key order
    // kept); anything else as a base64 string.
    let body = if bytes.is_empty() {
        None
    } else {
        let json = is_json
            .then(|| String::from_utf8(bytes.to_vec()).ok())
            .flatten()
            .and_then(|text| RawValue::from_string(text).ok());
        json.or_else(|| {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            serde_json::value::to_raw_value(&encoded).ok()
        })
    };
    BatchResponseItem {
        id: id.to_string(),
        status: parts.status.as_u16(),
        headers,
        body,
    }
}

/// A batched answer made here rather than by the router (424, or a request
/// that could not be formed), rendered as Graph's error with fresh ids; the
/// request's own `client-request-id` is echoed, as the router would.
fn error_item(id: &str, err: &GraphError, request: Option<&BatchRequest>) -> BatchResponseItem {
    let request_id = Uuid::new_v4().to_string();
    let client_request_id = request
        .and_then(|r| {
            r.headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("client-request-id"))
        })
        .map_or_else(|| request_id.clone(), |(_, value)| value.clone());
    let mut headers = BTreeMap::new();
    headers.insert("Content-Type".to_string(), "application/json".to_string());
    let body = err.body(wall_now(), &request_id, &client_request_id);
    BatchResponseItem {
        id: id.to_string(),
        status: err.status.as_u16(),
        headers,
        body: serde_json::value::to_raw_value(&body).ok(),
    }
}
