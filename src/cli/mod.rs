//! Command-line entry points: `serve`, `token`, `exec`, `backup` and the
//! client commands (`get`, `set`, `clear`, `status-message`, `watch`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::app::{load_secret, shutdown_signal, App};
use crate::auth::{mint_hs256, MintClaims};
use crate::clock::wall_now;
use crate::config::{Config, FileConfig, SecretSource, SECRET_ENV};
use crate::domain::parse_duration;

mod backup;
mod client;
mod exec;
mod sse;

pub use backup::BackupArgs;
pub use client::{ClearArgs, ClientArgs, GetArgs, SetArgs, StatusMessageArgs, WatchArgs};

/// presenced: a self-hostable presence server that speaks the Microsoft Graph presence API.
#[derive(Debug, Parser)]
#[command(name = "presenced", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How log lines (on stderr) are written: `text` or `json` (one object a line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The least severe log lines written: off, error, warn, info, debug or
    /// trace [default: info; warn under `exec`, whose server shares the
    /// terminal with the command]. RUST_LOG, when set, wins (and can filter
    /// by target).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<tracing_subscriber::filter::LevelFilter>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

impl Cli {
    /// The log filter: RUST_LOG when set, else presenced's own lines at
    /// `--log-level`.
    pub fn log_filter(&self) -> tracing_subscriber::EnvFilter {
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            let level = self.log_level.unwrap_or(match self.command {
                Command::Exec(_) => tracing_subscriber::filter::LevelFilter::WARN,
                _ => tracing_subscriber::filter::LevelFilter::INFO,
            });
            tracing_subscriber::EnvFilter::new(format!("presenced={level}"))
        })
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Print a signed development token (HS256, with the server's secret).
    Token(Box<TokenArgs>),
    /// Run a command against a throwaway in-memory emulator: presenced
    /// starts (manual clock, a free loopback port, a temporary secret),
    /// runs COMMAND with PRESENCED_URL, PRESENCED_ADMIN_TOKEN,
    /// PRESENCED_TENANT and PRESENCED_JWT_SECRET_FILE set, stops when it
    /// ends and exits with its exit code.
    Exec(Box<ExecArgs>),
    /// Print users' presence (one GET, or getPresencesByUserId for several).
    Get(Box<GetArgs>),
    /// Set a session's presence for a user (setPresence).
    Set(Box<SetArgs>),
    /// End a session's presence for a user (clearPresence).
    Clear(Box<ClearArgs>),
    /// Set or clear a user's status message (setStatusMessage).
    StatusMessage(Box<StatusMessageArgs>),
    /// Print a line per presence change from the server's event stream until Ctrl-C.
    Watch(Box<WatchArgs>),
    /// Copy the SQLite database of a data dir to a file, safely while the server runs.
    Backup(Box<BackupArgs>),
}

/// `presenced exec [SERVE FLAGS] -- COMMAND [ARGS…]`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Server flags, as for `serve` (the store is always memory and the
    /// clock manual; --listen defaults to 127.0.0.1:0).
    #[command(flatten)]
    pub serve: ServeArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Options shared by `serve` and `token`: where the config, data and keys are.
#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// TOML config file; its keys are spelled like these flags (data-dir = "…").
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the database and the generated secret [default: ./presenced-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// File holding the HS256 secret (or set PRESENCED_JWT_SECRET).
    #[arg(long, value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,
}

