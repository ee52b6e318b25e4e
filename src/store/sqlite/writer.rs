//! The write path: the writer thread, group commit, and what each kind of
//! write does to the tables.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::replace::{restore, wipe};
use super::schema::EMULATOR_TIME;
use super::{unavailable, Health};
use crate::clock::Instant;
use crate::domain::{due_at, settled, UserFacts, UserKey, Visibility};
use crate::store::codec::encode;
use crate::store::resident::{Compact, Interner, Resident};
use crate::store::{observe, Applied, Change, Contents, NewDelivery, StoreError};

/// The most writes folded into one transaction.
const MAX_BATCH: usize = 1024;
/// The writer connection's page cache (`PRAGMA cache_size`), in KiB: four
/// times SQLite's default, and no more, because a bigger cache makes some
/// commits slower.
///
/// A b-tree split that puts its new pages in order briefly gives one of
/// them the number of the page at the 1 GiB mark (`balance_nonroot`).
/// The page cache remembers that as its largest page number, so the
/// commit's "drop the pages past the end of the file" walks every cached
/// page instead of the last few (`pcache1TruncateUnsafe`). Under a
/// setPresence flood that happened about 12 times a second and took 4–6 ms
/// at 32 MiB against 1.5 ms at 8 MiB, the batch's requests waiting for it;
/// 8 MiB gave 8–27 % more setPresence throughput than 32 MiB (BENCHMARKS.md).
pub(super) const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// Opens the savepoint each operation of a group commit runs in.
const OP_BEGIN: &str = "SAVEPOINT presenced_op";

/// Runs a one-statement command through the statement cache (the savepoint
/// pair runs for every write; parsing it each time showed in profiles).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
/// Keeps an operation's writes in the batch's transaction.
const OP_KEEP: &str = "RELEASE presenced_op";
/// Undoes exactly one operation's writes.
const OP_UNDO: &str = "ROLLBACK TO presenced_op; RELEASE presenced_op";

/// A write that is neither a presence change nor a settle: subscriptions,
/// the outbox, the event log's retention, secrets.
type RunFn = Box<dyn FnOnce(&rusqlite::Transaction<'_>) -> Result<Done, StoreError> + Send>;

/// What the writer thread is asked to do.
pub(super) enum Job {
    /// A per-user change.
    Apply { key: UserKey, change: Change },
    /// Process a user's time-driven transitions up to the op's `now`.
    Settle { key: UserKey },
    /// Persist the emulator clock's time.
    SaveEmulatorTime,
    /// Wipe a tenant (or everyone), then write `contents` if given.
    Replace {
        tenant: Option<Uuid>,
        contents: Option<Box<Contents>>,
    },
    /// Any other write, run inside the batch's transaction (taken when run).
    Run(Option<RunFn>),
}

/// What the writer thread answers.
pub(super) enum Done {
    Applied(Box<Applied>),
    Settled(Option<Box<Applied>>),
    Saved,
    Value(Box<dyn std::any::Any + Send>),
}

pub(super) struct WriteOp {
    pub(super) job: Job,
    pub(super) now: Instant,
    pub(super) reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// Sets the due time stored beside a user's facts (`None`: nothing due),
/// writing nothing when it already holds that.
fn reschedule(conn: &Connection, key: UserKey, at: Option<i64>) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE users SET next_change = ?3
         WHERE tenant = ?1 AND user = ?2 AND next_change IS NOT ?3",
    )
    .and_then(|mut stmt| stmt.execute(params![key.tenant.as_bytes(), key.user.as_bytes(), at]))
    .map_err(unavailable)?;
    Ok(())
}

