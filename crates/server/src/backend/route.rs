//! [`Storage`]: the gateway's one [`Backend`], routing each bucket to the backend that keeps it
//! (the local store, or the upstream S3 service) by the configuration's bucket table.
//!
//! A copy whose source and destination live in different backends streams the source's bytes
//! from one into the other; within one backend it is that backend's own copy (an upstream's
//! server-side copy).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use keyhole_store::{ObjectMeta, WriteCondition};

use super::{
    Backend, BoxFuture, BucketInfo, CompleteUpload, Copied, CopyObject, Directive, GetObject, Got,
    ListObjects, ListUploads, ObjectsPage, PartsPage, Payload, PutObject, ReadConditions, Result,
    UploadPart, UploadPartCopy, UploadsPage, Written,
};
use crate::authz::Authorized;
use crate::body::Body;
use crate::config::MAX_SINGLE_PUT_BYTES;
use crate::error::S3Error;
use crate::s3::DeleteKey;

/// Where a bucket lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The embedded local-disk store.
    Local,
    /// The upstream S3 service.
    Upstream,
    /// No bucket of this name can be reached: an upstream bucket that the bucket table exposes
    /// under other names only (so its mapped prefixes cannot be side-stepped).
    Reserved,
}

/// Routes every bucket to its backend; see the module documentation.
#[derive(Debug)]
pub struct Storage {
    local: Arc<dyn Backend>,
    upstream: Option<Arc<dyn Backend>>,
    routes: HashMap<String, Target>,
    default: Target,
}

impl Storage {
    /// The backend a new bucket named `bucket` is created in.
    fn creating(&self, bucket: &str) -> Result<&Arc<dyn Backend>> {
        if self.target(bucket) == Target::Reserved {
            // Another name exposes this upstream bucket: to clients it is taken.
            return Err(S3Error::new(
                "BucketAlreadyExists",
                StatusCode::CONFLICT,
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
            ));
        }
        self.backend(bucket)
    }

    /// Buckets named in `routes` go where it says, every other one to `default`. A route to
    /// [`Target::Upstream`] needs an `upstream`.
    pub fn new(
        local: Arc<dyn Backend>,
        upstream: Option<Arc<dyn Backend>>,
        routes: HashMap<String, Target>,
        default: Target,
    ) -> Storage {
        Storage {
            local,
            upstream,
            routes,
            default,
        }
    }

    /// Where `bucket` lives.
    pub fn target(&self, bucket: &str) -> Target {
        self.routes.get(bucket).copied().unwrap_or(self.default)
    }

    /// The backend that keeps `bucket`.
    fn backend(&self, bucket: &str) -> Result<&Arc<dyn Backend>> {
        match self.target(bucket) {
            Target::Local => Ok(&self.local),
            Target::Upstream => self.upstream.as_ref().ok_or_else(|| {
                S3Error::internal(std::io::Error::other(
                    "a bucket is routed upstream but no upstream is configured",
                ))
            }),
            Target::Reserved => Err(S3Error::from(keyhole_store::StoreError::NoSuchBucket)),
        }
    }

    fn same(a: &Arc<dyn Backend>, b: &Arc<dyn Backend>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
    }

    /// CopyObject from one backend into another: the source's bytes stream through.
    async fn copy_across(
        &self,
        from: &Arc<dyn Backend>,
        to: &Arc<dyn Backend>,
        req: CopyObject,
    ) -> Result<Copied> {
        let got = read_source(
            from,
            &req.src_bucket,
            &req.src_key,
            req.src_version_id.as_deref(),
            req.source_conditions,
            None,
        )
        .await?;
        let size = got.head.size;
        if size > MAX_SINGLE_PUT_BYTES {
            return Err(S3Error::invalid_request(
                "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
            ));
        }
        let mut meta = match req.meta {
            Directive::Replace(m) => m,
            Directive::Copy => got.head.meta.clone(),
        };
        meta.tags = match req.tags {
            Directive::Replace(t) => t,
            Directive::Copy if got.head.tag_count > 0 => {
                from.get_tags(&req.src_bucket, &req.src_key, req.src_version_id.as_deref())
                    .await?
            }
            Directive::Copy => Vec::new(),
        };
        meta.lock = req.lock;
        let put = PutObject {
            bucket: req.bucket,
            key: req.key,
            meta,
            content_md5: None,
            condition: req.condition,
            length: size,
            checksums: Vec::new(),
        };
        let mut body = BodyPayload::new(got.body, size);
        let written = to.put_object(put, &mut body).await?;
        Ok(Copied {
            etag: written.etag,
            // The time the copy was made (the destination reports it only on a HEAD).
            last_modified: chrono::Utc::now(),
            version_id: written.version_id,
            src_version_id: got.head.version_id,
        })
    }

