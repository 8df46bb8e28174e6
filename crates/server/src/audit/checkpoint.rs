//! The checkpoint: an HMAC-signed note of where the trail ended at the last commit, so that
//! `verify` can tell a trail cut at its tail from a complete one.
//!
//! The file `checkpoint` holds two fixed-size slots written alternately (by sequence number
//! parity), so a crash while one is being overwritten leaves the other intact. The writer updates
//! it after every commit and syncs it at most every [`crate::audit::sink::CHECKPOINT_SYNC_INTERVAL`]:
//! a process crash loses nothing (the page cache survives it); a power loss can leave the
//! checkpoint up to that interval behind the trail, which `verify` accepts.
//!
//! # Security
//! The MAC key is HMAC-SHA256(master key, [`KEY_LABEL`]): only a holder of the deployment's master
//! key can forge a checkpoint. Someone who can write the trail but not read the master key cannot
//! cut events off the tail without `verify` noticing.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// File name of the checkpoint inside the audit directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Label of the MAC key derivation.
pub const KEY_LABEL: &[u8] = b"keyhole audit checkpoint v1";
/// Bytes per slot (JSON padded with spaces, newline-terminated).
pub const SLOT_BYTES: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// The MAC key, derived from the master key.
#[derive(Clone)]
pub struct CheckpointKey([u8; 32]);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(<redacted>)")
    }
}

impl CheckpointKey {
    /// Derives the key from the master key's bytes.
    pub fn derive(master_key: &[u8]) -> CheckpointKey {
        let mut out = [0u8; 32];
        if let Ok(mut mac) = HmacSha256::new_from_slice(master_key) {
            mac.update(KEY_LABEL);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        CheckpointKey(out)
    }

    /// The key's bytes (for the retention anchor's MAC).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, c: &Fields<'_>) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.0).ok()?;
        mac.update(format!("{}\n{}\n{}\n{}", c.file, c.offset, c.seq, c.hash).as_bytes());
        Some(mac)
    }
}

struct Fields<'a> {
    file: &'a str,
    offset: u64,
    seq: u64,
    hash: &'a str,
}

/// Where the trail ended at a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The trail file holding the last committed event.
    pub file: String,
    /// The byte length of that file after the commit.
    pub offset: u64,
    /// The last committed event's sequence number.
    pub seq: u64,
    /// The last committed event's hash.
    pub hash: String,
    /// Hex HMAC-SHA256 over the four fields above.
    pub mac: String,
}

impl Checkpoint {
    /// A signed checkpoint.
    pub fn new(key: &CheckpointKey, file: &str, offset: u64, seq: u64, hash: &str) -> Checkpoint {
        let fields = Fields {
            file,
            offset,
            seq,
            hash,
        };
        let mac = key
            .mac(&fields)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        Checkpoint {
            file: file.to_owned(),
            offset,
            seq,
            hash: hash.to_owned(),
            mac,
        }
    }

    /// Whether the MAC is right (constant-time comparison).
    pub fn is_authentic(&self, key: &CheckpointKey) -> bool {
        let Ok(tag) = hex::decode(&self.mac) else {
            return false;
        };
        key.mac(&Fields {
            file: &self.file,
            offset: self.offset,
            seq: self.seq,
            hash: &self.hash,
        })
        .is_some_and(|m| m.verify_slice(&tag).is_ok())
    }
}

/// Writes `cp` into its slot of `file`, and syncs the file when `sync` is set.
pub fn write_slot(file: &mut File, cp: &Checkpoint, sync: bool) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec(cp).map_err(std::io::Error::other)?;
    if buf.len() >= SLOT_BYTES {
        return Err(std::io::Error::other("checkpoint record too long"));
    }
    buf.resize(SLOT_BYTES - 1, b' ');
    buf.push(b'\n');
    let slot = cp.seq % 2;
    file.seek(SeekFrom::Start(slot * SLOT_BYTES as u64))?;
    file.write_all(&buf)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

/// What the checkpoint file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No checkpoint file.
    Absent,
    /// A file, but no slot with a valid MAC.
    Damaged,
    /// The authentic slot with the highest sequence number.
    Valid(Checkpoint),
}

/// Reads the checkpoint under `dir`.
pub fn read(dir: &Path, key: &CheckpointKey) -> std::io::Result<Found> {
    let mut f = match File::open(dir.join(CHECKPOINT_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let best = buf
        .chunks(SLOT_BYTES)
        .filter_map(|slot| serde_json::from_slice::<Checkpoint>(slot.trim_ascii()).ok())
        .filter(|cp| cp.is_authentic(key))
        .max_by_key(|cp| cp.seq);
    Ok(best.map_or(Found::Damaged, Found::Valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_alternate_and_the_newest_authentic_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let key = CheckpointKey::derive(b"master");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.path().join(CHECKPOINT_FILE))
            .unwrap();
        assert_eq!(read(dir.path(), &key).unwrap(), Found::Damaged);
        let a = Checkpoint::new(&key, "audit-1.jsonl", 100, 1, "aa");
        let b = Checkpoint::new(&key, "audit-1.jsonl", 200, 2, "bb");
        write_slot(&mut f, &a, true).unwrap();
        write_slot(&mut f, &b, false).unwrap();
        assert_eq!(read(dir.path(), &key).unwrap(), Found::Valid(b.clone()));
        // A forged slot (wrong key) is ignored.
        let other = CheckpointKey::derive(b"other");
        let forged = Checkpoint::new(&other, "audit-1.jsonl", 50, 3, "cc");
        write_slot(&mut f, &forged, true).unwrap();
        assert_eq!(read(dir.path(), &key).unwrap(), Found::Valid(b));
        assert_eq!(read(dir.path(), &other).unwrap(), Found::Valid(forged));
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read(empty.path(), &key).unwrap(), Found::Absent);
    }

    #[test]
    fn an_edited_field_breaks_the_mac() {
        let key = CheckpointKey::derive(b"master");
        let mut cp = Checkpoint::new(&key, "f", 10, 1, "h");
        assert!(cp.is_authentic(&key));
        cp.offset = 9;
        assert!(!cp.is_authentic(&key));
        assert!(!format!("{key:?}").contains('0'));
    }
}
