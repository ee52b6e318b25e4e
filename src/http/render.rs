//! The presence resource as Graph renders it (SPEC §2), as the typed
//! bodies of [`super::model`], and the JSON answers that carry them.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

use super::error::GraphError;
use super::model::{
    DateTimeTimeZone, ItemBody, OutOfOfficeSettings, Presence, PresenceStatusMessage, WorkLocation,
};
use crate::clock::Instant;
use crate::domain::{format_local, EffectivePresence, StatusMessage, TimeZoneName};

/// What a missing expiry reads as, for the message's owner (SPEC §2).
const NO_EXPIRY: &str = "9999-12-31T23:59:59.9999999";

/// Bytes a single presence resource takes in JSON, about: with the
/// `@odata.context` and a status message, 400 to 700.
const PRESENCE_JSON_BYTES: usize = 768;

/// `value` as a JSON response, as `axum::Json` answers it (same body, same
/// `Content-Type`), but serialized into a buffer sized for a presence
/// resource up front: axum's starts at 128 bytes and grew three times for
/// each presence read (issue #14).
pub fn json<T: Serialize>(value: &T) -> Response {
    let mut body = Vec::with_capacity(PRESENCE_JSON_BYTES);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => json_body(body),
        Err(err) => GraphError::internal()
            .with_cause(format_args!("a response did not serialize: {err}"))
            .into_response(),
    }
}

/// A single presence as a JSON response: [`json`]'s answer, written by
/// hand ([`super::presence_json`]).
pub fn presence_json(presence: &Presence) -> Response {
    let mut body = Vec::with_capacity(PRESENCE_JSON_BYTES);
    super::presence_json::write_presence(&mut body, presence);
    json_body(body)
}

/// The getPresencesByUserId answer as a JSON response, written by hand
/// ([`super::presence_json`]).
pub fn presence_collection_json(
    odata_context: &str,
    value: impl ExactSizeIterator<Item = Presence>,
) -> Response {
    let mut body = Vec::with_capacity(64 + value.len() * PRESENCE_JSON_BYTES / 2);
    super::presence_json::write_collection(&mut body, odata_context, value);
    json_body(body)
}

/// `body`, JSON, as the answer.
fn json_body(body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Renders an instant as Graph's UTC timestamp with 7 fractional digits.
pub fn utc_timestamp(t: Instant) -> String {
    format!("{}Z", format_local(t.naive_utc()))
}

fn status_message(m: &StatusMessage, owner_view: bool) -> PresenceStatusMessage {
    let expiry = owner_view.then(|| match m.expires_at {
        None => DateTimeTimeZone {
            date_time: NO_EXPIRY.to_string(),
            time_zone: "UTC".to_string(),
        },
        Some(t) => {
            let zone = m
                .expiry_zone
                .as_deref()
                .and_then(|z| TimeZoneName::parse(z).ok())
                .unwrap_or_else(TimeZoneName::utc);
            DateTimeTimeZone {
                date_time: format_local(zone.to_local(t)),
                time_zone: zone.name().to_string(),
            }
        }
    });
    PresenceStatusMessage {
        message: ItemBody {
            content: m.content.clone(),
            content_type: "text",
        },
        expiry_date_time: expiry,
        published_date_time: owner_view.then(|| utc_timestamp(m.published_at)),
    }
}

/// The presence resource of `user`. `owner_view` shows the status
/// message's expiry and publication time, which only the subject sees.
/// Takes `e` whole, so its strings move into the resource uncopied (a bulk
/// read renders hundreds).
pub fn presence(user: Uuid, e: EffectivePresence, owner_view: bool) -> Presence {
    let (location_type, source, place_id) = e.work_location;
    Presence {
        odata_context: None,
        id: user,
        availability: e.availability,
        activity: e.activity,
        sequence_number: e.sequence_number,
        out_of_office_settings: OutOfOfficeSettings {
            message: None,
            is_out_of_office: false,
        },
        status_message: e.status.as_ref().map(|m| status_message(m, owner_view)),
        work_location: WorkLocation {
            work_location_type: location_type,
            source,
            place_id,
        },
    }
}

/// [`presence`] with its `@odata.context`.
pub fn presence_entity(
    context: String,
    user: Uuid,
    e: EffectivePresence,
    owner_view: bool,
) -> Presence {
    Presence {
        odata_context: Some(context),
        ..presence(user, e, owner_view)
    }
}
