//! The SQLite store's data file: private permissions, a newer schema, a file
//! that is not a database or has damaged pages are refused, and one data
//! dir serves one store at a time.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_newer_schema_and_keeps_the_data_dir_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    SqliteStore::open(&data).unwrap().close();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let conn = rusqlite::Connection::open(SqliteStore::file_in(&data)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteStore::open(&data).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_private_even_in_a_shared_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store
        .upsert_session(
            key(),
            session(
                "a",
                Availability::Busy,
                Activity::InACall,
                t0(),
                TimeDelta::hours(1),
            ),
            t0(),
        )
        .await
        .unwrap();
    let mode = std::fs::metadata(SqliteStore::file_in(dir.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let file = SqliteStore::file_in(dir.path());
    std::fs::write(&file, b"not a database, just bytes ".repeat(400)).unwrap();

    let err = SqliteStore::open(dir.path()).unwrap_err();

    let StoreError::Corrupt(message) = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(
        message.contains("Restore the file from a backup"),
        "{message}"
    );
    assert!(message.contains("move it away"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_database_with_damaged_pages_and_opens_once_it_is_moved_away() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        let tenant = Uuid::new_v4();
        for i in 0..300 {
            let k = UserKey {
                tenant,
                user: Uuid::new_v4(),
            };
            store
                .upsert_session(k, notify::busy(notify::t0_plus(i)), t0())
                .await
                .unwrap();
        }
    }
    raw(dir.path())
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let file = SqliteStore::file_in(dir.path());
    damage_middle_pages(&file);

    let err = SqliteStore::open(dir.path()).unwrap_err();

    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("quick_check")),
        "{err}"
    );
    std::fs::rename(&file, dir.path().join("damaged.sqlite3")).unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.facts(key()).await.unwrap().version, 0);
}

/// Overwrites four pages in the middle of a database file with noise.
pub(crate) fn damage_middle_pages(file: &std::path::Path) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(file).unwrap().len();
    let pages = len / 4096;
    assert!(
        pages >= 16,
        "{pages} pages is too small a database to damage"
    );
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start((pages / 2 - 2) * 4096)).unwrap();
    let mut x: u32 = 0x9E37_79B9;
    let noise: Vec<u8> = (0..4 * 4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    f.write_all(&noise).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_second_store_on_one_data_dir_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path()).unwrap();
    let k = key();
    first
        .upsert_session(k, notify::busy(t0()), t0())
        .await
        .unwrap();

    let err = SqliteStore::open(dir.path()).unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "the store is unavailable: another presenced is using {}; stop it first, or give this server another --data-dir",
            dir.path().display()
        )
    );
    first.close();
    assert!(
        SqliteStore::open(dir.path()).is_err(),
        "closed, not yet dropped"
    );
    drop(first);
    let second = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(second.facts(k).await.unwrap().version, 1);
}
