//! Tests of the token cache (`auth/cache.rs`, issue #14) through
//! [`super::super::TokenVerifier`]: a hit needs the very same token, gives
//! the answer the full check would give at that `now`, and the cache stays
//! bounded.

use super::*;
use crate::auth::TokenCacheStats;

fn stats(hits: u64, misses: u64, entries: usize) -> TokenCacheStats {
    TokenCacheStats {
        hits,
        misses,
        entries,
    }
}

/// `token` with its character at `index` replaced by another base64url one.
fn altered(token: &str, index: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn second_verification_of_a_token_is_a_cache_hit() {
    let v = dev().await;
    let token = hs256(&delegated());

    let first = check(&v, &token, now()).await.unwrap();
    assert_eq!(v.cache_stats(), stats(0, 1, 1));
    let second = check(&v, &token, now() + Duration::minutes(5))
        .await
        .unwrap();

    assert_eq!(second, first);
    assert_eq!(v.cache_stats(), stats(1, 1, 1));
}

#[tokio::test]
async fn refusals_are_never_cached() {
    let v = dev().await;
    let expired = hs256(&with(delegated(), "exp", json!(now().timestamp() - 3600)));
    let forged = hs256_with(b"another-secret", &delegated());
    let grants_nothing = hs256(&without(application(), "roles"));

    for token in [&expired, &forged, &grants_nothing] {
        for _ in 0..2 {
            assert!(check(&v, token, now()).await.is_err());
        }
    }

    assert_eq!(v.cache_stats(), stats(0, 6, 0));
}

#[tokio::test]
async fn altered_signature_is_refused_after_the_genuine_token_was_cached() {
    alterations_of_a_cached_token_are_refused().await;
}

/// The same on one connection, which remembers the genuine token's digest
/// (`cache::remembering_tokens`): an altered token is hashed afresh.
#[tokio::test]
async fn altered_signature_is_refused_on_the_connection_that_sent_the_genuine_token() {
    crate::auth::remembering_tokens(alterations_of_a_cached_token_are_refused()).await;
}

async fn alterations_of_a_cached_token_are_refused() {
    let v = dev().await;
    let token = hs256(&delegated());
    check(&v, &token, now()).await.unwrap();
    let signature = token.rfind('.').unwrap() + 1;

    // First, a middle and the next-to-last character: each carries six
    // whole bits of the signature (the last one has padding bits).
    for index in [signature, signature + 20, token.len() - 2] {
        let forged = altered(&token, index);
        assert_eq!(
            check(&v, &forged, now()).await,
            Err(AuthError::BadSignature),
            "signature character {index}"
        );
    }
    // Other claims under the genuine signature.
    let parts: Vec<&str> = token.split('.').collect();
    let claims = with(delegated(), "tid", json!(Uuid::from_u128(9).to_string()));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(
        check(&v, &tampered, now()).await,
        Err(AuthError::BadSignature)
    );

    assert_eq!(v.cache_stats(), stats(0, 5, 1), "every forgery missed");
    assert!(check(&v, &token, now()).await.is_ok());
    assert_eq!(v.cache_stats(), stats(1, 5, 1));
}

#[tokio::test]
async fn cached_token_is_refused_once_now_passes_exp() {
    let v = dev().await;
    let token = hs256(&delegated());
    let exp = now() + Duration::hours(1);
    check(&v, &token, now()).await.unwrap();

    // Within the 60 s leeway: still accepted, from the cache.
    assert!(check(&v, &token, exp + Duration::seconds(59)).await.is_ok());
    assert_eq!(v.cache_stats(), stats(1, 1, 1));

    // At exp + leeway: refused from the cache, and the entry dropped.
    let late = exp + Duration::seconds(60);
    assert_eq!(check(&v, &token, late).await, Err(AuthError::Expired));
    assert_eq!(v.cache_stats(), stats(2, 1, 0));

    // Later still: the full check refuses it too, and nothing is cached.
    assert_eq!(
        check(&v, &token, late + Duration::days(1)).await,
        Err(AuthError::Expired)
    );
    assert_eq!(v.cache_stats(), stats(2, 2, 0));
}

#[tokio::test]
async fn token_not_yet_valid_stays_refused() {
    let v = dev().await;
    let nbf = now() + Duration::minutes(10);
    let token = hs256(&with(delegated(), "nbf", json!(nbf.timestamp())));

    // Before nbf (less the leeway): refused each time, never cached.
    for _ in 0..2 {
        assert_eq!(check(&v, &token, now()).await, Err(AuthError::NotYetValid));
    }
    assert_eq!(v.cache_stats(), stats(0, 2, 0));

    // From nbf - leeway on: accepted and cached.
    let valid = nbf - Duration::seconds(60);
    assert!(check(&v, &token, valid).await.is_ok());
    assert_eq!(v.cache_stats(), stats(0, 3, 1));

    // A `now` before nbf again (a wall clock stepped back) is refused by
    // the cache as well, which keeps the entry for when it is valid.
    assert_eq!(
        check(&v, &token, valid - Duration::seconds(1)).await,
        Err(AuthError::NotYetValid)
    );
    assert_eq!(v.cache_stats(), stats(1, 3, 1));
    assert!(check(&v, &token, valid).await.is_ok());
    assert_eq!(v.cache_stats(), stats(2, 3, 1));
}

#[tokio::test]
async fn cached_answers_match_the_full_check_at_every_time() {
    let nbf = now();
    let exp = now() + Duration::hours(1);
    let token = hs256(&with(delegated(), "nbf", json!(nbf.timestamp())));
    for leeway in [0, 60] {
        let config = AuthConfig {
            leeway_secs: leeway,
            ..config()
        };
        let l = Duration::seconds(i64::try_from(leeway).unwrap());
        let s = Duration::seconds(1);
        let times = [
            nbf - Duration::days(1),
            nbf - l - s,
            nbf - l,
            nbf,
            exp - s,
            exp,
            exp + l - s,
            exp + l,
            exp + Duration::days(1),
        ];
        for at in times {
            let full = check(&verifier(config.clone()).await, &token, at).await;
            let cached = verifier(config.clone()).await;
            check(&cached, &token, now()).await.unwrap();
            assert_eq!(
                check(&cached, &token, at).await,
                full,
                "leeway {leeway}, {at}"
            );
            assert_eq!(cached.cache_stats().hits, 1, "answered from the cache");
        }
    }
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let v = dev().await.with_cache_capacity(50);

    for i in 0..200 {
        let token = hs256(&with(delegated(), "jti", json!(i)));
        check(&v, &token, now()).await.unwrap();
    }

    let s = v.cache_stats();
    assert_eq!(s.misses, 200);
    assert!(s.entries > 0 && s.entries <= 50, "{s:?}");
}

#[tokio::test]
async fn cached_token_is_refused_once_a_refetch_drops_its_key() {
    let server = JwksServer::start(&[rsa_jwk()]).await;
    let v = url_verifier(&server).await;
    let token = signed(Algorithm::RS256, Some("rsa-1"), RSA_PEM, &delegated());
    check(&v, &token, now()).await.unwrap();
    check(&v, &token, now()).await.unwrap();
    assert_eq!(v.cache_stats(), stats(1, 1, 1));

    // The provider retires rsa-1; a token signed with its successor makes
    // the verifier refetch.
    server.serve(&[rsa2_jwk()]);
    let successor = signed(Algorithm::RS256, Some("rsa-2"), RSA2_PEM, &delegated());
    assert!(check(&v, &successor, now()).await.is_ok());
    assert_eq!(server.hits(), 2);

    assert_eq!(check(&v, &token, now()).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn a_refetch_that_keeps_the_key_keeps_the_token_accepted() {
    let server = JwksServer::start(&[rsa_jwk()]).await;
    let v = url_verifier(&server).await;
    let token = signed(Algorithm::RS256, Some("rsa-1"), RSA_PEM, &delegated());
    check(&v, &token, now()).await.unwrap();

    server.serve(&[rsa_jwk(), rsa2_jwk()]);
    let other = signed(Algorithm::RS256, Some("rsa-2"), RSA2_PEM, &delegated());
    check(&v, &other, now()).await.unwrap();

    // Verified again under the new keys (a miss), then cached again.
    let misses = v.cache_stats().misses;
    assert!(check(&v, &token, now()).await.is_ok());
    assert_eq!(v.cache_stats().misses, misses + 1);
    assert!(check(&v, &token, now()).await.is_ok());
    assert_eq!(v.cache_stats().misses, misses + 1);
}

#[tokio::test]
async fn cached_token_without_kid_is_refused_once_a_second_key_appears() {
    let server = JwksServer::start(&[rsa_jwk()]).await;
    let v = url_verifier(&server).await;
    let token = signed(Algorithm::RS256, None, RSA_PEM, &delegated());
    check(&v, &token, now()).await.unwrap();

    server.serve(&[rsa_jwk(), rsa2_jwk()]);
    let other = signed(Algorithm::RS256, Some("rsa-2"), RSA2_PEM, &delegated());
    check(&v, &other, now()).await.unwrap();

    // Which key signed it is now ambiguous, as for the full check.
    assert_eq!(check(&v, &token, now()).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn hs256_tokens_are_cached_with_jwks_configured_too() {
    let file = jwks_file(&[rsa_jwk()]);
    let v = verifier(AuthConfig {
        jwks_file: Some(file.path().to_owned()),
        ..config()
    })
    .await;
    let token = hs256(&delegated());
    check(&v, &token, now()).await.unwrap();
    check(&v, &token, now()).await.unwrap();
    assert_eq!(v.cache_stats(), stats(1, 1, 1));
}
