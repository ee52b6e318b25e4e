//! The table of bad requests: each is a clear Graph error — status, code,
//! a message that names the problem and the request ids — and changes
//! nothing stored.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{send_with, Body};
use crate::helpers::{token_with, Reply, TestServer, ALL_SCOPES, APP};

/// One bad request and the Graph error it must produce.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    body: Body,
    status: u16,
    code: &'static str,
    /// A substring the error message must contain.
    says: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: String,
    body: Body,
    status: u16,
    code: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        method,
        path,
        body,
        status,
        code,
        says,
    }
}

/// A POST of JSON expected to be 400 `invalidRequest`.
fn bad_post(name: &'static str, path: &str, body: Value, says: &'static str) -> Case {
    case(
        name,
        Method::POST,
        path.to_string(),
        Body::Json(body),
        400,
        "invalidRequest",
        says,
    )
}

/// The presence resource of `user` as its owner reads it.
async fn snapshot(server: &TestServer, user: Uuid) -> Value {
    let token = server.user_token(user, ALL_SCOPES);
    server
        .get(&format!("/v1.0/users/{user}/presence"), &token)
        .await
        .ok_json()
        .clone()
}

/// Gives `user` a session, a preferred presence, a status message and a work
/// location, so that any write that slipped through would show.
async fn arrange_user(server: &TestServer, user: Uuid) -> Value {
    let token = server.user_token(user, ALL_SCOPES);
    let base = format!("/v1.0/users/{user}/presence");
    server
        .set_presence(user, "Busy", "InACall", Some("PT1H"))
        .await
        .ok_empty();
    server
        .set_preferred(
            user,
            json!({"availability": "DoNotDisturb", "activity": "DoNotDisturb"}),
        )
        .await
        .ok_empty();
    server
        .post(
            &format!("{base}/setStatusMessage"),
            &token,
            json!({"statusMessage": {
                "message": {"content": "In the lab", "contentType": "text"},
                "expiryDateTime": {"dateTime": "2026-01-02T09:00:00", "timeZone": "UTC"}
            }}),
        )
        .await
        .ok_empty();
    server
        .post(
            &format!("{base}/setManualLocation"),
            &token,
            json!({"workLocationType": "office", "placeId": "building-7"}),
        )
        .await
        .ok_empty();
    let before = snapshot(server, user).await;
    assert_eq!(before["availability"], "DoNotDisturb");
    assert_eq!(before["statusMessage"]["message"]["content"], "In the lab");
    assert_eq!(before["workLocation"]["workLocationType"], "office");
    before
}

