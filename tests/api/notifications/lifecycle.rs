//! Retries and lifecycle: a failed delivery is retried after a backoff and
//! dropped after 4 hours (reported as missed); reauthorization is requested
//! before expiry, and expiry ends the subscription.

use std::time::Duration;

use chrono::TimeDelta;
use presenced::clock::Clock;
use serde_json::json;
use uuid::Uuid;

use super::in_minutes;
use crate::helpers::{t0, TestServer, ALL_SCOPES};
use crate::receiver::Receiver;

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
