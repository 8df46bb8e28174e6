//! The start check: before the gateway accepts a request, the tail of the trail is checked
//! against the last signed digest, and the writer continues from that signed state.
//!
//! The newest trail file is checked whole against its digests (anchored on the previous digest
//! log's last digest): every event's hash and chain, the byte ranges and their SHA-256, the head
//! each digest signs. Events after the last digest (what a crash left unsigned) are accepted only
//! within the bounds the writer keeps ([`MAX_UNSIGNED_EVENTS`], and dated no later than one
//! cadence and `SLACK_SECS` after that digest), and never after a clean `stop` digest; the `start` digest then
//! signs them, naming how many it adopted. Anything else is a mismatch: the gateway refuses to
//! start ([`AuditError::Mismatch`]), or, with `--audit-accept-discontinuity`, signs a
//! `discontinuity` digest naming the events given up, logs an error, counts it in
//! `keyhole_audit_discontinuities_total`, and resumes after them in a new file, from the last
//! signed state.
//!
//! # Security
//! The sequence and the chain continue from the signed head, never from the files alone (a cut
//! or rewritten tail is never adopted). Without the signing key an attacker who can write the
//! data directory can at most, after killing the gateway, cut or add up to
//! [`MAX_UNSIGNED_EVENTS`] events from one cadence after the last digest; docs/AUDIT.md states it.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::chain::{self, GENESIS_HASH};
use super::digest::{self, DiscontinuityInfo, Kind, Signed, StartInfo};
use super::err::{io, AuditError};
use super::files::{cut_incomplete_line, file_name, trail_files};
use super::keys::{Signer, TrustedKeys};
use super::sink::{Extra, Last, Options, Writer};
use super::verify::{self, Report, Walk};
use crate::metrics::SinkStats;

/// Checks the trail under `dir` and returns the writer that continues it (after signing the
/// `start` or `discontinuity` digest).
pub(crate) fn resume(
    dir: &Path,
    signer: Arc<Signer>,
    opts: Options,
    stats: Arc<SinkStats>,
) -> Result<Writer, AuditError> {
    if let Some((_, p)) = trail_files(dir).map_err(io("list", dir))?.last() {
        cut_incomplete_line(p)?;
    }
    if let Some((_, p)) = digest::digest_logs(dir).map_err(io("list", dir))?.last() {
        cut_incomplete_line(p)?;
    }
    let keys = Writer::keys(&signer, &opts);
    let report = verify::verify(verify::Options {
        audit_dir: dir,
        witness: None,
        keys: &keys,
        from: Walk::Newest,
    })?;
    match mismatch(&report) {
        None => continue_from(dir, signer, opts, stats, report),
        Some(reason) if opts.accept_discontinuity => {
            discontinuity(dir, signer, opts, stats, &keys, &report, reason)
        }
        Some(reason) => Err(AuditError::Mismatch {
            reason,
            fingerprint: signer.public().fingerprint().to_owned(),
        }),
    }
}

/// What is wrong with the tail, if anything.
fn mismatch(report: &Report) -> Option<String> {
    if let Some(p) = &report.problem {
        return Some(format!("at {}: {}", p.position, p.reason));
    }
    let Some(last) = &report.last else {
        return Some("no signed digest".into());
    };
    if let Some(t) = &last.digest.tampered {
        return Some(format!(
            "the previous run found its files tampered with and stopped (digest #{}): {t}",
            last.digest.digest_seq
        ));
    }
    super::verify::unsigned_window_problem(report)
}

fn last_of(s: &Signed) -> Last {
    Last {
        seq: s.digest.digest_seq,
        signature: s.signature.clone(),
        end_time: s.digest.digest_end_time.clone(),
    }
}

/// The tail checks out: adopt the unsigned window, sign the `start` digest, open this run's
/// file.
fn continue_from(
    dir: &Path,
    signer: Arc<Signer>,
    opts: Options,
    stats: Arc<SinkStats>,
    report: Report,
) -> Result<Writer, AuditError> {
    let tail = report.tail;
    let Some(last) = report.last else {
        return Err(AuditError::Unavailable);
    };
    let previous_clean = matches!(last.digest.kind, Kind::Stop | Kind::Genesis);
    let adopted = tail.unsigned.count;
    let start = || Extra {
        start: Some(StartInfo {
            previous_clean,
            adopted_events: adopted,
        }),
        ..Extra::default()
    };
    let has_events = tail.summary.has_events() || adopted > 0;
    let mut w = match tail.file_seq {
        Some(s) if has_events && !tail.closed => {
            // The previous run's file: the start digest signs its unsigned tail and closes it.
            let mut w = Writer::at(
                dir,
                signer,
                opts,
                stats,
                s,
                tail.next_seq,
                tail.prev_hash.clone(),
                last_of(&last),
            )?;
            if w.len != tail.length {
                return Err(AuditError::Mismatch {
                    reason: format!(
                        "{} is {} bytes long, but its events end at byte {}",
                        file_name(s),
                        w.len,
                        tail.length
                    ),
                    fingerprint: w.signer.public().fingerprint().to_owned(),
                });
            }
            if adopted > 0 {
                w.span = tail.unsigned.clone();
                w.synced.3 = w.span.clone();
            }
            w.summary = tail.summary.clone();
            w.write_digest(Kind::Start, true, start())?;
            let next = w.next_seq;
            w.switch_to(next)?;
            w
        }
        _ => {
            // An empty current file is reused; otherwise this run starts a new one.
            let mut w = Writer::at(
                dir,
                signer,
                opts,
                stats,
                tail.next_seq,
                tail.next_seq,
                tail.prev_hash.clone(),
                last_of(&last),
            )?;
            if w.len != 0 {
                return Err(AuditError::Mismatch {
                    reason: format!(
                        "{} already holds {} bytes, but the signed trail ends before it",
                        file_name(tail.next_seq),
                        w.len
                    ),
                    fingerprint: w.signer.public().fingerprint().to_owned(),
                });
            }
            w.write_digest(Kind::Start, false, start())?;
            w
        }
    };
    let previous_key = &last.digest.public_key_fingerprint;
    let current_key = w.signer.public().fingerprint().to_owned();
    if *previous_key != current_key {
        // A rotation: the old key is retired from this start digest on, but only the operator
        // can say so to verify (a retired key could otherwise rewrite what the new one signs).
        tracing::warn!(
            old = %previous_key,
            new = %current_key,
            "the audit signing key was rotated: digest #{} is the first the new key signed. Retire the old key wherever the trail is verified: pin it as `{previous_key}@{}` (audit_key_fingerprints, --fingerprint), next to the new fingerprint",
            w.last.seq,
            w.last.seq
        );
    }
    if adopted > 0 {
        tracing::warn!(
            events = adopted,
            "the previous run stopped without signing its last events (a crash?): they check out by chain and are signed now"
        );
    }
    w.prune();
    Ok(w)
}

