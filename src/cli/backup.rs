//! `presenced backup`: a consistent copy of a data dir's SQLite database,
//! taken with SQLite's online backup API so the server may keep running
//! (and writing) meanwhile. The copy is written beside the destination
//! under a temporary name, checked, and only then given its name, so a
//! failed backup never leaves a half-written FILE.

use std::path::{Path, PathBuf};

use clap::Args;
use rusqlite::{Connection, OpenFlags};

use crate::config::DEFAULT_DATA_DIR;
use crate::store::sqlite::SqliteStore;

/// `presenced backup --data-dir DIR --to FILE [--force]`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The server's data dir (its database is `presenced.sqlite3` in it).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Where to write the copy; to restore, stop the server and put this
    /// file in place of `<data-dir>/presenced.sqlite3`.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `presenced backup` (the copy on a blocking thread).
pub(super) async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let to = args.to.clone();
    tokio::task::spawn_blocking(move || backup(&args.data_dir, &args.to, args.force))
        .await
        .map_err(|e| anyhow::anyhow!("the backup thread failed: {e}"))??;
    eprintln!("presenced: backed up to {}", to.display());
    Ok(())
}

/// Copies the database of `data_dir` to `to` (refusing an existing `to`
/// unless `force`).
pub(super) fn backup(data_dir: &Path, to: &Path, force: bool) -> anyhow::Result<()> {
    let source = SqliteStore::file_in(data_dir);
    if !source.is_file() {
        anyhow::bail!(
            "no presenced database at {}; is {} the server's --data-dir?",
            source.display(),
            data_dir.display()
        );
    }
    if !force && to.exists() {
        anyhow::bail!(
            "{} exists; choose another --to, or add --force to replace it",
            to.display()
        );
    }
    let partial = partial_name(to);
    let result = copy_and_check(&source, &partial).and_then(|()| place(&partial, to, force));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// `FILE.partial-<random>` beside FILE (same file system: renaming is atomic).
fn partial_name(to: &Path) -> PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(format!(".partial-{}", uuid::Uuid::new_v4().simple()));
    PathBuf::from(name)
}

/// Copies `source` into the new file `partial` in one backup step (one
/// read transaction: a snapshot, which in WAL mode never blocks the
/// server's writer), then checks the copy.
fn copy_and_check(source: &Path, partial: &Path) -> anyhow::Result<()> {
    create_private_file(partial)?;
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", source.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(5))?;
    let mut dst = Connection::open(partial)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", partial.display()))?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)
            .map_err(|e| anyhow::anyhow!("cannot start the backup: {e}"))?;
        // -1: every page in one step, so the copy is one consistent
        // snapshot; busy or locked (a checkpoint at that moment): retry.
        let mut attempts = 0;
        loop {
            match backup.step(-1) {
                Ok(rusqlite::backup::StepResult::Done) => break,
                Ok(_) if attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Ok(other) => anyhow::bail!(
                    "the backup of {} did not finish ({other:?}); is the server stuck?",
                    source.display()
                ),
                Err(e) => {
                    anyhow::bail!("the backup of {} failed: {e}", source.display())
                }
            }
        }
    }
    // The copy keeps the source's WAL mode; fold everything into the one
    // file so FILE alone is the backup.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        anyhow::bail!("the copy failed its integrity check: {check}");
    }
    dst.close()
        .map_err(|(_, e)| anyhow::anyhow!("cannot close {}: {e}", partial.display()))?;
    Ok(())
}

/// Creates an empty file only its owner may read (the database holds
/// every user's presence).
fn create_private_file(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    Ok(())
}

/// Gives the checked copy its name: a rename with `force`, else a hard
/// link that fails if FILE appeared meanwhile (never replacing it).
fn place(partial: &Path, to: &Path, force: bool) -> anyhow::Result<()> {
    if force {
        std::fs::rename(partial, to)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", to.display()))?;
        return Ok(());
    }
    match std::fs::hard_link(partial, to) {
        Ok(()) => {
            let _ = std::fs::remove_file(partial);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "{} exists; choose another --to, or add --force to replace it",
            to.display()
        ),
        Err(e) => anyhow::bail!("cannot write {}: {e}", to.display()),
    }
}
