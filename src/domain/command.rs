//! The bodies of Graph's presence actions (SPEC §3) and their conversion
//! into a [`Change`], with every rule of SPEC §4 checked on the way. Wire
//! names live in the serde attributes; everything after parsing is domain.

use chrono::{Datelike, TimeDelta};
use serde::Deserialize;

use super::change::Change;
use super::duration::parse_duration;
use super::facts::{Preferred, Session, SessionKind, StatusMessage, WorkLocationLayer};
use super::status::StatusMessageInput;
use super::vocab::{Activity, Availability, PreferredPair, SessionPair, WorkLocationType};
use super::zone::{parse_local_date_time, TimeZoneName};
use super::DomainError;
use crate::clock::{latest_instant, Instant};

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
/// Longest accepted `placeId`, in characters.
pub const MAX_PLACE_ID_CHARS: usize = 256;

/// Parses an optional `expirationDuration` within `[min, max]`, `default`
/// when absent.
pub fn lifetime(
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

/// A session lifetime: setPresence and simulated client sessions.
pub fn session_lifetime(text: Option<&str>) -> Result<TimeDelta, DomainError> {
    lifetime(text, SESSION_DEFAULT, SESSION_MIN, SESSION_MAX)
}

/// Checks that `session_id` is the calling application's own (SPEC §4).
pub fn own_session(session_id: &str, app_id: &str) -> Result<(), DomainError> {
    if session_id.eq_ignore_ascii_case(app_id) {
        Ok(())
    } else {
        Err(DomainError::SessionIdMismatch {
            given: session_id.to_string(),
            app: app_id.to_string(),
        })
    }
}

/// Body of setPresence.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetPresenceBody {
    /// The calling application's id.
    #[schema(format = Uuid)]
    session_id: String,
    /// One of the valid pairs with `activity` (SPEC §4).
    #[schema(value_type = Availability)]
    availability: String,
    /// One of the valid pairs with `availability` (SPEC §4).
    #[schema(value_type = Activity)]
    activity: String,
    /// ISO 8601 duration, PT5M to PT4H; PT5M when absent.
    #[schema(example = "PT1H")]
    expiration_duration: Option<String>,
}

impl SetPresenceBody {
    /// The session `app_id` reports at `now`.
    pub fn into_change(self, app_id: &str, now: Instant) -> Result<Change, DomainError> {
        own_session(&self.session_id, app_id)?;
        let pair = SessionPair::parse(&self.availability, &self.activity)?;
        let life = session_lifetime(self.expiration_duration.as_deref())?;
        Ok(Change::UpsertSession(Session {
            kind: SessionKind::Application,
            id: app_id.to_string(),
            pair,
            last_active: now,
            expires_at: now + life,
        }))
    }
}

/// Body of clearPresence.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClearPresenceBody {
    /// The calling application's id.
    #[schema(format = Uuid)]
    session_id: String,
}

impl ClearPresenceBody {
    /// Removes `app_id`'s own session.
    pub fn into_change(self, app_id: &str) -> Result<Change, DomainError> {
        own_session(&self.session_id, app_id)?;
        Ok(Change::RemoveSession {
            kind: SessionKind::Application,
            id: app_id.to_string(),
        })
    }
}

/// Body of setUserPreferredPresence.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetPreferredBody {
    /// One of the valid preferred pairs with `activity` (SPEC §4).
    #[schema(value_type = Availability)]
    availability: String,
    /// One of the valid preferred pairs with `availability` (SPEC §4).
    #[schema(value_type = Activity)]
    activity: String,
    /// ISO 8601 duration, PT5M to P30D; the pair's default when absent.
    #[schema(example = "PT8H")]
    expiration_duration: Option<String>,
}

impl SetPreferredBody {
    /// The preferred presence set at `now`.
    pub fn into_change(self, now: Instant) -> Result<Change, DomainError> {
        let pair = PreferredPair::parse(&self.availability, &self.activity)?;
        let life = lifetime(
            self.expiration_duration.as_deref(),
            pair.default_lifetime(),
            PREFERRED_MIN,
            PREFERRED_MAX,
        )?;
        Ok(Change::SetPreferred(Preferred {
            pair,
            set_at: now,
            expires_at: now + life,
        }))
    }
}

/// Body of setStatusMessage.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetStatusMessageBody {
    /// The message and its expiry.
    #[schema(inline)]
    status_message: StatusMessageBody,
}

