//! Tests of [`super::TokenVerifier`]: one per refusal path, plus the key
//! sources (HS256 secret, JWKS file, JWKS URL with refetch).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::auth::test_keys::{ec_jwk, jwks_json, rsa2_jwk, rsa_jwk, EC_PEM, RSA2_PEM, RSA_PEM};
use crate::auth::{mint_hs256, MintClaims};

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

// ---- accepted tokens

#[tokio::test]
async fn delegated_hs256_token_gives_a_delegated_principal() {
    let p = check(&dev().await, &hs256(&delegated()), now())
        .await
        .unwrap();
    assert_eq!(p.tenant, TENANT);
    assert_eq!(p.app_id, "app-1");
    assert_eq!(p.kind, PrincipalKind::Delegated { user: USER });
    assert_eq!(p.scopes, ["Presence.Read", "Presence.ReadWrite"]);
    assert!(p.roles.is_empty());
}

#[tokio::test]
async fn application_hs256_token_gives_an_application_principal() {
    let p = check(&dev().await, &hs256(&application()), now())
        .await
        .unwrap();
    assert_eq!(p.kind, PrincipalKind::Application);
    assert_eq!(p.roles, ["Presence.Read.All"]);
    assert!(p.scopes.is_empty());
}

#[tokio::test]
async fn minted_token_verifies() {
    let claims = MintClaims::new(
        TENANT,
        Some(USER),
        "app",
        Some("Presence.Read"),
        None,
        now(),
        Duration::minutes(5),
    );
    let token = mint_hs256(SECRET, &claims).unwrap();
    assert!(check(&dev().await, &token, now()).await.is_ok());
}

#[tokio::test]
async fn scp_with_roles_is_delegated() {
    let claims = with(delegated(), "roles", json!(["Presence.ReadWrite.All"]));
    let p = check(&dev().await, &hs256(&claims), now()).await.unwrap();
    assert_eq!(p.kind, PrincipalKind::Delegated { user: USER });
    assert_eq!(p.roles, ["Presence.ReadWrite.All"]);
}

#[tokio::test]
async fn azp_stands_in_for_a_missing_appid() {
    let claims = with(without(delegated(), "appid"), "azp", json!("app-v2"));
    let p = check(&dev().await, &hs256(&claims), now()).await.unwrap();
    assert_eq!(p.app_id, "app-v2");
}

#[tokio::test]
async fn uppercase_tid_is_accepted() {
    let claims = with(delegated(), "tid", json!(TENANT.to_string().to_uppercase()));
    let p = check(&dev().await, &hs256(&claims), now()).await.unwrap();
    assert_eq!(p.tenant, TENANT);
}

// ---- time

#[tokio::test]
async fn expired_token_is_refused() {
    let claims = with(delegated(), "exp", json!(now().timestamp() - 61));
    let err = check(&dev().await, &hs256(&claims), now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Expired);
    assert!(!err.is_forbidden());
    assert_eq!(err.to_string(), "The access token has expired.");
}

#[tokio::test]
async fn expiry_within_the_leeway_is_accepted() {
    let claims = with(delegated(), "exp", json!(now().timestamp() - 30));
    assert!(check(&dev().await, &hs256(&claims), now()).await.is_ok());
}

#[tokio::test]
async fn leeway_is_configurable() {
    let v = verifier(AuthConfig {
        leeway_secs: 0,
        ..config()
    })
    .await;
    let at_exp = with(delegated(), "exp", json!(now().timestamp()));
    assert_eq!(
        check(&v, &hs256(&at_exp), now()).await,
        Err(AuthError::Expired)
    );
    let nbf_soon = with(delegated(), "nbf", json!(now().timestamp() + 1));
    assert_eq!(
        check(&v, &hs256(&nbf_soon), now()).await,
        Err(AuthError::NotYetValid)
    );
}

