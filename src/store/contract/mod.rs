//! The storage contract: one suite, run against every backend. A backend is
//! done when this passes. The cases on a user's facts live in `facts`, on
//! expiry, due times and the emulator's clock in `time`, on change
//! notifications (events, settling, subscriptions, the outbox) in `notify`,
//! on the emulator's whole-store operations in `state`; `backends` runs the
//! suite against every store, with the SQLite store's own cases.

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

mod backends;
mod facts;
pub(crate) mod notify;
mod state;
mod time;

use facts::*;
use time::*;

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
