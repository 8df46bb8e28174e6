//! The metadata index: redb tables, their key encodings and record types.
//!
//! | table | key | value |
//! |---|---|---|
//! | `buckets` | bucket name | [`BucketRecord`] |
//! | `objects` | bucket id (32 bytes) ++ key bytes | [`ObjectRecord`] |
//! | `blob_refs` | `<bucket id>/<blob id>` | `()` (bodies kept in files) |
//! | `inline_bodies` | `<bucket id>/<blob id>` | the body (bodies kept in the index) |
//! | `uploads` | upload id | [`UploadRecord`] |
//! | `uploads_by_key` | bucket id ++ key ++ `0x00` ++ initiated (8 bytes BE) ++ upload id | `()` |
//! | `parts` | `<upload id>/<part number, 5 digits>` | [`PartRecord`] |
//! | `versions` | bucket id ++ key ++ `0x00` ++ `!seq` (8 bytes BE) | [`VersionRecord`] |
//! | `counters` | `version_seq` | last sequence number given to a version (u64) |
//!
//! `objects` holds each key's *current* version when it is an object (what GetObject and
//! ListObjects read, so they cost what they cost before versioning); `versions` holds every
//! other version: noncurrent objects and delete markers (a current delete marker too, the key
//! then being absent from `objects`). Each version carries a sequence number from `counters`,
//! given in its write transaction, so `!seq` orders a key's versions newest first.
//!
//! INVARIANT: a key is in `objects` exactly when its newest version is an object; every version
//! in `versions` is older than the key's entry in `objects`. Keys never contain U+0000, so a key's
//! `versions` entries sort right after the key itself and before every longer key.
//!
//! INVARIANT: bucket ids are exactly `ID_LEN` ASCII bytes, so within one bucket the order
//! of `objects` keys is the byte order of the object keys, which is the order S3 lists in.
//! Keys never contain U+0000, so `uploads_by_key` orders by key, then initiation time.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ChecksumSpec, ObjectInfo, ObjectMeta, PartSummary, StoreError};

pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
pub(crate) const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
pub(crate) const BLOB_REFS: TableDefinition<&str, ()> = TableDefinition::new("blob_refs");
/// Small object bodies, kept in the index: written in the transaction that installs their
/// object and removed in the one that drops its last version ([`ObjectRecord::inline`]).
pub(crate) const INLINE_BODIES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("inline_bodies");
pub(crate) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
pub(crate) const UPLOADS_BY_KEY: TableDefinition<&[u8], ()> =
    TableDefinition::new("uploads_by_key");
pub(crate) const PARTS: TableDefinition<&str, &[u8]> = TableDefinition::new("parts");
pub(crate) const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
pub(crate) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// The id of the `null` version, as S3 spells it.
pub(crate) const NULL_VERSION: &str = "null";

/// The `counters` entry of the last version sequence number.
pub(crate) const VERSION_SEQ: &str = "version_seq";

/// A bucket's versioning state (S3: unversioned, enabled, suspended; once enabled a bucket
/// can only be suspended, never unversioned again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Versioning was never enabled: a write replaces the object, a delete removes it.
    #[default]
    Unversioned,
    /// Every write adds a version with its own id; a delete adds a delete marker.
    Enabled,
    /// Writes make the `null` version (replacing the previous `null` one); a delete makes a
    /// `null` delete marker. Versions made while enabled stay.
    Suspended,
}

/// A bucket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BucketRecord {
    pub(crate) id: String,
    pub(crate) region: String,
    pub(crate) created: DateTime<Utc>,
    /// Absent in records written before versioning existed.
    #[serde(default)]
    pub(crate) versioning: Versioning,
    /// The bucket's Object Lock configuration: present once Object Lock is enabled (for good).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) object_lock: Option<crate::LockConfig>,
}