#[tokio::test]
async fn missing_exp_is_refused() {
    let claims = without(delegated(), "exp");
    let err = check(&dev().await, &hs256(&claims), now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::MissingClaim("exp"));
}

#[tokio::test]
async fn non_numeric_exp_is_malformed() {
    let claims = with(delegated(), "exp", json!("tomorrow"));
    let err = check(&dev().await, &hs256(&claims), now())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let claims = with(delegated(), "nbf", json!(now().timestamp() + 120));
    let err = check(&dev().await, &hs256(&claims), now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::NotYetValid);
    assert!(!err.is_forbidden());
}

#[tokio::test]
async fn nbf_within_the_leeway_and_absent_nbf_are_accepted() {
    let v = dev().await;
    let soon = with(delegated(), "nbf", json!(now().timestamp() + 30));
    assert!(check(&v, &hs256(&soon), now()).await.is_ok());
    let none = without(delegated(), "nbf");
    assert!(check(&v, &hs256(&none), now()).await.is_ok());
}

#[tokio::test]
async fn times_follow_the_passed_in_now() {
    let token = hs256(&delegated());
    let v = dev().await;
    assert_eq!(
        check(&v, &token, now() + Duration::hours(2)).await,
        Err(AuthError::Expired)
    );
    assert_eq!(
        check(&v, &token, now() - Duration::hours(2)).await,
        Err(AuthError::NotYetValid)
    );
}

// ---- signature and algorithm

#[tokio::test]
async fn wrong_secret_is_a_bad_signature() {
    let token = hs256_with(b"another-secret", &delegated());
    let err = check(&dev().await, &token, now()).await.unwrap_err();
    assert_eq!(err, AuthError::BadSignature);
    assert!(!err.is_forbidden());
}

