//! Signatures and algorithms (wrong secret, tampering, `alg: none`, keys
//! that are not configured, critical header extensions) and the token's
//! shape.

use super::*;

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
