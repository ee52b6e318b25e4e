//! The Graph presence endpoints (SPEC §3). Handlers parse, authorise, call
//! the domain and the store, and render; they never compute presence.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Deserialize;
use tracing::instrument;
use uuid::Uuid;

use super::error::GraphError;
use super::extract::{Call, JsonBody};
use super::model::{SelectedPresence, SelectedPresenceCollection};
use super::render;
use super::AppState;
use crate::auth::{authorize, Operation};
use crate::domain::{
    effective, parse_guid, Change, ClearPresenceBody, LocationBody, PresenceProperty,
    PresenceQuery, SetPreferredBody, SetPresenceBody, SetStatusMessageBody, UserKey,
    WorkLocationLayer,
};

/// The most ids getPresencesByUserId accepts (SPEC §3).
pub const MAX_IDS: usize = 650;

/// The `@odata.context` of a single presence; with `$select`, Graph names
/// the selected properties in it.
fn context(call: &Call, user: Uuid, selected: Option<&[PresenceProperty]>) -> String {
    let selection = selected
        .map(|properties| {
            let names: Vec<&str> = properties
                .iter()
                .filter(|p| **p != PresenceProperty::Id || properties.len() == 1)
                .map(|p| p.name())
                .collect();
            format!("({})", names.join(","))
        })
        .unwrap_or_default();
    // Joined into a string of the right size: `format!` showed as 1 % of a
    // getPresence (issue #14).
    let mut buffer = Uuid::encode_buffer();
    let user = user.hyphenated().encode_lower(&mut buffer);
    let version = call.version.as_str();
    [
        &*call.base,
        "/",
        version,
        "/$metadata#users('",
        user,
        "')/presence",
        &selection,
        "/$entity",
    ]
    .concat()
}

/// The OData query options of a presence read (SPEC §2): `$select` only.
fn presence_query(raw: Option<&str>) -> Result<PresenceQuery, GraphError> {
    Ok(PresenceQuery::try_from(raw.unwrap_or_default())?)
}

/// Get presence: `GET /me/presence`, `GET /users/{id}/presence`,
/// `GET /communications/presences/{id}`, with `$select` (SPEC §2).
pub async fn get_presence(
    State(state): State<AppState>,
    call: Call,
    RawQuery(query): RawQuery,
) -> Result<Response, GraphError> {
    read_presence(&state, call, query.as_deref()).await
}

/// The read behind [`get_presence`], once the call is extracted; the
/// direct path ([`super::direct`]) calls it too. Its span keeps the
/// handler's name, which debug logs have always shown.
#[instrument(name = "get_presence", level = "debug", skip_all, fields(tenant = %call.tenant(), user))]
pub(super) async fn read_presence(
    state: &AppState,
    call: Call,
    query: Option<&str>,
) -> Result<Response, GraphError> {
    let user = call.subject()?;
    tracing::Span::current().record("user", tracing::field::display(user));
    authorize(&call.principal, Operation::Read, Some(user))?;
    let query = presence_query(query)?;
    let facts = state
        .service
        .facts(UserKey {
            tenant: call.tenant(),
            user,
        })
        .await?;
    let e = effective(&facts, call.now);
    let selected = query.selected();
    let presence =
        render::presence_entity(context(&call, user, selected), user, e, call.is_self(user));
    Ok(match selected {
        None => render::presence_json(&presence),
        Some(properties) => render::json(&SelectedPresence::of(presence, properties)),
    })
}

/// Body of getPresencesByUserId.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct IdsBody {
    /// 1 to 650 user ids (GUIDs).
    #[schema(min_items = 1, max_items = 650)]
    ids: Vec<String>,
}

/// Get presence of many users: `POST /communications/getPresencesByUserId`,
/// with `$select` applying to each item (SPEC §2, §3).
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant()))]
pub async fn get_many(
    State(state): State<AppState>,
    call: Call,
    RawQuery(query): RawQuery,
    body: JsonBody,
) -> Result<Response, GraphError> {
    authorize(&call.principal, Operation::ReadMany, None)?;
    let query = presence_query(query.as_deref())?;
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
    let facts = state.service.facts_for(call.tenant(), &ids).await?;
    let value = ids
        .iter()
        .zip(&facts)
        .map(|(user, f)| render::presence(*user, effective(f, call.now), call.is_self(*user)));
    let odata_context = format!(
        "{}/{}/$metadata#Collection(microsoft.graph.presence)",
        call.base,
        call.version.as_str()
    );
    Ok(match query.selected() {
        None => render::presence_collection_json(&odata_context, value),
        Some(properties) => render::json(&SelectedPresenceCollection {
            odata_context,
            value: value.map(|p| SelectedPresence::of(p, properties)).collect(),
        }),
    })
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

/// Authorises `op` on the call's subject, then applies `change` to it
/// through the one write path.
async fn write(
    state: &AppState,
    call: &Call,
    op: Operation,
    change: Change,
) -> Result<(), GraphError> {
    let key = writable(call, op)?;
    state.service.apply(key, change, call.now).await?;
    Ok(())
}

/// setPresence: `POST …/presence/setPresence`.
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_presence(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    let key = writable(&call, Operation::Write)?;
    let change = body
        .parse::<SetPresenceBody>()?
        .into_change(&call.principal.app_id, call.now)?;
    state.service.apply(key, change, call.now).await?;
    Ok(())
}

/// clearPresence: `POST …/presence/clearPresence`.
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn clear_presence(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    let key = writable(&call, Operation::Write)?;
    let change = body
        .parse::<ClearPresenceBody>()?
        .into_change(&call.principal.app_id)?;
    state.service.apply(key, change, call.now).await?;
    Ok(())
}

/// setUserPreferredPresence: `POST …/presence/setUserPreferredPresence`.
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_preferred(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    let key = writable(&call, Operation::Write)?;
    let change = body.parse::<SetPreferredBody>()?.into_change(call.now)?;
    state.service.apply(key, change, call.now).await?;
    Ok(())
}

/// clearUserPreferredPresence: `POST …/presence/clearUserPreferredPresence`.
/// Takes `{}` (or no body).
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn clear_preferred(State(state): State<AppState>, call: Call) -> Result<(), GraphError> {
    write(&state, &call, Operation::Write, Change::ClearPreferred).await
}

/// setStatusMessage: `POST …/presence/setStatusMessage`.
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_status_message(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    let key = writable(&call, Operation::Write)?;
    let change = body
        .parse::<SetStatusMessageBody>()?
        .into_change(call.now)?;
    state.service.apply(key, change, call.now).await?;
    Ok(())
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
    let layer = body.parse::<LocationBody>()?.into_layer(call.now)?;
    state.service.apply(key, change(layer), call.now).await?;
    Ok(())
}

/// setManualLocation: `POST …/presence/setManualLocation`.
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_manual_location(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    set_location(&state, &call, body, Change::SetManualLocation).await
}

/// setAutomaticLocation: `POST …/presence/setAutomaticLocation`.
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
pub async fn set_automatic_location(
    State(state): State<AppState>,
    call: Call,
    body: JsonBody,
) -> Result<(), GraphError> {
    set_location(&state, &call, body, Change::SetAutomaticLocation).await
}

/// clearLocation: `POST …/presence/clearLocation`.
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
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
#[instrument(level = "debug", skip_all, fields(tenant = %call.tenant(), user = ?call.user))]
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