/// An object: where its body is and what it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    pub(crate) blob: String,
    pub(crate) size: u64,
    pub(crate) etag: String,
    pub(crate) last_modified: DateTime<Utc>,
    pub(crate) meta: ObjectMeta,
    pub(crate) parts_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) parts: Vec<PartSummary>,
    /// The version id; `None` is the `null` version (and every object written before
    /// versioning existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version_id: Option<String>,
    /// Sequence number of the write (0 for objects written before versioning existed).
    #[serde(default)]
    pub(crate) seq: u64,
    /// For an object made by CompleteMultipartUpload: the upload it completed, so that a
    /// repeated CompleteMultipartUpload of that upload answers with this object while it is
    /// still the key's current one (absent in records written before it was kept, and for
    /// every other object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) completed_upload: Option<String>,
    /// The body is in `inline_bodies` under the blob's reference, not in a file (absent, so
    /// false, in records written before bodies were kept inline, and for every file body).
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) inline: bool,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_false(b: &bool) -> bool {
    !*b
}

/// A noncurrent version or a delete marker (`versions` table).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "records live briefly while one key is read or written"
)]
pub(crate) enum VersionRecord {
    /// An object version.
    Object(ObjectRecord),
    /// A delete marker.
    DeleteMarker(MarkerRecord),
}

/// A delete marker: a version with no body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MarkerRecord {
    /// `None`: the `null` version.
    pub(crate) version_id: Option<String>,
    pub(crate) seq: u64,
    pub(crate) last_modified: DateTime<Utc>,
}

impl VersionRecord {
    pub(crate) fn version_id(&self) -> Option<&str> {
        match self {
            Self::Object(o) => o.version_id.as_deref(),
            Self::DeleteMarker(m) => m.version_id.as_deref(),
        }
    }
}

/// `versions` key of the version numbered `seq` of `key`.
pub(crate) fn version_key(bucket_id: &str, key: &str, seq: u64) -> Vec<u8> {
    let mut k = object_key(bucket_id, key);
    k.push(0);
    k.extend_from_slice(&(!seq).to_be_bytes());
    k
}

/// Bounds of all `versions` keys of `key`.
pub(crate) fn version_range(bucket_id: &str, key: &str) -> (Vec<u8>, Vec<u8>) {
    let mut lo = object_key(bucket_id, key);
    let mut hi = lo.clone();
    lo.push(0);
    hi.push(1);
    (lo, hi)
}

/// The object key of a `versions` key (everything between the bucket id and the `0x00`).
pub(crate) fn key_of_version(k: &[u8]) -> Option<&str> {
    let rest = k.get(crate::ID_LEN..k.len().checked_sub(9)?)?;
    std::str::from_utf8(rest).ok()
}

/// A new version id for sequence number `seq`: 16 hex digits of `seq` then 16 random ones
/// (32 URL-safe characters; the sequence number finds the version with one lookup).
pub(crate) fn new_version_id(seq: u64) -> String {
    format!("{seq:016x}{}", hex::encode(rand::random::<[u8; 8]>()))
}

/// The sequence number inside a version id this store made, or `None` when `id` is not one.
pub(crate) fn seq_of_version_id(id: &str) -> Option<u64> {
    if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(id.get(..16)?, 16).ok()
}

/// Takes the next version sequence number in the write transaction `w`.
pub(crate) fn next_seq(w: &redb::WriteTransaction) -> Result<u64, StoreError> {
    let mut t = w.open_table(COUNTERS)?;
    let last = t.get(VERSION_SEQ)?.map(|v| v.value()).unwrap_or(0);
    let next = last + 1;
    t.insert(VERSION_SEQ, next)?;
    Ok(next)
}

impl ObjectRecord {
    /// The object as the store describes it; its version id is shown as `null` for the null
    /// version when the bucket is (or was) versioned, and not at all when it never was.
    pub(crate) fn info_in(self, key: String, versioning: Versioning) -> ObjectInfo {
        let mut info = self.info(key);
        if versioning != Versioning::Unversioned && info.version_id.is_none() {
            info.version_id = Some(NULL_VERSION.to_owned());
        }
        info
    }

    /// The object as a write that made it answers: its version id only when the write made
    /// a version with an id of its own (versioning enabled). A write into a bucket whose
    /// versioning is suspended makes the `null` version, and S3 answers it without
    /// `x-amz-version-id` (the "Versioning suspended" example response of
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html); reads of that version
    /// name it `null` ([`ObjectRecord::info_in`]).
    pub(crate) fn written(self, key: String) -> ObjectInfo {
        self.info(key)
    }

    pub(crate) fn info(self, key: String) -> ObjectInfo {
        ObjectInfo {
            version_id: self.version_id.clone(),
            key,
            size: self.size,
            etag: self.etag,
            last_modified: self.last_modified,
            meta: self.meta,
            parts_count: self.parts_count,
            parts: self.parts,
        }
    }
}

