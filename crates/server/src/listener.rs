//! Accepting connections and keeping them within bounds, so that no client can take the gateway
//! down by holding connections: [`serve`] runs the accept loop and one task per connection, which
//! hands each request to [`crate::pipeline::handle`].
//!
//! # Limits (all configurable, see [`crate::config`])
//! - **Header timeout** (`header_timeout_secs`, 10 s): a new connection must deliver its first
//!   request head within it, and a later request its head within it of its first byte. A
//!   slowloris client (one header line every few seconds) is closed when it runs out.
//! - **Idle timeout** (`idle_timeout_secs`, 30 s): a keep-alive connection without a request for
//!   that long is closed.
//! - **Body progress** (`body_timeout_secs`, `body_min_rate`): enforced by the body reader, see
//!   [`crate::body`]; the listener sets the rule around every request.
//! - **Per-address cap** (`max_connections_per_ip`, 256): connections from one source address
//!   (an IPv6 client's /64). Trusted proxies are exempt (every client behind them shares their
//!   address). At the cap, the address's oldest connection that is between requests makes room;
//!   if all of them are busy the new connection is closed at once.
//! - **Maximum connections** (`max_connections`, 4096 or what the open-file limit allows at two
//!   descriptors a connection): above 90 % of it, connections between requests are closed,
//!   oldest first, down to 80 %, so new clients always find room; at the maximum, with every
//!   connection busy, new ones are closed at once. The rest of the descriptors stay for files.
//! - **Accept errors** (out of descriptors, ...): the loop backs off (10 ms doubling to 1 s) and
//!   logs a summary at most every 10 s instead of spinning.
//!
//! "Between requests" means: accepted but no request yet, an unfinished request head, or an idle
//! keep-alive connection. A connection is busy from its complete request head to the end of its
//! response body; nothing here ever cuts a busy connection (its body reader and the shutdown grace
//! period bound it).
//!
//! Every refusal and closing is counted in `/metrics` (see [`crate::metrics::ConnectionStats`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::body::{self, Body};
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::pipeline::{self, Connection};
use crate::Gateway;

/// The connection limits in force, resolved from the configuration and the open-file limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time to deliver a complete request head.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Window of the body-progress rule.
    pub body_window: Duration,
    /// Bytes each body window must bring.
    pub body_min_bytes: u64,
    /// Most open connections.
    pub max_connections: usize,
    /// Most connections from one source address.
    pub max_per_ip: usize,
    /// Above this many open connections, those between requests are closed...
    pub high_water: usize,
    /// ...down to this many.
    pub low_water: usize,
}

/// The connection limits cannot be met with this process's open-file limit.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// `max_connections` needs more descriptors than the process may open.
    #[error("`max_connections` is {given}, but with the open-file limit of {limit} at most {allowed} connections fit ({per} descriptors each plus {reserved} for the gateway): lower --max-connections (KEYHOLE_MAX_CONNECTIONS, max_connections) to {allowed} or less, or raise the limit (ulimit -n, or LimitNOFILE= in a systemd unit)")]
    TooManyConnections {
        /// The configured value.
        given: u64,
        /// The open-file limit.
        limit: u64,
        /// What fits.
        allowed: u64,
        /// Descriptors per connection.
        per: u64,
        /// Descriptors kept for the gateway.
        reserved: u64,
    },
    /// The open-file limit leaves no room for a single connection.
    #[error("the open-file limit is {limit}, too low to serve: raise it to at least {needed} (ulimit -n, or LimitNOFILE= in a systemd unit)")]
    FileLimitTooLow {
        /// The open-file limit.
        limit: u64,
        /// The least that works.
        needed: u64,
    },
}

impl Limits {
    /// The limits for `config` under this process's current open-file limit (see
    /// [`raise_open_file_limit`]).
    pub fn resolve(config: &Config) -> Result<Limits, LimitsError> {
        Limits::with_file_limit(config, open_file_limit())
    }

