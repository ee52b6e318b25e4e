//! Robustness (the Hardening issue): every parser — durations, date-times
//! and zones, the subscription `$filter`, request bodies, JWT header and
//! claims, notification URLs, networks, certificates, rates — fed arbitrary
//! and adversarial input never panics, and answers either a sane value or
//! an error with a message. Over HTTP (bodies, `Last-Event-ID`, query
//! strings, `Authorization`) arbitrary input is never a 5xx, and every 4xx
//! is a Graph error.
//!
//! Case counts are bounded so the file runs in seconds; a failure prints
//! its minimal input (no regression file is written).

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use hmac::{Hmac, Mac};
use presenced::auth::{
    bearer_token, AuthConfig, Principal, PrincipalKind, TokenVerifier, DEFAULT_AUDIENCES,
    PERSONAL_ACCOUNT_TENANT,
};
use presenced::clock::{earliest_instant, latest_instant};
use presenced::domain::{
    format_duration, format_local, parse_duration, parse_guid, parse_local_date_time,
    AllowedNetworks, Change, ChangeType, ClearPresenceBody, LocationBody, NotificationUrl,
    PresenceResource, SetPreferredBody, SetPresenceBody, SetStatusMessageBody, StatusMessageInput,
    TimeZoneName, UrlField, MAX_NOTIFICATION_URL_LENGTH, MAX_PLACE_ID_CHARS,
    MAX_STATUS_MESSAGE_CHARS, MAX_SUBSCRIPTION_USERS, PREFERRED_MAX, PREFERRED_MIN, SESSION_MAX,
    SESSION_MIN,
};
use presenced::http::throttle::RateLimit;
use presenced::notify::crypto::EncryptionCertificate;
use presenced::notify::subscriptions::CreateBody;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseResult, TestRunner};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::helpers::{reply, t0, Reply, TestServer, ALL_SCOPES, APP, SECRET};
use crate::receiver::Receiver;

/// Cases per pure-parser property.
const CASES: u32 = 256;
/// Cases per HTTP property (one server each).
const HTTP_CASES: u32 = 32;

/// `cases` cases, no regression files (a failure prints its input), and
/// shrinking bounded to 20 s.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_time: 20_000,
        ..ProptestConfig::default()
    }
}

/// Runs a property outside the `proptest!` macro (async ones), panicking
/// with the minimal failing input.
fn check<S>(cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// Text strategies
// ---------------------------------------------------------------------------

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Anything: any chars (newlines too), lossy UTF-8 bytes, printable ASCII.
fn arbitrary_text() -> BoxedStrategy<String> {
    prop_oneof![
        "(?s).{0,48}",
        vec(any::<u8>(), 0..48).prop_map(lossy),
        "[ -~]{0,48}",
    ]
    .boxed()
}

/// `near` three times in four, else anything.
fn or_arbitrary(near: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    prop_oneof![1 => arbitrary_text(), 3 => near].boxed()
}

fn pick(options: &'static [&'static str]) -> BoxedStrategy<String> {
    select(options).prop_map(str::to_owned).boxed()
}

/// Characters that trip parsers: controls, bidi and zero-width marks,
/// Unicode case and digit lookalikes, quotes, separators, astral planes.
const ODD_CHARS: &[char] = &[
    '\0',
    ' ',
    '\t',
    '\n',
    '\u{202e}',
    '\u{feff}',
    '\u{200b}',
    'ı',
    'İ',
    'K',
    'ß',
    'ſ',
    '１',
    '٣',
    '%',
    '\'',
    '"',
    '\\',
    '/',
    '.',
    ',',
    '-',
    '+',
    ':',
    'T',
    'Z',
    '😀',
    '\u{10ffff}',
];

/// `base` with up to three characters inserted, replaced or deleted.
fn edited(base: BoxedStrategy<String>) -> BoxedStrategy<String> {
    let odd = prop_oneof![3 => select(ODD_CHARS), 1 => any::<char>()];
    (base, vec((any::<usize>(), 0u8..3, odd), 0..4))
        .prop_map(|(text, edits)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (at, kind, c) in edits {
                let at = at % (chars.len() + 1);
                match kind {
                    0 => chars.insert(at, c),
                    1 if at < chars.len() => chars[at] = c,
                    _ if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ => chars.push(c),
                }
            }
            chars.into_iter().collect()
        })
        .boxed()
}

/// `text` with the ASCII case of the letters at `mask`'s set bits flipped.
fn flip_case(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| match (mask >> (i % 64)) & 1 {
            1 if c.is_ascii_uppercase() => c.to_ascii_lowercase(),
            1 => c.to_ascii_uppercase(),
            _ => c,
        })
        .collect()
}

/// `base` with the ASCII case of some letters flipped.
fn recased(base: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (base, any::<u64>())
        .prop_map(|(text, mask)| flip_case(&text, mask))
        .boxed()
}

/// GUID-ish text: canonical, uppercase, braced, simple, hex soup, other.
fn guid_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string().to_uppercase()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).braced().to_string()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).simple().to_string()),
        1 => "[0-9a-fA-F-]{30,40}",
        1 => edited(any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()).boxed()),
    ]
    .boxed()
}

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