/// `presenced serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config, data dir and secret.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where presence is kept: `sqlite` (durable, in --data-dir), `memory`
    /// (lost at exit), `redis://HOST:PORT[/DB]`, `rediss://…` (TLS) or
    /// `redis-cluster://HOST:PORT[,HOST:PORT...]` (shared by several
    /// nodes) [default: sqlite].
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// Keep everything in memory and write nothing to disk (the same as
    /// `--store memory`); needs a key it need not create
    /// (--jwt-secret-file, PRESENCED_JWT_SECRET or JWKS).
    #[arg(long)]
    pub in_memory: bool,
    /// JWKS file with RS256/ES256 verification keys.
    #[arg(long, value_name = "FILE")]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL with RS256/ES256 verification keys (fetched at start, refetched for unknown key ids).
    #[arg(long, value_name = "URL")]
    pub jwks_url: Option<String>,
    /// Extra accepted token audience (repeatable); Graph's own are always accepted.
    #[arg(long, value_name = "AUD")]
    pub audience: Vec<String>,
    /// Required token issuer (`{tenantid}` is replaced by the token's tid).
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// Emulator mode: the presence clock stands still until moved with POST /_presenced/clock.
    #[arg(long)]
    pub manual_clock: bool,
    /// Start time of the manual clock (RFC 3339) [default: now].
    #[arg(long, value_name = "INSTANT")]
    pub start_time: Option<String>,
    /// A state document (as `GET /_presenced/state` answers) that replaces
    /// everything at start; needs --manual-clock.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// How many Graph requests the emulator's journal
    /// (GET /_presenced/requests) keeps [default: 1000].
    #[arg(long, value_name = "N")]
    pub journal_size: Option<usize>,
    /// Seeds the random draws of fault rules with a `probability`, so a
    /// test sees the same faults every run [default: random].
    #[arg(long, value_name = "N")]
    pub fault_seed: Option<u64>,
    /// Subscription rules: `graph` (delegated tokens only, one per user and
    /// app, at most 60 minutes) or `none` (application tokens too, any
    /// number, up to 7 days) [default: graph].
    #[arg(long, value_name = "LIMITS")]
    pub subscription_limits: Option<String>,
    /// An internal network webhooks may reach, e.g. 10.0.0.0/8 (repeatable);
    /// loopback, private and link-local destinations are refused otherwise.
    #[arg(long, value_name = "CIDR")]
    pub webhook_allow_cidr: Vec<String>,
    /// How long the event log behind /_presenced/events keeps events, ISO
    /// 8601 [default: PT24H, the minimum].
    #[arg(long, value_name = "DURATION")]
    pub event_retention: Option<String>,
    /// The URL clients reach this server at, e.g. https://presence.example.com
    /// (the base of `@odata.context`) [default: the listen address].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Take the base of `@odata.context` from `X-Forwarded-Proto`,
    /// `X-Forwarded-Host` and `Host` (only behind a proxy you trust).
    #[arg(long)]
    pub trust_forwarded_headers: bool,
    /// How long a client may take to send a request head once it starts
    /// (and a new connection to start one), ISO 8601 [default: PT10S].
    #[arg(long, value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// How long a connection that has served a request may idle, ISO 8601
    /// [default: PT60S].
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// The most connections open at once [default: the open-file limit,
    /// raised to its hard limit, less 128].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Serve over TLS with this PEM certificate chain (with --tls-key);
    /// HTTP/2 and HTTP/1.1 are offered.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve over TLS with a self-signed certificate created once in the
    /// data dir (for development; its path is printed at start).
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Graph's throttling: at most N requests per WINDOW per application per
    /// tenant, e.g. 1500/30s (Graph's figure); beyond it 429 with
    /// Retry-After [default: off].
    #[arg(long, value_name = "N/WINDOW")]
    pub rate_limit: Option<String>,
    /// With a Redis store: how long a node holds a webhook delivery it took
    /// before another node may take it (a node that dies holding one loses
    /// it to another after this), ISO 8601, at most PT1H [default: PT60S].
    #[arg(long, value_name = "DURATION")]
    pub redis_delivery_lease: Option<String>,
    /// Serve GET /_presenced/metrics (Prometheus, no token) on this address
    /// instead of the main listener, e.g. 127.0.0.1:9090.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// `presenced token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Config, data dir and secret (the same as the server's).
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Tenant id (GUID).
    #[arg(long)]
    pub tenant: Uuid,
    /// User object id (GUID); makes a delegated token (needs --scopes).
    #[arg(long)]
    pub user: Option<Uuid>,
    /// Application (client) id; also the sessionId the app must use.
    #[arg(long)]
    pub app: String,
    /// Delegated scopes, space separated, e.g. "Presence.ReadWrite Presence.Read.All".
    #[arg(long, conflicts_with = "roles")]
    pub scopes: Option<String>,
    /// Application roles, space separated, e.g. "Presence.ReadWrite.All Presenced.Admin".
    #[arg(long)]
    pub roles: Option<String>,
    /// Lifetime, ISO 8601.
    #[arg(long, default_value = "PT1H")]
    pub ttl: String,
    /// Audience claim.
    #[arg(long, default_value = "https://graph.microsoft.com")]
    pub audience: String,
    /// Issuer claim [default: the server's configured issuer, else `https://sts.windows.net/{tenant}/`].
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
}

fn file_config(keys: &KeyArgs) -> anyhow::Result<FileConfig> {
    Ok(match &keys.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    })
}

fn secret_env_set() -> bool {
    std::env::var_os(SECRET_ENV).is_some_and(|v| !v.is_empty())
}

