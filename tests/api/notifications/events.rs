//! The server-sent event stream (`/_presenced/events`): every change as
//! the caller would see it, resuming, tenant scoping and permissions, and a
//! reset past the retention.

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{TestServer, ALL_SCOPES, APP};

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
