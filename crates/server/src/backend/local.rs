//! [`LocalBackend`]: the embedded local-disk store ([`keyhole_store::LocalStore`]) behind the
//! seam. The store is synchronous; every call runs on the blocking pool, bodies stream through
//! bounded channels ([`crate::body::pump`], [`crate::body::stream_object`]), and conditional
//! writes are checked inside the store's committing transaction.

use std::io::{Read, Seek, SeekFrom};

use base64::Engine;
use http::StatusCode;
use keyhole_sigv4::{ChecksumHasher, ChecksumKind};
use keyhole_store::{LocalStore, ObjectInfo, ObjectMeta, StoreError, WriteCondition};

use super::conditions::{self, Conditional};
use super::{
    Backend, BoxFuture, BucketInfo, CompleteUpload, Copied, CopyObject, Directive, GetObject, Got,
    GotObject, ListObjects, ListPosition, ListUploads, Listed, ListedObject, ObjectHead,
    ObjectsPage, Part, PartsPage, Payload, PutObject, Result, UploadEntry, UploadPart,
    UploadPartCopy, UploadsPage, Written,
};
use crate::authz::Authorized;
use crate::body::{blocking, pump, stream_object};
use crate::checksum;
use crate::config::MAX_SINGLE_PUT_BYTES;
use crate::error::S3Error;
use crate::s3::DeleteKey;

/// The local-disk store as a [`Backend`].
#[derive(Debug, Clone)]
pub struct LocalBackend {
    store: LocalStore,
}

impl LocalBackend {
    /// Serves `store`.
    pub fn new(store: LocalStore) -> LocalBackend {
        LocalBackend { store }
    }
}

/// What the store keeps, as the seam describes an object.
fn head_of(info: ObjectInfo) -> ObjectHead {
    let mut meta = info.meta;
    let tag_count = meta.tags.len();
    let tags = std::mem::take(&mut meta.tags);
    ObjectHead {
        size: info.size,
        etag: info.etag,
        last_modified: info.last_modified,
        meta,
        tag_count,
        extra: Vec::new(),
        tags: Some(tags),
        parts: info.parts,
        version_id: info.version_id,
    }
}

fn deleted(d: keyhole_store::Deleted) -> super::Deleted {
    super::Deleted {
        version_id: d.version_id,
        delete_marker: d.delete_marker,
    }
}

