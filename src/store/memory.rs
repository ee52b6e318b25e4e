//! An in-memory store: unit tests and, later, the emulator's `--in-memory`
//! mode. Not durable. Everything sits behind one mutex, so each method is
//! trivially atomic.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use uuid::Uuid;

use super::records::{conflict_with, deadline, lifecycle_due};
use super::{
    observe, Applied, Change, Contents, Delivery, Event, EventBounds, NewDelivery, Store,
    StoreError, Subscription, SubscriptionConflict,
};
use crate::clock::Instant;
use crate::domain::{due_at, settle, UserFacts, UserKey, Visibility};

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<UserKey, UserFacts>,
    events: VecDeque<Event>,
    last_event: u64,
    pruned_through: u64,
    subscriptions: HashMap<Uuid, Subscription>,
    watchers: HashMap<UserKey, HashSet<Uuid>>,
    outbox: BTreeMap<u64, Delivery>,
    last_delivery: u64,
    secrets: HashMap<String, String>,
    emulator_time: Option<Instant>,
}

impl Inner {
    /// Records what a write or a settle meant for watchers: an event when
    /// the resource changed, deliveries when its presence did.
    fn record(&mut self, key: UserKey, before: UserFacts, now: Instant) -> Applied {
        let after = self.users.get(&key).cloned().unwrap_or_default();
        let observed = observe(key.user, &before, &after);
        let mut event = None;
        let mut queued = 0;
        if observed.visibility != Visibility::Unchanged {
            self.last_event += 1;
            event = Some(self.last_event);
            self.events.push_back(Event {
                seq: self.last_event,
                key,
                at: after.settled_at.unwrap_or(now),
                facts: after.clone(),
            });
        }
        if observed.visibility == Visibility::Presence {
            let watching: Vec<Uuid> = self
                .watchers
                .get(&key)
                .map(|w| w.iter().copied().collect())
                .unwrap_or_default();
            for id in watching {
                if self
                    .subscriptions
                    .get(&id)
                    .is_some_and(|s| s.expires_at > now)
                {
                    self.push_delivery(
                        NewDelivery {
                            subscription: id,
                            tenant: key.tenant,
                            payload: observed.payload.clone(),
                        },
                        now,
                    );
                    queued += 1;
                }
            }
        }
        Applied {
            before,
            after,
            visibility: observed.visibility,
            event,
            queued,
        }
    }

    fn push_delivery(&mut self, d: NewDelivery, now: Instant) {
        self.last_delivery += 1;
        self.outbox.insert(
            self.last_delivery,
            Delivery {
                id: self.last_delivery,
                subscription: d.subscription,
                tenant: d.tenant,
                payload: d.payload,
                created_at: now,
                next_at: now,
                attempts: 0,
            },
        );
    }

    /// Wipes `tenant`'s data, or everyone's (see [`Store::reset`]).
    fn reset(&mut self, tenant: Option<Uuid>) {
        let keep = |t: Uuid| tenant.is_some_and(|wiped| wiped != t);
        self.users.retain(|k, _| keep(k.tenant));
        self.events.retain(|e| keep(e.key.tenant));
        self.subscriptions.retain(|_, s| keep(s.tenant));
        self.watchers.retain(|k, _| keep(k.tenant));
        self.outbox.retain(|_, d| keep(d.tenant));
        if tenant.is_none() {
            self.pruned_through = self.last_event;
        }
    }

    fn watch(&mut self, s: &Subscription, on: bool) {
        for user in &s.users {
            let key = UserKey {
                tenant: s.tenant,
                user: *user,
            };
            let set = self.watchers.entry(key).or_default();
            if on {
                set.insert(s.id);
            } else {
                set.remove(&s.id);
            }
        }
    }
}

