//! Bearer-token verification and the permission table (SPEC §3, §5).
//!
//! Requests carry `Authorization: Bearer <JWT>` shaped like a Microsoft Entra
//! ID access token. [`TokenVerifier`] checks the signature (HS256 with a
//! configured development secret, or RS256/ES256 keys from a JWKS file or
//! URL), then `exp`/`nbf` against the wall time the caller passes in (never
//! the presence clock, STYLE.md "Time"), `aud`, `iss` and the Entra claims,
//! and yields a [`Principal`]. [`authorize`] then decides whether that
//! principal may perform an [`Operation`] on a user.
//!
//! A verifier remembers the tokens it accepted (`cache.rs`, bounded by
//! [`TOKEN_CACHE_CAPACITY`]), so a client that sends the same token on
//! every request pays for its signature once; a hit still checks
//! `exp`/`nbf` against `now`, and a forged token never matches an entry.
//!
//! [`mint_hs256`] and [`MintClaims`] make development tokens for
//! `presenced token` and the tests.

mod cache;
mod error;
mod jwks;
mod mint;
mod policy;
#[cfg(test)]
mod test_keys;
mod verify;

use std::path::PathBuf;

use uuid::Uuid;

pub use cache::{remembering_tokens, TokenCacheStats};
pub use error::AuthError;
pub use mint::{mint_hs256, mint_pem, MintClaims, PemAlgorithm};
pub use policy::{authorize, unknown_permissions, Operation, KNOWN_ROLES, KNOWN_SCOPES};
pub use verify::{bearer_token, TokenVerifier};

/// The accepted `aud` values before any configured extras: Microsoft Graph's
/// resource URI (with and without the trailing slash) and its application id.
pub const DEFAULT_AUDIENCES: [&str; 3] = [
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
];

/// The tenant id of personal Microsoft accounts; tokens from it are refused
/// (SPEC §5).
pub const PERSONAL_ACCOUNT_TENANT: Uuid = Uuid::from_u128(0x9188040d_6c67_4c5b_b112_36a304b66dad);

/// Default clock-skew allowance for `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Minimum time between two refetches of the JWKS URL triggered by an
/// unknown `kid`, in seconds.
pub const JWKS_REFETCH_INTERVAL_SECS: i64 = 60;

/// How many verified tokens a [`TokenVerifier`] remembers (about; see
/// `auth/cache.rs`). An entry is a few hundred bytes, so this is a few MB at
/// most, and covers the tokens of 10,000 clients that each reuse theirs
/// until it expires, which is what Graph SDKs do.
pub const TOKEN_CACHE_CAPACITY: usize = 10_000;

/// Who a verified token speaks for (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant id (`tid` claim), lowercased GUID text. All data is
    /// partitioned by it.
    pub tenant: Uuid,
    /// The client application: the `appid` claim, else `azp`.
    pub app_id: String,
    /// Delegated (a signed-in user) or application (the app itself).
    pub kind: PrincipalKind,
    /// Delegated scopes, from `scp` (space separated); empty for application
    /// tokens.
    pub scopes: Vec<String>,
    /// Application permissions, from `roles`; may also be present on
    /// delegated tokens, where [`authorize`] ignores them.
    pub roles: Vec<String>,
}

/// The two kinds of Entra access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A token acting for a signed-in user (has `scp`).
    Delegated {
        /// The signed-in user (`oid` claim).
        user: Uuid,
    },
    /// A token acting as the application itself (has `roles`, no `scp`).
    Application,
}

impl Principal {
    /// The signed-in user of a delegated token; `None` for application
    /// tokens.
    pub fn user(&self) -> Option<Uuid> {
        match self.kind {
            PrincipalKind::Delegated { user } => Some(user),
            PrincipalKind::Application => None,
        }
    }

    /// Whether the token carries delegated scope `name` (case-insensitive).
    pub fn has_scope(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    /// Whether the token carries application role `name` (case-insensitive).
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(name))
    }
}

/// How tokens are verified; built once from the server configuration.
#[derive(Clone)]
pub struct AuthConfig {
    /// Shared secret for HS256 development tokens; HS256 is refused when
    /// `None`.
    pub hs256_secret: Option<Vec<u8>>,
    /// A JWKS file with RS256/ES256 public keys, read once at start.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL, fetched at start and again (at most every
    /// [`JWKS_REFETCH_INTERVAL_SECS`]) when a token names an unknown `kid`.
    pub jwks_url: Option<String>,
    /// Extra accepted audiences, added to [`DEFAULT_AUDIENCES`].
    pub audiences: Vec<String>,
    /// When `Some`, `iss` must equal it. The text `{tenantid}` in it is
    /// replaced by the token's `tid`, for multi-tenant Entra issuers such as
    /// `https://sts.windows.net/{tenantid}/`.
    pub issuer: Option<String>,
    /// Clock-skew allowance for `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks_file: None,
            jwks_url: None,
            audiences: Vec::new(),
            issuer: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    // Hand-written so the secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_account_tenant_constant_matches_its_text() {
        assert_eq!(
            PERSONAL_ACCOUNT_TENANT.to_string(),
            "9188040d-6c67-4c5b-b112-36a304b66dad"
        );
    }

    #[test]
    fn config_debug_redacts_the_secret() {
        let config = AuthConfig {
            hs256_secret: Some(b"hunter2".to_vec()),
            ..AuthConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"));
        assert_eq!(config.leeway_secs, 60);
    }

    #[test]
    fn scope_and_role_checks_ignore_case() {
        let p = Principal {
            tenant: Uuid::nil(),
            app_id: "app".into(),
            kind: PrincipalKind::Application,
            scopes: vec!["presence.read".into()],
            roles: vec!["PRESENCE.READ.ALL".into()],
        };
        assert!(p.has_scope("Presence.Read"));
        assert!(p.has_role("Presence.Read.All"));
        assert!(!p.has_role("Presence.ReadWrite.All"));
        assert_eq!(p.user(), None);
    }
}
