//! Accepted tokens: delegated and application principals, minted tokens,
//! `azp` for a missing `appid`, and an uppercase `tid`.

use super::*;

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
