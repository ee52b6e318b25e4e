//! Sessions and their aggregation (SPEC §4): precedence and recency, lifetimes
//! and fading, clearPresence, preferred presence, sequence numbers, and how
//! actions answer.

use chrono::TimeDelta;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use super::minutes;
use crate::helpers::*;

#[tokio::test]
async fn sessions_of_different_apps_aggregate_by_precedence_and_recency() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let roles = vec!["Presence.ReadWrite.All".to_string()];
    let app_a = "aaaaaaaa-0000-0000-0000-000000000001";
    let app_b = "bbbbbbbb-0000-0000-0000-000000000002";
    let ta = token(server.tenant, None, app_a, None, Some(&roles));
    let tb = token(server.tenant, None, app_b, None, Some(&roles));
    let path = format!("/v1.0/users/{user}/presence/setPresence");
    let set = |app: &str, av: &str, ac: &str| json!({"sessionId": app, "availability": av, "activity": ac, "expirationDuration": "PT1H"});
    server
        .post(&path, &ta, set(app_a, "Available", "Available"))
        .await
        .ok_empty();
    server
        .post(&path, &tb, set(app_b, "Busy", "InACall"))
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("Busy".into(), "InACall".into())
    );
    server.advance(minutes(1));
    server
        .post(&path, &ta, set(app_a, "Busy", "InAConferenceCall"))
        .await
        .ok_empty();
    // Tie on Busy: the most recently refreshed wins.
    assert_eq!(
        server.presence_of(user).await,
        ("Busy".into(), "InAConferenceCall".into())
    );
    server
        .post(&path, &tb, set(app_b, "DoNotDisturb", "Presenting"))
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("DoNotDisturb".into(), "Presenting".into())
    );
    // Clearing B leaves A.
    server
        .post(
            &format!("/v1.0/users/{user}/presence/clearPresence"),
            &tb,
            json!({"sessionId": app_b}),
        )
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("Busy".into(), "InAConferenceCall".into())
    );
}

#[tokio::test]
async fn default_session_lifetime_is_five_minutes_and_set_presence_keeps_alive() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    server.advance(minutes(4));
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    server.advance(minutes(4));
    assert_eq!(server.presence_of(user).await.0, "Busy");
    server.advance(minutes(1));
    assert_eq!(
        server.presence_of(user).await,
        ("Offline".into(), "Offline".into())
    );
}

#[tokio::test]
async fn refreshing_an_available_session_restarts_its_fading() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Available", "Available", Some("PT1H"))
        .await
        .ok_empty();
    server.advance(minutes(6));
    assert_eq!(server.presence_of(user).await.1, "AvailableInactive");
    server
        .set_presence(user, "Available", "Available", Some("PT1H"))
        .await
        .ok_empty();
    assert_eq!(server.presence_of(user).await.1, "Available");
}

#[tokio::test]
async fn clear_presence_of_an_unknown_session_is_404() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let path = format!("/v1.0/users/{user}/presence/clearPresence");
    let message = server
        .post(&path, &token, json!({"sessionId": APP}))
        .await
        .error(404, "itemNotFound");
    assert!(message.contains(APP), "{message}");
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    server
        .post(&path, &token, json!({"sessionId": APP}))
        .await
        .ok_empty();
    server
        .post(&path, &token, json!({"sessionId": APP}))
        .await
        .error(404, "itemNotFound");
}

#[tokio::test]
async fn preferred_presence_overrides_only_while_a_session_lives() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_preferred(
            user,
            json!({"availability": "DoNotDisturb", "activity": "DoNotDisturb"}),
        )
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("Offline".into(), "Offline".into())
    );
    server
        .set_presence(user, "Available", "Available", None)
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("DoNotDisturb".into(), "DoNotDisturb".into())
    );
    server.advance(minutes(5));
    assert_eq!(
        server.presence_of(user).await,
        ("Offline".into(), "Offline".into())
    );
}

#[tokio::test]
async fn preferred_presence_expires_after_its_default_or_given_duration() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_preferred(user, json!({"availability": "Busy", "activity": "Busy"}))
        .await
        .ok_empty();
    // Keep a session alive across a day with 4 h sessions.
    for _ in 0..6 {
        server
            .set_presence(user, "Available", "Available", Some("PT4H"))
            .await
            .ok_empty();
        assert_eq!(
            server.presence_of(user).await,
            ("Busy".into(), "Busy".into())
        );
        server.advance(TimeDelta::hours(4) - TimeDelta::seconds(1));
    }
    server
        .set_presence(user, "Available", "Available", Some("PT4H"))
        .await
        .ok_empty();
    // 6 × (4 h − 1 s) < 1 day: still preferred; one more minute passes the day.
    server.advance(minutes(1));
    assert_eq!(
        server.presence_of(user).await,
        ("Available".into(), "Available".into())
    );
    // An explicit duration.
    server
        .set_preferred(
            user,
            json!({"availability": "Offline", "activity": "OffWork", "expirationDuration": "PT5M"}),
        )
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("Offline".into(), "OffWork".into())
    );
    server.advance(minutes(5));
    assert_eq!(server.presence_of(user).await.1, "AvailableInactive");
}

#[tokio::test]
async fn sequence_number_rises_on_writes_and_fades_and_holds_between() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let seq = || async {
        server.get("/v1.0/me/presence", &token).await.ok_json()["sequenceNumber"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let s0 = seq().await;
    server
        .set_presence(user, "Available", "Available", Some("PT1H"))
        .await
        .ok_empty();
    let s1 = seq().await;
    assert!(s1 > s0);
    server.advance(minutes(4));
    assert_eq!(seq().await, s1, "no change without a transition");
    server.advance(minutes(1));
    let s2 = seq().await;
    assert!(s2 > s1, "a fade changes it");
    server
        .set_presence(user, "Busy", "InACall", Some("PT1H"))
        .await
        .ok_empty();
    assert!(
        seq().await > s2,
        "a write in the same instant still sorts higher"
    );
}

#[tokio::test]
async fn inputs_are_case_insensitive_and_outputs_pascal_case() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "dONOTdISTURB", "presenting", None)
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("DoNotDisturb".into(), "Presenting".into())
    );
}

#[tokio::test]
async fn actions_answer_200_with_an_empty_body_and_request_ids() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let r = server.set_presence(user, "Away", "Away", None).await;
    r.ok_empty();
    assert!(r.headers.contains_key("request-id"));
    assert!(r.headers.contains_key("client-request-id"));
    let r = server
        .send(Method::GET, "/_presenced/healthz", None, None)
        .await;
    assert_eq!(r.ok_json()["status"], "ok");
    let r = server
        .send(Method::GET, "/_presenced/readyz", None, None)
        .await;
    assert_eq!(r.ok_json()["status"], "ready");
}

#[tokio::test]
async fn permission_is_checked_before_the_body_is_validated() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let reader = server.user_token(user, "Presence.Read");
    let ids: Vec<String> = (0..651).map(|_| "not-a-guid".to_string()).collect();
    let r = server
        .post(
            "/v1.0/communications/getPresencesByUserId",
            &reader,
            json!({ "ids": ids }),
        )
        .await;
    r.error(403, "Forbidden");
    let r = server
        .post(
            "/v1.0/me/presence/setPresence",
            &reader,
            json!({"sessionId": 5}),
        )
        .await;
    r.error(403, "Forbidden");
}
