//! One [`Config`], merged from the command line and an optional TOML file
//! (`--config`), validated once at start-up.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::clock::Instant;
use crate::domain::{parse_duration, AllowedNetworks, SubscriptionLimits};
use crate::http::serve::{
    connection_cap_from_file_limit, ConnectionPolicy, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
};
use crate::http::throttle::RateLimit;
use crate::http::tls::TlsSource;
use crate::listen::ListenAddr;
use crate::notify::NotifySettings;

/// The shortest event-log retention (SPEC §8: at least 24 hours).
pub const MIN_EVENT_RETENTION: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Default listen address: loopback only, a safe default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./presenced-data";
/// The generated development secret's file name inside the data dir.
pub const SECRET_FILE_NAME: &str = "jwt-secret";
/// Environment variable holding an HS256 secret.
pub const SECRET_ENV: &str = "PRESENCED_JWT_SECRET";

/// Settings as they may appear in the TOML file; keys are spelled like the
/// command-line flags (`data-dir`, `jwt-secret-file`, …). Every field is
/// optional; the command line wins over the file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--store` (`sqlite`, `memory`, `redis://…`, `rediss://…` or
    /// `redis-cluster://…`).
    pub store: Option<String>,
    /// `--in-memory` (the same as `store = "memory"`).
    pub in_memory: Option<bool>,
    /// `--jwt-secret-file`.
    pub jwt_secret_file: Option<PathBuf>,
    /// `--jwks-file`.
    pub jwks_file: Option<PathBuf>,
    /// `--jwks-url`.
    pub jwks_url: Option<String>,
    /// `--audience` (a list).
    #[serde(default)]
    pub audience: Vec<String>,
    /// `--issuer`.
    pub issuer: Option<String>,
    /// `--manual-clock`.
    pub manual_clock: Option<bool>,
    /// `--start-time`.
    pub start_time: Option<String>,
    /// `--seed` (a state document to load at start).
    pub seed: Option<PathBuf>,
    /// `--journal-size` (requests the emulator's journal keeps).
    pub journal_size: Option<usize>,
    /// `--fault-seed` (seeds the fault rules' `probability`).
    pub fault_seed: Option<u64>,
    /// `--subscription-limits` (`graph` or `none`).
    pub subscription_limits: Option<String>,
    /// `--webhook-allow-cidr` (a list).
    #[serde(default)]
    pub webhook_allow_cidr: Vec<String>,
    /// `--event-retention` (ISO 8601 duration, at least PT24H).
    pub event_retention: Option<String>,
    /// `--public-url`.
    pub public_url: Option<String>,
    /// `--trust-forwarded-headers`.
    pub trust_forwarded_headers: Option<bool>,
    /// `--header-timeout` (ISO 8601 duration).
    pub header_timeout: Option<String>,
    /// `--idle-timeout` (ISO 8601 duration).
    pub idle_timeout: Option<String>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--tls-cert` (PEM chain).
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key` (PEM key).
    pub tls_key: Option<PathBuf>,
    /// `--tls-self-signed`.
    pub tls_self_signed: Option<bool>,
    /// `--rate-limit` (`N/WINDOW`, e.g. `1500/30s`).
    pub rate_limit: Option<String>,
    /// `--redis-delivery-lease` (ISO 8601 duration).
    pub redis_delivery_lease: Option<String>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<String>,
}

/// A start-up configuration problem, reported before anything is served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read or parsed.
    #[error("cannot use config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl FileConfig {
    /// Reads and parses a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Which backend keeps the presence facts, subscriptions and deliveries.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StoreSpec {
    /// The embedded SQLite database in the data dir (durable; the default).
    #[default]
    Sqlite,
    /// Process memory only: nothing survives a restart.
    Memory,
    /// One Redis server: `redis://HOST:PORT[/DB]` or `rediss://…` (TLS), as
    /// given (it may carry credentials: never shown).
    Redis(String),
    /// Seed nodes of a Redis Cluster, each as `redis://HOST:PORT`.
    RedisCluster(Vec<String>),
}