/// Stores `facts` as `encoded` (their [`encode`]d form, which the caller
/// may reuse for the event row), with `stored` the due time the row holds
/// now ([`Compact::scheduled`]); returns the due time it holds after.
///
/// The due time may be left earlier than the facts' next transition: when
/// the stored one is still ahead of `now` and not after the new one, it
/// stays. An active user's next fade moves later with every write, and
/// moving it in the `users_next_change` index was a delete and an insert
/// in a random page of it per write. The scheduler then settles the user
/// at the earlier time, which changes nothing a watcher sees and stores the
/// right time (`Job::Settle`): once per fade period instead of per write.
pub(super) fn write_facts(
    conn: &Connection,
    key: UserKey,
    facts: &UserFacts,
    encoded: &[u8],
    now: Instant,
    stored: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let version = i64::try_from(facts.version).map_err(unavailable)?;
    // Rounded up: a transition between two microseconds (a status message's
    // 7th fractional digit) is never scheduled before it happens.
    let next = due_at(facts, facts.settled_at.unwrap_or(now)).map(ceil_micros);
    let keep = matches!((stored, next), (Some(s), Some(n)) if now.timestamp_micros() < s && s <= n);
    let (sql, due) = if keep {
        (
            "INSERT INTO users (tenant, user, version, facts, next_change) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant, user) DO UPDATE SET
               version = excluded.version, facts = excluded.facts",
            stored,
        )
    } else {
        (
            "INSERT INTO users (tenant, user, version, facts, next_change) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant, user) DO UPDATE SET
               version = excluded.version, facts = excluded.facts, next_change = excluded.next_change",
            next,
        )
    };
    conn.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.execute(params![
                key.tenant.as_bytes(),
                key.user.as_bytes(),
                version,
                encoded,
                due
            ])
        })
        .map_err(unavailable)?;
    Ok(due)
}

/// Stores `after` and records what it meant for watchers, in the write's
/// transaction: an event when the resource changed, an outbox row per live
/// subscription watching the user when its presence changed (SPEC §7: a
/// crash right after the answer cannot lose a notification). `stored` and
/// the due time returned beside what was applied are [`write_facts`]'s.
fn record(
    tx: &Connection,
    key: UserKey,
    before: UserFacts,
    after: UserFacts,
    now: Instant,
    stored: Option<i64>,
) -> Result<(Applied, Option<i64>), StoreError> {
    let encoded = encode(&after);
    let scheduled = write_facts(tx, key, &after, &encoded, now, stored)?;
    let observed = observe(key.user, &before, &after);
    let mut event = None;
    let mut queued = 0;
    if observed.visibility != Visibility::Unchanged {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO events (tenant, user, at, version, facts) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(unavailable)?;
        stmt.execute(params![
            key.tenant.as_bytes(),
            key.user.as_bytes(),
            after.settled_at.unwrap_or(now).timestamp_micros(),
            i64::try_from(after.version).map_err(unavailable)?,
            encoded
        ])
        .map_err(unavailable)?;
        event = u64::try_from(tx.last_insert_rowid()).ok();
    }
    if observed.visibility == Visibility::Presence {
        let mut stmt = tx
            .prepare_cached(
                "SELECT w.subscription FROM watches w
                 JOIN subscription_expiry s ON s.id = w.subscription
                 WHERE w.tenant = ?1 AND w.user = ?2 AND s.expires_at > ?3",
            )
            .map_err(unavailable)?;
        let watching = stmt
            .query_map(
                params![
                    key.tenant.as_bytes(),
                    key.user.as_bytes(),
                    now.timestamp_micros()
                ],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        for id in watching {
            let subscription =
                Uuid::from_slice(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            insert_delivery(
                tx,
                &NewDelivery {
                    subscription,
                    tenant: key.tenant,
                    payload: observed.payload.clone(),
                },
                now,
            )?;
            queued += 1;
        }
    }
    let applied = Applied {
        before,
        after,
        visibility: observed.visibility,
        event,
        queued,
    };
    Ok((applied, scheduled))
}

pub(super) fn insert_delivery(
    tx: &Connection,
    d: &NewDelivery,
    now: Instant,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(&d.payload).map_err(unavailable)?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO outbox (subscription, tenant, payload, created_at, next_at, attempts)
             VALUES (?1, ?2, ?3, ?4, ?4, 0)",
        )
        .map_err(unavailable)?;
    stmt.execute(params![
        d.subscription.as_bytes(),
        d.tenant.as_bytes(),
        payload,
        now.timestamp_micros()
    ])
    .map_err(unavailable)?;
    Ok(())
}

/// Microseconds since the epoch, rounded up.
fn ceil_micros(t: Instant) -> i64 {
    let micros = t.timestamp_micros();
    if t.timestamp_subsec_nanos() % 1_000 == 0 {
        micros
    } else {
        micros.saturating_add(1)
    }
}

/// The writer thread's state: the only write connection, and the resident
/// copy it keeps equal to what it commits.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) health: Arc<Health>,
    pub(super) resident: Arc<Resident>,
    /// Shares session ids among the entries the writer builds.
    pub(super) ids: Interner,
}

