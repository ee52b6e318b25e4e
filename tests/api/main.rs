//! The one integration-test binary: the real router on a real listener (and,
//! for restarts, the real binary), driven over HTTP with real signed tokens.

#![allow(
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod helpers;

mod batch;
mod binary;
mod cli_client;
mod connections;
mod emulator;
mod emulator_binary;
mod emulator_state;
mod errors;
mod integrity;
mod jwks;
mod notifications;
mod observability;
mod openapi;
mod permissions;
mod presence;
mod process;
mod receiver;
mod redis_server;
mod robustness;
mod scale_out;
mod select;
mod time_rules;
mod users_listing;
