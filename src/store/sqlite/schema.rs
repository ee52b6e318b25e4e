//! The database's schema, its version, the in-place migrations and the
//! `meta` table's keys.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::store::StoreError;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    tenant      BLOB    NOT NULL,
    user        BLOB    NOT NULL,
    version     INTEGER NOT NULL,
    facts       BLOB    NOT NULL,
    next_change INTEGER,
    PRIMARY KEY (tenant, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_next_change ON users (next_change) WHERE next_change IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  BLOB    NOT NULL,
    user    BLOB    NOT NULL,
    at      INTEGER NOT NULL,
    version INTEGER NOT NULL,
    facts   BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_tenant ON events (tenant, seq);
CREATE TABLE IF NOT EXISTS subscriptions (
    id           BLOB    PRIMARY KEY,
    tenant       BLOB    NOT NULL,
    app_id       TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL,
    reauth_sent  INTEGER NOT NULL,
    record       TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS subscriptions_app ON subscriptions (tenant, app_id);
CREATE TABLE IF NOT EXISTS subscription_expiry (
    id         BLOB    PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watches (
    tenant       BLOB NOT NULL,
    user         BLOB NOT NULL,
    subscription BLOB NOT NULL,
    PRIMARY KEY (tenant, user, subscription)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY,
    subscription BLOB    NOT NULL,
    tenant       BLOB    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    attempts     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_next ON outbox (next_at);
";

/// Schema 3: the outbox without `AUTOINCREMENT` and without its index on
/// `subscription`, rebuilt in place from schema 2 (rows and ids kept).
///
/// An outbox row is written for every watching subscription of every
/// presence change, in the writer's batch. `AUTOINCREMENT` updated
/// `sqlite_sequence` on each insert, and the index was one more b-tree
/// insert; an operation's savepoint also journals the pages both touch.
/// Together they were about half the cost of an outbox insert. Plain rowids
/// may reuse the id of a deleted last row, which nothing relies on (an id
/// names a row only while it exists). Deleting a subscription's rows now
/// scans the outbox: rare, and the outbox is normally near empty.
const MIGRATE_OUTBOX: &str = "
CREATE TABLE outbox_v3 (
    id           INTEGER PRIMARY KEY,
    subscription BLOB    NOT NULL,
    tenant       BLOB    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    attempts     INTEGER NOT NULL
);
INSERT INTO outbox_v3 (id, subscription, tenant, payload, created_at, next_at, attempts)
    SELECT id, subscription, tenant, payload, created_at, next_at, attempts FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v3 RENAME TO outbox;
";

/// Rebuilds a schema-2 outbox as [`MIGRATE_OUTBOX`] says, in one
/// transaction; does nothing when there is no outbox yet or it is already
/// rebuilt (so a crash before `user_version` was updated is harmless).
pub(super) fn migrate_outbox(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let sql: Option<String> = tx
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if sql.is_some_and(|sql| sql.to_ascii_uppercase().contains("AUTOINCREMENT")) {
        tx.execute_batch(MIGRATE_OUTBOX)?;
    }
    tx.commit()
}

/// Brings `subscription_expiry` in line with `subscriptions` (run at open:
/// it fills the table in a database written before it existed, and repairs
/// it after an older build changed subscriptions without it).
///
/// Why the table: a write that changes a watched user's presence looks up
/// the live subscriptions watching the user in its transaction. The
/// `subscriptions` rows are ~30 KB (650 user ids and the resource string)
/// and overflow; SQLite reads a whole overflowing cell to compare keys in a
/// `WITHOUT ROWID` b-tree, so joining them cost ~30 KB of reads per watched
/// write (and made 100,000 fades 4–5× slower). This table holds just the id
/// and the expiry.
pub(super) const SYNC_SUBSCRIPTION_EXPIRY: &str = "
DELETE FROM subscription_expiry WHERE id NOT IN (SELECT id FROM subscriptions);
INSERT INTO subscription_expiry (id, expires_at) SELECT id, expires_at FROM subscriptions WHERE true
  ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
  WHERE expires_at <> excluded.expires_at;
";

/// The schema version this build reads and writes (2: the event log,
/// subscriptions and the outbox; 3: the outbox without `AUTOINCREMENT`,
/// see [`MIGRATE_OUTBOX`]).
pub(super) const SCHEMA_VERSION: i64 = 3;

/// The meta key of the last pruned event's `seq`.
pub(super) const EVENTS_PRUNED_THROUGH: &str = "events_pruned_through";

/// Raises the [`EVENTS_PRUNED_THROUGH`] mark to `seq`; it never goes down.
pub(super) fn mark_pruned_through(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value =
           CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
        rusqlite::params![EVENTS_PRUNED_THROUGH, seq.to_string()],
    )
    .map_err(super::unavailable)?;
    Ok(())
}

/// The meta key of the persisted emulator clock.
pub(super) const EMULATOR_TIME: &str = "emulator_time";

/// The meta key readiness writes to when the last write transaction failed.
pub(super) const WRITE_PROBE: &str = "write_probe";

#[cfg(test)]
mod tests {
    use rusqlite::params;
    use uuid::Uuid;

    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{LifecycleEvent, NewDelivery, Payload, Store};

    /// A schema-2 database (as builds before schema 3 wrote it) with one
    /// queued delivery, id 7, is opened by this build: the row and its id
    /// survive, the outbox loses `AUTOINCREMENT` and its subscription
    /// index, and new rows take ids after it.
    #[tokio::test]
    async fn a_schema_2_outbox_is_rebuilt_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (subscription, tenant) = (Uuid::new_v4(), Uuid::new_v4());
        let payload = Payload::Lifecycle {
            event: LifecycleEvent::ReauthorizationRequired,
        };
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        {
            std::fs::create_dir_all(dir.path()).unwrap();
            let old = Connection::open(SqliteStore::file_in(dir.path())).unwrap();
            old.execute_batch(
                "CREATE TABLE outbox (
                    id           INTEGER PRIMARY KEY AUTOINCREMENT,
                    subscription BLOB    NOT NULL,
                    tenant       BLOB    NOT NULL,
                    payload      TEXT    NOT NULL,
                    created_at   INTEGER NOT NULL,
                    next_at      INTEGER NOT NULL,
                    attempts     INTEGER NOT NULL
                );
                CREATE INDEX outbox_next ON outbox (next_at);
                CREATE INDEX outbox_subscription ON outbox (subscription);
                PRAGMA user_version = 2;",
            )
            .unwrap();
            old.execute(
                "INSERT INTO outbox VALUES (7, ?1, ?2, ?3, ?4, ?4, 1)",
                params![
                    subscription.as_bytes(),
                    tenant.as_bytes(),
                    serde_json::to_string(&payload).unwrap(),
                    at.timestamp_micros()
                ],
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let due = store.due_deliveries(at, 10, &[]).await.unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(
            (
                due[0].id,
                due[0].subscription,
                due[0].attempts,
                &due[0].payload
            ),
            (7, subscription, 1, &payload)
        );
        store
            .enqueue(
                vec![NewDelivery {
                    subscription,
                    tenant,
                    payload: payload.clone(),
                }],
                at,
            )
            .await
            .unwrap();
        let ids: Vec<u64> = store
            .due_deliveries(at, 10, &[])
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, [7, 8]);
        drop(store);
        let conn = Connection::open(SqliteStore::file_in(dir.path())).unwrap();
        let schema: Vec<String> = conn
            .prepare("SELECT name || ': ' || sql FROM sqlite_master WHERE tbl_name = 'outbox'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(schema.len(), 2, "{schema:?}"); // the table and outbox_next
        assert!(
            schema.iter().all(|sql| !sql.contains("AUTOINCREMENT")),
            "{schema:?}"
        );
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
