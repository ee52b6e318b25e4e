//! The emulator's state document, reset, fault injection and request
//! journal over HTTP (issue 16).

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;
use crate::receiver::Receiver;

fn admin(server: &TestServer) -> String {
    server.app_token(&["Presenced.Admin"])
}

/// Every read a client can make of `users`: each presence as its owner sees
/// it, and the explained presence.
async fn reads(server: &TestServer, users: &[Uuid]) -> Vec<Value> {
    let mut out = vec![];
    for user in users {
        let token = server.user_token(*user, ALL_SCOPES);
        for path in [
            format!("/v1.0/users/{user}/presence"),
            format!("/_presenced/users/{user}/presence"),
        ] {
            out.push(server.get(&path, &token).await.ok_json().clone());
        }
    }
    out
}

/// Three users with a session, a status message, a preferred presence and
/// a work location between them.
async fn populate(server: &TestServer) -> Vec<Uuid> {
    let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    server
        .set_presence(users[0], "Available", "Available", Some("PT1H"))
        .await
        .ok_empty();
    server
        .set_presence(users[1], "Busy", "InACall", None)
        .await
        .ok_empty();
    let token = server.user_token(users[1], ALL_SCOPES);
    server
        .post(
            &format!("/v1.0/users/{}/presence/setStatusMessage", users[1]),
            &token,
            json!({"statusMessage": {"message": {"content": "heads down", "contentType": "text"},
                "expiryDateTime": {"dateTime": "2026-01-01T17:00:00.1234567", "timeZone": "Pacific Standard Time"}}}),
        )
        .await
        .ok_empty();
    server
        .set_preferred(
            users[1],
            json!({"availability": "DoNotDisturb", "activity": "DoNotDisturb"}),
        )
        .await
        .ok_empty();
    let token = server.user_token(users[2], ALL_SCOPES);
    server
        .post(
            "/v1.0/me/presence/setManualLocation",
            &token,
            json!({"workLocationType": "office", "placeId": "building-7"}),
        )
        .await
        .ok_empty();
    server
        .post(
            "/_presenced/clock",
            &admin(server),
            json!({"advance": "PT6M"}),
        )
        .await
        .ok_json();
    users
}

