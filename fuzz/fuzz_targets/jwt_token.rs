//! `TokenVerifier::verify` on arbitrary token text (and `bearer_token` on
//! it as an `Authorization` value). Never panics, and never accepts: no
//! input can carry a valid HMAC under the secret it does not know.
#![no_main]

use libfuzzer_sys::fuzz_target;
use presenced::auth::bearer_token;
use presenced_fuzz::{now, verifier, verify};

fuzz_target!(|text: &str| {
    if let Err(e) = bearer_token(Some(text)) {
        assert!(!e.to_string().is_empty());
    }
    match verify(verifier(), text, now()) {
        Ok(principal) => panic!("{text:?} was accepted as {principal:?}"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
