//! Contract cases for a user's facts: reading back what was written,
//! refreshing and removing sessions, tenant isolation, batched reads, every
//! kind of change, the before/after of a write and concurrent writers.

use std::sync::Arc;

use chrono::TimeDelta;
use uuid::Uuid;

use super::{key, notify, session, t0};
use crate::domain::{
    effective, Activity, Availability, Preferred, PreferredPair, Session, SessionKind, SessionPair,
    StatusMessage, UserKey, WorkLocationLayer, WorkLocationType,
};
use crate::store::{Change, Store, StoreError};

pub(super) async fn unknown_users_read_as_empty(store: Arc<dyn Store>) {
    let facts = store.facts(key()).await.unwrap();
    assert!(facts.sessions.is_empty());
    assert_eq!(facts.version, 0);
    store.ping().await.unwrap();
}

pub(super) async fn upsert_then_read_back(store: Arc<dyn Store>) {
    let k = key();
    let s = notify::busy(t0());
    store.upsert_session(k, s.clone(), t0()).await.unwrap();
    let facts = store.facts(k).await.unwrap();
    assert_eq!(facts.sessions, vec![s]);
    assert_eq!(facts.version, 1);
    assert_eq!(facts.updated_at, Some(t0()));
}

pub(super) async fn upsert_refreshes_the_same_session(store: Arc<dyn Store>) {
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

pub(super) async fn remove_unknown_session_is_not_found_and_changes_nothing(store: Arc<dyn Store>) {
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

pub(super) async fn remove_expired_session_is_not_found(store: Arc<dyn Store>) {
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

pub(super) async fn tenants_are_isolated(store: Arc<dyn Store>) {
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

pub(super) async fn facts_for_keeps_order_and_fills_gaps(store: Arc<dyn Store>) {
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

pub(super) async fn every_change_round_trips(store: Arc<dyn Store>) {
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

pub(super) async fn applied_reports_before_and_after(store: Arc<dyn Store>) {
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

pub(super) async fn concurrent_writes_all_land(store: Arc<dyn Store>) {
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
