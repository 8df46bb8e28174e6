//! The on-disk line format: an event, its sequence number and the previous event's hash, then
//! its own hash over everything before it.
//!
//! A line is the event's JSON object with `"seq":N,"prevHash":"…"` appended, then
//! `,"hash":"H"}` where `H` is the lowercase hex SHA-256 of the line's bytes up to (not including)
//! that suffix. Verification hashes the bytes as written and never re-serializes, so it does not
//! depend on serde's field order or number formatting.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::event::AuditEvent;

/// `prevHash` of the first event of a trail.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bytes of `,"hash":"` + 64 hex digits + `"}`.
pub const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

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
    let mut line = Vec::with_capacity(1024);
    let hash = encode_into(&mut line, event, seq, prev_hash)?;
    Ok((line, hash))
}

/// [`encode`], appending the line to `buf` (the audit writer encodes a whole batch into one
/// buffer); on an error `buf` is left as it was.
pub fn encode_into(
    buf: &mut Vec<u8>,
    event: &AuditEvent,
    seq: u64,
    prev_hash: &str,
) -> Result<String, serde_json::Error> {
    use std::io::Write as _;
    let start = buf.len();
    if let Err(e) = serde_json::to_writer(&mut *buf, event) {
        buf.truncate(start);
        return Err(e);
    }
    // INVARIANT: serde_json wrote an object, so the last byte is `}`; the chain fields go
    // inside it. `prev_hash` is lowercase hex: nothing in it needs escaping.
    buf.pop();
    // Writing into a Vec cannot fail.
    let _ = write!(buf, ",\"seq\":{seq},\"prevHash\":\"{prev_hash}\"");
    let hash = keyhole_sigv4::lower_hex(&Sha256::digest(buf.get(start..).unwrap_or_default()));
    buf.extend_from_slice(b",\"hash\":\"");
    buf.extend_from_slice(hash.as_bytes());
    buf.extend_from_slice(b"\"}\n");
    Ok(hash)
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

    /// Lines are byte for byte what the earlier encoder (serde's `flatten` of the event with the
    /// chain fields) wrote, so trails written before and after verify alike.
    #[test]
    fn lines_are_the_bytes_the_flattening_encoder_wrote() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Chained<'a> {
            #[serde(flatten)]
            event: &'a AuditEvent,
            seq: u64,
            prev_hash: &'a str,
        }
        let mut e = sample_event();
        let mut variants = vec![e.clone()];
        e.user_agent = Some("quote \" and \u{1b}[31m and é".into());
        e.error_code = Some("AccessDenied".into());
        e.response_elements = Some(serde_json::json!({"a": [1, 2.5, "x"]}));
        e.duration_ms = 0.037561000000000004;
        variants.push(e);
        for (i, e) in variants.iter().enumerate() {
            let prev = "ab".repeat(32);
            let mut old = serde_json::to_vec(&Chained {
                event: e,
                seq: 42,
                prev_hash: &prev,
            })
            .unwrap();
            old.pop();
            let hash = hex::encode(Sha256::digest(&old));
            old.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
            let mut buf = b"earlier line\n".to_vec();
            let h = encode_into(&mut buf, e, 42, &prev).unwrap();
            assert_eq!(h, hash, "variant {i}");
            assert_eq!(&buf[..13], b"earlier line\n");
            assert_eq!(
                String::from_utf8_lossy(&buf[13..]),
                String::from_utf8_lossy(&old),
                "variant {i}"
            );
        }
    }
}
