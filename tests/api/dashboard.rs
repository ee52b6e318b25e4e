//! The dashboard's routes: `GET /` and its assets under `/_presenced/ui/`
//! (what the page does in a browser is checked by `scripts/dashboard.sh`
//! in headless chromium).

use reqwest::Method;

use crate::helpers::TestServer;

const POLICY_PARTS: [&str; 4] = [
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
];

#[track_caller]
fn assert_dashboard_headers(reply: &crate::helpers::Reply, content_type: &str) {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], content_type);
    assert_eq!(reply.headers["cache-control"], "no-cache");
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    let policy = reply.headers["content-security-policy"].to_str().unwrap();
    for part in POLICY_PARTS {
        assert!(policy.contains(part), "{part} missing from {policy}");
    }
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
    assert!(reply.headers.contains_key("request-id"));
}

#[tokio::test]
async fn the_dashboard_page_is_served_at_the_root_without_a_token() {
    let server = TestServer::start().await;
    let reply = server.send(Method::GET, "/", None, None).await;
    assert_dashboard_headers(&reply, "text/html; charset=utf-8");
    assert!(reply.text.starts_with("<!doctype html>"), "{}", reply.text);
    assert!(reply
        .text
        .contains(r#"<script type="module" src="/_presenced/ui/app.js"></script>"#));
}

#[tokio::test]
async fn the_dashboard_assets_are_served_with_their_content_types() {
    let server = TestServer::start().await;
    for (name, content_type, sample) in [
        ("app.js", "text/javascript; charset=utf-8", "import "),
        ("api.js", "text/javascript; charset=utf-8", "Authorization"),
        ("sse.js", "text/javascript; charset=utf-8", "Last-Event-ID"),
        ("view.js", "text/javascript; charset=utf-8", "textContent"),
        ("style.css", "text/css; charset=utf-8", ".badge"),
        ("favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let reply = server
            .send(Method::GET, &format!("/_presenced/ui/{name}"), None, None)
            .await;
        assert_dashboard_headers(&reply, content_type);
        assert!(reply.text.contains(sample), "{name}: {}", reply.text);
    }
}

#[tokio::test]
async fn an_unknown_dashboard_asset_is_a_graph_404() {
    let server = TestServer::start().await;
    for path in [
        "/_presenced/ui/nope.js",
        "/_presenced/ui/..%2Fsrc%2Fmain.rs",
        "/_presenced/ui/",
    ] {
        let reply = server.send(Method::GET, path, None, None).await;
        let message = reply.error(404, "itemNotFound");
        assert!(message.contains("Resource not found"), "{path}: {message}");
    }
}

#[tokio::test]
async fn the_root_only_answers_get_and_unknown_paths_stay_graph_404s() {
    let server = TestServer::start().await;
    let reply = server.send(Method::POST, "/", None, None).await;
    reply.error(405, "methodNotAllowed");
    let reply = server.send(Method::GET, "/index.html", None, None).await;
    reply.error(404, "itemNotFound");
    let reply = server.send(Method::GET, "/v1.0", None, None).await;
    reply.error(404, "itemNotFound");
}

#[tokio::test]
async fn the_dashboard_is_neither_faulted_nor_journaled_by_the_emulator() {
    let server = TestServer::start().await;
    let admin = server.app_token(&["Presenced.Admin"]);
    server
        .post(
            "/_presenced/faults",
            &admin,
            serde_json::json!({"path": "/**", "status": 503}),
        )
        .await;
    let rules = server.get("/_presenced/faults", &admin).await;
    assert_eq!(rules.ok_json()["value"].as_array().unwrap().len(), 1);
    for path in ["/", "/_presenced/ui/app.js"] {
        let reply = server.send(Method::GET, path, None, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
    let journal = server.get("/_presenced/requests", &admin).await;
    assert_eq!(
        journal.ok_json()["value"],
        serde_json::json!([]),
        "the page is not a Graph request"
    );
    // The rule still answers Graph paths.
    let reply = server
        .send(Method::GET, "/v1.0/me/presence", None, None)
        .await;
    reply.error(503, "serviceNotAvailable");
}
