//! Subscriptions over HTTP: creating (with the validation handshake and
//! Graph's shape), listing, reading, renewing, changing and deleting, and
//! Graph's limits on who may subscribe and how often.

use chrono::TimeDelta;
use serde_json::{json, Value};
use uuid::Uuid;

use super::in_minutes;
use crate::helpers::{t0, TestServer, ALL_SCOPES, APP};
use crate::receiver::{Receiver, Validation};

#[tokio::test]
async fn creating_a_subscription_validates_the_endpoint_and_answers_graphs_shape() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let token = server.user_token(watcher, ALL_SCOPES);
    let mut body = server.subscription_body(&receiver.hook(), &[alice]);
    body["expirationDateTime"] = json!(in_minutes(&server, 10));
    body["lifecycleNotificationUrl"] = json!(format!("{}/lifecycle", receiver.url));
    let r = server.post("/beta/subscriptions", &token, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let s = &r.body;
    assert!(s["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/beta/$metadata#subscriptions/$entity"));
    assert!(Uuid::try_parse(s["id"].as_str().unwrap()).is_ok());
    assert_eq!(s["resource"], format!("/communications/presences/{alice}"));
    assert_eq!(s["changeType"], "updated");
    assert_eq!(s["clientState"], "secret-state");
    assert_eq!(s["applicationId"], APP);
    assert_eq!(s["creatorId"], watcher.to_string());
    assert_eq!(s["includeResourceData"], false);
    assert_eq!(s["latestSupportedTlsVersion"], "v1_2");
    assert_eq!(s["encryptionCertificate"], Value::Null);
    // Under 45 minutes is raised to 45 (SPEC §7).
    assert_eq!(
        s["expirationDateTime"], "2026-01-01T09:45:00.0000000Z",
        "{}",
        r.text
    );
    let validations = receiver.validations();
    assert_eq!(validations.len(), 2, "notification and lifecycle URLs");
    assert!(validations[0].0.starts_with("Validation: "));
    assert_eq!(validations[0].1, "text/plain; charset=utf-8");
}

#[tokio::test]
async fn subscriptions_are_listed_read_renewed_and_deleted_only_by_their_owner() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (owner, other, alice) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let id = server.subscribe_to(owner, &receiver.hook(), &[alice]).await;
    let mine = server.user_token(owner, ALL_SCOPES);
    let theirs = server.user_token(other, ALL_SCOPES);
    let list = server.get("/v1.0/subscriptions", &mine).await;
    let list = list.ok_json();
    assert!(list["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/v1.0/$metadata#subscriptions"));
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(list["value"][0]["id"], id.as_str());
    assert_eq!(list["value"][0]["clientState"], Value::Null);
    let empty = server.get("/v1.0/subscriptions", &theirs).await;
    assert_eq!(empty.ok_json()["value"], json!([]));
    let path = format!("/v1.0/subscriptions/{id}");
    server
        .get(&path, &theirs)
        .await
        .error(404, "ResourceNotFound");
    let other_tenant =
        crate::helpers::token(Uuid::new_v4(), Some(owner), APP, Some(ALL_SCOPES), None);
    server
        .get(&path, &other_tenant)
        .await
        .error(404, "ResourceNotFound");
    let got = server.get(&path, &mine).await;
    assert_eq!(got.ok_json()["clientState"], "secret-state");
    // Renew: the new expiry shows, and beyond 60 minutes is refused.
    server.tick(TimeDelta::minutes(30)).await;
    let renewed = server
        .patch(
            &path,
            &mine,
            json!({"expirationDateTime": in_minutes(&server, 60)}),
        )
        .await;
    assert_eq!(
        renewed.ok_json()["expirationDateTime"],
        "2026-01-01T10:30:00.0000000Z"
    );
    let too_far = server
        .patch(
            &path,
            &mine,
            json!({"expirationDateTime": in_minutes(&server, 61)}),
        )
        .await;
    assert_eq!(
        too_far.error(400, "invalidRequest"),
        "Subscription expiration can only be 60 minutes in the future."
    );
    let r = server.delete(&path, &theirs).await;
    r.error(404, "ResourceNotFound");
    let r = server.delete(&path, &mine).await;
    assert_eq!(r.status, 204, "{}", r.text);
    server
        .get(&path, &mine)
        .await
        .error(404, "ResourceNotFound");
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    receiver.assert_stays_at(0).await;
}

