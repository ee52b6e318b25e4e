//! Prometheus metrics: their names and help in one place, the recorders
//! the layers call, and the text the `/_presenced/metrics` route renders.
//!
//! The `metrics` facade keeps one process-wide recorder (installed once by
//! [`handle`]); every `App` in a process shares it, so counters only ever
//! go up and tests compare before and after. The two request metrics,
//! recorded on every request, are counted by presenced itself instead
//! ([`http`]: per thread, summed at each scrape), also once per process.
//! No label carries a user, a tenant or a path as sent: routes are
//! templates (`unmatched` otherwise).

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod http;

/// Requests answered, by `route` (template), `method` and `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// The help text of [`HTTP_REQUESTS`].
const HTTP_REQUESTS_HELP: &str = "Requests answered, by route template, method and status.";
/// Seconds from a request's arrival to its answer (head), by `route` and `method`.
pub const HTTP_SECONDS: &str = "http_request_duration_seconds";
/// The help text of [`HTTP_SECONDS`].
const HTTP_SECONDS_HELP: &str = "Request latency, by route template and method.";
/// The upper bounds of every `_seconds` histogram's buckets.
const SECONDS_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Seconds one SQLite write transaction (a group commit) took.
pub const STORE_COMMIT_SECONDS: &str = "presenced_store_commit_seconds";
/// Writes folded into one SQLite transaction.
pub const STORE_BATCH_SIZE: &str = "presenced_store_batch_size";
/// Users with stored facts (read from the store at each scrape).
pub const USERS: &str = "presenced_users";
/// Users holding at least one session (read from the store at each scrape).
pub const USERS_ONLINE: &str = "presenced_users_online";
/// Sessions the store holds (read from the store at each scrape).
pub const SESSIONS: &str = "presenced_sessions";
/// Stored subscriptions (read from the store at each scrape).
pub const SUBSCRIPTIONS: &str = "presenced_subscriptions";
/// Change notifications by `outcome`: `delivered`, `failed` (to be
/// retried) or `dropped` (given up after 4 hours).
pub const DELIVERIES: &str = "presenced_deliveries_total";
/// Seconds one webhook POST took, whatever its outcome.
pub const DELIVERY_SECONDS: &str = "presenced_delivery_seconds";
/// Open `/_presenced/events` streams.
pub const EVENT_STREAMS: &str = "presenced_event_stream_clients";
/// Seconds (of the presence clock) a scheduler pass ran after the instant
/// it was due.
pub const SCHEDULER_LAG: &str = "presenced_scheduler_lag_seconds";

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, installed on first use.
///
/// `None` when another recorder was installed first (an embedding program
/// with its own): then there is nothing of ours to render.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(STORE_BATCH_SIZE.into()), &sizes)
                })
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            // Histogram samples wait in a queue until drained into their
            // buckets: drain it every few seconds, scraped or not, so
            // memory stays flat. A thread, not a task: it outlives any one
            // runtime (tests build many).
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
            }
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "SQLite write transaction (group commit) latency."
    );
    describe_histogram!(
        STORE_BATCH_SIZE,
        Unit::Count,
        "Writes per SQLite transaction."
    );
    describe_gauge!(USERS, Unit::Count, "Users with stored facts.");
    describe_gauge!(
        USERS_ONLINE,
        Unit::Count,
        "Users holding at least one presence session."
    );
    describe_gauge!(
        SESSIONS,
        Unit::Count,
        "Presence sessions held (live, or expired since their user was last settled)."
    );
    describe_gauge!(
        SUBSCRIPTIONS,
        Unit::Count,
        "Stored change-notification subscriptions."
    );
    describe_counter!(
        DELIVERIES,
        "Change notifications by outcome (delivered, failed, dropped)."
    );
    describe_histogram!(DELIVERY_SECONDS, Unit::Seconds, "Webhook POST latency.");
    describe_gauge!(
        EVENT_STREAMS,
        Unit::Count,
        "Open /_presenced/events streams."
    );
    describe_histogram!(
        SCHEDULER_LAG,
        Unit::Seconds,
        "How late a scheduler pass ran after its due instant."
    );
}

/// The metrics in Prometheus text format (empty without our recorder).
pub fn render() -> String {
    let Some(handle) = handle() else {
        return String::new();
    };
    let mut text = handle.render();
    http::render(&mut text);
    text
}

/// Counts a request and its latency ([`http`]: presenced's own, not the
/// facade's). Methods and statuses are few (any method but the standard
/// ones is `other`, so clients cannot mint series); the route is a
/// template or `unmatched`.
pub fn http_request(route: Option<&str>, method: &Method, status: u16, elapsed: Duration) {
    http::record(
        route.unwrap_or("unmatched"),
        method_label(method),
        status,
        elapsed,
    );
}

/// The `method` label: the standard methods by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Records one SQLite write transaction of `ops` writes.
pub fn store_commit(ops: usize, elapsed: Duration) {
    histogram!(STORE_COMMIT_SECONDS).record(elapsed.as_secs_f64());
    histogram!(STORE_BATCH_SIZE).record(ops as f64);
}

/// Sets the users, sessions and subscriptions gauges from the store's
/// counts; a count the store cannot give (or a store that does not
/// answer) leaves its gauge as it was.
pub async fn refresh_counts(store: &dyn crate::store::Store) {
    match store.counts().await {
        Ok(counts) => {
            for (name, count) in [
                (USERS, counts.users),
                (USERS_ONLINE, counts.users_with_sessions),
                (SESSIONS, counts.sessions),
                (SUBSCRIPTIONS, counts.subscriptions),
            ] {
                if let Some(n) = count {
                    gauge!(name).set(n as f64);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the store's counts are unavailable"),
    }
}

/// Records one webhook POST of `items` notifications.
pub fn delivery(outcome: &'static str, items: usize, elapsed: Duration) {
    counter!(DELIVERIES, "outcome" => outcome).increment(items as u64);
    histogram!(DELIVERY_SECONDS).record(elapsed.as_secs_f64());
}

/// Counts notifications given up on.
pub fn deliveries_dropped(items: usize) {
    counter!(DELIVERIES, "outcome" => "dropped").increment(items as u64);
}

/// Records how late a scheduler pass ran.
pub fn scheduler_lag(late: chrono::TimeDelta) {
    let seconds = late.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    histogram!(SCHEDULER_LAG).record(seconds.max(0.0));
}

/// An open event stream: counted while it lives.
#[derive(Debug)]
pub struct EventStreamClient(());

impl EventStreamClient {
    /// Counts a stream opening.
    pub fn open() -> Self {
        gauge!(EVENT_STREAMS).increment(1.0);
        Self(())
    }
}

impl Drop for EventStreamClient {
    fn drop(&mut self) {
        gauge!(EVENT_STREAMS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_name_their_own_series() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }
}
