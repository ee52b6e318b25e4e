//! [`Store::reset`] and [`Store::replace`] on the writer thread: wiping
//! rows, and writing a store's contents back.
//!
//! [`Store::reset`]: crate::store::Store::reset
//! [`Store::replace`]: crate::store::Store::replace

use rusqlite::Connection;
use uuid::Uuid;

use super::read::last_event_seq;
use super::schema::mark_pruned_through;
use super::subscriptions::{put_subscription, watch_users};
use super::unavailable;
use super::writer::{write_facts, Changes};
use crate::clock::Instant;
use crate::domain::{UserFacts, UserKey};
use crate::store::codec::encode;
use crate::store::resident::{Compact, Interner};
use crate::store::{Contents, StoreError};

/// Deletes `tenant`'s rows (every tenant's when `None`) of users, events,
/// subscriptions and deliveries ([`Store::reset`]); the wiped users go on
/// `changed` as empty facts, so the resident copy forgets them too.
///
/// [`Store::reset`]: crate::store::Store::reset
pub(super) fn wipe(
    tx: &Connection,
    tenant: Option<Uuid>,
    ids: &mut Interner,
    changed: &mut Changes<'_>,
) -> Result<(), StoreError> {
    let bound: Vec<Vec<u8>> = tenant.iter().map(|t| t.as_bytes().to_vec()).collect();
    let filter = if tenant.is_some() {
        " WHERE tenant = ?1"
    } else {
        ""
    };
    let keys = {
        let mut stmt = tx
            .prepare(&format!("SELECT tenant, user FROM users{filter}"))
            .map_err(unavailable)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(bound.iter()), |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(unavailable)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)?
    };
    let empty = Compact::of(&UserFacts::default(), ids);
    for (t, u) in keys {
        if let (Ok(tenant), Ok(user)) = (Uuid::from_slice(&t), Uuid::from_slice(&u)) {
            changed.push(UserKey { tenant, user }, empty.clone());
        }
    }
    for table in ["users", "events", "outbox", "watches", "subscriptions"] {
        tx.execute(
            &format!("DELETE FROM {table}{filter}"),
            rusqlite::params_from_iter(bound.iter()),
        )
        .map_err(unavailable)?;
    }
    tx.execute(
        "DELETE FROM subscription_expiry WHERE id NOT IN (SELECT id FROM subscriptions)",
        [],
    )
    .map_err(unavailable)?;
    if tenant.is_none() {
        let last = last_event_seq(tx)?;
        if let Some(last) = last {
            mark_pruned_through(tx, last)?;
        }
    }
    Ok(())
}

/// Writes `contents` into wiped tables ([`Store::replace`]).
///
/// [`Store::replace`]: crate::store::Store::replace
pub(super) fn restore(
    tx: &Connection,
    contents: Contents,
    now: Instant,
    ids: &mut Interner,
    changed: &mut Changes<'_>,
) -> Result<(), StoreError> {
    for (key, facts) in contents.users {
        if facts.unreadable {
            continue;
        }
        let (_, stored) = changed.before(key);
        let scheduled = write_facts(tx, key, &facts, &encode(&facts), now, stored)?;
        changed.push(key, Compact::of(&facts, ids).scheduled_at(scheduled));
    }
    for s in &contents.subscriptions {
        put_subscription(tx, s)?;
        watch_users(tx, s)?;
    }
    Ok(())
}
