//! Several presenced nodes on one Redis or one Redis Cluster (issue #15):
//! the real binary with `--store redis://…` / `redis-cluster://…`, real
//! `redis-server` processes on loopback, killed by pid.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::helpers::Reply;
use crate::process::{mint, mint_app, subscribe_then_write, Proc, Serve};
use crate::redis_server::{RedisCluster, RedisServer};

const APP: &str = "app-scale-out";

/// A node on `store`; the nodes share `data` for the token secret only.
fn node(data: &Path, store: &str) -> Proc {
    Proc::start(&["--data-dir", data.to_str().unwrap(), "--store", store])
}

fn app_token(data: &Path, tenant: Uuid) -> String {
    mint_app(
        data,
        tenant,
        APP,
        "Presence.ReadWrite.All Presence.Read.All",
    )
}

async fn set_presence(
    node: &Proc,
    token: &str,
    user: Uuid,
    availability: &str,
    activity: &str,
) -> Reply {
    let body = json!({"sessionId": APP, "availability": availability, "activity": activity, "expirationDuration": "PT1H"});
    node.send(
        reqwest::Method::POST,
        &format!("/v1.0/users/{user}/presence/setPresence"),
        token,
        Some(body),
    )
    .await
}

async fn presence_of(node: &Proc, token: &str, user: Uuid) -> Reply {
    node.send(
        reqwest::Method::GET,
        &format!("/v1.0/users/{user}/presence"),
        token,
        None,
    )
    .await
}

async fn readyz(node: &Proc) -> Reply {
    node.send(reqwest::Method::GET, "/_presenced/readyz", "", None)
        .await
}

/// Writes on each node are read on the other.
async fn writes_cross_between(a: &Proc, b: &Proc, token: &str, users: &[Uuid]) {
    for (i, user) in users.iter().enumerate() {
        let (writer, reader) = if i % 2 == 0 { (a, b) } else { (b, a) };
        set_presence(writer, token, *user, "Busy", "InACall")
            .await
            .ok_empty();
        let read = presence_of(reader, token, *user).await;
        let body = read.ok_json();
        assert_eq!(
            (body["availability"].as_str(), body["activity"].as_str()),
            (Some("Busy"), Some("InACall")),
            "user {i}: {body}"
        );
    }
}

#[tokio::test]
async fn two_nodes_on_one_redis_read_each_others_writes() {
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let (a, b) = Serve::data_dir(data.path()).store(&redis.url()).two_nodes();
    let token = app_token(data.path(), Uuid::new_v4());
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();

    writes_cross_between(&a, &b, &token, &users).await;

    set_presence(&b, &token, users[0], "Away", "Away")
        .await
        .ok_empty();
    assert_eq!(
        presence_of(&a, &token, users[0]).await.ok_json()["availability"],
        "Away",
        "a later write on B replaces A's for readers on A"
    );
}

#[tokio::test]
async fn two_nodes_on_a_three_master_cluster_read_each_others_writes() {
    let cluster = RedisCluster::start();
    let store = cluster.store_url();
    let data = tempfile::tempdir().unwrap();
    let (a, b) = Serve::data_dir(data.path()).store(&store).two_nodes();
    let token = app_token(data.path(), Uuid::new_v4());
    let users: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();

    writes_cross_between(&a, &b, &token, &users).await;

    let keys = cluster.keys_per_node();
    assert!(
        keys.iter().all(|k| *k > 0),
        "users spread over every master: {keys:?}"
    );
}

#[tokio::test]
async fn while_redis_is_down_requests_get_503_and_the_node_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let server = node(data.path(), &redis.url());
    let token = app_token(data.path(), Uuid::new_v4());
    let (written, refused) = (Uuid::new_v4(), Uuid::new_v4());
    set_presence(&server, &token, written, "Busy", "InACall")
        .await
        .ok_empty();
    assert_eq!(readyz(&server).await.ok_json()["status"], "ready");

    redis.kill();

    readyz(&server).await.error(503, "serviceNotAvailable");
    let write = set_presence(&server, &token, refused, "Busy", "InACall").await;
    write.error(503, "serviceNotAvailable");
    assert_eq!(write.headers["retry-after"], "5");
    presence_of(&server, &token, written)
        .await
        .error(503, "serviceNotAvailable");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&server).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "the node did not become ready again after redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        presence_of(&server, &token, written).await.ok_json()["availability"],
        "Busy",
        "the write acknowledged before the restart survived it"
    );
    set_presence(&server, &token, refused, "Away", "Away")
        .await
        .ok_empty();
}

