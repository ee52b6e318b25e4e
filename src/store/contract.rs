//! The storage contract: one suite, run against every backend. A backend is
//! done when this passes. The change-notification cases (events, settling,
//! subscriptions, the outbox) live in `contract_notify.rs`.

use std::future::Future;
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use uuid::Uuid;

use super::{Change, Store, StoreError};
use crate::clock::Instant;
use crate::domain::{
    effective, Activity, Availability, Preferred, PreferredPair, Session, SessionKind, SessionPair,
    StatusMessage, UserKey, WorkLocationLayer, WorkLocationType,
};

#[path = "contract_notify.rs"]
pub(crate) mod notify;
#[path = "contract_state.rs"]
mod state;

fn t0() -> Instant {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
}

fn key() -> UserKey {
    UserKey {
        tenant: Uuid::new_v4(),
        user: Uuid::new_v4(),
    }
}

fn session(app: &str, av: Availability, ac: Activity, at: Instant, life: TimeDelta) -> Session {
    Session {
        kind: SessionKind::Application,
        id: app.to_string(),
        pair: SessionPair::new(av, ac).unwrap(),
        last_active: at,
        expires_at: at + life,
    }
}

/// Runs every contract case against stores made by `make`.
pub(crate) async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    unknown_users_read_as_empty(make().await).await;
    upsert_then_read_back(make().await).await;
    upsert_refreshes_the_same_session(make().await).await;
    remove_unknown_session_is_not_found_and_changes_nothing(make().await).await;
    remove_expired_session_is_not_found(make().await).await;
    tenants_are_isolated(make().await).await;
    facts_for_keeps_order_and_fills_gaps(make().await).await;
    every_change_round_trips(make().await).await;
    applied_reports_before_and_after(make().await).await;
    writes_prune_expired_facts(make().await).await;
    due_users_follow_next_change(make().await).await;
    a_due_time_is_never_later_than_the_transition(make().await).await;
    concurrent_writes_all_land(make().await).await;
    emulator_time_round_trips(make().await).await;

    notify::a_presence_change_records_an_event_with_presence_visibility(make().await).await;
    notify::a_keep_alive_with_the_same_pair_is_unchanged_and_records_nothing(make().await).await;
    notify::a_status_message_change_is_a_resource_event_without_deliveries(make().await).await;
    notify::events_are_ordered_filtered_by_tenant_and_paged(make().await).await;
    notify::each_event_reproduces_the_presence_after_its_change(make().await).await;
    notify::pruning_drops_old_events_and_never_reuses_their_seqs(make().await).await;
    notify::settling_a_fade_records_it_at_the_transition_instant(make().await).await;
    notify::settling_a_user_never_written_changes_nothing(make().await).await;
    notify::due_users_walk_a_user_through_its_transitions(make().await).await;
    notify::a_settled_fade_notifies_watchers_like_a_write(make().await).await;
    notify::a_created_subscription_reads_back_only_in_its_tenant(make().await).await;
    notify::subscriptions_of_list_one_app_in_one_tenant(make().await).await;
    notify::the_same_combination_conflicts_with_the_existing_subscription(make().await).await;
    notify::graph_limits_allow_one_subscription_per_user_and_app(make().await).await;
    notify::an_expired_subscription_does_not_conflict(make().await).await;
    notify::update_replaces_a_subscription_and_ignores_unknown_ones(make().await).await;
    notify::delete_removes_a_subscription_its_watches_and_its_deliveries(make().await).await;
    notify::a_presence_change_queues_one_delivery_per_live_watching_subscription(make().await)
        .await;
    notify::a_renewed_subscription_watches_again_and_a_shortened_one_stops(make().await).await;
    notify::deliveries_are_due_by_next_at_with_limit_and_skip(make().await).await;
    notify::subscriptions_fall_due_for_reauthorization_then_expiry(make().await).await;
    notify::a_kept_secret_is_the_first_candidate(make().await).await;
    notify::settling_a_user_whose_only_write_failed_changes_nothing(make().await).await;
    notify::pruning_never_drops_an_event_recorded_after_the_cutoff(make().await).await;
    notify::a_transition_between_microseconds_settles_and_leaves_nothing_due(make().await).await;
}

