//! The one path every presence write takes (DESIGN.md): an authorised,
//! validated change goes to the store, which applies it and records, in
//! the same atomic unit, what it meant for watchers (an event, queued
//! deliveries); the service then wakes the background work. Handlers in
//! `http` parse, authorise, call this and render; they never touch the
//! store for writes.

use std::sync::Arc;

use uuid::Uuid;

use crate::clock::Instant;
use crate::domain::{Change, UserFacts, UserKey};
use crate::notify::Bus;
use crate::store::{Applied, Store, StoreError};

/// Presence reads and writes over one store.
#[derive(Clone)]
pub struct PresenceService {
    store: Arc<dyn Store>,
    bus: Arc<Bus>,
}

impl std::fmt::Debug for PresenceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceService").finish_non_exhaustive()
    }
}

impl PresenceService {
    /// A service writing to `store` and announcing on `bus`.
    pub fn new(store: Arc<dyn Store>, bus: Arc<Bus>) -> Self {
        Self { store, bus }
    }

    /// Applies `change` to `key` at `now`, durably; the answer comes after
    /// the commit, and any change event is already recorded and announced.
    ///
    /// The span is at `debug`, as the handlers' are: at `info` it formatted
    /// two ids per write that no line at `info` read (the request's span
    /// and access line already say who and where; the stores' warnings
    /// name the user themselves).
    #[tracing::instrument(level = "debug", skip_all, fields(tenant = %key.tenant, user = %key.user))]
    pub async fn apply(
        &self,
        key: UserKey,
        change: Change,
        now: Instant,
    ) -> Result<Applied, StoreError> {
        let applied = self.store.apply(key, change, now).await?;
        self.bus.published(&applied);
        Ok(applied)
    }

    /// The facts of one user.
    pub async fn facts(&self, key: UserKey) -> Result<UserFacts, StoreError> {
        self.store.facts(key).await
    }

    /// The facts of many users of one tenant, in the order asked.
    pub async fn facts_for(
        &self,
        tenant: Uuid,
        users: &[Uuid],
    ) -> Result<Vec<UserFacts>, StoreError> {
        self.store.facts_for(tenant, users).await
    }

    /// Up to `limit` of `tenant`'s users with their facts, in user-id
    /// order, after `after` (the users listing).
    pub async fn users_page(
        &self,
        tenant: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<(Uuid, UserFacts)>, StoreError> {
        self.store.users_page(tenant, after, limit).await
    }
}
