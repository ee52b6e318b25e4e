//! The Graph presence endpoints (SPEC §3). Handlers parse, authorise, call
//! the domain and the store, and render; they never compute presence.

use axum::extract::State;
use axum::Json;
use chrono::{Datelike, TimeDelta};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::instrument;
use uuid::Uuid;

use super::error::GraphError;
use super::extract::{Call, JsonBody};
use super::render;
use super::AppState;
use crate::auth::{authorize, Operation};
use crate::domain::{
    effective, parse_duration, parse_guid, parse_local_date_time, DomainError, Preferred,
    PreferredPair, Session, SessionKind, SessionPair, StatusMessage, StatusMessageInput,
    TimeZoneName, UserKey, WorkLocationLayer, WorkLocationType,
};
use crate::store::Change;

/// The most ids getPresencesByUserId accepts (SPEC §3).
pub const MAX_IDS: usize = 650;
/// Default setPresence lifetime (SPEC §4).
pub const SESSION_DEFAULT: TimeDelta = TimeDelta::minutes(5);
/// Shortest setPresence lifetime.
pub const SESSION_MIN: TimeDelta = TimeDelta::minutes(5);
/// Longest setPresence lifetime.
pub const SESSION_MAX: TimeDelta = TimeDelta::hours(4);
/// Shortest explicit preferred-presence lifetime (SPEC §4 decision).
pub const PREFERRED_MIN: TimeDelta = TimeDelta::minutes(5);
/// Longest explicit preferred-presence lifetime (SPEC §4 decision).
pub const PREFERRED_MAX: TimeDelta = TimeDelta::days(30);
/// The last day Graph's date-times can express, 9999-12-31.
fn end_of_time() -> chrono::NaiveDate {
    crate::clock::latest_instant().date_naive()
}

/// Longest accepted `placeId`.
const MAX_PLACE_ID_CHARS: usize = 256;

/// Parses an optional `expirationDuration` within bounds.
pub(crate) fn lifetime(
    text: Option<&str>,
    default: TimeDelta,
    min: TimeDelta,
    max: TimeDelta,
) -> Result<TimeDelta, DomainError> {
    match text {
        None => Ok(default),
        Some(text) => parse_duration(text)?.within(text, min, max),
    }
}

/// The `@odata.context` of a single presence.
fn context(call: &Call, user: Uuid) -> String {
    format!(
        "{}/{}/$metadata#users('{user}')/presence/$entity",
        call.base,
        call.version.as_str()
    )
}

/// Get presence: `GET /me/presence`, `GET /users/{id}/presence`,
/// `GET /communications/presences/{id}`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user))]
pub async fn get_presence(
    State(state): State<AppState>,
    call: Call,
) -> Result<Json<Value>, GraphError> {
    let user = call.subject()?;
    tracing::Span::current().record("user", tracing::field::display(user));
    authorize(&call.principal, Operation::Read, Some(user))?;
    let facts = state
        .store
        .facts(UserKey {
            tenant: call.tenant(),
            user,
        })
        .await?;
    let e = effective(&facts, call.now);
    Ok(Json(render::presence_entity(
        context(&call, user),
        user,
        &e,
        call.is_self(user),
    )))
}

/// Body of getPresencesByUserId.
#[derive(Debug, Deserialize)]
pub struct IdsBody {
    ids: Vec<String>,
}

