//! Durable storage of per-user facts.
//!
//! One trait, [`Store`], describes what the server needs, in its own words;
//! every method is one atomic unit per user inside the backend (one SQLite
//! transaction today, one Redis script tomorrow) and receives `now` rather
//! than reading a clock. Driver types never leave this module.
//!
//! Backends: [`sqlite::SqliteStore`] (the embedded default, group-committed
//! and durable before it answers), [`redis::RedisStore`] (one Redis server or
//! a Redis Cluster shared by several nodes) and [`memory::MemoryStore`]
//! (tests). The shared conformance suite lives in `contract/`.

pub mod codec;
#[cfg(test)]
mod contract;
/// A sample subscription for unit tests elsewhere (the contract suite's).
#[cfg(test)]
pub(crate) use contract::notify::subscription as sample_subscription;
pub mod memory;
mod records;
pub mod redis;
mod resident;
pub mod sqlite;
mod wal;

use async_trait::async_trait;
use uuid::Uuid;

pub use crate::domain::Change;
pub(crate) use records::conflict_with;
pub use records::{
    observe, Delivery, Event, LifecycleEvent, NewDelivery, Observed, Payload, Subscription,
    SubscriptionConflict,
};

use crate::clock::Instant;
use crate::domain::{DomainError, Session, SessionKind, UserFacts, UserKey, Visibility};

/// What can go wrong in a store, independent of the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The thing to change does not exist (e.g. clearPresence of an unknown
    /// session).
    #[error("{0}")]
    NotFound(String),
    /// The backend cannot serve the request now (I/O error, shutting down).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// This backend does not offer the operation (it says which do).
    #[error("{0}")]
    Unsupported(String),
}

impl From<DomainError> for StoreError {
    fn from(e: DomainError) -> Self {
        // The only rule a stored change can break is a missing session.
        StoreError::NotFound(e.to_string())
    }
}

/// A user's facts just before and just after a write, and what it meant for
/// watchers, all decided inside the write's atomic unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Facts as they were read inside the write's transaction.
    pub before: UserFacts,
    /// Facts as they were committed.
    pub after: UserFacts,
    /// What changed for watchers.
    pub visibility: Visibility,
    /// The event-log entry recorded with the write, if the resource changed.
    pub event: Option<u64>,
    /// How many webhook deliveries were queued with the write.
    pub queued: usize,
}

/// The retained part of the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventBounds {
    /// Every event with a `seq` above this is still retained (events up to
    /// and including it may have been pruned).
    pub pruned_through: u64,
    /// The newest event's `seq` (0 when none was ever recorded).
    pub last: u64,
}

/// Everything a store holds about presence and subscriptions: what the
/// emulator's state document (`GET`/`PUT /_presenced/state`) carries.
/// The event log, queued deliveries, kept secrets and the emulator time
/// are not part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// Every user with stored facts, ordered by key; users whose stored
    /// facts cannot be decoded are left out.
    pub users: Vec<(UserKey, UserFacts)>,
    /// Every subscription, ordered by tenant and id.
    pub subscriptions: Vec<Subscription>,
}

/// What other nodes sharing a store may have changed, read in one go by
/// each node's peer watcher (`notify::peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedState {
    /// The newest event `seq`.
    pub last_event: u64,
    /// A counter every subscription change moves.
    pub subscriptions: u64,
    /// The emulator clock's last persisted time.
    pub emulator_time: Option<Instant>,
}

/// How much a store holds, for the metrics gauges (`None` where a backend
/// cannot count cheaply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    /// Users with stored facts.
    pub users: Option<u64>,
    /// Users holding at least one session (online, as of their last
    /// settle).
    pub users_with_sessions: Option<u64>,
    /// Sessions held: the live ones, plus any that expired since their
    /// user was last settled (the scheduler prunes them at their expiry).
    pub sessions: Option<u64>,
    /// Stored subscriptions, expired ones not yet removed included.
    pub subscriptions: Option<u64>,
}

