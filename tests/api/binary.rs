//! The real binary: `serve` and `token` from the command line, durability
//! across `kill -9`, configuration files, graceful shutdown.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::process::{mint, mint_app, subscribe_then_write, token_cli, Proc, Serve, BIN};

/// An application token with the `Presenced.Admin` role, in a fresh tenant.
fn admin_token(data_dir: &Path) -> String {
    mint_app(data_dir, Uuid::new_v4(), "admin-app", "Presenced.Admin")
}

#[tokio::test]
async fn writes_survive_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let tenant = Uuid::new_v4();
    let users: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    let app = "app-kill9";
    let server = Proc::start(&["--data-dir", data]);
    let secret = dir.path().join("jwt-secret");
    assert!(
        secret.exists(),
        "serve creates a secret when none is configured"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret is private");
    }
    let token = mint_app(
        dir.path(),
        tenant,
        app,
        "Presence.ReadWrite.All Presence.Read.All",
    );
    // Concurrent acknowledged writes, then SIGKILL with no warning.
    let mut tasks = vec![];
    for (i, user) in users.iter().enumerate() {
        let (url, token, user) = (server.url.clone(), token.clone(), *user);
        tasks.push(tokio::spawn(async move {
            let availability = if i % 2 == 0 { ("Busy", "InACall") } else { ("DoNotDisturb", "Presenting") };
            let r = reqwest::Client::new()
                .post(format!("{url}/v1.0/users/{user}/presence/setPresence"))
                .bearer_auth(&token)
                .json(&json!({"sessionId": app, "availability": availability.0, "activity": availability.1, "expirationDuration": "PT4H"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let status =
        json!({"statusMessage": {"message": {"content": "durable", "contentType": "text"}}});
    let r = server
        .send(
            reqwest::Method::POST,
            &format!("/v1.0/users/{}/presence/setStatusMessage", users[0]),
            &token,
            Some(status),
        )
        .await;
    r.ok_empty();
    server.kill9();

    let server = Proc::start(&["--data-dir", data]);
    let token = mint_app(dir.path(), tenant, app, "Presence.Read.All");
    let ids: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    let r = server
        .send(
            reqwest::Method::POST,
            "/v1.0/communications/getPresencesByUserId",
            &token,
            Some(json!({"ids": ids})),
        )
        .await;
    let values = r.ok_json()["value"].as_array().unwrap().clone();
    for (i, v) in values.iter().enumerate() {
        let expected = if i % 2 == 0 { "Busy" } else { "DoNotDisturb" };
        assert_eq!(v["availability"], expected, "user {i} after kill -9");
    }
    assert_eq!(values[0]["statusMessage"]["message"]["content"], "durable");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let status = server.sigterm();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn clock_endpoints_are_404_without_manual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let admin = admin_token(dir.path());
    let r = server
        .send(reqwest::Method::GET, "/_presenced/clock", &admin, None)
        .await;
    r.error(404, "itemNotFound");
    let r = server
        .send(
            reqwest::Method::POST,
            "/_presenced/clock",
            &admin,
            Some(json!({"advance": "PT5M"})),
        )
        .await;
    r.error(404, "itemNotFound");
    let r = server
        .send(
            reqwest::Method::PUT,
            &format!(
                "/_presenced/users/{}/clientSessions/desktop",
                Uuid::new_v4()
            ),
            &admin,
            Some(json!({"availability": "Busy", "activity": "Busy"})),
        )
        .await;
    r.error(404, "itemNotFound");
}

#[tokio::test]
async fn token_mints_for_the_configured_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("presenced.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = {:?}\nissuer = \"https://login.microsoftonline.com/{{tenantid}}/v2.0\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let server = Proc::start(&["--config", config.to_str().unwrap()]);
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    let (tenant, user) = (tenant.to_string(), user.to_string());
    let config_path = config.to_str().unwrap();
    let token = token_cli(&[
        "--config",
        config_path,
        "--tenant",
        &tenant,
        "--user",
        &user,
        "--app",
        "a",
        "--scopes",
        "Presence.Read",
    ]);
    let r = server
        .send(reqwest::Method::GET, "/v1.0/me/presence", &token, None)
        .await;
    assert_eq!(r.ok_json()["id"], user);
}

#[tokio::test]
async fn manual_clock_and_config_file_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "a-secret-of-at-least-sixteen-bytes\n").unwrap();
    let config = dir.path().join("presenced.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = {:?}\njwt-secret-file = {:?}\nmanual-clock = true\nstart-time = \"2026-01-01T09:00:00Z\"\n",
            dir.path().join("data"),
            secret
        ),
    )
    .unwrap();
    let server = Proc::start(&["--config", config.to_str().unwrap()]);
    let tenant = Uuid::new_v4().to_string();
    let admin = token_cli(&[
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        &tenant,
        "--app",
        "admin-app",
        "--roles",
        "Presenced.Admin",
    ]);
    let r = server
        .send(reqwest::Method::GET, "/_presenced/clock", &admin, None)
        .await;
    assert_eq!(r.ok_json()["now"], "2026-01-01T09:00:00.0000000Z");
    assert!(
        !dir.path().join("data").join("jwt-secret").exists(),
        "a configured secret is used, none generated"
    );
    assert!(dir.path().join("data").join("presenced.sqlite3").exists());
}

#[test]
fn bad_configuration_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lisen"), "{stderr}");
    let out = Command::new(BIN)
        .args([
            "token",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--tenant",
            &Uuid::new_v4().to_string(),
            "--app",
            "a",
            "--roles",
            "x",
        ])
        .env_remove("PRESENCED_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success(), "token without a secret fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signing secret"));
}

#[tokio::test]
async fn a_restarted_emulator_never_starts_before_the_time_it_reached() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::data_dir(dir.path()).manual_clock_at("2026-01-01T09:00:00Z");
    let server = serve.start();
    let admin = admin_token(dir.path());
    let r = server
        .send(
            reqwest::Method::POST,
            "/_presenced/clock",
            &admin,
            Some(json!({"advance": "P1D"})),
        )
        .await;
    assert_eq!(r.ok_json()["now"], "2026-01-02T09:00:00.0000000Z");
    server.kill9();
    let server = serve.start();
    let r = server
        .send(reqwest::Method::GET, "/_presenced/clock", &admin, None)
        .await;
    assert_eq!(r.ok_json()["now"], "2026-01-02T09:00:00.0000000Z");
    drop(server);
    let later = Serve::data_dir(dir.path()).manual_clock_at("2027-01-01T00:00:00Z");
    let server = later.start();
    let r = server
        .send(reqwest::Method::GET, "/_presenced/clock", &admin, None)
        .await;
    assert_eq!(
        r.ok_json()["now"],
        "2027-01-01T00:00:00.0000000Z",
        "a later start time wins"
    );
}

#[tokio::test]
async fn a_delivery_in_flight_at_kill_9_is_delivered_after_restart() {
    use crate::receiver::Receiver;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::data_dir(dir.path()).manual_clock_at("2026-01-01T09:00:00Z");
    let server = serve.start();
    let receiver = Receiver::start().await;
    // The receiver holds the first notification open; the server dies then.
    receiver.answer_with(202, Duration::from_secs(3600));
    let alice =
        subscribe_then_write(&server, &server, dir.path(), &receiver.hook(), "restart").await;
    receiver.wait_for_items(1).await;
    server.kill9();
    // The receiver recovers; the restarted server sends what was in flight.
    receiver.answer_with(202, Duration::ZERO);
    let _restarted = serve.start();
    let items = receiver.wait_for_items(2).await;
    assert_eq!(items[1]["resourceData"]["id"], alice.to_string());
    assert_eq!(items[1]["clientState"], "restart");
}

#[tokio::test]
async fn transitions_that_fell_due_while_the_server_was_down_notify_at_start() {
    use crate::receiver::Receiver;
    let dir = tempfile::tempdir().unwrap();
    let start = |at: &str| Serve::data_dir(dir.path()).manual_clock_at(at).start();
    let server = start("2026-01-01T09:00:00Z");
    let receiver = Receiver::start().await;
    let alice =
        subscribe_then_write(&server, &server, dir.path(), &receiver.hook(), "restart").await;
    receiver.wait_for_items(1).await;
    let status = server.sigterm();
    assert!(status.success());
    // Back six minutes later: the 5-minute session expired meanwhile.
    let _server = start("2026-01-01T09:06:00Z");
    let items = receiver.wait_for_items(2).await;
    assert_eq!(items[1]["resourceData"]["id"], alice.to_string());
}

#[tokio::test]
async fn sigterm_ends_open_event_streams_and_stops_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Proc::start(&["--data-dir", data]);
    let token = mint(
        dir.path(),
        Uuid::new_v4(),
        Some(Uuid::new_v4()),
        "app-s",
        Some("Presence.Read.All"),
        None,
    );
    let mut stream = reqwest::Client::new()
        .get(format!("{}/_presenced/events", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let status = server.sigterm();
    assert!(status.success(), "{status:?}");
    // The stream was ended by the server, not left hanging.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the event stream stayed open after shutdown");
}

#[tokio::test]
async fn serve_with_a_self_signed_certificate_says_where_it_is_and_speaks_https() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-self-signed"])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .env_remove("PRESENCED_JWT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    let certificate = lines.next().unwrap().unwrap();
    let url = listening
        .strip_prefix("presenced listening on ")
        .unwrap()
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{listening}");
    let cert = certificate
        .strip_prefix("presenced TLS certificate (self-signed): ")
        .unwrap();
    assert_eq!(
        Path::new(cert),
        dir.path().join("tls-self-signed.cert.pem").as_path()
    );
    let pem = std::fs::read(cert).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("{url}/_presenced/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_under_write_load_keeps_every_acknowledged_write_and_answers_or_closes() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Proc::start(&["--data-dir", data]);
    let tenant = Uuid::new_v4();
    let app = "app-sigterm";
    let token = mint_app(
        dir.path(),
        tenant,
        app,
        "Presence.ReadWrite.All Presence.Read.All",
    );
    const PAIRS: [(&str, &str); 2] = [("Busy", "InACall"), ("DoNotDisturb", "Presenting")];
    /// Per user: the last pair acknowledged, and the pair in flight.
    type Outcome = (Option<usize>, Option<usize>);
    let users: Vec<Uuid> = (0..24).map(|_| Uuid::new_v4()).collect();
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(vec![(None, None); users.len()]));
    let client = reqwest::Client::new();
    let mut writers = vec![];
    for (i, user) in users.iter().enumerate() {
        let (client, url, token, user, outcomes) = (
            client.clone(),
            server.url.clone(),
            token.clone(),
            *user,
            outcomes.clone(),
        );
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let pair = n % 2;
                outcomes.lock().unwrap()[i].1 = Some(pair);
                let sent = client
                    .post(format!("{url}/v1.0/users/{user}/presence/setPresence"))
                    .bearer_auth(&token)
                    .json(&json!({"sessionId": app, "availability": PAIRS[pair].0, "activity": PAIRS[pair].1, "expirationDuration": "PT4H"}))
                    .send();
                // Every request gets an answer or a closed connection, never
                // a hang.
                let answer = tokio::time::timeout(Duration::from_secs(15), sent)
                    .await
                    .expect("a request hung through shutdown");
                match answer {
                    Ok(r) if r.status() == 200 => {
                        let mut o = outcomes.lock().unwrap();
                        o[i] = (Some(pair), None);
                    }
                    // Refused or closed during shutdown: the write may or may
                    // not have landed; stop writing this user.
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = tokio::task::spawn_blocking(move || server.sigterm())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    for w in writers {
        w.await.unwrap();
    }
    let restarted = Proc::start(&["--data-dir", data]);
    let outcomes = outcomes.lock().unwrap().clone();
    assert!(
        outcomes.iter().any(|(acked, _)| acked.is_some()),
        "the load acknowledged some writes before the signal"
    );
    for (user, (acked, in_flight)) in users.iter().zip(outcomes) {
        let r = restarted
            .send(
                reqwest::Method::GET,
                &format!("/v1.0/users/{user}/presence"),
                &token,
                None,
            )
            .await;
        let availability = r.body["availability"].as_str().unwrap().to_string();
        let allowed: Vec<&str> = acked
            .into_iter()
            .chain(in_flight)
            .map(|p| PAIRS[p].0)
            .collect();
        if acked.is_some() {
            assert!(
                allowed.contains(&availability.as_str()),
                "user {user}: {availability}, acknowledged {acked:?}, in flight {in_flight:?}"
            );
        }
    }
}
