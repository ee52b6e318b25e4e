//! Throughput and latency of the embedded store and of `effective`.
//!
//! Run with `cargo bench --bench throughput` (bench profile: release, thin
//! LTO). Prints a table; the numbers go into BENCHMARKS.md by hand. Nothing
//! here asserts a timing: the machines we run on are shared and noisy, so
//! results are read as ratios against a baseline measured in the same run.
//!
//! 1. Durable writes through the `Store` trait on `SqliteStore` (temp dir,
//!    WAL, `synchronous=FULL`): one writer in sequence (one fsync per
//!    request) against 16, 64 and 256 concurrent tasks, which the writer
//!    thread folds into shared transactions (group commit).
//! 2. `facts_for(tenant, 650 ids)` latency after populating 10 000 users.
//! 3. `effective(&facts, now)` for a user with 3 sessions, a preferred
//!    presence and a status message (pure CPU).

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use presenced::domain::{
    effective, Activity, Availability, Preferred, PreferredPair, Session, SessionKind, SessionPair,
    StatusMessage, UserFacts, UserKey,
};
use presenced::store::sqlite::SqliteStore;
use presenced::store::Store;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use uuid::Uuid;

/// How long each write configuration is measured.
const WRITE_RUN: Duration = Duration::from_secs(2);
/// Unmeasured writes before each configuration, same shape as the run.
const WRITE_WARMUP: Duration = Duration::from_millis(300);
/// Concurrent writer counts compared with the sequential baseline.
const CONCURRENCY: &[usize] = &[16, 64, 256];
/// Users stored before the bulk-read measurement.
const POPULATION: usize = 10_000;
/// Ids per bulk read (a large presence subscription page).
const BULK_IDS: usize = 650;
/// Measured bulk reads.
const READ_ITERATIONS: usize = 200;
/// How long `effective` is measured.
const EFFECTIVE_RUN: Duration = Duration::from_secs(1);

/// The presence instant every write and read uses (2026-11-24 09:00 UTC).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

fn session(id: &str, av: Availability, ac: Activity, at: DateTime<Utc>) -> Session {
    Session {
        kind: SessionKind::Application,
        id: id.to_string(),
        pair: SessionPair::new(av, ac).unwrap(),
        last_active: at,
        expires_at: at + TimeDelta::hours(1),
    }
}

fn app_session() -> Session {
    session("bench-app", Availability::Busy, Activity::InACall, t0())
}