#[tokio::test]
async fn tampered_claims_are_a_bad_signature() {
    let token = hs256(&delegated());
    let forged = URL_SAFE_NO_PAD
        .encode(with(delegated(), "tid", json!(Uuid::from_u128(9).to_string())).to_string());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(
        check(&dev().await, &tampered, now()).await,
        Err(AuthError::BadSignature)
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let token = unsigned(&json!({"alg": "none", "typ": "JWT"}), &delegated());
    let err = check(&dev().await, &token, now()).await.unwrap_err();
    assert_eq!(err, AuthError::UnsupportedAlgorithm("none".into()));
    assert!(!err.is_forbidden());
    assert!(err.to_string().contains("'none'"));
}

#[tokio::test]
async fn other_algorithms_are_refused() {
    let v = dev().await;
    for alg in ["HS512", "PS256", "NONE", "EdDSA"] {
        let token = unsigned(&json!({"alg": alg}), &delegated());
        assert_eq!(
            check(&v, &token, now()).await,
            Err(AuthError::UnsupportedAlgorithm(alg.into()))
        );
    }
    let long = unsigned(&json!({"alg": "<script>alert(1)</script>"}), &delegated());
    assert_eq!(
        check(&v, &long, now()).await,
        Err(AuthError::UnsupportedAlgorithm("(unrecognised)".into()))
    );
}

#[tokio::test]
async fn hs256_without_a_configured_secret_is_refused() {
    let file = jwks_file(&[rsa_jwk()]);
    let v = jwks_verifier(&file).await;
    let err = check(&v, &hs256(&delegated()), now()).await.unwrap_err();
    assert_eq!(err, AuthError::UnsupportedAlgorithm("HS256".into()));
}

#[tokio::test]
async fn rs256_without_jwks_keys_is_refused() {
    let token = signed(Algorithm::RS256, Some("rsa-1"), RSA_PEM, &delegated());
    let err = check(&dev().await, &token, now()).await.unwrap_err();
    assert_eq!(err, AuthError::UnsupportedAlgorithm("RS256".into()));
}

// ---- shape

#[tokio::test]
async fn empty_token_is_missing() {
    assert_eq!(
        check(&dev().await, "", now()).await,
        Err(AuthError::MissingToken)
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let v = dev().await;
    let good = hs256(&delegated());
    let parts: Vec<&str> = good.split('.').collect();
    let not_json = URL_SAFE_NO_PAD.encode("not json");
    let array = URL_SAFE_NO_PAD.encode("[1,2]");
    let cases = [
        "abc".to_owned(),
        "a.b".to_owned(),
        format!("{good}.extra"),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{} .{}.{}", parts[0], parts[1], parts[2]),
        format!("{not_json}.{}.{}", parts[1], parts[2]),
        format!("{}.{not_json}.{}", parts[0], parts[2]),
        format!("{}.{array}.{}", parts[0], parts[2]),
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("{}"), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":7}"#),
            parts[1],
            parts[2]
        ),
        "x".repeat(40_000),
    ];
    for token in cases {
        let err = check(&v, &token, now()).await.unwrap_err();
        assert!(
            matches!(err, AuthError::Malformed(_)),
            "{token:.60}: {err:?}"
        );
        assert!(err
            .to_string()
            .starts_with("The access token is malformed: "));
    }
}

// ---- audience and issuer

#[tokio::test]
async fn wrong_audience_is_refused() {
    let claims = with(delegated(), "aud", json!("api://someone-else"));
    let err = check(&dev().await, &hs256(&claims), now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::WrongAudience);
    assert!(!err.is_forbidden());
}

#[tokio::test]
async fn default_audiences_are_accepted() {
    let v = dev().await;
    for aud in DEFAULT_AUDIENCES {
        let claims = with(delegated(), "aud", json!(aud));
        assert!(check(&v, &hs256(&claims), now()).await.is_ok(), "{aud}");
    }
}

#[tokio::test]
async fn array_audience_needs_one_accepted_entry() {
    let v = dev().await;
    let ok = with(
        delegated(),
        "aud",
        json!(["api://x", "https://graph.microsoft.com"]),
    );
    assert!(check(&v, &hs256(&ok), now()).await.is_ok());
    let bad = with(delegated(), "aud", json!(["api://x", "api://y"]));
    assert_eq!(
        check(&v, &hs256(&bad), now()).await,
        Err(AuthError::WrongAudience)
    );
    let odd = with(delegated(), "aud", json!([1]));
    assert!(matches!(
        check(&v, &hs256(&odd), now()).await,
        Err(AuthError::Malformed(_))
    ));
}

#[tokio::test]
async fn configured_audience_is_added_to_the_defaults() {
    let v = verifier(AuthConfig {
        audiences: vec!["api://presenced".into()],
        ..config()
    })
    .await;
    let extra = with(delegated(), "aud", json!("api://presenced"));
    assert!(check(&v, &hs256(&extra), now()).await.is_ok());
    assert!(check(&v, &hs256(&delegated()), now()).await.is_ok());
}

#[tokio::test]
async fn missing_audience_is_refused() {
    let claims = without(delegated(), "aud");
    assert_eq!(
        check(&dev().await, &hs256(&claims), now()).await,
        Err(AuthError::MissingClaim("aud"))
    );
}

#[tokio::test]
async fn issuer_mismatch_is_refused() {
    let v = verifier(AuthConfig {
        issuer: Some("https://issuer.example/".into()),
        ..config()
    })
    .await;
    let err = check(&v, &hs256(&delegated()), now()).await.unwrap_err();
    assert_eq!(err, AuthError::WrongIssuer);
    assert!(!err.is_forbidden());
    let right = with(delegated(), "iss", json!("https://issuer.example/"));
    assert!(check(&v, &hs256(&right), now()).await.is_ok());
    let missing = without(delegated(), "iss");
    assert_eq!(
        check(&v, &hs256(&missing), now()).await,
        Err(AuthError::MissingClaim("iss"))
    );
}

#[tokio::test]
async fn issuer_is_not_checked_unless_configured() {
    let claims = with(delegated(), "iss", json!("https://anything.example/"));
    assert!(check(&dev().await, &hs256(&claims), now()).await.is_ok());
}

#[tokio::test]
async fn issuer_template_takes_the_tenant() {
    let v = verifier(AuthConfig {
        issuer: Some("https://sts.windows.net/{tenantid}/".into()),
        ..config()
    })
    .await;
    assert!(check(&v, &hs256(&delegated()), now()).await.is_ok());
    let other = with(
        delegated(),
        "iss",
        json!(format!("https://sts.windows.net/{}/", Uuid::from_u128(5))),
    );
    assert_eq!(
        check(&v, &hs256(&other), now()).await,
        Err(AuthError::WrongIssuer)
    );
}

// ---- Entra claims

#[tokio::test]
async fn personal_account_is_forbidden() {
    let claims = with(
        delegated(),
        "tid",
        json!("9188040d-6c67-4c5b-b112-36a304b66dad"),
    );
    let err = check(&dev().await, &hs256(&claims), now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::PersonalAccount);
    assert!(err.is_forbidden());
}

#[tokio::test]
async fn missing_tid_is_refused() {
    let claims = without(delegated(), "tid");
    let err = check(&dev().await, &hs256(&claims), now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::MissingClaim("tid"));
    assert!(!err.is_forbidden());
    assert_eq!(
        err.to_string(),
        "The access token lacks the required 'tid' claim."
    );
}

#[tokio::test]
async fn non_guid_tid_is_malformed() {
    let v = dev().await;
    for tid in [
        json!("contoso"),
        json!(TENANT.simple().to_string()),
        json!(42),
    ] {
        let claims = with(delegated(), "tid", tid);
        let err = check(&v, &hs256(&claims), now()).await.unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
    }
}

#[tokio::test]
async fn delegated_token_without_oid_is_refused() {
    let claims = without(delegated(), "oid");
    assert_eq!(
        check(&dev().await, &hs256(&claims), now()).await,
        Err(AuthError::MissingClaim("oid"))
    );
    let bad = with(delegated(), "oid", json!("not-a-guid"));
    assert!(matches!(
        check(&dev().await, &hs256(&bad), now()).await,
        Err(AuthError::Malformed(_))
    ));
}

#[tokio::test]
async fn application_token_needs_no_oid() {
    let claims = without(application(), "oid");
    assert!(check(&dev().await, &hs256(&claims), now()).await.is_ok());
}

#[tokio::test]
async fn missing_appid_and_azp_is_refused() {
    let v = dev().await;
    let claims = without(delegated(), "appid");
    assert_eq!(
        check(&v, &hs256(&claims), now()).await,
        Err(AuthError::MissingClaim("appid"))
    );
    let empty = with(delegated(), "appid", json!(""));
    assert_eq!(
        check(&v, &hs256(&empty), now()).await,
        Err(AuthError::MissingClaim("appid"))
    );
}

#[tokio::test]
async fn token_without_scp_or_roles_is_forbidden() {
    let claims = without(application(), "roles");
    let err = check(&dev().await, &hs256(&claims), now())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Forbidden(_)), "{err:?}");
    assert!(err.is_forbidden());
    assert!(err.to_string().contains("'scp'"));
}

