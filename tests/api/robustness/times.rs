//! Input strategies for durations, date-times and time-zone names
//! (Windows and IANA), near misses included.

use chrono::DateTime;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::{edited, pick, recased};

// ---------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------

const ODD_DURATIONS: &[&str] = &[
    "PT99999999999999999999H",
    "P9223372036854775807D",
    "P9223372036854775807Y",
    "PT9223372036854775807S",
    "PT9223372036854775807.999999999S",
    "PT9223372036854775808S",
    "P106751991167300D",
    "P106751991167301D",
    "P15250284452471W",
    "P1Y1M1W1DT1H1M1.000000001S",
    "PT0S",
    "PT0.0000000001S",
    "PT0.999999999S",
    "P",
    "PT",
    "-PT5M",
    "+PT5M",
    "pt5m",
    "PT5M ",
    "P1.5D",
    "PT1.S",
    "PT.5S",
    "PT5M5M",
    "PT5S5M",
    "P1M1Y",
    "P١D",
    "P１D",
    "PT5M\u{0}",
    "PT4H0.000000001S",
    "P0D",
    "PT00000000000000000000000005M",
    "P1DT",
    "PTT5M",
    "P5",
    "PT-0S",
    "PT1e3S",
    "PT1,5S",
    "P1W1D",
    "PT4H",
    "PT5M",
    "P30D",
    "PT1.5.5S",
    "PT5MT",
    "PT5Mé",
];

pub(super) fn duration_like() -> BoxedStrategy<String> {
    let number = prop_oneof![
        "[0-9]{1,3}",
        "[0-9]{15,25}",
        "[0-9]{0,3}\\.[0-9]{0,12}",
        Just(String::new()),
    ];
    let unit = prop_oneof![
        4 => "[YMWDHST]",
        1 => "[a-z.,: ]",
        1 => any::<char>().prop_map(String::from),
    ];
    let soup = ("P|[Pp+ -]{0,2}", vec((number, unit), 0..6)).prop_map(|(head, parts)| {
        parts.into_iter().fold(head, |mut text, (n, u)| {
            text.push_str(&n);
            text.push_str(&u);
            text
        })
    });
    // Mostly within setPresence's and preferred presence's ranges.
    let sane = prop_oneof![
        (0i64..=300).prop_map(|m| format!("PT{m}M")),
        (0i64..=5, 0i64..=59).prop_map(|(h, m)| format!("PT{h}H{m}M")),
        (0i64..=15_000, 0u32..1_000_000_000, 1usize..=9)
            .prop_map(|(s, n, d)| format!("PT{s}.{}S", &format!("{n:09}")[..d])),
        (0i64..=31).prop_map(|d| format!("P{d}D")),
        (0i64..=31, 0i64..=23).prop_map(|(d, h)| format!("P{d}DT{h}H")),
    ];
    prop_oneof![
        sane,
        "P([0-9]{1,20}Y)?([0-9]{1,20}M)?([0-9]{1,20}W)?([0-9]{1,20}D)?(T([0-9]{1,20}H)?([0-9]{1,20}M)?([0-9]{1,20}(\\.[0-9]{1,9})?S)?)?",
        soup,
        edited(pick(ODD_DURATIONS)),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Date-times and zones
// ---------------------------------------------------------------------------

const ODD_DATE_TIMES: &[&str] = &[
    "2016-12-31T23:59:60",
    "2016-12-31T23:59:60.5",
    "2016-12-31T23:59:60.9999999",
    "0000-01-01T00:00:00",
    "0000-12-31T23:59:59.9999999",
    "10000-01-01T00:00:00",
    "9999-12-31T23:59:59.9999999",
    "9999-12-31T23:59:59",
    "0001-01-01T00:00:00",
    "2026-02-29T00:00:00",
    "2024-02-29T24:00:00",
    "2026-01-01T00:00:00.",
    "2026-01-01T00:00:00.12345678",
    "2026-01-01T00:00:00.1.2",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00+01:00",
    "2026-01-01T00:00:00 ",
    "2026-01-01T00:00",
    "2026-1-1T0:0:0",
    "+999-01-01T00:00:00",
    "-001-01-01T00:00:00",
    "-9999-01-01T00:00:00",
    "+10000-01-01T00:00:00",
    "2026-01-01t00:00:00",
    "2026-01-01 00:00:00",
    "2026-13-01T00:00:00",
    "2026-00-10T00:00:00",
    "2026-01-32T00:00:00",
    "2026-01-01T25:00:00",
    "2026-01-01T00:61:00",
    "2026-01-01T00:00:00.-1",
    "2026-01-01T00:00:00.+1",
    "2026-01-01T00:00:00.1e3",
    "2026-03-29T02:30:00",
    "2026-10-25T02:30:00",
    "2011-12-30T12:00:00",
    "２026-01-01T00:00:00",
];

pub(super) fn date_time_like() -> BoxedStrategy<String> {
    // Year 0 to the last second of 9999, with 0 to 9 fraction digits.
    let well_formed = (
        -62_167_219_200i64..=253_402_300_799,
        0u32..1_000_000_000,
        0usize..=9,
    )
        .prop_map(|(secs, nanos, digits)| {
            let t = DateTime::from_timestamp(secs, 0).expect("in range");
            let mut text = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            if digits > 0 {
                text.push('.');
                text.push_str(&format!("{nanos:09}")[..digits]);
            }
            text
        });
    prop_oneof![
        "[+-]?[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}[Tt ][0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,10})?(Z|[+-][0-9]{2}:?[0-9]{2})?",
        well_formed.clone(),
        edited(well_formed.boxed()),
        edited(pick(ODD_DATE_TIMES)),
    ]
    .boxed()
}

const WINDOWS_ZONES: &[&str] = &[
    "Pacific Standard Time",
    "W. Europe Standard Time",
    "Tokyo Standard Time",
    "India Standard Time",
    "Nepal Standard Time",
    "Samoa Standard Time",
    "Line Islands Standard Time",
    "Dateline Standard Time",
    "UTC",
    "UTC-11",
    "UTC+12",
    "UTC+13",
    "Greenwich Standard Time",
    "Lord Howe Standard Time",
    "Chatham Islands Standard Time",
    "Morocco Standard Time",
];

/// Zones whose conversions are checked for every parsed date-time: the
/// extremes of offset, half-hour and 45-minute offsets, a skipped day.
pub(super) const SAMPLE_ZONES: &[&str] = &[
    "UTC",
    "Pacific Standard Time",
    "W. Europe Standard Time",
    "Line Islands Standard Time",
    "Dateline Standard Time",
    "Lord Howe Standard Time",
    "Pacific/Apia",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Antarctica/Troll",
];

fn iana_zone() -> BoxedStrategy<String> {
    select(chrono_tz::TZ_VARIANTS.to_vec())
        .prop_map(|tz| tz.name().to_owned())
        .boxed()
}

pub(super) fn zone_like() -> BoxedStrategy<String> {
    prop_oneof![
        recased(pick(WINDOWS_ZONES)),
        recased(iana_zone()),
        edited(pick(WINDOWS_ZONES)),
        edited(iana_zone()),
        "[A-Za-z_/+-]{0,30}",
        "Etc/GMT[+-][0-9]{1,3}",
    ]
    .boxed()
}
