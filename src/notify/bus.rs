//! The in-process signals between the write path and the background work:
//! a new event in the log, deliveries queued, an earlier transition to
//! schedule. The durable record is always the store; these only wake.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::{watch, Notify};

use crate::clock::Instant;
use crate::domain::due_at;
use crate::store::Applied;

/// Wakes the scheduler, the delivery worker and event-stream readers.
#[derive(Debug)]
pub struct Bus {
    /// The newest event `seq` known to be committed.
    events: watch::Sender<u64>,
    /// Deliveries were queued.
    pub(crate) deliveries: Notify,
    /// Something may now be due earlier than the scheduler planned.
    pub(crate) schedule: Notify,
    /// The instant (µs) the scheduler sleeps until; `i64::MAX` when idle.
    scheduled_for: AtomicI64,
}

impl Default for Bus {
    fn default() -> Self {
        Self {
            events: watch::channel(0).0,
            deliveries: Notify::new(),
            schedule: Notify::new(),
            scheduled_for: AtomicI64::new(i64::MAX),
        }
    }
}

impl Bus {
    /// Announces what a committed write or settle recorded.
    pub fn published(&self, applied: &Applied) {
        if let Some(seq) = applied.event {
            self.events.send_if_modified(|last| {
                let newer = seq > *last;
                *last = (*last).max(seq);
                newer
            });
        }
        if applied.queued > 0 {
            self.deliveries.notify_one();
        }
        let settled = applied
            .after
            .settled_at
            .unwrap_or(chrono::DateTime::UNIX_EPOCH);
        if let Some(next) = due_at(&applied.after, settled) {
            if next.timestamp_micros() < self.scheduled_for.load(Ordering::Acquire) {
                self.schedule.notify_one();
            }
        }
    }

    /// Wakes the scheduler (e.g. a subscription with an earlier deadline).
    pub fn reschedule(&self) {
        self.schedule.notify_one();
    }

    /// Wakes the delivery worker.
    pub fn deliveries_queued(&self) {
        self.deliveries.notify_one();
    }

    /// Records when the scheduler will next wake by itself.
    pub(crate) fn sleeping_until(&self, t: Option<Instant>) {
        let micros = t.map_or(i64::MAX, |t| t.timestamp_micros());
        self.scheduled_for.store(micros, Ordering::Release);
    }

    /// A receiver of the newest committed event `seq`.
    pub fn events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Raises the newest known event `seq` (at start, from the store).
    pub fn seen_event(&self, seq: u64) {
        self.events.send_if_modified(|last| {
            let newer = seq > *last;
            *last = (*last).max(seq);
            newer
        });
    }
}
