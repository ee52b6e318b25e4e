//! The request metrics, `http_requests_total` and
//! `http_request_duration_seconds`, kept by presenced itself rather than
//! through the `metrics` facade.
//!
//! Every request records both. Through the facade (the Prometheus
//! exporter) that meant one shared counter and one shared histogram queue
//! per route, written by both cores on every request: their cache lines
//! went back and forth between the cores, and the queue allocated a block
//! every few dozen samples and was drained by a thread of its own. Here
//! each thread counts into a [`Shard`] of its own, behind a mutex that
//! only a scrape ever takes from another thread, and a scrape sums the
//! shards: about 2.5 % less CPU per getPresence (issue #14). Counts never
//! go down: a shard outlives its thread.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{HTTP_REQUESTS, HTTP_SECONDS};

/// The upper bounds (seconds) of the latency buckets, as for every other
/// `_seconds` histogram ([`super::SECONDS_BUCKETS`]).
const BUCKETS: [f64; super::SECONDS_BUCKETS.len()] = super::SECONDS_BUCKETS;

/// What one thread has counted, by route (template or `unmatched`).
#[derive(Debug, Default)]
struct Shard {
    routes: HashMap<Box<str>, Route, foldhash::fast::RandomState>,
}

/// One route's counts: few methods and statuses each, so small lists.
#[derive(Debug, Default, Clone)]
struct Route {
    /// Requests by method and status.
    answered: Vec<(&'static str, u16, u64)>,
    /// Latencies by method.
    latencies: Vec<(&'static str, Latency)>,
}

/// A latency histogram: counts per bucket (not cumulative; past the last
/// bound only in `count`), their sum in seconds and their number.
#[derive(Debug, Default, Clone, Copy)]
struct Latency {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Latency {
    fn record(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn add(&mut self, other: &Latency) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

impl Route {
    fn count(&mut self, method: &'static str, status: u16, n: u64) {
        match self
            .answered
            .iter_mut()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            Some((_, _, count)) => *count += n,
            None => self.answered.push((method, status, n)),
        }
    }

    fn latency(&mut self, method: &'static str) -> &mut Latency {
        let at = match self.latencies.iter().position(|(m, _)| *m == method) {
            Some(at) => at,
            None => {
                self.latencies.push((method, Latency::default()));
                self.latencies.len() - 1
            }
        };
        &mut self.latencies[at].1
    }

    fn add(&mut self, other: &Route) {
        for &(method, status, n) in &other.answered {
            self.count(method, status, n);
        }
        for (method, latency) in &other.latencies {
            self.latency(method).add(latency);
        }
    }
}

/// Every thread's shard, for scrapes.
static SHARDS: Mutex<Vec<Arc<Mutex<Shard>>>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's shard, registered on first use.
    static MINE: Arc<Mutex<Shard>> = {
        let shard = Arc::<Mutex<Shard>>::default();
        lock(&SHARDS).push(shard.clone());
        shard
    };
}

/// Counts and recording only add numbers, so a poisoned lock is still
/// good to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts a request to `route` answered with `status` after `elapsed`.
pub(super) fn record(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    MINE.with(|shard| {
        let mut shard = lock(shard);
        // One lookup for a route seen before (every request but its first).
        let counts = match shard.routes.get_mut(route) {
            Some(counts) => counts,
            None => shard.routes.entry(route.into()).or_default(),
        };
        counts.count(method, status, 1);
        counts.latency(method).record(seconds);
    });
}

/// Appends both metrics, summed over every thread, in Prometheus text
/// format (nothing before the first request).
pub(super) fn render(out: &mut String) {
    let mut routes: BTreeMap<Box<str>, Route> = BTreeMap::new();
    let shards = lock(&SHARDS).clone();
    for shard in shards {
        for (route, counts) in &lock(&shard).routes {
            routes.entry(route.clone()).or_default().add(counts);
        }
    }
    if routes.is_empty() {
        return;
    }
    // Writing into a `String` cannot fail.
    let _ = write_text(out, &routes);
}

fn write_text(out: &mut String, routes: &BTreeMap<Box<str>, Route>) -> std::fmt::Result {
    writeln!(out, "# HELP {HTTP_REQUESTS} {}", super::HTTP_REQUESTS_HELP)?;
    writeln!(out, "# TYPE {HTTP_REQUESTS} counter")?;
    for (route, counts) in routes {
        let route = escaped(route);
        let mut answered = counts.answered.clone();
        answered.sort_unstable();
        for (method, status, n) in answered {
            writeln!(
                out,
                r#"{HTTP_REQUESTS}{{route="{route}",method="{method}",status="{status}"}} {n}"#
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "# HELP {HTTP_SECONDS} {}", super::HTTP_SECONDS_HELP)?;
    writeln!(out, "# TYPE {HTTP_SECONDS} histogram")?;
    for (route, counts) in routes {
        let route = escaped(route);
        let mut latencies = counts.latencies.clone();
        latencies.sort_unstable_by_key(|(method, _)| *method);
        for (method, latency) in latencies {
            let labels = format!(r#"route="{route}",method="{method}""#);
            let mut below = 0;
            for (bound, n) in BUCKETS.iter().zip(latency.buckets) {
                below += n;
                writeln!(
                    out,
                    r#"{HTTP_SECONDS}_bucket{{{labels},le="{bound}"}} {below}"#
                )?;
            }
            writeln!(
                out,
                r#"{HTTP_SECONDS}_bucket{{{labels},le="+Inf"}} {}"#,
                latency.count
            )?;
            writeln!(out, "{HTTP_SECONDS}_sum{{{labels}}} {}", latency.sum)?;
            writeln!(out, "{HTTP_SECONDS}_count{{{labels}}} {}", latency.count)?;
        }
    }
    writeln!(out)
}

/// `value` as a label value: `\`, `"` and line feeds escaped.
fn escaped(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the line of `text` that starts with `series` and a
    /// space.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn counts_from_every_thread_add_up() {
        let route = format!("/test/{}", uuid::Uuid::new_v4());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let route = route.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        record(&route, "GET", 200, Duration::from_micros(700));
                    }
                    record(&route, "POST", 400, Duration::from_secs(60));
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        record(&route, "GET", 200, Duration::from_millis(3));

        let mut text = String::new();
        render(&mut text);
        let get = format!(r#"route="{route}",method="GET""#);
        let post = format!(r#"route="{route}",method="POST""#);
        let total = |labels: &str, status: u16| {
            value(
                &text,
                &format!(r#"http_requests_total{{{labels},status="{status}"}}"#),
            )
        };
        assert_eq!(total(&get, 200), Some(1001.0), "{text}");
        assert_eq!(total(&post, 400), Some(4.0), "{text}");
        assert_eq!(total(&get, 400), None, "{text}");
        let bucket = |labels: &str, le: &str| {
            value(
                &text,
                &format!(r#"http_request_duration_seconds_bucket{{{labels},le="{le}"}}"#),
            )
        };
        // Cumulative: 0.7 ms is over 0.5 ms and within 1 ms; 3 ms within 5.
        assert_eq!(bucket(&get, "0.0005"), Some(0.0), "{text}");
        assert_eq!(bucket(&get, "0.001"), Some(1000.0), "{text}");
        assert_eq!(bucket(&get, "0.0025"), Some(1000.0), "{text}");
        assert_eq!(bucket(&get, "0.005"), Some(1001.0), "{text}");
        assert_eq!(bucket(&get, "+Inf"), Some(1001.0), "{text}");
        // A minute is past every bound: only in +Inf.
        assert_eq!(bucket(&post, "30"), Some(0.0), "{text}");
        assert_eq!(bucket(&post, "+Inf"), Some(4.0), "{text}");
        let count = value(
            &text,
            &format!("http_request_duration_seconds_count{{{get}}}"),
        );
        assert_eq!(count, Some(1001.0), "{text}");
        let sum = value(
            &text,
            &format!("http_request_duration_seconds_sum{{{get}}}"),
        )
        .unwrap();
        assert!((sum - (1000.0 * 0.0007 + 0.003)).abs() < 1e-9, "{sum}");
        assert!(
            text.contains("# TYPE http_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escaped(r#"/a"b\c"#), r#"/a\"b\\c"#);
        assert_eq!(escaped("a\nb"), r"a\nb");
        assert_eq!(
            escaped("/{version}/users/{id}/presence"),
            "/{version}/users/{id}/presence"
        );
    }
}