/// An upload in progress (its checksum decides its parts' algorithm).
async fn upload_of(
    store: &LocalStore,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<keyhole_store::UploadInfo> {
    let (store, b, k, u) = (
        store.clone(),
        bucket.to_owned(),
        key.to_owned(),
        upload_id.to_owned(),
    );
    blocking(move || store.upload(&b, &k, &u)).await
}

/// Objects at most this big are read whole, from the page cache where it holds them.
const INLINE_READ: u64 = 256 * 1024;

/// Part `n` of an object, as a read of its bytes.
struct PartRead {
    /// The part's bytes (`None`: the whole object, part 1 of an object not made in parts).
    range: Option<super::ByteRange>,
    /// How many parts the object has (`x-amz-mp-parts-count`).
    count: usize,
    /// The part's own checksum, when recorded.
    checksum: Option<String>,
    /// The part is the whole object.
    whole: bool,
}

/// Where part `n` lies: for an object a multipart upload made, the sum of the sizes of the parts
/// before it; part 1 of any other object is the object. A part number beyond the object's parts
/// is `416 InvalidPartNumber` ("The requested partnumber is not satisfiable",
/// https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
fn part_range(info: &ObjectInfo, n: u32) -> Result<PartRead> {
    let unsatisfiable = || {
        S3Error::new(
            "InvalidPartNumber",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested partnumber is not satisfiable",
        )
    };
    let index = usize::try_from(n).unwrap_or(usize::MAX).saturating_sub(1);
    if info.parts.is_empty() {
        if info.parts_count.is_some() {
            // Completed before part sizes were recorded: the part's bytes are not known.
            return Err(S3Error::not_implemented(
                "GetObject by partNumber of an object completed before part sizes were recorded",
            ));
        }
        return if n == 1 {
            Ok(PartRead {
                range: None,
                count: 1,
                checksum: None,
                whole: true,
            })
        } else {
            Err(unsatisfiable())
        };
    }
    let part = info.parts.get(index).ok_or_else(unsatisfiable)?;
    let start: u64 = info.parts.iter().take(index).map(|p| p.size).sum();
    Ok(PartRead {
        range: Some(super::ByteRange {
            start,
            len: part.size,
        }),
        count: info.parts.len(),
        checksum: part.checksum.clone(),
        whole: false,
    })
}

/// The algorithm a single-request write's checksum is kept in: the client's (a checksum header
/// or trailer, else the algorithm named in `x-amz-sdk-checksum-algorithm`), else S3's default.
fn put_algorithm(body: &dyn Payload, sent: &[(String, String)]) -> ChecksumKind {
    body.checksum_kind()
        .or_else(|| {
            sent.iter()
                .find(|(name, _)| name == "x-amz-sdk-checksum-algorithm")
                .and_then(|(_, v)| ChecksumKind::from_algorithm(v))
        })
        .unwrap_or(checksum::DEFAULT)
}

/// Checks a write's condition against the object as it is now, before any body is read: `412
/// PreconditionFailed` (or `404 NoSuchKey` for an `If-Match` with no object) at once. The store
/// checks it again when it commits.
async fn check_condition_early(
    store: &LocalStore,
    bucket: &str,
    key: &str,
    condition: Option<&WriteCondition>,
) -> Result<()> {
    let Some(condition) = condition.cloned() else {
        return Ok(());
    };
    let (store, bucket, key) = (store.clone(), bucket.to_owned(), key.to_owned());
    blocking(move || {
        let current = match store.head(&bucket, &key) {
            Ok(info) => Some(info.etag),
            Err(StoreError::NoSuchKey) => None,
            Err(e) => return Err(e),
        };
        condition.check(current.as_deref())
    })
    .await
}

/// A condition that held when the request arrived but not when it committed: another writer
/// changed the object meanwhile. S3 answers `409 ConditionalRequestConflict` then
/// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
fn conflict_if_condition_failed(e: S3Error, conditional: bool) -> S3Error {
    if conditional && matches!(e.code(), "PreconditionFailed" | "NoSuchKey") {
        S3Error::new(
            "ConditionalRequestConflict",
            StatusCode::CONFLICT,
            "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part.",
        )
    } else {
        e
    }
}

/// Receives a PutObject body into a new object of `bucket`. A body small enough to be kept in
/// the store's index is received right here, on the async worker: until it outgrows that limit
/// nothing touches a file (the writer only appends to memory), so a hand-off to a blocking
/// thread would cost more than the work. A body that outgrows it goes on in a blocking thread
/// ([`pump`]), which creates its temp file.
async fn receive(
    body: &mut dyn super::Payload,
    store: &LocalStore,
    bucket: &str,
) -> Result<keyhole_store::ObjectWriter> {
    // An index read (the bucket's id) and no file: the temp file is made when the body needs it.
    let mut writer = store.new_object(bucket)?;
    while let Some(chunk) = body.next().await? {
        if !writer.stays_in_memory(chunk.len()) {
            return pump(body, move || {
                writer.write(&chunk)?;
                Ok(writer)
            })
            .await;
        }
        writer.write(&chunk)?;
    }
    Ok(writer)
}

/// Copies `len` bytes from `reader` (at its current position) into `sink`, a buffer at a time.
pub(crate) fn copy_stream(
    reader: &mut impl Read,
    len: u64,
    mut sink: impl FnMut(&[u8]) -> std::result::Result<(), StoreError>,
) -> std::result::Result<(), StoreError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).ok_or(StoreError::InvalidArgument {
            reason: "copy buffer".into(),
        })?;
        let n = reader.read(chunk)?;
        if n == 0 {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "copy source shorter than its index entry",
            )));
        }
        sink(chunk.get(..n).unwrap_or_default())?;
        left -= n as u64;
    }
    Ok(())
}

/// A V2 continuation token: the position, base64url (it is the client's own key or prefix).
fn encode_token(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes())
}

fn decode_token(s: &str) -> Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::invalid_argument("The continuation token provided is incorrect")
                .with("ArgumentName", "continuation-token")
        })
}

fn listed(o: ObjectInfo) -> ListedObject {
    ListedObject {
        key: o.key,
        size: o.size,
        etag: o.etag,
        last_modified: o.last_modified,
        storage_class: "STANDARD".to_owned(),
    }
}

fn version_listed(e: keyhole_store::VersionEntry) -> super::VersionListed {
    match e {
        keyhole_store::VersionEntry::Object { info, is_latest } => super::VersionListed::Version {
            version_id: info.version_id.clone().unwrap_or_else(|| "null".to_owned()),
            object: listed(info),
            is_latest,
        },
        keyhole_store::VersionEntry::DeleteMarker {
            key,
            version_id,
            last_modified,
            is_latest,
        } => super::VersionListed::DeleteMarker {
            key,
            version_id,
            is_latest,
            last_modified,
        },
        keyhole_store::VersionEntry::CommonPrefix(p) => super::VersionListed::Prefix(p),
    }
}