/// The newest digest whose signature checks out, whatever the chain says, and the highest
/// digest number seen.
fn latest_signed(dir: &Path, keys: &TrustedKeys) -> Result<(Option<Signed>, u64), AuditError> {
    let logs = digest::digest_logs(dir).map_err(io("list", dir))?;
    let mut best: Option<Signed> = None;
    for (_, path) in logs {
        let lines = digest::read_log(&path).map_err(io("read", &path))?;
        for line in &lines.lines {
            if let Ok(s) = digest::check(line, keys) {
                if best
                    .as_ref()
                    .is_none_or(|b| s.digest.digest_seq > b.digest.digest_seq)
                {
                    best = Some(s);
                }
            }
        }
    }
    let max = best.as_ref().map_or(0, |b| b.digest.digest_seq);
    Ok((best, max))
}

/// The highest event sequence number on disk and its hash (the last complete line of the newest
/// trail file holding one).
fn last_on_disk(dir: &Path) -> Result<Option<chain::Link>, AuditError> {
    let files = trail_files(dir).map_err(io("list", dir))?;
    for (_, path) in files.iter().rev() {
        let text = std::fs::read(path).map_err(io("read", path))?;
        let last = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| chain::check_line(l).ok())
            .max_by_key(|l| l.seq);
        if last.is_some() {
            return Ok(last);
        }
    }
    Ok(None)
}

/// The operator accepted the mismatch: sign what is given up and resume after it.
fn discontinuity(
    dir: &Path,
    signer: Arc<Signer>,
    opts: Options,
    stats: Arc<SinkStats>,
    keys: &TrustedKeys,
    tail_report: &Report,
    reason: String,
) -> Result<Writer, AuditError> {
    let full = verify::verify(verify::Options {
        audit_dir: dir,
        witness: None,
        keys,
        from: Walk::Beginning,
    })?;
    let (latest, _) = latest_signed(dir, keys)?;
    let on_disk = last_on_disk(dir)?;
    let signed_head = latest.as_ref().map_or(0, |l| l.digest.head.seq);
    let disk_max = on_disk.as_ref().map_or(0, |l| l.seq);
    let resume = signed_head.max(disk_max) + 1;
    let window_first = (tail_report.tail.unsigned.count > 0)
        .then_some(tail_report.tail.unsigned.first_seq)
        .filter(|_| tail_report.problem.is_none());
    let lost_first = [
        tail_report.problem.as_ref().map(|p| p.seq),
        full.problem.as_ref().map(|p| p.seq),
        window_first,
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(resume)
    .max(1);
    let resume_hash = match (&latest, &on_disk) {
        (Some(l), _) => l.digest.head.hash.clone(),
        // No signed state at all (a trail from before signed digests, or every digest
        // removed): the chain goes on from the last event on disk, which stays unverified.
        (None, Some(link)) => link.hash.clone(),
        (None, None) => GENESIS_HASH.to_owned(),
    };
    let last = latest.as_ref().map(last_of).unwrap_or_default();
    let after = full.last.as_ref().map_or(0, |l| l.digest.digest_seq);
    let mut w = Writer::at(dir, signer, opts, stats, resume, resume, resume_hash, last)?;
    if w.len != 0 {
        return Err(AuditError::Mismatch {
            reason: format!(
                "{reason}; and {} already holds {} bytes, so the trail cannot resume there: move it aside",
                file_name(resume),
                w.len
            ),
            fingerprint: w.signer.public().fingerprint().to_owned(),
        });
    }
    let info = DiscontinuityInfo {
        lost_first_seq: lost_first,
        lost_last_seq: resume - 1,
        after_digest_seq: after,
        reason: reason.clone(),
    };
    w.write_digest(
        Kind::Discontinuity,
        false,
        Extra {
            start: Some(StartInfo {
                previous_clean: false,
                adopted_events: 0,
            }),
            discontinuity: Some(info),
            ..Extra::default()
        },
    )?;
    w.stats.discontinuities.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        lost_first_seq = lost_first,
        lost_last_seq = resume - 1,
        digest = w.last.seq,
        reason = %reason,
        "AUDIT DISCONTINUITY: the trail did not match its signed digests; started anyway (--audit-accept-discontinuity) and signed a discontinuity digest giving up these events"
    );
    w.prune();
    Ok(w)
}