#[tokio::test]
async fn export_reset_import_gives_identical_reads() {
    let server = TestServer::start().await;
    let users = populate(&server).await;
    let before = reads(&server, &users).await;
    assert_eq!(before[0]["activity"], "AvailableInactive", "faded");
    let exported = server
        .get("/_presenced/state", &admin(&server))
        .await
        .ok_json()
        .clone();
    assert_eq!(exported["version"], 1);
    assert_eq!(exported["clock"], "2026-01-01T09:06:00Z");
    assert_eq!(exported["tenants"][0]["users"].as_array().unwrap().len(), 3);

    let r = server
        .send(
            Method::POST,
            "/_presenced/reset",
            Some(&admin(&server)),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let wiped = reads(&server, &users).await;
    assert_eq!(wiped[0]["availability"], "Offline");
    assert_eq!(
        server
            .get("/_presenced/state", &admin(&server))
            .await
            .ok_json()["tenants"],
        json!([])
    );

    let r = server
        .put("/_presenced/state", &admin(&server), exported.clone())
        .await;
    assert_eq!(r.ok_json(), &exported, "PUT answers the state it made");
    assert_eq!(reads(&server, &users).await, before);
    assert_eq!(
        server
            .get("/_presenced/state", &admin(&server))
            .await
            .ok_json(),
        &exported
    );
    // Time goes on from the imported facts as from the written ones.
    server
        .post(
            "/_presenced/clock",
            &admin(&server),
            json!({"advance": "PT4M"}),
        )
        .await
        .ok_json();
    assert_eq!(
        server.presence_of(users[0]).await,
        ("Away".into(), "Away".into())
    );
}

#[tokio::test]
async fn a_tenant_reset_leaves_other_tenants_alone() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    let other_tenant = Uuid::new_v4();
    let r = server
        .send(
            Method::POST,
            &format!("/_presenced/reset?tenant={other_tenant}"),
            Some(&admin(&server)),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    assert_eq!(server.presence_of(user).await.0, "Busy");
    let r = server
        .send(
            Method::POST,
            &format!("/_presenced/reset?tenant={}", server.tenant),
            Some(&admin(&server)),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    assert_eq!(server.presence_of(user).await.0, "Offline");
    let message = server
        .send(
            Method::POST,
            "/_presenced/reset?tenant=nope",
            Some(&admin(&server)),
            None,
        )
        .await
        .error(400, "invalidRequest");
    assert!(message.contains("tenant"), "{message}");
}

#[tokio::test]
async fn a_reset_forgets_subscriptions_so_no_webhook_follows() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let user = Uuid::new_v4();
    server.subscribe_to(user, &receiver.hook(), &[user]).await;
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    receiver.wait_for_items(1).await;
    let r = server
        .send(
            Method::POST,
            "/_presenced/reset",
            Some(&admin(&server)),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    server
        .set_presence(user, "Available", "Available", None)
        .await
        .ok_empty();
    receiver.assert_stays_at(1).await;
}

#[tokio::test]
async fn bad_state_documents_are_400_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    let session = json!({"kind": "application", "id": "app", "availability": "Busy", "activity": "Away",
        "lastActiveDateTime": "2026-01-01T09:00:00Z", "expirationDateTime": "2026-01-01T10:00:00Z"});
    let cases = [
        (json!({"version": 7, "tenants": []}), "version"),
        (json!({"tenants": []}), "version"),
        (
            json!({"version": 1, "tenants": [{"id": Uuid::new_v4(), "users": [{"id": user, "sessions": [session]}]}]}),
            "tenants[0].users[0].sessions[0].activity",
        ),
        (
            json!({"version": 1, "tenants": [{"id": Uuid::new_v4(), "users": [{"id": user, "sessions": [{"kind": "robot"}]}]}]}),
            "tenants[0].users[0].sessions[0].kind",
        ),
        (
            json!({"version": 1, "tenants": [{"id": Uuid::new_v4(), "users": [{"id": user, "version": 9_223_372_036_854_775_808_u64}]}]}),
            "tenants[0].users[0].version",
        ),
    ];
    for (doc, field) in cases {
        let message = server
            .put("/_presenced/state", &admin(&server), doc.clone())
            .await
            .error(400, "invalidRequest");
        assert!(message.contains(field), "{doc}: {message}");
    }
    assert_eq!(server.presence_of(user).await.0, "Busy");
}

#[tokio::test]
async fn a_state_document_moves_the_clock_forward_but_never_back() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let doc = |clock: &str| {
        json!({"version": 1, "clock": clock, "tenants": [{"id": server.tenant, "users": [{"id": user,
            "sessions": [{"kind": "application", "id": APP, "availability": "Available", "activity": "Available",
                "lastActiveDateTime": "2026-01-01T09:00:00Z", "expirationDateTime": "2026-01-01T12:00:00Z"}]}]}]})
    };
    let r = server
        .put(
            "/_presenced/state",
            &admin(&server),
            doc("2026-01-01T09:07:00Z"),
        )
        .await;
    assert_eq!(r.ok_json()["clock"], "2026-01-01T09:07:00Z");
    assert_eq!(
        server.presence_of(user).await,
        ("Available".into(), "AvailableInactive".into())
    );
    let r = server
        .put(
            "/_presenced/state",
            &admin(&server),
            doc("2026-01-01T08:00:00Z"),
        )
        .await;
    assert_eq!(
        r.ok_json()["clock"],
        "2026-01-01T09:07:00Z",
        "never backwards"
    );
}

async fn add_fault(server: &TestServer, rule: Value) -> Reply {
    server
        .post("/_presenced/faults", &admin(server), rule)
        .await
}

#[tokio::test]
async fn a_counted_429_answers_the_next_requests_changes_nothing_then_lets_through() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let r = add_fault(
        &server,
        json!({"method": "POST", "path": "/v1.0/users/*/presence/setPresence", "status": 429, "retryAfterSeconds": 2, "count": 2}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["count"], 2);
    for _ in 0..2 {
        let r = server.set_presence(user, "Busy", "InACall", None).await;
        let message = r.error(429, "TooManyRequests");
        assert!(message.contains(&id), "{message}");
        assert_eq!(r.headers["retry-after"], "2");
        assert_eq!(
            server.presence_of(user).await.0,
            "Offline",
            "a faulted write changes nothing"
        );
    }
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    let list = server.get("/_presenced/faults", &admin(&server)).await;
    assert_eq!(
        list.ok_json()["value"],
        json!([]),
        "a used-up rule goes away"
    );
}

