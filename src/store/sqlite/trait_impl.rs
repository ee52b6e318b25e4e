//! The [`Store`] trait for [`SqliteStore`]: each method hands its work to
//! the writer thread or a reader connection.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::read::{facts_in_row, instant, last_event_seq, uuid};
use super::schema::{mark_pruned_through, EMULATOR_TIME, EVENTS_PRUNED_THROUGH, WRITE_PROBE};
use super::subscriptions::{app_subscriptions, parse_subscription, put_subscription, watch_users};
use super::writer::{insert_delivery, Done, Job};
use super::{unavailable, SqliteStore};
use crate::clock::Instant;
use crate::domain::{UserFacts, UserKey};
use crate::store::codec::{decode, unreadable};
use crate::store::records::{conflict_with, deadline};
use crate::store::{
    Applied, Change, Contents, Delivery, Event, EventBounds, NewDelivery, Payload, Store,
    StoreError, Subscription, SubscriptionConflict,
};

#[async_trait]
impl Store for SqliteStore {
    async fn apply(
        &self,
        key: UserKey,
        change: Change,
        now: Instant,
    ) -> Result<Applied, StoreError> {
        match self.write(Job::Apply { key, change }, now).await? {
            Done::Applied(applied) => Ok(*applied),
            _ => Err(StoreError::Unavailable("unexpected writer answer".into())),
        }
    }

    /// From the resident copy: no SQLite, no blocking thread.
    async fn facts_for(&self, tenant: Uuid, users: &[Uuid]) -> Result<Vec<UserFacts>, StoreError> {
        Ok(self.resident.facts_for(tenant, users))
    }

    /// From the resident copy: no SQLite, no blocking thread.
    async fn facts(&self, key: UserKey) -> Result<UserFacts, StoreError> {
        Ok(self.resident.facts(key))
    }

    async fn settle(&self, key: UserKey, at: Instant) -> Result<Option<Applied>, StoreError> {
        match self.write(Job::Settle { key }, at).await? {
            Done::Settled(applied) => Ok(applied.map(|a| *a)),
            _ => Err(StoreError::Unavailable("unexpected writer answer".into())),
        }
    }

