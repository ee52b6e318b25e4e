//! The access log: one line per request, written by the edge middleware
//! once the response is known (method, route template, status, latency,
//! both request ids, and the caller's tenant and app id when it was
//! authenticated). Never a token, never a body.
//!
//! The line goes to the `presenced::access` target at `info`; a server
//! error's line is at `error` and carries its cause, so each 5xx is logged
//! once. When `info` is off for that target a request pays one filter check
//! and formats nothing. The binary's text format writes the info line
//! without a tracing event when it can ([`crate::logs::text::write_access`]).

use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request};
use axum::http::{Extensions, Method, Uri};
use axum::response::Response;

use super::edges::EdgeIds;
use super::error::GraphError;
use crate::auth::Principal;

/// The tracing target of access lines (filter it with
/// `RUST_LOG=presenced::access=off`, for instance).
pub const TARGET: &str = "presenced::access";

/// Who called: set by authentication ([`note_caller`]) on a slot the edge
/// put on the request, read back by the edge for the access line.
#[derive(Debug, Default)]
pub struct CallerSlot(OnceLock<Arc<Principal>>);

impl CallerSlot {
    /// Records `principal`. A second authentication of the same request
    /// names the same caller, so only the first counts.
    fn note(&self, principal: &Arc<Principal>) {
        let _ = self.0.set(principal.clone());
    }
}

/// Records the verified caller for the request's access line, if the edge
/// asked for it (only when access lines are logged).
pub fn note_caller(extensions: &Extensions, principal: &Arc<Principal>) {
    if let Some(slot) = extensions.get::<Arc<CallerSlot>>() {
        slot.note(principal);
    }
}

/// Whether info access lines are logged.
fn lines_on() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// What the edge keeps of a request for its access line.
pub(super) struct Entry {
    method: Method,
    route: Route,
    /// `None` when access lines are off: only a server error is logged.
    caller: Option<Arc<CallerSlot>>,
}

/// The route a request took, as its access line and metrics name it.
enum Route {
    /// Matched by the router: its template.
    Matched(MatchedPath),
    /// Served without the router ([`super::direct`]): the template the
    /// router would have matched.
    Direct(&'static str),
    /// No route matched: the path as sent.
    Unmatched(Uri),
}

impl Route {
    /// The template, if a route matched.
    fn template(&self) -> Option<&str> {
        match self {
            Route::Matched(matched) => Some(matched.as_str()),
            Route::Direct(template) => Some(template),
            Route::Unmatched(_) => None,
        }
    }
}

impl Entry {
    /// Takes what the line needs from `req` (cheap clones; the path as
    /// sent only when no route matched) and, when access lines are on,
    /// leaves a [`CallerSlot`] on it for authentication to fill.
    pub(super) fn begin(req: &mut Request) -> Self {
        let route = match req.extensions().get::<MatchedPath>() {
            Some(matched) => Route::Matched(matched.clone()),
            None => Route::Unmatched(req.uri().clone()),
        };
        let method = req.method().clone();
        Self::with_route(method, req.extensions_mut(), route)
    }

    /// [`Entry::begin`] for a request served without the router, which
    /// would have matched `template`. Its slot stays here: the direct path
    /// fills it itself ([`Entry::note_caller`]), so no request extension
    /// is allocated for it.
    pub(super) fn begin_direct(method: &Method, template: &'static str) -> Self {
        Self {
            method: method.clone(),
            route: Route::Direct(template),
            caller: lines_on().then(Arc::default),
        }
    }

    fn with_route(method: Method, extensions: &mut Extensions, route: Route) -> Self {
        let caller = lines_on().then(|| {
            let slot = Arc::new(CallerSlot::default());
            extensions.insert(slot.clone());
            slot
        });
        Self {
            method,
            route,
            caller,
        }
    }

    /// Records the verified caller, as [`note_caller`] does through the
    /// request's extensions.
    pub(super) fn note_caller(&self, principal: &Arc<Principal>) {
        if let Some(slot) = &self.caller {
            slot.note(principal);
        }
    }

    /// Writes the request's one access line: at `error` with the cause for
    /// a server error, else at `info` (when on).
    pub(super) fn finish(
        self,
        ids: &EdgeIds,
        response: &Response,
        failure: Option<&GraphError>,
        started: std::time::Instant,
    ) {
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        let method = self.method.as_str();
        let template = self.route.template();
        crate::metrics::http_request(template, &self.method, status, elapsed);
        if failure.is_none() && self.caller.is_none() {
            return;
        }
        let route = match &self.route {
            Route::Matched(matched) => matched.as_str(),
            Route::Direct(template) => template,
            Route::Unmatched(uri) => uri.path(),
        };
        let caller = self.caller.as_ref().and_then(|slot| slot.0.get());
        let tenant = caller.map(|p| tracing::field::display(p.tenant));
        let app_id = caller.map(|p| p.app_id.as_str());
        let latency = crate::logs::text::LatencyMs::of(elapsed);
        let latency_ms = latency.as_f64();
        let request_id = ids.request_id();
        let client_request_id = ids.client_request_id();
        match failure {
            Some(err) => tracing::error!(
                target: TARGET,
                method,
                route,
                status,
                latency_ms,
                request_id,
                client_request_id,
                tenant,
                app_id,
                code = err.code,
                cause = err.cause.as_deref().unwrap_or("unknown"),
                "request failed"
            ),
            None if crate::logs::text::write_access(&crate::logs::text::AccessLine {
                method,
                route,
                status,
                latency,
                request_id,
                client_request_id,
                tenant: caller.map(|p| p.tenant),
                app_id,
            }) => {}
            None => tracing::info!(
                target: TARGET,
                method,
                route,
                status,
                latency_ms,
                request_id,
                client_request_id,
                tenant,
                app_id,
                "request"
            ),
        }
    }
}
