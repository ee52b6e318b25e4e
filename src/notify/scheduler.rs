//! The scheduler of time-driven changes (SPEC §7): fades, session and
//! preferred-presence expiries, status-message expiries, and subscription
//! lifecycle deadlines. It sleeps until the next due instant the store
//! knows (`Store::due_users`), never polls, and processes each user at the
//! instant its transition fell due, in time order, so watchers see every
//! intermediate state (Available → AvailableInactive → Away).

use futures_util::future::join_all;

use super::{Notifier, Until};
use crate::clock::Instant;
use crate::store::{LifecycleEvent, NewDelivery, Payload, StoreError};

/// How many due users one pass step settles concurrently. The store's group
/// commit folds them into transactions of up to 1,024 writes; a step of
/// several transactions' worth keeps the writer busy back to back (the
/// first transaction starts with the few writes queued by then, the next
/// ones are full), where a step of one transaction's worth waited for
/// every commit, and read the schedule again, between small batches.
const SETTLE_BATCH: usize = 4096;

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
        let mut previous = Vec::new();
        loop {
            let due = self.store.due_users(until, SETTLE_BATCH).await?;
            if due.is_empty() {
                break;
            }
            if due == previous {
                // Every due user was already settled past its instant: the
                // schedule cannot move further without a write. (A settle
                // that changes nothing may still move the schedule on: a
                // store may keep a due time earlier than the transition.)
                tracing::warn!(count = due.len(), "due users made no progress");
                break;
            }
            let settles = due.iter().map(|(key, at)| self.store.settle(*key, *at));
            for result in join_all(settles).await {
                if let Some(applied) = result? {
                    self.bus.published(&applied);
                    report.settled += 1;
                }
            }
            previous = due;
        }
        for mut subscription in self
            .store
            .subscriptions_due(until, REAUTHORIZE_BEFORE)
            .await?
        {
            if subscription.expires_at <= until {
                self.delete_stored(subscription.tenant, subscription.id)
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
                self.update_stored(subscription).await?;
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
        // The instant the pass about to run was due, when it was slept for.
        let mut due: Option<Instant> = None;
        loop {
            let now = self.clock.now();
            // A write may wake the scheduler before its due instant: only a
            // pass at or after it says how late it ran. A manual clock jumps
            // past due instants by design: no lag to speak of.
            let manual = self.clock.manual().is_some();
            if let Some(due) = due.take().filter(|due| *due <= now && !manual) {
                crate::metrics::scheduler_lag(now - due);
            }
            let wake = match self.run_due(now).await {
                Ok(_) => self.next_wake().await,
                Err(e) => Err(e),
            };
            let wake = match wake {
                Ok(wake) => wake,
                Err(e) if self.back_off("a scheduler pass", &e).await => continue,
                Err(_) => return,
            };
            if wake.is_some_and(|t| t <= now) {
                // A pass left something due at or before the time it ran
                // for: it cannot progress without a write. Do not spin.
                tracing::warn!(?wake, "the schedule did not move forward; waiting a second");
                let second = Until::Real(std::time::Duration::from_secs(1));
                if !self.idle(second, &self.bus.schedule).await {
                    return;
                }
                continue;
            }
            self.bus.sleeping_until(wake);
            if !self.idle(Until::Clock(wake), &self.bus.schedule).await {
                return;
            }
            due = wake;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeDelta, TimeZone, Utc};
    use proptest::prelude::*;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;
    use uuid::Uuid;

    use super::super::{Bus, Notifier, NotifySettings};
    use crate::clock::{Clock, Instant, ManualClock};
    use crate::domain::{
        effective, Activity, Availability, Change, Preferred, PreferredPair, Session, SessionKind,
        SessionPair, UserFacts, UserKey,
    };
    use crate::store::memory::MemoryStore;
    use crate::store::Store;

    fn t0() -> Instant {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    /// One step of a scenario: a write at the current minute, or a move
    /// of the clock by whole minutes.
    #[derive(Debug, Clone)]
    enum Step {
        Session { app: u8, pair: u8, minutes: i64 },
        Clear { app: u8 },
        Preferred { pair: u8, minutes: i64 },
        ClearPreferred,
        Advance(i64),
    }

    const SESSION_PAIRS: [(Availability, Activity); 4] = [
        (Availability::Available, Activity::Available),
        (Availability::Busy, Activity::InACall),
        (Availability::Away, Activity::Away),
        (Availability::DoNotDisturb, Activity::Presenting),
    ];
    const PREFERRED_PAIRS: [(Availability, Activity); 2] = [
        (Availability::Busy, Activity::Busy),
        (Availability::BeRightBack, Activity::BeRightBack),
    ];

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..2, 0u8..4, 5i64..40).prop_map(|(app, pair, minutes)| Step::Session {
                app,
                pair,
                minutes
            }),
            (0u8..2).prop_map(|app| Step::Clear { app }),
            (0u8..2, 5i64..40).prop_map(|(pair, minutes)| Step::Preferred { pair, minutes }),
            Just(Step::ClearPreferred),
            (0i64..25).prop_map(Step::Advance),
        ]
    }

    fn change(step: &Step, now: Instant) -> Option<Change> {
        Some(match *step {
            Step::Session { app, pair, minutes } => {
                let (av, ac) = SESSION_PAIRS[pair as usize];
                Change::UpsertSession(Session {
                    kind: SessionKind::Application,
                    id: format!("app{app}"),
                    pair: SessionPair::new(av, ac).expect("a valid pair"),
                    last_active: now,
                    expires_at: now + TimeDelta::minutes(minutes),
                })
            }
            Step::Clear { app } => Change::RemoveSession {
                kind: SessionKind::Application,
                id: format!("app{app}"),
            },
            Step::Preferred { pair, minutes } => {
                let (av, ac) = PREFERRED_PAIRS[pair as usize];
                Change::SetPreferred(Preferred {
                    pair: PreferredPair::new(av, ac).expect("a valid pair"),
                    set_at: now,
                    expires_at: now + TimeDelta::minutes(minutes),
                })
            }
            Step::ClearPreferred => Change::ClearPreferred,
            Step::Advance(_) => return None,
        })
    }

    type States = Vec<(Availability, Activity)>;

    /// Runs `steps` through the real pipeline (store, scheduler passes,
    /// event log) and returns the states watchers were told, and the
    /// states a reader sampling every minute saw (consecutive repeats
    /// removed, the initial Offline left out). Every instant is a whole
    /// minute, so sampling each minute sees every transition.
    async fn run(steps: &[Step]) -> (States, States) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let clock = ManualClock::new(t0());
        let notifier = Notifier::new(
            store.clone(),
            Arc::new(clock.clone()),
            Arc::new(Bus::default()),
            NotifySettings::default(),
            TaskTracker::new(),
            CancellationToken::new(),
        )
        .await
        .expect("a notifier");
        let key = UserKey {
            tenant: Uuid::new_v4(),
            user: Uuid::new_v4(),
        };
        let mut model = UserFacts::default();
        let mut seen = vec![(Availability::Offline, Activity::Offline)];
        let mut sample = |facts: &UserFacts, at: Instant| {
            let e = effective(facts, at);
            if seen.last() != Some(&(e.availability, e.activity)) {
                seen.push((e.availability, e.activity));
            }
        };
        for step in steps {
            let now = clock.now();
            if let Step::Advance(minutes) = step {
                for m in 1..=*minutes {
                    sample(&model, now + TimeDelta::minutes(m));
                }
                let to = clock.advance(TimeDelta::minutes(*minutes)).expect("moves");
                notifier.run_due(to).await.expect("a pass");
            } else if let Some(change) = change(step, now) {
                if change.clone().apply_to(&mut model, now).is_ok() {
                    store.apply(key, change, now).await.expect("applied");
                    sample(&model, now);
                }
            }
        }
        let told = store
            .events_since(None, 0, usize::MAX)
            .await
            .expect("events")
            .iter()
            .map(|e| {
                let p = effective(&e.facts, e.at);
                (p.availability, p.activity)
            })
            .collect();
        (told, seen.split_off(1))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn watchers_are_told_exactly_the_sequence_of_effective_states(
            steps in proptest::collection::vec(step(), 1..30)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let (told, seen) = runtime.block_on(run(&steps));
            prop_assert_eq!(told, seen);
        }
    }

    #[tokio::test]
    async fn a_pass_settles_each_transition_at_its_own_instant_in_time_order() {
        let steps = [
            Step::Session {
                app: 0,
                pair: 0,
                minutes: 30,
            },
            Step::Advance(12),
            Step::Session {
                app: 1,
                pair: 1,
                minutes: 5,
            },
            Step::Advance(25),
        ];
        let (told, _) = run(&steps).await;
        assert_eq!(
            told,
            vec![
                (Availability::Available, Activity::Available),
                (Availability::Available, Activity::AvailableInactive),
                (Availability::Away, Activity::Away),
                (Availability::Busy, Activity::InACall),
                (Availability::Away, Activity::Away),
                (Availability::Offline, Activity::Offline),
            ]
        );
    }
}
