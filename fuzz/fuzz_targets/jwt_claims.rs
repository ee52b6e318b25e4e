//! `TokenVerifier::verify` on tokens correctly signed with the verifier's
//! HS256 secret, over arbitrary header and claims bytes (the header up to
//! the first newline, the claims after it), so every header and claims
//! check is reached.
//!
//! Never panics; a token is accepted only when its header and claims
//! deserve it (HS256, no `crit`, `exp` not past, an accepted `aud`, `tid`,
//! `appid`/`azp`, `scp` with `oid` or `roles`); and the token cache answers
//! as the full check does, also at other instants.
#![no_main]

use chrono::TimeDelta;
use libfuzzer_sys::fuzz_target;
use presenced::auth::{
    AuthError, Principal, PrincipalKind, DEFAULT_AUDIENCES, PERSONAL_ACCOUNT_TENANT,
};
use presenced_fuzz::{new_verifier, now, sign, verifier, verify};
use serde_json::{Map, Value};

/// Leeway on `exp` and `nbf` (the default), in seconds.
const LEEWAY: f64 = 60.0;

fn object(bytes: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => map,
        other => panic!("an accepted token's part is not a JSON object: {other:?}"),
    }
}

/// Panics unless the header and claims deserve the principal.
fn deserved(header: &[u8], claims: &[u8], p: &Principal) {
    let header = object(header);
    assert_eq!(header.get("alg"), Some(&Value::from("HS256")));
    assert!(!header.contains_key("crit"));
    assert!(matches!(
        header.get("kid"),
        None | Some(Value::Null) | Some(Value::String(_))
    ));
    let claims = object(claims);
    let at = now().timestamp() as f64;
    let exp = claims.get("exp").and_then(Value::as_f64);
    assert!(
        exp.is_some_and(|exp| exp.floor() + LEEWAY > at),
        "exp {exp:?}"
    );
    if let Some(nbf) = claims.get("nbf").filter(|v| !v.is_null()) {
        assert!(
            nbf.as_f64().is_some_and(|nbf| nbf.floor() - LEEWAY <= at),
            "nbf {nbf}"
        );
    }
    let accepted = |v: &Value| v.as_str().is_some_and(|a| DEFAULT_AUDIENCES.contains(&a));
    let aud = claims.get("aud");
    assert!(
        aud.is_some_and(|a| accepted(a) || a.as_array().is_some_and(|l| l.iter().any(accepted))),
        "aud {aud:?}"
    );
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let tid = text("tid").unwrap_or_default();
    assert!(tid.eq_ignore_ascii_case(&p.tenant.to_string()), "tid {tid}");
    assert_ne!(p.tenant, PERSONAL_ACCOUNT_TENANT);
    let app = |name: &str| text(name).filter(|s| !s.is_empty());
    assert_eq!(Some(p.app_id.as_str()), app("appid").or(app("azp")));
    match (text("scp"), p.kind) {
        (Some(scp), PrincipalKind::Delegated { user }) => {
            let oid = text("oid").unwrap_or_default();
            assert!(oid.eq_ignore_ascii_case(&user.to_string()), "oid {oid}");
            assert_eq!(p.scopes, scp.split_whitespace().collect::<Vec<_>>());
        }
        (None, PrincipalKind::Application) => {
            assert!(claims.get("roles").is_some_and(Value::is_array));
        }
        (scp, kind) => panic!("scp {scp:?} gave {kind:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (header, claims) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let token = sign(header, claims);
    let first: Result<Principal, AuthError> = verify(verifier(), &token, now());
    match &first {
        Ok(principal) => deserved(header, claims, principal),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // Asked again, at `now` and around the edges of the leeway, the
    // long-lived verifier answers from its cache (when it still holds the
    // token) and must answer as a new verifier's full check does.
    if first.is_ok() {
        for offset in [0, -61, 61, 86_400 * 365] {
            let at = now() + TimeDelta::seconds(offset);
            assert_eq!(
                verify(verifier(), &token, at),
                verify(&new_verifier(), &token, at),
                "cached and full answers differ at {at}"
            );
        }
    }
});
