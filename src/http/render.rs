//! The presence resource as Graph renders it (SPEC §2).

use serde_json::{json, Value};
use uuid::Uuid;

use crate::clock::Instant;
use crate::domain::{format_local, EffectivePresence, StatusMessage, TimeZoneName};

/// What a missing expiry reads as, for the message's owner (SPEC §2).
const NO_EXPIRY: &str = "9999-12-31T23:59:59.9999999";

/// Renders an instant as Graph's UTC timestamp with 7 fractional digits.
pub fn utc_timestamp(t: Instant) -> String {
    format!("{}Z", format_local(t.naive_utc()))
}

fn status_message(m: &StatusMessage, owner_view: bool) -> Value {
    let mut out = json!({
        "message": { "content": m.content, "contentType": "text" },
    });
    if owner_view {
        let expiry = match m.expires_at {
            None => json!({ "dateTime": NO_EXPIRY, "timeZone": "UTC" }),
            Some(t) => {
                let zone = m
                    .expiry_zone
                    .as_deref()
                    .and_then(|z| TimeZoneName::parse(z).ok())
                    .unwrap_or_else(TimeZoneName::utc);
                json!({ "dateTime": format_local(zone.to_local(t)), "timeZone": zone.name() })
            }
        };
        out["expiryDateTime"] = expiry;
        out["publishedDateTime"] = json!(utc_timestamp(m.published_at));
    }
    out
}

/// The presence resource of `user`. `owner_view` shows the status
/// message's expiry and publication time, which only the subject sees.
pub fn presence(user: Uuid, e: &EffectivePresence, owner_view: bool) -> Value {
    let (location_type, source, place_id) = &e.work_location;
    json!({
        "id": user.to_string(),
        "availability": e.availability,
        "activity": e.activity,
        "sequenceNumber": e.sequence_number,
        "outOfOfficeSettings": { "message": null, "isOutOfOffice": false },
        "statusMessage": e.status.as_ref().map(|m| status_message(m, owner_view)),
        "workLocation": {
            "workLocationType": location_type,
            "source": source,
            "placeId": place_id,
        },
    })
}

/// [`presence`] with its `@odata.context`.
pub fn presence_entity(
    context: String,
    user: Uuid,
    e: &EffectivePresence,
    owner_view: bool,
) -> Value {
    let mut out = json!({ "@odata.context": context });
    if let (Some(obj), Value::Object(fields)) = (out.as_object_mut(), presence(user, e, owner_view))
    {
        obj.extend(fields);
    }
    out
}
