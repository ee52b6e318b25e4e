//! `deploy/presenced.service` is true: the flags of its `ExecStart`, with
//! the example `deploy/presenced.env` substituted as systemd does, start
//! the real binary, which then verifies tokens against the JWKS and answers
//! through the public URL. Only what cannot run here is changed: the data
//! dir (a temp dir), the ports (free ones) and the JWKS URL (a loopback
//! server holding the test key instead of Entra ID's). And
//! `systemd-analyze verify` finds nothing to say about the unit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

use crate::process::{serve_jwks_fixture, BIN};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The `KEY=value` lines of an EnvironmentFile.
fn environment_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The unit's ExecStart as words, `${VAR}` replaced from `env` (each a
/// word of its own, as systemd does).
fn exec_start(unit: &str, env: &HashMap<String, String>) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart");
    line.split_whitespace()
        .map(
            |word| match word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
                Some(var) => env
                    .get(var)
                    .unwrap_or_else(|| panic!("{var} is not set in deploy/presenced.env"))
                    .clone(),
                None => word.to_string(),
            },
        )
        .collect()
}

/// Replaces the value of `--flag` in `args` (it must be there).
fn replace_value(args: &mut [String], flag: &str, value: &str) {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("ExecStart has no {flag}"));
    args[i + 1] = value.to_string();
}

#[tokio::test]
async fn the_systemd_unit_starts_a_server_that_verifies_jwks_tokens_and_logs_json() {
    let unit = std::fs::read_to_string(format!("{DEPLOY}/presenced.service")).unwrap();
    let env =
        environment_file(&std::fs::read_to_string(format!("{DEPLOY}/presenced.env")).unwrap());
    for hardening in [
        "DynamicUser=yes",
        "StateDirectory=presenced",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "EnvironmentFile=/etc/presenced/presenced.env",
    ] {
        assert!(unit.contains(hardening), "the unit sets {hardening:?}");
    }
    let mut args = exec_start(&unit, &env);
    assert_eq!(args[0], "/usr/local/bin/presenced");
    assert_eq!(args[1], "serve");
    let data_dir_at = args.iter().position(|a| a == "--data-dir").unwrap();
    assert_eq!(
        args[data_dir_at + 1],
        "/var/lib/presenced",
        "the StateDirectory"
    );

    // A loopback JWKS server with the test key (plain http is allowed on
    // loopback only).
    let keys_url = serve_jwks_fixture().await;

    let dir = tempfile::tempdir().unwrap();
    replace_value(&mut args, "--data-dir", dir.path().to_str().unwrap());
    replace_value(&mut args, "--listen", "127.0.0.1:0");
    replace_value(&mut args, "--metrics-listen", "127.0.0.1:0");
    replace_value(&mut args, "--jwks-url", &keys_url);
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(&args[1..])
        .env_remove("PRESENCED_JWT_SECRET")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("presenced listening on ")
        .unwrap_or_else(|| {
            panic!(
                "the unit's flags did not start a server: {line:?}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
        .to_string();

    // A token as the identity provider would mint it, for the env file's
    // issuer and audience.
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    let (tenant_text, user_text) = (tenant.to_string(), user.to_string());
    let out = Command::new(BIN)
        .args(["token", "--rs256-key", &format!("{FIXTURES}/rsa-1.pem")])
        .args([
            "--kid",
            "rsa-1",
            "--tenant",
            &tenant_text,
            "--user",
            &user_text,
        ])
        .args(["--app", "deploy-app", "--scopes", "Presence.Read"])
        .args(["--issuer", &env["PRESENCED_ISSUER"]])
        .args(["--audience", &env["PRESENCED_AUDIENCE"]])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let r = reqwest::Client::new()
        .get(format!("{url}/v1.0/me/presence"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["id"], user_text);
    let context = body["@odata.context"].as_str().unwrap();
    assert!(
        context.starts_with(&format!("{}/v1.0/", env["PRESENCED_PUBLIC_URL"])),
        "{context}"
    );

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < until,
            "presenced did not stop within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.lines().count() >= 2, "{log}");
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("--log-format json writes JSON lines ({e}): {line}"));
        assert!(entry.get("level").is_some(), "{line}");
    }
    assert!(
        log.contains("/_presenced/metrics"),
        "the metrics listener is logged: {log}"
    );
}

/// `systemd-analyze verify` accepts the unit (with ExecStart pointing at the
/// built binary, which it checks exists). Machines without systemd's tools
/// skip this, saying so.
#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
        return;
    }
    let unit = std::fs::read_to_string(format!("{DEPLOY}/presenced.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("presenced.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/presenced", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("presenced.service"),
        "warnings about the unit: {stderr}"
    );
}
