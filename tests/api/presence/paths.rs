//! Every path family and version, the seed examples replayed, getPresencesByUserId,
//! namespaced action names, and the presence resource's exact shape and `@odata.context`.

use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::minutes;
use crate::helpers::*;

#[tokio::test]
async fn seed_set_presence_example_sets_and_fades_as_documented() {
    // The same example, replayed on v1.0 (seed 000) and beta (seed 003).
    for version in ["v1.0", "beta"] {
        let server = TestServer::start().await;
        let user: Uuid = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3".parse().unwrap();
        let app_token = server.app_token(&["Presence.ReadWrite.All"]);
        let r = server
            .post(
                &format!("/{version}/users/{user}/presence/setPresence"),
                &app_token,
                json!({
                    "sessionId": "22553876-f5ab-4529-bffb-cfe50aa89f87",
                    "availability": "Available",
                    "activity": "Available",
                    "expirationDuration": "PT1H"
                }),
            )
            .await;
        r.ok_empty();
        // (minutes since the call, expected reading); "when a session
        // expires it becomes Offline".
        let steps = [
            (0, "Available", "Available"),
            (5, "Available", "AvailableInactive"),
            (10, "Away", "Away"),
            (59, "Away", "Away"),
            (60, "Offline", "Offline"),
        ];
        let mut elapsed = 0;
        for (at, availability, activity) in steps {
            server.advance(minutes(at - elapsed));
            elapsed = at;
            assert_eq!(
                server.presence_of(user).await,
                (availability.into(), activity.into()),
                "{version} at +{at} min"
            );
        }
    }
}

#[tokio::test]
async fn seed_set_status_message_example_reads_back_as_documented() {
    let start = Utc.with_ymd_and_hms(2022, 10, 18, 9, 0, 0).unwrap();
    let server = TestServer::start_at(start).await;
    let user: Uuid = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3".parse().unwrap();
    let token = server.user_token(user, ALL_SCOPES);
    let body = json!({
        "statusMessage": {
            "message": { "content": "Hey I'm currently in a meeting.", "contentType": "text" },
            "expiryDateTime": { "dateTime": "2022-10-18T17:05:33.2079781", "timeZone": "Pacific Standard Time" }
        }
    });
    server
        .post(
            &format!("/v1.0/users/{user}/presence/setStatusMessage"),
            &token,
            body,
        )
        .await
        .ok_empty();
    let r = server.get("/v1.0/me/presence", &token).await;
    let m = &r.ok_json()["statusMessage"];
    assert_eq!(m["message"]["content"], "Hey I'm currently in a meeting.");
    assert_eq!(m["message"]["contentType"], "text");
    assert_eq!(
        m["expiryDateTime"]["dateTime"],
        "2022-10-18T17:05:33.2079781"
    );
    assert_eq!(m["expiryDateTime"]["timeZone"], "Pacific Standard Time");
    assert_eq!(m["publishedDateTime"], "2022-10-18T09:00:00.0000000Z");
    // 17:05:33.2079781 PDT is 00:05:33.2079781 UTC the next day.
    server
        .clock
        .set(Utc.with_ymd_and_hms(2022, 10, 19, 0, 5, 33).unwrap())
        .unwrap();
    assert!(server.get("/v1.0/me/presence", &token).await.ok_json()["statusMessage"].is_object());
    server.advance(TimeDelta::milliseconds(208));
    assert!(server.get("/v1.0/me/presence", &token).await.ok_json()["statusMessage"].is_null());
}

