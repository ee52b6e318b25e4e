//! The format of `--log-format json`: tracing-subscriber's JSON format
//! (one object a line, `fields`, `target`, the current `span` and the
//! `spans` from the root), with a request's scope ([`request`]) written as
//! the `request` span it stands for.
//!
//! A line written outside any request scope is the JSON format's own. A
//! line written inside one (rare: a request's own warnings, a batched
//! request's access line) is laid out by the JSON format first, then the
//! scope's spans are spliced in: ahead of the real spans in `spans`, and
//! as `span` when there is no real one. Splicing is safe because the JSON
//! format writes `span` and `spans` last, and no field value is an array,
//! so the only `"spans":[` outside a string is the span list. The tests
//! compare the result with the JSON format's own output for real spans.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use super::request;

/// The event format of `--log-format json` (see the module doc); use it
/// with `tracing_subscriber::fmt::format::JsonFields`.
#[derive(Debug)]
pub struct JsonFormat {
    json: Format<Json>,
}

impl Default for JsonFormat {
    fn default() -> Self {
        Self {
            json: tracing_subscriber::fmt::format().json(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = request::request_ids();
        if ids.is_empty() {
            return self.json.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.json.format_event(ctx, Writer::new(&mut line), event)?;
        match with_request_spans(&line, &ids) {
            Some(spliced) => writer.write_str(&spliced),
            // Not the shape the JSON format writes: the line as it is.
            None => writer.write_str(&line),
        }
    }
}

/// `line` (one object, as the JSON format writes it) with a `request` span
/// for each of `ids` (outermost first) ahead of its real spans; `None`
/// when `line` is not one object.
fn with_request_spans(line: &str, ids: &[Uuid]) -> Option<String> {
    let entry = |id: &Uuid| format!(r#"{{"request_id":"{id}","name":"request"}}"#);
    let entries: Vec<String> = ids.iter().map(entry).collect();
    let entries = entries.join(",");
    const LIST: &str = r#","spans":["#;
    if let Some(at) = line.rfind(LIST) {
        // Real spans: `span` is the innermost of them and stays.
        let at = at + LIST.len();
        return Some(format!("{}{entries},{}", &line[..at], &line[at..]));
    }
    let close = line.trim_end().strip_suffix('}')?;
    let innermost = entry(ids.last()?);
    let rest = &line[close.len() + 1..];
    Some(format!(
        r#"{close},"span":{innermost},"spans":[{entries}]}}{rest}"#
    ))
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::fmt::format::JsonFields;

    use super::*;

    /// Runs `log` inside requests with `ids` (nested, the first outermost)
    /// twice: in real `request` spans under tracing's JSON format, and in
    /// [`request`] scopes under [`JsonFormat`]; gives both outputs with
    /// the timestamps' values cut out.
    fn both_in(ids: &[Uuid], log: &dyn Fn()) -> (String, String) {
        let run = |ours: bool| {
            let sink = crate::logs::TestSink::default();
            let builder = tracing_subscriber::fmt()
                .with_writer(sink.clone())
                .with_max_level(Level::TRACE)
                .json();
            if ours {
                let subscriber = builder
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonFormat::default())
                    .finish();
                tracing::subscriber::with_default(subscriber, || request::in_scopes(ids, log));
            } else {
                tracing::subscriber::with_default(builder.finish(), || request::in_spans(ids, log));
            }
            let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|line| {
                    let stamp = r#"{"timestamp":""#;
                    assert!(line.starts_with(stamp), "{line}");
                    let rest = &line[stamp.len()..];
                    let end = rest.find('"').unwrap();
                    format!("{stamp}{}\n", &rest[end..])
                })
                .collect::<String>()
        };
        (run(false), run(true))
    }

    fn log() {
        tracing::info!(target: "presenced::notify", url = "http://127.0.0.1:1", "failed validation");
        tracing::warn!(
            target: "presenced::other",
            odd = r#"","spans":[{"name":"fake"}]}"#,
            n = -1i64,
            "{}",
            "formatted \"quoted\""
        );
        tracing::info!(target: "presenced::access", status = 200u16, latency_ms = 0.5, "request");
        tracing::debug_span!("handler", tenant = "t", user = 7u64).in_scope(|| {
            tracing::info_span!("empty").in_scope(|| {
                tracing::trace!(target: "presenced::store", user = "u1", "inside spans");
            });
        });
    }

    #[test]
    fn lines_in_request_scopes_are_those_of_real_request_spans() {
        let ids = [Uuid::new_v4(), Uuid::new_v4()];
        for depth in 1..=2 {
            let (spans, scopes) = both_in(&ids[..depth], &log);
            assert_eq!(scopes, spans, "{depth} request(s) deep");
            assert_eq!(scopes.lines().count(), 4, "{scopes}");
            for line in scopes.lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                let spans = value["spans"].as_array().unwrap();
                for (span, id) in spans.iter().zip(&ids[..depth]) {
                    assert_eq!(span["name"], "request", "{line}");
                    assert_eq!(span["request_id"], id.to_string(), "{line}");
                }
            }
        }
    }

    #[test]
    fn lines_outside_requests_are_the_json_formats_own() {
        let (spans, scopes) = both_in(&[], &log);
        assert_eq!(scopes, spans);
        assert_eq!(scopes.lines().count(), 4, "{scopes}");
        assert!(!scopes.contains(r#""name":"request""#), "{scopes}");
    }

    #[test]
    fn a_line_of_another_shape_is_left_alone() {
        let id = Uuid::new_v4();
        assert_eq!(with_request_spans("not json\n", &[id]), None);
        assert_eq!(with_request_spans("{}\n", &[]), None);
        assert_eq!(
            with_request_spans("{\"a\":1}\n", &[id]),
            Some(format!(
                "{{\"a\":1,\"span\":{{\"request_id\":\"{id}\",\"name\":\"request\"}},\
                 \"spans\":[{{\"request_id\":\"{id}\",\"name\":\"request\"}}]}}\n"
            ))
        );
    }
}