/// Everything in maps behind one mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn apply(
        &self,
        key: UserKey,
        change: Change,
        now: Instant,
    ) -> Result<Applied, StoreError> {
        let mut inner = self.lock()?;
        let before = inner.users.get(&key).cloned().unwrap_or_default();
        let mut after = before.clone();
        change.apply_to(&mut after, now)?;
        inner.users.insert(key, after);
        Ok(inner.record(key, before, now))
    }

    async fn settle(&self, key: UserKey, at: Instant) -> Result<Option<Applied>, StoreError> {
        let mut inner = self.lock()?;
        let Some(facts) = inner.users.get_mut(&key) else {
            return Ok(None);
        };
        let before = facts.clone();
        if !settle(facts, at) {
            return Ok(None);
        }
        Ok(Some(inner.record(key, before, at)))
    }

    async fn facts_for(&self, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<UserFacts>, StoreError> {
        let inner = self.lock()?;
        Ok(ids
            .iter()
            .map(|user| {
                inner
                    .users
                    .get(&UserKey {
                        tenant,
                        user: *user,
                    })
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn due_users(
        &self,
        by: Instant,
        limit: usize,
    ) -> Result<Vec<(UserKey, Instant)>, StoreError> {
        let inner = self.lock()?;
        let mut due: Vec<(Instant, UserKey)> = inner
            .users
            .iter()
            .filter_map(|(k, f)| {
                f.settled_at
                    .or(f.updated_at)
                    .and_then(|at| due_at(f, at))
                    .map(|t| (t, *k))
            })
            .filter(|(t, _)| *t <= by)
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(t, k)| (k, t)).collect())
    }

    async fn events_since(
        &self,
        tenant: Option<Uuid>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .events
            .iter()
            .filter(|e| e.seq > after && tenant.is_none_or(|t| e.key.tenant == t))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn event_bounds(&self) -> Result<EventBounds, StoreError> {
        let inner = self.lock()?;
        Ok(EventBounds {
            pruned_through: inner.pruned_through,
            last: inner.last_event,
        })
    }

    async fn prune_events(&self, before: Instant) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let mut pruned = 0;
        while inner.events.front().is_some_and(|e| e.at < before) {
            if let Some(e) = inner.events.pop_front() {
                inner.pruned_through = e.seq;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    async fn create_subscription(
        &self,
        subscription: Subscription,
        one_per_user_and_app: bool,
    ) -> Result<Result<(), SubscriptionConflict>, StoreError> {
        let mut inner = self.lock()?;
        if let Some(conflict) = conflict_with(
            inner.subscriptions.values(),
            &subscription,
            one_per_user_and_app,
        ) {
            return Ok(Err(conflict));
        }
        inner.watch(&subscription, true);
        inner.subscriptions.insert(subscription.id, subscription);
        Ok(Ok(()))
    }

    async fn subscription(
        &self,
        tenant: Uuid,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .subscriptions
            .get(&id)
            .filter(|s| s.tenant == tenant)
            .cloned())
    }

    async fn subscriptions_of(
        &self,
        tenant: Uuid,
        app_id: &str,
    ) -> Result<Vec<Subscription>, StoreError> {
        let inner = self.lock()?;
        let mut out: Vec<Subscription> = inner
            .subscriptions
            .values()
            .filter(|s| s.tenant == tenant && s.app_id == app_id)
            .cloned()
            .collect();
        out.sort_by_key(|s| (s.created_at, s.id));
        Ok(out)
    }

    async fn update_subscription(&self, subscription: Subscription) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        match inner.subscriptions.get_mut(&subscription.id) {
            Some(s) if s.tenant == subscription.tenant => {
                *s = subscription;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_subscription(&self, tenant: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        match inner.subscriptions.get(&id) {
            Some(s) if s.tenant == tenant => {
                let s = s.clone();
                inner.watch(&s, false);
                inner.subscriptions.remove(&id);
                inner.outbox.retain(|_, d| d.subscription != id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn subscriptions_due(
        &self,
        by: Instant,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Vec<Subscription>, StoreError> {
        let inner = self.lock()?;
        Ok(lifecycle_due(
            inner.subscriptions.values(),
            by,
            reauthorize_before,
        ))
    }

    async fn next_subscription_deadline(
        &self,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Option<Instant>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .subscriptions
            .values()
            .map(|s| deadline(s, reauthorize_before))
            .min())
    }

    async fn enqueue(&self, deliveries: Vec<NewDelivery>, now: Instant) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for d in deliveries {
            inner.push_delivery(d, now);
        }
        Ok(())
    }

    async fn due_deliveries(
        &self,
        now: Instant,
        limit: usize,
        skip: &[u64],
    ) -> Result<Vec<Delivery>, StoreError> {
        let skip: std::collections::HashSet<u64> = skip.iter().copied().collect();
        let inner = self.lock()?;
        let mut due: Vec<Delivery> = inner
            .outbox
            .values()
            .filter(|d| d.next_at <= now && !skip.contains(&d.id))
            .cloned()
            .collect();
        due.sort_by_key(|d| (d.next_at, d.id));
        due.truncate(limit);
        Ok(due)
    }

    async fn next_delivery_at(&self, skip: &[u64]) -> Result<Option<Instant>, StoreError> {
        let skip: std::collections::HashSet<u64> = skip.iter().copied().collect();
        let inner = self.lock()?;
        Ok(inner
            .outbox
            .values()
            .filter(|d| !skip.contains(&d.id))
            .map(|d| d.next_at)
            .min())
    }

    async fn remove_deliveries(&self, ids: &[u64]) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for id in ids {
            inner.outbox.remove(id);
        }
        Ok(())
    }

    async fn retry_deliveries(&self, ids: &[u64], next_at: Instant) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for id in ids {
            if let Some(d) = inner.outbox.get_mut(id) {
                d.attempts += 1;
                d.next_at = next_at;
            }
        }
        Ok(())
    }

    async fn keep_secret(&self, name: &str, candidate: String) -> Result<String, StoreError> {
        let mut inner = self.lock()?;
        Ok(inner
            .secrets
            .entry(name.to_string())
            .or_insert(candidate)
            .clone())
    }

    async fn save_emulator_time(&self, now: Instant) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.emulator_time = Some(inner.emulator_time.map_or(now, |prev| prev.max(now)));
        Ok(())
    }

    async fn emulator_time(&self) -> Result<Option<Instant>, StoreError> {
        Ok(self.lock()?.emulator_time)
    }

    async fn contents(&self) -> Result<Contents, StoreError> {
        let inner = self.lock()?;
        let mut users: Vec<(UserKey, UserFacts)> =
            inner.users.iter().map(|(k, f)| (*k, f.clone())).collect();
        users.sort_by_key(|(k, _)| *k);
        let mut subscriptions: Vec<Subscription> = inner.subscriptions.values().cloned().collect();
        subscriptions.sort_by_key(|s| (s.tenant, s.id));
        Ok(Contents {
            users,
            subscriptions,
        })
    }

    async fn users_page(
        &self,
        tenant: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<(Uuid, UserFacts)>, StoreError> {
        let inner = self.lock()?;
        // Keys first, facts cloned for the page only: the lock is held
        // for a sort of ids, not a copy of the tenant.
        let mut ids: Vec<Uuid> = inner
            .users
            .keys()
            .filter(|k| k.tenant == tenant && after.is_none_or(|a| k.user > a))
            .map(|k| k.user)
            .collect();
        ids.sort_unstable();
        ids.truncate(limit);
        Ok(ids
            .into_iter()
            .filter_map(|user| {
                let facts = inner.users.get(&UserKey { tenant, user })?;
                Some((user, facts.clone()))
            })
            .collect())
    }

    async fn counts(&self) -> Result<super::StoreCounts, StoreError> {
        let inner = self.lock()?;
        let sessions = inner
            .users
            .values()
            .map(|f| f.sessions.len())
            .sum::<usize>();
        let online = inner.users.values().filter(|f| !f.sessions.is_empty());
        Ok(super::StoreCounts {
            users: Some(inner.users.len() as u64),
            users_with_sessions: Some(online.count() as u64),
            sessions: Some(sessions as u64),
            subscriptions: Some(inner.subscriptions.len() as u64),
        })
    }

    async fn reset(&self, tenant: Option<Uuid>) -> Result<(), StoreError> {
        self.lock()?.reset(tenant);
        Ok(())
    }

    async fn replace(&self, contents: Contents, _now: Instant) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.reset(None);
        inner.users.extend(contents.users);
        for s in contents.subscriptions {
            inner.watch(&s, true);
            inner.subscriptions.insert(s.id, s);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}
