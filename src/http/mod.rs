//! The HTTP front end: Graph's presence paths under `/v1.0` and `/beta`,
//! presenced's own under `/_presenced`, Graph-style errors and headers on
//! every response (SPEC §3, §6, §8).
//!
//! Handlers are thin: they parse, authorise, call `service` (writes and
//! reads) or `notify` (subscriptions), and render.

pub mod access;
pub mod admin;
pub mod batch;
mod cors;
pub mod dashboard;
pub mod direct;
mod edges;
pub mod emulator;
pub mod error;
pub mod events;
pub mod extract;
pub mod faults;
pub mod journal;
pub mod model;
pub mod openapi;
pub mod presence;
mod presence_json;
pub mod render;
pub mod serve;
pub mod state;
pub mod subscriptions;
pub mod throttle;
pub mod tls;
pub mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::TokenVerifier;
use crate::clock::Clock;
use crate::notify::{Bus, Notifier};
use crate::service::PresenceService;
use crate::store::Store;
use error::GraphError;

/// The largest request body accepted, in bytes (SPEC §6: 413 beyond). A full
/// 650-id getPresencesByUserId body is about 26 KB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest request URI accepted, in bytes (414 `requestUriTooLong`
/// beyond). A 650-id `$filter` in a query string fits.
pub const MAX_URI_BYTES: usize = 32 * 1024;

/// The most request-header bytes accepted (431 `requestHeadersTooLarge`
/// beyond), counted as name, value and separators.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Longest `client-request-id` echoed back; longer ones are replaced.
const MAX_CLIENT_REQUEST_ID: usize = 128;

/// How long a client may take to upload a request body, by default; a slow or
/// stalled upload is answered 408 `requestTimeout`. Only the upload is timed:
/// once a write is queued it is never abandoned half-way.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What every handler shares. Cheap to clone: one reference count (axum
/// clones the state for every extractor of every request, and cloning
/// each part on its own showed in profiles).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `parts` with every handler.
    pub fn new(parts: Shared) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// The store (readiness, the emulator clock's persistence).
    pub store: Arc<dyn Store>,
    /// The one write path, and reads.
    pub service: PresenceService,
    /// Subscriptions, the scheduler pass, deliveries.
    pub notifier: Arc<Notifier>,
    /// Wake-ups for event-stream readers.
    pub bus: Arc<Bus>,
    /// Cancelled when the server starts shutting down (ends event streams).
    pub stopping: tokio_util::sync::CancellationToken,
    /// The presence clock.
    pub clock: Arc<dyn Clock>,
    /// Bearer-token verification.
    pub verifier: Arc<TokenVerifier>,
    /// How long a body upload may take ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: std::time::Duration,
    /// Serialises emulator clock moves so each is saved before it shows.
    pub clock_moves: Arc<tokio::sync::Mutex<()>>,
    /// Where this server says it lives (`@odata.context`).
    pub origin: Arc<extract::Origin>,
    /// Graph's throttling, when `--rate-limit` is set.
    pub throttle: Option<Arc<throttle::Throttle>>,
    /// Fault rules and the request journal, in emulator mode only.
    pub emulator: Option<Arc<emulator::EmulatorTools>>,
    /// Whether this router serves `/_presenced/metrics` (not when
    /// `--metrics-listen` serves it on a listener of its own).
    pub metrics_here: bool,
}

/// A request's ids (SPEC §6), set on it by the outermost middleware for
/// the layers inside (the emulator's journal).
#[derive(Debug, Clone, Default)]
pub struct RequestIds {
    /// The `request-id` answered.
    pub request_id: String,
    /// The `client-request-id` answered.
    pub client_request_id: String,
}

