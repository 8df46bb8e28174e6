//! `keyhole audit verify`: walks the whole trail once, streaming, and names the first position
//! where it stops checking out.
//!
//! Detected: an edited event (its hash no longer matches), a deleted, inserted or reordered event
//! (its `prevHash` or `seq` does not follow), a missing, renamed or reordered file (file names
//! carry the first sequence number), a file cut short or an event removed from the tail (the
//! HMAC-signed checkpoint names a later position than the trail reaches).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::chain::{self, GENESIS_HASH};
use super::checkpoint::{self, Checkpoint, CheckpointKey, Found};
use super::err::AuditError;
use super::sink::trail_files;

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `file:line` (line from 1), or the file alone.
    pub position: String,
    /// What is wrong.
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Complete events that checked out before the first problem (or in all).
    pub events: u64,
    /// Trail files read.
    pub files: usize,
    /// The checkpoint used, if a valid one exists.
    pub checkpoint: Option<Checkpoint>,
    /// The first problem; `None` means the trail is intact.
    pub problem: Option<Problem>,
    /// Notes that do not make the trail invalid (an incomplete final line after the checkpoint).
    pub notes: Vec<String>,
}

/// Verifies the trail under `dir`.
pub fn verify(dir: &Path, key: &CheckpointKey) -> Result<Report, AuditError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    };
    let mut files = trail_files(dir).map_err(io("list", dir))?;
    // Retention: the signed anchor says where the kept trail starts and which hash it continues.
    let anchor = match super::retention::read(dir, key).map_err(io("read the anchor in", dir))? {
        super::retention::Found::Absent => None,
        super::retention::Found::Valid(a) => Some(a),
        super::retention::Found::Damaged => {
            return Ok(Report {
                events: 0,
                files: files.len(),
                checkpoint: None,
                problem: Some(Problem {
                    position: super::retention::ANCHOR_FILE.into(),
                    reason:
                        "the retention anchor has no valid HMAC (edited, or another master key)"
                            .into(),
                }),
                notes: Vec::new(),
            })
        }
    };
    let mut skipped = 0;
    if let Some(a) = &anchor {
        // Files the anchor already excludes (removal interrupted by a crash) are not checked.
        skipped = files.iter().take_while(|(s, _)| *s < a.first_seq).count();
        files.drain(..skipped);
    }
    let cp = match checkpoint::read(dir, key).map_err(io("read the checkpoint in", dir))? {
        Found::Valid(cp) => Some(cp),
        Found::Absent | Found::Damaged => None,
    };
    let mut report = Report {
        events: 0,
        files: files.len(),
        checkpoint: cp.clone(),
        problem: None,
        notes: Vec::new(),
    };
    let fail = |mut report: Report, position: String, reason: String| {
        report.problem = Some(Problem { position, reason });
        Ok(report)
    };
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut next_seq = 1u64;
    if let Some(a) = &anchor {
        prev_hash.clone_from(&a.prev_hash);
        next_seq = a.first_seq;
        report.notes.push(format!(
            "events before #{} were removed by retention at {} (signed anchor){}",
            a.first_seq,
            a.pruned_at,
            if skipped > 0 {
                format!("; {skipped} file(s) it excludes are still present and were not checked")
            } else {
                String::new()
            }
        ));
    }
    let mut reached_checkpoint = cp.is_none();
    let file_count = files.len();
    for (index, (first_seq, path)) in files.iter().enumerate() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_last_file = index + 1 == file_count;
        let f = File::open(path).map_err(io("open", path))?;
        let mut reader = BufReader::with_capacity(256 * 1024, f);
        let mut line = Vec::with_capacity(1024);
        let mut line_no = 0u64;
        let mut offset = 0u64;
        let mut first_in_file = true;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(io("read", path))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let position = format!("{name}:{line_no}");
            let Some(body) = line.strip_suffix(b"\n") else {
                let past_checkpoint = cp
                    .as_ref()
                    .is_none_or(|c| c.seq < next_seq || reached_checkpoint);
                if is_last_file && past_checkpoint {
                    report.notes.push(format!(
                        "{position}: incomplete final line ({n} bytes) from an interrupted write; it was never acknowledged and is removed at the next start"
                    ));
                    break;
                }
                return fail(
                    report,
                    position,
                    "incomplete line (the file was cut)".into(),
                );
            };
            let link = match chain::check_line(body) {
                Ok(l) => l,
                Err(e) => return fail(report, position, e.to_string()),
            };
            if first_in_file && link.seq != *first_seq {
                return fail(
                    report,
                    position,
                    format!(
                        "the file name says its first event is #{first_seq}, but it is #{} (a file was renamed or reordered)",
                        link.seq
                    ),
                );
            }
            first_in_file = false;
            if link.prev_hash != prev_hash || link.seq != next_seq {
                let reason = if link.seq != next_seq {
                    format!(
                        "expected event #{next_seq}, found #{} (an event was deleted, inserted or moved)",
                        link.seq
                    )
                } else {
                    "prevHash does not match the previous event (an event was deleted, inserted or moved)".into()
                };
                return fail(report, position, reason);
            }
            offset += n as u64;
            prev_hash = link.hash;
            next_seq += 1;
            report.events += 1;
            if let Some(c) = &cp {
                if c.seq == link.seq {
                    if c.file != name || c.offset != offset || c.hash != prev_hash {
                        return fail(
                            report,
                            position,
                            format!(
                                "does not match the checkpoint (event #{} should end {}:{} with hash {})",
                                c.seq, c.file, c.offset, c.hash
                            ),
                        );
                    }
                    reached_checkpoint = true;
                }
            }
        }
        if line_no == 0 && !is_last_file {
            return fail(report, name, "empty file in the middle of the trail".into());
        }
    }
    if let Some(c) = &cp {
        if !reached_checkpoint {
            let position = files
                .last()
                .and_then(|(_, p)| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "(no trail files)".into());
            return fail(
                report,
                position,
                format!(
                    "the trail ends at event #{}, but the checkpoint records event #{} ending {}:{} (events were cut from the tail)",
                    next_seq - 1,
                    c.seq,
                    c.file,
                    c.offset
                ),
            );
        }
    } else if report.events > 0 {
        let found = checkpoint::read(dir, key).map_err(io("read the checkpoint in", dir))?;
        let why = if found == Found::Absent {
            "is missing"
        } else {
            "has no slot with a valid HMAC (edited, or another master key)"
        };
        return fail(
            report,
            checkpoint::CHECKPOINT_FILE.into(),
            format!("the checkpoint {why}, so a cut tail cannot be ruled out"),
        );
    }
    Ok(report)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::event::tests_support::sample_event;
    use crate::audit::sink::{AuditSink, Rotation};
    use crate::metrics::SinkStats;
    use std::sync::Arc;
    use std::time::Duration;

    pub(crate) fn key() -> CheckpointKey {
        CheckpointKey::derive(b"master")
    }

    /// A trail of `n` events, rotated every `per_file` bytes.
    pub(crate) async fn trail(n: usize, max_bytes: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let sink = AuditSink::open(
            dir.path(),
            key(),
            Rotation {
                max_bytes,
                max_age: Duration::from_secs(3600),
                retain: None,
            },
            Arc::new(SinkStats::default()),
        )
        .unwrap();
        for i in 0..n {
            let mut e = sample_event();
            e.request_id = format!("REQ{i}");
            sink.record_durable(e).await.unwrap();
        }
        // Let the writer update the checkpoint after the last commit.
        drop(sink);
        tokio::time::sleep(Duration::from_millis(100)).await;
        dir
    }

    fn only_file(dir: &Path) -> std::path::PathBuf {
        trail_files(dir).unwrap().pop().unwrap().1
    }

    fn edit_lines(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        f(&mut lines);
        let mut out = lines.join("\n");
        out.push('\n');
        std::fs::write(path, out).unwrap();
    }

    fn problem(dir: &Path) -> Problem {
        verify(dir, &key()).unwrap().problem.expect("a problem")
    }

    #[tokio::test]
    async fn an_intact_trail_verifies() {
        let dir = trail(5, u64::MAX).await;
        let r = verify(dir.path(), &key()).unwrap();
        assert_eq!(r.problem, None, "{r:?}");
        assert_eq!(r.events, 5);
        assert_eq!(r.checkpoint.unwrap().seq, 5);
    }

    #[tokio::test]
    async fn an_edited_event_is_named() {
        let dir = trail(5, u64::MAX).await;
        let path = only_file(dir.path());
        edit_lines(&path, |l| l[2] = l[2].replace("REQ2", "REQX"));
        let p = problem(dir.path());
        assert!(p.position.ends_with(":3"), "{p:?}");
        assert!(p.reason.contains("edited"), "{p:?}");
    }

    #[tokio::test]
    async fn deleted_inserted_and_reordered_events_are_named() {
        let dir = trail(5, u64::MAX).await;
        let path = only_file(dir.path());
        let original = std::fs::read_to_string(&path).unwrap();
        edit_lines(&path, |l| {
            l.remove(1);
        });
        assert!(problem(dir.path()).position.ends_with(":2"));
        std::fs::write(&path, &original).unwrap();
        edit_lines(&path, |l| {
            let copy = l[0].clone();
            l.insert(3, copy);
        });
        assert!(problem(dir.path()).position.ends_with(":4"));
        std::fs::write(&path, &original).unwrap();
        edit_lines(&path, |l| l.swap(1, 2));
        assert!(problem(dir.path()).position.ends_with(":2"));
        std::fs::write(&path, &original).unwrap();
        assert_eq!(verify(dir.path(), &key()).unwrap().problem, None);
    }

    #[tokio::test]
    async fn a_cut_tail_is_caught_by_the_checkpoint() {
        let dir = trail(5, u64::MAX).await;
        let path = only_file(dir.path());
        edit_lines(&path, |l| {
            l.pop();
        });
        let p = problem(dir.path());
        assert!(p.reason.contains("cut from the tail"), "{p:?}");
        // Cut mid-line, too.
        let dir = trail(5, u64::MAX).await;
        let path = only_file(dir.path());
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 10).unwrap();
        let p = problem(dir.path());
        assert!(p.reason.contains("cut"), "{p:?}");
    }

    #[tokio::test]
    async fn a_missing_or_forged_checkpoint_is_reported() {
        let dir = trail(2, u64::MAX).await;
        let cp = dir.path().join(checkpoint::CHECKPOINT_FILE);
        std::fs::write(&cp, b"{}").unwrap();
        assert!(problem(dir.path()).reason.contains("valid HMAC"));
        std::fs::remove_file(&cp).unwrap();
        assert!(problem(dir.path()).reason.contains("missing"));
    }

    #[tokio::test]
    async fn a_deleted_or_reordered_file_is_named() {
        let dir = trail(4, 1).await;
        let files = trail_files(dir.path()).unwrap();
        assert!(files.len() >= 4);
        std::fs::remove_file(&files[1].1).unwrap();
        let p = problem(dir.path());
        assert!(p.position.starts_with("audit-"), "{p:?}");
        assert!(p.reason.contains("expected event #2"), "{p:?}");

        let dir = trail(4, 1).await;
        let files = trail_files(dir.path()).unwrap();
        let (a, b) = (&files[1].1, &files[2].1);
        let tmp = dir.path().join("swap");
        std::fs::rename(a, &tmp).unwrap();
        std::fs::rename(b, a).unwrap();
        std::fs::rename(&tmp, b).unwrap();
        let p = problem(dir.path());
        assert!(p.reason.contains("renamed or reordered"), "{p:?}");
    }

    #[tokio::test]
    async fn an_incomplete_line_after_the_checkpoint_is_only_a_note() {
        let dir = trail(3, u64::MAX).await;
        let path = only_file(dir.path());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"eventVersion\":").unwrap();
        let r = verify(dir.path(), &key()).unwrap();
        assert_eq!(r.problem, None);
        assert_eq!(r.events, 3);
        assert_eq!(r.notes.len(), 1);
    }
}
