//! Durable storage of per-user facts.
//!
//! One trait, [`Store`], describes what the server needs, in its own words;
//! every method is one atomic unit per user inside the backend (one SQLite
//! transaction today, one Redis script tomorrow) and receives `now` rather
//! than reading a clock. Driver types never leave this module.
//!
//! Backends: [`sqlite::SqliteStore`] (the embedded default, group-committed
//! and durable before it answers) and [`memory::MemoryStore`] (tests). The
//! shared conformance suite lives in `contract.rs`.

mod change;
mod codec;
#[cfg(test)]
mod contract;
pub mod memory;
pub mod sqlite;

use async_trait::async_trait;
use uuid::Uuid;

pub use change::Change;

use crate::clock::Instant;
use crate::domain::{Session, SessionKind, UserFacts, UserKey};

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
}

/// A user's facts just before and just after a write, so callers can compute
/// the effective presence on both sides (change notifications, ROADMAP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Facts as they were read inside the write's transaction.
    pub before: UserFacts,
    /// Facts as they were committed.
    pub after: UserFacts,
}

/// The storage contract. Every backend passes `contract.rs`.
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

    /// Users whose effective presence may change at or before `by` (their
    /// next transition as computed at their last write), at most `limit`.
    /// The schedule that change notifications will wake on.
    async fn due_users(&self, by: Instant, limit: usize) -> Result<Vec<UserKey>, StoreError>;

    /// Checks the backend can serve reads and writes (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Persists the emulator clock's time (keeping the later of the stored
    /// and the given one), so a restarted emulator never starts before facts
    /// it already stored.
    async fn save_emulator_time(&self, now: Instant) -> Result<(), StoreError>;

    /// The emulator clock's last persisted time.
    async fn emulator_time(&self) -> Result<Option<Instant>, StoreError>;

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
