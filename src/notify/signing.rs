//! Signing the `validationTokens` of rich notifications, and the JWKS that
//! lets receivers verify them.
//!
//! Graph puts JWTs in every notification batch that carries resource data so
//! the receiver can check the batch came from Graph. presenced signs them
//! with its own P-256 key (ES256), generated once and kept by the caller, and
//! publishes the public half as a JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::SecretKey;
use rand::rngs::OsRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::crypto::CryptoError;

/// The application id of Graph's change-notification publisher, the `azp`
/// and `appid` of every validation token.
pub const GRAPH_NOTIFICATION_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// How long a validation token stays valid, in seconds.
const TOKEN_LIFETIME_SECS: i64 = 3600;

/// Signs the `validationTokens` of rich notifications with a key presenced
/// generates once and keeps (ES256, P-256).
#[derive(Clone)]
pub struct ValidationTokenSigner {
    key: EncodingKey,
    kid: String,
    x: String,
    y: String,
}

impl std::fmt::Debug for ValidationTokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidationTokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The claims of one validation token; times in Unix seconds.
#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    azp: &'a str,
    appid: &'a str,
    tid: String,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

impl ValidationTokenSigner {
    /// A new random P-256 key as PKCS#8 PEM text (to be persisted by the
    /// caller).
    pub fn generate_pem() -> String {
        SecretKey::random(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a fresh P-256 key encodes as PKCS#8")
            .to_string()
    }

    /// Loads a key from PKCS#8 PEM; kid = base64url (no pad) of the first
    /// 16 bytes of SHA-256 over the uncompressed public point (stable across
    /// restarts).
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        let secret =
            SecretKey::from_pkcs8_pem(pem).map_err(|e| CryptoError::SigningKey(e.to_string()))?;
        // Re-encoded so the signer sees one normal form whatever the file held.
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| CryptoError::SigningKey(e.to_string()))?;
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(CryptoError::SigningKey(
                "the public point has no coordinates".into(),
            ));
        };
        let digest = Sha256::digest(point.as_bytes());
        Ok(Self {
            key: EncodingKey::from_ec_der(der.as_bytes()),
            kid: URL_SAFE_NO_PAD.encode(&digest[..16]),
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        })
    }

    /// The key id: in every token's header and in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `{"keys":[{"kty":"EC","crv":"P-256","x","y","use":"sig","alg":"ES256","kid"}]}`
    pub fn jwks(&self) -> JsonWebKeySet {
        JsonWebKeySet {
            keys: vec![JsonWebKey {
                kty: "EC",
                crv: "P-256",
                x: self.x.clone(),
                y: self.y.clone(),
                use_: "sig",
                alg: "ES256",
                kid: self.kid.clone(),
            }],
        }
    }

    /// A token: header alg ES256 + kid + typ JWT; claims aud = app_id, azp =
    /// appid = [`GRAPH_NOTIFICATION_APP_ID`] (Graph's notification
    /// publisher), tid = tenant, iss = `https://sts.windows.net/{tenant}/`,
    /// iat = nbf = now, exp = now + 1 hour (seconds since epoch).
    pub fn token(
        &self,
        app_id: &str,
        tenant: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> Result<String, CryptoError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let iat = now.timestamp();
        let claims = Claims {
            aud: app_id,
            azp: GRAPH_NOTIFICATION_APP_ID,
            appid: GRAPH_NOTIFICATION_APP_ID,
            tid: tenant.to_string(),
            iss: format!("https://sts.windows.net/{tenant}/"),
            iat,
            nbf: iat,
            exp: iat.saturating_add(TOKEN_LIFETIME_SECS),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| CryptoError::Signing(e.to_string()))
    }
}

/// The JSON Web Key Set of `/_presenced/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JsonWebKeySet {
    /// The keys.
    pub keys: Vec<JsonWebKey>,
}

