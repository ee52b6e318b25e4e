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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use async_trait::async_trait;
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::codec::encode;
use super::records::{conflict_with, deadline, lifecycle_due};
use super::{
    Applied, Change, Contents, Delivery, Event, EventBounds, LifecycleEvent, NewDelivery, Payload,
    SharedState, Store, StoreError, Subscription, SubscriptionConflict,
};
use crate::clock::Instant;
use crate::domain::{due_at, UserFacts, UserKey};

mod conn;
mod events;
mod parse;
mod scripts;
mod state;
mod subscriptions;
mod sweep;
mod writes;

use conn::Client;
pub use conn::Target;
use parse::{ceil_micros, instant, number, score_micros, user_keys};
use scripts::Scripts;
use writes::Op;

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

#[async_trait]
impl Store for RedisStore {
    /// Reads the user index, then every indexed user's facts (users with
    /// none, wiped or never stored, are left out) and every subscription.
    /// Not isolated from writes other nodes make meanwhile: in Cluster the
    /// users sit in many slots, which no one Redis operation spans.
    async fn contents(&self) -> Result<Contents, StoreError> {
        let keys = self.indexed_users().await?;
        let (_, mut subscriptions) = self.all_subscriptions().await?;
        let read: Vec<(UserKey, UserFacts)> = stream::iter(keys)
            .map(|key| async move { self.read_user(key).await.map(|(_, facts)| (key, facts)) })
            .buffer_unordered(STATE_CONCURRENCY)
            .try_collect()
            .await?;
        let mut users: Vec<(UserKey, UserFacts)> = read
            .into_iter()
            .filter(|(_, facts)| facts.version > 0 && !facts.unreadable)
            .collect();
        users.sort_by_key(|(key, _)| *key);
        subscriptions.sort_by_key(|s| (s.tenant, s.id));
        Ok(Contents {
            users,
            subscriptions,
        })
    }

