//! The accept loop: hyper-util's connection builder (HTTP/1.1 and h2c) with
//! the connection policy a public server needs, which `axum::serve` does
//! not give (it sets no timer at all, so a client that never finishes its
//! headers, or idles forever, keeps its connection and a file descriptor).
//!
//! Each connection is watched:
//! - **waiting for a request:** a fresh connection, or one whose response
//!   has been sent, must start *and finish* its next request head within the
//!   header timeout once it sends the first byte; a fresh connection that
//!   sends nothing is closed after the header timeout, a connection that has
//!   served a request after the idle timeout;
//! - **busy:** a request is being read or answered (including a streaming
//!   response such as `/_presenced/events`): never timed out here (the body
//!   upload has its own timeout).
//!
//! The number of connections is capped (from the open-file limit, which is
//! raised to its hard limit at start). At the cap, the connection that has
//! waited longest for a request is closed to make room; only when every
//! connection is busy is a new one refused, at once. Accept errors (such as
//! running out of file descriptors) are logged once per burst.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::direct::Direct;

/// How the server treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPolicy {
    /// A request head must arrive within this once its first byte has, and
    /// a fresh connection must send one within it.
    pub header_timeout: Duration,
    /// A connection that has served a request may idle this long.
    pub idle_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

/// Default header timeout (`--header-timeout`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default idle keep-alive timeout (`--idle-timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors kept back from the connection cap for the store, the
/// webhook client and logs.
const RESERVED_FILES: u64 = 128;
/// The connection cap when the open-file limit is unknown or unlimited.
const FALLBACK_MAX_CONNECTIONS: usize = 10_000;
/// How often connections are checked against the timeouts.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// hyper's own buffer limit: beyond it hyper answers a bare 431. It leaves
/// room for the longest head our own layer still answers with a Graph-shaped
/// 414 or 431 (a URI and headers at their limits, see
/// `http::limit_declared_length`), and no more: an unfinished head holds up
/// to this much memory until the header timeout.
const HYPER_MAX_BUF: usize = super::MAX_URI_BYTES + super::MAX_HEADER_BYTES + 8 * 1024;
/// The most bytes of unfinished request heads all connections together may
/// hold. Beyond it a connection whose unfinished head is over
/// [`SMALL_HEAD`] is closed when it sends more: a flood of huge stalled
/// heads cannot take the server's memory, while ordinary requests (whose
/// heads are small and arrive at once) are never refused for it.
const HEAD_BUDGET: usize = 64 * 1024 * 1024;
/// An unfinished head this small is never closed for the [`HEAD_BUDGET`].
const SMALL_HEAD: usize = 16 * 1024;
/// How long a new connection waits for an evicted one to close before it is
/// refused.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

impl Default for ConnectionPolicy {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: FALLBACK_MAX_CONNECTIONS,
        }
    }
}

/// Raises the soft open-file limit to the hard limit and returns the
/// connection cap that leaves room for everything else the server opens.
pub fn connection_cap_from_file_limit() -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => limit = getrlimit(Resource::Nofile),
                Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
            }
        }
        match limit.current {
            Some(n) => usize::try_from(n.saturating_sub(RESERVED_FILES).max(16))
                .unwrap_or(FALLBACK_MAX_CONNECTIONS)
                .min(1_000_000),
            None => FALLBACK_MAX_CONNECTIONS,
        }
    }
    #[cfg(not(unix))]
    FALLBACK_MAX_CONNECTIONS
}

