//! `keyhole audit export-digests DEST`: copies the digest logs to a directory an external witness
//! holds (another disk, a mount of another machine), appending what is new. Run it from cron (or
//! a timer) at least as often as the digest cadence: a rollback or rewrite of the local digests
//! after an export is then caught twice, by this command (the local log no longer extends the
//! exported copy) and by `keyhole audit verify --digests DEST`.
//!
//! Digests hold no secret (hashes, times, sequence numbers, the public key), so the copy may be
//! readable by whoever audits.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::digest;
use super::err::{io, AuditError};

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    /// Digest logs copied for the first time.
    pub new_files: usize,
    /// Logs that had new digests appended.
    pub extended: usize,
    /// Logs already up to date.
    pub unchanged: usize,
    /// Digest lines written in all.
    pub digests: usize,
}

/// Why an export refused to go on.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An I/O failure.
    #[error(transparent)]
    Io(#[from] AuditError),
    /// The local log does not extend the exported copy.
    #[error("`{local}` does not extend the exported copy `{exported}`: {why}. The local digests were rolled back or rewritten since the last export: run `keyhole audit verify --digests {dest}` and investigate; the exported copy was left as it was")]
    Diverged {
        /// The local log.
        local: PathBuf,
        /// The exported copy.
        exported: PathBuf,
        /// The export directory.
        dest: PathBuf,
        /// How they differ.
        why: &'static str,
    },
}

/// Copies the digest logs of `audit_dir` into `dest` (created if missing).
pub fn export_digests(audit_dir: &Path, dest: &Path) -> Result<Exported, ExportError> {
    std::fs::create_dir_all(dest).map_err(io("create", dest))?;
    let mut out = Exported::default();
    for (seq, path) in digest::digest_logs(audit_dir).map_err(io("list", audit_dir))? {
        let mut local = std::fs::read(&path).map_err(io("read", &path))?;
        // Only complete lines: a digest being written right now is exported next time.
        let complete = local.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        local.truncate(complete);
        let target = dest.join(digest::log_name(seq));
        let exported = match std::fs::read(&target) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &target)(e).into()),
        };
        let lines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count();
        match exported {
            None => {
                let tmp = dest.join(format!(".{}.tmp", digest::log_name(seq)));
                let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
                f.write_all(&local)
                    .and_then(|()| f.sync_all())
                    .map_err(io("write", &tmp))?;
                std::fs::rename(&tmp, &target).map_err(io("rename into place", &target))?;
                out.new_files += 1;
                out.digests += lines(&local);
            }
            Some(old) if old == local => out.unchanged += 1,
            Some(old) if local.starts_with(&old) => {
                let rest = local.get(old.len()..).unwrap_or_default();
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&target)
                    .map_err(io("open", &target))?;
                f.write_all(rest)
                    .and_then(|()| f.sync_all())
                    .map_err(io("append to", &target))?;
                out.extended += 1;
                out.digests += lines(rest);
            }
            Some(old) => {
                let why = if old.starts_with(&local) {
                    "the exported copy holds digests the local log no longer has"
                } else {
                    "their digests differ"
                };
                return Err(ExportError::Diverged {
                    local: path,
                    exported: target,
                    dest: dest.to_owned(),
                    why,
                });
            }
        }
    }
    std::fs::File::open(dest)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dest))?;
    Ok(out)
}
