//! An in-memory store for unit tests. Not durable; never used by `serve`.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use super::change::due_at;
use super::{Applied, Change, Store, StoreError};
use crate::clock::Instant;
use crate::domain::{UserFacts, UserKey};

/// Facts in a map behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<UserKey, UserFacts>>,
    emulator_time: Mutex<Option<Instant>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<UserKey, UserFacts>>, StoreError> {
        self.users
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
        let mut users = self.lock()?;
        let facts = users.entry(key).or_default();
        let before = facts.clone();
        change.apply_to(facts, now)?;
        Ok(Applied {
            before,
            after: facts.clone(),
        })
    }

    async fn facts_for(&self, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<UserFacts>, StoreError> {
        let users = self.lock()?;
        Ok(ids
            .iter()
            .map(|user| {
                users
                    .get(&UserKey {
                        tenant,
                        user: *user,
                    })
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn due_users(&self, by: Instant, limit: usize) -> Result<Vec<UserKey>, StoreError> {
        let users = self.lock()?;
        let mut due: Vec<(Instant, UserKey)> = users
            .iter()
            .filter_map(|(k, f)| f.updated_at.and_then(|at| due_at(f, at)).map(|t| (t, *k)))
            .filter(|(t, _)| *t <= by)
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, k)| k).collect())
    }

    async fn save_emulator_time(&self, now: Instant) -> Result<(), StoreError> {
        let mut t = self
            .emulator_time
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))?;
        *t = Some(t.map_or(now, |prev| prev.max(now)));
        Ok(())
    }

    async fn emulator_time(&self) -> Result<Option<Instant>, StoreError> {
        self.emulator_time
            .lock()
            .map(|t| *t)
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}
