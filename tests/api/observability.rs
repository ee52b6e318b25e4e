//! What operators see: the access log of the real binary (its stderr).

use serde_json::Value;
use uuid::Uuid;

use crate::process::{mint, mint_app, LoggedServer, Proc};

/// The server's log once it has exited. Log lines are written by a log
/// thread, in batches, and a clean exit flushes them: what the log holds
/// then is all it will ever hold, so "exactly one" and "none" are exact.
fn log_after_exit(server: Proc, path: &std::path::Path) -> String {
    server.sigterm_within(std::time::Duration::from_secs(10));
    std::fs::read_to_string(path).unwrap()
}

/// The server's log as soon as it mentions `needle` (lines are written by
/// a log thread, a moment after they happen); fails after 10 s.
async fn log_mentioning(path: &std::path::Path, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(path).unwrap();
        if log.contains(needle) {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line mentioned {needle} within 10 s:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `GET url` with a bearer token and a `client-request-id` to find its
/// access line by.
async fn get_as(url: &str, token: &str, client_id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .header("client-request-id", client_id)
        .send()
        .await
        .unwrap()
}

/// The JSON log lines of `log` that mention `needle`.
fn lines_with(log: &str, needle: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| line.contains(needle))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test]
async fn a_request_gets_exactly_one_access_line_with_its_route_ids_and_caller_but_no_token() {
    let logged = LoggedServer::start(&["--log-format", "json"]);
    let (server, data, log_path) = (logged.server, logged.data, logged.log);
    let tenant = Uuid::new_v4();
    let user = Uuid::new_v4();
    let token = mint_app(&data, tenant, "app-logs", "Presence.Read.All");
    let client_id = format!("logs-{}", Uuid::new_v4());
    let unmatched_id = format!("logs-{}", Uuid::new_v4());
    let presence = format!("{}/v1.0/users/{user}/presence", server.url);
    let read = get_as(&presence, &token, &client_id).await;
    let unmatched = get_as(
        &format!("{}/v1.0/no/such/path", server.url),
        &token,
        &unmatched_id,
    )
    .await;
    let log = log_after_exit(server, &log_path);

    assert_eq!(read.status(), 200);
    let request_id = read.headers()["request-id"].to_str().unwrap().to_string();
    let lines = lines_with(&log, &client_id);
    assert_eq!(lines.len(), 1, "one access line per request:\n{log}");
    let fields = &lines[0]["fields"];
    assert_eq!(lines[0]["level"], "INFO", "{log}");
    assert_eq!(lines[0]["target"], "presenced::access", "{log}");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/{version}/users/{id}/presence");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["request_id"], request_id.as_str());
    assert_eq!(fields["client_request_id"], client_id.as_str());
    assert_eq!(fields["tenant"], tenant.to_string());
    assert_eq!(fields["app_id"], "app-logs");
    assert!(fields["latency_ms"].as_f64().is_some(), "{log}");

    assert_eq!(unmatched.status(), 404);
    let lines = lines_with(&log, &unmatched_id);
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(lines[0]["fields"]["route"], "/v1.0/no/such/path");
    assert_eq!(lines[0]["fields"]["status"], 404);

    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "a token was logged:\n{log}");
    assert!(
        lines_with(&log, "\"serving\"").len() == 1,
        "start-up line:\n{log}"
    );
}

/// The default text format, as deployed: the access line comes from
/// presenced's own lean path (`logs::text`) in tracing's default layout.
#[tokio::test]
async fn a_text_access_line_has_the_default_layout_with_every_field() {
    let logged = LoggedServer::start(&[]);
    let (server, data, log_path) = (logged.server, logged.data, logged.log);
    let tenant = Uuid::new_v4();
    let user = Uuid::new_v4();
    let token = mint_app(&data, tenant, "app-text", "Presence.Read.All");
    let client_id = format!("text-{}", Uuid::new_v4());

    let presence = format!("{}/v1.0/users/{user}/presence", server.url);
    let read = get_as(&presence, &token, &client_id).await;
    // Refused after the token was verified: the line still names the caller.
    let bad_id = format!("text-{}", Uuid::new_v4());
    let refused = get_as(
        &format!("{}/v1.0/users/not-a-guid/presence", server.url),
        &token,
        &bad_id,
    )
    .await;
    let log = log_after_exit(server, &log_path);

    assert_eq!(refused.status(), 400);
    let refused_lines: Vec<&str> = log.lines().filter(|l| l.contains(&bad_id)).collect();
    assert_eq!(refused_lines.len(), 1, "{log}");
    assert!(
        refused_lines[0].contains(" status=400 ")
            && refused_lines[0].ends_with(&format!(" tenant={tenant} app_id=\"app-text\"")),
        "{log}"
    );
    assert_eq!(read.status(), 200);
    let request_id = read.headers()["request-id"].to_str().unwrap().to_string();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&client_id)).collect();
    assert_eq!(lines.len(), 1, "one access line per request:\n{log}");
    let line = lines[0];
    // 2026-11-27T19:00:37.489703Z  INFO presenced::access: request method=…
    let (stamp, rest) = line.split_at(27);
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
        "timestamp of {line}"
    );
    let head = "  INFO presenced::access: request method=\"GET\" \
                route=\"/{version}/users/{id}/presence\" status=200 latency_ms=";
    let tail = rest
        .strip_prefix(head)
        .unwrap_or_else(|| panic!("layout of {line}"));
    let (latency, fields) = tail.split_once(' ').unwrap();
    assert!(latency.parse::<f64>().is_ok_and(|ms| ms >= 0.0), "{line}");
    let (_, fraction) = latency.split_once('.').unwrap();
    assert!(
        (1..=3).contains(&fraction.len()),
        "milliseconds to the microsecond: {line}"
    );
    assert_eq!(
        fields,
        format!(
            "request_id=\"{request_id}\" client_request_id=\"{client_id}\" \
             tenant={tenant} app_id=\"app-text\""
        ),
        "{line}"
    );
}

