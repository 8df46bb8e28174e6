//! Request and response bodies, streamed and never fully buffered (XML documents aside, which are
//! capped).
//!
//! [`BodyReader`] turns the incoming body into verified payload bytes: it decodes aws-chunked
//! bodies and checks every chunk signature, checks a declared `x-amz-content-sha256` against what
//! actually arrived, and checks the byte count against `Content-Length` (or
//! `x-amz-decoded-content-length`). [`pump`] feeds it to a store writer on a blocking thread.
//!
//! # Body progress
//! A request body that stalls must not hold a connection, a handler and a temp file forever, but
//! a slow upload that keeps moving (5 GiB at 1 MiB/s) is legitimate: the rule is a minimum
//! progress, not a total deadline. [`BodyReader`] measures only the time it spends *waiting for
//! the client* (inside its wait for the next frame): time the gateway itself spends writing to
//! disk, fsyncing or waiting for the audit trail is not the client's and does not count. Every
//! [`BodyProgress::window`] of such waiting must bring [`BodyProgress::min_bytes`] bytes (at least
//! one); otherwise the request fails with S3's `RequestTimeout`.
//!
//! Why here and not in the connection layer: only the body reader knows that the gateway is
//! waiting for *body* bytes. Below it, hyper also reads the socket while a handler works (to
//! notice a client that hangs up), so a stall there cannot be told from a slow handler.
//!
//! The rule reaches the reader through a task-local set by the listener around each request's
//! handler ([`with_progress`]), so readers built anywhere in the pipeline obey it; without one
//! (unit tests, in-process callers) no timeout applies.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body::Frame;
use http_body_util::BodyExt;
use keyhole_sigv4::{
    ChecksumKind, ChecksumVerifier, ChunkDecoder, PayloadVerifier, VerifiedRequest,
};
use keyhole_store::{ObjectReader, ObjectWriter, PartWriter, StoreError};

use crate::error::S3Error;

/// The body-progress rule (see the module documentation).
#[derive(Debug, Clone)]
pub struct BodyProgress {
    /// Waiting time per window.
    pub window: std::time::Duration,
    /// Bytes each window of waiting must bring (at least 1).
    pub min_bytes: u64,
    /// Where refusals are counted (`/metrics`).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

tokio::task_local! {
    static PROGRESS: BodyProgress;
}

/// Runs `f` (a request's handler) with `rule` applying to every [`BodyReader`] it builds.
pub async fn with_progress<F: std::future::Future>(rule: BodyProgress, f: F) -> F::Output {
    PROGRESS.scope(rule, f).await
}

/// S3's answer to a body that stopped coming.
fn request_timeout() -> S3Error {
    S3Error::new(
        "RequestTimeout",
        StatusCode::BAD_REQUEST,
        "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.",
    )
}

/// The waiting time and bytes of the current window.
#[derive(Debug)]
struct Window {
    rule: BodyProgress,
    waited: std::time::Duration,
    bytes: u64,
}

/// The response body type: a boxed stream of byte frames.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A body with these bytes.
pub fn full(data: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body fed by a channel (used to stream object data from a blocking reader thread).
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// A body fed through the returned sender, `depth` frames buffered; dropping the sender ends it,
/// sending an error aborts it.
pub fn channel(
    depth: usize,
) -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
    (tx, ChannelBody { rx }.boxed())
}

/// Size of each read from an object file.
const READ_CHUNK: usize = 256 * 1024;
/// Chunks in flight between a reader or writer thread and the connection.
const CHANNEL_DEPTH: usize = 4;

/// Streams `len` bytes of `reader` starting at `start` as a response body.
pub fn stream_object(mut reader: ObjectReader, start: u64, len: u64) -> Body {
    use std::io::{Read, Seek, SeekFrom};
    let (tx, body) = channel(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = reader.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
            let mut buf = vec![0u8; want];
            match reader.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.blocking_send(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "object file shorter than its index entry",
                    )));
                    return;
                }
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return; // client went away
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    body
}

fn incomplete_body() -> S3Error {
    S3Error::new(
        "IncompleteBody",
        StatusCode::BAD_REQUEST,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    )
}

/// Reads the incoming body as verified payload bytes.
pub struct BodyReader {
    incoming: hyper::body::Incoming,
    decoder: Option<ChunkDecoder>,
    verifier: Option<PayloadVerifier>,
    checksums: Vec<ChecksumVerifier>,
    /// The client's checksum once verified (kind, canonical base64).
    verified: Option<(ChecksumKind, String)>,
    expected: Option<u64>,
    received: u64,
    done: bool,
    /// Shared count of payload bytes received, for the audit event.
    counter: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// The body-progress rule in force, with the current window.
    progress: Option<Window>,
}

impl BodyReader {
    /// Wraps `incoming`; `expected` is the payload length the client declared. `x-amz-checksum-*`
    /// headers are checked against the payload, the decoded payload of an aws-chunked body too
    /// (whose trailers the chunk decoder checks besides): an SDK that signs chunks may still send
    /// its checksum as a header, and S3 checks it (a conformance sweep found it ignored).
    pub fn new(
        incoming: hyper::body::Incoming,
        headers: &http::HeaderMap,
        verified: Option<&VerifiedRequest>,
        expected: Option<u64>,
    ) -> BodyReader {
        let decoder = verified.and_then(VerifiedRequest::chunk_decoder);
        let checksums = headers
            .iter()
            .filter_map(|(name, value)| {
                let kind = ChecksumKind::from_header_name(name.as_str())?;
                Some(ChecksumVerifier::new(kind, value.to_str().unwrap_or("")))
            })
            .collect();
        BodyReader {
            incoming,
            decoder,
            verifier: verified.and_then(VerifiedRequest::payload_verifier),
            checksums,
            verified: None,
            expected,
            received: 0,
            done: false,
            counter: None,
            progress: PROGRESS
                .try_with(BodyProgress::clone)
                .ok()
                .map(|rule| Window {
                    rule,
                    waited: std::time::Duration::ZERO,
                    bytes: 0,
                }),
        }
    }

