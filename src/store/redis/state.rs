//! The emulator's state operations: the user index, wiping and restoring
//! users' facts.

use super::parse::user_keys;
use super::RedisStore;
use crate::domain::UserKey;
use crate::store::StoreError;

impl RedisStore {
    /// Every user in the index (every user a write reached since the last
    /// reset), in no particular order.
    pub(super) async fn indexed_users(&self) -> Result<Vec<UserKey>, StoreError> {
        let (tenants, prefix) = (self.g("tenants"), self.global.clone());
        let flat: Vec<String> = self
            .with(|mut c, s| async move {
                s.indexed_users
                    .key(tenants)
                    .arg(prefix)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        user_keys(&flat)
    }

    /// Removes a wiped user's facts and outbox from its slot. The write
    /// counter `n` stays: the global slot remembers the last moved `n` of
    /// every user, so counting on from it keeps the next write's outbox
    /// entry new to the move.
    pub(super) async fn wipe_user(&self, key: UserKey) -> Result<(), StoreError> {
        let (hash, outbox) = (self.user_key(key, "u"), self.user_key(key, "ob"));
        self.with(|mut c, _| async move {
            ::redis::cmd("HDEL")
                .arg(&hash)
                .arg("v")
                .arg("f")
                .query_async::<i64>(&mut c)
                .await?;
            ::redis::cmd("DEL")
                .arg(&outbox)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Stores restored facts (`version` and the encoded facts) as they are:
    /// no outbox entry, no event.
    pub(super) async fn put_facts(
        &self,
        key: UserKey,
        version: u64,
        encoded: Vec<u8>,
    ) -> Result<(), StoreError> {
        let hash = self.user_key(key, "u");
        self.command(
            ::redis::cmd("HSET")
                .arg(&hash)
                .arg("v")
                .arg(version)
                .arg("f")
                .arg(encoded)
                .clone(),
        )
        .await
    }
}
