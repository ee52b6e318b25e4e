//! Change notifications end to end (SPEC §7, §8): webhooks and the event
//! stream, against the real `App` over real sockets.
//!
//! Run with `cargo bench --bench notify` (bench profile: release, thin LTO).
//! Prints tables; the numbers go into BENCHMARKS.md by hand. Nothing here
//! asserts a timing: results are read against baselines from the same run.
//!
//! Each scenario builds a fresh `App` the way the binary does (SQLite in a
//! temp dir, emulator mode with a manual clock, `--subscription-limits
//! none` so one app token may hold many subscriptions) serving on
//! `127.0.0.1:0`, plus an in-process axum webhook receiver on
//! `127.0.0.1:0` that answers the validation handshake and records the
//! `Instant` each notification item arrived. Server, receiver and clients
//! share one tokio runtime (and the machine's cores).
//!
//! 1. Write-to-webhook latency: N watched users (1, 100, 650, 10 000) in
//!    ceil(N/650) subscriptions; setPresence over HTTP on random watched
//!    users (each write a change), from one sequential client and from 16
//!    concurrent clients. Latency = receipt − the instant before the
//!    request was sent. Baseline: setPresence with no subscriptions. (650
//!    is one full subscription: it separates the size of a subscription
//!    from the number of subscriptions.)
//! 2. 100 000 Available sessions written at the same presence instant,
//!    watched by 154 subscriptions of 650 users; the clock moves 5 minutes
//!    and `Notifier::run_due` settles every fade: time until it returns
//!    (all transitions processed and queued) and until the receiver holds
//!    every item (waits at most 60 s, then extrapolates). The same fade
//!    without subscriptions is the baseline.
//! 3. `/_presenced/events` (SSE) with 1 and 10 readers: events per second
//!    per reader and write-to-event lag while 16 clients write, then the
//!    replay rate of the same log from `Last-Event-ID: 0`.
//!
//! Environment: `PRESENCED_BENCH_PARTS=1,3` runs only those parts;
//! `PRESENCED_BENCH_FADE_USERS` (default 100 000) and
//! `PRESENCED_BENCH_DRAIN_SECS` (default 60) size part 2; `RUST_LOG`
//! shows the server's logs on stderr (errors only by default).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures_util::future::join_all;
use presenced::app::App;

use presenced::auth::{mint_hs256, MintClaims};
use presenced::clock::{wall_now, Clock, ManualClock};
use presenced::config::{Config, FileConfig};
use presenced::domain::{
    Activity, Availability, Change, Session, SessionKind, SessionPair, UserKey,
};
use presenced::http::AppState;
use presenced::notify::Notifier;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// The allocator the `presenced` binary uses (`src/main.rs`), so the
/// figures are those of the server as deployed: with glibc malloc the
/// SQLite writer spent about a fifth of a fade pass allocating.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The HS256 secret the bench server trusts.
const SECRET: &[u8] = b"presenced-bench-secret-0123456789abcdef";
/// The application id of every token (and so every setPresence sessionId).
const APP: &str = "22553876-f5ab-4529-bffb-cfe50aa89f87";
/// Users one subscription can watch (`$filter=id in (…)`, SPEC §7).
const PER_SUBSCRIPTION: usize = 650;
/// Watched-user counts of part 1.
const WATCHED: &[usize] = &[1, 100, 650, 10_000];
/// Concurrent clients of the concurrent rows.
const CLIENTS: usize = 16;
/// Measured writes of the sequential client.
const SEQ_WRITES: usize = 1_000;
/// Measured writes of the 16 concurrent clients together.
const CONC_WRITES: usize = 4_000;
/// Unmeasured writes before the baseline.
const WARMUP_WRITES: usize = 200;
/// Users whose sessions fade at the same instant in part 2 (override with
/// `PRESENCED_BENCH_FADE_USERS`).
const FADE_USERS: usize = 100_000;
/// How long part 2 waits for the receiver to hold every item, from the
/// clock move (override with `PRESENCED_BENCH_DRAIN_SECS`).
const DRAIN_SECS: usize = 60;
/// Concurrent tasks writing part 2's sessions through the service.
const FADE_WRITERS: usize = 256;
/// Changes written while the event streams are read (part 3).
const SSE_WRITES: usize = 10_000;
/// Users those changes are spread over.
const SSE_USERS: usize = 1_000;
/// Event-stream reader counts of part 3.
const READERS: &[usize] = &[1, 10];
/// The longest wait for deliveries before a run is reported incomplete.
const DEADLINE: Duration = Duration::from_secs(300);
/// How long nothing may arrive before a run is reported incomplete.
const STALL: Duration = Duration::from_secs(10);

