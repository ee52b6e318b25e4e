//! The bodies of the presence actions, deserialized as the server does and
//! turned into a change at an arbitrary `now` in the clock's range.
//!
//! Input: one byte choosing the body (setPresence, clearPresence,
//! setUserPreferredPresence, setStatusMessage, set…Location), 8 bytes of
//! seconds and 4 of nanoseconds (little-endian, reduced into the range),
//! then the JSON. Never panics; an accepted body makes a sane change: the
//! caller's own session, lifetimes within their bounds, a status message
//! of at most 280 characters expiring in years 1 to 9999.
#![no_main]

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use libfuzzer_sys::fuzz_target;
use presenced::clock::{earliest_instant, latest_instant};
use presenced::domain::{
    Change, ClearPresenceBody, LocationBody, SetPreferredBody, SetPresenceBody,
    SetStatusMessageBody, MAX_PLACE_ID_CHARS, MAX_STATUS_MESSAGE_CHARS, PREFERRED_MAX,
    PREFERRED_MIN, SESSION_MAX, SESSION_MIN,
};

/// The calling application (the token's `appid`).
const APP: &str = "0d8b6c2a-5a55-4d1e-9a3e-1f2b3c4d5e6f";

fn now(seconds: [u8; 8], nanos: [u8; 4]) -> DateTime<Utc> {
    let (first, last) = (earliest_instant().timestamp(), latest_instant().timestamp());
    let span = u64::try_from(last - first).expect("the range is positive") + 1;
    let offset = i64::try_from(u64::from_le_bytes(seconds) % span).expect("fits");
    let nanos = if offset == last - first {
        0 // latest_instant has no fraction
    } else {
        u32::from_le_bytes(nanos) % 1_000_000_000
    };
    DateTime::from_timestamp(first + offset, nanos).expect("in the clock's range")
}

fn within(later: DateTime<Utc>, now: DateTime<Utc>, min: TimeDelta, max: TimeDelta) -> bool {
    (min..=max).contains(&(later - now))
}

fn check(change: Change, now: DateTime<Utc>) {
    match &change {
        Change::UpsertSession(s) => {
            assert_eq!(s.id, APP);
            assert_eq!(s.last_active, now);
            assert!(
                within(s.expires_at, now, SESSION_MIN, SESSION_MAX),
                "{change:?}"
            );
        }
        Change::RemoveSession { id, .. } => assert_eq!(id, APP),
        Change::SetPreferred(p) => {
            assert_eq!(p.set_at, now);
            assert!(
                within(p.expires_at, now, PREFERRED_MIN, PREFERRED_MAX),
                "{change:?}"
            );
        }
        Change::SetStatusMessage(None) => {}
        Change::SetStatusMessage(Some(m)) => {
            assert!(m.content.chars().count() <= MAX_STATUS_MESSAGE_CHARS);
            assert!(!m.content.trim().is_empty(), "{change:?}");
            assert_eq!(m.published_at, now);
            assert_eq!(m.expires_at.is_some(), m.expiry_zone.is_some());
            if let Some(t) = m.expires_at {
                assert!(t.year() >= 1 && t <= latest_instant(), "{change:?}");
            }
        }
        Change::SetManualLocation(l) => {
            assert_eq!(l.set_at, now);
            assert!(l
                .place_id
                .as_ref()
                .is_none_or(|p| !p.is_empty() && p.chars().count() <= MAX_PLACE_ID_CHARS));
        }
        other => panic!("unexpected change {other:?}"),
    }
}

fn answer<T: serde::de::DeserializeOwned>(json: &[u8]) -> Option<T> {
    match serde_json::from_slice(json) {
        Ok(body) => Some(body),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Some((seconds, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((nanos, json)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let now = now(*seconds, *nanos);
    let result = match kind % 5 {
        0 => answer::<SetPresenceBody>(json).map(|b| b.into_change(APP, now)),
        1 => answer::<ClearPresenceBody>(json).map(|b| b.into_change(APP)),
        2 => answer::<SetPreferredBody>(json).map(|b| b.into_change(now)),
        3 => answer::<SetStatusMessageBody>(json).map(|b| b.into_change(now)),
        _ => answer::<LocationBody>(json).map(|b| b.into_layer(now).map(Change::SetManualLocation)),
    };
    match result {
        None => {}
        Some(Ok(change)) => check(change, now),
        Some(Err(e)) => assert!(!e.to_string().is_empty()),
    }
});
