//! Contract cases for the outbox: one delivery per live watching
//! subscription, renewed and shortened subscriptions, and deliveries falling
//! due by `next_at` with a limit and a skip list.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::TimeDelta;
use uuid::Uuid;

use super::{all_deliveries, busy, change_payload, create, subscription, t0_plus};
use crate::domain::{Activity, Availability};
use crate::store::contract::{key, session, t0};
use crate::store::{Delivery, LifecycleEvent, NewDelivery, Payload, Store, Subscription};

// ---- The outbox ----

pub(crate) async fn a_presence_change_queues_one_delivery_per_live_watching_subscription(
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

pub(crate) async fn a_renewed_subscription_watches_again_and_a_shortened_one_stops(
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

pub(crate) async fn deliveries_are_due_by_next_at_with_limit_and_skip(store: Arc<dyn Store>) {
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
