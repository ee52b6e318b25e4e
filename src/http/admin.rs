//! presenced's own endpoints under `/_presenced` (SPEC §8): health,
//! readiness, the emulator clock and simulated Teams client sessions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::request::Parts;
use axum::Json;
use serde::Deserialize;

use super::error::GraphError;
use super::extract::{authenticate, GraphJson, GraphPath};
use super::model::{
    ClockTime, ExplainedSession, PreferredPresence, Presence, PresenceExplanation, SessionOwner,
    Status,
};
use super::render;
use super::AppState;
use crate::auth::{authorize, Operation, Principal};
use crate::clock::{Instant, ManualClock};
use crate::domain::{
    effective, last_seen, parse_duration, parse_guid, session_lifetime, Activity, Availability,
    Change, Session, SessionKind, SessionPair, UserKey,
};

/// `GET /_presenced/healthz`: the process is up.
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// `GET /_presenced/metrics`: request, store, notification, event-stream
/// and scheduler metrics in Prometheus text format. No token, like
/// healthz: scrapers carry none, and no label names a user, tenant or
/// path as sent. With `--metrics-listen` it is served there instead, and
/// 404 here.
pub async fn metrics(
    State(state): State<AppState>,
    uri: axum::http::Uri,
) -> Result<axum::response::Response, GraphError> {
    if !state.metrics_here {
        return Err(GraphError::not_found(format!(
            "Resource not found for the segment '{}'.",
            uri.path()
        )));
    }
    crate::metrics::refresh_counts(state.store.as_ref()).await;
    Ok(prometheus_text())
}

/// The metrics as a `text/plain; version=0.0.4` answer.
pub(crate) fn prometheus_text() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// `GET /_presenced/readyz`: the store answers reads and takes writes; 503
/// `serviceNotAvailable` while it cannot (its writer stopped, or its last
/// write transaction failed: a full disk, a read-only file system), and
/// ready again once a write succeeds (the store probes with one).
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, GraphError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        GraphError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The store cannot serve requests.",
        )
    })?;
    Ok(Json(Status { status: "ready" }))
}

/// An authenticated caller holding the `Presenced.Admin` application role.
pub struct Admin(pub Arc<Principal>);

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GraphError> {
        let principal = authenticate(parts, state).await?;
        authorize(&principal, Operation::Admin, None)?;
        Ok(Admin(principal))
    }
}

/// The emulator's manual clock; the 404 that hides the clock endpoints when
/// the server runs without `--manual-clock` (checked before authentication).
pub struct Emulator(pub ManualClock);

impl axum::extract::FromRequestParts<AppState> for Emulator {
    type Rejection = GraphError;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<Self, GraphError> {
        state.clock.manual().cloned().map(Emulator).ok_or_else(|| {
            GraphError::not_found(
                "The emulator endpoints (clock, simulated client sessions) exist only when the server runs with --manual-clock.",
            )
        })
    }
}

fn clock_body(now: Instant) -> Json<ClockTime> {
    Json(ClockTime {
        now: render::utc_timestamp(now),
    })
}

/// `GET /_presenced/clock`: the emulator clock's time.
pub async fn get_clock(Emulator(clock): Emulator, _admin: Admin) -> Json<ClockTime> {
    clock_body(crate::clock::Clock::now(&clock))
}

/// Body of `POST /_presenced/clock`: exactly one of the two.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveClock {
    /// An ISO 8601 duration to move forward by.
    #[schema(example = "PT5M")]
    advance: Option<String>,
    /// An RFC 3339 instant to move forward to.
    #[schema(example = "2026-11-27T09:00:00Z")]
    set: Option<String>,
}

/// `POST /_presenced/clock`: moves the emulator clock forward by `advance`
/// (ISO 8601 duration) or to `set` (RFC 3339 instant); never backwards, and
/// never outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z (400
/// `invalidRequest` naming the range). Before it answers, every transition
/// up to the new time has been processed in time order and its
/// notifications queued (SPEC §8).
pub async fn move_clock(
    State(state): State<AppState>,
    Emulator(clock): Emulator,
    _admin: Admin,
    GraphJson(body): GraphJson<MoveClock>,
) -> Result<Json<ClockTime>, GraphError> {
    // One move at a time: the new time is saved durably before it shows,
    // so a restart never comes back earlier than what readers have seen.
    let _one_at_a_time = state.clock_moves.lock().await;
    let target = match (body.advance, body.set) {
        (Some(advance), None) => clock.after(parse_duration(&advance)?.0),
        (None, Some(set)) => {
            // Second 60 (a leap second) is refused like any malformed
            // instant: Graph's instants have none.
            let t = chrono::DateTime::parse_from_rfc3339(&set)
                .ok()
                .filter(|t| chrono::Timelike::nanosecond(t) < 1_000_000_000)
                .ok_or_else(|| {
                    GraphError::bad_request(format!(
                        "'{set}' is not an RFC 3339 instant such as 2026-01-01T09:00:00Z."
                    ))
                })?
                .with_timezone(&chrono::Utc);
            // Named in the message: the range, not the direction, is why
            // an instant such as 1969's is refused.
            if !crate::clock::in_clock_range(t) {
                return Err(GraphError::bad_request(format!(
                    "'{set}' is outside the emulator clock's range; {}.",
                    crate::clock::BackwardsError::OutOfRange
                )));
            }
            clock.after(t - crate::clock::Clock::now(&clock))
        }
        _ => {
            return Err(GraphError::bad_request(
                "Give exactly one of 'advance' (an ISO 8601 duration such as PT5M) or 'set' (an RFC 3339 instant).",
            ))
        }
    }
    .map_err(|e| GraphError::bad_request(format!("{e}.")))?;
    let now = save_and_set(&state, &clock, target).await?;
    Ok(clock_body(now))
}