#[tokio::test]
async fn roles_must_be_an_array_of_strings() {
    let claims = with(application(), "roles", json!("Presence.Read.All"));
    assert!(matches!(
        check(&dev().await, &hs256(&claims), now()).await,
        Err(AuthError::Malformed(_))
    ));
}

// ---- JWKS file

#[tokio::test]
async fn rs256_token_verifies_with_a_jwks_file() {
    let file = jwks_file(&[rsa_jwk(), ec_jwk()]);
    let v = jwks_verifier(&file).await;
    let token = signed(Algorithm::RS256, Some("rsa-1"), RSA_PEM, &delegated());
    let p = check(&v, &token, now()).await.unwrap();
    assert_eq!(p.kind, PrincipalKind::Delegated { user: USER });
}

#[tokio::test]
async fn es256_token_verifies_with_a_jwks_file() {
    let file = jwks_file(&[rsa_jwk(), ec_jwk()]);
    let v = jwks_verifier(&file).await;
    let token = signed(Algorithm::ES256, Some("ec-1"), EC_PEM, &application());
    let p = check(&v, &token, now()).await.unwrap();
    assert_eq!(p.kind, PrincipalKind::Application);
}

#[tokio::test]
async fn token_without_kid_uses_the_only_key() {
    let file = jwks_file(&[rsa_jwk()]);
    let v = jwks_verifier(&file).await;
    let token = signed(Algorithm::RS256, None, RSA_PEM, &delegated());
    assert!(check(&v, &token, now()).await.is_ok());

    let two = jwks_file(&[rsa_jwk(), rsa2_jwk()]);
    let v = jwks_verifier(&two).await;
    assert_eq!(check(&v, &token, now()).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    let file = jwks_file(&[rsa_jwk()]);
    let v = jwks_verifier(&file).await;
    let token = signed(Algorithm::RS256, Some("rsa-9"), RSA_PEM, &delegated());
    let err = check(&v, &token, now()).await.unwrap_err();
    assert_eq!(err, AuthError::UnknownKey);
    assert!(!err.is_forbidden());
}

#[tokio::test]
async fn kid_of_another_key_type_is_unknown() {
    let file = jwks_file(&[rsa_jwk(), ec_jwk()]);
    let v = jwks_verifier(&file).await;
    let token = signed(Algorithm::ES256, Some("rsa-1"), EC_PEM, &delegated());
    assert_eq!(check(&v, &token, now()).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn rs256_signed_by_another_key_is_a_bad_signature() {
    let file = jwks_file(&[rsa_jwk()]);
    let v = jwks_verifier(&file).await;
    let token = signed(Algorithm::RS256, Some("rsa-1"), RSA2_PEM, &delegated());
    assert_eq!(check(&v, &token, now()).await, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn jwks_file_claims_are_checked_too() {
    let file = jwks_file(&[ec_jwk()]);
    let v = jwks_verifier(&file).await;
    let claims = with(delegated(), "exp", json!(now().timestamp() - 3600));
    let token = signed(Algorithm::ES256, Some("ec-1"), EC_PEM, &claims);
    assert_eq!(check(&v, &token, now()).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn secret_and_jwks_may_be_combined() {
    let file = jwks_file(&[rsa_jwk()]);
    let v = verifier(AuthConfig {
        jwks_file: Some(file.path().to_owned()),
        ..config()
    })
    .await;
    assert!(check(&v, &hs256(&delegated()), now()).await.is_ok());
    let token = signed(Algorithm::RS256, Some("rsa-1"), RSA_PEM, &delegated());
    assert!(check(&v, &token, now()).await.is_ok());
}

#[tokio::test]
async fn unusable_jwks_file_fails_at_start() {
    let file = jwks_file(&[]);
    let err = TokenVerifier::new(AuthConfig {
        jwks_file: Some(file.path().to_owned()),
        ..AuthConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, AuthError::KeySource(_)), "{err:?}");
}

#[tokio::test]
async fn no_key_source_fails_at_start() {
    let err = TokenVerifier::new(AuthConfig::default()).await.unwrap_err();
    assert!(matches!(err, AuthError::KeySource(_)), "{err:?}");
}

#[tokio::test]
async fn empty_secret_fails_at_start() {
    let err = TokenVerifier::new(AuthConfig {
        hs256_secret: Some(Vec::new()),
        ..AuthConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, AuthError::KeySource(_)), "{err:?}");
}

// ---- JWKS URL

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

#[tokio::test]
async fn jwks_url_is_fetched_at_start() {
    let server = JwksServer::start(&[rsa_jwk()]).await;
    let v = url_verifier(&server).await;
    assert_eq!(server.hits(), 1);
    let token = signed(Algorithm::RS256, Some("rsa-1"), RSA_PEM, &delegated());
    assert!(check(&v, &token, now()).await.is_ok());
    assert_eq!(server.hits(), 1, "a known kid needs no fetch");
}

#[tokio::test]
async fn unknown_kid_refetches_the_url_at_most_once_a_minute() {
    let server = JwksServer::start(&[rsa_jwk()]).await;
    let v = url_verifier(&server).await;

    // The provider rotates in a new key; a token signed with it arrives.
    server.serve(&[rsa_jwk(), rsa2_jwk()]);
    let rotated = signed(Algorithm::RS256, Some("rsa-2"), RSA2_PEM, &delegated());
    assert!(check(&v, &rotated, now()).await.is_ok());
    assert_eq!(server.hits(), 2);

    // Another unknown kid within the minute: no fetch.
    server.serve(&[rsa_jwk(), rsa2_jwk(), ec_jwk()]);
    let newer = signed(Algorithm::ES256, Some("ec-1"), EC_PEM, &delegated());
    let soon = now() + Duration::seconds(59);
    assert_eq!(check(&v, &newer, soon).await, Err(AuthError::UnknownKey));
    assert_eq!(server.hits(), 2);

    // A minute after the last refetch: fetched again, and accepted.
    let later = now() + Duration::seconds(60);
    assert!(check(&v, &newer, later).await.is_ok());
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn failed_refetch_keeps_the_old_keys() {
    let server = JwksServer::start(&[rsa_jwk()]).await;
    let v = url_verifier(&server).await;
    server.serve(&[]);
    let unknown = signed(Algorithm::RS256, Some("rsa-2"), RSA2_PEM, &delegated());
    assert_eq!(check(&v, &unknown, now()).await, Err(AuthError::UnknownKey));
    assert_eq!(server.hits(), 2);
    let known = signed(Algorithm::RS256, Some("rsa-1"), RSA_PEM, &delegated());
    assert!(check(&v, &known, now()).await.is_ok());
}

#[tokio::test]
async fn token_without_kid_does_not_refetch() {
    let server = JwksServer::start(&[rsa_jwk(), rsa2_jwk()]).await;
    let v = url_verifier(&server).await;
    let token = signed(Algorithm::RS256, None, RSA_PEM, &delegated());
    assert_eq!(check(&v, &token, now()).await, Err(AuthError::UnknownKey));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn failed_fetch_at_start_is_a_key_source_error() {
    let server = JwksServer::start(&[]).await;
    let err = TokenVerifier::new(AuthConfig {
        jwks_url: Some(server.url.clone()),
        ..AuthConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, AuthError::KeySource(_)), "{err:?}");

    // Nothing listens on this port once the listener is dropped.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let err = TokenVerifier::new(AuthConfig {
        jwks_url: Some(format!("http://127.0.0.1:{port}/jwks")),
        ..AuthConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, AuthError::KeySource(_)), "{err:?}");
}

// ---- Authorization header

#[test]
fn bearer_token_parses_the_header() {
    assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(bearer_token(Some("bearer   abc")), Ok("abc"));
    assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(Some("  ")), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::MissingToken));
    assert!(matches!(
        bearer_token(Some("Basic dXNlcjpwdw==")),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn verifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TokenVerifier>();
}

#[tokio::test]
async fn critical_header_extensions_are_refused_even_when_signed() {
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(delegated().to_string());
    let message = format!("{header}.{claims}");
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    let token = format!("{message}.{signature}");
    let err = check(&dev().await, &token, now()).await.unwrap_err();
    assert!(
        matches!(err, AuthError::Malformed(ref m) if m.contains("crit")),
        "{err:?}"
    );
}

#[path = "cache_tests.rs"]
mod cache;
