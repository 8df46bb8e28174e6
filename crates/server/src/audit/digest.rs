//! Signed digests: the writer's signed statements of what the trail holds, modelled on
//! CloudTrail's log file integrity validation
//! (<https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-validation-digest-file-structure.html>):
//! each digest names the events written since the previous one (file, byte range, sequence
//! range, SHA-256 of the bytes, oldest and newest event time) and carries the previous digest's
//! signature, so the digests form a chain of their own that a missing, replayed or rolled-back
//! digest breaks.
//!
//! Digests of trail file `audit-S.jsonl` go to `digest-S.jsonl` beside it, one JSON object per
//! line: the digest's fields, then `"signature"` (hex Ed25519 over [`SIGNATURE_LABEL`] followed by
//! the line's bytes up to that field), last. Like the trail, they are checked on the bytes as
//! written, never re-serialized.
//!
//! Kinds: `genesis` (written at account creation, before any event: an existing account always
//! has at least this one), `start` (every gateway start; it signs what a crash left unsigned),
//! `periodic` (every `audit_digest_seconds`, even when idle, or once
//! [`super::sink::MAX_UNSIGNED_EVENTS`] events wait), `rotate` (closes a file), `stop` (clean
//! shutdown), `retention` (names what retention removed) and `discontinuity` (what an operator
//! accepted as lost with `--audit-accept-discontinuity`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::keys::{Signer, TrustedKeys, SIGNATURE_ALGORITHM};

/// `digestVersion` written by this release.
pub const DIGEST_VERSION: u32 = 1;
/// Domain separation: what a digest signature signs starts with this.
pub const SIGNATURE_LABEL: &[u8] = b"keyhole audit digest v1\n";
/// Bytes of `,"signature":"` + 128 hex digits + `"}`.
const SIGNATURE_SUFFIX_LEN: usize = 14 + 128 + 2;

/// Why a digest was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The first digest of an account, before any event.
    Genesis,
    /// A gateway start.
    Start,
    /// On the cadence, or when enough events wait.
    Periodic,
    /// The trail file is full or old: it is closed, the next one starts.
    Rotate,
    /// A clean shutdown.
    Stop,
    /// Retention removed old files.
    Retention,
    /// An operator accepted, at start, that the trail does not match its digests.
    Discontinuity,
}

impl Kind {
    /// The kind as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Genesis => "genesis",
            Kind::Start => "start",
            Kind::Periodic => "periodic",
            Kind::Rotate => "rotate",
            Kind::Stop => "stop",
            Kind::Retention => "retention",
            Kind::Discontinuity => "discontinuity",
        }
    }
}

/// The events a digest covers, all in its `file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// Byte offset of the first covered event in the file.
    pub from_offset: u64,
    /// Byte offset just after the last covered event.
    pub to_offset: u64,
    /// Sequence number of the first covered event.
    pub first_seq: u64,
    /// Sequence number of the last covered event.
    pub last_seq: u64,
    /// Hex SHA-256 of the file's bytes `fromOffset..toOffset`.
    pub sha256: String,
    /// The first 8 hex digits of each covered event's `hash`, concatenated: lets `verify` name
    /// the edited event even when the chain was recomputed after it.
    pub event_hashes: String,
    /// The earliest `eventTime` among the covered events.
    pub oldest_event_time: String,
    /// The latest `eventTime` among the covered events.
    pub newest_event_time: String,
}

/// The end of the signed trail after a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// The last signed event's sequence number (0 before the first event).
    pub seq: u64,
    /// Its hash (the genesis hash before the first event).
    pub hash: String,
    /// Bytes of `file` covered so far.
    pub offset: u64,
}

/// A closed file: no event will be added to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Closed {
    /// The file's final length.
    pub length: u64,
    /// Its first event.
    pub first_seq: u64,
    /// Its last event.
    pub last_seq: u64,
    /// The earliest `eventTime` in the file (retention uses the newest one).
    pub oldest_event_time: String,
    /// The latest `eventTime` in the file.
    pub newest_event_time: String,
}

/// What a `start` digest says about the previous run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartInfo {
    /// The previous digest was a clean `stop` (or the `genesis`).
    pub previous_clean: bool,
    /// Events written after the previous digest and signed only now (after a crash).
    pub adopted_events: u64,
}

/// A file retention removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedFile {
    /// Its name.
    pub file: String,
    /// Its first event.
    pub first_seq: u64,
    /// Its last event.
    pub last_seq: u64,
    /// The latest `eventTime` in it, from its signed closing digest.
    pub newest_event_time: String,
}