fn bucket_info(b: keyhole_store::BucketInfo) -> BucketInfo {
    BucketInfo {
        name: b.name,
        region: b.region,
        created: b.created,
    }
}

impl LocalBackend {
    async fn get(&self, req: GetObject) -> Result<Got> {
        let store = &self.store;
        let (bucket, key, version) = (&req.bucket, &req.key, req.version_id.as_deref());
        // The index lookup runs right here, on the async worker: the index is read from memory
        // (redb's cache, the page cache), and a trip through the blocking pool costs more than
        // the lookup (issue 16's profiles: futex wake-ups and waits were a third of a small
        // GET's CPU). So is the read of a small object, as far as the page cache holds it; only
        // bytes that need the disk go to a blocking thread.
        let (info, reader, inline) = if req.head {
            let info = store.head_version(bucket, key, version)?;
            (info, None, None)
        } else {
            let (info, mut reader) = store.get_version(bucket, key, version)?;
            if info.size > INLINE_READ {
                (info, Some(reader), None)
            } else {
                let mut buf = Vec::new();
                if !reader.read_cached(&mut buf).map_err(StoreError::Io)? {
                    let size = info.size;
                    buf = blocking(move || {
                        reader.read_to_end(&mut buf)?;
                        if buf.len() as u64 != size {
                            return Err(StoreError::Io(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "object file shorter than its index entry",
                            )));
                        }
                        Ok(buf)
                    })
                    .await?;
                }
                (info, None, Some(bytes::Bytes::from(buf)))
            }
        };
        if conditions::evaluate(&req.conditions, &info.etag, info.last_modified, false)?
            == Conditional::NotModified
        {
            return Ok(Got::NotModified {
                etag: info.etag,
                last_modified: info.last_modified,
            });
        }
        let part = match req.part_number {
            Some(n) => Some(part_range(&info, n)?),
            None => None,
        };
        let range = match &part {
            Some(p) => p.range,
            None if conditions::if_range_holds(req.if_range.as_deref(), &info.etag) => {
                conditions::parse_range(req.range.as_deref(), info.size)?
            }
            None => None,
        };
        let (start, len) = range.map_or((0, info.size), |r| (r.start, r.len));
        let body = match (inline, reader) {
            (_, _) if len == 0 => crate::body::empty(),
            (Some(bytes), _) => {
                let from = usize::try_from(start).unwrap_or(usize::MAX);
                let to = usize::try_from(start.saturating_add(len)).unwrap_or(usize::MAX);
                if to > bytes.len() || from > to {
                    return Err(S3Error::internal(std::io::Error::other(
                        "a range beyond the object it was parsed against",
                    )));
                }
                crate::body::full(bytes.slice(from..to))
            }
            (None, Some(reader)) => stream_object(reader, start, len),
            (None, None) => crate::body::empty(),
        };
        let mut head = head_of(info);
        // The stored checksum covers the whole object: S3 returns it when asked, and not for a
        // range (it would not match the bytes sent). A part has its own (a multipart object's).
        if req.checksum_mode {
            match (&part, &head.meta.checksum) {
                (None, Some(c)) if range.is_none() => head.extra = checksum::headers(c),
                (Some(p), Some(c)) => {
                    if let Some(v) = &p.checksum {
                        head.extra = checksum::headers(&keyhole_store::ObjectChecksum {
                            value: v.clone(),
                            ..c.clone()
                        });
                    } else if p.whole {
                        head.extra = checksum::headers(c);
                    }
                }
                _ => {}
            }
        }
        if let Some(p) = &part {
            head.extra
                .push(("x-amz-mp-parts-count".to_owned(), p.count.to_string()));
        }
        Ok(Got::Object(Box::new(GotObject { head, range, body })))
    }

    async fn put(&self, req: PutObject, body: &mut dyn Payload) -> Result<Written> {
        keyhole_store::validate_key(&req.key)?;
        check_condition_early(&self.store, &req.bucket, &req.key, req.condition.as_ref()).await?;
        let algorithm = put_algorithm(body, &req.checksums);
        let mut digesting = checksum::Digesting::new(body, algorithm);
        // The body's end does not wait for the write-ahead audit record: the body is fsynced and
        // placed (invisible until the index commit) while the trail fsyncs the record, and
        // `ready` waits for the record before the commit makes anything visible. A body kept in
        // the index has nothing to place: it waits for the record on this worker.
        digesting.defer_ready();
        let writer = receive(&mut digesting, &self.store, &req.bucket).await?;
        let PutObject {
            key,
            mut meta,
            content_md5,
            condition,
            ..
        } = req;
        // A body kept in the index touches no file when sealed: no blocking thread for it.
        let in_memory = writer.stays_in_memory(0);
        let seal = move || writer.seal(content_md5);
        let (ready, sealed) = if in_memory {
            (digesting.ready().await, seal())
        } else {
            let sealing = tokio::task::spawn_blocking(seal);
            let ready = digesting.ready().await;
            (ready, sealing.await.map_err(S3Error::internal)?)
        };
        ready?;
        let sealed = sealed?;
        let stored = checksum::full_object(algorithm, digesting.finish()?);
        let extra = checksum::headers(&stored);
        meta.checksum = Some(stored);
        let conditional = condition.is_some();
        let info = blocking(move || sealed.commit_if(&key, meta, condition.as_ref()))
            .await
            .map_err(|e| conflict_if_condition_failed(e, conditional))?;
        Ok(Written {
            etag: info.etag,
            extra,
            version_id: info.version_id,
        })
    }

    /// Opens the copy source (version `version_id`, or the current one) and checks the
    /// `x-amz-copy-source-if-*` conditions.
    async fn open_source(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        conditions: &super::ReadConditions,
    ) -> Result<(ObjectInfo, keyhole_store::ObjectReader)> {
        let store = self.store.clone();
        let (b, k, v) = (
            bucket.to_owned(),
            key.to_owned(),
            version_id.map(str::to_owned),
        );
        // A delete marker as the source: S3 answers as GetObject does (404, or 400
        // InvalidRequest by version id in the copy case; we keep GetObject's answers).
        let (info, reader) = blocking(move || store.get_version(&b, &k, v.as_deref())).await?;
        conditions::evaluate(conditions, &info.etag, info.last_modified, true)?;
        Ok((info, reader))
    }

    async fn copy(&self, req: CopyObject) -> Result<Copied> {
        keyhole_store::validate_key(&req.key)?;
        check_condition_early(&self.store, &req.bucket, &req.key, req.condition.as_ref()).await?;
        let (info, mut reader) = self
            .open_source(
                &req.src_bucket,
                &req.src_key,
                req.src_version_id.as_deref(),
                &req.source_conditions,
            )
            .await?;
        let src_version_id = info.version_id.clone();
        if info.size > MAX_SINGLE_PUT_BYTES {
            return Err(S3Error::invalid_request(
                "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
            ));
        }
        let mut meta = match req.meta {
            Directive::Replace(m) => m,
            Directive::Copy => info.meta.clone(),
        };
        meta.tags = match req.tags {
            Directive::Replace(t) => t,
            Directive::Copy => info.meta.tags.clone(),
        };
        meta.lock = req.lock;
        // The copy is one new single-part object: its checksum is computed over the bytes
        // copied, in the algorithm asked for, else the source's, else the default.
        let algorithm = req
            .checksum_algorithm
            .or_else(|| {
                info.meta
                    .checksum
                    .as_ref()
                    .and_then(|c| ChecksumKind::from_algorithm(&c.algorithm))
            })
            .unwrap_or(checksum::DEFAULT);
        let store = self.store.clone();
        let (bucket, key, condition) = (req.bucket, req.key, req.condition);
        let conditional = condition.is_some();
        let copied = blocking(move || {
            let mut w = store.new_object(&bucket)?;
            let mut hasher = ChecksumHasher::new(algorithm);
            copy_stream(&mut reader, info.size, |chunk| {
                hasher.update(chunk);
                w.write(chunk)
            })?;
            meta.checksum = Some(checksum::full_object(algorithm, hasher.finish_base64()));
            w.commit_if(&key, meta, None, condition.as_ref())
        })
        .await
        .map_err(|e| conflict_if_condition_failed(e, conditional))?;
        Ok(Copied {
            etag: copied.etag,
            last_modified: copied.last_modified,
            version_id: copied.version_id,
            src_version_id,
        })
    }

    async fn list(&self, bucket: &str, req: ListObjects) -> Result<ObjectsPage> {
        let start_after = match req.position {
            ListPosition::Start => None,
            ListPosition::Marker(m) | ListPosition::StartAfter(m) => Some(m),
            ListPosition::Token(t) => Some(decode_token(&t)?),
        }
        .filter(|s| !s.is_empty());
        let store = self.store.clone();
        let bucket = bucket.to_owned();
        if req.max_keys == 0 {
            // Still answer NoSuchBucket for a missing bucket.
            blocking(move || store.bucket(&bucket)).await?;
            return Ok(ObjectsPage::default());
        }
        let q = keyhole_store::ListQuery {
            prefix: req.prefix,
            delimiter: req.delimiter,
            start_after,
            max_keys: req.max_keys,
        };
        let page = blocking(move || store.list(&bucket, &q)).await?;
        let entries = page
            .entries
            .into_iter()
            .map(|e| match e {
                keyhole_store::ListEntry::Object(o) => Listed::Object(listed(o)),
                keyhole_store::ListEntry::CommonPrefix(p) => Listed::Prefix(p),
            })
            .collect();
        let next = page.next_start_after.filter(|_| page.is_truncated);
        Ok(ObjectsPage {
            entries,
            truncated: page.is_truncated,
            next_token: next.as_deref().map(encode_token),
            next_marker: next,
        })
    }

    async fn part_copy(&self, req: UploadPartCopy) -> Result<Copied> {
        let (info, mut reader) = self
            .open_source(
                &req.src_bucket,
                &req.src_key,
                req.src_version_id.as_deref(),
                &req.source_conditions,
            )
            .await?;
        let src_version_id = info.version_id.clone();
        let range = conditions::copy_range(req.source_range.as_deref(), info.size)?;
        if range.len > MAX_SINGLE_PUT_BYTES {
            return Err(S3Error::invalid_request(
                "A copied part may be at most 5 GiB.",
            ));
        }
        let store = self.store.clone();
        let upload = upload_of(&store, &req.bucket, &req.key, &req.upload_id).await?;
        let algorithm = checksum::part_algorithm(upload.checksum.as_ref())?;
        let part = blocking(move || {
            let mut w = store.new_part(&req.bucket, &req.key, &req.upload_id, req.part_number)?;
            reader.seek(SeekFrom::Start(range.start))?;
            let mut hasher = ChecksumHasher::new(algorithm);
            copy_stream(&mut reader, range.len, |chunk| {
                hasher.update(chunk);
                w.write(chunk)
            })?;
            w.commit_with_checksum(None, Some(hasher.finish_base64()))
        })
        .await?;
        Ok(Copied {
            etag: part.etag,
            last_modified: part.last_modified,
            version_id: None,
            src_version_id,
        })
    }

    async fn uploads(&self, bucket: &str, req: ListUploads) -> Result<UploadsPage> {
        let store = self.store.clone();
        let (b, p) = (bucket.to_owned(), req.prefix.clone());
        let uploads = blocking(move || store.list_uploads(&b, &p)).await?;
        let ListUploads {
            prefix,
            delimiter,
            key_marker,
            upload_id_marker: id_marker,
            max,
        } = req;
        // Entries after the markers: uploads of keys after key-marker, or of key-marker itself
        // listed after the upload upload-id-marker names. A key's uploads are listed in the order
        // they were started (API_ListMultipartUploads.html), which is not their ids' order, so
        // the marker is found by its place in the list; an id that is not there (an upload
        // completed or aborted between two pages) falls back to comparing ids, as S3 documents
        // ("only if they have an upload ID lexicographically greater").
        let marker_at = (!key_marker.is_empty() && !id_marker.is_empty())
            .then(|| {
                uploads
                    .iter()
                    .position(|u| u.key == key_marker && u.upload_id == id_marker)
            })
            .flatten();
        let mut page = UploadsPage::default();
        for (i, u) in uploads.into_iter().enumerate() {
            let after_marker = key_marker.is_empty()
                || u.key.as_str() > key_marker.as_str()
                || (u.key == key_marker
                    && !id_marker.is_empty()
                    && match marker_at {
                        Some(at) => i > at,
                        None => u.upload_id.as_str() > id_marker.as_str(),
                    });
            if !after_marker {
                continue;
            }
            let rolled = delimiter.as_deref().and_then(|d| {
                let rest = u.key.strip_prefix(prefix.as_str())?;
                rest.find(d).map(|i| {
                    let end = prefix.len() + i + d.len();
                    u.key.get(..end).unwrap_or(&u.key).to_owned()
                })
            });
            let entry = if let Some(cp) = rolled {
                if matches!(page.entries.last(), Some(UploadEntry::Prefix(last)) if *last == cp) {
                    continue;
                }
                if !key_marker.is_empty() && cp.as_str() <= key_marker.as_str() {
                    continue;
                }
                UploadEntry::Prefix(cp)
            } else {
                UploadEntry::Upload {
                    key: u.key,
                    upload_id: u.upload_id,
                    initiated: u.initiated,
                }
            };
            if page.entries.len() == max {
                page.truncated = true;
                break;
            }
            page.entries.push(entry);
        }
        if page.truncated {
            match page.entries.last() {
                Some(UploadEntry::Upload { key, upload_id, .. }) => {
                    page.next_key_marker = Some(key.clone());
                    page.next_upload_id_marker = Some(upload_id.clone());
                }
                Some(UploadEntry::Prefix(p)) => {
                    page.next_key_marker = Some(p.clone());
                    page.next_upload_id_marker = Some(String::new());
                }
                None => {}
            }
        }
        Ok(page)
    }
}

