//! Wiring: `App::build(config, store, clock)` builds the layers and owns
//! the background work until shutdown; `serve` runs the HTTP server.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthConfig, TokenVerifier};
use crate::clock::{wall_now, Clock, ManualClock, SystemClock};
use crate::config::{Config, SecretSource, StoreSpec, SECRET_ENV};
use crate::http::direct::Direct;
use crate::http::{router, AppState};
use crate::notify::{Bus, Notifier};
use crate::service::PresenceService;
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisStore, Target};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// The namespace of every key presenced keeps in Redis.
const REDIS_NAMESPACE: &str = "presenced";

/// The shortest HS256 secret accepted, in bytes.
const MIN_SECRET_BYTES: usize = 16;

/// Reads the HS256 secret a config names; `create` generates the data-dir
/// secret (mode 0600) when it does not exist yet. Returns the secret and
/// whether it was just created.
pub fn load_secret(source: &SecretSource, create: bool) -> anyhow::Result<Option<(Vec<u8>, bool)>> {
    match source {
        SecretSource::None => Ok(None),
        SecretSource::Env => {
            let value = std::env::var(SECRET_ENV).unwrap_or_default();
            let secret = value.trim().as_bytes().to_vec();
            if secret.len() < MIN_SECRET_BYTES {
                anyhow::bail!("{SECRET_ENV} is shorter than {MIN_SECRET_BYTES} bytes");
            }
            Ok(Some((secret, false)))
        }
        SecretSource::File(path) => Ok(Some((read_secret(path)?, false))),
        SecretSource::Generated(path) => {
            if path.exists() {
                return Ok(Some((read_secret(path)?, false)));
            }
            if !create {
                anyhow::bail!(
                    "no signing secret at {}; start `presenced serve` once to create it, or pass --jwt-secret-file",
                    path.display()
                );
            }
            Ok(Some((create_secret(path)?, true)))
        }
    }
}

fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read secret file {}: {e}", path.display()))?;
    let secret = text.trim().as_bytes().to_vec();
    if secret.len() < MIN_SECRET_BYTES {
        anyhow::bail!(
            "the secret in {} is shorter than {MIN_SECRET_BYTES} bytes",
            path.display()
        );
    }
    Ok(secret)
}

fn create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    use rand::RngCore;
    if let Some(dir) = path.parent() {
        crate::store::sqlite::create_private_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create secret file {}: {e}", path.display()))?;
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    Ok(secret.into_bytes())
}

/// Replaces everything with the state document in `path` (`--seed`).
async fn seed(state: &AppState, path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read --seed {}: {e}", path.display()))?;
    let Some(clock) = state.clock.manual().cloned() else {
        anyhow::bail!("--seed needs --manual-clock");
    };
    let doc = crate::http::state::StateDocument::from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("--seed {}: {e}", path.display()))?;
    let checked = doc
        .check(clock.now())
        .map_err(|e| anyhow::anyhow!("--seed {}: {e}", path.display()))?;
    crate::http::state::import(state, &clock, checked)
        .await
        .map_err(|e| anyhow::anyhow!("--seed {}: {}", path.display(), e.message))?;
    Ok(())
}

/// How long a graceful shutdown waits for open requests.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long shutdown waits for background work (webhook POSTs in flight
/// are bounded by their own timeouts; anything unsent stays queued).
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// The running server's parts: handler state, the notifier and the
/// background tasks it owns until shutdown.
pub struct App {
    state: AppState,
    policy: crate::http::serve::ConnectionPolicy,
    tls: Option<crate::http::tls::Tls>,
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    /// Opens the store a config names (SQLite in its data dir by default).
    /// A Redis store starts its outbox sweeper and waits for Redis to
    /// answer (logging while it does not).
    pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
        let redis = |target| async move {
            let store = Arc::new(
                RedisStore::open(&target, REDIS_NAMESPACE)
                    .await?
                    .with_delivery_lease(config.redis_delivery_lease),
            );
            store.start_sweeper();
            // Starting before Redis (a fresh deployment, a Redis restart)
            // is normal: wait for it rather than exit.
            let mut waited = 0u32;
            while let Err(e) = store.ping().await {
                if waited % 10 == 0 {
                    tracing::warn!(error = %e, "waiting for redis");
                }
                waited = waited.wrapping_add(1);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Ok::<_, anyhow::Error>(store as Arc<dyn Store>)
        };
        Ok(match &config.store {
            StoreSpec::Sqlite => Arc::new(SqliteStore::open(&config.data_dir)?),
            StoreSpec::Memory => Arc::new(MemoryStore::new()),
            StoreSpec::Redis(url) => redis(Target::Server(url.clone())).await?,
            StoreSpec::RedisCluster(seeds) => redis(Target::Cluster(seeds.clone())).await?,
        })
    }

    /// The presence clock a config asks for: the system clock, or in
    /// emulator mode a manual clock that continues from the latest time the
    /// store has seen (it never moves backwards across restarts).
    pub async fn clock_for(config: &Config, store: &dyn Store) -> anyhow::Result<Arc<dyn Clock>> {
        if !config.manual_clock {
            return Ok(Arc::new(SystemClock));
        }
        let wanted = config.start_time.unwrap_or_else(wall_now);
        let start = match store.emulator_time().await? {
            Some(saved) if saved > wanted => {
                tracing::warn!(%saved, %wanted, "the emulator clock already reached a later time in this data dir; continuing from it (it never moves backwards)");
                saved
            }
            _ => wanted,
        };
        store.save_emulator_time(start).await?;
        Ok(Arc::new(ManualClock::new(start)))
    }

