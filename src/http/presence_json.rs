//! The presence resource written as JSON by hand, for the busiest answer.
//!
//! The derived `Serialize` of [`Presence`] goes through `serde_json`, which
//! writes every key as an escaped string (a quote, the scanned key, a
//! quote, a colon: four writes) and scans every value for characters to
//! escape: about 5,000 instructions for one presence, a sixth of a whole
//! getPresence (issue #14, BENCHMARKS.md). [`write_presence`] lays each
//! key down whole and copies a value as is when nothing in it needs
//! escaping, else hands that value to `serde_json`. Its output is the
//! derived serializer's, byte for byte: a property test compares them
//! over generated presences, quotes, backslashes and control characters
//! included. The derive stays the reference, and the OpenAPI document's.
//! [`write_collection`] does the same for getPresencesByUserId, whose 650
//! presences took about a millisecond of CPU to serialize.

use uuid::Uuid;

use super::model::{Presence, PresenceStatusMessage};

/// Appends the getPresencesByUserId answer to `out` as JSON, exactly as
/// `serde_json::to_writer(out, &PresenceCollection { odata_context, value })`
/// would, with the items taken from `value` as they come.
pub(super) fn write_collection(
    out: &mut Vec<u8>,
    odata_context: &str,
    value: impl Iterator<Item = Presence>,
) {
    out.extend_from_slice(b"{\"@odata.context\":");
    string(out, odata_context);
    out.extend_from_slice(b",\"value\":[");
    for (i, presence) in value.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_presence(out, &presence);
    }
    out.extend_from_slice(b"]}");
}

