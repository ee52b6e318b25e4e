//! The injected clock.
//!
//! Effective presence is a pure function of stored facts and the current time
//! (DESIGN.md), so every instant the server reasons with comes from a
//! [`Clock`]. [`SystemClock`] follows wall time; [`ManualClock`] stands still
//! until moved, which makes 5- and 10-minute timeouts testable in
//! milliseconds (tests and `serve --manual-clock`).
//!
//! This is the only module allowed to read wall time (`clippy.toml` bans
//! `Utc::now` and `SystemTime::now` elsewhere).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A UTC instant, the only kind of time the server stores or compares.
pub type Instant = DateTime<Utc>;

/// Source of "now" for presence computations.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// Waits until the clock reads `t` or later.
    async fn sleep_until(&self, t: Instant);

    /// Whether this clock only moves when told to (emulator mode).
    fn manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// Reads real wall time. Used for bearer-token `exp`/`nbf` checks, which must
/// follow real time even when presence follows a [`ManualClock`] (SPEC §8).
#[allow(clippy::disallowed_methods)] // the one sanctioned reader of wall time
pub fn wall_now() -> Instant {
    Utc::now()
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Instant {
        wall_now()
    }

    /// Loops until the clock reads `t`: one timer can wake early (timer
    /// granularity, the wall clock stepped back), and a wake-up before `t`
    /// would process a transition before it is due.
    async fn sleep_until(&self, t: Instant) {
        loop {
            let Ok(wait) = (t - self.now()).to_std() else {
                return; // `t` has passed
            };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// A clock that stands still until moved. Clones share one time; moving it
/// wakes every sleeper whose instant has come.
#[derive(Debug, Clone)]
pub struct ManualClock {
    time: Arc<watch::Sender<Instant>>,
}

/// The earliest instant a [`ManualClock`] may show: the Unix epoch,
/// 1970-01-01T00:00:00Z. Instants before it have negative timestamps, which
/// `sequenceNumber` (SPEC §2, microseconds since the epoch) cannot order.
pub fn earliest_instant() -> Instant {
    chrono::DateTime::UNIX_EPOCH
}

/// The latest instant a [`ManualClock`] may show: the end of year 9999,
/// the last instant Graph's date-times can express.
pub fn latest_instant() -> Instant {
    chrono::DateTime::from_timestamp(253_402_300_799, 0)
        .expect("9999-12-31T23:59:59Z is representable")
}

/// Whether `t` lies in the emulator clock's range, [`earliest_instant`] to
/// [`latest_instant`] inclusive (`--start-time`, `POST /_presenced/clock`).
pub fn in_clock_range(t: Instant) -> bool {
    (earliest_instant()..=latest_instant()).contains(&t)
}

/// Refusal to move a [`ManualClock`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackwardsError {
    /// The clock never moves backwards.
    #[error("the clock cannot move backwards (now {now}, asked for {asked})")]
    Backwards {
        /// The clock's current time.
        now: Instant,
        /// The instant that was asked for.
        asked: Instant,
    },
    /// The clock stays between the Unix epoch and the end of year 9999.
    #[error("the clock can only show instants from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z")]
    OutOfRange,
}

impl ManualClock {
    /// A manual clock reading `start`, brought into the clock's range
    /// ([`in_clock_range`]; `--start-time` is checked against it before).
    pub fn new(start: Instant) -> Self {
        let (tx, _rx) = watch::channel(start.clamp(earliest_instant(), latest_instant()));
        Self { time: Arc::new(tx) }
    }

    /// Moves the clock forward by `by` (negative durations are refused) and
    /// returns the new time.
    pub fn advance(&self, by: chrono::Duration) -> Result<Instant, BackwardsError> {
        self.update(|now| {
            let t = now
                .checked_add_signed(by)
                .ok_or(BackwardsError::OutOfRange)?;
            Self::check(now, t)
        })
    }

    /// Sets the clock to `t`, which must not be earlier than now; returns the
    /// new time.
    pub fn set(&self, t: Instant) -> Result<Instant, BackwardsError> {
        self.update(|now| Self::check(now, t))
    }

    /// Where the clock would be after `advance(by)`, without moving it.
    pub fn after(&self, by: chrono::Duration) -> Result<Instant, BackwardsError> {
        let now = *self.time.borrow();
        let t = now
            .checked_add_signed(by)
            .ok_or(BackwardsError::OutOfRange)?;
        Self::check(now, t)
    }

    /// Checks a move from `now` to `t`: the range first, so an instant
    /// outside it is refused for that reason even when it is also earlier.
    fn check(now: Instant, t: Instant) -> Result<Instant, BackwardsError> {
        if !in_clock_range(t) {
            Err(BackwardsError::OutOfRange)
        } else if t < now {
            Err(BackwardsError::Backwards { now, asked: t })
        } else {
            Ok(t)
        }
    }

    /// Moves the clock to `target(now)` atomically: concurrent moves never
    /// start from the same reading.
    fn update(
        &self,
        target: impl FnOnce(Instant) -> Result<Instant, BackwardsError>,
    ) -> Result<Instant, BackwardsError> {
        let mut result = Err(BackwardsError::OutOfRange);
        self.time.send_if_modified(|now| {
            result = target(*now);
            match result {
                Ok(t) if t != *now => {
                    *now = t;
                    true
                }
                _ => false,
            }
        });
        result
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.time.borrow()
    }

    async fn sleep_until(&self, t: Instant) {
        let mut rx = self.time.subscribe();
        // `wait_for` checks the current value first, then every change.
        let _ = rx.wait_for(|now| *now >= t).await;
    }

    fn manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> Instant {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    #[test]
    fn manual_clock_stands_still_until_moved() {
        let clock = ManualClock::new(t0());
        assert_eq!(clock.now(), t0());
        let moved = clock.advance(chrono::Duration::minutes(5)).unwrap();
        assert_eq!(moved, t0() + chrono::Duration::minutes(5));
        assert_eq!(clock.now(), moved);
    }

    #[test]
    fn manual_clock_refuses_to_go_backwards() {
        let clock = ManualClock::new(t0());
        let err = clock.set(t0() - chrono::Duration::seconds(1)).unwrap_err();
        assert!(matches!(err, BackwardsError::Backwards { now, .. } if now == t0()));
        assert!(clock.advance(chrono::Duration::seconds(-1)).is_err());
        assert_eq!(clock.now(), t0());
    }

    #[test]
    fn manual_clock_stops_at_the_end_of_year_9999() {
        let clock = ManualClock::new(t0());
        assert_eq!(clock.set(latest_instant()), Ok(latest_instant()));
        assert_eq!(
            clock.advance(chrono::Duration::seconds(1)),
            Err(BackwardsError::OutOfRange)
        );
        assert_eq!(
            clock.advance(chrono::Duration::MAX),
            Err(BackwardsError::OutOfRange)
        );
        assert_eq!(clock.now(), latest_instant());
    }

    #[test]
    fn manual_clock_refuses_instants_before_1970() {
        let clock = ManualClock::new(earliest_instant());
        assert_eq!(
            clock.set(earliest_instant() - chrono::Duration::seconds(1)),
            Err(BackwardsError::OutOfRange)
        );
        assert_eq!(
            clock.advance(chrono::Duration::MIN),
            Err(BackwardsError::OutOfRange)
        );
        // Out of range is the reason even when the move is also backwards.
        let later = ManualClock::new(t0());
        assert_eq!(
            later.set(Utc.with_ymd_and_hms(1969, 7, 20, 20, 17, 0).unwrap()),
            Err(BackwardsError::OutOfRange)
        );
        assert_eq!(clock.now(), earliest_instant());
        assert_eq!(
            BackwardsError::OutOfRange.to_string(),
            "the clock can only show instants from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn the_clock_range_is_1970_to_the_end_of_9999_inclusive() {
        assert_eq!(
            earliest_instant(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            latest_instant(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
        );
        assert!(in_clock_range(earliest_instant()));
        assert!(in_clock_range(latest_instant()));
        assert!(!in_clock_range(
            earliest_instant() - chrono::Duration::nanoseconds(1)
        ));
        assert!(!in_clock_range(
            latest_instant() + chrono::Duration::nanoseconds(1)
        ));
    }

    #[test]
    fn a_new_manual_clock_starts_inside_the_range() {
        let before = Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(ManualClock::new(before).now(), earliest_instant());
        let after = chrono::DateTime::<Utc>::MAX_UTC;
        assert_eq!(ManualClock::new(after).now(), latest_instant());
    }

    #[test]
    fn sequence_numbers_rise_with_fades_at_both_ends_of_the_range() {
        use crate::domain::{effective, Activity, Availability, Session, SessionKind};
        use crate::domain::{SessionPair, UserFacts};
        let fade = chrono::Duration::minutes(5);
        // Written at the first instant; faded at the last one.
        for (written, read) in [
            (earliest_instant(), earliest_instant() + fade),
            (latest_instant() - fade, latest_instant()),
        ] {
            let facts = UserFacts {
                sessions: vec![Session {
                    kind: SessionKind::Application,
                    id: "app".into(),
                    pair: SessionPair::new(Availability::Available, Activity::Available)
                        .expect("a valid pair"),
                    last_active: written,
                    expires_at: written + chrono::Duration::hours(1),
                }],
                version: 1,
                updated_at: Some(written),
                ..Default::default()
            };
            let at_write = effective(&facts, written);
            let just_before = effective(&facts, read - chrono::Duration::microseconds(1));
            let faded = effective(&facts, read);
            assert_eq!(faded.activity, Activity::AvailableInactive);
            assert_eq!(at_write.sequence_number, just_before.sequence_number);
            assert!(
                faded.sequence_number > at_write.sequence_number,
                "{} > {} at {read}",
                faded.sequence_number,
                at_write.sequence_number
            );
            // 16 hex digits of version, 16 of the microsecond it began.
            let since = i64::from_str_radix(&faded.sequence_number[16..], 16).unwrap();
            assert_eq!(since, read.timestamp_micros());
        }
    }

    #[test]
    fn concurrent_advances_all_count() {
        let clock = ManualClock::new(t0());
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || clock.advance(chrono::Duration::minutes(1)).unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(clock.now(), t0() + chrono::Duration::minutes(40));
    }

    #[test]
    fn after_predicts_a_move_without_making_it() {
        let clock = ManualClock::new(t0());
        assert_eq!(
            clock.after(chrono::Duration::hours(1)),
            Ok(t0() + chrono::Duration::hours(1))
        );
        assert_eq!(clock.now(), t0());
        assert!(clock.after(chrono::Duration::hours(-1)).is_err());
    }

    #[test]
    fn clones_share_one_time() {
        let a = ManualClock::new(t0());
        let b = a.clone();
        a.advance(chrono::Duration::hours(1)).unwrap();
        assert_eq!(b.now(), t0() + chrono::Duration::hours(1));
    }

    #[tokio::test]
    async fn the_system_clock_never_wakes_a_sleeper_early() {
        let target = SystemClock.now() + chrono::Duration::milliseconds(30);
        SystemClock.sleep_until(target).await;
        assert!(SystemClock.now() >= target);
        // A past instant returns at once.
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            SystemClock.sleep_until(target - chrono::Duration::hours(1)),
        )
        .await
        .expect("a past instant does not wait");
    }

    #[tokio::test]
    async fn sleepers_wake_when_the_clock_reaches_them() {
        let clock = ManualClock::new(t0());
        let target = t0() + chrono::Duration::minutes(10);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(target).await })
        };
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(chrono::Duration::minutes(10)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .unwrap();
    }
}
