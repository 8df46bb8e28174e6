//! The on-disk line format: an event, its sequence number and the previous event's hash, then
//! its own hash over everything before it.
//!
//! A line is the event's JSON object with `"seq":N,"prevHash":"…"` appended, then
//! `,"hash":"H"}` where `H` is the lowercase hex SHA-256 of the line's bytes up to (not including)
//! that suffix. Verification hashes the bytes as written and never re-serializes, so it does not
//! depend on serde's field order or number formatting.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::event::AuditEvent;

/// `prevHash` of the first event of a trail.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bytes of `,"hash":"` + 64 hex digits + `"}`.
pub const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Chained<'a> {
    #[serde(flatten)]
    event: &'a AuditEvent,
    seq: u64,
    prev_hash: &'a str,
}

/// The chain fields of a line, read back.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// Position in the trail, from 1, with no gaps.
    pub seq: u64,
    /// The previous line's `hash`.
    pub prev_hash: String,
    /// This line's hash.
    pub hash: String,
}

/// Serializes `event` as one line (with the trailing newline) and returns it with its hash.
pub fn encode(
    event: &AuditEvent,
    seq: u64,
    prev_hash: &str,
) -> Result<(Vec<u8>, String), serde_json::Error> {
    let mut line = serde_json::to_vec(&Chained {
        event,
        seq,
        prev_hash,
    })?;
    // INVARIANT: serde_json writes an object, so the last byte is `}`.
    line.pop();
    let hash = hex::encode(Sha256::digest(&line));
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    Ok((line, hash))
}

/// Why a line does not check out on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not JSON, or without the chain fields.
    #[error("not an audit record: {0}")]
    Malformed(String),
    /// The stored hash is not the hash of the line's content.
    #[error("content does not match its hash (the event was edited)")]
    HashMismatch,
}

/// Parses a line (without its newline) and checks its own hash.
pub fn check_line(line: &[u8]) -> Result<Link, LineError> {
    let link: Link =
        serde_json::from_slice(line).map_err(|e| LineError::Malformed(e.to_string()))?;
    let cut = line
        .len()
        .checked_sub(HASH_SUFFIX_LEN)
        .ok_or_else(|| LineError::Malformed("line too short".into()))?;
    let (content, suffix) = line.split_at(cut);
    let expected_suffix = format!(",\"hash\":\"{}\"}}", link.hash);
    if suffix != expected_suffix.as_bytes() {
        return Err(LineError::Malformed(
            "`hash` is not the last field of the record".into(),
        ));
    }
    if hex::encode(Sha256::digest(content)) != link.hash {
        return Err(LineError::HashMismatch);
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::tests_support::sample_event;

    #[test]
    fn encoded_lines_check_out_and_edits_do_not() {
        let e = sample_event();
        let (line, hash) = encode(&e, 7, GENESIS_HASH).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        let link = check_line(body).unwrap();
        assert_eq!(
            link,
            Link {
                seq: 7,
                prev_hash: GENESIS_HASH.into(),
                hash
            }
        );
        let text = String::from_utf8(body.to_vec()).unwrap();
        let edited = text.replace("PutObject", "GetObject");
        assert_eq!(check_line(edited.as_bytes()), Err(LineError::HashMismatch));
        assert!(matches!(
            check_line(b"{\"seq\":1}"),
            Err(LineError::Malformed(_))
        ));
        // The event itself round-trips from the line.
        let back: AuditEvent = serde_json::from_slice(body).unwrap();
        assert_eq!(back, e);
    }
}
