//! The storage seam: one async [`Backend`] trait for every object-storage operation the S3 API
//! serves, with streaming bodies in ([`Payload`]) and out ([`crate::body::Body`]).
//!
//! The gateway holds one `Arc<dyn Backend>` ([`crate::Gateway::storage`]): a [`Storage`] that
//! routes each bucket to the backend that keeps it, either the embedded local-disk store
//! ([`local::LocalBackend`]) or another S3 service ([`upstream::UpstreamBackend`]). Handlers in
//! `s3/` parse and validate requests, call the seam with typed requests, and render what it
//! returns; they never reach a concrete store.
//!
//! Every name crossing the seam is the *keyhole* name of a bucket or key: a backend that keeps
//! objects under other names (an upstream bucket mapped with a prefix) translates both ways
//! itself.
//!
//! # Security
//! - The seam is reached only from handlers, which run only with an `Authorized<...>` call
//!   (and DeleteObjects passes each key's `Authorized<DeleteKey>` down): nothing here decides.
//! - A [`Payload`] ends (`Ok(None)`) only when every byte was verified (signature, checksums,
//!   length) *and* the request's write-ahead audit record is durable, so a backend that commits
//!   at the end of the body (the local store renames, an upstream S3 stores the object once the
//!   last byte arrives) never commits an unverified or unrecorded write.

pub mod conditions;
pub mod local;
pub mod route;
pub mod upstream;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use keyhole_store::{ObjectMeta, WriteCondition};

pub use keyhole_store::Versioning;

use crate::body::Body;
use crate::error::S3Error;
use crate::s3::DeleteKey;

pub use conditions::{ByteRange, ReadConditions};
pub use route::Storage;

/// A boxed future: how the trait's methods stay callable through `dyn Backend`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What every backend call returns: a value, or the S3 error the client gets.
pub type Result<T> = std::result::Result<T, S3Error>;

/// A request body as a backend consumes it: verified payload bytes, in order.
///
/// `Ok(None)` means the body ended, was verified (length, signature, checksums) and the
/// request may commit: the write-ahead audit record is durable. A backend must not make a
/// write visible before it has seen that end, and must discard what it received on an error.
pub trait Payload: Send {
    /// The next piece of the body; `Ok(None)` at its verified end.
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>>;

    /// The algorithm of the checksum the client sent for this body (an `x-amz-checksum-*`
    /// header, or the trailer announced in `x-amz-trailer`), known before the body is read.
    fn checksum_kind(&self) -> Option<keyhole_sigv4::ChecksumKind> {
        None
    }

    /// After the verified end: that checksum, as verified against the bytes received (its kind
    /// and canonical base64).
    fn verified_checksum(&self) -> Option<(keyhole_sigv4::ChecksumKind, String)> {
        None
    }

    /// Asks the payload not to wait at its end for the request's write-ahead audit record, so a
    /// backend can make the body durable where nobody sees it meanwhile (the local store fsyncs
    /// and places it while the trail fsyncs the record). A backend that asks must call
    /// [`Payload::ready`] before it makes anything visible. Payloads that do not defer (the
    /// default) keep waiting at their end, so not calling this is always safe.
    fn defer_ready(&mut self) {}