/// `statusMessage` of setStatusMessage.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct StatusMessageBody {
    /// The message; empty content clears it.
    #[schema(inline)]
    message: Option<ItemBody>,
    /// When it stops showing; never when absent.
    #[schema(inline)]
    expiry_date_time: Option<DateTimeTimeZone>,
}

/// Graph's `itemBody`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ItemBody {
    /// At most 280 characters of text (html is reduced to its text).
    content: Option<String>,
    /// `text` (the default) or `html`.
    #[schema(example = "text")]
    content_type: Option<String>,
}

/// Graph's `dateTimeTimeZone`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct DateTimeTimeZone {
    /// Local date and time, `YYYY-MM-DDTHH:MM:SS[.fffffff]`.
    #[schema(example = "2026-12-24T17:00:00")]
    date_time: String,
    /// An IANA or Windows zone name; UTC when absent.
    #[schema(example = "Europe/Berlin")]
    time_zone: Option<String>,
}

/// A status message's expiry as an instant and the zone name to echo;
/// `None` for no expiry. A date on 9999-12-31 in any zone is Graph's "no
/// expiry" (SPEC §2), as read back by the owner, so it round-trips.
fn status_expiry(expiry: &DateTimeTimeZone) -> Result<Option<(Instant, String)>, DomainError> {
    let zone = match expiry.time_zone.as_deref() {
        Some(name) => TimeZoneName::parse(name)?,
        None => TimeZoneName::utc(),
    };
    let local = parse_local_date_time(&expiry.date_time)?;
    if local.date() == latest_instant().date_naive() {
        return Ok(None);
    }
    let utc = zone.to_utc(local);
    if utc > latest_instant() || utc.year() < 1 {
        return Err(DomainError::ExpiryOutOfRange {
            date_time: expiry.date_time.clone(),
            zone: zone.name().to_string(),
        });
    }
    Ok(Some((utc, zone.name().to_string())))
}

impl SetStatusMessageBody {
    /// The status message published at `now`; empty content clears it.
    pub fn into_change(self, now: Instant) -> Result<Change, DomainError> {
        let message = self
            .status_message
            .message
            .ok_or(DomainError::MissingStatusMessage)?;
        let input = StatusMessageInput::parse(
            message.content.as_deref().unwrap_or(""),
            message.content_type.as_deref(),
        )?;
        let expiry = match &self.status_message.expiry_date_time {
            Some(expiry) => status_expiry(expiry)?,
            None => None,
        };
        let (expires_at, expiry_zone) = match expiry {
            Some((t, zone)) => (Some(t), Some(zone)),
            None => (None, None),
        };
        Ok(Change::SetStatusMessage((!input.is_clear()).then_some(
            StatusMessage {
                content: input.content,
                expires_at,
                expiry_zone,
                published_at: now,
            },
        )))
    }
}

/// Body of setManualLocation / setAutomaticLocation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationBody {
    /// Where the user works.
    #[schema(value_type = WorkLocationType)]
    work_location_type: String,
    /// An optional place id (building, desk), at most 256 characters.
    place_id: Option<String>,
}

