//! Retention: whole trail files whose newest event is older than `audit_retain_days` are
//! removed, with their digest logs, behind a signed `retention` digest that says what went and
//! where the kept trail starts, so `verify` still tells retention from tampering.
//!
//! Expiry is decided from signed event times only: a file goes when its closing digest (the last
//! line of its digest log, signed with the writer's key) says its newest event is older than the
//! cut-off. File modification times play no part: backdating files (`touch -d`) removes nothing.
//! Only a contiguous run of the oldest closed files goes, never the current one.
//!
//! The `retention` digest is signed and synced *before* anything is removed. A crash in between
//! leaves files it already excludes: `verify` skips them (with a note) and the next pruning
//! removes them (signing a new `retention` digest that names them again).
//!
//! # Security
//! Removing kept files, or old files without a retention digest, or forging one, needs the
//! signing key to go unnoticed: `verify` starts the chain where the newest signed retention digest
//! says, and every kept file must match its digests.

use std::time::Duration;

use super::digest::{self, Kind, RemovedFile, RetentionInfo};
use super::err::{io, AuditError};
use super::files::{file_name, rfc3339, sync_dir};
use super::sink::{Extra, Writer};

/// Removes the oldest files whose signed newest event time is older than `retain` before the
/// writer's clock. Returns how many trail files went.
pub(crate) fn prune(w: &mut Writer, retain: Duration) -> Result<usize, AuditError> {
    let now = (w.opts.clock)();
    let Some(cutoff) = now.checked_sub(retain).map(rfc3339) else {
        return Ok(0);
    };
    let keys = Writer::keys(&w.signer, &w.opts);
    let logs = digest::digest_logs(&w.dir).map_err(io("list", &w.dir))?;
    let mut removed: Vec<(u64, RemovedFile, String)> = Vec::new();
    let mut kept = None;
    for (s, path) in &logs {
        if *s >= w.file_seq {
            kept = Some(path.clone());
            break;
        }
        let lines = digest::read_log(path).map_err(io("read", path))?;
        let closing = lines
            .lines
            .last()
            .and_then(|l| digest::check(l, &keys).ok())
            .and_then(|s| {
                let c = s.digest.closed.clone()?;
                Some((c, s.digest.head.hash))
            });
        match closing {
            Some((c, hash)) if c.newest_event_time < cutoff => removed.push((
                *s,
                RemovedFile {
                    file: file_name(*s),
                    first_seq: c.first_seq,
                    last_seq: c.last_seq,
                    newest_event_time: c.newest_event_time,
                },
                hash,
            )),
            _ => {
                kept = Some(path.clone());
                break;
            }
        }
    }
    let Some((_, last_removed, prev_hash)) = removed.last() else {
        return Ok(0);
    };
    // The first kept digest: the first line of the first kept log, or (when that log is still
    // empty) the retention digest itself.
    let first_kept = match &kept {
        Some(path) => digest::read_log(path)
            .map_err(io("read", path))?
            .lines
            .first()
            .and_then(|l| digest::check(l, &keys).ok())
            .map(|s| (s.digest.digest_seq, s.digest.previous_digest_signature)),
        None => None,
    };
    let (first_kept_digest_seq, first_kept_digest_previous_signature) =
        first_kept.unwrap_or_else(|| (w.last.seq + 1, w.last.signature.clone()));
    let info = RetentionInfo {
        cutoff: cutoff.clone(),
        removed: removed.iter().map(|(_, r, _)| r.clone()).collect(),
        first_kept_seq: last_removed.last_seq + 1,
        first_kept_prev_hash: prev_hash.clone(),
        first_kept_digest_seq,
        first_kept_digest_previous_signature,
    };
    if w.dirty {
        // write_digest covers only synced events; the retention digest is written between
        // commits, when nothing is pending.
        return Ok(0);
    }
    w.write_digest(
        Kind::Retention,
        false,
        Extra {
            retention: Some(info),
            ..Extra::default()
        },
    )?;
    for (s, _, _) in &removed {
        for path in [w.dir.join(file_name(*s)), w.dir.join(digest::log_name(*s))] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path)(e)),
            }
        }
    }
    sync_dir(&w.dir).map_err(io("sync", &w.dir))?;
    tracing::info!(
        files = removed.len(),
        first_kept_seq = last_removed.last_seq + 1,
        cutoff = %cutoff,
        "audit retention removed old trail files (signed retention digest written first)"
    );
    Ok(removed.len())
}