/// Two emulator nodes on one Redis, started at 09:00.
fn emulator_pair(redis: &RedisServer, data: &Path) -> (Proc, Proc) {
    Serve::data_dir(data)
        .store(&redis.url())
        .manual_clock_at("2026-01-01T09:00:00Z")
        .two_nodes()
}

/// Waits until `node`'s emulator clock reads `now`, with a deadline.
async fn wait_for_clock(node: &Proc, admin: &str, now: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = node
            .send(reqwest::Method::GET, "/_presenced/clock", admin, None)
            .await;
        if r.ok_json()["now"] == now {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the clock never reached {now} on the other node: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A subscription made on A gets the change written on B, once; moving
/// the emulator clock on A moves it on B; the session's expiry, which
/// both nodes' schedulers find due, is delivered once.
#[tokio::test]
async fn a_subscription_on_one_node_gets_writes_and_expiries_from_both_once_and_the_clock_is_shared(
) {
    use crate::receiver::Receiver;
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let (a, b) = emulator_pair(&redis, data.path());
    let receiver = Receiver::start().await;
    let alice = subscribe_then_write(&a, &b, data.path(), &receiver.hook(), "scale-out").await;

    let items = receiver.wait_for_items(1).await;
    assert_eq!(items[0]["resourceData"]["id"], alice.to_string());
    assert_eq!(items[0]["clientState"], "scale-out");
    receiver.assert_stays_at(1).await;

    // The session (5 minutes by default) expires when A's clock moves.
    let admin = mint_app(data.path(), Uuid::new_v4(), "admin-app", "Presenced.Admin");
    let moved = a
        .send(
            reqwest::Method::POST,
            "/_presenced/clock",
            &admin,
            Some(json!({"advance": "PT6M"})),
        )
        .await;
    assert_eq!(moved.ok_json()["now"], "2026-01-01T09:06:00.0000000Z");
    wait_for_clock(&b, &admin, "2026-01-01T09:06:00.0000000Z").await;

    let items = receiver.wait_for_items(2).await;
    assert_eq!(items[1]["resourceData"]["id"], alice.to_string());
    receiver.assert_stays_at(2).await;
}

/// An event stream open on A sees a write made on B.
#[tokio::test]
async fn an_event_stream_on_one_node_sees_writes_on_the_other() {
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let (a, b) = Serve::data_dir(data.path()).store(&redis.url()).two_nodes();
    let tenant = Uuid::new_v4();
    let reader = mint(
        data.path(),
        tenant,
        Some(Uuid::new_v4()),
        "app-s",
        Some("Presence.Read.All"),
        None,
    );
    let mut stream = reqwest::Client::new()
        .get(format!("{}/_presenced/events", a.url))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let user = Uuid::new_v4();

    set_presence(&b, &app_token(data.path(), tenant), user, "Busy", "InACall")
        .await
        .ok_empty();

    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains(&user.to_string()) {
                return text;
            }
        }
        panic!("the stream ended before the event: {text}");
    })
    .await
    .expect("the event written on B never reached the stream on A");
    assert!(seen.contains("Busy"), "{seen}");
}

/// 40 applications report presence for one user at once, half through
/// each node: the user ends with 40 sessions.
#[tokio::test]
async fn forty_concurrent_apps_on_one_user_through_two_nodes_keep_forty_sessions() {
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let (a, b) = Serve::data_dir(data.path()).store(&redis.url()).two_nodes();
    let nodes = std::sync::Arc::new([a, b]);
    let tenant = Uuid::new_v4();
    let token = app_token(data.path(), tenant);
    let user = Uuid::new_v4();
    // Each application may only set its own session: one token per app.
    let tokens: Vec<String> = (0..40)
        .map(|i| {
            mint_app(
                data.path(),
                tenant,
                &format!("app-{i}"),
                "Presence.ReadWrite.All",
            )
        })
        .collect();
    let mut writes = vec![];
    for (i, app_token) in tokens.into_iter().enumerate() {
        let nodes = nodes.clone();
        writes.push(tokio::spawn(async move {
            let body = json!({"sessionId": format!("app-{i}"), "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"});
            nodes[i % 2]
                .send(
                    reqwest::Method::POST,
                    &format!("/v1.0/users/{user}/presence/setPresence"),
                    &app_token,
                    Some(body),
                )
                .await
        }));
    }
    for w in writes {
        w.await.unwrap().ok_empty();
    }

    let r = nodes[0]
        .send(
            reqwest::Method::GET,
            &format!("/_presenced/users/{user}/presence"),
            &token,
            None,
        )
        .await;
    let sessions = r.ok_json()["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions in {}", r.text))
        .len();
    assert_eq!(sessions, 40, "{}", r.text);
}

