//! Contract cases for subscriptions: create, read, list, conflicts (Graph's
//! limits), update, delete, and their lifecycle (reauthorization, expiry).

use std::sync::Arc;

use chrono::TimeDelta;
use uuid::Uuid;

use super::{all_deliveries, busy, create, subscription, t0_plus, REAUTHORIZE_BEFORE};
use crate::clock::Instant;
use crate::domain::{Activity, Availability};
use crate::store::contract::{key, session, t0};
use crate::store::{
    LifecycleEvent, NewDelivery, Payload, Store, Subscription, SubscriptionConflict,
};

// ---- Subscriptions ----

pub(crate) async fn a_created_subscription_reads_back_only_in_its_tenant(store: Arc<dyn Store>) {
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

pub(crate) async fn subscriptions_of_list_one_app_in_one_tenant(store: Arc<dyn Store>) {
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

pub(crate) async fn the_same_combination_conflicts_with_the_existing_subscription(
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

pub(crate) async fn graph_limits_allow_one_subscription_per_user_and_app(store: Arc<dyn Store>) {
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

pub(crate) async fn an_expired_subscription_does_not_conflict(store: Arc<dyn Store>) {
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

pub(crate) async fn update_replaces_a_subscription_and_ignores_unknown_ones(store: Arc<dyn Store>) {
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

pub(crate) async fn delete_removes_a_subscription_its_watches_and_its_deliveries(
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

// ---- Subscription lifecycle ----

pub(crate) async fn subscriptions_fall_due_for_reauthorization_then_expiry(store: Arc<dyn Store>) {
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
