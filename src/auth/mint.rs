//! Minting HS256 development tokens (`presenced token`, tests).

use chrono::Duration;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuthError, DEFAULT_AUDIENCES};
use crate::clock::Instant;

/// Claims for minting development tokens (used by `presenced token` and
/// tests), shaped like an Entra ID v1 access token. Times are Unix seconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MintClaims {
    /// Tenant id (GUID text).
    pub tid: String,
    /// Signed-in user (GUID text); set for delegated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    /// Client application id.
    pub appid: String,
    /// Space-separated delegated scopes; makes the token delegated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// Application permissions; alone (without `scp`) they make the token an
    /// application token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Audience.
    pub aud: String,
    /// Issuer.
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

impl MintClaims {
    /// Typical claims: aud `https://graph.microsoft.com`, iss
    /// `https://sts.windows.net/{tid}/`, `iat` = `nbf` = `now`, `exp` =
    /// `now + ttl` (saturating).
    ///
    /// A `user` with `scopes` gives a delegated token; `roles` without
    /// `scopes` gives an application token.
    pub fn new(
        tenant: Uuid,
        user: Option<Uuid>,
        app: &str,
        scopes: Option<&str>,
        roles: Option<&[String]>,
        now: Instant,
        ttl: Duration,
    ) -> Self {
        let iat = now.timestamp();
        Self {
            tid: tenant.to_string(),
            oid: user.map(|u| u.to_string()),
            appid: app.to_owned(),
            scp: scopes.map(str::to_owned),
            roles: roles.map(<[String]>::to_vec),
            aud: DEFAULT_AUDIENCES[0].to_owned(),
            iss: format!("https://sts.windows.net/{tenant}/"),
            iat,
            nbf: iat,
            exp: iat.saturating_add(ttl.num_seconds()),
        }
    }
}

/// Signs `claims` as an HS256 JWT with `secret`.
///
/// Fails only if the claims cannot be serialized or signed, reported as
/// [`AuthError::KeySource`].
pub fn mint_hs256(secret: &[u8], claims: &MintClaims) -> Result<String, AuthError> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| AuthError::KeySource(format!("the token could not be signed ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn new_fills_typical_claims_and_skips_absent_ones() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let tenant = Uuid::from_u128(1);
        let claims = MintClaims::new(
            tenant,
            None,
            "app",
            None,
            Some(&["Presence.Read.All".to_owned()]),
            now,
            Duration::hours(1),
        );
        assert_eq!(claims.iat, now.timestamp());
        assert_eq!(claims.nbf, now.timestamp());
        assert_eq!(claims.exp, now.timestamp() + 3600);
        assert_eq!(claims.iss, format!("https://sts.windows.net/{tenant}/"));
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("oid").is_none());
        assert!(json.get("scp").is_none());
        assert_eq!(json["roles"][0], "Presence.Read.All");
        let back: MintClaims = serde_json::from_value(json).unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn minted_token_has_three_parts() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let claims = MintClaims::new(
            Uuid::from_u128(1),
            Some(Uuid::from_u128(2)),
            "app",
            Some("Presence.Read"),
            None,
            now,
            Duration::hours(1),
        );
        let token = mint_hs256(b"secret", &claims).unwrap();
        assert_eq!(token.split('.').count(), 3);
    }
}
