//! One [`Config`], merged from the command line and an optional TOML file
//! (`--config`), validated once at start-up.
//!
//! Submodules: `file` ([`FileConfig`], the TOML file's settings), `store`
//! ([`StoreSpec`], the `--store` choice) and `tests`; both types are
//! re-exported here.

use std::path::PathBuf;

use crate::clock::Instant;
use crate::domain::{parse_duration, AllowedNetworks, SubscriptionLimits};
use crate::http::serve::{
    connection_cap_from_file_limit, ConnectionPolicy, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
};
use crate::http::throttle::RateLimit;
use crate::http::tls::TlsSource;
use crate::listen::ListenAddr;
use crate::notify::NotifySettings;

mod file;
mod store;

pub use file::FileConfig;
pub use store::StoreSpec;

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
mod tests;
