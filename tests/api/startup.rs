//! Start-up of the real binary: `--listen` by host name, and the errors of
//! a start that cannot happen (they name what is wrong and where).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::process::{Serve, BIN};

/// `presenced serve ARGS` that is expected to fail at start: its output,
/// or a test failure if it is still running after 30 s.
fn failed_start(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env_remove("PRESENCED_JWT_SECRET")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > until {
            child.kill().unwrap();
            panic!("presenced serve {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "serve {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    out
}

#[tokio::test]
async fn listen_accepts_a_host_name_and_prints_the_address_it_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::data_dir(dir.path()).listen("localhost:0").start();
    let url = &server.url;
    let bound: std::net::SocketAddr = url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the start-up line shows the bound address: {url}"));
    assert!(bound.ip().is_loopback(), "{bound}");
    assert_ne!(bound.port(), 0);
    let r = reqwest::get(format!("{url}/_presenced/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn listen_on_an_unresolvable_host_name_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A 64-byte label is no DNS name: the C library refuses it without
    // sending a query, so the test sends nothing off the machine.
    let name = format!("{}.invalid", "x".repeat(64));
    let out = failed_start(&[
        "--listen",
        &format!("{name}:8080"),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot resolve the host name '{name}'"))
            && stderr.contains("--listen"),
        "{stderr}"
    );
}

#[test]
fn a_data_dir_that_is_a_file_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let file = file.to_str().unwrap();
    let out = failed_start(&["--listen", "127.0.0.1:0", "--data-dir", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot create data dir {file}"))
            && stderr.contains("not a directory"),
        "{stderr}"
    );
    // A data dir below a file: the path is named too.
    let below = format!("{file}/data");
    let out = failed_start(&["--listen", "127.0.0.1:0", "--data-dir", &below]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&below), "{stderr}");
}
