//! `GET /_presenced/events` (SPEC §8): server-sent events of presence
//! changes, read from the durable event log, so `Last-Event-ID` resumes
//! exactly where a client left off (within the retention).

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use uuid::Uuid;

use super::admin::Reader;
use super::error::GraphError;
use super::presence::MAX_IDS;
use super::render;
use super::AppState;
use crate::auth::{authorize, Operation, Principal};
use crate::domain::{effective, parse_guid};
use crate::store::Event;

/// How often an idle stream sends a comment line (SPEC §8).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Events read from the log per query.
const PAGE: usize = 500;

/// Query of `GET /_presenced/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    ids: Option<String>,
}

/// Where a stream is and what it may show.
struct Cursor {
    state: AppState,
    principal: Principal,
    users: Option<HashSet<Uuid>>,
    after: u64,
    pending: VecDeque<SseEvent>,
    wake: tokio::sync::watch::Receiver<u64>,
}

impl Cursor {
    /// The caller may see this event: its tenant and, with `?ids`, one of
    /// the users asked for.
    fn shows(&self, e: &Event) -> bool {
        e.key.tenant == self.principal.tenant
            && self.users.as_ref().is_none_or(|u| u.contains(&e.key.user))
    }

    /// The next SSE event, waiting for the log to grow; `None` ends the
    /// stream (server shutting down).
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            // Read before querying: every event up to `last` is committed,
            // so the query below sees all of them.
            let last = *self.wake.borrow_and_update();
            let page = match self
                .state
                .store
                .events_since(Some(self.principal.tenant), self.after, PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "event stream cannot read the log");
                    return None;
                }
            };
            if page.is_empty() {
                // Events up to `last` belong to other tenants: skip them.
                self.after = self.after.max(last);
                tokio::select! {
                    () = self.state.stopping.cancelled() => return None,
                    changed = self.wake.changed() => if changed.is_err() { return None },
                }
                continue;
            }
            for e in page {
                self.after = e.seq;
                if self.shows(&e) {
                    self.pending.push_back(render_event(&e, &self.principal));
                }
            }
        }
    }
}

/// One presence event as the caller would GET the presence then.
fn render_event(e: &Event, principal: &Principal) -> SseEvent {
    let presence = effective(&e.facts, e.at);
    let body = render::presence(e.key.user, &presence, principal.user() == Some(e.key.user));
    SseEvent::default()
        .event("presence")
        .id(e.seq.to_string())
        .data(body.to_string())
}

/// `GET /_presenced/events`: `?ids=a,b,…` (≤ 650, each readable by the
/// caller) or, with `Presence.Read.All`, every user of the caller's tenant.
/// `Last-Event-ID` resumes from the log; an id older than the retention
/// gets `event: reset` (re-read, then follow). A comment every 15 s keeps
/// proxies from closing idle streams.
pub async fn stream(
    State(state): State<AppState>,
    Reader(principal): Reader,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, GraphError> {
    let users = match query.ids.as_deref() {
        None => {
            authorize(&principal, Operation::ReadMany, None)?;
            None
        }
        Some(list) => {
            let ids = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(parse_guid)
                .collect::<Result<HashSet<Uuid>, _>>()?;
            if ids.is_empty() || ids.len() > MAX_IDS {
                return Err(GraphError::bad_request(format!(
                    "ids must name between 1 and {MAX_IDS} users; it names {}.",
                    ids.len()
                )));
            }
            for id in &ids {
                authorize(&principal, Operation::Read, Some(*id))?;
            }
            Some(ids)
        }
    };
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    GraphError::bad_request("Last-Event-ID must be an event id this server sent.")
                })?,
        ),
    };
    let bounds = state.store.event_bounds().await?;
    let mut pending = VecDeque::new();
    let after = match resume {
        Some(id) if id > bounds.last => {
            return Err(GraphError::bad_request(
                "Last-Event-ID is newer than any event this server sent.",
            ))
        }
        Some(id) if id < bounds.pruned_through => {
            pending.push_back(
                SseEvent::default()
                    .event("reset")
                    .id(bounds.last.to_string())
                    .data(r#"{"reason":"Last-Event-ID is older than the retained event log; re-read the presences, then follow this stream."}"#),
            );
            bounds.last
        }
        Some(id) => id,
        None => bounds.last,
    };
    let wake = state.bus.events();
    let cursor = Cursor {
        state,
        principal,
        users,
        after,
        pending,
        wake,
    };
    let stream = futures_util::stream::unfold(cursor, |mut cursor| async move {
        cursor.next().await.map(|e| (Ok(e), cursor))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
