//! Keys from a JWKS URL: fetched at start, refetched for an unknown `kid`
//! at most once a minute, and the old keys kept when a refetch fails.

use super::*;

// ---- JWKS URL

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