/// The emulator's whole-store operations (state document, reset), and the
/// users listing and counts built on the same index of users.
pub(crate) async fn run_state_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    state::contents_hold_every_user_and_subscription(make().await).await;
    state::a_tenant_reset_wipes_that_tenant_only(make().await).await;
    state::a_full_reset_wipes_everything_but_secrets_and_the_clock(make().await).await;
    state::replace_then_contents_round_trips_and_watches(make().await).await;
    state::users_page_lists_one_tenant_in_id_order_and_pages(make().await).await;
    state::counts_follow_users_sessions_and_subscriptions(make().await).await;
}

async fn emulator_time_round_trips(store: Arc<dyn Store>) {
    assert_eq!(store.emulator_time().await.unwrap(), None);
    store.save_emulator_time(t0()).await.unwrap();
    let later = t0() + TimeDelta::days(400);
    store.save_emulator_time(later).await.unwrap();
    assert_eq!(store.emulator_time().await.unwrap(), Some(later));
    // Never backwards, even if saves arrive out of order.
    store.save_emulator_time(t0()).await.unwrap();
    assert_eq!(store.emulator_time().await.unwrap(), Some(later));
}

async fn unknown_users_read_as_empty(store: Arc<dyn Store>) {
    let facts = store.facts(key()).await.unwrap();
    assert!(facts.sessions.is_empty());
    assert_eq!(facts.version, 0);
    store.ping().await.unwrap();
}

async fn upsert_then_read_back(store: Arc<dyn Store>) {
    let k = key();
    let s = notify::busy(t0());
    store.upsert_session(k, s.clone(), t0()).await.unwrap();
    let facts = store.facts(k).await.unwrap();
    assert_eq!(facts.sessions, vec![s]);
    assert_eq!(facts.version, 1);
    assert_eq!(facts.updated_at, Some(t0()));
}

async fn upsert_refreshes_the_same_session(store: Arc<dyn Store>) {
    let k = key();
    let first = session(
        "app",
        Availability::Available,
        Activity::Available,
        t0(),
        TimeDelta::minutes(5),
    );
    let later = t0() + TimeDelta::minutes(3);
    let second = session(
        "app",
        Availability::Away,
        Activity::Away,
        later,
        TimeDelta::minutes(5),
    );
    store.upsert_session(k, first, t0()).await.unwrap();
    store
        .upsert_session(k, second.clone(), later)
        .await
        .unwrap();
    let facts = store.facts(k).await.unwrap();
    assert_eq!(facts.sessions, vec![second]);
    assert_eq!(facts.version, 2);
}

async fn remove_unknown_session_is_not_found_and_changes_nothing(store: Arc<dyn Store>) {
    let k = key();
    let s = notify::busy(t0());
    store.upsert_session(k, s, t0()).await.unwrap();
    let err = store
        .remove_session(k, SessionKind::Application, "other", t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.facts(k).await.unwrap().version, 1);
    store
        .remove_session(k, SessionKind::Application, "app", t0())
        .await
        .unwrap();
    assert!(store.facts(k).await.unwrap().sessions.is_empty());
}

