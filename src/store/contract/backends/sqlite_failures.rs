//! The SQLite store and writes that fail inside a group commit: a failed
//! write is rolled back alone, a failed transaction fails its batch (and
//! readiness), and reads never see a write that did not commit.

use super::*;

/// Runs `writes` concurrently so that they share one group commit:
/// a raw connection holds the write lock while every write is queued
/// (each future polled once sends its job), then lets the writer go.
async fn write_in_one_batch(
    _dir: &std::path::Path,
    store: &SqliteStore,
    writes: Vec<(UserKey, Session)>,
) -> Vec<Result<crate::store::Applied, StoreError>> {
    // Hold the writer thread inside a job, and queue the writes only
    // once it runs: the job's batch was taken before them, so they are
    // all waiting when the writer next drains the queue and share one
    // batch. (Queued beside the job, some could join its batch.)
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let mut hold = Box::pin(store.run(t0(), move |_| {
        let _ = started.send(());
        let _ = held.recv();
        Ok(())
    }));
    std::future::poll_fn(|cx| {
        assert!(hold.as_mut().poll(cx).is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while running.try_recv().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer did not start the holding job within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let mut pending: Vec<_> = writes
        .into_iter()
        .map(|(k, s)| store.upsert_session(k, s, t0()))
        .collect();
    std::future::poll_fn(|cx| {
        for write in pending.iter_mut() {
            assert!(write.as_mut().poll(cx).is_pending());
        }
        std::task::Poll::Ready(())
    })
    .await;
    release.send(()).unwrap();
    let _ = hold.await;
    futures_util::future::join_all(pending).await
}

/// A write that is rolled back, alone or with its whole batch, leaves
/// nothing in the resident copy; the next write of the same user reads
/// and builds on the committed facts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_never_see_a_write_that_did_not_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let (k, lost) = (key(), key());
    let first = store
        .upsert_session(k, notify::busy(t0()), t0())
        .await
        .unwrap();
    let conn = raw(dir.path());
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.user = {}
             BEGIN SELECT RAISE(ABORT, 'refused'); END;
             CREATE TRIGGER lose_all BEFORE INSERT ON users WHEN NEW.user = {}
             BEGIN SELECT RAISE(ROLLBACK, 'lost'); END;",
        blob(k.user),
        blob(lost.user)
    ))
    .unwrap();
    let later = notify::t0_plus(1);
    let away = session(
        "app",
        Availability::Away,
        Activity::Away,
        later,
        TimeDelta::hours(1),
    );

    let alone = store.upsert_session(k, away.clone(), later).await;
    let whole = write_in_one_batch(
        dir.path(),
        &store,
        vec![(k, away.clone()), (lost, away.clone())],
    )
    .await;

    assert!(alone.is_err(), "{alone:?}");
    assert!(whole.iter().all(|r| r.is_err()), "{whole:?}");
    assert_eq!(store.facts(k).await.unwrap(), first.after);
    assert_eq!(store.facts(lost).await.unwrap().version, 0);
    conn.execute_batch("DROP TRIGGER refuse; DROP TRIGGER lose_all")
        .unwrap();
    let applied = store.upsert_session(k, away.clone(), later).await.unwrap();
    assert_eq!(applied.before, first.after);
    assert_eq!(applied.after.version, 2);
    assert_eq!(store.facts(k).await.unwrap(), applied.after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_write_that_fails_is_rolled_back_alone_and_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let tenant = Uuid::new_v4();
    let keys: Vec<UserKey> = (0..40)
        .map(|_| UserKey {
            tenant,
            user: Uuid::new_v4(),
        })
        .collect();
    let bad = keys[20];
    let first = store
        .upsert_session(bad, notify::busy(t0()), t0())
        .await
        .unwrap();
    // The bad user's event fails after its users row was already
    // updated inside the batch: only a savepoint can undo that row.
    raw(dir.path())
        .execute_batch(&format!(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON events WHEN NEW.user = {}
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            blob(bad.user)
        ))
        .unwrap();
    let away = |at| {
        session(
            "app",
            Availability::Away,
            Activity::Away,
            at,
            TimeDelta::hours(1),
        )
    };

    let results = write_in_one_batch(
        dir.path(),
        &store,
        keys.iter().map(|k| (*k, away(t0()))).collect(),
    )
    .await;

    for (k, result) in keys.iter().zip(&results) {
        if *k == bad {
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{result:?}"
            );
        } else {
            assert_eq!(result.as_ref().unwrap().after.version, 1, "{k:?}");
        }
    }
    let users: Vec<Uuid> = keys.iter().map(|k| k.user).collect();
    let facts = store.facts_for(tenant, &users).await.unwrap();
    for (k, f) in keys.iter().zip(&facts) {
        if *k == bad {
            assert_eq!(f, &first.after, "none of the failed write's rows stayed");
        } else {
            assert_eq!(f.sessions, [away(t0())], "{k:?}");
        }
    }
    assert_eq!(
        store.events_since(None, 0, 100).await.unwrap().len(),
        40,
        "the bad user's first write and the 39 others"
    );
    assert!(
        !store.writes_failing(),
        "one failed operation is not a failing store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failed_transaction_fails_its_batch_and_readiness_until_a_write_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let (good, bad) = (key(), key());
    let conn = raw(dir.path());
    // RAISE(ROLLBACK) ends the whole transaction, as SQLite may do on
    // its own for a full disk or an I/O error; the probe readiness
    // writes fails the same way.
    conn.execute_batch(&format!(
        "CREATE TRIGGER lose_all BEFORE INSERT ON users WHEN NEW.user = {}
             BEGIN SELECT RAISE(ROLLBACK, 'lost'); END;
             CREATE TRIGGER refuse_probe BEFORE INSERT ON meta WHEN NEW.key = 'write_probe'
             BEGIN SELECT RAISE(ROLLBACK, 'lost'); END;",
        blob(bad.user)
    ))
    .unwrap();

    let results = write_in_one_batch(
        dir.path(),
        &store,
        vec![(good, notify::busy(t0())), (bad, notify::busy(t0()))],
    )
    .await;

    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StoreError::Unavailable(_)))),
        "{results:?}"
    );
    assert_eq!(
        store.facts(good).await.unwrap().version,
        0,
        "nothing committed"
    );
    assert!(store.writes_failing());
    assert!(store.ping().await.is_err(), "the probe write fails too");

    conn.execute_batch("DROP TRIGGER refuse_probe").unwrap();

    store.ping().await.unwrap();
    assert!(
        !store.writes_failing(),
        "the probe's commit proved writes work"
    );
    store
        .upsert_session(good, notify::busy(t0()), t0())
        .await
        .unwrap();
}
