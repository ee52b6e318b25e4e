//! The text format of log lines: tracing-subscriber's default format
//! (`Full`), byte for byte, with a lean path for the busiest line there is,
//! the access line written once per request ([`crate::http::access`]).
//!
//! The default format writes every part through `core::fmt`: the
//! timestamp's seven numbers, each field's name and value through style
//! wrappers that are empty without colour, each string through `Debug`. For
//! an access line that was most of what the line cost, a few per cent of a
//! getPresence under load (issue #14). The lean path writes
//! the same bytes directly:
//! - the timestamp's date and time to the second are formatted once a
//!   second (per thread) and reused; the microseconds are six digits;
//! - a string field whose text needs no escaping (printable ASCII without
//!   `"` or `\`) is copied between quotes; integers and booleans are
//!   written as they are; anything else, and the message, goes through the
//!   default field formatter as before.
//!
//! The timestamp path is taken only for access lines without colour and
//! outside any span; every other line is laid out by the default format
//! itself. The field path ([`LeanFields`]) serves every line and every
//! span's fields (a request's span formats its request id once per
//! request). The tests below compare both paths with the default ones on
//! the same events.

use std::cell::RefCell;
use std::fmt;

use chrono::{DateTime, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::http::access::TARGET as ACCESS_TARGET;

/// The event format of `--log-format text` (see the module doc).
#[derive(Debug, Default)]
pub struct TextFormat {
    full: Format<Full>,
}

impl<S, N> FormatEvent<S, N> for TextFormat
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
        let meta = event.metadata();
        if meta.target() != ACCESS_TARGET
            || writer.has_ansi_escapes()
            || ctx.event_scope().is_some()
        {
            return self.full.format_event(ctx, writer, event);
        }
        // Log lines carry wall time, as the default format's do.
        write_timestamp(&mut writer, crate::clock::wall_now())?;
        // As `Full` pads the level (`FmtLevel`).
        writer.write_str(match *meta.level() {
            Level::TRACE => "TRACE ",
            Level::DEBUG => "DEBUG ",
            Level::INFO => " INFO ",
            Level::WARN => " WARN ",
            Level::ERROR => "ERROR ",
        })?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = Fields {
            writer: writer.by_ref(),
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The field format of `--log-format text`: what the default field
/// formatter (`DefaultFields`) writes, the lean way (see the module doc).
#[derive(Debug, Default)]
pub struct LeanFields;

impl<'w> FormatFields<'w> for LeanFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Fields {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// The `YYYY-MM-DDTHH:MM:SS.` of the last second a thread formatted.
struct Second {
    at: u64,
    text: String,
}

thread_local! {
    static SECOND: RefCell<Option<Second>> = const { RefCell::new(None) };
}

/// Writes `now` as the default format does (`2026-11-27T19:00:37.489703Z`,
/// UTC, microseconds), then a space.
fn write_timestamp(writer: &mut impl fmt::Write, now: DateTime<Utc>) -> fmt::Result {
    let Ok(secs) = u64::try_from(now.timestamp()) else {
        // Before 1970: not worth a fast path.
        return write!(writer, "{} ", rfc3339(now));
    };
    SECOND.with(|cell| {
        let mut second = cell.borrow_mut();
        if second.as_ref().is_none_or(|s| s.at != secs) {
            *second = Some(Second {
                at: secs,
                text: now.format("%Y-%m-%dT%H:%M:%S.").to_string(),
            });
        }
        let text = second.as_ref().map_or("", |s| s.text.as_str());
        writer.write_str(text)
    })?;
    let mut digits = [b'0'; 6];
    let mut rest = now.timestamp_subsec_micros();
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    // Six ASCII digits.
    writer.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)?;
    writer.write_str("Z ")
}

/// `now` in the default format's layout, the slow way.
fn rfc3339(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The fields of an access line, written as the default field formatter
/// (`DefaultVisitor`) writes them: `name=value`, separated by spaces.
struct Fields<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    /// Whether the default formatter gives `field` no special treatment.
    fn plain(field: &Field) -> bool {
        let name = field.name();
        name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
    }

    /// Writes `name=` (after a space unless first).
    fn name(&mut self, field: &Field) -> fmt::Result {
        if self.first {
            self.first = false;
        } else {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(field.name())?;
        self.writer.write_char('=')
    }

    /// Hands one field to the default field formatter, which also knows
    /// whether a space goes before it.
    fn default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.first);
        record(&mut visitor);
        self.result = visitor.finish();
        // Only `log.` fields are skipped, and those never reach here first.
        self.first = false;
    }

    /// An integer or a boolean, whose `Display` is its `Debug`: written
    /// directly under a plain name, else as any other value.
    fn scalar(&mut self, field: &Field, value: impl fmt::Display + fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if Self::plain(field) {
            self.result = self
                .name(field)
                .and_then(|()| write!(self.writer, "{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let simple = value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        if Self::plain(field) && simple {
            // What `Debug` writes for a string that needs no escaping.
            self.result = self.name(field).and_then(|()| {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            });
        } else if field.name().starts_with("log.") {
            // Skipped by the default formatter.
        } else {
            self.default(|v| v.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.scalar(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.scalar(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.scalar(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.default(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        if Self::plain(field) {
            self.result = self
                .name(field)
                .and_then(|()| write!(self.writer, "{value:?}"));
        } else {
            self.default(|v| v.record_debug(field, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// Everything written, shared with the test.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `log` under the default format and under [`TextFormat`] and
    /// gives both outputs, timestamps cut off (each line's first 28 bytes).
    fn both(log: impl Fn()) -> (String, String) {
        let run = |lean: bool| {
            let sink = Sink::default();
            let builder = tracing_subscriber::fmt()
                .with_writer({
                    let sink = sink.clone();
                    move || sink.clone()
                })
                .with_ansi(false)
                .with_max_level(Level::TRACE);
            if lean {
                let subscriber = builder
                    .fmt_fields(LeanFields)
                    .event_format(TextFormat::default())
                    .finish();
                tracing::subscriber::with_default(subscriber, &log);
            } else {
                tracing::subscriber::with_default(builder.finish(), &log);
            }
            let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|line| {
                    assert_eq!(&line[26..28], "Z ", "a timestamp starts {line}");
                    format!("{}\n", &line[28..])
                })
                .collect::<String>()
        };
        (run(false), run(true))
    }

    #[test]
    fn access_lines_are_written_as_the_default_format_writes_them() {
        let tenant = uuid::Uuid::new_v4();
        let (full, lean) = both(|| {
            for route in [
                "/{version}/users/{id}/presence",
                "/with \"quotes\" and \\ and\ttab",
                "/ünïcode/\u{1b}[31m",
                "",
            ] {
                let tenant_field = Some(tracing::field::display(tenant));
                tracing::info!(
                    target: ACCESS_TARGET,
                    method = "GET",
                    route,
                    status = 200u16,
                    latency_ms = 0.7662669999999999,
                    request_id = "f4d9b51d-4b9b-4912-a174-432fda5ade81",
                    tenant = tenant_field,
                    app_id = Option::<&str>::None,
                    "request"
                );
            }
            for latency_ms in [0.0, 1.0, 1e-7, 12345.678, 1e17, f64::NAN] {
                tracing::info!(target: ACCESS_TARGET, latency_ms, signed = -3i64, ok = true, "request");
            }
            tracing::error!(
                target: ACCESS_TARGET,
                status = 500u16,
                code = "generalException",
                cause = "disk full",
                "request failed"
            );
            let io = std::io::Error::other("inner");
            tracing::warn!(target: ACCESS_TARGET, error = &io as &(dyn std::error::Error + 'static), "odd");
            tracing::info!(target: ACCESS_TARGET, r#type = "raw name", "message with \u{1b} escape");
            // Other targets and lines inside spans take the default path.
            tracing::info!(target: "presenced::other", answer = 42, "not an access line");
            tracing::warn!(target: "presenced::other", path = "/a\"b", n = -1i64, "{}", "formatted");
            let span = tracing::info_span!("request", request_id = "abc", odd = "q\"uote");
            let _inside = span.enter();
            let inner = tracing::info_span!("inner", n = 7u64, flag = false);
            let _inner = inner.enter();
            tracing::info!(target: ACCESS_TARGET, status = 200u16, "request");
            tracing::error!(target: "presenced::store", user = "u1", "inside spans");
        });
        assert_eq!(lean, full);
        assert_eq!(lean.lines().count(), 17, "{lean}");
        assert!(
            lean.contains(r#"request{request_id="abc" odd="q\"uote"}:inner{n=7 flag=false}: presenced::store: inside spans user="u1""#),
            "{lean}"
        );
        assert!(
            lean.contains(r#" INFO presenced::access: request method="GET" route="/{version}/users/{id}/presence" status=200 latency_ms=0.7662669999999999"#),
            "{lean}"
        );
    }

    #[test]
    fn timestamps_are_those_of_the_default_format() {
        let start = DateTime::<Utc>::UNIX_EPOCH + Duration::from_micros(1_795_806_037_000_000);
        // Within a second, across seconds, minutes, days and years.
        for offset in [
            0,
            1,
            999_999,
            1_000_000,
            59_999_999,
            86_399_999_999,
            86_400_000_000,
            31_536_000_000_001,
        ] {
            let now = start + Duration::from_micros(offset);
            let mut text = String::new();
            write_timestamp(&mut text, now).unwrap();
            assert_eq!(text, format!("{} ", rfc3339(now)), "{offset}");
        }
        let mut text = String::new();
        write_timestamp(&mut text, DateTime::<Utc>::UNIX_EPOCH).unwrap();
        assert_eq!(text, "1970-01-01T00:00:00.000000Z ");
        let before = DateTime::<Utc>::UNIX_EPOCH - Duration::from_micros(1_500_000);
        text.clear();
        write_timestamp(&mut text, before).unwrap();
        assert_eq!(text, "1969-12-31T23:59:58.500000Z ");
    }
}
