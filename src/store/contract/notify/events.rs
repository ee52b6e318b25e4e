//! Contract cases for what a write records for watchers (an event with its
//! visibility, deliveries or none) and for the event log: order, tenant
//! filter, paging, replay and pruning.

use std::sync::Arc;

use chrono::TimeDelta;
use uuid::Uuid;

use super::{all_deliveries, available, bounds, busy, create, seqs, subscription, t0_plus};
use crate::domain::{
    effective, Activity, Availability, SessionKind, StatusMessage, UserKey, Visibility,
};
use crate::store::contract::{key, session, t0};
use crate::store::{Change, EventBounds, Store};

// ---- What a write records ----

pub(crate) async fn a_presence_change_records_an_event_with_presence_visibility(
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

pub(crate) async fn a_keep_alive_with_the_same_pair_is_unchanged_and_records_nothing(
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

pub(crate) async fn a_status_message_change_is_a_resource_event_without_deliveries(
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

pub(crate) async fn events_are_ordered_filtered_by_tenant_and_paged(store: Arc<dyn Store>) {
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

pub(crate) async fn each_event_reproduces_the_presence_after_its_change(store: Arc<dyn Store>) {
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

pub(crate) async fn pruning_drops_old_events_and_never_reuses_their_seqs(store: Arc<dyn Store>) {
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
pub(crate) async fn pruning_never_drops_an_event_recorded_after_the_cutoff(store: Arc<dyn Store>) {
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
