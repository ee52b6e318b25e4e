//! The emulator from the command line: `--in-memory` writes nothing to
//! disk, and `presenced exec` runs a command against a throwaway emulator.

use std::process::Command;

use serde_json::json;
use uuid::Uuid;

use crate::process::{token_cli, Proc, BIN};

/// A secret file outside the data dir, and the token args that use it.
fn secret_in(dir: &std::path::Path) -> String {
    let path = dir.join("secret");
    std::fs::write(&path, "an-emulator-test-secret-of-enough-bytes\n").unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn in_memory_serves_writes_and_leaves_the_data_dir_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_in(dir.path());
    let data = dir.path().join("data");
    let server = Proc::start(&[
        "--in-memory",
        "--manual-clock",
        "--data-dir",
        data.to_str().unwrap(),
        "--jwt-secret-file",
        &secret,
    ]);
    let tenant = Uuid::new_v4().to_string();
    let token = token_cli(&[
        "--jwt-secret-file",
        &secret,
        "--tenant",
        &tenant,
        "--app",
        "app",
        "--roles",
        "Presence.ReadWrite.All Presence.Read.All Presenced.Admin",
    ]);
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
    let server = Proc::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--jwt-secret-file",
        &secret,
    ]);
    let tenant = Uuid::new_v4().to_string();
    let token = token_cli(&[
        "--jwt-secret-file",
        &secret,
        "--tenant",
        &tenant,
        "--app",
        "app",
        "--roles",
        "Presenced.Admin",
    ]);
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
