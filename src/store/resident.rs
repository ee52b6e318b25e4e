//! The resident copy of every user's facts that the SQLite backend answers
//! reads from (issue #14): a GET or a 650-id bulk read is a map lookup per
//! id and never leaves the async worker, while SQLite stays the durable
//! record.
//!
//! Who writes it: the store's open (every `users` row, decoded once) and
//! then only the writer thread, for every user a batch changed, after the
//! batch's transaction committed and before any of its writers is answered
//! (see `sqlite/writer.rs`). So an entry is always a committed state, and a write
//! that was acknowledged is visible to every read that starts after it.
//! Readers never see a write that failed (no phantom writes).
//!
//! The map is [`papaya::HashMap`]:
//! - reads are lock-free and never wait for the writer: a reader pins an
//!   epoch guard, looks up, copies the entry out and lets go; the writer
//!   swaps in a new entry and the old one is freed once no guard can see it.
//!   `dashmap` takes a shard `RwLock` on every read and its writer holds the
//!   shard's write lock while inserting or resizing, so a read on a Tokio
//!   worker could block behind the writer thread;
//! - resizing is incremental: growing to a million users never stops reads
//!   or the writer for a whole-table copy (hashbrown's doubling of a large
//!   table takes milliseconds);
//! - its guards are `!Send`, so holding one across an `.await` does not
//!   compile: the lookups here are synchronous and the guard is gone before
//!   the caller awaits anything;
//! - per entry it costs a table slot (an 8-byte pointer and a metadata
//!   byte; the table is a power of two, at most about 85% full) plus one
//!   allocation holding key and value, which is why the value is kept small
//!   ([`Compact`]). `scc::HashIndex` has the same lock-free reads;
//!   papaya's plain get/insert under a pinned guard is the simpler API;
//! - it hashes with foldhash, seeded per process as std's SipHash is (user
//!   ids come from requests, so the seed matters), at a fraction of
//!   SipHash's cost for a 32-byte key, on every read (issue #14).
//!
//! The entry is [`Compact`], not [`UserFacts`]: instants as `i64`
//! microseconds, pairs as one-byte enums, session ids shared through an
//! [`Interner`] (every session of one application carries the same id),
//! the first session inline, and the rarely set parts (preferred presence,
//! status message, work location) behind one optional box. Measured as the
//! growth of resident memory while a store opens: 167 bytes per user at
//! 1,000,000 users with one session each, 59 bytes per session at 100,000
//! users with ten. Keeping the stored JSON instead would cost more than the
//! whole entry (about 180 bytes for one session) and a parse on every read.
//!
//! Reading an entry back builds the `UserFacts` the codec would have
//! decoded from the row, to the microsecond (nanoseconds for the status
//! message, as the codec keeps them), so a restart reads exactly what was
//! read before it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use uuid::Uuid;

use crate::clock::Instant;
use crate::domain::{
    Activity, Availability, Preferred, Session, SessionKind, SessionPair, StatusMessage, UserFacts,
    UserKey, WorkLocation,
};

/// The instant field of a [`Compact`] that holds no instant. Never the
/// microseconds of a representable [`Instant`] (chrono's range ends long
/// before `i64::MIN` microseconds).
const NO_INSTANT: i64 = i64::MIN;

/// Every user's facts, as last committed.
pub(crate) struct Resident {
    users: papaya::HashMap<UserKey, Compact, foldhash::fast::RandomState>,
    /// Entries with at least one session or other fact (a wiped user keeps
    /// an empty entry), kept by [`Resident::publish`].
    known: AtomicUsize,
    /// Sessions over every entry, kept by [`Resident::publish`].
    sessions: AtomicUsize,
    /// Entries with at least one session, kept by [`Resident::publish`].
    online: AtomicUsize,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resident")
            .field("users", &self.users.len())
            .finish()
    }
}

impl Resident {
    /// An empty copy with room for `users` entries without growing.
    pub(crate) fn with_capacity(users: usize) -> Self {
        Self {
            users: papaya::HashMap::with_capacity_and_hasher(users, Default::default()),
            known: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
            online: AtomicUsize::new(0),
        }
    }

