//! keyhole-store: the embedded local-disk object store behind keyhole's S3 gateway.
//!
//! The store is synchronous (plain `std::fs` plus the embedded [`redb`] index) and meant to
//! be called from blocking threads. [`LocalStore`] is a cheap, `Send + Sync` handle; clone
//! it freely.
//!
//! * Object bodies are files named by random identifiers; the ordered metadata index maps
//!   `(bucket, key)` to the body, its size, ETag, metadata and tags.
//! * Writes stream to a temp file while hashing MD5, then: fsync the file, rename it into
//!   place, fsync the directory, commit the index transaction durably, and only then remove
//!   the body the write replaced. A crash at any point leaves either the old or the new
//!   object, never a partial one; [`LocalStore::open`] removes what a crash left behind.
//! * Listing seeks in the ordered index: with a delimiter each common prefix costs one seek,
//!   whatever the number of keys under it.
//! * Multipart parts are staged per upload and streamed into one new body on completion.
//!
//! ```
//! use std::io::Read;
//! use keyhole_store::{ListQuery, LocalStore, ObjectMeta};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = LocalStore::open(dir.path())?;
//! store.create_bucket("datasets", "us-east-1")?;
//!
//! let mut w = store.new_object("datasets")?;
//! w.write(b"hello ")?;
//! w.write(b"world")?;
//! let info = w.commit("wiki/part-0001", ObjectMeta::default(), None)?;
//! assert_eq!(info.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
//!
//! let (_, mut body) = store.get("datasets", "wiki/part-0001")?;
//! let mut s = String::new();
//! body.read_to_string(&mut s)?;
//! assert_eq!(s, "hello world");
//!
//! let q = ListQuery { delimiter: Some("/".into()), max_keys: 1000, ..Default::default() };
//! let page = store.list("datasets", &q)?;
//! assert_eq!(page.entries[0].name(), "wiki/");
//! # Ok(())
//! # }
//! ```
//!
//! # Security
//!
//! Keys are arbitrary UTF-8 (up to 1024 bytes, no U+0000) and are only ever index keys:
//! no key, bucket name or client-supplied upload id is turned into a path. All paths are
//! built by one function, `layout::Layout::resolve`, from store-generated identifiers of 32
//! hex digits, and it refuses anything else (checked by a proptest with `..`, `/`,
//! absolute paths, NUL, Unicode and 1 KiB inputs). Errors from the filesystem or the index
//! map to `InternalError` through [`StoreError::s3_code`]; their text is for logs only.

#![deny(missing_docs)]

mod cache;
mod commit;
mod err;
mod index;
mod layout;
mod list;
mod lock;
mod multipart;
mod names;
mod object;
mod space;
mod store;
mod version;

#[cfg(test)]
mod inline_tests;

pub use commit::CommitStats;
pub use err::StoreError;
pub use index::Versioning;
pub use layout::ID_LEN;
pub use lock::{DefaultRetention, LockConfig, LockMode, ObjectLock, Retention, RetentionPeriod};
pub use multipart::ChecksumFinish;
pub use names::{
    validate_bucket_name, validate_key, validate_tags, MAX_KEY_LEN, MAX_TAGS, MAX_TAG_KEY_LEN,
    MAX_TAG_VALUE_LEN,
};
pub use object::{ObjectReader, ObjectWriter, PartWriter, SealedObject};
pub use store::LocalStore;
pub use version::{Deleted, VersionEntry, VersionPage, VersionQuery};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Smallest size of every multipart part but the last (S3: 5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest body accepted by one [`ObjectWriter`] (S3 single PUT: 5 GiB).
pub const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Largest multipart part (S3: 5 GiB).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Largest object assembled by a multipart upload (S3: 5 TiB).
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Highest part number (S3: 10,000).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Most entries (objects plus common prefixes) one list page returns (S3: 1000).
pub const MAX_LIST_KEYS: usize = 1000;
/// Default [`StoreOptions::inline_max`]: object bodies up to this many bytes are kept in the
/// index instead of a file of their own.
pub const INLINE_MAX: u64 = 64 * 1024;

/// A condition on the object a write would replace (S3 conditional writes,
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>). It is checked
/// inside the transaction that commits the write, so two writers cannot both see it hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    /// No object may exist under the key (`If-None-Match: *`); otherwise
    /// [`StoreError::PreconditionFailed`].
    Absent,
    /// The object must exist ([`StoreError::NoSuchKey`] otherwise) with this ETag, quotes and
    /// case aside, or `*` for any ([`StoreError::PreconditionFailed`] otherwise) (`If-Match`).
    ETag(String),
}

