//! The HTTP server's connections: accepted under a limit, closed when idle or slow, and stopped
//! with a deadline. axum 0.8's `serve` sets none of these (no header-read or idle timeout, no
//! connection limit, and its graceful shutdown waits for every connection however long it takes),
//! so this is a small accept loop over hyper-util's connection builder (HTTP/1.1, as before).
//!
//! Per connection (`ConnLimits`):
//! - no request under way and nothing read or written for `idle_timeout`: closed;
//! - a request head (request line and headers) begun but not complete `header_read_timeout` after
//!   its first byte: closed (a slow-loris client);
//! - a request under way is bounded by the router's request timeout, not here.
//!
//! At most `max_connections` are open. A connection that arrives at the limit makes room: the
//! connection idle the longest (no request under way, none begun) is closed, as nginx reuses idle
//! keep-alive connections, so idle sockets, however many, cannot keep a webhook out until their
//! idle timeout. Only when every connection is busy do new ones wait in the kernel's backlog
//! (costing no file handle) until one closes; one more is held accepted meanwhile. Shutdown: stop
//! accepting, let every connection finish the request it has and close; those still open
//! `shutdown_timeout` later are closed there and then. Nothing is lost by that: an answer 200 is
//! only given once the request is durable, so a request cut off is one its sender was not told
//! succeeded and sends again.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use axum::{BoxError, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config;

/// The limits a connection lives under (`[server]`).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl From<&config::Server> for ConnLimits {
    fn from(s: &config::Server) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(s.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(s.idle_timeout_seconds),
            max_connections: s.max_connections,
            shutdown_timeout: Duration::from_secs(s.shutdown_timeout_seconds),
        }
    }
}

/// How long a stopping server waits for connections it closed at the deadline to be gone.
const AFTER_DEADLINE: Duration = Duration::from_secs(1);
/// A failing `accept` (out of file handles, say) is retried after this.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning per this long about a full connection table or failing accepts.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `stop` resolves, then shuts down within
/// `limits.shutdown_timeout` (plus a moment for the connections closed at the deadline).
pub async fn serve(listener: TcpListener, router: Router, limits: ConnLimits, stop: impl Future<Output = ()>) {
    warn_if_few_file_handles(limits.max_connections);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(all as usize));
    let open = OpenConns::default();
    let (graceful, force) = (CancellationToken::new(), CancellationToken::new());
    let mut stop = pin!(stop);
    let mut warned = Warned::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warned.once(|| tracing::warn!(error = %e, "accepting a connection failed; retrying"));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !open.close_idlest() {
                    warned.once(|| {
                        tracing::warn!(
                            max = all,
                            "server.max_connections reached and every connection busy: new connections wait"
                        )
                    });
                }
                tokio::select! {
                    // The semaphore is never closed, so acquiring only waits.
                    slot = slots.clone().acquire_owned() => slot.expect("the connection semaphore is never closed"),
                    () = &mut stop => break,
                }
            }
        };
        let activity = Arc::new(Activity::new());
        let conn = Conn {
            router: router.clone(),
            peer,
            limits,
            activity: activity.clone(),
            make_room: open.register(activity),
            graceful: graceful.clone(),
            force: force.clone(),
        };
        tokio::spawn(conn.run(stream, slot));
    }
    drop(listener);
    graceful.cancel();
    // Every open connection holds a slot: all slots back means all connections closed.
    if tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all)).await.is_err() {
        let open = all as usize - slots.available_permits();
        tracing::warn!(open, "connections still busy at the shutdown deadline are closed");
        force.cancel();
        let _ = tokio::time::timeout(AFTER_DEADLINE, slots.acquire_many(all)).await;
    }
}

/// Rate limits one kind of warning.
#[derive(Default)]
struct Warned(Option<Instant>);

impl Warned {
    fn once(&mut self, warn: impl FnOnce()) {
        if self.0.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            self.0 = Some(Instant::now());
            warn();
        }
    }
}

/// One accepted connection and what it needs to serve and stop.
struct Conn {
    router: Router,
    peer: SocketAddr,
    limits: ConnLimits,
    activity: Arc<Activity>,
    /// Close once idle: another connection needs the slot (see [`OpenConns::close_idlest`]).
    make_room: Registered,
    /// Finish the request under way, then close.
    graceful: CancellationToken,
    /// Close now (the shutdown deadline passed).
    force: CancellationToken,
}

