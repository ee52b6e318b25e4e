//! Bad input of every kind (SPEC §4, §5, §6): each is a clear Graph error —
//! status, code and a message that names the problem — never a 5xx, and never
//! a change to stored data.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::TimeDelta;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use presenced::auth::{mint_hs256, MintClaims};
use presenced::clock::wall_now;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::helpers::*;

/// The tenant of personal Microsoft accounts (SPEC §5).
const PERSONAL_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// What a table row sends as its body.
enum Body {
    /// No body at all.
    None,
    /// JSON text sent with `Content-Type: application/json`.
    Json(Value),
    /// Raw bytes with the given content type (none when `None`).
    Raw(Vec<u8>, Option<&'static str>),
}

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

/// Sends `method path` with an optional `Authorization` header value, extra
/// headers and a body, and reads the reply.
async fn send_with(
    server: &TestServer,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
    body: Body,
) -> Reply {
    let mut req = server
        .client
        .request(method, format!("{}{}", server.url, path));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req = match body {
        Body::None => req,
        Body::Json(value) => req
            .header("content-type", "application/json")
            .body(value.to_string()),
        Body::Raw(bytes, Some(content_type)) => {
            req.header("content-type", content_type).body(bytes)
        }
        Body::Raw(bytes, None) => req.body(bytes),
    };
    reply(req.send().await.unwrap()).await
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

/// Asserts the ids of an error reply: headers present, and the same ids in
/// `innerError`.
#[track_caller]
fn assert_error_ids(r: &Reply, name: &str) {
    let request_id = r.headers["request-id"].to_str().unwrap();
    let client_request_id = r.headers["client-request-id"].to_str().unwrap();
    let inner = &r.body["error"]["innerError"];
    assert_eq!(inner["request-id"], request_id, "{name}: {}", r.text);
    assert_eq!(
        inner["client-request-id"], client_request_id,
        "{name}: {}",
        r.text
    );
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

#[tokio::test]
async fn get_many_with_exactly_650_ids_answers_all_in_order() {
    let server = TestServer::start().await;
    let users: Vec<Uuid> = (0..650).map(|_| Uuid::new_v4()).collect();
    server
        .set_presence(users[649], "Busy", "InACall", None)
        .await
        .ok_empty();
    server
        .set_presence(users[0], "Away", "Away", None)
        .await
        .ok_empty();
    let ids: Vec<String> = users.iter().map(Uuid::to_string).collect();
    let reader = server.app_token(&["Presence.Read.All"]);
    let r = server
        .post(
            "/v1.0/communications/getPresencesByUserId",
            &reader,
            json!({ "ids": ids }),
        )
        .await;
    let values = r.ok_json()["value"].as_array().unwrap();
    assert_eq!(values.len(), 650);
    let got: Vec<&str> = values.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(values[0]["availability"], "Away");
    assert_eq!(values[649]["activity"], "InACall");
    assert_eq!(values[300]["availability"], "Offline");
}

#[tokio::test]
async fn preferred_presence_accepts_up_to_thirty_days() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Available", "Available", Some("PT4H"))
        .await
        .ok_empty();
    server
        .set_preferred(user, json!({"availability": "BeRightBack", "activity": "BeRightBack", "expirationDuration": "P30D"}))
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("BeRightBack".into(), "BeRightBack".into())
    );
}

#[tokio::test]
async fn status_message_of_280_characters_is_accepted() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let content = "é".repeat(280);
    server
        .post(
            &format!("/v1.0/users/{user}/presence/setStatusMessage"),
            &token,
            json!({"statusMessage": {"message": {"content": content, "contentType": "text"}}}),
        )
        .await
        .ok_empty();
    let r = server.get("/v1.0/me/presence", &token).await;
    assert_eq!(
        r.ok_json()["statusMessage"]["message"]["content"],
        content.as_str()
    );
}