#[tokio::test]
async fn log_level_off_writes_no_access_line() {
    let logged = LoggedServer::start(&["--log-level", "warn"]);
    let (server, log_path) = (logged.server, logged.log);
    let client_id = format!("quiet-{}", Uuid::new_v4());

    let resp = reqwest::Client::new()
        .get(format!("{}/_presenced/healthz", server.url))
        .header("client-request-id", &client_id)
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    let log = log_after_exit(server, &log_path);
    assert!(!log.contains(&client_id), "{log}");
    assert!(!log.contains("serving"), "info lines are off:\n{log}");
}

/// The value of the sample `series` (name and labels, as rendered) in a
/// Prometheus text answer; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

async fn scrape(url: &str) -> String {
    let resp = reqwest::get(format!("{url}/_presenced/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_counters_move_after_requests_and_need_no_token() {
    let server = crate::helpers::TestServer::start().await;
    let user = Uuid::new_v4();
    // Tests in this process share one recorder: compare before and after,
    // and expect at least this test's own requests.
    let reads =
        r#"http_requests_total{route="/{version}/users/{id}/presence",method="GET",status="200"}"#;
    let writes = r#"http_requests_total{route="/{version}/users/{id}/presence/setPresence",method="POST",status="200"}"#;
    let unmatched = r#"http_requests_total{route="unmatched",method="GET",status="404"}"#;
    let latency = r#"http_request_duration_seconds_count{route="/{version}/users/{id}/presence",method="GET"}"#;
    let commits = "presenced_store_commit_seconds_count";
    let before = scrape(&server.url).await;

    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    for _ in 0..3 {
        server.presence_of(user).await;
    }
    let missing = server
        .client
        .get(format!("{}/no/such/path/{user}", server.url))
        .send()
        .await
        .unwrap();
    let after = scrape(&server.url).await;

    assert_eq!(missing.status(), 404);
    for (series, moved_by_at_least) in [
        (reads, 3.0),
        (writes, 1.0),
        (unmatched, 1.0),
        (latency, 3.0),
        (commits, 1.0),
    ] {
        assert!(
            sample(&after, series) - sample(&before, series) >= moved_by_at_least,
            "{series} moved by less than {moved_by_at_least}:\n{after}"
        );
    }
    assert!(sample(&after, "presenced_users") >= 1.0, "{after}");
    assert!(
        !after.contains(&user.to_string()),
        "no label names a user:\n{after}"
    );
}

#[tokio::test]
async fn metrics_listen_serves_metrics_apart_and_not_on_the_main_listener() {
    let logged = LoggedServer::start(&["--log-format", "json", "--metrics-listen", "127.0.0.1:0"]);
    let (server, data, log_path) = (logged.server, logged.data, logged.log);
    let log = log_mentioning(&log_path, "\"metrics\"").await;
    let announced = lines_with(&log, "\"metrics\"");
    assert_eq!(announced.len(), 1, "{log}");
    let metrics_url = announced[0]["fields"]["url"].as_str().unwrap().to_string();
    let base = metrics_url.strip_suffix("/_presenced/metrics").unwrap();

    reqwest::get(format!("{}/_presenced/healthz", server.url))
        .await
        .unwrap();
    // Two applications' sessions on one user: the gauges read the store.
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    for app in ["app-one", "app-two"] {
        let token = mint_app(&data, tenant, app, "Presence.ReadWrite.All");
        let body =
            serde_json::json!({"sessionId": app, "availability": "Busy", "activity": "InACall"});
        let path = format!("/v1.0/users/{user}/presence/setPresence");
        let r = server
            .send(reqwest::Method::POST, &path, &token, Some(body))
            .await;
        r.ok_empty();
    }
    let text = scrape(base).await;
    assert_eq!(sample(&text, "presenced_users"), 1.0, "{text}");
    assert_eq!(sample(&text, "presenced_sessions"), 2.0, "{text}");
    assert_eq!(sample(&text, "presenced_users_online"), 1.0, "{text}");
    assert!(
        text.lines().any(|l| l == "presenced_subscriptions 0"),
        "the subscriptions gauge is there, at 0: {text}"
    );
    let on_main = reqwest::get(format!("{}/_presenced/metrics", server.url))
        .await
        .unwrap();

    assert!(
        sample(
            &text,
            r#"http_requests_total{route="/_presenced/healthz",method="GET",status="200"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(on_main.status(), 404);
}

#[tokio::test]
async fn a_server_error_is_logged_once_at_error_with_its_cause() {
    let logged = LoggedServer::start(&["--manual-clock", "--log-format", "json"]);
    let (server, data, log_path) = (logged.server, logged.data, logged.log);
    let tenant = Uuid::new_v4();
    let admin = mint_app(
        &data,
        tenant,
        "admin-app",
        "Presenced.Admin Presence.Read.All",
    );
    let rule = server
        .send(
            reqwest::Method::POST,
            "/_presenced/faults",
            &admin,
            Some(serde_json::json!({"path": "/v1.0/users/*/presence", "status": 500, "count": 1})),
        )
        .await;
    assert!(rule.status.is_success(), "{}", rule.text);
    let client_id = format!("fails-{}", Uuid::new_v4());

    let failed = reqwest::Client::new()
        .get(format!(
            "{}/v1.0/users/{}/presence",
            server.url,
            Uuid::new_v4()
        ))
        .bearer_auth(&admin)
        .header("client-request-id", &client_id)
        .send()
        .await
        .unwrap();

    assert_eq!(failed.status(), 500);
    let log = log_after_exit(server, &log_path);
    let lines = lines_with(&log, &client_id);
    assert_eq!(lines.len(), 1, "a 5xx is logged once:\n{log}");
    assert_eq!(lines[0]["level"], "ERROR", "{log}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["message"], "request failed");
    assert_eq!(fields["status"], 500);
    assert_eq!(fields["code"], "generalException");
    assert_eq!(fields["route"], "/{version}/users/{id}/presence");
    assert!(
        fields["cause"]
            .as_str()
            .unwrap()
            .starts_with("injected by fault rule"),
        "{log}"
    );
}

/// Sends a subscription request that fails its endpoint's validation (a
/// closed port), which the request logs while it runs, to a server started
/// with `format`; gives the server's whole log and the request's id.
async fn log_of_a_refused_subscription(format: &str) -> (String, String) {
    let logged = LoggedServer::start(&[
        "--manual-clock",
        "--start-time",
        "2026-01-01T09:00:00Z",
        "--webhook-allow-cidr",
        "127.0.0.0/8",
        "--log-format",
        format,
    ]);
    let (server, data, log_path) = (logged.server, logged.data, logged.log);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let (tenant, watcher, watched) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let token = mint(
        &data,
        tenant,
        Some(watcher),
        "app-span",
        Some("Presence.Read.All"),
        None,
    );

    let refused = reqwest::Client::new()
        .post(format!("{}/v1.0/subscriptions", server.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "changeType": "updated",
            "notificationUrl": hook,
            "resource": format!("/communications/presences/{watched}"),
            "expirationDateTime": "2026-01-01T09:30:00Z",
        }))
        .send()
        .await
        .unwrap();

    assert_eq!(refused.status(), 400);
    let request_id = refused.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_string();
    (log_after_exit(server, &log_path), request_id)
}

#[tokio::test]
async fn json_lines_logged_inside_a_request_carry_its_request_id() {
    let (log, request_id) = log_of_a_refused_subscription("json").await;
    let inner = lines_with(&log, "failed validation");
    assert_eq!(inner.len(), 1, "{log}");
    assert_eq!(inner[0]["span"]["name"], "request", "{log}");
    assert_eq!(inner[0]["span"]["request_id"], request_id.as_str(), "{log}");
    assert_eq!(
        inner[0]["spans"],
        serde_json::json!([inner[0]["span"]]),
        "{log}"
    );
}

/// The text format, as deployed, writes the request's scope
/// (`logs::request`) where the default format writes its span.
#[tokio::test]
async fn text_lines_logged_inside_a_request_carry_its_request_id() {
    let (log, request_id) = log_of_a_refused_subscription("text").await;
    let inner: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("failed validation"))
        .collect();
    assert_eq!(inner.len(), 1, "{log}");
    let prefix = format!("  INFO request{{request_id=\"{request_id}\"}}: presenced::");
    assert_eq!(
        inner[0].get(27..27 + prefix.len()),
        Some(prefix.as_str()),
        "{log}"
    );
    // The access line itself is written once the request is over.
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("request_id=\"{request_id}\"")) && l.contains("access"))
        .collect();
    assert_eq!(access.len(), 1, "{log}");
    assert!(
        access[0].contains("  INFO presenced::access: request "),
        "{log}"
    );
}

/// Sends a `$batch` of one getPresence to a server started with `args`;
/// gives the server's whole log and the batch's request id.
async fn log_of_a_batch(args: &[&str]) -> (String, String) {
    let logged = LoggedServer::start(args);
    let (server, data, log_path) = (logged.server, logged.data, logged.log);
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    let token = mint_app(&data, tenant, "app-batch-log", "Presence.Read.All");

    let batch = reqwest::Client::new()
        .post(format!("{}/v1.0/$batch", server.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{user}/presence")},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 200);
    let batch_id = batch.headers()["request-id"].to_str().unwrap().to_string();
    (log_after_exit(server, &log_path), batch_id)
}

/// A batched request runs inside its batch: its lines (its access line
/// here) carry the batch's request id first, as nested spans would.
#[tokio::test]
async fn text_lines_of_a_batched_request_carry_the_batch_request_id() {
    let (log, batch_id) = log_of_a_batch(&[]).await;

    let inner: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(r#"route="/{version}/users/{id}/presence""#))
        .collect();
    assert_eq!(inner.len(), 1, "{log}");
    let prefix = format!(
        "  INFO request{{request_id=\"{batch_id}\"}}: presenced::access: request method=\"GET\""
    );
    assert_eq!(
        inner[0].get(27..27 + prefix.len()),
        Some(prefix.as_str()),
        "{log}"
    );
    assert!(
        !inner[0].contains(&format!("request_id=\"{batch_id}\" ")),
        "{log}"
    );
    let outer: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!(" request_id=\"{batch_id}\" ")))
        .collect();
    assert_eq!(outer.len(), 1, "{log}");
    assert!(
        outer[0].contains(
            r#"  INFO presenced::access: request method="POST" route="/{version}/$batch""#
        ),
        "{log}"
    );
}

/// Browsers send a CORS preflight before many cross-origin calls; the CORS
/// layer, outside the edge, answers every preflight (an OPTIONS request
/// with an `Origin`) itself, so none writes an access line (it would double
/// the log of a browser app and say nothing about the call itself) or
/// counts in the request metrics. The call that follows is logged.
#[tokio::test]
async fn a_cors_preflight_writes_no_access_line_but_the_call_after_it_does() {
    let logged = LoggedServer::start(&["--log-format", "json"]);
    let (server, log_path) = (logged.server, logged.log);
    let preflight_path = format!("/preflight-{}", Uuid::new_v4());
    let call_path = format!("/call-after-preflight-{}", Uuid::new_v4());
    let client = reqwest::Client::new();
    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}{preflight_path}", server.url),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let call = client
        .post(format!("{}{call_path}", server.url))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 404);

    let log = log_after_exit(server, &log_path);
    assert!(lines_with(&log, &preflight_path).is_empty(), "{log}");
    let lines = lines_with(&log, &call_path);
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(lines[0]["fields"]["method"], "POST", "{log}");
}

#[tokio::test]
async fn json_lines_of_a_batched_request_carry_the_batch_request_id() {
    let (log, batch_id) = log_of_a_batch(&["--log-format", "json"]).await;
    let inner = lines_with(&log, r#""route":"/{version}/users/{id}/presence""#);
    assert_eq!(inner.len(), 1, "{log}");
    let span = serde_json::json!({"request_id": batch_id, "name": "request"});
    assert_eq!(inner[0]["span"], span, "{log}");
    assert_eq!(inner[0]["spans"], serde_json::json!([span]), "{log}");
    assert_ne!(inner[0]["fields"]["request_id"], batch_id.as_str(), "{log}");
    let outer = lines_with(&log, r#""route":"/{version}/$batch""#);
    assert_eq!(outer.len(), 1, "{log}");
    assert_eq!(outer[0]["fields"]["request_id"], batch_id.as_str(), "{log}");
    assert!(outer[0].get("span").is_none(), "{log}");
}
