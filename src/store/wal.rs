//! The SQLite store's WAL checkpoints, on a thread of their own.
//!
//! In WAL mode every commit appends pages to the `-wal` file; a checkpoint
//! copies them back into the database file so the WAL can start over. By
//! default SQLite checkpoints inside the commit that passes 1,000 WAL pages,
//! on the writer thread: every write of that batch, and every request
//! queued behind it, waits for the copy and its `fsync`. Here the writer
//! runs with `wal_autocheckpoint=0` and this thread, with a connection of
//! its own, checkpoints every [`EVERY`] in `PASSIVE` mode, which never
//! blocks the writer or readers (it copies what no reader still needs).
//!
//! Under a write load that never pauses, passive checkpoints can keep up
//! with the copying but the WAL only starts over when a write begins with
//! everything already copied. If it grows past [`RESTART_PAGES`] anyway
//! (a long-running reader pinning old pages, say), the next checkpoint is a
//! `RESTART`: it holds writers off until it has copied everything and the
//! WAL can be reused, a short stall now and then rather than an unbounded
//! file.
//!
//! That stall is only as long as the checkpoint if the writer notices at
//! once that it is over. SQLite's own busy handler (`busy_timeout`) sleeps
//! 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 then 100 ms between tries, so a
//! writer that met a 20 ms `RESTART` slept about 33 ms, and one that met a
//! longer one up to 100 ms more than it had to: that was the write p99.9
//! under load (about 75 ms, against 11 ms with no checkpoints at all). The
//! writer and this thread wait with [`wait_briefly`] instead: they try
//! again every [`RETRY_EVERY`].

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// How often the WAL is checkpointed.
pub(super) const EVERY: Duration = Duration::from_millis(250);
/// WAL pages past which a checkpoint holds writers off until it can
/// restart the WAL (about 64 MiB of 4 KiB pages).
pub(super) const RESTART_PAGES: i64 = 16_384;

/// The size the WAL file is cut back to when the writer starts it over
/// (`journal_size_limit`): without it the file keeps the size of the
/// largest WAL ever written (270 MB after a 10 s write flood here), where
/// SQLite reuses it from the start. The limit of a `RESTART`, in bytes.
pub(super) const WAL_KEPT_BYTES: i64 = RESTART_PAGES * 4096;

/// How long a connection waiting with [`wait_briefly`] sleeps between
/// tries.
pub(super) const RETRY_EVERY: Duration = Duration::from_micros(250);
/// How long it waits in all before the statement fails with `SQLITE_BUSY`.
pub(super) const GIVE_UP_AFTER: Duration = Duration::from_secs(5);

/// Makes `conn` wait for a lock held by another connection (the writer for
/// a checkpoint, a `RESTART` for the writer) by trying again every
/// [`RETRY_EVERY`], for up to [`GIVE_UP_AFTER`] (see the module doc).
pub(super) fn wait_briefly(conn: &Connection) -> rusqlite::Result<()> {
    fn again(tries: i32) -> bool {
        let tries = u32::try_from(tries).unwrap_or(u32::MAX);
        if RETRY_EVERY.saturating_mul(tries) >= GIVE_UP_AFTER {
            return false;
        }
        std::thread::sleep(RETRY_EVERY);
        true
    }
    conn.busy_handler(Some(again))
}

/// The running checkpoint thread; stopped (after a last checkpoint) when
/// dropped.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What one checkpoint found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checkpoint {
    /// Pages in the WAL.
    pub(super) wal_pages: i64,
    /// Pages of it now copied into the database file.
    pub(super) copied: i64,
    /// Whether this was a `RESTART` (the WAL had passed [`RESTART_PAGES`]).
    pub(super) restarted: bool,
}

/// Runs one checkpoint on `conn`: passive, or a restart when the WAL has
/// grown past `restart_pages`.
pub(super) fn checkpoint(conn: &Connection, restart_pages: i64) -> rusqlite::Result<Checkpoint> {
    let run = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })
    };
    let (wal_pages, copied) = run("PASSIVE")?;
    if wal_pages > restart_pages {
        let (wal_pages, copied) = run("RESTART")?;
        return Ok(Checkpoint {
            wal_pages,
            copied,
            restarted: true,
        });
    }
    Ok(Checkpoint {
        wal_pages,
        copied,
        restarted: false,
    })
}

