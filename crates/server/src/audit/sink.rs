//! The sink: a writer thread that appends hash-chained events to the trail, group-commits them
//! with one fsync per batch, rotates files by size and age, and updates the checkpoint.
//!
//! Callers either hand an event over ([`AuditSink::record`]) or wait until it is durable
//! ([`AuditSink::record_durable`]). While the writer is busy with one batch, the next one
//! accumulates, so concurrent requests share an fsync. A batch with a waiter is fsynced before
//! the waiters are woken; events nobody waits for (reads, denials) are gathered for up to
//! [`GATHER_WINDOW`], written, and fsynced within [`MAX_SYNC_DELAY`] under load or
//! [`IDLE_SYNC_DELAY`] once the trail goes quiet, so a stream of reads costs few fsyncs.
//!
//! # Security
//! A failed write or fsync fails every waiter of the batch; the pipeline turns that into a 503 for
//! mutating requests (fail closed) unless `audit_fail_open` is set. If the file cannot be put back
//! to its last committed length after a failure, the sink refuses every later event until
//! restarted, so the chain on disk never continues after a hole.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::chain::{self, GENESIS_HASH};
use super::checkpoint::{self, Checkpoint, CheckpointKey};
use super::err::AuditError;
use super::event::AuditEvent;
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
/// The checkpoint is rewritten after every commit but synced at most this often (off the
/// critical path of writes; see [`super::checkpoint`]).
pub const CHECKPOINT_SYNC_INTERVAL: Duration = Duration::from_millis(1000);
/// A batch this large is written without waiting for more.
pub const GATHER_ENOUGH: usize = 256;

/// When the writer starts a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Start a new file once the current one reaches this many bytes.
    pub max_bytes: u64,
    /// Start a new file once the current one is this old.
    pub max_age: Duration,
    /// Remove whole files last written longer ago than this (checked at start and at each
    /// rotation); `None` keeps everything.
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

struct Pending {
    event: AuditEvent,
    done: Option<oneshot::Sender<Result<(), ()>>>,
}

/// Handle to the writer thread. Cloning shares it.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Pending>,
    stats: Arc<SinkStats>,
    /// The writer thread, unparked when someone waits for durability.
    writer: std::thread::Thread,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("request_id", &self.event.request_id)
            .finish()
    }
}

impl AuditSink {
    /// Opens the trail under `dir` (creating it), recovers from an interrupted write, and starts
    /// the writer thread.
    pub fn open(
        dir: &Path,
        key: CheckpointKey,
        rotation: Rotation,
        stats: Arc<SinkStats>,
    ) -> Result<AuditSink, AuditError> {
        let writer = Writer::open(dir, key, rotation, stats.clone())?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let handle = std::thread::Builder::new()
            .name("keyhole-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| AuditError::Io {
                action: "start the audit writer thread",
                path: dir.to_owned(),
                source,
            })?;
        Ok(AuditSink {
            tx,
            stats,
            writer: handle.thread().clone(),
        })
    }

    /// Queues `event` without waiting for it to be written.
    pub async fn record(&self, event: AuditEvent) {
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Pending { event, done: None }).await.is_err() {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("audit writer is gone; event lost");
        }
    }

    /// Queues `event` from synchronous code (a dropped response body) without waiting; if the
    /// queue is full the event is handed to a task that waits for room.
    pub fn record_detached(&self, event: AuditEvent) {
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Pending { event, done: None }) {
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
    pub async fn enqueue_durable(&self, event: AuditEvent) -> Result<Durable, AuditError> {
        let (done, wait) = oneshot::channel();
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Pending {
                event,
                done: Some(done),
            })
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

/// The trail files under `dir`, oldest first: (first sequence number, path).
pub fn trail_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_prefix("audit-"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        files.push((seq, entry.path()));
    }
    files.sort();
    Ok(files)
}

/// The name of the trail file whose first event is `seq`.
pub fn file_name(seq: u64) -> String {
    format!("audit-{seq:020}.jsonl")
}

