//! Criterion micro-benchmarks: the pieces every request goes through, in
//! isolation, so a regression shows up where it happens (issue #14).
//!
//! Run with `cargo bench --bench micro` (bench profile: release, thin LTO);
//! `cargo bench --bench micro -- effective` runs one group. Criterion keeps
//! the previous run in `target/criterion` and reports the change against
//! it. As everywhere in presenced, nothing asserts a timing.
//!
//! - `effective`: `effective(&facts, now)` for a user with 1, 3 and 10
//!   application sessions (one of them faded), a live preferred presence
//!   and a status message with an expiry and a time zone.
//! - `codec`: encoding and decoding the stored form of the same users
//!   (`presenced::store::codec`).
//! - `store_batch`: N setPresence-shaped `upsert_session` calls issued at
//!   once to a `SqliteStore` in a temp dir (WAL, `synchronous=FULL`); the
//!   writer thread folds them into group commits, so this times a batch
//!   from the first call to the last durable answer.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use presenced::domain::{
    effective, Activity, Availability, Preferred, PreferredPair, Session, SessionKind, SessionPair,
    StatusMessage, UserFacts, UserKey,
};
use presenced::store::sqlite::SqliteStore;
use presenced::store::Store;
use uuid::Uuid;

use presenced::store::codec;

/// Session counts per user in the `effective` and `codec` groups.
const SESSIONS: &[usize] = &[1, 3, 10];
/// Concurrent writes per batch in the `store_batch` group.
const BATCHES: &[usize] = &[1, 16, 64, 256];

/// The presence instant of every fact (2026-11-24 09:00 UTC).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

/// `n` application sessions refreshed over the last few minutes: the
/// oldest an Available one that has faded, the rest cycling through
/// calls, Away and presenting.
fn sessions(n: usize) -> Vec<Session> {
    let pairs = [
        (Availability::Available, Activity::Available),
        (Availability::Busy, Activity::InACall),
        (Availability::Away, Activity::Away),
        (Availability::DoNotDisturb, Activity::Presenting),
    ];
    (0..n)
        .map(|i| {
            let (av, ac) = pairs[i % pairs.len()];
            let last_active = t0() - TimeDelta::minutes(7 - (i as i64 % 7));
            Session {
                kind: SessionKind::Application,
                id: Uuid::from_u128(0x2255_3876_0000_4000_8000_0000_0000_0000 + i as u128)
                    .to_string(),
                pair: SessionPair::new(av, ac).unwrap(),
                last_active,
                expires_at: last_active + TimeDelta::hours(1),
            }
        })
        .collect()
}

/// A user with `n` sessions, a live preferred DoNotDisturb and a status
/// message with an expiry in a named zone.
fn user(n: usize) -> UserFacts {
    let base = t0();
    UserFacts {
        sessions: sessions(n),
        preferred: Some(Preferred {
            pair: PreferredPair::new(Availability::DoNotDisturb, Activity::DoNotDisturb).unwrap(),
            set_at: base - TimeDelta::minutes(30),
            expires_at: base + TimeDelta::hours(8),
        }),
        status: Some(StatusMessage {
            content: "Heads down until the release is out".to_string(),
            expires_at: Some(base + TimeDelta::days(1)),
            expiry_zone: Some("Europe/Berlin".to_string()),
            published_at: base - TimeDelta::hours(1),
        }),
        version: 42,
        updated_at: Some(base - TimeDelta::minutes(1)),
        settled_at: Some(base - TimeDelta::minutes(1)),
        ..Default::default()
    }
}

fn bench_effective(c: &mut Criterion) {
    let mut group = c.benchmark_group("effective");
    let now = t0();
    for &n in SESSIONS {
        let facts = user(n);
        let shown = effective(&facts, now);
        assert_eq!(shown.availability, Availability::DoNotDisturb);
        group.bench_with_input(BenchmarkId::new("sessions", n), &facts, |b, facts| {
            b.iter(|| effective(black_box(facts), black_box(now)))
        });
    }
    group.finish();
}

fn bench_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for &n in SESSIONS {
        let facts = user(n);
        let bytes = codec::encode(&facts);
        assert_eq!(codec::decode(&bytes, facts.version).unwrap(), facts);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", n), &facts, |b, facts| {
            b.iter(|| codec::encode(black_box(facts)))
        });
        group.bench_with_input(BenchmarkId::new("decode", n), &bytes, |b, bytes| {
            b.iter(|| codec::decode(black_box(bytes), 42).unwrap())
        });
    }
    group.finish();
}

fn bench_store_batch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let tenant = Uuid::new_v4();
    let keys: Vec<UserKey> = (0..*BATCHES.iter().max().unwrap())
        .map(|_| UserKey {
            tenant,
            user: Uuid::new_v4(),
        })
        .collect();
    let session = sessions(2).pop().unwrap();

    let mut group = c.benchmark_group("store_batch");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for &n in BATCHES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("upsert_session", n), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let writes = keys[..n].iter().map(|&key| {
                            let store = store.clone();
                            let session = session.clone();
                            tokio::spawn(async move {
                                store.upsert_session(key, session, t0()).await.unwrap()
                            })
                        });
                        for write in writes.collect::<Vec<_>>() {
                            black_box(write.await.unwrap());
                        }
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
    store.close();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = bench_effective, bench_codec, bench_store_batch
}
criterion_main!(micro);
