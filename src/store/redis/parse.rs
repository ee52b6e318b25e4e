//! Reading numbers, instants and keys out of Redis answers.

use uuid::Uuid;

use super::corrupt;
use crate::clock::Instant;
use crate::domain::UserKey;
use crate::store::StoreError;

/// Microseconds since the epoch, rounded up.
pub(super) fn ceil_micros(t: Instant) -> i64 {
    let micros = t.timestamp_micros();
    if t.timestamp_subsec_nanos() % 1_000 == 0 {
        micros
    } else {
        micros.saturating_add(1)
    }
}

/// Flat tenant/user pairs as user keys.
pub(super) fn user_keys(flat: &[String]) -> Result<Vec<UserKey>, StoreError> {
    flat.chunks_exact(2)
        .map(|pair| {
            Ok(UserKey {
                tenant: Uuid::parse_str(&pair[0]).map_err(corrupt)?,
                user: Uuid::parse_str(&pair[1]).map_err(corrupt)?,
            })
        })
        .collect()
}

pub(super) fn instant(micros: i64) -> Result<Instant, StoreError> {
    chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| corrupt(format!("instant {micros} out of range")))
}

pub(super) fn number<T: std::str::FromStr>(text: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| corrupt(format!("'{text}' is not a number")))
}

/// A Redis score (a float for the protocol) as exact microseconds.
pub(super) fn score_micros(text: &str) -> Result<i64, StoreError> {
    let value: f64 = number(text)?;
    Ok(value as i64)
}
