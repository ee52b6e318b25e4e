//! Input strategies for JSON and request bodies (presence, preferred
//! presence, status message, location), and the checks on the changes
//! they parse into.

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use presenced::clock::{earliest_instant, latest_instant};
use presenced::domain::{
    Change, MAX_PLACE_ID_CHARS, MAX_STATUS_MESSAGE_CHARS, PREFERRED_MAX, PREFERRED_MIN,
    SESSION_MAX, SESSION_MIN,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseResult;
use serde_json::{json, Map, Value};

use super::times::{date_time_like, duration_like, zone_like};
use super::{arbitrary_text, edited, flip_case, guid_text, or_arbitrary, pick, recased};
use crate::helpers::{t0, APP};

// ---------------------------------------------------------------------------
// JSON and request bodies
// ---------------------------------------------------------------------------

const FIELD_NAMES: &[&str] = &[
    "sessionId",
    "availability",
    "activity",
    "expirationDuration",
    "statusMessage",
    "message",
    "content",
    "contentType",
    "expiryDateTime",
    "dateTime",
    "timeZone",
    "workLocationType",
    "placeId",
    "changeType",
    "notificationUrl",
    "resource",
    "expirationDateTime",
    "clientState",
    "lifecycleNotificationUrl",
    "includeResourceData",
    "encryptionCertificate",
    "encryptionCertificateId",
    "latestSupportedTlsVersion",
    "notificationQueryOptions",
    "@odata.type",
];

const VOCABULARY: &[&str] = &[
    "Available",
    "AvailableIdle",
    "AvailableInactive",
    "Away",
    "BeRightBack",
    "Busy",
    "BusyIdle",
    "DoNotDisturb",
    "InACall",
    "InAConferenceCall",
    "Inactive",
    "InAMeeting",
    "Offline",
    "OffWork",
    "OutOfOffice",
    "PresenceUnknown",
    "Presenting",
    "UrgentInterruptionsOnly",
    "",
];

fn vocabulary_like() -> BoxedStrategy<String> {
    or_arbitrary(prop_oneof![3 => recased(pick(VOCABULARY)), 1 => edited(pick(VOCABULARY))])
}

fn session_id_like() -> BoxedStrategy<String> {
    or_arbitrary(prop_oneof![
        4 => Just(APP.to_owned()),
        1 => Just(APP.to_uppercase()),
        1 => edited(Just(APP.to_owned()).boxed()),
        1 => guid_text(),
    ])
}

pub(super) fn content_like() -> BoxedStrategy<String> {
    prop_oneof![
        "(?s).{0,320}",
        "([ -~]|<b>|</b>|<|>|&amp;|&#x1F600;|&#9999999999;|&#0;|&nbsp;|&;|\\s){0,400}",
        Just("x".repeat(MAX_STATUS_MESSAGE_CHARS)),
        Just("x".repeat(MAX_STATUS_MESSAGE_CHARS + 1)),
        Just("é".repeat(MAX_STATUS_MESSAGE_CHARS)),
        Just("&amp;".repeat(MAX_STATUS_MESSAGE_CHARS + 1)),
    ]
    .boxed()
}

fn place_id_like() -> BoxedStrategy<String> {
    prop_oneof![
        "(?s).{0,20}",
        Just("x".repeat(MAX_PLACE_ID_CHARS)),
        Just("x".repeat(MAX_PLACE_ID_CHARS + 1)),
        Just("é".repeat(MAX_PLACE_ID_CHARS)),
        Just("é".repeat(MAX_PLACE_ID_CHARS + 1)),
    ]
    .boxed()
}

/// Strings any field might hold: near-misses of every kind, or anything.
fn near_miss_string() -> BoxedStrategy<String> {
    prop_oneof![
        arbitrary_text(),
        duration_like(),
        date_time_like(),
        zone_like(),
        vocabulary_like(),
        guid_text(),
    ]
    .boxed()
}

fn key_like() -> BoxedStrategy<String> {
    prop_oneof![3 => pick(FIELD_NAMES), 1 => recased(pick(FIELD_NAMES)), 1 => arbitrary_text()]
        .boxed()
}

/// Any JSON value, nested at most four deep.
pub(super) fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // NaN and infinities become null.
        any::<f64>().prop_map(Value::from),
        near_miss_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key_like(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A field value: mostly the near-miss string, sometimes any JSON; present
/// with probability `p`.
pub(super) fn field(p: f64, near: BoxedStrategy<String>) -> BoxedStrategy<Option<Value>> {
    prop::option::weighted(
        p,
        prop_oneof![4 => near.prop_map(Value::from), 1 => json_value()],
    )
    .boxed()
}

/// Up to two extra members of any name and value.
pub(super) fn extras() -> BoxedStrategy<Vec<(String, Value)>> {
    vec((key_like(), json_value()), 0..2).boxed()
}

pub(super) fn object(fields: Vec<(&str, Option<Value>)>, extra: Vec<(String, Value)>) -> Value {
    let mut map: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    map.extend(extra);
    Value::Object(map)
}

/// The pairs setPresence accepts (SPEC §4).
const SESSION_PAIRS: &[(&str, &str)] = &[
    ("Available", "Available"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    ("Away", "Away"),
    ("DoNotDisturb", "Presenting"),
];
/// The pairs setUserPreferredPresence accepts (SPEC §4).
const PREFERRED_PAIRS: &[(&str, &str)] = &[
    ("Available", "Available"),
    ("Busy", "Busy"),
    ("DoNotDisturb", "DoNotDisturb"),
    ("BeRightBack", "BeRightBack"),
    ("Away", "Away"),
    ("Offline", "OffWork"),
];

/// `availability` and `activity`: a valid pair in any case, or each a
/// near-miss.
fn pair_fields(
    valid: &'static [(&'static str, &'static str)],
) -> BoxedStrategy<(Option<Value>, Option<Value>)> {
    prop_oneof![
        2 => (select(valid), any::<u64>()).prop_map(|((av, ac), mask)| {
            (Some(json!(flip_case(av, mask))), Some(json!(flip_case(ac, mask >> 32))))
        }),
        1 => (field(0.9, vocabulary_like()), field(0.9, vocabulary_like())),
    ]
    .boxed()
}

pub(super) fn set_presence_body() -> BoxedStrategy<Value> {
    (
        field(0.9, session_id_like()),
        pair_fields(SESSION_PAIRS),
        field(0.6, duration_like()),
        extras(),
    )
        .prop_map(|(s, (av, ac), d, extra)| {
            object(
                vec![
                    ("sessionId", s),
                    ("availability", av),
                    ("activity", ac),
                    ("expirationDuration", d),
                ],
                extra,
            )
        })
        .boxed()
}

pub(super) fn set_preferred_body() -> BoxedStrategy<Value> {
    (
        pair_fields(PREFERRED_PAIRS),
        field(0.6, duration_like()),
        extras(),
    )
        .prop_map(|((av, ac), d, extra)| {
            object(
                vec![
                    ("availability", av),
                    ("activity", ac),
                    ("expirationDuration", d),
                ],
                extra,
            )
        })
        .boxed()
}

pub(super) fn status_message_body() -> BoxedStrategy<Value> {
    let message = (
        field(0.9, content_like()),
        field(
            0.5,
            or_arbitrary(recased(pick(&["text", "html", "xml", ""]))),
        ),
        extras(),
    )
        .prop_map(|(c, t, extra)| object(vec![("content", c), ("contentType", t)], extra));
    let expiry = (
        field(0.9, date_time_like()),
        field(0.7, zone_like()),
        extras(),
    )
        .prop_map(|(d, z, extra)| object(vec![("dateTime", d), ("timeZone", z)], extra));
    let inner = (
        prop::option::weighted(0.9, prop_oneof![4 => message, 1 => json_value()]),
        prop::option::weighted(0.6, prop_oneof![4 => expiry, 1 => json_value()]),
        extras(),
    )
        .prop_map(|(m, e, extra)| object(vec![("message", m), ("expiryDateTime", e)], extra));
    (
        prop::option::weighted(0.95, prop_oneof![4 => inner, 1 => json_value()]),
        extras(),
    )
        .prop_map(|(s, extra)| object(vec![("statusMessage", s)], extra))
        .boxed()
}

pub(super) fn location_body() -> BoxedStrategy<Value> {
    let kind = or_arbitrary(recased(pick(&[
        "office",
        "remote",
        "timeOff",
        "unspecified",
        "moon",
        "",
    ])));
    (field(0.9, kind), field(0.6, place_id_like()), extras())
        .prop_map(|(k, p, extra)| object(vec![("workLocationType", k), ("placeId", p)], extra))
        .boxed()
}

pub(super) fn clear_presence_body() -> BoxedStrategy<Value> {
    (field(0.9, session_id_like()), extras())
        .prop_map(|(s, extra)| object(vec![("sessionId", s)], extra))
        .boxed()
}

/// A presence-clock instant: the test start, the clock's ends, or any
/// second in between.
pub(super) fn clock_instant() -> BoxedStrategy<DateTime<Utc>> {
    let (first, last) = (earliest_instant().timestamp(), latest_instant().timestamp());
    prop_oneof![
        2 => Just(t0()),
        1 => Just(earliest_instant()),
        1 => Just(latest_instant()),
        2 => (first..=last).prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range")),
    ]
    .boxed()
}

fn lifetime_within(
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    min: TimeDelta,
    max: TimeDelta,
) -> bool {
    (min..=max).contains(&(expires_at - now))
}

/// Checks a body's change: a sane change of the right kind, or an error
/// with a message.
pub(super) fn check_change(
    result: Result<Change, impl std::fmt::Display>,
    now: DateTime<Utc>,
) -> TestCaseResult {
    let change = match result {
        Ok(change) => change,
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            return Ok(());
        }
    };
    match &change {
        Change::UpsertSession(s) => {
            prop_assert_eq!(&s.id, APP);
            prop_assert_eq!(s.last_active, now);
            prop_assert!(
                lifetime_within(s.expires_at, now, SESSION_MIN, SESSION_MAX),
                "{:?}",
                change
            );
        }
        Change::RemoveSession { id, .. } => prop_assert_eq!(id, APP),
        Change::SetPreferred(p) => {
            prop_assert_eq!(p.set_at, now);
            prop_assert!(
                lifetime_within(p.expires_at, now, PREFERRED_MIN, PREFERRED_MAX),
                "{:?}",
                change
            );
        }
        Change::SetStatusMessage(None) => {}
        Change::SetStatusMessage(Some(m)) => {
            prop_assert!(m.content.chars().count() <= MAX_STATUS_MESSAGE_CHARS);
            prop_assert!(!m.content.trim().is_empty(), "{:?}", change);
            prop_assert_eq!(m.published_at, now);
            prop_assert_eq!(m.expires_at.is_some(), m.expiry_zone.is_some());
            if let Some(t) = m.expires_at {
                prop_assert!(t.year() >= 1 && t <= latest_instant(), "{:?}", change);
            }
        }
        other => prop_assert!(false, "unexpected change {:?}", other),
    }
    Ok(())
}

/// Deserializes `body` as `T`: an error must carry a message.
pub(super) fn deserialize<T: serde::de::DeserializeOwned>(
    body: &Value,
) -> Result<Option<T>, TestCaseError> {
    match serde_json::from_value::<T>(body.clone()) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            Ok(None)
        }
    }
}