/// The Graph actions on a presence, by name, with their handlers. The
/// router mounts each under every presence path; the OpenAPI document
/// describes the same list ([`openapi`]).
pub(crate) fn action_table() -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    vec![
        ("setPresence", post(presence::set_presence)),
        ("clearPresence", post(presence::clear_presence)),
        ("setUserPreferredPresence", post(presence::set_preferred)),
        (
            "clearUserPreferredPresence",
            post(presence::clear_preferred),
        ),
        ("setStatusMessage", post(presence::set_status_message)),
        ("setManualLocation", post(presence::set_manual_location)),
        (
            "setAutomaticLocation",
            post(presence::set_automatic_location),
        ),
        ("clearLocation", post(presence::clear_location)),
        (
            "clearAutomaticLocation",
            post(presence::clear_automatic_location),
        ),
    ]
}

/// The paths of a presence: each reads it (`GET`), and every Graph action
/// is reachable under each.
const PRESENCE_PATHS: [&str; 3] = [
    "/{version}/me/presence",
    USER_PRESENCE,
    "/{version}/communications/presences/{id}",
];

/// The path of a user's presence: the busiest read, and under it the
/// busiest write, setPresence (see [`direct`]).
const USER_PRESENCE: &str = "/{version}/users/{id}/presence";

/// The presence paths: the read, and every Graph action under each, by its
/// short name and by its namespaced name (`microsoft.graph.setPresence`),
/// which some SDKs (Go, PowerShell) use. Routed by full path rather than
/// nested under each presence path: a nested router rebuilds the URI
/// without its prefix and adds a routing level to every action request.
fn presences(mut router: Router<AppState>) -> Router<AppState> {
    for path in PRESENCE_PATHS {
        router = router.route(path, get(presence::get_presence));
    }
    for (name, handler) in action_table() {
        for path in PRESENCE_PATHS {
            router = router
                .route(&format!("{path}/{name}"), handler.clone())
                .route(&format!("{path}/microsoft.graph.{name}"), handler.clone());
        }
    }
    router
}

/// Builds the whole router: every route of [`routes`], and `$batch`, whose
/// requests go through those routes with every layer, as if sent alone.
pub fn router(state: AppState) -> Router {
    let dispatch = edges(finish(routes(), state.clone()), &state);
    let batch = batch::route(dispatch);
    let all = routes()
        .route("/{version}/$batch", batch.clone())
        .route("/{version}/%24batch", batch);
    edges(finish(all, state.clone()), &state)
}

/// In emulator mode the emulator's layer (fault rules, the request
/// journal: batched requests meet them too, one by one), then the Graph
/// edges. Outside emulator mode requests pay nothing for the emulator.
fn edges(routes: Router, state: &AppState) -> Router {
    let emulated = state.emulator.is_some();
    let routes = if emulated {
        routes.layer(middleware::from_fn_with_state(
            state.clone(),
            emulator::edge,
        ))
    } else {
        routes
    };
    with_graph_edges(routes, emulated)
}

/// The fallbacks (Graph's 404 and 405) and the state.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every route but `$batch`.
fn routes() -> Router<AppState> {
    let graph = presences(Router::new())
        .route(
            "/{version}/communications/getPresencesByUserId",
            post(presence::get_many),
        )
        .route(
            "/{version}/communications/microsoft.graph.getPresencesByUserId",
            post(presence::get_many),
        )
        .route(
            "/{version}/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/{version}/subscriptions/{id}",
            get(subscriptions::get)
                .patch(subscriptions::update)
                .delete(subscriptions::delete),
        )
        .route(
            "/{version}/subscriptions/{id}/reauthorize",
            post(subscriptions::reauthorize),
        );
    let own = Router::new()
        .route("/", get(dashboard::index))
        .route("/_presenced/ui/{file}", get(dashboard::asset))
        .route("/_presenced/healthz", get(admin::healthz))
        .route("/_presenced/readyz", get(admin::readyz))
        .route("/_presenced/metrics", get(admin::metrics))
        .route(
            "/_presenced/.well-known/jwks.json",
            get(subscriptions::jwks),
        )
        .route("/_presenced/events", get(events::stream))
        .route("/_presenced/openapi.json", get(openapi::serve))
        .route(
            "/_presenced/clock",
            get(admin::get_clock).post(admin::move_clock),
        )
        .route(
            "/_presenced/state",
            get(state::get_state).put(state::put_state),
        )
        .route("/_presenced/reset", post(state::reset))
        .route(
            "/_presenced/faults",
            get(faults::list)
                .post(faults::create)
                .delete(faults::delete_all),
        )
        .route("/_presenced/faults/{id}", delete(faults::delete))
        .route("/_presenced/requests", get(journal::list))
        .route(
            "/_presenced/users/{id}/clientSessions/{name}",
            put(admin::put_client_session).delete(admin::delete_client_session),
        )
        .route(
            "/_presenced/users/{id}/presence",
            get(admin::explain_presence),
        )
        .route("/_presenced/users", get(users::list));
    graph.merge(own)
}