/// Saves `target` as the emulator time, moves the clock there and
/// processes every transition up to it (the caller holds `clock_moves`).
async fn save_and_set(
    state: &AppState,
    clock: &ManualClock,
    target: Instant,
) -> Result<Instant, GraphError> {
    state.store.save_emulator_time(target).await?;
    let now = clock
        .set(target)
        .map_err(|e| GraphError::bad_request(format!("{e}.")))?;
    state.notifier.run_due(now).await?;
    Ok(now)
}

/// Moves the emulator clock forward to `target` (never backwards: an
/// earlier target leaves it where it is), as `POST /_presenced/clock`
/// does; answers the clock's time.
pub(crate) async fn advance_clock_to(
    state: &AppState,
    clock: &ManualClock,
    target: Instant,
) -> Result<Instant, GraphError> {
    let _one_at_a_time = state.clock_moves.lock().await;
    let now = crate::clock::Clock::now(clock);
    if target <= now {
        return Ok(now);
    }
    save_and_set(state, clock, target).await
}

/// Any authenticated caller (authorisation is per handler).
pub struct Reader(pub Arc<Principal>);

impl axum::extract::FromRequestParts<AppState> for Reader {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GraphError> {
        Ok(Reader(authenticate(parts, state).await?))
    }
}

/// The longest simulated client session name.
const MAX_CLIENT_NAME: usize = 64;

fn client_key(admin: &Admin, id: &str, name: &str) -> Result<UserKey, GraphError> {
    let user = parse_guid(id)?;
    let valid = !name.is_empty()
        && name.len() <= MAX_CLIENT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        return Err(GraphError::bad_request(format!(
            "'{name}' is not a valid client session name; use 1 to {MAX_CLIENT_NAME} letters, digits, '-', '_' or '.'."
        )));
    }
    Ok(UserKey {
        tenant: admin.0.tenant,
        user,
    })
}

/// Body of a simulated client session.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSessionBody {
    /// The client's availability.
    #[schema(value_type = Availability)]
    availability: String,
    /// The client's activity.
    #[schema(value_type = Activity)]
    activity: String,
    /// ISO 8601 duration, PT5M to PT4H; PT5M when absent.
    #[schema(example = "PT1H")]
    expiration_duration: Option<String>,
}

/// `PUT /_presenced/users/{id}/clientSessions/{name}`: creates or refreshes a
/// simulated Teams client session (e.g. `desktop` Busy/InAMeeting). It
/// aggregates like any other session. Emulator mode only (404 otherwise).
pub async fn put_client_session(
    State(state): State<AppState>,
    _emulator: Emulator,
    admin: Admin,
    GraphPath((id, name)): GraphPath<(String, String)>,
    GraphJson(body): GraphJson<ClientSessionBody>,
) -> Result<Json<Presence>, GraphError> {
    let key = client_key(&admin, &id, &name)?;
    let now = state.clock.now();
    let pair = SessionPair::parse_client(&body.availability, &body.activity)?;
    let life = session_lifetime(body.expiration_duration.as_deref())?;
    let session = Session {
        kind: SessionKind::Client,
        id: name,
        pair,
        last_active: now,
        expires_at: now + life,
    };
    let applied = state
        .service
        .apply(key, Change::UpsertSession(session), now)
        .await?;
    let e = effective(&applied.after, now);
    Ok(Json(render::presence(key.user, e, false)))
}

/// `DELETE /_presenced/users/{id}/clientSessions/{name}`: ends a simulated
/// client session (404 if there is none).
pub async fn delete_client_session(
    State(state): State<AppState>,
    _emulator: Emulator,
    admin: Admin,
    GraphPath((id, name)): GraphPath<(String, String)>,
) -> Result<axum::http::StatusCode, GraphError> {
    let key = client_key(&admin, &id, &name)?;
    let now = state.clock.now();
    let change = Change::RemoveSession {
        kind: SessionKind::Client,
        id: name,
    };
    state.service.apply(key, change, now).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /_presenced/users/{id}/presence`: the Graph resource plus the live
/// sessions behind the aggregate, for callers who may read that user.
pub async fn explain_presence(
    State(state): State<AppState>,
    Reader(principal): Reader,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<PresenceExplanation>, GraphError> {
    let user = parse_guid(&id)?;
    authorize(&principal, Operation::Read, Some(user))?;
    let now = state.clock.now();
    let facts = state
        .service
        .facts(UserKey {
            tenant: principal.tenant,
            user,
        })
        .await?;
    let e = effective(&facts, now);
    let sessions = facts
        .sessions
        .iter()
        .filter(|s| s.is_live(now))
        .map(|s| {
            let (availability, activity) = s.state_at(now);
            ExplainedSession {
                kind: match s.kind {
                    SessionKind::Application => SessionOwner::Application,
                    SessionKind::Client => SessionOwner::Client,
                },
                id: s.id.clone(),
                availability,
                activity,
                reported_availability: s.pair.availability(),
                reported_activity: s.pair.activity(),
                last_active_date_time: render::utc_timestamp(s.last_active),
                expiration_date_time: render::utc_timestamp(s.expires_at),
            }
        })
        .collect();
    let preferred_presence = facts
        .preferred
        .as_ref()
        .filter(|p| now < p.expires_at)
        .map(|p| PreferredPresence {
            availability: p.pair.availability(),
            activity: p.pair.activity(),
            expiration_date_time: render::utc_timestamp(p.expires_at),
        });
    Ok(Json(PresenceExplanation {
        presence: render::presence(user, e, principal.user() == Some(user)),
        sessions,
        preferred_presence,
        last_seen_date_time: last_seen(&facts, now).map(render::utc_timestamp),
        now: render::utc_timestamp(now),
    }))
}