impl LocationBody {
    /// The work-location layer set at `now`.
    pub fn into_layer(self, now: Instant) -> Result<WorkLocationLayer, DomainError> {
        let location_type = WorkLocationType::parse(&self.work_location_type)
            .ok_or_else(|| DomainError::UnknownWorkLocationType(self.work_location_type.clone()))?;
        if self
            .place_id
            .as_ref()
            .is_some_and(|p| p.chars().count() > MAX_PLACE_ID_CHARS)
        {
            return Err(DomainError::PlaceIdTooLong(MAX_PLACE_ID_CHARS));
        }
        Ok(WorkLocationLayer {
            location_type,
            place_id: self.place_id.filter(|p| !p.is_empty()),
            set_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Activity, Availability};
    use chrono::{TimeZone, Utc};

    fn t0() -> Instant {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    fn body<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn set_presence_makes_the_callers_session_with_the_default_lifetime() {
        let b: SetPresenceBody = body(serde_json::json!({
            "sessionId": "APP", "availability": "busy", "activity": "InACall"
        }));
        let Change::UpsertSession(s) = b.into_change("app", t0()).unwrap() else {
            panic!("not a session")
        };
        assert_eq!(s.id, "app");
        assert_eq!(s.pair.availability(), Availability::Busy);
        assert_eq!(s.pair.activity(), Activity::InACall);
        assert_eq!(s.expires_at, t0() + SESSION_DEFAULT);
    }

    #[test]
    fn set_presence_for_another_apps_session_is_refused() {
        let b: SetPresenceBody = body(serde_json::json!({
            "sessionId": "other", "availability": "Available", "activity": "Available"
        }));
        assert!(matches!(
            b.into_change("app", t0()),
            Err(DomainError::SessionIdMismatch { .. })
        ));
    }

    #[test]
    fn session_lifetimes_outside_five_minutes_to_four_hours_are_refused() {
        assert_eq!(session_lifetime(Some("PT4H")), Ok(SESSION_MAX));
        for bad in ["PT4M", "PT4H1S"] {
            assert!(matches!(
                session_lifetime(Some(bad)),
                Err(DomainError::DurationOutOfRange { .. })
            ));
        }
        assert!(matches!(
            session_lifetime(Some("1:00:00")),
            Err(DomainError::MalformedDuration(_))
        ));
    }

    #[test]
    fn preferred_presence_defaults_to_a_day_for_busy_and_bounds_explicit_lifetimes() {
        let b: SetPreferredBody =
            body(serde_json::json!({"availability": "Busy", "activity": "Busy"}));
        let Change::SetPreferred(p) = b.into_change(t0()).unwrap() else {
            panic!("not preferred")
        };
        assert_eq!(p.expires_at, t0() + TimeDelta::days(1));
        let b: SetPreferredBody = body(serde_json::json!({
            "availability": "Busy", "activity": "Busy", "expirationDuration": "P31D"
        }));
        assert!(matches!(
            b.into_change(t0()),
            Err(DomainError::DurationOutOfRange { .. })
        ));
    }

    fn status(json: serde_json::Value) -> Result<Change, DomainError> {
        body::<SetStatusMessageBody>(json).into_change(t0())
    }

    #[test]
    fn a_status_message_expiry_on_9999_12_31_means_none() {
        let change = status(serde_json::json!({"statusMessage": {
            "message": {"content": "hi"},
            "expiryDateTime": {"dateTime": "9999-12-31T23:59:59.9999999", "timeZone": "Pacific Standard Time"}
        }}))
        .unwrap();
        let Change::SetStatusMessage(Some(m)) = change else {
            panic!("not a message")
        };
        assert_eq!((m.expires_at, m.expiry_zone), (None, None));
    }

    #[test]
    fn a_status_message_expiry_is_converted_from_its_zone() {
        let change = status(serde_json::json!({"statusMessage": {
            "message": {"content": "hi"},
            "expiryDateTime": {"dateTime": "2026-01-01T10:00:00", "timeZone": "W. Europe Standard Time"}
        }}))
        .unwrap();
        let Change::SetStatusMessage(Some(m)) = change else {
            panic!("not a message")
        };
        assert_eq!(m.expires_at, Some(t0()));
        assert_eq!(m.expiry_zone.as_deref(), Some("W. Europe Standard Time"));
        assert_eq!(m.published_at, t0());
    }

    #[test]
    fn a_status_message_expiry_before_year_one_is_out_of_range() {
        let err = status(serde_json::json!({"statusMessage": {
            "message": {"content": "hi"},
            "expiryDateTime": {"dateTime": "0001-01-01T00:00:00", "timeZone": "Tokyo Standard Time"}
        }}))
        .unwrap_err();
        assert!(matches!(err, DomainError::ExpiryOutOfRange { .. }), "{err}");
    }

    #[test]
    fn a_status_message_without_message_is_refused_and_empty_content_clears() {
        assert_eq!(
            status(serde_json::json!({"statusMessage": {}})),
            Err(DomainError::MissingStatusMessage)
        );
        assert_eq!(
            status(serde_json::json!({"statusMessage": {"message": {"content": "  "}}})),
            Ok(Change::SetStatusMessage(None))
        );
    }

    #[test]
    fn a_place_id_over_256_characters_is_refused_and_an_empty_one_is_none() {
        let b: LocationBody = body(serde_json::json!({
            "workLocationType": "office", "placeId": "x".repeat(257)
        }));
        assert_eq!(
            b.into_layer(t0()),
            Err(DomainError::PlaceIdTooLong(MAX_PLACE_ID_CHARS))
        );
        let b: LocationBody =
            body(serde_json::json!({"workLocationType": "Remote", "placeId": ""}));
        let layer = b.into_layer(t0()).unwrap();
        assert_eq!(layer.location_type, WorkLocationType::Remote);
        assert_eq!(layer.place_id, None);
        let b: LocationBody = body(serde_json::json!({"workLocationType": "moon"}));
        assert!(matches!(
            b.into_layer(t0()),
            Err(DomainError::UnknownWorkLocationType(_))
        ));
    }
}
