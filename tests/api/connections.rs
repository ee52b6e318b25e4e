//! The connection policy over real sockets: slow or silent clients are cut
//! off, idle keep-alive connections are closed, and a flood of them cannot
//! keep other clients out (bounded here: a handful of connections and
//! seconds; the big figures belong in benchmarks).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::helpers::{t0, TestServer, ALL_SCOPES};

/// A server with a 1 s header timeout, a 3 s idle timeout and `max`
/// connections.
async fn server(max: usize) -> TestServer {
    TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.header_timeout = Some("PT1S".into());
        f.idle_timeout = Some("PT3S".into());
        f.max_connections = Some(max);
    })
    .await
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Waits until the server closes `conn` (EOF or reset), with a deadline.
async fn closed_within(conn: &mut TcpStream, deadline: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(deadline, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// Sends a health check on `conn` and reads the answer's status line.
async fn health(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET /_presenced/healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off_while_others_are_served() {
    let server = server(64).await;
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /_presenced/healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickle = async {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    };
    let mut normal = connect(&server).await;
    assert_eq!(health(&mut normal).await, "HTTP/1.1 200 OK");
    assert!(
        trickle.await || closed_within(&mut slow, Duration::from_secs(5)).await,
        "a head trickled over 6 s was not cut off by the 1 s header timeout"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = server(64).await;
    let mut silent = connect(&server).await;
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_lives_for_the_idle_timeout_then_closes() {
    let server = server(64).await;
    let mut conn = connect(&server).await;
    assert_eq!(health(&mut conn).await, "HTTP/1.1 200 OK");
    // Longer than the header timeout: still usable.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(health(&mut conn).await, "HTTP/1.1 200 OK");
    let started = Instant::now();
    assert!(closed_within(&mut conn, Duration::from_secs(10)).await);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before its idle timeout"
    );
}

#[tokio::test]
async fn at_the_cap_the_longest_waiting_connection_makes_room() {
    let server = server(4).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&server).await);
    }
    // A fifth client is served; the oldest silent connection was closed.
    let mut fresh = connect(&server).await;
    assert_eq!(health(&mut fresh).await, "HTTP/1.1 200 OK");
    assert!(closed_within(&mut idle[0], Duration::from_secs(5)).await);
}

/// Opens `/_presenced/events` on a raw connection and reads the 200.
async fn open_stream(server: &TestServer, token: &str) -> TcpStream {
    let mut conn = connect(server).await;
    conn.write_all(
        format!(
            "GET /_presenced/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
    conn
}

#[tokio::test]
async fn when_every_connection_is_busy_a_new_one_is_refused_at_once() {
    let server = server(2).await;
    let token = server.user_token(Uuid::new_v4(), ALL_SCOPES);
    let _streams = [
        open_stream(&server, &token).await,
        open_stream(&server, &token).await,
    ];
    let mut refused = connect(&server).await;
    assert!(
        closed_within(&mut refused, Duration::from_secs(2)).await,
        "a connection over the cap was left hanging"
    );
}

#[tokio::test]
async fn a_streaming_response_outlives_the_idle_timeout() {
    let server = server(64).await;
    let token = server.user_token(Uuid::new_v4(), ALL_SCOPES);
    let mut stream = open_stream(&server, &token).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Busy", "InACall", None)
        .await
        .ok_empty();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an event within 5 s")
        .unwrap();
    let event = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(event.contains("event: presence"), "{event}");
}

#[tokio::test]
async fn oversized_heads_get_graph_errors_with_request_ids() {
    let server = TestServer::start().await;
    let big = "x".repeat(40 * 1024);
    let r = server
        .client
        .get(format!("{}/v1.0/me/presence", server.url))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    let r = crate::helpers::reply(r).await;
    assert!(r
        .error(431, "requestHeadersTooLarge")
        .contains("the limit is 32768"));
    let r = server
        .client
        .get(format!("{}/v1.0/me/presence?q={big}", server.url))
        .send()
        .await
        .unwrap();
    let r = crate::helpers::reply(r).await;
    assert!(r
        .error(414, "requestUriTooLong")
        .contains("the limit is 32768"));
}

#[tokio::test]
async fn over_tls_clients_get_http2_by_alpn_and_http1_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls-self-signed.cert.pem");
    let server = TestServer::start_configured(dir, t0(), |f| {
        f.tls_self_signed = Some(true);
    })
    .await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let r = server
        .client
        .get(format!("{}/v1.0/me/presence", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["availability"], "Offline");
    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    let pem = std::fs::read(cert).unwrap();
    let http1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let r = http1
        .get(format!("{}/_presenced/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    // Plain http on the TLS port is not served.
    let plain = format!("{}/_presenced/healthz", server.url.replace("https", "http"));
    assert!(reqwest::get(plain).await.is_err());
}

#[tokio::test]
async fn a_connection_that_stalls_in_the_tls_handshake_is_closed() {
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.tls_self_signed = Some(true);
        f.header_timeout = Some("PT1S".into());
    })
    .await;
    let mut conn = TcpStream::connect(server.url.trim_start_matches("https://"))
        .await
        .unwrap();
    assert!(closed_within(&mut conn, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn beyond_the_rate_limit_an_application_gets_429_with_retry_after_and_others_do_not() {
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), t0(), |f| {
        f.rate_limit = Some("3/60s".into());
    })
    .await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    for _ in 0..3 {
        server.get("/v1.0/me/presence", &token).await.ok_json();
    }
    let throttled = server
        .post(
            &format!("/v1.0/users/{user}/presence/setPresence"),
            &token,
            serde_json::json!({"sessionId": crate::helpers::APP, "availability": "Busy", "activity": "InACall"}),
        )
        .await;
    let message = throttled.error(429, "TooManyRequests");
    assert!(message.contains("retry after 20 seconds"), "{message}");
    assert_eq!(throttled.headers["retry-after"], "20");
    // Nothing was written, and another application is not affected.
    let other_app = crate::helpers::token(
        server.tenant,
        Some(user),
        "another-app",
        Some(ALL_SCOPES),
        None,
    );
    let r = server.get("/v1.0/me/presence", &other_app).await;
    assert_eq!(r.ok_json()["availability"], "Offline");
    // Unauthenticated health checks are never throttled.
    for _ in 0..5 {
        let r = server
            .send(reqwest::Method::GET, "/_presenced/healthz", None, None)
            .await;
        assert_eq!(r.status, 200);
    }
}
