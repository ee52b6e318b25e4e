//! Claims: audience and issuer, and the Entra claims (`tid`, `oid`,
//! `appid`/`azp`, `scp`/`roles`).

use super::*;

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
