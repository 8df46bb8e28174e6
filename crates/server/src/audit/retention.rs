//! Retention: whole trail files older than `audit_retain_days` are removed, and an HMAC-signed
//! anchor records where the remaining trail starts, so `verify` can still tell retention from
//! tampering.
//!
//! The anchor (file `anchor`) names the first retained event's sequence number and the hash of
//! the last removed event (the first retained event's `prevHash`). It is written durably (temp
//! file, fsync, rename, directory fsync) *before* any file is removed: a crash in between leaves
//! files the anchor already excludes, which `verify` skips and the next pruning removes.
//!
//! # Security
//! The MAC key is the checkpoint's (derived from the master key). Removing retained files, or
//! removing old files without a matching anchor, makes the first file fail `verify`; moving the
//! anchor forward needs the master key.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::chain::{self, GENESIS_HASH};
use super::checkpoint::CheckpointKey;
use super::sink::trail_files;

/// File name of the anchor inside the audit directory.
pub const ANCHOR_FILE: &str = "anchor";
const MAC_LABEL: &str = "keyhole audit anchor v1";

/// Where the retained trail starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Sequence number of the first retained event.
    pub first_seq: u64,
    /// Hash of the last removed event (the first retained event's `prevHash`).
    pub prev_hash: String,
    /// When the files were removed (RFC 3339).
    pub pruned_at: String,
    /// Hex HMAC-SHA256 over the fields above.
    pub mac: String,
}

fn mac(
    key: &CheckpointKey,
    first_seq: u64,
    prev_hash: &str,
    pruned_at: &str,
) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key.bytes()).ok()?;
    m.update(format!("{MAC_LABEL}\n{first_seq}\n{prev_hash}\n{pruned_at}").as_bytes());
    Some(m)
}

impl Anchor {
    /// A signed anchor.
    pub fn new(key: &CheckpointKey, first_seq: u64, prev_hash: &str, pruned_at: &str) -> Anchor {
        let tag = mac(key, first_seq, prev_hash, pruned_at)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        Anchor {
            first_seq,
            prev_hash: prev_hash.to_owned(),
            pruned_at: pruned_at.to_owned(),
            mac: tag,
        }
    }

    /// Whether the MAC is right (constant-time comparison).
    pub fn is_authentic(&self, key: &CheckpointKey) -> bool {
        let Ok(tag) = hex::decode(&self.mac) else {
            return false;
        };
        mac(key, self.first_seq, &self.prev_hash, &self.pruned_at)
            .is_some_and(|m| m.verify_slice(&tag).is_ok())
    }
}

/// What the anchor file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No anchor: nothing was ever removed, the trail starts at event #1.
    Absent,
    /// An anchor that does not parse or whose MAC is wrong.
    Damaged,
    /// An authentic anchor.
    Valid(Anchor),
}

