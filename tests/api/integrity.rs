//! Data integrity with the real binary: one server per data dir, a damaged
//! database refuses to start and says what to do, and readiness follows
//! whether writes succeed (a full disk).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{reply, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_presenced");
const APP: &str = "app-integrity";

/// How long a server that should refuse to start may take to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A running `presenced serve` on a data dir; killed when dropped.
struct Server {
    child: Child,
    url: String,
    client: reqwest::Client,
}

impl Server {
    fn start(data: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env_remove("PRESENCED_JWT_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn presenced");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("presenced listening on ")
            .unwrap_or_else(|| panic!("presenced did not start: {line:?}"))
            .to_string();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self { child, url, client }
    }

    /// Stops the server with SIGTERM and waits (bounded) until it exits.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + EXIT_DEADLINE;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "presenced did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn readyz(&self) -> Reply {
        let r = self
            .client
            .get(format!("{}/_presenced/readyz", self.url))
            .send()
            .await
            .unwrap();
        reply(r).await
    }

    /// `setPresence` Busy/InACall for an hour, as the application.
    async fn set_busy(&self, token: &str, user: Uuid) -> Reply {
        let r = self
            .client
            .post(format!(
                "{}/v1.0/users/{user}/presence/setPresence",
                self.url
            ))
            .bearer_auth(token)
            .json(&json!({"sessionId": APP, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"}))
            .send()
            .await
            .unwrap();
        reply(r).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `presenced serve` on `data` expecting it to refuse to start: its
/// exit status and what it wrote to stderr. Fails the test if it is still
/// running after [`EXIT_DEADLINE`] (then it is killed).
fn serve_expecting_exit(data: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("PRESENCED_JWT_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn presenced");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + EXIT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "presenced started on {} instead of refusing",
                data.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

/// An application token for `tenant` that may write and read anyone's
/// presence, signed with the secret `serve` created in `data`.
fn app_token(data: &Path, tenant: Uuid) -> String {
    let out = Command::new(BIN)
        .args(["token", "--data-dir"])
        .arg(data)
        .args(["--tenant", &tenant.to_string(), "--app", APP])
        .args(["--roles", "Presence.ReadWrite.All Presence.Read.All"])
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

fn database(data: &Path) -> PathBuf {
    data.join("presenced.sqlite3")
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path());

    let (status, stderr) = serve_expecting_exit(dir.path());

    assert!(!status.success(), "{status:?}");
    assert!(
        stderr.contains(&format!(
            "another presenced is using {}; stop it first",
            dir.path().display()
        )),
        "{stderr}"
    );
    assert_eq!(first.readyz().await.ok_json()["status"], "ready");
    first.stop();
    // Stopped, the dir is free again.
    let again = Server::start(dir.path());
    assert_eq!(again.readyz().await.ok_json()["status"], "ready");
}

#[tokio::test]
async fn a_damaged_database_refuses_to_start_and_says_to_restore_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = app_token(dir.path(), Uuid::new_v4());
    let writes = (0..400).map(|_| server.set_busy(&token, Uuid::new_v4()));
    for r in futures_util::future::join_all(writes).await {
        r.ok_empty();
    }
    server.stop();
    // Everything into the main file, so the damage is not masked by newer
    // page copies in the WAL.
    rusqlite::Connection::open(database(dir.path()))
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    damage_middle_pages(&database(dir.path()));

    let (status, stderr) = serve_expecting_exit(dir.path());

    assert!(!status.success(), "{status:?}");
    let file = database(dir.path()).display().to_string();
    assert!(
        stderr.contains(&format!("{file} is damaged (quick_check: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "presenced will not start on it. Restore the file from a backup, or move it away"
        ),
        "{stderr}"
    );
    // The advice works: moved away, the server starts on an empty store.
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{file}{suffix}"));
        if from.exists() {
            std::fs::rename(&from, format!("{file}.damaged{suffix}")).unwrap();
        }
    }
    let server = Server::start(dir.path());
    assert_eq!(server.readyz().await.ok_json()["status"], "ready");
}

#[tokio::test]
async fn an_undecodable_row_reads_as_presence_unknown_in_a_bulk_read_until_a_write_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = app_token(dir.path(), Uuid::new_v4());
    let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        server.set_busy(&token, *user).await.ok_empty();
    }
    server.stop();
    rusqlite::Connection::open(database(dir.path()))
        .unwrap()
        .execute(
            "UPDATE users SET facts = x'00ff00' WHERE user = ?1",
            [users[1].as_bytes()],
        )
        .unwrap();
    let server = Server::start(dir.path());

    let read = || async {
        let r = server
            .client
            .post(format!(
                "{}/v1.0/communications/getPresencesByUserId",
                server.url
            ))
            .bearer_auth(&token)
            .json(&json!({ "ids": users }))
            .send()
            .await
            .unwrap();
        let r = reply(r).await;
        r.ok_json()["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["availability"].as_str().unwrap().to_string(),
                    v["activity"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let pair = |av: &str, ac: &str| (av.to_string(), ac.to_string());

    assert_eq!(
        read().await,
        [
            pair("Busy", "InACall"),
            pair("PresenceUnknown", "PresenceUnknown"),
            pair("Busy", "InACall"),
        ]
    );
    server.set_busy(&token, users[1]).await.ok_empty();
    assert_eq!(read().await, vec![pair("Busy", "InACall"); 3]);
}

/// Overwrites four pages in the middle of a database file with noise.
fn damage_middle_pages(file: &Path) {
    use std::io::{Seek, SeekFrom};
    let pages = std::fs::metadata(file).unwrap().len() / 4096;
    assert!(
        pages >= 16,
        "{pages} pages is too small a database to damage"
    );
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start((pages / 2 - 2) * 4096)).unwrap();
    let mut x: u32 = 0x9E37_79B9;
    let noise: Vec<u8> = (0..4 * 4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    f.write_all(&noise).unwrap();
    f.sync_all().unwrap();
}

/// A small tmpfs mounted on a temp dir (root only), unmounted when dropped,
/// also when the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (e.g. `4m`); `None`, saying why, when this
    /// process may not mount.
    fn mount(size: &str) -> Option<Self> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("presenced-test")
            .arg(dir.path())
            .stderr(Stdio::null())
            .status();
        match mounted {
            Ok(status) if status.success() => Some(Self { dir }),
            other => {
                eprintln!("skipped: cannot mount a tmpfs ({other:?})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy: detach it now, the kernel frees it when unused.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Writes zeros to `file` until the file system has no room left.
fn fill(file: &Path) {
    let mut f = std::fs::File::create(file).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

#[tokio::test]
async fn readyz_is_503_while_writes_fail_on_a_full_disk_and_ready_once_there_is_room() {
    let Some(disk) = Tmpfs::mount("4m") else {
        return;
    };
    // Declared after the mount: dropped (killed) before it is unmounted.
    let data = disk.path().join("data");
    let server = Server::start(&data);
    let token = app_token(&data, Uuid::new_v4());
    server.set_busy(&token, Uuid::new_v4()).await.ok_empty();
    assert_eq!(server.readyz().await.ok_json()["status"], "ready");
    let filler = disk.path().join("filler");
    fill(&filler);

    let failed = server.set_busy(&token, Uuid::new_v4()).await;

    failed.error(500, "generalException");
    let r = server.readyz().await;
    assert_eq!(
        r.error(503, "serviceNotAvailable"),
        "The store cannot serve requests."
    );
    assert_eq!(
        server.readyz().await.status,
        503,
        "still full: the probe write fails too"
    );

    std::fs::remove_file(&filler).unwrap();

    assert_eq!(
        server.readyz().await.ok_json()["status"],
        "ready",
        "the probe write succeeds once there is room"
    );
    server.set_busy(&token, Uuid::new_v4()).await.ok_empty();
    drop(server);
}
