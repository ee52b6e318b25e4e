//! The SQLite store across a restart: state and notification state survive
//! reopening the file, pruned event seqs are never reused, a version 1 file
//! is upgraded in place, the subscription expiry table is repaired, and the
//! resident copy reads exactly what was read before.

use super::*;
use crate::domain::Visibility;
use crate::store::{EventBounds, LifecycleEvent, NewDelivery, Payload, Subscription};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let s = notify::busy(t0());
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store.upsert_session(k, s.clone(), t0()).await.unwrap();
        store.close();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let facts = store.facts(k).await.unwrap();
    assert_eq!(facts.sessions, vec![s]);
    assert_eq!(facts.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_notification_state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let s = Subscription {
        owner: Some(Uuid::new_v4()),
        include_resource_data: true,
        encryption_certificate: Some("MIIBcert".into()),
        encryption_certificate_id: Some("cert-1".into()),
        notification_url_app_id: Some("hook-app".into()),
        ..notify::subscription(k.tenant, "app", "alice", &[k.user])
    };
    let (deliveries, events, bounds) = {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        store
            .create_subscription(s.clone(), true)
            .await
            .unwrap()
            .unwrap();
        store
            .upsert_session(k, notify::busy(t0()), t0())
            .await
            .unwrap();
        let away = session(
            "app",
            Availability::Away,
            Activity::Away,
            t0(),
            TimeDelta::hours(1),
        );
        let at = notify::t0_plus(1);
        store.upsert_session(k, away, at).await.unwrap();
        let missed = NewDelivery {
            subscription: s.id,
            tenant: s.tenant,
            payload: Payload::Lifecycle {
                event: LifecycleEvent::Missed,
            },
        };
        store
            .enqueue(vec![missed], notify::t0_plus(2))
            .await
            .unwrap();
        let first = store
            .due_deliveries(latest_instant(), 10, &[])
            .await
            .unwrap()[0]
            .id;
        store
            .retry_deliveries(&[first], notify::t0_plus(5))
            .await
            .unwrap();
        assert_eq!(store.prune_events(at).await.unwrap(), 1);
        store.keep_secret("signing", "kept".into()).await.unwrap();
        let deliveries = store
            .due_deliveries(latest_instant(), 10, &[])
            .await
            .unwrap();
        let events = store.events_since(None, 0, 10).await.unwrap();
        let bounds = store.event_bounds().await.unwrap();
        assert_eq!((deliveries.len(), events.len()), (3, 1));
        store.close();
        (deliveries, events, bounds)
    };

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());

    assert_eq!(
        store.subscription(s.tenant, s.id).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        store.subscriptions_of(s.tenant, "app").await.unwrap(),
        std::slice::from_ref(&s)
    );
    assert_eq!(
        store
            .due_deliveries(latest_instant(), 10, &[])
            .await
            .unwrap(),
        deliveries
    );
    assert_eq!(
        deliveries.iter().map(|d| d.attempts).collect::<Vec<_>>(),
        [0, 0, 1],
        "{deliveries:?}"
    );
    assert_eq!(store.events_since(None, 0, 10).await.unwrap(), events);
    assert_eq!(store.event_bounds().await.unwrap(), bounds);
    assert_eq!(bounds.pruned_through + 1, bounds.last);
    assert_eq!(
        store.keep_secret("signing", "new".into()).await.unwrap(),
        "kept"
    );
    let later = notify::t0_plus(10);
    let applied = store
        .upsert_session(k, notify::busy(later), later)
        .await
        .unwrap();
    assert_eq!(applied.queued, 1, "the subscription still watches the user");
    assert!(applied.event.unwrap() > bounds.last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_never_reuses_pruned_event_seqs_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let store = SqliteStore::open(dir.path()).unwrap();
        for minutes in [0, 1] {
            let at = notify::t0_plus(minutes);
            store
                .upsert_session(key(), notify::busy(at), at)
                .await
                .unwrap();
        }
        assert_eq!(store.prune_events(latest_instant()).await.unwrap(), 2);
        store.close();
        store.event_bounds().await.unwrap().last
    };

    let store = SqliteStore::open(dir.path()).unwrap();

    assert_eq!(
        store.event_bounds().await.unwrap(),
        EventBounds {
            pruned_through: last,
            last
        }
    );
    let at = notify::t0_plus(2);
    let next = store
        .upsert_session(key(), notify::busy(at), at)
        .await
        .unwrap();
    assert_eq!(next.event, Some(last + 1));
}