/// The storage contract. Every backend passes `contract/`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies one change to one user atomically and durably; answers only
    /// once the write is durable. `now` stamps the write and prunes facts
    /// that expired before it.
    async fn apply(
        &self,
        key: UserKey,
        change: Change,
        now: Instant,
    ) -> Result<Applied, StoreError>;

    /// The facts of `users` in `tenant`, in the order asked; a user never
    /// written reads as empty facts.
    async fn facts_for(&self, tenant: Uuid, users: &[Uuid]) -> Result<Vec<UserFacts>, StoreError>;

    /// Processes the time-driven transitions of one user up to `at` (SPEC
    /// §7: fades and expiries notify like writes): atomically prunes what
    /// expired, records an event and queues deliveries when watchers see a
    /// change. `None` when the user was already observed at or after `at`.
    /// At a due time kept earlier than the transition (see
    /// [`Store::due_users`]) it changes nothing a watcher sees and moves the
    /// user's schedule on.
    async fn settle(&self, key: UserKey, at: Instant) -> Result<Option<Applied>, StoreError>;

    /// Users whose effective presence may change at or before `by`, each with
    /// its next transition instant, earliest first, at most `limit`. The
    /// schedule the notification scheduler wakes on.
    ///
    /// An instant is never later than the user's next transition, but a
    /// store may give an earlier one (the SQLite store does not move a due
    /// time later on every write): settling the user at it then changes
    /// nothing a watcher sees and stores the next transition, which the next
    /// call gives.
    async fn due_users(
        &self,
        by: Instant,
        limit: usize,
    ) -> Result<Vec<(UserKey, Instant)>, StoreError>;

    /// The earliest next transition of any user.
    async fn next_due(&self) -> Result<Option<Instant>, StoreError> {
        Ok(self
            .due_users(crate::clock::latest_instant(), 1)
            .await?
            .first()
            .map(|(_, t)| *t))
    }

    /// Events after `after` (exclusive), oldest first, at most `limit`; only
    /// `tenant`'s when given.
    async fn events_since(
        &self,
        tenant: Option<Uuid>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;

    /// The retained range of the event log.
    async fn event_bounds(&self) -> Result<EventBounds, StoreError>;

    /// Drops the oldest events, in log order, as long as they were recorded
    /// before `before` (events are not recorded in time order: a settle at
    /// a transition's instant can follow a later write, so an older event
    /// after a newer one waits for it); returns how many were dropped.
    async fn prune_events(&self, before: Instant) -> Result<u64, StoreError>;

    /// Creates a subscription unless it conflicts; with `one_per_user_and_app`
    /// (Graph's limit) a second subscription of the same creator and app is
    /// a conflict too.
    async fn create_subscription(
        &self,
        subscription: Subscription,
        one_per_user_and_app: bool,
    ) -> Result<Result<(), SubscriptionConflict>, StoreError>;

    /// One subscription of `tenant` (expired ones included; callers decide).
    async fn subscription(
        &self,
        tenant: Uuid,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError>;

    /// The subscriptions of `tenant` created by `app_id`.
    async fn subscriptions_of(
        &self,
        tenant: Uuid,
        app_id: &str,
    ) -> Result<Vec<Subscription>, StoreError>;

    /// Replaces a stored subscription (same id and tenant); `false` when it
    /// no longer exists.
    async fn update_subscription(&self, subscription: Subscription) -> Result<bool, StoreError>;

    /// Deletes a subscription and its pending deliveries; `false` when it
    /// did not exist.
    async fn delete_subscription(&self, tenant: Uuid, id: Uuid) -> Result<bool, StoreError>;

    /// Subscriptions that need lifecycle work at or before `by`: expired
    /// ones, and ones within `reauthorize_before` of expiry whose
    /// `reauthorizationRequired` has not been queued.
    async fn subscriptions_due(
        &self,
        by: Instant,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Vec<Subscription>, StoreError>;

    /// The earliest instant at which some subscription needs lifecycle work.
    async fn next_subscription_deadline(
        &self,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Option<Instant>, StoreError>;

    /// Queues deliveries, due at `now`.
    async fn enqueue(&self, deliveries: Vec<NewDelivery>, now: Instant) -> Result<(), StoreError>;

    /// Deliveries due at or before `now`, earliest first, at most `limit`,
    /// leaving out the ids in `skip` (in flight).
    async fn due_deliveries(
        &self,
        now: Instant,
        limit: usize,
        skip: &[u64],
    ) -> Result<Vec<Delivery>, StoreError>;

    /// The earliest `next_at` of a queued delivery not in `skip`.
    async fn next_delivery_at(&self, skip: &[u64]) -> Result<Option<Instant>, StoreError>;

    /// Removes deliveries (delivered or given up).
    async fn remove_deliveries(&self, ids: &[u64]) -> Result<(), StoreError>;

    /// Counts a failed attempt on each delivery and makes it due at `next_at`.
    async fn retry_deliveries(&self, ids: &[u64], next_at: Instant) -> Result<(), StoreError>;

    /// Keeps a named secret: stores `candidate` unless a value exists, and
    /// returns the kept value (the notification signing key survives
    /// restarts).
    async fn keep_secret(&self, name: &str, candidate: String) -> Result<String, StoreError>;

    /// For a store several nodes share (Redis): what any node may have
    /// changed. `None` (the default) for a store only this process writes.
    async fn shared_state(&self) -> Result<Option<SharedState>, StoreError> {
        Ok(None)
    }

    /// Stops accepting writes; queued writes finish. Default: nothing to do.
    fn close(&self) {}

    /// Checks the backend can serve reads and writes (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Persists the emulator clock's time (keeping the later of the stored
    /// and the given one), so a restarted emulator never starts before facts
    /// it already stored.
    async fn save_emulator_time(&self, now: Instant) -> Result<(), StoreError>;

    /// The emulator clock's last persisted time.
    async fn emulator_time(&self) -> Result<Option<Instant>, StoreError>;

    /// Every user's facts and every subscription, as one consistent
    /// snapshot (the emulator's `GET /_presenced/state`).
    async fn contents(&self) -> Result<Contents, StoreError>;

    /// Wipes `tenant`'s users, subscriptions, queued deliveries and events,
    /// or every tenant's when `None`, atomically. Kept secrets and the
    /// emulator time stay. After a wipe of every tenant the whole event
    /// log counts as pruned (a reader resuming from before it is told to
    /// start over).
    async fn reset(&self, tenant: Option<Uuid>) -> Result<(), StoreError>;

    /// Replaces everything with `contents` atomically: a [`Store::reset`]
    /// of every tenant, then the users' facts and the subscriptions as
    /// given (each subscription watching its users). `now` schedules the
    /// users' next transitions that have no settled instant.
    async fn replace(&self, contents: Contents, now: Instant) -> Result<(), StoreError>;

    /// Up to `limit` of `tenant`'s users, each with its facts, in user-id
    /// order and after `after` when given: every user written at least
    /// once and not wiped since (the users listing, `GET /_presenced/users`).
    async fn users_page(
        &self,
        tenant: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<(Uuid, UserFacts)>, StoreError>;

    /// How many users, sessions and subscriptions the store holds (read
    /// when metrics are scraped).
    async fn counts(&self) -> Result<StoreCounts, StoreError>;

    /// Creates or refreshes a session (setPresence).
    async fn upsert_session(
        &self,
        key: UserKey,
        session: Session,
        now: Instant,
    ) -> Result<Applied, StoreError> {
        self.apply(key, Change::UpsertSession(session), now).await
    }

    /// Removes a live session (clearPresence); `NotFound` if there is none.
    async fn remove_session(
        &self,
        key: UserKey,
        kind: SessionKind,
        id: &str,
        now: Instant,
    ) -> Result<Applied, StoreError> {
        let change = Change::RemoveSession {
            kind,
            id: id.to_string(),
        };
        self.apply(key, change, now).await
    }

    /// The facts of one user.
    async fn facts(&self, key: UserKey) -> Result<UserFacts, StoreError> {
        let mut all = self.facts_for(key.tenant, &[key.user]).await?;
        all.pop()
            .ok_or_else(|| StoreError::Corrupt("facts_for returned nothing".into()))
    }
}
