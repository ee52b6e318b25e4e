//! Data integrity with the real binary: one server per data dir, a damaged
//! database refuses to start and says what to do, and readiness follows
//! whether writes succeed (a full disk, a file system gone read-only).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::helpers::Reply;
use crate::process::{mint_app, Proc, BIN};

const APP: &str = "app-integrity";

/// How long a server that should refuse to start may take to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// `presenced serve` on `data`.
fn start(data: &Path) -> Proc {
    Proc::start(&["--data-dir", data.to_str().unwrap()])
}

/// `GET /_presenced/readyz` (no token needed; one is sent anyway).
async fn readyz(server: &Proc) -> Reply {
    server
        .send(reqwest::Method::GET, "/_presenced/readyz", "", None)
        .await
}

/// `setPresence` Busy/InACall for an hour, as the application.
async fn set_busy(server: &Proc, token: &str, user: Uuid) -> Reply {
    let body = json!({"sessionId": APP, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"});
    server
        .send(
            reqwest::Method::POST,
            &format!("/v1.0/users/{user}/presence/setPresence"),
            token,
            Some(body),
        )
        .await
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
    mint_app(
        data,
        tenant,
        APP,
        "Presence.ReadWrite.All Presence.Read.All",
    )
}

fn database(data: &Path) -> PathBuf {
    data.join("presenced.sqlite3")
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path());

    let (status, stderr) = serve_expecting_exit(dir.path());

    assert!(!status.success(), "{status:?}");
    assert!(
        stderr.contains(&format!(
            "another presenced is using {}; stop it first",
            dir.path().display()
        )),
        "{stderr}"
    );
    assert_eq!(readyz(&first).await.ok_json()["status"], "ready");
    first.sigterm_within(EXIT_DEADLINE);
    // Stopped, the dir is free again.
    let again = start(dir.path());
    assert_eq!(readyz(&again).await.ok_json()["status"], "ready");
}

#[tokio::test]
async fn a_damaged_database_refuses_to_start_and_says_to_restore_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = app_token(dir.path(), Uuid::new_v4());
    let writes = (0..400).map(|_| set_busy(&server, &token, Uuid::new_v4()));
    for r in futures_util::future::join_all(writes).await {
        r.ok_empty();
    }
    server.sigterm_within(EXIT_DEADLINE);
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
    let server = start(dir.path());
    assert_eq!(readyz(&server).await.ok_json()["status"], "ready");
}

#[tokio::test]
async fn an_undecodable_row_reads_as_presence_unknown_in_a_bulk_read_until_a_write_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = app_token(dir.path(), Uuid::new_v4());
    let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        set_busy(&server, &token, *user).await.ok_empty();
    }
    server.sigterm_within(EXIT_DEADLINE);
    rusqlite::Connection::open(database(dir.path()))
        .unwrap()
        .execute(
            "UPDATE users SET facts = x'00ff00' WHERE user = ?1",
            [users[1].as_bytes()],
        )
        .unwrap();
    let server = start(dir.path());

    let read = || async {
        let r = server
            .send(
                reqwest::Method::POST,
                "/v1.0/communications/getPresencesByUserId",
                &token,
                Some(json!({ "ids": users })),
            )
            .await;
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
    set_busy(&server, &token, users[1]).await.ok_empty();
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
    let server = start(&data);
    let token = app_token(&data, Uuid::new_v4());
    set_busy(&server, &token, Uuid::new_v4()).await.ok_empty();
    assert_eq!(readyz(&server).await.ok_json()["status"], "ready");
    let filler = disk.path().join("filler");
    fill(&filler);

    let failed = set_busy(&server, &token, Uuid::new_v4()).await;

    failed.error(503, "serviceNotAvailable");
    assert_eq!(failed.headers["retry-after"], "5");
    let r = readyz(&server).await;
    assert_eq!(
        r.error(503, "serviceNotAvailable"),
        "The store cannot serve requests."
    );
    assert_eq!(
        readyz(&server).await.status,
        503,
        "still full: the probe write fails too"
    );

    std::fs::remove_file(&filler).unwrap();

    assert_eq!(
        readyz(&server).await.ok_json()["status"],
        "ready",
        "the probe write succeeds once there is room"
    );
    set_busy(&server, &token, Uuid::new_v4()).await.ok_empty();
    drop(server);
}

