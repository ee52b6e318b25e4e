//! JWTs: signing, header and claims strategies, the oracle for what an
//! accepted token must have been, and the HS256 verifier under test.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use presenced::auth::{
    AuthConfig, Principal, PrincipalKind, TokenVerifier, DEFAULT_AUDIENCES, PERSONAL_ACCOUNT_TENANT,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseResult;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::bodies::{extras, json_value, object};
use super::{arbitrary_text, guid_text, pick};
use crate::helpers::{t0, ALL_SCOPES, APP, SECRET};

// ---------------------------------------------------------------------------
// JWTs
// ---------------------------------------------------------------------------

/// The instant tokens are verified at.
pub(super) fn verify_now() -> DateTime<Utc> {
    t0()
}

/// `header.claims.HMAC-SHA256(secret)`, all base64url.
pub(super) fn sign(header: &str, claims: &str, secret: &[u8]) -> String {
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

pub(super) fn header_text() -> BoxedStrategy<String> {
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
pub(super) fn mutated(
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
pub(super) fn claims_text() -> BoxedStrategy<String> {
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
pub(super) fn raw_claims_text() -> BoxedStrategy<String> {
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
pub(super) fn deserved(header: &str, claims: &str, p: &Principal) -> TestCaseResult {
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
pub(super) fn unsigned_token() -> BoxedStrategy<String> {
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

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(super) fn hs256_verifier(rt: &tokio::runtime::Runtime) -> TokenVerifier {
    rt.block_on(TokenVerifier::new(AuthConfig {
        hs256_secret: Some(SECRET.to_vec()),
        ..AuthConfig::default()
    }))
    .unwrap()
}
