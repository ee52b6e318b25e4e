//! RS256/ES256 verification keys from a JWKS file or URL (SPEC §5).
//!
//! A JWKS document is parsed key by key: keys this server cannot use
//! (encryption keys, other curves or algorithms, malformed entries) are
//! skipped with a log line rather than failing the whole set, because real
//! identity providers publish such keys next to their signing keys.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::DecodingKey;
use tokio::sync::{Mutex, RwLock};

use super::{AuthError, JWKS_REFETCH_INTERVAL_SECS};
use crate::clock::Instant;

/// Largest JWKS document accepted from a URL, in bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Time limit for one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The key families that may verify tokens from a JWKS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA, verifying RS256.
    Rsa,
    /// EC on P-256, verifying ES256.
    EcP256,
}

/// One usable public key.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    kid: Option<String>,
    kind: KeyKind,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Parses a JWK set, keeping the keys that can verify RS256 or ES256.
/// Fails when the document is not a JWK set or holds no usable key.
pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the JWKS is not valid JSON ({e})"))?;
    let entries = doc
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| "the JWKS has no \"keys\" array".to_owned())?;
    let keys: Vec<VerifyingKey> = entries.iter().filter_map(usable_key).collect();
    if keys.is_empty() {
        return Err("the JWKS contains no usable RS256 or ES256 signing key".to_owned());
    }
    Ok(keys)
}

/// Converts one JWK entry, or says (in the log) why it is skipped.
fn usable_key(entry: &serde_json::Value) -> Option<VerifyingKey> {
    let jwk: Jwk = match serde_json::from_value(entry.clone()) {
        Ok(jwk) => jwk,
        Err(e) => {
            tracing::warn!(kid = ?entry.get("kid"), error = %e, "skipping unparseable JWKS key");
            return None;
        }
    };
    let kid = jwk.common.key_id.clone();
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        tracing::debug!(?kid, "skipping JWKS key not meant for signatures");
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => KeyKind::EcP256,
        _ => {
            tracing::debug!(?kid, "skipping JWKS key of an unsupported type");
            return None;
        }
    };
    let alg_fits = match (jwk.common.key_algorithm, kind) {
        (None, _) => true,
        (Some(KeyAlgorithm::RS256), KeyKind::Rsa) => true,
        (Some(KeyAlgorithm::ES256), KeyKind::EcP256) => true,
        (Some(_), _) => false,
    };
    if !alg_fits {
        tracing::debug!(?kid, "skipping JWKS key for another algorithm");
        return None;
    }
    match DecodingKey::from_jwk(&jwk) {
        Ok(key) => Some(VerifyingKey { kid, kind, key }),
        Err(e) => {
            tracing::warn!(?kid, error = %e, "skipping JWKS key with bad parameters");
            None
        }
    }
}

/// Picks the key for a token: the one with its `kid` (and the right kind),
/// or, when the token has no `kid`, the only key there is.
fn select(keys: &[&VerifyingKey], kid: Option<&str>, kind: KeyKind) -> Option<DecodingKey> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kind == kind && k.kid.as_deref() == Some(kid))
            .map(|k| k.key.clone()),
        None => match keys {
            [only] if only.kind == kind => Some(only.key.clone()),
            _ => None,
        },
    }
}

/// The JWKS keys of a [`super::TokenVerifier`]: fixed keys from a file plus
/// refreshable keys from a URL.
pub(crate) struct KeyStore {
    file_keys: Vec<VerifyingKey>,
    url: Option<UrlSource>,
    /// Counts replacements of the URL keys; see [`KeyStore::generation`].
    generation: AtomicU64,
}

/// A JWKS URL with its last fetched keys.
struct UrlSource {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<Vec<VerifyingKey>>>,
    /// When an unknown `kid` last caused a refetch (wall time from callers);
    /// `None` until the first one. Held during a refetch so concurrent
    /// misses wait for it instead of fetching again.
    last_refetch: Mutex<Option<Instant>>,
}

