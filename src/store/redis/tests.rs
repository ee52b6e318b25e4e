//! The Redis backend's own tests: several stores (nodes) on one real
//! `redis-server` or Redis Cluster, crashes between slots, a killed Redis.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use uuid::Uuid;

use super::test_server::{RedisCluster, RedisServer};
use super::writes::Op;
use super::{RedisStore, Target};
use crate::clock::{latest_instant, Instant};
use crate::domain::{Activity, Availability, Session, SessionKind, SessionPair, UserKey};
use crate::store::{Change, Store, StoreError};

fn t0() -> Instant {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
}

fn session(app: &str, av: Availability, ac: Activity, at: Instant) -> Session {
    Session {
        kind: SessionKind::Application,
        id: app.to_string(),
        pair: SessionPair::new(av, ac).unwrap(),
        last_active: at,
        expires_at: at + TimeDelta::hours(1),
    }
}

fn busy(app: &str, at: Instant) -> Session {
    session(app, Availability::Busy, Activity::InACall, at)
}

async fn open(target: &Target, namespace: &str) -> Arc<RedisStore> {
    Arc::new(RedisStore::open(target, namespace).await.unwrap())
}

/// Two stores (two nodes) on one deployment, 40 writers on one user
/// through both: every session lands, and the events keep the order of
/// the writes.
async fn two_nodes_hammering_one_user_keep_every_session(target: Target) {
    let namespace = format!("hammer-{}", Uuid::new_v4());
    let nodes = [
        open(&target, &namespace).await,
        open(&target, &namespace).await,
    ];
    let key = UserKey {
        tenant: Uuid::new_v4(),
        user: Uuid::new_v4(),
    };
    let mut tasks = vec![];
    for i in 0..40 {
        let node = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            // Alternate pairs so that many writes are events.
            let s = if i % 3 == 0 {
                busy(&format!("app{i}"), t0())
            } else {
                session(&format!("app{i}"), Availability::Away, Activity::Away, t0())
            };
            node.upsert_session(key, s, t0()).await.unwrap()
        }));
    }
    let mut applied = vec![];
    for t in tasks {
        applied.push(t.await.unwrap());
    }

    let facts = nodes[1].facts(key).await.unwrap();
    assert_eq!(
        nodes[0].recover_outboxes(Duration::ZERO).await.unwrap(),
        0,
        "every writer ended its in-flight mark"
    );
    assert_eq!(facts.sessions.len(), 40);
    assert_eq!(facts.version, 40);
    let mut versions: Vec<u64> = applied.iter().map(|a| a.after.version).collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=40).collect::<Vec<_>>(),
        "each write saw the one before"
    );
    let events = nodes[0].events_since(None, 0, 100).await.unwrap();
    let recorded = applied.iter().filter(|a| a.event.is_some()).count();
    assert_eq!(events.len(), recorded);
    assert!(
        events
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].facts.version < w[1].facts.version),
        "events out of write order: {:?}",
        events
            .iter()
            .map(|e| (e.seq, e.facts.version))
            .collect::<Vec<_>>()
    );
    for a in &applied {
        if let Some(seq) = a.event {
            let e = events.iter().find(|e| e.seq == seq).expect("its event");
            assert_eq!(e.facts, a.after);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_hammering_one_user_on_a_server_keep_every_session() {
    let server = RedisServer::start();
    two_nodes_hammering_one_user_keep_every_session(Target::Server(server.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_hammering_one_user_on_a_cluster_keep_every_session() {
    let cluster = RedisCluster::start();
    two_nodes_hammering_one_user_keep_every_session(Target::Cluster(cluster.seeds())).await;
}

/// A writer that dies after its user script, before moving its outbox:
/// the sweeper records the event, the delivery and the schedule, once.
async fn a_writer_dying_between_its_two_slots_is_completed_by_the_sweeper(target: Target) {
    let namespace = format!("sweep-{}", Uuid::new_v4());
    let store = open(&target, &namespace).await;
    let key = UserKey {
        tenant: Uuid::new_v4(),
        user: Uuid::new_v4(),
    };
    let watching = crate::store::sample_subscription(key.tenant, "app", "alice", &[key.user]);
    store
        .create_subscription(watching.clone(), true)
        .await
        .unwrap()
        .unwrap();
    let tu = format!("{}:{}", key.tenant, key.user);
    store.mark(&tu).await.unwrap();
    let change = Change::UpsertSession(busy("app", t0()));
    let half = store
        .write_marked(key, Op::Apply(change, t0()), false, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(half.after.sessions.len(), 1);
    assert!(store.events_since(None, 0, 10).await.unwrap().is_empty());
    assert!(store
        .due_users(latest_instant(), 10)
        .await
        .unwrap()
        .is_empty());

    let early = store.recover_outboxes(super::QUIET).await.unwrap();
    assert_eq!(early, 0, "a fresh mark may belong to a live writer");
    let other_node = open(&target, &namespace).await;
    let repaired = other_node.recover_outboxes(Duration::ZERO).await.unwrap();
    let again = other_node.recover_outboxes(Duration::ZERO).await.unwrap();

    assert_eq!((repaired, again), (1, 0));
    let events = store.events_since(None, 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].facts, half.after);
    let due = store.due_users(latest_instant(), 10).await.unwrap();
    assert_eq!(due.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [key]);
    let deliveries = store
        .due_deliveries(latest_instant(), 10, &[])
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].subscription, watching.id);
    // The next write moves on from there: no duplicate, the next seq.
    let next = store
        .upsert_session(
            key,
            busy("app", t0() + TimeDelta::minutes(1)),
            t0() + TimeDelta::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(next.after.version, 2);
    assert_eq!(
        store.events_since(None, 0, 10).await.unwrap().len(),
        1,
        "a keep-alive"
    );
}

/// Everything survives dropping the store and reopening it, and an
/// acknowledged write survives Redis being killed (appendfsync always);
/// while Redis is down the store answers `Unavailable` instead of
/// hanging, and the same store recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_reopening_and_a_killed_redis_and_the_store_reconnects() {
    let mut server = RedisServer::start();
    let target = Target::Server(server.url());
    let namespace = format!("restart-{}", Uuid::new_v4());
    let key = UserKey {
        tenant: Uuid::new_v4(),
        user: Uuid::new_v4(),
    };
    let s = crate::store::sample_subscription(key.tenant, "app", "alice", &[key.user]);
    let (facts, events, deliveries) = {
        // No lease: what it reads stays free for the reopened store.
        let store = RedisStore::open(&target, &namespace)
            .await
            .unwrap()
            .with_delivery_lease(Duration::ZERO);
        store
            .create_subscription(s.clone(), true)
            .await
            .unwrap()
            .unwrap();
        store
            .upsert_session(key, busy("app", t0()), t0())
            .await
            .unwrap();
        store.keep_secret("signing", "kept".into()).await.unwrap();
        store.save_emulator_time(t0()).await.unwrap();
        (
            store.facts(key).await.unwrap(),
            store.events_since(None, 0, 10).await.unwrap(),
            store
                .due_deliveries(latest_instant(), 10, &[])
                .await
                .unwrap(),
        )
    };
    let store = open(&target, &namespace).await;
    assert_eq!(store.facts(key).await.unwrap(), facts);
    assert_eq!(
        store.subscription(s.tenant, s.id).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.events_since(None, 0, 10).await.unwrap(), events);
    assert_eq!(
        store
            .due_deliveries(latest_instant(), 10, &[])
            .await
            .unwrap(),
        deliveries
    );
    assert_eq!(
        store.keep_secret("signing", "new".into()).await.unwrap(),
        "kept"
    );
    assert_eq!(store.emulator_time().await.unwrap(), Some(t0()));

    server.kill();
    let down = tokio::time::timeout(Duration::from_secs(30), async {
        (
            store.ping().await,
            store.upsert_session(key, busy("other", t0()), t0()).await,
        )
    })
    .await
    .expect("a store on a dead redis must answer, not hang");
    assert!(
        matches!(down.0, Err(StoreError::Unavailable(_))),
        "{:?}",
        down.0
    );
    assert!(
        matches!(down.1, Err(StoreError::Unavailable(_))),
        "{:?}",
        down.1
    );

    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.ping().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not reconnect to the restarted redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        store.facts(key).await.unwrap(),
        facts,
        "the acknowledged write survived"
    );
    assert_eq!(store.events_since(None, 0, 10).await.unwrap(), events);
    let later = t0() + TimeDelta::minutes(1);
    let applied = store
        .upsert_session(key, busy("second", later), later)
        .await
        .unwrap();
    assert_eq!(applied.after.sessions.len(), 2);
}

/// A due delivery goes to one node's worker; the others leave it alone
/// until that node's claim lapses (it died), then one of them takes it.
async fn a_delivery_is_handed_to_one_node_and_taken_over_when_its_claim_lapses(target: Target) {
    let namespace = format!("claims-{}", Uuid::new_v4());
    let a = RedisStore::open(&target, &namespace)
        .await
        .unwrap()
        .with_delivery_lease(Duration::from_millis(300));
    let b = open(&target, &namespace).await;
    let key = UserKey {
        tenant: Uuid::new_v4(),
        user: Uuid::new_v4(),
    };
    let s = crate::store::sample_subscription(key.tenant, "app", "alice", &[key.user]);
    a.create_subscription(s.clone(), true)
        .await
        .unwrap()
        .unwrap();
    let queued = b
        .upsert_session(key, busy("app", t0()), t0())
        .await
        .unwrap();
    assert_eq!(queued.queued, 1);

    let to_a = a.due_deliveries(latest_instant(), 10, &[]).await.unwrap();
    let to_b = b.due_deliveries(latest_instant(), 10, &[]).await.unwrap();
    let again_to_a = a.due_deliveries(latest_instant(), 10, &[]).await.unwrap();

    assert_eq!(to_a.len(), 1);
    assert!(to_b.is_empty(), "claimed by A: {to_b:?}");
    assert_eq!(b.next_delivery_at(&[]).await.unwrap(), None);
    assert_eq!(again_to_a, to_a, "a node keeps what it claimed");
    assert_eq!(
        stream_state(&a).await,
        (vec![a.node.to_string()], 1),
        "the due delivery is one stream entry, pending to A in the consumer group"
    );
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        let got = b.due_deliveries(latest_instant(), 10, &[]).await.unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never took over the delivery A claimed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(taken, to_a);
    assert_eq!(
        stream_state(&b).await,
        (vec![b.node.to_string()], 1),
        "B took the entry over"
    );
    b.remove_deliveries(&[taken[0].id]).await.unwrap();
    assert_eq!(
        stream_state(&b).await,
        (vec![], 0),
        "a sent delivery is acknowledged and deleted"
    );
    assert!(b
        .due_deliveries(latest_instant(), 10, &[])
        .await
        .unwrap()
        .is_empty());
}

/// The consumers holding entries of the deliveries' stream (one per
/// entry) and the stream's length.
async fn stream_state(store: &RedisStore) -> (Vec<String>, usize) {
    let stream = store.g("dx");
    store
        .with(|mut c, _| async move {
            let len: usize = ::redis::cmd("XLEN")
                .arg(&stream)
                .query_async(&mut c)
                .await?;
            let pending: Vec<(String, String, u64, u64)> = ::redis::cmd("XPENDING")
                .arg(&stream)
                .arg("w")
                .arg("-")
                .arg("+")
                .arg(100)
                .query_async(&mut c)
                .await?;
            Ok((pending.into_iter().map(|p| p.1).collect(), len))
        })
        .await
        .unwrap()
}

/// Every node's scheduler queues a subscription's
/// `reauthorizationRequired` at the same instant; one is kept. A renewed
/// subscription (another instant) gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reauthorization_notice_queued_by_two_nodes_at_one_instant_is_queued_once() {
    use crate::store::{LifecycleEvent, NewDelivery, Payload};
    let server = RedisServer::start();
    let target = Target::Server(server.url());
    let namespace = format!("once-{}", Uuid::new_v4());
    let nodes = [
        open(&target, &namespace).await,
        open(&target, &namespace).await,
    ];
    let s = crate::store::sample_subscription(Uuid::new_v4(), "app", "alice", &[Uuid::new_v4()]);
    nodes[0]
        .create_subscription(s.clone(), true)
        .await
        .unwrap()
        .unwrap();
    let notice = |event| NewDelivery {
        subscription: s.id,
        tenant: s.tenant,
        payload: Payload::Lifecycle { event },
    };
    let due = t0() + TimeDelta::minutes(45);

    for node in &nodes {
        node.enqueue(vec![notice(LifecycleEvent::ReauthorizationRequired)], due)
            .await
            .unwrap();
        node.enqueue(vec![notice(LifecycleEvent::Missed)], due)
            .await
            .unwrap();
    }
    let renewed = due + TimeDelta::hours(1);
    nodes[1]
        .enqueue(
            vec![notice(LifecycleEvent::ReauthorizationRequired)],
            renewed,
        )
        .await
        .unwrap();

    let queued = nodes[0]
        .due_deliveries(latest_instant(), 10, &[])
        .await
        .unwrap();
    let kinds: Vec<(Instant, &Payload)> = queued.iter().map(|d| (d.next_at, &d.payload)).collect();
    let reauthorize = Payload::Lifecycle {
        event: LifecycleEvent::ReauthorizationRequired,
    };
    let missed = Payload::Lifecycle {
        event: LifecycleEvent::Missed,
    };
    assert_eq!(
        kinds,
        [
            (due, &reauthorize),
            (due, &missed),
            (due, &missed),
            (renewed, &reauthorize)
        ]
    );
}

/// Facts that do not decode read as unknown for that user only, a
/// write replaces them (keeping the version moving), and there is
/// nothing to settle in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_facts_read_as_unknown_and_the_next_write_replaces_them() {
    let server = RedisServer::start();
    let target = Target::Server(server.url());
    let store = open(&target, &format!("damaged-{}", Uuid::new_v4())).await;
    let (damaged, fine) = (
        UserKey {
            tenant: Uuid::new_v4(),
            user: Uuid::new_v4(),
        },
        UserKey {
            tenant: Uuid::new_v4(),
            user: Uuid::new_v4(),
        },
    );
    for k in [damaged, fine] {
        store
            .upsert_session(k, busy("app", t0()), t0())
            .await
            .unwrap();
    }
    let hash = store.user_key(damaged, "u");
    store
        .with(|mut c, _| async move {
            ::redis::cmd("HSET")
                .arg(hash)
                .arg("f")
                .arg("{not facts")
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .unwrap();

    let read = store.facts(damaged).await.unwrap();
    assert!(read.unreadable && read.version == 1, "{read:?}");
    assert_eq!(store.facts(fine).await.unwrap().sessions.len(), 1);
    assert_eq!(
        store
            .settle(damaged, t0() + TimeDelta::hours(2))
            .await
            .unwrap(),
        None
    );
    let due = store.due_users(latest_instant(), 10).await.unwrap();
    assert_eq!(due.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [fine]);
    let later = t0() + TimeDelta::minutes(1);
    let replaced = store
        .upsert_session(damaged, busy("other", later), later)
        .await
        .unwrap();
    assert_eq!(replaced.after.version, 2);
    assert_eq!(store.facts(damaged).await.unwrap(), replaced.after);
    assert_eq!(replaced.after.sessions.len(), 1, "only the new session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_server_a_dead_writers_outbox_is_swept_and_a_dead_nodes_delivery_taken_over() {
    let server = RedisServer::start();
    let target = Target::Server(server.url());
    a_writer_dying_between_its_two_slots_is_completed_by_the_sweeper(target.clone()).await;
    a_delivery_is_handed_to_one_node_and_taken_over_when_its_claim_lapses(target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_dead_writers_outbox_is_swept_and_a_dead_nodes_delivery_taken_over() {
    let cluster = RedisCluster::start();
    let target = Target::Cluster(cluster.seeds());
    a_writer_dying_between_its_two_slots_is_completed_by_the_sweeper(target.clone()).await;
    a_delivery_is_handed_to_one_node_and_taken_over_when_its_claim_lapses(target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_event_seqs_are_never_reused_after_reopening() {
    let server = RedisServer::start();
    let target = Target::Server(server.url());
    let namespace = format!("seqs-{}", Uuid::new_v4());
    let write = |store: Arc<RedisStore>, minutes: i64| async move {
        let at = t0() + TimeDelta::minutes(minutes);
        let key = UserKey {
            tenant: Uuid::new_v4(),
            user: Uuid::new_v4(),
        };
        store
            .upsert_session(key, busy("app", at), at)
            .await
            .unwrap()
            .event
            .unwrap()
    };
    let last = {
        let store = open(&target, &namespace).await;
        write(store.clone(), 0).await;
        let last = write(store.clone(), 1).await;
        assert_eq!(store.prune_events(latest_instant()).await.unwrap(), 2);
        last
    };

    let store = open(&target, &namespace).await;

    assert_eq!(
        store.event_bounds().await.unwrap(),
        crate::store::EventBounds {
            pruned_through: last,
            last
        }
    );
    assert_eq!(write(store, 2).await, last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_is_not_there_is_unavailable_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for target in [
        Target::Server(format!("redis://127.0.0.1:{port}")),
        Target::Cluster(vec![format!("redis://127.0.0.1:{port}")]),
    ] {
        let store = open(&target, "nowhere").await;
        let answer = tokio::time::timeout(Duration::from_secs(30), store.ping())
            .await
            .expect("a store on an absent redis must answer, not hang");
        assert!(
            matches!(answer, Err(StoreError::Unavailable(_))),
            "{answer:?}"
        );
    }
}