    /// The limits for `config` when the process may open `file_limit` descriptors (`None`:
    /// unlimited).
    pub fn with_file_limit(
        config: &Config,
        file_limit: Option<u64>,
    ) -> Result<Limits, LimitsError> {
        let (reserved, per) = (config::FILES_RESERVED, config::FILES_PER_CONNECTION);
        let allowed = file_limit.map(|n| n.saturating_sub(reserved) / per);
        if let (Some(limit), Some(0)) = (file_limit, allowed) {
            return Err(LimitsError::FileLimitTooLow {
                limit,
                needed: reserved + per,
            });
        }
        let max = match (config.max_connections, allowed) {
            (Some(given), Some(allowed)) if given > allowed => {
                return Err(LimitsError::TooManyConnections {
                    given,
                    limit: file_limit.unwrap_or(0),
                    allowed,
                    per,
                    reserved,
                })
            }
            (Some(given), _) => given,
            (None, Some(allowed)) => config::DEFAULT_MAX_CONNECTIONS.min(allowed),
            (None, None) => config::DEFAULT_MAX_CONNECTIONS,
        };
        let max_connections = usize::try_from(max).unwrap_or(usize::MAX).max(1);
        let percent = |p: u64| {
            let p = usize::try_from(p).unwrap_or(100);
            (max_connections.saturating_mul(p) / 100).max(1)
        };
        Ok(Limits {
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            body_window: Duration::from_secs(config.body_timeout_secs),
            body_min_bytes: config
                .body_min_rate
                .saturating_mul(config.body_timeout_secs)
                .max(1),
            max_connections,
            max_per_ip: usize::try_from(config.max_connections_per_ip)
                .unwrap_or(usize::MAX)
                .min(max_connections),
            high_water: percent(100 - config::CONNECTION_HEADROOM_PERCENT),
            low_water: percent(100 - 2 * config::CONNECTION_HEADROOM_PERCENT),
        })
    }
}

/// The process's open-file (descriptor) limit; `None` when unlimited.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the process's soft open-file limit to its hard limit (capped at 2^20), as Go programs
/// do at start: the soft limit is often 1024 while the hard one allows far more. Returns the
/// limit now in force (`None`: unlimited).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let target = now.maximum.unwrap_or(1 << 20).min(1 << 20);
    if now.current.is_some_and(|c| c < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: now.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
    open_file_limit()
}

/// The address a per-address cap counts against: IPv4 addresses as they are (IPv4-mapped IPv6
/// too), IPv6 addresses by their /64 (one client usually holds a whole /64).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

/// "No time set" in a millisecond field.
const NONE: u64 = u64::MAX;

/// The most a request head (request line and headers) may take: see `serve_one`.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// What one connection is doing, shared by its task, its IO wrapper, its requests and the
/// registry.
#[derive(Debug)]
struct ConnState {
    /// When the connection was accepted; the millisecond fields count from here.
    base: Instant,
    /// Requests between a complete head and the end of their response.
    busy: AtomicU32,
    /// Requests finished.
    served: AtomicU64,
    /// When it last stopped being busy (0: accepted, never busy).
    waiting_since: AtomicU64,
    /// When the first byte of a not yet complete request head arrived.
    head_since: AtomicU64,
    /// Asked to close (to make room), set by the registry.
    shed: AtomicBool,
    /// Counted in the registry.
    registered: AtomicBool,
    /// Wakes the connection's task: a request ended, a head began, or it was shed.
    wake: Notify,
    /// Its per-address key.
    key: IpAddr,
}

/// Why the connection's task closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Header,
    Idle,
}

impl ConnState {
    fn new(key: IpAddr) -> ConnState {
        ConnState {
            base: Instant::now(),
            busy: AtomicU32::new(0),
            served: AtomicU64::new(0),
            waiting_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            shed: AtomicBool::new(false),
            registered: AtomicBool::new(true),
            wake: Notify::new(),
            key,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// Bytes arrived: between requests they begin a request head.
    fn on_read(&self) {
        if !self.is_busy()
            && self
                .head_since
                .compare_exchange(NONE, self.now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.wake.notify_one();
        }
    }

    /// A complete request head arrived; busy until the guard (moved into the response body) is
    /// dropped.
    fn begin_request(self: &Arc<Self>) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        BusyGuard(self.clone())
    }

    /// When the connection expires if nothing happens, and why; `None` while busy.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expiry)> {
        if self.is_busy() {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != NONE {
            return Some((self.at(head) + limits.header_timeout, Expiry::Header));
        }
        let since = self.at(self.waiting_since.load(Ordering::Acquire));
        if self.served.load(Ordering::Acquire) == 0 {
            Some((since + limits.header_timeout, Expiry::Header))
        } else {
            Some((since + limits.idle_timeout, Expiry::Idle))
        }
    }

    /// Whether closing it now loses nothing: not busy, and no response was ever sent or a new
    /// request head has begun (so the last response was read).
    fn nothing_to_flush(&self) -> bool {
        !self.is_busy()
            && (self.served.load(Ordering::Acquire) == 0
                || self.head_since.load(Ordering::Acquire) != NONE)
    }
}

/// Marks a request finished when dropped (with its response body, or with its handler if the
/// connection goes away first).
struct BusyGuard(Arc<ConnState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let s = &self.0;
        s.waiting_since.store(s.now_ms(), Ordering::Release);
        s.served.fetch_add(1, Ordering::AcqRel);
        s.busy.fetch_sub(1, Ordering::AcqRel);
        s.wake.notify_one();
    }
}

