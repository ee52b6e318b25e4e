//! The real binary as a child process: `presenced serve` on loopback (URL
//! read from its first line), requests to it, tokens minted with
//! `presenced token` from its data dir, and a watcher's subscription to a
//! user's presence. Shared by the binary, integrity and connection tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{reply, Reply};

pub const BIN: &str = env!("CARGO_BIN_EXE_presenced");

/// Where a started server listens unless told otherwise.
const ANY_LOOPBACK_PORT: &str = "127.0.0.1:0";

/// A `presenced serve` child process.
pub struct Proc {
    pub child: Child,
    pub url: String,
}

/// How to start a `presenced serve`: its data dir, optionally a secret
/// file (instead of the secret it generates in the data dir), optionally
/// its stderr (the log) in a file, and any other flags. Reusable: each
/// [`Serve::start`] starts another process with the same command line.
#[derive(Clone, Debug, Default)]
pub struct Serve {
    args: Vec<String>,
    log: Option<PathBuf>,
    listen: Option<String>,
}

impl Serve {
    /// `presenced serve --data-dir DATA`.
    pub fn data_dir(data: &Path) -> Self {
        Self::default()
            .arg("--data-dir")
            .arg(data.to_str().unwrap())
    }

    /// Signs and checks tokens with the secret in `file`
    /// (`--jwt-secret-file`).
    pub fn secret_file(self, file: &Path) -> Self {
        self.arg("--jwt-secret-file").arg(file.to_str().unwrap())
    }

    /// The emulator on a manual clock that starts at `start_time`
    /// (`--manual-clock --start-time START_TIME`).
    pub fn manual_clock_at(self, start_time: &str) -> Self {
        self.args(&["--manual-clock", "--start-time", start_time])
    }

    /// Keeps presence in `store` (`--store`), e.g. a `redis://` URL.
    pub fn store(self, store: &str) -> Self {
        self.arg("--store").arg(store)
    }

    /// The server's stderr (its log) goes to the file `path`, created (or
    /// truncated) at each start.
    pub fn log_to(mut self, path: &Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Listens on `addr` (`--listen`) instead of `127.0.0.1:0`.
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.to_string());
        self
    }

    /// More flags, as given.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    fn arg(self, arg: &str) -> Self {
        self.args(&[arg])
    }

    /// Starts the server and waits for its listening line.
    pub fn start(&self) -> Proc {
        let stderr = match &self.log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::null(),
        };
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let listen = self.listen.as_deref().unwrap_or(ANY_LOOPBACK_PORT);
        Proc::spawn(listen, &args, stderr)
    }

    /// Starts two servers with this command line: two nodes of one store.
    pub fn two_nodes(&self) -> (Proc, Proc) {
        (self.start(), self.start())
    }
}

/// A server whose stderr (its log) goes to a file: its temp dir (deleted
/// when dropped), the data dir and log file in it, and the process.
pub struct LoggedServer {
    _dir: tempfile::TempDir,
    pub data: PathBuf,
    pub log: PathBuf,
    pub server: Proc,
}

impl LoggedServer {
    /// `presenced serve ARGS…` on `DIR/data`, its log in `DIR/stderr.log`.
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (data, log) = (dir.path().join("data"), dir.path().join("stderr.log"));
        let server = Serve::data_dir(&data).log_to(&log).args(args).start();
        Self {
            _dir: dir,
            data,
            log,
            server,
        }
    }
}

impl Proc {
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(ANY_LOOPBACK_PORT, args, Stdio::null())
    }

    /// `presenced serve --listen LISTEN ARGS…`, with the server's stderr
    /// (its log) sent to `stderr`, and RUST_LOG unset so the command line
    /// decides.
    fn spawn(listen: &str, args: &[&str], stderr: Stdio) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", listen])
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

/// Serves `tests/fixtures/jwks.json` (the test keys) on a loopback port
/// from the test's runtime; returns its URL, `http://127.0.0.1:PORT/keys`.
pub async fn serve_jwks_fixture() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwks.json");
    let body = std::fs::read_to_string(path).unwrap();
    let keys = axum::Router::new().route(
        "/keys",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keys_url = format!("http://{}/keys", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, keys).await });
    keys_url
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

/// Mints an application token (no user) with `roles`, with the secret
/// `serve` created in `data_dir`.
pub fn mint_app(data_dir: &Path, tenant: Uuid, app: &str, roles: &str) -> String {
    mint(data_dir, tenant, None, app, None, Some(roles))
}

/// In a fresh tenant of the server on `data_dir`: a watcher subscribes on
/// `subscribe_on` to Alice's presence (delivered to `hook`, with
/// `client_state`, until 09:50 on 2026-01-01), then Alice's app reports
/// Busy/InACall for the default 5 minutes on `write_on`. Returns Alice's id;
/// the notification is the caller's to wait for.
pub async fn subscribe_then_write(
    subscribe_on: &Proc,
    write_on: &Proc,
    data_dir: &Path,
    hook: &str,
    client_state: &str,
) -> Uuid {
    let (tenant, watcher, alice) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let watcher_token = mint(
        data_dir,
        tenant,
        Some(watcher),
        "app-w",
        Some("Presence.Read.All"),
        None,
    );
    let subscription = json!({
        "changeType": "updated",
        "notificationUrl": hook,
        "resource": format!("communications/presences/{alice}"),
        "expirationDateTime": "2026-01-01T09:50:00Z",
        "clientState": client_state,
    });
    let r = subscribe_on
        .send(
            reqwest::Method::POST,
            "/v1.0/subscriptions",
            &watcher_token,
            Some(subscription),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let alice_token = mint(
        data_dir,
        tenant,
        Some(alice),
        "app-a",
        Some("Presence.ReadWrite"),
        None,
    );
    let r = write_on
        .send(
            reqwest::Method::POST,
            &format!("/v1.0/users/{alice}/presence/setPresence"),
            &alice_token,
            Some(json!({"sessionId": "app-a", "availability": "Busy", "activity": "InACall"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    alice
}
