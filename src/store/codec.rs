//! The stored form of [`UserFacts`]: compact JSON with short keys, decoded
//! back into domain types. Kept here so the domain carries no storage
//! concerns; shared by every backend that stores bytes. `encode` and
//! `decode` are public for the benchmarks (`benches/micro.rs`).

use serde::{Deserialize, Serialize};

use crate::clock::Instant;
use crate::domain::{
    Activity, Availability, Preferred, PreferredPair, Session, SessionKind, SessionPair,
    StatusMessage, UserFacts, WorkLocation, WorkLocationLayer, WorkLocationType,
};

use super::StoreError;

#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(rename = "s", default)]
    sessions: Vec<StoredSession>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    preferred: Option<StoredPreferred>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    status: Option<StoredStatus>,
    #[serde(rename = "wm", default, skip_serializing_if = "Option::is_none")]
    manual: Option<StoredLayer>,
    #[serde(rename = "wa", default, skip_serializing_if = "Option::is_none")]
    automatic: Option<StoredLayer>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
    #[serde(rename = "ls", default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<i64>,
    #[serde(rename = "sa", default, skip_serializing_if = "Option::is_none")]
    settled_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct StoredSession {
    k: String,
    id: String,
    av: String,
    ac: String,
    /// Last active, microseconds since the epoch.
    la: i64,
    /// Expiry, microseconds since the epoch.
    ex: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredPreferred {
    av: String,
    ac: String,
    at: i64,
    ex: i64,
}

/// Status message instants are kept to the nanosecond as RFC 3339 text:
/// Graph echoes expiries with 7 fractional digits.
#[derive(Serialize, Deserialize)]
struct StoredStatus {
    c: String,
    ex: Option<String>,
    z: Option<String>,
    at: String,
}

#[derive(Serialize, Deserialize)]
struct StoredLayer {
    t: String,
    p: Option<String>,
    at: i64,
}

fn micros(t: Instant) -> i64 {
    t.timestamp_micros()
}

fn instant(us: i64) -> Result<Instant, StoreError> {
    chrono::DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("instant {us} out of range")))
}

fn precise(t: Instant) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn precise_instant(text: &str) -> Result<Instant, StoreError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| StoreError::Corrupt(format!("instant {text}")))
}

fn pair(av: &str, ac: &str) -> Result<(Availability, Activity), StoreError> {
    match (Availability::parse(av), Activity::parse(ac)) {
        (Some(av), Some(ac)) => Ok((av, ac)),
        _ => Err(StoreError::Corrupt(format!("unknown pair {av}/{ac}"))),
    }
}

/// Encodes facts (without the version, which backends store beside them).
pub fn encode(facts: &UserFacts) -> Vec<u8> {
    debug_assert!(
        !facts.unreadable,
        "unreadable facts are a read-side answer, never stored"
    );
    let layer = |l: &WorkLocationLayer| StoredLayer {
        t: l.location_type.as_str().to_string(),
        p: l.place_id.clone(),
        at: micros(l.set_at),
    };
    let stored = Stored {
        sessions: facts
            .sessions
            .iter()
            .map(|s| StoredSession {
                k: s.kind.as_str().to_string(),
                id: s.id.clone(),
                av: s.pair.availability().as_str().to_string(),
                ac: s.pair.activity().as_str().to_string(),
                la: micros(s.last_active),
                ex: micros(s.expires_at),
            })
            .collect(),
        preferred: facts.preferred.as_ref().map(|p| StoredPreferred {
            av: p.pair.availability().as_str().to_string(),
            ac: p.pair.activity().as_str().to_string(),
            at: micros(p.set_at),
            ex: micros(p.expires_at),
        }),
        status: facts.status.as_ref().map(|m| StoredStatus {
            c: m.content.clone(),
            ex: m.expires_at.map(precise),
            z: m.expiry_zone.clone(),
            at: precise(m.published_at),
        }),
        manual: facts.work_location.manual.as_ref().map(layer),
        automatic: facts.work_location.automatic.as_ref().map(layer),
        updated_at: facts.updated_at.map(micros),
        last_seen: facts.last_seen.map(micros),
        settled_at: facts.settled_at.map(micros),
    };
    serde_json::to_vec(&stored).expect("plain data always serializes")
}

/// Decodes facts stored by [`encode`], attaching `version`.
pub fn decode(bytes: &[u8], version: u64) -> Result<UserFacts, StoreError> {
    let stored: Stored =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let layer = |l: StoredLayer| -> Result<WorkLocationLayer, StoreError> {
        Ok(WorkLocationLayer {
            location_type: WorkLocationType::parse(&l.t)
                .ok_or_else(|| StoreError::Corrupt(format!("work location {}", l.t)))?,
            place_id: l.p,
            set_at: instant(l.at)?,
        })
    };
    let sessions = stored
        .sessions
        .into_iter()
        .map(|s| {
            let (av, ac) = pair(&s.av, &s.ac)?;
            Ok(Session {
                kind: SessionKind::parse(&s.k)
                    .ok_or_else(|| StoreError::Corrupt(format!("session kind {}", s.k)))?,
                id: s.id,
                pair: SessionPair::from_stored(av, ac),
                last_active: instant(s.la)?,
                expires_at: instant(s.ex)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let preferred = match stored.preferred {
        Some(p) => {
            let (av, ac) = pair(&p.av, &p.ac)?;
            Some(Preferred {
                pair: PreferredPair::new(av, ac).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                set_at: instant(p.at)?,
                expires_at: instant(p.ex)?,
            })
        }
        None => None,
    };
    let status = match stored.status {
        Some(m) => Some(StatusMessage {
            content: m.c,
            expires_at: m.ex.as_deref().map(precise_instant).transpose()?,
            expiry_zone: m.z,
            published_at: precise_instant(&m.at)?,
        }),
        None => None,
    };
    Ok(UserFacts {
        sessions,
        preferred,
        status,
        work_location: WorkLocation {
            manual: stored.manual.map(layer).transpose()?,
            automatic: stored.automatic.map(layer).transpose()?,
        },
        version,
        updated_at: stored.updated_at.map(instant).transpose()?,
        last_seen: stored.last_seen.map(instant).transpose()?,
        settled_at: stored.settled_at.map(instant).transpose()?,
        unreadable: false,
    })
}

/// What a backend answers for a user whose stored facts do not decode:
/// nothing known but the stored `version` (so sequence numbers keep moving
/// forward once a write replaces the row); `effective` reads it as
/// PresenceUnknown/PresenceUnknown.
pub(crate) fn unreadable(version: u64) -> UserFacts {
    UserFacts {
        version,
        unreadable: true,
        ..UserFacts::default()
    }
}
