//! Over HTTP: arbitrary bodies, `Last-Event-ID`, query strings and
//! `Authorization` headers are never a 5xx, and every 4xx is a Graph error.

use std::future::Future;
use std::time::Duration;

use chrono::TimeDelta;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseResult;
use serde_json::Value;
use uuid::Uuid;

use super::bodies::{extras, field, json_value, object, set_presence_body, status_message_body};
use super::jwt::{runtime, unsigned_token};
use super::subscriptions::{certificate_like, filter_like, url_like, CERT_2048};
use super::{arbitrary_text, check, guid_text, or_arbitrary, pick, recased, HTTP_CASES};
use crate::helpers::{reply, t0, Reply, TestServer, ALL_SCOPES};
use crate::receiver::Receiver;

// ---------------------------------------------------------------------------
// Over HTTP: never a 5xx, every 4xx a Graph error
// ---------------------------------------------------------------------------

/// Awaits `f`, failing the case if the server does not answer in time.
async fn in_time<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("no answer within 20 s to {what}"))
}

/// Checks an answer: below 500, and a 4xx is a Graph error.
fn graph_answer(r: &Reply, input: &str) -> TestCaseResult {
    let input = brief(input);
    let status = r.status.as_u16();
    prop_assert!(status < 500, "{} for {}: {}", status, input, r.text);
    if r.status.is_client_error() {
        let error = &r.body["error"];
        let present = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
        prop_assert!(
            present(&error["code"]),
            "{} for {}: {}",
            status,
            input,
            r.text
        );
        prop_assert!(
            present(&error["message"]),
            "{} for {}: {}",
            status,
            input,
            r.text
        );
        prop_assert!(present(&error["innerError"]["request-id"]), "{}", r.text);
        prop_assert_eq!(
            r.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{} for {}",
            status,
            input
        );
    }
    Ok(())
}

/// `text` without the characters a header value may not hold (controls
/// but tab, DEL); non-ASCII stays, as obs-text bytes.
fn header_safe(text: String) -> String {
    text.chars()
        .filter(|c| *c == '\t' || (' '..='~').contains(c) || !c.is_ascii())
        .collect()
}

/// `text` cut to a readable length for failure messages.
fn brief(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{:?}… ({} bytes)", &text[..end], text.len()),
        None => format!("{text:?}"),
    }
}

/// Raw body text: a near-miss body, any JSON, a truncated body, anything.
fn raw_body(near: BoxedStrategy<Value>) -> BoxedStrategy<String> {
    prop_oneof![
        4 => near.clone().prop_map(|v| v.to_string()),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => (near, any::<usize>()).prop_map(|(v, cut)| {
            let text = v.to_string();
            text.chars().take(cut % (text.chars().count() + 1)).collect()
        }),
        1 => arbitrary_text().prop_map(|t| format!("{{{t}")),
        1 => arbitrary_text(),
        1 => (1usize..3000, pick(&["[", "{\"a\":"]), pick(&["]", "}"])).prop_map(|(n, open, close)| {
            format!("{{\"statusMessage\":{}1{}}}", open.repeat(n), close.repeat(n))
        }),
        1 => pick(&[
            r#"{"sessionId":"x","sessionId":"y"}"#,
            r#"{"availability":"\ud800","activity":"Available"}"#,
            r#"{"expirationDuration":1e999}"#,
            r#"{"statusMessage":{"message":{"content":NaN}}}"#,
            "\u{feff}{}",
            "{} {}",
            "{}x",
            "{\"a\":1,}",
            "{\u{0}}",
            "",
            " ",
            "null",
            "[]",
        ]),
    ]
    .boxed()
}

/// POSTs each body to `path` as `application/json` with a fresh user's
/// self token (`{user}` in `path` is that user).
fn post_bodies(path: &'static str, bodies: BoxedStrategy<String>) {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    check(HTTP_CASES, bodies, |body| {
        rt.block_on(async {
            let user = Uuid::new_v4();
            let token = server.user_token(user, ALL_SCOPES);
            let url = format!(
                "{}{}",
                server.url,
                path.replace("{user}", &user.to_string())
            );
            let request = server
                .client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            let r = reply(in_time(&brief(&body), request).await.unwrap()).await;
            graph_answer(&r, &body)?;
            prop_assert!(
                r.status.is_client_error() || (r.status == 200 && r.text.is_empty()),
                "{} for {}: {}",
                r.status,
                brief(&body),
                r.text
            );
            Ok(())
        })
    });
}

