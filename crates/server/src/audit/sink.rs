//! The sink: a writer thread that appends hash-chained events to the trail, group-commits them
//! with one fsync per batch, signs digests of what it wrote on a cadence, and rotates files by
//! size and age.
//!
//! Callers either hand an event over ([`AuditSink::record`]) or wait until it is durable
//! ([`AuditSink::record_durable`]). While the writer is busy with one batch, the next one
//! accumulates, so concurrent requests share an fsync. A batch with a waiter is fsynced before
//! the waiters are woken; events nobody waits for (reads, denials) are gathered for up to
//! [`GATHER_WINDOW`], written, and fsynced within [`MAX_SYNC_DELAY`] under load or
//! [`IDLE_SYNC_DELAY`] once the trail goes quiet, so a stream of reads costs few fsyncs.
//!
//! Digests ([`super::digest`]) are signed every `cadence` (even when idle), as soon as
//! [`MAX_UNSIGNED_EVENTS`] events wait, when a file is closed (rotation, shutdown), at every start
//! and when retention removes files. A digest covers only events already fsynced.
//!
//! # Security
//! A failed write or fsync fails every waiter of the batch; the pipeline turns that into a 503 for
//! mutating requests (fail closed) unless `audit_fail_open` is set. If the file cannot be put back
//! to its last committed length after a failure, the sink refuses every later event until
//! restarted, so the chain on disk never continues after a hole. A commit that would leave more
//! than [`MAX_UNSIGNED_EVENTS`] events, or events older than the cadence, without a signature
//! signs a digest first, and fails if it cannot: the unsigned window stays bounded. Before each
//! digest the writer checks that the trail file and digest log on disk are the files it has open
//! (same inode, same length); if not, someone swapped, cut or extended them: it logs an error,
//! counts it in `keyhole_audit_tampering_detected_total`, signs one last digest of what it wrote
//! (from memory, naming what it found: `verify` then shows the difference) and refuses every later
//! event until restarted (where the start check refuses to start without
//! `--audit-accept-discontinuity`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::chain;
use super::digest::{self, Digest, FileSummary, Head, Kind, Span};
use super::err::AuditError;
use super::event::AuditEvent;
use super::files::{differs, make_private, open_append, open_pair};
pub use super::files::{file_name, genesis, rfc3339, trail_files};
use super::keys::{Signer, TrustedKeys, SIGNATURE_ALGORITHM};
use crate::metrics::SinkStats;

/// Events the queue holds before callers wait for room.
pub const QUEUE_CAPACITY: usize = 16 * 1024;
/// Most events written by one commit.
pub const MAX_BATCH: usize = 4096;
/// Events nobody waits for (reads, denials) are fsynced at most this long after being written
/// while the trail is busy...
pub const MAX_SYNC_DELAY: Duration = Duration::from_millis(50);
/// ... and this long after the trail goes quiet.
pub const IDLE_SYNC_DELAY: Duration = Duration::from_millis(5);
/// How long the writer keeps gathering events nobody waits for before writing them.
pub const GATHER_WINDOW: Duration = Duration::from_millis(2);
/// A batch this large is written without waiting for more.
pub const GATHER_ENOUGH: usize = 256;
/// At most this many events on disk are ever not covered by a digest: a digest is signed as soon
/// as this many wait.
pub const MAX_UNSIGNED_EVENTS: u64 = 1024;

/// When the writer starts a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Start a new file once the current one reaches this many bytes.
    pub max_bytes: u64,
    /// Start a new file once the current one is this old.
    pub max_age: Duration,
    /// Remove whole files whose newest event (as signed in their closing digest) is older than
    /// this (checked at start and at each rotation); `None` keeps everything.
    pub retain: Option<Duration>,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: crate::config::DEFAULT_AUDIT_ROTATE_BYTES,
            max_age: Duration::from_secs(crate::config::DEFAULT_AUDIT_ROTATE_SECS),
            retain: None,
        }
    }
}

/// A function that sees every event handed to the sink ([`Options::tap`]).
#[derive(Clone)]
pub struct Tap(pub Arc<dyn Fn(&AuditEvent) + Send + Sync>);

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