impl Backend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn seal(&self) -> BoxFuture<'_, Result<()>> {
        let store = self.store.clone();
        Box::pin(async move { blocking(move || store.seal()).await })
    }

    fn list_buckets(&self) -> BoxFuture<'_, Result<Vec<BucketInfo>>> {
        let store = self.store.clone();
        Box::pin(async move {
            let list = blocking(move || store.list_buckets()).await?;
            Ok(list.into_iter().map(bucket_info).collect())
        })
    }

    fn create_bucket<'a>(&'a self, bucket: &'a str, region: &'a str) -> BoxFuture<'a, Result<()>> {
        let (store, b, r) = (self.store.clone(), bucket.to_owned(), region.to_owned());
        Box::pin(async move {
            blocking(move || store.create_bucket(&b, &r))
                .await
                .map(|_| ())
        })
    }

    fn create_locked_bucket<'a>(
        &'a self,
        bucket: &'a str,
        region: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let (store, b, r) = (self.store.clone(), bucket.to_owned(), region.to_owned());
        Box::pin(async move {
            blocking(move || store.create_bucket_with(&b, &r, true))
                .await
                .map(|_| ())
        })
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<()>> {
        let (store, b) = (self.store.clone(), bucket.to_owned());
        Box::pin(async move { blocking(move || store.delete_bucket(&b)).await })
    }

    fn head_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<BucketInfo>> {
        let (store, b) = (self.store.clone(), bucket.to_owned());
        Box::pin(async move { blocking(move || store.bucket(&b)).await.map(bucket_info) })
    }

    fn get_object(&self, req: GetObject) -> BoxFuture<'_, Result<Got>> {
        Box::pin(self.get(req))
    }

    fn put_object<'a>(
        &'a self,
        req: PutObject,
        body: &'a mut dyn Payload,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(self.put(req, body))
    }

    fn copy_object(&self, req: CopyObject) -> BoxFuture<'_, Result<Copied>> {
        Box::pin(self.copy(req))
    }

    fn delete_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        condition: Option<WriteCondition>,
        bypass_governance: bool,
    ) -> BoxFuture<'a, Result<super::Deleted>> {
        let (store, b, k) = (self.store.clone(), bucket.to_owned(), key.to_owned());
        let v = version_id.map(str::to_owned);
        Box::pin(async move {
            blocking(move || {
                store.delete_version_with(
                    &b,
                    &k,
                    v.as_deref(),
                    condition.as_ref(),
                    bypass_governance,
                )
            })
            .await
            .map(deleted)
        })
    }

    fn get_lock_configuration<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<keyhole_store::LockConfig>>> {
        let (store, b) = (self.store.clone(), bucket.to_owned());
        Box::pin(async move { blocking(move || store.lock_configuration(&b)).await })
    }

    fn put_lock_configuration<'a>(
        &'a self,
        bucket: &'a str,
        config: keyhole_store::LockConfig,
    ) -> BoxFuture<'a, Result<()>> {
        let (store, b) = (self.store.clone(), bucket.to_owned());
        Box::pin(async move { blocking(move || store.set_lock_configuration(&b, config)).await })
    }

    fn put_retention<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        retention: Option<keyhole_store::Retention>,
        bypass_governance: bool,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        let (store, b, k) = (self.store.clone(), bucket.to_owned(), key.to_owned());
        let v = version_id.map(str::to_owned);
        Box::pin(async move {
            blocking(move || {
                store.put_version_retention(
                    &b,
                    &k,
                    v.as_deref(),
                    retention,
                    bypass_governance,
                    chrono::Utc::now(),
                )
            })
            .await
        })
    }

    fn put_legal_hold<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        on: bool,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        let (store, b, k) = (self.store.clone(), bucket.to_owned(), key.to_owned());
        let v = version_id.map(str::to_owned);
        Box::pin(async move {
            blocking(move || store.put_version_legal_hold(&b, &k, v.as_deref(), on)).await
        })
    }

    fn delete_objects<'a>(
        &'a self,
        _bucket: &'a str,
        keys: Vec<Authorized<DeleteKey>>,
    ) -> BoxFuture<'a, Result<super::DeleteResults>> {
        let store = self.store.clone();
        Box::pin(async move {
            blocking(move || {
                Ok(keys
                    .into_iter()
                    .map(|item| {
                        let DeleteKey {
                            bucket,
                            key,
                            version_id,
                            if_match,
                            bypass_governance,
                        } = item.into_call();
                        let condition = if_match.map(WriteCondition::ETag);
                        let result = keyhole_store::validate_key(&key)
                            .and_then(|()| {
                                store.delete_version_with(
                                    &bucket,
                                    &key,
                                    version_id.as_deref(),
                                    condition.as_ref(),
                                    bypass_governance,
                                )
                            })
                            .map(deleted)
                            .map_err(S3Error::from);
                        (key, result)
                    })
                    .collect())
            })
            .await
        })
    }

    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        req: ListObjects,
    ) -> BoxFuture<'a, Result<ObjectsPage>> {
        Box::pin(self.list(bucket, req))
    }

    fn get_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>>> {
        let (store, b, k) = (self.store.clone(), bucket.to_owned(), key.to_owned());
        let v = version_id.map(str::to_owned);
        Box::pin(async move {
            blocking(move || {
                store
                    .head_version(&b, &k, v.as_deref())
                    .map(|info| info.meta.tags)
            })
            .await
        })
    }

    fn put_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        tags: Vec<(String, String)>,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        let (store, b, k) = (self.store.clone(), bucket.to_owned(), key.to_owned());
        let v = version_id.map(str::to_owned);
        Box::pin(async move {
            blocking(move || store.put_version_tags(&b, &k, v.as_deref(), tags)).await
        })
    }

    fn delete_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        self.put_tags(bucket, key, version_id, Vec::new())
    }

    fn get_versioning<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<super::Versioning>> {
        let (store, b) = (self.store.clone(), bucket.to_owned());
        Box::pin(async move { blocking(move || store.versioning(&b)).await })
    }

    fn put_versioning<'a>(
        &'a self,
        bucket: &'a str,
        state: super::Versioning,
    ) -> BoxFuture<'a, Result<()>> {
        let (store, b) = (self.store.clone(), bucket.to_owned());
        Box::pin(async move { blocking(move || store.set_versioning(&b, state)).await })
    }

    fn list_versions<'a>(
        &'a self,
        bucket: &'a str,
        req: super::ListVersions,
    ) -> BoxFuture<'a, Result<super::VersionsPage>> {
        let (store, b) = (self.store.clone(), bucket.to_owned());
        Box::pin(async move {
            let q = keyhole_store::VersionQuery {
                prefix: req.prefix,
                delimiter: req.delimiter,
                key_marker: Some(req.key_marker).filter(|k| !k.is_empty()),
                version_id_marker: Some(req.version_id_marker).filter(|v| !v.is_empty()),
                max_keys: req.max_keys,
            };
            let page = blocking(move || store.list_versions(&b, &q)).await?;
            Ok(super::VersionsPage {
                entries: page.entries.into_iter().map(version_listed).collect(),
                truncated: page.is_truncated,
                next_key_marker: page.next_key_marker,
                next_version_id_marker: page.next_version_id_marker,
            })
        })
    }

    fn create_multipart<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        checksum: Option<keyhole_store::ChecksumSpec>,
    ) -> BoxFuture<'a, Result<String>> {
        let (store, b, k) = (self.store.clone(), bucket.to_owned(), key.to_owned());
        Box::pin(async move {
            blocking(move || store.create_multipart_with(&b, &k, meta, checksum)).await
        })
    }

    fn upload_part<'a>(
        &'a self,
        req: UploadPart,
        body: &'a mut dyn Payload,
    ) -> BoxFuture<'a, Result<Written>> {
        let store = self.store.clone();
        Box::pin(async move {
            let UploadPart {
                bucket,
                key,
                upload_id,
                part_number,
                content_md5,
                ..
            } = req;
            let upload = upload_of(&store, &bucket, &key, &upload_id).await?;
            // Every part is kept with its checksum in the upload's algorithm: the client's, or
            // computed here. A part checksummed in another algorithm than the one the upload
            // was created with is refused, as S3 refuses it.
            let algorithm = checksum::part_algorithm(upload.checksum.as_ref())?;
            if let (Some(spec), Some(sent)) = (&upload.checksum, body.checksum_kind()) {
                if sent != algorithm {
                    return Err(S3Error::invalid_request(format!(
                        "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                        spec.algorithm.to_ascii_lowercase(),
                        sent.algorithm().to_ascii_lowercase()
                    )));
                }
            }
            let mut digesting = checksum::Digesting::new(body, algorithm);
            let writer = pump(&mut digesting, move || {
                store.new_part(&bucket, &key, &upload_id, part_number)
            })
            .await?;
            let verified = digesting.verified_checksum();
            let value = digesting.finish()?;
            // The response names the part's checksum in the upload's algorithm; an upload
            // created without one echoes what the client sent (checked), as S3 does.
            let echoed = match &upload.checksum {
                Some(_) => Some((algorithm, value.clone())),
                None => verified,
            };
            let part =
                blocking(move || writer.commit_with_checksum(content_md5, Some(value))).await?;
            Ok(Written {
                etag: part.etag,
                extra: echoed
                    .map(|(kind, v)| vec![(kind.header_name().to_owned(), v)])
                    .unwrap_or_default(),
                version_id: None,
            })
        })
    }

    fn upload_part_copy(&self, req: UploadPartCopy) -> BoxFuture<'_, Result<Copied>> {
        Box::pin(self.part_copy(req))
    }

    fn complete_multipart(&self, req: CompleteUpload) -> BoxFuture<'_, Result<Written>> {
        let store = self.store.clone();
        Box::pin(async move {
            check_condition_early(&store, &req.bucket, &req.key, req.condition.as_ref()).await?;
            let conditional = req.condition.is_some();
            let info = blocking(move || {
                store.complete_multipart_with(
                    &req.bucket,
                    &req.key,
                    &req.upload_id,
                    &req.parts,
                    req.condition.as_ref(),
                    &|spec, parts| checksum::complete(spec, parts, &req.checksums),
                )
            })
            .await
            .map_err(|e| conflict_if_condition_failed(e, conditional))?;
            Ok(Written {
                etag: info.etag,
                extra: info
                    .meta
                    .checksum
                    .as_ref()
                    .map(checksum::headers)
                    .unwrap_or_default(),
                version_id: info.version_id,
            })
        })
    }

    fn abort_multipart<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let (store, b, k, u) = (
            self.store.clone(),
            bucket.to_owned(),
            key.to_owned(),
            upload_id.to_owned(),
        );
        Box::pin(async move { blocking(move || store.abort_multipart(&b, &k, &u)).await })
    }

    fn list_parts<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        max: u32,
        marker: u32,
    ) -> BoxFuture<'a, Result<PartsPage>> {
        let (store, b, k, u) = (
            self.store.clone(),
            bucket.to_owned(),
            key.to_owned(),
            upload_id.to_owned(),
        );
        Box::pin(async move {
            let (upload, parts) = blocking(move || store.list_parts(&b, &k, &u)).await?;
            let mut after = parts.into_iter().filter(|p| p.part_number > marker);
            let page: Vec<Part> = after
                .by_ref()
                .take(max as usize)
                .map(|p| Part {
                    part_number: p.part_number,
                    etag: p.etag,
                    size: p.size,
                    last_modified: p.last_modified,
                    checksum: p.checksum,
                })
                .collect();
            Ok(PartsPage {
                parts: page,
                truncated: after.next().is_some(),
                checksum: upload.checksum,
            })
        })
    }

    fn list_uploads<'a>(
        &'a self,
        bucket: &'a str,
        req: ListUploads,
    ) -> BoxFuture<'a, Result<UploadsPage>> {
        Box::pin(self.uploads(bucket, req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_stream_copies_exactly_and_detects_short_sources() {
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        copy_stream(&mut data.as_slice(), data.len() as u64, |c| {
            out.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, data);
        let err = copy_stream(&mut &data[..10], 11, |_| Ok(())).unwrap_err();
        assert!(matches!(err, StoreError::Io(_)));
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token("dir/ü key");
        assert_eq!(decode_token(&t).unwrap(), "dir/ü key");
        assert_eq!(decode_token("***").unwrap_err().code(), "InvalidArgument");
    }
}