/// The router of the `--metrics-listen` listener: `GET /_presenced/metrics`
/// only (Prometheus text, no token), 404 elsewhere.
pub fn metrics_router(store: Arc<dyn Store>) -> Router {
    Router::new().route(
        "/_presenced/metrics",
        get(move || async move {
            crate::metrics::refresh_counts(store.as_ref()).await;
            admin::prometheus_text()
        }),
    )
}

/// The layers every response passes through, outermost first: CORS, the
/// Graph edges (request ids, limits, error rendering, the access line),
/// panics caught as 500 `generalException`, the body limit.
///
/// They are one `tower` stack given to one `Router::layer` call: each
/// `Router::layer` call wraps every route in another boxed service, which
/// a request then clones and polls through, so four calls cost four boxed
/// levels per request where one stack costs one.
fn with_graph_edges(routes: Router, expose_ids: bool) -> Router {
    let stack = tower::ServiceBuilder::new()
        .layer(cors::BrowserCorsLayer::new())
        .layer(middleware::from_fn_with_state(
            expose_ids,
            edges::graph_edges,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    routes.layer(stack)
}

/// A handler's panic, as a Graph 500 `generalException` whose cause (the
/// panic's message) the access line logs.
fn panic_response(panic: Box<dyn std::any::Any + Send>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    GraphError::internal()
        .with_cause(format_args!("a handler panicked: {what}"))
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> GraphError {
    GraphError::not_found(format!(
        "Resource not found for the segment '{}'.",
        uri.path()
    ))
}

async fn method_not_allowed(method: axum::http::Method) -> GraphError {
    GraphError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "methodNotAllowed",
        format!("The HTTP method '{method}' is not allowed on this resource."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_graph_500_with_request_ids() {
        let routes = Router::new().route(
            "/boom",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("a bug");
                }
                "unreachable"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, with_graph_edges(routes, false)).await });
        let resp = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
        assert_eq!(resp.status(), 500);
        let request_id = resp.headers()["request-id"].to_str().unwrap().to_string();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "generalException");
        assert_eq!(
            body["error"]["message"],
            "An internal server error occurred."
        );
        assert_eq!(
            body["error"]["innerError"]["request-id"],
            request_id.as_str()
        );
    }

    #[tokio::test]
    async fn a_stalled_body_upload_is_cut_off_with_a_graph_408() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let routes = Router::new()
            .route(
                "/echo",
                post(
                    |axum::extract::State(timeout): axum::extract::State<std::time::Duration>,
                     req: axum::extract::Request| async move {
                        let body = extract::read_body(req, timeout).await?;
                        Ok::<_, GraphError>(body.len().to_string())
                    },
                ),
            )
            .with_state(std::time::Duration::from_millis(200));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, with_graph_edges(routes, false)).await });
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Promise 100 bytes, send 5, then stall.
        conn.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nhello")
            .await
            .unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut answer))
            .await
            .expect("answered before the test's own deadline")
            .unwrap();
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("requestTimeout"), "{text}");
    }

    #[tokio::test]
    async fn cors_preflights_are_answered_for_any_origin() {
        let routes = Router::new().route("/x", post(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, with_graph_edges(routes, false)).await });
        let resp = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("http://{addr}/x"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        // Named, not `*`: a wildcard never covers `Authorization`.
        assert_eq!(
            resp.headers()["access-control-allow-headers"],
            "authorization,content-type"
        );
    }
}