/// The writer's clock (tests set it).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How the sink writes and signs.
#[derive(Clone)]
pub struct Options {
    /// Rotation and retention.
    pub rotation: Rotation,
    /// A digest at least this often, even when idle.
    pub cadence: Duration,
    /// The account, named in every digest.
    pub account_id: String,
    /// This node ([`crate::node`]), named in every digest and stamped on every event.
    pub node_id: Option<String>,
    /// Sees every event as it is handed to the sink (after the node is stamped on it): the
    /// job-report feed of a shared state ([`crate::jobs::facts`]).
    pub tap: Option<Tap>,
    /// Fingerprints of other keys whose digests the start check accepts (key rotation).
    pub pinned: Vec<String>,
    /// At start, when the trail does not match its digests, record a signed discontinuity and
    /// go on instead of refusing to start.
    pub accept_discontinuity: bool,
    /// Where digest times and retention cut-offs come from.
    pub clock: Clock,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("rotation", &self.rotation)
            .field("cadence", &self.cadence)
            .field("account_id", &self.account_id)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Defaults for `account_id`: default rotation, 60 s cadence, the system clock.
    pub fn new(account_id: &str) -> Options {
        Options {
            rotation: Rotation::default(),
            cadence: Duration::from_secs(crate::config::DEFAULT_AUDIT_DIGEST_SECS),
            account_id: account_id.to_owned(),
            node_id: None,
            tap: None,
            pinned: Vec::new(),
            accept_discontinuity: false,
            clock: Arc::new(SystemTime::now),
        }
    }
}

struct Pending {
    event: AuditEvent,
    done: Option<oneshot::Sender<Result<(), ()>>>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "events are the traffic, Stop is sent once; boxing every event would cost an allocation each"
)]
enum Msg {
    Event(Pending),
    /// Answered once every event queued before it is written ([`AuditSink::written`]).
    Barrier(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// Handle to the writer thread. Cloning shares it.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
    stats: Arc<SinkStats>,
    /// The writer thread, unparked when someone waits for durability.
    writer: std::thread::Thread,
    fingerprint: Arc<str>,
    node: Option<Arc<str>>,
    tap: Option<Tap>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Event(p) => f
                .debug_struct("Event")
                .field("request_id", &p.event.request_id)
                .finish(),
            Msg::Barrier(_) => f.write_str("Barrier"),
            Msg::Stop(_) => f.write_str("Stop"),
        }
    }
}