/// Sends a chunked body (no `Content-Length`) over a raw connection and
/// returns the status line and the body.
async fn post_chunked(server: &TestServer, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let addr = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(8 * 1024) {
        let framed = [
            format!("{:x}\r\n", chunk.len()).as_bytes(),
            chunk,
            b"\r\n".as_slice(),
        ]
        .concat();
        // The server may answer and close before reading everything.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    // The body may itself be chunked: take the JSON object inside.
    let json = body
        .find('{')
        .zip(body.rfind('}'))
        .and_then(|(a, b)| serde_json::from_str(&body[a..=b]).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let mut body =
        json!({"sessionId": APP, "availability": "Busy", "activity": "InACall"}).to_string();
    body.push_str(&" ".repeat(70 * 1024));
    let (status, json) = post_chunked(
        &server,
        &format!("/v1.0/users/{user}/presence/setPresence"),
        &token,
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["error"]["code"], "requestTooLarge", "{json}");
    assert_eq!(
        server.presence_of(user).await,
        ("Offline".into(), "Offline".into())
    );
}

/// Claims for a delegated token of `user` in `tenant`, valid for an hour.
fn claims(tenant: Uuid, user: Uuid) -> MintClaims {
    MintClaims::new(
        tenant,
        Some(user),
        APP,
        Some(ALL_SCOPES),
        None,
        wall_now(),
        TimeDelta::hours(1),
    )
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn bad_tokens_are_401_with_www_authenticate() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let tenant = server.tenant;
    let now = wall_now().timestamp();
    let good = claims(tenant, user);

    let expired = token_with(
        |c| {
            c.iat = now - 7200;
            c.nbf = now - 7200;
            c.exp = now - 120;
        },
        tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    let not_yet_valid = token_with(
        |c| {
            c.nbf = now + 3600;
            c.exp = now + 7200;
        },
        tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    let other_secret = mint_hs256(b"another-secret-that-nobody-trusts-42", &good).unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&serde_json::to_value(&good).unwrap())
    );
    let wrong_audience = token_with(
        |c| c.aud = "api://some-other-api".into(),
        tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &good,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    // A good token with its signature dropped.
    let good_token = mint_hs256(SECRET, &good).unwrap();
    let unsigned = good_token.rsplit_once('.').unwrap().0.to_string() + ".";

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("empty Authorization header", Some(String::new())),
        ("Bearer without a token", Some("Bearer".into())),
        ("Bearer garbage", Some("Bearer garbage-token-text".into())),
        ("Basic scheme", Some(format!("Basic {good_token}"))),
        ("expired", Some(format!("Bearer {expired}"))),
        ("not yet valid", Some(format!("Bearer {not_yet_valid}"))),
        (
            "signed with another secret",
            Some(format!("Bearer {other_secret}")),
        ),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        ("signature dropped", Some(format!("Bearer {unsigned}"))),
        ("wrong audience", Some(format!("Bearer {wrong_audience}"))),
        ("HS384", Some(format!("Bearer {hs384}"))),
    ];
    for (name, authorization) in cases {
        let r = send_with(
            &server,
            Method::GET,
            "/v1.0/me/presence",
            authorization.as_deref(),
            &[],
            Body::None,
        )
        .await;
        let message = r.error(401, "InvalidAuthenticationToken");
        assert!(!message.is_empty(), "{name}: empty message");
        assert!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer")),
            "{name}: 401 without WWW-Authenticate: Bearer"
        );
        if let Some(authorization) = &authorization {
            let raw = authorization.split_once(' ').map_or("", |(_, t)| t);
            assert!(
                raw.is_empty() || !message.contains(raw),
                "{name}: message echoes the token: {message}"
            );
            for part in raw.split('.').filter(|p| p.len() > 8) {
                assert!(
                    !message.contains(part),
                    "{name}: message echoes part of the token: {message}"
                );
            }
        }
        assert_error_ids(&r, name);
    }
    // The good token works on the same server.
    server.get("/v1.0/me/presence", &good_token).await.ok_json();
}

#[tokio::test]
async fn token_expired_within_the_leeway_is_still_accepted() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let now = wall_now().timestamp();
    let token = token_with(
        |c| {
            c.iat = now - 3600;
            c.nbf = now - 3600;
            c.exp = now - 10;
        },
        server.tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    server.get("/v1.0/me/presence", &token).await.ok_json();
}

#[tokio::test]
async fn personal_account_token_is_403() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let personal: Uuid = PERSONAL_TENANT.parse().unwrap();
    let token = token_with(|_| {}, personal, Some(user), Some(ALL_SCOPES));
    for path in [
        "/v1.0/me/presence".to_string(),
        format!("/v1.0/users/{user}/presence"),
    ] {
        let r = server.get(&path, &token).await;
        let message = r.error(403, "Forbidden");
        assert!(!message.contains(&token), "{message}");
        assert!(!message.is_empty());
    }
    let r = server
        .post(
            &format!("/v1.0/users/{user}/presence/setPresence"),
            &token,
            json!({"sessionId": APP, "availability": "Busy", "activity": "InACall"}),
        )
        .await;
    r.error(403, "Forbidden");
}