impl WriteCondition {
    /// Whether the condition holds for the current object's ETag (`None`: no object).
    ///
    /// # Errors
    /// [`StoreError::PreconditionFailed`] or [`StoreError::NoSuchKey`] when it does not.
    pub fn check(&self, current_etag: Option<&str>) -> Result<(), StoreError> {
        match (self, current_etag) {
            (WriteCondition::Absent, None) => Ok(()),
            (WriteCondition::Absent, Some(_)) => Err(StoreError::PreconditionFailed),
            (WriteCondition::ETag(_), None) => Err(StoreError::NoSuchKey),
            (WriteCondition::ETag(want), Some(have)) => {
                let want = want.trim();
                if want == "*" || normalize_etag(want) == normalize_etag(have) {
                    Ok(())
                } else {
                    Err(StoreError::PreconditionFailed)
                }
            }
        }
    }
}

/// An ETag without its quotes, lowercase.
pub(crate) fn normalize_etag(e: &str) -> String {
    let e = e.trim();
    let e = e.strip_prefix('"').unwrap_or(e);
    let e = e.strip_suffix('"').unwrap_or(e);
    e.to_ascii_lowercase()
}

/// Tunables of a [`LocalStore`]; [`Default`] gives the S3 values.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Minimum size of every part but the last in `complete_multipart`
    /// (default [`MIN_PART_SIZE`]; tests lower it).
    pub min_part_size: u64,
    /// How many keys' current object records the read cache keeps (default
    /// [`READ_CACHE_ENTRIES`]; 0 turns it off).
    pub read_cache_entries: usize,
    /// Largest object body (bytes) kept in the index, written in the transaction that records
    /// the object, instead of in a file of its own (default [`INLINE_MAX`]; 0: never). Only
    /// PutObject and CopyObject bodies; parts and completed multipart objects are files.
    pub inline_max: u64,
    /// Most bytes of small bodies the read cache keeps with their records (default
    /// [`READ_CACHE_BODY_BYTES`]; 0: none).
    pub read_cache_body_bytes: usize,
    /// Size of redb's page cache for the index (default [`INDEX_CACHE_BYTES`]).
    pub index_cache_bytes: usize,
}

/// Default size of the read cache, in keys (a few hundred bytes each).
pub const READ_CACHE_ENTRIES: usize = 100_000;

/// Default bytes of bodies the read cache keeps.
pub const READ_CACHE_BODY_BYTES: usize = 64 << 20;

/// Default size of the index's page cache. redb's own default (1 GiB) fills with the pages
/// commits wrote, bodies kept in the index included, so a gateway writing small objects grew to
/// hundreds of MB; the operating system's page cache keeps the file's pages beyond this.
pub const INDEX_CACHE_BYTES: usize = 256 << 20;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            min_part_size: MIN_PART_SIZE,
            read_cache_entries: READ_CACHE_ENTRIES,
            inline_max: INLINE_MAX,
            read_cache_body_bytes: READ_CACHE_BODY_BYTES,
            index_cache_bytes: INDEX_CACHE_BYTES,
        }
    }
}

/// Metadata stored with an object and returned with it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Expires`, as sent.
    pub expires: Option<String>,
    /// User metadata: `x-amz-meta-*` headers without the prefix, lowercase names.
    pub user: BTreeMap<String, String>,
    /// Object tags, in the order given.
    pub tags: Vec<(String, String)>,
    /// The version's Object Lock state (retention, legal hold); empty for objects in buckets
    /// without Object Lock.
    #[serde(default, skip_serializing_if = "ObjectLock::is_empty")]
    pub lock: ObjectLock,
    /// The object's checksum as S3 stores it (`x-amz-checksum-*`): the one the client sent and
    /// the gateway verified, or the one the gateway computed. `None` for objects written before
    /// checksums were stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
}

