//! The direct path (`src/http/direct.rs`): a plain
//! `GET /{version}/users/{id}/presence` and a plain setPresence are
//! answered without the router, and every answer it gives is the router's,
//! header for header and byte for byte but the request ids. Built as the
//! binary builds it (outside emulator mode, where the direct path is on),
//! and asked both ways in process.

use axum::body::Body;
use axum::http::{Method, Request, Response};
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

use crate::helpers::{build_app, token, ALL_SCOPES, APP};
use presenced::http::direct::Direct;
use presenced::http::{router, AppState};

fn request(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Request<Body> {
    let body = body.map(|b| ("application/json", b.to_string()));
    raw_request(method, path, headers, body)
}

/// A request with a body of this content type and text, sent with its
/// length declared, as HTTP clients send a body they hold whole.
fn raw_request(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match body {
        Some((content_type, text)) => builder
            .header("content-type", content_type)
            .header("content-length", text.len())
            .body(Body::from(text)),
        None => builder.body(Body::empty()),
    }
    .unwrap()
}

/// What two answers must share: the status, every header but the request
/// ids, and the body, with the ids in a Graph error's `innerError` (and its
/// `date`, a wall-clock reading) taken out.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    client_request_id: String,
}

async fn answer(response: Response<Body>) -> Answer {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(inner) = body
        .pointer_mut("/error/innerError")
        .and_then(Value::as_object_mut)
    {
        for volatile in ["request-id", "client-request-id", "date"] {
            assert!(
                inner.remove(volatile).is_some(),
                "innerError has {volatile}"
            );
        }
    }
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != "request-id" && *name != "client-request-id")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect();
    Answer {
        status: parts.status.as_u16(),
        headers,
        body,
        client_request_id: parts.headers["client-request-id"].to_str().unwrap().into(),
    }
}

/// Asks `path` both ways; the direct path must serve it.
async fn both_ways(state: &AppState, path: &str, headers: &[(&str, &str)]) -> Answer {
    sent_both_ways(state, Method::GET, path, headers, None).await
}

/// Sends the same request both ways, the direct path first (which must
/// serve it), and compares the answers.
async fn sent_both_ways(
    state: &AppState,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> Answer {
    let direct = Direct::new(state.clone()).expect("on outside emulator mode");
    let served = direct
        .try_serve(raw_request(method.clone(), path, headers, body.clone()))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} was not served directly"));
    let routed = router(state.clone())
        .oneshot(raw_request(method, path, headers, body))
        .await
        .unwrap();
    let (mut served, mut routed) = (answer(served).await, answer(routed).await);
    if !headers.iter().any(|(name, _)| *name == "client-request-id") {
        // Each answer's own request id, echoed.
        assert_ne!(served.client_request_id, routed.client_request_id);
        served.client_request_id.clear();
        routed.client_request_id.clear();
    }
    assert_eq!(served, routed, "{path} {headers:?}");
    served
}

