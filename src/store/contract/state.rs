//! Contract cases for the emulator's state: every store's contents, a wipe
//! of one tenant or of everything, and a replacement of everything
//! (`GET`/`PUT /_presenced/state`, `POST /_presenced/reset`).

use std::sync::Arc;

use chrono::TimeDelta;
use uuid::Uuid;

use super::notify::{busy, subscription, t0_plus};
use super::{key, session, t0};
use crate::domain::{Activity, Availability, Change, StatusMessage, UserKey};
use crate::store::{Contents, Payload, Store};

/// Two tenants with a busy user and a status message each, one
/// subscription each watching it, and a queued delivery for it.
async fn two_tenants(store: &Arc<dyn Store>) -> (UserKey, UserKey) {
    let (a, b) = (key(), key());
    for k in [a, b] {
        let s = subscription(k.tenant, "app", "app", &[k.user]);
        store.create_subscription(s, false).await.unwrap().unwrap();
        let busy = busy(t0());
        let applied = store.upsert_session(k, busy, t0()).await.unwrap();
        assert_eq!(applied.queued, 1, "the watching subscription gets one");
        let status = StatusMessage {
            content: "away from my desk".into(),
            expires_at: None,
            expiry_zone: None,
            published_at: t0(),
        };
        store
            .apply(k, Change::SetStatusMessage(Some(status)), t0())
            .await
            .unwrap();
    }
    (a, b)
}

pub(crate) async fn contents_hold_every_user_and_subscription(store: Arc<dyn Store>) {
    let (a, b) = two_tenants(&store).await;
    let contents = store.contents().await.unwrap();
    let mut keys: Vec<UserKey> = contents.users.iter().map(|(k, _)| *k).collect();
    let mut want = vec![a, b];
    want.sort();
    keys.sort();
    assert_eq!(keys, want);
    for (k, facts) in &contents.users {
        assert_eq!(*facts, store.facts(*k).await.unwrap());
    }
    let tenants: Vec<Uuid> = contents.subscriptions.iter().map(|s| s.tenant).collect();
    assert_eq!(tenants.len(), 2);
    assert!(tenants.contains(&a.tenant) && tenants.contains(&b.tenant));
}

