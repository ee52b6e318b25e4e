//! Emulator mode (issue: emulator and SDK proof): the admin clock and
//! simulated Teams client sessions, over HTTP.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

fn admin(server: &TestServer) -> String {
    server.app_token(&["Presenced.Admin"])
}

async fn move_clock(server: &TestServer, body: serde_json::Value) -> Reply {
    server.post("/_presenced/clock", &admin(server), body).await
}

#[tokio::test]
async fn a_session_fades_to_offline_purely_by_moving_the_clock() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Available", "Available", Some("PT15M"))
        .await
        .ok_empty();
    let steps = [
        ("PT4M59S", "Available", "Available"),
        ("PT1S", "Available", "AvailableInactive"),
        ("PT5M", "Away", "Away"),
        ("PT5M", "Offline", "Offline"),
    ];
    for (advance, availability, activity) in steps {
        move_clock(&server, json!({ "advance": advance }))
            .await
            .ok_json();
        assert_eq!(
            server.presence_of(user).await,
            (availability.into(), activity.into()),
            "after {advance}"
        );
    }
}

#[tokio::test]
async fn the_clock_reads_advances_sets_and_never_goes_back() {
    let server = TestServer::start().await;
    let r = server.get("/_presenced/clock", &admin(&server)).await;
    assert_eq!(r.ok_json()["now"], "2026-01-01T09:00:00.0000000Z");
    let r = move_clock(&server, json!({"advance": "PT1H30M"})).await;
    assert_eq!(r.ok_json()["now"], "2026-01-01T10:30:00.0000000Z");
    let r = move_clock(&server, json!({"set": "2026-01-02T00:00:00+01:00"})).await;
    assert_eq!(r.ok_json()["now"], "2026-01-01T23:00:00.0000000Z");
    let message = move_clock(&server, json!({"set": "2026-01-01T09:00:00Z"}))
        .await
        .error(400, "invalidRequest");
    assert!(message.contains("backwards"), "{message}");
    move_clock(&server, json!({"advance": "1:00:00"}))
        .await
        .error(400, "invalidRequest");
    move_clock(&server, json!({"set": "tomorrow"}))
        .await
        .error(400, "invalidRequest");
    move_clock(&server, json!({}))
        .await
        .error(400, "invalidRequest");
    move_clock(
        &server,
        json!({"advance": "PT1M", "set": "2027-01-01T00:00:00Z"}),
    )
    .await
    .error(400, "invalidRequest");
    let r = server.get("/_presenced/clock", &admin(&server)).await;
    assert_eq!(
        r.ok_json()["now"],
        "2026-01-01T23:00:00.0000000Z",
        "failed moves change nothing"
    );
}

#[tokio::test]
async fn the_clock_needs_the_admin_role() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let delegated = server.user_token(user, ALL_SCOPES);
    let app = server.app_token(&["Presence.ReadWrite.All"]);
    server
        .get("/_presenced/clock", &delegated)
        .await
        .error(403, "Forbidden");
    server
        .get("/_presenced/clock", &app)
        .await
        .error(403, "Forbidden");
    server
        .post("/_presenced/clock", &app, json!({"advance": "PT5M"}))
        .await
        .error(403, "Forbidden");
    server
        .send(Method::GET, "/_presenced/clock", None, None)
        .await
        .error(401, "InvalidAuthenticationToken");
    assert_eq!(presenced::clock::Clock::now(&server.clock), t0());
}

#[tokio::test]
async fn a_simulated_teams_client_aggregates_like_any_session() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let path = format!("/_presenced/users/{user}/clientSessions/desktop");
    let r = server
        .put(
            &path,
            &admin(&server),
            json!({"availability": "Busy", "activity": "InAMeeting", "expirationDuration": "PT1H"}),
        )
        .await;
    assert_eq!(r.ok_json()["availability"], "Busy");
    assert_eq!(
        server.presence_of(user).await,
        ("Busy".into(), "InAMeeting".into())
    );
    // An app's Available session ranks below the client's Busy.
    server
        .set_presence(user, "Available", "Available", None)
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("Busy".into(), "InAMeeting".into())
    );
    // The explain endpoint lists both sessions.
    let token = server.user_token(user, ALL_SCOPES);
    let r = server
        .get(&format!("/_presenced/users/{user}/presence"), &token)
        .await;
    let sessions = r.ok_json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        r.body["lastSeenDateTime"], "2026-01-01T09:00:00.0000000Z",
        "now, while a session lives"
    );
    let r = server.delete(&path, &admin(&server)).await;
    assert_eq!(r.status.as_u16(), 204);
    assert_eq!(
        server.presence_of(user).await,
        ("Available".into(), "Available".into())
    );
    let r = server.delete(&path, &admin(&server)).await;
    r.error(404, "itemNotFound");
}

#[tokio::test]
async fn simulated_client_sessions_expire_and_validate_input() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let put = |name: &str, body: serde_json::Value| {
        let path = format!("/_presenced/users/{user}/clientSessions/{name}");
        let token = admin(&server);
        let server = &server;
        async move {
            server
                .send(Method::PUT, &path, Some(&token), Some(body))
                .await
        }
    };
    put(
        "mobile",
        json!({"availability": "DoNotDisturb", "activity": "DoNotDisturb"}),
    )
    .await
    .ok_json();
    assert_eq!(server.presence_of(user).await.0, "DoNotDisturb");
    move_clock(&server, json!({"advance": "PT5M"}))
        .await
        .ok_json();
    assert_eq!(server.presence_of(user).await.0, "Offline");
    put(
        "web",
        json!({"availability": "Available", "activity": "Presenting"}),
    )
    .await
    .error(400, "invalidRequest");
    put(
        "web",
        json!({"availability": "Busy", "activity": "InAMeeting", "expirationDuration": "PT5H"}),
    )
    .await
    .error(400, "invalidRequest");
    put(
        "bad%20name",
        json!({"availability": "Busy", "activity": "Busy"}),
    )
    .await
    .error(400, "invalidRequest");
    let delegated = server.user_token(user, ALL_SCOPES);
    let r = server
        .put(
            &format!("/_presenced/users/{user}/clientSessions/desktop"),
            &delegated,
            json!({"availability": "Busy", "activity": "Busy"}),
        )
        .await;
    r.error(403, "Forbidden");
}

#[tokio::test]
async fn the_clock_stops_at_the_end_of_year_9999() {
    let server = TestServer::start().await;
    let message = move_clock(&server, json!({"advance": "PT8208499650780S"}))
        .await
        .error(400, "invalidRequest");
    assert!(message.contains("9999"), "{message}");
    move_clock(&server, json!({"set": "9999-12-31T23:59:59Z"}))
        .await
        .ok_json();
    // Presence still works at the end of time.
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Available", "Available", None)
        .await
        .ok_empty();
    assert_eq!(server.presence_of(user).await.0, "Available");
}

#[tokio::test]
async fn last_seen_is_when_the_last_session_ended() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let explain = format!("/_presenced/users/{user}/presence");
    assert!(server.get(&explain, &token).await.ok_json()["lastSeenDateTime"].is_null());
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    move_clock(&server, json!({"advance": "PT1H"}))
        .await
        .ok_json();
    let r = server.get(&explain, &token).await;
    assert_eq!(
        r.ok_json()["lastSeenDateTime"],
        "2026-01-01T09:05:00.0000000Z"
    );
    assert!(r.body["sessions"].as_array().unwrap().is_empty());
}