/// `q`-quantile of sorted durations (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct WriteResult {
    writers: usize,
    ops: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl WriteResult {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// `writers` tasks, each refreshing its own user's session back to back
/// until `run` has passed. Returns the ops completed and their latencies.
async fn drive_writes(
    store: &Arc<SqliteStore>,
    keys: &[UserKey],
    run: Duration,
) -> (usize, Duration, Vec<Duration>) {
    let start = Instant::now();
    let deadline = start + run;
    let tasks: Vec<_> = keys
        .iter()
        .map(|&key| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let began = Instant::now();
                    store
                        .upsert_session(key, app_session(), t0())
                        .await
                        .unwrap();
                    latencies.push(began.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    (all.len(), elapsed, all)
}

async fn bench_writes(writers: usize) -> WriteResult {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let tenant = Uuid::new_v4();
    let keys: Vec<UserKey> = (0..writers)
        .map(|_| UserKey {
            tenant,
            user: Uuid::new_v4(),
        })
        .collect();
    drive_writes(&store, &keys, WRITE_WARMUP).await;
    let (ops, elapsed, mut latencies) = drive_writes(&store, &keys, WRITE_RUN).await;
    store.close();
    latencies.sort_unstable();
    WriteResult {
        writers,
        ops,
        elapsed,
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
    }
}

struct ReadResult {
    populate: Duration,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

async fn bench_reads() -> ReadResult {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let tenant = Uuid::new_v4();
    let users: Vec<Uuid> = (0..POPULATION).map(|_| Uuid::new_v4()).collect();

    // Populate through the trait with 256 concurrent writers (group commit).
    let started = Instant::now();
    let chunk = POPULATION.div_ceil(256);
    let tasks: Vec<_> = users
        .chunks(chunk)
        .map(|part| {
            let store = store.clone();
            let part = part.to_vec();
            tokio::spawn(async move {
                for user in part {
                    let key = UserKey { tenant, user };
                    store
                        .upsert_session(key, app_session(), t0())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let populate = started.elapsed();

    let mut rng = StdRng::seed_from_u64(20_261_124);
    let sample =
        |rng: &mut StdRng| -> Vec<Uuid> { users.choose_multiple(rng, BULK_IDS).copied().collect() };
    for _ in 0..10 {
        let ids = sample(&mut rng);
        black_box(store.facts_for(tenant, &ids).await.unwrap());
    }
    let mut latencies = Vec::with_capacity(READ_ITERATIONS);
    for _ in 0..READ_ITERATIONS {
        let ids = sample(&mut rng);
        let began = Instant::now();
        let facts = store.facts_for(tenant, &ids).await.unwrap();
        latencies.push(began.elapsed());
        assert_eq!(facts.len(), BULK_IDS);
        assert!(facts.iter().all(|f| f.sessions.len() == 1));
        black_box(facts);
    }
    store.close();
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<Duration>() / READ_ITERATIONS as u32;
    ReadResult {
        populate,
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        mean,
    }
}

/// A busy user: an Available session that has faded, a call, an Away
/// session, a preferred DoNotDisturb and a status message with an expiry.
fn busy_user() -> UserFacts {
    let base = t0();
    UserFacts {
        sessions: vec![
            session(
                "teams",
                Availability::Available,
                Activity::Available,
                base - TimeDelta::minutes(7),
            ),
            session(
                "phone",
                Availability::Busy,
                Activity::InACall,
                base - TimeDelta::minutes(2),
            ),
            session(
                "outlook",
                Availability::Away,
                Activity::Away,
                base - TimeDelta::minutes(1),
            ),
        ],
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
        ..Default::default()
    }
}

/// Nanoseconds per `effective` call and the number of calls measured.
fn bench_effective() -> (f64, u64) {
    let facts = busy_user();
    let now = t0();
    let shown = effective(&facts, now);
    assert_eq!(shown.availability, Availability::DoNotDisturb);
    assert!(shown.status.is_some());

    const BATCH: u64 = 10_000;
    let mut calls = 0u64;
    let warmup = Instant::now();
    while warmup.elapsed() < Duration::from_millis(200) {
        for _ in 0..BATCH {
            black_box(effective(black_box(&facts), black_box(now)));
        }
    }
    let start = Instant::now();
    while start.elapsed() < EFFECTIVE_RUN {
        for _ in 0..BATCH {
            black_box(effective(black_box(&facts), black_box(now)));
        }
        calls += BATCH;
    }
    let elapsed = start.elapsed();
    (elapsed.as_nanos() as f64 / calls as f64, calls)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let total = Instant::now();

    println!("presenced throughput bench (no assertions on timing; ratios are same-run)");
    println!();
    println!("1. Durable SQLite writes: Store::upsert_session, WAL, synchronous=FULL");
    println!(
        "{:>9} {:>8} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "writers", "ops", "secs", "ops/s", "x base", "p50 ms", "p99 ms"
    );
    let mut baseline = None;
    for &writers in [1].iter().chain(CONCURRENCY) {
        let r = runtime.block_on(bench_writes(writers));
        let base = *baseline.get_or_insert(r.per_sec());
        println!(
            "{:>9} {:>8} {:>7.2} {:>10.0} {:>8.1}x {:>9.2} {:>9.2}",
            r.writers,
            r.ops,
            r.elapsed.as_secs_f64(),
            r.per_sec(),
            r.per_sec() / base,
            ms(r.p50),
            ms(r.p99),
        );
    }

    println!();
    println!("2. Bulk reads: facts_for(tenant, {BULK_IDS} ids) among {POPULATION} users");
    let r = runtime.block_on(bench_reads());
    println!(
        "   populated {POPULATION} users in {:.2} s ({:.0} writes/s, 256 writers)",
        r.populate.as_secs_f64(),
        POPULATION as f64 / r.populate.as_secs_f64()
    );
    println!(
        "   {READ_ITERATIONS} reads: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms ({:.2} us/id at p50)",
        ms(r.p50),
        ms(r.p99),
        ms(r.mean),
        r.p50.as_secs_f64() * 1e6 / BULK_IDS as f64
    );

    println!();
    println!("3. effective(&facts, now): 3 sessions + preferred + status message");
    let (ns, calls) = bench_effective();
    println!("   {ns:.0} ns/call over {calls} calls");

    println!();
    println!("total {:.1} s", total.elapsed().as_secs_f64());
}
