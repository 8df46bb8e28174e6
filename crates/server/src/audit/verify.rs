//! `keyhole audit verify` and the gateway's start check: walk the digest chain and the trail
//! together, once, streaming, and name the first position where they stop checking out.
//!
//! For every digest (in `digest-S.jsonl`, checked with a key the operator trusts): its number
//! follows the previous one and it carries the previous digest's signature (a removed, inserted,
//! replayed or rolled-back digest breaks this); the events it covers are read from `audit-S.jsonl`
//! at the byte range it names: each event's own hash, its `seq` and `prevHash` (edits, deletions,
//! insertions, reordering), its hash against the digest's short hash of it (an edit with the
//! chain recomputed after it is named at the edited event), the SHA-256 of the range, and the
//! chain head the digest signs. A closed file must end where its closing digest says (nothing
//! appended). Events after the last digest are the unsigned window: checked by chain alone and
//! counted. Signed `retention` digests say where the kept trail starts; signed `discontinuity`
//! digests say which events an operator gave up, and the walk resumes after them.
//!
//! CloudTrail's validation works the same way on its digest chain
//! (<https://docs.aws.amazon.com/cli/latest/reference/cloudtrail/validate-logs.html>).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::chain::{self, GENESIS_HASH};
use super::digest::{self, FileSummary, Kind, Signed, Span, SHORT_HASH_LEN};
use super::err::{io, AuditError};
use super::event::Stage;
use super::keys::TrustedKeys;
use super::sink::MAX_UNSIGNED_EVENTS;
use super::sink::{file_name, trail_files};

/// Where to start walking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The whole trail (`keyhole audit verify`).
    Beginning,
    /// The newest digest log with a digest, anchored on the previous log's last digest (the
    /// gateway's start check: bounded by one trail file).
    Newest,
}

/// What to check.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Directory of the trail files.
    pub audit_dir: &'a Path,
    /// A copy of the digests kept elsewhere (`keyhole audit export-digests`): every digest log
    /// in the audit directory must extend its copy there, and the copy stands in for logs missing
    /// here.
    pub witness: Option<&'a Path>,
    /// The keys digests may be signed with.
    pub keys: &'a TrustedKeys,
    /// Where to start.
    pub from: Walk,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `file:line` (line from 1), or a file alone.
    pub position: String,
    /// What is wrong.
    pub reason: String,
    /// The first event that cannot be trusted because of it.
    pub seq: u64,
}

/// A mutating request's `authorized` record without a `completed` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// `file:line`.
    pub position: String,
    /// The request id.
    pub request_id: String,
    /// The operation.
    pub event_name: String,
    /// When it arrived.
    pub event_time: String,
}

/// Where the trail ends: what the writer continues from after the start check.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    /// The last trail file read (its first sequence number), if any.
    pub file_seq: Option<u64>,
    /// Whether a digest closed it.
    pub closed: bool,
    /// Its length up to the last complete event.
    pub length: u64,
    /// Its events so far.
    pub summary: FileSummary,
    /// Events after the last digest, all in that file.
    pub unsigned: Span,
    /// The next event's sequence number.
    pub next_seq: u64,
    /// The last event's hash.
    pub prev_hash: String,
}

/// What the walk found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Events that checked out (signed and unsigned).
    pub events: u64,
    /// Trail files read.
    pub files: usize,
    /// Digests that checked out.
    pub digests: u64,
    /// The first digest checked.
    pub first: Option<Signed>,
    /// The last digest that checked out.
    pub last: Option<Signed>,
    /// Events after the last digest (checked by chain alone).
    pub unsigned: u64,
    /// The first problem; `None` means intact (apart from `discontinuities`).
    pub problem: Option<Problem>,
    /// Signed discontinuities met, described.
    pub discontinuities: Vec<String>,
    /// Remarks that do not make the trail invalid.
    pub notes: Vec<String>,
    /// Restarts after an unclean stop: a crash, or digests removed after the last one kept
    /// (only an exported copy of the digests tells which).
    pub gaps: Vec<String>,
    /// `authorized` records without a `completed` one, written before the gateway that wrote
    /// them stopped (a later `start` or `stop` digest): cut short, outcome unknown (the first
    /// 1000).
    pub orphans: Vec<Orphan>,
    /// How many orphans in all.
    pub orphan_count: u64,
    /// `authorized` records without a `completed` one *yet*, written since the last `start`
    /// digest of a trail not closed by a `stop` one: requests still running if that gateway is
    /// up (their `completed` records follow, possibly in a file written after the walk listed
    /// the directory), cut short if it died (the first 1000).
    pub open: Vec<Orphan>,
    /// How many open records in all.
    pub open_count: u64,
    /// The highest event sequence number seen on disk.
    pub max_seq: u64,
    /// The highest digest number seen (checked or not).
    pub max_digest_seq: u64,
    /// Where the trail ends.
    pub tail: Tail,
}

