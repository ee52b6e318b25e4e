//! The one integration-test binary: the real router on a real listener (and,
//! for restarts, the real binary), driven over HTTP with real signed tokens.

#![allow(unreachable_pub, missing_docs)]

mod helpers;

mod presence;
mod errors;
mod permissions;
mod emulator;
mod binary;
