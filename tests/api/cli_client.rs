//! The command-line client (`get`, `set`, `clear`, `status-message`,
//! `watch`) and `backup`, run as the real binary against a real server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::process::{mint, mint_app, Proc, Serve, BIN};

const APP: &str = "cli-app";

/// An application token that may read and write every user of `tenant`.
fn app_token(data_dir: &Path, tenant: Uuid) -> String {
    mint_app(
        data_dir,
        tenant,
        APP,
        "Presence.ReadWrite.All Presence.Read.All",
    )
}

/// Runs `presenced ARGS` with the server's URL and token in the environment.
fn cli(url: &str, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("PRESENCED_URL", url)
        .env("PRESENCED_TOKEN", token)
        .output()
        .expect("run presenced")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "presenced failed: {}\n{}",
        stderr(out),
        stdout(out)
    );
}

/// A failure: non-zero exit, one message, no panic or backtrace.
#[track_caller]
fn assert_fails_with(out: &Output, expected: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected a failure, got {err}");
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

fn get_json(url: &str, token: &str, user: Uuid) -> Value {
    let out = cli(url, token, &["get", &user.to_string(), "--json"]);
    assert_ok(&out);
    serde_json::from_str(&stdout(&out)).expect("get --json prints JSON")
}

#[tokio::test]
async fn cli_sets_reads_clears_and_sets_status_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let tenant = Uuid::new_v4();
    let token = app_token(dir.path(), tenant);
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let (s1, s2) = (u1.to_string(), u2.to_string());
    let url = server.url.as_str();

    // set without --session: the session id is the token's app id.
    let out = cli(
        url,
        &token,
        &[
            "set",
            &s1,
            "--availability",
            "Busy",
            "--activity",
            "InACall",
            "--duration",
            "PT1H",
        ],
    );
    assert_ok(&out);
    let out = cli(
        url,
        &token,
        &[
            "set",
            &s2,
            "--availability",
            "DoNotDisturb",
            "--activity",
            "Presenting",
            "--session",
            APP,
        ],
    );
    assert_ok(&out);

    let out = cli(url, &token, &["get", &s1]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), format!("{u1}  Busy  InACall"));

    let out = cli(
        url,
        &token,
        &[
            "status-message",
            &s1,
            "at lunch",
            "--expires",
            "2099-01-01T00:00:00",
            "--zone",
            "Europe/Berlin",
        ],
    );
    assert_ok(&out);
    // The expiry shows to the user themself (a delegated token).
    let own = mint(
        dir.path(),
        tenant,
        Some(u1),
        APP,
        Some("Presence.Read"),
        None,
    );
    let p = get_json(url, &own, u1);
    assert_eq!(p["id"], s1);
    assert_eq!(p["statusMessage"]["message"]["content"], "at lunch");
    assert_eq!(
        p["statusMessage"]["expiryDateTime"]["timeZone"],
        "Europe/Berlin"
    );
    let out = cli(url, &token, &["get", &s1]);
    assert_eq!(
        stdout(&out).trim(),
        format!("{u1}  Busy  InACall  \"at lunch\"")
    );

    // Several users: one getPresencesByUserId, `{"value":[…]}` with --json.
    let out = cli(url, &token, &["get", &s1, &s2, "--json"]);
    assert_ok(&out);
    let many: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let value = many["value"].as_array().expect("value list");
    assert_eq!(many.as_object().unwrap().len(), 1, "only value: {many}");
    let by_id = |id: &str| {
        value
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {many}"))
    };
    assert_eq!(by_id(&s1)["availability"], "Busy");
    assert_eq!(by_id(&s2)["availability"], "DoNotDisturb");
    let out = cli(url, &token, &["get", &s1, &s2]);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("{u2}  DoNotDisturb  Presenting")));

    // clear ends the session; with none left the user is Offline.
    let out = cli(url, &token, &["clear", &s2, "--session", APP]);
    assert_ok(&out);
    assert_eq!(get_json(url, &token, u2)["availability"], "Offline");

    // Bad input from the server is explained, non-zero, no panic.
    let out = cli(
        url,
        &token,
        &[
            "set",
            &s1,
            "--availability",
            "Busy",
            "--activity",
            "Napping",
        ],
    );
    assert_fails_with(&out, "the server answered 400 Bad Request");
}