impl std::fmt::Debug for StoreSpec {
    /// Never shows a URL (it may carry a password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Sqlite => f.write_str("Sqlite"),
            StoreSpec::Memory => f.write_str("Memory"),
            StoreSpec::Redis(_) => f.write_str("Redis(..)"),
            StoreSpec::RedisCluster(seeds) => write!(f, "RedisCluster({} seeds)", seeds.len()),
        }
    }
}

/// What `--store` accepts, for error messages.
const STORE_CHOICES: &str = "'sqlite' (the embedded database in --data-dir), 'memory', \
     'redis://HOST:PORT[/DB]', 'rediss://HOST:PORT[/DB]' (TLS) or \
     'redis-cluster://HOST:PORT[,HOST:PORT...]'";

impl std::str::FromStr for StoreSpec {
    type Err = ConfigError;

    /// Parses `--store`. Errors never repeat a URL: it may carry a password.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(seeds) = text.strip_prefix("redis-cluster://") {
            return parse_cluster_seeds(seeds).map(Self::RedisCluster);
        }
        if text.starts_with("redis://") || text.starts_with("rediss://") {
            let info = ::redis::IntoConnectionInfo::into_connection_info(text).map_err(|_| {
                ConfigError::Invalid(format!(
                    "--store: not a valid Redis URL; expected {STORE_CHOICES}"
                ))
            })?;
            if matches!(info.addr(), ::redis::ConnectionAddr::Unix(_)) {
                return Err(ConfigError::Invalid(
                    "--store: a Redis URL needs a host and port".into(),
                ));
            }
            return Ok(Self::Redis(text.to_string()));
        }
        match text {
            "sqlite" => Ok(Self::Sqlite),
            "memory" => Ok(Self::Memory),
            // Only plain words are repeated back.
            other if other.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => Err(
                ConfigError::Invalid(format!("--store '{other}' must be {STORE_CHOICES}")),
            ),
            _ => Err(ConfigError::Invalid(format!(
                "--store must be {STORE_CHOICES}"
            ))),
        }
    }
}

/// `HOST:PORT[,HOST:PORT...]` as `redis://HOST:PORT` seeds.
fn parse_cluster_seeds(seeds: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |why: &str| {
        ConfigError::Invalid(format!(
            "--store: redis-cluster:// {why}; expected redis-cluster://HOST:PORT[,HOST:PORT...]"
        ))
    };
    if seeds.contains(['@', '/', '?', '#']) {
        return Err(invalid(
            "takes seed nodes only (no credentials, database or options)",
        ));
    }
    seeds
        .split(',')
        .map(|seed| {
            let (host, port) = seed
                .rsplit_once(':')
                .ok_or_else(|| invalid("needs HOST:PORT for every seed"))?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(invalid("needs HOST:PORT for every seed"));
            }
            Ok(format!("redis://{host}:{port}"))
        })
        .collect()
}

/// Where the HS256 secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file given with `--jwt-secret-file`.
    File(PathBuf),
    /// The `PRESENCED_JWT_SECRET` environment variable.
    Env,
    /// `<data-dir>/jwt-secret`, created on first start when no key is configured.
    Generated(PathBuf),
    /// None: JWKS keys only.
    None,
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (an IP address or a host name, with a port).
    pub listen: ListenAddr,
    /// Where `/_presenced/metrics` is served apart (`--metrics-listen`);
    /// `None`: on the main listener.
    pub metrics_listen: Option<ListenAddr>,
    /// Directory of the SQLite database and the generated secret.
    pub data_dir: PathBuf,
    /// The store backend.
    pub store: StoreSpec,
    /// HS256 secret source.
    pub secret: SecretSource,
    /// JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL.
    pub jwks_url: Option<String>,
    /// Extra accepted audiences.
    pub audiences: Vec<String>,
    /// Required issuer.
    pub issuer: Option<String>,
    /// Emulator mode: the presence clock stands still until moved.
    pub manual_clock: bool,
    /// Start time of the manual clock (default: wall time at start).
    pub start_time: Option<Instant>,
    /// A state document that replaces everything at start (emulator mode).
    pub seed: Option<PathBuf>,
    /// How many requests the emulator's journal keeps.
    pub journal_size: usize,
    /// Seeds the random draws of fault rules with a `probability`.
    pub fault_seed: Option<u64>,
    /// Change notifications: limits, destinations, event retention.
    pub notify: NotifySettings,
    /// The URL clients reach this server at (base of `@odata.context`),
    /// without a trailing slash.
    pub public_url: Option<String>,
    /// Whether `Host` and `X-Forwarded-*` may set the base of
    /// `@odata.context` (behind a trusted proxy).
    pub trust_forwarded_headers: bool,
    /// Connection timeouts and the connection cap.
    pub connections: ConnectionPolicy,
    /// TLS for the listener, if any.
    pub tls: Option<TlsSource>,
    /// Graph's throttling per application per tenant, if on.
    pub rate_limit: Option<RateLimit>,
    /// With a Redis store: how long a node holds a delivery it took before
    /// another node may take it.
    pub redis_delivery_lease: std::time::Duration,
}

