//! Change notifications end to end (SPEC §7): subscriptions over HTTP, the
//! validation handshake, deliveries to real receivers on loopback, fades
//! driven by the clock, retries, lifecycle, and rich notifications.

use std::time::Duration;

use chrono::TimeDelta;
use presenced::clock::Clock;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{t0, TestServer, ALL_SCOPES, APP};
use crate::receiver::{Receiver, Validation};

/// RFC 3339 text of the server's clock plus `minutes`.
fn in_minutes(server: &TestServer, minutes: i64) -> String {
    (server.clock.now() + TimeDelta::minutes(minutes)).to_rfc3339()
}

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
async fn a_write_notifies_in_graphs_format_and_a_keep_alive_does_not() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let id = server
        .subscribe_to(watcher, &receiver.hook(), &[alice])
        .await;
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    let items = receiver.wait_for_items(1).await;
    let item = &items[0];
    assert_eq!(
        item,
        &json!({
            "subscriptionId": id,
            "clientState": "secret-state",
            "changeType": "updated",
            "tenantId": server.tenant.to_string(),
            "organizationId": server.tenant.to_string(),
            "resource": format!("/communications/presences/{alice}"),
            "subscriptionExpirationDateTime": "2026-01-01T10:00:00.0000000Z",
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.presence",
                "@odata.id": format!("users/{alice}/presence"),
                "id": alice.to_string(),
            }
        })
    );
    assert_eq!(
        receiver.posts()[0].content_type,
        "application/json; charset=utf-8"
    );
    // Same pair again: a keep-alive, nothing to tell. Then a real change.
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    server
        .set_presence(alice, "DoNotDisturb", "Presenting", None)
        .await
        .ok_empty();
    let items = receiver.wait_for_items(2).await;
    receiver.assert_stays_at(2).await;
    assert_eq!(items.len(), 2);
}

#[tokio::test]
async fn only_watched_users_notify_and_one_subscription_can_watch_many() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let watcher = Uuid::new_v4();
    let (alice, bob, carol) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    server
        .subscribe_to(watcher, &receiver.hook(), &[alice, bob])
        .await;
    server
        .set_presence(carol, "Busy", "InACall", None)
        .await
        .ok_empty();
    server
        .set_presence(bob, "Busy", "InACall", None)
        .await
        .ok_empty();
    server
        .set_presence(alice, "Away", "Away", None)
        .await
        .ok_empty();
    let items = receiver.wait_for_items(2).await;
    receiver.assert_stays_at(2).await;
    let mut ids: Vec<&str> = items
        .iter()
        .map(|i| i["resourceData"]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![alice.to_string(), bob.to_string()];
    want.sort();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn fades_and_expiry_notify_when_the_clock_moves_each_in_time_order() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    subscribe_with_resource_data(&server, watcher, &receiver.hook(), &[alice]).await;
    server
        .set_presence(alice, "Available", "Available", Some("PT15M"))
        .await
        .ok_empty();
    receiver.wait_for_items(1).await;
    // One move over three transitions: 5 min, 10 min, expiry at 15 min.
    let admin = server.app_token(&["Presenced.Admin"]);
    let r = server
        .post("/_presenced/clock", &admin, json!({"advance": "PT20M"}))
        .await;
    r.ok_json();
    // The clock endpoint queued them before answering.
    let items = receiver.wait_for_items(4).await;
    let states: Vec<(String, String)> = items.iter().map(decrypt_state).collect();
    assert_eq!(
        states,
        vec![
            ("Available".into(), "Available".into()),
            ("Available".into(), "AvailableInactive".into()),
            ("Away".into(), "Away".into()),
            ("Offline".into(), "Offline".into()),
        ]
    );
}

/// Activity before a fade moves the fade. The SQLite store keeps the
/// earlier due time rather than moving its index on every write; the
/// scheduler's visit there must notify nothing, and the fade from the later
/// activity notifies at its own time.
#[tokio::test]
async fn activity_before_a_fade_moves_it_and_the_early_visit_notifies_nothing() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    subscribe_with_resource_data(&server, watcher, &receiver.hook(), &[alice]).await;
    server
        .set_presence(alice, "Available", "Available", Some("PT1H"))
        .await
        .ok_empty();
    receiver.wait_for_items(1).await;
    server.tick(TimeDelta::minutes(1)).await;
    // The same pair again: a keep-alive, which notifies nothing.
    server
        .set_presence(alice, "Available", "Available", Some("PT1H"))
        .await
        .ok_empty();
    // The first activity's fade instant (+5 min) passes without a change.
    server.tick(TimeDelta::minutes(4)).await;
    receiver.assert_stays_at(1).await;
    assert_eq!(
        server.presence_of(alice).await,
        ("Available".to_string(), "Available".to_string())
    );
    // The second activity's fade (+6 min) notifies.
    server.tick(TimeDelta::minutes(1)).await;
    let items = receiver.wait_for_items(2).await;
    assert_eq!(
        decrypt_state(&items[1]),
        ("Available".to_string(), "AvailableInactive".to_string())
    );
}

