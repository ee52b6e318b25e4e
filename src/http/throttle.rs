//! Graph's throttling (SPEC §6), off by default: `--rate-limit N/WINDOW`
//! (Graph publishes 1,500 requests per 30 seconds per application per
//! tenant for presence). Each (tenant, application) has a token bucket of
//! N requests refilled evenly over the window; beyond it a request gets
//! `429 TooManyRequests` with `Retry-After` (whole seconds until one
//! request is allowed again). Other applications and tenants are not
//! affected. Real time, not the presence clock: throttling protects the
//! server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// A rate: `requests` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window (the bucket's size).
    pub requests: u32,
    /// The window over which the bucket refills completely.
    pub window: Duration,
}

impl RateLimit {
    /// Parses `N/WINDOW`, WINDOW being a number of seconds, minutes or hours
    /// with a unit (`1500/30s`, `100/1m`, `10000/1h`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("'{text}' is not a rate such as 1500/30s (requests per window of s, m or h)")
        };
        let (n, window) = text.trim().split_once('/').ok_or_else(bad)?;
        let requests: u32 = n.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let unit = window.chars().last().ok_or_else(bad)?;
        let amount: u64 = window[..window.len() - unit.len_utf8()]
            .parse()
            .map_err(|_| bad())?;
        let seconds = match unit {
            's' => amount,
            'm' => amount.checked_mul(60).ok_or_else(bad)?,
            'h' => amount.checked_mul(3600).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        if requests == 0 || seconds == 0 || seconds > 86_400 {
            return Err(format!(
                "'{text}' must allow at least one request over a window of 1 s to 24 h"
            ));
        }
        Ok(Self {
            requests,
            window: Duration::from_secs(seconds),
        })
    }
}

/// One bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every (tenant, application) seen recently.
#[derive(Debug)]
pub struct Throttle {
    limit: RateLimit,
    buckets: Mutex<HashMap<(Uuid, String), Bucket>>,
}

impl Throttle {
    /// A throttle enforcing `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `(tenant, app)` at `now`: `Ok` when allowed,
    /// else `Err(seconds)` to wait before retrying (at least 1).
    pub fn take(&self, tenant: Uuid, app: &str, now: Instant) -> Result<(), u64> {
        let capacity = f64::from(self.limit.requests);
        let per_second = capacity / self.limit.window.as_secs_f64();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(()); // never refuse service because of a poisoned lock
        };
        if buckets.len() > 100_000 {
            // Forget buckets that have refilled completely.
            buckets.retain(|_, b| now.duration_since(b.at) < self.limit.window);
        }
        let bucket = buckets.entry((tenant, app.to_string())).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            // Whole seconds, rounded up, at least one.
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_seconds_minutes_or_hours() {
        assert_eq!(
            RateLimit::parse("1500/30s"),
            Ok(RateLimit {
                requests: 1500,
                window: Duration::from_secs(30)
            })
        );
        assert_eq!(
            RateLimit::parse("100/2m").unwrap().window,
            Duration::from_secs(120)
        );
        assert_eq!(
            RateLimit::parse("5/1h").unwrap().window,
            Duration::from_secs(3600)
        );
        for bad in [
            "1500", "x/30s", "10/30", "10/30d", "0/30s", "10/0s", "10/", "/30s", "10/2h5",
        ] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_full_bucket_allows_its_size_then_says_when_to_retry() {
        let throttle = Throttle::new(RateLimit::parse("3/30s").unwrap());
        let (tenant, t) = (Uuid::new_v4(), Instant::now());
        for _ in 0..3 {
            assert_eq!(throttle.take(tenant, "app", t), Ok(()));
        }
        assert_eq!(throttle.take(tenant, "app", t), Err(10));
        // Another application, another tenant: their own buckets.
        assert_eq!(throttle.take(tenant, "other", t), Ok(()));
        assert_eq!(throttle.take(Uuid::new_v4(), "app", t), Ok(()));
        // One request's worth refills in 10 s.
        assert_eq!(
            throttle.take(tenant, "app", t + Duration::from_secs(9)),
            Err(1)
        );
        assert_eq!(
            throttle.take(tenant, "app", t + Duration::from_secs(10)),
            Ok(())
        );
    }
}
