//! Minting tokens (`presenced token`, tests): HS256 with the development
//! secret, or RS256/ES256 with a PEM private key whose public half a
//! JWKS-configured server knows.

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

/// The asymmetric algorithms `presenced token` signs with, the ones a
/// JWKS-configured server verifies (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256; the key is an RSA private key in PEM,
    /// PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    Rs256,
    /// ECDSA on P-256 with SHA-256; the key is a P-256 private key in PEM,
    /// PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`, as
    /// `openssl ecparam -genkey` writes it).
    Es256,
}

/// Signs `claims` with the PEM private key `pem` as an RS256 or ES256 JWT,
/// with `kid` in its header when given (a JWKS-configured server picks the
/// verification key by it; without one it accepts only a JWKS of one key).
///
/// A key that is not a private key of the algorithm's kind is
/// [`AuthError::KeySource`] with a sentence saying what was expected.
pub fn mint_pem(
    algorithm: PemAlgorithm,
    pem: &[u8],
    kid: Option<&str>,
    claims: &MintClaims,
) -> Result<String, AuthError> {
    let (alg, key) = match algorithm {
        PemAlgorithm::Rs256 => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(pem).map_err(|_| {
                AuthError::KeySource(
                    "the key is not an RSA private key in PEM (PKCS#8 'BEGIN PRIVATE KEY' or PKCS#1 'BEGIN RSA PRIVATE KEY')"
                        .to_owned(),
                )
            })?,
        ),
        PemAlgorithm::Es256 => {
            let key = match sec1_to_pkcs8(pem) {
                Some(pkcs8) => EncodingKey::from_ec_der(&pkcs8),
                None => EncodingKey::from_ec_pem(pem).map_err(|_| {
                    AuthError::KeySource(
                        "the key is not a P-256 EC private key in PEM (PKCS#8 'BEGIN PRIVATE KEY' or SEC1 'BEGIN EC PRIVATE KEY')"
                            .to_owned(),
                    )
                })?,
            };
            (Algorithm::ES256, key)
        }
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    // ring checks the key's parameters (curve, size) only when signing.
    encode(&header, claims, &key)
        .map_err(|e| AuthError::KeySource(format!("the token could not be signed ({e})")))
}

/// The PKCS#8 DER of a SEC1 P-256 key in PEM (`BEGIN EC PRIVATE KEY`):
/// its DER wrapped in a `PrivateKeyInfo` naming id-ecPublicKey on
/// prime256v1, which is what the signer reads. `None` when `pem` holds no
/// unencrypted SEC1 block. A key of another curve fails when signing.
fn sec1_to_pkcs8(pem: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).ok()?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN EC PRIVATE KEY-----")
        .skip(1);
    let body: Vec<&str> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    // Headers (`Proc-Type: 4,ENCRYPTED`) mean an encrypted key.
    if body.is_empty() || body.iter().any(|l| l.contains(':')) {
        return None;
    }
    let sec1 = base64::engine::general_purpose::STANDARD
        .decode(body.concat())
        .ok()?;
    // SEQUENCE { OID 1.2.840.10045.2.1, OID 1.2.840.10045.3.1.7 }
    const ALGORITHM: [u8; 21] = [
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut info = vec![0x02, 0x01, 0x00]; // version 0
    info.extend_from_slice(&ALGORITHM);
    info.extend(der(0x04, &sec1));
    Some(der(0x30, &info))
}

/// A DER tag-length-value (definite lengths up to 65,535 bytes; a PEM key
/// is far smaller).
fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match value.len() {
        n @ 0..=0x7f => out.push(n as u8),
        n @ 0x80..=0xff => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
    out
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

    fn app_claims() -> MintClaims {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        MintClaims::new(
            Uuid::from_u128(1),
            None,
            "app",
            None,
            Some(&["Presence.Read.All".to_owned()]),
            now,
            Duration::hours(1),
        )
    }

    fn verify(token: &str, alg: Algorithm, key: &jsonwebtoken::DecodingKey) -> MintClaims {
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.validate_exp = false;
        validation.set_audience(&[DEFAULT_AUDIENCES[0]]);
        jsonwebtoken::decode::<MintClaims>(token, key, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn rs256_and_es256_tokens_verify_with_the_public_jwk_and_carry_the_kid() {
        use crate::auth::test_keys::{ec_jwk, rsa_jwk, EC_PEM, RSA_PEM};
        let claims = app_claims();
        let rsa = mint_pem(
            PemAlgorithm::Rs256,
            RSA_PEM.as_bytes(),
            Some("rsa-1"),
            &claims,
        )
        .unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(rsa_jwk()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        assert_eq!(verify(&rsa, Algorithm::RS256, &key), claims);
        assert_eq!(
            jsonwebtoken::decode_header(&rsa).unwrap().kid.as_deref(),
            Some("rsa-1")
        );
        let ec = mint_pem(PemAlgorithm::Es256, EC_PEM.as_bytes(), None, &claims).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(ec_jwk()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        assert_eq!(verify(&ec, Algorithm::ES256, &key), claims);
        assert_eq!(jsonwebtoken::decode_header(&ec).unwrap().kid, None);
    }

    #[test]
    fn a_sec1_ec_key_signs_like_its_pkcs8_form() {
        use crate::auth::test_keys::ec_jwk;
        // `openssl ec -in ec-1.pem`: EC_PEM as SEC1.
        let sec1 = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ec-1.sec1.pem"
        ))
        .unwrap();
        assert!(String::from_utf8_lossy(&sec1).contains("BEGIN EC PRIVATE KEY"));
        let claims = app_claims();
        let token = mint_pem(PemAlgorithm::Es256, &sec1, Some("ec-1"), &claims).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(ec_jwk()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        assert_eq!(verify(&token, Algorithm::ES256, &key), claims);
    }

    #[test]
    fn der_lengths_use_the_short_and_long_forms() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        assert_eq!(&der(0x04, &[0; 0x80])[..3], &[0x04, 0x81, 0x80]);
        assert_eq!(&der(0x04, &[0; 0x100])[..4], &[0x04, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused_with_what_was_expected() {
        use crate::auth::test_keys::{EC_PEM, RSA_PEM};
        let claims = app_claims();
        let e = mint_pem(PemAlgorithm::Rs256, EC_PEM.as_bytes(), None, &claims).unwrap_err();
        assert!(e.to_string().contains("not an RSA private key"), "{e}");
        let e = mint_pem(PemAlgorithm::Es256, RSA_PEM.as_bytes(), None, &claims).unwrap_err();
        assert!(e.to_string().contains("not a P-256 EC private key"), "{e}");
        let bad_sec1 =
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";
        let e = mint_pem(PemAlgorithm::Es256, bad_sec1.as_bytes(), None, &claims).unwrap_err();
        assert!(matches!(e, AuthError::KeySource(_)), "{e}");
        let e = mint_pem(PemAlgorithm::Rs256, b"not a key", None, &claims).unwrap_err();
        assert!(matches!(e, AuthError::KeySource(_)), "{e}");
    }
}