/// The presence instant every server starts at (2026-11-24 09:00 UTC).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

/// An application token with every presence role, valid for an hour.
fn app_token(tenant: Uuid) -> String {
    let roles = vec![
        "Presence.ReadWrite.All".to_string(),
        "Presence.Read.All".to_string(),
    ];
    let claims = MintClaims::new(
        tenant,
        None,
        APP,
        None,
        Some(&roles),
        wall_now(),
        TimeDelta::hours(1),
    );
    mint_hs256(SECRET, &claims).unwrap()
}

// ---------------------------------------------------------------- server

/// A running `App` on a loopback port.
struct Server {
    url: String,
    client: reqwest::Client,
    clock: ManualClock,
    state: AppState,
    notifier: Arc<Notifier>,
    tenant: Uuid,
    token: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Builds the app as the binary does and serves it on 127.0.0.1:0.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("bench-secret");
        std::fs::write(&secret_file, SECRET).unwrap();
        let flags = FileConfig {
            data_dir: Some(dir.path().to_path_buf()),
            jwt_secret_file: Some(secret_file),
            manual_clock: Some(true),
            subscription_limits: Some("none".into()),
            ..FileConfig::default()
        };
        let config = Config::merge(flags, FileConfig::default(), false).unwrap();
        let store = App::open_store(&config).await.unwrap();
        let clock = ManualClock::new(t0());
        let app = App::build(&config, store, Arc::new(clock.clone()) as Arc<dyn Clock>)
            .await
            .unwrap();
        let state = app.state().clone();
        let notifier = app.notifier().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            app.serve(listener, async {
                let _ = stop.await;
            })
            .await
            .unwrap();
        });
        let tenant = Uuid::new_v4();
        Self {
            url,
            client: reqwest::Client::new(),
            clock,
            state,
            notifier,
            tenant,
            token: app_token(tenant),
            shutdown,
            served,
            _dir: dir,
        }
    }

    /// Stops serving, drains the background work and closes the store.
    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.served.await.unwrap();
    }

    /// setPresence for `user` (Busy/InACall or Available/Available).
    /// Returns the instant just before sending and the HTTP latency.
    async fn set_presence(&self, user: Uuid, busy: bool) -> (Instant, Duration) {
        let (availability, activity) = if busy {
            ("Busy", "InACall")
        } else {
            ("Available", "Available")
        };
        let body = json!({ "sessionId": APP, "availability": availability, "activity": activity });
        let request = self
            .client
            .post(format!(
                "{}/v1.0/users/{user}/presence/setPresence",
                self.url
            ))
            .bearer_auth(&self.token)
            .json(&body);
        let sent = Instant::now();
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let latency = sent.elapsed();
        assert_eq!(status, 200, "setPresence: {text}");
        (sent, latency)
    }

    /// Creates one subscription watching `users` (at most 650), delivered
    /// to `hook`.
    async fn subscribe(&self, hook: &str, users: &[Uuid]) {
        let resource = format!(
            "/communications/presences?$filter=id in ({})",
            users
                .iter()
                .map(|u| format!("'{u}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let body = json!({
            "changeType": "updated",
            "notificationUrl": hook,
            "resource": resource,
            "expirationDateTime": (self.clock.now() + TimeDelta::days(1)).to_rfc3339(),
            "clientState": "bench",
        });
        let response = self
            .client
            .post(format!("{}/v1.0/subscriptions", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 201, "create subscription: {text}");
    }

    /// Subscriptions of 650 users each covering `users`, `parallel` at once.
    async fn subscribe_all(&self, hook: &str, users: &[Uuid], parallel: usize) -> usize {
        let chunks: Vec<&[Uuid]> = users.chunks(PER_SUBSCRIPTION).collect();
        for group in chunks.chunks(parallel) {
            join_all(group.iter().map(|c| self.subscribe(hook, c))).await;
        }
        chunks.len()
    }
}

// -------------------------------------------------------------- receiver

#[derive(Deserialize)]
struct Notification {
    value: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "resourceData")]
    resource_data: ResourceData,
}