    /// One script on the global slot wipes the tenant's (or everyone's)
    /// index, schedule, events, subscriptions and deliveries, then each
    /// wiped user's facts go from its own slot. Atomic on one
    /// `redis-server` only up to that second step: a write another node
    /// makes in between may survive it.
    async fn reset(&self, tenant: Option<Uuid>) -> Result<(), StoreError> {
        let subv = self.g("subv");
        let args = [
            self.global.clone(),
            tenant.map(|t| t.to_string()).unwrap_or_default(),
        ];
        let flat: Vec<String> = self
            .with(|mut c, s| async move {
                s.reset
                    .key(subv)
                    .arg(&args[0])
                    .arg(&args[1])
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        stream::iter(user_keys(&flat)?)
            .map(|key| self.wipe_user(key))
            .buffer_unordered(STATE_CONCURRENCY)
            .try_collect()
            .await
    }

    /// A [`Store::reset`] of everything, then the facts (each in its slot),
    /// then the index and schedule of the restored users, then the
    /// subscriptions.
    async fn replace(&self, contents: Contents, now: Instant) -> Result<(), StoreError> {
        self.reset(None).await?;
        let users: Vec<&(UserKey, UserFacts)> = contents
            .users
            .iter()
            .filter(|(_, facts)| !facts.unreadable)
            .collect();
        let encoded: Vec<(UserKey, u64, Vec<u8>)> = users
            .iter()
            .map(|(key, facts)| (*key, facts.version, encode(facts)))
            .collect();
        stream::iter(encoded)
            .map(|(key, version, facts)| self.put_facts(key, version, facts))
            .buffer_unordered(STATE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        for chunk in users.chunks(500) {
            let mut args = vec![self.global.clone()];
            for (key, facts) in chunk {
                args.push(key.tenant.to_string());
                args.push(key.user.to_string());
                args.push(
                    due_at(facts, facts.settled_at.unwrap_or(now))
                        .map(|t| ceil_micros(t).to_string())
                        .unwrap_or_default(),
                );
                args.push(facts.sessions.len().to_string());
            }
            let tenants = self.g("tenants");
            self.with(|mut c, s| async move {
                let mut call = s.restore_users.key(tenants);
                for a in args {
                    call.arg(a);
                }
                call.invoke_async::<i64>(&mut c).await
            })
            .await?;
        }
        for subscription in &contents.subscriptions {
            self.put_subscription(subscription, None).await?;
        }
        Ok(())
    }

    /// Users from the index (`sc`, one field per indexed user), sessions
    /// and users with sessions from the running counts the moves keep
    /// (`nsess`, `nonline`), subscriptions by `HLEN`.
    async fn counts(&self) -> Result<super::StoreCounts, StoreError> {
        let (sc, subs) = (self.g("sc"), self.g("subs"));
        let (nsess, nonline) = (self.g("nsess"), self.g("nonline"));
        let (users, sessions, online, subscriptions): (u64, Option<i64>, Option<i64>, u64) = self
            .with(|mut c, _| async move {
                let users = ::redis::cmd("HLEN").arg(sc).query_async(&mut c).await?;
                let sessions = ::redis::cmd("GET").arg(nsess).query_async(&mut c).await?;
                let online = ::redis::cmd("GET").arg(nonline).query_async(&mut c).await?;
                let subscriptions = ::redis::cmd("HLEN").arg(subs).query_async(&mut c).await?;
                Ok((users, sessions, online, subscriptions))
            })
            .await?;
        let count = |n: Option<i64>| Some(u64::try_from(n.unwrap_or(0)).unwrap_or(0));
        Ok(super::StoreCounts {
            users: Some(users),
            users_with_sessions: count(online),
            sessions: count(sessions),
            subscriptions: Some(subscriptions),
        })
    }

    /// A page of the tenant's index (`ZRANGEBYLEX`: the ids are members
    /// of equal score, so in id order), then each user's facts; a user
    /// wiped meanwhile is left out.
    async fn users_page(
        &self,
        tenant: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<(Uuid, UserFacts)>, StoreError> {
        let index = self.g(&format!("users:{tenant}"));
        let from = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        let ids: Vec<String> = self
            .with(|mut c, _| async move {
                ::redis::cmd("ZRANGEBYLEX")
                    .arg(index)
                    .arg(from)
                    .arg("+")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let keys = ids
            .iter()
            .map(|id| {
                Ok(UserKey {
                    tenant,
                    user: Uuid::parse_str(id).map_err(corrupt)?,
                })
            })
            .collect::<Result<Vec<UserKey>, StoreError>>()?;
        let read: Vec<(UserKey, UserFacts)> = stream::iter(keys)
            .map(|key| async move { self.read_user(key).await.map(|(_, facts)| (key, facts)) })
            .buffered(STATE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(read
            .into_iter()
            .filter(|(_, facts)| facts.version > 0)
            .map(|(key, facts)| (key.user, facts))
            .collect())
    }

    async fn apply(
        &self,
        key: UserKey,
        change: Change,
        now: Instant,
    ) -> Result<Applied, StoreError> {
        self.write(key, Op::Apply(change, now))
            .await?
            .ok_or_else(|| StoreError::Unavailable("redis: a write recorded nothing".into()))
    }

    async fn facts_for(&self, tenant: Uuid, users: &[Uuid]) -> Result<Vec<UserFacts>, StoreError> {
        let reads = users.iter().map(|user| {
            self.read_user(UserKey {
                tenant,
                user: *user,
            })
        });
        let read = futures_util::future::join_all(reads).await;
        read.into_iter()
            .map(|r| r.map(|(_, facts)| facts))
            .collect()
    }

    async fn settle(&self, key: UserKey, at: Instant) -> Result<Option<Applied>, StoreError> {
        self.write(key, Op::Settle(at)).await
    }

    async fn due_users(
        &self,
        by: Instant,
        limit: usize,
    ) -> Result<Vec<(UserKey, Instant)>, StoreError> {
        let due = self.g("due");
        let rows: Vec<(String, String)> = self
            .with(|mut c, _| async move {
                ::redis::cmd("ZRANGEBYSCORE")
                    .arg(due)
                    .arg("-inf")
                    .arg(by.timestamp_micros())
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        rows.iter()
            .map(|(tu, score)| {
                let (t, u) = tu
                    .split_once(':')
                    .ok_or_else(|| corrupt("a scheduled user"))?;
                let key = UserKey {
                    tenant: Uuid::parse_str(t).map_err(corrupt)?,
                    user: Uuid::parse_str(u).map_err(corrupt)?,
                };
                Ok((key, instant(score_micros(score)?)?))
            })
            .collect()
    }

    async fn events_since(
        &self,
        tenant: Option<Uuid>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let index = match tenant {
            Some(t) => self.g(&format!("evt:{t}")),
            None => self.g("ev"),
        };
        let prefix = self.global.clone();
        let flat: Vec<String> = self
            .with(|mut c, s| async move {
                s.events
                    .key(index)
                    .arg(prefix)
                    .arg(after)
                    .arg(limit)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        flat.chunks_exact(2)
            .map(|pair| Self::parse_event(&pair[0], &pair[1]))
            .collect()
    }

    async fn event_bounds(&self) -> Result<EventBounds, StoreError> {
        let (pruned, seq) = (self.g("pruned"), self.g("seq"));
        let (pruned, last): (Option<u64>, Option<u64>) = self
            .with(|mut c, _| async move {
                ::redis::cmd("MGET")
                    .arg(pruned)
                    .arg(seq)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(EventBounds {
            pruned_through: pruned.unwrap_or(0),
            last: last.unwrap_or(0),
        })
    }

    async fn prune_events(&self, before: Instant) -> Result<u64, StoreError> {
        const PAGE: usize = 200;
        let mut dropped = 0;
        loop {
            let oldest = self.events_since(None, 0, PAGE).await?;
            let cut: Vec<&Event> = oldest.iter().take_while(|e| e.at < before).collect();
            if cut.is_empty() {
                return Ok(dropped);
            }
            let whole_page = cut.len() == PAGE;
            let mut args = vec![self.global.clone()];
            for e in &cut {
                args.push(e.seq.to_string());
                args.push(e.key.tenant.to_string());
            }
            let pruned = self.g("pruned");
            dropped += self
                .with(|mut c, s| async move {
                    let mut call = s.prune.key(pruned);
                    for a in args {
                        call.arg(a);
                    }
                    call.invoke_async::<u64>(&mut c).await
                })
                .await?;
            if !whole_page {
                return Ok(dropped);
            }
        }
    }

    async fn create_subscription(
        &self,
        subscription: Subscription,
        one_per_user_and_app: bool,
    ) -> Result<Result<(), SubscriptionConflict>, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let (version, existing) = self.all_subscriptions().await?;
            if let Some(conflict) =
                conflict_with(existing.iter(), &subscription, one_per_user_and_app)
            {
                return Ok(Err(conflict));
            }
            if self.put_subscription(&subscription, Some(version)).await? {
                return Ok(Ok(()));
            }
        }
        Err(StoreError::Unavailable(
            "redis: gave up creating a subscription after too many concurrent changes".into(),
        ))
    }

    async fn subscription(
        &self,
        tenant: Uuid,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        let subs = self.g("subs");
        let record: Option<String> = self
            .with(|mut c, _| async move {
                ::redis::cmd("HGET")
                    .arg(subs)
                    .arg(id.to_string())
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(record) = record else {
            return Ok(None);
        };
        let s: Subscription = serde_json::from_str(&record).map_err(corrupt)?;
        Ok((s.tenant == tenant).then_some(s))
    }

    async fn subscriptions_of(
        &self,
        tenant: Uuid,
        app_id: &str,
    ) -> Result<Vec<Subscription>, StoreError> {
        let (_, all) = self.all_subscriptions().await?;
        let mut out: Vec<Subscription> = all
            .into_iter()
            .filter(|s| s.tenant == tenant && s.app_id == app_id)
            .collect();
        out.sort_by_key(|s| (s.created_at, s.id));
        Ok(out)
    }

    async fn update_subscription(&self, subscription: Subscription) -> Result<bool, StoreError> {
        let json = serde_json::to_string(&subscription).map_err(corrupt)?;
        let args = [
            self.global.clone(),
            subscription.id.to_string(),
            subscription.tenant.to_string(),
            json,
            subscription.expires_at.timestamp_micros().to_string(),
        ];
        let subv = self.g("subv");
        let updated: i64 = self
            .with(|mut c, s| async move {
                let mut call = s.update_subscription.key(subv);
                for a in args {
                    call.arg(a);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(updated == 1)
    }

    async fn delete_subscription(&self, tenant: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let args = [self.global.clone(), id.to_string(), tenant.to_string()];
        let subv = self.g("subv");
        let deleted: i64 = self
            .with(|mut c, s| async move {
                let mut call = s.delete_subscription.key(subv);
                for a in args {
                    call.arg(a);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(deleted == 1)
    }

    async fn subscriptions_due(
        &self,
        by: Instant,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Vec<Subscription>, StoreError> {
        let (_, all) = self.all_subscriptions().await?;
        Ok(lifecycle_due(all.iter(), by, reauthorize_before))
    }

    async fn next_subscription_deadline(
        &self,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Option<Instant>, StoreError> {
        let (_, all) = self.all_subscriptions().await?;
        Ok(all.iter().map(|s| deadline(s, reauthorize_before)).min())
    }

    async fn enqueue(&self, deliveries: Vec<NewDelivery>, now: Instant) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut args = vec![self.global.clone(), now.timestamp_micros().to_string()];
        for d in &deliveries {
            args.push(d.subscription.to_string());
            args.push(d.tenant.to_string());
            args.push(serde_json::to_string(&d.payload).map_err(corrupt)?);
            let once = matches!(
                d.payload,
                Payload::Lifecycle {
                    event: LifecycleEvent::ReauthorizationRequired
                }
            );
            args.push(if once { "1" } else { "0" }.to_string());
        }
        let counter = self.g("dn");
        self.with(|mut c, s| async move {
            let mut call = s.enqueue.key(counter);
            for a in args {
                call.arg(a);
            }
            call.invoke_async::<i64>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    async fn due_deliveries(
        &self,
        now: Instant,
        limit: usize,
        skip: &[u64],
    ) -> Result<Vec<Delivery>, StoreError> {
        let (queue, prefix) = (self.g("dq"), self.global.clone());
        let count = limit.saturating_add(skip.len());
        let (node, lease) = (self.node.to_string(), self.delivery_lease.as_millis());
        let lease = u64::try_from(lease).unwrap_or(u64::MAX);
        let flat: Vec<String> = self
            .with(|mut c, s| async move {
                s.due_deliveries
                    .key(queue)
                    .arg(prefix)
                    .arg(now.timestamp_micros())
                    .arg(count)
                    .arg(node)
                    .arg(lease)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let mut out = vec![];
        for row in flat.chunks_exact(7) {
            let id: u64 = number(&row[0])?;
            if skip.contains(&id) {
                continue;
            }
            out.push(Delivery {
                id,
                subscription: Uuid::parse_str(&row[1]).map_err(corrupt)?,
                tenant: Uuid::parse_str(&row[2]).map_err(corrupt)?,
                payload: serde_json::from_str::<Payload>(&row[3]).map_err(corrupt)?,
                created_at: instant(number(&row[4])?)?,
                next_at: instant(number(&row[5])?)?,
                attempts: number(&row[6])?,
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    async fn next_delivery_at(&self, skip: &[u64]) -> Result<Option<Instant>, StoreError> {
        let queue = self.g("dq");
        let mut args = vec![self.global.clone(), self.node.to_string()];
        args.extend(skip.iter().map(u64::to_string));
        let score: Option<String> = self
            .with(|mut c, s| async move {
                let mut call = s.next_delivery.key(queue);
                for a in args {
                    call.arg(a);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        score
            .map(|score| instant(score_micros(&score)?))
            .transpose()
    }

    async fn remove_deliveries(&self, ids: &[u64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let queue = self.g("dq");
        let mut args = vec![self.global.clone()];
        args.extend(ids.iter().map(u64::to_string));
        self.with(|mut c, s| async move {
            let mut call = s.remove_deliveries.key(queue);
            for a in args {
                call.arg(a);
            }
            call.invoke_async::<i64>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    async fn retry_deliveries(&self, ids: &[u64], next_at: Instant) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let queue = self.g("dq");
        let mut args = vec![self.global.clone(), next_at.timestamp_micros().to_string()];
        args.extend(ids.iter().map(u64::to_string));
        self.with(|mut c, s| async move {
            let mut call = s.retry_deliveries.key(queue);
            for a in args {
                call.arg(a);
            }
            call.invoke_async::<i64>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    async fn keep_secret(&self, name: &str, candidate: String) -> Result<String, StoreError> {
        let secrets = self.g("secrets");
        let name = name.to_string();
        let kept: Option<String> = self
            .with(|mut c, _| async move {
                ::redis::cmd("HSETNX")
                    .arg(&secrets)
                    .arg(&name)
                    .arg(candidate)
                    .query_async::<i64>(&mut c)
                    .await?;
                ::redis::cmd("HGET")
                    .arg(&secrets)
                    .arg(&name)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        kept.ok_or_else(|| corrupt("a kept secret vanished"))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A key on the global slot: the node every write needs.
        let seq = self.g("seq");
        self.command(::redis::cmd("EXISTS").arg(seq).clone()).await
    }

    async fn save_emulator_time(&self, now: Instant) -> Result<(), StoreError> {
        let key = self.g("emulator-time");
        self.with(|mut c, s| async move {
            s.save_time
                .key(key)
                .arg(now.timestamp_micros())
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    async fn shared_state(&self) -> Result<Option<SharedState>, StoreError> {
        let keys = [self.g("seq"), self.g("subv"), self.g("emulator-time")];
        let (last, subscriptions, time): (Option<u64>, Option<u64>, Option<i64>) = self
            .with(
                |mut c, _| async move { ::redis::cmd("MGET").arg(&keys).query_async(&mut c).await },
            )
            .await?;
        Ok(Some(SharedState {
            last_event: last.unwrap_or(0),
            subscriptions: subscriptions.unwrap_or(0),
            emulator_time: time.map(instant).transpose()?,
        }))
    }

    async fn emulator_time(&self) -> Result<Option<Instant>, StoreError> {
        let key = self.g("emulator-time");
        let micros: Option<i64> = self
            .with(|mut c, _| async move { ::redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        micros.map(instant).transpose()
    }
}

/// Real `redis-server` processes for the tests (shared with `tests/api`).
#[cfg(test)]
#[path = "../../../tests/api/redis_server.rs"]
pub(crate) mod test_server;

#[cfg(test)]
mod tests;
