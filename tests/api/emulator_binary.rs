//! The emulator from the command line: `--in-memory` writes nothing to
//! disk, and `presenced exec` runs a command against a throwaway emulator.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use uuid::Uuid;

use crate::process::{token_cli, Serve, BIN};

/// A secret file outside the data dir.
fn secret_in(dir: &Path) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, "an-emulator-test-secret-of-enough-bytes\n").unwrap();
    path
}

/// An application token with `roles` in `tenant`, signed with the secret in
/// `secret_file`.
fn app_token(secret_file: &Path, tenant: &str, app: &str, roles: &str) -> String {
    token_cli(&[
        "--jwt-secret-file",
        secret_file.to_str().unwrap(),
        "--tenant",
        tenant,
        "--app",
        app,
        "--roles",
        roles,
    ])
}

#[tokio::test]
async fn in_memory_serves_writes_and_leaves_the_data_dir_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_in(dir.path());
    let data = dir.path().join("data");
    let server = Serve::data_dir(&data)
        .secret_file(&secret)
        .args(&["--in-memory", "--manual-clock"])
        .start();
    let token = app_token(
        &secret,
        &Uuid::new_v4().to_string(),
        "app",
        "Presence.ReadWrite.All Presence.Read.All Presenced.Admin",
    );
    let user = Uuid::new_v4();
    let r = server
        .send(
            reqwest::Method::POST,
            &format!("/v1.0/users/{user}/presence/setPresence"),
            &token,
            Some(json!({"sessionId": "app", "availability": "Busy", "activity": "InACall"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = server
        .send(
            reqwest::Method::POST,
            "/_presenced/clock",
            &token,
            Some(json!({"advance": "PT1M"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = server
        .send(
            reqwest::Method::GET,
            &format!("/v1.0/users/{user}/presence"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.body["availability"], "Busy");
    assert!(server.sigterm().success());
    assert!(
        !data.exists(),
        "an in-memory server created its data dir {}",
        data.display()
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("secret")]);
}

#[test]
fn in_memory_without_a_key_it_may_keep_refuses_to_start_and_says_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--in-memory",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("PRESENCED_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--jwt-secret-file"), "{stderr}");
    assert!(!data.exists());
}

#[tokio::test]
async fn the_emulator_endpoints_are_404_outside_emulator_mode() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_in(dir.path());
    let data = dir.path().join("data");
    let server = Serve::data_dir(&data).secret_file(&secret).start();
    let token = app_token(
        &secret,
        &Uuid::new_v4().to_string(),
        "app",
        "Presenced.Admin",
    );
    for (method, path, body) in [
        (reqwest::Method::GET, "/_presenced/state", None),
        (
            reqwest::Method::PUT,
            "/_presenced/state",
            Some(json!({"version": 1, "tenants": []})),
        ),
        (reqwest::Method::POST, "/_presenced/reset", None),
        (reqwest::Method::GET, "/_presenced/faults", None),
        (
            reqwest::Method::POST,
            "/_presenced/faults",
            Some(json!({"path": "/**", "status": 500})),
        ),
        (reqwest::Method::DELETE, "/_presenced/faults", None),
        (
            reqwest::Method::DELETE,
            "/_presenced/faults/5b8e2f61-3c4d-4e7a-9f10-2a6b7c8d9e01",
            None,
        ),
        (reqwest::Method::GET, "/_presenced/requests", None),
    ] {
        let r = server.send(method.clone(), path, &token, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "itemNotFound");
    }
}

#[test]
fn exec_passes_the_commands_exit_code_through() {
    for code in [0, 3, 7] {
        let status = Command::new(BIN)
            .args(["exec", "--", "sh", "-c", &format!("exit {code}")])
            .env_remove("PRESENCED_JWT_SECRET")
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code));
    }
    let out = Command::new(BIN)
        .args(["exec", "--", "/nonexistent/command"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/command"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process sent SIGTERM when dropped unless taken back.
struct Stops(Option<std::process::Child>);

impl Drop for Stops {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// Waits (bounded) for `path` to exist and returns its text.
fn wait_for_file(path: &std::path::Path) -> String {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < until {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{} did not appear within 30 s", path.display());
}

#[tokio::test]
async fn exec_serves_a_seeded_emulator_to_its_command_and_cleans_up_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env");
    let done = dir.path().join("done");
    let seed = dir.path().join("seed.json");
    let user = Uuid::new_v4();
    let tenant = Uuid::new_v4();
    std::fs::write(
        &seed,
        json!({"version": 1, "clock": "2026-03-01T08:00:00Z", "tenants": [{"id": tenant, "users": [{"id": user,
            "sessions": [{"kind": "client", "id": "desktop", "availability": "Busy", "activity": "InAMeeting",
                "lastActiveDateTime": "2026-03-01T08:00:00Z", "expirationDateTime": "2026-03-01T09:00:00Z"}]}]}]})
        .to_string(),
    )
    .unwrap();
    // The command reports its environment, then waits for the test.
    let script = format!(
        "printf '%s\\n%s\\n%s\\n%s\\n' \"$PRESENCED_URL\" \"$PRESENCED_TENANT\" \"$PRESENCED_ADMIN_TOKEN\" \"$PRESENCED_JWT_SECRET_FILE\" > {env}.tmp && mv {env}.tmp {env}; while [ ! -f {done} ]; do sleep 0.02; done; exit 5",
        env = env_file.display(),
        done = done.display()
    );
    let child = Command::new(BIN)
        .args(["exec", "--start-time", "2026-03-01T07:00:00Z", "--seed"])
        .arg(&seed)
        .args(["--", "sh", "-c", &script])
        .env_remove("PRESENCED_JWT_SECRET")
        .spawn()
        .unwrap();
    // Stops exec (which stops its command) if an assertion fails first.
    let mut child = Stops(Some(child));
    let text = wait_for_file(&env_file);
    let lines: Vec<&str> = text.lines().collect();
    let (url, own_tenant, admin, secret_file) = (lines[0], lines[1], lines[2], lines[3]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(Uuid::parse_str(own_tenant).is_ok());
    assert!(Path::new(secret_file).exists());
    let client = reqwest::Client::new();
    // The admin token works, and the clock is the seed's.
    let clock: serde_json::Value = client
        .get(format!("{url}/_presenced/clock"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clock["now"], "2026-03-01T08:00:00.0000000Z");
    // A token minted from the secret file reads the seeded user.
    let token = app_token(
        Path::new(secret_file),
        &tenant.to_string(),
        "reader",
        "Presence.Read.All",
    );
    let presence: serde_json::Value = client
        .get(format!("{url}/v1.0/users/{user}/presence"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(presence["availability"], "Busy", "{presence}");
    assert_eq!(presence["activity"], "InAMeeting");
    std::fs::write(&done, "").unwrap();
    let mut child = child.0.take().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(5));
    assert!(
        !Path::new(secret_file).exists(),
        "the temporary secret is removed"
    );
    assert!(
        !Path::new(secret_file).parent().unwrap().exists(),
        "and its directory"
    );
    let after = client.get(format!("{url}/_presenced/healthz")).send().await;
    assert!(after.is_err(), "the emulator stopped with the command");
}

#[test]
fn a_bad_seed_stops_the_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_in(dir.path());
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        json!({"version": 1, "tenants": [{"id": Uuid::new_v4(), "users": [{"id": "not-a-guid"}]}]})
            .to_string(),
    )
    .unwrap();
    let start = |extra: &[&str]| {
        Command::new(BIN)
            .args(["serve", "--in-memory", "--listen", "127.0.0.1:0"])
            .arg("--jwt-secret-file")
            .arg(&secret)
            .arg("--seed")
            .arg(&seed)
            .args(extra)
            .env_remove("PRESENCED_JWT_SECRET")
            .output()
            .unwrap()
    };
    let out = start(&["--manual-clock"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tenants[0].users[0].id"), "{stderr}");
    let out = start(&[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--seed needs --manual-clock"), "{stderr}");
}