/// name, method, path, Authorization header, JSON body (Null: none), status.
type IdCase<'a> = (&'a str, Method, String, Option<&'a str>, Value, u16);

#[tokio::test]
async fn every_response_carries_request_ids_and_errors_repeat_them() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let bearer = format!("Bearer {token}");
    let set = format!("/v1.0/users/{user}/presence/setPresence");
    let requests: Vec<IdCase> = vec![
        (
            "get",
            Method::GET,
            "/v1.0/me/presence".into(),
            Some(&bearer),
            Value::Null,
            200,
        ),
        (
            "action",
            Method::POST,
            set.clone(),
            Some(&bearer),
            json!({"sessionId": APP, "availability": "Away", "activity": "Away"}),
            200,
        ),
        (
            "healthz",
            Method::GET,
            "/_presenced/healthz".into(),
            None,
            Value::Null,
            200,
        ),
        (
            "bad pair",
            Method::POST,
            set.clone(),
            Some(&bearer),
            json!({"sessionId": APP, "availability": "Away", "activity": "Busy"}),
            400,
        ),
        (
            "no token",
            Method::GET,
            "/v1.0/me/presence".into(),
            None,
            Value::Null,
            401,
        ),
        (
            "unknown path",
            Method::GET,
            "/v1.0/nowhere".into(),
            Some(&bearer),
            Value::Null,
            404,
        ),
        (
            "wrong method",
            Method::DELETE,
            "/v1.0/me/presence".into(),
            Some(&bearer),
            Value::Null,
            405,
        ),
    ];
    for (name, method, path, authorization, body, status) in requests {
        for client_id in [None, Some("caller-chosen-id-0123")] {
            let body = if body.is_null() {
                Body::None
            } else {
                Body::Json(body.clone())
            };
            let headers: Vec<(&str, &str)> = client_id
                .map(|id| vec![("client-request-id", id)])
                .unwrap_or_default();
            let r = send_with(
                &server,
                method.clone(),
                &path,
                authorization,
                &headers,
                body,
            )
            .await;
            assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text);
            let request_id = r
                .headers
                .get("request-id")
                .unwrap_or_else(|| panic!("{name}: no request-id"))
                .to_str()
                .unwrap()
                .to_string();
            assert!(!request_id.is_empty(), "{name}");
            let echoed = r
                .headers
                .get("client-request-id")
                .unwrap_or_else(|| panic!("{name}: no client-request-id"))
                .to_str()
                .unwrap();
            match client_id {
                Some(id) => assert_eq!(echoed, id, "{name}: client-request-id not echoed"),
                None => assert_eq!(echoed, request_id, "{name}: client-request-id ≠ request-id"),
            }
            if status >= 400 {
                let inner = &r.body["error"]["innerError"];
                assert_eq!(
                    inner["request-id"],
                    request_id.as_str(),
                    "{name}: {}",
                    r.text
                );
                assert_eq!(inner["client-request-id"], echoed, "{name}: {}", r.text);
                assert!(inner["date"].is_string(), "{name}: {}", r.text);
            }
        }
    }
    // Each request gets its own id.
    let a = server.get("/v1.0/me/presence", &token).await;
    let b = server.get("/v1.0/me/presence", &token).await;
    assert_ne!(a.headers["request-id"], b.headers["request-id"]);
}
