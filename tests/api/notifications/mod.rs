//! Change notifications end to end (SPEC §7): subscriptions over HTTP, the
//! validation handshake, deliveries to real receivers on loopback, fades
//! driven by the clock, retries, lifecycle, and rich notifications.

use chrono::TimeDelta;
use presenced::clock::Clock;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::TestServer;

mod delivery;
mod events;
mod lifecycle;
mod refusals;
mod rich;
mod subscriptions;

/// RFC 3339 text of the server's clock plus `minutes`.
fn in_minutes(server: &TestServer, minutes: i64) -> String {
    (server.clock.now() + TimeDelta::minutes(minutes)).to_rfc3339()
}

/// The fixture certificate (RSA 2048) as base64 DER, for rich subscriptions.
fn add_certificate(body: &mut Value) {
    let pem = include_str!("../../fixtures/notify-rsa2048.cert.pem");
    body["includeResourceData"] = json!(true);
    body["encryptionCertificate"] = json!(pem);
    body["encryptionCertificateId"] = json!("test-cert");
}

/// Subscribes `watcher` to `users` with resource data, encrypted for the
/// fixture certificate ([`add_certificate`]), delivered to `hook`.
async fn subscribe_with_resource_data(
    server: &TestServer,
    watcher: Uuid,
    hook: &str,
    users: &[Uuid],
) -> String {
    let mut body = server.subscription_body(hook, users);
    add_certificate(&mut body);
    server.subscribe(watcher, body).await
}

/// Decrypts a rich notification item with the fixture's private key
/// (Graph's recipe, SPEC §7) and returns (availability, activity).
fn decrypt_state(item: &Value) -> (String, String) {
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    use base64::Engine;
    use hmac::Mac;
    use rsa::pkcs8::DecodePrivateKey;
    let b64 = base64::engine::general_purpose::STANDARD;
    let content = &item["encryptedContent"];
    assert_eq!(content["encryptionCertificateId"], "test-cert", "{item}");
    let key =
        rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../../fixtures/notify-rsa2048.key.pem"))
            .unwrap();
    let wrapped = b64.decode(content["dataKey"].as_str().unwrap()).unwrap();
    let k = key
        .decrypt(rsa::Oaep::new::<sha1::Sha1>(), &wrapped)
        .unwrap();
    let data = b64.decode(content["data"].as_str().unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&k).unwrap();
    mac.update(&data);
    let signature = b64
        .decode(content["dataSignature"].as_str().unwrap())
        .unwrap();
    mac.verify_slice(&signature).expect("dataSignature matches");
    let plain = cbc::Decryptor::<aes::Aes256>::new_from_slices(&k, &k[..16])
        .unwrap()
        .decrypt_padded_vec_mut::<aes::cipher::block_padding::Pkcs7>(&data)
        .unwrap();
    let presence: Value = serde_json::from_slice(&plain).unwrap();
    (
        presence["availability"].as_str().unwrap().to_string(),
        presence["activity"].as_str().unwrap().to_string(),
    )
}
