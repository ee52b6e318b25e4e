//! The direct read (`src/http/direct.rs`): a plain
//! `GET /{version}/users/{id}/presence` is answered without the router,
//! and every answer it gives is the router's, header for header and byte
//! for byte but the request ids. Built as the binary builds it (outside
//! emulator mode, where the direct path is on), and asked both ways in
//! process.

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
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
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
    let direct = Direct::new(state.clone()).expect("on outside emulator mode");
    let served = direct
        .try_serve(request(Method::GET, path, headers, None))
        .await
        .unwrap_or_else(|_| panic!("{path} was not served directly"));
    let routed = router(state.clone())
        .oneshot(request(Method::GET, path, headers, None))
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
