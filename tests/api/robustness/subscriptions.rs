//! Input strategies for what a subscription names: its resource
//! `$filter`, its notification URLs (and the networks they may reach) and
//! its encryption certificate.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::collection::vec;
use proptest::prelude::*;
use uuid::Uuid;

use super::{arbitrary_text, edited, guid_text, pick};

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

pub(super) fn filter_like() -> BoxedStrategy<String> {
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

pub(super) fn url_like() -> BoxedStrategy<String> {
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

pub(super) fn network_like() -> BoxedStrategy<String> {
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

pub(super) const CERT_2048: &str = include_str!("../../fixtures/notify-rsa2048.cert.pem");
const CERT_1024: &str = include_str!("../../fixtures/notify-rsa1024.cert.pem");
const CERT_EC: &str = include_str!("../../fixtures/notify-ec.cert.pem");

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
pub(super) fn certificate_like() -> BoxedStrategy<String> {
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