/// A multipart upload in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    pub(crate) bucket: String,
    pub(crate) bucket_id: String,
    pub(crate) key: String,
    pub(crate) initiated: DateTime<Utc>,
    pub(crate) meta: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) checksum: Option<ChecksumSpec>,
}

/// A staged part.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    pub(crate) blob: String,
    pub(crate) etag: String,
    pub(crate) size: u64,
    pub(crate) last_modified: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) checksum: Option<String>,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(v)?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// `objects` key of `key` in bucket `bucket_id`.
pub(crate) fn object_key(bucket_id: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket_id.len() + key.len());
    k.extend_from_slice(bucket_id.as_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// `blob_refs` key.
pub(crate) fn blob_ref(bucket_id: &str, blob: &str) -> String {
    format!("{bucket_id}/{blob}")
}

/// `parts` key.
pub(crate) fn part_key(upload_id: &str, part_number: u32) -> String {
    format!("{upload_id}/{part_number:05}")
}

/// Bounds of all `parts` keys of one upload.
pub(crate) fn part_range(upload_id: &str) -> (String, String) {
    (format!("{upload_id}/"), format!("{upload_id}0"))
}

/// `uploads_by_key` key.
pub(crate) fn upload_key(
    bucket_id: &str,
    key: &str,
    initiated: DateTime<Utc>,
    upload_id: &str,
) -> Vec<u8> {
    let mut k = object_key(bucket_id, key);
    k.push(0);
    // Flip the sign bit so that the big-endian bytes order like the signed value.
    let t = (initiated.timestamp_micros() as u64) ^ (1 << 63);
    k.extend_from_slice(&t.to_be_bytes());
    k.extend_from_slice(upload_id.as_bytes());
    k
}

/// The upload id at the end of an `uploads_by_key` key.
pub(crate) fn upload_id_of(k: &[u8]) -> Option<&str> {
    let at = k.len().checked_sub(crate::ID_LEN)?;
    std::str::from_utf8(k.get(at..)?).ok()
}

/// The smallest byte string greater than every string that starts with `p`, or `None`
/// when there is none (all bytes `0xff`).
pub(crate) fn successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut s = p.to_vec();
    while let Some(last) = s.pop() {
        if last < u8::MAX {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Current time truncated to whole seconds.
pub(crate) fn now_secs() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// Current time truncated to milliseconds.
pub(crate) fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_prefixes() {
        assert_eq!(successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
        let p = "x/é".as_bytes();
        let s = successor(p).unwrap();
        for k in ["x/é", "x/é/zzz", "x/é\u{10ffff}"] {
            assert!(k.as_bytes() < s.as_slice());
        }
        assert!("x/ê".as_bytes() >= s.as_slice());
    }

    #[test]
    fn upload_keys_order_by_key_then_time() {
        let b = "0".repeat(32);
        let id = "f".repeat(32);
        let t0 = DateTime::from_timestamp(-5, 0).unwrap();
        let t1 = DateTime::from_timestamp(10, 0).unwrap();
        let t2 = DateTime::from_timestamp(20, 0).unwrap();
        let mut ks = [
            upload_key(&b, "a!", t0, &id),
            upload_key(&b, "a", t2, &id),
            upload_key(&b, "a", t1, &id),
            upload_key(&b, "a", t0, &id),
        ];
        ks.sort();
        assert_eq!(ks[0], upload_key(&b, "a", t0, &id));
        assert_eq!(ks[1], upload_key(&b, "a", t1, &id));
        assert_eq!(ks[2], upload_key(&b, "a", t2, &id));
        assert_eq!(ks[3], upload_key(&b, "a!", t0, &id));
        assert_eq!(upload_id_of(&ks[0]), Some(id.as_str()));
    }

    #[test]
    fn part_keys_stay_in_range() {
        let id = "a".repeat(32);
        let (lo, hi) = part_range(&id);
        for n in [1, 9, 10, 10_000] {
            let k = part_key(&id, n);
            assert!(lo <= k && k < hi);
        }
        assert!(part_key(&id, 9) < part_key(&id, 10));
    }
}
