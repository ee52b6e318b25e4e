//! Strict ISO 8601 durations (`PnDTnHnMnS`), as Graph's `expirationDuration`.
//!
//! Hand-written rather than taken from a crate: the grammar is tiny, and we
//! need precise control over what is refused (e.g. the `1:00:00` that some
//! SDKs send for a timedelta) and over the message that explains it.

use chrono::TimeDelta;

use super::DomainError;

/// A parsed duration; range checks take the original text for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoDuration(pub TimeDelta);

impl IsoDuration {
    /// Checks `min ≤ self ≤ max`, naming the bounds in the error.
    pub fn within(
        self,
        text: &str,
        min: TimeDelta,
        max: TimeDelta,
    ) -> Result<TimeDelta, DomainError> {
        if self.0 < min || self.0 > max {
            return Err(DomainError::DurationOutOfRange {
                value: text.to_string(),
                min: format_duration(min),
                max: format_duration(max),
            });
        }
        Ok(self.0)
    }
}

/// Parses `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`. Years count as 365 days and
/// months as 30 (ranges checked afterwards reject them for presence anyway);
/// a fraction is allowed on seconds only. Signs, spaces, lowercase designators
/// and clock notation (`1:00:00`) are refused.
pub fn parse_duration(text: &str) -> Result<IsoDuration, DomainError> {
    let malformed = || DomainError::MalformedDuration(text.to_string());
    let rest = text.strip_prefix('P').ok_or_else(malformed)?;
    let (date_part, time_part) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    if date_part.is_empty() && time_part.is_none_or(str::is_empty) {
        return Err(malformed());
    }
    let mut total = TimeDelta::zero();
    let mut add = |value: TimeDelta| -> Result<(), DomainError> {
        total = total.checked_add(&value).ok_or_else(malformed)?;
        Ok(())
    };
    // Date designators must appear in this order, each at most once.
    let mut order = ['Y', 'M', 'W', 'D'].iter();
    for (number, unit) in components(date_part).ok_or_else(malformed)? {
        if !order.any(|u| *u == unit) || number.contains('.') {
            return Err(malformed());
        }
        let n: i64 = number.parse().map_err(|_| malformed())?;
        let days = match unit {
            'Y' => n.checked_mul(365),
            'M' => n.checked_mul(30),
            'W' => n.checked_mul(7),
            _ => Some(n),
        }
        .ok_or_else(malformed)?;
        add(TimeDelta::try_days(days).ok_or_else(malformed)?)?;
    }
    if let Some(time_part) = time_part {
        if time_part.is_empty() {
            return Err(malformed());
        }
        let mut order = ['H', 'M', 'S'].iter();
        for (number, unit) in components(time_part).ok_or_else(malformed)? {
            if !order.any(|u| *u == unit) {
                return Err(malformed());
            }
            let value = if unit == 'S' {
                seconds(number).ok_or_else(malformed)?
            } else {
                if number.contains('.') {
                    return Err(malformed());
                }
                let n: i64 = number.parse().map_err(|_| malformed())?;
                let secs = n
                    .checked_mul(if unit == 'H' { 3600 } else { 60 })
                    .ok_or_else(malformed)?;
                TimeDelta::try_seconds(secs).ok_or_else(malformed)?
            };
            add(value)?;
        }
    }
    Ok(IsoDuration(total))
}

/// Splits `12H30M` into `[("12",'H'), ("30",'M')]`; `None` if the text is
/// not a sequence of number+designator.
fn components(text: &str) -> Option<Vec<(&str, char)>> {
    let mut out = vec![];
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii_digit() || c == '.' {
            continue;
        }
        let number = &text[start..i];
        if number.is_empty() || !c.is_ascii_uppercase() {
            return None;
        }
        out.push((number, c));
        start = i + c.len_utf8();
    }
    (start == text.len()).then_some(out)
}

/// Parses seconds with an optional fraction of up to 9 digits.
fn seconds(number: &str) -> Option<TimeDelta> {
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (w, f)
        }
        Some(_) => return None,
        None => (number, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    TimeDelta::try_seconds(secs)?.checked_add(&TimeDelta::nanoseconds(nanos))
}