#[derive(Deserialize)]
struct ResourceData {
    id: Uuid,
}

#[derive(Default)]
struct Hooks {
    items: Mutex<Vec<(Uuid, Instant)>>,
    count: AtomicUsize,
    posts: AtomicUsize,
}

/// A webhook receiver on 127.0.0.1: echoes validation tokens, records each
/// notification item's user and arrival instant, answers 202.
struct Receiver {
    url: String,
    hooks: Arc<Hooks>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn hook(
    State(hooks): State<Arc<Hooks>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    if let Some(token) = query.get("validationToken") {
        return (StatusCode::OK, token.clone()).into_response();
    }
    let n: Notification = serde_json::from_slice(&body).expect("a notification body");
    let count = n.value.len();
    hooks
        .items
        .lock()
        .unwrap()
        .extend(n.value.into_iter().map(|i| (i.resource_data.id, arrived)));
    hooks.count.fetch_add(count, Ordering::Release);
    hooks.posts.fetch_add(1, Ordering::Relaxed);
    StatusCode::ACCEPTED.into_response()
}

impl Receiver {
    async fn start() -> Self {
        let hooks = Arc::new(Hooks::default());
        // No body limit: 100 items of a 650-user subscription are ~2.7 MB
        // (each item repeats the subscription's resource string, SPEC §7).
        let app = axum::Router::new()
            .fallback(axum::routing::post(hook))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(hooks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            hooks,
            _shutdown: tx,
        }
    }

    fn count(&self) -> usize {
        self.hooks.count.load(Ordering::Acquire)
    }

    /// Waits (polling; the arrival instants are taken by the handler)
    /// until `n` items arrived, nothing arrived for [`STALL`] or the
    /// deadline passed; then takes them.
    async fn take(&self, n: usize, wait: Duration) -> Vec<(Uuid, Instant)> {
        let deadline = Instant::now() + wait;
        let (mut seen, mut since) = (self.count(), Instant::now());
        while self.count() < n && Instant::now() < deadline && since.elapsed() < STALL {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if self.count() != seen {
                (seen, since) = (self.count(), Instant::now());
            }
        }
        let items = std::mem::take(&mut *self.hooks.items.lock().unwrap());
        self.hooks.count.fetch_sub(items.len(), Ordering::AcqRel);
        items
    }
}

// ------------------------------------------------------------ statistics

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

/// One write as sent: its user, the instant before sending, HTTP latency.
#[derive(Clone, Copy)]
struct Sent {
    user: Uuid,
    at: Instant,
    http: Duration,
}

/// Pairs each receipt with the oldest unmatched write of its user (each
/// user is written by one client at a time, in order, and every write is
/// a change, so a user's n-th notification is its n-th write's). Returns
/// the sorted latencies and the number of receipts with no write.
fn match_receipts(sent: &[Sent], received: &[(Uuid, Instant)]) -> (Vec<Duration>, usize) {
    let mut sorted = sent.to_vec();
    sorted.sort_by_key(|s| s.at);
    let mut pending: HashMap<Uuid, VecDeque<Instant>> = HashMap::new();
    for s in &sorted {
        pending.entry(s.user).or_default().push_back(s.at);
    }
    let mut latencies = Vec::with_capacity(received.len());
    let mut unmatched = 0;
    for (user, at) in received {
        match pending.get_mut(user).and_then(VecDeque::pop_front) {
            Some(sent) => latencies.push(at.saturating_duration_since(sent)),
            None => unmatched += 1,
        }
    }
    latencies.sort_unstable();
    (latencies, unmatched)
}

// ----------------------------------------------------------------- load

/// `clients` tasks writing `writes` changes in total. Client `c` owns the
/// users at indices `c, c + clients, …` (so no two clients write one user)
/// and picks among them at random; each write flips its user between
/// Busy/InACall and Available/Available, so every write is a change.
async fn drive(
    server: &Arc<Server>,
    users: &Arc<Vec<Uuid>>,
    flips: &Arc<Vec<AtomicBool>>,
    clients: usize,
    writes: usize,
    seed: u64,
) -> (Vec<Sent>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (server, users, flips) = (server.clone(), users.clone(), flips.clone());
            let mine = writes / clients + usize::from(c < writes % clients);
            tokio::spawn(async move {
                let owned: Vec<usize> = (c..users.len()).step_by(clients).collect();
                let mut rng = StdRng::seed_from_u64(seed + c as u64);
                let mut out = Vec::with_capacity(mine);
                for _ in 0..mine {
                    let i = *owned.choose(&mut rng).unwrap();
                    let busy = !flips[i].fetch_xor(true, Ordering::Relaxed);
                    let (at, http) = server.set_presence(users[i], busy).await;
                    out.push(Sent {
                        user: users[i],
                        at,
                        http,
                    });
                }
                out
            })
        })
        .collect();
    let mut sent = Vec::with_capacity(writes);
    for t in tasks {
        sent.extend(t.await.unwrap());
    }
    (sent, started.elapsed())
}

