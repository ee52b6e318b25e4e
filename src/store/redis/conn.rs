//! Where the Redis store lives and the connection to either kind of
//! deployment.

use std::fmt;
use std::sync::Arc;

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

use super::scripts::Scripts;
use super::{unavailable, RedisStore, OPERATION_TIMEOUT};
use crate::store::StoreError;

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

impl RedisStore {
    async fn conn(&self) -> Result<Conn, StoreError> {
        match &self.client {
            Client::Server(manager) => Ok(Conn::Server(manager.clone())),
            Client::Cluster(cluster) => {
                let (client, cell) = &**cluster;
                let conn = tokio::time::timeout(
                    OPERATION_TIMEOUT,
                    cell.get_or_try_init(|| client.get_async_connection()),
                )
                .await
                .map_err(|_| unavailable("connecting to the cluster timed out"))?
                .map_err(unavailable)?;
                Ok(Conn::Cluster(conn.clone()))
            }
        }
    }

    /// Runs `f` on a connection within [`OPERATION_TIMEOUT`].
    pub(super) async fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn, Arc<Scripts>) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        tokio::time::timeout(OPERATION_TIMEOUT, f(conn, self.scripts.clone()))
            .await
            .map_err(|_| unavailable("no answer in time"))?
            .map_err(unavailable)
    }

    /// Runs one command whose answer is not needed.
    pub(super) async fn command(&self, cmd: ::redis::Cmd) -> Result<(), StoreError> {
        self.with(|mut c, _| async move { cmd.query_async::<()>(&mut c).await })
            .await
    }
}