fn duration_like() -> BoxedStrategy<String> {
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

fn date_time_like() -> BoxedStrategy<String> {
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
const SAMPLE_ZONES: &[&str] = &[
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

fn zone_like() -> BoxedStrategy<String> {
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

// ---------------------------------------------------------------------------
// Subscription resources (`$filter`)
// ---------------------------------------------------------------------------

const RESOURCE_PATHS: &[&str] = &[
    "/communications/presences",
    "communications/presences",
    "/COMMUNICATIONS/Presences",
    "/communications/presences/",
    "//communications/presences",
    "/communications/presence",
    "/communications/presences/extra",
    "/users",
    "",
];
const FILTER_KEYS: &[&str] = &[
    "$filter",
    "%24filter",
    "%24FILTER",
    "$FILTER",
    "filter",
    "$select",
    "$filter%3D",
    "%",
    "%2",
    "%zz",
    "$top",
    "",
    "%24filter%00",
    "$filter ",
    "%E2%80%AE$filter",
];
const QUOTES: &[&str] = &["'", "%27", "\"", "''", "", "%2527", "\u{2019}", "'''", "%"];
const SEPARATORS: &[&str] = &[
    ",", " , ", "%2C", "+,+", ",,", ", ", "\t,", "%20,%20", ";", "%2c",
];
const SPACES: &[&str] = &[" ", "+", "%20", "%09", "", "  ", "%2B", "\t", "%0A"];

fn filter_like() -> BoxedStrategy<String> {
    let quoted =
        (guid_text(), pick(QUOTES), pick(QUOTES)).prop_map(|(g, a, b)| format!("{a}{g}{b}"));
    let ids = prop_oneof![
        3 => vec(quoted.clone(), 0..6),
        1 => vec(quoted, 640..660),
    ];
    let head = (
        pick(SPACES),
        pick(&["id", "ID", "Id", "%69d", "idin", "i d", ""]),
        pick(SPACES),
        pick(&["in", "IN", "iN", "eq", "%69n", ""]),
        pick(SPACES),
        pick(&["(", "%28", "", "(("]),
    )
        .prop_map(|(a, b, c, d, e, f)| [a, b, c, d, e, f].concat());
    let expr = (
        head,
        ids,
        pick(SEPARATORS),
        pick(&[")", "%29", "", "))", ") and true"]),
        pick(SPACES),
    )
        .prop_map(|(head, ids, sep, close, tail)| format!("{head}{}{close}{tail}", ids.join(&sep)));
    let option = (pick(FILTER_KEYS), pick(&["=", "", "=="]), expr)
        .prop_map(|(key, eq, value)| format!("{key}{eq}{value}"));
    let query = (vec(option, 0..3), pick(&["&", "&&", ";"])).prop_map(|(o, sep)| o.join(&sep));
    let filtered = (pick(RESOURCE_PATHS), pick(&["?", "??", "/?", ""]), query)
        .prop_map(|(p, q, rest)| format!("{p}{q}{rest}"))
        .boxed();
    let single = (
        pick(RESOURCE_PATHS),
        guid_text(),
        prop::option::of(pick(&[
            "?$select=id",
            "?",
            "?$filter=id in ('x')",
            "&x",
            "/",
            "?%",
        ])),
    )
        .prop_map(|(p, g, q)| format!("{p}/{g}{}", q.unwrap_or_default()));
    let canonical = (
        vec(any::<u128>(), 1..8),
        pick(&["$filter", "%24filter"]),
        pick(&["'", "%27"]),
        pick(&[",", ", ", "%2C"]),
    )
        .prop_map(|(ids, key, quote, sep)| {
            let ids: Vec<String> = ids
                .into_iter()
                .map(|n| format!("{quote}{}{quote}", Uuid::from_u128(n)))
                .collect();
            format!("/communications/presences?{key}=id in ({})", ids.join(&sep))
        })
        .boxed();
    prop_oneof![
        3 => filtered.clone(),
        1 => single,
        1 => edited(filtered),
        1 => canonical.clone(),
        2 => edited(canonical),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Notification URLs, networks, certificates
// ---------------------------------------------------------------------------

const SCHEMES: &[&str] = &[
    "https",
    "http",
    "HTTPS",
    "HtTp",
    "ftp",
    "javascript",
    "file",
    "data",
    "ws",
    "wss",
    "",
    "h ttps",
    "https+unix",
    "xn--https",
];
const URL_SEPARATORS: &[&str] = &["://", ":", ":/", ":///", "//", ":\\\\"];
const USERINFO: &[&str] = &[
    "",
    "user@",
    "user:pass@",
    ":@",
    "@",
    ":pass@",
    "u%40@",
    "a@b@",
];
const HOSTS: &[&str] = &[
    "example.com",
    "EXAMPLE.com.",
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "[::1]",
    "[::]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[fe80::1%25eth0]",
    "[fe80::1%eth0]",
    "[::1",
    "::1",
    "localhost",
    "LOCALHOST.",
    "localhost.localdomain",
    "xn--nxasmq6b.com",
    "例え.テスト",
    "",
    "256.256.256.256",
    "a..b",
    "-a-.com",
    "%6c%6fcalhost",
    "exa mple.com",
    "[v1.x]",
    "10.0.0.1",
    "169.254.169.254",
    "0.0.0.0",
    "[2001:db8::1]",
];
const PORTS: &[&str] = &[
    "",
    ":",
    ":0",
    ":1",
    ":443",
    ":65535",
    ":65536",
    ":99999999999999999999",
    ":-1",
    ":abc",
    ":+1",
    ": 1",
];
const URL_PATHS: &[&str] = &[
    "",
    "/",
    "/hook",
    "/hook?x=1#f",
    "/%zz",
    "/%00",
    "/../..",
    "/é",
    "?q",
    "#frag",
    "/ spaces ",
];

fn url_like() -> BoxedStrategy<String> {
    let structured = (
        pick(SCHEMES),
        pick(URL_SEPARATORS),
        pick(USERINFO),
        pick(HOSTS),
        pick(PORTS),
        pick(URL_PATHS),
    )
        .prop_map(|(a, b, c, d, e, f)| [a, b, c, d, e, f].concat())
        .boxed();
    let long = (pick(&["https", "http"]), 2000usize..2100)
        .prop_map(|(scheme, n)| format!("{scheme}://example.com/{}", "a".repeat(n)));
    let sane = (
        pick(&["https", "http"]),
        pick(&["example.com", "127.0.0.1", "[::1]", "localhost", "10.0.0.1"]),
        pick(&["", ":8443", ":1"]),
        pick(&["/hook", "/", ""]),
    )
        .prop_map(|(a, b, c, d)| format!("{a}://{b}{c}{d}"))
        .boxed();
    prop_oneof![
        4 => structured.clone(),
        2 => edited(structured),
        1 => long,
        2 => sane.clone(),
        1 => edited(sane),
    ]
    .boxed()
}

fn network_like() -> BoxedStrategy<String> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..40)
            .prop_map(|(ip, prefix)| format!("{}/{prefix}", std::net::Ipv4Addr::from(ip))),
        (any::<u128>(), 0u16..140)
            .prop_map(|(ip, prefix)| format!("{}/{prefix}", std::net::Ipv6Addr::from(ip))),
        any::<[u8; 4]>().prop_map(|ip| std::net::Ipv4Addr::from(ip).to_string()),
        edited(pick(&[
            " fd00::/8 ",
            "10.0.0.0/8",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "fe80::1%eth0/64",
            "::ffff:10.0.0.0/104",
            "0.0.0.0/0",
            "::/0",
            "1.2.3.4/08",
            "1.2.3",
            "[::1]/128",
            "10.0.0.0 / 8",
        ])),
    ]
    .boxed()
}

const CERT_2048: &str = include_str!("../fixtures/notify-rsa2048.cert.pem");
const CERT_1024: &str = include_str!("../fixtures/notify-rsa1024.cert.pem");
const CERT_EC: &str = include_str!("../fixtures/notify-ec.cert.pem");

/// The DER inside a PEM certificate.
fn der_of(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    STANDARD.decode(body).unwrap()
}

fn pem_of(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// Real certificates with bytes flipped, inserted, cut or appended, as
/// base64, PEM or spaced base64; random bytes; PEM fragments.
fn certificate_like() -> BoxedStrategy<String> {
    let mutated = (
        0usize..3,
        vec((any::<usize>(), any::<u8>(), 0u8..4), 0..4),
        0u8..3,
    )
        .prop_map(|(which, edits, form)| {
            let mut der = der_of([CERT_2048, CERT_1024, CERT_EC][which]);
            for (at, byte, kind) in edits {
                let at = at % (der.len() + 1);
                match kind {
                    0 => der.insert(at, byte),
                    1 if at < der.len() => der[at] ^= byte.max(1),
                    2 => der.truncate(at),
                    _ => der.push(byte),
                }
            }
            match form {
                0 => STANDARD.encode(&der),
                1 => pem_of(&der),
                _ => STANDARD
                    .encode(&der)
                    .as_bytes()
                    .chunks(10)
                    .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
                    .collect::<Vec<_>>()
                    .join(" \r\n"),
            }
        });
    prop_oneof![
        4 => mutated,
        1 => vec(any::<u8>(), 0..512).prop_map(|b| STANDARD.encode(b)),
        1 => vec(any::<u8>(), 0..512).prop_map(|b| pem_of(&b)),
        1 => arbitrary_text(),
        1 => pick(&[
            "",
            "=",
            "====",
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----",
            "-----END CERTIFICATE-----\nAAAA\n-----BEGIN CERTIFICATE-----",
            "MA==",
            "MIIB",
        ]),
        1 => Just(format!("{CERT_2048}{CERT_2048}")),
        1 => Just(format!("{CERT_2048}trailing")),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// JSON and request bodies
// ---------------------------------------------------------------------------

const FIELD_NAMES: &[&str] = &[
    "sessionId",
    "availability",
    "activity",
    "expirationDuration",
    "statusMessage",
    "message",
    "content",
    "contentType",
    "expiryDateTime",
    "dateTime",
    "timeZone",
    "workLocationType",
    "placeId",
    "changeType",
    "notificationUrl",
    "resource",
    "expirationDateTime",
    "clientState",
    "lifecycleNotificationUrl",
    "includeResourceData",
    "encryptionCertificate",
    "encryptionCertificateId",
    "latestSupportedTlsVersion",
    "notificationQueryOptions",
    "@odata.type",
];

const VOCABULARY: &[&str] = &[
    "Available",
    "AvailableIdle",
    "AvailableInactive",
    "Away",
    "BeRightBack",
    "Busy",
    "BusyIdle",
    "DoNotDisturb",
    "InACall",
    "InAConferenceCall",
    "Inactive",
    "InAMeeting",
    "Offline",
    "OffWork",
    "OutOfOffice",
    "PresenceUnknown",
    "Presenting",
    "UrgentInterruptionsOnly",
    "",
];

fn vocabulary_like() -> BoxedStrategy<String> {
    or_arbitrary(prop_oneof![3 => recased(pick(VOCABULARY)), 1 => edited(pick(VOCABULARY))])
}

fn session_id_like() -> BoxedStrategy<String> {
    or_arbitrary(prop_oneof![
        4 => Just(APP.to_owned()),
        1 => Just(APP.to_uppercase()),
        1 => edited(Just(APP.to_owned()).boxed()),
        1 => guid_text(),
    ])
}

fn content_like() -> BoxedStrategy<String> {
    prop_oneof![
        "(?s).{0,320}",
        "([ -~]|<b>|</b>|<|>|&amp;|&#x1F600;|&#9999999999;|&#0;|&nbsp;|&;|\\s){0,400}",
        Just("x".repeat(MAX_STATUS_MESSAGE_CHARS)),
        Just("x".repeat(MAX_STATUS_MESSAGE_CHARS + 1)),
        Just("é".repeat(MAX_STATUS_MESSAGE_CHARS)),
        Just("&amp;".repeat(MAX_STATUS_MESSAGE_CHARS + 1)),
    ]
    .boxed()
}

fn place_id_like() -> BoxedStrategy<String> {
    prop_oneof![
        "(?s).{0,20}",
        Just("x".repeat(MAX_PLACE_ID_CHARS)),
        Just("x".repeat(MAX_PLACE_ID_CHARS + 1)),
        Just("é".repeat(MAX_PLACE_ID_CHARS)),
        Just("é".repeat(MAX_PLACE_ID_CHARS + 1)),
    ]
    .boxed()
}

/// Strings any field might hold: near-misses of every kind, or anything.
fn near_miss_string() -> BoxedStrategy<String> {
    prop_oneof![
        arbitrary_text(),
        duration_like(),
        date_time_like(),
        zone_like(),
        vocabulary_like(),
        guid_text(),
    ]
    .boxed()
}

fn key_like() -> BoxedStrategy<String> {
    prop_oneof![3 => pick(FIELD_NAMES), 1 => recased(pick(FIELD_NAMES)), 1 => arbitrary_text()]
        .boxed()
}

/// Any JSON value, nested at most four deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // NaN and infinities become null.
        any::<f64>().prop_map(Value::from),
        near_miss_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key_like(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A field value: mostly the near-miss string, sometimes any JSON; present
/// with probability `p`.
fn field(p: f64, near: BoxedStrategy<String>) -> BoxedStrategy<Option<Value>> {
    prop::option::weighted(
        p,
        prop_oneof![4 => near.prop_map(Value::from), 1 => json_value()],
    )
    .boxed()
}

/// Up to two extra members of any name and value.
fn extras() -> BoxedStrategy<Vec<(String, Value)>> {
    vec((key_like(), json_value()), 0..2).boxed()
}

fn object(fields: Vec<(&str, Option<Value>)>, extra: Vec<(String, Value)>) -> Value {
    let mut map: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    map.extend(extra);
    Value::Object(map)
}

/// The pairs setPresence accepts (SPEC §4).
const SESSION_PAIRS: &[(&str, &str)] = &[
    ("Available", "Available"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    ("Away", "Away"),
    ("DoNotDisturb", "Presenting"),
];
/// The pairs setUserPreferredPresence accepts (SPEC §4).
const PREFERRED_PAIRS: &[(&str, &str)] = &[
    ("Available", "Available"),
    ("Busy", "Busy"),
    ("DoNotDisturb", "DoNotDisturb"),
    ("BeRightBack", "BeRightBack"),
    ("Away", "Away"),
    ("Offline", "OffWork"),
];

/// `availability` and `activity`: a valid pair in any case, or each a
/// near-miss.
fn pair_fields(
    valid: &'static [(&'static str, &'static str)],
) -> BoxedStrategy<(Option<Value>, Option<Value>)> {
    prop_oneof![
        2 => (select(valid), any::<u64>()).prop_map(|((av, ac), mask)| {
            (Some(json!(flip_case(av, mask))), Some(json!(flip_case(ac, mask >> 32))))
        }),
        1 => (field(0.9, vocabulary_like()), field(0.9, vocabulary_like())),
    ]
    .boxed()
}

fn set_presence_body() -> BoxedStrategy<Value> {
    (
        field(0.9, session_id_like()),
        pair_fields(SESSION_PAIRS),
        field(0.6, duration_like()),
        extras(),
    )
        .prop_map(|(s, (av, ac), d, extra)| {
            object(
                vec![
                    ("sessionId", s),
                    ("availability", av),
                    ("activity", ac),
                    ("expirationDuration", d),
                ],
                extra,
            )
        })
        .boxed()
}

fn set_preferred_body() -> BoxedStrategy<Value> {
    (
        pair_fields(PREFERRED_PAIRS),
        field(0.6, duration_like()),
        extras(),
    )
        .prop_map(|((av, ac), d, extra)| {
            object(
                vec![
                    ("availability", av),
                    ("activity", ac),
                    ("expirationDuration", d),
                ],
                extra,
            )
        })
        .boxed()
}

fn status_message_body() -> BoxedStrategy<Value> {
    let message = (
        field(0.9, content_like()),
        field(
            0.5,
            or_arbitrary(recased(pick(&["text", "html", "xml", ""]))),
        ),
        extras(),
    )
        .prop_map(|(c, t, extra)| object(vec![("content", c), ("contentType", t)], extra));
    let expiry = (
        field(0.9, date_time_like()),
        field(0.7, zone_like()),
        extras(),
    )
        .prop_map(|(d, z, extra)| object(vec![("dateTime", d), ("timeZone", z)], extra));
    let inner = (
        prop::option::weighted(0.9, prop_oneof![4 => message, 1 => json_value()]),
        prop::option::weighted(0.6, prop_oneof![4 => expiry, 1 => json_value()]),
        extras(),
    )
        .prop_map(|(m, e, extra)| object(vec![("message", m), ("expiryDateTime", e)], extra));
    (
        prop::option::weighted(0.95, prop_oneof![4 => inner, 1 => json_value()]),
        extras(),
    )
        .prop_map(|(s, extra)| object(vec![("statusMessage", s)], extra))
        .boxed()
}

fn location_body() -> BoxedStrategy<Value> {
    let kind = or_arbitrary(recased(pick(&[
        "office",
        "remote",
        "timeOff",
        "unspecified",
        "moon",
        "",
    ])));
    (field(0.9, kind), field(0.6, place_id_like()), extras())
        .prop_map(|(k, p, extra)| object(vec![("workLocationType", k), ("placeId", p)], extra))
        .boxed()
}

fn clear_presence_body() -> BoxedStrategy<Value> {
    (field(0.9, session_id_like()), extras())
        .prop_map(|(s, extra)| object(vec![("sessionId", s)], extra))
        .boxed()
}

/// A presence-clock instant: the test start, the clock's ends, or any
/// second in between.
fn clock_instant() -> BoxedStrategy<DateTime<Utc>> {
    let (first, last) = (earliest_instant().timestamp(), latest_instant().timestamp());
    prop_oneof![
        2 => Just(t0()),
        1 => Just(earliest_instant()),
        1 => Just(latest_instant()),
        2 => (first..=last).prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range")),
    ]
    .boxed()
}

fn lifetime_within(
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    min: TimeDelta,
    max: TimeDelta,
) -> bool {
    (min..=max).contains(&(expires_at - now))
}

/// Checks a body's change: a sane change of the right kind, or an error
/// with a message.
fn check_change(
    result: Result<Change, impl std::fmt::Display>,
    now: DateTime<Utc>,
) -> TestCaseResult {
    let change = match result {
        Ok(change) => change,
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            return Ok(());
        }
    };
    match &change {
        Change::UpsertSession(s) => {
            prop_assert_eq!(&s.id, APP);
            prop_assert_eq!(s.last_active, now);
            prop_assert!(
                lifetime_within(s.expires_at, now, SESSION_MIN, SESSION_MAX),
                "{:?}",
                change
            );
        }
        Change::RemoveSession { id, .. } => prop_assert_eq!(id, APP),
        Change::SetPreferred(p) => {
            prop_assert_eq!(p.set_at, now);
            prop_assert!(
                lifetime_within(p.expires_at, now, PREFERRED_MIN, PREFERRED_MAX),
                "{:?}",
                change
            );
        }
        Change::SetStatusMessage(None) => {}
        Change::SetStatusMessage(Some(m)) => {
            prop_assert!(m.content.chars().count() <= MAX_STATUS_MESSAGE_CHARS);
            prop_assert!(!m.content.trim().is_empty(), "{:?}", change);
            prop_assert_eq!(m.published_at, now);
            prop_assert_eq!(m.expires_at.is_some(), m.expiry_zone.is_some());
            if let Some(t) = m.expires_at {
                prop_assert!(t.year() >= 1 && t <= latest_instant(), "{:?}", change);
            }
        }
        other => prop_assert!(false, "unexpected change {:?}", other),
    }
    Ok(())
}

/// Deserializes `body` as `T`: an error must carry a message.
fn deserialize<T: serde::de::DeserializeOwned>(body: &Value) -> Result<Option<T>, TestCaseError> {
    match serde_json::from_value::<T>(body.clone()) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------
// JWTs
// ---------------------------------------------------------------------------

/// The instant tokens are verified at.
fn verify_now() -> DateTime<Utc> {
    t0()
}

/// `header.claims.HMAC-SHA256(secret)`, all base64url.
fn sign(header: &str, claims: &str, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn header_text() -> BoxedStrategy<String> {
    let alg = prop_oneof![
        4 => Just(json!("HS256")),
        2 => pick(&[
            "hs256", "HS256 ", "none", "None", "RS256", "ES256", "HS384", "HS512", "PS256",
            "EdDSA", "", "HS256\u{0}",
        ])
        .prop_map(Value::from),
        1 => json_value(),
    ];
    let kid = prop::option::weighted(
        0.3,
        prop_oneof![arbitrary_text().prop_map(Value::from), json_value()],
    );
    let crit = prop::option::weighted(
        0.2,
        prop_oneof![
            Just(json!(["exp"])),
            Just(json!([])),
            Just(Value::Null),
            json_value()
        ],
    );
    let typ = prop::option::weighted(0.5, prop_oneof![Just(json!("JWT")), json_value()]);
    let structured = (prop::option::weighted(0.95, alg), kid, crit, typ, extras()).prop_map(
        |(alg, kid, crit, typ, extra)| {
            object(
                vec![("alg", alg), ("kid", kid), ("crit", crit), ("typ", typ)],
                extra,
            )
            .to_string()
        },
    );
    let sound = json!({"alg": "HS256", "typ": "JWT"});
    let odd = prop_oneof![
        2 => pick(&["HS256", "none", "RS256", "JWT", ""]).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(json!(["exp"])),
        1 => arbitrary_text().prop_map(Value::from),
        1 => json_value(),
    ];
    let keys = &["alg", "typ", "kid", "crit", "jku", "x5u", "b64", "cty"];
    prop_oneof![
        4 => mutated(sound, keys, odd.boxed()),
        4 => structured,
        1 => json_value().prop_map(|v| v.to_string()),
        1 => arbitrary_text(),
        1 => pick(&[
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"alg":"none","alg":"HS256"}"#,
            r#"{"alg":"HS256""#,
            "{}",
            "null",
            "[]",
            r#"{"alg":"HS256","crit":null}"#,
            r#"{"alg":"HS256","kid":null}"#,
            r#"{"alg":"HS256","kid":"\ud800"}"#,
            r#"{"alg":"HS256","typ":7}"#,
            r#"{"alg":"HS256","jku":"https://attacker.example/jwks"}"#,
            r#" {"alg":"HS256"} "#,
        ]),
    ]
    .boxed()
}

/// `sound` with up to three members set to `odd` values or removed.
fn mutated(
    sound: Value,
    keys: &'static [&'static str],
    odd: BoxedStrategy<Value>,
) -> BoxedStrategy<String> {
    vec((select(keys), prop::option::weighted(0.8, odd)), 0..4)
        .prop_map(move |edits| {
            let mut object = sound.clone();
            for (key, value) in edits {
                match value {
                    Some(value) => object[key] = value,
                    None => {
                        object.as_object_mut().map(|o| o.remove(key));
                    }
                }
            }
            object.to_string()
        })
        .boxed()
}

/// Claims with every field optional and of any type, times near `now` or
/// huge; or sound claims with a few members changed or removed.
fn claims_text() -> BoxedStrategy<String> {
    prop_oneof![odd_claims(), mutated_claims()].boxed()
}

fn mutated_claims() -> BoxedStrategy<String> {
    let now = verify_now().timestamp();
    let keys = &[
        "tid", "oid", "appid", "azp", "scp", "roles", "aud", "iss", "exp", "nbf", "iat",
    ];
    let odd = prop_oneof![
        2 => select(vec![
            json!(now - 61),
            json!(now - 60),
            json!(now - 59),
            json!(now + 59),
            json!(now + 60),
            json!(now + 61),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1e300),
            json!(-1e300),
            json!(now as f64 - 59.5),
            json!(now as f64 + 60.5),
            json!(PERSONAL_ACCOUNT_TENANT.to_string()),
            json!(APP),
            json!(""),
            json!(ALL_SCOPES),
            json!(["Presence.Read.All"]),
            json!(DEFAULT_AUDIENCES[2]),
            json!(["elsewhere", DEFAULT_AUDIENCES[1]]),
        ]),
        1 => guid_text().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => json_value(),
    ]
    .boxed();
    (any::<u128>(), any::<u128>(), any::<bool>())
        .prop_flat_map(move |(tenant, user, delegated)| {
            let mut sound = json!({
                "tid": Uuid::from_u128(tenant).to_string(),
                "appid": APP,
                "aud": DEFAULT_AUDIENCES[0],
                "iss": format!("https://sts.windows.net/{}/", Uuid::from_u128(tenant)),
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
            });
            if delegated {
                sound["oid"] = json!(Uuid::from_u128(user).to_string());
                sound["scp"] = json!(ALL_SCOPES);
            } else {
                sound["roles"] = json!(["Presence.Read.All"]);
            }
            mutated(sound, keys, odd.clone())
        })
        .boxed()
}

fn odd_claims() -> BoxedStrategy<String> {
    let now = verify_now().timestamp();
    let guid = prop_oneof![
        4 => any::<u128>().prop_map(|n| json!(Uuid::from_u128(n).to_string())),
        1 => Just(json!(PERSONAL_ACCOUNT_TENANT.to_string())),
        1 => guid_text().prop_map(Value::from),
        1 => json_value(),
    ];
    let time = prop_oneof![
        4 => (-7200i64..7200).prop_map(move |d| json!(now + d)),
        2 => select(vec![
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1e300),
            json!(-1e300),
            json!(f64::MAX),
            json!(f64::MIN_POSITIVE),
            json!(0.5),
            json!(now as f64 + 0.999),
            json!(-0.0),
            json!("1767258000"),
        ]),
        1 => any::<f64>().prop_map(Value::from),
        1 => json_value(),
    ];
    let aud = prop_oneof![
        4 => Just(json!(DEFAULT_AUDIENCES[0])),
        1 => select(DEFAULT_AUDIENCES.to_vec()).prop_map(|a| json!(["elsewhere", a])),
        1 => Just(json!(["elsewhere"])),
        1 => Just(json!([DEFAULT_AUDIENCES[0], 7])),
        1 => json_value(),
    ];
    let text = |common: &'static str| {
        prop_oneof![
            4 => Just(json!(common)),
            1 => Just(json!("")),
            1 => arbitrary_text().prop_map(Value::from),
            1 => json_value(),
        ]
    };
    let roles = prop_oneof![
        Just(json!(["Presence.Read.All"])),
        Just(json!([])),
        Just(json!("Presence.Read.All")),
        Just(json!(["Presence.Read.All", 1])),
        json_value(),
    ];
    let some = |p: f64, s: BoxedStrategy<Value>| prop::option::weighted(p, s);
    (
        (
            some(0.9, guid.clone().boxed()),
            some(0.7, guid.boxed()),
            some(0.9, text(APP).boxed()),
            some(0.2, text(APP).boxed()),
            some(0.6, text(ALL_SCOPES).boxed()),
            some(0.4, roles.boxed()),
        ),
        (
            some(0.9, aud.boxed()),
            some(0.5, text("https://sts.windows.net/").boxed()),
            some(0.9, time.clone().boxed()),
            some(0.6, time.clone().boxed()),
            some(0.4, time.boxed()),
            extras(),
        ),
    )
        .prop_map(
            |((tid, oid, appid, azp, scp, roles), (aud, iss, exp, nbf, iat, extra))| {
                object(
                    vec![
                        ("tid", tid),
                        ("oid", oid),
                        ("appid", appid),
                        ("azp", azp),
                        ("scp", scp),
                        ("roles", roles),
                        ("aud", aud),
                        ("iss", iss),
                        ("exp", exp),
                        ("nbf", nbf),
                        ("iat", iat),
                    ],
                    extra,
                )
                .to_string()
            },
        )
        .boxed()
}

/// Claims text written by hand, so numbers can be what serializers never
/// write: out of range, negative zero, hex, words.
fn raw_claims_text() -> BoxedStrategy<String> {
    let now = verify_now().timestamp();
    let number = prop_oneof![
        pick(&[
            "1e999",
            "-1e999",
            "1e400",
            "18446744073709551616",
            "18446744073709551615",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999999999999999999",
            "-0",
            "0.5",
            "1E+2",
            "1.7976931348623157e308",
            "4.9e-324",
            "1e-400",
            "0x10",
            "NaN",
            "Infinity",
            "-Infinity",
            "1_000",
            "",
            "\"1\"",
            "null",
            "true",
            "[]",
            "{}",
        ]),
        "-?[0-9]{1,40}",
        "[0-9]{1,3}\\.[0-9]{1,30}(e[+-]?[0-9]{1,4})?",
        (now - 100..now + 100).prop_map(|n| n.to_string()),
        Just((now + 3600).to_string()),
    ];
    let tenant = Uuid::from_u128(0x1234);
    let user = Uuid::from_u128(0x5678);
    (number.clone(), number)
        .prop_map(move |(exp, nbf)| {
            format!(
                r#"{{"tid":"{tenant}","oid":"{user}","appid":"{APP}","scp":"{ALL_SCOPES}","aud":"{}","iss":"x","exp":{exp},"nbf":{nbf}}}"#,
                DEFAULT_AUDIENCES[0]
            )
        })
        .boxed()
}

/// Checks that an accepted token deserved it: its header names HS256 and
/// no critical extension, and its claims are in time, for Graph, of a
/// work tenant, with an application and a user or roles — as `principal`
/// reports them.
fn deserved(header: &str, claims: &str, p: &Principal) -> TestCaseResult {
    let header: Map<String, Value> = match serde_json::from_str(header) {
        Ok(h) => h,
        Err(e) => return Err(TestCaseError::fail(format!("header is not an object: {e}"))),
    };
    prop_assert_eq!(header.get("alg"), Some(&json!("HS256")));
    prop_assert!(!header.contains_key("crit"));
    prop_assert!(matches!(
        header.get("kid"),
        None | Some(Value::Null) | Some(Value::String(_))
    ));
    let claims: Map<String, Value> = match serde_json::from_str(claims) {
        Ok(c) => c,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "claims are not an object: {e}"
            )))
        }
    };
    let now = verify_now().timestamp() as f64;
    let exp = claims.get("exp").and_then(Value::as_f64);
    prop_assert!(exp.is_some_and(|exp| exp + 60.0 > now), "exp {:?}", exp);
    match claims.get("nbf") {
        None | Some(Value::Null) => {}
        Some(nbf) => prop_assert!(
            nbf.as_f64().is_some_and(|nbf| nbf.floor() - 60.0 <= now),
            "nbf {}",
            nbf
        ),
    }
    let accepted = |v: &Value| v.as_str().is_some_and(|a| DEFAULT_AUDIENCES.contains(&a));
    let aud = claims.get("aud");
    prop_assert!(
        aud.is_some_and(|a| accepted(a) || a.as_array().is_some_and(|l| l.iter().any(accepted))),
        "aud {:?}",
        aud
    );
    let tid = claims
        .get("tid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    prop_assert!(
        tid.eq_ignore_ascii_case(&p.tenant.to_string()),
        "tid {}",
        tid
    );
    prop_assert_ne!(p.tenant, PERSONAL_ACCOUNT_TENANT);
    let app = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    prop_assert_eq!(Some(p.app_id.as_str()), app("appid").or(app("azp")));
    match (claims.get("scp").and_then(Value::as_str), p.kind) {
        (Some(scp), PrincipalKind::Delegated { user }) => {
            let oid = claims
                .get("oid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            prop_assert!(oid.eq_ignore_ascii_case(&user.to_string()), "oid {}", oid);
            let scopes: Vec<&str> = scp.split_whitespace().collect();
            prop_assert_eq!(&p.scopes, &scopes);
        }
        (None, PrincipalKind::Application) => {
            prop_assert!(claims.get("roles").is_some_and(Value::is_array));
        }
        (scp, kind) => prop_assert!(false, "scp {:?} gave {:?}", scp, kind),
    }
    Ok(())
}

/// Tokens that are not signed with the server's secret: arbitrary text,
/// base64url triples, odd parts with random, empty, foreign-key or `none`
/// signatures, too many or too few parts, oversized.
fn unsigned_token() -> BoxedStrategy<String> {
    let parts = (header_text(), claims_text());
    let foreign = parts
        .clone()
        .prop_map(|(h, c)| sign(&h, &c, b"not-the-secret"));
    let random_signature = (parts.clone(), vec(any::<u8>(), 0..64)).prop_map(|((h, c), s)| {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(h),
            URL_SAFE_NO_PAD.encode(c),
            URL_SAFE_NO_PAD.encode(s)
        )
    });
    let unsigned = parts.prop_map(|(h, c)| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(h),
            URL_SAFE_NO_PAD.encode(c)
        )
    });
    prop_oneof![
        arbitrary_text(),
        "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,60}",
        "[A-Za-z0-9_=+/-]{0,40}(\\.[A-Za-z0-9_=+/-]{0,40}){0,5}",
        foreign,
        random_signature,
        unsigned,
        (1usize..5).prop_map(|n| vec!["A".repeat(11_000); n].join(".")),
    ]
    .boxed()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn hs256_verifier(rt: &tokio::runtime::Runtime) -> TokenVerifier {
    rt.block_on(TokenVerifier::new(AuthConfig {
        hs256_secret: Some(SECRET.to_vec()),
        ..AuthConfig::default()
    }))
    .unwrap()
}