/// A request running on a task of its own: keeps its connection busy (never shed as idle,
/// never timed out) while it runs, without counting as a request served.
struct ConnWork(Arc<ConnState>);

impl ConnWork {
    fn new(state: &Arc<ConnState>) -> ConnWork {
        state.busy.fetch_add(1, Ordering::AcqRel);
        ConnWork(state.clone())
    }
}

impl Drop for ConnWork {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.wake.notify_one();
    }
}

/// A response body that keeps its request busy until it is fully sent (or dropped).
struct Finishing {
    inner: Body,
    _busy: BusyGuard,
}

impl http_body::Body for Finishing {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's byte stream, noting when a request head begins.
struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    PerIp,
    Max,
}

/// The open connections by source address, for the caps and for making room.
#[derive(Debug)]
struct Registry {
    inner: Mutex<RegistryInner>,
    limits: Limits,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    total: usize,
    by_key: HashMap<IpAddr, Vec<Arc<ConnState>>>,
    /// When connections were last closed for headroom (at most every [`SWEEP_PAUSE`]).
    last_sweep: Option<Instant>,
}

/// Least time between two headroom sweeps (each looks at every connection).
const SWEEP_PAUSE: Duration = Duration::from_millis(250);

impl RegistryInner {
    /// Unregisters `c` and tells its task to close; counted as shed.
    fn shed(&mut self, c: &Arc<ConnState>, metrics: &Metrics) {
        if self.remove(c) {
            c.shed.store(true, Ordering::Release);
            c.wake.notify_one();
            metrics.connections.shed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Unregisters `c`; false if it was not registered.
    fn remove(&mut self, c: &Arc<ConnState>) -> bool {
        if !c.registered.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.total = self.total.saturating_sub(1);
        if let Some(list) = self.by_key.get_mut(&c.key) {
            if let Some(i) = list.iter().position(|x| Arc::ptr_eq(x, c)) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                self.by_key.remove(&c.key);
            }
        }
        true
    }

    /// The `n` connections between requests that have waited longest, among `candidates`.
    fn oldest_waiting<'a>(
        candidates: impl Iterator<Item = &'a Arc<ConnState>>,
        n: usize,
    ) -> Vec<Arc<ConnState>> {
        let mut waiting: Vec<(Instant, &Arc<ConnState>)> = candidates
            .filter(|c| !c.is_busy())
            .map(|c| (c.at(c.waiting_since.load(Ordering::Acquire)), c))
            .collect();
        waiting.sort_by_key(|(since, _)| *since);
        waiting
            .into_iter()
            .take(n)
            .map(|(_, c)| c.clone())
            .collect()
    }
}

impl Registry {
    fn new(limits: Limits, metrics: Arc<Metrics>) -> Registry {
        Registry {
            inner: Mutex::new(RegistryInner::default()),
            limits,
            metrics,
        }
    }

