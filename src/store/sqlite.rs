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

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::codec::{decode, encode, unreadable};
use super::records::{conflict_with, deadline};
use super::resident::{Compact, Interner, Resident};
use super::wal::Checkpointer;
use super::{
    observe, Applied, Change, Contents, Delivery, Event, EventBounds, NewDelivery, Payload, Store,
    StoreError, Subscription, SubscriptionConflict,
};
use crate::clock::Instant;
use crate::domain::{due_at, settled, UserFacts, UserKey, Visibility};

/// The most writes folded into one transaction.
const MAX_BATCH: usize = 1024;
/// The writer connection's page cache (`PRAGMA cache_size`), in KiB.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// Users put into the resident copy at once while loading.
const LOAD_CHUNK: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    tenant      BLOB    NOT NULL,
    user        BLOB    NOT NULL,
    version     INTEGER NOT NULL,
    facts       BLOB    NOT NULL,
    next_change INTEGER,
    PRIMARY KEY (tenant, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_next_change ON users (next_change) WHERE next_change IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  BLOB    NOT NULL,
    user    BLOB    NOT NULL,
    at      INTEGER NOT NULL,
    version INTEGER NOT NULL,
    facts   BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_tenant ON events (tenant, seq);
CREATE TABLE IF NOT EXISTS subscriptions (
    id           BLOB    PRIMARY KEY,
    tenant       BLOB    NOT NULL,
    app_id       TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL,
    reauth_sent  INTEGER NOT NULL,
    record       TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS subscriptions_app ON subscriptions (tenant, app_id);
CREATE TABLE IF NOT EXISTS subscription_expiry (
    id         BLOB    PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watches (
    tenant       BLOB NOT NULL,
    user         BLOB NOT NULL,
    subscription BLOB NOT NULL,
    PRIMARY KEY (tenant, user, subscription)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY,
    subscription BLOB    NOT NULL,
    tenant       BLOB    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    attempts     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_next ON outbox (next_at);
";

/// Schema 3: the outbox without `AUTOINCREMENT` and without its index on
/// `subscription`, rebuilt in place from schema 2 (rows and ids kept).
///
/// An outbox row is written for every watching subscription of every
/// presence change, in the writer's batch. `AUTOINCREMENT` updated
/// `sqlite_sequence` on each insert, and the index was one more b-tree
/// insert; an operation's savepoint also journals the pages both touch.
/// Together they were about half the cost of an outbox insert. Plain rowids
/// may reuse the id of a deleted last row, which nothing relies on (an id
/// names a row only while it exists). Deleting a subscription's rows now
/// scans the outbox: rare, and the outbox is normally near empty.
const MIGRATE_OUTBOX: &str = "
CREATE TABLE outbox_v3 (
    id           INTEGER PRIMARY KEY,
    subscription BLOB    NOT NULL,
    tenant       BLOB    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    attempts     INTEGER NOT NULL
);
INSERT INTO outbox_v3 (id, subscription, tenant, payload, created_at, next_at, attempts)
    SELECT id, subscription, tenant, payload, created_at, next_at, attempts FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v3 RENAME TO outbox;
";

/// Rebuilds a schema-2 outbox as [`MIGRATE_OUTBOX`] says, in one
/// transaction; does nothing when there is no outbox yet or it is already
/// rebuilt (so a crash before `user_version` was updated is harmless).
fn migrate_outbox(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let sql: Option<String> = tx
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if sql.is_some_and(|sql| sql.to_ascii_uppercase().contains("AUTOINCREMENT")) {
        tx.execute_batch(MIGRATE_OUTBOX)?;
    }
    tx.commit()
}

/// Brings `subscription_expiry` in line with `subscriptions` (run at open:
/// it fills the table in a database written before it existed, and repairs
/// it after an older build changed subscriptions without it).
///
/// Why the table: a write that changes a watched user's presence looks up
/// the live subscriptions watching the user in its transaction. The
/// `subscriptions` rows are ~30 KB (650 user ids and the resource string)
/// and overflow; SQLite reads a whole overflowing cell to compare keys in a
/// `WITHOUT ROWID` b-tree, so joining them cost ~30 KB of reads per watched
/// write (and made 100,000 fades 4–5× slower). This table holds just the id
/// and the expiry.
const SYNC_SUBSCRIPTION_EXPIRY: &str = "
DELETE FROM subscription_expiry WHERE id NOT IN (SELECT id FROM subscriptions);
INSERT INTO subscription_expiry (id, expires_at) SELECT id, expires_at FROM subscriptions WHERE true
  ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
  WHERE expires_at <> excluded.expires_at;
";

/// The schema version this build reads and writes (2: the event log,
/// subscriptions and the outbox; 3: the outbox without `AUTOINCREMENT`,
/// see [`MIGRATE_OUTBOX`]).
const SCHEMA_VERSION: i64 = 3;

/// The meta key of the last pruned event's `seq`.
const EVENTS_PRUNED_THROUGH: &str = "events_pruned_through";

/// The meta key of the persisted emulator clock.
const EMULATOR_TIME: &str = "emulator_time";

/// The meta key readiness writes to when the last write transaction failed.
const WRITE_PROBE: &str = "write_probe";

/// The file in a data dir whose exclusive lock marks the dir as in use.
pub const LOCK_FILE: &str = "presenced.lock";

/// Opens the savepoint each operation of a group commit runs in.
const OP_BEGIN: &str = "SAVEPOINT presenced_op";

/// Runs a one-statement command through the statement cache (the savepoint
/// pair runs for every write; parsing it each time showed in profiles).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
/// Keeps an operation's writes in the batch's transaction.
const OP_KEEP: &str = "RELEASE presenced_op";
/// Undoes exactly one operation's writes.
const OP_UNDO: &str = "ROLLBACK TO presenced_op; RELEASE presenced_op";

/// A write that is neither a presence change nor a settle: subscriptions,
/// the outbox, the event log's retention, secrets.
type RunFn = Box<dyn FnOnce(&rusqlite::Transaction<'_>) -> Result<Done, StoreError> + Send>;

/// What the writer thread is asked to do.
enum Job {
    /// A per-user change.
    Apply { key: UserKey, change: Change },
    /// Process a user's time-driven transitions up to the op's `now`.
    Settle { key: UserKey },
    /// Persist the emulator clock's time.
    SaveEmulatorTime,
    /// Wipe a tenant (or everyone), then write `contents` if given.
    Replace {
        tenant: Option<Uuid>,
        contents: Option<Box<Contents>>,
    },
    /// Any other write, run inside the batch's transaction (taken when run).
    Run(Option<RunFn>),
}

/// What the writer thread answers.
enum Done {
    Applied(Box<Applied>),
    Settled(Option<Box<Applied>>),
    Saved,
    Value(Box<dyn std::any::Any + Send>),
}

struct WriteOp {
    job: Job,
    now: Instant,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

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
        // The writer's page cache: SQLite's default (2 MiB) holds too few of
        // the b-tree pages a batch touches, and each miss is a `pread` and a
        // copy from the OS cache.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(unavailable)?;
        // When a batch runs guarded (see `write_batch`), SQLite copies the
        // pages each operation changes into a sub-journal to undo it; past
        // a small size that goes to a temp file, a `pwrite` per page. In
        // memory it stays a copy.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
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

/// Takes the exclusive lock on `data_dir`'s [`LOCK_FILE`]: two servers
/// writing one database would each trust a view the other changes.
///
/// The lock is SQLite's own: an empty database file held in an `EXCLUSIVE`
/// transaction for the store's life. That is an OS advisory lock (`fcntl`
/// on Unix, `LockFileEx` on Windows) released when the connection closes or
/// the process dies, even on `kill -9`, and SQLite makes it exclusive
/// between connections of one process too. (`std::fs::File::try_lock`
/// would do the same job but needs Rust 1.89, above this crate's MSRV.)
fn lock_data_dir(data_dir: &Path) -> Result<Mutex<Connection>, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let cannot = |e: rusqlite::Error| {
        StoreError::Unavailable(format!("cannot lock {}: {e}", path.display()))
    };
    let conn = Connection::open(&path).map_err(cannot)?;
    restrict_file(&path);
    match conn.execute_batch("BEGIN EXCLUSIVE") {
        Ok(()) => Ok(Mutex::new(conn)),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            Err(StoreError::Unavailable(format!(
                "another presenced is using {}; stop it first, or give this server another --data-dir",
                data_dir.display()
            )))
        }
        Err(e) => Err(cannot(e)),
    }
}

/// Refuses a damaged database file (`PRAGMA quick_check`: page structure,
/// not index contents; linear in the file's size). Starting on one would
/// report ready and then fail reads and writes that touch the bad pages.
fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let damaged = |what: String| {
        StoreError::Corrupt(format!(
            "{} is damaged ({what}); presenced will not start on it. Restore the file from a backup, or move it away (with any -wal and -shm files beside it) to start with an empty store",
            path.display()
        ))
    };
    let failed = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            damaged(e.to_string())
        }
        _ => StoreError::Unavailable(format!("cannot check {}: {e}", path.display())),
    };
    let mut stmt = conn.prepare("PRAGMA quick_check(3)").map_err(failed)?;
    let problems = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(failed)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(damaged(format!("quick_check: {}", problems.join("; "))))
}

/// Creates the data dir (and parents) readable by its owner only: it holds
/// presence data and, in development, the signing secret.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        // mkdir's own "File exists" reads as if all were well.
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "something that is not a directory is in the way (a file?)",
        ));
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes the database and its WAL files readable by the owner only, even in
/// a data dir someone else created.
fn restrict_files(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        restrict_file(&PathBuf::from(name));
    }
}