fn new_users(n: usize) -> (Arc<Vec<Uuid>>, Arc<Vec<AtomicBool>>) {
    let users = (0..n).map(|_| Uuid::new_v4()).collect();
    let flips = (0..n).map(|_| AtomicBool::new(false)).collect();
    (Arc::new(users), Arc::new(flips))
}

/// What is still in the outbox: (rows, rows that failed at least once).
/// Failed rows wait for a retry on the presence clock, which stands still
/// here, so they stay until it moves.
async fn outbox(server: &Server) -> (usize, usize) {
    // Rows of the last POSTs are removed just after their answer.
    let settle = Instant::now() + Duration::from_secs(2);
    let mut rows = server.notifier.queued(usize::MAX).await.unwrap();
    while rows.iter().any(|d| d.attempts == 0) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
        rows = server.notifier.queued(usize::MAX).await.unwrap();
    }
    let failed = rows.iter().filter(|d| d.attempts > 0).count();
    (rows.len(), failed)
}

// --------------------------------------------------------------- part 1

struct Baseline {
    seq_p50: Duration,
    conc_p50: Duration,
}

async fn baseline() -> Baseline {
    let server = Arc::new(Server::start().await);
    let (users, flips) = new_users(10_000);
    drive(&server, &users, &flips, CLIENTS, WARMUP_WRITES, 1).await;
    println!(
        "{:>8} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "watched",
        "clients",
        "subs",
        "writes/s",
        "http p50",
        "e2e p50",
        "e2e p99",
        "e2e max",
        "x base",
        "received"
    );
    let mut out = Vec::new();
    for (clients, writes) in [(1, SEQ_WRITES), (CLIENTS, CONC_WRITES)] {
        let (sent, elapsed) = drive(&server, &users, &flips, clients, writes, 2).await;
        let mut http: Vec<Duration> = sent.iter().map(|s| s.http).collect();
        http.sort_unstable();
        let p50 = quantile(&http, 0.5);
        println!(
            "{:>8} {:>7} {:>6} {:>9.0} {:>9.2} {:>9} {:>9} {:>9} {:>8} {:>9}",
            0,
            clients,
            0,
            writes as f64 / elapsed.as_secs_f64(),
            ms(p50),
            "-",
            "-",
            "-",
            "base",
            "-"
        );
        println!(
            "{:>8} {:>7} {:>6} {:>9} {:>9} (http p99 {:.2} ms, baseline)",
            "",
            "",
            "",
            "",
            "",
            ms(quantile(&http, 0.99))
        );
        out.push(p50);
    }
    Arc::into_inner(server).unwrap().stop().await;
    Baseline {
        seq_p50: out[0],
        conc_p50: out[1],
    }
}