    /// Admits a connection from `ip` (making room if it can), or says which limit refuses it.
    fn admit(&self, ip: IpAddr, capped: bool) -> Result<Arc<ConnState>, Refusal> {
        let key = address_key(ip);
        let Ok(mut g) = self.inner.lock() else {
            return Err(Refusal::Max);
        };
        let l = &self.limits;
        if capped {
            let list = g.by_key.get(&key).map(Vec::as_slice).unwrap_or_default();
            if list.len() >= l.max_per_ip {
                let make_room =
                    RegistryInner::oldest_waiting(list.iter(), 1 + list.len() - l.max_per_ip);
                if make_room.len() < 1 + list.len() - l.max_per_ip {
                    return Err(Refusal::PerIp);
                }
                for c in &make_room {
                    g.shed(c, &self.metrics);
                }
            }
        }
        let now = Instant::now();
        let sweep_due = g
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_PAUSE);
        if g.total >= l.high_water && (sweep_due || g.total >= l.max_connections) {
            g.last_sweep = Some(now);
            let excess = g.total + 1 - l.low_water.min(g.total);
            let victims = RegistryInner::oldest_waiting(g.by_key.values().flatten(), excess);
            for c in &victims {
                g.shed(c, &self.metrics);
            }
        }
        if g.total >= l.max_connections {
            return Err(Refusal::Max);
        }
        let state = Arc::new(ConnState::new(key));
        g.total += 1;
        g.by_key.entry(key).or_default().push(state.clone());
        Ok(state)
    }

    fn release(&self, c: &Arc<ConnState>) {
        if let Ok(mut g) = self.inner.lock() {
            g.remove(c);
        }
    }
}

/// Unregisters its connection when the connection's task ends.
struct Registered(Arc<Registry>, Arc<ConnState>);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.release(&self.1);
    }
}

/// Counts live connection tasks, so a shutdown can wait for them.
#[derive(Debug, Default)]
struct Tasks {
    live: AtomicUsize,
    drained: Notify,
}

struct TaskGuard(Arc<Tasks>);

impl Tasks {
    fn enter(self: &Arc<Self>) -> TaskGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    /// Resolves once no task is live.
    async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// Backing off after failed `accept` calls, with rate-limited logging. Pure bookkeeping: the
/// caller sleeps.
#[derive(Debug, Default)]
struct AcceptBackoff {
    delay: Option<Duration>,
    last_log: Option<Instant>,
    unlogged: u64,
}

/// First pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one accept-error log line per this period.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

impl AcceptBackoff {
    /// A failed accept at `now`: how long to pause, and whether to log (with how many failures
    /// went unlogged since the last line).
    fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        let delay = self
            .delay
            .map_or(ACCEPT_BACKOFF_MIN, |d| (d * 2).min(ACCEPT_BACKOFF_MAX));
        self.delay = Some(delay);
        self.unlogged += 1;
        let log = self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= ACCEPT_LOG_EVERY);
        if log {
            self.last_log = Some(now);
            let n = self.unlogged;
            self.unlogged = 0;
            (delay, Some(n))
        } else {
            (delay, None)
        }
    }

    /// A successful accept: the next failure starts from the shortest pause.
    fn succeeded(&mut self) {
        self.delay = None;
    }
}

/// Errors that concern one connection only (the client gave up while queued): no back-off.
fn per_connection(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}

/// Serves connections from `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to [`crate::config::SHUTDOWN_GRACE_SECS`]); connections between requests are closed
/// at once. With a TLS configuration in the gateway every connection must complete a TLS
/// handshake first; one that fails (or takes longer than
/// [`crate::config::TLS_HANDSHAKE_TIMEOUT_SECS`]) is dropped, logged at debug, and the server
/// goes on. The limits are the gateway's ([`Gateway::limits`]).
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = gateway.limits.clone();
    let metrics = gateway.metrics.clone();
    let registry = Arc::new(Registry::new(limits.clone(), metrics.clone()));
    let acceptor = gateway.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let (stop, stopping) = watch::channel(false);
    let tasks = Arc::new(Tasks::default());
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff.succeeded();
                x
            }
            Err(e) if per_connection(&e) => continue,
            Err(e) => {
                metrics
                    .connections
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed);
                let (pause, log) = backoff.failed(Instant::now());
                if let Some(failures) = log {
                    tracing::warn!(error = %e, failures, pause_ms = pause.as_millis(), "accept failed; backing off (the count is failures since the last such line)");
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let capped = !gateway
            .trusted_proxies
            .iter()
            .any(|c| c.contains(peer.ip()));
        let state = match registry.admit(peer.ip(), capped) {
            Ok(s) => s,
            Err(refusal) => {
                let counter = match refusal {
                    Refusal::PerIp => &metrics.connections.refused_per_ip,
                    Refusal::Max => &metrics.connections.refused_max,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, ?refusal, "connection refused at a limit");
                drop(stream);
                continue;
            }
        };
        metrics.connections.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let task = Task {
            gw: gateway.clone(),
            peer,
            state: state.clone(),
            limits: limits.clone(),
            stopping: stopping.clone(),
            registered: Arc::new(Registered(registry.clone(), state)),
            live: tasks.enter(),
            open: Arc::new(metrics.connection_opened()),
        };
        tokio::spawn(task.run(stream, acceptor.clone()));
    }
    drop(listener);
    let _ = stop.send(true);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = tasks.drained() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(shutdown_grace()) => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
    seal(&gateway, &tasks).await;
}