#[tokio::test]
async fn the_direct_read_answers_exactly_as_the_router_does() {
    let dir = tempfile::tempdir().unwrap();
    let app = build_app(&dir, |_| {}).await;
    let state = app.state();
    let tenant = Uuid::new_v4();
    let (busy, quiet, reader) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let app_token = token(
        tenant,
        None,
        APP,
        None,
        Some(&["Presence.ReadWrite.All".into()]),
    );
    let own = token(tenant, Some(busy), APP, Some(ALL_SCOPES), None);
    let other = token(tenant, Some(reader), APP, Some(ALL_SCOPES), None);
    let own_only = token(tenant, Some(reader), APP, Some("Presence.ReadWrite"), None);
    let elsewhere = token(
        Uuid::new_v4(),
        None,
        APP,
        None,
        Some(&["Presence.Read.All".into()]),
    );
    let no_roles = token(tenant, None, APP, None, Some(&[]));
    let bearer = |t: &str| format!("Bearer {t}");
    // Something to read: a session and a status message with an expiry
    // (the owner sees the expiry, others do not), through the router.
    for (action, body) in [
        (
            "setPresence",
            json!({"sessionId": APP, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"}),
        ),
        (
            "setStatusMessage",
            json!({"statusMessage": {"message": {"content": "On a \"call\" <b>", "contentType": "text"},
                   "expiryDateTime": {"dateTime": "2099-01-01T00:00:00", "timeZone": "Pacific Standard Time"}}}),
        ),
    ] {
        let written = router(state.clone())
            .oneshot(request(
                Method::POST,
                &format!("/v1.0/users/{busy}/presence/{action}"),
                &[("authorization", &bearer(&own))],
                Some(body),
            ))
            .await
            .unwrap();
        assert!(
            written.status().is_success(),
            "{action}: {}",
            written.status()
        );
    }

    let read = |user: Uuid| format!("/v1.0/users/{user}/presence");
    let read_upper =
        |user: Uuid| format!("/v1.0/users/{}/presence", user.to_string().to_uppercase());
    // Path, headers, the status both answer.
    type Case = (String, Vec<(&'static str, String)>, u16);
    let cases: Vec<Case> = vec![
        (read(busy), vec![("authorization", bearer(&app_token))], 200),
        (read(busy), vec![("authorization", bearer(&own))], 200),
        (read(busy), vec![("authorization", bearer(&other))], 200),
        (
            format!("/beta/users/{busy}/presence"),
            vec![("authorization", bearer(&own))],
            200,
        ),
        (
            read_upper(busy),
            vec![("authorization", bearer(&app_token))],
            200,
        ),
        (
            read(quiet),
            vec![
                ("authorization", bearer(&app_token)),
                ("client-request-id", "my-id-1".into()),
            ],
            200,
        ),
        (read(busy), vec![("authorization", bearer(&own_only))], 403),
        (read(busy), vec![("authorization", bearer(&no_roles))], 403),
        (read(busy), vec![("authorization", bearer(&elsewhere))], 200),
        (
            read(busy),
            vec![("authorization", "Bearer not-a-token".into())],
            401,
        ),
        (
            read(busy),
            vec![("authorization", format!("Basic {app_token}"))],
            401,
        ),
        (read(busy), vec![], 401),
        (
            "/v1.0/users/not-a-guid/presence".into(),
            vec![("authorization", bearer(&app_token))],
            400,
        ),
        ("/v1.0/users/not-a-guid/presence".into(), vec![], 401),
    ];
    for (path, headers, status) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = both_ways(state, path, &headers).await;
        assert_eq!(
            answer.status, *status,
            "{path} {headers:?}: {:?}",
            answer.body
        );
        if let Some((_, sent)) = headers.iter().find(|(n, _)| *n == "client-request-id") {
            assert_eq!(answer.client_request_id, *sent);
        }
    }

    // What the cases read, so the comparison above compared something.
    let owner = both_ways(state, &read(busy), &[("authorization", &bearer(&own))]).await;
    assert_eq!(owner.body["availability"], "Busy");
    assert_eq!(
        owner.body["statusMessage"]["message"]["content"],
        "On a \"call\" <b>"
    );
    assert_eq!(
        owner.body["statusMessage"]["expiryDateTime"]["timeZone"],
        "Pacific Standard Time"
    );
    let reader_view = both_ways(state, &read(busy), &[("authorization", &bearer(&other))]).await;
    assert_eq!(
        reader_view.body["statusMessage"]["expiryDateTime"],
        Value::Null
    );
    let foreign = both_ways(
        state,
        &read(busy),
        &[("authorization", &bearer(&elsewhere))],
    )
    .await;
    assert_eq!(
        foreign.body["availability"], "Offline",
        "another tenant's user is another user"
    );
}

#[tokio::test]
async fn the_direct_set_presence_answers_and_writes_exactly_as_the_router_does() {
    let dir = tempfile::tempdir().unwrap();
    let app = build_app(&dir, |_| {}).await;
    let state = app.state();
    let tenant = Uuid::new_v4();
    let (user, someone) = (Uuid::new_v4(), Uuid::new_v4());
    let bearer = |t: String| format!("Bearer {t}");
    let app_token = bearer(token(
        tenant,
        None,
        APP,
        None,
        Some(&["Presence.ReadWrite.All".into()]),
    ));
    let own = bearer(token(tenant, Some(user), APP, Some(ALL_SCOPES), None));
    let not_own = bearer(token(
        tenant,
        Some(someone),
        APP,
        Some("Presence.ReadWrite"),
        None,
    ));
    let reader = bearer(token(
        tenant,
        None,
        APP,
        None,
        Some(&["Presence.Read.All".into()]),
    ));
    let set = |version: &str, name: &str| format!("/{version}/users/{user}/presence/{name}");
    let busy = json!({"sessionId": APP, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"})
        .to_string();
    let json = |text: &str| Some(("application/json", text.to_string()));
    // Path, headers, body, the status both answer, and what the answer's
    // error message must hold (a 400 names what is wrong).
    type Case = (
        String,
        Vec<(&'static str, String)>,
        Option<(&'static str, String)>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            set("v1.0", "setPresence"),
            vec![("authorization", app_token.clone())],
            json(&busy),
            200,
            "",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", own.clone())],
            json(&busy),
            200,
            "",
        ),
        (
            set("beta", "microsoft.graph.setPresence"),
            vec![
                ("authorization", own.clone()),
                ("client-request-id", "my-id-2".into()),
            ],
            json(&busy),
            200,
            "",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", not_own)],
            json(&busy),
            403,
            "",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", reader)],
            json(&busy),
            403,
            "",
        ),
        (set("v1.0", "setPresence"), vec![], json(&busy), 401, ""),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", "Bearer not-a-token".into())],
            json(&busy),
            401,
            "",
        ),
        (
            "/v1.0/users/not-a-guid/presence/setPresence".into(),
            vec![("authorization", app_token.clone())],
            json(&busy),
            400,
            "",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", app_token.clone())],
            json(r#"{"sessionId": "22553876-f5ab-4529-bffb-cfe50aa89f87", "activity": "InACall"}"#),
            400,
            "availability",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", app_token.clone())],
            json(
                r#"{"sessionId": "22553876-f5ab-4529-bffb-cfe50aa89f87", "availability": "Busy", "activity": "Away"}"#,
            ),
            400,
            "",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", app_token.clone())],
            json(
                r#"{"sessionId": "22553876-f5ab-4529-bffb-cfe50aa89f87", "availability": "Busy", "activity": "InACall", "expirationDuration": "an hour"}"#,
            ),
            400,
            "",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", app_token.clone())],
            json("{\"availability\":"),
            400,
            "not valid JSON",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", app_token.clone())],
            json("[1, 2]"),
            400,
            "JSON object",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", app_token.clone())],
            json(""),
            400,
            "",
        ),
        (
            set("v1.0", "setPresence"),
            vec![("authorization", app_token.clone())],
            Some(("text/plain", busy.clone())),
            415,
            "",
        ),
    ];
    for (path, headers, body, status, message) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = sent_both_ways(state, Method::POST, path, &headers, body.clone()).await;
        assert_eq!(
            answer.status, *status,
            "{path} {headers:?} {body:?}: {:?}",
            answer.body
        );
        let text = answer.body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{path} {body:?}: {text}");
        if let Some((_, sent)) = headers.iter().find(|(n, _)| *n == "client-request-id") {
            assert_eq!(answer.client_request_id, *sent);
        }
    }

    // The direct write is the store's: what it set, the router reads back.
    let dnd = json!({"sessionId": APP, "availability": "DoNotDisturb", "activity": "Presenting", "expirationDuration": "PT1H"});
    let served = Direct::new(state.clone())
        .unwrap()
        .try_serve(request(
            Method::POST,
            &set("v1.0", "setPresence"),
            &[("authorization", &app_token)],
            Some(dnd),
        ))
        .await
        .unwrap_or_else(|_| panic!("served directly"));
    assert_eq!(served.status(), 200);
    let read = router(state.clone())
        .oneshot(request(
            Method::GET,
            &format!("/v1.0/users/{user}/presence"),
            &[("authorization", &app_token)],
            None,
        ))
        .await
        .unwrap();
    let read = answer(read).await;
    assert_eq!(read.body["availability"], "DoNotDisturb", "{:?}", read.body);
    assert_eq!(read.body["activity"], "Presenting");
}

#[tokio::test]
async fn everything_but_the_plain_read_is_handed_to_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let app = build_app(&dir, |_| {}).await;
    let direct = Direct::new(app.state().clone()).unwrap();
    let user = Uuid::new_v4();
    let id = user.to_string();
    // The id with its first character percent-escaped: the same user to
    // the router, which decodes it.
    let escaped = format!("%{:02x}{}", id.as_bytes()[0], &id[1..]);
    let tok = token(
        Uuid::new_v4(),
        None,
        APP,
        None,
        Some(&["Presence.Read.All".into()]),
    );
    let auth = format!("Bearer {tok}");
    for (method, path, extra) in [
        (
            Method::GET,
            format!("/v1.0/users/{user}/presence?$select=activity"),
            None,
        ),
        (Method::GET, format!("/v1.0/users/{user}/presence?"), None),
        (Method::GET, "/v1.0/me/presence".to_string(), None),
        (
            Method::GET,
            format!("/v1.0/communications/presences/{user}"),
            None,
        ),
        (Method::HEAD, format!("/v1.0/users/{user}/presence"), None),
        (Method::GET, format!("/v1.0/users/{escaped}/presence"), None),
        (
            Method::GET,
            format!("/v1.0/users/{user}/presence"),
            Some(("origin", "https://app.example")),
        ),
        // A write with no declared body length (chunked).
        (
            Method::POST,
            format!("/v1.0/users/{user}/presence/setPresence"),
            Some(("transfer-encoding", "chunked")),
        ),
        (
            Method::POST,
            format!("/v1.0/users/{user}/presence/clearPresence"),
            Some(("content-length", "0")),
        ),
        (
            Method::POST,
            "/v1.0/me/presence/setPresence".to_string(),
            Some(("content-length", "0")),
        ),
    ] {
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(extra);
        let handed_back = direct
            .try_serve(request(method.clone(), &path, &headers, None))
            .await;
        let req = handed_back
            .err()
            .unwrap_or_else(|| panic!("{method} {path} was served directly"));
        assert_eq!(req.uri().to_string(), path, "handed back untouched");
    }
}

#[tokio::test]
async fn in_emulator_mode_every_request_goes_through_the_router() {
    // The emulator's fault rules and request journal are router layers.
    let dir = tempfile::tempdir().unwrap();
    let app = build_app(&dir, |flags| flags.manual_clock = Some(true)).await;
    assert!(Direct::new(app.state().clone()).is_none());
}
