//! TLS for the listener (rustls): a certificate and key from PEM files, or
//! a self-signed certificate presenced creates once in its data directory
//! for development (`--tls-self-signed`). ALPN offers HTTP/2 and HTTP/1.1,
//! so clients that prefer HTTP/2 over TLS (the Python SDK's default client)
//! get it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::listen::ListenAddr;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// `--tls-cert FILE --tls-key FILE` (PEM: the chain, then the key).
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// `--tls-self-signed`: created once in the data directory.
    SelfSigned,
}

/// File names of the self-signed certificate and key in the data dir.
pub const SELF_SIGNED_CERT: &str = "tls-self-signed.cert.pem";
/// See [`SELF_SIGNED_CERT`].
pub const SELF_SIGNED_KEY: &str = "tls-self-signed.key.pem";

/// A ready TLS configuration, and the certificate file clients should
/// trust when it is self-signed.
pub struct Tls {
    /// The rustls server configuration (ALPN `h2`, `http/1.1`).
    pub config: Arc<rustls::ServerConfig>,
    /// The self-signed certificate, when presenced made it.
    pub self_signed: Option<PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("self_signed", &self.self_signed)
            .finish_non_exhaustive()
    }
}

/// Loads (or, for a self-signed certificate, creates once) the listener's
/// TLS configuration.
pub fn load(source: &TlsSource, data_dir: &Path, listen: &ListenAddr) -> anyhow::Result<Tls> {
    let (cert, key, self_signed) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone(), None),
        TlsSource::SelfSigned => {
            let (cert, key) = self_signed(data_dir, listen)?;
            (cert.clone(), key, Some(cert))
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| anyhow::anyhow!("cannot read the TLS certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| anyhow::anyhow!("cannot read the TLS key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| anyhow::anyhow!("the TLS certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        self_signed,
    })
}

/// The self-signed certificate and key in `data_dir`, created on first use
/// for `localhost`, `127.0.0.1`, `::1` and the listen address (its IP
/// address, or the host name it was given as).
fn self_signed(data_dir: &Path, listen: &ListenAddr) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = data_dir.join(SELF_SIGNED_CERT);
    let key = data_dir.join(SELF_SIGNED_KEY);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    crate::store::sqlite::create_private_dir(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", data_dir.display()))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let name = match listen {
        ListenAddr::Ip(addr) if addr.ip().is_unspecified() => None,
        ListenAddr::Ip(addr) => Some(addr.ip().to_string()),
        ListenAddr::Host { host, .. } => Some(host.clone()),
    };
    if let Some(name) = name.filter(|n| !names.contains(n)) {
        names.push(name);
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| anyhow::anyhow!("cannot create a self-signed certificate: {e}"))?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.cert.pem())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", cert.display()))?;
    Ok((cert, key))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let listen = &ListenAddr::Ip("127.0.0.1:0".parse().unwrap());
        let first = load(&TlsSource::SelfSigned, dir.path(), listen).unwrap();
        let cert = first.self_signed.clone().unwrap();
        let pem = std::fs::read_to_string(&cert).unwrap();
        let again = load(&TlsSource::SelfSigned, dir.path(), listen).unwrap();
        assert_eq!(again.self_signed, Some(cert.clone()));
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), pem, "kept");
        assert_eq!(
            first.config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.path().join(SELF_SIGNED_KEY);
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_missing_or_mismatched_certificate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let listen = &ListenAddr::Ip("127.0.0.1:0".parse().unwrap());
        let missing = TlsSource::Files {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("nope.key"),
        };
        let err = load(&missing, dir.path(), listen).unwrap_err().to_string();
        assert!(err.contains("cannot read the TLS certificate"), "{err}");
        // A certificate with another certificate's key.
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        load(&TlsSource::SelfSigned, a.path(), listen).unwrap();
        load(&TlsSource::SelfSigned, b.path(), listen).unwrap();
        let mixed = TlsSource::Files {
            cert: a.path().join(SELF_SIGNED_CERT),
            key: b.path().join(SELF_SIGNED_KEY),
        };
        let err = load(&mixed, dir.path(), listen).unwrap_err().to_string();
        assert!(err.contains("do not fit together"), "{err}");
    }
}
