//! The write path: the optimistic read, in-flight marks, the user script
//! and the outbox move.

use std::time::Duration;

use ::redis::Script;
use serde::Serialize;

use super::events::StoredEvent;
use super::parse::{ceil_micros, number};
use super::scripts::Scripts;
use super::{corrupt, RedisStore, MAX_ATTEMPTS, WRITER_DEADLINE};
use crate::clock::Instant;
use crate::domain::{due_at, settled, UserFacts, UserKey, Visibility};
use crate::store::codec::{decode, encode, unreadable};
use crate::store::{observe, Applied, Change, StoreError};

/// An outbox entry: what the global slot records for one user write.
#[derive(Serialize)]
struct Entry {
    /// The next transition, microseconds rounded up, or "" for none.
    due: String,
    /// The event blob, when the resource changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    ev: Option<String>,
    /// The change payload, when the presence changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pay: Option<String>,
    /// The write's instant, microseconds.
    now: String,
    /// How many sessions the user holds after the write.
    s: usize,
}

pub(super) enum Op {
    Apply(Change, Instant),
    Settle(Instant),
}

impl RedisStore {
    /// Reads a user's write counter and facts.
    pub(super) async fn read_user(&self, key: UserKey) -> Result<(u64, UserFacts), StoreError> {
        let hash = self.user_key(key, "u");
        let (v, f, n): (Option<u64>, Option<Vec<u8>>, Option<u64>) = self
            .with(|mut c, _| async move {
                ::redis::cmd("HMGET")
                    .arg(&hash)
                    .arg("v")
                    .arg("f")
                    .arg("n")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let facts = match (v, f) {
            (Some(v), Some(f)) => decode(&f, v).unwrap_or_else(|e| {
                tracing::warn!(tenant = %key.tenant, user = %key.user, error = %e, "unreadable facts in redis");
                unreadable(v)
            }),
            (Some(v), None) => unreadable(v),
            _ => UserFacts::default(),
        };
        Ok((n.unwrap_or(0), facts))
    }

    /// Marks `tu` in-flight (one more writer on its way).
    pub(super) async fn mark(&self, tu: &str) -> Result<(), StoreError> {
        self.invoke_on_marks(|s| &s.mark, tu).await
    }

    /// Ends one writer's in-flight mark on `tu`.
    async fn unmark(&self, tu: &str) -> Result<(), StoreError> {
        self.invoke_on_marks(|s| &s.unmark, tu).await
    }

    /// Runs `script` (one of the mark scripts) on the in-flight count and
    /// times, for user `tu`.
    async fn invoke_on_marks(
        &self,
        script: fn(&Scripts) -> &Script,
        tu: &str,
    ) -> Result<(), StoreError> {
        let (pend, pendat) = (self.g("pend"), self.g("pendat"));
        let tu = tu.to_string();
        self.with(|mut c, s| async move {
            script(&s)
                .key(pend)
                .key(pendat)
                .arg(tu)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Moves `outbox` (raw "n entry" items, in order) to the global slot and
    /// trims it from the user's; answers (seq, queued) of entry `want`. With
    /// `unmark` the move also ends the caller's in-flight mark.
    pub(super) async fn move_outbox(
        &self,
        key: UserKey,
        outbox: &[String],
        want: u64,
        unmark: bool,
    ) -> Result<(Option<u64>, usize), StoreError> {
        let mut pairs = Vec::with_capacity(outbox.len() * 2);
        let mut last = 0u64;
        for item in outbox {
            let (n, entry) = item
                .split_once(' ')
                .ok_or_else(|| corrupt("an outbox entry without its number"))?;
            last = last.max(number(n)?);
            pairs.push(n.to_string());
            pairs.push(entry.to_string());
        }
        let keys = [self.g("mv"), self.g("pend"), self.g("pendat")];
        let prefix = self.global.clone();
        let tu = format!("{}:{}", key.tenant, key.user);
        let tenant = key.tenant.to_string();
        let answer: Option<String> = self
            .with(|mut c, s| async move {
                let mut call = s.moves.key(&keys[0]);
                call.key(&keys[1]).key(&keys[2]);
                call.arg(prefix).arg(tu).arg(tenant).arg(want);
                call.arg(if unmark { "1" } else { "0" });
                for p in pairs {
                    call.arg(p);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        let outbox_key = self.user_key(key, "ob");
        self.with(|mut c, s| async move {
            s.trim
                .key(outbox_key)
                .arg(last)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await?;
        let Some(answer) = answer else {
            return Ok((None, 0));
        };
        let (seq, queued) = answer
            .split_once(' ')
            .ok_or_else(|| corrupt("a move answer"))?;
        let seq: u64 = number(seq)?;
        Ok(((seq > 0).then_some(seq), number(queued)?))
    }

    /// One write on one user, marked in-flight so that a crash between its
    /// two slots is repaired by the sweeper.
    pub(super) async fn write(&self, key: UserKey, op: Op) -> Result<Option<Applied>, StoreError> {
        let tu = format!("{}:{}", key.tenant, key.user);
        // Independent: the user script that needs the mark comes after both.
        let ((), first) = tokio::try_join!(self.mark(&tu), self.read_user(key))?;
        let result = self.write_marked(key, op, true, Some(first)).await;
        // A write that moved its outbox ended its mark with the move. One
        // that wrote nothing ends it here. Otherwise it stays for the
        // sweeper, and so does a mark that cannot be cleared now.
        if matches!(result, Ok(None) | Err(StoreError::NotFound(_))) {
            if let Err(e) = self.unmark(&tu).await {
                tracing::warn!(tenant = %key.tenant, user = %key.user, error = %e, "a write's in-flight mark stays for the sweeper");
            }
        }
        result
    }

    /// The write itself, starting from `first` (the user as read with the
    /// mark) if given; with `move_now` false it stops after the user
    /// script, as a writer that dies there would (tests only).
    pub(super) async fn write_marked(
        &self,
        key: UserKey,
        op: Op,
        move_now: bool,
        mut first: Option<(u64, UserFacts)>,
    ) -> Result<Option<Applied>, StoreError> {
        let started = std::time::Instant::now();
        for attempt in 0..MAX_ATTEMPTS {
            if started.elapsed() > WRITER_DEADLINE {
                break;
            }
            let (n, before) = match first.take() {
                Some(read) => read,
                None => self.read_user(key).await?,
            };
            let (after, now) = match &op {
                Op::Apply(change, now) => {
                    if before.unreadable {
                        tracing::warn!(tenant = %key.tenant, user = %key.user, "a write replaces unreadable stored facts");
                    }
                    (change.clone().applied_to(&before, *now)?, *now)
                }
                Op::Settle(at) => {
                    if before.unreadable {
                        let (due, tu) = (self.g("due"), format!("{}:{}", key.tenant, key.user));
                        self.command(::redis::cmd("ZREM").arg(due).arg(tu).clone())
                            .await?;
                        return Ok(None);
                    }
                    let Some(after) = settled(&before, *at) else {
                        return Ok(None);
                    };
                    (after, *at)
                }
            };
            let observed = observe(key.user, &before, &after);
            let encoded = encode(&after);
            let at = after.settled_at.unwrap_or(now);
            let ev = if observed.visibility == Visibility::Unchanged {
                None
            } else {
                let blob = StoredEvent {
                    t: key.tenant,
                    u: key.user,
                    at: at.timestamp_micros(),
                    v: after.version,
                    f: String::from_utf8_lossy(&encoded).into_owned(),
                };
                Some(serde_json::to_string(&blob).map_err(corrupt)?)
            };
            let pay = if observed.visibility == Visibility::Presence {
                Some(serde_json::to_string(&observed.payload).map_err(corrupt)?)
            } else {
                None
            };
            let entry = Entry {
                due: due_at(&after, at)
                    .map(|t| ceil_micros(t).to_string())
                    .unwrap_or_default(),
                ev,
                pay,
                now: now.timestamp_micros().to_string(),
                s: after.sessions.len(),
            };
            let entry = serde_json::to_string(&entry).map_err(corrupt)?;
            let (hash, outbox) = (self.user_key(key, "u"), self.user_key(key, "ob"));
            let version = after.version;
            let answer: Vec<String> = self
                .with(|mut c, s| async move {
                    s.cas
                        .key(hash)
                        .key(outbox)
                        .arg(n)
                        .arg(version)
                        .arg(encoded)
                        .arg(entry)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            let Some((written, outbox)) = answer.split_first() else {
                // Another writer got there first: read again.
                let spread = 1u64 << attempt.min(5);
                let pause = rand::random::<u64>() % spread;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue;
            };
            let (event, queued) = if move_now {
                self.move_outbox(key, outbox, number(written)?, true)
                    .await?
            } else {
                (None, 0)
            };
            return Ok(Some(Applied {
                before,
                after,
                visibility: observed.visibility,
                event,
                queued,
            }));
        }
        Err(StoreError::Unavailable(format!(
            "redis: gave up writing user {} after too many concurrent writes",
            key.user
        )))
    }
}
