//! `expirationDuration` (ISO 8601 durations): arbitrary text never panics,
//! and an accepted duration renders canonically and parses back to itself.
#![no_main]

use chrono::TimeDelta;
use libfuzzer_sys::fuzz_target;
use presenced::domain::{format_duration, parse_duration};

fuzz_target!(|text: &str| {
    let Ok(parsed) = parse_duration(text) else {
        return;
    };
    let d = parsed.0;
    // Signs are refused, so nothing parses below zero.
    assert!(d >= TimeDelta::zero(), "{text:?} parsed to {d:?}");
    let canonical = format_duration(d);
    let again = parse_duration(&canonical)
        .unwrap_or_else(|e| panic!("{text:?} → {d:?} renders {canonical:?}, refused: {e}"));
    assert_eq!(again.0, d, "{text:?} renders {canonical:?}");
    assert_eq!(format_duration(again.0), canonical);
});
