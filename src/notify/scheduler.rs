//! The scheduler of time-driven changes (SPEC §7): fades, session and
//! preferred-presence expiries, status-message expiries, and subscription
//! lifecycle deadlines. It sleeps until the next due instant the store
//! knows (`Store::due_users`), never polls, and processes each user at the
//! instant its transition fell due, in time order, so watchers see every
//! intermediate state (Available → AvailableInactive → Away).

use futures_util::future::join_all;

use super::Notifier;
use crate::clock::Instant;
use crate::store::{LifecycleEvent, NewDelivery, Payload, StoreError};

/// How many due users one pass step settles concurrently (the store's group
/// commit folds them into few transactions).
const SETTLE_BATCH: usize = 512;

/// How long before expiry `reauthorizationRequired` is sent (SPEC §7).
pub const REAUTHORIZE_BEFORE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// What one pass processed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    /// Users whose transitions were settled.
    pub settled: usize,
    /// Subscriptions that expired and were deleted.
    pub expired: usize,
    /// `reauthorizationRequired` notifications queued.
    pub reauthorizations: usize,
}

impl Notifier {
    /// Processes every transition and lifecycle deadline up to `until`, in
    /// time order, and queues what they notify. Passes never overlap; the
    /// emulator's clock endpoint calls this before it answers.
    pub async fn run_due(&self, until: Instant) -> Result<PassReport, StoreError> {
        let _one_pass = self.pass.lock().await;
        let mut report = PassReport::default();
        loop {
            let due = self.store.due_users(until, SETTLE_BATCH).await?;
            if due.is_empty() {
                break;
            }
            let settles = due.iter().map(|(key, at)| self.store.settle(*key, *at));
            let mut progressed = false;
            for result in join_all(settles).await {
                if let Some(applied) = result? {
                    self.bus.published(&applied);
                    report.settled += 1;
                    progressed = true;
                }
            }
            if !progressed {
                // Every due user was already settled past its instant: the
                // schedule cannot move further without a write.
                tracing::warn!(count = due.len(), "due users made no progress");
                break;
            }
        }
        for mut subscription in self
            .store
            .subscriptions_due(until, REAUTHORIZE_BEFORE)
            .await?
        {
            if subscription.expires_at <= until {
                self.store
                    .delete_subscription(subscription.tenant, subscription.id)
                    .await?;
                tracing::info!(subscription = %subscription.id, "subscription expired and was deleted");
                report.expired += 1;
            } else if !subscription.reauthorization_sent {
                if subscription.lifecycle_url.is_some() {
                    let notice = NewDelivery {
                        subscription: subscription.id,
                        tenant: subscription.tenant,
                        payload: Payload::Lifecycle {
                            event: LifecycleEvent::ReauthorizationRequired,
                        },
                    };
                    let at = subscription.expires_at - REAUTHORIZE_BEFORE;
                    self.store.enqueue(vec![notice], at.min(until)).await?;
                    self.bus.deliveries_queued();
                    report.reauthorizations += 1;
                }
                subscription.reauthorization_sent = true;
                self.store.update_subscription(subscription).await?;
            }
        }
        self.prune_events(until).await?;
        Ok(report)
    }

    /// Drops events older than the retention (SPEC §8: at least 24 hours).
    async fn prune_events(&self, now: Instant) -> Result<(), StoreError> {
        let Some(cutoff) = now.checked_sub_signed(self.settings.event_retention) else {
            return Ok(());
        };
        let mut last = self.last_prune.lock().await;
        // At most once a minute of presence time: pruning is a write.
        if last.is_some_and(|t| now - t < chrono::TimeDelta::minutes(1)) {
            return Ok(());
        }
        *last = Some(now);
        let pruned = self.store.prune_events(cutoff).await?;
        if pruned > 0 {
            tracing::debug!(pruned, "pruned old events");
        }
        Ok(())
    }

    /// The next instant the scheduler must wake at by itself.
    async fn next_wake(&self) -> Result<Option<Instant>, StoreError> {
        let users = self.store.next_due().await?;
        let subscriptions = self
            .store
            .next_subscription_deadline(REAUTHORIZE_BEFORE)
            .await?;
        Ok([users, subscriptions].into_iter().flatten().min())
    }

    /// The scheduler task: a pass at start (transitions that fell due while
    /// the server was down), then sleep until the next due instant or a
    /// wake-up from the write path, until cancelled.
    pub(crate) async fn schedule(self: std::sync::Arc<Self>) {
        loop {
            let now = self.clock.now();
            let wake = match self.run_due(now).await {
                Ok(_) => self.next_wake().await,
                Err(e) => Err(e),
            };
            let wake = match wake {
                Ok(wake) => wake,
                Err(e) => {
                    tracing::error!(error = %e, "scheduler pass failed; retrying in a second");
                    tokio::select! {
                        () = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    }
                }
            };
            self.bus.sleeping_until(wake);
            let clock = self.clock.clone();
            let sleep = async move {
                match wake {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = self.bus.schedule.notified() => {}
                () = sleep => {}
            }
        }
    }
}
