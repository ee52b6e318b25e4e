//! Deliveries to real receivers on loopback: Graph's format, only watched
//! users and tenants, fades driven by the clock, slow receivers, and
//! simulated Teams client sessions.

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::json;
use uuid::Uuid;

use super::{decrypt_state, subscribe_with_resource_data};
use crate::helpers::{TestServer, ALL_SCOPES, APP};
use crate::receiver::Receiver;

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