/// How an object's checksum covers it (`x-amz-checksum-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChecksumType {
    /// A checksum of every byte of the object (`FULL_OBJECT`).
    FullObject,
    /// A checksum of the parts' checksums, with `-N` appended (`COMPOSITE`).
    Composite,
}

impl ChecksumType {
    /// The name S3 gives it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullObject => "FULL_OBJECT",
            Self::Composite => "COMPOSITE",
        }
    }

    /// The type named as S3 names it, case aside.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::FullObject, Self::Composite]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// A stored object checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChecksum {
    /// The algorithm as S3 names it (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`).
    pub algorithm: String,
    /// Full-object or composite.
    pub kind: ChecksumType,
    /// Base64 of the digest; a composite value ends with `-N` (the part count).
    pub value: String,
}

/// The checksum a multipart upload was created with (`x-amz-checksum-algorithm`,
/// `x-amz-checksum-type`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumSpec {
    /// The algorithm as S3 names it.
    pub algorithm: String,
    /// How the object's checksum is made from the parts'.
    pub kind: ChecksumType,
}

/// One part of an object a multipart upload made (GetObjectAttributes' `ObjectParts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    /// Size in bytes.
    pub size: u64,
    /// The part's checksum (base64), in the algorithm of the object's checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// What the store knows about one object.
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    /// The key, exactly as stored.
    pub key: String,
    /// Body size in bytes.
    pub size: u64,
    /// ETag without quotes: hex MD5 of the body, or `hex(md5(part md5s))-N` for multipart.
    pub etag: String,
    /// Commit time, truncated to whole seconds (HTTP dates carry no more).
    pub last_modified: DateTime<Utc>,
    /// Stored metadata and tags.
    pub meta: ObjectMeta,
    /// Number of parts for objects made by a multipart upload.
    pub parts_count: Option<u32>,
    /// The parts of an object a multipart upload made, in order (empty otherwise, and for
    /// objects completed before parts were recorded).
    pub parts: Vec<PartSummary>,
    /// The version id S3 reports (`x-amz-version-id`): the version's own id, `null` for the null
    /// version of a bucket that is or was versioned, `None` in a bucket never versioned.
    pub version_id: Option<String>,
}

/// What the store knows about one bucket.
#[derive(Clone, Debug)]
pub struct BucketInfo {
    /// The bucket name.
    pub name: String,
    /// The region given at creation.
    pub region: String,
    /// Creation time.
    pub created: DateTime<Utc>,
}

/// An in-progress multipart upload.
#[derive(Clone, Debug)]
pub struct UploadInfo {
    /// Bucket name.
    pub bucket: String,
    /// Target key.
    pub key: String,
    /// Upload id (32 lowercase hex digits, URL-safe).
    pub upload_id: String,
    /// When the upload was created (millisecond precision).
    pub initiated: DateTime<Utc>,
    /// Metadata the completed object will carry.
    pub meta: ObjectMeta,
    /// The checksum it was created with.
    pub checksum: Option<ChecksumSpec>,
}

/// One uploaded part.
#[derive(Clone, Debug)]
pub struct PartInfo {
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// Hex MD5 of the part, no quotes.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Upload time, truncated to whole seconds.
    pub last_modified: DateTime<Utc>,
    /// The part's checksum (base64), in the upload's algorithm.
    pub checksum: Option<String>,
}

/// A ListObjects(V2) request.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to the first occurrence of this after the prefix (empty = none).
    pub delimiter: Option<String>,
    /// Exclusive start: a key, or a common prefix returned by a previous page (whose keys
    /// are then all skipped).
    pub start_after: Option<String>,
    /// Page size; 0 gives an empty page, values above [`MAX_LIST_KEYS`] are clamped.
    pub max_keys: usize,
}

/// One entry of a list page.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "the shape is the agreed API; pages hold at most 1000 entries"
)]
pub enum ListEntry {
    /// An object.
    Object(ObjectInfo),
    /// A common prefix (ends with the delimiter).
    CommonPrefix(String),
}

impl ListEntry {
    /// The key or the common prefix.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Object(o) => &o.key,
            Self::CommonPrefix(p) => p,
        }
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// Objects and common prefixes in key order; each counts one toward `max_keys`.
    pub entries: Vec<ListEntry>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// When truncated: the last key or common prefix returned, to pass as `start_after`.
    pub next_start_after: Option<String>,
}