    /// Waits until the change may be made (the write-ahead record is durable); fails as the end
    /// of the body would have (503 when the trail cannot be written). At once when the payload
    /// did not defer its wait.
    fn ready(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// A payload already in memory (a copied part, a test).
#[derive(Debug)]
pub struct BytesPayload(pub Option<Bytes>);

impl Payload for BytesPayload {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>> {
        let next = self.0.take().filter(|b| !b.is_empty());
        Box::pin(async move { Ok(next) })
    }
}

/// What a backend knows about one stored object (HeadObject, GetObject).
#[derive(Debug, Clone)]
pub struct ObjectHead {
    /// Size of the whole object in bytes.
    pub size: u64,
    /// ETag without quotes, as stored (an upstream's, unchanged).
    pub etag: String,
    /// Last modification time (whole seconds).
    pub last_modified: DateTime<Utc>,
    /// Content headers and user metadata (`tags` is left empty: see `tag_count`).
    pub meta: ObjectMeta,
    /// How many tags the object has (`x-amz-tagging-count`).
    pub tag_count: usize,
    /// Response headers S3 clients read that the store gave (checksums, storage class,
    /// server-side encryption, part count), name lowercase.
    pub extra: Vec<(String, String)>,
    /// The tags of this very version, when the backend reads them with the object (the local
    /// store): a decision made on tags is then checked against the version served exactly.
    /// `None` when it cannot (an upstream answers tags in another request).
    pub tags: Option<Vec<(String, String)>>,
    /// The parts of an object a multipart upload made, with their checksums, when the backend
    /// keeps them (the local store; empty otherwise).
    pub parts: Vec<keyhole_store::PartSummary>,
    /// The version's id as S3 reports it (`x-amz-version-id`); `None` in a bucket never
    /// versioned.
    pub version_id: Option<String>,
}

/// A GetObject or HeadObject.
#[derive(Debug, Clone)]
pub struct GetObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The `Range` header as sent.
    pub range: Option<String>,
    /// The `If-Range` header as sent: `range` applies only while it names the object's ETag
    /// ([`conditions::if_range_holds`]); otherwise the whole object is served.
    pub if_range: Option<String>,
    /// `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`.
    pub conditions: ReadConditions,
    /// `x-amz-checksum-mode: ENABLED`: ask for stored checksums.
    pub checksum_mode: bool,
    /// HEAD: no body.
    pub head: bool,
    /// `?versionId=`: this version instead of the current one.
    pub version_id: Option<String>,
    /// `?partNumber=N`: the bytes of part N of an object a multipart upload made (part 1 of any
    /// other object is the whole object), as a ranged read.
    pub part_number: Option<u32>,
}

impl GetObject {
    /// An unconditional HeadObject of `bucket`/`key`: the object's head, no body.
    pub fn head(bucket: &str, key: &str) -> GetObject {
        GetObject::head_version(bucket, key, None)
    }

    /// An unconditional HeadObject of version `version_id` (`None`: the current one).
    pub fn head_version(bucket: &str, key: &str, version_id: Option<&str>) -> GetObject {
        GetObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            range: None,
            if_range: None,
            conditions: ReadConditions::default(),
            checksum_mode: false,
            head: true,
            version_id: version_id.map(str::to_owned),
            part_number: None,
        }
    }
}

/// The object a GetObject answered with.
#[derive(Debug)]
pub struct GotObject {
    /// The object.
    pub head: ObjectHead,
    /// The part of it sent (`None`: all of it).
    pub range: Option<ByteRange>,
    /// The bytes (empty for HEAD).
    pub body: Body,
}

/// The outcome of a GetObject or HeadObject whose conditions were evaluated.
#[derive(Debug)]
pub enum Got {
    /// The object (or the range asked for).
    Object(Box<GotObject>),
    /// `304 Not Modified` (`If-None-Match` or `If-Modified-Since`).
    NotModified {
        /// The object's ETag (unquoted).
        etag: String,
        /// Its last modification time.
        last_modified: DateTime<Utc>,
    },
}

/// A PutObject (the body comes as a [`Payload`]).
#[derive(Debug, Clone)]
pub struct PutObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Content headers, user metadata and tags (`x-amz-tagging`).
    pub meta: ObjectMeta,
    /// `Content-MD5`, checked against the body.
    pub content_md5: Option<[u8; 16]>,
    /// `If-None-Match: *` / `If-Match`: checked when the write commits.
    pub condition: Option<WriteCondition>,
    /// The payload's length in bytes (declared, verified by the payload).
    pub length: u64,
    /// `x-amz-checksum-*` and `x-amz-sdk-checksum-algorithm` headers as sent, for a backend that
    /// stores checksums (the gateway has checked header checksums against the body already).
    pub checksums: Vec<(String, String)>,
}

/// What a write (PutObject, UploadPart, CompleteMultipartUpload) answered.
#[derive(Debug, Clone)]
pub struct Written {
    /// The new ETag (unquoted).
    pub etag: String,
    /// Response headers S3 clients read (checksums, server-side encryption).
    pub extra: Vec<(String, String)>,
    /// The new version's id (`x-amz-version-id`; `None` in a bucket never versioned).
    pub version_id: Option<String>,
}

