//! The `Authorization` header, and the verifier's thread safety.

use super::*;

// ---- Authorization header

#[test]
fn bearer_token_parses_the_header() {
    assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(bearer_token(Some("bearer   abc")), Ok("abc"));
    assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(Some("  ")), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::MissingToken));
    assert!(matches!(
        bearer_token(Some("Basic dXNlcjpwdw==")),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn verifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TokenVerifier>();
}