/// Makes one file, if it exists, readable by the owner only.
fn restrict_file(file: &Path) {
    #[cfg(unix)]
    if file.exists() {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(file = %file.display(), error = %e, "cannot restrict permissions");
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
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
fn facts_in_row(
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
fn load(conn: &Connection, health: &Health) -> Result<(Resident, Interner), StoreError> {
    let started = std::time::Instant::now();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .map_err(unavailable)?;
    let resident = Resident::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut ids = Interner::default();
    let mut stmt = conn
        .prepare("SELECT tenant, user, version, facts FROM users")
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
        batch.push((key, Compact::of(&facts, &mut ids)));
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

/// Forgets the schedule of a user whose facts cannot be read: nothing about
/// them will change with time, and a stale `next_change` would keep the
/// scheduler waking for a user it can never settle.
fn unschedule(conn: &Connection, key: UserKey) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE users SET next_change = NULL
         WHERE tenant = ?1 AND user = ?2 AND next_change IS NOT NULL",
    )
    .and_then(|mut stmt| stmt.execute(params![key.tenant.as_bytes(), key.user.as_bytes()]))
    .map_err(unavailable)?;
    Ok(())
}

/// Stores `facts` as `encoded` (their [`encode`]d form, which the caller
/// may reuse for the event row).
fn write_facts(
    conn: &Connection,
    key: UserKey,
    facts: &UserFacts,
    encoded: &[u8],
    now: Instant,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO users (tenant, user, version, facts, next_change) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant, user) DO UPDATE SET
               version = excluded.version, facts = excluded.facts, next_change = excluded.next_change",
        )
        .map_err(unavailable)?;
    let version = i64::try_from(facts.version).map_err(unavailable)?;
    // Rounded up: a transition between two microseconds (a status message's
    // 7th fractional digit) must never be scheduled before it happens, or the
    // scheduler would settle too early and find it due again.
    let next = due_at(facts, facts.settled_at.unwrap_or(now)).map(ceil_micros);
    stmt.execute(params![
        key.tenant.as_bytes(),
        key.user.as_bytes(),
        version,
        encoded,
        next
    ])
    .map_err(unavailable)?;
    Ok(())
}