#[tokio::test]
async fn a_receiver_that_fails_gets_the_notification_again_after_the_backoff() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    server
        .subscribe_to(watcher, &receiver.hook(), &[alice])
        .await;
    receiver.answer_with(500, Duration::ZERO);
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    receiver.wait_for_items(1).await;
    receiver.answer_with(202, Duration::ZERO);
    wait_until_retrying(&server).await;
    // The retry is due 10 s later on the presence clock.
    server.tick(TimeDelta::seconds(11)).await;
    let items = receiver.wait_for_items(2).await;
    assert_eq!(items[0], items[1], "the same notification, again");
    receiver.assert_stays_at(2).await;
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_a_fast_one() {
    let server = TestServer::start().await;
    let (slow, fast) = (Receiver::start().await, Receiver::start().await);
    slow.answer_with(202, Duration::from_secs(60));
    let alice = Uuid::new_v4();
    server
        .subscribe_to(Uuid::new_v4(), &slow.hook(), &[alice])
        .await;
    server
        .subscribe_to(Uuid::new_v4(), &fast.hook(), &[alice])
        .await;
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    slow.wait_for_items(1).await;
    fast.wait_for_items(1).await;
    assert_eq!(
        slow.answered(),
        0,
        "the fast receiver was served while the slow one still held its request"
    );
}