    /// The next frame of the incoming body, under the body-progress rule: `RequestTimeout` when
    /// a window of waiting ends with fewer bytes than the rule asks for.
    async fn frame(&mut self) -> Result<Option<Result<Frame<Bytes>, hyper::Error>>, S3Error> {
        let Some(w) = &mut self.progress else {
            return Ok(self.incoming.frame().await);
        };
        let left = w.rule.window.saturating_sub(w.waited);
        let started = tokio::time::Instant::now();
        let frame = tokio::time::timeout(left, self.incoming.frame()).await;
        w.waited += started.elapsed();
        let Ok(frame) = frame else {
            // A whole window of waiting brought too little (the window is reset whenever it
            // reaches its minimum, so reaching here means it did not).
            w.rule
                .metrics
                .connections
                .body_timeouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(request_timeout());
        };
        if let Some(Ok(f)) = &frame {
            w.bytes += f.data_ref().map_or(0, |d| d.len() as u64);
        }
        if w.bytes >= w.rule.min_bytes.max(1) {
            w.waited = std::time::Duration::ZERO;
            w.bytes = 0;
        }
        Ok(frame)
    }

    /// Also adds every payload byte received to `counter`.
    #[must_use]
    pub fn counting(mut self, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) -> BodyReader {
        self.counter = Some(counter);
        self
    }

    /// The next piece of verified payload, or `None` at the (verified) end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, S3Error> {
        while !self.done {
            let Some(frame) = self.frame().await? else {
                self.done = true;
                if let Some(d) = self.decoder.take() {
                    self.verified = d.finish_checksum()?;
                }
                if let Some(v) = self.verifier.take() {
                    v.finish()?;
                }
                for c in std::mem::take(&mut self.checksums) {
                    let verified = c.finish_value()?;
                    self.verified.get_or_insert(verified);
                }
                if let Some(n) = self.expected {
                    if self.received != n {
                        return Err(incomplete_body());
                    }
                }
                return Ok(None);
            };
            let frame = frame.map_err(|_| incomplete_body())?;
            let Ok(data) = frame.into_data() else {
                continue; // HTTP trailers: aws-chunked trailers travel inside the body instead
            };
            if let Some(v) = &mut self.verifier {
                v.update(&data);
            }
            let out = match &mut self.decoder {
                Some(d) => d.feed(&data)?,
                None => data,
            };
            for c in &mut self.checksums {
                c.update(&out);
            }
            self.received += out.len() as u64;
            if let Some(c) = &self.counter {
                c.fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(n) = self.expected {
                if self.received > n {
                    return Err(incomplete_body());
                }
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
        Ok(None)
    }

    /// Reads the whole (small) body, refusing more than `limit` bytes.
    pub async fn read_limited(&mut self, limit: usize) -> Result<Vec<u8>, S3Error> {
        if self.expected.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let mut out = Vec::new();
        while let Some(chunk) = self.next().await? {
            if out.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

fn too_large(limit: usize) -> S3Error {
    S3Error::new(
        "MaxMessageLengthExceeded",
        StatusCode::BAD_REQUEST,
        format!("Your request was too big: this request accepts at most {limit} bytes."),
    )
}

/// A store writer that [`pump`] can feed.
pub trait Sink: Send + 'static {
    /// Appends bytes.
    fn write(&mut self, data: &[u8]) -> Result<(), StoreError>;
}

impl Sink for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        ObjectWriter::write(self, data)
    }
}

impl Sink for PartWriter {
    fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        PartWriter::write(self, data)
    }
}

impl crate::backend::Payload for BodyReader {
    fn next(&mut self) -> crate::backend::BoxFuture<'_, Result<Option<Bytes>, S3Error>> {
        Box::pin(BodyReader::next(self))
    }

    fn checksum_kind(&self) -> Option<ChecksumKind> {
        self.verified
            .as_ref()
            .map(|(kind, _)| *kind)
            .or_else(|| self.decoder.as_ref().and_then(ChunkDecoder::checksum_kind))
            .or_else(|| self.checksums.first().map(ChecksumVerifier::kind))
    }

    fn verified_checksum(&self) -> Option<(ChecksumKind, String)> {
        self.verified.clone()
    }
}

/// Streams the whole body into a writer made by `make` on a blocking thread, and returns the
/// writer once every byte is written and the body's verified end was reached. On any error the
/// writer is dropped, which discards what it wrote.
pub async fn pump<W: Sink>(
    body: &mut dyn crate::backend::Payload,
    make: impl FnOnce() -> Result<W, StoreError> + Send + 'static,
) -> Result<W, S3Error> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let task = tokio::task::spawn_blocking(move || -> Result<W, StoreError> {
        let mut w = make()?;
        while let Some(chunk) = rx.blocking_recv() {
            w.write(&chunk)?;
        }
        Ok(w)
    });
    let mut body_error = None;
    loop {
        match body.next().await {
            Ok(Some(chunk)) => {
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Ok(None) => break,
            Err(e) => {
                body_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = task.await.map_err(S3Error::internal)?;
    if let Some(e) = body_error {
        return Err(e); // `written` (if any) is dropped here, discarding the partial data
    }
    Ok(written?)
}

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, S3Error> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(S3Error::internal)??)
}