/// A file written by the first schema (users and meta only, no
/// `settled_at` in the facts) opens, keeps its users and gains the
/// notification tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrades_a_version_1_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let mut facts = crate::domain::UserFacts::default();
    Change::UpsertSession(notify::busy(t0()))
        .apply_to(&mut facts, t0())
        .unwrap();
    facts.settled_at = None;
    {
        crate::store::sqlite::create_private_dir(dir.path()).unwrap();
        let conn = rusqlite::Connection::open(SqliteStore::file_in(dir.path())).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (tenant BLOB NOT NULL, user BLOB NOT NULL,
                   version INTEGER NOT NULL, facts BLOB NOT NULL, next_change INTEGER,
                   PRIMARY KEY (tenant, user)) WITHOUT ROWID;
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                 PRAGMA user_version = 1;",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO users (tenant, user, version, facts, next_change)
                 VALUES (?1, ?2, 1, ?3, NULL)",
            rusqlite::params![
                k.tenant.as_bytes(),
                k.user.as_bytes(),
                crate::store::codec::encode(&facts)
            ],
        )
        .unwrap();
    }

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());

    assert_eq!(store.facts(k).await.unwrap(), facts);
    let version: i64 = rusqlite::Connection::open(SqliteStore::file_in(dir.path()))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3, "the current schema");
    assert_eq!(store.event_bounds().await.unwrap(), EventBounds::default());
    let s = notify::subscription(k.tenant, "app", "alice", &[k.user]);
    store.create_subscription(s, true).await.unwrap().unwrap();
    let at = notify::t0_plus(1);
    let away = session(
        "app",
        Availability::Away,
        Activity::Away,
        at,
        TimeDelta::hours(1),
    );
    let applied = store.upsert_session(k, away, at).await.unwrap();
    assert_eq!(applied.visibility, Visibility::Presence);
    assert_eq!((applied.event, applied.queued), (Some(1), 1));
}

/// `subscription_expiry` is repaired at open: a build that changed
/// subscriptions without it (an older one) cannot leave a subscription
/// unwatched, renewed or deleted in the wrong way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_repairs_the_subscription_expiry_table_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let s = notify::subscription(k.tenant, "app", "alice", &[k.user]);
    let gone = notify::subscription(k.tenant, "other", "alice", &[k.user]);
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .create_subscription(s.clone(), true)
            .await
            .unwrap()
            .unwrap();
        store.close();
    }
    {
        let conn = rusqlite::Connection::open(SqliteStore::file_in(dir.path())).unwrap();
        conn.execute_batch("DELETE FROM subscription_expiry;")
            .unwrap();
        conn.execute(
            "INSERT INTO subscription_expiry (id, expires_at) VALUES (?1, 0)",
            [gone.id.as_bytes()],
        )
        .unwrap();
    }

    let store = SqliteStore::open(dir.path()).unwrap();

    let at = notify::t0_plus(1);
    let applied = store.upsert_session(k, notify::busy(at), at).await.unwrap();
    assert_eq!(applied.queued, 1, "the subscription watches again");
    let rows: i64 = rusqlite::Connection::open(SqliteStore::file_in(dir.path()))
        .unwrap()
        .query_row("SELECT count(*) FROM subscription_expiry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows, 1,
        "the row of a subscription that is gone was dropped"
    );
}

/// The resident copy reads exactly what the rows decode to after a
/// restart: every kind of fact, instants with nanoseconds (cut to the
/// microsecond, as stored, but the status message's), client sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_reopened_store_reads_exactly_what_was_read_before() {
    let dir = tempfile::tempdir().unwrap();
    let now = t0() + TimeDelta::nanoseconds(123_456_789);
    let (a, b, c) = (key(), key(), key());
    let before = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let client = Session {
            kind: SessionKind::Client,
            id: "desktop".into(),
            pair: SessionPair::parse_client("Busy", "InAMeeting").unwrap(),
            last_active: now,
            expires_at: now + TimeDelta::hours(1),
        };
        store.upsert_session(a, client, now).await.unwrap();
        store
            .upsert_session(a, notify::busy(now), now)
            .await
            .unwrap();
        let preferred = Preferred {
            pair: PreferredPair::new(Availability::Away, Activity::Away).unwrap(),
            set_at: now,
            expires_at: now + TimeDelta::days(1),
        };
        store
            .apply(a, Change::SetPreferred(preferred), now)
            .await
            .unwrap();
        let status = StatusMessage {
            content: "back at 3".into(),
            expires_at: Some(now + TimeDelta::hours(2)),
            expiry_zone: Some("W. Europe Standard Time".into()),
            published_at: now,
        };
        store
            .apply(b, Change::SetStatusMessage(Some(status)), now)
            .await
            .unwrap();
        let layer = WorkLocationLayer {
            location_type: WorkLocationType::Office,
            place_id: Some("b1".into()),
            set_at: now,
        };
        store
            .apply(c, Change::SetManualLocation(layer), now)
            .await
            .unwrap();
        store
            .upsert_session(c, notify::busy(now), now)
            .await
            .unwrap();
        store
            .remove_session(c, SessionKind::Application, "app", now)
            .await
            .unwrap();
        let before = store.facts_for(a.tenant, &[a.user]).await.unwrap();
        let mut all = vec![before[0].clone()];
        all.push(store.facts(b).await.unwrap());
        all.push(store.facts(c).await.unwrap());
        all
    };

    let store = SqliteStore::open(dir.path()).unwrap();

    let after = vec![
        store.facts(a).await.unwrap(),
        store.facts(b).await.unwrap(),
        store.facts(c).await.unwrap(),
    ];
    assert_eq!(after, before);
    assert_eq!(after[0].sessions.len(), 2);
    assert!(after[1].status.is_some());
    assert!(after[2].last_seen.is_some() && after[2].work_location.manual.is_some());
    assert_eq!(store.corrupt_rows(), 0);
}
