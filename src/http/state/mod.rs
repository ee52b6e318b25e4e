//! The emulator's state document (SPEC §8): `GET /_presenced/state`
//! exports it, `PUT /_presenced/state` and `--seed FILE` replace everything
//! with one, `POST /_presenced/reset[?tenant=]` wipes. Emulator mode only.
//!
//! The document is versioned (`"version": 1`) and holds every tenant's
//! users' stored facts (sessions, preferred presence, status message, work
//! location, with absolute instants) and subscriptions, and the emulator
//! clock. Instants are RFC 3339, exact to the nanosecond, so an exported
//! document imports back to identical reads. The event log and queued
//! webhook deliveries are not state: a replacement starts them afresh.

mod document;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use document::{
    At, CheckedState, LocationState, PreferredState, SessionKindState, SessionState, StateDocument,
    StateError, StatusState, SubscriptionState, TenantState, UserState, MAX_VERSION, STATE_VERSION,
};

use super::admin::{advance_clock_to, Admin, Emulator};
use super::error::GraphError;
use super::extract::GraphJson;
use super::AppState;
use crate::clock::{Clock, Instant, ManualClock};

/// Query of `POST /_presenced/reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetQuery {
    /// Wipe only this tenant.
    pub tenant: Option<Uuid>,
}

/// Replaces everything with a checked document: the clock moves forward
/// to the document's when later, then the store's contents are replaced
/// and whatever fell due up to now is processed. Used by `PUT` and
/// `--seed`.
pub async fn import(
    state: &AppState,
    clock: &ManualClock,
    checked: CheckedState,
) -> Result<Instant, GraphError> {
    let mut now = clock.now();
    if let Some(target) = checked.clock.filter(|t| *t > now) {
        now = advance_clock_to(state, clock, target).await?;
    }
    state.notifier.replace(checked.contents, now).await?;
    state.notifier.run_due(now).await?;
    Ok(now)
}

/// `GET /_presenced/state`: every tenant's users and subscriptions and the
/// emulator clock, as one versioned document.
pub async fn get_state(
    State(state): State<AppState>,
    Emulator(clock): Emulator,
    _admin: Admin,
) -> Result<Json<StateDocument>, GraphError> {
    let now = clock.now();
    let contents = state.store.contents().await?;
    Ok(Json(StateDocument::export(contents, now)))
}

/// `PUT /_presenced/state`: replaces everything with the document (400
/// naming the field when it breaks a rule) and answers the new state.
pub async fn put_state(
    State(state): State<AppState>,
    Emulator(clock): Emulator,
    _admin: Admin,
    GraphJson(doc): GraphJson<StateDocument>,
) -> Result<Json<StateDocument>, GraphError> {
    let checked = doc.check(clock.now())?;
    let now = import(&state, &clock, checked).await?;
    let contents = state.store.contents().await?;
    Ok(Json(StateDocument::export(contents, now)))
}

/// `POST /_presenced/reset[?tenant=]`: wipes every tenant's users,
/// subscriptions, queued deliveries, events, journaled requests and every
/// fault rule, or one tenant's users, subscriptions, deliveries, events and
/// journaled requests. The clock stays where it is.
pub async fn reset(
    State(state): State<AppState>,
    _emulator: Emulator,
    _admin: Admin,
    query: Result<Query<ResetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, GraphError> {
    let Query(query) = query
        .map_err(|e| GraphError::bad_request(format!("The query is invalid: {}", e.body_text())))?;
    state.notifier.reset(query.tenant).await?;
    if let Some(tools) = &state.emulator {
        tools.journal.clear(query.tenant);
        if query.tenant.is_none() {
            tools.faults.remove(None);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
