//! The event log as stored: an event's blob and how it reads back.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::parse::{instant, number};
use super::{corrupt, RedisStore};
use crate::domain::UserKey;
use crate::store::codec::{decode, unreadable};
use crate::store::{Event, StoreError};

/// An event as stored: who, when, and the facts after the change.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredEvent {
    pub(super) t: Uuid,
    pub(super) u: Uuid,
    pub(super) at: i64,
    pub(super) v: u64,
    pub(super) f: String,
}

impl RedisStore {
    pub(super) fn parse_event(seq: &str, blob: &str) -> Result<Event, StoreError> {
        let seq: u64 = number(seq)?;
        let stored: StoredEvent = serde_json::from_str(blob).map_err(corrupt)?;
        let facts = decode(stored.f.as_bytes(), stored.v).unwrap_or_else(|e| {
            tracing::warn!(seq, error = %e, "unreadable event facts in redis");
            unreadable(stored.v)
        });
        Ok(Event {
            seq,
            key: UserKey {
                tenant: stored.t,
                user: stored.u,
            },
            at: instant(stored.at)?,
            facts,
        })
    }
}