/// An ext4 file system in a loop-mounted image file (root only), mounted
/// with `errors=remount-ro` so that the kernel's test hook
/// (`/sys/fs/ext4/<dev>/trigger_fs_error`) turns it read-only under a running
/// server, the way a failing disk does. Unmounted when dropped.
struct Ext4Image {
    dir: tempfile::TempDir,
    device: String,
}

impl Ext4Image {
    /// Creates and mounts a 32 MiB image; `None`, saying why, when this
    /// process cannot (not root, no loop devices, no mkfs.ext4).
    fn mount() -> Option<Self> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("skipped: loop-mounting an ext4 image needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .stderr(Stdio::null())
            .status();
        if !made.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("skipped: cannot run mkfs.ext4 ({made:?})");
            return None;
        }
        let this = Self {
            dir,
            device: String::new(),
        };
        this.mount_image()
    }

    fn mount_image(mut self) -> Option<Self> {
        let mounted = Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(self.dir.path().join("disk.img"))
            .arg(self.path())
            .stderr(Stdio::null())
            .status();
        if !mounted.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("skipped: cannot loop-mount an ext4 image ({mounted:?})");
            return None;
        }
        let source = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(self.path())
            .output()
            .ok()?;
        let source = String::from_utf8_lossy(&source.stdout).trim().to_string();
        self.device = source.rsplit('/').next().unwrap_or_default().to_string();
        Some(self)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Makes the file system read-only now, as an I/O error would; false
    /// when the kernel has no such hook.
    fn fail(&self) -> bool {
        std::fs::write(
            format!("/sys/fs/ext4/{}/trigger_fs_error", self.device),
            "1",
        )
        .is_ok()
    }

    /// Unmounts and mounts the image again (read-write).
    fn remount(self) -> Option<Self> {
        let _ = Command::new("umount").arg(self.path()).status();
        self.mount_image()
    }
}

impl Drop for Ext4Image {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// `GET` a user's presence as the application.
async fn presence_of(server: &Proc, token: &str, user: Uuid) -> Reply {
    server
        .send(
            reqwest::Method::GET,
            &format!("/v1.0/users/{user}/presence"),
            token,
            None,
        )
        .await
}

#[tokio::test]
async fn a_file_system_gone_read_only_makes_readyz_503_keeps_reads_and_loses_no_acknowledged_write()
{
    let Some(disk) = Ext4Image::mount() else {
        return;
    };
    let data = disk.path().join("data");
    let server = start(&data);
    let tenant = Uuid::new_v4();
    let token = app_token(&data, tenant);
    let user = Uuid::new_v4();
    set_busy(&server, &token, user).await.ok_empty();
    assert_eq!(readyz(&server).await.ok_json()["status"], "ready");
    if !disk.fail() {
        eprintln!("skipped: this kernel has no ext4 trigger_fs_error hook");
        return;
    }

    set_busy(&server, &token, Uuid::new_v4())
        .await
        .error(503, "serviceNotAvailable");
    readyz(&server).await.error(503, "serviceNotAvailable");
    let read = presence_of(&server, &token, user).await;
    assert_eq!(
        read.ok_json()["availability"],
        "Busy",
        "reads still answer while writes fail"
    );
    drop(server);

    let disk = disk.remount().expect("the image mounts again");
    let data = disk.path().join("data");
    let server = start(&data);
    assert_eq!(readyz(&server).await.ok_json()["status"], "ready");
    let read = presence_of(&server, &token, user).await;
    assert_eq!(
        read.ok_json()["activity"],
        "InACall",
        "the acknowledged write survived"
    );
    set_busy(&server, &token, Uuid::new_v4()).await.ok_empty();
    drop(server);
}