impl Conn {
    async fn run(self, stream: TcpStream, _slot: OwnedSemaphorePermit) {
        let activity = self.activity;
        let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
        let service = ConnService { router: self.router, peer: self.peer, activity: activity.clone() };
        let builder = auto::Builder::new(TokioExecutor::new()).http1_only();
        let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(service)));
        let mut watchdog = pin!(activity.expired(self.limits));
        let (mut closing, mut made_room) = (false, false);
        let closed_by = loop {
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    break made_room.then_some("max_connections");
                }
                why = &mut watchdog => break Some(why),
                // Either way hyper closes an idle connection at once, and a busy one (a request
                // begun since it was picked) after its answer.
                () = self.graceful.cancelled(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = self.make_room.token.cancelled(), if !closing => {
                    (closing, made_room) = (true, true);
                    conn.as_mut().graceful_shutdown();
                }
                () = self.force.cancelled() => break Some("shutdown_deadline"),
            }
        };
        if let Some(why) = closed_by {
            tracing::debug!(peer = %self.peer, reason = why, "connection closed");
            metrics::counter!("channeld_http_connections_closed_total", "reason" => why).increment(1);
        }
    }
}

/// The open connections, so that one arriving at the limit can close the one idle the longest.
#[derive(Clone, Default)]
struct OpenConns(Arc<std::sync::Mutex<OpenTable>>);

#[derive(Default)]
struct OpenTable {
    next_id: u64,
    conns: std::collections::HashMap<u64, (Arc<Activity>, CancellationToken)>,
}

/// A connection's place in [`OpenConns`], given up when the connection ends.
struct Registered {
    id: u64,
    token: CancellationToken,
    open: OpenConns,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut t) = self.open.0.lock() {
            t.conns.remove(&self.id);
        }
    }
}

impl OpenConns {
    fn register(&self, activity: Arc<Activity>) -> Registered {
        let token = CancellationToken::new();
        let id = match self.0.lock() {
            Ok(mut t) => {
                t.next_id += 1;
                let id = t.next_id;
                t.conns.insert(id, (activity, token.clone()));
                id
            }
            // A poisoned table only means no connection is picked to make room.
            Err(_) => 0,
        };
        Registered { id, token, open: self.clone() }
    }