async fn webhook_latency(watched: usize, base: &Baseline) {
    let server = Arc::new(Server::start().await);
    let receiver = Receiver::start().await;
    let (users, flips) = new_users(watched);
    let subs = server.subscribe_all(&receiver.url, &users, 4).await;
    for (clients, writes, p50_base) in [
        (1, SEQ_WRITES, base.seq_p50),
        (CLIENTS, CONC_WRITES, base.conc_p50),
    ] {
        if clients > watched {
            println!(
                "{watched:>8} {clients:>7} {subs:>6}   n/a: {clients} clients cannot each own a user of {watched}"
            );
            continue;
        }
        let (sent, elapsed) = drive(&server, &users, &flips, clients, writes, 3).await;
        let received = receiver.take(writes, DEADLINE).await;
        let (latencies, unmatched) = match_receipts(&sent, &received);
        let mut http: Vec<Duration> = sent.iter().map(|s| s.http).collect();
        http.sort_unstable();
        let e2e50 = quantile(&latencies, 0.5);
        println!(
            "{:>8} {:>7} {:>6} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7.1}x {:>9}",
            watched,
            clients,
            subs,
            writes as f64 / elapsed.as_secs_f64(),
            ms(quantile(&http, 0.5)),
            ms(e2e50),
            ms(quantile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
            e2e50.as_secs_f64() / p50_base.as_secs_f64(),
            format!("{}/{}", received.len(), writes),
        );
        if unmatched > 0 {
            println!("         {unmatched} receipts matched no write");
        }
        let (left, failed) = outbox(&server).await;
        if left > 0 {
            println!(
                "         left in the outbox: {left} ({failed} failed once and wait for a retry)"
            );
        }
    }
    println!(
        "         ({} POSTs for {} items)",
        receiver.hooks.posts.load(Ordering::Relaxed),
        SEQ_WRITES + if CLIENTS <= watched { CONC_WRITES } else { 0 }
    );
    Arc::into_inner(server).unwrap().stop().await;
}

// --------------------------------------------------------------- part 2

/// Writes `users` Available sessions at t0 through the service (the
/// write path every handler uses), `FADE_WRITERS` tasks at once.
async fn write_sessions(server: &Server, users: &[Uuid]) -> Duration {
    let started = Instant::now();
    let chunk = users.len().div_ceil(FADE_WRITERS);
    let tasks: Vec<_> = users
        .chunks(chunk)
        .map(|part| {
            let service = server.state.service.clone();
            let (tenant, part) = (server.tenant, part.to_vec());
            tokio::spawn(async move {
                for user in part {
                    let session = Session {
                        kind: SessionKind::Application,
                        id: APP.to_string(),
                        pair: SessionPair::new(Availability::Available, Activity::Available)
                            .unwrap(),
                        last_active: t0(),
                        expires_at: t0() + TimeDelta::hours(1),
                    };
                    let key = UserKey { tenant, user };
                    let change = Change::UpsertSession(session);
                    service.apply(key, change, t0()).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// Moves the clock past every fade and runs the pass. The background
/// scheduler wakes on the clock too; passes never overlap, so `run_due`
/// returns once every fade is settled and queued, whichever pass did it.
async fn fade_all(server: &Server) -> (Instant, Duration, usize) {
    let started = Instant::now();
    let now = server.clock.advance(TimeDelta::minutes(5)).unwrap();
    let report = server.notifier.run_due(now).await.unwrap();
    (started, started.elapsed(), report.settled)
}

/// Part 2 without subscriptions: what settling the fades costs on its own
/// (events only, nothing to queue or deliver).
async fn fades_unwatched(fade_users: usize) {
    let server = Server::start().await;
    let (users, _) = new_users(fade_users);
    let written = write_sessions(&server, &users).await;
    let (_, processed, settled) = fade_all(&server).await;
    println!(
        "   no subscriptions:  wrote in {:>6.2} s ({:>6.0}/s); run_due returned after {:>6.2} s ({settled} settled by this call)",
        written.as_secs_f64(),
        fade_users as f64 / written.as_secs_f64(),
        processed.as_secs_f64(),
    );
    server.stop().await;
}

async fn fades(fade_users: usize, drain: Duration) {
    let server = Server::start().await;
    let receiver = Receiver::start().await;
    let (users, _) = new_users(fade_users);
    let written = write_sessions(&server, &users).await;
    let subscribing = Instant::now();
    let subs = server.subscribe_all(&receiver.url, &users, 4).await;
    let subscribed = subscribing.elapsed();
    assert!(server.notifier.queued(1).await.unwrap().is_empty());
    assert_eq!(receiver.count(), 0);
    let (started, processed, settled) = fade_all(&server).await;
    let arrived_by_then = receiver.count();
    println!(
        "   {subs} subscriptions: wrote in {:>6.2} s ({:>6.0}/s); run_due returned after {:>6.2} s ({settled} settled by this call)",
        written.as_secs_f64(),
        fade_users as f64 / written.as_secs_f64(),
        processed.as_secs_f64(),
    );
    println!(
        "   ({subs} subscriptions created over HTTP in {:.2} s; {arrived_by_then} items had arrived when run_due returned)",
        subscribed.as_secs_f64()
    );
    let received = receiver
        .take(fade_users, drain.saturating_sub(started.elapsed()))
        .await;
    let first = received.iter().map(|(_, at)| *at).min();
    let last = received.iter().map(|(_, at)| *at).max();
    let since = |t: Option<Instant>| t.map_or(f64::NAN, |t| (t - started).as_secs_f64());
    let posts = receiver.hooks.posts.load(Ordering::Relaxed);
    let rate = received.len() as f64 / since(last);
    println!(
        "   receiver: first item after {:.2} s; {}/{} items after {:.2} s in {posts} POSTs ({:.1} items/POST, {:.0} items/s)",
        since(first),
        received.len(),
        fade_users,
        since(last),
        received.len() as f64 / posts.max(1) as f64,
        rate,
    );
    if received.len() < fade_users {
        println!(
            "   stopped waiting after {:.0} s (PRESENCED_BENCH_DRAIN_SECS); at that rate all {fade_users} would take ~{:.0} s",
            drain.as_secs_f64(),
            fade_users as f64 / rate
        );
    }
    let mut per_user: HashMap<Uuid, u32> = HashMap::new();
    for (u, _) in &received {
        *per_user.entry(*u).or_default() += 1;
    }
    let (left, failed) = outbox(&server).await;
    println!(
        "   distinct users notified: {}; left in the outbox: {left} ({failed} of them failed once)",
        per_user.len(),
    );
    server.stop().await;
}

// --------------------------------------------------------------- part 3

/// Reads `/_presenced/events` until `want` presence events arrived (or
/// the deadline); returns each event's user and arrival instant.
async fn read_events(mut response: reqwest::Response, want: usize) -> Vec<(Uuid, Instant)> {
    let deadline = Instant::now() + DEADLINE;
    let mut buffer: Vec<u8> = Vec::new();
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, response.chunk()).await else {
            break;
        };
        let arrived = Instant::now();
        buffer.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = find(&buffer[start..], b"\n\n") {
            let block = &buffer[start..start + end];
            start += end + 2;
            if find(block, b"event: presence").is_none() {
                continue; // keep-alive comment or reset
            }
            // `"id":"` is the presence's first string key (serde_json sorts keys).
            let at = find(block, b"\"id\":\"").expect("a presence id") + 6;
            let id = std::str::from_utf8(&block[at..at + 36]).unwrap();
            out.push((Uuid::parse_str(id).unwrap(), arrived));
        }
        buffer.drain(..start);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn open_stream(server: &Server, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = server
        .client
        .get(format!("{}/_presenced/events", server.url))
        .bearer_auth(&server.token);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
}

async fn event_stream(readers: usize) {
    let server = Arc::new(Server::start().await);
    let (users, flips) = new_users(SSE_USERS);
    let mut streams = Vec::new();
    for _ in 0..readers {
        streams.push(open_stream(&server, None).await);
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(read_events(s, SSE_WRITES)))
        .collect();
    let (sent, elapsed) = drive(&server, &users, &flips, CLIENTS, SSE_WRITES, 4).await;
    let first_send = sent.iter().map(|s| s.at).min().unwrap();
    let mut rates = Vec::new();
    let mut lags = Vec::new();
    let mut complete = 0;
    for t in tasks {
        let received = t.await.unwrap();
        complete += usize::from(received.len() == SSE_WRITES);
        let last = received.iter().map(|(_, at)| *at).max().unwrap();
        rates.push(received.len() as f64 / (last - first_send).as_secs_f64());
        let (l, unmatched) = match_receipts(&sent, &received);
        assert_eq!(unmatched, 0, "every event is one write");
        lags.extend(l);
    }
    lags.sort_unstable();
    let rates_min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let rates_mean = rates.iter().sum::<f64>() / rates.len() as f64;

    // Replay the same log from the start, all readers at once.
    let started = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..readers {
        streams.push(open_stream(&server, Some("0")).await);
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(read_events(s, SSE_WRITES)))
        .collect();
    let mut replay = Vec::new();
    for t in tasks {
        let received = t.await.unwrap();
        let last = received.iter().map(|(_, at)| *at).max().unwrap();
        replay.push(received.len() as f64 / (last - started).as_secs_f64());
    }
    let replay_mean = replay.iter().sum::<f64>() / replay.len() as f64;
    println!(
        "{:>8} {:>9.0} {:>11.0} {:>11.0} {:>9.2} {:>9.2} {:>9.2} {:>11.0} {:>9}",
        readers,
        SSE_WRITES as f64 / elapsed.as_secs_f64(),
        rates_mean,
        rates_min,
        ms(quantile(&lags, 0.5)),
        ms(quantile(&lags, 0.99)),
        ms(lags.last().copied().unwrap_or_default()),
        replay_mean,
        format!("{complete}/{readers}"),
    );
    Arc::into_inner(server).unwrap().stop().await;
}

/// A number from the environment, or `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // Server logs on stderr, errors only unless RUST_LOG says otherwise
    // (RUST_LOG=presenced=warn shows failed deliveries).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // PRESENCED_BENCH_PARTS=2,3 runs only those parts.
    let parts = std::env::var("PRESENCED_BENCH_PARTS").unwrap_or_else(|_| "1,2,3".into());
    let part_on = |n: &str| parts.split(',').any(|p| p.trim() == n);
    let fade_users = env_or("PRESENCED_BENCH_FADE_USERS", FADE_USERS);
    let drain = Duration::from_secs(env_or("PRESENCED_BENCH_DRAIN_SECS", DRAIN_SECS) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let total = Instant::now();
    println!("presenced notify bench (no assertions on timing; ratios are same-run)");
    println!();
    if part_on("1") {
        println!(
            "1. setPresence over HTTP -> webhook receipt (ms); {SEQ_WRITES} sequential / {CONC_WRITES} concurrent writes"
        );
        let part = Instant::now();
        runtime.block_on(async {
            let base = baseline().await;
            for &watched in WATCHED {
                webhook_latency(watched, &base).await;
            }
        });
        println!("   x base: e2e p50 / setPresence p50 without subscriptions, same client count");
        println!("   (part 1 took {:.1} s)", part.elapsed().as_secs_f64());
        println!();
    }
    if part_on("2") {
        println!("2. {fade_users} sessions fading at the same instant");
        let part = Instant::now();
        runtime.block_on(fades_unwatched(fade_users));
        runtime.block_on(fades(fade_users, drain));
        println!("   (part 2 took {:.1} s)", part.elapsed().as_secs_f64());
        println!();
    }
    if !part_on("3") {
        println!("total {:.1} s", total.elapsed().as_secs_f64());
        return;
    }
    println!(
        "3. /_presenced/events: {SSE_WRITES} changes by {CLIENTS} clients over {SSE_USERS} users"
    );
    println!(
        "{:>8} {:>9} {:>11} {:>11} {:>9} {:>9} {:>9} {:>11} {:>9}",
        "readers",
        "writes/s",
        "ev/s/reader",
        "ev/s (min)",
        "lag p50",
        "lag p99",
        "lag max",
        "replay ev/s",
        "complete"
    );
    for &readers in READERS {
        runtime.block_on(event_stream(readers));
    }
    println!();
    println!("total {:.1} s", total.elapsed().as_secs_f64());
}
