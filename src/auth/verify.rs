//! [`TokenVerifier`]: from a raw bearer token to a [`Principal`] (SPEC §5).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::cache::{digest, remember, TokenCacheStats, Verified, VerifiedTokens};
use super::jwks::{KeyKind, KeyStore};
use super::{
    AuthConfig, AuthError, Principal, PrincipalKind, DEFAULT_AUDIENCES, PERSONAL_ACCOUNT_TENANT,
    TOKEN_CACHE_CAPACITY,
};
use crate::clock::Instant;

/// Longest token accepted, in bytes; real Entra tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 32 * 1024;

type Claims = Map<String, Value>;

/// Extracts the token from an `Authorization` header value: `Bearer <token>`
/// (scheme case-insensitive). A missing header or empty token is
/// [`AuthError::MissingToken`]; another scheme is [`AuthError::Malformed`].
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(
            "the Authorization header must use the Bearer scheme".to_owned(),
        ));
    }
    match rest.trim() {
        "" => Err(AuthError::MissingToken),
        token => Ok(token),
    }
}

/// Verifies bearer tokens. Built once at start; `Send + Sync`, share it
/// through an `Arc`.
///
/// Remembers the tokens it accepted (up to [`TOKEN_CACHE_CAPACITY`]) so that
/// a token sent again is checked only for `exp`/`nbf`; see `auth/cache.rs`
/// for why that gives the same answers as the full check.
pub struct TokenVerifier {
    hs256: Option<DecodingKey>,
    jwks: Option<KeyStore>,
    audiences: Vec<String>,
    issuer: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: i64,
    /// Tokens already verified. Belongs to this verifier: the settings above
    /// never change, so what it holds stays valid for them.
    cache: VerifiedTokens,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("hs256", &self.hs256.is_some())
            .field("jwks", &self.jwks.is_some())
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .field("cache", &self.cache)
            .finish()
    }
}

impl TokenVerifier {
    /// Loads keys (reads the JWKS file, fetches the JWKS URL once at start).
    ///
    /// Fails with [`AuthError::KeySource`] when a source cannot be read or
    /// holds no usable key, when the HS256 secret is empty, or when no key
    /// source is configured at all (no token could ever be accepted).
    pub async fn new(config: AuthConfig) -> Result<Self, AuthError> {
        if config.hs256_secret.as_ref().is_some_and(Vec::is_empty) {
            // An empty HMAC key would let anyone mint accepted tokens.
            return Err(AuthError::KeySource("the HS256 secret is empty".to_owned()));
        }
        let jwks = KeyStore::load(config.jwks_file.as_deref(), config.jwks_url.as_deref()).await?;
        if config.hs256_secret.is_none() && jwks.is_none() {
            return Err(AuthError::KeySource(
                "no HS256 secret, JWKS file or JWKS URL is configured".to_owned(),
            ));
        }
        let mut audiences: Vec<String> =
            DEFAULT_AUDIENCES.iter().map(|a| (*a).to_owned()).collect();
        audiences.extend(config.audiences);
        Ok(Self {
            hs256: config.hs256_secret.as_deref().map(DecodingKey::from_secret),
            jwks,
            audiences,
            issuer: config.issuer,
            leeway: i64::try_from(config.leeway_secs).unwrap_or(i64::MAX),
            cache: VerifiedTokens::new(TOKEN_CACHE_CAPACITY),
        })
    }