/// Renders a non-negative duration canonically (`P1DT2H30M`, `PT5M`, `PT0S`).
pub fn format_duration(d: TimeDelta) -> String {
    let mut out = String::from("P");
    let days = d.num_days();
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    let rest = d - TimeDelta::days(days);
    let (h, m) = (rest.num_hours(), rest.num_minutes() % 60);
    let s = rest.num_seconds() % 60;
    let nanos = (rest - TimeDelta::seconds(rest.num_seconds()))
        .num_nanoseconds()
        .unwrap_or(0);
    if h > 0 || m > 0 || s > 0 || nanos > 0 || days == 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if nanos > 0 {
            let frac = format!("{nanos:09}");
            out.push_str(&format!("{s}.{}S", frac.trim_end_matches('0')));
        } else if s > 0 || (h == 0 && m == 0) {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(text: &str) -> TimeDelta {
        parse_duration(text).unwrap().0
    }

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(ok("PT5M"), TimeDelta::minutes(5));
        assert_eq!(ok("PT4H"), TimeDelta::hours(4));
        assert_eq!(ok("PT1H30M"), TimeDelta::minutes(90));
        assert_eq!(ok("P1D"), TimeDelta::days(1));
        assert_eq!(ok("P1W"), TimeDelta::days(7));
        assert_eq!(ok("P1DT12H"), TimeDelta::hours(36));
        assert_eq!(ok("PT300S"), TimeDelta::minutes(5));
        assert_eq!(ok("PT0.5S"), TimeDelta::milliseconds(500));
        assert_eq!(ok("P1Y"), TimeDelta::days(365));
    }

    #[test]
    fn refuses_what_is_not_strict_iso_8601() {
        for bad in [
            "",
            "P",
            "PT",
            "1:00:00",
            "00:05:00",
            "5M",
            "pt5m",
            "PT5m",
            "-PT5M",
            "PT-5M",
            "PT5M ",
            " PT5M",
            "PT5",
            "PTM",
            "P1H",
            "PT1D",
            "PT5M1H",
            "P1DT",
            "PT1.5M",
            "PT.5S",
            "PT1.S",
            "P1D1D",
            "PT99999999999999999999H",
            "P5",
            "PT5M5M",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(DomainError::MalformedDuration(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_message_shows_the_expected_form() {
        let msg = parse_duration("1:00:00").unwrap_err().to_string();
        assert!(msg.contains("'1:00:00'") && msg.contains("PT5M"), "{msg}");
    }

    #[test]
    fn range_errors_name_both_bounds() {
        let d = parse_duration("PT4M").unwrap();
        let err = d
            .within("PT4M", TimeDelta::minutes(5), TimeDelta::hours(4))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "expirationDuration PT4M is out of range; it must be between PT5M and PT4H"
        );
        assert!(parse_duration("PT4H")
            .unwrap()
            .within("PT4H", TimeDelta::minutes(5), TimeDelta::hours(4))
            .is_ok());
        assert!(parse_duration("PT4H0.1S")
            .unwrap()
            .within("x", TimeDelta::minutes(5), TimeDelta::hours(4))
            .is_err());
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(TimeDelta::minutes(5)), "PT5M");
        assert_eq!(format_duration(TimeDelta::hours(4)), "PT4H");
        assert_eq!(format_duration(TimeDelta::days(30)), "P30D");
        assert_eq!(format_duration(TimeDelta::minutes(90)), "PT1H30M");
        assert_eq!(format_duration(TimeDelta::zero()), "PT0S");
        assert_eq!(format_duration(TimeDelta::milliseconds(1500)), "PT1.5S");
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_round_trips(nanos in 0i64..(400 * 86_400 * 1_000_000_000i64)) {
            let d = TimeDelta::nanoseconds(nanos);
            let text = format_duration(d);
            prop_assert_eq!(parse_duration(&text).unwrap().0, d, "{}", text);
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn parsing_component_soup_never_panics(text in "P[0-9YMWDTHS.]{0,16}") {
            let _ = parse_duration(&text);
        }
    }
}
