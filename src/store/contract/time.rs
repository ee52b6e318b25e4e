//! Contract cases for time: expired facts pruned by writes, users falling
//! due at their next transition (never later), and the emulator's clock.

use std::sync::Arc;

use chrono::TimeDelta;

use super::{key, notify, session, t0};
use crate::domain::{Activity, Availability, UserKey};
use crate::store::Store;

pub(super) async fn writes_prune_expired_facts(store: Arc<dyn Store>) {
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

pub(super) async fn due_users_follow_next_change(store: Arc<dyn Store>) {
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
pub(super) async fn active_now_and_a_minute_later(store: &dyn Store, k: UserKey) {
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
pub(super) async fn a_due_time_is_never_later_than_the_transition(store: Arc<dyn Store>) {
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

pub(super) async fn emulator_time_round_trips(store: Arc<dyn Store>) {
    assert_eq!(store.emulator_time().await.unwrap(), None);
    store.save_emulator_time(t0()).await.unwrap();
    let later = t0() + TimeDelta::days(400);
    store.save_emulator_time(later).await.unwrap();
    assert_eq!(store.emulator_time().await.unwrap(), Some(later));
    // Never backwards, even if saves arrive out of order.
    store.save_emulator_time(t0()).await.unwrap();
    assert_eq!(store.emulator_time().await.unwrap(), Some(later));
}