/// A user's facts as one operation of a batch left them, published to the
/// resident copy once the batch commits.
type Changed = (UserKey, Compact);

impl Writer {
    pub(super) fn run(mut self, rx: mpsc::Receiver<WriteOp>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let results = self.write_batch(&mut batch);
            for (op, result) in batch.into_iter().zip(results) {
                // The requester may have gone away; the write stands regardless.
                let _ = op.reply.send(result);
            }
        }
        tracing::debug!("sqlite writer stopped");
    }

    /// [`write_batch`], then, once it committed, the users it changed into
    /// the resident copy, before anyone is answered: a client told its
    /// write succeeded reads it back. A batch that did not commit changes
    /// nothing there.
    fn write_batch(&mut self, batch: &mut [WriteOp]) -> Vec<Result<Done, StoreError>> {
        let started = std::time::Instant::now();
        let (results, committed) = write_batch(
            &mut self.conn,
            batch,
            &self.health,
            &self.resident,
            &mut self.ids,
        );
        self.resident.publish(committed);
        crate::metrics::store_commit(batch.len(), started.elapsed());
        results
    }
}

/// Applies a batch in one transaction and commits it.
///
/// Group commit folds unrelated users' writes into one transaction, yet one
/// failing operation must fail alone: a broken rule (NotFound), a SQL
/// error, a panic caught here. Two ways to get there:
///
/// - **Unguarded** (the usual case): when every operation is plain data
///   that can run again ([`Job::Apply`], [`Job::Settle`],
///   [`Job::SaveEmulatorTime`]), they run one after another with no
///   savepoints. An operation that fails before changing a row (every
///   broken rule fails before writing) is answered alone and the others go
///   on. One that fails having changed rows cannot be undone alone: the
///   transaction is rolled back and the batch runs again, guarded.
/// - **Guarded**: each operation runs between `SAVEPOINT` and `RELEASE`;
///   when it fails, `ROLLBACK TO` undoes exactly its rows.
///
/// Savepoints are not free: SQLite copies every page an operation touches
/// into a sub-journal first, so for a batch of watched fades (a `users`
/// row, an event and an outbox row each) they cost about a fifth of the
/// writer's time. Hence the unguarded way first.
///
/// Only a failure of the transaction itself fails the whole batch: BEGIN
/// or COMMIT failing, a savepoint statement failing, or SQLite having
/// rolled the transaction back on its own (it may on I/O errors, a full
/// disk, `RAISE(ROLLBACK)`), which would take the earlier operations'
/// writes with it. Those also mark the store's writes as failing for
/// readiness, until a commit that writes succeeds.
///
/// Also returns, for the resident copy, the facts each committed operation
/// left its user with, in batch order: empty when the transaction failed,
/// and never holding an operation that was rolled back.
fn write_batch(
    conn: &mut Connection,
    batch: &mut [WriteOp],
    health: &Health,
    resident: &Resident,
    ids: &mut Interner,
) -> Outcome {
    let rerunnable = batch.iter().all(|op| {
        matches!(
            op.job,
            Job::Apply { .. } | Job::Settle { .. } | Job::SaveEmulatorTime
        )
    });
    if rerunnable {
        if let Some(outcome) = write_unguarded(conn, batch, health, resident, ids) {
            return outcome;
        }
    }
    write_guarded(conn, batch, health, resident, ids)
}

/// A batch's answers, in batch order, and what its committed operations
/// left their users with (for the resident copy).
type Outcome = (Vec<Result<Done, StoreError>>, Vec<Changed>);

/// Fails every operation of a batch whose transaction failed.
fn fail_all(health: &Health, ops: usize, why: &dyn std::fmt::Display) -> Outcome {
    tracing::error!(error = %why, ops, "sqlite write transaction failed");
    health.writes_failing.store(true, Ordering::Relaxed);
    let failed = (0..ops).map(|_| Err(unavailable("write failed"))).collect();
    (failed, Vec::new())
}