impl AuditSink {
    /// Opens the trail under `dir`: checks its tail against the last signed digest (refusing on
    /// a mismatch unless `accept_discontinuity`), signs a `start` digest, applies retention, and
    /// starts the writer thread.
    pub fn open(
        dir: &Path,
        signer: Arc<Signer>,
        options: Options,
        stats: Arc<SinkStats>,
    ) -> Result<AuditSink, AuditError> {
        let fingerprint: Arc<str> = signer.public().fingerprint().into();
        let node = options.node_id.as_deref().map(Arc::from);
        let tap = options.tap.clone();
        let writer = Writer::open(dir, signer, options, stats.clone())?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let handle = std::thread::Builder::new()
            .name("keyhole-audit".into())
            .spawn(move || {
                // A small timer-only runtime lets the thread wait for events with a deadline
                // (built here: a runtime must not be dropped inside the caller's async context).
                match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => writer.run(rx, &rt),
                    Err(e) => tracing::error!(error = %e, "cannot start the audit writer's timer; every event will be refused"),
                }
            })
            .map_err(|source| AuditError::Io {
                action: "start the audit writer thread",
                path: dir.to_owned(),
                source,
            })?;
        Ok(AuditSink {
            tx,
            stats,
            writer: handle.thread().clone(),
            fingerprint,
            node,
            tap,
        })
    }

    /// The fingerprint of the key digests are signed with.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Waits until every event queued before this call is written to the trail file (not
    /// necessarily fsynced): a reader of the files then sees them (job reports).
    pub async fn written(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Barrier(ack))
            .await
            .map_err(|_| AuditError::Unavailable)?;
        self.writer.unpark();
        done.await.map_err(|_| AuditError::Unavailable)
    }

    /// This node's id, as stamped on every event (`None` in tests without one).
    pub fn node_id(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// Stamps the node on `event` and shows it to the tap: every way in goes through here.
    fn stamp(&self, event: &mut AuditEvent) {
        if let Some(n) = &self.node {
            event.node = Some(n.to_string());
        }
        if let Some(t) = &self.tap {
            (t.0)(event);
        }
    }

    /// Stops the writer after the events queued before this call: syncs, signs a `stop` digest
    /// (closing the current file) and waits until it is on disk.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Stop(ack)).await.is_ok() {
            self.writer.unpark();
            let _ = done.await;
        }
    }

    /// Queues `event` without waiting for it to be written.
    pub async fn record(&self, mut event: AuditEvent) {
        self.stamp(&mut event);
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Msg::Event(Pending { event, done: None }))
            .await
            .is_err()
        {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("audit writer is gone; event lost");
        }
    }

    /// Queues `event` from synchronous code (a dropped response body) without waiting; if the
    /// queue is full the event is handed to a task that waits for room.
    pub fn record_detached(&self, mut event: AuditEvent) {
        self.stamp(&mut event);
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Event(Pending { event, done: None })) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(p)) => {
                let tx = self.tx.clone();
                let stats = self.stats.clone();
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        if tx.send(p).await.is_err() {
                            stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                            stats.events_failed.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                } else {
                    self.lost();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.lost(),
        }
    }

    fn lost(&self) {
        self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
        self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!("audit writer is gone or unreachable; event lost");
    }

    /// Queues `event` and waits until it is written and fsynced.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.enqueue_durable(event).await?.wait().await
    }

    /// Queues `event` (in order with every other event queued after it) and returns a handle to
    /// wait on until it is written and fsynced.
    pub async fn enqueue_durable(&self, mut event: AuditEvent) -> Result<Durable, AuditError> {
        self.stamp(&mut event);
        let (done, wait) = oneshot::channel();
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Msg::Event(Pending {
                event,
                done: Some(done),
            }))
            .await
            .is_err()
        {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
            return Err(AuditError::Unavailable);
        }
        self.writer.unpark();
        Ok(Durable(wait))
    }
}

/// An event queued by [`AuditSink::enqueue_durable`], not yet known to be durable.
#[derive(Debug)]
pub struct Durable(oneshot::Receiver<Result<(), ()>>);

impl Durable {
    /// Waits until the event is written and fsynced.
    pub async fn wait(self) -> Result<(), AuditError> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            _ => Err(AuditError::Unavailable),
        }
    }
}

/// Extra fields of a digest.
#[derive(Default)]
pub(crate) struct Extra {
    pub start: Option<digest::StartInfo>,
    pub retention: Option<digest::RetentionInfo>,
    pub discontinuity: Option<digest::DiscontinuityInfo>,
    /// Digest number to use instead of the next one (a discontinuity after digests it could
    /// not check).
    pub digest_seq: Option<u64>,
}

/// The last digest written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Last {
    pub seq: u64,
    pub signature: String,
    pub end_time: String,
}

pub(crate) struct Writer {
    pub dir: PathBuf,
    pub signer: Arc<Signer>,
    pub opts: Options,
    pub stats: Arc<SinkStats>,
    /// The current trail file and its first sequence number (its name).
    pub file: File,
    pub file_seq: u64,
    /// Committed length of `file` (written, maybe not yet synced).
    pub len: u64,
    pub opened: Instant,
    pub prev_hash: String,
    pub next_seq: u64,
    /// The digest log of the current file.
    pub log: File,
    pub log_len: u64,
    pub poisoned: bool,
    /// Bytes written since the last fsync.
    pub dirty: bool,
    pub last_sync: Instant,
    /// (length, last hash, next seq, span) at the last fsync.
    pub synced: (u64, String, u64, Span),
    /// Events written since the last digest.
    pub span: Span,
    /// The current file's events covered by digests so far.
    pub summary: FileSummary,
    pub last: Last,
    pub last_digest_at: Instant,
    /// A Stop arrived while gathering.
    stop: Option<oneshot::Sender<()>>,
    /// Barriers to answer after the next commit.
    barriers: Vec<oneshot::Sender<()>>,
}

