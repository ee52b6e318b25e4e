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
//! outside any span, and for lines written while a request runs in a
//! [`request`] scope, whose layout is the default format's with the scope
//! written where a `request` span would be; every other line is laid out
//! by the default format itself. The field path ([`LeanFields`]) serves every line and every
//! span's fields (a request's span formats its request id once per
//! request). The tests below compare both paths with the default ones on
//! the same events.
//!
//! The binary goes one step further for an access line that needs no
//! escaping and is logged outside any span ([`write_access`]): it lays the
//! line out from its fields directly, into one buffer per thread, and
//! copies it into the log buffer, without building a tracing event, its
//! field set and a visitor for it. The filter still decides: the edge
//! asks `tracing::enabled!` for the access target before it keeps what the
//! line needs. Any other access line goes through tracing as above.

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Format, Full, Writer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use super::{request, LogWriter};

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
        if writer.has_ansi_escapes() {
            return self.full.format_event(ctx, writer, event);
        }
        if request::in_scope() {
            return format_in_scope(ctx, writer, event);
        }
        let meta = event.metadata();
        if meta.target() != ACCESS_TARGET || ctx.event_scope().is_some() {
            return self.full.format_event(ctx, writer, event);
        }
        // Log lines carry wall time, as the default format's do.
        write_timestamp(&mut writer, crate::clock::wall_now())?;
        writer.write_str(level_text(meta.level()))?;
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

/// A level as `Full` writes it, padded (`FmtLevel`), and the space after.
fn level_text(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        Level::ERROR => "ERROR ",
    }
}

/// Lays out a line written while a request runs in a [`request`] scope:
/// the default format's layout without colour, with the scope written as
/// the `request` span it stands for, before any span the line is in.
fn format_in_scope<S, N>(
    ctx: &FmtContext<'_, S, N>,
    mut writer: Writer<'_>,
    event: &Event<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    // A `log` record's own target and level, as the default format shows.
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    write_timestamp(&mut writer, crate::clock::wall_now())?;
    writer.write_str(level_text(meta.level()))?;
    request::write_scopes(&mut writer)?;
    if let Some(spans) = ctx.event_scope() {
        for span in spans.from_root() {
            writer.write_str(span.metadata().name())?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                if !fields.is_empty() {
                    write!(writer, "{{{fields}}}")?;
                }
            }
            writer.write_char(':')?;
        }
    }
    writer.write_char(' ')?;
    writer.write_str(meta.target())?;
    writer.write_str(": ")?;
    ctx.format_fields(writer.by_ref(), event)?;
    writer.write_char('\n')
}

/// The fields of an info access line ([`crate::http::access`]), in the
/// order the line writes them.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    /// The request method.
    pub method: &'a str,
    /// The route template, or the path as sent when no route matched.
    pub route: &'a str,
    /// The response status.
    pub status: u16,
    /// Time from the request's head to its response.
    pub latency: LatencyMs,
    /// The request id.
    pub request_id: &'a str,
    /// The client's request id (the request id when it sent none).
    pub client_request_id: &'a str,
    /// The caller's tenant, when authenticated.
    pub tenant: Option<Uuid>,
    /// The caller's app id, when authenticated.
    pub app_id: Option<&'a str>,
}

impl AccessLine<'_> {
    /// Whether every string is written as it is (see [`needs_no_escape`]).
    fn plain(&self) -> bool {
        [
            self.method,
            self.route,
            self.request_id,
            self.client_request_id,
        ]
        .into_iter()
        .chain(self.app_id)
        .all(needs_no_escape)
    }
}

/// Whether `Debug` writes `value` as it is between quotes: printable ASCII
/// without `"` or `\`. A fold without an early exit, which the compiler
/// turns into a vector loop (these strings are nearly always plain, so all
/// of each is read anyway).
fn needs_no_escape(value: &str) -> bool {
    !value.bytes().fold(false, |seen, b| {
        seen | !(b' '..=b'~').contains(&b) | (b == b'"') | (b == b'\\')
    })
}

/// A request's latency in milliseconds, to the microsecond: what an access
/// line logs as `latency_ms` (`0.047`, `12.5`, `3.0`). Finer digits said
/// nothing a reader could use, and cost a shortest-float formatting per
/// request (issue #14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyMs {
    micros: u64,
}