/// Writes keep coming while Redis is killed (`SIGKILL`) and restarted:
/// the ones refused meanwhile are clean 503s, the node recovers by itself,
/// and every write it acknowledged is there afterwards.
#[tokio::test]
async fn redis_killed_and_restarted_under_writes_loses_no_acknowledged_write() {
    use std::sync::{Arc, Mutex};
    let mut redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let server = Arc::new(node(data.path(), &redis.url()));
    let token = app_token(data.path(), Uuid::new_v4());
    let acked = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let refused = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (server, token) = (server.clone(), token.clone());
        let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let user = Uuid::new_v4();
                let r = set_presence(&server, &token, user, "Busy", "InACall").await;
                if r.status == 200 {
                    acked.lock().unwrap().push(user);
                } else {
                    let code = r.body["error"]["code"].as_str().unwrap_or("").to_string();
                    refused.lock().unwrap().push((r.status.as_u16(), code));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let wait_until = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what} not within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let a = acked.clone();
    wait_until(
        "20 acknowledged writes",
        Box::new(move || a.lock().unwrap().len() >= 20),
    )
    .await;

    redis.kill();
    let r = refused.clone();
    wait_until(
        "3 refused writes",
        Box::new(move || r.lock().unwrap().len() >= 3),
    )
    .await;
    redis.restart();
    let before = acked.lock().unwrap().len();
    let a = acked.clone();
    wait_until(
        "20 more acknowledged writes after the restart",
        Box::new(move || a.lock().unwrap().len() >= before + 20),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();

    for (status, code) in refused.lock().unwrap().iter() {
        assert_eq!((*status, code.as_str()), (503, "serviceNotAvailable"));
    }
    let acked = acked.lock().unwrap().clone();
    for user in acked {
        let r = presence_of(&server, &token, user).await;
        assert_eq!(
            r.ok_json()["availability"],
            "Busy",
            "acknowledged write for {user} lost"
        );
    }
}

/// A node dies (`kill -9`) with a delivery in flight: once its claim
/// lapses the other node delivers it.
#[tokio::test]
async fn a_delivery_pending_on_a_node_killed_with_kill_9_is_delivered_by_the_other() {
    use crate::receiver::Receiver;
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::data_dir(data.path())
        .store(&redis.url())
        .args(&["--redis-delivery-lease", "PT1S"])
        .manual_clock_at("2026-01-01T09:00:00Z");
    let a = serve.start();
    let receiver = Receiver::start().await;
    // The receiver holds the first POST open: A has it in flight.
    receiver.answer_with(202, Duration::from_secs(3600));
    let alice = subscribe_then_write(&a, &a, data.path(), &receiver.hook(), "kill-9").await;
    receiver.wait_for_items(1).await;
    let _b = serve.start();

    a.kill9();
    receiver.answer_with(202, Duration::ZERO);

    let items = receiver.wait_for_items(2).await;
    assert_eq!(items[1]["resourceData"]["id"], alice.to_string());
    assert_eq!(items[1]["clientState"], "kill-9");
}

/// `scripts/cluster-demo.sh` (README, Running several nodes) does what it
/// says: a 3-master cluster, two nodes, a write on one read on the other.
#[test]
fn the_cluster_demo_script_reads_on_one_node_what_the_other_wrote() {
    let ports: Vec<String> = (0..3)
        .map(|_| crate::redis_server::free_port().to_string())
        .collect();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/cluster-demo.sh"))
        .env("PRESENCED_BIN", crate::process::BIN)
        .env("REDIS_PORTS", ports.join(" "))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("OK: written on node A, read on node B"),
        "{stdout}"
    );
}

