//! `presenced exec [SERVE FLAGS] -- COMMAND [ARGS…]`, as the Firebase
//! emulators' `emulators:exec`: an in-memory emulator (manual clock) on a
//! free loopback port for the length of one command.
//!
//! The command finds the emulator through its environment:
//! `PRESENCED_URL` (the base URL), `PRESENCED_TENANT` (a fresh tenant id),
//! `PRESENCED_ADMIN_TOKEN` (an application token of that tenant with
//! `Presenced.Admin`, `Presence.ReadWrite.All` and `Presence.Read.All`,
//! valid for a day) and `PRESENCED_JWT_SECRET_FILE` (the HS256 secret, to
//! mint its own tokens). Unless `--jwt-secret-file` is given, the secret
//! is a fresh one in a private temporary directory, removed when the
//! command ends. presenced exits with the command's exit code (128 + the
//! signal's number when a signal ended it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use uuid::Uuid;

use super::{file_config, secret_env_set, serve_flags, ExecArgs};
use crate::app::{load_secret, shutdown_signal, App};
use crate::auth::{mint_hs256, MintClaims};
use crate::clock::wall_now;
use crate::config::Config;

/// The application id of `PRESENCED_ADMIN_TOKEN`.
const EXEC_APP_ID: &str = "6f3bb3a0-7c1e-4c55-9d0e-2a8f5e1b7c11";

/// The roles of `PRESENCED_ADMIN_TOKEN`.
const ADMIN_ROLES: [&str; 3] = [
    "Presenced.Admin",
    "Presence.ReadWrite.All",
    "Presence.Read.All",
];

/// A private temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        use rand::RngCore;
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("presenced-exec-{name}"));
        crate::store::sqlite::create_private_dir(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot create a temporary directory {}: {e}",
                path.display()
            )
        })?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("presenced exec: could not remove {}: {e}", self.0.display());
        }
    }
}

/// Writes a fresh secret (mode 0600) into `dir`.
fn write_secret(dir: &Path) -> anyhow::Result<PathBuf> {
    use rand::RngCore;
    use std::io::Write;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("jwt-secret");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    writeln!(file, "{secret}")?;
    Ok(path)
}

/// The exit code that reports how the command ended.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1));
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return ExitCode::from(u8::try_from(128 + signal).unwrap_or(1));
    }
    ExitCode::FAILURE
}

/// Runs `presenced exec`.
pub(super) async fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let file = file_config(&args.serve.keys)?;
    let given_secret = args.serve.keys.jwt_secret_file.is_some();
    let mut flags = serve_flags(args.serve);
    flags.in_memory = Some(true);
    flags.manual_clock = Some(true);
    flags.listen = flags.listen.or_else(|| Some("127.0.0.1:0".into()));
    // The temporary secret lives as long as this function (removed on
    // every way out, the command's failure included).
    let temp = if given_secret {
        None
    } else {
        let dir = TempDir::new()?;
        flags.jwt_secret_file = Some(write_secret(&dir.0)?);
        Some(dir)
    };
    let config = Config::merge(flags, file, secret_env_set())?;
    let secret_file = match &config.secret {
        crate::config::SecretSource::File(path) => path.clone(),
        _ => anyhow::bail!("presenced exec needs an HS256 secret file to hand to the command"),
    };
    let Some((secret, _)) = load_secret(&config.secret, false)? else {
        anyhow::bail!("no HS256 secret is configured");
    };
    let store = App::open_store(&config).await?;
    let clock = App::clock_for(&config, store.as_ref()).await?;
    let app = App::build(&config, store, clock).await?;
    let listener = config.listen.bind("--listen").await?;
    let url = format!("{}://{}", app.scheme(), listener.local_addr()?);
    let tenant = Uuid::new_v4();
    let roles: Vec<String> = ADMIN_ROLES.iter().map(|r| r.to_string()).collect();
    let claims = MintClaims::new(
        tenant,
        None,
        EXEC_APP_ID,
        None,
        Some(&roles),
        wall_now(),
        chrono::TimeDelta::days(1),
    );
    let token = mint_hs256(&secret, &claims)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    eprintln!("presenced exec: emulator at {url} (tenant {tenant})");
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("give a command after --"))?;
    let mut child = std::process::Command::new(program)
        .args(rest)
        .env("PRESENCED_URL", &url)
        .env("PRESENCED_TENANT", tenant.to_string())
        .env("PRESENCED_ADMIN_TOKEN", &token)
        .env("PRESENCED_JWT_SECRET_FILE", &secret_file)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
    let pid = child.id();
    let mut waiting = tokio::task::spawn_blocking(move || child.wait());
    let signal = shutdown_signal();
    let status = tokio::select! {
        status = &mut waiting => status,
        () = signal => {
            // Asked to stop: stop the command too, then wait for it.
            #[cfg(unix)]
            if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            waiting.await
        }
    };
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("presenced exec: the emulator stopped with an error: {e:#}"),
        Err(e) => eprintln!("presenced exec: the emulator failed: {e}"),
    }
    drop(temp);
    let status = status
        .map_err(|e| anyhow::anyhow!("lost the command: {e}"))?
        .map_err(|e| anyhow::anyhow!("cannot wait for {program}: {e}"))?;
    Ok(exit_code(status))
}