/// Orphans listed at most.
pub const MAX_ORPHANS_LISTED: usize = 1000;

enum Halt {
    Problem(Problem),
    Io(AuditError),
}

impl From<AuditError> for Halt {
    fn from(e: AuditError) -> Halt {
        Halt::Io(e)
    }
}

type Step<T = ()> = Result<T, Halt>;

struct Reader {
    seq: u64,
    name: String,
    path: PathBuf,
    reader: Option<BufReader<File>>,
    offset: u64,
    line_no: u64,
    closed: bool,
    summary: FileSummary,
}

#[derive(serde::Deserialize)]
struct Meta<'a> {
    #[serde(rename = "eventTime", borrow)]
    event_time: std::borrow::Cow<'a, str>,
    stage: Stage,
    #[serde(rename = "requestID", borrow)]
    request_id: std::borrow::Cow<'a, str>,
    #[serde(rename = "eventName", borrow)]
    event_name: std::borrow::Cow<'a, str>,
}

struct Expect<'a> {
    digest_seq: u64,
    hashes: &'a str,
    index: usize,
}

struct Walker<'a> {
    opts: Options<'a>,
    report: Report,
    next_seq: u64,
    prev_hash: String,
    /// The next digest must have this number and this previous signature (`None`: any; the
    /// first digest of a walk anchored nowhere).
    expected: Option<(u64, String)>,
    /// The first digest must be the genesis.
    want_genesis: bool,
    last_end: Option<String>,
    discontinuities: Vec<Signed>,
    /// Skipping the events a discontinuity gave up, until its digest.
    skipping: Option<Signed>,
    /// `authorized` records waiting for their `completed` one, and whether the gateway that
    /// wrote them has stopped since (a `start` or `stop` digest followed them).
    orphans: HashMap<String, (Orphan, bool)>,
    file: Option<Reader>,
    /// The newest digest log holding a digest.
    last_log: u64,
}

fn problem(position: impl Into<String>, reason: impl Into<String>, seq: u64) -> Halt {
    Halt::Problem(Problem {
        position: position.into(),
        reason: reason.into(),
        seq,
    })
}