/// Reads the anchor under `dir`.
pub fn read(dir: &Path, key: &CheckpointKey) -> std::io::Result<Found> {
    match std::fs::read(dir.join(ANCHOR_FILE)) {
        Ok(bytes) => Ok(match serde_json::from_slice::<Anchor>(&bytes) {
            Ok(a) if a.is_authentic(key) => Found::Valid(a),
            _ => Found::Damaged,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Found::Absent),
        Err(e) => Err(e),
    }
}

fn write(dir: &Path, anchor: &Anchor) -> std::io::Result<()> {
    let tmp = dir.join(format!("{ANCHOR_FILE}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(anchor).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(ANCHOR_FILE))?;
    File::open(dir)?.sync_all()
}

/// The last complete event's chain link in `path`, if it holds one.
fn last_link(path: &Path) -> std::io::Result<Option<chain::Link>> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    let mut last = None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(body) = line.strip_suffix(b"\n") {
            if let Ok(link) = chain::check_line(body) {
                last = Some(link);
            }
        }
    }
    Ok(last)
}

/// Removes the oldest trail files last modified more than `retain` before `now`, never the
/// newest file and never a file after one that is kept. Returns how many were removed.
pub fn prune(
    dir: &Path,
    key: &CheckpointKey,
    retain: Duration,
    now: SystemTime,
) -> std::io::Result<usize> {
    let files = trail_files(dir)?;
    let Some(cutoff) = now.checked_sub(retain) else {
        return Ok(0);
    };
    // The contiguous oldest run of expired files, keeping at least the newest file.
    let mut expired = 0;
    for (_, path) in files.iter().take(files.len().saturating_sub(1)) {
        if std::fs::metadata(path)?.modified()? >= cutoff {
            break;
        }
        expired += 1;
    }
    if expired == 0 {
        return Ok(0);
    }
    let (removed, kept) = files.split_at(expired);
    let Some((first_kept, _)) = kept.first() else {
        return Ok(0);
    };
    let mut prev_hash = None;
    for (_, path) in removed.iter().rev() {
        if let Some(link) = last_link(path)? {
            prev_hash = Some(link.hash);
            break;
        }
    }
    let prev_hash = match prev_hash {
        Some(h) => h,
        // Only empty files go: the chain continues from the previous anchor (or the start).
        None => match read(dir, key)? {
            Found::Valid(a) => a.prev_hash,
            _ => GENESIS_HASH.to_owned(),
        },
    };
    let pruned_at = chrono::DateTime::<chrono::Utc>::from(now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    write(dir, &Anchor::new(key, *first_kept, &prev_hash, &pruned_at))?;
    for (_, path) in removed {
        std::fs::remove_file(path)?;
    }
    File::open(dir)?.sync_all()?;
    tracing::info!(
        files = removed.len(),
        first_retained = first_kept,
        "audit retention removed old trail files"
    );
    Ok(removed.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::tests_support::sample_event;
    use crate::audit::sink::{AuditSink, Rotation};
    use crate::audit::verify::verify;
    use crate::metrics::SinkStats;
    use std::sync::Arc;

    use crate::audit::verify::tests::{key, trail};

    /// A trail of `n` events, one file per event (1-byte rotation), every file dated `age` ago.
    async fn old_trail(n: usize, age: Duration) -> tempfile::TempDir {
        let dir = trail(n, 1).await;
        let then = SystemTime::now() - age;
        for (_, path) in trail_files(dir.path()).unwrap() {
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
        dir
    }

    fn intact(dir: &Path) -> crate::audit::verify::Report {
        let r = verify(dir, &key()).unwrap();
        assert_eq!(r.problem, None, "{r:?}");
        r
    }

    #[tokio::test]
    async fn old_files_go_and_the_rest_still_verifies() {
        let dir = old_trail(4, Duration::from_secs(10 * 86_400)).await;
        let before = trail_files(dir.path()).unwrap().len();
        assert!(before >= 4, "{before} files");
        // Too young: nothing goes.
        assert_eq!(
            prune(
                dir.path(),
                &key(),
                Duration::from_secs(30 * 86_400),
                SystemTime::now()
            )
            .unwrap(),
            0
        );
        let removed = prune(
            dir.path(),
            &key(),
            Duration::from_secs(86_400),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(removed, before - 1, "all but the newest file");
        let r = intact(dir.path());
        assert!(
            r.notes.iter().any(|n| n.contains("removed by retention")),
            "{r:?}"
        );
        // A writer reopening the trail continues the chain after the anchor.
        let sink = AuditSink::open(
            dir.path(),
            key(),
            Rotation::default(),
            Arc::new(SinkStats::default()),
        )
        .unwrap();
        sink.record_durable(sample_event()).await.unwrap();
        drop(sink);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(intact(dir.path()).events >= 1);
    }

    #[tokio::test]
    async fn removing_kept_files_or_forging_the_anchor_is_caught() {
        let dir = old_trail(4, Duration::from_secs(10 * 86_400)).await;
        // Keep the newest two files by dating them now.
        let files = trail_files(dir.path()).unwrap();
        for (_, p) in files.iter().rev().take(2) {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(SystemTime::now())
                .unwrap();
        }
        prune(
            dir.path(),
            &key(),
            Duration::from_secs(86_400),
            SystemTime::now(),
        )
        .unwrap();
        intact(dir.path());
        let kept = trail_files(dir.path()).unwrap();
        assert_eq!(kept.len(), 2);

        // Deleting a kept file (the oldest one left) is not retention.
        let first = kept[0].1.clone();
        let saved = std::fs::read(&first).unwrap();
        std::fs::remove_file(&first).unwrap();
        let r = verify(dir.path(), &key()).unwrap();
        assert!(r.problem.is_some(), "{r:?}");
        std::fs::write(&first, saved).unwrap();
        intact(dir.path());

        // Moving the anchor forward without the key breaks its MAC.
        let path = dir.path().join(ANCHOR_FILE);
        let mut a: Anchor = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        a.first_seq += 1;
        std::fs::write(&path, serde_json::to_vec(&a).unwrap()).unwrap();
        let r = verify(dir.path(), &key()).unwrap();
        assert!(r.problem.is_some_and(|p| p.reason.contains("anchor")));
    }

    #[tokio::test]
    async fn a_crash_between_anchor_and_removal_is_finished_later() {
        let dir = old_trail(3, Duration::from_secs(10 * 86_400)).await;
        let files = trail_files(dir.path()).unwrap();
        let (first_kept, _) = files.last().unwrap().clone();
        let prev = last_link(&files[files.len() - 2].1).unwrap().unwrap().hash;
        // The anchor is written, then the process dies before removing anything.
        write(
            dir.path(),
            &Anchor::new(&key(), first_kept, &prev, "2026-01-01T00:00:00Z"),
        )
        .unwrap();
        let r = intact(dir.path());
        assert!(r.notes.iter().any(|n| n.contains("still present")), "{r:?}");
        prune(
            dir.path(),
            &key(),
            Duration::from_secs(86_400),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(trail_files(dir.path()).unwrap().len(), 1);
        intact(dir.path());
    }
}