/// Keep the source's value, or replace it (`x-amz-metadata-directive`,
/// `x-amz-tagging-directive`).
#[derive(Debug, Clone)]
pub enum Directive<T> {
    /// `COPY` (the default).
    Copy,
    /// `REPLACE` with these values.
    Replace(T),
}

/// A CopyObject.
#[derive(Debug, Clone)]
pub struct CopyObject {
    /// Source bucket.
    pub src_bucket: String,
    /// Source key.
    pub src_key: String,
    /// The source version (`?versionId=` in `x-amz-copy-source`; `None`: the current one).
    pub src_version_id: Option<String>,
    /// `x-amz-copy-source-if-*`.
    pub source_conditions: ReadConditions,
    /// Destination bucket.
    pub bucket: String,
    /// Destination key.
    pub key: String,
    /// Content headers and user metadata of the copy (`tags` ignored: see `tags`).
    pub meta: Directive<ObjectMeta>,
    /// Tags of the copy.
    pub tags: Directive<Vec<(String, String)>>,
    /// `If-None-Match: *` / `If-Match` on the destination.
    pub condition: Option<WriteCondition>,
    /// `x-amz-checksum-algorithm`: the algorithm of the copy's checksum (else the source's).
    pub checksum_algorithm: Option<keyhole_sigv4::ChecksumKind>,
    /// The copy's Object Lock, from the request's headers (a copy never takes its source's:
    /// the destination bucket's default retention applies otherwise).
    pub lock: keyhole_store::ObjectLock,
}

/// What a copy (CopyObject, UploadPartCopy) answered.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The new ETag (unquoted).
    pub etag: String,
    /// When it was written.
    pub last_modified: DateTime<Utc>,
    /// The new version's id (`x-amz-version-id`; parts and unversioned buckets: `None`).
    pub version_id: Option<String>,
    /// The version copied from (`x-amz-copy-source-version-id`), when the source is versioned.
    pub src_version_id: Option<String>,
}

/// An UploadPart (the body comes as a [`Payload`]).
#[derive(Debug, Clone)]
pub struct UploadPart {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The upload.
    pub upload_id: String,
    /// 1..=10000.
    pub part_number: u32,
    /// `Content-MD5`, checked against the body.
    pub content_md5: Option<[u8; 16]>,
    /// The payload's length.
    pub length: u64,
    /// `x-amz-checksum-*` headers as sent.
    pub checksums: Vec<(String, String)>,
}

/// An UploadPartCopy.
#[derive(Debug, Clone)]
pub struct UploadPartCopy {
    /// Source bucket.
    pub src_bucket: String,
    /// Source key.
    pub src_key: String,
    /// The source version (`None`: the current one).
    pub src_version_id: Option<String>,
    /// `x-amz-copy-source-if-*`.
    pub source_conditions: ReadConditions,
    /// `x-amz-copy-source-range` as sent.
    pub source_range: Option<String>,
    /// Destination bucket.
    pub bucket: String,
    /// Destination key.
    pub key: String,
    /// The upload.
    pub upload_id: String,
    /// 1..=10000.
    pub part_number: u32,
}

/// A CompleteMultipartUpload.
#[derive(Debug, Clone)]
pub struct CompleteUpload {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The upload.
    pub upload_id: String,
    /// (part number, ETag without quotes), as listed.
    pub parts: Vec<(u32, String)>,
    /// `If-None-Match: *` / `If-Match` on the object it creates.
    pub condition: Option<WriteCondition>,
    /// The checksums listed with the parts and sent for the whole object.
    pub checksums: crate::checksum::CompleteChecksums,
}

/// One uploaded part.
#[derive(Debug, Clone)]
pub struct Part {
    /// 1..=10000.
    pub part_number: u32,
    /// ETag without quotes.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was uploaded.
    pub last_modified: DateTime<Utc>,
    /// Its checksum (base64) in the upload's algorithm, when the backend keeps it.
    pub checksum: Option<String>,
}