/// Milliseconds since the server started (for atomics).
fn millis(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What the watcher knows about one connection.
#[derive(Debug)]
struct Watch {
    /// Requests being answered (their response bodies included).
    active: AtomicUsize,
    /// When it last became idle (ms since the epoch).
    idle_since: AtomicU64,
    /// When the first byte of the next request arrived (0: none yet).
    head_since: AtomicU64,
    /// Whether it has served a request.
    served: AtomicBool,
    /// Bytes of the unfinished request head read so far (counted in the
    /// registry's total too).
    head_bytes: AtomicUsize,
    /// Closes the connection.
    close: CancellationToken,
}

impl Watch {
    fn new(now: u64) -> Self {
        Self {
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            head_since: AtomicU64::new(0),
            served: AtomicBool::new(false),
            head_bytes: AtomicUsize::new(0),
            close: CancellationToken::new(),
        }
    }

    /// Since when it has been waiting for a request, if it is.
    fn waiting_since(&self) -> Option<u64> {
        (self.active.load(Ordering::Acquire) == 0).then(|| self.idle_since.load(Ordering::Acquire))
    }

    /// Whether it has outstayed its timeouts at `now`.
    fn expired(&self, now: u64, policy: &ConnectionPolicy) -> bool {
        let Some(idle_since) = self.waiting_since() else {
            return false;
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let head_since = self.head_since.load(Ordering::Acquire);
        if head_since != 0 {
            now.saturating_sub(head_since) > ms(policy.header_timeout)
        } else if self.served.load(Ordering::Acquire) {
            now.saturating_sub(idle_since) > ms(policy.idle_timeout)
        } else {
            now.saturating_sub(idle_since) > ms(policy.header_timeout)
        }
    }
}

/// The open connections.
#[derive(Debug, Default)]
struct Registry {
    connections: Mutex<HashMap<u64, Arc<Watch>>>,
    /// Set at shutdown: a connection with nothing in flight closes at once
    /// (an idle HTTP/2 client may never read the server's GOAWAY).
    stopping: AtomicBool,
    /// Bytes of unfinished request heads of all connections.
    head_bytes: AtomicUsize,
}

impl Registry {
    /// Closes the connection that has waited longest for a request; `false`
    /// when every connection is busy.
    fn evict_longest_waiting(&self) -> bool {
        let Ok(connections) = self.connections.lock() else {
            return false;
        };
        let victim = connections
            .values()
            .filter(|w| !w.close.is_cancelled())
            .filter_map(|w| w.waiting_since().map(|since| (since, w)))
            .min_by_key(|(since, _)| *since);
        match victim {
            Some((_, w)) => {
                w.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// A stream that notes when the first byte of a request head arrives (after
/// TLS, so it sees the HTTP bytes).
struct Watched<S> {
    inner: S,
    watch: Arc<Watch>,
    registry: Arc<Registry>,
    epoch: Instant,
}

impl<S> Watched<S> {
    /// Counts `n` bytes of an unfinished head; an error when the heads of
    /// all connections are over [`HEAD_BUDGET`] and this one is not small.
    fn count_head_bytes(&self, n: usize) -> std::io::Result<()> {
        let mine = self.watch.head_bytes.fetch_add(n, Ordering::AcqRel) + n;
        let all = self.registry.head_bytes.fetch_add(n, Ordering::AcqRel) + n;
        if all > HEAD_BUDGET && mine > SMALL_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "unfinished request heads are over the server's memory budget",
            ));
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 && self.watch.active.load(Ordering::Acquire) == 0 {
            if self.watch.head_since.load(Ordering::Acquire) == 0 {
                let now = millis(self.epoch).max(1);
                self.watch.head_since.store(now, Ordering::Release);
            }
            if let Err(e) = self.count_head_bytes(read) {
                return Poll::Ready(Err(e));
            }
        }
        result
    }
}

impl<S> Drop for Watched<S> {
    fn drop(&mut self) {
        let pending = self.watch.head_bytes.swap(0, Ordering::AcqRel);
        self.registry
            .head_bytes
            .fetch_sub(pending, Ordering::AcqRel);
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Marks its connection idle again when the response body is done (or
/// dropped): a streaming response keeps the connection busy while it runs.
struct Busy {
    watch: Arc<Watch>,
    epoch: Instant,
}

impl Busy {
    /// A request has started on the connection of `watch`: its head is
    /// complete, so its bytes no longer count against the head budget.
    fn start(watch: Arc<Watch>, registry: &Registry, epoch: Instant) -> Self {
        watch.active.fetch_add(1, Ordering::AcqRel);
        watch.head_since.store(0, Ordering::Release);
        let done = watch.head_bytes.swap(0, Ordering::AcqRel);
        registry.head_bytes.fetch_sub(done, Ordering::AcqRel);
        Self { watch, epoch }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.watch.served.store(true, Ordering::Release);
        self.watch
            .idle_since
            .store(millis(self.epoch), Ordering::Release);
        self.watch.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its connection's [`Busy`] until it ends.
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) with
/// `policy` until `shutdown` completes, then lets open connections finish
/// for up to `grace`. `direct` answers the requests it serves without the
/// router ([`super::direct`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    direct: Option<Direct>,
    tls: Option<Arc<rustls::ServerConfig>>,
    policy: ConnectionPolicy,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let epoch = Instant::now();
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let registry = Arc::new(Registry::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Our watcher times heads (hyper's timer would also cut idle
        // keep-alive connections at the header timeout).
        .header_read_timeout(None)
        .max_buf_size(HYPER_MAX_BUF);
    builder.http2().timer(TokioTimer::new());
    let watcher = tokio::spawn(watch_connections(registry.clone(), policy, epoch));
    let slots = Arc::new(tokio::sync::Semaphore::new(policy.max_connections.max(1)));
    let mut next_id: u64 = 0;
    let mut refused: u64 = 0;
    let mut last_accept_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // EMFILE and friends come in bursts: say it once a second,
                // and give the system a moment instead of spinning.
                if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "cannot accept connections");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        // One permit per open socket, given back when the socket is closed
        // (not merely asked to close), so the cap bounds open files.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if registry.evict_longest_waiting() => {
                tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(permit) = permit else {
            refused += 1;
            if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                tracing::warn!(
                    max = policy.max_connections,
                    refused,
                    "every connection is busy; refusing new ones"
                );
                last_accept_warning = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let watch = Arc::new(Watch::new(millis(epoch)));
        if let Ok(mut connections) = registry.connections.lock() {
            connections.insert(id, watch.clone());
        }
        let connection = Connection {
            router: router.clone(),
            direct: direct.clone(),
            builder: builder.clone(),
            watcher: graceful.watcher(),
            watch,
            registry: registry.clone(),
            epoch,
        };
        let registry = registry.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection.run(stream).await,
                Some(acceptor) => {
                    // The handshake counts as waiting for a request: the
                    // watcher closes a connection that stalls in it.
                    let close = connection.watch.close.clone();
                    let handshake = tokio::select! {
                        shaken = acceptor.accept(stream) => shaken.ok(),
                        () = close.cancelled() => None,
                    };
                    if let Some(stream) = handshake {
                        connection.run(stream).await;
                    }
                }
            }
            if let Ok(mut connections) = registry.connections.lock() {
                connections.remove(&id);
            }
            // The socket is closed (dropped with its connection) by now.
            drop(permit);
        });
    }
    drop(listener);
    registry.stopping.store(true, Ordering::Release);
    close_idle(&registry);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the shutdown grace period; closing them"
        );
    }
    if let Ok(connections) = registry.connections.lock() {
        for watch in connections.values() {
            watch.close.cancel();
        }
    }
    watcher.abort();
}

/// `req` answered by `router`.
async fn routed(router: Router, req: Request) -> Response {
    router
        .oneshot(req)
        .await
        .unwrap_or_else(|never| match never {})
}

/// What serving one connection needs.
struct Connection {
    router: Router,
    direct: Option<Direct>,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    watch: Arc<Watch>,
    registry: Arc<Registry>,
    epoch: Instant,
}

impl Connection {
    /// Serves HTTP/1.1 or HTTP/2 on `stream` until it closes, the server
    /// shuts down, or the watcher closes it.
    async fn run<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            router,
            direct,
            builder,
            watcher,
            watch,
            registry,
            epoch,
        } = self;
        let io = TokioIo::new(Watched {
            inner: stream,
            watch: watch.clone(),
            registry: registry.clone(),
            epoch,
        });
        let service = {
            let watch = watch.clone();
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let busy = Busy::start(watch.clone(), &registry, epoch);
                let router = router.clone();
                let direct = direct.clone();
                async move {
                    let req = Request::from(req.map(Body::new));
                    let response = match &direct {
                        Some(direct) => match direct.try_serve(req).await {
                            Ok(response) => response,
                            Err(req) => routed(router, req).await,
                        },
                        None => routed(router, req).await,
                    };
                    Ok::<_, std::convert::Infallible>(
                        response.map(|inner| Body::new(TrackedBody { inner, _busy: busy })),
                    )
                }
            })
        };
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = watcher.watch(connection);
        // A client's requests on one connection bring the same token.
        crate::auth::remembering_tokens(async {
            tokio::select! {
                _ = connection => {}
                () = watch.close.cancelled() => {}
            }
        })
        .await;
    }
}

/// Closes every connection with no request in flight (at shutdown).
fn close_idle(registry: &Registry) {
    if let Ok(connections) = registry.connections.lock() {
        for watch in connections.values() {
            if watch.waiting_since().is_some() {
                watch.close.cancel();
            }
        }
    }
}

/// Closes connections that outstayed their timeouts.
async fn watch_connections(registry: Arc<Registry>, policy: ConnectionPolicy, epoch: Instant) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tick.tick().await;
        let now = millis(epoch);
        if registry.stopping.load(Ordering::Acquire) {
            close_idle(&registry);
        }
        if let Ok(connections) = registry.connections.lock() {
            for watch in connections.values() {
                if watch.expired(now, &policy) {
                    watch.close.cancel();
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