/// Stores `after` and records what it meant for watchers, in the write's
/// transaction: an event when the resource changed, an outbox row per live
/// subscription watching the user when its presence changed (SPEC §7: a
/// crash right after the answer cannot lose a notification).
fn record(
    tx: &Connection,
    key: UserKey,
    before: UserFacts,
    after: UserFacts,
    now: Instant,
) -> Result<Applied, StoreError> {
    let encoded = encode(&after);
    write_facts(tx, key, &after, &encoded, now)?;
    let observed = observe(key.user, &before, &after);
    let mut event = None;
    let mut queued = 0;
    if observed.visibility != Visibility::Unchanged {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO events (tenant, user, at, version, facts) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(unavailable)?;
        stmt.execute(params![
            key.tenant.as_bytes(),
            key.user.as_bytes(),
            after.settled_at.unwrap_or(now).timestamp_micros(),
            i64::try_from(after.version).map_err(unavailable)?,
            encoded
        ])
        .map_err(unavailable)?;
        event = u64::try_from(tx.last_insert_rowid()).ok();
    }
    if observed.visibility == Visibility::Presence {
        let mut stmt = tx
            .prepare_cached(
                "SELECT w.subscription FROM watches w
                 JOIN subscription_expiry s ON s.id = w.subscription
                 WHERE w.tenant = ?1 AND w.user = ?2 AND s.expires_at > ?3",
            )
            .map_err(unavailable)?;
        let watching = stmt
            .query_map(
                params![
                    key.tenant.as_bytes(),
                    key.user.as_bytes(),
                    now.timestamp_micros()
                ],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        for id in watching {
            let subscription =
                Uuid::from_slice(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            insert_delivery(
                tx,
                &NewDelivery {
                    subscription,
                    tenant: key.tenant,
                    payload: observed.payload.clone(),
                },
                now,
            )?;
            queued += 1;
        }
    }
    Ok(Applied {
        before,
        after,
        visibility: observed.visibility,
        event,
        queued,
    })
}

fn insert_delivery(tx: &Connection, d: &NewDelivery, now: Instant) -> Result<(), StoreError> {
    let payload = serde_json::to_string(&d.payload).map_err(unavailable)?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO outbox (subscription, tenant, payload, created_at, next_at, attempts)
             VALUES (?1, ?2, ?3, ?4, ?4, 0)",
        )
        .map_err(unavailable)?;
    stmt.execute(params![
        d.subscription.as_bytes(),
        d.tenant.as_bytes(),
        payload,
        now.timestamp_micros()
    ])
    .map_err(unavailable)?;
    Ok(())
}

/// Microseconds since the epoch, rounded up.
fn ceil_micros(t: Instant) -> i64 {
    let micros = t.timestamp_micros();
    if t.timestamp_subsec_nanos() % 1_000 == 0 {
        micros
    } else {
        micros.saturating_add(1)
    }
}

fn uuid(bytes: &[u8]) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn instant(micros: i64) -> Result<Instant, StoreError> {
    chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("instant {micros} out of range")))
}