/// Get presence of many users: `POST /communications/getPresencesByUserId`.
#[instrument(skip_all, fields(tenant = %call.tenant()))]
pub async fn get_many(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<Json<Value>, GraphError> {
    authorize(&call.principal, Operation::ReadMany, None)?;
    let body: IdsBody = body.parse()?;
    if body.ids.is_empty() {
        return Err(GraphError::bad_request(
            "ids must contain at least one user id.",
        ));
    }
    if body.ids.len() > MAX_IDS {
        return Err(GraphError::bad_request(format!(
            "ids contains {} user ids; the limit is {MAX_IDS}.",
            body.ids.len()
        )));
    }
    let ids = body
        .ids
        .iter()
        .map(|id| parse_guid(id))
        .collect::<Result<Vec<_>, _>>()?;
    let facts = state.store.facts_for(call.tenant(), &ids).await?;
    let value: Vec<Value> = ids
        .iter()
        .zip(&facts)
        .map(|(user, f)| render::presence(*user, &effective(f, call.now), call.is_self(*user)))
        .collect();
    Ok(Json(json!({
        "@odata.context": format!("{}/{}/$metadata#Collection(microsoft.graph.presence)", call.base, call.version.as_str()),
        "value": value,
    })))
}

/// Resolves the subject of a write and checks the caller may write it.
fn writable(call: &Call, op: Operation) -> Result<UserKey, GraphError> {
    let user = call.subject()?;
    authorize(&call.principal, op, Some(user))?;
    Ok(UserKey {
        tenant: call.tenant(),
        user,
    })
}

/// Authorises `op` on the call's subject, then applies `change` to it.
async fn write(
    state: &AppState,
    call: &Call,
    op: Operation,
    change: Change,
) -> Result<(), GraphError> {
    let key = writable(call, op)?;
    state.store.apply(key, change, call.now).await?;
    Ok(())
}

/// Checks that `session_id` is the calling application's own (SPEC §4).
fn own_session(call: &Call, session_id: &str) -> Result<(), GraphError> {
    if session_id.eq_ignore_ascii_case(&call.principal.app_id) {
        Ok(())
    } else {
        Err(DomainError::SessionIdMismatch {
            given: session_id.to_string(),
            app: call.principal.app_id.clone(),
        }
        .into())
    }
}

/// Body of setPresence.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetPresenceBody {
    session_id: String,
    availability: String,
    activity: String,
    expiration_duration: Option<String>,
}

/// setPresence: `POST …/presence/setPresence`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_presence(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    let key = writable(&call, Operation::Write)?;
    let body: SetPresenceBody = body.parse()?;
    own_session(&call, &body.session_id)?;
    let pair = SessionPair::parse(&body.availability, &body.activity)?;
    let life = lifetime(
        body.expiration_duration.as_deref(),
        SESSION_DEFAULT,
        SESSION_MIN,
        SESSION_MAX,
    )?;
    let session = Session {
        kind: SessionKind::Application,
        id: call.principal.app_id.clone(),
        pair,
        last_active: call.now,
        expires_at: call.now + life,
    };
    state.store.upsert_session(key, session, call.now).await?;
    Ok(())
}

/// Body of clearPresence.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClearPresenceBody {
    session_id: String,
}

/// clearPresence: `POST …/presence/clearPresence`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn clear_presence(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    let key = writable(&call, Operation::Write)?;
    let body: ClearPresenceBody = body.parse()?;
    own_session(&call, &body.session_id)?;
    state
        .store
        .remove_session(
            key,
            SessionKind::Application,
            &call.principal.app_id,
            call.now,
        )
        .await?;
    Ok(())
}

/// Body of setUserPreferredPresence.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetPreferredBody {
    availability: String,
    activity: String,
    expiration_duration: Option<String>,
}

/// setUserPreferredPresence: `POST …/presence/setUserPreferredPresence`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_preferred(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    let key = writable(&call, Operation::Write)?;
    let body: SetPreferredBody = body.parse()?;
    let pair = PreferredPair::parse(&body.availability, &body.activity)?;
    let life = lifetime(
        body.expiration_duration.as_deref(),
        pair.default_lifetime(),
        PREFERRED_MIN,
        PREFERRED_MAX,
    )?;
    let preferred = Preferred {
        pair,
        set_at: call.now,
        expires_at: call.now + life,
    };
    state
        .store
        .apply(key, Change::SetPreferred(preferred), call.now)
        .await?;
    Ok(())
}

/// clearUserPreferredPresence: `POST …/presence/clearUserPreferredPresence`.
/// Takes `{}` (or no body).
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn clear_preferred(State(state): State<AppState>, call: Call) -> Result<(), GraphError> {
    write(&state, &call, Operation::Write, Change::ClearPreferred).await
}

/// Body of setStatusMessage.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetStatusMessageBody {
    status_message: StatusMessageBody,
}

/// `statusMessage` of setStatusMessage.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusMessageBody {
    message: Option<ItemBody>,
    expiry_date_time: Option<DateTimeTimeZone>,
}