    /// UploadPartCopy from one backend into another.
    async fn part_copy_across(
        &self,
        from: &Arc<dyn Backend>,
        to: &Arc<dyn Backend>,
        req: UploadPartCopy,
    ) -> Result<Copied> {
        // The source's size first (the range is checked against it), then exactly that object's
        // bytes (`If-Match` on its ETag), so the range and the bytes belong to one version.
        let head = from
            .get_object(GetObject {
                conditions: req.source_conditions.clone(),
                ..GetObject::head_version(
                    &req.src_bucket,
                    &req.src_key,
                    req.src_version_id.as_deref(),
                )
            })
            .await
            .and_then(copy_source_outcome)?;
        let range = super::conditions::copy_range(req.source_range.as_deref(), head.head.size)?;
        if range.len > MAX_SINGLE_PUT_BYTES {
            return Err(S3Error::invalid_request(
                "A copied part may be at most 5 GiB.",
            ));
        }
        let same_version = ReadConditions {
            if_match: Some(format!("\"{}\"", head.head.etag)),
            ..ReadConditions::default()
        };
        let body = if range.len == 0 {
            crate::body::empty()
        } else {
            let spec = format!("bytes={}-{}", range.start, range.start + range.len - 1);
            read_source(
                from,
                &req.src_bucket,
                &req.src_key,
                req.src_version_id.as_deref(),
                same_version,
                Some(spec),
            )
            .await?
            .body
        };
        let part = UploadPart {
            bucket: req.bucket,
            key: req.key,
            upload_id: req.upload_id,
            part_number: req.part_number,
            content_md5: None,
            length: range.len,
            checksums: Vec::new(),
        };
        let mut payload = BodyPayload::new(body, range.len);
        let written = to.upload_part(part, &mut payload).await?;
        Ok(Copied {
            etag: written.etag,
            last_modified: chrono::Utc::now(),
            version_id: None,
            src_version_id: head.head.version_id,
        })
    }
}

/// A copy's source: `304` is `412` for a copy (S3 answers PreconditionFailed when
/// `x-amz-copy-source-if-none-match` or `-if-modified-since` does not hold).
fn copy_source_outcome(got: Got) -> Result<super::GotObject> {
    match got {
        Got::Object(o) => Ok(*o),
        Got::NotModified { .. } => Err(S3Error::new(
            "PreconditionFailed",
            StatusCode::PRECONDITION_FAILED,
            "At least one of the pre-conditions you specified did not hold",
        )
        .with("Condition", "x-amz-copy-source-If-None-Match")),
    }
}

async fn read_source(
    from: &Arc<dyn Backend>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    conditions: ReadConditions,
    range: Option<String>,
) -> Result<super::GotObject> {
    from.get_object(GetObject {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        range,
        if_range: None,
        conditions,
        checksum_mode: false,
        head: false,
        version_id: version_id.map(str::to_owned),
        part_number: None,
    })
    .await
    .and_then(copy_source_outcome)
}

/// A response body read as a [`Payload`] of exactly `len` bytes (a copy between backends).
pub struct BodyPayload {
    body: Body,
    left: u64,
}

impl BodyPayload {
    /// Reads `body`, which must hold exactly `len` bytes.
    pub fn new(body: Body, len: u64) -> BodyPayload {
        BodyPayload { body, left: len }
    }
}

fn short_source() -> S3Error {
    S3Error::internal(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "a copy source's body did not match its length",
    ))
}

impl Payload for BodyPayload {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>> {
        Box::pin(async move {
            loop {
                match self.body.frame().await {
                    None if self.left == 0 => return Ok(None),
                    None => return Err(short_source()),
                    Some(Err(e)) => return Err(S3Error::internal(e)),
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        let n = data.len() as u64;
                        if n > self.left {
                            return Err(short_source());
                        }
                        self.left -= n;
                        if n > 0 {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        })
    }
}

impl Backend for Storage {
    fn kind(&self) -> &'static str {
        "storage"
    }

    fn seal(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.local.seal().await?;
            if let Some(up) = &self.upstream {
                up.seal().await?;
            }
            Ok(())
        })
    }