fn parse_subscription(record: &str) -> Result<Subscription, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn app_subscriptions(
    conn: &Connection,
    tenant: Uuid,
    app_id: &str,
) -> Result<Vec<Subscription>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT record FROM subscriptions WHERE tenant = ?1 AND app_id = ?2")
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(params![tenant.as_bytes(), app_id], |r| {
            r.get::<_, String>(0)
        })
        .map_err(unavailable)?;
    rows.map(|r| parse_subscription(&r.map_err(unavailable)?))
        .collect()
}

fn put_subscription(tx: &Connection, s: &Subscription) -> Result<(), StoreError> {
    let record = serde_json::to_string(s).map_err(unavailable)?;
    tx.execute(
        "INSERT INTO subscriptions (id, tenant, app_id, expires_at, reauth_sent, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at,
           reauth_sent = excluded.reauth_sent, record = excluded.record",
        params![
            s.id.as_bytes(),
            s.tenant.as_bytes(),
            s.app_id,
            s.expires_at.timestamp_micros(),
            s.reauthorization_sent,
            record
        ],
    )
    .map_err(unavailable)?;
    tx.prepare_cached(
        "INSERT INTO subscription_expiry (id, expires_at) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
    )
    .and_then(|mut stmt| stmt.execute(params![s.id.as_bytes(), s.expires_at.timestamp_micros()]))
    .map_err(unavailable)?;
    Ok(())
}

