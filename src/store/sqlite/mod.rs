//! The embedded default store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only write connection. Requests queue on a
//! channel; the writer takes everything that is waiting, applies it in one
//! transaction and commits once (group commit), then answers every request
//! in the batch. A request is therefore answered only after its write is
//! durable, without paying one fsync per request.
//!
//! Reads of users' facts (getPresence, bulk reads) never touch SQLite: the
//! store keeps a resident copy of every user's facts (`resident.rs`),
//! loaded when it opens and updated by the writer thread for every user a
//! batch changed, after the commit and before the batch is answered. A read
//! is a map lookup on the calling task. The other reads (events,
//! subscriptions, the outbox, the schedule) use a small pool of read-only
//! connections on blocking threads and never wait behind writes (WAL
//! readers see the last committed state).
//!
//! Integrity, because one bad byte must not take down more than it has to:
//! - Opening runs `PRAGMA quick_check` and refuses a damaged file with a
//!   message saying what to do (restore a backup, or move the file away),
//!   instead of starting, reporting ready and failing reads at random.
//! - One process owns a data dir: an exclusive advisory lock on
//!   [`LOCK_FILE`] is held for the store's life; a second server on the
//!   same dir fails to open with "another presenced is using DIR".
//! - Inside a group commit an operation that fails (a broken rule, a SQL
//!   error, a panic) is answered alone and leaves no rows: it failed before
//!   writing, or the batch runs again with each operation in a savepoint
//!   (`write_batch`); only a failure of the transaction itself (BEGIN,
//!   COMMIT, a rollback SQLite made on its own) fails the batch.
//! - A user row whose facts do not decode is logged, counted
//!   ([`SqliteStore::corrupt_rows`]) and read as
//!   [`UserFacts::unreadable`] (PresenceUnknown for that user alone); the
//!   next write for the user replaces it. Rows are met when the store opens
//!   (loading the resident copy) and when the writer reads a row to change
//!   it.
//! - A failed write transaction marks the store not ready
//!   ([`SqliteStore::writes_failing`]) until a later commit succeeds;
//!   readiness probes with a small write while marked, so a server taken
//!   out of rotation for a full disk comes back once there is room again.

mod files;
mod read;
mod replace;
mod schema;
mod subscriptions;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;
use uuid::Uuid;

use self::files::{check_integrity, lock_data_dir, restrict_files};
pub use self::files::{create_private_dir, LOCK_FILE};
use self::read::{facts_in_row, instant, last_event_seq, load, uuid, ReadPool};
use self::schema::{
    mark_pruned_through, migrate_outbox, EMULATOR_TIME, EVENTS_PRUNED_THROUGH, SCHEMA,
    SCHEMA_VERSION, SYNC_SUBSCRIPTION_EXPIRY, WRITE_PROBE,
};
use self::subscriptions::{app_subscriptions, parse_subscription, put_subscription, watch_users};
use self::writer::{insert_delivery, Done, Job, WriteOp, Writer, WRITER_CACHE_KIB};
use super::codec::{decode, unreadable};
use super::records::{conflict_with, deadline};
use super::resident::Resident;
use super::wal::{wait_briefly, Checkpointer, WAL_KEPT_BYTES};
use super::{
    Applied, Change, Contents, Delivery, Event, EventBounds, NewDelivery, Payload, Store,
    StoreError, Subscription, SubscriptionConflict,
};
use crate::clock::Instant;
use crate::domain::{UserFacts, UserKey};

/// What the store has noticed about its own data and writes, shared by the
/// writer thread, the readers and readiness.
#[derive(Debug, Default)]
struct Health {
    /// Rows met (loading, writing, reading events) whose facts do not
    /// decode.
    corrupt_rows: AtomicU64,
    /// The last write transaction failed (BEGIN, COMMIT, or SQLite rolled
    /// it back): disk full, read-only file system, I/O errors.
    writes_failing: AtomicBool,
    /// Values written by readiness probes (each probe changes the row, so
    /// it really has to write).
    probes: AtomicU64,
}

