//! The Redis backend: one `redis-server` or a Redis Cluster, shared by any
//! number of presenced nodes.
//!
//! # Keys and slots
//!
//! Every key starts with a namespace (`presenced` by default, so several
//! deployments can share one Redis) and carries a hash tag, so the keys one
//! script touches always sit in one Cluster slot:
//!
//! - **Per user** (`<ns>:{t:<tenant>:u:<user>}:…`): the facts hash (`v`
//!   version, `f` the [`codec`](super::codec) bytes, the same as SQLite's,
//!   `n` a write counter) and the user's *outbox* list. Users spread over
//!   every master.
//! - **Global** (`<ns>:{g}:…`, one fixed tag): the event log and its seq,
//!   the due-users schedule, subscriptions and their watch sets, the
//!   delivery queue, kept secrets, the emulator time and the in-flight
//!   markers. One tag for all of them because a moved outbox entry records
//!   an event, queues deliveries and reschedules the user in one script.
//!   This slot is the write hot spot of a cluster (every write touches it
//!   once); splitting it is future work.
//!
//! # One write
//!
//! The domain decides what a write means, in Rust, so a write is
//! optimistic: read the facts and the write counter `n`, apply the change,
//! then one script on the user's slot stores the new facts *and* an outbox
//! entry (the event, the change payload for watchers, the next transition)
//! only if `n` is unchanged; on a conflict the writer reads again and
//! retries (bounded, with jitter). Two writers on one user therefore never
//! lose each other's change.
//!
//! The event log and the delivery queue live in another slot, so the
//! outbox entry is then *moved* by a second script on the global slot,
//! which assigns the event's seq, queues one delivery per live watching
//! subscription and updates the schedule. Moving is idempotent (the global
//! slot remembers the last moved `n` of each user) and always moves the
//! user's whole outbox in `n` order, so events keep the order of the
//! writes. A third script trims what was moved from the user's outbox.
//!
//! What if a node dies between the user script and the move? Before its
//! user script, a writer marks the user in-flight on the global slot (a
//! count and the Redis server time); the move ends the mark. A
//! sweeper ([`RedisStore::recover_outboxes`], run in the background by every
//! node) moves the outbox of every user marked longer ago than
//! [`QUIET`] and clears the mark. A writer gives up before its user
//! script once [`WRITER_DEADLINE`] (well below `QUIET`) has passed since
//! it marked the user, so the sweeper never clears a mark under a write
//! still on its way. Such a write's event and deliveries are therefore
//! recorded at the latest `QUIET` plus a sweep interval after the writer
//! died, or at the user's next write, whichever comes first. (A writer
//! whose move fails answers `Unavailable` although its facts are stored;
//! the client's retry is a harmless second write.)
//!
//! Costs and limits: a write is five round trips, four in sequence (the
//! mark beside the read, the user script, the move, which also ends the
//! mark, and the trim); subscription queries read every subscription
//! (fine for thousands); the global slot takes part in every write.
//!
//! # Deliveries across nodes
//!
//! Every node runs a delivery worker on shared queues in two stages. A
//! delivery waits in a sorted set by its `next_at` (presence time: a new
//! one, or a failed one waiting for its retry). `due_deliveries` first
//! moves those due into a Redis Stream, atomically (one script), and reads
//! it with a consumer group, the node being the consumer (a random node
//! id): `XREADGROUP` hands each entry to one node. A sent delivery is
//! `XACK`ed and `XDEL`eted; a failed attempt leaves the stream and goes
//! back to the sorted set with its next `next_at`. Each entry a node holds
//! carries a lease (Redis server time plus [`DELIVERY_LEASE`], renewed
//! each time the node's worker is handed it); once it lapses, any node
//! takes the entry over with `XCLAIM` (not `XAUTOCLAIM`: the lease is the
//! holder's, and nodes may be configured with different ones). Other
//! nodes neither get a held entry nor see it in `next_delivery_at`. A node
//! that dies with deliveries in hand therefore loses them to another node
//! after the lease: at least once, and normally exactly once. (A worker
//! that keeps one POST in flight longer than the lease, with no round in
//! between, may see it sent twice.) The stream never holds an entry before
//! it is due, which is why not-yet-due ones wait in the sorted set.
//!
//! Settling a time-driven transition is a write like any other: when every
//! node's scheduler finds the same user due, one wins the write and the
//! others find it already settled, so the change is recorded, and
//! delivered, once. Every scheduler also queues a subscription's
//! `reauthorizationRequired` at the same instant; `enqueue` keeps one per
//! subscription and instant.
//!
//! # The user index and the emulator's state
//!
//! The move also indexes the user: a sorted set of user ids per tenant
//! (score 0, so ordered by id) and a set of tenants, both on the global
//! slot, so the index costs one `ZADD` and one `SADD` inside a script that
//! runs anyway. (The other way, a `SCAN` of every master of a cluster, would
//! read every key of the deployment to find the users.) The emulator's
//! operations use it: [`Store::contents`] reads the index, then each user;
//! [`Store::reset`] wipes the global slot's part in one script and then
//! each wiped user's facts in its own slot; [`Store::replace`] is a reset,
//! the facts, then one script indexing and scheduling the restored users.
//! These are not isolated from writes that other nodes make meanwhile
//! (no Redis operation spans every slot); they are meant for an emulator
//! nobody else writes to at that moment.
//!
//! # Failures
//!
//! Every operation answers within [`OPERATION_TIMEOUT`]; an unreachable
//! Redis is [`StoreError::Unavailable`]. Connections are made lazily and
//! re-made by themselves, so a node started before Redis, or outliving a
//! Redis restart, recovers without help.
//!
//! Durability is Redis's: with `appendonly yes` and `appendfsync always`
//! a write is on disk before Redis answers, so before presenced does.
//!
//! [`Store::contents`]: crate::store::Store::contents
//! [`Store::reset`]: crate::store::Store::reset
//! [`Store::replace`]: crate::store::Store::replace

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{StoreCounts, StoreError};
use crate::domain::UserKey;