/// Makes `s` watch its users (the `watches` rows a change looks up).
fn watch_users(tx: &Connection, s: &Subscription) -> Result<(), StoreError> {
    let mut watch = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO watches (tenant, user, subscription) VALUES (?1, ?2, ?3)",
        )
        .map_err(unavailable)?;
    for user in &s.users {
        watch
            .execute(params![
                s.tenant.as_bytes(),
                user.as_bytes(),
                s.id.as_bytes()
            ])
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Deletes `tenant`'s rows (every tenant's when `None`) of users, events,
/// subscriptions and deliveries ([`Store::reset`]); the wiped users go on
/// `changed` as empty facts, so the resident copy forgets them too.
fn wipe(
    tx: &Connection,
    tenant: Option<Uuid>,
    ids: &mut Interner,
    changed: &mut Changes<'_>,
) -> Result<(), StoreError> {
    let bound: Vec<Vec<u8>> = tenant.iter().map(|t| t.as_bytes().to_vec()).collect();
    let filter = if tenant.is_some() {
        " WHERE tenant = ?1"
    } else {
        ""
    };
    let keys = {
        let mut stmt = tx
            .prepare(&format!("SELECT tenant, user FROM users{filter}"))
            .map_err(unavailable)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(bound.iter()), |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(unavailable)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)?
    };
    let empty = Compact::of(&UserFacts::default(), ids);
    for (t, u) in keys {
        if let (Ok(tenant), Ok(user)) = (Uuid::from_slice(&t), Uuid::from_slice(&u)) {
            changed.push(UserKey { tenant, user }, empty.clone());
        }
    }
    for table in ["users", "events", "outbox", "watches", "subscriptions"] {
        tx.execute(
            &format!("DELETE FROM {table}{filter}"),
            rusqlite::params_from_iter(bound.iter()),
        )
        .map_err(unavailable)?;
    }
    tx.execute(
        "DELETE FROM subscription_expiry WHERE id NOT IN (SELECT id FROM subscriptions)",
        [],
    )
    .map_err(unavailable)?;
    if tenant.is_none() {
        let last: Option<i64> = tx
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(unavailable)?;
        if let Some(last) = last {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value =
                   CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                params![EVENTS_PRUNED_THROUGH, last.to_string()],
            )
            .map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Writes `contents` into wiped tables ([`Store::replace`]).
fn restore(
    tx: &Connection,
    contents: Contents,
    now: Instant,
    ids: &mut Interner,
    changed: &mut Changes<'_>,
) -> Result<(), StoreError> {
    for (key, facts) in contents.users {
        if facts.unreadable {
            continue;
        }
        write_facts(tx, key, &facts, &encode(&facts), now)?;
        changed.push(key, Compact::of(&facts, ids));
    }
    for s in &contents.subscriptions {
        put_subscription(tx, s)?;
        watch_users(tx, s)?;
    }
    Ok(())
}

/// The writer thread's state: the only write connection, and the resident
/// copy it keeps equal to what it commits.
struct Writer {
    conn: Connection,
    health: Arc<Health>,
    resident: Arc<Resident>,
    /// Shares session ids among the entries the writer builds.
    ids: Interner,
}

/// A user's facts as one operation of a batch left them, published to the
/// resident copy once the batch commits.
type Changed = (UserKey, Compact);

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<WriteOp>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let results = self.write_batch(&mut batch);
            for (op, result) in batch.into_iter().zip(results) {
                // The requester may have gone away; the write stands regardless.
                let _ = op.reply.send(result);
            }
        }
        tracing::debug!("sqlite writer stopped");
    }

    /// [`write_batch`], then, once it committed, the users it changed into
    /// the resident copy, before anyone is answered: a client told its
    /// write succeeded reads it back. A batch that did not commit changes
    /// nothing there.
    fn write_batch(&mut self, batch: &mut [WriteOp]) -> Vec<Result<Done, StoreError>> {
        let started = std::time::Instant::now();
        let (results, committed) = write_batch(
            &mut self.conn,
            batch,
            &self.health,
            &self.resident,
            &mut self.ids,
        );
        self.resident.publish(committed);
        crate::metrics::store_commit(batch.len(), started.elapsed());
        results
    }
}