impl Writer {
    fn open(
        dir: &Path,
        signer: Arc<Signer>,
        opts: Options,
        stats: Arc<SinkStats>,
    ) -> Result<Writer, AuditError> {
        make_private(dir).map_err(|source| AuditError::Io {
            action: "create the audit directory",
            path: dir.to_owned(),
            source,
        })?;
        let writer = super::start::resume(dir, signer, opts, stats)?;
        Ok(writer)
    }

    /// A writer positioned at the end of trail file `file_seq` (`len` bytes) and its digest log.
    #[expect(
        clippy::too_many_arguments,
        reason = "the writer's whole starting state, computed by the start check"
    )]
    pub(crate) fn at(
        dir: &Path,
        signer: Arc<Signer>,
        opts: Options,
        stats: Arc<SinkStats>,
        file_seq: u64,
        next_seq: u64,
        prev_hash: String,
        last: Last,
    ) -> Result<Writer, AuditError> {
        let (file, len, log, log_len) = open_pair(dir, file_seq)?;
        let span = Span::at(len);
        Ok(Writer {
            dir: dir.to_owned(),
            signer,
            opts,
            stats,
            file,
            file_seq,
            len,
            opened: Instant::now(),
            prev_hash: prev_hash.clone(),
            next_seq,
            log,
            log_len,
            poisoned: false,
            dirty: false,
            last_sync: Instant::now(),
            synced: (len, prev_hash, next_seq, span.clone()),
            span,
            summary: FileSummary::default(),
            last,
            last_digest_at: Instant::now(),
            stop: None,
            barriers: Vec::new(),
        })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Msg>, rt: &tokio::runtime::Runtime) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let due = self.last_digest_at + self.opts.cadence;
            let mut wait = due.saturating_duration_since(Instant::now());
            if self.dirty {
                wait = wait.min(IDLE_SYNC_DELAY);
            }
            let msg = rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
            match msg {
                Ok(Some(Msg::Event(p))) => batch.push(p),
                Ok(Some(Msg::Barrier(ack))) => self.barriers.push(ack),
                Ok(Some(Msg::Stop(ack))) => {
                    self.stop = Some(ack);
                }
                Ok(None) => break,
                Err(_) => {
                    if self.dirty {
                        self.sync_now();
                    }
                    if Instant::now() >= due {
                        self.tick();
                    }
                    continue;
                }
            }
            if self.stop.is_none() && self.barriers.is_empty() {
                self.gather(&mut rx, &mut batch);
            }
            if !batch.is_empty() {
                self.commit_batch(&mut batch);
            }
            for ack in self.barriers.drain(..) {
                let _ = ack.send(());
            }
            if self.stop.is_some() {
                break;
            }
            if Instant::now() >= self.last_digest_at + self.opts.cadence {
                self.tick();
            }
        }
        // Events queued before the Stop are written first.
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Event(p) => batch.push(p),
                Msg::Barrier(ack) => self.barriers.push(ack),
                Msg::Stop(_) => {}
            }
        }
        if !batch.is_empty() {
            self.commit_batch(&mut batch);
        }
        for ack in self.barriers.drain(..) {
            let _ = ack.send(());
        }
        self.shutdown();
        if let Some(ack) = self.stop.take() {
            let _ = ack.send(());
        }
        tracing::info!("audit writer stopped");
    }

    fn commit_batch(&mut self, batch: &mut Vec<Pending>) {
        let n = batch.len();
        self.stats
            .queue_depth
            .fetch_sub(i64::try_from(n).unwrap_or(0), Ordering::Relaxed);
        let must_sync = batch.iter().any(|p| p.done.is_some());
        let result = self.commit(batch, must_sync);
        let counter = if result.is_ok() {
            &self.stats.events_written
        } else {
            &self.stats.events_failed
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        self.stats.storage_full.store(
            matches!(&result, Err(e) if crate::error::is_storage_full(e)),
            Ordering::Relaxed,
        );
        if let Err(e) = &result {
            tracing::error!(error = %e, events = n, "audit commit failed");
        }
        for p in batch.drain(..) {
            if let Some(done) = p.done {
                let _ = done.send(result.as_ref().map(|_| ()).map_err(|_| ()));
            }
        }
    }

    /// Adds every queued event to `batch`. When nobody waits for durability yet, keeps
    /// gathering for up to [`GATHER_WINDOW`] so that a stream of reads costs few writes. The
    /// thread sleeps (parked) meanwhile, so queuing a read wakes nobody; a caller that waits for
    /// durability unparks it.
    fn gather(&mut self, rx: &mut mpsc::Receiver<Msg>, batch: &mut Vec<Pending>) {
        let deadline = Instant::now() + GATHER_WINDOW;
        loop {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Event(p)) => batch.push(p),
                    Ok(Msg::Barrier(ack)) => {
                        // What came before it is written now.
                        self.barriers.push(ack);
                        return;
                    }
                    Ok(Msg::Stop(ack)) => {
                        self.stop = Some(ack);
                        return;
                    }
                    Err(_) => break,
                }
            }
            let waiting = batch.iter().any(|p| p.done.is_some());
            let left = deadline.saturating_duration_since(Instant::now());
            if waiting || batch.len() >= GATHER_ENOUGH || left.is_zero() {
                return;
            }
            std::thread::park_timeout(left);
        }
    }

    /// Appends `batch` (signing a digest whenever [`MAX_UNSIGNED_EVENTS`] wait); syncs when
    /// `must_sync` or when unsynced events have waited long enough.
    fn commit(&mut self, batch: &[Pending], must_sync: bool) -> Result<(), AuditError> {
        if self.poisoned {
            return Err(AuditError::Unavailable);
        }
        self.digest_if_due()?;
        if self.len > 0
            && (self.len >= self.opts.rotation.max_bytes
                || self.opened.elapsed() >= self.opts.rotation.max_age)
        {
            self.rotate()?;
        }
        let mut rest = batch;
        while !rest.is_empty() {
            let room = usize::try_from(MAX_UNSIGNED_EVENTS.saturating_sub(self.span.count))
                .unwrap_or(1)
                .max(1);
            let (chunk, tail) = rest.split_at(room.min(rest.len()));
            self.append(chunk)?;
            rest = tail;
            if self.span.count >= MAX_UNSIGNED_EVENTS {
                self.sync()?;
                self.write_digest(Kind::Periodic, false, Extra::default())?;
            }
        }
        if self.dirty && (must_sync || self.last_sync.elapsed() >= MAX_SYNC_DELAY) {
            self.sync()?;
        }
        Ok(())
    }

    fn append(&mut self, chunk: &[Pending]) -> Result<(), AuditError> {
        let before = self.span.clone();
        let mut buf = Vec::with_capacity(chunk.len() * 1024);
        let mut hash = self.prev_hash.clone();
        let mut seq = self.next_seq;
        for p in chunk {
            let start = buf.len();
            let h =
                chain::encode_into(&mut buf, &p.event, seq, &hash).map_err(AuditError::Encode)?;
            let line = buf.get(start..).unwrap_or_default();
            self.span.push(line, seq, &h, &p.event.event_time);
            hash = h;
            seq += 1;
        }
        let written = match injected_fault(chunk) {
            Some(e) => Err(e),
            None => self.file.write_all(&buf),
        };
        if let Err(source) = written {
            self.span = before;
            self.undo();
            return Err(AuditError::Io {
                action: "append to",
                path: self.dir.join(file_name(self.file_seq)),
                source,
            });
        }
        self.len += buf.len() as u64;
        self.prev_hash = hash;
        self.next_seq = seq;
        self.dirty = true;
        self.stats.unsigned_events.store(
            i64::try_from(self.span.count).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// A digest first, when too many events or too old ones wait unsigned.
    fn digest_if_due(&mut self) -> Result<(), AuditError> {
        let overdue = self.last_digest_at.elapsed() >= self.opts.cadence;
        if self.span.count >= MAX_UNSIGNED_EVENTS || (overdue && self.span.count > 0) {
            if self.dirty {
                self.sync()?;
            }
            self.write_digest(Kind::Periodic, false, Extra::default())?;
        }
        Ok(())
    }

    /// Makes everything written durable; on failure rolls the file and the chain back to the
    /// last durable state (the unsynced events are lost and reported).
    fn sync(&mut self) -> Result<(), AuditError> {
        let started = Instant::now();
        let r = self.file.sync_data();
        self.stats.fsync.observe(started.elapsed());
        self.last_sync = Instant::now();
        match r {
            Ok(()) => {
                self.dirty = false;
                self.synced = (
                    self.len,
                    self.prev_hash.clone(),
                    self.next_seq,
                    self.span.clone(),
                );
                Ok(())
            }
            Err(source) => {
                let (len, hash, seq, span) = self.synced.clone();
                let lost = self.next_seq.saturating_sub(seq);
                self.len = len;
                self.prev_hash = hash;
                self.next_seq = seq;
                self.span = span;
                self.dirty = false;
                self.undo();
                tracing::error!(
                    events = lost,
                    "audit fsync failed; unsynced events discarded"
                );
                Err(AuditError::Io {
                    action: "sync",
                    path: self.dir.join(file_name(self.file_seq)),
                    source,
                })
            }
        }
    }

    /// Syncs outside a commit (idle).
    fn sync_now(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "audit sync failed");
        }
    }

    /// The cadence: a digest even when nothing happened.
    fn tick(&mut self) {
        if self.poisoned {
            self.last_digest_at = Instant::now();
            return;
        }
        let result = if self.dirty { self.sync() } else { Ok(()) }
            .and_then(|()| self.write_digest(Kind::Periodic, false, Extra::default()));
        if let Err(e) = result {
            self.last_digest_at = Instant::now();
            tracing::error!(error = %e, "cannot sign the periodic audit digest");
        }
    }

    /// Clean shutdown: sync and sign a `stop` digest that closes the current file.
    fn shutdown(&mut self) {
        if self.poisoned {
            return;
        }
        let result = if self.dirty { self.sync() } else { Ok(()) }
            .and_then(|()| self.write_digest(Kind::Stop, true, Extra::default()));
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot sign the audit stop digest");
        }
    }

    /// Puts the file back to its committed length after a failed append.
    fn undo(&mut self) {
        let ok = match self.file.metadata() {
            Ok(m) if m.len() == self.len => true,
            _ => self.file.set_len(self.len).is_ok(),
        };
        if !ok {
            tracing::error!(file = %file_name(self.file_seq), "cannot restore the audit file after a failed write; refusing further events until restart");
            self.poisoned = true;
        }
    }

    /// Closes the current file with a `rotate` digest, opens the next pair and applies retention.
    fn rotate(&mut self) -> Result<(), AuditError> {
        if self.dirty {
            self.sync()?;
        }
        self.write_digest(Kind::Rotate, true, Extra::default())?;
        self.switch_to(self.next_seq)?;
        self.prune();
        Ok(())
    }

    /// Makes `file_seq` (and its digest log) the current pair.
    pub(crate) fn switch_to(&mut self, file_seq: u64) -> Result<(), AuditError> {
        let (file, len, log, log_len) = open_pair(&self.dir, file_seq)?;
        self.file = file;
        self.file_seq = file_seq;
        self.len = len;
        self.log = log;
        self.log_len = log_len;
        self.span = Span::at(len);
        self.summary = FileSummary::default();
        self.synced = (
            self.len,
            self.prev_hash.clone(),
            self.next_seq,
            self.span.clone(),
        );
        self.opened = Instant::now();
        Ok(())
    }

    /// Applies retention (a failure is logged; the trail stays as it is).
    pub(crate) fn prune(&mut self) {
        if let Some(retain) = self.opts.rotation.retain {
            if let Err(e) = super::retention::prune(self, retain) {
                tracing::warn!(error = %e, "audit retention could not remove old files");
            }
        }
    }

    /// Checks that the files on disk are the ones open here, with the lengths written: a
    /// swapped (renamed over, replaced), cut or extended file is tampering.
    fn check_files(&mut self) -> Result<(), AuditError> {
        let trail = self.dir.join(file_name(self.file_seq));
        let log = self.dir.join(digest::log_name(self.file_seq));
        let mut found = None;
        for (open, path, len) in [
            (&self.file, &trail, self.len),
            (&self.log, &log, self.log_len),
        ] {
            if let Some(why) = differs(open, path, len) {
                found = Some((path.clone(), why));
                break;
            }
        }
        let Some((path, reason)) = found else {
            return Ok(());
        };
        self.poisoned = true;
        self.stats.tampering.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            file = %path.display(),
            reason = %reason,
            "AUDIT TAMPERING DETECTED: the trail on disk is not what the gateway wrote; it signs one last digest of what it wrote and refuses every later event until restart"
        );
        Err(AuditError::Tampered { path, reason })
    }

    /// Signs a digest of the events written since the last one (all synced) and appends it to
    /// the current digest log; `close` closes the current file (when it holds events).
    pub(crate) fn write_digest(
        &mut self,
        kind: Kind,
        close: bool,
        extra: Extra,
    ) -> Result<(), AuditError> {
        if self.poisoned {
            return Err(AuditError::Unavailable);
        }
        // Tampering: the writer signs what it wrote (from memory) one last time, into the log
        // now at the digest log's path, so the difference with the files on disk is provable;
        // then it stops.
        let tampered = match self.check_files() {
            Ok(()) => None,
            Err(AuditError::Tampered { path, reason }) => {
                let log = self.dir.join(digest::log_name(self.file_seq));
                self.log = open_append(&log).map_err(|source| AuditError::Io {
                    action: "reopen",
                    path: log,
                    source,
                })?;
                Some((path, reason))
            }
            Err(e) => return Err(e),
        };
        let now = rfc3339((self.opts.clock)());
        // Never earlier than the previous digest, whatever the clock does.
        let end = if now < self.last.end_time {
            self.last.end_time.clone()
        } else {
            now
        };
        let segment = self.span.segment();
        let mut summary = self.summary.clone();
        if let Some(s) = &segment {
            summary.add(s);
        }
        let closed = if close {
            summary.closed(self.len)
        } else {
            None
        };
        let public = self.signer.public();
        let d = Digest {
            digest_version: digest::DIGEST_VERSION,
            digest_seq: extra.digest_seq.unwrap_or(self.last.seq + 1),
            kind,
            account_id: self.opts.account_id.clone(),
            node_id: self.opts.node_id.clone(),
            digest_start_time: if self.last.end_time.is_empty() {
                end.clone()
            } else {
                self.last.end_time.clone()
            },
            digest_end_time: end.clone(),
            cadence_seconds: self.opts.cadence.as_secs(),
            file: file_name(self.file_seq),
            segment,
            head: Head {
                seq: self.next_seq.saturating_sub(1),
                hash: self.prev_hash.clone(),
                offset: self.len,
            },
            closed,
            start: extra.start,
            retention: extra.retention,
            discontinuity: extra.discontinuity,
            tampered: tampered.as_ref().map(|(path, reason)| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{name}: {reason}")
            }),
            previous_digest_signature: self.last.signature.clone(),
            signature_algorithm: SIGNATURE_ALGORITHM.into(),
            public_key: public.embedded(),
            public_key_fingerprint: public.fingerprint().to_owned(),
        };
        let (line, signature) = digest::encode(&d, &self.signer).map_err(AuditError::Encode)?;
        let path = self.dir.join(digest::log_name(self.file_seq));
        let written = self
            .log
            .write_all(&line)
            .and_then(|()| self.log.sync_data());
        if let Err(source) = written {
            let restored = match self.log.metadata() {
                Ok(m) if m.len() == self.log_len => true,
                _ => self.log.set_len(self.log_len).is_ok(),
            };
            if !restored {
                self.poisoned = true;
            }
            return Err(AuditError::Io {
                action: "append a digest to",
                path,
                source,
            });
        }
        self.log_len += line.len() as u64;
        self.last = Last {
            seq: d.digest_seq,
            signature,
            end_time: end,
        };
        self.last_digest_at = Instant::now();
        self.summary = summary;
        self.span = Span::at(self.len);
        self.synced.3 = self.span.clone();
        self.stats.digests_written.fetch_add(1, Ordering::Relaxed);
        self.stats.unsigned_events.store(0, Ordering::Relaxed);
        match tampered {
            Some((path, reason)) => Err(AuditError::Tampered { path, reason }),
            None => Ok(()),
        }
    }

    /// Trusted keys for this writer's own checks: its key and the pinned fingerprints.
    pub(crate) fn keys(signer: &Signer, opts: &Options) -> TrustedKeys {
        TrustedKeys::new(vec![signer.public().clone()], opts.pinned.clone())
    }
}