impl Checkpointer {
    /// Opens a connection to the database at `path` and starts the thread.
    pub(super) fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        // A RESTART waits for the writer's transaction to end.
        wait_briefly(&conn).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("presenced-sqlite-wal".into())
            .spawn(move || {
                // Logged when checkpoints start failing and when they work
                // again, not every tick in between.
                let mut failing = false;
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(EVERY),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    );
                    match checkpoint(&conn, RESTART_PAGES) {
                        Ok(done) => {
                            if std::mem::take(&mut failing) {
                                tracing::info!("sqlite WAL checkpoints work again");
                            }
                            if done.restarted {
                                tracing::info!(
                                    wal_pages = done.wal_pages,
                                    "the sqlite WAL had grown; checkpointed and restarted it"
                                );
                            }
                        }
                        // Busy, a full disk: the next tick tries again, and
                        // the writer's own state is unaffected.
                        Err(e) => {
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(error = %e, "sqlite WAL checkpoints fail; retrying every 250 ms");
                            }
                        }
                    }
                    if last {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the sqlite WAL checkpoint thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_db(dir: &Path) -> Connection {
        let conn = Connection::open(dir.join("db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        conn
    }

    fn write_pages(conn: &Connection, rows: usize) {
        let tx = conn.unchecked_transaction().unwrap();
        for _ in 0..rows {
            tx.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn a_passive_checkpoint_copies_the_wal_without_restarting_it() {
        let dir = tempfile::tempdir().unwrap();
        let writer = wal_db(dir.path());
        write_pages(&writer, 50);
        let other = Connection::open(dir.path().join("db")).unwrap();
        let done = checkpoint(&other, RESTART_PAGES).unwrap();
        assert!(done.wal_pages >= 50, "{done:?}");
        assert_eq!(done.copied, done.wal_pages, "{done:?}");
        assert!(!done.restarted);
    }

    #[test]
    fn a_wal_past_the_limit_is_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let writer = wal_db(dir.path());
        write_pages(&writer, 50);
        let other = Connection::open(dir.path().join("db")).unwrap();
        let done = checkpoint(&other, 10).unwrap();
        assert!(done.restarted, "{done:?}");
        // The next write starts the WAL over: it holds only that write.
        write_pages(&writer, 1);
        let after = checkpoint(&other, RESTART_PAGES).unwrap();
        assert!(after.wal_pages < 10, "{after:?}");
    }

    #[test]
    fn the_thread_checkpoints_once_more_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let writer = wal_db(dir.path());
        write_pages(&writer, 50);
        let db = dir.path().join("db");
        // Nothing has copied the pages into the database file yet (the
        // writer never checkpoints).
        assert!(std::fs::metadata(&db).unwrap().len() < 50 * 4000);
        let checkpointer = Checkpointer::start(&db).unwrap();
        // Dropping runs a last checkpoint before the thread ends.
        drop(checkpointer);
        assert!(std::fs::metadata(&db).unwrap().len() >= 50 * 4000);
    }

    #[test]
    fn a_connection_waiting_briefly_writes_once_the_lock_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let holder = wal_db(dir.path());
        let waiter = Connection::open(dir.path().join("db")).unwrap();
        // Not waiting (rusqlite's default is a 5 s busy_timeout), a write
        // behind another connection's lock fails.
        waiter.busy_timeout(Duration::ZERO).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let refused = waiter.execute("INSERT INTO t VALUES (x'00')", []);
        assert!(
            matches!(&refused, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy),
            "{refused:?}"
        );
        // With one, it waits for the holder to commit, then writes.
        wait_briefly(&waiter).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            holder.execute_batch("COMMIT").unwrap();
            holder
        });
        waiter.execute("INSERT INTO t VALUES (x'01')", []).unwrap();
        let holder = release.join().unwrap();
        let rows: i64 = holder
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_restarted_wal_is_cut_back_to_the_kept_size_at_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let writer = wal_db(dir.path());
        writer
            .pragma_update(None, "journal_size_limit", 100 * 4096)
            .unwrap();
        write_pages(&writer, 400);
        let wal = dir.path().join("db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 400 * 4000);
        let other = Connection::open(dir.path().join("db")).unwrap();
        assert!(checkpoint(&other, 10).unwrap().restarted);
        // The next write starts the WAL over and truncates the file.
        write_pages(&writer, 1);
        let len = std::fs::metadata(&wal).unwrap().len();
        assert!(len <= 100 * 4096, "the WAL file kept {len} bytes");
    }
}