/// Applies a batch in one transaction and commits it.
///
/// Group commit folds unrelated users' writes into one transaction, yet one
/// failing operation must fail alone: a broken rule (NotFound), a SQL
/// error, a panic caught here. Two ways to get there:
///
/// - **Unguarded** (the usual case): when every operation is plain data
///   that can run again ([`Job::Apply`], [`Job::Settle`],
///   [`Job::SaveEmulatorTime`]), they run one after another with no
///   savepoints. An operation that fails before changing a row (every
///   broken rule fails before writing) is answered alone and the others go
///   on. One that fails having changed rows cannot be undone alone: the
///   transaction is rolled back and the batch runs again, guarded.
/// - **Guarded**: each operation runs between `SAVEPOINT` and `RELEASE`;
///   when it fails, `ROLLBACK TO` undoes exactly its rows.
///
/// Savepoints are not free: SQLite copies every page an operation touches
/// into a sub-journal first, so for a batch of watched fades (a `users`
/// row, an event and an outbox row each) they cost about a fifth of the
/// writer's time. Hence the unguarded way first.
///
/// Only a failure of the transaction itself fails the whole batch: BEGIN
/// or COMMIT failing, a savepoint statement failing, or SQLite having
/// rolled the transaction back on its own (it may on I/O errors, a full
/// disk, `RAISE(ROLLBACK)`), which would take the earlier operations'
/// writes with it. Those also mark the store's writes as failing for
/// readiness, until a commit that writes succeeds.
///
/// Also returns, for the resident copy, the facts each committed operation
/// left its user with, in batch order: empty when the transaction failed,
/// and never holding an operation that was rolled back.
fn write_batch(
    conn: &mut Connection,
    batch: &mut [WriteOp],
    health: &Health,
    resident: &Resident,
    ids: &mut Interner,
) -> Outcome {
    let rerunnable = batch.iter().all(|op| {
        matches!(
            op.job,
            Job::Apply { .. } | Job::Settle { .. } | Job::SaveEmulatorTime
        )
    });
    if rerunnable {
        if let Some(outcome) = write_unguarded(conn, batch, health, resident, ids) {
            return outcome;
        }
    }
    write_guarded(conn, batch, health, resident, ids)
}

/// A batch's answers, in batch order, and what its committed operations
/// left their users with (for the resident copy).
type Outcome = (Vec<Result<Done, StoreError>>, Vec<Changed>);

/// Fails every operation of a batch whose transaction failed.
fn fail_all(health: &Health, ops: usize, why: &dyn std::fmt::Display) -> Outcome {
    tracing::error!(error = %why, ops, "sqlite write transaction failed");
    health.writes_failing.store(true, Ordering::Relaxed);
    let failed = (0..ops).map(|_| Err(unavailable("write failed"))).collect();
    (failed, Vec::new())
}

/// Runs one operation, turning a panic into an error: a bug in one
/// operation must not kill the only writer.
fn run_caught(
    tx: &rusqlite::Transaction<'_>,
    op: &mut WriteOp,
    ids: &mut Interner,
    changed: &mut Changes<'_>,
) -> Result<Done, StoreError> {
    let now = op.now;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_op(tx, &mut op.job, now, ids, changed)
    }))
    .unwrap_or_else(|_| {
        tracing::error!("a store write panicked; it was rolled back");
        Err(StoreError::Unavailable("internal error".into()))
    })
}

/// Commits a batch's transaction and hands back its answers.
fn commit(
    tx: rusqlite::Transaction<'_>,
    health: &Health,
    wrote: bool,
    results: Vec<Result<Done, StoreError>>,
    changed: Vec<Changed>,
) -> Outcome {
    let ops = results.len();
    match tx.commit() {
        Ok(()) => {
            // Only a commit that wrote something proves writes work again
            // (committing nothing touches no file).
            if wrote && health.writes_failing.swap(false, Ordering::Relaxed) {
                tracing::info!("sqlite writes succeed again");
            }
            (results, changed)
        }
        Err(e) => fail_all(health, ops, &e),
    }
}

/// The unguarded way of [`write_batch`]: `None` when an operation failed
/// having changed rows (the transaction is rolled back; run the batch
/// guarded) or SQLite ended the transaction on its own.
fn write_unguarded(
    conn: &mut Connection,
    batch: &mut [WriteOp],
    health: &Health,
    resident: &Resident,
    ids: &mut Interner,
) -> Option<Outcome> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return Some(fail_all(health, batch.len(), &e)),
    };
    let mut results = Vec::with_capacity(batch.len());
    let mut changed = Changes::new(resident);
    let started = tx.total_changes();
    for op in batch.iter_mut() {
        let changes = tx.total_changes();
        let changed_before = changed.list.len();
        let result = run_caught(&tx, op, ids, &mut changed);
        if tx.is_autocommit() || (result.is_err() && tx.total_changes() != changes) {
            tracing::warn!(
                ops = batch.len(),
                "a write failed after changing rows; its batch runs again, each write in a savepoint"
            );
            // Dropping the transaction rolls it back (when SQLite has not).
            return None;
        }
        if result.is_err() {
            changed.list.truncate(changed_before);
        }
        results.push(result);
    }
    let wrote = tx.total_changes() != started;
    Some(commit(tx, health, wrote, results, changed.list))
}