    /// How many users have an entry.
    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }

    /// How many users have facts (a wiped user's empty entry not counted).
    pub(crate) fn users(&self) -> usize {
        self.known.load(Ordering::Relaxed)
    }

    /// How many users hold at least one session.
    pub(crate) fn users_with_sessions(&self) -> usize {
        self.online.load(Ordering::Relaxed)
    }

    /// How many sessions the entries hold.
    pub(crate) fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// The facts of one user; empty facts for a user never written.
    pub(crate) fn facts(&self, key: UserKey) -> UserFacts {
        self.users
            .pin()
            .get(&key)
            .map_or_else(UserFacts::default, Compact::facts)
    }

    /// The facts of one user and the due time stored beside them
    /// ([`Compact::scheduled`]), in one lookup; empty facts and `None` for a
    /// user never written.
    pub(crate) fn entry(&self, key: UserKey) -> (UserFacts, Option<i64>) {
        self.users.pin().get(&key).map_or_else(
            || (UserFacts::default(), None),
            |c| (c.facts(), c.scheduled()),
        )
    }

    /// The facts of `users` in `tenant`, in the order asked (one guard for
    /// all of them). Each user's facts are a committed state; two users
    /// changed by one batch may be seen one before and one after it, as
    /// neither write has been acknowledged until both are visible.
    pub(crate) fn facts_for(&self, tenant: Uuid, users: &[Uuid]) -> Vec<UserFacts> {
        let map = self.users.pin();
        // Every lookup first, then every copy: the lookups' cache misses
        // overlap instead of each waiting behind the previous copy.
        let found: Vec<Option<&Compact>> = users
            .iter()
            .map(|&user| map.get(&UserKey { tenant, user }))
            .collect();
        found
            .into_iter()
            .map(|c| c.map_or_else(UserFacts::default, Compact::facts))
            .collect()
    }

    /// Replaces the entries of committed users, in order (a later entry for
    /// the same user wins, as its write came later in the batch).
    pub(crate) fn publish(&self, committed: impl IntoIterator<Item = (UserKey, Compact)>) {
        let map = self.users.pin();
        // Only the writer thread (or the loader before it) publishes, so
        // the counts need no read-modify-write atomicity across entries.
        let (mut known, mut sessions) = (self.users() as isize, self.sessions() as isize);
        let mut online = self.users_with_sessions() as isize;
        for (key, facts) in committed {
            let (new_known, new_sessions) = (facts.is_known(), facts.session_count());
            if let Some(old) = map.insert(key, facts) {
                known -= isize::from(old.is_known());
                sessions -= old.session_count() as isize;
                online -= isize::from(old.session_count() > 0);
            }
            known += isize::from(new_known);
            sessions += new_sessions as isize;
            online += isize::from(new_sessions > 0);
        }
        self.known.store(known.max(0) as usize, Ordering::Relaxed);
        self.sessions
            .store(sessions.max(0) as usize, Ordering::Relaxed);
        self.online.store(online.max(0) as usize, Ordering::Relaxed);
    }
}

/// One user's facts as [`Resident`] keeps them. Built only from committed
/// facts, by [`Compact::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compact {
    /// [`UserFacts::version`].
    version: u64,
    /// [`UserFacts::updated_at`] in microseconds, or [`NO_INSTANT`].
    updated_at: i64,
    /// [`UserFacts::last_seen`] in microseconds, or [`NO_INSTANT`].
    last_seen: i64,
    /// [`UserFacts::settled_at`] in microseconds, or [`NO_INSTANT`].
    settled_at: i64,
    /// The first of [`UserFacts::sessions`], kept inline: most users have
    /// one session, which then costs no allocation and no pointer to chase.
    first: Option<CompactSession>,
    /// The other sessions, in order (no allocation when there are none).
    more: Box<[CompactSession]>,
    /// The preferred presence, status message and work location, when any
    /// is set (most users have none).
    rest: Option<Box<Rest>>,
    /// [`UserFacts::unreadable`].
    unreadable: bool,
    /// The due time stored beside these facts (the `users.next_change`
    /// column), in microseconds, or [`NO_INSTANT`]: never later than the
    /// facts' next transition, but it may be earlier (see the SQLite
    /// store's `write_facts`).
    scheduled: i64,
}

/// One [`Session`] in [`Compact`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct CompactSession {
    /// [`Session::id`], shared with every other session of the same id.
    id: Arc<str>,
    /// [`Session::last_active`] in microseconds.
    last_active: i64,
    /// [`Session::expires_at`] in microseconds.
    expires_at: i64,
    kind: SessionKind,
    availability: Availability,
    activity: Activity,
}

/// The rarely set parts of a user's facts, with instants as the codec
/// stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rest {
    preferred: Option<Preferred>,
    status: Option<StatusMessage>,
    work_location: WorkLocation,
}