/// Appends `presence` to `out` as JSON, exactly as
/// `serde_json::to_writer(out, presence)` would.
pub(super) fn write_presence(out: &mut Vec<u8>, presence: &Presence) {
    out.push(b'{');
    if let Some(context) = &presence.odata_context {
        out.extend_from_slice(b"\"@odata.context\":");
        string(out, context);
        out.push(b',');
    }
    let mut id = Uuid::encode_buffer();
    out.extend_from_slice(b"\"id\":\"");
    out.extend_from_slice(presence.id.hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(b"\",\"availability\":");
    string(out, presence.availability.as_str());
    out.extend_from_slice(b",\"activity\":");
    string(out, presence.activity.as_str());
    out.extend_from_slice(b",\"sequenceNumber\":");
    string(out, &presence.sequence_number);
    let oof = &presence.out_of_office_settings;
    out.extend_from_slice(b",\"outOfOfficeSettings\":{\"message\":");
    optional(out, oof.message.as_deref());
    out.extend_from_slice(match oof.is_out_of_office {
        true => b",\"isOutOfOffice\":true}",
        false => b",\"isOutOfOffice\":false}",
    });
    out.extend_from_slice(b",\"statusMessage\":");
    match &presence.status_message {
        Some(message) => status_message(out, message),
        None => out.extend_from_slice(b"null"),
    }
    let location = &presence.work_location;
    out.extend_from_slice(b",\"workLocation\":{\"workLocationType\":");
    string(out, location.work_location_type.as_str());
    out.extend_from_slice(b",\"source\":");
    string(out, location.source.as_str());
    out.extend_from_slice(b",\"placeId\":");
    optional(out, location.place_id.as_deref());
    out.extend_from_slice(b"}}");
}

/// A `presenceStatusMessage`; the owner-only fields are left out when
/// absent, as the derive's `skip_serializing_if` does.
fn status_message(out: &mut Vec<u8>, message: &PresenceStatusMessage) {
    out.extend_from_slice(b"{\"message\":{\"content\":");
    string(out, &message.message.content);
    out.extend_from_slice(b",\"contentType\":");
    string(out, message.message.content_type);
    out.push(b'}');
    if let Some(expiry) = &message.expiry_date_time {
        out.extend_from_slice(b",\"expiryDateTime\":{\"dateTime\":");
        string(out, &expiry.date_time);
        out.extend_from_slice(b",\"timeZone\":");
        string(out, &expiry.time_zone);
        out.push(b'}');
    }
    if let Some(published) = &message.published_date_time {
        out.extend_from_slice(b",\"publishedDateTime\":");
        string(out, published);
    }
    out.push(b'}');
}

/// `text` as a JSON string, or `null`.
fn optional(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// `text` as a JSON string, as `serde_json` writes it: it escapes only
/// control characters, `"` and `\`, so text without them is copied as is
/// between quotes; text with them goes to `serde_json` itself.
fn string(out: &mut Vec<u8>, text: &str) {
    // A fold without an early exit, which the compiler turns into a
    // vector loop: most strings here are clean, so all of it is read anyway.
    let needs_escaping = text.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escaping {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, text).is_err() {
        // Writing a `str` into a `Vec` cannot fail; were it to, the answer
        // must still be JSON.
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::{Activity, Availability, WorkLocationSource, WorkLocationType};
    use crate::http::model::{
        DateTimeTimeZone, ItemBody, OutOfOfficeSettings, PresenceCollection, PresenceStatusMessage,
        WorkLocation,
    };

    /// Any text: quotes, backslashes, control characters and non-ASCII
    /// come up often.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-z\"\\\\\u{0}-\u{1f}\u{7f}é€😀 /<>]{0,12}",
            Just(String::new()),
        ]
    }

    fn status() -> impl Strategy<Value = PresenceStatusMessage> {
        (
            text(),
            prop::sample::select(vec!["text", "html", "a\"b"]),
            proptest::option::of((text(), text())),
            proptest::option::of(text()),
        )
            .prop_map(
                |(content, content_type, expiry, published)| PresenceStatusMessage {
                    message: ItemBody {
                        content,
                        content_type,
                    },
                    expiry_date_time: expiry.map(|(date_time, time_zone)| DateTimeTimeZone {
                        date_time,
                        time_zone,
                    }),
                    published_date_time: published,
                },
            )
    }

    fn presence() -> impl Strategy<Value = Presence> {
        (
            proptest::option::of(text()),
            any::<u128>(),
            prop::sample::select(Availability::ALL),
            prop::sample::select(Activity::ALL),
            text(),
            (proptest::option::of(text()), any::<bool>()),
            proptest::option::of(status()),
            (
                prop::sample::select(WorkLocationType::ALL),
                prop::sample::select(WorkLocationSource::ALL),
                proptest::option::of(text()),
            ),
        )
            .prop_map(
                |(context, id, availability, activity, sequence, oof, status, location)| Presence {
                    odata_context: context,
                    id: Uuid::from_u128(id),
                    availability,
                    activity,
                    sequence_number: sequence,
                    out_of_office_settings: OutOfOfficeSettings {
                        message: oof.0,
                        is_out_of_office: oof.1,
                    },
                    status_message: status,
                    work_location: WorkLocation {
                        work_location_type: location.0,
                        source: location.1,
                        place_id: location.2,
                    },
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn writes_what_the_derived_serializer_writes(presence in presence()) {
            let mut by_hand = Vec::new();
            write_presence(&mut by_hand, &presence);
            let derived = serde_json::to_vec(&presence).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&by_hand), String::from_utf8_lossy(&derived));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn writes_the_collection_the_derived_serializer_writes(
            context in text(),
            value in proptest::collection::vec(presence(), 0..4),
        ) {
            let mut by_hand = Vec::new();
            write_collection(&mut by_hand, &context, value.clone().into_iter());
            let derived = serde_json::to_vec(&PresenceCollection {
                odata_context: context,
                value,
            })
            .unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&by_hand), String::from_utf8_lossy(&derived));
        }
    }

    #[test]
    fn a_status_message_with_quotes_and_controls_is_escaped_as_serde_json_escapes_it() {
        let mut out = Vec::new();
        string(&mut out, "a \"b\" \\ \n\u{1}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string("a \"b\" \\ \n\u{1}é").unwrap()
        );
        assert_eq!(
            String::from_utf8_lossy(&{
                let mut out = Vec::new();
                string(&mut out, "plain text / é");
                out
            }),
            "\"plain text / é\""
        );
    }
}
