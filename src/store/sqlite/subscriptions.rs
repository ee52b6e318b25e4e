//! Subscription rows: how a subscription is stored, found and watches its
//! users.

use rusqlite::{params, Connection};
use uuid::Uuid;

use super::unavailable;
use crate::store::{StoreError, Subscription};

pub(super) fn parse_subscription(record: &str) -> Result<Subscription, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn app_subscriptions(
    conn: &Connection,
    tenant: Uuid,
    app_id: &str,
) -> Result<Vec<Subscription>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT record FROM subscriptions WHERE tenant = ?1 AND app_id = ?2")
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(params![tenant.as_bytes(), app_id], |r| {
            r.get::<_, String>(0)
        })
        .map_err(unavailable)?;
    rows.map(|r| parse_subscription(&r.map_err(unavailable)?))
        .collect()
}

pub(super) fn put_subscription(tx: &Connection, s: &Subscription) -> Result<(), StoreError> {
    let record = serde_json::to_string(s).map_err(unavailable)?;
    tx.execute(
        "INSERT INTO subscriptions (id, tenant, app_id, expires_at, reauth_sent, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at,
           reauth_sent = excluded.reauth_sent, record = excluded.record",
        params![
            s.id.as_bytes(),
            s.tenant.as_bytes(),
            s.app_id,
            s.expires_at.timestamp_micros(),
            s.reauthorization_sent,
            record
        ],
    )
    .map_err(unavailable)?;
    tx.prepare_cached(
        "INSERT INTO subscription_expiry (id, expires_at) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
    )
    .and_then(|mut stmt| stmt.execute(params![s.id.as_bytes(), s.expires_at.timestamp_micros()]))
    .map_err(unavailable)?;
    Ok(())
}

/// Makes `s` watch its users (the `watches` rows a change looks up).
pub(super) fn watch_users(tx: &Connection, s: &Subscription) -> Result<(), StoreError> {
    let mut watch = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO watches (tenant, user, subscription) VALUES (?1, ?2, ?3)",
        )
        .map_err(unavailable)?;
    for user in &s.users {
        watch
            .execute(params![
                s.tenant.as_bytes(),
                user.as_bytes(),
                s.id.as_bytes()
            ])
            .map_err(unavailable)?;
    }
    Ok(())
}