impl KeyStore {
    /// Reads the JWKS file and fetches the JWKS URL; `None` when neither is
    /// configured. Any failure is [`AuthError::KeySource`].
    pub(crate) async fn load(
        file: Option<&Path>,
        url: Option<&str>,
    ) -> Result<Option<Self>, AuthError> {
        if file.is_none() && url.is_none() {
            return Ok(None);
        }
        let file_keys = match file {
            Some(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| {
                    AuthError::KeySource(format!(
                        "cannot read the JWKS file {} ({e})",
                        path.display()
                    ))
                })?;
                parse_jwks(&bytes).map_err(|e| {
                    AuthError::KeySource(format!("in the JWKS file {}, {e}", path.display()))
                })?
            }
            None => Vec::new(),
        };
        let url = match url {
            Some(url) => {
                let client = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    // Keys come from the configured URL only: a redirect
                    // could downgrade to http or point elsewhere.
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("presenced/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| {
                        AuthError::KeySource(format!("cannot build an HTTP client ({e})"))
                    })?;
                let keys = fetch(&client, url).await.map_err(AuthError::KeySource)?;
                tracing::info!(url, keys = keys.len(), "loaded JWKS keys");
                Some(UrlSource {
                    url: url.to_owned(),
                    client,
                    keys: RwLock::new(Arc::new(keys)),
                    last_refetch: Mutex::new(None),
                })
            }
            None => None,
        };
        Ok(Some(Self {
            file_keys,
            url,
            generation: AtomicU64::new(0),
        }))
    }

    /// The generation of the key set: it changes whenever a refetch
    /// replaces the URL keys, and only then (file keys never change). The
    /// token cache keeps a verification only while the generation it was
    /// made under is current, because a refetch may drop the key that
    /// signed a cached token.
    ///
    /// Read it *before* looking a key up: it is bumped while the new keys'
    /// write lock is held, so a lookup that saw the old keys can only have
    /// been preceded by a read of the old generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The key that verifies a token with this `kid` and algorithm kind.
    ///
    /// An unknown `kid` refetches the URL (at most once every
    /// [`JWKS_REFETCH_INTERVAL_SECS`] by `now`) and looks again: providers
    /// rotate keys. Otherwise [`AuthError::UnknownKey`]; a failed refetch is
    /// logged and also ends in `UnknownKey`, since the token's key stays
    /// unknown.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        kind: KeyKind,
        now: Instant,
    ) -> Result<DecodingKey, AuthError> {
        if let Some(key) = self.lookup(kid, kind).await {
            return Ok(key);
        }
        let (Some(source), Some(_)) = (&self.url, kid) else {
            return Err(AuthError::UnknownKey);
        };
        {
            let mut last = source.last_refetch.lock().await;
            let due =
                last.is_none_or(|t| (now - t).num_seconds().abs() >= JWKS_REFETCH_INTERVAL_SECS);
            if due {
                *last = Some(now);
                match fetch(&source.client, &source.url).await {
                    Ok(keys) => {
                        tracing::info!(url = %source.url, keys = keys.len(), "refetched JWKS keys");
                        let mut current = source.keys.write().await;
                        *current = Arc::new(keys);
                        self.generation.fetch_add(1, Ordering::Release);
                    }
                    Err(e) => tracing::warn!(url = %source.url, error = %e, "JWKS refetch failed"),
                }
            }
        }
        // Look again even when not due: another request may just have
        // refetched.
        self.lookup(kid, kind).await.ok_or(AuthError::UnknownKey)
    }

    async fn lookup(&self, kid: Option<&str>, kind: KeyKind) -> Option<DecodingKey> {
        let url_keys = match &self.url {
            Some(source) => Arc::clone(&*source.keys.read().await),
            None => Arc::new(Vec::new()),
        };
        let all: Vec<&VerifyingKey> = self.file_keys.iter().chain(url_keys.iter()).collect();
        select(&all, kid, kind)
    }
}

/// Fetches and parses the JWKS at `url`.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<VerifyingKey>, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot fetch the JWKS URL {url} ({e})"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the JWKS URL {url} answered HTTP {status}"));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(format!(
            "the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes"
        ));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("cannot read the JWKS from {url} ({e})"))?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!(
            "the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes"
        ));
    }
    parse_jwks(&bytes).map_err(|e| format!("at {url}, {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::{ec_jwk, jwks_json, rsa2_jwk, rsa_jwk};
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_keeps_rsa_and_p256_keys() {
        let keys = parse_jwks(jwks_json(&[rsa_jwk(), ec_jwk()]).as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kind, KeyKind::Rsa);
        assert_eq!(keys[0].kid.as_deref(), Some("rsa-1"));
        assert_eq!(keys[1].kind, KeyKind::EcP256);
    }

    #[test]
    fn parse_skips_unusable_keys() {
        let mut enc = rsa2_jwk();
        enc["use"] = json!("enc");
        let mut rs384 = rsa2_jwk();
        rs384["alg"] = json!("RS384");
        let oct = json!({"kty": "oct", "kid": "o", "k": "c2VjcmV0"});
        let weird = json!({"kty": "XYZ", "kid": "w"});
        let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "p384",
            "x": "AAAA", "y": "AAAA"});
        let doc = jwks_json(&[enc, rs384, oct, weird, p384, rsa_jwk()]);
        let keys = parse_jwks(doc.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("rsa-1"));
    }

    #[test]
    fn parse_refuses_documents_without_usable_keys() {
        assert!(parse_jwks(b"not json").is_err());
        assert!(parse_jwks(br#"{"nokeys": []}"#).is_err());
        let err = parse_jwks(br#"{"keys": []}"#).unwrap_err();
        assert!(err.contains("no usable"), "{err}");
    }

    #[test]
    fn select_by_kid_or_the_only_key() {
        let keys = parse_jwks(jwks_json(&[rsa_jwk(), ec_jwk()]).as_bytes()).unwrap();
        let all: Vec<&VerifyingKey> = keys.iter().collect();
        assert!(select(&all, Some("rsa-1"), KeyKind::Rsa).is_some());
        assert!(select(&all, Some("rsa-1"), KeyKind::EcP256).is_none());
        assert!(select(&all, Some("nope"), KeyKind::Rsa).is_none());
        // No kid and two keys: ambiguous.
        assert!(select(&all, None, KeyKind::Rsa).is_none());
        let one: Vec<&VerifyingKey> = keys.iter().take(1).collect();
        assert!(select(&one, None, KeyKind::Rsa).is_some());
        assert!(select(&one, None, KeyKind::EcP256).is_none());
    }

    #[tokio::test]
    async fn load_reports_a_missing_file() {
        let err = KeyStore::load(Some(Path::new("/nonexistent/jwks.json")), None)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::KeySource(_)), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/jwks.json"));
    }

    #[tokio::test]
    async fn load_without_sources_is_none() {
        assert!(KeyStore::load(None, None).await.unwrap().is_none());
    }
}