/// One page of ListParts.
#[derive(Debug, Clone, Default)]
pub struct PartsPage {
    /// Parts after the marker, by part number.
    pub parts: Vec<Part>,
    /// More parts follow.
    pub truncated: bool,
    /// The checksum the upload was created with, when the backend knows it.
    pub checksum: Option<keyhole_store::ChecksumSpec>,
}

/// A ListMultipartUploads.
#[derive(Debug, Clone, Default)]
pub struct ListUploads {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up at this (after the prefix).
    pub delimiter: Option<String>,
    /// `key-marker`.
    pub key_marker: String,
    /// `upload-id-marker`.
    pub upload_id_marker: String,
    /// `max-uploads` (at most 1000).
    pub max: usize,
}

/// An entry of ListMultipartUploads.
#[derive(Debug, Clone)]
pub enum UploadEntry {
    /// An upload in progress.
    Upload {
        /// Its key.
        key: String,
        /// Its id.
        upload_id: String,
        /// When it was created.
        initiated: DateTime<Utc>,
    },
    /// A common prefix.
    Prefix(String),
}

/// One page of ListMultipartUploads.
#[derive(Debug, Clone, Default)]
pub struct UploadsPage {
    /// Uploads and common prefixes, in key order.
    pub entries: Vec<UploadEntry>,
    /// More entries follow.
    pub truncated: bool,
    /// Where the next page starts (with `truncated`).
    pub next_key_marker: Option<String>,
    /// Where the next page starts within `next_key_marker`'s uploads.
    pub next_upload_id_marker: Option<String>,
}

/// Where a listing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListPosition {
    /// At the beginning.
    Start,
    /// After this key (V1 `marker`).
    Marker(String),
    /// After this key (V2 `start-after`).
    StartAfter(String),
    /// Where an earlier page left off (V2 `continuation-token`, as this gateway issued it).
    Token(String),
}

/// A ListObjects or ListObjectsV2.
#[derive(Debug, Clone)]
pub struct ListObjects {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up at this (after the prefix).
    pub delimiter: Option<String>,
    /// Page size, at most 1000; 0 gives an empty page (of an existing bucket).
    pub max_keys: usize,
    /// Where to start.
    pub position: ListPosition,
}

/// An object in a listing.
#[derive(Debug, Clone)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Last modification time.
    pub last_modified: DateTime<Utc>,
    /// Storage class (`STANDARD` here; an upstream's own otherwise).
    pub storage_class: String,
}

/// An entry of a listing.
#[derive(Debug, Clone)]
pub enum Listed {
    /// An object.
    Object(ListedObject),
    /// A common prefix.
    Prefix(String),
}

/// One page of ListObjects(V2).
#[derive(Debug, Clone, Default)]
pub struct ObjectsPage {
    /// Objects and common prefixes in key order.
    pub entries: Vec<Listed>,
    /// More entries follow.
    pub truncated: bool,
    /// With `truncated`: the last key or common prefix returned (V1's `NextMarker`).
    pub next_marker: Option<String>,
    /// With `truncated`: V2's `NextContinuationToken`, opaque to clients.
    pub next_token: Option<String>,
}

/// What a DeleteObject did (`x-amz-version-id`, `x-amz-delete-marker`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The delete marker made or the version removed; `None` in a bucket never versioned.
    pub version_id: Option<String>,
    /// Whether a delete marker was made, or the version removed was one.
    pub delete_marker: bool,
}

/// Each key's result of a DeleteObjects, in the order the keys were given.
pub type DeleteResults = Vec<(String, Result<Deleted>)>;

/// A ListObjectVersions.
#[derive(Debug, Clone, Default)]
pub struct ListVersions {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up at this (after the prefix).
    pub delimiter: Option<String>,
    /// `key-marker` (empty: from the start).
    pub key_marker: String,
    /// `version-id-marker` (empty: after every version of `key_marker`).
    pub version_id_marker: String,
    /// `max-keys`, at most 1000.
    pub max_keys: usize,
}

