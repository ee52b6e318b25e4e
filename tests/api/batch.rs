//! Graph JSON batching (SPEC §3a):
//! every operation in a batch, the limits and malformed batches, dependsOn
//! and 424, permissions and throttling per batched request, durability of
//! batched writes across `kill -9`, notifications from batched writes.

use chrono::TimeDelta;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;
use crate::process::{mint_app, Proc};
use crate::receiver::Receiver;

/// A batched setPresence for `user`.
fn set_presence(id: &str, user: Uuid, availability: &str, activity: &str) -> Value {
    json!({
        "id": id, "method": "POST",
        "url": format!("/users/{user}/presence/setPresence"),
        "headers": {"Content-Type": "application/json"},
        "body": {"sessionId": APP, "availability": availability, "activity": activity,
                 "expirationDuration": "PT1H"},
    })
}

/// A batched POST of `body` to `url`.
fn post(id: &str, url: &str, body: Value) -> Value {
    json!({"id": id, "method": "POST", "url": url,
           "headers": {"content-type": "application/json"}, "body": body})
}

/// A batched GET of `url`.
fn get(id: &str, url: &str) -> Value {
    json!({"id": id, "method": "GET", "url": url})
}

/// Posts a batch and returns the answer.
async fn batch(server: &TestServer, token: &str, requests: Vec<Value>) -> Reply {
    server
        .post("/v1.0/$batch", token, json!({ "requests": requests }))
        .await
}

/// The batched answer with `id`.
#[track_caller]
fn answer<'a>(reply: &'a Reply, id: &str) -> &'a Value {
    reply.ok_json()["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no answer for {id}: {}", reply.text))
}

