//! The [`Store`] trait for [`RedisStore`]: writes take the optimistic path
//! of `writes.rs`, reads and the other operations are commands and scripts
//! (most on the global slot), and the emulator's operations walk the user
//! index.

use async_trait::async_trait;
use futures_util::{stream, StreamExt, TryStreamExt};
use uuid::Uuid;

use super::parse::{ceil_micros, instant, number, score_micros, user_keys};
use super::writes::Op;
use super::{corrupt, RedisStore, MAX_ATTEMPTS, STATE_CONCURRENCY};
use crate::clock::Instant;
use crate::domain::{due_at, UserFacts, UserKey};
use crate::store::codec::encode;
use crate::store::records::{conflict_with, deadline, lifecycle_due};
use crate::store::{
    Applied, Change, Contents, Delivery, Event, EventBounds, LifecycleEvent, NewDelivery, Payload,
    SharedState, Store, StoreError, Subscription, SubscriptionConflict,
};

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