/// Graph's `itemBody`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    content: Option<String>,
    content_type: Option<String>,
}

/// Graph's `dateTimeTimeZone`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    date_time: String,
    time_zone: Option<String>,
}

/// setStatusMessage: `POST …/presence/setStatusMessage`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_status_message(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    let key = writable(&call, Operation::Write)?;
    let body: SetStatusMessageBody = body.parse()?;
    let message = body
        .status_message
        .message
        .ok_or_else(|| GraphError::bad_request("statusMessage.message is required."))?;
    let input = StatusMessageInput::parse(
        message.content.as_deref().unwrap_or(""),
        message.content_type.as_deref(),
    )?;
    let (expires_at, expiry_zone) = match body.status_message.expiry_date_time {
        None => (None, None),
        Some(expiry) => {
            let zone = match expiry.time_zone.as_deref() {
                Some(name) => TimeZoneName::parse(name)?,
                None => TimeZoneName::utc(),
            };
            let local = parse_local_date_time(&expiry.date_time)?;
            if local.date() == end_of_time() {
                // 9999-12-31 in any zone is Graph's "no expiry" (SPEC §2),
                // as read back by the owner; keep it that way on a round trip.
                (None, None)
            } else {
                let utc = zone.to_utc(local);
                if utc > crate::clock::latest_instant() || utc.year() < 1 {
                    return Err(GraphError::bad_request(format!(
                        "expiryDateTime '{}' in '{}' is outside the supported range (years 0001 to 9999).",
                        expiry.date_time,
                        zone.name()
                    )));
                }
                (Some(utc), Some(zone.name().to_string()))
            }
        }
    };
    let status = (!input.is_clear()).then_some(StatusMessage {
        content: input.content,
        expires_at,
        expiry_zone,
        published_at: call.now,
    });
    state
        .store
        .apply(key, Change::SetStatusMessage(status), call.now)
        .await?;
    Ok(())
}

/// Body of setManualLocation / setAutomaticLocation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationBody {
    work_location_type: String,
    place_id: Option<String>,
}

fn location_layer(call: &Call, body: LocationBody) -> Result<WorkLocationLayer, GraphError> {
    let location_type = WorkLocationType::parse(&body.work_location_type)
        .ok_or_else(|| DomainError::UnknownWorkLocationType(body.work_location_type.clone()))?;
    if body
        .place_id
        .as_ref()
        .is_some_and(|p| p.chars().count() > MAX_PLACE_ID_CHARS)
    {
        return Err(GraphError::bad_request(format!(
            "placeId is longer than {MAX_PLACE_ID_CHARS} characters."
        )));
    }
    Ok(WorkLocationLayer {
        location_type,
        place_id: body.place_id.filter(|p| !p.is_empty()),
        set_at: call.now,
    })
}

/// Authorises a location write, validates its body, and stores the layer
/// `change` makes of it.
async fn set_location(
    state: &AppState,
    call: &Call,
    body: JsonBody,
    change: fn(WorkLocationLayer) -> Change,
) -> Result<(), GraphError> {
    let key = writable(call, Operation::WriteLocation)?;
    let layer = location_layer(call, body.parse()?)?;
    state.store.apply(key, change(layer), call.now).await?;
    Ok(())
}

/// setManualLocation: `POST …/presence/setManualLocation`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_manual_location(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    set_location(&state, &call, body, Change::SetManualLocation).await
}

/// setAutomaticLocation: `POST …/presence/setAutomaticLocation`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_automatic_location(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    set_location(&state, &call, body, Change::SetAutomaticLocation).await
}

/// clearLocation: `POST …/presence/clearLocation`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn clear_location(State(state): State<AppState>, call: Call) -> Result<(), GraphError> {
    write(
        &state,
        &call,
        Operation::WriteLocation,
        Change::ClearLocation,
    )
    .await
}

/// clearAutomaticLocation: `POST …/presence/clearAutomaticLocation`.
#[instrument(skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn clear_automatic_location(
    State(state): State<AppState>,
    call: Call,
) -> Result<(), GraphError> {
    write(
        &state,
        &call,
        Operation::WriteLocation,
        Change::ClearAutomaticLocation,
    )
    .await
}