/// A fault the end-to-end tests inject to reproduce a failing audit volume at an exact point:
/// `KEYHOLE_TEST_AUDIT_FAULT=STAGE:EVENT_NAME` (e.g. `completed:PutObject`) makes every append
/// holding such an event fail as a full disk would. Only debug builds read it; a release build
/// has no fault hook.
#[cfg(debug_assertions)]
fn injected_fault(chunk: &[Pending]) -> Option<std::io::Error> {
    let spec = std::env::var("KEYHOLE_TEST_AUDIT_FAULT").ok()?;
    let (stage, name) = spec.split_once(':')?;
    let hit = chunk.iter().any(|p| {
        p.event.event_name == name
            && matches!(
                (stage, &p.event.stage),
                ("authorized", super::event::Stage::Authorized)
                    | ("completed", super::event::Stage::Completed)
            )
    });
    hit.then(|| {
        std::io::Error::other("injected fault (KEYHOLE_TEST_AUDIT_FAULT): no space left on device")
    })
}

#[cfg(not(debug_assertions))]
fn injected_fault(_: &[Pending]) -> Option<std::io::Error> {
    None
}

/// Helpers for tests: one signing key per test process, a sink opened on a trail that has its
/// genesis.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// The key every test trail is signed with.
    pub(crate) fn signer() -> Arc<Signer> {
        static SIGNER: std::sync::OnceLock<Arc<Signer>> = std::sync::OnceLock::new();
        SIGNER.get_or_init(|| Arc::new(Signer::generate())).clone()
    }

    /// Trusts [`signer`] only.
    pub(crate) fn keys() -> TrustedKeys {
        TrustedKeys::new(vec![signer().public().clone()], vec![])
    }

    /// Options with `rotation` and an hour's cadence (tests sign digests by closing the sink).
    pub(crate) fn options(rotation: Rotation) -> Options {
        let mut o = Options::new("123456789012");
        o.rotation = rotation;
        o.cadence = Duration::from_secs(3600);
        o
    }

    /// Opens `dir`, writing the genesis first when it has no digest yet.
    pub(crate) fn open_with(dir: &Path, options: Options) -> Result<AuditSink, AuditError> {
        let fresh = digest::digest_logs(dir).map_or(true, |l| l.is_empty());
        if fresh {
            genesis(
                dir,
                &signer(),
                &options.account_id,
                options.node_id.as_deref(),
                (options.clock)(),
            )?;
        }
        AuditSink::open(dir, signer(), options, Arc::new(SinkStats::default()))
    }

    /// Opens `dir` with `rotation`.
    pub(crate) fn open(dir: &Path, rotation: Rotation) -> AuditSink {
        match open_with(dir, options(rotation)) {
            Ok(s) => s,
            Err(e) => panic!("cannot open the test trail: {e}"),
        }
    }
}
