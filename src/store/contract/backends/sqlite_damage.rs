//! The SQLite store and rows damaged at rest or under a running store:
//! undecodable rows and events read as presence unknown, are never settled,
//! and the next write replaces them.

use super::*;

/// Rows damaged at rest are met when the store opens (it loads every
/// user's facts), and read as unreadable from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_undecodable_row_reads_as_presence_unknown_for_that_user_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let tenant = Uuid::new_v4();
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        let k = UserKey {
            tenant,
            user: *user,
        };
        store
            .upsert_session(k, notify::busy(t0()), t0())
            .await
            .unwrap();
    }
    let conn = raw(dir.path());
    // Bytes that are not our JSON; a version that is not a number.
    conn.execute_batch(&format!(
        "UPDATE users SET facts = x'7b6e6f' WHERE user = {};
             UPDATE users SET version = 'seven' WHERE user = {};",
        blob(users[1]),
        blob(users[2])
    ))
    .unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();

    let all = store.facts_for(tenant, &users).await.unwrap();

    let shown: Vec<_> = all
        .iter()
        .map(|f| {
            let e = effective(f, t0());
            (e.availability, e.activity)
        })
        .collect();
    assert_eq!(
        shown,
        [
            (Availability::Busy, Activity::InACall),
            (Availability::PresenceUnknown, Activity::PresenceUnknown),
            (Availability::PresenceUnknown, Activity::PresenceUnknown),
            (Availability::Busy, Activity::InACall),
        ]
    );
    assert!(all[1].unreadable && all[1].sessions.is_empty());
    assert_eq!(
        (all[1].version, all[2].version),
        (1, 0),
        "the stored version when it is readable"
    );
    assert_eq!(
        store.corrupt_rows(),
        2,
        "each undecodable row met is counted"
    );
    store.facts_for(tenant, &users).await.unwrap();
    assert_eq!(store.corrupt_rows(), 2, "met once, when loading");
}

/// A row damaged at rest is unreadable once loaded; a write replaces it
/// in the resident copy and in the file alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_row_damaged_at_rest_is_replaced_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let (k, other) = (key(), key());
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        for user in [k, other] {
            store
                .upsert_session(user, notify::busy(t0()), t0())
                .await
                .unwrap();
        }
    }
    raw(dir.path())
        .execute_batch(&format!(
            "UPDATE users SET facts = x'00ff' WHERE user = {}",
            blob(k.user)
        ))
        .unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(store.facts(k).await.unwrap().unreadable);
    assert!(!store.facts(other).await.unwrap().unreadable);
    let later = notify::t0_plus(1);

    let applied = store
        .upsert_session(k, notify::busy(later), later)
        .await
        .unwrap();

    assert!(applied.before.unreadable);
    assert_eq!(store.facts(k).await.unwrap(), applied.after);
    assert_eq!(applied.after.version, 2);
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.facts(k).await.unwrap(), applied.after);
    assert_eq!(store.corrupt_rows(), 0);
}

/// A row damaged on disk while the store runs: the store's facts are
/// the committed ones it holds (the writer never reads rows back), so
/// the next write builds on them and overwrites the damage; nothing
/// that was acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_write_overwrites_a_row_damaged_under_a_running_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let k = key();
    let first = store
        .upsert_session(k, notify::busy(t0()), t0())
        .await
        .unwrap();
    raw(dir.path())
        .execute_batch(&format!(
            "UPDATE users SET facts = x'00ff' WHERE user = {}",
            blob(k.user)
        ))
        .unwrap();
    let later = notify::t0_plus(1);
    let away = session(
        "other-app",
        Availability::Away,
        Activity::Away,
        later,
        TimeDelta::hours(1),
    );

    let applied = store.upsert_session(k, away.clone(), later).await.unwrap();

    assert_eq!(applied.before, first.after, "built on the committed facts");
    assert_eq!(applied.after.sessions.len(), 2, "both sessions kept");
    assert!(applied.after.sessions.contains(&away));
    assert_eq!(applied.after.version, 2, "the version keeps moving forward");
    assert_eq!(store.facts(k).await.unwrap(), applied.after);
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        store.facts(k).await.unwrap(),
        applied.after,
        "the row is whole again"
    );
    assert_eq!(store.corrupt_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_undecodable_row_is_never_settled_and_leaves_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let k = key();
    store
        .upsert_session(k, notify::busy(t0()), t0())
        .await
        .unwrap();
    drop(store);
    raw(dir.path())
        .execute_batch(&format!(
            "UPDATE users SET facts = x'7b7d7d' WHERE user = {}",
            blob(k.user)
        ))
        .unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let due = store.due_users(latest_instant(), 10).await.unwrap();
    assert_eq!(due.len(), 1, "the expiry was scheduled before the damage");
    let events = store.event_bounds().await.unwrap().last;

    let settled = store.settle(k, due[0].1).await.unwrap();

    assert_eq!(settled, None);
    assert!(store
        .due_users(latest_instant(), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.facts(k).await.unwrap().unreadable, "the row is kept");
    assert_eq!(store.event_bounds().await.unwrap().last, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_undecodable_event_reads_as_presence_unknown_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let (a, b) = (key(), key());
    store
        .upsert_session(a, notify::busy(t0()), t0())
        .await
        .unwrap();
    store
        .upsert_session(b, notify::busy(t0()), t0())
        .await
        .unwrap();
    raw(dir.path())
        .execute_batch(&format!(
            "UPDATE events SET facts = x'5b' WHERE user = {}",
            blob(a.user)
        ))
        .unwrap();

    let events = store.events_since(None, 0, 10).await.unwrap();

    assert_eq!(events.len(), 2);
    assert_eq!(events[0].key, a);
    assert!(events[0].facts.unreadable);
    assert_eq!(events[0].facts.version, 1);
    assert!(!events[1].facts.unreadable);
    assert_eq!(store.corrupt_rows(), 1);
}