/// How long, once the store and the state are sealed, a shutdown waits for the requests still
/// running to end (see [`seal`]).
pub const SEALED_WAIT: Duration = Duration::from_secs(10);

/// Closes the storage and the state to changes, so that none lands after the audit trail's
/// last record (the caller closes the trail next): each seal waits for the commit in progress
/// and refuses every later one with 503. Then waits, for at most [`SEALED_WAIT`], for the
/// requests still running to end, their answers sent: a change that committed just before the
/// seal finishes what it does after its commit (a completed multipart upload removes its staged
/// parts, a DeleteObjects answers for its other keys), one that had not committed fails at its
/// commit, and each writes its `completed` record (some as their answer's body ends) while the
/// trail is still open. What still runs after that (a copy still streaming, say) can no longer
/// change anything, and its `authorized` record stays alone.
async fn seal(gateway: &Gateway, running: &Tasks) {
    if let Err(e) = gateway.storage.seal().await {
        tracing::error!(error = %e, "cannot close the store to changes before closing the trail");
    }
    let state = gateway.state.clone();
    let sealed: Result<(), crate::state::StateError> = crate::state::db::blocking(move || {
        state.seal();
        Ok(())
    })
    .await;
    if let Err(e) = sealed {
        tracing::error!(error = %e, "cannot close the state to changes before closing the trail");
    }
    let waited = tokio::time::timeout(SEALED_WAIT, running.drained()).await;
    if waited.is_err() {
        tracing::warn!(
            running = running.live.load(Ordering::Acquire),
            "requests still running after the store was sealed; they can change nothing, and a change among them keeps its authorized record alone"
        );
    }
}

/// How long a shutdown waits for requests in flight: [`config::SHUTDOWN_GRACE_SECS`]. Debug
/// builds read `KEYHOLE_TEST_SHUTDOWN_GRACE_SECS` instead when it is set, so that the end-to-end
/// tests can reach the end of the grace period with a request still running; a release build
/// has no such hook.
fn shutdown_grace() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(secs) = std::env::var("KEYHOLE_TEST_SHUTDOWN_GRACE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_secs(secs);
    }
    Duration::from_secs(config::SHUTDOWN_GRACE_SECS)
}

/// One connection's task and what it holds until it ends.
struct Task {
    gw: Arc<Gateway>,
    peer: SocketAddr,
    state: Arc<ConnState>,
    limits: Limits,
    stopping: watch::Receiver<bool>,
    /// Shared with the requests that run on tasks of their own (see `run`): the connection
    /// stays counted against the caps until the last of them ends.
    registered: Arc<Registered>,
    live: TaskGuard,
    /// The connection in `keyhole_active_connections`; shared like `registered`, so the gauge
    /// counts what the caps count.
    open: Arc<crate::metrics::ConnectionGuard>,
}

