//! Subscriptions as stored: reading them all and storing one.

use uuid::Uuid;

use super::{corrupt, RedisStore};
use crate::store::{StoreError, Subscription};

impl RedisStore {
    /// Every stored subscription, and the subscriptions' change counter.
    pub(super) async fn all_subscriptions(&self) -> Result<(u64, Vec<Subscription>), StoreError> {
        let (subv, subs) = (self.g("subv"), self.g("subs"));
        // The counter first: a change after it fails the create script.
        let (version, records): (Option<u64>, Vec<String>) = self
            .with(|mut c, _| async move {
                let version = ::redis::cmd("GET").arg(subv).query_async(&mut c).await?;
                let records = ::redis::cmd("HVALS").arg(subs).query_async(&mut c).await?;
                Ok((version, records))
            })
            .await?;
        let subscriptions = records
            .iter()
            .map(|r| serde_json::from_str(r).map_err(corrupt))
            .collect::<Result<Vec<Subscription>, _>>()?;
        Ok((version.unwrap_or(0), subscriptions))
    }

    /// Stores `subscription` and its watches; with `expected` (the
    /// subscriptions' change counter as read) only if nothing changed
    /// since. Answers whether it was stored.
    pub(super) async fn put_subscription(
        &self,
        subscription: &Subscription,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut args = vec![
            self.global.clone(),
            expected.map(|v| v.to_string()).unwrap_or_default(),
            subscription.id.to_string(),
            serde_json::to_string(subscription).map_err(corrupt)?,
            subscription.expires_at.timestamp_micros().to_string(),
            subscription.tenant.to_string(),
        ];
        args.extend(subscription.users.iter().map(Uuid::to_string));
        let subv = self.g("subv");
        let created: i64 = self
            .with(|mut c, s| async move {
                let mut call = s.create_subscription.key(subv);
                for a in args {
                    call.arg(a);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(created == 1)
    }
}