mod conn;
mod events;
mod parse;
mod scripts;
mod state;
mod subscriptions;
mod sweep;
mod trait_impl;
mod writes;

use conn::Client;
pub use conn::Target;
use scripts::Scripts;

/// Longest any store operation may take before it is `Unavailable`.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a writer may take from marking a user in-flight to its user
/// script; past it the write is abandoned (nothing was stored).
pub const WRITER_DEADLINE: Duration = Duration::from_secs(20);
/// How long a user must have been marked in-flight before the sweeper
/// moves its outbox.
pub const QUIET: Duration = Duration::from_secs(60);
/// How often each node sweeps for abandoned outboxes.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// How long a delivery handed to one node's worker is kept from the
/// others (Redis server time); a node that dies holding deliveries loses
/// them to another node after this.
pub const DELIVERY_LEASE: Duration = Duration::from_secs(60);
/// How many users the emulator's state operations read or write at once.
const STATE_CONCURRENCY: usize = 32;
/// How often a writer retries after losing a race on its user.
const MAX_ATTEMPTS: u32 = 100;

/// Presence facts, the event log, subscriptions and deliveries in Redis.
pub struct RedisStore {
    client: Client,
    /// `<ns>:{g}:`, the prefix of every global key.
    global: String,
    /// `<ns>`, the start of every per-user key.
    namespace: String,
    scripts: Arc<Scripts>,
    /// This store's consumer name in the deliveries' consumer group.
    node: Uuid,
    /// How long a delivery this node holds keeps other nodes off it.
    delivery_lease: Duration,
    sweeper: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Ok(mut sweeper) = self.sweeper.lock() {
            if let Some(task) = sweeper.take() {
                task.abort();
            }
        }
    }
}

fn unavailable(e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(e: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects (lazily: a Redis that is down now is found later) to
    /// `target`, keeping every key under `namespace` (which must not contain
    /// braces). Starts the background sweeper of abandoned outboxes; must be
    /// called inside a tokio runtime.
    pub async fn open(target: &Target, namespace: &str) -> Result<Self, StoreError> {
        if namespace.is_empty() || namespace.contains(['{', '}']) {
            return Err(StoreError::Unavailable(
                "the redis namespace must be non-empty and have no braces".into(),
            ));
        }
        let client = match target {
            Target::Server(url) => {
                let client = ::redis::Client::open(url.as_str())
                    .map_err(|e| unavailable(format!("invalid redis URL ({:?})", e.kind())))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Client::Server(
                    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?,
                )
            }
            Target::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(Duration::from_secs(2))
                    .retries(2)
                    .build()
                    .map_err(|e| unavailable(format!("invalid cluster nodes ({:?})", e.kind())))?;
                Client::Cluster(Box::new((client, OnceCell::new())))
            }
        };
        let store = Self {
            client,
            global: format!("{namespace}:{{g}}:"),
            namespace: namespace.to_string(),
            scripts: Arc::new(Scripts::new()),
            node: Uuid::new_v4(),
            delivery_lease: DELIVERY_LEASE,
            sweeper: std::sync::Mutex::new(None),
        };
        Ok(store)
    }

    /// The same store with another delivery lease (tests use a short one).
    pub fn with_delivery_lease(mut self, lease: Duration) -> Self {
        self.delivery_lease = lease;
        self
    }

    fn user_key(&self, key: UserKey, what: &str) -> String {
        format!(
            "{}:{{t:{}:u:{}}}:{what}",
            self.namespace, key.tenant, key.user
        )
    }

    fn g(&self, what: &str) -> String {
        format!("{}{what}", self.global)
    }
}

/// Real `redis-server` processes for the tests (shared with `tests/api`).
#[cfg(test)]
#[path = "../../../tests/api/redis_server.rs"]
pub(crate) mod test_server;

#[cfg(test)]
mod tests;
