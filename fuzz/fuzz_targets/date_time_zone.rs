//! Graph's `dateTimeTimeZone`: a zone name (Windows or IANA) on the first
//! line, a local `dateTime` after it (without a newline, the text is tried
//! as both). Never panics; an accepted date-time renders with 7 fractional
//! digits and parses back; converting to UTC and back never lands earlier
//! than the wall-clock reading, nor more than a day later (a gap).
#![no_main]

use chrono::{Datelike, TimeDelta};
use libfuzzer_sys::fuzz_target;
use presenced::domain::{format_local, parse_local_date_time, TimeZoneName};

fuzz_target!(|text: &str| {
    let (zone_text, date_time) = text.split_once('\n').unwrap_or((text, text));
    let zone = TimeZoneName::parse(zone_text);
    match &zone {
        Ok(zone) => assert_eq!(zone.name(), zone_text),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let local = match parse_local_date_time(date_time) {
        Ok(local) => local,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(
        (0..=9999).contains(&local.year()),
        "{date_time:?} → {local}"
    );
    let rendered = format_local(local);
    assert_eq!(
        parse_local_date_time(&rendered).ok(),
        Some(local),
        "{date_time:?} renders {rendered:?}"
    );
    if let Ok(zone) = zone {
        let utc = zone.to_utc(local);
        let back = zone.to_local(utc);
        // Single and ambiguous readings come back as they were; one in a
        // gap comes back as far past the gap's end as it was past its start.
        assert!(
            back >= local && back - local <= TimeDelta::days(1),
            "{zone_text:?} {local} → {utc} → {back}"
        );
        let _ = format_local(back);
    }
});