#[test]
fn arbitrary_set_presence_bodies_are_answered_without_5xx() {
    post_bodies(
        "/v1.0/users/{user}/presence/setPresence",
        raw_body(set_presence_body()),
    );
}

#[test]
fn arbitrary_set_status_message_bodies_are_answered_without_5xx() {
    post_bodies(
        "/v1.0/users/{user}/presence/setStatusMessage",
        raw_body(status_message_body()),
    );
}

#[test]
fn arbitrary_subscription_bodies_are_answered_without_5xx() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let receiver = rt.block_on(Receiver::start());
    // A port nothing listens on: validation fails at once.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        )
    };
    let url = prop_oneof![
        3 => Just(receiver.hook()),
        2 => Just(closed),
        2 => url_like(),
        1 => arbitrary_text(),
    ]
    .boxed();
    let resource = prop_oneof![
        3 => any::<u128>().prop_map(|n| format!("/communications/presences/{}", Uuid::from_u128(n))),
        3 => filter_like(),
        1 => arbitrary_text(),
    ];
    let expiry = or_arbitrary(prop_oneof![
        3 => (-120i64..6000).prop_map(|m| (t0() + TimeDelta::minutes(m)).to_rfc3339()),
        1 => pick(&[
            "9999-12-31T23:59:59Z",
            "2026-01-01T10:00:00",
            "2026-01-01T10:00:60Z",
            "0000-01-01T00:00:00Z",
            "2026-01-01T10:00:00+25:00",
            "2026-01-01T10:00:00.1234567891234Z",
            "+275760-09-13T00:00:00Z",
            "2026-01-01T10:00:00-23:59",
            "1969-12-31T23:59:59Z",
        ]),
    ]);
    let body = (
        (
            field(
                0.9,
                or_arbitrary(recased(pick(&[
                    "updated",
                    "updated,updated",
                    " updated , Updated ",
                    "created",
                    "updated,deleted",
                    "",
                    ",",
                ]))),
            ),
            field(0.9, url.clone()),
            field(0.9, resource.boxed()),
            field(0.9, expiry),
            field(
                0.5,
                or_arbitrary(prop_oneof!["[a-z]{0,10}", Just("x".repeat(129))]),
            ),
            field(0.2, url),
        ),
        (
            prop::option::weighted(
                0.3,
                prop_oneof![4 => any::<bool>().prop_map(Value::from), 1 => json_value()],
            ),
            field(
                0.3,
                prop_oneof![1 => certificate_like(), 1 => Just(CERT_2048.to_owned())].boxed(),
            ),
            field(
                0.3,
                or_arbitrary(prop_oneof!["[a-z-]{1,10}", Just("x".repeat(129))]),
            ),
            field(
                0.3,
                or_arbitrary(pick(&["v1_0", "v1_1", "v1_2", "v1_3", "v1_4", "V1_2", ""])),
            ),
            field(0.05, arbitrary_text()),
            extras(),
        ),
    )
        .prop_map(
            |(
                (change, url, resource, expiry, state, lifecycle),
                (rich, cert, cert_id, tls, options, extra),
            )| {
                object(
                    vec![
                        ("changeType", change),
                        ("notificationUrl", url),
                        ("resource", resource),
                        ("expirationDateTime", expiry),
                        ("clientState", state),
                        ("lifecycleNotificationUrl", lifecycle),
                        ("includeResourceData", rich),
                        ("encryptionCertificate", cert),
                        ("encryptionCertificateId", cert_id),
                        ("latestSupportedTlsVersion", tls),
                        ("notificationQueryOptions", options),
                    ],
                    extra,
                )
            },
        )
        .boxed();
    check(HTTP_CASES, raw_body(body), |body| {
        rt.block_on(async {
            let token = server.user_token(Uuid::new_v4(), ALL_SCOPES);
            let request = server
                .client
                .post(format!("{}/v1.0/subscriptions", server.url))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            let r = reply(in_time(&brief(&body), request).await.unwrap()).await;
            graph_answer(&r, &body)?;
            prop_assert!(
                r.status.is_client_error() || (r.status == 201 && r.body["id"].is_string()),
                "{} for {}: {}",
                r.status,
                brief(&body),
                r.text
            );
            Ok(())
        })
    });
}