impl LatencyMs {
    /// `elapsed`, truncated to the microsecond.
    pub fn of(elapsed: std::time::Duration) -> Self {
        Self {
            micros: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// The value tracing logs: the microseconds over 1000.
    pub fn as_f64(self) -> f64 {
        self.micros as f64 / 1000.0
    }
}

/// Writes `latency` as `{:?}` writes [`LatencyMs::as_f64`], without
/// float formatting. Below 2^52 µs (142 years) that `f64` is the one
/// nearest the decimal n/1000, and no decimal with fewer digits is as
/// near, so `Debug`'s shortest digits are that decimal's: the whole
/// milliseconds, a point, then the microseconds without trailing zeros
/// (`.0` when there are none). A test compares the two.
fn write_latency(out: &mut impl fmt::Write, latency: LatencyMs) -> fmt::Result {
    let micros = latency.micros;
    if micros >= 1 << 52 {
        return write!(out, "{:?}", latency.as_f64());
    }
    out.write_str(itoa::Buffer::new().format(micros / 1000))?;
    out.write_char('.')?;
    let mut frac = micros % 1000;
    if frac == 0 {
        return out.write_char('0');
    }
    let mut digits = 3;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    write_digits(out, frac, digits)
}

/// Writes the last `width` decimal digits of `value`, zero-padded.
fn write_digits(out: &mut impl fmt::Write, value: u64, width: u32) -> fmt::Result {
    for place in (0..width).rev() {
        out.write_char(char::from(b'0' + (value / 10u64.pow(place) % 10) as u8))?;
    }
    Ok(())
}

/// Where [`write_access`] writes, once the binary has said so.
static ACCESS_WRITER: OnceLock<LogWriter> = OnceLock::new();

thread_local! {
    /// The line being laid out, kept between lines.
    static ACCESS_TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Lets [`write_access`] write access lines straight to `writer`: for the
/// text format without colour, where they read as the default format
/// writes them. Only the first call counts.
pub fn write_access_lines_to(writer: LogWriter) {
    let _ = ACCESS_WRITER.set(writer);
}

/// Writes `line` as the default format writes an info access line with
/// these fields, straight into the log buffer. `false` when it cannot (no
/// writer given, a string that needs escaping, a span or a request scope
/// entered): the caller logs the line through tracing instead. The caller
/// has checked that the filter lets access lines through.
pub fn write_access(line: &AccessLine<'_>) -> bool {
    let Some(writer) = ACCESS_WRITER.get() else {
        return false;
    };
    if !line.plain()
        || request::in_scope()
        || tracing::dispatcher::get_default(|d| d.current_span().id().is_some())
    {
        return false;
    }
    ACCESS_TEXT.with(|cell| {
        let Ok(mut text) = cell.try_borrow_mut() else {
            return false;
        };
        text.clear();
        if format_access(&mut *text, crate::clock::wall_now(), line).is_err() {
            return false;
        }
        // The whole line in one call, as tracing's formatter writes it.
        let _ = writer.make_writer().write_all(text.as_bytes());
        true
    })
}

/// Lays out an info access line (see [`write_access`]); its strings need
/// no escaping.
fn format_access(
    out: &mut impl fmt::Write,
    now: DateTime<Utc>,
    line: &AccessLine<'_>,
) -> fmt::Result {
    write_timestamp(out, now)?;
    out.write_str(" INFO ")?;
    out.write_str(ACCESS_TARGET)?;
    out.write_str(": request method=\"")?;
    out.write_str(line.method)?;
    out.write_str("\" route=\"")?;
    out.write_str(line.route)?;
    out.write_str("\" status=")?;
    out.write_str(itoa::Buffer::new().format(line.status))?;
    out.write_str(" latency_ms=")?;
    write_latency(out, line.latency)?;
    out.write_str(" request_id=\"")?;
    out.write_str(line.request_id)?;
    out.write_str("\" client_request_id=\"")?;
    out.write_str(line.client_request_id)?;
    out.write_char('"')?;
    if let Some(tenant) = line.tenant {
        let mut buffer = Uuid::encode_buffer();
        out.write_str(" tenant=")?;
        out.write_str(tenant.hyphenated().encode_lower(&mut buffer))?;
    }
    if let Some(app_id) = line.app_id {
        out.write_str(" app_id=\"")?;
        out.write_str(app_id)?;
        out.write_char('"')?;
    }
    out.write_char('\n')
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
    write_digits(writer, u64::from(now.timestamp_subsec_micros()), 6)?;
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
        if Self::plain(field) && needs_no_escape(value) {
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
#[path = "text_tests.rs"]
mod tests;
