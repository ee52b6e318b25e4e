//! Time zones (Windows and IANA names) and Graph's offset-less local
//! date-times (`dateTimeTimeZone`).

use std::str::FromStr;

use chrono::{LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc};
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

    /// The instant at which the wall clock in this zone reads `local`, by
    /// one rule for the hours a daylight-saving change makes odd: RFC 5545's
    /// and Temporal's "compatible" disambiguation (jiff's default).
    ///
    /// - Overlap (clocks go back, the reading happens twice): the earlier
    ///   instant, the first time the wall clock shows it.
    /// - Gap (clocks go forward, the reading never happens): `local` is read
    ///   with the offset in effect before the gap, which lands it as far
    ///   past the gap's end as it was past its start. Berlin on 2026-03-29
    ///   (02:00 → 03:00): 02:15 is 01:15Z and reads back 03:15; 02:30 is
    ///   01:30Z and reads back 03:30.
    pub fn to_utc(&self, local: NaiveDateTime) -> Instant {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(earlier, _later) => earlier.with_timezone(&Utc),
            LocalResult::None => {
                // As Temporal finds it: the offset a day before, which no
                // gap (at most a day, Samoa 2011) can reach past.
                let before = local
                    .checked_sub_signed(TimeDelta::days(1))
                    .map(|day_before| self.tz.offset_from_utc_datetime(&day_before).fix());
                let utc = before.and_then(|offset| {
                    local.checked_sub_signed(TimeDelta::seconds(offset.local_minus_utc().into()))
                });
                // Only a gap at the ends of chrono's range could miss; none
                // exists, so reading it as UTC is never observed.
                Utc.from_utc_datetime(&utc.unwrap_or(local))
            }
        }
    }

    /// The wall-clock reading of `t` in this zone.
    pub fn to_local(&self, t: Instant) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }
}

/// Parses Graph's `dateTime`: `YYYY-MM-DDTHH:MM:SS` with up to 7 fractional
/// digits and no offset. Second 60 (a leap second) is refused: Graph's
/// instants have none, and chrono would keep it as a nanosecond count of a
/// second or more, which renders with 8 fractional digits.
pub fn parse_local_date_time(text: &str) -> Result<NaiveDateTime, DomainError> {
    let malformed = || DomainError::MalformedDateTime(text.to_string());
    if let Some((_, frac)) = text.split_once('.') {
        if frac.is_empty() || frac.len() > 7 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
    }
    // Exactly `YYYY-MM-DDTHH:MM:SS`: chrono would also take a signed or
    // shorter year (`+999-01-01…`, `-001-…`).
    let shape = text.as_bytes().get(..19).is_some_and(|head| {
        head.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        })
    });
    if !shape {
        return Err(malformed());
    }
    let local =
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| malformed())?;
    if local.nanosecond() >= NANOS_PER_SECOND {
        return Err(malformed());
    }
    Ok(local)
}

/// Nanoseconds in a second; chrono marks a leap second by a sub-second
/// count of at least this.
const NANOS_PER_SECOND: u32 = 1_000_000_000;

#[cfg(test)]
mod shape_tests {
    use super::*;

    #[test]
    fn signed_or_short_years_are_refused() {
        for bad in [
            "+999-01-01T00:00:00",
            "-001-01-01T00:00:00",
            "-999-12-31T23:59:59",
            "999-01-01T00:00:00Z",
            "2026-1-01T00:00:00",
        ] {
            assert!(parse_local_date_time(bad).is_err(), "{bad}");
        }
        assert!(parse_local_date_time("0001-01-01T00:00:00").is_ok());
    }
}