#[tokio::test]
async fn graphs_limits_refuse_app_tokens_and_a_second_subscription_of_the_same_user_and_app() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice, bob) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let app = server.app_token(&["Presence.Read.All"]);
    let r = server
        .post(
            "/v1.0/subscriptions",
            &app,
            server.subscription_body(&receiver.hook(), &[alice]),
        )
        .await;
    assert_eq!(
        r.error(403, "ExtensionError"),
        "Operation: Create; Exception: [Status Code: Forbidden; Reason: The request is not authorized for this user or application.]"
    );
    let first = server
        .subscribe_to(watcher, &receiver.hook(), &[alice])
        .await;
    let validated = receiver.validations().len();
    let token = server.user_token(watcher, ALL_SCOPES);
    let same = server
        .post(
            "/v1.0/subscriptions",
            &token,
            server.subscription_body(&receiver.hook(), &[alice]),
        )
        .await;
    assert_eq!(
        same.error(409, "ExtensionError"),
        format!("Subscription Id {first} already exists for the requested combination")
    );
    let other = server
        .post(
            "/v1.0/subscriptions",
            &token,
            server.subscription_body(&receiver.hook(), &[bob]),
        )
        .await;
    assert_eq!(
        other.error(409, "ExtensionError"),
        "Operation: Create; Exception: [Status Code: Conflict; Reason: A subscripton already exists. It must be deleted before a another can be made.]"
    );
    assert_eq!(
        receiver.validations().len(),
        validated,
        "a conflict is refused before any handshake"
    );
    let no_scope = server.user_token(Uuid::new_v4(), "Presence.Read");
    server
        .post(
            "/v1.0/subscriptions",
            &no_scope,
            server.subscription_body(&receiver.hook(), &[bob]),
        )
        .await
        .error(403, "Forbidden");
}

#[tokio::test]
async fn without_limits_apps_subscribe_any_number_of_times_for_up_to_7_days() {
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.subscription_limits = Some("none".into());
    })
    .await;
    let receiver = Receiver::start().await;
    let alice = Uuid::new_v4();
    let app = server.app_token(&["Presence.Read.All"]);
    for users in [vec![alice], vec![alice, Uuid::new_v4()]] {
        let mut body = server.subscription_body(&receiver.hook(), &users);
        body["expirationDateTime"] = json!(in_minutes(&server, 7 * 24 * 60));
        let r = server.post("/v1.0/subscriptions", &app, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["creatorId"], APP);
        assert_eq!(r.body["expirationDateTime"], "2026-01-08T09:00:00.0000000Z");
    }
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    receiver.wait_for_items(2).await;
}

#[tokio::test]
async fn changing_the_notification_url_validates_the_new_endpoint_and_moves_deliveries() {
    let server = TestServer::start().await;
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let id = server.subscribe_to(watcher, &old.hook(), &[alice]).await;
    let token = server.user_token(watcher, ALL_SCOPES);
    let path = format!("/v1.0/subscriptions/{id}");
    new.validate_with(Validation::WrongEcho);
    let r = server
        .patch(&path, &token, json!({"notificationUrl": new.hook()}))
        .await;
    r.error(400, "ValidationError");
    new.validate_with(Validation::Echo);
    let r = server
        .patch(&path, &token, json!({"notificationUrl": new.hook()}))
        .await;
    assert_eq!(r.ok_json()["notificationUrl"], new.hook());
    assert_eq!(new.validations().len(), 2);
    let r = server
        .patch(&path, &token, json!({"clientState": "changed"}))
        .await;
    r.error(400, "invalidRequest");
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    new.wait_for_items(1).await;
    old.assert_stays_at(0).await;
}
