//! The background sweeper of abandoned outboxes.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{RedisStore, QUIET, SWEEP_EVERY};
use crate::domain::UserKey;
use crate::store::StoreError;

impl RedisStore {
    /// Starts sweeping abandoned outboxes every 15 seconds in the
    /// background, until the store is dropped.
    pub fn start_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(store) = weak.upgrade() else { return };
                if let Err(e) = store.recover_outboxes(QUIET).await {
                    tracing::warn!(error = %e, "redis outbox sweep failed");
                }
            }
        });
        if let Ok(mut sweeper) = self.sweeper.lock() {
            *sweeper = Some(task);
        }
    }

    /// Moves the outbox of every user marked in-flight for longer than
    /// `quiet` (a writer that died between its two slots) and clears its
    /// mark; answers how many users it repaired. Idempotent; every node
    /// runs it in the background.
    pub async fn recover_outboxes(&self, quiet: Duration) -> Result<usize, StoreError> {
        let pendat = self.g("pendat");
        let quiet_ms = i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX);
        let stale: Vec<(String, String)> = self
            .with(|mut c, _| async move {
                let time: (String, String) = ::redis::cmd("TIME").query_async(&mut c).await?;
                let now_ms = time.0.parse::<i64>().unwrap_or(0) * 1000
                    + time.1.parse::<i64>().unwrap_or(0) / 1000;
                ::redis::cmd("ZRANGEBYSCORE")
                    .arg(&pendat)
                    .arg("-inf")
                    .arg(now_ms.saturating_sub(quiet_ms))
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(100)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut repaired = 0;
        for (tu, score) in stale {
            let Some((tenant, user)) = tu.split_once(':') else {
                continue;
            };
            let (Ok(tenant), Ok(user)) = (Uuid::parse_str(tenant), Uuid::parse_str(user)) else {
                continue;
            };
            let key = UserKey { tenant, user };
            let outbox_key = self.user_key(key, "ob");
            let outbox: Vec<String> = self
                .with(|mut c, _| async move {
                    ::redis::cmd("LRANGE")
                        .arg(outbox_key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !outbox.is_empty() {
                self.move_outbox(key, &outbox, 0, false).await?;
            }
            let (pend, pendat) = (self.g("pend"), self.g("pendat"));
            self.with(|mut c, s| async move {
                s.clear_mark
                    .key(pend)
                    .key(pendat)
                    .arg(tu)
                    .arg(score)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await?;
            repaired += 1;
        }
        Ok(repaired)
    }
}