impl Compact {
    /// How many sessions it holds.
    fn session_count(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    /// Whether it holds any fact: a user wiped by a reset keeps an entry
    /// with none.
    fn is_known(&self) -> bool {
        self.version != 0 || self.first.is_some() || self.rest.is_some()
    }

    /// The compact form of committed `facts`; session ids are shared
    /// through `ids`. Instants are cut to what the codec keeps, so
    /// [`Compact::facts`] gives what decoding the stored row gives.
    pub(crate) fn of(facts: &UserFacts, ids: &mut Interner) -> Self {
        let mut sessions = facts.sessions.iter().map(|s| CompactSession {
            id: ids.intern(&s.id),
            last_active: micros(s.last_active),
            expires_at: micros(s.expires_at),
            kind: s.kind,
            availability: s.pair.availability(),
            activity: s.pair.activity(),
        });
        let first = sessions.next();
        let more = sessions.collect();
        let work_location = |w: &WorkLocation| {
            let mut w = w.clone();
            for layer in [&mut w.manual, &mut w.automatic].into_iter().flatten() {
                layer.set_at = to_micro(layer.set_at);
            }
            w
        };
        let rest = (facts.preferred.is_some()
            || facts.status.is_some()
            || facts.work_location != WorkLocation::default())
        .then(|| {
            Box::new(Rest {
                preferred: facts.preferred.as_ref().map(|p| Preferred {
                    pair: p.pair,
                    set_at: to_micro(p.set_at),
                    expires_at: to_micro(p.expires_at),
                }),
                // The codec keeps the status message's instants to the
                // nanosecond (Graph echoes 7 fractional digits).
                status: facts.status.clone(),
                work_location: work_location(&facts.work_location),
            })
        });
        Self {
            version: facts.version,
            updated_at: facts.updated_at.map_or(NO_INSTANT, micros),
            last_seen: facts.last_seen.map_or(NO_INSTANT, micros),
            settled_at: facts.settled_at.map_or(NO_INSTANT, micros),
            first,
            more,
            rest,
            unreadable: facts.unreadable,
            scheduled: NO_INSTANT,
        }
    }

    /// The same entry with `at` (microseconds) as its stored due time.
    pub(crate) fn scheduled_at(mut self, at: Option<i64>) -> Self {
        self.scheduled = at.unwrap_or(NO_INSTANT);
        self
    }

    /// The due time stored beside these facts, in microseconds.
    pub(crate) fn scheduled(&self) -> Option<i64> {
        (self.scheduled != NO_INSTANT).then_some(self.scheduled)
    }

    /// The facts this entry holds.
    pub(crate) fn facts(&self) -> UserFacts {
        let rest = self.rest.as_deref();
        UserFacts {
            sessions: self
                .first
                .iter()
                .chain(self.more.iter())
                .map(|s| Session {
                    kind: s.kind,
                    id: s.id.to_string(),
                    pair: SessionPair::from_stored(s.availability, s.activity),
                    last_active: instant(s.last_active),
                    expires_at: instant(s.expires_at),
                })
                .collect(),
            preferred: rest.and_then(|r| r.preferred.clone()),
            status: rest.and_then(|r| r.status.clone()),
            work_location: rest.map(|r| r.work_location.clone()).unwrap_or_default(),
            version: self.version,
            updated_at: optional_instant(self.updated_at),
            last_seen: optional_instant(self.last_seen),
            settled_at: optional_instant(self.settled_at),
            unreadable: self.unreadable,
        }
    }
}

/// Session ids in use, each kept once: the sessions of one application
/// across all its users share one allocation. Owned by whoever builds
/// [`Compact`] values (the store's open, then the writer thread), so it
/// needs no lock. Ids no entry uses any more are dropped when the set has
/// doubled since the last sweep, so it stays within twice the live ids.
#[derive(Debug)]
pub(crate) struct Interner {
    ids: HashSet<Arc<str>>,
    sweep_at: usize,
}

/// The fewest ids the interner holds before it first sweeps.
const MIN_SWEEP: usize = 1024;

impl Default for Interner {
    fn default() -> Self {
        Self {
            ids: HashSet::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl Interner {
    /// The shared copy of `id`.
    pub(crate) fn intern(&mut self, id: &str) -> Arc<str> {
        if let Some(shared) = self.ids.get(id) {
            return shared.clone();
        }
        if self.ids.len() >= self.sweep_at {
            // Held only here: no entry uses it.
            self.ids.retain(|id| Arc::strong_count(id) > 1);
            self.sweep_at = (self.ids.len() * 2).max(MIN_SWEEP);
        }
        let shared: Arc<str> = Arc::from(id);
        self.ids.insert(shared.clone());
        shared
    }
}

fn micros(t: Instant) -> i64 {
    t.timestamp_micros()
}

/// `t` cut to the microsecond, as the codec stores it.
fn to_micro(t: Instant) -> Instant {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn instant(micros: i64) -> Instant {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("only the microseconds of an Instant are kept")
}

fn optional_instant(micros: i64) -> Option<Instant> {
    (micros != NO_INSTANT).then(|| instant(micros))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::domain::{PreferredPair, WorkLocationLayer, WorkLocationType};
    use crate::store::codec::{decode, encode, unreadable};

    /// An instant with nanoseconds the codec does not keep (except for the
    /// status message).
    fn odd() -> Instant {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap() + TimeDelta::nanoseconds(123_456_789)
    }

    fn session(kind: SessionKind, id: &str, av: Availability, ac: Activity) -> Session {
        Session {
            kind,
            id: id.into(),
            pair: SessionPair::from_stored(av, ac),
            last_active: odd(),
            expires_at: odd() + TimeDelta::hours(1),
        }
    }

    fn everything() -> UserFacts {
        let layer = |t| WorkLocationLayer {
            location_type: t,
            place_id: Some("building-1".into()),
            set_at: odd(),
        };
        UserFacts {
            sessions: vec![
                session(
                    SessionKind::Application,
                    "app-1",
                    Availability::Busy,
                    Activity::InACall,
                ),
                session(
                    SessionKind::Client,
                    "desktop",
                    Availability::DoNotDisturb,
                    Activity::UrgentInterruptionsOnly,
                ),
            ],
            preferred: Some(Preferred {
                pair: PreferredPair::new(Availability::Offline, Activity::OffWork).unwrap(),
                set_at: odd(),
                expires_at: odd() + TimeDelta::days(1),
            }),
            status: Some(StatusMessage {
                content: "In a meeting — ünïcode ✓".into(),
                expires_at: Some(odd() + TimeDelta::hours(2)),
                expiry_zone: Some("Pacific Standard Time".into()),
                published_at: odd(),
            }),
            work_location: WorkLocation {
                manual: Some(layer(WorkLocationType::Remote)),
                automatic: Some(layer(WorkLocationType::Office)),
            },
            version: 7,
            updated_at: Some(odd()),
            last_seen: Some(odd() - TimeDelta::minutes(3)),
            settled_at: Some(odd()),
            unreadable: false,
        }
    }

    #[test]
    fn an_entry_reads_back_what_the_stored_row_decodes_to() {
        let mut ids = Interner::default();
        for facts in [
            everything(),
            UserFacts {
                preferred: None,
                status: None,
                work_location: WorkLocation::default(),
                ..everything()
            },
            UserFacts {
                version: 3,
                ..UserFacts::default()
            },
            UserFacts::default(),
        ] {
            let stored = decode(&encode(&facts), facts.version).unwrap();

            assert_eq!(Compact::of(&facts, &mut ids).facts(), stored);
        }
    }

    #[test]
    fn unreadable_facts_stay_unreadable_with_their_version() {
        let mut ids = Interner::default();

        let facts = Compact::of(&unreadable(4), &mut ids).facts();

        assert_eq!(facts, unreadable(4));
    }

    #[test]
    fn sessions_of_one_application_share_their_id() {
        let mut ids = Interner::default();
        let a = Compact::of(&everything(), &mut ids);
        let b = Compact::of(&everything(), &mut ids);

        let (a, b) = (a.first.unwrap(), b.first.unwrap());
        assert!(Arc::ptr_eq(&a.id, &b.id));
    }

    #[test]
    fn the_interner_drops_ids_no_entry_uses() {
        let mut ids = Interner::default();
        let kept = ids.intern("kept");
        for i in 0..(3 * MIN_SWEEP) {
            ids.intern(&format!("gone-{i}"));
        }

        assert!(ids.ids.len() <= 2 * MIN_SWEEP, "{}", ids.ids.len());
        assert!(Arc::ptr_eq(&kept, &ids.intern("kept")));
    }

    /// The entry is what the memory budget (300 bytes a session at a
    /// million sessions) is made of; growing it should be a decision. (104
    /// to 112: the stored due time, which spares the SQLite writer moving
    /// its due-time index on every write.)
    #[test]
    fn entries_stay_small() {
        assert_eq!(std::mem::size_of::<Compact>(), 112);
        assert_eq!(std::mem::size_of::<CompactSession>(), 40);
    }

    #[test]
    fn reads_answer_committed_entries_and_empty_facts_for_others() {
        let resident = Resident::with_capacity(0);
        let mut ids = Interner::default();
        let tenant = Uuid::new_v4();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = UserFacts {
            version: 1,
            ..everything()
        };
        let second = UserFacts {
            version: 2,
            ..UserFacts::default()
        };

        resident.publish([
            (UserKey { tenant, user: a }, Compact::of(&first, &mut ids)),
            (UserKey { tenant, user: a }, Compact::of(&second, &mut ids)),
        ]);

        assert_eq!(
            resident.facts_for(tenant, &[b, a]),
            [UserFacts::default(), second.clone()]
        );
        assert_eq!(resident.facts(UserKey { tenant, user: a }), second);
        let other_tenant = UserKey {
            tenant: Uuid::new_v4(),
            user: a,
        };
        assert_eq!(resident.facts(other_tenant), UserFacts::default());
        assert_eq!(resident.len(), 1);
    }
}