    async fn due_users(
        &self,
        by: Instant,
        limit: usize,
    ) -> Result<Vec<(UserKey, Instant)>, StoreError> {
        let by = by.timestamp_micros();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT tenant, user, next_change FROM users
                     WHERE next_change IS NOT NULL AND next_change <= ?1
                     ORDER BY next_change LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![by, limit], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(unavailable)?;
            rows.map(|row| {
                let (t, u, at) = row.map_err(unavailable)?;
                let key = UserKey {
                    tenant: uuid(&t)?,
                    user: uuid(&u)?,
                };
                Ok((key, instant(at)?))
            })
            .collect()
        })
        .await
    }

    async fn events_since(
        &self,
        tenant: Option<Uuid>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let health = self.health.clone();
        self.read(move |conn| {
            let (sql, tenant_bytes) = match tenant {
                Some(t) => (
                    "SELECT seq, tenant, user, at, version, facts FROM events
                     WHERE tenant = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2",
                    t.as_bytes().to_vec(),
                ),
                None => (
                    "SELECT seq, tenant, user, at, version, facts FROM events
                     WHERE seq > ?1 AND ?3 IS NOT NULL ORDER BY seq LIMIT ?2",
                    Vec::new(),
                ),
            };
            let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
            let rows = stmt
                .query_map(params![after, limit, tenant_bytes], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        // Checked per event below, as for users.
                        r.get::<_, Vec<u8>>(5),
                    ))
                })
                .map_err(unavailable)?;
            rows.map(|row| {
                let (seq, t, u, at, version, facts) = row.map_err(unavailable)?;
                let key = UserKey {
                    tenant: uuid(&t)?,
                    user: uuid(&u)?,
                };
                let version = u64::try_from(version).unwrap_or(0);
                // An event whose facts do not decode still holds its place
                // in the log (a stream must not stall on it): it shows the
                // user as PresenceUnknown.
                let facts = facts
                    .map_err(|e| StoreError::Corrupt(format!("facts column: {e}")))
                    .and_then(|facts| decode(&facts, version))
                    .unwrap_or_else(|e| {
                        health.unreadable_row("event facts", key, &e);
                        unreadable(version)
                    });
                Ok(Event {
                    seq: u64::try_from(seq).map_err(unavailable)?,
                    key,
                    at: instant(at)?,
                    facts,
                })
            })
            .collect()
        })
        .await
    }

    async fn event_bounds(&self) -> Result<EventBounds, StoreError> {
        self.read(|conn| {
            let last = last_event_seq(conn)?;
            let pruned: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [EVENTS_PRUNED_THROUGH],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            Ok(EventBounds {
                pruned_through: pruned.and_then(|p| p.parse().ok()).unwrap_or(0),
                last: last.and_then(|l| u64::try_from(l).ok()).unwrap_or(0),
            })
        })
        .await
    }

    async fn prune_events(&self, before: Instant) -> Result<u64, StoreError> {
        self.run(before, move |tx| {
            // Only the leading run of old events goes, as in the memory
            // store: events are not recorded in time order (a settle at a
            // transition's instant can follow a later write), and
            // `pruned_through` must keep meaning "everything above is kept".
            let (first_kept, last): (Option<i64>, Option<i64>) = tx
                .query_row(
                    "SELECT (SELECT MIN(seq) FROM events WHERE at >= ?1), (SELECT MAX(seq) FROM events)",
                    [before.timestamp_micros()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(unavailable)?;
            let through = match (first_kept, last) {
                (Some(first), _) => Some(first - 1),
                (None, last) => last,
            }
            .filter(|t| *t > 0);
            let Some(through) = through else {
                return Ok(0);
            };
            let n = tx
                .execute("DELETE FROM events WHERE seq <= ?1", [through])
                .map_err(unavailable)?;
            mark_pruned_through(tx, through)?;
            Ok(n as u64)
        })
        .await
    }

    async fn create_subscription(
        &self,
        subscription: Subscription,
        one_per_user_and_app: bool,
    ) -> Result<Result<(), SubscriptionConflict>, StoreError> {
        self.run(subscription.created_at, move |tx| {
            let existing = app_subscriptions(tx, subscription.tenant, &subscription.app_id)?;
            if let Some(c) = conflict_with(existing.iter(), &subscription, one_per_user_and_app) {
                return Ok(Err(c));
            }
            put_subscription(tx, &subscription)?;
            watch_users(tx, &subscription)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn subscription(
        &self,
        tenant: Uuid,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        self.read(move |conn| {
            let record: Option<String> = conn
                .query_row(
                    "SELECT record FROM subscriptions WHERE id = ?1 AND tenant = ?2",
                    params![id.as_bytes(), tenant.as_bytes()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            record.map(|r| parse_subscription(&r)).transpose()
        })
        .await
    }

    async fn subscriptions_of(
        &self,
        tenant: Uuid,
        app_id: &str,
    ) -> Result<Vec<Subscription>, StoreError> {
        let app_id = app_id.to_string();
        self.read(move |conn| {
            let mut out = app_subscriptions(conn, tenant, &app_id)?;
            out.sort_by_key(|s| (s.created_at, s.id));
            Ok(out)
        })
        .await
    }

    async fn update_subscription(&self, subscription: Subscription) -> Result<bool, StoreError> {
        self.run(subscription.created_at, move |tx| {
            let exists = tx
                .query_row(
                    "SELECT 1 FROM subscriptions WHERE id = ?1 AND tenant = ?2",
                    params![subscription.id.as_bytes(), subscription.tenant.as_bytes()],
                    |_| Ok(()),
                )
                .optional()
                .map_err(unavailable)?
                .is_some();
            if exists {
                put_subscription(tx, &subscription)?;
            }
            Ok(exists)
        })
        .await
    }

    async fn delete_subscription(&self, tenant: Uuid, id: Uuid) -> Result<bool, StoreError> {
        self.run(chrono::DateTime::UNIX_EPOCH, move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM subscriptions WHERE id = ?1 AND tenant = ?2",
                    params![id.as_bytes(), tenant.as_bytes()],
                )
                .map_err(unavailable)?;
            if n > 0 {
                tx.execute(
                    "DELETE FROM subscription_expiry WHERE id = ?1",
                    params![id.as_bytes()],
                )
                .map_err(unavailable)?;
                tx.execute(
                    "DELETE FROM watches WHERE tenant = ?1 AND subscription = ?2",
                    params![tenant.as_bytes(), id.as_bytes()],
                )
                .map_err(unavailable)?;
                tx.execute(
                    "DELETE FROM outbox WHERE subscription = ?1",
                    params![id.as_bytes()],
                )
                .map_err(unavailable)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn subscriptions_due(
        &self,
        by: Instant,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Vec<Subscription>, StoreError> {
        let early = reauthorize_before.num_microseconds().unwrap_or(0);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM subscriptions
                     WHERE (CASE WHEN reauth_sent THEN expires_at ELSE expires_at - ?2 END) <= ?1",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![by.timestamp_micros(), early], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(unavailable)?;
            let mut out = rows
                .map(|r| parse_subscription(&r.map_err(unavailable)?))
                .collect::<Result<Vec<_>, _>>()?;
            out.sort_by_key(|s| (deadline(s, reauthorize_before), s.id));
            Ok(out)
        })
        .await
    }

    async fn next_subscription_deadline(
        &self,
        reauthorize_before: chrono::TimeDelta,
    ) -> Result<Option<Instant>, StoreError> {
        let early = reauthorize_before.num_microseconds().unwrap_or(0);
        self.read(move |conn| {
            let at: Option<i64> = conn
                .query_row(
                    "SELECT MIN(CASE WHEN reauth_sent THEN expires_at ELSE expires_at - ?1 END)
                     FROM subscriptions",
                    [early],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            at.map(instant).transpose()
        })
        .await
    }

    async fn enqueue(&self, deliveries: Vec<NewDelivery>, now: Instant) -> Result<(), StoreError> {
        self.run(now, move |tx| {
            for d in &deliveries {
                insert_delivery(tx, d, now)?;
            }
            Ok(())
        })
        .await
    }

    async fn due_deliveries(
        &self,
        now: Instant,
        limit: usize,
        skip: &[u64],
    ) -> Result<Vec<Delivery>, StoreError> {
        // A set: up to `limit + skip.len()` rows are checked against it.
        let skip: HashSet<u64> = skip.iter().copied().collect();
        let fetch = i64::try_from(limit + skip.len()).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, subscription, tenant, payload, created_at, next_at, attempts
                     FROM outbox WHERE next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![now.timestamp_micros(), fetch], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, sub, tenant, payload, created, next, attempts) =
                    row.map_err(unavailable)?;
                let id = u64::try_from(id).map_err(unavailable)?;
                if skip.contains(&id) || out.len() >= limit {
                    continue;
                }
                out.push(Delivery {
                    id,
                    subscription: uuid(&sub)?,
                    tenant: uuid(&tenant)?,
                    payload: serde_json::from_str::<Payload>(&payload)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    created_at: instant(created)?,
                    next_at: instant(next)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn next_delivery_at(&self, skip: &[u64]) -> Result<Option<Instant>, StoreError> {
        let skip: HashSet<u64> = skip.iter().copied().collect();
        let fetch = i64::try_from(skip.len() + 1).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, next_at FROM outbox ORDER BY next_at, id LIMIT ?1")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([fetch], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(unavailable)?;
            for row in rows {
                let (id, next) = row.map_err(unavailable)?;
                if !skip.contains(&u64::try_from(id).unwrap_or(0)) {
                    return Ok(Some(instant(next)?));
                }
            }
            Ok(None)
        })
        .await
    }

    async fn remove_deliveries(&self, ids: &[u64]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.run(chrono::DateTime::UNIX_EPOCH, move |tx| {
            let mut stmt = tx
                .prepare_cached("DELETE FROM outbox WHERE id = ?1")
                .map_err(unavailable)?;
            for id in ids {
                stmt.execute([i64::try_from(id).map_err(unavailable)?])
                    .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn retry_deliveries(&self, ids: &[u64], next_at: Instant) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.run(next_at, move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, next_at = ?2 WHERE id = ?1",
                )
                .map_err(unavailable)?;
            for id in ids {
                stmt.execute(params![
                    i64::try_from(id).map_err(unavailable)?,
                    next_at.timestamp_micros()
                ])
                .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn keep_secret(&self, name: &str, candidate: String) -> Result<String, StoreError> {
        let key = format!("secret:{name}");
        self.run(chrono::DateTime::UNIX_EPOCH, move |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, candidate],
            )
            .map_err(unavailable)?;
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                r.get::<_, String>(0)
            })
            .map_err(unavailable)
        })
        .await
    }

    async fn save_emulator_time(&self, now: Instant) -> Result<(), StoreError> {
        self.write(Job::SaveEmulatorTime, now).await.map(|_| ())
    }

    async fn emulator_time(&self) -> Result<Option<Instant>, StoreError> {
        self.read(|conn| {
            let value: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [EMULATOR_TIME],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            value
                .map(|v| {
                    v.parse::<i64>()
                        .ok()
                        .and_then(chrono::DateTime::from_timestamp_micros)
                        .ok_or_else(|| StoreError::Corrupt(format!("emulator time {v}")))
                })
                .transpose()
        })
        .await
    }

    fn close(&self) {
        SqliteStore::close(self);
    }

    async fn contents(&self) -> Result<Contents, StoreError> {
        let health = self.health.clone();
        self.read(move |conn| {
            // One read transaction: users and subscriptions of one moment.
            let tx = conn.unchecked_transaction().map_err(unavailable)?;
            let mut users = Vec::new();
            {
                let mut stmt = tx
                    .prepare("SELECT tenant, user, version, facts FROM users ORDER BY tenant, user")
                    .map_err(unavailable)?;
                let mut rows = stmt.query([]).map_err(unavailable)?;
                while let Some(row) = rows.next().map_err(unavailable)? {
                    let tenant = uuid(&row.get::<_, Vec<u8>>(0).map_err(unavailable)?)?;
                    let user = uuid(&row.get::<_, Vec<u8>>(1).map_err(unavailable)?)?;
                    let key = UserKey { tenant, user };
                    let facts = facts_in_row(row, 2, key, &health);
                    if !facts.unreadable {
                        users.push((key, facts));
                    }
                }
            }
            let subscriptions = {
                let mut stmt = tx
                    .prepare("SELECT record FROM subscriptions ORDER BY tenant, id")
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(unavailable)?;
                rows.map(|r| parse_subscription(&r.map_err(unavailable)?))
                    .collect::<Result<Vec<_>, _>>()?
            };
            Ok(Contents {
                users,
                subscriptions,
            })
        })
        .await
    }

    /// The ids from SQLite's `(tenant, user)` key, in order; the facts
    /// from the resident copy. The writer publishes a batch to the copy
    /// just after its commit and before acknowledging it, so a user whose
    /// first write is committed but not yet acknowledged can be listed, for
    /// that instant, with empty facts: a read racing an unacknowledged
    /// write, which may see either side of it.
    async fn users_page(
        &self,
        tenant: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<(Uuid, UserFacts)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let users = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT user FROM users WHERE tenant = ?1 AND user > ?2 ORDER BY user LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                // An empty blob sorts before every 16-byte id.
                let after: Vec<u8> = after.map(|a| a.as_bytes().to_vec()).unwrap_or_default();
                let rows = stmt
                    .query_map(params![tenant.as_bytes().as_slice(), after, limit], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })
                    .map_err(unavailable)?;
                rows.map(|r| uuid(&r.map_err(unavailable)?))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let facts = self.resident.facts_for(tenant, &users);
        Ok(users.into_iter().zip(facts).collect())
    }

    /// Users and sessions from the resident copy's running counts;
    /// subscriptions counted by SQLite.
    async fn counts(&self) -> Result<super::StoreCounts, StoreError> {
        let subscriptions = self
            .read(|conn| {
                conn.query_row("SELECT count(*) FROM subscriptions", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(unavailable)
            })
            .await?;
        Ok(super::StoreCounts {
            users: Some(self.resident.users() as u64),
            users_with_sessions: Some(self.resident.users_with_sessions() as u64),
            sessions: Some(self.resident.sessions() as u64),
            subscriptions: Some(u64::try_from(subscriptions).unwrap_or(0)),
        })
    }

    async fn reset(&self, tenant: Option<Uuid>) -> Result<(), StoreError> {
        let job = Job::Replace {
            tenant,
            contents: None,
        };
        self.write(job, chrono::DateTime::UNIX_EPOCH)
            .await
            .map(|_| ())
    }

    async fn replace(&self, contents: Contents, now: Instant) -> Result<(), StoreError> {
        let job = Job::Replace {
            tenant: None,
            contents: Some(Box::new(contents)),
        };
        self.write(job, now).await.map(|_| ())
    }

    /// Not ready when the writer thread is gone or the last write
    /// transaction failed. While writes are failing each ping probes with a
    /// small real write (a changed meta row): a server taken out of rotation
    /// gets no other writes, and must notice by itself that the disk has
    /// room again.
    async fn ping(&self) -> Result<(), StoreError> {
        if self.writer_stopped() {
            return Err(StoreError::Unavailable(
                "the sqlite writer has stopped".into(),
            ));
        }
        if self.writes_failing() {
            let probe = self.health.probes.fetch_add(1, Ordering::Relaxed);
            self.run(chrono::DateTime::UNIX_EPOCH, move |tx| {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![WRITE_PROBE, probe.to_string()],
                )
                .map_err(unavailable)
            })
            .await?;
            if self.writes_failing() {
                return Err(StoreError::Unavailable("sqlite writes are failing".into()));
            }
        }
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(unavailable)
        })
        .await
    }
}