#[tokio::test]
async fn bad_input_is_a_clear_graph_error_and_changes_nothing() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let before = arrange_user(&server, user).await;
    let token = server.user_token(user, ALL_SCOPES);

    let base = format!("/v1.0/users/{user}/presence");
    let set = format!("{base}/setPresence");
    let preferred = format!("{base}/setUserPreferredPresence");
    let status = format!("{base}/setStatusMessage");
    let location = format!("{base}/setManualLocation");
    let many = "/v1.0/communications/getPresencesByUserId";
    let presence = |availability: &str, activity: &str| json!({"sessionId": APP, "availability": availability, "activity": activity});
    let with_duration = |d: &str| json!({"sessionId": APP, "availability": "Away", "activity": "Away", "expirationDuration": d});
    let preferred_for =
        |d: &str| json!({"availability": "Away", "activity": "Away", "expirationDuration": d});
    let message = |m: Value| json!({"statusMessage": m});
    let guids = |n: usize| -> Vec<String> { (0..n).map(|_| Uuid::new_v4().to_string()).collect() };
    let valid_json = presence("Available", "Available").to_string().into_bytes();
    let ten_mb = vec![b' '; 10 * 1024 * 1024];
    let seventy_kb = {
        // Valid JSON padded with whitespace: only its size is wrong.
        let mut bytes = valid_json.clone();
        bytes.resize(70 * 1024, b' ');
        bytes
    };

    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // ---- setPresence: JSON shape
        case("malformed JSON", Method::POST, set.clone(), Body::Raw(b"{".to_vec(), Some("application/json")), 400, "invalidRequest", "JSON"),
        bad_post("an array", &set, json!([APP, "Busy", "InACall"]), "object"),
        bad_post("an array shaped like the fields", &set, json!([APP, "Busy", "InACall", "PT1H"]), "object"),
        bad_post("a string", &set, json!("Busy"), "object"),
        bad_post("a number", &set, json!(42), "object"),
        bad_post("availability is a number", &set, json!({"sessionId": APP, "availability": 5, "activity": "Busy"}), "availability"),
        bad_post("missing sessionId", &set, json!({"availability": "Busy", "activity": "InACall"}), "sessionId"),
        bad_post("missing availability", &set, json!({"sessionId": APP, "activity": "InACall"}), "availability"),
        bad_post("missing activity", &set, json!({"sessionId": APP, "availability": "Busy"}), "activity"),
        // ---- setPresence: values
        bad_post("unknown availability", &set, presence("Sleeping", "Away"), "Sleeping"),
        bad_post("unknown activity", &set, presence("Busy", "Napping"), "Napping"),
        bad_post("unknown pair", &set, presence("Available", "Busy"), "Available/Busy"),
        bad_post("preferred-only pair", &set, presence("Busy", "Busy"), "Busy/Busy"),
        bad_post("duration PT4M", &set, with_duration("PT4M"), "PT5M"),
        bad_post("duration PT5H", &set, with_duration("PT5H"), "PT4H"),
        bad_post("duration 1:00:00", &set, with_duration("1:00:00"), "PT5M"),
        bad_post("duration 1:00:00 named", &set, with_duration("1:00:00"), "1:00:00"),
        bad_post("duration P1Y", &set, with_duration("P1Y"), "P1Y"),
        bad_post("empty duration", &set, with_duration(""), "PT5M"),
        bad_post("duration as a number", &set, json!({"sessionId": APP, "availability": "Away", "activity": "Away", "expirationDuration": 300}), "expirationDuration"),
        bad_post("sessionId of another app", &set, json!({"sessionId": Uuid::new_v4().to_string(), "availability": "Away", "activity": "Away"}), "does not match the calling application"),
        // ---- content type and size
        case("text/plain body", Method::POST, set.clone(), Body::Raw(valid_json.clone(), Some("text/plain")), 415, "unsupportedMediaType", "application/json"),
        case("no content type", Method::POST, set.clone(), Body::Raw(valid_json.clone(), None), 415, "unsupportedMediaType", "application/json"),
        case("10 MB JSON", Method::POST, set.clone(), Body::Raw(ten_mb.clone(), Some("application/json")), 413, "requestTooLarge", "limit"),
        case("10 MB no content type", Method::POST, set.clone(), Body::Raw(ten_mb, None), 413, "requestTooLarge", "limit"),
        case("70 KB JSON", Method::POST, set.clone(), Body::Raw(seventy_kb, Some("application/json")), 413, "requestTooLarge", "limit"),
        // ---- getPresencesByUserId
        bad_post("empty ids", many, json!({"ids": []}), "ids"),
        bad_post("651 ids", many, json!({"ids": guids(651)}), "650"),
        bad_post("a UPN among ids", many, json!({"ids": [Uuid::new_v4().to_string(), "alice@contoso.com"]}), "alice@contoso.com"),
        bad_post("ids missing", many, json!({}), "ids"),
        bad_post("a list instead of an object", many, json!([[user.to_string()]]), "object"),
        bad_post("ids not a list", many, json!({"ids": user.to_string()}), "ids"),
        case("get many without content type", Method::POST, many.to_string(), Body::Raw(json!({"ids": [user.to_string()]}).to_string().into_bytes(), None), 415, "unsupportedMediaType", "application/json"),
        // ---- paths
        case("UPN in path", Method::GET, "/v1.0/users/alice@contoso.com/presence".into(), Body::None, 400, "invalidRequest", "alice@contoso.com"),
        case("number in path", Method::GET, "/v1.0/communications/presences/123".into(), Body::None, 400, "invalidRequest", "123"),
        bad_post("UPN in action path", "/beta/users/alice@contoso.com/presence/setPresence", presence("Busy", "InACall"), "alice@contoso.com"),
        case("unknown path", Method::GET, "/v1.0/users/nothing/here/at/all".into(), Body::None, 404, "itemNotFound", "/v1.0/users/nothing/here/at/all"),
        case("unknown action", Method::POST, format!("{base}/setMood"), Body::Json(json!({})), 404, "itemNotFound", "setMood"),
        case("unknown version", Method::GET, "/v2.0/me/presence".into(), Body::None, 404, "itemNotFound", "v2.0"),
        case("unknown version action", Method::POST, format!("/v2.0/users/{user}/presence/setPresence"), Body::Json(presence("Away", "Away")), 404, "itemNotFound", "v2.0"),
        case("DELETE a presence", Method::DELETE, base.clone(), Body::None, 405, "methodNotAllowed", "DELETE"),
        case("GET setPresence", Method::GET, set.clone(), Body::None, 405, "methodNotAllowed", "GET"),
        case("PUT on get many", Method::PUT, many.to_string(), Body::Json(json!({"ids": [user.to_string()]})), 405, "methodNotAllowed", "PUT"),
        // ---- setUserPreferredPresence
        bad_post("preferred Busy/InACall", &preferred, json!({"availability": "Busy", "activity": "InACall"}), "Busy/InACall"),
        bad_post("preferred PT4M", &preferred, preferred_for("PT4M"), "PT5M"),
        bad_post("preferred P31D", &preferred, preferred_for("P31D"), "P31D"),
        bad_post("preferred missing activity", &preferred, json!({"availability": "Away"}), "activity"),
        // ---- setStatusMessage
        bad_post("281 characters", &status, message(json!({"message": {"content": "x".repeat(281), "contentType": "text"}})), "281"),
        bad_post("unknown time zone", &status, message(json!({"message": {"content": "hi", "contentType": "text"}, "expiryDateTime": {"dateTime": "2026-01-02T09:00:00", "timeZone": "Mars Standard Time"}})), "Mars Standard Time"),
        bad_post("dateTime with offset", &status, message(json!({"message": {"content": "hi", "contentType": "text"}, "expiryDateTime": {"dateTime": "2022-10-18T17:05:33Z", "timeZone": "UTC"}})), "2022-10-18T17:05:33Z"),
        bad_post("dateTime not a date", &status, message(json!({"message": {"content": "hi"}, "expiryDateTime": {"dateTime": "tomorrow", "timeZone": "UTC"}})), "tomorrow"),
        bad_post("missing statusMessage", &status, json!({}), "statusMessage"),
        bad_post("statusMessage without message", &status, message(json!({})), "message"),
        bad_post("contentType markdown", &status, message(json!({"message": {"content": "*hi*", "contentType": "markdown"}})), "markdown"),
        // ---- setManualLocation
        bad_post("unknown workLocationType", &location, json!({"workLocationType": "moon"}), "moon"),
        bad_post("missing workLocationType", &location, json!({}), "workLocationType"),
    ];
    // Collect every broken expectation, so one run lists them all.
    let mut failures = Vec::new();
    let mut before = before;
    for c in cases {
        let name = c.name;
        let label = format!("{name} ({} {})", c.method, c.path);
        let r = send_with(
            &server,
            c.method,
            &c.path,
            Some(&format!("Bearer {token}")),
            &[],
            c.body,
        )
        .await;
        for problem in error_problems(&r, c.status, c.code, c.says, &token) {
            failures.push(format!("{label}: {problem}"));
        }
        let after = snapshot(&server, user).await;
        if after != before {
            failures.push(format!(
                "{label}: changed the stored presence from {before} to {after}"
            ));
            before = after;
        }
    }
    assert!(
        failures.is_empty(),
        "{} bad-input expectation(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What is wrong with `r` as the Graph error `status`/`code` whose message
/// contains `says` (empty when nothing is).
fn error_problems(r: &Reply, status: u16, code: &str, says: &str, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let got = format!("got {} {}", r.status.as_u16(), r.text);
    if r.status.as_u16() >= 500 {
        out.push(format!("a 5xx: {got}"));
    }
    let error = &r.body["error"];
    if r.status.as_u16() != status || error["code"] != code {
        out.push(format!("expected {status} {code}, {got}"));
        return out;
    }
    let message = error["message"].as_str().unwrap_or_default();
    if !message.contains(says) {
        out.push(format!("message {message:?} should contain {says:?}"));
    }
    if message.contains(token) {
        out.push("message echoes the token".to_string());
    }
    if r.headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        out.push(format!("content type {:?}", r.headers.get("content-type")));
    }
    let inner = &error["innerError"];
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
    match header("request-id") {
        Some(id) if !id.is_empty() && inner["request-id"] == id => {}
        other => out.push(format!(
            "request-id header {other:?} vs innerError {}",
            inner["request-id"]
        )),
    }
    match (header("client-request-id"), header("request-id")) {
        (Some(client), Some(id)) if client == id && inner["client-request-id"] == client => {}
        other => out.push(format!(
            "client-request-id/request-id headers {other:?} vs innerError {}",
            inner["client-request-id"]
        )),
    }
    if !inner["date"].is_string() {
        out.push("innerError has no date".to_string());
    }
    out
}

#[tokio::test]
async fn clear_presence_of_a_session_the_app_never_set_is_404() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let before = arrange_user(&server, user).await;
    let other_app = Uuid::new_v4().to_string();
    let token = token_with(
        |c| c.appid = other_app.clone(),
        server.tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    let message = server
        .post(
            &format!("/v1.0/users/{user}/presence/clearPresence"),
            &token,
            json!({ "sessionId": other_app }),
        )
        .await
        .error(404, "itemNotFound");
    assert!(message.contains(&other_app), "{message}");
    assert_eq!(snapshot(&server, user).await, before);
}
