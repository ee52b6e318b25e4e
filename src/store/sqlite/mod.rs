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
//!
//! [`UserFacts::unreadable`]: crate::domain::UserFacts::unreadable

mod files;
mod read;
mod replace;
mod schema;
mod subscriptions;
mod trait_impl;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use self::files::{check_integrity, lock_data_dir, restrict_files};
pub use self::files::{create_private_dir, LOCK_FILE};
use self::read::{load, ReadPool};
use self::schema::{migrate_outbox, SCHEMA, SCHEMA_VERSION, SYNC_SUBSCRIPTION_EXPIRY};
use self::writer::{Done, Job, WriteOp, Writer, WRITER_CACHE_KIB};
use super::resident::Resident;
use super::wal::{wait_briefly, Checkpointer, WAL_KEPT_BYTES};
use super::{StoreCounts, StoreError};
use crate::clock::Instant;
use crate::domain::UserKey;

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
///
/// [`Store`]: crate::store::Store
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