/// Runs one operation, turning a panic into an error: a bug in one
/// operation must not kill the only writer.
fn run_caught(
    tx: &rusqlite::Transaction<'_>,
    op: &mut WriteOp,
    ids: &mut Interner,
    changed: &mut Changes<'_>,
) -> Result<Done, StoreError> {
    let now = op.now;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_op(tx, &mut op.job, now, ids, changed)
    }))
    .unwrap_or_else(|_| {
        tracing::error!("a store write panicked; it was rolled back");
        Err(StoreError::Unavailable("internal error".into()))
    })
}

/// Commits a batch's transaction and hands back its answers.
fn commit(
    tx: rusqlite::Transaction<'_>,
    health: &Health,
    wrote: bool,
    results: Vec<Result<Done, StoreError>>,
    changed: Vec<Changed>,
) -> Outcome {
    let ops = results.len();
    match tx.commit() {
        Ok(()) => {
            // Only a commit that wrote something proves writes work again
            // (committing nothing touches no file).
            if wrote && health.writes_failing.swap(false, Ordering::Relaxed) {
                tracing::info!("sqlite writes succeed again");
            }
            (results, changed)
        }
        Err(e) => fail_all(health, ops, &e),
    }
}

/// The unguarded way of [`write_batch`]: `None` when an operation failed
/// having changed rows (the transaction is rolled back; run the batch
/// guarded) or SQLite ended the transaction on its own.
fn write_unguarded(
    conn: &mut Connection,
    batch: &mut [WriteOp],
    health: &Health,
    resident: &Resident,
    ids: &mut Interner,
) -> Option<Outcome> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return Some(fail_all(health, batch.len(), &e)),
    };
    let mut results = Vec::with_capacity(batch.len());
    let mut changed = Changes::new(resident);
    let started = tx.total_changes();
    for op in batch.iter_mut() {
        let changes = tx.total_changes();
        let changed_before = changed.list.len();
        let result = run_caught(&tx, op, ids, &mut changed);
        if tx.is_autocommit() || (result.is_err() && tx.total_changes() != changes) {
            tracing::warn!(
                ops = batch.len(),
                "a write failed after changing rows; its batch runs again, each write in a savepoint"
            );
            // Dropping the transaction rolls it back (when SQLite has not).
            return None;
        }
        if result.is_err() {
            changed.list.truncate(changed_before);
        }
        results.push(result);
    }
    let wrote = tx.total_changes() != started;
    Some(commit(tx, health, wrote, results, changed.list))
}

/// The guarded way of [`write_batch`]: each operation in a savepoint.
fn write_guarded(
    conn: &mut Connection,
    batch: &mut [WriteOp],
    health: &Health,
    resident: &Resident,
    ids: &mut Interner,
) -> Outcome {
    let ops = batch.len();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(health, ops, &e),
    };
    let mut results = Vec::with_capacity(ops);
    let mut changed = Changes::new(resident);
    let mut wrote = false;
    for op in batch.iter_mut() {
        if let Err(e) = run_cached(&tx, OP_BEGIN) {
            drop(tx);
            return fail_all(health, ops, &e);
        }
        let changes = tx.total_changes();
        let changed_before = changed.list.len();
        let result = run_caught(&tx, op, ids, &mut changed);
        let ended = if tx.is_autocommit() {
            // SQLite ended the transaction itself: nothing of the batch
            // so far will be committed.
            Err("sqlite rolled the transaction back".to_string())
        } else if result.is_ok() {
            wrote |= tx.total_changes() != changes;
            run_cached(&tx, OP_KEEP).map_err(|e| e.to_string())
        } else {
            // Rolled back: whatever it left for the resident copy goes too.
            changed.list.truncate(changed_before);
            tx.execute_batch(OP_UNDO).map_err(|e| e.to_string())
        };
        if let Err(e) = ended {
            drop(tx);
            return fail_all(health, ops, &e);
        }
        results.push(result);
    }
    commit(tx, health, wrote, results, changed.list)
}

/// What the operations of a batch so far left their users with, and where
/// a write finds the facts it builds on.
pub(super) struct Changes<'a> {
    /// The committed facts.
    resident: &'a Resident,
    /// Each successful operation's user and facts, in batch order.
    list: Vec<Changed>,
    /// The users in `list` (or once in it: a rolled-back operation's user
    /// stays here, which only costs a scan).
    touched: HashSet<UserKey>,
}

