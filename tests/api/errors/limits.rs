//! The edges that are still accepted (650 ids, thirty days, 280
//! characters), and a chunked body over the size limit.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::helpers::{TestServer, ALL_SCOPES, APP};

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
