//! The audit trail: one [`AuditEvent`] per request, appended to hash-chained JSON Lines files
//! under `<data-dir>/audit/`, group-committed with fsync, covered by Ed25519-signed digests,
//! verifiable with the operator's public key and queryable.
//!
//! - [`event`]: the record (CloudTrail field names where CloudTrail has one).
//! - [`chain`]: the line format and its SHA-256 chain.
//! - [`keys`]: the signing key and the public keys `verify` trusts.
//! - [`digest`]: the signed digests (CloudTrail's digest files, chained by signature).
//! - [`sink`]: the writer thread (batching, fsync, digests on a cadence, rotation).
//! - [`start`] (private): the start check against the last signed digest.
//! - [`retention`]: removal of old files, decided from signed event times.
//! - [`verify`], [`query`], [`export`]: the readers behind `keyhole audit verify|query|tail|
//!   export-digests`.
//!
//! # Security
//! - Events never hold secrets: no headers, query strings, signatures, session tokens or secret
//!   keys have a field to go into (tested by serializing events of hostile requests).
//! - A mutating request (PUT, POST, DELETE) that passed authorization first gets an `authorized`
//!   record, queued at once and durable *before* its handler changes anything ([`WriteAhead`]:
//!   uploads stream into a temporary file meanwhile and wait just before committing), and its
//!   `completed` record made durable before its response is sent: nothing is stored without an event, and nothing successful is
//!   acknowledged before its event is on disk. When the sink cannot write, such requests fail
//!   with 503 (unless `audit_fail_open`).
//! - The chain makes edits, deletions, insertions and reordering detectable; the digests, signed
//!   with a private key the operator may keep outside the data directory and checked with a
//!   public key (or fingerprint) the operator gives, make a cut, rolled-back, rewritten, emptied
//!   or swapped trail detectable, at start and by `verify`. docs/AUDIT.md states the threat
//!   model.

pub mod chain;
pub mod digest;
mod err;
pub mod event;
pub mod explain;
pub mod export;
mod files;
pub mod keys;
pub mod query;
pub mod retention;
pub mod sink;
mod start;
#[cfg(test)]
mod tests;
pub mod verify;

use std::sync::Mutex;

pub use err::AuditError;
pub use event::{AuditEvent, Check, Decision};
pub use sink::AuditSink;

/// Directory of the trail under the data directory.
pub const AUDIT_DIR: &str = "audit";

/// The authorization checks made while handling one request, filled by the pipeline and by
/// handlers that check per key (DeleteObjects), with the stored facts a decision rested on
/// (an object's tags and the version they were read from), which the handler holds its read to.
#[derive(Debug, Default)]
pub struct Checks(
    Mutex<Vec<Check>>,
    Mutex<Vec<(String, String, ObjectFacts)>>,
    /// A denial was made beyond [`MAX_CHECKS_PER_EVENT`] (not kept, but it decides the event).
    std::sync::atomic::AtomicBool,
);

/// What a decision on `s3:ExistingObjectTag/*` rested on: the object's ETag while its tags were
/// read (`None`: there was no such object) and those tags. The handler serves only that version
/// (review 8, F2: an overwrite between the tag read and the object read served a body its own
/// tags denied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    /// The version: its ETag (unquoted) and last-modified time (whole seconds), or `None` for
    /// an object that did not exist. An ETag alone names the bytes, not the write: the same
    /// bytes written again with other tags keep it (review 9, N1).
    pub etag: Option<(String, i64)>,
    /// The tags.
    pub tags: Vec<(String, String)>,
}

/// At most this many checks are kept per event: DeleteObjects names up to 1000 keys, each
/// decided by up to three checks (`s3:DeleteObject` or `s3:DeleteObjectVersion`, `s3:GetObject`
/// for a key with an `ETag`, `s3:BypassGovernanceRetention`), besides the request's own. A denial
/// past the cap is not kept but still makes the event's decision Deny (review 20, M1: 500
/// allowed conditional keys pushed 500 denied ones out of the record, which then said Allow).
pub const MAX_CHECKS_PER_EVENT: usize = 3100;