impl Task {
    async fn run(
        mut self,
        stream: tokio::net::TcpStream,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
    ) {
        let connection = Connection {
            peer: self.peer,
            tls: acceptor.is_some(),
        };
        let gw = self.gw.clone();
        let state = self.state.clone();
        let registered = self.registered.clone();
        let open = self.open.clone();
        let tasks = self.live.0.clone();
        let rule = body::BodyProgress {
            window: self.limits.body_window,
            min_bytes: self.limits.body_min_bytes,
            metrics: self.gw.metrics.clone(),
        };
        let service = service_fn(move |req| {
            // At the call, not in the future: the head is complete now.
            let busy = state.begin_request();
            let gw = gw.clone();
            let rule = rule.clone();
            let head = pipeline::judge(&req);
            let alone = head.may_change;
            // Small until polled: `handle` keeps the stages' large state on the heap.
            let handling = body::with_progress(rule, pipeline::handle(gw, connection, req, head));
            // A request that may change something runs to its end on a task of its own:
            // hyper drops a request's future when its client resets the connection, and a
            // change applied by then (a blocking state write keeps going) was left with an
            // `authorized` audit record and no `completed` one, its outcome unknown, at any
            // client's will (5 of 20 reset PutUserPolicy calls). Such a task keeps its
            // connection busy and counted against the caps and in the active-connections
            // gauge, and a shutdown waits for it
            // as for a connection, until it ends, even once its client is gone (review 23).
            // Reads record their event as their body ends or is dropped.
            let alone = alone.then(|| {
                (
                    ConnWork::new(&state),
                    registered.clone(),
                    tasks.enter(),
                    open.clone(),
                )
            });
            async move {
                let response = if let Some(holds) = alone {
                    let handling = async move {
                        let _holds = holds;
                        handling.await
                    };
                    match tokio::spawn(handling).await {
                        Ok(response) => response,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        // Cancelled: the runtime is shutting down.
                        Err(_) => {
                            let mut r = hyper::Response::new(body::empty());
                            *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                            r
                        }
                    }
                } else {
                    handling.await
                };
                Ok::<_, Infallible>(
                    response.map(|inner| {
                        http_body_util::BodyExt::boxed(Finishing { inner, _busy: busy })
                    }),
                )
            }
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        // A request head (with the URI) may hold at most this much: S3's own limit on request
        // headers is 8 KB, so 32 KiB leaves room for long presigned URLs and keys while bounding
        // what an unfinished head can pin in memory per connection (hyper's default is ~400 KB).
        http.max_buf_size(MAX_HEAD_BYTES);
        match acceptor {
            None => {
                let io = Tracked {
                    inner: stream,
                    state: self.state.clone(),
                };
                let conn = http.serve_connection(TokioIo::new(io), service);
                self.drive(conn, false).await;
            }
            Some(acceptor) => {
                let handshake = crate::tls::accept(&acceptor, stream, self.peer);
                let tls = tokio::select! {
                    tls = handshake => tls,
                    () = self.closing() => None,
                };
                let Some(tls) = tls else {
                    return;
                };
                // The first request head is due a header timeout after the handshake, not after
                // the accept (the handshake has its own bound).
                self.state
                    .waiting_since
                    .store(self.state.now_ms(), Ordering::Release);
                let io = Tracked {
                    inner: tls,
                    state: self.state.clone(),
                };
                let conn = http.serve_connection(TokioIo::new(io), service);
                self.drive(conn, true).await;
            }
        }
    }

    /// Resolves when the connection is shed or the server stops (for a connection that has
    /// not started serving yet).
    async fn closing(&mut self) {
        loop {
            if self.state.shed.load(Ordering::Acquire) || *self.stopping.borrow() {
                return;
            }
            tokio::select! {
                () = self.state.wake.notified() => {}
                changed = self.stopping.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Runs the HTTP connection until it ends or a limit closes it. `tls`: for the audit record
    /// of a request head the HTTP layer refuses.
    async fn drive<C>(&mut self, conn: C, tls: bool)
    where
        C: GracefulConnection,
    {
        tokio::pin!(conn);
        let peer = self.peer;
        // Set once the connection was asked to close gracefully (shed or server stopping):
        // hyper ends it after the request in flight, or at once when idle.
        let mut closing = false;
        // A hard bound on a graceful close of an idle connection (its last response may still
        // be in flight to a slow reader).
        let mut close_by: Option<Instant> = None;
        loop {
            let deadline = self.state.deadline(&self.limits);
            let wake_at = match (deadline.map(|d| d.0), close_by) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let stop_now =
                !closing && (self.state.shed.load(Ordering::Acquire) || *self.stopping.borrow());
            if stop_now {
                if self.state.nothing_to_flush() {
                    tracing::debug!(%peer, "closing a connection between requests");
                    return;
                }
                conn.as_mut().graceful();
                closing = true;
                if !self.state.is_busy() {
                    close_by = Some(Instant::now() + Duration::from_secs(1));
                }
                continue;
            }
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                        self.record_refused_head(&e, tls);
                    }
                    return;
                }
                () = sleep_until(wake_at) => {
                    let now = Instant::now();
                    if close_by.is_some_and(|t| now >= t) {
                        return;
                    }
                    if let Some((at, why)) = self.state.deadline(&self.limits) {
                        if now >= at {
                            let (counter, what) = match why {
                                Expiry::Header => (&self.gw.metrics.connections.header_timeouts, "no complete request head in time"),
                                Expiry::Idle => (&self.gw.metrics.connections.idle_timeouts, "idle keep-alive connection"),
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "closing: {what}");
                            return;
                        }
                    }
                }
                () = self.state.wake.notified() => {}
                changed = self.stopping.changed(), if !closing => {
                    if changed.is_err() {
                        // The server is gone: treat as stopping.
                        closing = true;
                        conn.as_mut().graceful();
                    }
                }
            }
        }
    }
}

impl Task {
    /// A request head the HTTP layer could not read was answered by hyper itself (400, 414 or
    /// 431), or closed unanswered (an HTTP/2 preface), and never reached the pipeline: it is
    /// recorded here, so the trail holds every request the gateway received.
    fn record_refused_head(&self, e: &hyper::Error, tls: bool) {
        // The statuses of hyper's automatic answers (`Server::on_error`): a head too large is
        // 431, a URI too long 414 (both `is_parse_too_large`), any other parse error 400.
        let reason = e.to_string();
        // (status, the error code the record names): the HTTP layer's own answers carry no body,
        // so the code is the condition's, the one keyhole gives when it refuses a head itself
        // (`RequestHeaderSectionTooLarge`, review 30 F6). An HTTP/2 preface is closed unanswered
        // (only HTTP/1.1 is served) and recorded without a status (F4).
        let (status, code) = if e.is_parse_version_h2() {
            (None, "HTTP2NotSupported")
        } else if e.is_parse_too_large() {
            if reason.contains("URI too long") {
                (Some(414), "UriTooLong")
            } else {
                (Some(431), "RequestHeaderSectionTooLarge")
            }
        } else if e.is_parse() {
            (Some(400), "BadRequest")
        } else {
            return;
        };
        let head = self.state.head_since.load(Ordering::Acquire);
        let started = if head == NONE {
            Instant::now()
        } else {
            self.state.at(head)
        }
        .into_std();
        let event = crate::pipeline::unparsed_request_event(
            &self.gw, self.peer, tls, started, status, code, &reason,
        );
        // Counted like every other request (`keyhole_requests_total`, status as recorded).
        crate::pipeline::record_metrics(&self.gw, &event, "s3", "Unknown");
        self.gw.audit.record_detached(event);
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// An HTTP connection that can be asked to finish its request in flight and close.
trait GracefulConnection: std::future::Future<Output = Result<(), hyper::Error>> {
    /// Stops keep-alive: closes at once when idle, after the request in flight otherwise.
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S> GracefulConnection for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u64, per_ip: u64) -> Limits {
        let config = Config {
            max_connections: Some(max),
            max_connections_per_ip: per_ip,
            ..Config::default()
        };
        Limits::with_file_limit(&config, None).unwrap()
    }

    #[test]
    fn limits_follow_the_open_file_limit() {
        let c = Config::default();
        let l = Limits::with_file_limit(&c, Some(1024)).unwrap();
        assert_eq!(l.max_connections, 480, "(1024 - 64) / 2");
        assert_eq!(l.max_per_ip, 256);
        assert_eq!((l.high_water, l.low_water), (432, 384));
        assert_eq!(l.body_min_bytes, 20 * 1024);
        let l = Limits::with_file_limit(&c, Some(1 << 20)).unwrap();
        assert_eq!(l.max_connections, 4096);
        let l = Limits::with_file_limit(&c, None).unwrap();
        assert_eq!(l.max_connections, 4096);
        let too_many = Config {
            max_connections: Some(1000),
            ..Config::default()
        };
        let e = Limits::with_file_limit(&too_many, Some(1024))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`max_connections` is 1000") && e.contains("480") && e.contains("ulimit -n"),
            "{e}"
        );
        let e = Limits::with_file_limit(&c, Some(20))
            .unwrap_err()
            .to_string();
        assert!(e.contains("open-file limit is 20"), "{e}");
        // A per-address cap above the maximum is the maximum.
        assert_eq!(limits(10, 50).max_per_ip, 10);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:127.0.0.4".parse().unwrap();
        assert_eq!(address_key(mapped), "127.0.0.4".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn at_the_per_address_cap_the_oldest_waiting_connection_makes_room() {
        let r = Registry::new(limits(100, 3), Arc::new(Metrics::default()));
        let ip: IpAddr = "127.0.0.4".parse().unwrap();
        let a = r.admit(ip, true).unwrap();
        let b = r.admit(ip, true).unwrap();
        let c = r.admit(ip, true).unwrap();
        // `a` and `b` are busy: the fourth connection takes `c`'s place.
        let _ga = a.begin_request();
        let _gb = b.begin_request();
        let d = r.admit(ip, true).unwrap();
        assert!(c.shed.load(Ordering::Acquire) && !a.shed.load(Ordering::Acquire));
        // Now all three (a, b busy; d waiting) ... d makes room for e.
        let _gd = d.begin_request();
        assert_eq!(
            r.admit(ip, true).unwrap_err(),
            Refusal::PerIp,
            "every one busy"
        );
        // Another address is not affected, and trusted proxies are not capped.
        assert!(r.admit("127.0.0.1".parse().unwrap(), true).is_ok());
        assert!(r.admit(ip, false).is_ok());
        assert_eq!(r.metrics.connections.shed.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn near_the_maximum_waiting_connections_are_closed_for_headroom() {
        let r = Registry::new(limits(10, 10), Arc::new(Metrics::default()));
        let ip: IpAddr = "127.0.0.4".parse().unwrap();
        let mut conns = Vec::new();
        let mut guards = Vec::new();
        for i in 0..9 {
            let c = r.admit(ip, true).unwrap();
            if i < 3 {
                guards.push(c.begin_request());
            }
            conns.push(c);
        }
        // The tenth crosses 90 %: waiting connections are closed down to 80 %.
        let _tenth = r.admit("127.0.0.1".parse().unwrap(), true).unwrap();
        let shed = conns
            .iter()
            .filter(|c| c.shed.load(Ordering::Acquire))
            .count();
        assert_eq!(shed, 2, "9 open + 1 new - 8");
        assert!(
            conns
                .iter()
                .take(3)
                .all(|c| !c.shed.load(Ordering::Acquire)),
            "busy ones stay"
        );
        // All busy at the maximum: refused.
        let r = Registry::new(limits(2, 10), Arc::new(Metrics::default()));
        let x = r.admit(ip, true).unwrap();
        let _gx = x.begin_request();
        let y = r.admit("127.0.0.5".parse().unwrap(), true).unwrap();
        let _gy = y.begin_request();
        let other: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(r.admit(other, true).unwrap_err(), Refusal::Max);
    }

    #[tokio::test]
    async fn a_connection_expires_by_phase() {
        let l = limits(10, 10);
        let s = Arc::new(ConnState::new("127.0.0.1".parse().unwrap()));
        let (at, why) = s.deadline(&l).unwrap();
        assert_eq!(
            (at, why),
            (s.base + l.header_timeout, Expiry::Header),
            "fresh: the first head is due"
        );
        let busy = s.begin_request();
        assert_eq!(s.deadline(&l), None, "busy connections never expire here");
        drop(busy);
        assert_eq!(s.deadline(&l).unwrap().1, Expiry::Idle);
        s.on_read();
        assert_eq!(s.deadline(&l).unwrap().1, Expiry::Header, "a head began");
        assert!(s.nothing_to_flush());
    }

    #[test]
    fn accept_errors_back_off_and_log_rarely() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let (d1, log1) = b.failed(t0);
        let (d2, log2) = b.failed(t0 + Duration::from_millis(10));
        assert_eq!((d1, log1), (ACCEPT_BACKOFF_MIN, Some(1)));
        assert_eq!((d2, log2), (ACCEPT_BACKOFF_MIN * 2, None));
        let mut d = d2;
        for _ in 0..20 {
            d = b.failed(t0 + Duration::from_secs(1)).0;
        }
        assert_eq!(d, ACCEPT_BACKOFF_MAX);
        let (_, log) = b.failed(t0 + ACCEPT_LOG_EVERY);
        assert_eq!(log, Some(22), "one line counts the failures since the last");
        b.succeeded();
        assert_eq!(b.failed(t0 + ACCEPT_LOG_EVERY).0, ACCEPT_BACKOFF_MIN);
    }
}
