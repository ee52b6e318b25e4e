//! Learning what other nodes did, for a store several nodes share (Redis).
//!
//! The [`Bus`](super::Bus) only carries this process's signals. With a
//! shared store, a node polls [`Store::shared_state`](crate::store::Store::shared_state) a few times a second
//! and turns what moved into the same signals: a newer event wakes event
//! streams, the delivery worker and the scheduler; a subscription change
//! empties the subscription cache; a later emulator time moves this node's
//! manual clock. Deliveries are also nudged every [`NUDGE_EVERY`], so one
//! whose claim lapsed on a dead node is picked up. A store only this
//! process writes answers `None` and the watcher ends at once.

use std::sync::Arc;
use std::time::Duration;

use super::Notifier;
use crate::store::SharedState;

/// How often the shared state is read.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How often deliveries are nudged regardless.
const NUDGE_EVERY: Duration = Duration::from_secs(2);

impl Notifier {
    /// The peer watcher task; ends when cancelled or when the store is not
    /// shared.
    pub(crate) async fn watch_peers(self: Arc<Self>) {
        let mut known = match self.store.shared_state().await {
            Ok(None) => return,
            Ok(Some(state)) => state,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the shared store state yet");
                SharedState::default()
            }
        };
        let mut every = tokio::time::interval(POLL_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_nudge = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let state = match self.store.shared_state().await {
                Ok(Some(state)) => state,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the shared store state");
                    continue;
                }
            };
            self.learn(&known, &state);
            if last_nudge.elapsed() >= NUDGE_EVERY {
                last_nudge = tokio::time::Instant::now();
                self.bus.deliveries_queued();
            }
            known = state;
        }
    }

    /// Turns what moved between `known` and `now` into local signals.
    fn learn(&self, known: &SharedState, now: &SharedState) {
        if now.subscriptions != known.subscriptions {
            self.subscriptions.forget_all();
            self.bus.reschedule();
        }
        if let (Some(manual), Some(shared)) = (self.clock.manual(), now.emulator_time) {
            if shared > crate::clock::Clock::now(manual) && manual.set(shared).is_ok() {
                self.bus.reschedule();
                self.bus.deliveries_queued();
            }
        }
        if now.last_event > known.last_event {
            self.bus.seen_event(now.last_event);
            self.bus.deliveries_queued();
            self.bus.reschedule();
        }
    }
}
