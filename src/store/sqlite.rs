//! The embedded default store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only write connection. Requests queue on a
//! channel; the writer takes everything that is waiting, applies it in one
//! transaction and commits once (group commit), then answers every request
//! in the batch. A request is therefore answered only after its write is
//! durable, without paying one fsync per request. Reads use a small pool of
//! read-only connections on blocking threads and never wait behind writes
//! (WAL readers see the last committed state).

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::change::due_at;
use super::codec::{decode, encode};
use super::{Applied, Change, Store, StoreError};
use crate::clock::Instant;
use crate::domain::{UserFacts, UserKey};

/// The most writes folded into one transaction.
const MAX_BATCH: usize = 1024;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

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
";

/// The schema version this build reads and writes.
const SCHEMA_VERSION: i64 = 1;

/// The meta key of the persisted emulator clock.
const EMULATOR_TIME: &str = "emulator_time";

/// What the writer thread is asked to do.
enum Job {
    /// A per-user change.
    Apply { key: UserKey, change: Change },
    /// Persist the emulator clock's time.
    SaveEmulatorTime,
}

/// What the writer thread answers.
enum Done {
    Applied(Box<Applied>),
    Saved,
}

struct WriteOp {
    job: Job,
    now: Instant,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    writer: Mutex<Option<mpsc::Sender<WriteOp>>>,
    writer_thread: std::thread::JoinHandle<()>,
    readers: Arc<ReadPool>,
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
    /// writer thread.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = Self::file_in(data_dir);
        let conn = Connection::open(&path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        restrict_files(&path);
        conn.pragma_update(None, "synchronous", "FULL")
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
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(unavailable)?;
        let (tx, rx) = mpsc::channel();
        let writer_thread = std::thread::Builder::new()
            .name("presenced-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(unavailable)?;
        Ok(Self {
            writer: Mutex::new(Some(tx)),
            writer_thread,
            readers: Arc::new(ReadPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Stops accepting writes; the writer thread finishes what is queued and
    /// exits.
    pub fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
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

/// Creates the data dir (and parents) readable by its owner only: it holds
/// presence data and, in development, the signing secret.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
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
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        if file.exists() {
            if let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(file = %file.display(), error = %e, "cannot restrict permissions");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
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

fn read_facts(conn: &Connection, key: UserKey) -> Result<UserFacts, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT version, facts FROM users WHERE tenant = ?1 AND user = ?2")
        .map_err(unavailable)?;
    let row = stmt
        .query_row(params![key.tenant.as_bytes(), key.user.as_bytes()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .optional()
        .map_err(unavailable)?;
    match row {
        Some((version, bytes)) => decode(&bytes, u64::try_from(version).unwrap_or(0)),
        None => Ok(UserFacts::default()),
    }
}

fn write_facts(
    conn: &Connection,
    key: UserKey,
    facts: &UserFacts,
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
    let next = due_at(facts, now).map(|t| t.timestamp_micros());
    stmt.execute(params![
        key.tenant.as_bytes(),
        key.user.as_bytes(),
        version,
        encode(facts),
        next
    ])
    .map_err(unavailable)?;
    Ok(())
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<WriteOp>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let results = write_batch(&mut conn, &batch);
        for (op, result) in batch.into_iter().zip(results) {
            // The requester may have gone away; the write stands regardless.
            let _ = op.reply.send(result);
        }
    }
    tracing::debug!("sqlite writer stopped");
}

/// Applies a batch in one transaction. Per-op rule failures (e.g. NotFound)
/// leave that op's user untouched and do not affect the others; a failed
/// commit fails every op.
fn write_batch(conn: &mut Connection, batch: &[WriteOp]) -> Vec<Result<Done, StoreError>> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return batch.iter().map(|_| Err(unavailable(&e))).collect(),
    };
    let mut results = Vec::with_capacity(batch.len());
    for op in batch {
        // A bug in one operation must not kill the only writer.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &op.job {
            Job::Apply { key, change } => read_facts(&tx, *key).and_then(|before| {
                let mut after = before.clone();
                change.clone().apply_to(&mut after, op.now)?;
                write_facts(&tx, *key, &after, op.now)?;
                Ok(Done::Applied(Box::new(Applied { before, after })))
            }),
            Job::SaveEmulatorTime => tx
                .execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value =
                       CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                    params![EMULATOR_TIME, op.now.timestamp_micros().to_string()],
                )
                .map(|_| Done::Saved)
                .map_err(unavailable),
        }))
        .unwrap_or_else(|_| {
            tracing::error!("a store write panicked; it was skipped");
            Err(StoreError::Unavailable("internal error".into()))
        });
        if matches!(result, Err(StoreError::Unavailable(_))) {
            // A SQL failure may have rolled the transaction back under us:
            // fail the whole batch rather than report writes that may be lost.
            drop(tx);
            return batch
                .iter()
                .map(|_| Err(unavailable("write failed")))
                .collect();
        }
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => {
            tracing::error!(error = %e, "sqlite commit failed");
            batch.iter().map(|_| Err(unavailable(&e))).collect()
        }
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
            Done::Saved => Err(StoreError::Unavailable("unexpected writer answer".into())),
        }
    }

    async fn facts_for(&self, tenant: Uuid, users: &[Uuid]) -> Result<Vec<UserFacts>, StoreError> {
        let users = users.to_vec();
        self.read(move |conn| {
            // One read transaction: a consistent snapshot across all ids.
            // Rolled back (a no-op for reads) when dropped, on every path.
            let tx = conn.unchecked_transaction().map_err(unavailable)?;
            users
                .iter()
                .map(|user| {
                    read_facts(
                        &tx,
                        UserKey {
                            tenant,
                            user: *user,
                        },
                    )
                })
                .collect()
        })
        .await
    }

    async fn due_users(&self, by: Instant, limit: usize) -> Result<Vec<UserKey>, StoreError> {
        let by = by.timestamp_micros();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT tenant, user FROM users WHERE next_change IS NOT NULL AND next_change <= ?1
                     ORDER BY next_change LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![by, limit], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(unavailable)?;
            rows.map(|row| {
                let (t, u) = row.map_err(unavailable)?;
                let tenant = Uuid::from_slice(&t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let user = Uuid::from_slice(&u).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(UserKey { tenant, user })
            })
            .collect()
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

    async fn ping(&self) -> Result<(), StoreError> {
        if self.writer_thread.is_finished() {
            return Err(StoreError::Unavailable(
                "the sqlite writer has stopped".into(),
            ));
        }
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(unavailable)
        })
        .await
    }
}