/// Asserts a batched answer is Graph's error with `status` and `code`, and
/// returns its message.
#[track_caller]
fn inner_error(reply: &Reply, id: &str, status: u16, code: &str) -> String {
    let a = answer(reply, id);
    assert_eq!(a["status"], status, "{a}");
    assert_eq!(a["body"]["error"]["code"], code, "{a}");
    assert_eq!(a["headers"]["Content-Type"], "application/json", "{a}");
    assert!(
        a["body"]["error"]["innerError"]["request-id"].is_string(),
        "{a}"
    );
    a["body"]["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_batch_runs_every_presence_operation_as_if_sent_alone() {
    let server = TestServer::start().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let token = server.user_token(alice, ALL_SCOPES);
    let status =
        json!({"statusMessage": {"message": {"content": "In a batch", "contentType": "text"}}});
    let r = batch(
        &server,
        &token,
        vec![
            set_presence("1", alice, "Busy", "InACall"),
            post(
                "2",
                "/me/presence/setUserPreferredPresence",
                json!({"availability": "DoNotDisturb", "activity": "DoNotDisturb"}),
            ),
            post("3", "/me/presence/setStatusMessage", status),
            post(
                "4",
                "/me/presence/setManualLocation",
                json!({"workLocationType": "office"}),
            ),
            post(
                "5",
                "/me/presence/setAutomaticLocation",
                json!({"workLocationType": "remote"}),
            ),
        ],
    )
    .await;
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.headers.contains_key("request-id"));
    let responses = r.ok_json()["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 5);
    for (i, a) in responses.iter().enumerate() {
        assert_eq!(a["id"], (i + 1).to_string(), "answers in request order");
        assert_eq!(a["status"], 200, "{a}");
        assert!(a.get("body").is_none(), "actions answer no body: {a}");
    }
    // Reads in a batch see the writes of an earlier batch.
    let r = batch(
        &server,
        &token,
        vec![
            get("me", "/me/presence"),
            get("users", &format!("/users/{alice}/presence")),
            get("presences", &format!("/communications/presences/{alice}")),
            post(
                "many",
                "/communications/getPresencesByUserId",
                json!({"ids": [alice, bob]}),
            ),
        ],
    )
    .await;
    for id in ["me", "users", "presences"] {
        let a = answer(&r, id);
        assert_eq!(a["status"], 200, "{a}");
        assert_eq!(a["headers"]["Content-Type"], "application/json");
        let p = &a["body"];
        assert_eq!(p["id"], alice.to_string());
        assert_eq!(p["availability"], "DoNotDisturb", "preferred wins: {p}");
        assert_eq!(p["statusMessage"]["message"]["content"], "In a batch");
        assert_eq!(p["workLocation"]["workLocationType"], "office");
        assert_eq!(
            p["@odata.context"],
            format!(
                "{}/v1.0/$metadata#users('{alice}')/presence/$entity",
                server.url
            )
        );
    }
    let many = &answer(&r, "many")["body"]["value"];
    assert_eq!(many[0]["availability"], "DoNotDisturb");
    assert_eq!(many[1]["availability"], "Offline");
    // The clearing actions, in a beta batch, some bodies base64 as the
    // Python SDK sends `{}`.
    let r = server
        .post(
            "/beta/$batch",
            &token,
            json!({"requests": [
                post("a", "/me/presence/clearUserPreferredPresence", json!("e30=")),
                post("b", "/me/presence/clearLocation", json!({})),
                post("c", "/me/presence/clearAutomaticLocation", json!({})),
                post("d", &format!("/users/{alice}/presence/clearPresence"), json!({"sessionId": APP})),
            ]}),
        )
        .await;
    for id in ["a", "b", "c", "d"] {
        assert_eq!(answer(&r, id)["status"], 200, "{}", r.text);
    }
    let p = server
        .get(&format!("/v1.0/users/{alice}/presence"), &token)
        .await;
    let p = p.ok_json();
    assert_eq!(p["availability"], "Offline");
    assert_eq!(p["workLocation"]["workLocationType"], "unspecified");
}

#[tokio::test]
async fn the_url_encoded_batch_path_is_accepted_and_other_methods_are_405() {
    let server = TestServer::start().await;
    let alice = Uuid::new_v4();
    let token = server.user_token(alice, ALL_SCOPES);
    let r = server
        .post(
            "/v1.0/%24batch",
            &token,
            json!({"requests": [set_presence("1", alice, "Away", "Away")]}),
        )
        .await;
    assert_eq!(answer(&r, "1")["status"], 200, "{}", r.text);
    assert_eq!(server.presence_of(alice).await.0, "Away");
    let r = server.get("/v1.0/$batch", &token).await;
    r.error(405, "methodNotAllowed");
    let r = server
        .post(
            "/v2.0/$batch",
            &token,
            json!({"requests": [get("1", "/me/presence")]}),
        )
        .await;
    r.error(404, "itemNotFound");
}

#[tokio::test]
async fn a_batch_without_a_valid_token_is_401_as_a_whole() {
    let server = TestServer::start().await;
    let body = json!({"requests": [get("1", "/me/presence")]});
    let r = server
        .send(Method::POST, "/v1.0/$batch", None, Some(body.clone()))
        .await;
    r.error(401, "InvalidAuthenticationToken");
    let r = server.post("/v1.0/$batch", "not-a-token", body).await;
    r.error(401, "InvalidAuthenticationToken");
}

#[tokio::test]
async fn a_batch_holds_at_most_twenty_requests() {
    let server = TestServer::start().await;
    let token = server.app_token(&["Presence.ReadWrite.All", "Presence.Read.All"]);
    let users: Vec<Uuid> = (0..21).map(|_| Uuid::new_v4()).collect();
    let requests = |n: usize| -> Vec<Value> {
        users[..n]
            .iter()
            .enumerate()
            .map(|(i, u)| set_presence(&i.to_string(), *u, "Busy", "InACall"))
            .collect()
    };
    let r = batch(&server, &token, requests(21)).await;
    let message = r.error(400, "BadRequest");
    assert_eq!(
        message,
        "A batch holds between 1 and 20 requests; this one holds 21."
    );
    assert_eq!(
        server.presence_of(users[0]).await.0,
        "Offline",
        "nothing ran"
    );
    let r = batch(&server, &token, requests(20)).await;
    let responses = r.ok_json()["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 20);
    assert!(responses.iter().all(|a| a["status"] == 200), "{}", r.text);
    for user in &users[..20] {
        assert_eq!(server.presence_of(*user).await.0, "Busy");
    }
}

#[tokio::test]
async fn a_malformed_batch_is_400_naming_the_problem() {
    let server = TestServer::start().await;
    let alice = Uuid::new_v4();
    let token = server.user_token(alice, ALL_SCOPES);
    let with_deps = |id: &str, deps: &[&str]| {
        let mut r = get(id, "/me/presence");
        r["dependsOn"] = json!(deps);
        r
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "'requests' array"),
        (json!([{"id": "1"}]), "'requests' array"),
        (json!({"requests": "x"}), "'requests' array"),
        (
            json!({"requests": [get("1", "/me/presence"), get("1", "/me/presence")]}),
            "more than one request with id '1'",
        ),
        (
            json!({"requests": [{"id": "1", "method": "HEAD", "url": "/me/presence"}]}),
            "has method 'HEAD'",
        ),
        (
            json!({"requests": [get("1", "https://graph.microsoft.com/v1.0/me/presence")]}),
            "relative to the version",
        ),
        (
            json!({"requests": [get("1", "/../_presenced/clock")]}),
            "outside the batch's version",
        ),
        (
            json!({"requests": [get("1", "/beta/me/presence")]}),
            "outside the batch's version",
        ),
        (
            json!({"requests": [post("1", "/$batch", json!({"requests": []}))]}),
            "batches cannot be nested",
        ),
        (
            json!({"requests": [with_deps("1", &["2"])]}),
            "depends on '2', which is not a request of this batch",
        ),
        (
            json!({"requests": [with_deps("1", &["2"]), with_deps("2", &["1"])]}),
            "form a cycle",
        ),
        (
            json!({"requests": [{"id": "1", "url": "/me/presence"}]}),
            "requests[0]: method is required",
        ),
    ];
    for (body, expected) in cases {
        let r = server.post("/v1.0/$batch", &token, body.clone()).await;
        let message = r.error(400, "BadRequest");
        assert!(message.contains(expected), "{body}: {message}");
    }
    // Not JSON at all, and not JSON content.
    let r = reply(
        server
            .client
            .post(format!("{}/v1.0/$batch", server.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{\"requests\": [")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(r
        .error(400, "BadRequest")
        .starts_with("The batch body is not valid JSON"));
    let r = reply(
        server
            .client
            .post(format!("{}/v1.0/$batch", server.url))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.error(415, "unsupportedMediaType");
}

#[tokio::test]
async fn mixed_success_and_failure_each_answer_as_they_would_alone() {
    let server = TestServer::start().await;
    let alice = Uuid::new_v4();
    let token = server.user_token(alice, ALL_SCOPES);
    let r = batch(
        &server,
        &token,
        vec![
            set_presence("ok", alice, "Busy", "InACall"),
            set_presence("pair", alice, "Busy", "Away"),
            get("guid", "/users/not-a-guid/presence"),
            get("missing", "/users/nowhere"),
            post(
                "session",
                "/me/presence/clearPresence",
                json!({"sessionId": "someone-else"}),
            ),
            json!({"id": "type", "method": "POST", "url": "/me/presence/setPresence",
                   "body": {"sessionId": APP}}),
            get("select", "/me/presence?$select=mood"),
            // The JavaScript client's form: the batch's own version prefix.
            get("prefixed", "/v1.0/me/presence"),
        ],
    )
    .await;
    assert_eq!(answer(&r, "ok")["status"], 200);
    assert_eq!(answer(&r, "prefixed")["status"], 200);
    let message = inner_error(&r, "pair", 400, "invalidRequest");
    assert!(message.contains("Busy/Away"), "{message}");
    inner_error(&r, "guid", 400, "invalidRequest");
    inner_error(&r, "missing", 404, "itemNotFound");
    inner_error(&r, "session", 400, "invalidRequest");
    inner_error(&r, "type", 415, "unsupportedMediaType");
    inner_error(&r, "select", 400, "BadRequest");
    assert_eq!(
        server.presence_of(alice).await,
        ("Busy".into(), "InACall".into())
    );
}

#[tokio::test]
async fn a_request_whose_dependency_failed_is_not_run_and_answers_424() {
    let server = TestServer::start().await;
    let (alice, bob, carol) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let token = server.app_token(&["Presence.ReadWrite.All", "Presence.Read.All"]);
    let depends = |mut r: Value, on: &[&str]| {
        r["dependsOn"] = json!(on);
        r
    };
    let r = batch(
        &server,
        &token,
        vec![
            set_presence("1", alice, "Busy", "InACall"),
            depends(set_presence("2", bob, "Busy", "Presenting"), &["1"]),
            depends(set_presence("3", carol, "Away", "Away"), &["2"]),
            depends(set_presence("4", carol, "Busy", "InACall"), &["1"]),
        ],
    )
    .await;
    assert_eq!(answer(&r, "1")["status"], 200);
    inner_error(&r, "2", 400, "invalidRequest");
    let message = inner_error(&r, "3", 424, "failedDependency");
    assert!(message.contains("depends on request '2'"), "{message}");
    assert!(message.contains("status 400"), "{message}");
    assert_eq!(answer(&r, "4")["status"], 200, "its dependency succeeded");
    // 3 never ran: carol is Busy from 4, not Away.
    assert_eq!(server.presence_of(carol).await.0, "Busy");
    assert_eq!(server.presence_of(bob).await.0, "Offline");
}

#[tokio::test]
async fn dependencies_order_requests_within_a_batch() {
    let server = TestServer::start().await;
    let alice = Uuid::new_v4();
    let token = server.user_token(alice, ALL_SCOPES);
    // Listed backwards; dependsOn runs them write, then read.
    let mut read = get("read", "/me/presence");
    read["dependsOn"] = json!(["write"]);
    let r = batch(
        &server,
        &token,
        vec![
            read,
            set_presence("write", alice, "DoNotDisturb", "Presenting"),
        ],
    )
    .await;
    let body = &answer(&r, "read")["body"];
    assert_eq!(body["availability"], "DoNotDisturb", "{}", r.text);
    assert_eq!(body["activity"], "Presenting");
}

#[tokio::test]
async fn each_batched_request_is_authorised_on_its_own() {
    let server = TestServer::start().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    // A delegated token may write only its own user's presence.
    let token = server.user_token(alice, ALL_SCOPES);
    let r = batch(
        &server,
        &token,
        vec![
            set_presence("mine", alice, "Busy", "InACall"),
            set_presence("theirs", bob, "Busy", "InACall"),
            get("read", &format!("/users/{bob}/presence")),
        ],
    )
    .await;
    assert_eq!(answer(&r, "mine")["status"], 200);
    inner_error(&r, "theirs", 403, "Forbidden");
    assert_eq!(
        answer(&r, "read")["status"],
        200,
        "Presence.Read.All reads others"
    );
    assert_eq!(server.presence_of(bob).await.0, "Offline");
    // Without Presence.Read.All, reading another user is refused too.
    let narrow = server.user_token(alice, "Presence.Read");
    let r = batch(
        &server,
        &narrow,
        vec![
            get("self", "/me/presence"),
            get("other", &format!("/users/{bob}/presence")),
        ],
    )
    .await;
    assert_eq!(answer(&r, "self")["status"], 200);
    inner_error(&r, "other", 403, "Forbidden");
    // An application token has no /me.
    let app = server.app_token(&["Presence.Read.All"]);
    let r = batch(&server, &app, vec![get("me", "/me/presence")]).await;
    let message = inner_error(&r, "me", 400, "invalidRequest");
    assert_eq!(
        message,
        "/me request is only valid with delegated authentication flow."
    );
}

#[tokio::test]
async fn throttling_applies_to_each_batched_request_with_retry_after() {
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.rate_limit = Some("3/60s".into());
    })
    .await;
    let token = server.app_token(&["Presence.ReadWrite.All", "Presence.Read.All"]);
    let users: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut requests: Vec<Value> = vec![];
    for (i, user) in users.iter().enumerate() {
        let mut r = set_presence(&i.to_string(), *user, "Busy", "InACall");
        if i > 0 {
            // In order, so exactly the first three fit the budget.
            r["dependsOn"] = json!([(i - 1).to_string()]);
        }
        requests.push(r);
    }
    let r = batch(&server, &token, requests).await;
    for id in ["0", "1", "2"] {
        assert_eq!(answer(&r, id)["status"], 200, "{}", r.text);
    }
    let a = answer(&r, "3");
    assert_eq!(a["status"], 429, "{a}");
    assert_eq!(a["body"]["error"]["code"], "TooManyRequests");
    let retry: u64 = a["headers"]["Retry-After"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{a}");
    assert_eq!(
        answer(&r, "4")["status"],
        424,
        "its dependency was throttled"
    );
}

#[tokio::test]
async fn batched_writes_notify_subscribers_like_single_writes() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (watcher, alice, bob) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let watch = server.user_token(watcher, ALL_SCOPES);
    let sub = json!({
        "changeType": "updated",
        "notificationUrl": receiver.hook(),
        "resource": format!("/communications/presences?$filter=id in ('{alice}','{bob}')"),
        "expirationDateTime": (t0() + TimeDelta::minutes(60)).to_rfc3339(),
        "clientState": "batch",
    });
    let r = server.post("/v1.0/subscriptions", &watch, sub).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = server.app_token(&["Presence.ReadWrite.All"]);
    let r = batch(
        &server,
        &token,
        vec![
            set_presence("a", alice, "Busy", "InACall"),
            set_presence("b", bob, "DoNotDisturb", "Presenting"),
        ],
    )
    .await;
    assert_eq!(answer(&r, "a")["status"], 200);
    assert_eq!(answer(&r, "b")["status"], 200);
    let items = receiver.wait_for_items(2).await;
    let mut notified: Vec<String> = items
        .iter()
        .map(|i| i["resourceData"]["id"].as_str().unwrap().to_string())
        .collect();
    notified.sort();
    let mut expected = vec![alice.to_string(), bob.to_string()];
    expected.sort();
    assert_eq!(notified, expected);
    assert!(items.iter().all(|i| i["clientState"] == "batch"));
}

#[tokio::test]
async fn batched_writes_survive_kill_9_of_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let tenant = Uuid::new_v4();
    let app = "app-batch-kill9";
    let users: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    let server = Proc::start(&["--data-dir", data]);
    let token = mint_app(
        dir.path(),
        tenant,
        app,
        "Presence.ReadWrite.All Presence.Read.All",
    );
    let requests: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"id": i.to_string(), "method": "POST",
                   "url": format!("/users/{u}/presence/setPresence"),
                   "headers": {"Content-Type": "application/json"},
                   "body": {"sessionId": app, "availability": "DoNotDisturb",
                            "activity": "Presenting", "expirationDuration": "PT4H"}})
        })
        .collect();
    let r = server
        .send(
            Method::POST,
            "/v1.0/$batch",
            &token,
            Some(json!({ "requests": requests })),
        )
        .await;
    let responses = r.ok_json()["responses"].as_array().unwrap().clone();
    assert!(responses.iter().all(|a| a["status"] == 200), "{}", r.text);
    // Acknowledged, then SIGKILL with no warning.
    server.kill9();
    let server = Proc::start(&["--data-dir", data]);
    let ids: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    let r = server
        .send(
            Method::POST,
            "/v1.0/communications/getPresencesByUserId",
            &token,
            Some(json!({"ids": ids})),
        )
        .await;
    let values = r.ok_json()["value"].as_array().unwrap().clone();
    assert_eq!(values.len(), 20);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v["availability"], "DoNotDisturb", "user {i} after kill -9");
    }
}

#[tokio::test]
async fn select_applies_to_batched_reads() {
    let server = TestServer::start().await;
    let alice = Uuid::new_v4();
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    let token = server.user_token(alice, ALL_SCOPES);
    let r = batch(
        &server,
        &token,
        vec![get(
            "s",
            &format!("/users/{alice}/presence?$select=sequenceNumber"),
        )],
    )
    .await;
    let body = &answer(&r, "s")["body"];
    assert!(body["sequenceNumber"].is_string(), "{body}");
    assert!(body.get("activity").is_none(), "{body}");
}