/// Runs a parsed command line; the process's exit code on success (`exec`
/// passes its command's through).
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(*args).await.map(|()| std::process::ExitCode::SUCCESS),
        Command::Token(args) => token(*args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Exec(args) => exec::run(*args).await,
        Command::Get(args) => client::get(*args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Set(args) => client::set(*args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Clear(args) => client::clear(*args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::StatusMessage(args) => client::status_message(*args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Watch(args) => client::watch(*args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Backup(args) => backup::run(*args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
    }
}

/// The flags of `serve` as config values (the command line's layer).
fn serve_flags(args: ServeArgs) -> FileConfig {
    FileConfig {
        listen: args.listen,
        data_dir: args.keys.data_dir,
        store: args.store,
        in_memory: args.in_memory.then_some(true),
        jwt_secret_file: args.keys.jwt_secret_file,
        jwks_file: args.jwks_file,
        jwks_url: args.jwks_url,
        audience: args.audience,
        issuer: args.issuer,
        manual_clock: args.manual_clock.then_some(true),
        start_time: args.start_time,
        seed: args.seed,
        journal_size: args.journal_size,
        fault_seed: args.fault_seed,
        subscription_limits: args.subscription_limits,
        webhook_allow_cidr: args.webhook_allow_cidr,
        event_retention: args.event_retention,
        public_url: args.public_url,
        trust_forwarded_headers: args.trust_forwarded_headers.then_some(true),
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: args.max_connections,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_self_signed: args.tls_self_signed.then_some(true),
        rate_limit: args.rate_limit,
        metrics_listen: args.metrics_listen,
        redis_delivery_lease: args.redis_delivery_lease,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = file_config(&args.keys)?;
    let cli = serve_flags(args);
    let config = Config::merge(cli, file, secret_env_set())?;
    let store = App::open_store(&config).await?;
    let clock = App::clock_for(&config, store.as_ref()).await?;
    let app = App::build(&config, store, clock).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    if let Some(metrics_addr) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot listen on {metrics_addr} (--metrics-listen): {e}")
            })?;
        let bound = metrics.local_addr()?;
        let store = app.state().store.clone();
        tracing::info!(url = %format_args!("http://{bound}/_presenced/metrics"), "metrics");
        // Ends with the process; a scrape needs no graceful shutdown.
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, crate::http::metrics_router(store)).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let shutdown = shutdown_signal();
    tracing::info!(
        url = %format_args!("{}://{addr}", app.scheme()),
        store = ?config.store,
        data_dir = %config.data_dir.display(),
        keys = ?config.secret,
        jwks_file = config.jwks_file.as_ref().map(|p| tracing::field::display(p.display())),
        jwks_url = config.jwks_url.as_deref(),
        issuer = config.issuer.as_deref().unwrap_or("any"),
        audiences = ?crate::auth::DEFAULT_AUDIENCES
            .iter()
            .copied()
            .chain(config.audiences.iter().map(String::as_str))
            .collect::<Vec<_>>(),
        "serving"
    );
    if config.manual_clock {
        tracing::info!(clock = %app.state().clock.now().to_rfc3339(), "emulator mode: the presence clock stands still until moved");
    }
    println!("presenced listening on {}://{addr}", app.scheme());
    if let Some(cert) = app.self_signed_certificate() {
        // For NODE_EXTRA_CA_CERTS, Python's `verify=`, curl's --cacert.
        println!(
            "presenced TLS certificate (self-signed): {}",
            cert.display()
        );
    }
    app.serve(listener, shutdown).await
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let file = file_config(&args.keys)?;
    let cli = FileConfig {
        data_dir: args.keys.data_dir,
        jwt_secret_file: args.keys.jwt_secret_file,
        issuer: args.issuer,
        ..Default::default()
    };
    let config = Config::merge(cli, file, secret_env_set())?;
    if config.secret == SecretSource::None {
        anyhow::bail!("the server uses JWKS keys only; mint tokens with your identity provider");
    }
    let Some((secret, _)) = load_secret(&config.secret, false)? else {
        anyhow::bail!("no HS256 secret is configured");
    };
    match (&args.user, &args.scopes, &args.roles) {
        (Some(_), None, _) => anyhow::bail!(
            "a delegated token (--user) needs --scopes; for an application token leave out --user and give --roles"
        ),
        (None, _, None) => anyhow::bail!(
            "an application token (no --user) needs --roles; for a delegated token give --user and --scopes"
        ),
        _ => {}
    }
    let ttl = parse_duration(&args.ttl)?.0;
    let roles: Option<Vec<String>> = args
        .roles
        .as_deref()
        .map(|r| r.split_whitespace().map(str::to_string).collect());
    let mut claims = MintClaims::new(
        args.tenant,
        args.user,
        &args.app,
        args.scopes.as_deref(),
        roles.as_deref(),
        wall_now(),
        ttl,
    );
    claims.aud = args.audience;
    if let Some(issuer) = &config.issuer {
        // The server requires this issuer; mint tokens it will accept.
        claims.iss = issuer.replace("{tenantid}", &args.tenant.to_string());
    }
    println!("{}", mint_hs256(&secret, &claims)?);
    Ok(())
}