impl Checks {
    /// Records one check. A denial's evaluation equal to the last one recorded (the keys of
    /// one DeleteObjects, decided in one context) is recorded as a reference to it, so that an
    /// event of many refused keys does not repeat the request's context for each.
    pub fn push(&self, mut check: Check) {
        if let Ok(mut v) = self.0.lock() {
            if v.len() < MAX_CHECKS_PER_EVENT {
                if let Some(e) = &check.evaluation {
                    let last = v
                        .iter()
                        .enumerate()
                        .rev()
                        .find(|(_, c)| c.evaluation.is_some());
                    if let Some((i, _)) = last.filter(|(_, c)| c.evaluation.as_ref() == Some(e)) {
                        check.evaluation = None;
                        check.same_evaluation_as = u32::try_from(i).ok();
                    }
                }
                v.push(check);
            } else if check.decision == Decision::Deny {
                self.2.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Records the facts a decision on `bucket`/`key` rested on.
    pub fn record_facts(&self, bucket: &str, key: &str, facts: ObjectFacts) {
        if let Ok(mut v) = self.1.lock() {
            v.retain(|(b, k, _)| !(b == bucket && k == key));
            v.push((bucket.to_owned(), key.to_owned(), facts));
        }
    }

    /// The facts a decision on `bucket`/`key` rested on, if it read any.
    pub fn facts(&self, bucket: &str, key: &str) -> Option<ObjectFacts> {
        let v = self.1.lock().ok()?;
        v.iter()
            .find(|(b, k, _)| b == bucket && k == key)
            .map(|(_, _, f)| f.clone())
    }

    /// The checks recorded so far.
    pub fn snapshot(&self) -> Vec<Check> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// `Deny` if any check denied, `Allow` if all allowed, `None` if nothing was checked.
    pub fn decision(&self) -> Option<Decision> {
        let v = self.0.lock().ok()?;
        if v.is_empty() {
            None
        } else if self.2.load(std::sync::atomic::Ordering::Relaxed)
            || v.iter().any(|c| c.decision == Decision::Deny)
        {
            Some(Decision::Deny)
        } else {
            Some(Decision::Allow)
        }
    }
}

/// A mutating request's write-ahead `authorized` record, being made durable while the request
/// goes on (e.g. while an upload streams into a temporary file). Every handler waits for it
/// before it changes anything visible: [`crate::s3::dispatch`] waits before any handler but
/// PutObject and UploadPart, which wait just before committing their upload.
#[derive(Debug)]
pub struct WriteAhead {
    pending: tokio::sync::Mutex<WriteAheadState>,
}

#[derive(Debug)]
enum WriteAheadState {
    /// Not queued yet: the handler adds what it reads from the body first (DeleteObjects' keys).
    Deferred(Box<(AuditSink, AuditEvent)>),
    Queued(sink::Durable),
    Done(bool),
}

fn take_deferred(state: &mut WriteAheadState) -> Option<(AuditSink, AuditEvent)> {
    match std::mem::replace(state, WriteAheadState::Done(false)) {
        WriteAheadState::Deferred(d) => Some(*d),
        other => {
            *state = other;
            None
        }
    }
}

async fn enqueue(sink: &AuditSink, event: AuditEvent) -> WriteAheadState {
    match sink.enqueue_durable(event).await {
        Ok(d) => WriteAheadState::Queued(d),
        Err(e) => {
            tracing::error!(error = %e, "the write-ahead audit record could not be queued");
            WriteAheadState::Done(false)
        }
    }
}

impl WriteAhead {
    /// Nothing to wait for (reads).
    pub fn none() -> WriteAhead {
        WriteAhead {
            pending: tokio::sync::Mutex::new(WriteAheadState::Done(true)),
        }
    }

    /// Queues `event` (so it precedes the request's completion record in the trail) and lets it
    /// become durable while the request goes on.
    pub async fn start(sink: &AuditSink, event: AuditEvent) -> WriteAhead {
        WriteAhead {
            pending: tokio::sync::Mutex::new(enqueue(sink, event).await),
        }
    }

    /// A record the handler completes from the request body (see [`WriteAhead::amend`]) before
    /// it is queued; [`WriteAhead::wait`] queues it as it is if the handler did not.
    pub fn deferred(sink: &AuditSink, event: AuditEvent) -> WriteAhead {
        WriteAhead {
            pending: tokio::sync::Mutex::new(WriteAheadState::Deferred(Box::new((
                sink.clone(),
                event,
            )))),
        }
    }

    /// Adds to a deferred record what the handler read from the body, and queues it. Does
    /// nothing to a record already queued.
    pub async fn amend(&self, f: impl FnOnce(&mut AuditEvent)) {
        let mut state = self.pending.lock().await;
        if let Some((sink, mut event)) = take_deferred(&mut state) {
            f(&mut event);
            *state = enqueue(&sink, event).await;
        }
    }

    /// Waits until the record is durable; `false` if it could not be written. A record still
    /// deferred (its handler did not queue it) gets `complete` first, then is queued.
    pub async fn wait(&self, complete: impl FnOnce(&mut AuditEvent)) -> bool {
        let mut state = self.pending.lock().await;
        if let Some((sink, mut event)) = take_deferred(&mut state) {
            complete(&mut event);
            // Boxed: this rare path's future (about 4 KiB) would otherwise be part of every
            // handler's, copied whole with it (issue 16).
            *state = Box::pin(enqueue(&sink, event)).await;
        }
        let ok = match std::mem::replace(&mut *state, WriteAheadState::Done(false)) {
            WriteAheadState::Queued(d) => match d.wait().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "the write-ahead audit record could not be written");
                    false
                }
            },
            WriteAheadState::Done(ok) => ok,
            // Queued just above; never durable as it stands.
            WriteAheadState::Deferred(_) => false,
        };
        *state = WriteAheadState::Done(ok);
        ok
    }
}

/// File of the default signing key under the data directory (used when `audit_signing_key` is
/// not set; created at first start).
pub const DEFAULT_SIGNING_KEY_FILE: &str = "audit-signing.key";

/// Reads the signing key at `path`, or, when it is the default location and absent, creates it.
/// Returns the key and whether it was created now.
pub fn load_or_create_signing_key(
    path: &std::path::Path,
    default_location: bool,
) -> Result<(keys::Signer, bool), AuditError> {
    if default_location && !path.exists() {
        let signer = keys::Signer::generate();
        signer.write_new(path)?;
        tracing::warn!(
            path = %path.display(),
            fingerprint = signer.public().fingerprint(),
            "created the audit signing key inside the data directory; whoever can read it can forge digests: keep it elsewhere with --audit-signing-key (docs/AUDIT.md)"
        );
        return Ok((signer, true));
    }
    Ok((keys::Signer::read(path)?, false))
}