/// An entry of ListObjectVersions.
#[derive(Debug, Clone)]
pub enum VersionListed {
    /// An object version.
    Version {
        /// The object, as a listing shows it.
        object: ListedObject,
        /// Its version id (`null` for the null version).
        version_id: String,
        /// Whether it is the current version.
        is_latest: bool,
    },
    /// A delete marker.
    DeleteMarker {
        /// Its key.
        key: String,
        /// Its version id.
        version_id: String,
        /// Whether it is the current version.
        is_latest: bool,
        /// When it was made.
        last_modified: DateTime<Utc>,
    },
    /// A common prefix.
    Prefix(String),
}

/// One page of ListObjectVersions.
#[derive(Debug, Clone, Default)]
pub struct VersionsPage {
    /// Versions, delete markers and common prefixes: keys in order, each key's newest first.
    pub entries: Vec<VersionListed>,
    /// More entries follow.
    pub truncated: bool,
    /// With `truncated`: where the next page starts.
    pub next_key_marker: Option<String>,
    /// With `truncated`: where the next page starts within `next_key_marker`'s versions.
    pub next_version_id_marker: Option<String>,
}

/// The answer of a backend that does not keep versions for this bucket.
pub fn versioning_not_implemented() -> S3Error {
    S3Error::not_implemented("object versioning on this bucket's backend")
}

/// What a backend without Object Lock answers (an upstream bucket).
pub fn lock_not_implemented() -> S3Error {
    S3Error::not_implemented("Object Lock on this bucket's backend")
}

/// A bucket.
#[derive(Debug, Clone)]
pub struct BucketInfo {
    /// Its keyhole name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// When it was created.
    pub created: DateTime<Utc>,
}

