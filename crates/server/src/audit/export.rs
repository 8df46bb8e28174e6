//! `keyhole audit export-digests DEST`: copies the digest logs to a directory an external witness
//! holds (another disk, a mount of another machine), appending what is new. Run it from cron (or
//! a timer) at least as often as the digest cadence: a rollback or rewrite of the local digests
//! after an export is then caught twice, by this command (the local log no longer extends the
//! exported copy) and by `keyhole audit verify --digests DEST`.
//!
//! Only real digests go to the witness: each new line must be a digest signed by a key the
//! operator trusts (the same `--public-key`/`--fingerprint`/`--config` as `verify`) and continue
//! the digest chain, and the logs are opened without following symbolic links, so whoever can
//! write the data directory can neither poison the witness nor have the export copy other files.
//! The copies are written owner-only (0600); digests hold no secret (hashes, times, sequence
//! numbers, the public key), so the operator may open them to its auditors.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::digest;
use super::err::{io, AuditError};
use super::files::open_read;
use super::keys::TrustedKeys;

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
    /// A line of a local log is not a digest of the operator's key that continues the chain.
    #[error("`{path}` line {line}: {why}; nothing was exported. Run `keyhole audit verify` on the data directory and investigate")]
    NotADigest {
        /// The local log.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong with it.
        why: String,
    },
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

fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_read(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Checks every digest line of `logs` (in order): each must be a digest signed by a trusted key,
/// numbered after the one before it, and carry its signature, except where an accepted
/// discontinuity later explains a break (the digests it gave up).
fn check_logs(logs: &[(u64, PathBuf, Vec<u8>)], keys: &TrustedKeys) -> Result<(), ExportError> {
    let mut all = Vec::new();
    for (_, path, bytes) in logs {
        for (i, line) in bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let signed = digest::check(line, keys).map_err(|e| ExportError::NotADigest {
                path: path.clone(),
                line: i + 1,
                why: e.to_string(),
            })?;
            all.push((path, i + 1, signed));
        }
    }
    let last_discontinuity = all
        .iter()
        .rposition(|(_, _, s)| s.digest.kind == digest::Kind::Discontinuity);
    for (n, pair) in all.windows(2).enumerate() {
        let [(_, _, prev), (path, line, cur)] = pair else {
            continue;
        };
        let numbered = cur.digest.digest_seq > prev.digest.digest_seq;
        let linked = cur.digest.digest_seq == prev.digest.digest_seq + 1
            && cur.digest.previous_digest_signature == prev.signature;
        let explained = cur.digest.kind == digest::Kind::Discontinuity
            || last_discontinuity.is_some_and(|d| d > n + 1);
        if !numbered || !(linked || explained) {
            return Err(ExportError::NotADigest {
                path: (*path).clone(),
                line: *line,
                why: format!(
                    "digest #{} does not continue digest #{} (removed, replayed or inserted digests)",
                    cur.digest.digest_seq, prev.digest.digest_seq
                ),
            });
        }
    }
    Ok(())
}

/// How a local digest log stands to the copy a witness holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Against<'a> {
    /// The same bytes: nothing to export.
    Same,
    /// The local log extends the copy by these bytes.
    Extends(&'a [u8]),
    /// The local log no longer extends the copy (rolled back or rewritten): why.
    Diverged(&'static str),
}

/// Compares a local log with its exported copy; an export only ever extends a copy.
pub fn against<'a>(copy: &[u8], local: &'a [u8]) -> Against<'a> {
    if copy == local {
        Against::Same
    } else if let Some(rest) = local.strip_prefix(copy) {
        Against::Extends(rest)
    } else if copy.starts_with(local) {
        Against::Diverged("the exported copy holds digests the local log no longer has")
    } else {
        Against::Diverged("their digests differ")
    }
}

/// The digest logs of `audit_dir` as they may be exported: each with its file name and its
/// complete lines, after checking every digest with `keys` (nothing is exported unless all check
/// out). For destinations other than a directory (an S3 bucket of another store).
pub fn checked_logs(
    audit_dir: &Path,
    keys: &TrustedKeys,
) -> Result<Vec<(String, PathBuf, Vec<u8>)>, ExportError> {
    let mut logs = Vec::new();
    for (seq, path) in digest::digest_logs(audit_dir).map_err(io("list", audit_dir))? {
        let mut local = read_no_follow(&path).map_err(io("read", &path))?;
        // Only complete lines: a digest being written right now is exported next time.
        let complete = local.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        local.truncate(complete);
        logs.push((seq, path, local));
    }
    check_logs(&logs, keys)?;
    Ok(logs
        .into_iter()
        .map(|(seq, path, bytes)| (digest::log_name(seq), path, bytes))
        .collect())
}

/// Copies the digest logs of `audit_dir` into `dest` (created owner-only if missing), after
/// checking each digest with `keys`.
pub fn export_digests(
    audit_dir: &Path,
    dest: &Path,
    keys: &TrustedKeys,
) -> Result<Exported, ExportError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dest).map_err(io("create", dest))?;
    let mut out = Exported::default();
    // Nothing is exported unless every digest checks out.
    for (name, path, local) in checked_logs(audit_dir, keys)? {
        let target = dest.join(&name);
        let exported = match read_no_follow(&target) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &target)(e).into()),
        };
        let lines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count();
        match exported {
            None => {
                let tmp = dest.join(format!(".{name}.tmp"));
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut f = options.open(&tmp).map_err(io("create", &tmp))?;
                f.write_all(&local)
                    .and_then(|()| f.sync_all())
                    .map_err(io("write", &tmp))?;
                std::fs::rename(&tmp, &target).map_err(io("rename into place", &target))?;
                out.new_files += 1;
                out.digests += lines(&local);
            }
            Some(old) => match against(&old, &local) {
                Against::Same => out.unchanged += 1,
                Against::Extends(rest) => {
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
                Against::Diverged(why) => {
                    return Err(ExportError::Diverged {
                        local: path,
                        exported: target,
                        dest: dest.to_owned(),
                        why,
                    });
                }
            },
        }
    }
    std::fs::File::open(dest)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dest))?;
    Ok(out)
}
