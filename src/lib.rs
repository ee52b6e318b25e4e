//! presenced: a self-hostable presence server that speaks the Microsoft Graph presence API.
//!
//! Layers (dependencies point downwards only):
//! - [`cli`]: clap entry points (`serve`, `token`); [`config`] merges flags
//!   and the TOML file ([`listen`]: listen addresses, host names
//!   resolved when bound); [`app`] wires config, store, clock and router.
//! - [`http`]: axum router, Graph error JSON, extractors, handlers.
//! - [`service`]: the one path every write takes (store, then events).
//! - [`notify`]: subscriptions, the scheduler of time-driven changes,
//!   webhook delivery and the event stream.
//! - [`auth`]: bearer-token verification and the permission table.
//! - [`store`]: the [`store::Store`] trait and its backends (SQLite, memory).
//! - [`domain`]: the pure presence model: vocabulary, validation, `effective()`.
//! - [`clock`]: the injected clock (system or manual).
//! - [`logs`]: where log lines go (a batching log thread).

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod listen;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod service;
pub mod store;