    /// Every backend's buckets that are routed to it, by name.
    fn list_buckets(&self) -> BoxFuture<'_, Result<Vec<BucketInfo>>> {
        Box::pin(async move {
            let mut all: Vec<BucketInfo> = self
                .local
                .list_buckets()
                .await?
                .into_iter()
                .filter(|b| self.target(&b.name) == Target::Local)
                .collect();
            if let Some(up) = &self.upstream {
                all.extend(
                    up.list_buckets()
                        .await?
                        .into_iter()
                        .filter(|b| self.target(&b.name) == Target::Upstream),
                );
            }
            all.sort_by(|a, b| a.name.cmp(&b.name));
            all.dedup_by(|a, b| a.name == b.name);
            Ok(all)
        })
    }

    fn create_bucket<'a>(&'a self, bucket: &'a str, region: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.creating(bucket)?.create_bucket(bucket, region).await })
    }

    fn create_locked_bucket<'a>(
        &'a self,
        bucket: &'a str,
        region: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.creating(bucket)?
                .create_locked_bucket(bucket, region)
                .await
        })
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.backend(bucket)?.delete_bucket(bucket).await })
    }

    fn head_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<BucketInfo>> {
        Box::pin(async move { self.backend(bucket)?.head_bucket(bucket).await })
    }

    fn get_object(&self, req: GetObject) -> BoxFuture<'_, Result<Got>> {
        Box::pin(async move { self.backend(&req.bucket)?.get_object(req).await })
    }

    fn put_object<'a>(
        &'a self,
        req: PutObject,
        body: &'a mut dyn Payload,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(async move { self.backend(&req.bucket)?.put_object(req, body).await })
    }

    fn copy_object(&self, req: CopyObject) -> BoxFuture<'_, Result<Copied>> {
        Box::pin(async move {
            let from = self.backend(&req.src_bucket)?;
            let to = self.backend(&req.bucket)?;
            if Self::same(from, to) {
                to.copy_object(req).await
            } else {
                self.copy_across(from, to, req).await
            }
        })
    }

    fn delete_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        condition: Option<WriteCondition>,
        bypass_governance: bool,
    ) -> BoxFuture<'a, Result<super::Deleted>> {
        Box::pin(async move {
            self.backend(bucket)?
                .delete_object(bucket, key, version_id, condition, bypass_governance)
                .await
        })
    }

    fn delete_objects<'a>(
        &'a self,
        bucket: &'a str,
        keys: Vec<Authorized<DeleteKey>>,
    ) -> BoxFuture<'a, Result<super::DeleteResults>> {
        Box::pin(async move { self.backend(bucket)?.delete_objects(bucket, keys).await })
    }

    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        req: ListObjects,
    ) -> BoxFuture<'a, Result<ObjectsPage>> {
        Box::pin(async move { self.backend(bucket)?.list_objects(bucket, req).await })
    }

    fn get_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>>> {
        Box::pin(async move {
            self.backend(bucket)?
                .get_tags(bucket, key, version_id)
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
        Box::pin(async move {
            self.backend(bucket)?
                .put_tags(bucket, key, version_id, tags)
                .await
        })
    }

    fn delete_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            self.backend(bucket)?
                .delete_tags(bucket, key, version_id)
                .await
        })
    }

    fn get_versioning<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<super::Versioning>> {
        Box::pin(async move { self.backend(bucket)?.get_versioning(bucket).await })
    }

    fn put_versioning<'a>(
        &'a self,
        bucket: &'a str,
        state: super::Versioning,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.backend(bucket)?.put_versioning(bucket, state).await })
    }

    fn get_lock_configuration<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<keyhole_store::LockConfig>>> {
        Box::pin(async move { self.backend(bucket)?.get_lock_configuration(bucket).await })
    }

    fn put_lock_configuration<'a>(
        &'a self,
        bucket: &'a str,
        config: keyhole_store::LockConfig,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.backend(bucket)?
                .put_lock_configuration(bucket, config)
                .await
        })
    }

    fn put_retention<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        retention: Option<keyhole_store::Retention>,
        bypass_governance: bool,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            self.backend(bucket)?
                .put_retention(bucket, key, version_id, retention, bypass_governance)
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
        Box::pin(async move {
            self.backend(bucket)?
                .put_legal_hold(bucket, key, version_id, on)
                .await
        })
    }

    fn list_versions<'a>(
        &'a self,
        bucket: &'a str,
        req: super::ListVersions,
    ) -> BoxFuture<'a, Result<super::VersionsPage>> {
        Box::pin(async move { self.backend(bucket)?.list_versions(bucket, req).await })
    }

    fn create_multipart<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        checksum: Option<keyhole_store::ChecksumSpec>,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            self.backend(bucket)?
                .create_multipart(bucket, key, meta, checksum)
                .await
        })
    }

    fn upload_part<'a>(
        &'a self,
        req: UploadPart,
        body: &'a mut dyn Payload,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(async move { self.backend(&req.bucket)?.upload_part(req, body).await })
    }

    fn upload_part_copy(&self, req: UploadPartCopy) -> BoxFuture<'_, Result<Copied>> {
        Box::pin(async move {
            let from = self.backend(&req.src_bucket)?;
            let to = self.backend(&req.bucket)?;
            if Self::same(from, to) {
                to.upload_part_copy(req).await
            } else {
                self.part_copy_across(from, to, req).await
            }
        })
    }

    fn complete_multipart(&self, req: CompleteUpload) -> BoxFuture<'_, Result<Written>> {
        Box::pin(async move { self.backend(&req.bucket)?.complete_multipart(req).await })
    }

    fn abort_multipart<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.backend(bucket)?
                .abort_multipart(bucket, key, upload_id)
                .await
        })
    }

    fn list_parts<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        max: u32,
        marker: u32,
    ) -> BoxFuture<'a, Result<PartsPage>> {
        Box::pin(async move {
            self.backend(bucket)?
                .list_parts(bucket, key, upload_id, max, marker)
                .await
        })
    }

    fn list_uploads<'a>(
        &'a self,
        bucket: &'a str,
        req: ListUploads,
    ) -> BoxFuture<'a, Result<UploadsPage>> {
        Box::pin(async move { self.backend(bucket)?.list_uploads(bucket, req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use crate::backend::{BytesPayload, Part};
    use http_body_util::BodyExt;

    /// Two local stores, one standing in for an upstream: `here` is local, everything else
    /// "upstream", `taken` reserved.
    fn two_stores() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| -> Arc<dyn Backend> {
            let store = keyhole_store::LocalStore::open_with(
                &dir.path().join(name),
                keyhole_store::StoreOptions {
                    min_part_size: 1,
                    ..Default::default()
                },
            )
            .unwrap();
            Arc::new(LocalBackend::new(store))
        };
        let routes = HashMap::from([
            ("here".to_owned(), Target::Local),
            ("taken".to_owned(), Target::Reserved),
        ]);
        let storage = Storage::new(open("a"), Some(open("b")), routes, Target::Upstream);
        (dir, storage)
    }

    async fn put(s: &Storage, bucket: &str, key: &str, data: &'static [u8]) {
        let req = PutObject {
            bucket: bucket.into(),
            key: key.into(),
            meta: ObjectMeta {
                content_type: Some("text/plain".into()),
                tags: vec![("t".into(), "1".into())],
                ..ObjectMeta::default()
            },
            content_md5: None,
            condition: None,
            length: data.len() as u64,
            checksums: Vec::new(),
        };
        let mut body = BytesPayload(Some(Bytes::from_static(data)));
        s.put_object(req, &mut body).await.unwrap();
    }

    async fn read(s: &Storage, bucket: &str, key: &str) -> (Vec<u8>, super::super::ObjectHead) {
        let got = s
            .get_object(GetObject {
                bucket: bucket.into(),
                key: key.into(),
                range: None,
                if_range: None,
                conditions: ReadConditions::default(),
                checksum_mode: false,
                head: false,
                version_id: None,
                part_number: None,
            })
            .await
            .unwrap();
        let Got::Object(o) = got else { panic!("304") };
        let bytes = o.body.collect().await.unwrap().to_bytes().to_vec();
        (bytes, o.head)
    }

    #[tokio::test]
    async fn buckets_go_where_the_table_says_and_reserved_names_reach_nothing() {
        let (_dir, s) = two_stores();
        s.create_bucket("here", "us-east-1").await.unwrap();
        s.create_bucket("there", "us-east-1").await.unwrap();
        let names: Vec<String> = s
            .list_buckets()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, vec!["here", "there"]);
        assert_eq!(
            s.create_bucket("taken", "us-east-1")
                .await
                .unwrap_err()
                .code(),
            "BucketAlreadyExists"
        );
        assert_eq!(
            s.head_bucket("taken").await.unwrap_err().code(),
            "NoSuchBucket"
        );
        // "there" lives in the second store only: the first never heard of it.
        assert_eq!(s.target("there"), Target::Upstream);
        assert_eq!(
            s.local.head_bucket("there").await.unwrap_err().code(),
            "NoSuchBucket"
        );
    }

    #[tokio::test]
    async fn copies_between_backends_stream_the_bytes_and_keep_metadata_and_tags() {
        let (_dir, s) = two_stores();
        s.create_bucket("here", "us-east-1").await.unwrap();
        s.create_bucket("there", "us-east-1").await.unwrap();
        put(&s, "here", "src", b"0123456789").await;
        let copy = CopyObject {
            src_bucket: "here".into(),
            src_key: "src".into(),
            src_version_id: None,
            source_conditions: ReadConditions::default(),
            bucket: "there".into(),
            key: "dst".into(),
            meta: Directive::Copy,
            tags: Directive::Copy,
            condition: None,
            checksum_algorithm: None,
            lock: keyhole_store::ObjectLock::default(),
        };
        s.copy_object(copy).await.unwrap();
        let (bytes, head) = read(&s, "there", "dst").await;
        assert_eq!(bytes, b"0123456789");
        assert_eq!(head.meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            s.get_tags("there", "dst", None).await.unwrap(),
            vec![("t".into(), "1".into())]
        );
        // A part copied across with a range, then completed.
        let id = s
            .create_multipart("there", "parts", ObjectMeta::default(), None)
            .await
            .unwrap();
        let part = s
            .upload_part_copy(UploadPartCopy {
                src_bucket: "here".into(),
                src_key: "src".into(),
                src_version_id: None,
                source_conditions: ReadConditions::default(),
                source_range: Some("bytes=2-5".into()),
                bucket: "there".into(),
                key: "parts".into(),
                upload_id: id.clone(),
                part_number: 1,
            })
            .await
            .unwrap();
        let listed: Vec<Part> = s
            .list_parts("there", "parts", &id, 1000, 0)
            .await
            .unwrap()
            .parts;
        assert_eq!((listed.len(), listed[0].size), (1, 4));
        s.complete_multipart(CompleteUpload {
            bucket: "there".into(),
            key: "parts".into(),
            upload_id: id,
            parts: vec![(1, part.etag)],
            condition: None,
            checksums: crate::checksum::CompleteChecksums::default(),
        })
        .await
        .unwrap();
        assert_eq!(read(&s, "there", "parts").await.0, b"2345");
        // A source condition that does not hold is 412, and nothing is written.
        let failing = CopyObject {
            src_bucket: "here".into(),
            src_key: "src".into(),
            src_version_id: None,
            source_conditions: ReadConditions {
                if_match: Some("\"nope\"".into()),
                ..ReadConditions::default()
            },
            bucket: "there".into(),
            key: "never".into(),
            meta: Directive::Copy,
            tags: Directive::Copy,
            condition: None,
            checksum_algorithm: None,
            lock: keyhole_store::ObjectLock::default(),
        };
        assert_eq!(
            s.copy_object(failing).await.unwrap_err().code(),
            "PreconditionFailed"
        );
        let missing = s
            .get_object(GetObject::head("there", "never"))
            .await
            .unwrap_err();
        assert_eq!(missing.code(), "NoSuchKey");
    }

    #[tokio::test]
    async fn a_body_shorter_than_its_length_is_refused() {
        let mut p = BodyPayload::new(crate::body::full(Bytes::from_static(b"abc")), 5);
        assert!(p.next().await.unwrap().is_some());
        assert_eq!(p.next().await.unwrap_err().code(), "InternalError");
        let mut p = BodyPayload::new(crate::body::full(Bytes::from_static(b"abcdef")), 5);
        assert_eq!(p.next().await.unwrap_err().code(), "InternalError");
    }
}
