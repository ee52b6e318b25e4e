//! [`SubscriptionCache`]: parsed subscriptions for the delivery rounds.
//!
//! A round groups due outbox rows by subscription and needs each one's URL,
//! resource and keys. Reading them from the store every round cost a
//! b-tree search over ~30 KB rows and a parse each (BENCHMARKS.md, change
//! notifications part 1). The notifier keeps them here instead; the store
//! stays the record.
//!
//! Exactness: every change of a stored subscription goes through the
//! notifier's `update_stored`/`delete_stored`, which [`forget`] it after
//! the store has it. A round that read a subscription from the store keeps
//! it only if nothing was forgotten since the read began (a generation
//! count), so a read that raced an update can never put the old version
//! back.
//!
//! [`forget`]: SubscriptionCache::forget

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::store::Subscription;

/// The most subscriptions kept. A subscription of 650 users is about 60 KB
/// parsed, so this bounds the cache near 60 MB however many subscriptions
/// exist (`--subscription-limits none` allows any number); past it an
/// arbitrary one makes room and is read from the store again when needed.
const CAPACITY: usize = 1024;

/// Subscriptions by id, with the generation that guards inserts.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    by_id: HashMap<Uuid, Arc<Subscription>>,
}

impl SubscriptionCache {
    /// The cached subscription `id`, if any.
    pub(crate) fn get(&self, id: Uuid) -> Option<Arc<Subscription>> {
        self.inner.lock().ok()?.by_id.get(&id).cloned()
    }

    /// The generation to pass to [`Self::keep`] for a store read that
    /// starts now.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.lock().map_or(u64::MAX, |i| i.generation)
    }

    /// Keeps `s`, read from the store after [`Self::generation`] returned
    /// `generation`, unless a subscription was forgotten since.
    pub(crate) fn keep(&self, generation: u64, s: Arc<Subscription>) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.generation == generation {
                if inner.by_id.len() >= CAPACITY && !inner.by_id.contains_key(&s.id) {
                    if let Some(victim) = inner.by_id.keys().next().copied() {
                        inner.by_id.remove(&victim);
                    }
                }
                inner.by_id.insert(s.id, s);
            }
        }
    }

    /// Drops subscription `id` (changed or deleted in the store).
    pub(crate) fn forget(&self, id: Uuid) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.generation = inner.generation.wrapping_add(1);
            inner.by_id.remove(&id);
        }
    }

    /// Drops every subscription (the store was wiped or replaced, or
    /// another node may have changed any).
    pub(crate) fn forget_all(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.generation = inner.generation.wrapping_add(1);
            inner.by_id.clear();
        }
    }

    /// How many subscriptions are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.by_id.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(url: &str) -> Arc<Subscription> {
        let s = crate::store::sample_subscription(Uuid::from_u128(1), "app", "alice", &[]);
        Arc::new(Subscription {
            id: Uuid::from_u128(7),
            notification_url: url.into(),
            ..s
        })
    }

    #[test]
    fn a_kept_subscription_is_served_until_forgotten() {
        let cache = SubscriptionCache::default();
        let s = subscription("https://a.example/");
        cache.keep(cache.generation(), s.clone());
        assert_eq!(
            cache.get(s.id).map(|c| c.notification_url.clone()),
            Some("https://a.example/".into())
        );
        cache.forget(s.id);
        assert!(cache.get(s.id).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = SubscriptionCache::default();
        for n in 0..(CAPACITY as u128 + 10) {
            let s = crate::store::sample_subscription(Uuid::from_u128(1), "app", "alice", &[]);
            cache.keep(
                cache.generation(),
                Arc::new(Subscription {
                    id: Uuid::from_u128(n),
                    ..s
                }),
            );
        }
        assert_eq!(cache.len(), CAPACITY);
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = SubscriptionCache::default();
        let before_read = cache.generation();
        let stale = subscription("https://old.example/");
        // The subscription changes in the store while the round reads it.
        cache.forget(stale.id);
        cache.keep(before_read, stale.clone());
        assert!(
            cache.get(stale.id).is_none(),
            "the stale copy must not be kept"
        );
        assert_eq!(cache.len(), 0);
        cache.keep(cache.generation(), subscription("https://new.example/"));
        assert_eq!(cache.len(), 1);
    }
}