#[test]
fn cli_explains_a_refused_token_and_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let user = Uuid::new_v4().to_string();

    let out = cli(&server.url, "not-a-token", &["get", &user]);
    assert_fails_with(
        &out,
        "the server refused the token: the access token is malformed",
    );
    assert_fails_with(&out, "mint a new one with `presenced token");

    // Expired an hour ago, signed with the server's own secret.
    let secret = presenced::app::load_secret(
        &presenced::config::SecretSource::File(dir.path().join("jwt-secret")),
        false,
    )
    .unwrap()
    .unwrap()
    .0;
    let roles = ["Presence.Read.All".to_string()];
    let claims = presenced::auth::MintClaims::new(
        Uuid::new_v4(),
        None,
        APP,
        None,
        Some(&roles),
        presenced::clock::wall_now() - chrono::Duration::hours(2),
        chrono::Duration::hours(1),
    );
    let expired = presenced::auth::mint_hs256(&secret, &claims).unwrap();
    let out = cli(&server.url, &expired, &["get", &user]);
    assert_fails_with(
        &out,
        "the server refused the token: the access token has expired; mint a new one with `presenced token",
    );

    // Signed with another server's secret.
    let other = tempfile::tempdir().unwrap();
    let _other_server = Proc::start(&["--data-dir", other.path().to_str().unwrap()]);
    let foreign = app_token(other.path(), Uuid::new_v4());
    let out = cli(&server.url, &foreign, &["get", &user]);
    assert_fails_with(
        &out,
        "the server refused the token: the access token's signature is invalid",
    );

    // A token without the role: 403, said so.
    let reader = mint_app(dir.path(), Uuid::new_v4(), APP, "Presence.Read.All");
    let out = cli(
        &server.url,
        &reader,
        &[
            "set",
            &user,
            "--availability",
            "Busy",
            "--activity",
            "InACall",
        ],
    );
    assert_fails_with(&out, "the token may not do this");

    let out = Command::new(BIN)
        .args(["get", &user])
        .env("PRESENCED_URL", &server.url)
        .env_remove("PRESENCED_TOKEN")
        .output()
        .unwrap();
    assert_fails_with(&out, "no token: pass --token or set PRESENCED_TOKEN");
}

#[test]
fn cli_says_when_no_server_answers() {
    // A port that was free a moment ago and that nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let user = Uuid::new_v4().to_string();
    for args in [
        vec!["get", user.as_str()],
        vec!["watch"],
        vec!["clear", user.as_str(), "--session", "x"],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .args(["--url", &url, "--token", "t"])
            .output()
            .unwrap();
        assert_fails_with(
            &out,
            &format!("no presenced answers at {url}; start one with `presenced serve`"),
        );
    }
}

#[tokio::test]
async fn watch_prints_a_line_per_change_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::start(&["--data-dir", dir.path().to_str().unwrap()]);
    let token = app_token(dir.path(), Uuid::new_v4());
    let (watched, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut watch = Command::new(BIN)
        .args(["watch", &watched.to_string()])
        .env("PRESENCED_URL", &server.url)
        .env("PRESENCED_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(watch.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.contains("watching"), "watch started: {first:?}");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });

    for (user, availability, activity) in [
        (other, "Away", "Away"),
        (watched, "Busy", "InACall"),
        (watched, "DoNotDisturb", "Presenting"),
    ] {
        let r = server
            .send(
                reqwest::Method::POST,
                &format!("/v1.0/users/{user}/presence/setPresence"),
                &token,
                Some(json!({"sessionId": APP, "availability": availability, "activity": activity})),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let deadline = Duration::from_secs(30);
    for expected in ["Busy  InACall", "DoNotDisturb  Presenting"] {
        let line = rx
            .recv_timeout(deadline)
            .unwrap_or_else(|_| panic!("watch printed no line for {expected} within {deadline:?}"));
        assert_eq!(
            line,
            format!("{watched}  {expected}"),
            "only the watched user"
        );
    }

    // Stopped by the test, by its pid.
    watch.kill().unwrap();
    let status = watch.wait().unwrap();
    assert!(!status.success());
}

#[tokio::test]
async fn backup_while_writing_holds_every_write_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let server = Proc::start(&["--data-dir", &data]);
    let token = app_token(dir.path(), Uuid::new_v4());

    // A writer that keeps writing new users until told to stop, recording
    // each acknowledged write.
    let acked: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, token, acked, stop) = (
            server.url.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let user = Uuid::new_v4();
                let r = client
                    .post(format!("{url}/v1.0/users/{user}/presence/setPresence"))
                    .bearer_auth(&token)
                    .json(&json!({"sessionId": APP, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT4H"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                acked.lock().unwrap().push(user);
            }
        })
    };
    let wait_for = |n: usize| {
        let acked = acked.clone();
        async move {
            for _ in 0..3000 {
                if acked.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the writer did not get {n} writes acknowledged within 30 s");
        }
    };
    wait_for(30).await;

    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("presenced-backup.sqlite3");
    let before: Vec<Uuid> = acked.lock().unwrap().clone();
    let run = {
        let (data, file) = (data.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["backup", "--data-dir", &data, "--to"])
                .arg(&file)
                .output()
                .unwrap()
        })
    };
    let out = run.await.unwrap();
    assert_ok(&out);
    // Writes went on during and after the backup.
    let n = acked.lock().unwrap().len();
    wait_for(n + 5).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    // An existing FILE is kept unless --force.
    let again = |force: bool| {
        let mut c = Command::new(BIN);
        c.args(["backup", "--data-dir", &data, "--to"]).arg(&file);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    assert_fails_with(&again(false), "exists; choose another --to, or add --force");
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        modified
    );
    let leftovers: Vec<_> = std::fs::read_dir(backups.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no partial files left: {leftovers:?}");

    // Restore as the README says: the file as <data-dir>/presenced.sqlite3
    // of a new data dir, then start a server on it.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&file, restored.path().join("presenced.sqlite3")).unwrap();
    std::fs::copy(
        dir.path().join("jwt-secret"),
        restored.path().join("jwt-secret"),
    )
    .unwrap();
    let copy = Proc::start(&["--data-dir", restored.path().to_str().unwrap()]);
    for chunk in before.chunks(650) {
        let ids: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
        let r = copy
            .send(
                reqwest::Method::POST,
                "/v1.0/communications/getPresencesByUserId",
                &token,
                Some(json!({ "ids": ids })),
            )
            .await;
        let body = r.ok_json();
        let value = body["value"].as_array().unwrap();
        assert_eq!(value.len(), chunk.len());
        for p in value {
            assert_eq!(
                p["availability"], "Busy",
                "a write acknowledged before the backup is in the copy: {p}"
            );
        }
    }

    // --force replaces the file with a newer copy, which holds later writes.
    assert_ok(&again(true));
    drop(copy);
    let all: Vec<Uuid> = acked.lock().unwrap().clone();
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&file, restored.path().join("presenced.sqlite3")).unwrap();
    std::fs::copy(
        dir.path().join("jwt-secret"),
        restored.path().join("jwt-secret"),
    )
    .unwrap();
    let copy = Proc::start(&["--data-dir", restored.path().to_str().unwrap()]);
    let last = all.last().unwrap();
    let r = copy
        .send(
            reqwest::Method::GET,
            &format!("/v1.0/users/{last}/presence"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.ok_json()["availability"], "Busy");
    drop(server);
}

#[test]
fn backup_of_a_dir_without_a_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("b.sqlite3");
    let out = Command::new(BIN)
        .args(["backup", "--data-dir"])
        .arg(dir.path())
        .arg("--to")
        .arg(&to)
        .output()
        .unwrap();
    assert_fails_with(&out, "no presenced database at");
    assert!(!to.exists());
}