/// One public key (P-256, ES256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JsonWebKey {
    /// `EC`.
    pub kty: &'static str,
    /// `P-256`.
    pub crv: &'static str,
    /// The x coordinate, base64url.
    pub x: String,
    /// The y coordinate, base64url.
    pub y: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// `ES256`.
    pub alg: &'static str,
    /// The key id.
    pub kid: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::wall_now;
    use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
    use uuid::Uuid;

    const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
    const RSA_KEY_PEM: &str = include_str!("../../tests/fixtures/notify-rsa2048.key.pem");

    fn signer() -> ValidationTokenSigner {
        ValidationTokenSigner::from_pem(&ValidationTokenSigner::generate_pem()).unwrap()
    }

    /// Verifies as a receiver would: key from the JWKS, ES256, audience = app
    /// id, issuer of the tenant, exp and nbf checked against wall time.
    fn verify(
        jwks: &JsonWebKeySet,
        token: &str,
        tenant: Uuid,
    ) -> jsonwebtoken::errors::Result<serde_json::Value> {
        let jwk = &jwks.keys[0];
        let key = DecodingKey::from_ec_components(&jwk.x, &jwk.y)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[APP_ID]);
        validation.set_issuer(&[format!("https://sts.windows.net/{tenant}/")]);
        validation.validate_nbf = true;
        decode::<serde_json::Value>(token, &key, &validation).map(|d| d.claims)
    }

    #[test]
    fn a_token_verifies_with_the_jwks_and_has_graphs_claims() {
        let signer = signer();
        let tenant = Uuid::new_v4();
        let now = wall_now();

        let token = signer.token(APP_ID, tenant, now).unwrap();

        let claims = verify(&signer.jwks(), &token, tenant).unwrap();
        let iat = now.timestamp();
        assert_eq!(
            claims,
            serde_json::json!({
                "aud": APP_ID,
                "azp": GRAPH_NOTIFICATION_APP_ID,
                "appid": GRAPH_NOTIFICATION_APP_ID,
                "tid": tenant.to_string(),
                "iss": format!("https://sts.windows.net/{tenant}/"),
                "iat": iat,
                "nbf": iat,
                "exp": iat + 3600,
            })
        );
    }

    #[test]
    fn a_token_header_names_es256_the_kid_and_jwt() {
        let signer = signer();

        let token = signer.token(APP_ID, Uuid::new_v4(), wall_now()).unwrap();

        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(signer.kid()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn a_token_for_another_app_does_not_verify() {
        let signer = signer();
        let tenant = Uuid::new_v4();

        let token = signer.token("another-app", tenant, wall_now()).unwrap();

        assert!(verify(&signer.jwks(), &token, tenant).is_err());
    }

    #[test]
    fn a_token_signed_by_another_key_does_not_verify_with_this_jwks() {
        let ours = signer();
        let theirs = signer();
        let tenant = Uuid::new_v4();

        let token = theirs.token(APP_ID, tenant, wall_now()).unwrap();

        let err = verify(&ours.jwks(), &token, tenant).unwrap_err();
        assert_eq!(
            *err.kind(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature
        );
    }

    #[test]
    fn a_key_round_trips_through_pem_with_the_same_kid() {
        let pem = ValidationTokenSigner::generate_pem();

        let first = ValidationTokenSigner::from_pem(&pem).unwrap();
        let second = ValidationTokenSigner::from_pem(&pem).unwrap();

        assert_eq!(first.kid(), second.kid());
        assert_eq!(first.jwks(), second.jwks());
        assert_ne!(first.kid(), signer().kid());
    }

    #[test]
    fn the_kid_is_the_truncated_sha256_of_the_uncompressed_public_point() {
        let pem = ValidationTokenSigner::generate_pem();
        let point = SecretKey::from_pkcs8_pem(&pem)
            .unwrap()
            .public_key()
            .to_encoded_point(false);

        let signer = ValidationTokenSigner::from_pem(&pem).unwrap();

        assert_eq!(point.as_bytes().len(), 65);
        let expected = URL_SAFE_NO_PAD.encode(&Sha256::digest(point.as_bytes())[..16]);
        assert_eq!(signer.kid(), expected);
        assert_eq!(signer.kid().len(), 22);
    }

    #[test]
    fn the_jwks_publishes_one_es256_signing_key() {
        let signer = signer();

        let jwks = serde_json::to_value(signer.jwks()).unwrap();

        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let key = keys[0].as_object().unwrap();
        let mut names: Vec<&str> = key.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["kid"], signer.kid());
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(keys[0].clone()).unwrap();
        assert_eq!(jwk.common.key_id.as_deref(), Some(signer.kid()));
    }

    #[test]
    fn an_rsa_key_is_refused_as_a_signing_key() {
        let err = ValidationTokenSigner::from_pem(RSA_KEY_PEM).unwrap_err();

        assert!(matches!(err, CryptoError::SigningKey(_)), "{err:?}");
    }

    #[test]
    fn text_that_is_not_pem_is_refused_as_a_signing_key() {
        let err = ValidationTokenSigner::from_pem("not a key").unwrap_err();

        assert!(matches!(err, CryptoError::SigningKey(_)), "{err:?}");
    }
}
