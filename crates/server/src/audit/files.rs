//! The files of the trail: naming (`audit-S.jsonl`, `digest-S.jsonl`), owner-only creation,
//! crash recovery of an incomplete final line, the comparison of an open file with the one on
//! disk (tampering), and the signed genesis digest written when an account is created.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::chain::GENESIS_HASH;
use super::digest::{self, Digest, Head, Kind};
use super::err::AuditError;
use super::keys::{Signer, SIGNATURE_ALGORITHM};

/// The trail files under `dir`, oldest first: (first sequence number, path).
pub fn trail_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    numbered_files(dir, "audit-")
}

/// The files `<prefix><number>.jsonl` under `dir`, by number.
pub(crate) fn numbered_files(dir: &Path, prefix: &str) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        files.push((seq, entry.path()));
    }
    files.sort();
    Ok(files)
}

/// The name of the trail file whose first event is `seq`.
pub fn file_name(seq: u64) -> String {
    format!("audit-{seq:020}.jsonl")
}

/// RFC 3339, UTC, milliseconds: the format of `eventTime` and digest times (so that they compare
/// as strings).
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Opens (creating) a trail file or digest log for appending, owner-only. A symbolic link
/// planted at the name is refused (`ELOOP`), never followed: the trail is written only into the
/// audit directory's own files.
pub(crate) fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(no_follow());
    }
    let file = options.open(path)?;
    regular(file, path)
}

/// Opens `path` for reading if it is a regular file, without following a symbolic link.
pub(crate) fn open_read(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(no_follow());
    }
    let file = options.open(path)?;
    regular(file, path)
}

#[cfg(unix)]
fn no_follow() -> i32 {
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0)
}

fn regular(file: File, path: &Path) -> std::io::Result<File> {
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::other(format!(
            "`{}` is not a regular file",
            path.display()
        )))
    }
}

/// Creates the audit directory owner-only (0700) and makes its existing files owner-only (0600).
pub(crate) fn make_private(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let want = |path: &Path, mode: u32| -> std::io::Result<()> {
            let meta = std::fs::metadata(path)?;
            if meta.permissions().mode() & 0o777 != mode {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            Ok(())
        };
        want(dir, 0o700)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                want(&entry.path(), 0o600)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Why the file at `path` is not the open `file` of length `len`, if it is not.
pub(crate) fn differs(file: &File, path: &Path, len: u64) -> Option<String> {
    let open = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot stat the open file: {e}")),
    };
    let disk = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("it is gone from the directory ({e})")),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (open.dev(), open.ino()) != (disk.dev(), disk.ino()) {
            return Some(format!(
                "it was replaced: the directory entry is inode {}, the gateway writes inode {}",
                disk.ino(),
                open.ino()
            ));
        }
    }
    if disk.len() != len || open.len() != len {
        return Some(format!(
            "it holds {} bytes, but the gateway wrote {len} (cut or extended by someone else)",
            disk.len()
        ));
    }
    None
}

/// Opens (creating) trail file `seq` and its digest log, synced into the directory; returns
/// them with their lengths.
pub(crate) fn open_pair(dir: &Path, seq: u64) -> Result<(File, u64, File, u64), AuditError> {
    let io = |action: &'static str, path: PathBuf| {
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    };
    let path = dir.join(file_name(seq));
    let file = open_append(&path).map_err(io("create", path.clone()))?;
    let len = file.metadata().map_err(io("stat", path))?.len();
    let log_path = dir.join(digest::log_name(seq));
    let log = open_append(&log_path).map_err(io("create", log_path.clone()))?;
    let log_len = log.metadata().map_err(io("stat", log_path))?.len();
    sync_dir(dir).map_err(io("sync", dir.to_owned()))?;
    Ok((file, len, log, log_len))
}

/// Cuts an incomplete final line left by a crash mid-write (it was never acknowledged:
/// acknowledgement follows the fsync of whole lines; a digest line is used only once complete).
pub(crate) fn cut_incomplete_line(path: &Path) -> Result<(), AuditError> {
    let io = |action: &'static str| {
        let path = path.to_owned();
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    };
    let f = File::open(path).map_err(io("open"))?;
    let total = f.metadata().map_err(io("stat"))?.len();
    let mut reader = BufReader::new(f);
    let mut line = Vec::new();
    let mut complete_len = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io("read"))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        complete_len += n as u64;
    }
    if complete_len < total {
        tracing::warn!(
            file = %path.display(),
            bytes = total - complete_len,
            "removing an incomplete final line left by an interrupted write"
        );
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| {
                f.set_len(complete_len)?;
                f.sync_all()
            })
            .map_err(io("truncate"))?;
    }
    Ok(())
}

/// The genesis digest of a new account: digest #1, before any event, in
/// `digest-00000000000000000001.jsonl` beside an empty first trail file. Called while the
/// account is being created (before `account.json` is written). Leftovers of an interrupted
/// creation (only a genesis, no events) are replaced; anything else is refused.
pub fn genesis(
    dir: &Path,
    signer: &Signer,
    account_id: &str,
    node_id: Option<&str>,
    now: SystemTime,
) -> Result<(), AuditError> {
    let io = |action: &'static str, path: PathBuf| {
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    };
    make_private(dir).map_err(io("create the audit directory", dir.to_owned()))?;
    let trail = trail_files(dir).map_err(io("list", dir.to_owned()))?;
    let logs = digest::digest_logs(dir).map_err(io("list", dir.to_owned()))?;
    let mut leftover = true;
    for (_, p) in &trail {
        leftover &= std::fs::metadata(p).map(|m| m.len() == 0).unwrap_or(false);
    }
    for (_, p) in &logs {
        let lines = digest::read_log(p).map_err(io("read", p.clone()))?;
        leftover &= lines.lines.len() <= 1
            && lines
                .lines
                .iter()
                .all(|l| super::digest::contains_genesis(l));
    }
    if !leftover {
        return Err(AuditError::Damaged {
            position: dir.display().to_string(),
            reason: "the audit directory already holds a trail, but the account is being created (account.json is missing): restore account.json from a backup, or move the data directory aside".into(),
        });
    }
    for (_, p) in trail.iter().chain(&logs) {
        std::fs::remove_file(p).map_err(io("remove", p.clone()))?;
    }
    let (file, _, mut log, _) = open_pair(dir, 1)?;
    let end = rfc3339(now);
    let public = signer.public();
    let d = Digest {
        digest_version: digest::DIGEST_VERSION,
        digest_seq: 1,
        kind: Kind::Genesis,
        account_id: account_id.to_owned(),
        node_id: node_id.map(str::to_owned),
        digest_start_time: end.clone(),
        digest_end_time: end,
        cadence_seconds: 0,
        file: file_name(1),
        segment: None,
        head: Head {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
            offset: 0,
        },
        closed: None,
        start: None,
        retention: None,
        discontinuity: None,
        tampered: None,
        previous_digest_signature: String::new(),
        signature_algorithm: SIGNATURE_ALGORITHM.into(),
        public_key: public.embedded(),
        public_key_fingerprint: public.fingerprint().to_owned(),
    };
    let (line, _) = digest::encode(&d, signer).map_err(AuditError::Encode)?;
    let path = dir.join(digest::log_name(1));
    log.write_all(&line)
        .and_then(|()| log.sync_all())
        .and_then(|()| file.sync_all())
        .map_err(io("write the genesis digest to", path))?;
    Ok(())
}
