//! `GET /_presenced/events` (SPEC §8): server-sent events of presence
//! changes. The handler authorises and renders; the feed over the durable
//! event log is `notify::feed`.

use std::collections::HashSet;
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
use crate::notify::feed::{FeedError, FeedItem};

/// How often an idle stream sends a comment line (SPEC §8).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Query of `GET /_presenced/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    ids: Option<String>,
}

/// One feed item as a server-sent event; a presence as the caller would
/// GET it at the time of the change (same privacy rules).
fn render_item(item: FeedItem, principal: &Principal) -> SseEvent {
    match item {
        FeedItem::Reset { resume_at } => SseEvent::default()
            .event("reset")
            .id(resume_at.to_string())
            .data(r#"{"reason":"Last-Event-ID is older than the retained event log; re-read the presences, then follow this stream."}"#),
        FeedItem::Event(e) => {
            let presence = effective(&e.facts, e.at);
            let owner = principal.user() == Some(e.key.user);
            let body = render::presence(e.key.user, presence, owner);
            SseEvent::default()
                .event("presence")
                .id(e.seq.to_string())
                .json_data(&body)
                .unwrap_or_else(|_| SseEvent::default().comment("unrenderable presence"))
        }
    }
}

/// The `Last-Event-ID` a reader resumes from: `None` without the header,
/// else an event id (a decimal `u64`, surrounding whitespace allowed); any
/// other value is a 400. Public so the fuzz targets (`fuzz/`) reach it.
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, GraphError> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                GraphError::bad_request("Last-Event-ID must be an event id this server sent.")
            }),
    }
}

impl From<FeedError> for GraphError {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::FromTheFuture => GraphError::bad_request(e.to_string()),
            FeedError::Store(store) => store.into(),
        }
    }
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
    let resume = last_event_id(&headers)?;
    let feed = state
        .notifier
        .feed(principal.tenant, users, resume, state.stopping.clone())
        .await?;
    // Counted as an open stream until the response body is dropped.
    let client = crate::metrics::EventStreamClient::open();
    let stream = futures_util::stream::unfold(
        (feed, principal, client),
        |(mut feed, principal, client)| async move {
            let item = feed.next().await?;
            Some((Ok(render_item(item, &principal)), (feed, principal, client)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn last_event_id_is_optional_and_a_decimal_u64() {
        assert_eq!(last_event_id(&HeaderMap::new()).unwrap(), None);
        assert_eq!(last_event_id(&with(b" 42\t")).unwrap(), Some(42));
        assert_eq!(
            last_event_id(&with(b"18446744073709551615")).unwrap(),
            Some(u64::MAX)
        );
        for bad in [
            &b""[..],
            b"-1",
            b"0x10",
            b"18446744073709551616",
            b"4 2",
            b"\xff",
        ] {
            let e = last_event_id(&with(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(e.message.contains("Last-Event-ID"), "{bad:?}");
        }
    }
}