#[tokio::test]
async fn reauthorization_is_requested_15_minutes_before_expiry_and_expiry_ends_the_subscription() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut body = server.subscription_body(&receiver.hook(), &[alice]);
    body["lifecycleNotificationUrl"] = json!(format!("{}/lifecycle", receiver.url));
    let id = server.subscribe(watcher, body).await;
    server.tick(TimeDelta::minutes(44)).await;
    receiver.assert_stays_at(0).await;
    server.tick(TimeDelta::minutes(1)).await;
    let items = receiver.wait_for_items(1).await;
    assert_eq!(
        items[0],
        json!({
            "subscriptionId": id,
            "subscriptionExpirationDateTime": "2026-01-01T10:00:00.0000000Z",
            "tenantId": server.tenant.to_string(),
            "clientState": "secret-state",
            "lifecycleEvent": "reauthorizationRequired",
        })
    );
    assert_eq!(receiver.posts()[0].path, "/lifecycle");
    // Reauthorize: it may be sent again before the expiry.
    let token = server.user_token(watcher, ALL_SCOPES);
    let r = server
        .send(
            reqwest::Method::POST,
            &format!("/v1.0/subscriptions/{id}/reauthorize"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    server.tick(TimeDelta::minutes(1)).await;
    receiver.wait_for_items(2).await;
    // At expiry it is gone: no more notifications, and a 404.
    server.tick(TimeDelta::minutes(15)).await;
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    let r = server
        .get(&format!("/v1.0/subscriptions/{id}"), &token)
        .await;
    r.error(404, "ResourceNotFound");
    receiver.assert_stays_at(2).await;
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
    use presenced::app::App;
    use presenced::config::{Config, FileConfig};
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, crate::helpers::SECRET).unwrap();
    let flags = FileConfig {
        data_dir: Some(dir.path().to_path_buf()),
        jwt_secret_file: Some(secret),
        ..FileConfig::default()
    };
    let config = Config::merge(flags, FileConfig::default(), false).unwrap();
    let store = App::open_store(&config).await.unwrap();
    let clock = App::clock_for(&config, store.as_ref()).await.unwrap();
    let app = App::build(&config, store, clock).await.unwrap();
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
    let secret = dir.path().join("secret");
    std::fs::write(&secret, crate::helpers::SECRET).unwrap();
    let flags = FileConfig {
        data_dir: Some(dir.path().to_path_buf()),
        jwt_secret_file: Some(secret),
        webhook_allow_cidr: vec!["127.0.0.0/8".into()],
        ..FileConfig::default()
    };
    let config = Config::merge(flags, FileConfig::default(), false).unwrap();
    let store = App::open_store(&config).await.unwrap();
    let clock = App::clock_for(&config, store.as_ref()).await.unwrap();
    let app = App::build(&config, store, clock).await.unwrap();
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

/// Waits (with a deadline) until the failed first attempt is recorded.
async fn wait_until_retrying(server: &TestServer) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let queued = server.notifier.queued(10).await.unwrap();
        if queued.iter().any(|d| d.attempts >= 1) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failed delivery was not recorded for a retry within 15 s: {queued:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fixture certificate (RSA 2048) as base64 DER, for rich subscriptions.
fn add_certificate(body: &mut Value) {
    let pem = include_str!("../fixtures/notify-rsa2048.cert.pem");
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
        rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../fixtures/notify-rsa2048.key.pem"))
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

/// Reads server-sent events from a streaming response.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

/// One server-sent event: (event, id, data).
type SseEvent = (String, String, String);

impl Sse {
    async fn open(server: &TestServer, query: &str, token: &str, last: Option<&str>) -> Self {
        let mut req = server
            .client
            .get(format!("{}/_presenced/events{query}", server.url))
            .bearer_auth(token);
        if let Some(last) = last {
            req = req.header("last-event-id", last);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), with a deadline.
    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.into();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = v.into();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v.into();
                    }
                }
                if !event.is_empty() {
                    return (event, id, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.response.chunk())
                .await
                .expect("an event within 15 s")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn the_event_stream_shows_every_change_as_the_caller_would_get_it_and_resumes() {
    let server = TestServer::start().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let reader = server.user_token(Uuid::new_v4(), ALL_SCOPES);
    let mut all = Sse::open(&server, "", &reader, None).await;
    let mut only_bob = Sse::open(&server, &format!("?ids={bob}"), &reader, None).await;
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    let alice_token = server.user_token(alice, ALL_SCOPES);
    let status = json!({"statusMessage": {"message": {"content": "lunch"}}});
    server
        .post(
            &format!("/v1.0/users/{alice}/presence/setStatusMessage"),
            &alice_token,
            status,
        )
        .await
        .ok_empty();
    server
        .set_presence(bob, "Away", "Away", None)
        .await
        .ok_empty();
    let (event, first_id, data) = all.next().await;
    assert_eq!(event, "presence");
    let first: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(first["id"], alice.to_string());
    assert_eq!(first["availability"], "Busy");
    let (_, second_id, data) = all.next().await;
    let second: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(second["statusMessage"]["message"]["content"], "lunch");
    assert!(
        second["statusMessage"].get("publishedDateTime").is_none(),
        "another reader does not see the owner's fields"
    );
    assert!(second_id.parse::<u64>().unwrap() > first_id.parse::<u64>().unwrap());
    let (_, _, data) = all.next().await;
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["id"],
        bob.to_string()
    );
    let (_, _, data) = only_bob.next().await;
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["availability"],
        "Away"
    );
    // Resume after the first event: the rest again, in order.
    let mut resumed = Sse::open(&server, "", &reader, Some(&first_id)).await;
    assert_eq!(resumed.next().await.1, second_id);
    // Time-driven changes are events too.
    server.tick(TimeDelta::minutes(6)).await;
    let (_, _, data) = only_bob.next().await;
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["availability"],
        "Offline"
    );
}

#[tokio::test]
async fn the_event_stream_is_tenant_scoped_and_permission_checked() {
    let server = TestServer::start().await;
    let alice = Uuid::new_v4();
    let own = server.user_token(Uuid::new_v4(), "Presence.Read");
    let r = server.get("/_presenced/events", &own).await;
    r.error(403, "Forbidden");
    let r = server
        .get(&format!("/_presenced/events?ids={alice}"), &own)
        .await;
    r.error(403, "Forbidden");
    let r = server.get("/_presenced/events?ids=nope", &own).await;
    r.error(400, "invalidRequest");
    let stranger = crate::helpers::token(
        Uuid::new_v4(),
        Some(Uuid::new_v4()),
        APP,
        Some(ALL_SCOPES),
        None,
    );
    let mut other_tenant = Sse::open(&server, "", &stranger, None).await;
    let mut self_only = Sse::open(
        &server,
        &format!("?ids={alice}"),
        &server.user_token(alice, "Presence.Read"),
        None,
    )
    .await;
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    let (_, _, data) = self_only.next().await;
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["id"],
        alice.to_string()
    );
    let quiet = tokio::time::timeout(Duration::from_millis(300), other_tenant.next()).await;
    assert!(quiet.is_err(), "another tenant's stream saw {quiet:?}");
    let r = server
        .send(reqwest::Method::GET, "/_presenced/events", None, None)
        .await;
    r.error(401, "InvalidAuthenticationToken");
}