/// What a `retention` digest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionInfo {
    /// Events older than this were removed (the cutoff, RFC 3339).
    pub cutoff: String,
    /// The files removed now.
    pub removed: Vec<RemovedFile>,
    /// The first kept trail file's first sequence number: the trail now starts there.
    pub first_kept_seq: u64,
    /// The hash the first kept event continues from.
    pub first_kept_prev_hash: String,
    /// The first digest kept (the first of `digest-<firstKeptSeq>.jsonl`).
    pub first_kept_digest_seq: u64,
    /// The signature that digest continues from.
    pub first_kept_digest_previous_signature: String,
}

/// What a `discontinuity` digest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscontinuityInfo {
    /// The first event that could not be trusted.
    pub lost_first_seq: u64,
    /// The last event given up (the trail resumes after it).
    pub lost_last_seq: u64,
    /// The last digest that still checked out (0: none).
    pub after_digest_seq: u64,
    /// What was found.
    pub reason: String,
}

impl DiscontinuityInfo {
    /// The events given up, for people: `events #4..#7`, `event #4`, or, when the damage was
    /// only bytes past the last signed event (`lost_last_seq` is then `lost_first_seq - 1`),
    /// `no events (only bytes after event #3)`.
    pub fn lost(&self) -> String {
        match self.lost_last_seq.checked_sub(self.lost_first_seq) {
            Some(0) => format!("event #{}", self.lost_first_seq),
            Some(_) => format!("events #{}..#{}", self.lost_first_seq, self.lost_last_seq),
            None => format!("no events (only bytes after event #{})", self.lost_last_seq),
        }
    }
}

/// One digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Digest {
    /// Format version.
    pub digest_version: u32,
    /// Position in the digest chain, from 1 (the genesis), without gaps.
    pub digest_seq: u64,
    /// Why it was written.
    pub kind: Kind,
    /// The account.
    pub account_id: String,
    /// The node whose trail this is ([`crate::node`]); absent in digests written before nodes
    /// had ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The previous digest's `digestEndTime` (its own for the first digest).
    pub digest_start_time: String,
    /// When it was signed (RFC 3339, UTC, milliseconds).
    pub digest_end_time: String,
    /// The cadence the writer was configured with, in seconds.
    pub cadence_seconds: u64,
    /// The trail file this digest speaks of (`audit-S.jsonl`; the digest is in `digest-S.jsonl`).
    pub file: String,
    /// The events covered, when any were written since the previous digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// The end of the signed trail.
    pub head: Head,
    /// Set when this digest closes `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Closed>,
    /// For `start` and `discontinuity` digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartInfo>,
    /// For `retention` digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionInfo>,
    /// For `discontinuity` digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discontinuity: Option<DiscontinuityInfo>,
    /// Set on the last digest of a writer that found its trail file or digest log swapped, cut
    /// or extended (what it found): it signs what the writer wrote, then the writer stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tampered: Option<String>,
    /// The previous digest's signature (hex; empty for the first digest of a chain).
    pub previous_digest_signature: String,
    /// `Ed25519`.
    pub signature_algorithm: String,
    /// The signer's public key (base64 of its 32 bytes). Never trusted by itself: `verify`
    /// accepts it only when its fingerprint is the operator's.
    pub public_key: String,
    /// Lowercase hex SHA-256 of the signer's SPKI DER public key.
    pub public_key_fingerprint: String,
}

/// A digest whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The digest.
    pub digest: Digest,
    /// Its signature (hex).
    pub signature: String,
}

/// Why a digest line does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not a digest.
    #[error("not a digest record: {0}")]
    Malformed(String),
    /// Signed by a key the operator does not trust.
    #[error("signed by key {0}, which is not the operator's (an attacker's key, or a public key or fingerprint is missing from the command)")]
    UntrustedKey(String),
    /// The signature does not match the content.
    #[error("its signature does not match its content (the digest was edited or forged)")]
    BadSignature,
}

/// The name of the digest log of the trail file whose first event is `seq`.
pub fn log_name(seq: u64) -> String {
    format!("digest-{seq:020}.jsonl")
}

/// The digest logs under `dir`, oldest first: (first sequence number of their trail file, path).
pub fn digest_logs(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    super::files::numbered_files(dir, "digest-")
}