async fn remove_expired_session_is_not_found(store: Arc<dyn Store>) {
    let k = key();
    let s = session(
        "app",
        Availability::Busy,
        Activity::InACall,
        t0(),
        TimeDelta::minutes(5),
    );
    store.upsert_session(k, s, t0()).await.unwrap();
    let err = store
        .remove_session(
            k,
            SessionKind::Application,
            "app",
            t0() + TimeDelta::minutes(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
}

async fn tenants_are_isolated(store: Arc<dyn Store>) {
    let a = key();
    let b = UserKey {
        tenant: Uuid::new_v4(),
        user: a.user,
    };
    let s = notify::busy(t0());
    store.upsert_session(a, s, t0()).await.unwrap();
    assert!(store.facts(b).await.unwrap().sessions.is_empty());
    assert!(store
        .remove_session(b, SessionKind::Application, "app", t0())
        .await
        .is_err());
    assert_eq!(store.facts(a).await.unwrap().sessions.len(), 1);
}

async fn facts_for_keeps_order_and_fills_gaps(store: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let users: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    for (i, user) in users.iter().enumerate().step_by(2) {
        let s = session(
            &format!("app{i}"),
            Availability::Busy,
            Activity::InACall,
            t0(),
            TimeDelta::hours(1),
        );
        store
            .upsert_session(
                UserKey {
                    tenant,
                    user: *user,
                },
                s,
                t0(),
            )
            .await
            .unwrap();
    }
    let mut asked = users.clone();
    asked.reverse();
    let facts = store.facts_for(tenant, &asked).await.unwrap();
    assert_eq!(facts.len(), 20);
    for (user, f) in asked.iter().zip(&facts) {
        let i = users.iter().position(|u| u == user).unwrap();
        if i % 2 == 0 {
            assert_eq!(f.sessions[0].id, format!("app{i}"));
        } else {
            assert!(f.sessions.is_empty());
        }
    }
}

async fn every_change_round_trips(store: Arc<dyn Store>) {
    let k = key();
    let now = t0();
    let preferred = Preferred {
        pair: PreferredPair::new(Availability::DoNotDisturb, Activity::DoNotDisturb).unwrap(),
        set_at: now,
        expires_at: now + TimeDelta::days(1),
    };
    let status = StatusMessage {
        content: "In a meeting — ünïcode ✓".into(),
        expires_at: Some(now + TimeDelta::hours(2)),
        expiry_zone: Some("Pacific Standard Time".into()),
        published_at: now,
    };
    let layer = |t| WorkLocationLayer {
        location_type: t,
        place_id: Some("building-1".into()),
        set_at: now,
    };
    let client = Session {
        kind: SessionKind::Client,
        id: "desktop".into(),
        pair: SessionPair::parse_client("Busy", "InAMeeting").unwrap(),
        last_active: now,
        expires_at: now + TimeDelta::hours(1),
    };
    store.upsert_session(k, client.clone(), now).await.unwrap();
    store
        .apply(k, Change::SetPreferred(preferred.clone()), now)
        .await
        .unwrap();
    store
        .apply(k, Change::SetStatusMessage(Some(status.clone())), now)
        .await
        .unwrap();
    store
        .apply(
            k,
            Change::SetManualLocation(layer(WorkLocationType::Remote)),
            now,
        )
        .await
        .unwrap();
    store
        .apply(
            k,
            Change::SetAutomaticLocation(layer(WorkLocationType::Office)),
            now,
        )
        .await
        .unwrap();
    let facts = store.facts(k).await.unwrap();
    assert_eq!(facts.sessions, vec![client]);
    assert_eq!(facts.preferred, Some(preferred));
    assert_eq!(facts.status, Some(status));
    assert_eq!(
        facts.work_location.manual,
        Some(layer(WorkLocationType::Remote))
    );
    assert_eq!(
        facts.work_location.automatic,
        Some(layer(WorkLocationType::Office))
    );
    assert_eq!(facts.version, 5);

    store
        .apply(k, Change::ClearAutomaticLocation, now)
        .await
        .unwrap();
    let facts = store.facts(k).await.unwrap();
    assert!(facts.work_location.automatic.is_none() && facts.work_location.manual.is_some());
    store.apply(k, Change::ClearLocation, now).await.unwrap();
    store.apply(k, Change::ClearPreferred, now).await.unwrap();
    store
        .apply(k, Change::SetStatusMessage(None), now)
        .await
        .unwrap();
    let facts = store.facts(k).await.unwrap();
    assert_eq!(facts.work_location, Default::default());
    assert!(facts.preferred.is_none() && facts.status.is_none());
}

async fn applied_reports_before_and_after(store: Arc<dyn Store>) {
    let k = key();
    let s = notify::busy(t0());
    let applied = store.upsert_session(k, s, t0()).await.unwrap();
    assert_eq!(
        effective(&applied.before, t0()).availability,
        Availability::Offline
    );
    assert_eq!(
        effective(&applied.after, t0()).availability,
        Availability::Busy
    );
}

async fn writes_prune_expired_facts(store: Arc<dyn Store>) {
    let k = key();
    let old = session(
        "old",
        Availability::Busy,
        Activity::InACall,
        t0(),
        TimeDelta::minutes(5),
    );
    store.upsert_session(k, old, t0()).await.unwrap();
    let later = t0() + TimeDelta::minutes(10);
    let new = session(
        "new",
        Availability::Away,
        Activity::Away,
        later,
        TimeDelta::minutes(5),
    );
    store.upsert_session(k, new.clone(), later).await.unwrap();
    assert_eq!(store.facts(k).await.unwrap().sessions, vec![new]);
}

async fn due_users_follow_next_change(store: Arc<dyn Store>) {
    let k = key();
    let s = session(
        "app",
        Availability::Available,
        Activity::Available,
        t0(),
        TimeDelta::hours(1),
    );
    store.upsert_session(k, s, t0()).await.unwrap();
    let before = store
        .due_users(t0() + TimeDelta::minutes(4), 100)
        .await
        .unwrap();
    assert!(!before.iter().any(|(u, _)| *u == k));
    let due = store
        .due_users(t0() + TimeDelta::minutes(5), 100)
        .await
        .unwrap();
    assert!(due.contains(&(k, t0() + TimeDelta::minutes(5))));
}

/// `k` available at `t0()` and again a minute later, so its fade moves
/// from +5 to +6 minutes: the due-time cases' starting point.
async fn active_now_and_a_minute_later(store: &dyn Store, k: UserKey) {
    use notify::{available, t0_plus};
    store
        .upsert_session(k, available(t0()), t0())
        .await
        .unwrap();
    store
        .upsert_session(k, available(t0_plus(1)), t0_plus(1))
        .await
        .unwrap();
}

/// A write that moves the next transition later: the schedule may keep the
/// earlier instant (the SQLite store does, to save moving its index on every
/// write), never a later one; settling there changes nothing a watcher sees
/// and moves the schedule to the transition, which then settles as usual.
async fn a_due_time_is_never_later_than_the_transition(store: Arc<dyn Store>) {
    use notify::t0_plus;
    let k = key();
    active_now_and_a_minute_later(store.as_ref(), k).await;
    let early = store.due_users(t0_plus(5), 100).await.unwrap();
    if let Some(&(_, at)) = early.iter().find(|(u, _)| *u == k) {
        assert_eq!(at, t0_plus(5), "only the earlier transition may be kept");
        let settled = store.settle(k, at).await.unwrap();
        assert!(
            settled.is_none_or(|a| a.visibility == crate::domain::Visibility::Unchanged),
            "nothing a watcher sees changes at a kept instant"
        );
        let again = store.due_users(t0_plus(5), 100).await.unwrap();
        assert!(
            !again.iter().any(|(u, _)| *u == k),
            "settling at a kept instant moves the schedule on: {again:?}"
        );
    }
    let due = store.due_users(t0_plus(6), 100).await.unwrap();
    assert!(due.contains(&(k, t0_plus(6))), "{due:?}");
    let applied = store.settle(k, t0_plus(6)).await.unwrap().unwrap();
    assert_eq!(applied.visibility, crate::domain::Visibility::Presence);
    assert!(store.due_users(t0_plus(6), 100).await.unwrap().is_empty());
}

async fn concurrent_writes_all_land(store: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let users: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    let mut tasks = vec![];
    for user in users.clone() {
        for app in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let s = session(
                    &format!("app{app}"),
                    Availability::Busy,
                    Activity::InACall,
                    t0(),
                    TimeDelta::hours(1),
                );
                store
                    .upsert_session(UserKey { tenant, user }, s, t0())
                    .await
                    .unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    for f in store.facts_for(tenant, &users).await.unwrap() {
        assert_eq!(f.sessions.len(), 4);
        assert_eq!(f.version, 4);
    }
}

mod backends {
    use super::*;
    use crate::clock::latest_instant;
    use crate::domain::Visibility;
    use crate::store::memory::MemoryStore;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{EventBounds, LifecycleEvent, NewDelivery, Payload, Subscription};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_store_meets_the_contract() {
        run_contract(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
        run_state_contract(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_meets_the_contract() {
        let dirs = std::sync::Mutex::new(vec![]);
        run_contract(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path()).unwrap();
            dirs.lock().unwrap().push(dir);
            async move { Arc::new(store) as Arc<dyn Store> }
        })
        .await;
        run_state_contract(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path()).unwrap();
            dirs.lock().unwrap().push(dir);
            async move { Arc::new(store) as Arc<dyn Store> }
        })
        .await;
    }

    /// The SQLite store keeps an active user's earlier due time instead of
    /// moving its index on every write, across a restart too (the resident
    /// copy loads the stored time); a write that brings the next
    /// transition earlier stores it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_an_earlier_due_time_across_writes_and_restarts() {
        use super::notify::{available, t0_plus};
        let dir = tempfile::tempdir().unwrap();
        let k = key();
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            active_now_and_a_minute_later(&store, k).await;
            assert_eq!(
                store.due_users(latest_instant(), 10).await.unwrap(),
                vec![(k, t0_plus(5))]
            );
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .upsert_session(k, available(t0_plus(2)), t0_plus(2))
            .await
            .unwrap();
        assert_eq!(
            store.due_users(latest_instant(), 10).await.unwrap(),
            vec![(k, t0_plus(5))]
        );
        // Expiring at +4 minutes: earlier than the stored +5.
        let short = Session {
            expires_at: t0_plus(4),
            ..available(t0_plus(2))
        };
        store.upsert_session(k, short, t0_plus(2)).await.unwrap();
        assert_eq!(
            store.due_users(latest_instant(), 10).await.unwrap(),
            vec![(k, t0_plus(4))]
        );
    }

    /// Stores on `target`, each in a fresh namespace (the contract expects
    /// a fresh store per case).
    async fn redis_contract(target: crate::store::redis::Target) {
        use crate::store::redis::RedisStore;
        run_contract(|| {
            let target = target.clone();
            async move {
                let namespace = format!("contract-{}", Uuid::new_v4());
                Arc::new(RedisStore::open(&target, &namespace).await.unwrap()) as Arc<dyn Store>
            }
        })
        .await;
        run_state_contract(|| {
            let target = target.clone();
            async move {
                let namespace = format!("contract-{}", Uuid::new_v4());
                Arc::new(RedisStore::open(&target, &namespace).await.unwrap()) as Arc<dyn Store>
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_store_meets_the_contract() {
        let server = crate::store::redis::test_server::RedisServer::start();
        redis_contract(crate::store::redis::Target::Server(server.url())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster_store_meets_the_contract() {
        let cluster = crate::store::redis::test_server::RedisCluster::start();
        redis_contract(crate::store::redis::Target::Cluster(cluster.seeds())).await;
        let keys = cluster.keys_per_node();
        assert!(
            keys.iter().all(|k| *k > 0),
            "users spread over every master: {keys:?}"
        );
    }

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

    /// A raw connection to a store's database, for damaging it.
    fn raw(dir: &std::path::Path) -> rusqlite::Connection {
        rusqlite::Connection::open(SqliteStore::file_in(dir)).unwrap()
    }

    /// SQLite's literal for a uuid column value.
    fn blob(id: Uuid) -> String {
        format!("X'{}'", id.simple())
    }

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
}
