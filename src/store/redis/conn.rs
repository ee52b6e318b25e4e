//! Where the Redis store lives and the connection to either kind of
//! deployment.

use std::fmt;

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// One server: `redis://HOST:PORT[/DB]` or `rediss://…` (TLS).
    Server(String),
    /// Seed nodes of a Redis Cluster, each `redis://HOST:PORT`.
    Cluster(Vec<String>),
}

impl fmt::Debug for Target {
    /// Never shows credentials: only the kind and the node count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Server(_) => f.write_str("Server(..)"),
            Target::Cluster(nodes) => write!(f, "Cluster({} seed nodes)", nodes.len()),
        }
    }
}

/// A connection to either kind of deployment.
#[derive(Clone)]
pub(super) enum Conn {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

pub(super) enum Client {
    Server(ConnectionManager),
    Cluster(Box<(ClusterClient, OnceCell<ClusterConnection>)>),
}