#[tokio::test]
async fn every_path_family_and_version_reads_the_same_presence() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    let token = server.user_token(user, ALL_SCOPES);
    for path in presence_paths(user) {
        let r = server.get(&path, &token).await;
        let body = r.ok_json();
        assert_eq!(body["id"], user.to_string(), "{path}");
        assert_eq!(body["availability"], "Busy", "{path}");
        assert_eq!(body["activity"], "InACall", "{path}");
        assert_eq!(
            body["outOfOfficeSettings"],
            json!({"message": null, "isOutOfOffice": false})
        );
        assert_eq!(
            body["workLocation"],
            json!({"workLocationType": "unspecified", "source": "none", "placeId": null})
        );
        assert!(body["sequenceNumber"].is_string());
        let context = body["@odata.context"].as_str().unwrap();
        assert!(
            context.ends_with(&format!("$metadata#users('{user}')/presence/$entity")),
            "{context}"
        );
        assert!(context.contains(if path.starts_with("/beta") {
            "/beta/"
        } else {
            "/v1.0/"
        }));
        assert_eq!(r.headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn every_action_works_on_every_path_family_and_version() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    for version in ["v1.0", "beta"] {
        for base in [
            "/me/presence".to_string(),
            format!("/users/{user}/presence"),
            format!("/communications/presences/{user}"),
        ] {
            let at = |action: &str| format!("/{version}{base}/{action}");
            let set =
                json!({"sessionId": APP, "availability": "DoNotDisturb", "activity": "Presenting"});
            server
                .post(&at("setPresence"), &token, set)
                .await
                .ok_empty();
            assert_eq!(
                server.presence_of(user).await,
                ("DoNotDisturb".into(), "Presenting".into())
            );
            let preferred = json!({"availability": "Away", "activity": "Away"});
            server
                .post(&at("setUserPreferredPresence"), &token, preferred)
                .await
                .ok_empty();
            assert_eq!(
                server.presence_of(user).await,
                ("Away".into(), "Away".into())
            );
            server
                .post(&at("clearUserPreferredPresence"), &token, json!({}))
                .await
                .ok_empty();
            assert_eq!(server.presence_of(user).await.0, "DoNotDisturb");
            let status =
                json!({"statusMessage": {"message": {"content": base, "contentType": "text"}}});
            server
                .post(&at("setStatusMessage"), &token, status)
                .await
                .ok_empty();
            let loc = json!({"workLocationType": "office", "placeId": "b1"});
            server
                .post(&at("setManualLocation"), &token, loc.clone())
                .await
                .ok_empty();
            server
                .post(&at("setAutomaticLocation"), &token, loc)
                .await
                .ok_empty();
            server
                .post(&at("clearAutomaticLocation"), &token, json!({}))
                .await
                .ok_empty();
            server
                .post(&at("clearLocation"), &token, json!({}))
                .await
                .ok_empty();
            let body = server
                .get(&format!("/{version}{base}"), &token)
                .await
                .ok_json()
                .clone();
            assert_eq!(body["statusMessage"]["message"]["content"], base.as_str());
            assert_eq!(body["workLocation"]["source"], "none");
            server
                .post(&at("clearPresence"), &token, json!({"sessionId": APP}))
                .await
                .ok_empty();
            assert_eq!(
                server.presence_of(user).await,
                ("Offline".into(), "Offline".into())
            );
        }
    }
}

#[tokio::test]
async fn get_many_keeps_the_order_of_ids() {
    let server = TestServer::start().await;
    let users: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    server
        .set_presence(users[1], "Busy", "InAConferenceCall", None)
        .await
        .ok_empty();
    server
        .set_presence(users[3], "Away", "Away", None)
        .await
        .ok_empty();
    let reader = server.app_token(&["Presence.Read.All"]);
    let mut ids: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    ids.reverse();
    for version in ["v1.0", "beta"] {
        let r = server
            .post(
                &format!("/{version}/communications/getPresencesByUserId"),
                &reader,
                json!({ "ids": ids }),
            )
            .await;
        let values = r.ok_json()["value"].as_array().unwrap().clone();
        let got: Vec<&str> = values.iter().map(|v| v["id"].as_str().unwrap()).collect();
        assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(values[1]["availability"], "Away");
        assert_eq!(values[3]["activity"], "InAConferenceCall");
        assert_eq!(values[0]["availability"], "Offline");
    }
}

#[tokio::test]
async fn namespaced_action_names_work_like_the_short_ones() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let body = json!({"sessionId": APP, "availability": "Busy", "activity": "InACall"});
    server
        .post(
            "/v1.0/me/presence/microsoft.graph.setPresence",
            &token,
            body,
        )
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("Busy".into(), "InACall".into())
    );
    let r = server
        .post(
            "/beta/communications/microsoft.graph.getPresencesByUserId",
            &token,
            json!({"ids": [user.to_string()]}),
        )
        .await;
    assert_eq!(r.ok_json()["value"][0]["availability"], "Busy");
}

#[tokio::test]
async fn unreadable_path_bytes_are_a_graph_400() {
    let server = TestServer::start().await;
    let admin = server.app_token(&["Presenced.Admin", "Presence.Read.All"]);
    let r = server.get("/_presenced/users/%FF/presence", &admin).await;
    r.error(400, "invalidRequest");
}

#[tokio::test]
async fn the_presence_resource_has_exactly_graphs_shape() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    let status =
        json!({"statusMessage": {"message": {"content": "On a call", "contentType": "text"}}});
    server
        .post("/v1.0/me/presence/setStatusMessage", &token, status)
        .await
        .ok_empty();
    let mut body = server
        .get("/v1.0/me/presence", &token)
        .await
        .ok_json()
        .clone();
    let context = body["@odata.context"].take();
    let sequence = body["sequenceNumber"].take();
    assert!(context.as_str().unwrap().starts_with("http://127.0.0.1:"));
    assert_eq!(sequence.as_str().unwrap().len(), 32);
    assert_eq!(
        body,
        json!({
            "@odata.context": null,
            "id": user.to_string(),
            "availability": "Busy",
            "activity": "InACall",
            "sequenceNumber": null,
            "outOfOfficeSettings": {"message": null, "isOutOfOffice": false},
            "statusMessage": {
                "message": {"content": "On a call", "contentType": "text"},
                "expiryDateTime": {"dateTime": "9999-12-31T23:59:59.9999999", "timeZone": "UTC"},
                "publishedDateTime": "2026-01-01T09:00:00.0000000Z"
            },
            "workLocation": {"workLocationType": "unspecified", "source": "none", "placeId": null}
        })
    );
}

#[tokio::test]
async fn odata_context_never_echoes_request_headers_unless_trusted() {
    let user = Uuid::new_v4();
    let get = |server: &TestServer| {
        let token = server.user_token(user, ALL_SCOPES);
        server
            .client
            .get(format!("{}/v1.0/me/presence", server.url))
            .bearer_auth(token)
            .header("host", "evil.example")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "proxy.example")
            .send()
    };
    let plain = TestServer::start().await;
    let body: Value = get(&plain).await.unwrap().json().await.unwrap();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/v1.0/$metadata", plain.url)),
        "{body}"
    );
    let trusting = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.trust_forwarded_headers = Some(true);
    })
    .await;
    let body: Value = get(&trusting).await.unwrap().json().await.unwrap();
    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .starts_with("https://proxy.example/v1.0/$metadata"));
    let public = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.public_url = Some("https://presence.example.com/".into());
        f.trust_forwarded_headers = Some(true);
    })
    .await;
    let body: Value = get(&public).await.unwrap().json().await.unwrap();
    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .starts_with("https://presence.example.com/v1.0/$metadata"));
}
