//! Tests of [`super::TokenVerifier`]: one per refusal path, plus the key
//! sources (HS256 secret, JWKS file, JWKS URL with refetch).
//!
//! Split by theme: `accepted` (good tokens and their principals), `times`
//! (`exp`, `nbf` and the leeway), `signature` (signatures, algorithms and
//! the token's shape), `claims` (audience, issuer and the Entra claims),
//! `jwks_from_file` and `jwks_from_url` (the key sources), and
//! `authorization` (the `Authorization` header). The helpers here, the
//! JWKS server among them, are shared with the token cache's tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::auth::test_keys::{ec_jwk, jwks_json, rsa2_jwk, rsa_jwk, EC_PEM, RSA2_PEM, RSA_PEM};
use crate::auth::{mint_hs256, MintClaims};

mod accepted;
mod authorization;
mod claims;
mod jwks_from_file;
mod jwks_from_url;
mod signature;
mod times;

const SECRET: &[u8] = b"development-secret";
const TENANT: Uuid = Uuid::from_u128(0x1111_1111_1111_1111_1111_1111_1111_1111);
const USER: Uuid = Uuid::from_u128(0x2222_2222_2222_2222_2222_2222_2222_2222);

fn now() -> Instant {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
}

/// Delegated claims valid at [`now`] for an hour.
fn delegated() -> Value {
    let claims = MintClaims::new(
        TENANT,
        Some(USER),
        "app-1",
        Some("Presence.Read Presence.ReadWrite"),
        None,
        now(),
        Duration::hours(1),
    );
    serde_json::to_value(claims).unwrap()
}

/// Application claims valid at [`now`] for an hour.
fn application() -> Value {
    let claims = MintClaims::new(
        TENANT,
        None,
        "app-2",
        None,
        Some(&["Presence.Read.All".to_owned()]),
        now(),
        Duration::hours(1),
    );
    serde_json::to_value(claims).unwrap()
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn hs256(claims: &Value) -> String {
    hs256_with(SECRET, claims)
}

fn hs256_with(secret: &[u8], claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn signed(alg: Algorithm, kid: Option<&str>, pem: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        _ => unreachable!("test helper for RS256/ES256"),
    };
    encode(&header, claims, &key).unwrap()
}

/// A token with a hand-written header and an empty signature.
fn unsigned(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", part(header), part(claims))
}

fn config() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SECRET.to_vec()),
        ..AuthConfig::default()
    }
}

async fn verifier(config: AuthConfig) -> TokenVerifier {
    TokenVerifier::new(config).await.unwrap()
}

async fn dev() -> TokenVerifier {
    verifier(config()).await
}

/// Verifies and, on refusal, checks that the message never echoes the token.
async fn check(v: &TokenVerifier, token: &str, at: Instant) -> Result<Principal, AuthError> {
    let result = v.verify(token, at).await;
    if let Err(e) = &result {
        let text = e.to_string();
        for part in token.split('.').filter(|p| p.len() > 3) {
            assert!(!text.contains(part), "message {text:?} echoes the token");
        }
    }
    result.map(|p| Principal::clone(&p))
}

fn jwks_file(keys: &[Value]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), jwks_json(keys)).unwrap();
    file
}

async fn jwks_verifier(file: &tempfile::NamedTempFile) -> TokenVerifier {
    verifier(AuthConfig {
        jwks_file: Some(file.path().to_owned()),
        ..AuthConfig::default()
    })
    .await
}

/// A JWKS endpoint whose document tests can swap, counting fetches.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: &[Value]) -> Self {
        let body = Arc::new(Mutex::new(jwks_json(keys)));
        let hits = Arc::new(AtomicUsize::new(0));
        let app = {
            let body = Arc::clone(&body);
            let hits = Arc::clone(&hits);
            axum::Router::new().route(
                "/jwks",
                axum::routing::get(move || {
                    let body = body.lock().unwrap().clone();
                    hits.fetch_add(1, Ordering::SeqCst);
                    async move { ([("content-type", "application/json")], body) }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, body, hits }
    }

    fn serve(&self, keys: &[Value]) {
        *self.body.lock().unwrap() = jwks_json(keys);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn url_verifier(server: &JwksServer) -> TokenVerifier {
    verifier(AuthConfig {
        jwks_url: Some(server.url.clone()),
        ..AuthConfig::default()
    })
    .await
}

#[path = "../cache_tests.rs"]
mod cache;