/// Renders a local date-time as Graph does: exactly 7 fractional digits, no
/// offset. Parsing refuses leap seconds; should one arrive by another path
/// it renders as the last tick of its second (`…:59.9999999`), never as
/// second 60 or with 8 digits.
pub fn format_local(local: NaiveDateTime) -> String {
    let nanos = local.nanosecond().min(NANOS_PER_SECOND - 1);
    // `second()` is 59 during a leap second; `%S` would print 60.
    format!(
        "{}:{:02}.{:07}",
        local.format("%Y-%m-%dT%H:%M"),
        local.second(),
        nanos / 100
    )
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

    fn local(text: &str) -> NaiveDateTime {
        parse_local_date_time(text).unwrap()
    }

    fn utc(text: &str) -> Instant {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn second_60_is_refused_as_a_malformed_date_time() {
        for leap in [
            "2016-12-31T23:59:60",
            "2016-12-31T23:59:60.5",
            "2026-03-29T12:34:60.0000000",
        ] {
            assert_eq!(
                parse_local_date_time(leap),
                Err(DomainError::MalformedDateTime(leap.to_string())),
                "{leap}"
            );
        }
        assert!(parse_local_date_time("2016-12-31T23:59:59.9999999").is_ok());
    }

    #[test]
    fn local_date_times_render_with_exactly_seven_fractional_digits() {
        assert_eq!(
            format_local(local("2022-10-18T17:05:33")),
            "2022-10-18T17:05:33.0000000"
        );
        assert_eq!(
            format_local(local("2022-10-18T17:05:33.1")),
            "2022-10-18T17:05:33.1000000"
        );
        assert_eq!(
            format_local(local("2022-10-18T17:05:33.9999999")),
            "2022-10-18T17:05:33.9999999"
        );
        // Nanoseconds beyond Graph's 100 ns ticks are cut, not rounded up.
        let fine = local("2022-10-18T17:05:33")
            .with_nanosecond(999_999_999)
            .unwrap();
        assert_eq!(format_local(fine), "2022-10-18T17:05:33.9999999");
    }

    #[test]
    fn a_leap_second_from_any_path_renders_as_the_last_tick_of_its_second() {
        // chrono's own representation: second 59 with 1.5 s of nanoseconds.
        let leap = local("2016-12-31T23:59:59")
            .with_nanosecond(1_500_000_000)
            .unwrap();
        assert_eq!(format_local(leap), "2016-12-31T23:59:59.9999999");
    }

    proptest::proptest! {
        #[test]
        fn rendered_local_date_times_have_seven_digits_and_parse_back(
            secs in -62_135_596_800i64..253_402_300_800,
            nanos in 0u32..2_000_000_000,
        ) {
            let base = chrono::DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            // Leap-second nanoseconds where chrono allows them (second 59).
            let t = base
                .with_nanosecond(nanos)
                .or_else(|| base.with_nanosecond(nanos % NANOS_PER_SECOND))
                .unwrap();
            let text = format_local(t);
            let (_, frac) = text.split_once('.').unwrap();
            proptest::prop_assert_eq!(frac.len(), 7, "{}", text);
            let back = parse_local_date_time(&text).unwrap();
            proptest::prop_assert_eq!(format_local(back), text);
        }
    }

    /// Berlin (`W. Europe Standard Time`) springs forward on 2026-03-29,
    /// 02:00 CET → 03:00 CEST, and falls back on 2026-10-25, 03:00 CEST →
    /// 02:00 CET; Los Angeles (`Pacific Standard Time`) on 2026-03-08 02:00
    /// PST → 03:00 PDT and 2026-11-01 02:00 PDT → 01:00 PST.
    const BERLIN: &str = "W. Europe Standard Time";
    const LOS_ANGELES: &str = "Pacific Standard Time";

    #[test]
    fn a_time_in_a_gap_is_read_with_the_offset_before_the_gap() {
        for (zone, gap_local, instant, reads_back) in [
            (
                BERLIN,
                "2026-03-29T02:15:00",
                "2026-03-29T01:15:00Z",
                "2026-03-29T03:15:00.0000000",
            ),
            (
                BERLIN,
                "2026-03-29T02:30:00",
                "2026-03-29T01:30:00Z",
                "2026-03-29T03:30:00.0000000",
            ),
            (
                BERLIN,
                "2026-03-29T02:59:59.9999999",
                "2026-03-29T01:59:59.9999999Z",
                "2026-03-29T03:59:59.9999999",
            ),
            (
                LOS_ANGELES,
                "2026-03-08T02:00:00",
                "2026-03-08T10:00:00Z",
                "2026-03-08T03:00:00.0000000",
            ),
            (
                LOS_ANGELES,
                "2026-03-08T02:30:00",
                "2026-03-08T10:30:00Z",
                "2026-03-08T03:30:00.0000000",
            ),
        ] {
            let zone = TimeZoneName::parse(zone).unwrap();
            let t = zone.to_utc(local(gap_local));
            assert_eq!(t, utc(instant), "{gap_local} in {}", zone.name());
            assert_eq!(format_local(zone.to_local(t)), reads_back);
        }
    }

    #[test]
    fn every_time_in_a_gap_moves_forward_by_the_gap_length() {
        for (zone, start, gap_minutes) in [
            (BERLIN, "2026-03-29T02:00:00", 60),
            (LOS_ANGELES, "2026-03-08T02:00:00", 60),
            // Lord Howe Island's daylight saving is half an hour.
            ("Australia/Lord_Howe", "2026-10-04T02:00:00", 30),
            // Samoa skipped 2011-12-30 whole, moving across the date line.
            ("Pacific/Apia", "2011-12-30T00:00:00", 24 * 60),
        ] {
            let zone = TimeZoneName::parse(zone).unwrap();
            let start = local(start);
            let gap = TimeDelta::minutes(gap_minutes);
            for minute in 0..gap_minutes {
                let wall = start + TimeDelta::minutes(minute);
                assert_eq!(
                    zone.to_local(zone.to_utc(wall)),
                    wall + gap,
                    "{wall} in {}",
                    zone.name()
                );
            }
            // The first reading after the gap is where the gap's start lands.
            assert_eq!(zone.to_utc(start), zone.to_utc(start + gap));
        }
    }

    #[test]
    fn a_time_in_an_overlap_is_its_first_occurrence() {
        for (zone, twice, instant) in [
            (BERLIN, "2026-10-25T02:30:00", "2026-10-25T00:30:00Z"),
            (BERLIN, "2026-10-25T02:00:00", "2026-10-25T00:00:00Z"),
            (LOS_ANGELES, "2026-11-01T01:30:00", "2026-11-01T08:30:00Z"),
            (LOS_ANGELES, "2026-11-01T01:00:00", "2026-11-01T08:00:00Z"),
        ] {
            let zone = TimeZoneName::parse(zone).unwrap();
            let t = zone.to_utc(local(twice));
            assert_eq!(t, utc(instant), "{twice} in {}", zone.name());
            // The earlier instant reads as the given wall time.
            assert_eq!(zone.to_local(t), local(twice));
        }
    }

    #[test]
    fn times_outside_gaps_and_overlaps_convert_exactly() {
        let berlin = TimeZoneName::parse(BERLIN).unwrap();
        assert_eq!(
            berlin.to_utc(local("2026-03-29T01:59:59")),
            utc("2026-03-29T00:59:59Z")
        );
        assert_eq!(
            berlin.to_utc(local("2026-03-29T03:00:00")),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            berlin.to_utc(local("2026-10-25T03:00:00")),
            utc("2026-10-25T02:00:00Z")
        );
    }
}