pub(crate) async fn a_tenant_reset_wipes_that_tenant_only(store: Arc<dyn Store>) {
    let (a, b) = two_tenants(&store).await;
    let before_b = store.facts(b).await.unwrap();
    store.reset(Some(a.tenant)).await.unwrap();
    assert_eq!(store.facts(a).await.unwrap(), Default::default());
    assert_eq!(store.facts(b).await.unwrap(), before_b);
    assert!(store
        .subscriptions_of(a.tenant, "app")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.subscriptions_of(b.tenant, "app").await.unwrap().len(),
        1
    );
    let queued = store.due_deliveries(t0_plus(1000), 100, &[]).await.unwrap();
    assert!(queued.iter().all(|d| d.tenant == b.tenant), "{queued:?}");
    assert_eq!(queued.len(), 1);
    assert!(store
        .events_since(Some(a.tenant), 0, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .events_since(Some(b.tenant), 0, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .due_users(t0_plus(1000), 10)
        .await
        .unwrap()
        .iter()
        .all(|(k, _)| k.tenant == b.tenant));
    // A write after the reset starts the user afresh and watchers are gone.
    let again = session(
        "app",
        Availability::Available,
        Activity::Available,
        t0(),
        TimeDelta::hours(1),
    );
    let applied = store.upsert_session(a, again, t0()).await.unwrap();
    assert_eq!(applied.queued, 0);
    assert_eq!(applied.after.version, 1);
}

pub(crate) async fn a_full_reset_wipes_everything_but_secrets_and_the_clock(store: Arc<dyn Store>) {
    let (a, b) = two_tenants(&store).await;
    store.save_emulator_time(t0()).await.unwrap();
    let secret = store.keep_secret("k", "v".into()).await.unwrap();
    let last = store.event_bounds().await.unwrap().last;
    store.reset(None).await.unwrap();
    assert_eq!(store.contents().await.unwrap(), Contents::default());
    for k in [a, b] {
        assert_eq!(store.facts(k).await.unwrap(), Default::default());
    }
    assert!(store.next_delivery_at(&[]).await.unwrap().is_none());
    assert!(store.next_due().await.unwrap().is_none());
    let bounds = store.event_bounds().await.unwrap();
    assert_eq!((bounds.pruned_through, bounds.last), (last, last));
    assert_eq!(store.emulator_time().await.unwrap(), Some(t0()));
    assert_eq!(store.keep_secret("k", "w".into()).await.unwrap(), secret);
}

pub(crate) async fn replace_then_contents_round_trips_and_watches(store: Arc<dyn Store>) {
    let (a, b) = two_tenants(&store).await;
    let exported = store.contents().await.unwrap();
    let due_before = store.due_users(t0_plus(1000), 10).await.unwrap();
    store.reset(None).await.unwrap();
    store.replace(exported.clone(), t0()).await.unwrap();
    assert_eq!(store.contents().await.unwrap(), exported);
    for (k, facts) in &exported.users {
        assert_eq!(store.facts(*k).await.unwrap(), *facts);
    }
    assert_eq!(
        store.due_users(t0_plus(1000), 10).await.unwrap(),
        due_before
    );
    assert!(
        store.next_delivery_at(&[]).await.unwrap().is_none(),
        "deliveries are not state"
    );
    // The restored subscriptions watch their users again.
    let ends = store
        .apply(a, Change::ClearPreferred, t0_plus(1))
        .await
        .unwrap();
    assert_eq!(ends.queued, 0, "no presence change, no delivery");
    let off = store
        .remove_session(
            b,
            crate::domain::SessionKind::Application,
            "app",
            t0_plus(1),
        )
        .await
        .unwrap();
    assert_eq!(off.queued, 1);
    let queued = store.due_deliveries(t0_plus(1), 10, &[]).await.unwrap();
    assert!(matches!(queued[0].payload, Payload::Change { user, .. } if user == b.user));
    // Replacing again replaces, it does not add.
    store.replace(Contents::default(), t0()).await.unwrap();
    assert_eq!(store.contents().await.unwrap(), Contents::default());
}

pub(crate) async fn users_page_lists_one_tenant_in_id_order_and_pages(store: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let mut users: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        let k = UserKey {
            tenant,
            user: *user,
        };
        let s = busy(t0());
        store.upsert_session(k, s, t0()).await.unwrap();
    }
    let stranger = key();
    store
        .apply(stranger, Change::SetStatusMessage(None), t0())
        .await
        .unwrap();
    users.sort();

    let first = store.users_page(tenant, None, 2).await.unwrap();
    let ids: Vec<Uuid> = first.iter().map(|(u, _)| *u).collect();
    assert_eq!(ids, users[..2], "the first page, in id order");
    assert!(first
        .iter()
        .all(|(_, f)| f.sessions.len() == 1 && f.version == 1));
    let rest = store.users_page(tenant, Some(ids[1]), 10).await.unwrap();
    let rest: Vec<Uuid> = rest.iter().map(|(u, _)| *u).collect();
    assert_eq!(rest, users[2..], "the next page starts after the last id");
    assert!(store
        .users_page(tenant, Some(users[4]), 10)
        .await
        .unwrap()
        .is_empty());
    let theirs = store.users_page(stranger.tenant, None, 10).await.unwrap();
    assert_eq!(theirs.len(), 1, "another tenant sees only its own user");
    assert_eq!(theirs[0].0, stranger.user);

    store.reset(Some(tenant)).await.unwrap();
    assert!(store.users_page(tenant, None, 10).await.unwrap().is_empty());
}

pub(crate) async fn counts_follow_users_sessions_and_subscriptions(store: Arc<dyn Store>) {
    let counts = |users, online, sessions, subscriptions| crate::store::StoreCounts {
        users: Some(users),
        users_with_sessions: Some(online),
        sessions: Some(sessions),
        subscriptions: Some(subscriptions),
    };
    assert_eq!(store.counts().await.unwrap(), counts(0, 0, 0, 0));
    let (a, b) = (key(), key());
    for (k, app) in [(a, "one"), (a, "two"), (b, "one")] {
        let s = session(
            app,
            Availability::Busy,
            Activity::InACall,
            t0(),
            TimeDelta::hours(1),
        );
        store.upsert_session(k, s, t0()).await.unwrap();
    }
    let s = subscription(a.tenant, "app", "app", &[a.user]);
    store.create_subscription(s, false).await.unwrap().unwrap();
    assert_eq!(store.counts().await.unwrap(), counts(2, 2, 3, 1));
    store
        .remove_session(a, crate::domain::SessionKind::Application, "two", t0())
        .await
        .unwrap();
    assert_eq!(store.counts().await.unwrap(), counts(2, 2, 2, 1));
    store
        .remove_session(b, crate::domain::SessionKind::Application, "one", t0())
        .await
        .unwrap();
    assert_eq!(
        store.counts().await.unwrap(),
        counts(2, 1, 1, 1),
        "a user without sessions is still a user, no longer online"
    );
    store.reset(Some(b.tenant)).await.unwrap();
    assert_eq!(store.counts().await.unwrap(), counts(1, 1, 1, 1));
    store.reset(None).await.unwrap();
    assert_eq!(store.counts().await.unwrap(), counts(0, 0, 0, 0));
}