impl Health {
    /// Counts and logs a row that does not decode: who, never what.
    fn unreadable_row(&self, what: &str, key: UserKey, error: &StoreError) {
        self.corrupt_rows.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            tenant = %key.tenant,
            user = %key.user,
            error = %error,
            "stored {what} cannot be decoded; read as PresenceUnknown until a write replaces them"
        );
    }
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    writer: Mutex<Option<mpsc::Sender<WriteOp>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<ReadPool>,
    /// Every user's facts as last committed: what reads of facts answer.
    resident: Arc<Resident>,
    health: Arc<Health>,
    /// Checkpoints the WAL; stopped once the writer has finished.
    checkpointer: Mutex<Option<Checkpointer>>,
    /// Holds the data dir's exclusive lock (see [`lock_data_dir`]); released
    /// when dropped, after the writer thread has finished (declared last:
    /// dropped last).
    _lock: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers.path)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// The database file inside a data directory.
    pub fn file_in(data_dir: &Path) -> PathBuf {
        data_dir.join("presenced.sqlite3")
    }

    /// Opens (creating if needed) the database in `data_dir` and starts the
    /// writer thread. Fails when another process uses the dir (its lock is
    /// held) and, as [`StoreError::Corrupt`], when `PRAGMA quick_check`
    /// finds the file damaged.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let lock = lock_data_dir(data_dir)?;
        let path = Self::file_in(data_dir);
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        check_integrity(&conn, &path)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        restrict_files(&path);
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        // Checkpoints run on a thread of their own (`wal.rs`), never inside
        // a commit that requests wait for.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(unavailable)?;
        // A write flood grows the WAL past the restart limit; give the disk
        // space back when it starts over (see `wal.rs`).
        conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)
            .map_err(unavailable)?;
        // The writer's page cache: SQLite's default (2 MiB) holds too few of
        // the b-tree pages a batch touches, and each miss is a `pread` and a
        // copy from the OS cache; too big a cache slows commits down (see
        // `WRITER_CACHE_KIB`).
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(unavailable)?;
        // When a batch runs guarded (see `write_batch`), SQLite copies the
        // pages each operation changes into a sub-journal to undo it; past
        // a small size that goes to a temp file, a `pwrite` per page. In
        // memory it stays a copy.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(unavailable)?;
        // A checkpoint's RESTART holds the writer off; it goes on as soon
        // as that is over (see `wal.rs`).
        wait_briefly(&conn).map_err(unavailable)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(unavailable)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "{} has schema version {version}, newer than this build's {SCHEMA_VERSION}; upgrade presenced",
                path.display()
            )));
        }
        migrate_outbox(&mut conn).map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        conn.execute_batch(SYNC_SUBSCRIPTION_EXPIRY)
            .map_err(unavailable)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(unavailable)?;
        let health = Arc::new(Health::default());
        let (resident, ids) = load(&conn, &health)?;
        let resident = Arc::new(resident);
        let checkpointer = Checkpointer::start(&path)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            health: health.clone(),
            resident: resident.clone(),
            ids,
        };
        let writer_thread = std::thread::Builder::new()
            .name("presenced-sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(unavailable)?;
        Ok(Self {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Arc::new(ReadPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            resident,
            health,
            checkpointer: Mutex::new(Some(checkpointer)),
            _lock: lock,
        })
    }

    /// Stops accepting writes; the writer thread finishes what is queued and
    /// exits. Reads still work; the data dir stays locked until the store is
    /// dropped.
    pub fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
    }

    /// How many times, since open, the store met a stored row (a user's
    /// facts, an event) that could not be decoded and read it as
    /// PresenceUnknown instead: each damaged user row once when the store
    /// opens, and again each time the writer reads it to change it; each
    /// damaged event each time it is read. Each occurrence is also logged
    /// at `warn`.
    pub fn corrupt_rows(&self) -> u64 {
        self.health.corrupt_rows.load(Ordering::Relaxed)
    }

    /// Whether the last write transaction failed (disk full, read-only file
    /// system, I/O error); cleared by the next commit that writes.
    pub fn writes_failing(&self) -> bool {
        self.health.writes_failing.load(Ordering::Relaxed)
    }

    fn writer_stopped(&self) -> bool {
        self.writer_thread
            .lock()
            .map(|t| t.as_ref().is_none_or(|t| t.is_finished()))
            .unwrap_or(true)
    }

    /// Queues a job for the writer and waits until it is durable.
    async fn write(&self, job: Job, now: Instant) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let writer = self.writer.lock().map_err(unavailable)?;
            let writer = writer
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("the store is shutting down".into()))?;
            writer
                .send(WriteOp { job, now, reply })
                .map_err(|_| StoreError::Unavailable("the sqlite writer has stopped".into()))?;
        }
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the sqlite writer has stopped".into()))?
    }

    /// Runs `f` on the writer thread inside a group-committed transaction
    /// and answers once it is durable. `f` must not change the `users`
    /// table: the resident copy of users' facts only learns of the writes
    /// of [`Job::Apply`] and [`Job::Settle`].
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        now: Instant,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let job = Job::Run(Some(Box::new(move |tx| {
            f(tx).map(|v| Done::Value(Box::new(v) as Box<dyn std::any::Any + Send>))
        })));
        match self.write(job, now).await? {
            Done::Value(v) => v
                .downcast::<T>()
                .map(|v| *v)
                .map_err(|_| StoreError::Unavailable("unexpected writer answer".into())),
            _ => Err(StoreError::Unavailable("unexpected writer answer".into())),
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = f(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(unavailable)?
    }
}