/// Serializes and signs `digest` as one line (with its newline); returns it with the signature.
pub fn encode(digest: &Digest, signer: &Signer) -> Result<(Vec<u8>, String), serde_json::Error> {
    let mut line = serde_json::to_vec(digest)?;
    // INVARIANT: serde_json writes an object, so the last byte is `}`.
    line.pop();
    let mut message = SIGNATURE_LABEL.to_vec();
    message.extend_from_slice(&line);
    let signature = hex::encode(signer.sign(&message));
    line.extend_from_slice(b",\"signature\":\"");
    line.extend_from_slice(signature.as_bytes());
    line.extend_from_slice(b"\"}\n");
    Ok((line, signature))
}

#[derive(Deserialize)]
struct WithSignature {
    #[serde(flatten)]
    digest: Digest,
    signature: String,
}

/// Parses a digest line (without its newline) and checks its signature with a trusted key.
pub fn check(line: &[u8], keys: &TrustedKeys) -> Result<Signed, DigestError> {
    let w: WithSignature =
        serde_json::from_slice(line).map_err(|e| DigestError::Malformed(e.to_string()))?;
    let cut = line
        .len()
        .checked_sub(SIGNATURE_SUFFIX_LEN)
        .ok_or_else(|| DigestError::Malformed("line too short".into()))?;
    let (content, suffix) = line.split_at(cut);
    if suffix != format!(",\"signature\":\"{}\"}}", w.signature).as_bytes() {
        return Err(DigestError::Malformed(
            "`signature` is not the last field, or not 128 hex digits".into(),
        ));
    }
    if w.digest.signature_algorithm != SIGNATURE_ALGORITHM {
        return Err(DigestError::Malformed(format!(
            "unknown signatureAlgorithm `{}`",
            w.digest.signature_algorithm
        )));
    }
    let key = keys
        .resolve(&w.digest.public_key_fingerprint, &w.digest.public_key)
        .ok_or_else(|| DigestError::UntrustedKey(w.digest.public_key_fingerprint.clone()))?;
    let sig = hex::decode(&w.signature).map_err(|_| DigestError::BadSignature)?;
    let mut message = SIGNATURE_LABEL.to_vec();
    message.extend_from_slice(content);
    if !key.verifies(&message, &sig) {
        return Err(DigestError::BadSignature);
    }
    Ok(Signed {
        digest: w.digest,
        signature: w.signature,
    })
}

/// The lines of a digest log: its complete lines (without newlines), and the length of an
/// incomplete final line (a write cut by a crash), if any.
#[derive(Debug, Default)]
pub struct LogLines {
    /// Complete lines.
    pub lines: Vec<Vec<u8>>,
    /// Bytes after the last newline.
    pub incomplete: usize,
}

/// Reads a digest log whole (they are small: one line per digest of one trail file).
pub fn read_log(path: &Path) -> std::io::Result<LogLines> {
    let bytes = std::fs::read(path)?;
    let mut out = LogLines::default();
    let mut rest = bytes.as_slice();
    while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
        let (line, tail) = rest.split_at(pos);
        out.lines.push(line.to_vec());
        rest = tail.get(1..).unwrap_or_default();
    }
    out.incomplete = rest.len();
    Ok(out)
}

/// Events of one file accumulated for the next digest (by the writer) or read back (by
/// `verify`): offsets, sequence range, SHA-256 of the bytes, short event hashes and times.
#[derive(Debug, Clone, Default)]
pub struct Span {
    /// Offset of the first event.
    pub from_offset: u64,
    /// Offset after the last event.
    pub to_offset: u64,
    /// First event (0: none yet).
    pub first_seq: u64,
    /// Last event.
    pub last_seq: u64,
    /// Events in the span.
    pub count: u64,
    hasher: sha2::Sha256,
    event_hashes: String,
    oldest: String,
    newest: String,
}

impl Span {
    /// An empty span starting at `offset`.
    pub fn at(offset: u64) -> Span {
        Span {
            from_offset: offset,
            to_offset: offset,
            ..Span::default()
        }
    }

    /// Adds one event: its line as written (with the newline), sequence number, hash and time.
    pub fn push(&mut self, line: &[u8], seq: u64, hash: &str, event_time: &str) {
        use sha2::Digest as _;
        self.hasher.update(line);
        self.to_offset += line.len() as u64;
        if self.count == 0 {
            self.first_seq = seq;
        }
        self.last_seq = seq;
        self.count += 1;
        self.event_hashes
            .push_str(hash.get(..SHORT_HASH_LEN).unwrap_or(hash));
        if self.oldest.is_empty() || event_time < self.oldest.as_str() {
            self.oldest = event_time.to_owned();
        }
        if event_time > self.newest.as_str() {
            self.newest = event_time.to_owned();
        }
    }

    /// The latest event time in the span (empty when none).
    pub fn newest(&self) -> &str {
        &self.newest
    }

