//! Contract cases for settling time-driven transitions: a fade or an expiry
//! is recorded at its transition instant and notifies watchers like a
//! write; users that were never written have nothing to settle.

use std::sync::Arc;

use chrono::TimeDelta;

use super::{all_deliveries, available, change_payload, create, seqs, subscription, t0_plus};
use crate::clock::latest_instant;
use crate::domain::{effective, Activity, Availability, SessionKind, StatusMessage, Visibility};
use crate::store::contract::{key, session, t0};
use crate::store::{Change, Payload, Store, StoreError};

// ---- Settling time-driven transitions ----

pub(crate) async fn settling_a_fade_records_it_at_the_transition_instant(store: Arc<dyn Store>) {
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

pub(crate) async fn settling_a_user_never_written_changes_nothing(store: Arc<dyn Store>) {
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
pub(crate) async fn settling_a_user_whose_only_write_failed_changes_nothing(store: Arc<dyn Store>) {
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

pub(crate) async fn due_users_walk_a_user_through_its_transitions(store: Arc<dyn Store>) {
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

pub(crate) async fn a_settled_fade_notifies_watchers_like_a_write(store: Arc<dyn Store>) {
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

/// A status message expiring between two microseconds (Graph's 7th
/// fractional digit) still falls due, settles once, and leaves nothing due:
/// the schedule never names an instant before the transition.
pub(crate) async fn a_transition_between_microseconds_settles_and_leaves_nothing_due(
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
