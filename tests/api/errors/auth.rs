//! Bad tokens are 401 with `WWW-Authenticate` and never echoed; expiry
//! within the leeway is accepted; personal accounts are 403.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::TimeDelta;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use presenced::auth::{mint_hs256, MintClaims};
use presenced::clock::wall_now;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{send_with, Body};
use crate::helpers::{token_with, Reply, TestServer, ALL_SCOPES, APP, SECRET};

/// The tenant of personal Microsoft accounts (SPEC §5).
const PERSONAL_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Asserts the ids of an error reply: headers present, and the same ids in
/// `innerError`.
#[track_caller]
fn assert_error_ids(r: &Reply, name: &str) {
    let request_id = r.headers["request-id"].to_str().unwrap();
    let client_request_id = r.headers["client-request-id"].to_str().unwrap();
    let inner = &r.body["error"]["innerError"];
    assert_eq!(inner["request-id"], request_id, "{name}: {}", r.text);
    assert_eq!(
        inner["client-request-id"], client_request_id,
        "{name}: {}",
        r.text
    );
}

/// Claims for a delegated token of `user` in `tenant`, valid for an hour.
fn claims(tenant: Uuid, user: Uuid) -> MintClaims {
    MintClaims::new(
        tenant,
        Some(user),
        APP,
        Some(ALL_SCOPES),
        None,
        wall_now(),
        TimeDelta::hours(1),
    )
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn bad_tokens_are_401_with_www_authenticate() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let tenant = server.tenant;
    let now = wall_now().timestamp();
    let good = claims(tenant, user);

    let expired = token_with(
        |c| {
            c.iat = now - 7200;
            c.nbf = now - 7200;
            c.exp = now - 120;
        },
        tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    let not_yet_valid = token_with(
        |c| {
            c.nbf = now + 3600;
            c.exp = now + 7200;
        },
        tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    let other_secret = mint_hs256(b"another-secret-that-nobody-trusts-42", &good).unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&serde_json::to_value(&good).unwrap())
    );
    let wrong_audience = token_with(
        |c| c.aud = "api://some-other-api".into(),
        tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &good,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    // A good token with its signature dropped.
    let good_token = mint_hs256(SECRET, &good).unwrap();
    let unsigned = good_token.rsplit_once('.').unwrap().0.to_string() + ".";

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("empty Authorization header", Some(String::new())),
        ("Bearer without a token", Some("Bearer".into())),
        ("Bearer garbage", Some("Bearer garbage-token-text".into())),
        ("Basic scheme", Some(format!("Basic {good_token}"))),
        ("expired", Some(format!("Bearer {expired}"))),
        ("not yet valid", Some(format!("Bearer {not_yet_valid}"))),
        (
            "signed with another secret",
            Some(format!("Bearer {other_secret}")),
        ),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        ("signature dropped", Some(format!("Bearer {unsigned}"))),
        ("wrong audience", Some(format!("Bearer {wrong_audience}"))),
        ("HS384", Some(format!("Bearer {hs384}"))),
    ];
    for (name, authorization) in cases {
        let r = send_with(
            &server,
            Method::GET,
            "/v1.0/me/presence",
            authorization.as_deref(),
            &[],
            Body::None,
        )
        .await;
        let message = r.error(401, "InvalidAuthenticationToken");
        assert!(!message.is_empty(), "{name}: empty message");
        assert!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer")),
            "{name}: 401 without WWW-Authenticate: Bearer"
        );
        if let Some(authorization) = &authorization {
            let raw = authorization.split_once(' ').map_or("", |(_, t)| t);
            assert!(
                raw.is_empty() || !message.contains(raw),
                "{name}: message echoes the token: {message}"
            );
            for part in raw.split('.').filter(|p| p.len() > 8) {
                assert!(
                    !message.contains(part),
                    "{name}: message echoes part of the token: {message}"
                );
            }
        }
        assert_error_ids(&r, name);
    }
    // The good token works on the same server.
    server.get("/v1.0/me/presence", &good_token).await.ok_json();
}

#[tokio::test]
async fn token_expired_within_the_leeway_is_still_accepted() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let now = wall_now().timestamp();
    let token = token_with(
        |c| {
            c.iat = now - 3600;
            c.nbf = now - 3600;
            c.exp = now - 10;
        },
        server.tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    server.get("/v1.0/me/presence", &token).await.ok_json();
}

#[tokio::test]
async fn personal_account_token_is_403() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let personal: Uuid = PERSONAL_TENANT.parse().unwrap();
    let token = token_with(|_| {}, personal, Some(user), Some(ALL_SCOPES));
    for path in [
        "/v1.0/me/presence".to_string(),
        format!("/v1.0/users/{user}/presence"),
    ] {
        let r = server.get(&path, &token).await;
        let message = r.error(403, "Forbidden");
        assert!(!message.contains(&token), "{message}");
        assert!(!message.is_empty());
    }
    let r = server
        .post(
            &format!("/v1.0/users/{user}/presence/setPresence"),
            &token,
            json!({"sessionId": APP, "availability": "Busy", "activity": "InACall"}),
        )
        .await;
    r.error(403, "Forbidden");
}
