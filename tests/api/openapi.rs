//! `GET /_presenced/openapi.json`: the document is public, matches its
//! reviewed snapshot (so any change to the API's shape shows up in review),
//! and every operation it documents is routed. Conformance of the answers
//! to the schemas is schemathesis's job (`scripts/schemathesis.sh`).

use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::TestServer;

async fn document(server: &TestServer) -> (String, Value) {
    let reply = server
        .send(Method::GET, "/_presenced/openapi.json", None, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/json");
    (reply.text, reply.body)
}

#[tokio::test]
async fn the_document_matches_its_snapshot() {
    let server = TestServer::start().await;
    let (text, doc) = document(&server).await;
    assert_eq!(doc["openapi"], "3.1.0");
    // A change here is a change of the API: review the diff, then accept
    // it with `cargo insta review` (or INSTA_UPDATE=always).
    insta::assert_snapshot!("openapi.json", text);
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start().await;
    let (_, doc) = document(&server).await;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 70, "only {} paths", paths.len());
    let user = Uuid::new_v4().to_string();
    let mut checked = 0;
    for (template, item) in paths {
        let path = template
            .replace("{version}", "v1.0")
            .replace("{id}", &user)
            .replace("{name}", "desktop");
        for (method, op) in item.as_object().expect("path item") {
            let method: Method = method.to_uppercase().parse().expect("method");
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let body = matches!(method, Method::POST | Method::PUT | Method::PATCH)
                .then(|| serde_json::json!({}));
            let reply = server.send(method.clone(), &path, None, body).await;
            if secured {
                // Routed paths authenticate; unknown ones answer 404 or
                // 405 before that.
                assert_eq!(
                    reply.status, 401,
                    "{method} {path} is documented as secured: {}",
                    reply.text
                );
            } else {
                assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text);
            }
            checked += 1;
        }
    }
    assert!(checked >= 75, "only {checked} operations");
}