#[tokio::test]
async fn fault_rules_list_delete_and_refuse_bad_fields() {
    let server = TestServer::start().await;
    let a = add_fault(
        &server,
        json!({"path": "/v1.0/**", "status": 503, "appId": "someone-else"}),
    )
    .await;
    let b = add_fault(
        &server,
        json!({"path": "/beta/**", "status": 500, "probability": 0.5, "delayMs": 1}),
    )
    .await;
    assert_eq!(a.status.as_u16(), 201);
    assert_eq!(b.status.as_u16(), 201);
    // Another application's rule leaves this one's requests alone.
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    let list = server.get("/_presenced/faults", &admin(&server)).await;
    let ids: Vec<&str> = list.ok_json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            a.body["id"].as_str().unwrap(),
            b.body["id"].as_str().unwrap()
        ]
    );
    let r = server
        .delete(&format!("/_presenced/faults/{}", ids[0]), &admin(&server))
        .await;
    assert_eq!(r.status.as_u16(), 204);
    server
        .delete(&format!("/_presenced/faults/{}", ids[0]), &admin(&server))
        .await
        .error(404, "itemNotFound");
    let r = server.delete("/_presenced/faults", &admin(&server)).await;
    assert_eq!(r.status.as_u16(), 204);
    assert_eq!(
        server
            .get("/_presenced/faults", &admin(&server))
            .await
            .ok_json()["value"],
        json!([])
    );
    for (rule, field) in [
        (json!({"path": "/x", "status": 418}), "status"),
        (json!({"path": "x", "status": 500}), "path"),
        (
            json!({"path": "/x", "status": 500, "probability": -1}),
            "probability",
        ),
        (json!({"path": "/x", "status": 500, "count": 0}), "count"),
        (json!({"status": 500}), "path"),
        (
            json!({"path": "/x", "status": 500, "colour": "red"}),
            "colour",
        ),
    ] {
        let message = add_fault(&server, rule.clone())
            .await
            .error(400, "invalidRequest");
        assert!(message.contains(field), "{rule}: {message}");
    }
}

#[tokio::test]
async fn probability_faults_follow_the_fault_seed() {
    let run = || async {
        let server = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
            f.fault_seed = Some(42);
        })
        .await;
        add_fault(
            &server,
            json!({"path": "/v1.0/users/*/presence", "status": 500, "probability": 0.5}),
        )
        .await;
        let user = Uuid::new_v4();
        let token = server.user_token(user, ALL_SCOPES);
        let mut statuses = vec![];
        for _ in 0..20 {
            let r = server
                .get(&format!("/v1.0/users/{user}/presence"), &token)
                .await;
            statuses.push(r.status.as_u16());
        }
        statuses
    };
    let first = run().await;
    assert_eq!(first, run().await, "the same seed faults the same requests");
    assert!(first.contains(&500) && first.contains(&200), "{first:?}");
}

#[tokio::test]
async fn the_journal_lists_graph_requests_newest_first_without_tokens() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    add_fault(
        &server,
        json!({"path": "/v1.0/users/*/presence", "status": 504, "count": 1}),
    )
    .await;
    let r = server
        .send(
            Method::GET,
            &format!("/v1.0/users/{user}/presence?access_token={token}"),
            Some(&token),
            None,
        )
        .await;
    r.error(504, "gatewayTimeout");
    let faulted_request_id = r.headers["request-id"].to_str().unwrap().to_string();
    server
        .send(Method::GET, "/v1.0/me/presence", None, None)
        .await;
    let r = server.get("/_presenced/requests", &admin(&server)).await;
    let text = r.text.clone();
    let entries = r.ok_json()["value"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 3, "Graph requests only: {text}");
    assert_eq!(entries[0]["path"], "/v1.0/me/presence");
    assert_eq!(entries[0]["status"], 401);
    assert_eq!(entries[0]["tenantId"], Value::Null);
    assert_eq!(entries[1]["faulted"], true);
    assert_eq!(entries[1]["status"], 504);
    assert_eq!(entries[1]["requestId"], faulted_request_id.as_str());
    assert_eq!(
        entries[1]["path"],
        format!("/v1.0/users/{user}/presence?access_token=REDACTED").as_str()
    );
    let write = &entries[2];
    assert_eq!(write["method"], "POST");
    assert_eq!(write["status"], 200);
    assert_eq!(write["faulted"], false);
    assert_eq!(write["tenantId"], server.tenant.to_string().as_str());
    assert_eq!(write["appId"], APP);
    assert_eq!(write["body"]["availability"], "Busy");
    assert_eq!(write["dateTime"], "2026-01-01T09:00:00.0000000Z");
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(signature),
        "a token leaked into the journal: {text}"
    );
    assert!(!text.to_ascii_lowercase().contains("bearer"), "{text}");
    let r = server
        .get("/_presenced/requests?limit=1", &admin(&server))
        .await;
    assert_eq!(r.ok_json()["value"].as_array().unwrap().len(), 1);
    for bad in ["0", "x", "-1"] {
        let message = server
            .get(
                &format!("/_presenced/requests?limit={bad}"),
                &admin(&server),
            )
            .await
            .error(400, "invalidRequest");
        assert!(message.contains("limit"), "{message}");
    }
    let r = server
        .send(
            Method::POST,
            "/_presenced/reset",
            Some(&admin(&server)),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    let r = server.get("/_presenced/requests", &admin(&server)).await;
    assert_eq!(
        r.ok_json()["value"],
        json!([]),
        "a reset clears the journal"
    );
}

