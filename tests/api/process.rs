//! The real binary as a child process: `presenced serve` on loopback (URL
//! read from its first line), requests to it, and tokens minted with
//! `presenced token` from its data dir. Shared by the binary, integrity and
//! connection tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

use crate::helpers::{reply, Reply};

pub const BIN: &str = env!("CARGO_BIN_EXE_presenced");

/// A `presenced serve` child process.
pub struct Proc {
    pub child: Child,
    pub url: String,
}

impl Proc {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_stderr(args, Stdio::null())
    }

    /// Like [`Proc::start`], with the server's stderr (its log) sent to
    /// `stderr`, and RUST_LOG unset so the command line decides.
    pub fn start_with_stderr(args: &[&str], stderr: Stdio) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("PRESENCED_JWT_SECRET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn presenced");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let url = line
            .trim()
            .strip_prefix("presenced listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self { child, url }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits up to 5 s for the exit status.
    pub fn sigterm(self) -> std::process::ExitStatus {
        self.sigterm_within(Duration::from_secs(5))
    }

    /// SIGTERM, then waits up to `deadline` for the exit status (fails the
    /// test, killing the process, beyond it).
    pub fn sigterm_within(mut self, deadline: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let until = std::time::Instant::now() + deadline;
        while std::time::Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().unwrap();
        panic!("presenced did not stop within {deadline:?} of SIGTERM");
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Reply {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut req = client
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.unwrap()).await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `presenced token` with `args` and returns the token it prints.
pub fn token_cli(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("token")
        .args(args)
        .env_remove("PRESENCED_JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Mints a token with the secret `serve` created in `data_dir`.
pub fn mint(
    data_dir: &Path,
    tenant: Uuid,
    user: Option<Uuid>,
    app: &str,
    scopes: Option<&str>,
    roles: Option<&str>,
) -> String {
    let (tenant, user) = (tenant.to_string(), user.map(|u| u.to_string()));
    let mut args = vec![
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--tenant",
        &tenant,
        "--app",
        app,
    ];
    if let Some(user) = &user {
        args.extend(["--user", user]);
    }
    if let Some(scopes) = scopes {
        args.extend(["--scopes", scopes]);
    }
    if let Some(roles) = roles {
        args.extend(["--roles", roles]);
    }
    token_cli(&args)
}