/// `presenced serve` on `listen` with `data` as its data dir.
fn serve_on(listen: &str, data: &str) -> Proc {
    Serve::data_dir(Path::new(data)).listen(listen).start()
}

async fn set_presence(server: &Proc, token: &str, user: Uuid, availability: &str, activity: &str) {
    let r = server
        .send(
            reqwest::Method::POST,
            &format!("/v1.0/users/{user}/presence/setPresence"),
            token,
            Some(json!({"sessionId": APP, "availability": availability, "activity": activity})),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn watch_reconnects_after_a_restart_and_resumes_with_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let first = serve_on("127.0.0.1:0", &data);
    let url = first.url.clone();
    let listen = url.strip_prefix("http://").unwrap().to_string();
    let token = app_token(dir.path(), Uuid::new_v4());
    let watched = Uuid::new_v4();
    let mut watch = Command::new(BIN)
        .args(["watch", &watched.to_string()])
        .env("PRESENCED_URL", &url)
        .env("PRESENCED_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    let err = watch.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            if err_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Duration::from_secs(30);
    let started = err_rx.recv_timeout(deadline).unwrap();
    assert!(started.contains("watching"), "{started}");
    set_presence(&first, &token, watched, "Busy", "InACall").await;
    assert_eq!(
        rx.recv_timeout(deadline).unwrap(),
        format!("{watched}  Busy  InACall")
    );

    // The server dies (kill -9); while `watch` is disconnected a change is
    // written through another server on the same data dir (another port),
    // then a server comes back on the watched URL.
    first.kill9();
    let broke = err_rx.recv_timeout(deadline).unwrap();
    assert!(
        broke.contains("reconnecting to resume after event"),
        "{broke}"
    );
    let other = serve_on("127.0.0.1:0", &data);
    set_presence(&other, &token, watched, "DoNotDisturb", "Presenting").await;
    other.sigterm();
    let back = serve_on(&listen, &data);
    let reconnected = err_rx.recv_timeout(deadline).unwrap();
    assert!(reconnected.contains("reconnected"), "{reconnected}");
    set_presence(&back, &token, watched, "Away", "Away").await;

    // The missed change first (from the event log, by Last-Event-ID), the
    // one printed before not again, then the live one.
    for expected in ["DoNotDisturb  Presenting", "Away  Away"] {
        let line = rx
            .recv_timeout(deadline)
            .unwrap_or_else(|_| panic!("watch printed no line for {expected} within {deadline:?}"));
        assert_eq!(line, format!("{watched}  {expected}"));
    }
    watch.kill().unwrap();
    watch.wait().unwrap();
}
