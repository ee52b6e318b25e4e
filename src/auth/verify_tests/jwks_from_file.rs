//! Keys from a JWKS file: RS256 and ES256, `kid` matching, and the
//! key-source errors at start.

use super::*;

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