#[tokio::test]
async fn the_journal_keeps_only_the_newest_requests() {
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.journal_size = Some(2);
    })
    .await;
    let user = Uuid::new_v4();
    for availability in [
        ("Busy", "InACall"),
        ("Away", "Away"),
        ("DoNotDisturb", "Presenting"),
    ] {
        server
            .set_presence(user, availability.0, availability.1, None)
            .await
            .ok_empty();
    }
    let r = server.get("/_presenced/requests", &admin(&server)).await;
    let bodies: Vec<&str> = r.ok_json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["body"]["availability"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["DoNotDisturb", "Away"]);
}

#[tokio::test]
async fn the_emulator_endpoints_need_the_admin_role() {
    let server = TestServer::start().await;
    let reader = server.app_token(&["Presence.ReadWrite.All", "Presence.Read.All"]);
    for (method, path, body) in [
        (Method::GET, "/_presenced/state", None),
        (
            Method::PUT,
            "/_presenced/state",
            Some(json!({"version": 1, "tenants": []})),
        ),
        (Method::POST, "/_presenced/reset", None),
        (Method::GET, "/_presenced/faults", None),
        (
            Method::POST,
            "/_presenced/faults",
            Some(json!({"path": "/x", "status": 500})),
        ),
        (Method::DELETE, "/_presenced/faults", None),
        (Method::GET, "/_presenced/requests", None),
    ] {
        server
            .send(method.clone(), path, Some(&reader), body.clone())
            .await
            .error(403, "Forbidden");
        server
            .send(method, path, None, body)
            .await
            .error(401, "InvalidAuthenticationToken");
    }
}

#[tokio::test]
async fn a_user_imported_at_the_largest_version_can_still_be_written() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let doc = json!({"version": 1, "tenants": [{"id": server.tenant, "users": [{"id": user,
        "version": 9_007_199_254_740_991_u64,
        "sessions": [{"kind": "application", "id": APP, "availability": "Away", "activity": "Away",
            "lastActiveDateTime": "2026-01-01T09:00:00Z", "expirationDateTime": "2026-01-01T10:00:00Z"}]}]}]});
    let r = server.put("/_presenced/state", &admin(&server), doc).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    assert_eq!(server.presence_of(user).await.0, "Busy");
}

#[tokio::test]
async fn an_imported_subscription_replaces_the_cached_one_with_the_same_id() {
    let server = TestServer::start().await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let user = Uuid::new_v4();
    server.subscribe_to(user, &first.hook(), &[user]).await;
    // A delivery puts the subscription into the notifier's cache.
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    first.wait_for_items(1).await;
    let mut state = server
        .get("/_presenced/state", &admin(&server))
        .await
        .ok_json()
        .clone();
    state["tenants"][0]["subscriptions"][0]["notificationUrl"] = json!(second.hook());
    let r = server
        .put("/_presenced/state", &admin(&server), state)
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    server
        .set_presence(user, "Available", "Available", None)
        .await
        .ok_empty();
    let items = second.wait_for_items(1).await;
    assert_eq!(items[0]["resourceData"]["id"], user.to_string().as_str());
    first.assert_stays_at(1).await;
}