impl<'a> Changes<'a> {
    fn new(resident: &'a Resident) -> Self {
        Self {
            resident,
            list: Vec::new(),
            touched: HashSet::new(),
        }
    }

    /// The facts a write of `key` builds on: what an earlier operation of
    /// this batch left, else the committed facts. Never the `users` row:
    /// the writer is its only writer and the resident copy equals it, as
    /// loaded at open (rows that did not decode read as unreadable) and
    /// then published after every commit. So a write neither reads nor
    /// decodes the row; and a row damaged on disk while the store runs is
    /// overwritten by the next write from the facts the store holds.
    /// Beside them, the due time stored with them ([`Compact::scheduled`]).
    pub(super) fn before(&self, key: UserKey) -> (UserFacts, Option<i64>) {
        let latest = self
            .touched
            .contains(&key)
            .then(|| self.list.iter().rev().find(|(k, _)| *k == key))
            .flatten();
        match latest {
            Some((_, entry)) => (entry.facts(), entry.scheduled()),
            None => self.resident.entry(key),
        }
    }

    pub(super) fn push(&mut self, key: UserKey, facts: Compact) {
        self.touched.insert(key);
        self.list.push((key, facts));
    }
}

/// Runs one operation of a batch on the batch's transaction (inside its
/// savepoint). The facts a successful presence change or settle leaves its
/// user with are pushed on `changed`.
fn run_op(
    tx: &rusqlite::Transaction<'_>,
    job: &mut Job,
    now: Instant,
    ids: &mut Interner,
    changed: &mut Changes<'_>,
) -> Result<Done, StoreError> {
    match job {
        Job::Apply { key, change } => {
            let (before, stored) = changed.before(*key);
            if before.unreadable {
                tracing::warn!(tenant = %key.tenant, user = %key.user, "a write replaces unreadable stored facts");
            }
            let after = change.clone().applied_to(&before, now)?;
            let (applied, scheduled) = record(tx, *key, before, after, now, stored)?;
            changed.push(
                *key,
                Compact::of(&applied.after, ids).scheduled_at(scheduled),
            );
            Ok(Done::Applied(Box::new(applied)))
        }
        Job::Settle { key } => {
            let (before, stored) = changed.before(*key);
            if before.unreadable {
                // Nothing to fade or expire in facts nobody can read, and a
                // stale due time would keep the scheduler waking for a user
                // it can never settle.
                reschedule(tx, *key, None)?;
                changed.push(*key, Compact::of(&before, ids));
                return Ok(Done::Settled(None));
            }
            let Some(after) = settled(&before, now) else {
                // Already observed at or after `now` (a write or settle came
                // between the schedule's read and this): make sure the
                // stored due time is the next transition after what was
                // observed, which is later than `now`, so the schedule
                // moves on.
                let observed = before.settled_at.or(before.updated_at);
                let next = due_at(&before, observed.map_or(now, |t| t.max(now))).map(ceil_micros);
                if next != stored {
                    reschedule(tx, *key, next)?;
                    changed.push(*key, Compact::of(&before, ids).scheduled_at(next));
                }
                return Ok(Done::Settled(None));
            };
            let (applied, scheduled) = record(tx, *key, before, after, now, stored)?;
            changed.push(
                *key,
                Compact::of(&applied.after, ids).scheduled_at(scheduled),
            );
            Ok(Done::Settled(Some(Box::new(applied))))
        }
        Job::SaveEmulatorTime => tx
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value =
                   CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                params![EMULATOR_TIME, now.timestamp_micros().to_string()],
            )
            .map(|_| Done::Saved)
            .map_err(unavailable),
        Job::Replace { tenant, contents } => {
            wipe(tx, *tenant, ids, changed)?;
            if let Some(contents) = contents.take() {
                restore(tx, *contents, now, ids, changed)?;
            }
            Ok(Done::Saved)
        }
        Job::Run(f) => match f.take() {
            Some(f) => f(tx),
            None => Err(StoreError::Unavailable("a job ran twice".into())),
        },
    }
}
