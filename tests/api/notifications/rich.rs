//! Rich notifications: the validation-token keys published as a JWKS, and
//! encrypted resource data carrying tokens that JWKS verifies.

use serde_json::Value;
use uuid::Uuid;

use super::{add_certificate, decrypt_state};
use crate::helpers::{TestServer, ALL_SCOPES, APP};
use crate::receiver::Receiver;

#[tokio::test]
async fn the_validation_token_keys_are_published_as_a_jwks() {
    let server = TestServer::start().await;
    let r = server
        .send(
            reqwest::Method::GET,
            "/_presenced/.well-known/jwks.json",
            None,
            None,
        )
        .await;
    let keys = r.ok_json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    assert!(keys[0]["kid"].is_string());
}

#[tokio::test]
async fn rich_notifications_carry_validation_tokens_the_jwks_verifies() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut body = server.subscription_body(&receiver.hook(), &[alice]);
    add_certificate(&mut body);
    let r = server
        .post(
            "/v1.0/subscriptions",
            &server.user_token(watcher, ALL_SCOPES),
            body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["encryptionCertificate"], Value::Null, "never echoed");
    assert_eq!(r.body["encryptionCertificateId"], "test-cert");
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    receiver.wait_for_items(1).await;
    let post = &receiver.posts()[0].body;
    let item = &post["value"][0];
    assert_eq!(
        item["encryptedContent"]["encryptionCertificateThumbprint"],
        "E8B237ADD4314C42E967FF192871DC914CFEE69F"
    );
    assert_eq!(decrypt_state(item), ("Busy".into(), "InACall".into()));
    let tokens = post["validationTokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    let jwks = server
        .send(
            reqwest::Method::GET,
            "/_presenced/.well-known/jwks.json",
            None,
            None,
        )
        .await;
    let key = &jwks.body["keys"][0];
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[APP]);
    let claims = jsonwebtoken::decode::<Value>(tokens[0].as_str().unwrap(), &decoding, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["appid"], "0bf30f3b-4a52-48df-9a82-234910c4a086");
    assert_eq!(claims["azp"], "0bf30f3b-4a52-48df-9a82-234910c4a086");
    assert_eq!(claims["tid"], server.tenant.to_string());
}
