//! [`AuthError`]: why a request was not authenticated (401) or not
//! authorized (403).

/// Why a bearer token was refused or an operation was not allowed.
///
/// Messages are shown to API clients, so they are plain sentences that never
/// contain the token. [`AuthError::is_forbidden`] picks the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer token was sent.
    #[error(
        "No access token was provided; send one in the Authorization header as 'Bearer <token>'."
    )]
    MissingToken,
    /// The token is not a well-formed JWT (what is wrong, without the token).
    #[error("The access token is malformed: {0}.")]
    Malformed(String),
    /// The signature does not match the token's contents and key.
    #[error("The access token's signature is invalid.")]
    BadSignature,
    /// The header's `alg` is not one this server accepts with its configured
    /// keys (holds the algorithm name, sanitized).
    #[error("The access token is signed with algorithm '{0}', which this server does not accept.")]
    UnsupportedAlgorithm(String),
    /// No configured key matches the token's `kid` and algorithm.
    #[error("The access token was signed with a key this server does not know.")]
    UnknownKey,
    /// `exp` is in the past (beyond the leeway).
    #[error("The access token has expired.")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("The access token is not valid yet; its 'nbf' time is in the future.")]
    NotYetValid,
    /// `aud` names none of the accepted audiences.
    #[error("The access token was issued for a different audience.")]
    WrongAudience,
    /// `iss` differs from the configured issuer.
    #[error("The access token was issued by an issuer this server does not trust.")]
    WrongIssuer,
    /// A required claim is absent (holds the claim name).
    #[error("The access token lacks the required '{0}' claim.")]
    MissingClaim(&'static str),
    /// The token belongs to a personal Microsoft account (SPEC §5).
    #[error(
        "Personal Microsoft accounts are not supported; sign in with a work or school account."
    )]
    PersonalAccount,
    /// The token is valid but does not permit the operation (holds a sentence
    /// naming the missing permission).
    #[error("{0}")]
    Forbidden(String),
    /// Signing keys could not be loaded or used (start-up configuration).
    #[error("The token signing keys could not be used: {0}.")]
    KeySource(String),
}

impl AuthError {
    /// `true` when the caller is known but not allowed (HTTP 403), `false`
    /// when the token itself was not accepted (HTTP 401).
    pub fn is_forbidden(&self) -> bool {
        match self {
            AuthError::PersonalAccount | AuthError::Forbidden(_) => true,
            AuthError::MissingToken
            | AuthError::Malformed(_)
            | AuthError::BadSignature
            | AuthError::UnsupportedAlgorithm(_)
            | AuthError::UnknownKey
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::WrongAudience
            | AuthError::WrongIssuer
            | AuthError::MissingClaim(_)
            | AuthError::KeySource(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_personal_account_and_forbidden_are_403() {
        let all = [
            AuthError::MissingToken,
            AuthError::Malformed("x".into()),
            AuthError::BadSignature,
            AuthError::UnsupportedAlgorithm("none".into()),
            AuthError::UnknownKey,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongAudience,
            AuthError::WrongIssuer,
            AuthError::MissingClaim("tid"),
            AuthError::PersonalAccount,
            AuthError::Forbidden("Missing scope.".into()),
            AuthError::KeySource("x".into()),
        ];
        for e in all {
            let expected = matches!(e, AuthError::PersonalAccount | AuthError::Forbidden(_));
            assert_eq!(e.is_forbidden(), expected, "{e:?}");
            let text = e.to_string();
            assert!(
                text.chars().next().is_some_and(char::is_uppercase),
                "{text}"
            );
        }
    }
}