    /// The same verifier with an empty token cache of `capacity` entries.
    #[cfg(test)]
    pub(crate) fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = VerifiedTokens::new(capacity);
        self
    }

    /// Hits, misses and size of the token cache.
    pub fn cache_stats(&self) -> TokenCacheStats {
        self.cache.stats()
    }

    /// Verifies `token` (the raw JWT, without "Bearer ") against wall time
    /// `now`.
    ///
    /// Checks, in order: shape, algorithm, key, signature, `exp` (required),
    /// `nbf` (when present), `aud`, `tid` (personal accounts are refused),
    /// `iss` (when configured), `appid`/`azp`, then the token kind: `scp`
    /// makes it delegated (and requires `oid`), `roles` alone makes it an
    /// application token. A token with neither is refused as
    /// [`AuthError::Forbidden`]: it is authentic but grants nothing.
    ///
    /// A token this verifier accepted before, under the same keys, is only
    /// checked for `exp` and `nbf` against `now`; the answer is the same.
    pub async fn verify(&self, token: &str, now: Instant) -> Result<Arc<Principal>, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            // Refused by `split` without a look at keys; not worth hashing.
            return Box::pin(self.verify_fully(token, now))
                .await
                .map(|v| v.principal);
        }
        let key = digest(token);
        // Read before the key lookup in `verify_fully`: see
        // `KeyStore::generation`.
        let generation = self.jwks.as_ref().map_or(0, KeyStore::generation);
        if let Some(answer) = self
            .cache
            .lookup(&key, generation, now.timestamp(), self.leeway)
        {
            if answer.is_ok() {
                remember(token, &key);
            }
            return answer;
        }
        // Boxed, as above: the full check's state (a key fetch's among it)
        // would otherwise make every cached call's future as large, and
        // a request's future is moved whole (issue #14).
        let verified = Box::pin(self.verify_fully(token, now)).await?;
        let principal = verified.principal.clone();
        self.cache.insert(key, verified, generation);
        remember(token, &key);
        Ok(principal)
    }

    /// Every check of [`Self::verify`], without the cache.
    async fn verify_fully(&self, token: &str, now: Instant) -> Result<Verified, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        let (header, claims) = split(token)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("its header has no 'alg'"))?;
        // RFC 7515 §4.1.11: extensions named in `crit` must be understood;
        // this server understands none, so any `crit` is refused.
        if header.get("crit").is_some() {
            return Err(malformed(
                "its header lists critical extensions ('crit') this server does not support",
            ));
        }
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(malformed("its header's 'kid' is not a string")),
        };
        let (algorithm, key) = match (alg, &self.hs256, &self.jwks) {
            ("HS256", Some(secret), _) => (Algorithm::HS256, secret.clone()),
            ("RS256", _, Some(jwks)) => (
                Algorithm::RS256,
                jwks.key_for(kid, KeyKind::Rsa, now).await?,
            ),
            ("ES256", _, Some(jwks)) => (
                Algorithm::ES256,
                jwks.key_for(kid, KeyKind::EcP256, now).await?,
            ),
            (other, _, _) => return Err(AuthError::UnsupportedAlgorithm(sanitize(other))),
        };
        check_signature(token, &key, algorithm)?;
        self.principal(&claims, now)
    }

    /// Checks the claims of a token whose signature is good.
    fn principal(&self, claims: &Claims, now: Instant) -> Result<Verified, AuthError> {
        let now = now.timestamp();
        let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        // `exp` first, before `nbf` is read: an expired token is `Expired`
        // whatever its `nbf` holds.
        check_times(exp, None, now, self.leeway)?;
        let nbf = numeric_date(claims, "nbf")?;
        check_times(exp, nbf, now, self.leeway)?;
        self.check_audience(claims)?;

        let tenant = guid(claims, "tid")?.ok_or(AuthError::MissingClaim("tid"))?;
        if tenant == PERSONAL_ACCOUNT_TENANT {
            return Err(AuthError::PersonalAccount);
        }
        if let Some(expected) = &self.issuer {
            let expected = expected.replace("{tenantid}", &tenant.to_string());
            match string(claims, "iss")? {
                None => return Err(AuthError::MissingClaim("iss")),
                Some(iss) if iss != expected => return Err(AuthError::WrongIssuer),
                Some(_) => {}
            }
        }
        let present = |s: &&str| !s.is_empty();
        let app_id = string(claims, "appid")?
            .filter(present)
            .or(string(claims, "azp")?.filter(present))
            .ok_or(AuthError::MissingClaim("appid"))?
            .to_owned();
        let scopes = string(claims, "scp")?
            .map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
        let roles = string_array(claims, "roles")?;
        let (kind, scopes) = match (scopes, &roles) {
            (Some(scopes), _) => {
                let user = guid(claims, "oid")?.ok_or(AuthError::MissingClaim("oid"))?;
                (PrincipalKind::Delegated { user }, scopes)
            }
            (None, Some(_)) => (PrincipalKind::Application, Vec::new()),
            (None, None) => {
                return Err(AuthError::Forbidden(
                    "The access token carries no permissions: it has neither delegated scopes ('scp') nor application roles ('roles').".to_owned(),
                ))
            }
        };
        Ok(Verified {
            principal: Arc::new(Principal {
                tenant,
                app_id,
                kind,
                scopes,
                roles: roles.unwrap_or_default(),
            }),
            exp,
            nbf,
        })
    }

    /// `aud` (a string or an array of strings) must name an accepted
    /// audience; for an array, one accepted entry suffices.
    fn check_audience(&self, claims: &Claims) -> Result<(), AuthError> {
        let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
        let ok = match claims.get("aud") {
            None | Some(Value::Null) => return Err(AuthError::MissingClaim("aud")),
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => {
                let mut any = false;
                for aud in auds {
                    let aud = aud
                        .as_str()
                        .ok_or_else(|| malformed("its 'aud' claim holds a non-string"))?;
                    any |= accepted(aud);
                }
                any
            }
            Some(_) => return Err(malformed("its 'aud' claim is not a string or an array")),
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::WrongAudience)
        }
    }
}