    /// The segment to sign; `None` when no event was added.
    pub fn segment(&self) -> Option<Segment> {
        use sha2::Digest as _;
        (self.count > 0).then(|| Segment {
            from_offset: self.from_offset,
            to_offset: self.to_offset,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            sha256: hex::encode(self.hasher.clone().finalize()),
            event_hashes: self.event_hashes.clone(),
            oldest_event_time: self.oldest.clone(),
            newest_event_time: self.newest.clone(),
        })
    }
}

/// A whole file's events, for its closing digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// First event (0: none).
    pub first_seq: u64,
    /// Last event.
    pub last_seq: u64,
    /// Earliest event time.
    pub oldest: String,
    /// Latest event time.
    pub newest: String,
}

impl FileSummary {
    /// Adds what a segment covered.
    pub fn add(&mut self, s: &Segment) {
        if self.first_seq == 0 {
            self.first_seq = s.first_seq;
        }
        self.last_seq = s.last_seq;
        if self.oldest.is_empty() || s.oldest_event_time < self.oldest {
            self.oldest.clone_from(&s.oldest_event_time);
        }
        if s.newest_event_time > self.newest {
            self.newest.clone_from(&s.newest_event_time);
        }
    }

    /// Whether the file holds events.
    pub fn has_events(&self) -> bool {
        self.first_seq != 0
    }

    /// The `closed` record for a file of `length` bytes; `None` for a file without events
    /// (an empty file is never closed: the next start reuses it).
    pub fn closed(&self, length: u64) -> Option<Closed> {
        self.has_events().then(|| Closed {
            length,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            oldest_event_time: self.oldest.clone(),
            newest_event_time: self.newest.clone(),
        })
    }
}

/// Whether a digest line is a genesis digest (unchecked: for recognizing leftovers).
pub(crate) fn contains_genesis(line: &[u8]) -> bool {
    line.windows(18).any(|w| w == b"\"kind\":\"genesis\"")
}

/// Hex digits of each event's hash kept in a segment's `eventHashes`.
pub const SHORT_HASH_LEN: usize = 8;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(seq: u64) -> Digest {
        let signer = Signer::generate();
        Digest {
            digest_version: DIGEST_VERSION,
            digest_seq: seq,
            kind: Kind::Periodic,
            account_id: "123456789012".into(),
            node_id: Some("node-test".into()),
            digest_start_time: "2026-11-22T08:00:00.000Z".into(),
            digest_end_time: "2026-11-22T08:01:00.000Z".into(),
            cadence_seconds: 60,
            file: "audit-00000000000000000001.jsonl".into(),
            segment: None,
            head: Head {
                seq: 0,
                hash: super::super::chain::GENESIS_HASH.into(),
                offset: 0,
            },
            closed: None,
            start: None,
            retention: None,
            discontinuity: None,
            tampered: None,
            previous_digest_signature: String::new(),
            signature_algorithm: SIGNATURE_ALGORITHM.into(),
            public_key: signer.public().embedded(),
            public_key_fingerprint: signer.public().fingerprint().into(),
        }
    }

    #[test]
    fn signed_lines_check_out_and_edits_or_other_keys_do_not() {
        let signer = Signer::generate();
        let mut d = sample(1);
        d.public_key = signer.public().embedded();
        d.public_key_fingerprint = signer.public().fingerprint().into();
        let (line, sig) = encode(&d, &signer).unwrap();
        let body = line.strip_suffix(b"\n").unwrap();
        let keys = TrustedKeys::new(vec![signer.public().clone()], vec![]);
        let s = check(body, &keys).unwrap();
        assert_eq!((s.digest, s.signature), (d.clone(), sig));
        let text = String::from_utf8(body.to_vec()).unwrap();
        let edited = text.replace("\"digestSeq\":1", "\"digestSeq\":2");
        assert_eq!(
            check(edited.as_bytes(), &keys),
            Err(DigestError::BadSignature)
        );
        let other = Signer::generate();
        let stranger = TrustedKeys::new(vec![other.public().clone()], vec![]);
        assert!(matches!(
            check(body, &stranger),
            Err(DigestError::UntrustedKey(_))
        ));
        // A forger re-signing with its own key and naming it: still not trusted.
        let mut forged = d.clone();
        forged.public_key = other.public().embedded();
        forged.public_key_fingerprint = other.public().fingerprint().into();
        let (fline, _) = encode(&forged, &other).unwrap();
        assert!(matches!(
            check(fline.strip_suffix(b"\n").unwrap(), &keys),
            Err(DigestError::UntrustedKey(_))
        ));
    }
}
