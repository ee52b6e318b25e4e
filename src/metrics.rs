//! Prometheus metrics: their names and help in one place, the recorders
//! the layers call, and the text the `/_presenced/metrics` route renders.
//!
//! The `metrics` facade keeps one process-wide recorder (installed once by
//! [`handle`]); every `App` in a process shares it, so counters only ever
//! go up and tests compare before and after. No label carries a user, a
//! tenant or a path as sent: routes are templates (`unmatched` otherwise).

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `route` (template), `method` and `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Seconds from a request's arrival to its answer (head), by `route` and `method`.
pub const HTTP_SECONDS: &str = "http_request_duration_seconds";
/// Seconds one SQLite write transaction (a group commit) took.
pub const STORE_COMMIT_SECONDS: &str = "presenced_store_commit_seconds";
/// Writes folded into one SQLite transaction.
pub const STORE_BATCH_SIZE: &str = "presenced_store_batch_size";
/// Users the store's resident copy holds (SQLite).
pub const USERS: &str = "presenced_users";
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

/// The process's Prometheus recorder, installed on first use.
///
/// `None` when another recorder was installed first (an embedding program
/// with its own): then there is nothing of ours to render.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ];
            let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(STORE_BATCH_SIZE.into()), &sizes)
                })
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by route template, method and status."
    );
    describe_histogram!(
        HTTP_SECONDS,
        Unit::Seconds,
        "Request latency, by route template and method."
    );
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
    describe_gauge!(USERS, Unit::Count, "Users the SQLite store holds.");
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
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// Counts a request and its latency. Methods and statuses are few; the
/// route is a template or `unmatched`.
pub fn http_request(route: Option<&str>, method: &str, status: u16, elapsed: Duration) {
    let route = route.unwrap_or("unmatched").to_owned();
    let method = method.to_owned();
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_SECONDS, "route" => route, "method" => method).record(elapsed.as_secs_f64());
}

/// Records one SQLite write transaction of `ops` writes.
pub fn store_commit(ops: usize, elapsed: Duration, users: usize) {
    histogram!(STORE_COMMIT_SECONDS).record(elapsed.as_secs_f64());
    histogram!(STORE_BATCH_SIZE).record(ops as f64);
    gauge!(USERS).set(users as f64);
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
