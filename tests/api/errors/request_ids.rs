//! Every response carries `request-id` and `client-request-id`, and every
//! error repeats them in `innerError`.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{send_with, Body};
use crate::helpers::{TestServer, ALL_SCOPES, APP};

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
