//! Reading SQLite: the pool of read-only connections, loading the resident
//! copy at open, and decoding rows.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use uuid::Uuid;

use super::{unavailable, Health};
use crate::clock::Instant;
use crate::domain::{UserFacts, UserKey};
use crate::store::codec::{decode, unreadable};
use crate::store::resident::{Compact, Interner, Resident};
use crate::store::StoreError;

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// Users put into the resident copy at once while loading.
const LOAD_CHUNK: usize = 1024;

pub(super) struct ReadPool {
    pub(super) path: PathBuf,
    pub(super) idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(super) fn take(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        Ok(conn)
    }

    pub(super) fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

/// Decodes the `version` and `facts` columns of a `users` row, at `column`
/// and the one after it. Conversions are checked here, per row: an error
/// must not fail a whole read or load. A row that does not decode is
/// counted, logged and read as [`UserFacts::unreadable`].
pub(super) fn facts_in_row(
    row: &rusqlite::Row<'_>,
    column: usize,
    key: UserKey,
    health: &Health,
) -> UserFacts {
    let version = row
        .get::<_, i64>(column)
        .ok()
        .and_then(|v| u64::try_from(v).ok());
    let bytes = row
        .get_ref(column + 1)
        .map_err(|e| e.to_string())
        .and_then(|v| v.as_blob().map_err(|e| e.to_string()));
    let decoded = match (version, bytes) {
        (Some(version), Ok(bytes)) => decode(bytes, version),
        (None, _) => Err(StoreError::Corrupt("version is not a count".into())),
        (_, Err(e)) => Err(StoreError::Corrupt(format!("facts column: {e}"))),
    };
    decoded.unwrap_or_else(|e| {
        health.unreadable_row("facts", key, &e);
        unreadable(version.unwrap_or(0))
    })
}

/// Reads every user's facts into a new resident copy, row by row: a row
/// that does not decode is counted, logged and kept as unreadable (the
/// user reads as PresenceUnknown until a write replaces it), as a read
/// used to do. Also returns the interner that shared the session ids, for
/// the writer to go on with.
pub(super) fn load(conn: &Connection, health: &Health) -> Result<(Resident, Interner), StoreError> {
    let started = std::time::Instant::now();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .map_err(unavailable)?;
    let resident = Resident::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut ids = Interner::default();
    let mut stmt = conn
        .prepare("SELECT tenant, user, version, facts, next_change FROM users")
        .map_err(unavailable)?;
    let mut rows = stmt.query([]).map_err(unavailable)?;
    let mut batch = Vec::with_capacity(LOAD_CHUNK);
    while let Some(row) = rows.next().map_err(unavailable)? {
        let key = match (row.get_ref(0), row.get_ref(1)) {
            (Ok(tenant), Ok(user)) => tenant
                .as_blob()
                .ok()
                .zip(user.as_blob().ok())
                .and_then(|(t, u)| Some((Uuid::from_slice(t).ok()?, Uuid::from_slice(u).ok()?))),
            _ => None,
        };
        let Some((tenant, user)) = key else {
            // No read can ask for it (keys are 16-byte ids), so it is only
            // reported.
            tracing::warn!("a users row whose key is not two ids is ignored");
            continue;
        };
        let key = UserKey { tenant, user };
        let facts = facts_in_row(row, 2, key, health);
        // A due time that is not an integer reads as none stored: the
        // user's next write stores the right one.
        let scheduled = row.get::<_, Option<i64>>(4).ok().flatten();
        batch.push((key, Compact::of(&facts, &mut ids).scheduled_at(scheduled)));
        if batch.len() == LOAD_CHUNK {
            resident.publish(batch.drain(..));
        }
    }
    resident.publish(batch);
    tracing::info!(
        users = resident.len(),
        ms = started.elapsed().as_millis() as u64,
        "loaded users' facts"
    );
    Ok((resident, ids))
}

/// The sequence number of the last event ever appended (`None` before the
/// first), whether or not it has been pruned since.
pub(super) fn last_event_seq(conn: &Connection) -> Result<Option<i64>, StoreError> {
    conn.query_row(
        "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(unavailable)
}

pub(super) fn uuid(bytes: &[u8]) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn instant(micros: i64) -> Result<Instant, StoreError> {
    chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("instant {micros} out of range")))
}
