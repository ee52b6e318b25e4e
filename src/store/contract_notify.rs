//! The storage contract for change notifications (SPEC §7, §8): what a
//! write or a settled transition records for watchers (events, deliveries),
//! the event log, subscriptions, the outbox and kept secrets. Each case runs
//! on a fresh store from `run_contract`.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::TimeDelta;
use uuid::Uuid;

use super::{key, session, t0};
use crate::clock::{latest_instant, Instant};
use crate::domain::{
    effective, Activity, Availability, Session, SessionKind, StatusMessage, UserKey, Visibility,
};
use crate::store::{
    Applied, Change, Delivery, Event, EventBounds, LifecycleEvent, NewDelivery, Payload, Store,
    StoreError, Subscription, SubscriptionConflict,
};

/// How long before expiry a subscription needs reauthorization (SPEC §7).
const REAUTHORIZE_BEFORE: TimeDelta = TimeDelta::minutes(15);

/// `t0` plus `n` minutes.
pub(super) fn t0_plus(n: i64) -> Instant {
    t0() + TimeDelta::minutes(n)
}

/// An `Available` application session refreshed at `at`, living an hour.
pub(super) fn available(at: Instant) -> Session {
    session(
        "app",
        Availability::Available,
        Activity::Available,
        at,
        TimeDelta::hours(1),
    )
}

/// A `Busy`/`InACall` application session refreshed at `at`, living an hour.
pub(super) fn busy(at: Instant) -> Session {
    session(
        "app",
        Availability::Busy,
        Activity::InACall,
        at,
        TimeDelta::hours(1),
    )
}

/// A live presence subscription of `app` created by `creator` in `tenant`,
/// watching `users`: created at `t0`, expiring an hour later. Also the
/// fixture of the notifier's unit tests.
pub(crate) fn subscription(tenant: Uuid, app: &str, creator: &str, users: &[Uuid]) -> Subscription {
    let ids: Vec<String> = users.iter().map(|u| format!("'{u}'")).collect();
    Subscription {
        id: Uuid::new_v4(),
        tenant,
        app_id: app.to_string(),
        creator_id: creator.to_string(),
        owner: None,
        resource: format!(
            "/communications/presences?$filter=id in ({})",
            ids.join(",")
        ),
        users: users.to_vec(),
        change_type: "updated".into(),
        client_state: Some("client-state".into()),
        notification_url: "https://hooks.example.com/presence".into(),
        lifecycle_url: Some("https://hooks.example.com/lifecycle".into()),
        expires_at: t0_plus(60),
        include_resource_data: false,
        encryption_certificate: None,
        encryption_certificate_id: None,
        latest_supported_tls_version: "v1_2".into(),
        notification_url_app_id: None,
        reauthorization_sent: false,
        created_at: t0(),
    }
}

/// Creates `s`, which must not conflict.
async fn create(store: &Arc<dyn Store>, s: &Subscription, one_per_user_and_app: bool) {
    store
        .create_subscription(s.clone(), one_per_user_and_app)
        .await
        .unwrap()
        .expect("no conflict");
}

/// The change payload watchers should get for `applied` observed at `at`.
fn change_payload(user: Uuid, applied: &Applied, at: Instant) -> Payload {
    let is = effective(&applied.after, at);
    Payload::Change {
        user,
        availability: is.availability,
        activity: is.activity,
        sequence_number: is.sequence_number,
    }
}

/// Everything queued, due or not.
async fn all_deliveries(store: &Arc<dyn Store>) -> Vec<Delivery> {
    store
        .due_deliveries(latest_instant(), 1000, &[])
        .await
        .unwrap()
}

/// The event log's retained range, `(pruned_through, last]`.
fn bounds(pruned_through: u64, last: u64) -> EventBounds {
    EventBounds {
        pruned_through,
        last,
    }
}

/// The seqs of `events`, in order.
fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

// ---- What a write records ----

pub(super) async fn a_presence_change_records_an_event_with_presence_visibility(
    store: Arc<dyn Store>,
) {
    let k = key();
    assert_eq!(store.event_bounds().await.unwrap(), EventBounds::default());

    let applied = store.upsert_session(k, busy(t0()), t0()).await.unwrap();

    assert_eq!(applied.visibility, Visibility::Presence);
    let seq = applied.event.expect("a presence change records an event");
    assert_eq!(applied.queued, 0, "nobody watches this user");
    let events = store.events_since(None, 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, seq);
    assert_eq!(events[0].key, k);
    assert_eq!(events[0].at, t0());
    assert_eq!(events[0].facts, applied.after);
    assert_eq!(store.event_bounds().await.unwrap(), bounds(0, seq));
}