/// Walks the trail and its digests.
pub fn verify(opts: Options<'_>) -> Result<Report, AuditError> {
    let trail: std::collections::BTreeMap<u64, PathBuf> = trail_files(opts.audit_dir)
        .map_err(io("list", opts.audit_dir))?
        .into_iter()
        .collect();
    let logs = Logs {
        local: digest::digest_logs(opts.audit_dir)
            .map_err(io("list", opts.audit_dir))?
            .into_iter()
            .collect(),
        witness: match opts.witness {
            Some(w) => digest::digest_logs(w)
                .map_err(io("list", w))?
                .into_iter()
                .collect(),
            None => std::collections::BTreeMap::new(),
        },
    };
    let mut non_empty = Vec::new();
    for s in logs.seqs() {
        let len = |m: &std::collections::BTreeMap<u64, PathBuf>| -> Result<u64, AuditError> {
            match m.get(&s) {
                Some(p) => Ok(std::fs::metadata(p).map_err(io("stat", p))?.len()),
                None => Ok(0),
            }
        };
        if len(&logs.local)? > 0 || len(&logs.witness)? > 0 {
            non_empty.push(s);
        }
    }
    let mut w = Walker {
        opts,
        report: Report::default(),
        next_seq: 1,
        prev_hash: GENESIS_HASH.to_owned(),
        expected: Some((1, String::new())),
        want_genesis: true,
        last_end: None,
        discontinuities: Vec::new(),
        skipping: None,
        orphans: HashMap::new(),
        file: None,
        last_log: non_empty.last().copied().unwrap_or(0),
    };
    let mut start = 0u64;
    // The start check walks from the newest digest log that covers events (so the newest trail
    // file holding events is checked whole), anchored on the log before it.
    let mut newest_with_events = None;
    if opts.from == Walk::Newest {
        for (i, s) in non_empty.iter().enumerate().rev() {
            let path = logs.local.get(s).cloned().unwrap_or_default();
            let bytes = std::fs::read(&path).map_err(io("read", &path))?;
            if contains(&bytes, b"\"segment\":{") {
                newest_with_events = Some((i, *s));
                break;
            }
        }
    }
    let anchor = newest_with_events.and_then(|(i, s)| {
        let prev = non_empty.get(i.checked_sub(1)?).copied()?;
        Some((prev, s))
    });
    if let Some((prev, newest)) = anchor {
        // The start check: the previous log's last digest anchors the walk of the newest one.
        let path = logs.local.get(&prev).cloned().unwrap_or_default();
        let lines = digest::read_log(&path).map_err(io("read", &path))?;
        let Some(line) = lines.lines.last() else {
            return Ok(w.report);
        };
        match digest::check(line, opts.keys) {
            Ok(a) => {
                w.next_seq = a.digest.head.seq + 1;
                w.prev_hash.clone_from(&a.digest.head.hash);
                w.expected = Some((a.digest.digest_seq + 1, a.signature.clone()));
                w.want_genesis = false;
                w.last_end = Some(a.digest.digest_end_time.clone());
                w.report.max_digest_seq = a.digest.digest_seq;
            }
            Err(e) => {
                w.report.problem = Some(Problem {
                    position: format!("{}:{}", digest::log_name(prev), lines.lines.len()),
                    reason: e.to_string(),
                    seq: 0,
                });
                return Ok(w.report);
            }
        }
        start = newest;
    } else {
        if let Err(Halt::Io(e)) = w.prescan(&logs) {
            return Err(e);
        }
        if let Some(ret) = w.retention(&logs)? {
            start = ret;
        }
    }
    let mut seqs: Vec<u64> = trail.keys().copied().chain(logs.seqs()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    for s in seqs.into_iter().filter(|s| *s >= start) {
        match w.pair(s, trail.get(&s), &logs) {
            Ok(()) => {}
            Err(Halt::Io(e)) => return Err(e),
            Err(Halt::Problem(p)) => {
                if !w.explained(&p) {
                    w.report.problem = Some(p);
                    break;
                }
            }
        }
    }
    w.finish()
}

impl Walker<'_> {
    /// Collects the signed `retention` and `discontinuity` digests first: the walk needs to
    /// know where retention let the trail start and which losses an operator accepted.
    fn prescan(&mut self, logs: &Logs) -> Step {
        for s in logs.seqs() {
            // A log that does not extend its exported copy is reported by the walk itself.
            let Ok(Some(lines)) = logs.read(s) else {
                continue;
            };
            for line in &lines.lines {
                let wanted =
                    contains(line, b"\"retention\":{") || contains(line, b"\"discontinuity\":{");
                if !wanted {
                    continue;
                }
                if let Ok(s) = digest::check(line, self.opts.keys) {
                    if s.digest.discontinuity.is_some() || s.digest.retention.is_some() {
                        self.discontinuities.push(s);
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies the newest signed retention digest: returns the first kept file's sequence.
    fn retention(&mut self, logs: &Logs) -> Result<Option<u64>, AuditError> {
        let newest = self
            .discontinuities
            .iter()
            .filter_map(|s| {
                s.digest
                    .retention
                    .as_ref()
                    .map(|r| (s.digest.digest_seq, r))
            })
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, r)| r.clone());
        self.discontinuities
            .retain(|s| s.digest.discontinuity.is_some());
        let Some(r) = newest else {
            return Ok(None);
        };
        let excluded: Vec<String> = logs
            .local
            .keys()
            .filter(|s| **s < r.first_kept_seq)
            .map(|s| digest::log_name(*s))
            .collect();
        self.next_seq = r.first_kept_seq;
        self.prev_hash.clone_from(&r.first_kept_prev_hash);
        self.expected = Some((
            r.first_kept_digest_seq,
            r.first_kept_digest_previous_signature.clone(),
        ));
        self.want_genesis = false;
        self.report.notes.push(format!(
            "events before #{} were removed by retention (signed: older than {}){}",
            r.first_kept_seq,
            r.cutoff,
            if excluded.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} file(s) it removed are still present and were not checked",
                    excluded.len()
                )
            }
        ));
        Ok(Some(r.first_kept_seq))
    }

    /// Whether a signed discontinuity accounts for `p`; if so, skips to it.
    fn explained(&mut self, p: &Problem) -> bool {
        if self.opts.from == Walk::Newest || self.skipping.is_some() {
            return false;
        }
        let last = self.report.last.as_ref().map_or(0, |l| l.digest.digest_seq);
        let found = self.discontinuities.iter().find(|s| {
            s.digest.digest_seq > last
                && s.digest.discontinuity.as_ref().is_some_and(|d| {
                    d.lost_first_seq <= p.seq && p.seq <= d.lost_last_seq.max(d.lost_first_seq)
                })
        });
        match found {
            Some(s) => {
                self.report.notes.push(format!(
                    "{}: {} (accounted for by discontinuity digest #{})",
                    p.position, p.reason, s.digest.digest_seq
                ));
                self.skipping = Some(s.clone());
                self.file = None;
                true
            }
            None => false,
        }
    }

    /// One trail file and its digest log.
    fn pair(&mut self, s: u64, trail: Option<&PathBuf>, logs: &Logs) -> Step {
        if let Some(skip) = &self.skipping {
            if s <= skip.digest.head.seq {
                if trail.is_some() {
                    self.report.notes.push(format!(
                        "{} holds events given up by discontinuity digest #{}; not checked",
                        file_name(s),
                        skip.digest.digest_seq
                    ));
                }
                return Ok(());
            }
        }
        self.open(s, trail)?;
        if let Some(lines) = logs.read(s)? {
            let name = digest::log_name(s);
            for (i, line) in lines.lines.iter().enumerate() {
                self.digest(&format!("{name}:{}", i + 1), line)?;
            }
            if lines.incomplete > 0 {
                let note = format!(
                    "{name}: incomplete final line ({} bytes) from an interrupted write; removed at the next start",
                    lines.incomplete
                );
                if s == self.last_log {
                    self.report.notes.push(note);
                } else {
                    return Err(problem(
                        name,
                        "incomplete line in the middle of the digest chain (the file was cut)",
                        self.next_seq,
                    ));
                }
            }
        }
        self.rest_of_file(s)
    }

    fn open(&mut self, s: u64, trail: Option<&PathBuf>) -> Step {
        let name = file_name(s);
        let reader = match trail {
            Some(p) => Some(BufReader::with_capacity(
                256 * 1024,
                File::open(p).map_err(io("open", p))?,
            )),
            None => None,
        };
        if reader.is_some() {
            self.report.files += 1;
        }
        self.file = Some(Reader {
            seq: s,
            name,
            path: trail.cloned().unwrap_or_default(),
            reader,
            offset: 0,
            line_no: 0,
            closed: false,
            summary: FileSummary::default(),
        });
        Ok(())
    }

    fn digest(&mut self, position: &str, line: &[u8]) -> Step {
        let signed = digest::check(line, self.opts.keys)
            .map_err(|e| problem(position, format!("digest {e}"), self.next_seq))?;
        let d = &signed.digest;
        if let Some(from) = self.opts.keys.retired_from(&d.public_key_fingerprint) {
            if d.digest_seq >= from {
                return Err(problem(
                    position,
                    format!(
                        "digest #{} is signed by key {}, which was retired from digest #{from} on (history rewritten with a rotated-out key)",
                        d.digest_seq, d.public_key_fingerprint
                    ),
                    self.next_seq,
                ));
            }
        }
        self.report.max_digest_seq = self.report.max_digest_seq.max(d.digest_seq);
        if d.kind == Kind::Discontinuity {
            // Signed at a start the operator allowed over a damaged trail: the gateway that
            // wrote the records before it has stopped (review 25: they stayed `open:`).
            self.settle();
            return self.resume(position, signed);
        }
        if let Some(skip) = &self.skipping {
            if d.digest_seq < skip.digest.digest_seq {
                // Digests of the given-up stretch, before the discontinuity in the same log.
                return Ok(());
            }
            return Err(problem(
                position,
                format!(
                    "digest #{} follows the events given up by discontinuity digest #{}, which was not found after them",
                    d.digest_seq, skip.digest.digest_seq
                ),
                self.next_seq,
            ));
        }
        if self.want_genesis && d.kind != Kind::Genesis {
            return Err(problem(
                position,
                format!(
                    "the oldest digest is #{} ({}), not the genesis, and no signed retention digest explains it: earlier digests were removed",
                    d.digest_seq,
                    d.kind.as_str()
                ),
                self.next_seq,
            ));
        }
        if let Some((seq, sig)) = &self.expected {
            if d.digest_seq != *seq {
                return Err(problem(
                    position,
                    format!(
                        "expected digest #{seq}, found #{} (a digest was removed, inserted or replayed)",
                        d.digest_seq
                    ),
                    self.next_seq,
                ));
            }
            if d.previous_digest_signature != *sig {
                return Err(problem(
                    position,
                    format!(
                        "digest #{} does not carry the previous digest's signature (a digest was replaced or replayed)",
                        d.digest_seq
                    ),
                    self.next_seq,
                ));
            }
        }
        if let Some(end) = &self.last_end {
            if d.digest_start_time != *end || d.digest_end_time < *end {
                return Err(problem(
                    position,
                    format!(
                        "digest #{} does not start where the previous one ended ({end})",
                        d.digest_seq
                    ),
                    self.next_seq,
                ));
            }
        }
        let expected_file = self
            .file
            .as_ref()
            .map(|f| f.name.clone())
            .unwrap_or_default();
        if d.file != expected_file {
            return Err(problem(
                position,
                format!(
                    "digest #{} names {}, but it is in the log of {expected_file}",
                    d.digest_seq, d.file
                ),
                self.next_seq,
            ));
        }
        if let Some(seg) = &d.segment {
            self.segment(d.digest_seq, seg)?;
        }
        let offset = self.file.as_ref().map_or(0, |f| f.offset);
        let head = &d.head;
        if head.seq + 1 != self.next_seq || head.hash != self.prev_hash || head.offset != offset {
            return Err(problem(
                self.here(),
                format!(
                    "digest #{} signs the trail as ending at event #{} (byte {} of {}), but the events before it end at #{} (byte {offset}){}",
                    d.digest_seq,
                    head.seq,
                    head.offset,
                    d.file,
                    self.next_seq.saturating_sub(1),
                    if head.seq + 1 == self.next_seq { " with another hash: events were edited" } else { "" }
                ),
                self.next_seq.min(head.seq + 1),
            ));
        }
        if let Some(c) = &d.closed {
            self.close(d.digest_seq, c.length)?;
        }
        if matches!(d.kind, Kind::Start | Kind::Stop) {
            // After its segment is walked (a `start` digest signs the events the previous
            // gateway left unsigned, a `stop` one the last events): the gateway that wrote them
            // has stopped (review 26: a stop digest settled only the records before its own
            // segment).
            self.settle();
        }
        if let (Kind::Start, Some(st)) = (d.kind, &d.start) {
            if !st.previous_clean {
                self.report.gaps.push(format!(
                    "digest #{} ({}): restart after an unclean stop; the previous digest is from {}; {} event(s) written after it were signed only now (a crash, or digests removed after {}: compare with an exported copy, --digests)",
                    d.digest_seq,
                    d.digest_end_time,
                    d.digest_start_time,
                    st.adopted_events,
                    d.digest_start_time
                ));
            }
        }
        if let Some(t) = &d.tampered {
            self.report.discontinuities.push(format!(
                "digest #{} ({}): the writer found its files tampered with and stopped writing: {t}",
                d.digest_seq, d.digest_end_time
            ));
        }
        self.accept(signed);
        Ok(())
    }

    /// Marks every `authorized` record still waiting as written by a gateway that has stopped:
    /// its request will not complete now.
    fn settle(&mut self) {
        for (_, settled) in self.orphans.values_mut() {
            *settled = true;
        }
    }

    fn accept(&mut self, signed: Signed) {
        self.want_genesis = false;
        self.expected = Some((signed.digest.digest_seq + 1, signed.signature.clone()));
        self.last_end = Some(signed.digest.digest_end_time.clone());
        self.report.digests += 1;
        if self.report.first.is_none() {
            self.report.first = Some(signed.clone());
        }
        self.report.last = Some(signed);
    }

    /// A signed discontinuity: the trail resumes at its head.
    fn resume(&mut self, position: &str, signed: Signed) -> Step {
        let d = &signed.digest;
        let Some(info) = &d.discontinuity else {
            return Err(problem(
                position,
                "a discontinuity digest without its details",
                self.next_seq,
            ));
        };
        let skipped = self.skipping.take().is_some();
        if !skipped {
            if let Some((seq, _)) = &self.expected {
                if d.digest_seq < *seq {
                    return Err(problem(
                        position,
                        format!(
                            "discontinuity digest #{} is out of order (expected #{seq} or later)",
                            d.digest_seq
                        ),
                        self.next_seq,
                    ));
                }
            }
        }
        self.report.discontinuities.push(format!(
            "digest #{} ({}): {} given up at start: {}",
            d.digest_seq,
            d.digest_end_time,
            info.lost(),
            info.reason
        ));
        if !skipped {
            self.report.notes.push(format!(
                "discontinuity digest #{} gave up {}, but nothing before it failed (the trail was restored afterwards?)",
                d.digest_seq,
                info.lost()
            ));
        }
        self.next_seq = d.head.seq + 1;
        self.prev_hash.clone_from(&d.head.hash);
        if let Some(f) = self.file.as_mut() {
            f.summary = FileSummary::default();
        }
        self.accept(signed);
        Ok(())
    }

    fn here(&self) -> String {
        self.file
            .as_ref()
            .map_or_else(String::new, |f| format!("{}:{}", f.name, f.line_no))
    }

    fn segment(&mut self, digest_seq: u64, seg: &digest::Segment) -> Step {
        let next = self.next_seq;
        let Some(f) = self.file.as_ref() else {
            return Err(problem("", "no trail file", next));
        };
        if f.reader.is_none() {
            return Err(problem(
                f.name.clone(),
                format!(
                    "the file is missing; digest #{digest_seq} signed events #{}..#{} in it",
                    seg.first_seq, seg.last_seq
                ),
                next,
            ));
        }
        if f.offset != seg.from_offset {
            return Err(problem(
                self.here(),
                format!(
                    "digest #{digest_seq} covers bytes from {}, but the events before it end at byte {}",
                    seg.from_offset, f.offset
                ),
                next,
            ));
        }
        let mut hasher = sha2::Sha256::new();
        let mut index = 0usize;
        loop {
            let offset = self.file.as_ref().map_or(0, |f| f.offset);
            if offset >= seg.to_offset {
                break;
            }
            let expect = Expect {
                digest_seq,
                hashes: &seg.event_hashes,
                index,
            };
            match self.event(Some(expect), &mut hasher)? {
                Some(()) => index += 1,
                None => {
                    return Err(problem(
                        self.file.as_ref().map(|f| f.name.clone()).unwrap_or_default(),
                        format!(
                            "the file ends at byte {offset}, but digest #{digest_seq} signed events up to #{} ending at byte {} (events were cut from the tail)",
                            seg.last_seq, seg.to_offset
                        ),
                        self.next_seq,
                    ))
                }
            }
        }
        let offset = self.file.as_ref().map_or(0, |f| f.offset);
        if offset != seg.to_offset
            || hex::encode(hasher.finalize()) != seg.sha256
            || self.next_seq != seg.last_seq + 1
            || index as u64 * SHORT_HASH_LEN as u64 != seg.event_hashes.len() as u64
        {
            return Err(problem(
                self.here(),
                format!(
                    "the bytes {}..{} are not those digest #{digest_seq} signed (SHA-256 or event count differs)",
                    seg.from_offset, seg.to_offset
                ),
                seg.first_seq,
            ));
        }
        if let Some(f) = self.file.as_mut() {
            f.summary.add(seg);
        }
        Ok(())
    }

    /// Reads and checks one event; `None` at the end of the file.
    fn event(&mut self, expect: Option<Expect<'_>>, hasher: &mut sha2::Sha256) -> Step<Option<()>> {
        let next = self.next_seq;
        let Some(f) = self.file.as_mut() else {
            return Ok(None);
        };
        let Some(reader) = f.reader.as_mut() else {
            return Ok(None);
        };
        let mut line = Vec::with_capacity(1024);
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io("read", &f.path))?;
        if n == 0 {
            return Ok(None);
        }
        f.line_no += 1;
        let position = format!("{}:{}", f.name, f.line_no);
        let Some(body) = line.strip_suffix(b"\n") else {
            if expect.is_none() && f.seq >= self.last_log {
                self.report.notes.push(format!(
                    "{position}: incomplete final line ({n} bytes) from an interrupted write; it was never acknowledged and is removed at the next start"
                ));
                return Ok(None);
            }
            return Err(problem(
                position,
                "incomplete line (the file was cut)",
                next,
            ));
        };
        let link = chain::check_line(body).map_err(|e| problem(&position, e.to_string(), next))?;
        if f.line_no == 1 && link.seq != f.seq {
            return Err(problem(
                position,
                format!(
                    "the file name says its first event is #{}, but it is #{} (a file was renamed or reordered)",
                    f.seq, link.seq
                ),
                next,
            ));
        }
        if link.seq != next {
            return Err(problem(
                position,
                format!(
                    "expected event #{next}, found #{} (an event was deleted, inserted or moved)",
                    link.seq
                ),
                next,
            ));
        }
        if link.prev_hash != self.prev_hash {
            return Err(problem(
                position,
                "prevHash does not match the previous event (an event was deleted, inserted or moved)",
                next,
            ));
        }
        if let Some(e) = &expect {
            let from = e.index * SHORT_HASH_LEN;
            let signed = e.hashes.get(from..from + SHORT_HASH_LEN);
            let actual = link.hash.get(..SHORT_HASH_LEN);
            if signed.is_none() {
                return Err(problem(
                    position,
                    format!(
                        "event #{next} is one more than digest #{} signed (inserted)",
                        e.digest_seq
                    ),
                    next,
                ));
            }
            if signed != actual {
                return Err(problem(
                    position,
                    format!(
                        "event #{next} is not the one digest #{} signed (edited, and the chain recomputed after it)",
                        e.digest_seq
                    ),
                    next,
                ));
            }
        }
        let meta: Option<Meta<'_>> = serde_json::from_slice(body).ok();
        if let Some(m) = &meta {
            match m.stage {
                Stage::Authorized => {
                    self.orphans.insert(
                        m.request_id.to_string(),
                        (
                            Orphan {
                                position: position.clone(),
                                request_id: m.request_id.to_string(),
                                event_name: m.event_name.to_string(),
                                event_time: m.event_time.to_string(),
                            },
                            false,
                        ),
                    );
                }
                Stage::Completed => {
                    self.orphans.remove(m.request_id.as_ref());
                }
            }
        }
        hasher.update(&line);
        f.offset += n as u64;
        if expect.is_none() {
            if f.summary.first_seq == 0 {
                f.summary.first_seq = next;
            }
            let time = meta
                .as_ref()
                .map(|m| m.event_time.to_string())
                .unwrap_or_default();
            if self.report.tail.unsigned.count == 0 {
                self.report.tail.unsigned = Span::at(f.offset - n as u64);
            }
            self.report
                .tail
                .unsigned
                .push(&line, next, &link.hash, &time);
            f.summary.last_seq = next;
            if f.summary.oldest.is_empty() || time < f.summary.oldest {
                f.summary.oldest.clone_from(&time);
            }
            if time > f.summary.newest {
                f.summary.newest = time;
            }
            self.report.unsigned += 1;
        }
        self.prev_hash = link.hash;
        self.next_seq += 1;
        self.report.events += 1;
        self.report.max_seq = self.report.max_seq.max(link.seq);
        Ok(Some(()))
    }

    fn close(&mut self, digest_seq: u64, length: u64) -> Step {
        let next = self.next_seq;
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let actual = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        if f.offset != length || actual != length {
            let position = format!("{}:{}", f.name, f.line_no + 1);
            return Err(problem(
                position,
                format!(
                    "digest #{digest_seq} closed the file at byte {length}, but it holds {actual} bytes (events were appended after it was closed, or it was cut)"
                ),
                next,
            ));
        }
        f.closed = true;
        Ok(())
    }

    /// What follows the last digest of a file: nothing when it is closed; otherwise the
    /// unsigned window, allowed only in the newest file.
    fn rest_of_file(&mut self, s: u64) -> Step {
        let Some(f) = self.file.as_ref() else {
            return Ok(());
        };
        if f.closed || f.reader.is_none() {
            return Ok(());
        }
        let mut sink = sha2::Sha256::new();
        let before = self.report.unsigned;
        if self.report.unsigned > 0 && self.report.tail.unsigned.count > 0 {
            // Unsigned events were already found in an earlier file.
            if let Some(()) = self.event(None, &mut sink)? {
                return Err(problem(
                    self.here(),
                    "unsigned events in two files (events were added)",
                    self.next_seq.saturating_sub(1),
                ));
            }
            return Ok(());
        }
        while self.event(None, &mut sink)?.is_some() {}
        if self.report.unsigned > before && s < self.last_log {
            let first = self.next_seq - (self.report.unsigned - before);
            return Err(problem(
                format!("{}:{}", file_name(s), self.file.as_ref().map_or(0, |f| f.line_no)),
                format!(
                    "events #{first}..#{} are not covered by any digest, but later digests exist (events were appended)",
                    self.next_seq - 1
                ),
                first,
            ));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Report, AuditError> {
        if self.report.problem.is_none() {
            if let Some(skip) = &self.skipping {
                self.report.problem = Some(Problem {
                    position: digest::log_name(skip.digest.head.seq + 1),
                    reason: format!(
                        "discontinuity digest #{} was not found where it says the trail resumes",
                        skip.digest.digest_seq
                    ),
                    seq: self.next_seq,
                });
            } else if self.report.last.is_none() {
                self.report.problem = Some(Problem {
                    position: "(digests)".into(),
                    reason: "no signed digest: every keyhole account has at least its signed genesis digest, so the trail was removed (or this is not the gateway's audit directory, or its trail predates signed digests)".into(),
                    seq: self.next_seq,
                });
            } else if let Some((fp, from)) = self
                .opts
                .keys
                .retirements()
                .iter()
                .find(|(_, from)| self.report.max_digest_seq < *from)
            {
                // The successor of a retired key signed digest #from: a trail that ends before
                // it lost what the new key signed (or was rewritten with the old key).
                self.report.problem = Some(Problem {
                    position: "(digests)".into(),
                    reason: format!(
                        "the digests end at #{}, but key {fp} was retired at digest #{from}, which its successor signed: later digests were removed, or history was rewritten with the old key",
                        self.report.max_digest_seq
                    ),
                    seq: self.next_seq,
                });
            } else if let Some(reason) = unsigned_window_problem(&self.report) {
                // More unsigned events, or later ones, than a writer ever leaves: the same bound
                // the start check enforces, so a copy verified away from the gateway (or a
                // stopped one) is held to it too.
                self.report.problem = Some(Problem {
                    position: self.here(),
                    reason,
                    seq: self.next_seq - self.report.unsigned,
                });
            } else if let Some(last) = &self.report.last {
                if last.digest.kind == Kind::Stop && self.report.unsigned > 0 {
                    self.report.problem = Some(Problem {
                        position: self.here(),
                        reason: format!(
                            "{} event(s) follow the clean-stop digest #{} (events were appended while the gateway was stopped)",
                            self.report.unsigned, last.digest.digest_seq
                        ),
                        seq: self.next_seq - self.report.unsigned,
                    });
                }
            }
        }
        let (settled, open): (Vec<_>, Vec<_>) = self
            .orphans
            .into_values()
            .partition(|(_, settled)| *settled);
        let listed = |records: Vec<(Orphan, bool)>| {
            let mut records: Vec<Orphan> = records.into_iter().map(|(o, _)| o).collect();
            records.sort_by(|a, b| a.event_time.cmp(&b.event_time));
            let count = records.len() as u64;
            records.truncate(MAX_ORPHANS_LISTED);
            (records, count)
        };
        (self.report.orphans, self.report.orphan_count) = listed(settled);
        (self.report.open, self.report.open_count) = listed(open);
        let tail = &mut self.report.tail;
        tail.next_seq = self.next_seq;
        tail.prev_hash = self.prev_hash;
        if let Some(f) = self.file {
            tail.file_seq = f.reader.is_some().then_some(f.seq);
            tail.closed = f.closed;
            tail.length = f.offset;
            tail.summary = f.summary;
        }
        Ok(self.report)
    }
}

/// The digest logs of the audit directory, and of an exported copy.
struct Logs {
    local: std::collections::BTreeMap<u64, PathBuf>,
    witness: std::collections::BTreeMap<u64, PathBuf>,
}

impl Logs {
    fn seqs(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .local
            .keys()
            .chain(self.witness.keys())
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The lines of `digest-S.jsonl`: the local log, which must extend the exported copy; the
    /// copy when the local log is gone.
    fn read(&self, s: u64) -> Step<Option<digest::LogLines>> {
        let read = |p: &PathBuf| digest::read_log(p).map_err(io("read", p));
        let local = self.local.get(&s).map(read).transpose()?;
        let copy = self.witness.get(&s).map(read).transpose()?;
        match (local, copy) {
            (Some(l), Some(c)) => {
                if !l.lines.starts_with(&c.lines) {
                    return Err(problem(
                        digest::log_name(s),
                        format!(
                            "does not extend its exported copy ({} digest(s) there, {} here): the digests in the data directory were rolled back or rewritten",
                            c.lines.len(),
                            l.lines.len()
                        ),
                        0,
                    ));
                }
                Ok(Some(l))
            }
            (l, c) => Ok(l.or(c)),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Seconds allowed, beyond the cadence, between the last digest and the newest unsigned event
/// (a writer held up by a slow disk signs late).
pub(crate) const SLACK_SECS: i64 = 30;

/// What is wrong with the unsigned window after the last digest, if anything: the writer never
/// leaves more than [`MAX_UNSIGNED_EVENTS`] events unsigned, nor events dated later than one
/// cadence (and [`SLACK_SECS`]) after its last digest. More, or later, events were added by
/// someone else. Checked by `verify` and by the start check alike.
pub(crate) fn unsigned_window_problem(report: &Report) -> Option<String> {
    let last = report.last.as_ref()?;
    let window = &report.tail.unsigned;
    if window.count > MAX_UNSIGNED_EVENTS {
        return Some(format!(
            "{} events follow the last signed digest #{}, more than the writer ever leaves unsigned ({MAX_UNSIGNED_EVENTS}): events were added",
            window.count, last.digest.digest_seq
        ));
    }
    if window.count == 0 {
        return None;
    }
    let limit = chrono::DateTime::parse_from_rfc3339(&last.digest.digest_end_time)
        .ok()
        .and_then(|t| {
            let secs = i64::try_from(last.digest.cadence_seconds).ok()? + SLACK_SECS;
            t.checked_add_signed(chrono::TimeDelta::try_seconds(secs)?)
        });
    let newest = chrono::DateTime::parse_from_rfc3339(window.newest()).ok();
    match (limit, newest) {
        (Some(limit), Some(newest)) if newest > limit => Some(format!(
            "the {} unsigned events after digest #{} ({}) are dated up to {}, later than the writer leaves events unsigned (cadence {} s): events were added",
            window.count,
            last.digest.digest_seq,
            last.digest.digest_end_time,
            window.newest(),
            last.digest.cadence_seconds
        )),
        (_, None) => Some(format!(
            "the newest of the {} unsigned events after digest #{} has no valid eventTime: events were added",
            window.count, last.digest.digest_seq
        )),
        _ => None,
    }
}
