//! Time zones (Windows and IANA names) and Graph's offset-less local
//! date-times (`dateTimeTimeZone`).

use std::str::FromStr;

use chrono::{NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::DomainError;
use crate::clock::Instant;

/// A time zone as the caller named it, resolved to tz data. The caller's
/// spelling is kept so it can be echoed back (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName {
    name: String,
    tz: Tz,
}

impl TimeZoneName {
    /// Resolves a Windows zone name (`Pacific Standard Time`, via the CLDR
    /// mapping) or an IANA name (`America/Los_Angeles`, any case).
    pub fn parse(name: &str) -> Result<Self, DomainError> {
        let tz = if name.eq_ignore_ascii_case("UTC") {
            Some(Tz::UTC)
        } else {
            windows_timezones::WindowsTimezone::from_str(name)
                .ok()
                .and_then(|w| Tz::from_str(w.tzdb_id()).ok())
                .or_else(|| Tz::from_str_insensitive(name).ok())
        };
        match tz {
            Some(tz) => Ok(Self {
                name: name.to_string(),
                tz,
            }),
            None => Err(DomainError::UnknownTimeZone(name.to_string())),
        }
    }

    /// The zone UTC, spelled `UTC`.
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_string(),
            tz: Tz::UTC,
        }
    }

    /// The name as the caller gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instant at which the wall clock in this zone reads `local`. An
    /// ambiguous time (clocks going back) takes the earlier instant; a time
    /// that does not exist (clocks going forward) is moved forward by the
    /// gap, as Windows does.
    pub fn to_utc(&self, local: NaiveDateTime) -> Instant {
        let mut probe = local;
        for _ in 0..4 {
            if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                return t.with_timezone(&Utc);
            }
            probe += TimeDelta::minutes(30);
        }
        // No zone has a gap longer than two hours; treat the time as UTC.
        Utc.from_utc_datetime(&local)
    }

    /// The wall-clock reading of `t` in this zone.
    pub fn to_local(&self, t: Instant) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }
}

/// Parses Graph's `dateTime`: `YYYY-MM-DDTHH:MM:SS` with up to 7 fractional
/// digits and no offset.
pub fn parse_local_date_time(text: &str) -> Result<NaiveDateTime, DomainError> {
    let malformed = || DomainError::MalformedDateTime(text.to_string());
    if let Some((_, frac)) = text.split_once('.') {
        if frac.is_empty() || frac.len() > 7 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
    }
    if text.len() < 19 || text.as_bytes().get(10) != Some(&b'T') {
        return Err(malformed());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| malformed())
}

/// Renders a local date-time as Graph does: 7 fractional digits, no offset.
pub fn format_local(local: NaiveDateTime) -> String {
    let hundred_nanos = local.and_utc().timestamp_subsec_nanos() / 100;
    format!("{}.{hundred_nanos:07}", local.format("%Y-%m-%dT%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_iana_names_resolve_to_the_same_zone() {
        let win = TimeZoneName::parse("Pacific Standard Time").unwrap();
        let iana = TimeZoneName::parse("America/Los_Angeles").unwrap();
        let local = parse_local_date_time("2022-10-18T17:05:33.2079781").unwrap();
        assert_eq!(win.to_utc(local), iana.to_utc(local));
        assert_eq!(win.name(), "Pacific Standard Time");
    }

    #[test]
    fn the_seed_example_converts_to_utc_and_back() {
        let zone = TimeZoneName::parse("Pacific Standard Time").unwrap();
        let local = parse_local_date_time("2022-10-18T17:05:33.2079781").unwrap();
        let utc = zone.to_utc(local);
        // PDT is UTC-7 in October.
        assert_eq!(format_local(utc.naive_utc()), "2022-10-19T00:05:33.2079781");
        assert_eq!(
            format_local(zone.to_local(utc)),
            "2022-10-18T17:05:33.2079781"
        );
    }

    #[test]
    fn utc_and_other_windows_names_resolve() {
        for name in [
            "UTC",
            "utc",
            "W. Europe Standard Time",
            "Tokyo Standard Time",
            "europe/berlin",
            "Etc/UTC",
        ] {
            assert!(TimeZoneName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn unknown_zones_are_refused_by_name() {
        for name in ["", "Mars Standard Time", "Pacific", "PST8PDT/x"] {
            assert_eq!(
                TimeZoneName::parse(name),
                Err(DomainError::UnknownTimeZone(name.to_string()))
            );
        }
    }

    #[test]
    fn local_date_times_must_be_offset_free_with_at_most_seven_digits() {
        assert!(parse_local_date_time("2022-10-18T17:05:33").is_ok());
        assert!(parse_local_date_time("2022-10-18T17:05:33.1").is_ok());
        for bad in [
            "2022-10-18T17:05:33Z",
            "2022-10-18T17:05:33+02:00",
            "2022-10-18T17:05:33.20797812",
            "2022-10-18 17:05:33",
            "2022-10-18",
            "2022-13-18T17:05:33",
            "2022-10-18T17:05:33.",
            "yesterday",
        ] {
            assert!(parse_local_date_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nonexistent_local_times_move_forward() {
        let zone = TimeZoneName::parse("Europe/Berlin").unwrap();
        // 2026-03-29 02:30 does not exist in Berlin (clocks jump 02:00 → 03:00).
        let local = parse_local_date_time("2026-03-29T02:30:00").unwrap();
        let utc = zone.to_utc(local);
        assert_eq!(
            format_local(zone.to_local(utc)),
            "2026-03-29T03:00:00.0000000"
        );
    }
}