/// One object storage: every operation the S3 API serves on buckets and objects.
///
/// Names are keyhole names (see the module documentation). Errors are the S3 errors a client
/// gets: an implementation keeps the codes a store gives (`NoSuchKey`, `PreconditionFailed`,
/// an upstream's own) and never puts internal detail (paths, host names, credentials) in
/// their messages.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A short name for logs and metrics (`local`, `upstream`).
    fn kind(&self) -> &'static str;

    /// Closes the backend to changes, for a shutdown, before the audit trail is closed: waits
    /// for a change being committed now and refuses every later one (`ServiceUnavailable`),
    /// so that none lands after the trail's last record. Reads go on. An upstream has nothing
    /// it can seal: a request already sent completes there whatever the gateway does next.
    fn seal(&self) -> BoxFuture<'_, Result<()>>;

    /// The buckets this backend serves, by keyhole name.
    fn list_buckets(&self) -> BoxFuture<'_, Result<Vec<BucketInfo>>>;
    /// Creates a bucket in `region`.
    fn create_bucket<'a>(&'a self, bucket: &'a str, region: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Deletes an empty bucket.
    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<()>>;
    /// A bucket's information (`NoSuchBucket` when it does not exist).
    fn head_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<BucketInfo>>;

    /// GetObject or HeadObject, conditions and range applied.
    fn get_object(&self, req: GetObject) -> BoxFuture<'_, Result<Got>>;
    /// PutObject: streams `body` into a new object, committed at the body's verified end.
    fn put_object<'a>(
        &'a self,
        req: PutObject,
        body: &'a mut dyn Payload,
    ) -> BoxFuture<'a, Result<Written>>;
    /// CopyObject.
    fn copy_object(&self, req: CopyObject) -> BoxFuture<'_, Result<Copied>>;
    /// DeleteObject (an absent key is no error), only if `condition` holds; with `version_id`,
    /// that version is removed for good.
    ///
    /// `bypass_governance`: the request asked to bypass GOVERNANCE retention and was authorized
    /// for `s3:BypassGovernanceRetention`.
    fn delete_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        condition: Option<WriteCondition>,
        bypass_governance: bool,
    ) -> BoxFuture<'a, Result<Deleted>>;
    /// DeleteObjects: each key was authorized on its own; returns each key's result in order.
    fn delete_objects<'a>(
        &'a self,
        bucket: &'a str,
        keys: Vec<crate::authz::Authorized<DeleteKey>>,
    ) -> BoxFuture<'a, Result<DeleteResults>>;

    /// ListObjects (V1 and V2).
    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        req: ListObjects,
    ) -> BoxFuture<'a, Result<ObjectsPage>>;

    /// GetObjectTagging of version `version_id` (`None`: the current one).
    fn get_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>>>;
    /// PutObjectTagging (replaces every tag); returns the version id tagged.
    fn put_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        tags: Vec<(String, String)>,
    ) -> BoxFuture<'a, Result<Option<String>>>;
    /// DeleteObjectTagging; returns the version id untagged.
    fn delete_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>>>;

    /// GetBucketVersioning.
    fn get_versioning<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Versioning>> {
        let _ = bucket;
        Box::pin(async { Err(versioning_not_implemented()) })
    }
    /// PutBucketVersioning (`Enabled` or `Suspended`).
    fn put_versioning<'a>(
        &'a self,
        bucket: &'a str,
        state: Versioning,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = (bucket, state);
        Box::pin(async { Err(versioning_not_implemented()) })
    }
    /// GetObjectLockConfiguration (`None`: Object Lock is not enabled on the bucket).
    fn get_lock_configuration<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<keyhole_store::LockConfig>>> {
        let _ = bucket;
        Box::pin(async { Err(lock_not_implemented()) })
    }
    /// CreateBucket with `x-amz-bucket-object-lock-enabled: true`: the bucket, versioned and
    /// with Object Lock, in one step (a bucket is never seen, nor left by a failure or a
    /// shutdown, without the lock it was asked for).
    fn create_locked_bucket<'a>(
        &'a self,
        bucket: &'a str,
        region: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = (bucket, region);
        Box::pin(async { Err(lock_not_implemented()) })
    }
    /// PutObjectLockConfiguration.
    fn put_lock_configuration<'a>(
        &'a self,
        bucket: &'a str,
        config: keyhole_store::LockConfig,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = (bucket, config);
        Box::pin(async { Err(lock_not_implemented()) })
    }
    /// PutObjectRetention of version `version_id` (`None`: the current one); returns the
    /// version id S3 reports.
    fn put_retention<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        retention: Option<keyhole_store::Retention>,
        bypass_governance: bool,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        let _ = (bucket, key, version_id, retention, bypass_governance);
        Box::pin(async { Err(lock_not_implemented()) })
    }
    /// PutObjectLegalHold of version `version_id` (`None`: the current one); returns the
    /// version id S3 reports.
    fn put_legal_hold<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        on: bool,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        let _ = (bucket, key, version_id, on);
        Box::pin(async { Err(lock_not_implemented()) })
    }
    /// ListObjectVersions.
    fn list_versions<'a>(
        &'a self,
        bucket: &'a str,
        req: ListVersions,
    ) -> BoxFuture<'a, Result<VersionsPage>> {
        let _ = (bucket, req);
        Box::pin(async { Err(versioning_not_implemented()) })
    }

    /// CreateMultipartUpload (with the checksum the parts and the object get); returns the
    /// upload id.
    fn create_multipart<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        checksum: Option<keyhole_store::ChecksumSpec>,
    ) -> BoxFuture<'a, Result<String>>;
    /// UploadPart: streams `body` into a part, staged at the body's verified end.
    fn upload_part<'a>(
        &'a self,
        req: UploadPart,
        body: &'a mut dyn Payload,
    ) -> BoxFuture<'a, Result<Written>>;
    /// UploadPartCopy.
    fn upload_part_copy(&self, req: UploadPartCopy) -> BoxFuture<'_, Result<Copied>>;
    /// CompleteMultipartUpload.
    fn complete_multipart(&self, req: CompleteUpload) -> BoxFuture<'_, Result<Written>>;
    /// AbortMultipartUpload.
    fn abort_multipart<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// ListParts: parts numbered above `marker`, at most `max`.
    fn list_parts<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        max: u32,
        marker: u32,
    ) -> BoxFuture<'a, Result<PartsPage>>;
    /// ListMultipartUploads.
    fn list_uploads<'a>(
        &'a self,
        bucket: &'a str,
        req: ListUploads,
    ) -> BoxFuture<'a, Result<UploadsPage>>;
}
