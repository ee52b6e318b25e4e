//! [`FileConfig`]: the settings of the TOML file given with `--config`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

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
