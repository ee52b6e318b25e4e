//! The storage contract for change notifications (SPEC §7, §8): what a
//! write or a settled transition records for watchers (events, deliveries),
//! the event log, subscriptions, the outbox and kept secrets. Each case runs
//! on a fresh store from `run_contract`.
//!
//! The fixtures the cases share and the kept-secret case live here; the
//! cases by concern in `events`, `settling`, `subscriptions` and `outbox`.

use std::sync::Arc;

use chrono::TimeDelta;
use uuid::Uuid;

use super::{session, t0};
use crate::clock::{latest_instant, Instant};
use crate::domain::{effective, Activity, Availability, Session};
use crate::store::{Applied, Delivery, Event, EventBounds, Payload, Store, Subscription};

mod events;
mod outbox;
mod settling;
mod subscriptions;

pub(crate) use events::*;
pub(crate) use outbox::*;
pub(crate) use settling::*;
pub(crate) use subscriptions::*;

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

// ---- Secrets ----

pub(super) async fn a_kept_secret_is_the_first_candidate(store: Arc<dyn Store>) {
    let first = store.keep_secret("signing", "first".into()).await.unwrap();
    let second = store.keep_secret("signing", "second".into()).await.unwrap();
    let other = store.keep_secret("other", "third".into()).await.unwrap();

    assert_eq!(first, "first");
    assert_eq!(second, "first");
    assert_eq!(other, "third");
}