/// Checks `--public-url`: an absolute http(s) URL with a host and no path,
/// query or fragment; returned without a trailing slash.
pub fn parse_public_url(text: &str) -> Result<String, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "--public-url '{text}' must be an http or https URL with a host and no path, such as https://presence.example.com"
        ))
    };
    let url = reqwest::Url::parse(text).map_err(|_| bad())?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !ok {
        return Err(bad());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Parses an RFC 3339 instant for `--start-time`: second 60 is refused as
/// malformed (Graph's instants have no leap seconds), and the instant must
/// lie in the emulator clock's range, 1970-01-01T00:00:00Z to
/// 9999-12-31T23:59:59Z ([`crate::clock::in_clock_range`]), where
/// `sequenceNumber` orders every change.
pub fn parse_instant(text: &str) -> Result<Instant, ConfigError> {
    use chrono::Timelike;
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .filter(|t| t.nanosecond() < 1_000_000_000)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "'{text}' is not an RFC 3339 instant such as 2026-01-01T09:00:00Z"
            ))
        })?;
    if !crate::clock::in_clock_range(t) {
        return Err(ConfigError::Invalid(format!(
            "--start-time '{text}' is outside the supported range 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
        )));
    }
    Ok(t)
}

impl Config {
    /// Merges command-line values (`cli`) over the file's, applies defaults
    /// and validates.
    pub fn merge(cli: FileConfig, file: FileConfig, secret_env: bool) -> Result<Self, ConfigError> {
        let listen_text = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = ListenAddr::parse(&listen_text).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "--listen '{listen_text}' is not an address such as 127.0.0.1:8080 or localhost:8080"
            ))
        })?;
        let metrics_listen = cli
            .metrics_listen
            .or(file.metrics_listen)
            .map(|text| {
                ListenAddr::parse(&text).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "--metrics-listen '{text}' is not an address such as 127.0.0.1:9090 or localhost:9090"
                    ))
                })
            })
            .transpose()?;
        let data_dir = cli
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let store = cli
            .store
            .or(file.store)
            .map(|text| text.parse::<StoreSpec>())
            .transpose()?;
        let in_memory = cli.in_memory.or(file.in_memory).unwrap_or(false);
        let store = match (in_memory, store) {
            (true, Some(StoreSpec::Sqlite)) => {
                return Err(ConfigError::Invalid(
                    "--in-memory and --store sqlite contradict each other; give one".into(),
                ))
            }
            (true, _) => StoreSpec::Memory,
            (false, store) => store.unwrap_or_default(),
        };
        let jwks_file = cli.jwks_file.or(file.jwks_file);
        let jwks_url = cli.jwks_url.or(file.jwks_url);
        if let Some(url) = &jwks_url {
            // Signing keys over plain http could be swapped by anyone on the
            // network path; plain http is allowed for loopback only.
            // Parsed, not prefix-matched: `http://127.0.0.1@evil/` is evil's.
            let parsed = reqwest::Url::parse(url).ok();
            let ok = parsed.as_ref().is_some_and(|u| match u.scheme() {
                "https" => true,
                "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
                _ => false,
            });
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "--jwks-url '{url}' must be an https URL (plain http only for 127.0.0.1, localhost or [::1])"
                )));
            }
        }
        let secret = match cli.jwt_secret_file.or(file.jwt_secret_file) {
            Some(path) => SecretSource::File(path),
            None if secret_env => SecretSource::Env,
            None if jwks_file.is_some() || jwks_url.is_some() => SecretSource::None,
            None => SecretSource::Generated(data_dir.join(SECRET_FILE_NAME)),
        };
        let mut audiences = file.audience;
        audiences.extend(cli.audience);
        let manual_clock = cli.manual_clock.or(file.manual_clock).unwrap_or(false);
        let start_time = cli
            .start_time
            .or(file.start_time)
            .map(|t| parse_instant(&t))
            .transpose()?;
        if start_time.is_some() && !manual_clock {
            return Err(ConfigError::Invalid(
                "--start-time needs --manual-clock".into(),
            ));
        }
        let seed = cli.seed.or(file.seed);
        let journal_size = cli
            .journal_size
            .or(file.journal_size)
            .unwrap_or(crate::http::journal::DEFAULT_JOURNAL_SIZE);
        if journal_size > crate::http::journal::MAX_JOURNAL_SIZE {
            return Err(ConfigError::Invalid(format!(
                "--journal-size {journal_size} is more than {}",
                crate::http::journal::MAX_JOURNAL_SIZE
            )));
        }
        let fault_seed = cli.fault_seed.or(file.fault_seed);
        if seed.is_some() && !manual_clock {
            return Err(ConfigError::Invalid(
                "--seed needs --manual-clock (the state document is an emulator feature)".into(),
            ));
        }
        let limits = match cli
            .subscription_limits
            .or(file.subscription_limits)
            .as_deref()
        {
            None | Some("graph") => SubscriptionLimits::Graph,
            Some("none") => SubscriptionLimits::None,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "--subscription-limits '{other}' must be 'graph' (Graph's rules) or 'none'"
                )))
            }
        };
        let mut cidrs = file.webhook_allow_cidr;
        cidrs.extend(cli.webhook_allow_cidr);
        let allowed_networks = AllowedNetworks::parse(&cidrs)
            .map_err(|e| ConfigError::Invalid(format!("--webhook-allow-cidr: {e}")))?;
        let event_retention = match cli.event_retention.or(file.event_retention) {
            None => MIN_EVENT_RETENTION,
            Some(text) => {
                let d = parse_duration(&text)
                    .map_err(|e| ConfigError::Invalid(format!("--event-retention: {e}")))?
                    .0;
                if d < MIN_EVENT_RETENTION {
                    return Err(ConfigError::Invalid(format!(
                        "--event-retention '{text}' is shorter than the minimum PT24H"
                    )));
                }
                d
            }
        };
        let notify = NotifySettings {
            limits,
            emulator: manual_clock,
            allowed_networks,
            event_retention,
            ..NotifySettings::default()
        };
        let public_url = cli
            .public_url
            .or(file.public_url)
            .map(|text| parse_public_url(&text))
            .transpose()?;
        let trust_forwarded_headers = cli
            .trust_forwarded_headers
            .or(file.trust_forwarded_headers)
            .unwrap_or(false);
        let timeout = |flag: &str, text: Option<String>, default: std::time::Duration| {
            let Some(text) = text else {
                return Ok(default);
            };
            let d = parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("{flag}: {e}")))?
                .0;
            d.to_std()
                .ok()
                .filter(|d| !d.is_zero() && *d <= std::time::Duration::from_secs(3600))
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "{flag} '{text}' must be longer than zero and at most PT1H"
                    ))
                })
        };
        let max_connections = cli.max_connections.or(file.max_connections);
        if max_connections == Some(0) {
            return Err(ConfigError::Invalid(
                "--max-connections must be at least 1".into(),
            ));
        }
        let connections = ConnectionPolicy {
            header_timeout: timeout(
                "--header-timeout",
                cli.header_timeout.or(file.header_timeout),
                DEFAULT_HEADER_TIMEOUT,
            )?,
            idle_timeout: timeout(
                "--idle-timeout",
                cli.idle_timeout.or(file.idle_timeout),
                DEFAULT_IDLE_TIMEOUT,
            )?,
            max_connections: max_connections.unwrap_or_else(connection_cap_from_file_limit),
        };
        let tls = match (
            cli.tls_cert.or(file.tls_cert),
            cli.tls_key.or(file.tls_key),
            cli.tls_self_signed
                .or(file.tls_self_signed)
                .unwrap_or(false),
        ) {
            (None, None, false) => None,
            (None, None, true) => Some(TlsSource::SelfSigned),
            (Some(cert), Some(key), false) => Some(TlsSource::Files { cert, key }),
            (Some(_), Some(_), true) => {
                return Err(ConfigError::Invalid(
                    "give either --tls-cert and --tls-key, or --tls-self-signed, not both".into(),
                ))
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "--tls-cert and --tls-key go together".into(),
                ))
            }
        };
        if store == StoreSpec::Memory {
            // Nothing may be written to disk: neither the development
            // secret nor a self-signed certificate can be created in the
            // data dir, and one that lived only in this process could not
            // mint tokens (`presenced token`) or be trusted by clients.
            if matches!(secret, SecretSource::Generated(_)) {
                return Err(ConfigError::Invalid(format!(
                    "--in-memory writes nothing to disk, so it cannot create a development secret in the data dir: give --jwt-secret-file FILE or {SECRET_ENV} (and mint tokens with `presenced token --jwt-secret-file FILE`), or use JWKS keys, or run your tests under `presenced exec`, which makes a temporary secret for them"
                )));
            }
            if tls == Some(TlsSource::SelfSigned) {
                return Err(ConfigError::Invalid(
                    "--in-memory writes nothing to disk, so it cannot create a self-signed certificate: give --tls-cert and --tls-key".into(),
                ));
            }
        }
        let rate_limit = cli
            .rate_limit
            .or(file.rate_limit)
            .map(|text| {
                RateLimit::parse(&text)
                    .map_err(|e| ConfigError::Invalid(format!("--rate-limit: {e}")))
            })
            .transpose()?;
        let redis_delivery_lease = timeout(
            "--redis-delivery-lease",
            cli.redis_delivery_lease.or(file.redis_delivery_lease),
            crate::store::redis::DELIVERY_LEASE,
        )?;
        Ok(Self {
            redis_delivery_lease,
            metrics_listen,
            rate_limit,
            tls,
            connections,
            public_url,
            trust_forwarded_headers,
            notify,
            listen,
            data_dir,
            store,
            secret,
            jwks_file,
            jwks_url,
            audiences,
            issuer: cli.issuer.or(file.issuer),
            manual_clock,
            start_time,
            seed,
            journal_size,
            fault_seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let c = Config::merge(FileConfig::default(), FileConfig::default(), false).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(
            c.secret,
            SecretSource::Generated(PathBuf::from(DEFAULT_DATA_DIR).join("jwt-secret"))
        );
        assert!(!c.manual_clock);
    }

    #[test]
    fn command_line_wins_over_file_and_audiences_add_up() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\ndata-dir = \"/tmp/x\"\naudience = [\"api://a\"]\nmanual-clock = true\n",
        )
        .unwrap();
        let cli = FileConfig {
            listen: Some("127.0.0.1:9001".into()),
            audience: vec!["api://b".into()],
            ..Default::default()
        };
        let c = Config::merge(cli, file, false).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            c.audiences,
            vec!["api://a".to_string(), "api://b".to_string()]
        );
        assert!(c.manual_clock);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
        let bad = FileConfig {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        assert!(Config::merge(bad, FileConfig::default(), false).is_err());
        let named = FileConfig {
            listen: Some("localhost:8080".into()),
            ..Default::default()
        };
        assert!(Config::merge(named, FileConfig::default(), false).is_ok());
        let start = FileConfig {
            start_time: Some("2026-01-01T09:00:00Z".into()),
            ..Default::default()
        };
        assert!(Config::merge(start, FileConfig::default(), false).is_err());
    }

    fn start_at(text: &str) -> Result<Config, ConfigError> {
        let cli = FileConfig {
            manual_clock: Some(true),
            start_time: Some(text.into()),
            ..Default::default()
        };
        Config::merge(cli, FileConfig::default(), false)
    }

    #[test]
    fn start_time_must_lie_between_1970_and_the_end_of_9999() {
        for ok in [
            "1970-01-01T00:00:00Z",
            "1970-01-01T01:00:00+01:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T22:59:59-01:00",
        ] {
            assert!(start_at(ok).is_ok(), "{ok}");
        }
        for out in [
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:59:59+01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.9999999Z",
            "9999-12-31T23:00:00-01:00",
        ] {
            let err = start_at(out).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("--start-time '{out}' is outside the supported range 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z")
            );
        }
    }

    #[test]
    fn start_time_refuses_second_60_as_malformed() {
        let err = start_at("2016-12-31T23:59:60Z").unwrap_err().to_string();
        assert_eq!(
            err,
            "'2016-12-31T23:59:60Z' is not an RFC 3339 instant such as 2026-01-01T09:00:00Z"
        );
    }

    #[test]
    fn jwks_urls_must_be_https_except_on_loopback() {
        let with = |url: &str| FileConfig {
            jwks_url: Some(url.into()),
            ..Default::default()
        };
        for ok in [
            "https://login.example/keys",
            "http://127.0.0.1:9/keys",
            "http://localhost/keys",
        ] {
            assert!(
                Config::merge(with(ok), FileConfig::default(), false).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://keys.example/keys",
            "http://localhost.evil.example/",
            "http://127.0.0.1:80@keys.example/jwks",
            "ftp://x",
            "keys.json",
        ] {
            assert!(
                Config::merge(with(bad), FileConfig::default(), false).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_takes_a_certificate_and_key_together_or_a_self_signed_one() {
        let with = |cert: Option<&str>, key: Option<&str>, self_signed: bool| FileConfig {
            tls_cert: cert.map(PathBuf::from),
            tls_key: key.map(PathBuf::from),
            tls_self_signed: self_signed.then_some(true),
            ..Default::default()
        };
        let merge = |f| Config::merge(f, FileConfig::default(), false);
        assert_eq!(merge(with(None, None, false)).unwrap().tls, None);
        assert_eq!(
            merge(with(None, None, true)).unwrap().tls,
            Some(TlsSource::SelfSigned)
        );
        assert_eq!(
            merge(with(Some("c.pem"), Some("k.pem"), false))
                .unwrap()
                .tls,
            Some(TlsSource::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert!(merge(with(Some("c.pem"), None, false)).is_err());
        assert!(merge(with(Some("c.pem"), Some("k.pem"), true)).is_err());
    }

    #[test]
    fn a_public_url_is_an_origin_without_a_path() {
        assert_eq!(
            parse_public_url("https://presence.example.com/").unwrap(),
            "https://presence.example.com"
        );
        assert_eq!(
            parse_public_url("http://10.0.0.5:8080").unwrap(),
            "http://10.0.0.5:8080"
        );
        for bad in [
            "presence.example.com",
            "ftp://x.example",
            "https://x.example/graph",
            "https://x.example/?a=b",
            "https://user:pw@x.example",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn store_is_sqlite_by_default_and_names_the_choices_when_unknown() {
        let c = Config::merge(FileConfig::default(), FileConfig::default(), false).unwrap();
        assert_eq!(c.store, StoreSpec::Sqlite);
        let cli = FileConfig {
            store: Some("memory".into()),
            jwt_secret_file: Some("/secret".into()),
            ..FileConfig::default()
        };
        let c = Config::merge(cli, FileConfig::default(), false).unwrap();
        assert_eq!(c.store, StoreSpec::Memory);
        let cli = FileConfig {
            store: Some("postgres".into()),
            ..FileConfig::default()
        };
        let err = Config::merge(cli, FileConfig::default(), false).unwrap_err();
        assert!(err.to_string().contains("'sqlite'"), "{err}");
    }

    #[test]
    fn in_memory_needs_a_key_it_need_not_write_and_no_self_signed_certificate() {
        let memory = |extra: FileConfig| {
            let cli = FileConfig {
                in_memory: Some(true),
                ..extra
            };
            Config::merge(cli, FileConfig::default(), false)
        };
        let err = memory(FileConfig::default()).unwrap_err().to_string();
        assert!(err.contains("--jwt-secret-file"), "{err}");
        let with_secret = || FileConfig {
            jwt_secret_file: Some("/s".into()),
            ..Default::default()
        };
        assert_eq!(memory(with_secret()).unwrap().store, StoreSpec::Memory);
        let err = memory(FileConfig {
            tls_self_signed: Some(true),
            ..with_secret()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("--tls-cert"), "{err}");
        let err = memory(FileConfig {
            store: Some("sqlite".into()),
            ..with_secret()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("contradict"), "{err}");
        let env = Config::merge(
            FileConfig {
                store: Some("memory".into()),
                ..Default::default()
            },
            FileConfig::default(),
            true,
        )
        .unwrap();
        assert_eq!(env.secret, SecretSource::Env);
    }

    #[test]
    fn store_takes_redis_urls_and_cluster_seeds() {
        let parse = |text: &str| text.parse::<StoreSpec>();
        assert_eq!(
            parse("redis://127.0.0.1:6379/2").unwrap(),
            StoreSpec::Redis("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            parse("rediss://cache.example.com:6380").unwrap(),
            StoreSpec::Redis("rediss://cache.example.com:6380".into())
        );
        assert_eq!(
            parse("redis-cluster://10.0.0.1:7000,10.0.0.2:7001").unwrap(),
            StoreSpec::RedisCluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7001".into()
            ])
        );
        for bad in [
            "redis-cluster://",
            "redis-cluster://10.0.0.1",
            "redis-cluster://10.0.0.1:7000,",
            "redis-cluster://:7000",
            "redis-cluster://10.0.0.1:99999",
            "redis-cluster://10.0.0.1:0",
            "redis://",
            "redis://host:notaport",
            "redis+unix:///tmp/redis.sock",
            "postgres://db:5432",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("--store"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_redis_delivery_lease_is_a_minute_by_default_and_never_zero() {
        let c = Config::merge(FileConfig::default(), FileConfig::default(), false).unwrap();
        assert_eq!(c.redis_delivery_lease, std::time::Duration::from_secs(60));
        let cli = |text: &str| FileConfig {
            redis_delivery_lease: Some(text.into()),
            ..FileConfig::default()
        };
        let c = Config::merge(cli("PT5S"), FileConfig::default(), false).unwrap();
        assert_eq!(c.redis_delivery_lease, std::time::Duration::from_secs(5));
        for bad in ["PT0S", "PT2H", "soon"] {
            let err = Config::merge(cli(bad), FileConfig::default(), false).unwrap_err();
            assert!(err.to_string().contains("--redis-delivery-lease"), "{err}");
        }
    }

    #[test]
    fn store_errors_and_debug_never_show_credentials() {
        for bad in [
            "redis://:s3cret-pw@host:notaport",
            "redis-cluster://:s3cret-pw@10.0.0.1:7000",
            "mysql://root:s3cret-pw@db",
        ] {
            let err = bad.parse::<StoreSpec>().unwrap_err().to_string();
            assert!(!err.contains("s3cret-pw"), "{err}");
        }
        let spec: StoreSpec = "redis://:s3cret-pw@127.0.0.1:6379".parse().unwrap();
        assert!(!format!("{spec:?}").contains("s3cret-pw"));
        let cli = FileConfig {
            store: Some("redis://:s3cret-pw@127.0.0.1:6379".into()),
            ..FileConfig::default()
        };
        let config = Config::merge(cli, FileConfig::default(), false).unwrap();
        assert!(!format!("{config:?}").contains("s3cret-pw"));
    }

    #[test]
    fn jwks_alone_means_no_generated_secret() {
        let cli = FileConfig {
            jwks_file: Some("/keys.json".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::merge(cli, FileConfig::default(), false)
                .unwrap()
                .secret,
            SecretSource::None
        );
        assert_eq!(
            Config::merge(FileConfig::default(), FileConfig::default(), true)
                .unwrap()
                .secret,
            SecretSource::Env
        );
    }
}