/// `--store rediss://…`: the node speaks TLS to Redis and checks its
/// certificate against the system roots, to which `SSL_CERT_FILE` adds a
/// private CA.
#[tokio::test]
async fn a_node_on_rediss_verifies_the_certificate_and_serves() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let redis = RedisServer::start_tls();
    let data = tempfile::tempdir().unwrap();
    let certificate = redis.certificate().unwrap().to_path_buf();
    // Another CA, valid but not the one that signed Redis's certificate.
    let stranger = data.path().join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(&stranger, other.cert.pem()).unwrap();
    let start = |trusted: bool| {
        let mut cmd = Command::new(crate::process::BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--store", &redis.url()])
            .env_remove("PRESENCED_JWT_SECRET")
            .env(
                "SSL_CERT_FILE",
                if trusted { &certificate } else { &stranger },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut line = String::new();
        if trusted {
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
        }
        (child, line, stderr)
    };

    // Not trusting the certificate: the node waits for a Redis it can
    // verify, saying why.
    let (mut untrusting, _, stderr) = start(false);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("waiting for redis") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let complaint = rx.recv_timeout(Duration::from_secs(30));
    untrusting.kill().unwrap();
    untrusting.wait().unwrap();
    let complaint = complaint.expect("the node never said it was waiting for redis");
    assert!(
        complaint.to_lowercase().contains("certificate"),
        "not a certificate complaint: {complaint}"
    );

    let (child, line, _stderr) = start(true);
    let url = line
        .trim()
        .strip_prefix("presenced listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let server = Proc { child, url };
    let token = app_token(data.path(), Uuid::new_v4());
    let user = Uuid::new_v4();
    set_presence(&server, &token, user, "Busy", "InACall")
        .await
        .ok_empty();
    assert_eq!(
        presence_of(&server, &token, user).await.ok_json()["availability"],
        "Busy"
    );
}

/// A node started before its Redis waits for it, then serves.
#[tokio::test]
async fn a_node_started_before_redis_waits_for_it() {
    let port = crate::redis_server::free_port();
    let data = tempfile::tempdir().unwrap();
    let store = format!("redis://127.0.0.1:{port}");
    let dir = data.path().to_path_buf();
    // Proc::start returns once the node listens, which it must not do yet.
    let starting = std::thread::spawn(move || node(&dir, &store));
    // No timing is asserted: the node may or may not have tried Redis yet.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !starting.is_finished(),
        "the node listened without its store"
    );

    let _redis = RedisServer::start_on(port);

    let server = tokio::task::spawn_blocking(move || starting.join().unwrap())
        .await
        .unwrap();
    let token = app_token(data.path(), Uuid::new_v4());
    let user = Uuid::new_v4();
    set_presence(&server, &token, user, "Busy", "InACall")
        .await
        .ok_empty();
    assert_eq!(readyz(&server).await.ok_json()["status"], "ready");
}

/// The emulator's state document, read through `node`.
async fn state_of(node: &Proc, admin: &str) -> serde_json::Value {
    node.send(reqwest::Method::GET, "/_presenced/state", admin, None)
        .await
        .ok_json()
        .clone()
}

/// The emulator's state document, reset and users listing on a 3-master
/// cluster (users in many slots): what is written through A is exported
/// and listed through B; a reset through B wipes it for A; the document
/// imported back through A reads the same through B.
#[tokio::test]
async fn the_emulator_state_reset_and_users_listing_work_across_nodes_on_a_cluster() {
    let cluster = RedisCluster::start();
    let store = cluster.store_url();
    let data = tempfile::tempdir().unwrap();
    let (a, b) = Serve::data_dir(data.path())
        .store(&store)
        .manual_clock_at("2026-01-01T09:00:00Z")
        .two_nodes();
    let tenant = Uuid::new_v4();
    let token = app_token(data.path(), tenant);
    let mut users: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
    users.sort();
    for user in &users {
        set_presence(&a, &token, *user, "Busy", "InACall")
            .await
            .ok_empty();
    }
    let admin = mint_app(data.path(), Uuid::new_v4(), "admin-app", "Presenced.Admin");

    let exported = state_of(&b, &admin).await;
    assert_eq!(exported["tenants"].as_array().unwrap().len(), 1);
    assert_eq!(exported["tenants"][0]["id"], tenant.to_string());
    let ids: Vec<String> = exported["tenants"][0]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = users.iter().map(Uuid::to_string).collect();
    assert_eq!(ids, want, "every user written through A, in id order");
    let page = b
        .send(
            reqwest::Method::GET,
            "/_presenced/users?$top=5",
            &token,
            None,
        )
        .await;
    let listed: Vec<&str> = page.ok_json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, want[..5], "the first page of the users listing");
    assert!(page.ok_json()["@odata.nextLink"].is_string());

    let r = b
        .send(reqwest::Method::POST, "/_presenced/reset", &admin, None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(state_of(&a, &admin).await["tenants"], json!([]));
    let wiped = presence_of(&a, &token, users[0]).await;
    assert_eq!(wiped.ok_json()["availability"], "Offline");

    let r = a
        .send(
            reqwest::Method::PUT,
            "/_presenced/state",
            &admin,
            Some(exported.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(state_of(&b, &admin).await, exported);
    let back = presence_of(&b, &token, users[11]).await;
    assert_eq!(back.ok_json()["availability"], "Busy");
}