    /// Asks the connection idle the longest to close; `false` when none is idle (all are busy, or
    /// the one picked already closing). Its client loses nothing: no request of it is under way,
    /// and it connects again when it has one.
    fn close_idlest(&self) -> bool {
        let Ok(t) = self.0.lock() else { return false };
        let idlest = t
            .conns
            .values()
            .filter(|(a, token)| a.is_idle() && !token.is_cancelled())
            .min_by_key(|(a, _)| a.last_active());
        match idlest {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// What a connection has been doing, for its timeouts. One task drives the connection, its
/// requests and its watchdog, so these never race; they are atomics only to be shared.
struct Activity {
    opened: Instant,
    /// When something was last read or written, or a request began or ended (ms since `opened`).
    last_ms: AtomicU64,
    /// When the first byte of a request head not yet complete arrived; [`NO_HEAD`] when none.
    head_ms: AtomicU64,
    /// Requests under way.
    busy: AtomicUsize,
}

const NO_HEAD: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self { opened: Instant::now(), last_ms: AtomicU64::new(0), head_ms: AtomicU64::new(NO_HEAD), busy: 0.into() }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn touched(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// No request under way and none begun: closing it loses nothing.
    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0 && self.head_ms.load(Ordering::Relaxed) == NO_HEAD
    }

    /// When something last happened on the connection.
    fn last_active(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Bytes arrived: with no request under way, they begin the head of the next one.
    fn read_some(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.busy.load(Ordering::Relaxed) == 0 {
            let _ = self.head_ms.compare_exchange(NO_HEAD, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// A request's head is complete and its handling begins; it ends when the guard drops.
    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.head_ms.store(NO_HEAD, Ordering::Relaxed);
        self.touched();
        Busy(self.clone())
    }

    /// When the connection is due to be closed if nothing happens meanwhile (ms since `opened`),
    /// and why; `None` while a request is under way.
    fn due(&self, limits: ConnLimits) -> Option<(u64, &'static str)> {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match self.head_ms.load(Ordering::Relaxed) {
            NO_HEAD => Some((self.last_ms.load(Ordering::Relaxed) + ms(limits.idle_timeout), "idle")),
            head => Some((head + ms(limits.header_read_timeout), "header_read_timeout")),
        }
    }

    /// Resolves once the connection has been idle, or slow to send a head, for too long.
    async fn expired(&self, limits: ConnLimits) -> &'static str {
        loop {
            let now = self.now_ms();
            let wait = match self.due(limits) {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => Duration::from_millis(at - now),
                None => limits.header_read_timeout.min(limits.idle_timeout),
            };
            tokio::time::sleep(wait).await;
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A request under way on its connection.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touched();
    }
}

/// The router as one connection sees it: each request carries the peer's address
/// ([`ConnectInfo`]) and counts as activity while it is handled.
#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl<B> tower::Service<Request<B>> for ConnService
where
    B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let busy = self.activity.begin();
        let answer = tower::ServiceExt::oneshot(self.router.clone(), req.map(Body::new));
        Box::pin(async move {
            let answered = answer.await;
            drop(busy);
            answered
        })
    }
}

/// The connection's socket, noting every read and write in its [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touched();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touched();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Warns when `max_connections` leaves too little room under the process's open-file limit (the
/// store, the journal and outbound calls need handles too): past it, `accept` fails and every
/// caller is refused.
fn warn_if_few_file_handles(max_connections: usize) {
    let Some(limit) = open_file_limit() else { return };
    if max_connections as u64 + 128 > limit {
        tracing::warn!(
            max_connections,
            open_file_limit = limit,
            "server.max_connections leaves too few file handles under the open-file limit: raise the limit \
             (LimitNOFILE= under systemd, ulimit -n) or lower server.max_connections"
        );
    }
}

/// The soft limit on open files (Linux: `/proc/self/limits`).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            max_connections: 4,
            shutdown_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn an_idle_connection_is_due_after_the_idle_timeout_and_a_begun_head_after_the_header_timeout() {
        let a = Arc::new(Activity::new());
        assert_eq!(a.due(limits()), Some((10_000, "idle")));
        a.head_ms.store(500, Ordering::Relaxed);
        assert_eq!(a.due(limits()), Some((2_500, "header_read_timeout")));
        let busy = a.begin();
        assert_eq!(a.due(limits()), None, "a request under way is the request timeout's business");
        drop(busy);
        assert_eq!(a.due(limits()).map(|(_, why)| why), Some("idle"), "the head was complete");
    }

    #[test]
    fn bytes_read_during_a_request_do_not_start_a_head() {
        let a = Arc::new(Activity::new());
        let busy = a.begin();
        a.read_some();
        drop(busy);
        assert_eq!(a.head_ms.load(Ordering::Relaxed), NO_HEAD);
        a.read_some();
        assert_ne!(a.head_ms.load(Ordering::Relaxed), NO_HEAD);
    }

    #[test]
    fn the_connection_idle_the_longest_makes_room_and_busy_ones_never_do() {
        let open = OpenConns::default();
        let conn = |last_ms: u64| {
            let a = Arc::new(Activity::new());
            a.last_ms.store(last_ms, Ordering::Relaxed);
            (open.register(a.clone()), a)
        };
        let (busy, busy_a) = conn(0);
        let _busy_request = busy_a.begin();
        let (mid_head, mid_head_a) = conn(0);
        mid_head_a.read_some();
        let (recent, _) = conn(5_000);
        let (oldest, _) = conn(1_000);
        assert!(open.close_idlest());
        assert!(oldest.token.is_cancelled(), "idle the longest");
        assert!(!recent.token.is_cancelled() && !busy.token.is_cancelled() && !mid_head.token.is_cancelled());
        assert!(open.close_idlest());
        assert!(recent.token.is_cancelled(), "the next idle one; the one already closing is not picked again");
        assert!(!open.close_idlest(), "a request under way or begun is never cut off to make room");
        drop(oldest);
        assert_eq!(open.0.lock().unwrap().conns.len(), 3, "a closed connection leaves the table");
    }

    #[test]
    fn the_open_file_limit_is_read() {
        if std::path::Path::new("/proc/self/limits").exists() {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