    /// Wires the layers over `store` and `clock` and starts the background
    /// work (scheduler, deliveries). The binary and the integration tests
    /// both build the server this way.
    pub async fn build(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let secret = load_secret(&config.secret, true)?;
        if let (SecretSource::Generated(path), Some((_, true))) = (&config.secret, &secret) {
            eprintln!(
                "presenced: no signing key configured; created a development secret at {}. Mint a token with: presenced token --data-dir {} --tenant <tenant-guid> --user <user-guid> --app <app-id> --scopes \"Presence.ReadWrite Presence.Read.All\"",
                path.display(),
                config.data_dir.display()
            );
        }
        let verifier = TokenVerifier::new(AuthConfig {
            hs256_secret: secret.map(|(s, _)| s),
            jwks_file: config.jwks_file.clone(),
            jwks_url: config.jwks_url.clone(),
            audiences: config.audiences.clone(),
            issuer: config.issuer.clone(),
            ..AuthConfig::default()
        })
        .await?;
        // Installs the process's metrics recorder (once).
        crate::metrics::handle();
        let bus = Arc::new(Bus::default());
        bus.seen_event(store.event_bounds().await?.last);
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let notifier = Arc::new(
            Notifier::new(
                store.clone(),
                clock.clone(),
                bus.clone(),
                config.notify.clone(),
                tasks.clone(),
                cancel.clone(),
            )
            .await?,
        );
        notifier.start();
        // Emulator mode is a manual clock, as the admin endpoints see it.
        let emulated = clock.manual().is_some();
        let state = AppState::new(crate::http::Shared {
            store: store.clone(),
            service: PresenceService::new(store.clone(), bus.clone()),
            notifier: notifier.clone(),
            bus,
            clock,
            verifier: Arc::new(verifier),
            request_timeout: crate::http::DEFAULT_REQUEST_TIMEOUT,
            clock_moves: Default::default(),
            stopping: cancel.child_token(),
            throttle: config
                .rate_limit
                .map(|limit| Arc::new(crate::http::throttle::Throttle::new(limit))),
            emulator: emulated.then(|| {
                Arc::new(crate::http::emulator::EmulatorTools {
                    faults: crate::http::faults::Faults::new(config.fault_seed),
                    journal: crate::http::journal::Journal::new(config.journal_size),
                })
            }),
            metrics_here: config.metrics_listen.is_none(),
            origin: Arc::new(crate::http::extract::Origin {
                public: config.public_url.as_deref().map(Arc::from),
                trust_forwarded: config.trust_forwarded_headers,
                bound: std::sync::OnceLock::new(),
            }),
        });
        if let Some(path) = &config.seed {
            seed(&state, path).await?;
        }
        let tls = config
            .tls
            .as_ref()
            .map(|source| crate::http::tls::load(source, &config.data_dir, &config.listen))
            .transpose()?;
        Ok(Self {
            tls,
            policy: config.connections,
            state,
            store,
            notifier,
            tasks,
            cancel,
        })
    }

    /// The handler state (the router is `http::router(app.state().clone())`).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// `https` when the listener speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The self-signed certificate clients should trust, when presenced
    /// made one (`--tls-self-signed`).
    pub fn self_signed_certificate(&self) -> Option<&Path> {
        self.tls.as_ref().and_then(|t| t.self_signed.as_deref())
    }

    /// The notifier: subscriptions, the scheduler pass, deliveries.
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Serves on `listener` until `shutdown` completes, then finishes
    /// in-flight requests, stops the background work and closes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            let _ = self
                .state
                .origin
                .bound
                .set(Arc::from(format!("{}://{addr}", self.scheme())));
        }
        let app = router(self.state.clone());
        let streams = self.state.stopping.clone();
        let signal = async move {
            shutdown.await;
            // Long-lived event streams end so open connections can drain.
            streams.cancel();
        };
        let tls = self.tls.as_ref().map(|t| t.config.clone());
        let direct = Direct::new(self.state.clone());
        crate::http::serve::serve(
            listener,
            app,
            direct,
            tls,
            self.policy,
            signal,
            SHUTDOWN_GRACE,
        )
        .await;
        self.shutdown().await;
        Ok(())
    }

    /// Stops taking background work, waits (bounded) for what is in
    /// flight, and closes the store. Queued deliveries are durable: what
    /// was not sent is sent after the next start.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(DRAIN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background work still running after the drain grace period");
        }
        self.store.close();
    }
}

/// A future that completes on SIGINT or SIGTERM. The handlers are installed
/// when this is called (before the server says it is listening), so a signal
/// that arrives at any later moment is never lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: &mut Option<tokio::signal::unix::Signal>| {
                let s = s.take();
                async move {
                    match s {
                        Some(mut s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                _ = wait(&mut term) => {},
                _ = wait(&mut int) => {},
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