#[test]
fn arbitrary_last_event_ids_are_answered_with_a_stream_or_a_400() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let writer = Uuid::new_v4();
    rt.block_on(async {
        for (availability, activity) in [("Busy", "InACall"), ("Available", "Available")] {
            server
                .set_presence(writer, availability, activity, None)
                .await
                .ok_empty();
        }
    });
    let reader = server.user_token(Uuid::new_v4(), ALL_SCOPES);
    let values = prop_oneof![
        "[0-9]{1,25}",
        pick(&[
            "0",
            "1",
            "2",
            " 1 ",
            "+1",
            "-1",
            "01",
            "1.0",
            "1e3",
            "0x1",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "9223372036854775808",
            "",
            " ",
            "\t1",
            "١",
            "1,2",
        ]),
        arbitrary_text(),
    ]
    .prop_map(header_safe);
    check(HTTP_CASES, values, |value| {
        rt.block_on(async {
            let shown = brief(&value);
            let header = reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap();
            let request = server
                .client
                .get(format!("{}/_presenced/events", server.url))
                .bearer_auth(&reader)
                .header("last-event-id", header)
                .send();
            let response = in_time(&shown, request).await.unwrap();
            let numeric = value.trim().parse::<u64>().is_ok();
            if response.status() == 200 {
                prop_assert!(numeric, "{} opened a stream", shown);
                prop_assert_eq!(
                    response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok()),
                    Some("text/event-stream")
                );
                // Dropping the response closes the stream.
                return Ok(());
            }
            let r = reply(response).await;
            graph_answer(&r, &value)?;
            prop_assert_eq!(r.status.as_u16(), 400, "{}: {}", shown, r.text);
            Ok(())
        })
    });
}

#[test]
fn arbitrary_query_strings_are_answered_without_5xx() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let paths = vec![
        format!("/v1.0/users/{user}/presence"),
        format!("/beta/communications/presences/{user}"),
        "/v1.0/me/presence".to_owned(),
        "/_presenced/events".to_owned(),
        "/v1.0/subscriptions".to_owned(),
        format!("/v1.0/subscriptions/{}", Uuid::new_v4()),
        format!("/_presenced/users/{user}/presence"),
    ];
    let piece = prop_oneof![
        3 => pick(&[
            "ids=", "$select=", "%24select=", "$filter=", "$top=", "$skip=", "$expand=",
            "$count=true", "=", "&", "&&", "%", "%2", "%zz", "%00", "%FF", "%C3%28",
            "%E2%80%AE", "+", "'", "\"", "(", ")", ",", "?", "[", "]", ";", "\\", "^", "`",
            "{", "}", "|", "$format=json", "ids", "availability,activity",
        ]),
        2 => guid_text(),
        1 => "(?s).{0,8}",
    ];
    let strategy = (select(paths), vec(piece, 0..12).prop_map(|p| p.concat()));
    check(HTTP_CASES, strategy, |(path, query)| {
        rt.block_on(async {
            let Ok(url) = reqwest::Url::parse(&format!("{}{path}?{query}", server.url)) else {
                return Ok(());
            };
            let shown = url.to_string();
            let request = server.client.get(url).bearer_auth(&token).send();
            let response = in_time(&shown, request).await.unwrap();
            let streaming = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if streaming {
                // Dropping the response closes the stream.
                prop_assert_eq!(response.status().as_u16(), 200, "{}", shown);
                return Ok(());
            }
            graph_answer(&reply(response).await, &shown)
        })
    });
}

#[test]
fn arbitrary_authorization_headers_are_401_over_http() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let values = prop_oneof![
        1 => arbitrary_text(),
        2 => unsigned_token().prop_map(|t| format!("Bearer {t}")),
        1 => pick(&["Bearer", "Bearer ", "bearer x.y.z", "Basic dXNlcjpwYXNz", "Bearer  ", "Bearer\tx", "BEARER a.b.c"]),
    ]
    .prop_map(header_safe);
    check(HTTP_CASES, values, |value| {
        rt.block_on(async {
            let shown = brief(&value);
            let header = reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap();
            let request = server
                .client
                .get(format!("{}/v1.0/me/presence", server.url))
                .header("authorization", header)
                .send();
            let r = reply(in_time(&shown, request).await.unwrap()).await;
            graph_answer(&r, &value)?;
            // Near the 32 KiB header limit the answer is 431 instead.
            let status = r.status.as_u16();
            prop_assert!(
                status == 401 || (status == 431 && value.len() > 30 * 1024),
                "{} for {}: {}",
                status,
                shown,
                r.text
            );
            Ok(())
        })
    });
}