fn malformed(what: &str) -> AuthError {
    AuthError::Malformed(what.to_owned())
}

/// The time checks, shared by the full verification and cache hits so both
/// answer alike: `now` (seconds since the epoch) must be before `exp` and,
/// when there is an `nbf`, not before it, each with `leeway` seconds of
/// allowance. `exp` is checked first.
pub(super) fn check_times(
    exp: i64,
    nbf: Option<i64>,
    now: i64,
    leeway: i64,
) -> Result<(), AuthError> {
    if now >= exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    if nbf.is_some_and(|nbf| now < nbf.saturating_sub(leeway)) {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}

/// Splits a compact JWT and decodes its header and claims as JSON objects.
/// The signature is left to [`check_signature`].
fn split(token: &str) -> Result<(Claims, Claims), AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("it is too long"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(malformed("it does not have three dot-separated parts"));
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(base64url(header) && base64url(claims) && base64url(signature)) {
        return Err(malformed("it contains characters outside base64url"));
    }
    Ok((
        json_object(header, "header")?,
        json_object(claims, "claims")?,
    ))
}

fn json_object(part: &str, name: &str) -> Result<Claims, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(format!("its {name} is not valid base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) | Err(_) => Err(AuthError::Malformed(format!(
            "its {name} is not a JSON object"
        ))),
    }
}

/// Checks the signature with jsonwebtoken, with all of its claim checks off:
/// times are checked against the caller's `now`, and `aud`/`iss` by us.
fn check_signature(token: &str, key: &DecodingKey, alg: Algorithm) -> Result<(), AuthError> {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    match decode::<Value>(token, key, &validation) {
        Ok(_) => Ok(()),
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => Err(malformed("it could not be decoded")),
                ErrorKind::InvalidAlgorithm => Err(AuthError::UnknownKey),
                // InvalidSignature, and crypto failures such as a signature
                // of the wrong length.
                _ => Err(AuthError::BadSignature),
            }
        }
    }
}

/// An algorithm name fit to repeat in a message: short and plain, or a
/// placeholder.
fn sanitize(alg: &str) -> String {
    let plain = alg.len() <= 16
        && !alg.is_empty()
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'+');
    if plain {
        alg.to_owned()
    } else {
        "(unrecognised)".to_owned()
    }
}

/// A NumericDate claim in whole seconds (fractions rounded down).
fn numeric_date(claims: &Claims, name: &'static str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            // Saturating float-to-int conversion; only finite values here.
            (None, Some(secs)) if secs.is_finite() => Ok(Some(secs.floor() as i64)),
            _ => Err(AuthError::Malformed(format!(
                "its '{name}' claim is not a number of seconds"
            ))),
        },
        Some(_) => Err(AuthError::Malformed(format!(
            "its '{name}' claim is not a number"
        ))),
    }
}

fn string<'c>(claims: &'c Claims, name: &'static str) -> Result<Option<&'c str>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AuthError::Malformed(format!(
            "its '{name}' claim is not a string"
        ))),
    }
}

fn string_array(claims: &Claims, name: &'static str) -> Result<Option<Vec<String>>, AuthError> {
    let bad = || AuthError::Malformed(format!("its '{name}' claim is not an array of strings"));
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// A GUID claim in the canonical hyphenated form (any case).
fn guid(claims: &Claims, name: &'static str) -> Result<Option<Uuid>, AuthError> {
    match string(claims, name)? {
        None => Ok(None),
        Some(text) => match Uuid::try_parse(text) {
            Ok(id) if text.len() == 36 => Ok(Some(id)),
            _ => Err(AuthError::Malformed(format!(
                "its '{name}' claim is not a GUID"
            ))),
        },
    }
}

#[cfg(test)]
#[path = "verify_tests/mod.rs"]
mod tests;