// ---------------------------------------------------------------------------
// Pure parsers
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn arbitrary_durations_never_panic(text in or_arbitrary(duration_like())) {
        match parse_duration(&text) {
            Ok(d) => {
                prop_assert!(d.0 >= TimeDelta::zero(), "{:?}", d);
                let canonical = format_duration(d.0);
                prop_assert_eq!(
                    parse_duration(&canonical).map(|c| c.0),
                    Ok(d.0),
                    "{} renders as {}",
                    text,
                    canonical
                );
                match d.within(&text, SESSION_MIN, SESSION_MAX) {
                    Ok(t) => prop_assert!((SESSION_MIN..=SESSION_MAX).contains(&t)),
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_local_date_times_never_panic(text in or_arbitrary(date_time_like())) {
        match parse_local_date_time(&text) {
            Ok(local) => {
                prop_assert!(local.nanosecond() < 1_000_000_000, "{}", local);
                let rendered = format_local(local);
                prop_assert_eq!(
                    rendered.split_once('.').map(|(_, f)| f.len()),
                    Some(7),
                    "{}",
                    rendered
                );
                if (0..=9999).contains(&local.year()) {
                    prop_assert_eq!(parse_local_date_time(&rendered), Ok(local), "{}", rendered);
                }
                for name in SAMPLE_ZONES {
                    let zone = TimeZoneName::parse(name).unwrap();
                    let back = zone.to_local(zone.to_utc(local));
                    // A gap moves a reading forward by its length, at most a day.
                    prop_assert!(
                        (back - local).abs() <= TimeDelta::days(1),
                        "{} in {} reads back {}",
                        local,
                        name,
                        back
                    );
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_zone_names_never_panic(
        name in or_arbitrary(zone_like()),
        secs in -62_135_596_800i64..=253_402_300_799,
    ) {
        match TimeZoneName::parse(&name) {
            Ok(zone) => {
                prop_assert_eq!(zone.name(), name.as_str());
                let edges = [
                    parse_local_date_time("0001-01-01T00:00:00").unwrap(),
                    parse_local_date_time("9999-12-31T23:59:59.9999999").unwrap(),
                    DateTime::from_timestamp(secs, 0).unwrap().naive_utc(),
                ];
                for local in edges {
                    let back = zone.to_local(zone.to_utc(local));
                    prop_assert!((back - local).abs() <= TimeDelta::days(1), "{} → {}", local, back);
                }
                let _ = zone.to_local(earliest_instant());
                let _ = zone.to_local(latest_instant());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_subscription_resources_never_panic(text in or_arbitrary(filter_like())) {
        match PresenceResource::parse(&text) {
            Ok(resource) => {
                prop_assert_eq!(resource.text(), text.as_str());
                let users = resource.users();
                prop_assert!((1..=MAX_SUBSCRIPTION_USERS).contains(&users.len()), "{}", users.len());
                let distinct: std::collections::HashSet<_> = users.iter().collect();
                prop_assert_eq!(distinct.len(), users.len(), "users repeat");
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_change_types_never_panic(
        text in or_arbitrary(
            vec(
                recased(pick(&["updated", " updated ", "created", "deleted", "", "updated\u{0}", "updatedd"])),
                1..4,
            )
            .prop_map(|entries| entries.join(","))
        ),
    ) {
        let only_updated = text.split(',').all(|e| e.trim().eq_ignore_ascii_case("updated"));
        match ChangeType::parse(&text) {
            Ok(change_type) => {
                prop_assert!(only_updated, "{:?} accepted", text);
                prop_assert_eq!(change_type.as_str(), "updated");
            }
            Err(e) => {
                prop_assert!(!only_updated, "{:?} refused", text);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_notification_urls_never_panic(
        text in or_arbitrary(url_like()),
        emulator in any::<bool>(),
        lifecycle in any::<bool>(),
    ) {
        let field = if lifecycle { UrlField::Lifecycle } else { UrlField::Notification };
        match NotificationUrl::parse(field, &text, emulator) {
            Ok(url) => {
                prop_assert!(text.chars().count() <= MAX_NOTIFICATION_URL_LENGTH);
                let scheme = url.url().scheme();
                prop_assert!(
                    scheme == "https" || (emulator && scheme == "http" && url.is_loopback_host()),
                    "{} accepted (emulator: {})",
                    url,
                    emulator
                );
                prop_assert!(url.url().username().is_empty() && url.url().password().is_none());
                prop_assert!(!url.host().is_empty(), "{}", url);
                let _ = url.port();
                if let Some(ip) = url.host_ip_literal() {
                    let _ = AllowedNetworks::default().permits(ip);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_allowed_networks_never_panic(list in vec(or_arbitrary(network_like()), 0..4)) {
        match AllowedNetworks::parse(&list) {
            Ok(networks) => {
                prop_assert_eq!(networks.networks().len(), list.len());
                for net in networks.networks() {
                    let addr = net.addr();
                    // IPv4-mapped rules are kept as the IPv4 networks they mean.
                    prop_assert_eq!(addr.to_canonical(), addr);
                    prop_assert!(networks.permits(addr), "{} not permitted by {}", addr, net);
                }
                for ip in ["127.0.0.1", "::1", "8.8.8.8", "::ffff:10.0.0.1", "fe80::1"] {
                    let _ = networks.permits(ip.parse().unwrap());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_encryption_certificates_never_panic(text in certificate_like()) {
        match EncryptionCertificate::parse(&text) {
            Ok(cert) => {
                let thumbprint = cert.thumbprint();
                prop_assert_eq!(thumbprint.len(), 40);
                prop_assert!(thumbprint.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
                prop_assert!(!cert.der().is_empty());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_rate_limits_never_panic(
        text in or_arbitrary(prop_oneof![
            "\\s{0,2}[+-]?[0-9]{0,25}\\s{0,2}/\\s{0,2}[+-]?[0-9]{0,25}[smhdéS ]?\\s{0,2}",
            edited(pick(&[
                "1500/30s", "1/86400s", "1/86401s", "1/1440m", "1/1441m", "1/24h", "1/25h",
                "0/1s", "1/0s", "4294967295/1s", "4294967296/1s", "1/18446744073709551615h",
                "1/5124095576030432h", "/", "1/", "/1s", "1/s", "1/1é", "1/1", "1 / 1 s",
            ])),
        ]),
    ) {
        match RateLimit::parse(&text) {
            Ok(limit) => {
                prop_assert!(limit.requests >= 1);
                prop_assert!((1..=86_400).contains(&limit.window.as_secs()), "{:?}", limit);
                prop_assert_eq!(limit.window.subsec_nanos(), 0);
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn arbitrary_guids_and_status_messages_never_panic(
        id in or_arbitrary(guid_text()),
        content in content_like(),
        content_type in prop::option::of(or_arbitrary(recased(pick(&["text", "html"])))),
    ) {
        match parse_guid(&id) {
            Ok(guid) => prop_assert!(id.eq_ignore_ascii_case(&guid.to_string()), "{} read as {}", id, guid),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        match StatusMessageInput::parse(&content, content_type.as_deref()) {
            Ok(input) => prop_assert!(input.content.chars().count() <= MAX_STATUS_MESSAGE_CHARS),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_authorization_headers_never_panic(
        header in prop_oneof![
            arbitrary_text(),
            (recased(pick(&["Bearer", "Basic", "Bearer:", ""])), pick(&[" ", "  ", "\t", ""]), arbitrary_text())
                .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        ],
    ) {
        match bearer_token(Some(&header)) {
            Ok(token) => {
                prop_assert!(!token.is_empty());
                prop_assert_eq!(token, token.trim());
                prop_assert!(header.contains(token));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn arbitrary_json_bodies_never_panic(body in json_value(), now in clock_instant()) {
        if let Some(b) = deserialize::<SetPresenceBody>(&body)? {
            check_change(b.into_change(APP, now), now)?;
        }
        if let Some(b) = deserialize::<ClearPresenceBody>(&body)? {
            check_change(b.into_change(APP), now)?;
        }
        if let Some(b) = deserialize::<SetPreferredBody>(&body)? {
            check_change(b.into_change(now), now)?;
        }
        if let Some(b) = deserialize::<SetStatusMessageBody>(&body)? {
            check_change(b.into_change(now), now)?;
        }
        if let Some(b) = deserialize::<LocationBody>(&body)? {
            let _ = b.into_layer(now);
        }
        let _ = deserialize::<CreateBody>(&body)?;
    }

    #[test]
    fn near_miss_presence_bodies_never_panic(
        presence in set_presence_body(),
        clear in clear_presence_body(),
        preferred in set_preferred_body(),
        now in clock_instant(),
    ) {
        if let Some(b) = deserialize::<SetPresenceBody>(&presence)? {
            check_change(b.into_change(APP, now), now)?;
        }
        if let Some(b) = deserialize::<ClearPresenceBody>(&clear)? {
            check_change(b.into_change(APP), now)?;
        }
        if let Some(b) = deserialize::<SetPreferredBody>(&preferred)? {
            check_change(b.into_change(now), now)?;
        }
    }

    #[test]
    fn near_miss_status_message_and_location_bodies_never_panic(
        status in status_message_body(),
        location in location_body(),
        now in clock_instant(),
    ) {
        if let Some(b) = deserialize::<SetStatusMessageBody>(&status)? {
            check_change(b.into_change(now), now)?;
        }
        if let Some(b) = deserialize::<LocationBody>(&location)? {
            match b.into_layer(now) {
                Ok(layer) => {
                    prop_assert_eq!(layer.set_at, now);
                    if let Some(place) = &layer.place_id {
                        prop_assert!(!place.is_empty() && place.chars().count() <= MAX_PLACE_ID_CHARS);
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn filters_naming_more_than_650_distinct_users_are_refused(
        distinct in 645usize..=655,
        repeats in 0usize..5,
        key in pick(&["$filter", "%24filter", "$FILTER"]),
        quote in pick(&["'", "%27"]),
        sep in pick(&[",", "%2C", " , "]),
        seed in any::<u128>(),
    ) {
        let ids: Vec<Uuid> = (0..distinct)
            .map(|i| Uuid::from_u128(seed.wrapping_add(i as u128)))
            .collect();
        let mut texts: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        texts.extend(ids.iter().take(repeats).map(|u| u.to_string().to_uppercase()));
        let list: Vec<String> = texts.iter().map(|t| format!("{quote}{t}{quote}")).collect();
        let text = format!("/communications/presences?{key}=id in ({})", list.join(&sep));
        match PresenceResource::parse(&text) {
            Ok(resource) => {
                prop_assert!(distinct <= MAX_SUBSCRIPTION_USERS, "{} distinct accepted", distinct);
                prop_assert_eq!(resource.users(), &ids[..]);
            }
            Err(e) => {
                prop_assert!(distinct > MAX_SUBSCRIPTION_USERS, "{} distinct refused: {}", distinct, e);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// JWTs through an HS256 verifier
// ---------------------------------------------------------------------------

#[test]
fn tokens_not_signed_with_the_secret_are_refused_without_panicking() {
    let rt = runtime();
    let verifier = hs256_verifier(&rt);
    check(CASES, unsigned_token(), |token| {
        match rt.block_on(verifier.verify(&token, verify_now())) {
            Ok(p) => prop_assert!(false, "accepted as {:?}", p),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    });
}

#[test]
fn tampered_tokens_are_refused_without_panicking() {
    let rt = runtime();
    let verifier = hs256_verifier(&rt);
    let good = crate::helpers::token_with(
        |c| {
            c.iat = verify_now().timestamp();
            c.nbf = c.iat;
            c.exp = c.iat + 3600;
        },
        Uuid::from_u128(1),
        Some(Uuid::from_u128(2)),
        Some(ALL_SCOPES),
    );
    assert!(rt.block_on(verifier.verify(&good, verify_now())).is_ok());
    let alphabet: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .chain('0'..='9')
        .chain(['-', '_', '.', '=', '+', '/'])
        .collect();
    let strategy = (vec((any::<usize>(), select(alphabet)), 1..4), any::<bool>());
    check(CASES, strategy, |(edits, truncate)| {
        let mut chars: Vec<char> = good.chars().collect();
        for (at, c) in edits {
            let at = at % chars.len();
            chars[at] = if chars[at] == c { '~' } else { c };
        }
        if truncate {
            chars.pop();
        }
        let token: String = chars.into_iter().collect();
        prop_assume!(token != good);
        match rt.block_on(verifier.verify(&token, verify_now())) {
            Ok(p) => prop_assert!(false, "{} accepted as {:?}", token, p),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    });
}

#[test]
fn signed_tokens_with_odd_headers_and_claims_are_accepted_only_when_sound() {
    let rt = runtime();
    let verifier = hs256_verifier(&rt);
    let sound_header = mutated(
        json!({"alg": "HS256", "typ": "JWT"}),
        &["kid", "typ", "crit"],
        json_value(),
    );
    let strategy = (
        prop_oneof![2 => header_text(), 1 => sound_header],
        prop_oneof![4 => claims_text(), 1 => raw_claims_text(), 1 => arbitrary_text()],
    );
    check(CASES, strategy, |(header, claims)| {
        let token = sign(&header, &claims, SECRET);
        match rt.block_on(verifier.verify(&token, verify_now())) {
            Ok(p) => deserved(&header, &claims, &p)?,
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    });
}

#[test]
fn signed_tokens_with_huge_or_odd_times_are_accepted_only_when_in_time() {
    let rt = runtime();
    let verifier = hs256_verifier(&rt);
    check(CASES, raw_claims_text(), |claims| {
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let token = sign(header, &claims, SECRET);
        match rt.block_on(verifier.verify(&token, verify_now())) {
            Ok(p) => deserved(header, &claims, &p)?,
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Over HTTP: never a 5xx, every 4xx a Graph error
// ---------------------------------------------------------------------------

/// Awaits `f`, failing the case if the server does not answer in time.
async fn in_time<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("no answer within 20 s to {what}"))
}

/// Checks an answer: below 500, and a 4xx is a Graph error.
fn graph_answer(r: &Reply, input: &str) -> TestCaseResult {
    let input = brief(input);
    let status = r.status.as_u16();
    prop_assert!(status < 500, "{} for {}: {}", status, input, r.text);
    if r.status.is_client_error() {
        let error = &r.body["error"];
        let present = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
        prop_assert!(
            present(&error["code"]),
            "{} for {}: {}",
            status,
            input,
            r.text
        );
        prop_assert!(
            present(&error["message"]),
            "{} for {}: {}",
            status,
            input,
            r.text
        );
        prop_assert!(present(&error["innerError"]["request-id"]), "{}", r.text);
        prop_assert_eq!(
            r.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{} for {}",
            status,
            input
        );
    }
    Ok(())
}

/// `text` without the characters a header value may not hold (controls
/// but tab, DEL); non-ASCII stays, as obs-text bytes.
fn header_safe(text: String) -> String {
    text.chars()
        .filter(|c| *c == '\t' || (' '..='~').contains(c) || !c.is_ascii())
        .collect()
}

/// `text` cut to a readable length for failure messages.
fn brief(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{:?}… ({} bytes)", &text[..end], text.len()),
        None => format!("{text:?}"),
    }
}

/// Raw body text: a near-miss body, any JSON, a truncated body, anything.
fn raw_body(near: BoxedStrategy<Value>) -> BoxedStrategy<String> {
    prop_oneof![
        4 => near.clone().prop_map(|v| v.to_string()),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => (near, any::<usize>()).prop_map(|(v, cut)| {
            let text = v.to_string();
            text.chars().take(cut % (text.chars().count() + 1)).collect()
        }),
        1 => arbitrary_text().prop_map(|t| format!("{{{t}")),
        1 => arbitrary_text(),
        1 => (1usize..3000, pick(&["[", "{\"a\":"]), pick(&["]", "}"])).prop_map(|(n, open, close)| {
            format!("{{\"statusMessage\":{}1{}}}", open.repeat(n), close.repeat(n))
        }),
        1 => pick(&[
            r#"{"sessionId":"x","sessionId":"y"}"#,
            r#"{"availability":"\ud800","activity":"Available"}"#,
            r#"{"expirationDuration":1e999}"#,
            r#"{"statusMessage":{"message":{"content":NaN}}}"#,
            "\u{feff}{}",
            "{} {}",
            "{}x",
            "{\"a\":1,}",
            "{\u{0}}",
            "",
            " ",
            "null",
            "[]",
        ]),
    ]
    .boxed()
}

/// POSTs each body to `path` as `application/json` with a fresh user's
/// self token (`{user}` in `path` is that user).
fn post_bodies(path: &'static str, bodies: BoxedStrategy<String>) {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    check(HTTP_CASES, bodies, |body| {
        rt.block_on(async {
            let user = Uuid::new_v4();
            let token = server.user_token(user, ALL_SCOPES);
            let url = format!(
                "{}{}",
                server.url,
                path.replace("{user}", &user.to_string())
            );
            let request = server
                .client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            let r = reply(in_time(&brief(&body), request).await.unwrap()).await;
            graph_answer(&r, &body)?;
            prop_assert!(
                r.status.is_client_error() || (r.status == 200 && r.text.is_empty()),
                "{} for {}: {}",
                r.status,
                brief(&body),
                r.text
            );
            Ok(())
        })
    });
}

#[test]
fn arbitrary_set_presence_bodies_are_answered_without_5xx() {
    post_bodies(
        "/v1.0/users/{user}/presence/setPresence",
        raw_body(set_presence_body()),
    );
}

#[test]
fn arbitrary_set_status_message_bodies_are_answered_without_5xx() {
    post_bodies(
        "/v1.0/users/{user}/presence/setStatusMessage",
        raw_body(status_message_body()),
    );
}

#[test]
fn arbitrary_subscription_bodies_are_answered_without_5xx() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let receiver = rt.block_on(Receiver::start());
    // A port nothing listens on: validation fails at once.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        )
    };
    let url = prop_oneof![
        3 => Just(receiver.hook()),
        2 => Just(closed),
        2 => url_like(),
        1 => arbitrary_text(),
    ]
    .boxed();
    let resource = prop_oneof![
        3 => any::<u128>().prop_map(|n| format!("/communications/presences/{}", Uuid::from_u128(n))),
        3 => filter_like(),
        1 => arbitrary_text(),
    ];
    let expiry = or_arbitrary(prop_oneof![
        3 => (-120i64..6000).prop_map(|m| (t0() + TimeDelta::minutes(m)).to_rfc3339()),
        1 => pick(&[
            "9999-12-31T23:59:59Z",
            "2026-01-01T10:00:00",
            "2026-01-01T10:00:60Z",
            "0000-01-01T00:00:00Z",
            "2026-01-01T10:00:00+25:00",
            "2026-01-01T10:00:00.1234567891234Z",
            "+275760-09-13T00:00:00Z",
            "2026-01-01T10:00:00-23:59",
            "1969-12-31T23:59:59Z",
        ]),
    ]);
    let body = (
        (
            field(
                0.9,
                or_arbitrary(recased(pick(&[
                    "updated",
                    "updated,updated",
                    " updated , Updated ",
                    "created",
                    "updated,deleted",
                    "",
                    ",",
                ]))),
            ),
            field(0.9, url.clone()),
            field(0.9, resource.boxed()),
            field(0.9, expiry),
            field(
                0.5,
                or_arbitrary(prop_oneof!["[a-z]{0,10}", Just("x".repeat(129))]),
            ),
            field(0.2, url),
        ),
        (
            prop::option::weighted(
                0.3,
                prop_oneof![4 => any::<bool>().prop_map(Value::from), 1 => json_value()],
            ),
            field(
                0.3,
                prop_oneof![1 => certificate_like(), 1 => Just(CERT_2048.to_owned())].boxed(),
            ),
            field(
                0.3,
                or_arbitrary(prop_oneof!["[a-z-]{1,10}", Just("x".repeat(129))]),
            ),
            field(
                0.3,
                or_arbitrary(pick(&["v1_0", "v1_1", "v1_2", "v1_3", "v1_4", "V1_2", ""])),
            ),
            field(0.05, arbitrary_text()),
            extras(),
        ),
    )
        .prop_map(
            |(
                (change, url, resource, expiry, state, lifecycle),
                (rich, cert, cert_id, tls, options, extra),
            )| {
                object(
                    vec![
                        ("changeType", change),
                        ("notificationUrl", url),
                        ("resource", resource),
                        ("expirationDateTime", expiry),
                        ("clientState", state),
                        ("lifecycleNotificationUrl", lifecycle),
                        ("includeResourceData", rich),
                        ("encryptionCertificate", cert),
                        ("encryptionCertificateId", cert_id),
                        ("latestSupportedTlsVersion", tls),
                        ("notificationQueryOptions", options),
                    ],
                    extra,
                )
            },
        )
        .boxed();
    check(HTTP_CASES, raw_body(body), |body| {
        rt.block_on(async {
            let token = server.user_token(Uuid::new_v4(), ALL_SCOPES);
            let request = server
                .client
                .post(format!("{}/v1.0/subscriptions", server.url))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            let r = reply(in_time(&brief(&body), request).await.unwrap()).await;
            graph_answer(&r, &body)?;
            prop_assert!(
                r.status.is_client_error() || (r.status == 201 && r.body["id"].is_string()),
                "{} for {}: {}",
                r.status,
                brief(&body),
                r.text
            );
            Ok(())
        })
    });
}

#[test]
fn arbitrary_last_event_ids_are_answered_with_a_stream_or_a_400() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let writer = Uuid::new_v4();
    rt.block_on(async {
        for (availability, activity) in [("Busy", "InACall"), ("Available", "Available")] {
            server
                .set_presence(writer, availability, activity, None)
                .await
                .ok_empty();
        }
    });
    let reader = server.user_token(Uuid::new_v4(), ALL_SCOPES);
    let values = prop_oneof![
        "[0-9]{1,25}",
        pick(&[
            "0",
            "1",
            "2",
            " 1 ",
            "+1",
            "-1",
            "01",
            "1.0",
            "1e3",
            "0x1",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "9223372036854775808",
            "",
            " ",
            "\t1",
            "١",
            "1,2",
        ]),
        arbitrary_text(),
    ]
    .prop_map(header_safe);
    check(HTTP_CASES, values, |value| {
        rt.block_on(async {
            let shown = brief(&value);
            let header = reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap();
            let request = server
                .client
                .get(format!("{}/_presenced/events", server.url))
                .bearer_auth(&reader)
                .header("last-event-id", header)
                .send();
            let response = in_time(&shown, request).await.unwrap();
            let numeric = value.trim().parse::<u64>().is_ok();
            if response.status() == 200 {
                prop_assert!(numeric, "{} opened a stream", shown);
                prop_assert_eq!(
                    response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok()),
                    Some("text/event-stream")
                );
                // Dropping the response closes the stream.
                return Ok(());
            }
            let r = reply(response).await;
            graph_answer(&r, &value)?;
            prop_assert_eq!(r.status.as_u16(), 400, "{}: {}", shown, r.text);
            Ok(())
        })
    });
}

#[test]
fn arbitrary_query_strings_are_answered_without_5xx() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let paths = vec![
        format!("/v1.0/users/{user}/presence"),
        format!("/beta/communications/presences/{user}"),
        "/v1.0/me/presence".to_owned(),
        "/_presenced/events".to_owned(),
        "/v1.0/subscriptions".to_owned(),
        format!("/v1.0/subscriptions/{}", Uuid::new_v4()),
        format!("/_presenced/users/{user}/presence"),
    ];
    let piece = prop_oneof![
        3 => pick(&[
            "ids=", "$select=", "%24select=", "$filter=", "$top=", "$skip=", "$expand=",
            "$count=true", "=", "&", "&&", "%", "%2", "%zz", "%00", "%FF", "%C3%28",
            "%E2%80%AE", "+", "'", "\"", "(", ")", ",", "?", "[", "]", ";", "\\", "^", "`",
            "{", "}", "|", "$format=json", "ids", "availability,activity",
        ]),
        2 => guid_text(),
        1 => "(?s).{0,8}",
    ];
    let strategy = (select(paths), vec(piece, 0..12).prop_map(|p| p.concat()));
    check(HTTP_CASES, strategy, |(path, query)| {
        rt.block_on(async {
            let Ok(url) = reqwest::Url::parse(&format!("{}{path}?{query}", server.url)) else {
                return Ok(());
            };
            let shown = url.to_string();
            let request = server.client.get(url).bearer_auth(&token).send();
            let response = in_time(&shown, request).await.unwrap();
            let streaming = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if streaming {
                // Dropping the response closes the stream.
                prop_assert_eq!(response.status().as_u16(), 200, "{}", shown);
                return Ok(());
            }
            graph_answer(&reply(response).await, &shown)
        })
    });
}

#[test]
fn arbitrary_authorization_headers_are_401_over_http() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let values = prop_oneof![
        1 => arbitrary_text(),
        2 => unsigned_token().prop_map(|t| format!("Bearer {t}")),
        1 => pick(&["Bearer", "Bearer ", "bearer x.y.z", "Basic dXNlcjpwYXNz", "Bearer  ", "Bearer\tx", "BEARER a.b.c"]),
    ]
    .prop_map(header_safe);
    check(HTTP_CASES, values, |value| {
        rt.block_on(async {
            let shown = brief(&value);
            let header = reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap();
            let request = server
                .client
                .get(format!("{}/v1.0/me/presence", server.url))
                .header("authorization", header)
                .send();
            let r = reply(in_time(&shown, request).await.unwrap()).await;
            graph_answer(&r, &value)?;
            // Near the 32 KiB header limit the answer is 431 instead.
            let status = r.status.as_u16();
            prop_assert!(
                status == 401 || (status == 431 && value.len() > 30 * 1024),
                "{} for {}: {}",
                status,
                shown,
                r.text
            );
            Ok(())
        })
    });
}
