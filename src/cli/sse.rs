//! A minimal reader of server-sent events (the `text/event-stream` format
//! of `GET /_presenced/events`) for `presenced watch`: `event:` and `data:`
//! fields, events split across chunks, and the last event id (`id:`), which
//! `watch` resumes from after a dropped connection; retries and comments
//! ignored.

/// One server-sent event: its `event:` name and `data:` lines joined.
#[derive(Debug, PartialEq)]
pub(super) struct SseEvent {
    pub(super) name: String,
    pub(super) data: String,
}

/// Splits a server-sent event stream into events, across chunk boundaries.
#[derive(Debug, Default)]
pub(super) struct SseParser {
    pending: Vec<u8>,
    name: String,
    data: Vec<String>,
    /// The `id:` of the event being read.
    id: Option<String>,
    /// The id of the last event dispatched (the SSE "last event ID").
    last_event_id: Option<String>,
}

impl SseParser {
    /// The id of the last complete event read, to send as `Last-Event-ID`
    /// when reconnecting; `None` before the first event with an id.
    pub(super) fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Forgets a partly read event (its connection dropped); the last
    /// event id stays.
    pub(super) fn discard_partial(&mut self) {
        self.pending.clear();
        self.name.clear();
        self.data.clear();
        self.id = None;
    }

    /// Feeds bytes; returns the events they complete.
    pub(super) fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        let mut events = vec![];
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(id) = self.id.take() {
                    self.last_event_id = Some(id);
                }
                if !self.data.is_empty() {
                    let name = std::mem::take(&mut self.name);
                    events.push(SseEvent {
                        name: if name.is_empty() {
                            "message".into()
                        } else {
                            name
                        },
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                self.name.clear();
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => self.name = value.to_string(),
                "data" => self.data.push(value.to_string()),
                // The SSE rule: an id holding NUL is ignored.
                "id" if !value.contains('\0') => self.id = Some(value.to_string()),
                _ => {} // retry, comments ("" field): nothing to print
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_across_chunks_and_comments_ignored() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nevent: pres").is_empty());
        let events = p.push(b"ence\nid: 7\ndata: {\"a\":1}\n\nevent: reset\r\ndata: x\r\n\r\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    name: "presence".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    name: "reset".into(),
                    data: "x".into()
                },
            ]
        );
        assert_eq!(p.last_event_id(), Some("7"), "the reset had no id");
    }

    #[test]
    fn the_last_event_id_is_that_of_the_last_complete_event() {
        let mut p = SseParser::default();
        assert_eq!(p.last_event_id(), None);
        p.push(
            b"event: presence
id: 3
data: a

event: presence
id: 4
da",
        );
        assert_eq!(p.last_event_id(), Some("3"), "event 4 is incomplete");
        p.discard_partial();
        let events = p.push(
            b"event: presence
id: 4
data: b

",
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "b", "nothing of the dropped half is left");
        assert_eq!(p.last_event_id(), Some("4"));
    }
}