#[tokio::test]
async fn resuming_from_an_event_older_than_the_retention_gets_a_reset() {
    let server = TestServer::start().await;
    let reader = server.user_token(Uuid::new_v4(), ALL_SCOPES);
    let alice = Uuid::new_v4();
    let mut stream = Sse::open(&server, "", &reader, None).await;
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    let (_, old_id, _) = stream.next().await;
    // A day and more later the event has been pruned.
    server.tick(TimeDelta::hours(25)).await;
    server
        .set_presence(alice, "Away", "Away", None)
        .await
        .ok_empty();
    let mut late = Sse::open(&server, "", &reader, Some(&old_id)).await;
    let (event, _, data) = late.next().await;
    assert_eq!(event, "reset", "{data}");
    // Last-Event-ID 0 asks for what the log still holds: the Away change.
    let mut retained = Sse::open(&server, "", &reader, Some("0")).await;
    let (event, _, data) = retained.next().await;
    assert_eq!(event, "presence", "{data}");
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["availability"],
        "Away"
    );
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    let (event, _, data) = late.next().await;
    assert_eq!(event, "presence");
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["availability"],
        "Busy"
    );
    let r = server
        .client
        .get(format!("{}/_presenced/events", server.url))
        .bearer_auth(&reader)
        .header("last-event-id", "999999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_notification_failing_for_4_hours_is_dropped_and_reported_as_missed() {
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.subscription_limits = Some("none".into());
    })
    .await;
    let (dead, lifecycle) = (Receiver::start().await, Receiver::start().await);
    let (watcher, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut body = server.subscription_body(&dead.hook(), &[alice]);
    body["expirationDateTime"] = json!(in_minutes(&server, 24 * 60));
    body["lifecycleNotificationUrl"] = json!(lifecycle.hook());
    let id = server.subscribe(watcher, body).await;
    dead.answer_with(503, Duration::ZERO);
    server
        .set_presence(alice, "Busy", "InACall", Some("PT4H"))
        .await
        .ok_empty();
    let mut rounds = 0;
    while lifecycle.items().is_empty() {
        rounds += 1;
        assert!(rounds < 40, "no missed notification after {rounds} rounds");
        // Wait until every queued delivery due now has been tried (and
        // rescheduled or dropped), then move to the next retry.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let queued = server.notifier.queued(10).await.unwrap();
            if queued.iter().all(|d| d.next_at > server.clock.now()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{queued:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if lifecycle.items().is_empty() {
            server.tick(TimeDelta::minutes(31)).await;
        }
    }
    let missed = lifecycle.wait_for_items(1).await;
    assert_eq!(missed[0]["lifecycleEvent"], "missed");
    assert_eq!(missed[0]["subscriptionId"], id.as_str());
    assert_eq!(server.notifier.dropped(), 1);
    assert!(
        server.clock.now() - t0() >= TimeDelta::hours(4),
        "retried for 4 hours of presence time"
    );
}

#[tokio::test]
async fn a_subscription_never_sees_the_same_user_id_in_another_tenant() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let alice = Uuid::new_v4();
    server
        .subscribe_to(Uuid::new_v4(), &receiver.hook(), &[alice])
        .await;
    let elsewhere = crate::helpers::token(Uuid::new_v4(), Some(alice), APP, Some(ALL_SCOPES), None);
    let r = server
        .post(
            &format!("/v1.0/users/{alice}/presence/setPresence"),
            &elsewhere,
            json!({"sessionId": APP, "availability": "Busy", "activity": "InACall"}),
        )
        .await;
    r.ok_empty();
    // Then the watched tenant's own write: the only notification.
    server
        .set_presence(alice, "Away", "Away", None)
        .await
        .ok_empty();
    let items = receiver.wait_for_items(1).await;
    receiver.assert_stays_at(1).await;
    assert_eq!(items[0]["tenantId"], server.tenant.to_string());
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

#[tokio::test]
async fn a_simulated_teams_client_session_notifies_like_any_write() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let alice = Uuid::new_v4();
    subscribe_with_resource_data(&server, Uuid::new_v4(), &receiver.hook(), &[alice]).await;
    let admin = server.app_token(&["Presenced.Admin"]);
    let r = server
        .send(
            reqwest::Method::PUT,
            &format!("/_presenced/users/{alice}/clientSessions/desktop"),
            Some(&admin),
            Some(json!({"availability": "Busy", "activity": "InAMeeting"})),
        )
        .await;
    r.ok_json();
    let items = receiver.wait_for_items(1).await;
    assert_eq!(
        decrypt_state(&items[0]),
        ("Busy".into(), "InAMeeting".into())
    );
    let r = server
        .delete(
            &format!("/_presenced/users/{alice}/clientSessions/desktop"),
            &admin,
        )
        .await;
    assert_eq!(r.status, 204);
    let items = receiver.wait_for_items(2).await;
    assert_eq!(
        decrypt_state(&items[1]),
        ("Offline".into(), "Offline".into())
    );
}
