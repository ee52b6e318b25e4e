//! Endpoint behaviour: every Graph operation over every path family and
//! both versions, the rules of SPEC §4, and the seed examples replayed.

use chrono::TimeDelta;

mod direct;
mod paths;
mod sessions;
mod status_location;

/// `n` minutes.
pub(super) fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}
