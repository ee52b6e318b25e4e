//! What the JWT fuzz targets share: one HS256 verifier, the instant tokens
//! are checked at, and a way to sign arbitrary header and claims text.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use presenced::auth::{AuthConfig, AuthError, Principal, TokenVerifier};

/// The HS256 secret every verifier here is built with.
pub const SECRET: &[u8] = b"presenced-fuzzing-secret-0123456789";

/// The wall time tokens are verified at: 2026-01-01T00:00:00Z.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("a valid instant")
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// A new verifier that accepts HS256 tokens signed with [`SECRET`], with an
/// empty token cache.
pub fn new_verifier() -> TokenVerifier {
    runtime()
        .block_on(TokenVerifier::new(AuthConfig {
            hs256_secret: Some(SECRET.to_vec()),
            ..AuthConfig::default()
        }))
        .expect("an HS256 verifier")
}

/// The verifier that lives as long as the fuzzing process, so its token
/// cache fills as a server's would.
pub fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(new_verifier)
}

/// `verifier.verify(token, at)`, run to completion.
pub fn verify(
    verifier: &TokenVerifier,
    token: &str,
    at: DateTime<Utc>,
) -> Result<Principal, AuthError> {
    runtime().block_on(verifier.verify(token, at))
}

/// `base64url(header).base64url(claims).HMAC-SHA256(SECRET)`.
pub fn sign(header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("HMAC takes any key");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}