/// The guarded way of [`write_batch`]: each operation in a savepoint.
fn write_guarded(
    conn: &mut Connection,
    batch: &mut [WriteOp],
    health: &Health,
    resident: &Resident,
    ids: &mut Interner,
) -> Outcome {
    let ops = batch.len();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(health, ops, &e),
    };
    let mut results = Vec::with_capacity(ops);
    let mut changed = Changes::new(resident);
    let mut wrote = false;
    for op in batch.iter_mut() {
        if let Err(e) = run_cached(&tx, OP_BEGIN) {
            drop(tx);
            return fail_all(health, ops, &e);
        }
        let changes = tx.total_changes();
        let changed_before = changed.list.len();
        let result = run_caught(&tx, op, ids, &mut changed);
        let ended = if tx.is_autocommit() {
            // SQLite ended the transaction itself: nothing of the batch
            // so far will be committed.
            Err("sqlite rolled the transaction back".to_string())
        } else if result.is_ok() {
            wrote |= tx.total_changes() != changes;
            run_cached(&tx, OP_KEEP).map_err(|e| e.to_string())
        } else {
            // Rolled back: whatever it left for the resident copy goes too.
            changed.list.truncate(changed_before);
            tx.execute_batch(OP_UNDO).map_err(|e| e.to_string())
        };
        if let Err(e) = ended {
            drop(tx);
            return fail_all(health, ops, &e);
        }
        results.push(result);
    }
    commit(tx, health, wrote, results, changed.list)
}

/// What the operations of a batch so far left their users with, and where
/// a write finds the facts it builds on.
struct Changes<'a> {
    /// The committed facts.
    resident: &'a Resident,
    /// Each successful operation's user and facts, in batch order.
    list: Vec<Changed>,
    /// The users in `list` (or once in it: a rolled-back operation's user
    /// stays here, which only costs a scan).
    touched: HashSet<UserKey>,
}

impl<'a> Changes<'a> {
    fn new(resident: &'a Resident) -> Self {
        Self {
            resident,
            list: Vec::new(),
            touched: HashSet::new(),
        }
    }

    /// The facts a write of `key` builds on: what an earlier operation of
    /// this batch left, else the committed facts. Never the `users` row:
    /// the writer is its only writer and the resident copy equals it, as
    /// loaded at open (rows that did not decode read as unreadable) and
    /// then published after every commit. So a write neither reads nor
    /// decodes the row; and a row damaged on disk while the store runs is
    /// overwritten by the next write from the facts the store holds.
    fn before(&self, key: UserKey) -> UserFacts {
        if self.touched.contains(&key) {
            if let Some((_, facts)) = self.list.iter().rev().find(|(k, _)| *k == key) {
                return facts.facts();
            }
        }
        self.resident.facts(key)
    }

    fn push(&mut self, key: UserKey, facts: Compact) {
        self.touched.insert(key);
        self.list.push((key, facts));
    }
}