struct Writer {
    dir: PathBuf,
    key: CheckpointKey,
    rotation: Rotation,
    stats: Arc<SinkStats>,
    file: File,
    name: String,
    /// Committed length of `file`.
    len: u64,
    opened: Instant,
    prev_hash: String,
    next_seq: u64,
    checkpoint: Option<File>,
    poisoned: bool,
    /// Bytes written since the last fsync.
    dirty: bool,
    last_sync: Instant,
    /// (length, last hash, next seq) at the last fsync.
    synced: (u64, String, u64),
    /// When the checkpoint file was last synced.
    checkpoint_synced: Instant,
}

impl Writer {
    fn open(
        dir: &Path,
        key: CheckpointKey,
        rotation: Rotation,
        stats: Arc<SinkStats>,
    ) -> Result<Writer, AuditError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| AuditError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create the audit directory", dir))?;
        let files = trail_files(dir).map_err(io("list", dir))?;
        let mut prev_hash = GENESIS_HASH.to_owned();
        let mut next_seq = 1;
        for (_, path) in files.iter().rev() {
            if let Some(link) = recover_tail(path)? {
                prev_hash = link.hash;
                next_seq = link.seq + 1;
                break;
            }
        }
        let name = file_name(next_seq);
        let path = dir.join(&name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("create", &path))?;
        let len = file.metadata().map_err(io("stat", &path))?.len();
        sync_dir(dir).map_err(io("sync", dir))?;
        let cp_path = dir.join(checkpoint::CHECKPOINT_FILE);
        let checkpoint = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&cp_path)
            .map_err(io("open", &cp_path))?;
        let writer = Writer {
            dir: dir.to_owned(),
            key,
            rotation,
            stats,
            file,
            name,
            len,
            opened: Instant::now(),
            prev_hash: prev_hash.clone(),
            next_seq,
            checkpoint: Some(checkpoint),
            poisoned: false,
            dirty: false,
            last_sync: Instant::now(),
            synced: (len, prev_hash, next_seq),
            checkpoint_synced: Instant::now(),
        };
        writer.prune();
        Ok(writer)
    }

    fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        // A small timer-only runtime lets the thread wait for events with a deadline.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = match (&rt, self.dirty) {
                (Some(rt), true) => {
                    match rt
                        .block_on(async { tokio::time::timeout(IDLE_SYNC_DELAY, rx.recv()).await })
                    {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(_) => {
                            self.sync_now();
                            continue;
                        }
                    }
                }
                _ => match rx.blocking_recv() {
                    Some(p) => p,
                    None => break,
                },
            };
            batch.push(first);
            self.gather(&mut rx, &mut batch);
            let n = batch.len();
            self.stats
                .queue_depth
                .fetch_sub(i64::try_from(n).unwrap_or(0), Ordering::Relaxed);
            let must_sync = batch.iter().any(|p| p.done.is_some());
            let result = self.commit(&batch, must_sync);
            let counter = if result.is_ok() {
                &self.stats.events_written
            } else {
                &self.stats.events_failed
            };
            counter.fetch_add(n as u64, Ordering::Relaxed);
            if let Err(e) = &result {
                tracing::error!(error = %e, events = n, "audit commit failed");
            }
            for p in batch.drain(..) {
                if let Some(done) = p.done {
                    let _ = done.send(result.as_ref().map(|_| ()).map_err(|_| ()));
                }
            }
            if matches!(result, Ok(true)) {
                self.write_checkpoint();
            }
        }
        if self.dirty {
            self.sync_now();
        }
        if let Some(f) = &self.checkpoint {
            let _ = f.sync_data();
        }
        tracing::info!("audit writer stopped");
    }

    /// Adds every queued event to `batch`. When nobody waits for durability yet, keeps
    /// gathering for up to [`GATHER_WINDOW`] so that a stream of reads costs few writes. The
    /// thread sleeps (parked) meanwhile, so queuing a read wakes nobody; a caller that waits for
    /// durability unparks it.
    fn gather(&self, rx: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) {
        let deadline = Instant::now() + GATHER_WINDOW;
        loop {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
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

    /// Appends `batch`; syncs when `must_sync` or when unsynced events have waited long enough.
    /// Returns whether the trail was synced (and the checkpoint should follow).
    fn commit(&mut self, batch: &[Pending], must_sync: bool) -> Result<bool, AuditError> {
        if self.poisoned {
            return Err(AuditError::Unavailable);
        }
        if self.len > 0
            && (self.len >= self.rotation.max_bytes
                || self.opened.elapsed() >= self.rotation.max_age)
        {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(batch.len() * 1024);
        let mut hash = self.prev_hash.clone();
        let mut seq = self.next_seq;
        for p in batch {
            let (line, h) = chain::encode(&p.event, seq, &hash).map_err(AuditError::Encode)?;
            buf.extend_from_slice(&line);
            hash = h;
            seq += 1;
        }
        if let Err(source) = self.file.write_all(&buf) {
            self.undo();
            return Err(AuditError::Io {
                action: "append to",
                path: self.dir.join(&self.name),
                source,
            });
        }
        self.len += buf.len() as u64;
        self.prev_hash = hash;
        self.next_seq = seq;
        self.dirty = true;
        if must_sync || self.last_sync.elapsed() >= MAX_SYNC_DELAY {
            self.sync()?;
            return Ok(true);
        }
        Ok(false)
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
                self.synced = (self.len, self.prev_hash.clone(), self.next_seq);
                Ok(())
            }
            Err(source) => {
                let (len, hash, seq) = self.synced.clone();
                let lost = self.next_seq.saturating_sub(seq);
                self.len = len;
                self.prev_hash = hash;
                self.next_seq = seq;
                self.dirty = false;
                self.undo();
                tracing::error!(
                    events = lost,
                    "audit fsync failed; unsynced events discarded"
                );
                Err(AuditError::Io {
                    action: "sync",
                    path: self.dir.join(&self.name),
                    source,
                })
            }
        }
    }

    /// Syncs outside a commit (idle, shutdown) and updates the checkpoint.
    fn sync_now(&mut self) {
        if self.sync().is_ok() {
            self.write_checkpoint();
        }
    }

    /// Puts the file back to its committed length after a failed append.
    fn undo(&mut self) {
        let ok = match self.file.metadata() {
            Ok(m) if m.len() == self.len => true,
            _ => self.file.set_len(self.len).is_ok(),
        };
        if !ok {
            tracing::error!(file = %self.name, "cannot restore the audit file after a failed write; refusing further events until restart");
            self.poisoned = true;
        }
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        if self.dirty {
            self.sync()?;
            self.write_checkpoint();
        }
        let name = file_name(self.next_seq);
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|f| sync_dir(&self.dir).map(|()| f))
            .map_err(|source| AuditError::Io {
                action: "create",
                path: path.clone(),
                source,
            })?;
        self.len = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.synced = (self.len, self.prev_hash.clone(), self.next_seq);
        self.file = file;
        self.name = name;
        self.opened = Instant::now();
        self.prune();
        Ok(())
    }

    /// Applies retention (a failure is logged; the trail stays as it is).
    fn prune(&self) {
        if let Some(retain) = self.rotation.retain {
            if let Err(e) =
                super::retention::prune(&self.dir, &self.key, retain, std::time::SystemTime::now())
            {
                tracing::warn!(error = %e, "audit retention could not remove old files");
            }
        }
    }

    fn write_checkpoint(&mut self) {
        let Some(f) = self.checkpoint.as_mut() else {
            return;
        };
        let cp = Checkpoint::new(
            &self.key,
            &self.name,
            self.len,
            self.next_seq.saturating_sub(1),
            &self.prev_hash,
        );
        let sync = self.checkpoint_synced.elapsed() >= CHECKPOINT_SYNC_INTERVAL;
        if sync {
            self.checkpoint_synced = Instant::now();
        }
        if let Err(e) = checkpoint::write_slot(f, &cp, sync) {
            tracing::warn!(error = %e, "cannot update the audit checkpoint");
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Finds the last complete event of `path`, cutting off an incomplete final line left by a crash
/// mid-write (it was never acknowledged: acknowledgement follows the fsync of whole lines).
fn recover_tail(path: &Path) -> Result<Option<chain::Link>, AuditError> {
    let io = |action: &'static str| {
        let path = path.to_owned();
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    };
    let f = File::open(path).map_err(io("open"))?;
    let total = f.metadata().map_err(io("stat"))?.len();
    let mut reader = BufReader::new(f);
    let mut line = Vec::new();
    let mut last: Option<(u64, Vec<u8>)> = None;
    let mut complete_len = 0u64;
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io("read"))?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            break;
        }
        line_no += 1;
        complete_len += n as u64;
        last = Some((line_no, std::mem::take(&mut line)));
    }
    if complete_len < total {
        tracing::warn!(
            file = %path.display(),
            bytes = total - complete_len,
            "removing an incomplete final audit line left by an interrupted write"
        );
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| {
                f.set_len(complete_len)?;
                f.sync_all()
            })
            .map_err(io("truncate"))?;
    }
    let Some((line_no, bytes)) = last else {
        return Ok(None);
    };
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    chain::check_line(body)
        .map(Some)
        .map_err(|e| AuditError::Damaged {
            position: format!("{}:{line_no}", path.display()),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::tests_support::sample_event;

    fn open(dir: &Path, rotation: Rotation) -> AuditSink {
        AuditSink::open(
            dir,
            CheckpointKey::derive(b"k"),
            rotation,
            Arc::new(SinkStats::default()),
        )
        .unwrap()
    }

    fn lines(dir: &Path) -> Vec<chain::Link> {
        let mut out = Vec::new();
        for (_, p) in trail_files(dir).unwrap() {
            for l in std::fs::read_to_string(p).unwrap().lines() {
                out.push(chain::check_line(l.as_bytes()).unwrap());
            }
        }
        out
    }

    #[tokio::test]
    async fn events_chain_across_restarts_and_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let small = Rotation {
            max_bytes: 1,
            max_age: Duration::from_secs(3600),
            retain: None,
        };
        let sink = open(dir.path(), small);
        for _ in 0..3 {
            sink.record_durable(sample_event()).await.unwrap();
        }
        drop(sink);
        let sink = open(dir.path(), Rotation::default());
        sink.record_durable(sample_event()).await.unwrap();
        let links = lines(dir.path());
        assert_eq!(links.len(), 4);
        assert_eq!(links[0].prev_hash, GENESIS_HASH);
        for (i, pair) in links.windows(2).enumerate() {
            assert_eq!(pair[1].prev_hash, pair[0].hash, "link {i}");
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
        // One event per file while rotating at every commit.
        assert!(trail_files(dir.path()).unwrap().len() >= 3);
    }

    #[tokio::test]
    async fn an_incomplete_last_line_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let sink = open(dir.path(), Rotation::default());
        sink.record_durable(sample_event()).await.unwrap();
        drop(sink);
        let (_, path) = trail_files(dir.path()).unwrap().pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"eventVersion\":\"1.0\",\"ev").unwrap();
        drop(f);
        let sink = open(dir.path(), Rotation::default());
        sink.record_durable(sample_event()).await.unwrap();
        let links = lines(dir.path());
        assert_eq!(links.len(), 2);
        assert_eq!(links[1].prev_hash, links[0].hash);
    }

    #[tokio::test]
    async fn events_nobody_waits_for_are_synced_and_checkpointed_soon() {
        let dir = tempfile::tempdir().unwrap();
        let key = CheckpointKey::derive(b"k");
        let sink = AuditSink::open(
            dir.path(),
            key.clone(),
            Rotation::default(),
            Arc::new(SinkStats::default()),
        )
        .unwrap();
        for _ in 0..3 {
            sink.record(sample_event()).await;
        }
        sink.record_detached(sample_event());
        tokio::time::sleep(GATHER_WINDOW + IDLE_SYNC_DELAY + Duration::from_millis(200)).await;
        assert_eq!(lines(dir.path()).len(), 4);
        match checkpoint::read(dir.path(), &key).unwrap() {
            checkpoint::Found::Valid(cp) => assert_eq!(cp.seq, 4),
            other => panic!("checkpoint not updated: {other:?}"),
        }
    }

    #[tokio::test]
    async fn concurrent_events_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(SinkStats::default());
        let sink = AuditSink::open(
            dir.path(),
            CheckpointKey::derive(b"k"),
            Rotation::default(),
            stats.clone(),
        )
        .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let s = sink.clone();
            tasks.push(tokio::spawn(async move {
                s.record_durable(sample_event()).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(lines(dir.path()).len(), 200);
        assert_eq!(stats.events_written.load(Ordering::Relaxed), 200);
        assert!(stats.fsync.count() < 200, "fsyncs: {}", stats.fsync.count());
        assert_eq!(stats.queue_depth.load(Ordering::Relaxed), 0);
    }
}