impl Drop for SqliteStore {
    /// Lets the writer finish what is queued before the data dir's lock is
    /// released, so a store opened on the dir next never overlaps it.
    fn drop(&mut self) {
        self.close();
        let thread = self
            .writer_thread
            .get_mut()
            .ok()
            .and_then(|thread| thread.take());
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the sqlite writer thread panicked");
            }
        }
        // A last checkpoint, after the writer's last commit.
        drop(self.checkpointer.get_mut().ok().and_then(Option::take));
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn apply(
        &self,
        key: UserKey,
        change: Change,
        now: Instant,
    ) -> Result<Applied, StoreError> {
        match self.write(Job::Apply { key, change }, now).await? {
            Done::Applied(applied) => Ok(*applied),
            _ => Err(StoreError::Unavailable("unexpected writer answer".into())),
        }
    }

    /// From the resident copy: no SQLite, no blocking thread.
    async fn facts_for(&self, tenant: Uuid, users: &[Uuid]) -> Result<Vec<UserFacts>, StoreError> {
        Ok(self.resident.facts_for(tenant, users))
    }

    /// From the resident copy: no SQLite, no blocking thread.
    async fn facts(&self, key: UserKey) -> Result<UserFacts, StoreError> {
        Ok(self.resident.facts(key))
    }

    async fn settle(&self, key: UserKey, at: Instant) -> Result<Option<Applied>, StoreError> {
        match self.write(Job::Settle { key }, at).await? {
            Done::Settled(applied) => Ok(applied.map(|a| *a)),
            _ => Err(StoreError::Unavailable("unexpected writer answer".into())),
        }
    }

    async fn due_users(
        &self,
        by: Instant,
        limit: usize,
    ) -> Result<Vec<(UserKey, Instant)>, StoreError> {
        let by = by.timestamp_micros();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT tenant, user, next_change FROM users
                     WHERE next_change IS NOT NULL AND next_change <= ?1
                     ORDER BY next_change LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![by, limit], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(unavailable)?;
            rows.map(|row| {
                let (t, u, at) = row.map_err(unavailable)?;
                let key = UserKey {
                    tenant: uuid(&t)?,
                    user: uuid(&u)?,
                };
                Ok((key, instant(at)?))
            })
            .collect()
        })
        .await
    }

    async fn events_since(
        &self,
        tenant: Option<Uuid>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let health = self.health.clone();
        self.read(move |conn| {
            let (sql, tenant_bytes) = match tenant {
                Some(t) => (
                    "SELECT seq, tenant, user, at, version, facts FROM events
                     WHERE tenant = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2",
                    t.as_bytes().to_vec(),
                ),
                None => (
                    "SELECT seq, tenant, user, at, version, facts FROM events
                     WHERE seq > ?1 AND ?3 IS NOT NULL ORDER BY seq LIMIT ?2",
                    Vec::new(),
                ),
            };
            let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
            let rows = stmt
                .query_map(params![after, limit, tenant_bytes], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        // Checked per event below, as for users.
                        r.get::<_, Vec<u8>>(5),
                    ))
                })
                .map_err(unavailable)?;
            rows.map(|row| {
                let (seq, t, u, at, version, facts) = row.map_err(unavailable)?;
                let key = UserKey {
                    tenant: uuid(&t)?,
                    user: uuid(&u)?,
                };
                let version = u64::try_from(version).unwrap_or(0);
                // An event whose facts do not decode still holds its place
                // in the log (a stream must not stall on it): it shows the
                // user as PresenceUnknown.
                let facts = facts
                    .map_err(|e| StoreError::Corrupt(format!("facts column: {e}")))
                    .and_then(|facts| decode(&facts, version))
                    .unwrap_or_else(|e| {
                        health.unreadable_row("event facts", key, &e);
                        unreadable(version)
                    });
                Ok(Event {
                    seq: u64::try_from(seq).map_err(unavailable)?,
                    key,
                    at: instant(at)?,
                    facts,
                })
            })
            .collect()
        })
        .await
    }

    async fn event_bounds(&self) -> Result<EventBounds, StoreError> {
        self.read(|conn| {
            let last = last_event_seq(conn)?;
            let pruned: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [EVENTS_PRUNED_THROUGH],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            Ok(EventBounds {
                pruned_through: pruned.and_then(|p| p.parse().ok()).unwrap_or(0),
                last: last.and_then(|l| u64::try_from(l).ok()).unwrap_or(0),
            })
        })
        .await
    }

    async fn prune_events(&self, before: Instant) -> Result<u64, StoreError> {
        self.run(before, move |tx| {
            // Only the leading run of old events goes, as in the memory
            // store: events are not recorded in time order (a settle at a
            // transition's instant can follow a later write), and
            // `pruned_through` must keep meaning "everything above is kept".
            let (first_kept, last): (Option<i64>, Option<i64>) = tx
                .query_row(
                    "SELECT (SELECT MIN(seq) FROM events WHERE at >= ?1), (SELECT MAX(seq) FROM events)",
                    [before.timestamp_micros()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(unavailable)?;
            let through = match (first_kept, last) {
                (Some(first), _) => Some(first - 1),
                (None, last) => last,
            }
            .filter(|t| *t > 0);
            let Some(through) = through else {
                return Ok(0);
            };
            let n = tx
                .execute("DELETE FROM events WHERE seq <= ?1", [through])
                .map_err(unavailable)?;
            mark_pruned_through(tx, through)?;
            Ok(n as u64)
        })
        .await
    }

    async fn create_subscription(
        &self,
        subscription: Subscription,
        one_per_user_and_app: bool,
    ) -> Result<Result<(), SubscriptionConflict>, StoreError> {
        self.run(subscription.created_at, move |tx| {
            let existing = app_subscriptions(tx, subscription.tenant, &subscription.app_id)?;
            if let Some(c) = conflict_with(existing.iter(), &subscription, one_per_user_and_app) {
                return Ok(Err(c));
            }
            put_subscription(tx, &subscription)?;
            watch_users(tx, &subscription)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn subscription(
        &self,
        tenant: Uuid,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        self.read(move |conn| {
            let record: Option<String> = conn
                .query_row(
                    "SELECT record FROM subscriptions WHERE id = ?1 AND tenant = ?2",
                    params![id.as_bytes(), tenant.as_bytes()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            record.map(|r| parse_subscription(&r)).transpose()
        })
        .await
    }

    async fn subscriptions_of(
        &self,
        tenant: Uuid,
        app_id: &str,
    ) -> Result<Vec<Subscription>, StoreError> {
        let app_id = app_id.to_string();
        self.read(move |conn| {
            let mut out = app_subscriptions(conn, tenant, &app_id)?;
            out.sort_by_key(|s| (s.created_at, s.id));
            Ok(out)
        })
        .await
    }

    async fn update_subscription(&self, subscription: Subscription) -> Result<bool, StoreError> {
        self.run(subscription.created_at, move |tx| {
            let exists = tx
                .query_row(
                    "SELECT 1 FROM subscriptions WHERE id = ?1 AND tenant = ?2",
                    params![subscription.id.as_bytes(), subscription.tenant.as_bytes()],
                    |_| Ok(()),
                )
                .optional()
                .map_err(unavailable)?
                .is_some();
            if exists {
                put_subscription(tx, &subscription)?;
            }
            Ok(exists)
        })
        .await
    }

    async fn delete_subscription(&self, tenant: Uuid, id: Uuid) -> Result<bool, StoreError> {
        self.run(chrono::DateTime::UNIX_EPOCH, move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM subscriptions WHERE id = ?1 AND tenant = ?2",
                    params![id.as_bytes(), tenant.as_bytes()],
                )
                .map_err(unavailable)?;
            if n > 0 {
                tx.execute(
                    "DELETE FROM subscription_expiry WHERE id = ?1",
                    params![id.as_bytes()],
                )
                .map_err(unavailable)?;
                tx.execute(
                    "DELETE FROM watches WHERE tenant = ?1 AND subscription = ?2",
                    params![tenant.as_bytes(), id.as_bytes()],
                )
                .map_err(unavailable)?;
                tx.execute(
                    "DELETE FROM outbox WHERE subscription = ?1",
                    params![id.as_bytes()],
                )
                .map_err(unavailable)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn subscriptions_due(
        &self,
        by: Instant,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Vec<Subscription>, StoreError> {
        let early = reauthorize_before.num_microseconds().unwrap_or(0);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM subscriptions
                     WHERE (CASE WHEN reauth_sent THEN expires_at ELSE expires_at - ?2 END) <= ?1",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![by.timestamp_micros(), early], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(unavailable)?;
            let mut out = rows
                .map(|r| parse_subscription(&r.map_err(unavailable)?))
                .collect::<Result<Vec<_>, _>>()?;
            out.sort_by_key(|s| (deadline(s, reauthorize_before), s.id));
            Ok(out)
        })
        .await
    }

    async fn next_subscription_deadline(
        &self,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Option<Instant>, StoreError> {
        let early = reauthorize_before.num_microseconds().unwrap_or(0);
        self.read(move |conn| {
            let at: Option<i64> = conn
                .query_row(
                    "SELECT MIN(CASE WHEN reauth_sent THEN expires_at ELSE expires_at - ?1 END)
                     FROM subscriptions",
                    [early],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            at.map(instant).transpose()
        })
        .await
    }

    async fn enqueue(&self, deliveries: Vec<NewDelivery>, now: Instant) -> Result<(), StoreError> {
        self.run(now, move |tx| {
            for d in &deliveries {
                insert_delivery(tx, d, now)?;
            }
            Ok(())
        })
        .await
    }

    async fn due_deliveries(
        &self,
        now: Instant,
        limit: usize,
        skip: &[u64],
    ) -> Result<Vec<Delivery>, StoreError> {
        // A set: up to `limit + skip.len()` rows are checked against it.
        let skip: HashSet<u64> = skip.iter().copied().collect();
        let fetch = i64::try_from(limit + skip.len()).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, subscription, tenant, payload, created_at, next_at, attempts
                     FROM outbox WHERE next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![now.timestamp_micros(), fetch], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, sub, tenant, payload, created, next, attempts) =
                    row.map_err(unavailable)?;
                let id = u64::try_from(id).map_err(unavailable)?;
                if skip.contains(&id) || out.len() >= limit {
                    continue;
                }
                out.push(Delivery {
                    id,
                    subscription: uuid(&sub)?,
                    tenant: uuid(&tenant)?,
                    payload: serde_json::from_str::<Payload>(&payload)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    created_at: instant(created)?,
                    next_at: instant(next)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn next_delivery_at(&self, skip: &[u64]) -> Result<Option<Instant>, StoreError> {
        let skip: HashSet<u64> = skip.iter().copied().collect();
        let fetch = i64::try_from(skip.len() + 1).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, next_at FROM outbox ORDER BY next_at, id LIMIT ?1")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([fetch], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(unavailable)?;
            for row in rows {
                let (id, next) = row.map_err(unavailable)?;
                if !skip.contains(&u64::try_from(id).unwrap_or(0)) {
                    return Ok(Some(instant(next)?));
                }
            }
            Ok(None)
        })
        .await
    }

    async fn remove_deliveries(&self, ids: &[u64]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.run(chrono::DateTime::UNIX_EPOCH, move |tx| {
            let mut stmt = tx
                .prepare_cached("DELETE FROM outbox WHERE id = ?1")
                .map_err(unavailable)?;
            for id in ids {
                stmt.execute([i64::try_from(id).map_err(unavailable)?])
                    .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn retry_deliveries(&self, ids: &[u64], next_at: Instant) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.run(next_at, move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, next_at = ?2 WHERE id = ?1",
                )
                .map_err(unavailable)?;
            for id in ids {
                stmt.execute(params![
                    i64::try_from(id).map_err(unavailable)?,
                    next_at.timestamp_micros()
                ])
                .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn keep_secret(&self, name: &str, candidate: String) -> Result<String, StoreError> {
        let key = format!("secret:{name}");
        self.run(chrono::DateTime::UNIX_EPOCH, move |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, candidate],
            )
            .map_err(unavailable)?;
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                r.get::<_, String>(0)
            })
            .map_err(unavailable)
        })
        .await
    }

    async fn save_emulator_time(&self, now: Instant) -> Result<(), StoreError> {
        self.write(Job::SaveEmulatorTime, now).await.map(|_| ())
    }

    async fn emulator_time(&self) -> Result<Option<Instant>, StoreError> {
        self.read(|conn| {
            let value: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [EMULATOR_TIME],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            value
                .map(|v| {
                    v.parse::<i64>()
                        .ok()
                        .and_then(chrono::DateTime::from_timestamp_micros)
                        .ok_or_else(|| StoreError::Corrupt(format!("emulator time {v}")))
                })
                .transpose()
        })
        .await
    }

    fn close(&self) {
        SqliteStore::close(self);
    }

    async fn contents(&self) -> Result<Contents, StoreError> {
        let health = self.health.clone();
        self.read(move |conn| {
            // One read transaction: users and subscriptions of one moment.
            let tx = conn.unchecked_transaction().map_err(unavailable)?;
            let mut users = Vec::new();
            {
                let mut stmt = tx
                    .prepare("SELECT tenant, user, version, facts FROM users ORDER BY tenant, user")
                    .map_err(unavailable)?;
                let mut rows = stmt.query([]).map_err(unavailable)?;
                while let Some(row) = rows.next().map_err(unavailable)? {
                    let tenant = uuid(&row.get::<_, Vec<u8>>(0).map_err(unavailable)?)?;
                    let user = uuid(&row.get::<_, Vec<u8>>(1).map_err(unavailable)?)?;
                    let key = UserKey { tenant, user };
                    let facts = facts_in_row(row, 2, key, &health);
                    if !facts.unreadable {
                        users.push((key, facts));
                    }
                }
            }
            let subscriptions = {
                let mut stmt = tx
                    .prepare("SELECT record FROM subscriptions ORDER BY tenant, id")
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(unavailable)?;
                rows.map(|r| parse_subscription(&r.map_err(unavailable)?))
                    .collect::<Result<Vec<_>, _>>()?
            };
            Ok(Contents {
                users,
                subscriptions,
            })
        })
        .await
    }

    /// The ids from SQLite's `(tenant, user)` key, in order; the facts
    /// from the resident copy. The writer publishes a batch to the copy
    /// just after its commit and before acknowledging it, so a user whose
    /// first write is committed but not yet acknowledged can be listed, for
    /// that instant, with empty facts: a read racing an unacknowledged
    /// write, which may see either side of it.
    async fn users_page(
        &self,
        tenant: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<(Uuid, UserFacts)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let users = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT user FROM users WHERE tenant = ?1 AND user > ?2 ORDER BY user LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                // An empty blob sorts before every 16-byte id.
                let after: Vec<u8> = after.map(|a| a.as_bytes().to_vec()).unwrap_or_default();
                let rows = stmt
                    .query_map(params![tenant.as_bytes().as_slice(), after, limit], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })
                    .map_err(unavailable)?;
                rows.map(|r| uuid(&r.map_err(unavailable)?))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let facts = self.resident.facts_for(tenant, &users);
        Ok(users.into_iter().zip(facts).collect())
    }

    /// Users and sessions from the resident copy's running counts;
    /// subscriptions counted by SQLite.
    async fn counts(&self) -> Result<super::StoreCounts, StoreError> {
        let subscriptions = self
            .read(|conn| {
                conn.query_row("SELECT count(*) FROM subscriptions", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(unavailable)
            })
            .await?;
        Ok(super::StoreCounts {
            users: Some(self.resident.users() as u64),
            users_with_sessions: Some(self.resident.users_with_sessions() as u64),
            sessions: Some(self.resident.sessions() as u64),
            subscriptions: Some(u64::try_from(subscriptions).unwrap_or(0)),
        })
    }

    async fn reset(&self, tenant: Option<Uuid>) -> Result<(), StoreError> {
        let job = Job::Replace {
            tenant,
            contents: None,
        };
        self.write(job, chrono::DateTime::UNIX_EPOCH)
            .await
            .map(|_| ())
    }

    async fn replace(&self, contents: Contents, now: Instant) -> Result<(), StoreError> {
        let job = Job::Replace {
            tenant: None,
            contents: Some(Box::new(contents)),
        };
        self.write(job, now).await.map(|_| ())
    }

    /// Not ready when the writer thread is gone or the last write
    /// transaction failed. While writes are failing each ping probes with a
    /// small real write (a changed meta row): a server taken out of rotation
    /// gets no other writes, and must notice by itself that the disk has
    /// room again.
    async fn ping(&self) -> Result<(), StoreError> {
        if self.writer_stopped() {
            return Err(StoreError::Unavailable(
                "the sqlite writer has stopped".into(),
            ));
        }
        if self.writes_failing() {
            let probe = self.health.probes.fetch_add(1, Ordering::Relaxed);
            self.run(chrono::DateTime::UNIX_EPOCH, move |tx| {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![WRITE_PROBE, probe.to_string()],
                )
                .map_err(unavailable)
            })
            .await?;
            if self.writes_failing() {
                return Err(StoreError::Unavailable("sqlite writes are failing".into()));
            }
        }
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(unavailable)
        })
        .await
    }
}
