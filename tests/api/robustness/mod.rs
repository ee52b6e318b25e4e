//! Robustness (the Hardening issue): every parser — durations, date-times
//! and zones, the subscription `$filter`, request bodies, JWT header and
//! claims, notification URLs, networks, certificates, rates — fed arbitrary
//! and adversarial input never panics, and answers either a sane value or
//! an error with a message. Over HTTP (bodies, `Last-Event-ID`, query
//! strings, `Authorization`) arbitrary input is never a 5xx, and every 4xx
//! is a Graph error.
//!
//! Case counts are bounded so the module runs in seconds; a failure prints
//! its minimal input (no regression file is written).

use std::fmt::Debug;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseResult, TestRunner};
use uuid::Uuid;

mod bodies;
mod http;
mod jwt;
mod jwt_verifier;
mod parsers;
mod subscriptions;
mod times;

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
