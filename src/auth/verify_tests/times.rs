//! Time: `exp` and `nbf` against the passed-in now, within and beyond the
//! (configurable) leeway.

use super::*;

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
