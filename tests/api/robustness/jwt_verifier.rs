//! JWTs through an HS256 verifier: unsigned, tampered and oddly signed
//! tokens are refused, or accepted only when they deserved it.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::json;
use uuid::Uuid;

use super::bodies::json_value;
use super::jwt::{
    claims_text, deserved, header_text, hs256_verifier, mutated, raw_claims_text, runtime, sign,
    unsigned_token, verify_now,
};
use super::{arbitrary_text, check, CASES};
use crate::helpers::{ALL_SCOPES, SECRET};

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
