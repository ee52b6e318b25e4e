//! [`StoreSpec`]: the `--store` backend choice and its parsing.

use super::ConfigError;

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