/// Runs one operation of a batch on the batch's transaction (inside its
/// savepoint). The facts a successful presence change or settle leaves its
/// user with are pushed on `changed`.
fn run_op(
    tx: &rusqlite::Transaction<'_>,
    job: &mut Job,
    now: Instant,
    ids: &mut Interner,
    changed: &mut Changes<'_>,
) -> Result<Done, StoreError> {
    match job {
        Job::Apply { key, change } => {
            let before = changed.before(*key);
            if before.unreadable {
                tracing::warn!(tenant = %key.tenant, user = %key.user, "a write replaces unreadable stored facts");
            }
            let after = change.clone().applied_to(&before, now)?;
            let applied = record(tx, *key, before, after, now)?;
            changed.push(*key, Compact::of(&applied.after, ids));
            Ok(Done::Applied(Box::new(applied)))
        }
        Job::Settle { key } => {
            let before = changed.before(*key);
            if before.unreadable {
                // Nothing to fade or expire in facts nobody can read.
                unschedule(tx, *key)?;
                return Ok(Done::Settled(None));
            }
            let Some(after) = settled(&before, now) else {
                return Ok(Done::Settled(None));
            };
            let applied = record(tx, *key, before, after, now)?;
            changed.push(*key, Compact::of(&applied.after, ids));
            Ok(Done::Settled(Some(Box::new(applied))))
        }
        Job::SaveEmulatorTime => tx
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value =
                   CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                params![EMULATOR_TIME, now.timestamp_micros().to_string()],
            )
            .map(|_| Done::Saved)
            .map_err(unavailable),
        Job::Replace { tenant, contents } => {
            wipe(tx, *tenant, ids, changed)?;
            if let Some(contents) = contents.take() {
                restore(tx, *contents, now, ids, changed)?;
            }
            Ok(Done::Saved)
        }
        Job::Run(f) => match f.take() {
            Some(f) => f(tx),
            None => Err(StoreError::Unavailable("a job ran twice".into())),
        },
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
            let last: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
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
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value =
                   CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                params![EVENTS_PRUNED_THROUGH, through.to_string()],
            )
            .map_err(unavailable)?;
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

    /// Not ready when the writer thread is gone or the last write
    /// transaction failed. While writes are failing each ping probes with a
    /// small real write (a changed meta row): a server taken out of rotation
    /// gets no other writes, and must notice by itself that the disk has
    /// room again.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LifecycleEvent;

    /// A schema-2 database (as builds before schema 3 wrote it) with one
    /// queued delivery, id 7, is opened by this build: the row and its id
    /// survive, the outbox loses `AUTOINCREMENT` and its subscription
    /// index, and new rows take ids after it.
    #[tokio::test]
    async fn a_schema_2_outbox_is_rebuilt_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (subscription, tenant) = (Uuid::new_v4(), Uuid::new_v4());
        let payload = Payload::Lifecycle {
            event: LifecycleEvent::ReauthorizationRequired,
        };
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        {
            std::fs::create_dir_all(dir.path()).unwrap();
            let old = Connection::open(SqliteStore::file_in(dir.path())).unwrap();
            old.execute_batch(
                "CREATE TABLE outbox (
                    id           INTEGER PRIMARY KEY AUTOINCREMENT,
                    subscription BLOB    NOT NULL,
                    tenant       BLOB    NOT NULL,
                    payload      TEXT    NOT NULL,
                    created_at   INTEGER NOT NULL,
                    next_at      INTEGER NOT NULL,
                    attempts     INTEGER NOT NULL
                );
                CREATE INDEX outbox_next ON outbox (next_at);
                CREATE INDEX outbox_subscription ON outbox (subscription);
                PRAGMA user_version = 2;",
            )
            .unwrap();
            old.execute(
                "INSERT INTO outbox VALUES (7, ?1, ?2, ?3, ?4, ?4, 1)",
                params![
                    subscription.as_bytes(),
                    tenant.as_bytes(),
                    serde_json::to_string(&payload).unwrap(),
                    at.timestamp_micros()
                ],
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let due = store.due_deliveries(at, 10, &[]).await.unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(
            (
                due[0].id,
                due[0].subscription,
                due[0].attempts,
                &due[0].payload
            ),
            (7, subscription, 1, &payload)
        );
        store
            .enqueue(
                vec![NewDelivery {
                    subscription,
                    tenant,
                    payload: payload.clone(),
                }],
                at,
            )
            .await
            .unwrap();
        let ids: Vec<u64> = store
            .due_deliveries(at, 10, &[])
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, [7, 8]);
        drop(store);
        let conn = Connection::open(SqliteStore::file_in(dir.path())).unwrap();
        let schema: Vec<String> = conn
            .prepare("SELECT name || ': ' || sql FROM sqlite_master WHERE tbl_name = 'outbox'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(schema.len(), 2, "{schema:?}"); // the table and outbox_next
        assert!(
            schema.iter().all(|sql| !sql.contains("AUTOINCREMENT")),
            "{schema:?}"
        );
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