pub(super) async fn a_keep_alive_with_the_same_pair_is_unchanged_and_records_nothing(
    store: Arc<dyn Store>,
) {
    let k = key();
    create(&store, &subscription(k.tenant, "a", "c", &[k.user]), false).await;
    let first = store
        .upsert_session(k, available(t0()), t0())
        .await
        .unwrap();
    let refreshed = t0_plus(3);

    let applied = store
        .upsert_session(k, available(refreshed), refreshed)
        .await
        .unwrap();

    assert_eq!(applied.visibility, Visibility::Unchanged);
    assert_eq!(applied.event, None);
    assert_eq!(applied.queued, 0);
    assert_eq!(applied.after.version, 2, "the refresh itself is stored");
    let seq = first.event.unwrap();
    assert!(store.events_since(None, seq, 10).await.unwrap().is_empty());
    assert_eq!(store.event_bounds().await.unwrap().last, seq);
    assert_eq!(
        all_deliveries(&store).await.len(),
        1,
        "only the first write"
    );
}

pub(super) async fn a_status_message_change_is_a_resource_event_without_deliveries(
    store: Arc<dyn Store>,
) {
    let k = key();
    create(&store, &subscription(k.tenant, "a", "c", &[k.user]), false).await;
    let first = store.upsert_session(k, busy(t0()), t0()).await.unwrap();
    assert_eq!(first.queued, 1);
    let status = StatusMessage {
        content: "Back at 3".into(),
        expires_at: None,
        expiry_zone: None,
        published_at: t0_plus(1),
    };

    let applied = store
        .apply(
            k,
            Change::SetStatusMessage(Some(status.clone())),
            t0_plus(1),
        )
        .await
        .unwrap();

    assert_eq!(applied.visibility, Visibility::Resource);
    let seq = applied.event.expect("a resource change records an event");
    assert!(seq > first.event.unwrap());
    assert_eq!(applied.queued, 0, "webhooks carry presence changes only");
    let events = store
        .events_since(None, first.event.unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(seqs(&events), vec![seq]);
    assert_eq!(events[0].at, t0_plus(1));
    assert_eq!(events[0].facts.status, Some(status));
    assert_eq!(
        all_deliveries(&store).await.len(),
        1,
        "only the first write"
    );
}

// ---- The event log ----

pub(super) async fn events_are_ordered_filtered_by_tenant_and_paged(store: Arc<dyn Store>) {
    let a1 = key();
    let a2 = UserKey {
        tenant: a1.tenant,
        user: Uuid::new_v4(),
    };
    let b1 = key();
    for (i, k) in [a1, b1, a2].into_iter().enumerate() {
        let at = t0_plus(i as i64);
        store.upsert_session(k, busy(at), at).await.unwrap();
    }

    let all = store.events_since(None, 0, 100).await.unwrap();
    let only_a = store.events_since(Some(a1.tenant), 0, 100).await.unwrap();
    let after_first = store.events_since(None, all[0].seq, 100).await.unwrap();
    let first_two = store.events_since(None, 0, 2).await.unwrap();
    let a_after_first = store
        .events_since(Some(a1.tenant), all[0].seq, 1)
        .await
        .unwrap();

    assert_eq!(all.iter().map(|e| e.key).collect::<Vec<_>>(), [a1, b1, a2]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "{all:?}");
    assert_eq!(only_a.iter().map(|e| e.key).collect::<Vec<_>>(), [a1, a2]);
    assert_eq!(seqs(&after_first), seqs(&all[1..]), "`after` is exclusive");
    assert_eq!(seqs(&first_two), seqs(&all[..2]));
    assert_eq!(seqs(&a_after_first), vec![all[2].seq]);
    assert!(store
        .events_since(Some(Uuid::new_v4()), 0, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.event_bounds().await.unwrap().last, all[2].seq);
}

pub(super) async fn each_event_reproduces_the_presence_after_its_change(store: Arc<dyn Store>) {
    let k = key();
    let status = StatusMessage {
        content: "Heads down".into(),
        expires_at: Some(t0_plus(30)),
        expiry_zone: None,
        published_at: t0_plus(2),
    };
    let writes = [
        (t0(), Change::UpsertSession(available(t0()))),
        (
            t0_plus(1),
            Change::UpsertSession(session(
                "other",
                Availability::DoNotDisturb,
                Activity::Presenting,
                t0_plus(1),
                TimeDelta::minutes(20),
            )),
        ),
        (t0_plus(2), Change::SetStatusMessage(Some(status))),
        (
            t0_plus(3),
            Change::RemoveSession {
                kind: SessionKind::Application,
                id: "other".into(),
            },
        ),
    ];
    let mut expected = vec![];
    for (at, change) in writes {
        let applied = store.apply(k, change, at).await.unwrap();
        expected.push((applied.event.expect("each write is visible"), at, applied));
    }

    let events = store.events_since(Some(k.tenant), 0, 100).await.unwrap();

    assert_eq!(events.len(), expected.len());
    for (e, (seq, at, applied)) in events.iter().zip(&expected) {
        assert_eq!(e.seq, *seq);
        assert_eq!(e.at, *at);
        assert_eq!(e.facts, applied.after);
        assert_eq!(effective(&e.facts, e.at), effective(&applied.after, *at));
    }
    let last = effective(&events[3].facts, events[3].at);
    assert_eq!(
        (last.availability, last.activity),
        (Availability::Available, Activity::Available)
    );
    assert_eq!(last.status.unwrap().content, "Heads down");
}

pub(super) async fn pruning_drops_old_events_and_never_reuses_their_seqs(store: Arc<dyn Store>) {
    let mut written = vec![];
    for minutes in [0, 60, 120] {
        let at = t0_plus(minutes);
        let applied = store.upsert_session(key(), busy(at), at).await.unwrap();
        written.push(applied.event.unwrap());
    }

    let pruned = store.prune_events(t0_plus(60)).await.unwrap();

    assert_eq!(pruned, 1, "only events recorded before the cutoff");
    assert_eq!(
        store.event_bounds().await.unwrap(),
        bounds(written[0], written[2])
    );
    let kept = store.events_since(None, 0, 100).await.unwrap();
    assert_eq!(seqs(&kept), written[1..]);
    assert_eq!(store.prune_events(t0_plus(60)).await.unwrap(), 0);

    assert_eq!(store.prune_events(t0_plus(121)).await.unwrap(), 2);
    assert_eq!(
        store.event_bounds().await.unwrap(),
        bounds(written[2], written[2])
    );
    assert!(store.events_since(None, 0, 100).await.unwrap().is_empty());

    let next = store
        .upsert_session(key(), busy(t0_plus(130)), t0_plus(130))
        .await
        .unwrap()
        .event
        .unwrap();
    assert!(next > written[2], "seq {next} reused after pruning");
    assert_eq!(store.event_bounds().await.unwrap().last, next);
}

/// Events are not recorded in `at` order: the scheduler settles a user at
/// the instant its transition fell due, after writes stamped later. Pruning
/// must still keep every event recorded at or after the cutoff (SSE replay
/// promises the retention window), and everything above `pruned_through`.
pub(super) async fn pruning_never_drops_an_event_recorded_after_the_cutoff(store: Arc<dyn Store>) {
    let fading = key();
    store
        .upsert_session(fading, available(t0()), t0())
        .await
        .unwrap();
    let late = store
        .upsert_session(key(), busy(t0_plus(8)), t0_plus(8))
        .await
        .unwrap()
        .event
        .unwrap();
    let settled = store.settle(fading, t0_plus(5)).await.unwrap().unwrap();
    let fade = settled.event.unwrap();
    assert!(fade > late, "the settle is recorded after the later write");

    store.prune_events(t0_plus(6)).await.unwrap();

    let kept = seqs(&store.events_since(None, 0, 100).await.unwrap());
    let range = store.event_bounds().await.unwrap();
    assert!(
        kept.contains(&late),
        "the event recorded at t0+8min was pruned by a cutoff of t0+6min; kept {kept:?}, {range:?}"
    );
    assert!(range.pruned_through < late, "{range:?}");
    assert!(kept.contains(&fade), "above pruned_through: {kept:?}");
}

// ---- Settling time-driven transitions ----

pub(super) async fn settling_a_fade_records_it_at_the_transition_instant(store: Arc<dyn Store>) {
    let k = key();
    let written = store
        .upsert_session(k, available(t0()), t0())
        .await
        .unwrap();

    let settled = store
        .settle(k, t0_plus(5))
        .await
        .unwrap()
        .expect("the fade is news");

    assert_eq!(settled.visibility, Visibility::Presence);
    let shown = effective(&settled.after, t0_plus(5));
    assert_eq!(
        (shown.availability, shown.activity),
        (Availability::Available, Activity::AvailableInactive)
    );
    let seq = settled.event.expect("a fade records an event");
    let events = store
        .events_since(None, written.event.unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(seqs(&events), vec![seq]);
    assert_eq!(events[0].key, k);
    assert_eq!(events[0].at, t0_plus(5));
    assert_eq!(effective(&events[0].facts, events[0].at), shown);
    assert_eq!(store.settle(k, t0_plus(5)).await.unwrap(), None);
    assert_eq!(store.settle(k, t0_plus(4)).await.unwrap(), None);
    assert_eq!(store.event_bounds().await.unwrap().last, seq);
}

pub(super) async fn settling_a_user_never_written_changes_nothing(store: Arc<dyn Store>) {
    let k = key();

    let settled = store.settle(k, t0_plus(5)).await.unwrap();

    assert_eq!(settled, None);
    assert_eq!(store.facts(k).await.unwrap().version, 0);
    assert!(store.events_since(None, 0, 10).await.unwrap().is_empty());
    assert!(store
        .due_users(latest_instant(), 10)
        .await
        .unwrap()
        .is_empty());
}

/// A failed write (clearPresence of an unknown session) leaves the user as
/// never written, so there is nothing to settle either.
pub(super) async fn settling_a_user_whose_only_write_failed_changes_nothing(store: Arc<dyn Store>) {
    let k = key();
    let err = store
        .remove_session(k, SessionKind::Application, "app", t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    let settled = store.settle(k, t0_plus(5)).await.unwrap();

    assert_eq!(settled, None, "the failed write left something to settle");
    assert_eq!(store.facts(k).await.unwrap().version, 0);
    assert!(store.events_since(None, 0, 10).await.unwrap().is_empty());
}

pub(super) async fn due_users_walk_a_user_through_its_transitions(store: Arc<dyn Store>) {
    let fading = key();
    let brief = key();
    store
        .upsert_session(fading, available(t0()), t0())
        .await
        .unwrap();
    let short = session(
        "app",
        Availability::Busy,
        Activity::InACall,
        t0(),
        TimeDelta::minutes(3),
    );
    store.upsert_session(brief, short, t0()).await.unwrap();
    let due = |store: Arc<dyn Store>| async move {
        store.due_users(latest_instant(), 100).await.unwrap()
    };

    assert_eq!(
        due(store.clone()).await,
        [(brief, t0_plus(3)), (fading, t0_plus(5))]
    );
    assert_eq!(
        store.due_users(latest_instant(), 1).await.unwrap(),
        [(brief, t0_plus(3))]
    );
    assert_eq!(store.next_due().await.unwrap(), Some(t0_plus(3)));

    let expired = store.settle(brief, t0_plus(3)).await.unwrap().unwrap();
    assert_eq!(expired.visibility, Visibility::Presence);
    assert_eq!(due(store.clone()).await, [(fading, t0_plus(5))]);

    store.settle(fading, t0_plus(5)).await.unwrap().unwrap();
    assert_eq!(due(store.clone()).await, [(fading, t0_plus(10))]);

    let away = store.settle(fading, t0_plus(10)).await.unwrap().unwrap();
    assert_eq!(
        effective(&away.after, t0_plus(10)).availability,
        Availability::Away
    );
    assert_eq!(due(store.clone()).await, [(fading, t0_plus(60))]);

    let gone = store.settle(fading, t0_plus(60)).await.unwrap().unwrap();
    assert_eq!(
        effective(&gone.after, t0_plus(60)).availability,
        Availability::Offline
    );
    assert!(due(store.clone()).await.is_empty());
    assert_eq!(store.next_due().await.unwrap(), None);
}

pub(super) async fn a_settled_fade_notifies_watchers_like_a_write(store: Arc<dyn Store>) {
    let k = key();
    let s = subscription(k.tenant, "a", "c", &[k.user]);
    create(&store, &s, false).await;
    store
        .upsert_session(k, available(t0()), t0())
        .await
        .unwrap();
    let ids: Vec<u64> = all_deliveries(&store).await.iter().map(|d| d.id).collect();
    store.remove_deliveries(&ids).await.unwrap();

    let settled = store.settle(k, t0_plus(5)).await.unwrap().unwrap();

    assert_eq!(settled.queued, 1);
    let queued = all_deliveries(&store).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].subscription, s.id);
    assert_eq!(
        queued[0].payload,
        change_payload(k.user, &settled, t0_plus(5))
    );
    assert!(matches!(
        queued[0].payload,
        Payload::Change {
            activity: Activity::AvailableInactive,
            ..
        }
    ));
    assert_eq!(queued[0].created_at, t0_plus(5));
    assert_eq!(queued[0].next_at, t0_plus(5));
}

// ---- Subscriptions ----

pub(super) async fn a_created_subscription_reads_back_only_in_its_tenant(store: Arc<dyn Store>) {
    let s = subscription(Uuid::new_v4(), "app", "creator", &[Uuid::new_v4()]);

    let created = store.create_subscription(s.clone(), true).await.unwrap();

    assert_eq!(created, Ok(()));
    assert_eq!(
        store.subscription(s.tenant, s.id).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        store.subscription(Uuid::new_v4(), s.id).await.unwrap(),
        None
    );
    assert_eq!(
        store.subscription(s.tenant, Uuid::new_v4()).await.unwrap(),
        None
    );
}

pub(super) async fn subscriptions_of_list_one_app_in_one_tenant(store: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let user = Uuid::new_v4();
    let first = subscription(tenant, "a", "alice", &[user]);
    let second = Subscription {
        created_at: t0_plus(1),
        ..subscription(tenant, "a", "bob", &[user, Uuid::new_v4()])
    };
    let other_app = subscription(tenant, "b", "alice", &[user]);
    let other_tenant = subscription(Uuid::new_v4(), "a", "alice", &[user]);
    for s in [&first, &second, &other_app, &other_tenant] {
        create(&store, s, true).await;
    }

    let mut of_a = store.subscriptions_of(tenant, "a").await.unwrap();
    of_a.sort_by_key(|s| s.created_at);

    assert_eq!(of_a, [first, second]);
    assert_eq!(
        store.subscriptions_of(tenant, "b").await.unwrap(),
        [other_app]
    );
    assert!(store
        .subscriptions_of(tenant, "c")
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn the_same_combination_conflicts_with_the_existing_subscription(
    store: Arc<dyn Store>,
) {
    let existing = subscription(Uuid::new_v4(), "app", "alice", &[Uuid::new_v4()]);
    create(&store, &existing, false).await;
    let again = Subscription {
        id: Uuid::new_v4(),
        client_state: None,
        ..existing.clone()
    };

    for one_per_user_and_app in [false, true] {
        let result = store
            .create_subscription(again.clone(), one_per_user_and_app)
            .await
            .unwrap();
        assert_eq!(
            result,
            Err(SubscriptionConflict::SameCombination(existing.id)),
            "one_per_user_and_app = {one_per_user_and_app}"
        );
    }
    assert_eq!(
        store.subscription(again.tenant, again.id).await.unwrap(),
        None
    );
    // Another URL is still the same combination; another creator is not.
    let elsewhere = Subscription {
        id: Uuid::new_v4(),
        notification_url: "https://other.example.com/hook".into(),
        ..existing.clone()
    };
    assert_eq!(
        store.create_subscription(elsewhere, false).await.unwrap(),
        Err(SubscriptionConflict::SameCombination(existing.id))
    );
    let bobs = Subscription {
        id: Uuid::new_v4(),
        creator_id: "bob".into(),
        ..existing.clone()
    };
    assert_eq!(store.create_subscription(bobs, true).await.unwrap(), Ok(()));
    let other_resource = subscription(existing.tenant, "app", "alice", &[Uuid::new_v4()]);
    assert_eq!(
        store
            .create_subscription(other_resource, false)
            .await
            .unwrap(),
        Ok(())
    );
    let other_app = Subscription {
        id: Uuid::new_v4(),
        app_id: "another-app".into(),
        ..existing.clone()
    };
    assert_eq!(
        store.create_subscription(other_app, false).await.unwrap(),
        Ok(())
    );
}

pub(super) async fn graph_limits_allow_one_subscription_per_user_and_app(store: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let existing = subscription(tenant, "app", "alice", &[Uuid::new_v4()]);
    create(&store, &existing, true).await;
    let second = subscription(tenant, "app", "alice", &[Uuid::new_v4()]);

    let limited = store
        .create_subscription(second.clone(), true)
        .await
        .unwrap();
    let unlimited = store
        .create_subscription(second.clone(), false)
        .await
        .unwrap();

    assert_eq!(
        limited,
        Err(SubscriptionConflict::OnePerUserAndApp(existing.id))
    );
    assert_eq!(unlimited, Ok(()));
    assert_eq!(
        store.subscriptions_of(tenant, "app").await.unwrap().len(),
        2
    );
    let other_creator = subscription(tenant, "app", "bob", &[Uuid::new_v4()]);
    let other_app = subscription(tenant, "other", "alice", &[Uuid::new_v4()]);
    let other_tenant = subscription(Uuid::new_v4(), "app", "alice", &[Uuid::new_v4()]);
    for s in [other_creator, other_app, other_tenant] {
        assert_eq!(store.create_subscription(s, true).await.unwrap(), Ok(()));
    }
}

pub(super) async fn an_expired_subscription_does_not_conflict(store: Arc<dyn Store>) {
    let existing = subscription(Uuid::new_v4(), "app", "alice", &[Uuid::new_v4()]);
    create(&store, &existing, true).await;
    let renewed_at = |at: Instant| Subscription {
        id: Uuid::new_v4(),
        created_at: at,
        expires_at: at + TimeDelta::hours(1),
        ..existing.clone()
    };

    let just_before = store
        .create_subscription(
            renewed_at(existing.expires_at - TimeDelta::seconds(1)),
            true,
        )
        .await
        .unwrap();
    let at_expiry = store
        .create_subscription(renewed_at(existing.expires_at), true)
        .await
        .unwrap();

    assert_eq!(
        just_before,
        Err(SubscriptionConflict::SameCombination(existing.id))
    );
    assert_eq!(at_expiry, Ok(()));
}

pub(super) async fn update_replaces_a_subscription_and_ignores_unknown_ones(store: Arc<dyn Store>) {
    let s = subscription(Uuid::new_v4(), "app", "alice", &[Uuid::new_v4()]);
    create(&store, &s, true).await;
    let renewed = Subscription {
        expires_at: t0_plus(120),
        reauthorization_sent: true,
        client_state: None,
        ..s.clone()
    };

    let updated = store.update_subscription(renewed.clone()).await.unwrap();
    let unknown = subscription(s.tenant, "app", "alice", &[Uuid::new_v4()]);
    let unknown_updated = store.update_subscription(unknown.clone()).await.unwrap();
    let foreign = Subscription {
        tenant: Uuid::new_v4(),
        expires_at: t0_plus(999),
        ..s.clone()
    };
    let foreign_updated = store.update_subscription(foreign.clone()).await.unwrap();

    assert!(updated);
    assert_eq!(
        store.subscription(s.tenant, s.id).await.unwrap(),
        Some(renewed)
    );
    assert!(!unknown_updated);
    assert_eq!(
        store.subscription(s.tenant, unknown.id).await.unwrap(),
        None
    );
    assert!(!foreign_updated);
    assert_eq!(
        store.subscription(foreign.tenant, s.id).await.unwrap(),
        None
    );
}

pub(super) async fn delete_removes_a_subscription_its_watches_and_its_deliveries(
    store: Arc<dyn Store>,
) {
    let k = key();
    let doomed = subscription(k.tenant, "a", "alice", &[k.user]);
    let kept = subscription(k.tenant, "b", "alice", &[k.user]);
    create(&store, &doomed, true).await;
    create(&store, &kept, true).await;
    assert_eq!(
        store
            .upsert_session(k, busy(t0()), t0())
            .await
            .unwrap()
            .queued,
        2
    );
    let notice = |s: &Subscription| NewDelivery {
        subscription: s.id,
        tenant: s.tenant,
        payload: Payload::Lifecycle {
            event: LifecycleEvent::ReauthorizationRequired,
        },
    };
    store.enqueue(vec![notice(&doomed)], t0()).await.unwrap();

    let foreign = store
        .delete_subscription(Uuid::new_v4(), doomed.id)
        .await
        .unwrap();
    let deleted = store
        .delete_subscription(doomed.tenant, doomed.id)
        .await
        .unwrap();
    let again = store
        .delete_subscription(doomed.tenant, doomed.id)
        .await
        .unwrap();

    assert!(!foreign);
    assert!(deleted);
    assert!(!again);
    assert_eq!(store.subscription(k.tenant, doomed.id).await.unwrap(), None);
    let left = all_deliveries(&store).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].subscription, kept.id);
    let away = session(
        "app",
        Availability::Away,
        Activity::Away,
        t0_plus(1),
        TimeDelta::hours(1),
    );
    let next = store.upsert_session(k, away, t0_plus(1)).await.unwrap();
    assert_eq!(next.queued, 1, "the deleted subscription no longer watches");
}

// ---- The outbox ----

pub(super) async fn a_presence_change_queues_one_delivery_per_live_watching_subscription(
    store: Arc<dyn Store>,
) {
    let k = key();
    let neighbour = Uuid::new_v4();
    let now = t0_plus(10);
    let both = subscription(k.tenant, "a", "alice", &[neighbour, k.user]);
    let only = subscription(k.tenant, "b", "alice", &[k.user]);
    let expired = Subscription {
        expires_at: now,
        ..subscription(k.tenant, "c", "alice", &[k.user])
    };
    let unrelated = subscription(k.tenant, "d", "alice", &[neighbour]);
    let foreign = subscription(Uuid::new_v4(), "a", "alice", &[k.user]);
    for s in [&both, &only, &expired, &unrelated, &foreign] {
        create(&store, s, true).await;
    }

    let applied = store.upsert_session(k, busy(now), now).await.unwrap();

    assert_eq!(applied.queued, 2);
    let queued = all_deliveries(&store).await;
    assert_eq!(queued.len(), 2, "{queued:?}");
    let to: HashSet<Uuid> = queued.iter().map(|d| d.subscription).collect();
    assert_eq!(to, HashSet::from([both.id, only.id]));
    assert_ne!(queued[0].id, queued[1].id);
    let expected = change_payload(k.user, &applied, now);
    assert!(matches!(
        expected,
        Payload::Change {
            availability: Availability::Busy,
            activity: Activity::InACall,
            ..
        }
    ));
    for d in &queued {
        assert_eq!(d.tenant, k.tenant);
        assert_eq!(d.payload, expected);
        assert_eq!((d.created_at, d.next_at, d.attempts), (now, now, 0));
    }
}

pub(super) async fn a_renewed_subscription_watches_again_and_a_shortened_one_stops(
    store: Arc<dyn Store>,
) {
    let k = key();
    let now = t0_plus(10);
    let lapsed = Subscription {
        expires_at: now,
        ..subscription(k.tenant, "a", "alice", &[k.user])
    };
    create(&store, &lapsed, true).await;
    let first = store.upsert_session(k, busy(now), now).await.unwrap();
    assert_eq!(first.queued, 0, "an expired subscription watches nothing");

    let renewed = Subscription {
        expires_at: now + TimeDelta::hours(1),
        ..lapsed.clone()
    };
    assert!(store.update_subscription(renewed).await.unwrap());
    let away = session(
        "app",
        Availability::Away,
        Activity::Away,
        now,
        TimeDelta::hours(1),
    );
    let second = store.upsert_session(k, away, now).await.unwrap();
    assert_eq!(second.queued, 1, "the renewal counts at once");

    assert!(store.update_subscription(lapsed).await.unwrap());
    let third = store.upsert_session(k, busy(now), now).await.unwrap();
    assert_eq!(third.queued, 0, "so does an expiry moved into the past");
}

pub(super) async fn deliveries_are_due_by_next_at_with_limit_and_skip(store: Arc<dyn Store>) {
    let s = subscription(Uuid::new_v4(), "app", "alice", &[Uuid::new_v4()]);
    create(&store, &s, true).await;
    let payloads = [
        Payload::Lifecycle {
            event: LifecycleEvent::ReauthorizationRequired,
        },
        Payload::Lifecycle {
            event: LifecycleEvent::Missed,
        },
        Payload::Change {
            user: s.users[0],
            availability: Availability::Away,
            activity: Activity::Away,
            sequence_number: "00000000000000010000000000000001".into(),
        },
    ];
    let new = |p: &Payload| NewDelivery {
        subscription: s.id,
        tenant: s.tenant,
        payload: p.clone(),
    };
    store
        .enqueue(payloads.iter().map(new).collect(), t0())
        .await
        .unwrap();

    let queued = store.due_deliveries(t0(), 100, &[]).await.unwrap();

    assert_eq!(
        queued.iter().map(|d| &d.payload).collect::<Vec<_>>(),
        payloads.iter().collect::<Vec<_>>()
    );
    assert!(queued.windows(2).all(|w| w[0].id < w[1].id), "{queued:?}");
    for d in &queued {
        assert_eq!((d.subscription, d.tenant), (s.id, s.tenant));
        assert_eq!((d.created_at, d.next_at, d.attempts), (t0(), t0(), 0));
    }
    assert!(store
        .due_deliveries(t0() - TimeDelta::seconds(1), 100, &[])
        .await
        .unwrap()
        .is_empty());
    let [a, b, c] = [queued[0].id, queued[1].id, queued[2].id];

    store.retry_deliveries(&[a], t0_plus(1)).await.unwrap();
    let due_now = store.due_deliveries(t0(), 100, &[]).await.unwrap();
    let due_later = store.due_deliveries(t0_plus(1), 100, &[]).await.unwrap();
    let retried = &due_later[2];
    assert_eq!(due_now.iter().map(|d| d.id).collect::<Vec<_>>(), [b, c]);
    assert_eq!(
        due_later.iter().map(|d| d.id).collect::<Vec<_>>(),
        [b, c, a]
    );
    assert_eq!(
        (retried.attempts, retried.next_at, retried.created_at),
        (1, t0_plus(1), t0())
    );
    let ids = |ds: Vec<Delivery>| ds.iter().map(|d| d.id).collect::<Vec<_>>();
    let limited = store.due_deliveries(t0_plus(1), 2, &[]).await.unwrap();
    let skipped = store.due_deliveries(t0_plus(1), 2, &[b]).await.unwrap();
    let all_skipped = store
        .due_deliveries(t0_plus(1), 10, &[a, b, c])
        .await
        .unwrap();
    assert_eq!(ids(limited), [b, c]);
    assert_eq!(ids(skipped), [c, a]);
    assert!(all_skipped.is_empty());
    assert_eq!(store.next_delivery_at(&[]).await.unwrap(), Some(t0()));
    assert_eq!(
        store.next_delivery_at(&[b, c]).await.unwrap(),
        Some(t0_plus(1))
    );
    assert_eq!(store.next_delivery_at(&[a, b, c]).await.unwrap(), None);

    store.retry_deliveries(&[a], t0_plus(3)).await.unwrap();
    store.remove_deliveries(&[b, c]).await.unwrap();
    let left = all_deliveries(&store).await;
    assert_eq!(ids(left.clone()), [a]);
    assert_eq!((left[0].attempts, left[0].next_at), (2, t0_plus(3)));
    store.remove_deliveries(&[a]).await.unwrap();
    store.retry_deliveries(&[a], t0_plus(4)).await.unwrap();
    assert!(all_deliveries(&store).await.is_empty());
    assert_eq!(store.next_delivery_at(&[]).await.unwrap(), None);
}

// ---- Subscription lifecycle ----

pub(super) async fn subscriptions_fall_due_for_reauthorization_then_expiry(store: Arc<dyn Store>) {
    assert_eq!(
        store
            .next_subscription_deadline(REAUTHORIZE_BEFORE)
            .await
            .unwrap(),
        None
    );
    let tenant = Uuid::new_v4();
    let soon = subscription(tenant, "a", "alice", &[Uuid::new_v4()]);
    let later = Subscription {
        expires_at: t0_plus(120),
        ..subscription(tenant, "b", "alice", &[Uuid::new_v4()])
    };
    create(&store, &soon, true).await;
    create(&store, &later, true).await;
    let due = |by: Instant| {
        let store = store.clone();
        async move {
            store
                .subscriptions_due(by, REAUTHORIZE_BEFORE)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };

    assert_eq!(
        store
            .next_subscription_deadline(REAUTHORIZE_BEFORE)
            .await
            .unwrap(),
        Some(t0_plus(45))
    );
    assert!(due(t0_plus(44)).await.is_empty());
    assert_eq!(due(t0_plus(45)).await, [soon.id]);
    assert_eq!(due(t0_plus(105)).await, [soon.id, later.id]);

    let reauthorized = Subscription {
        reauthorization_sent: true,
        ..soon.clone()
    };
    assert!(store.update_subscription(reauthorized).await.unwrap());

    assert_eq!(
        store
            .next_subscription_deadline(REAUTHORIZE_BEFORE)
            .await
            .unwrap(),
        Some(t0_plus(60))
    );
    assert!(due(t0_plus(59)).await.is_empty());
    let at_expiry = store
        .subscriptions_due(t0_plus(60), REAUTHORIZE_BEFORE)
        .await
        .unwrap();
    assert_eq!(at_expiry.len(), 1);
    assert_eq!(at_expiry[0].id, soon.id);
    assert!(at_expiry[0].reauthorization_sent);
}

// ---- Secrets ----

pub(super) async fn a_kept_secret_is_the_first_candidate(store: Arc<dyn Store>) {
    let first = store.keep_secret("signing", "first".into()).await.unwrap();
    let second = store.keep_secret("signing", "second".into()).await.unwrap();
    let other = store.keep_secret("other", "third".into()).await.unwrap();

    assert_eq!(first, "first");
    assert_eq!(second, "first");
    assert_eq!(other, "third");
}

/// A status message expiring between two microseconds (Graph's 7th
/// fractional digit) still falls due, settles once, and leaves nothing due:
/// the schedule never names an instant before the transition.
pub(super) async fn a_transition_between_microseconds_settles_and_leaves_nothing_due(
    store: Arc<dyn Store>,
) {
    let k = key();
    let expiry = t0_plus(30) + TimeDelta::nanoseconds(123_456_700);
    let status = StatusMessage {
        content: "precise".into(),
        expires_at: Some(expiry),
        expiry_zone: None,
        published_at: t0(),
    };
    store
        .apply(k, Change::SetStatusMessage(Some(status)), t0())
        .await
        .unwrap();
    let due = store.due_users(t0_plus(31), 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    let (who, at) = due[0];
    assert_eq!(who, k);
    assert!(at >= expiry, "due at {at}, before the expiry {expiry}");
    let settled = store.settle(k, at).await.unwrap();
    let settled = settled.expect("the expiry settles");
    assert_eq!(settled.visibility, Visibility::Resource);
    assert_eq!(
        store.due_users(t0_plus(31), 10).await.unwrap(),
        vec![],
        "nothing is due any more"
    );
}
