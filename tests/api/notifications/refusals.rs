//! Subscriptions refused: failed validation handshakes, bad requests (each
//! with its reason) and, outside emulator mode, webhooks to internal addresses.

use chrono::TimeDelta;
use serde_json::{json, Value};
use uuid::Uuid;

use super::in_minutes;
use crate::helpers::{TestServer, ALL_SCOPES, APP};
use crate::receiver::{Receiver, Validation};

#[tokio::test]
async fn the_validation_handshake_failures_answer_graphs_errors() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.user_token(Uuid::new_v4(), ALL_SCOPES);
    let body = server.subscription_body(&receiver.hook(), &[Uuid::new_v4()]);
    receiver.validate_with(Validation::Status(500));
    let r = server
        .post("/v1.0/subscriptions", &token, body.clone())
        .await;
    assert_eq!(
        r.error(400, "ValidationError"),
        "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
    );
    receiver.validate_with(Validation::WrongEcho);
    let r = server
        .post("/v1.0/subscriptions", &token, body.clone())
        .await;
    assert_eq!(
        r.error(400, "ValidationError"),
        "Subscription validation request failed. Response must exactly match validationToken query parameter."
    );
    let mut unreachable = body.clone();
    unreachable["notificationUrl"] = json!("http://127.0.0.1:9/hook");
    let r = server
        .post("/v1.0/subscriptions", &token, unreachable)
        .await;
    r.error(400, "ValidationError");
    receiver.validate_with(Validation::Hang);
    let r = server.post("/v1.0/subscriptions", &token, body).await;
    assert_eq!(
        r.error(400, "InvalidRequest"),
        "Subscription validation request timed out."
    );
}

#[tokio::test]
async fn bad_subscription_requests_are_400_with_the_reason() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.user_token(Uuid::new_v4(), ALL_SCOPES);
    let alice = Uuid::new_v4();
    let base = server.subscription_body(&receiver.hook(), &[alice]);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "changeType",
            json!("created"),
            "invalidRequest",
            "changeType 'created'",
        ),
        (
            "resource",
            json!("/users/x/presence"),
            "invalidRequest",
            "not a supported presence subscription resource",
        ),
        (
            "resource",
            json!("/communications/presences/not-a-guid"),
            "invalidRequest",
            "not a valid user id",
        ),
        (
            "expirationDateTime",
            json!(in_minutes(&server, -1)),
            "invalidRequest",
            "is in the past",
        ),
        (
            "expirationDateTime",
            json!(in_minutes(&server, 61)),
            "invalidRequest",
            "Subscription expiration can only be 60 minutes in the future.",
        ),
        (
            "expirationDateTime",
            json!("tomorrow"),
            "invalidRequest",
            "is not a date-time",
        ),
        (
            "notificationUrl",
            json!("http://example.com/hook"),
            "InvalidRequest",
            "NotificationUrl scheme='http' is not supported.",
        ),
        (
            "clientState",
            json!("x".repeat(129)),
            "invalidRequest",
            "clientState is 129 characters long",
        ),
        (
            "includeResourceData",
            json!(true),
            "invalidRequest",
            "encryptionCertificate",
        ),
    ];
    for (field, value, code, message) in cases {
        let mut body = base.clone();
        body[field] = value;
        let r = server.post("/v1.0/subscriptions", &token, body).await;
        let text = r.error(400, code);
        assert!(text.contains(message), "{field}: {text}");
    }
    let ids: Vec<String> = (0..651).map(|_| format!("'{}'", Uuid::new_v4())).collect();
    let mut body = base.clone();
    body["resource"] = json!(format!(
        "/communications/presences?$filter=id in ({})",
        ids.join(",")
    ));
    let r = server.post("/v1.0/subscriptions", &token, body).await;
    assert!(r.error(400, "invalidRequest").contains("at most 650"));
    let mut body = base.clone();
    body["includeResourceData"] = json!(true);
    body["encryptionCertificate"] = json!("bm90IGEgY2VydA==");
    body["encryptionCertificateId"] = json!("cert-1");
    let r = server.post("/v1.0/subscriptions", &token, body).await;
    assert!(r
        .error(400, "invalidRequest")
        .contains("encryptionCertificate is not a DER-encoded X.509 certificate"));
    let mut body = base;
    body.as_object_mut().unwrap().remove("notificationUrl");
    let r = server.post("/v1.0/subscriptions", &token, body).await;
    assert_eq!(
        r.error(400, "invalidRequest"),
        "notificationUrl is required."
    );
}

#[tokio::test]
async fn outside_emulator_mode_webhooks_to_internal_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::helpers::build_app(&dir, |_| {}).await;
    let caller = presenced::notify::subscriptions::Caller {
        tenant: Uuid::new_v4(),
        app_id: APP.into(),
        user: Some(Uuid::new_v4()),
    };
    let create = |url: &str| {
        let body: presenced::notify::subscriptions::CreateBody = serde_json::from_value(json!({
            "changeType": "updated",
            "notificationUrl": url,
            "resource": format!("/communications/presences/{}", Uuid::new_v4()),
            "expirationDateTime": (presenced::clock::wall_now() + TimeDelta::minutes(50)).to_rfc3339(),
        }))
        .unwrap();
        body
    };
    let err = app
        .notifier()
        .create_subscription(&caller, create("https://127.0.0.1:8443/hook"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("internal address"), "{err}");
    let err = app
        .notifier()
        .create_subscription(&caller, create("http://127.0.0.1:8443/hook"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "NotificationUrl scheme='http' is not supported."
    );
    app.shutdown().await;

    // Allowed by the operator: no longer refused as internal; here the
    // handshake then fails (the receiver speaks no TLS).
    let dir = tempfile::tempdir().unwrap();
    let app = crate::helpers::build_app(&dir, |flags| {
        flags.webhook_allow_cidr = vec!["127.0.0.0/8".into()];
    })
    .await;
    let receiver = Receiver::start().await;
    let https = receiver.url.replace("http://", "https://");
    let err = app
        .notifier()
        .create_subscription(&caller, create(&format!("{https}/hook")))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        presenced::notify::subscriptions::SubscriptionError::Validation(
            presenced::notify::subscriptions::ValidationFailure::Unreachable
        )
    );
    assert_eq!(receiver.validations().len(), 0);
    app.shutdown().await;
}
