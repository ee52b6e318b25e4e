//! The data dir and the files in it: the lock that gives one process the
//! dir, the integrity check a database file must pass to be opened, and
//! owner-only permissions.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use crate::store::StoreError;

/// The file in a data dir whose exclusive lock marks the dir as in use.
pub const LOCK_FILE: &str = "presenced.lock";

/// Takes the exclusive lock on `data_dir`'s [`LOCK_FILE`]: two servers
/// writing one database would each trust a view the other changes.
///
/// The lock is SQLite's own: an empty database file held in an `EXCLUSIVE`
/// transaction for the store's life. That is an OS advisory lock (`fcntl`
/// on Unix, `LockFileEx` on Windows) released when the connection closes or
/// the process dies, even on `kill -9`, and SQLite makes it exclusive
/// between connections of one process too. (`std::fs::File::try_lock`
/// would do the same job but needs Rust 1.89, above this crate's MSRV.)
pub(super) fn lock_data_dir(data_dir: &Path) -> Result<Mutex<Connection>, StoreError> {
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
pub(super) fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
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
pub(super) fn restrict_files(db: &Path) {
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
