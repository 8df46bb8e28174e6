//! [`UpstreamBackend`]: buckets kept in another S3 service (AWS S3, MinIO, Ceph RGW, R2, GCS,
//! another keyhole), reached with keyhole's own credentials.
//!
//! Every call arrives here only after the gateway authorized it; this module translates it to
//! the upstream's names ([`map`]), sends it ([`client`]) and translates the answer back. The
//! upstream enforces what it stores: conditional writes travel as `If-None-Match`/`If-Match`,
//! read conditions and ranges as their headers, checksums and `Content-MD5` as sent. ETags,
//! metadata, checksums and error codes come back as the upstream gives them ([`errors`]), except
//! that no answer names the upstream's host, buckets, prefixes or keyhole's credentials.

pub mod client;
pub mod credentials;
pub mod errors;
pub mod map;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use keyhole_store::{ObjectMeta, WriteCondition};
use md5::Digest;

use super::{
    Backend, BoxFuture, BucketInfo, ByteRange, CompleteUpload, Copied, CopyObject, DeleteResults,
    Directive, GetObject, Got, GotObject, ListObjects, ListPosition, ListUploads, Listed,
    ListedObject, ObjectHead, ObjectsPage, Part, PartsPage, Payload, PutObject, Result,
    UploadEntry, UploadPart, UploadPartCopy, UploadsPage, Written,
};
use crate::authz::Authorized;
use crate::config::{BucketTarget, UpstreamConfig};
use crate::error::S3Error;
use crate::s3::DeleteKey;
use crate::xml::{Element, XmlWriter};
use client::{read_xml, Answer, Call, UpstreamClient};
use credentials::{CredentialCell, CredentialSource};
use map::{BucketMap, Mapping};

/// Response headers S3 clients read that are passed through from the upstream.
const PASSED_HEADERS: &[&str] = &[
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-checksum-type",
    "x-amz-storage-class",
    "x-amz-server-side-encryption",
    "x-amz-mp-parts-count",
    "x-amz-restore",
];

/// The upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No usable credentials.
    #[error("cannot read the upstream credentials: {0}")]
    Credentials(String),
    /// The TLS trust settings.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Buckets in an upstream S3 service.
#[derive(Debug)]
pub struct UpstreamBackend {
    http: UpstreamClient,
    map: BucketMap,
    /// The upstream's region (new buckets' `LocationConstraint`).
    upstream_region: String,
    /// The region the gateway reports for every bucket it serves.
    gateway_region: String,
}

fn text(e: &Element, name: &str) -> String {
    e.child_text(name).unwrap_or("").trim().to_owned()
}

/// An element's text exactly as sent (keys and prefixes: spaces are part of them).
fn raw(e: &Element, name: &str) -> String {
    e.child_text(name).unwrap_or("").to_owned()
}

fn xml_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn unquote(etag: &str) -> String {
    etag.trim().trim_matches('"').to_owned()
}

/// Decodes a value the upstream sent with `encoding-type=url` (`+` is a space).
fn url_decoded(s: &str, encoded: bool) -> Result<String> {
    if !encoded {
        return Ok(s.to_owned());
    }
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            S3Error::internal(std::io::Error::other(
                "the upstream sent a key that is not UTF-8",
            ))
        })
}

/// `x-amz-tagging` for a tag set (URL query form).
fn tagging_header(tags: &[(String, String)]) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    tags.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Adds the content headers and user metadata of `meta` to a call.
fn with_meta<'a>(mut call: Call<'a>, meta: &ObjectMeta) -> Result<Call<'a>> {
    for (name, value) in [
        ("content-type", &meta.content_type),
        ("content-encoding", &meta.content_encoding),
        ("content-disposition", &meta.content_disposition),
        ("content-language", &meta.content_language),
        ("cache-control", &meta.cache_control),
        ("expires", &meta.expires),
    ] {
        if let Some(v) = value {
            call = call.header(name, v)?;
        }
    }
    for (k, v) in &meta.user {
        call = call.header(&format!("x-amz-meta-{k}"), &crate::s3::rfc2047::encode(v))?;
    }
    Ok(call)
}

/// Adds a write's condition: the upstream checks it when it commits.
fn with_condition<'a>(call: Call<'a>, condition: Option<&WriteCondition>) -> Result<Call<'a>> {
    match condition {
        None => Ok(call),
        Some(WriteCondition::Absent) => call.header("if-none-match", "*"),
        Some(WriteCondition::ETag(e)) => call.header("if-match", e),
    }
}

/// The pass-through headers of an answer.
fn passed(answer: &Answer) -> Vec<(String, String)> {
    PASSED_HEADERS
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), answer.header(name)?.to_owned())))
        .collect()
}

/// What a GET or HEAD answer says about the object, and the range it holds.
fn head_of(answer: &Answer) -> Result<(ObjectHead, Option<ByteRange>)> {
    let h = |name: &str| answer.header(name).map(str::to_owned);
    let length = h("content-length").and_then(|v| v.parse::<u64>().ok());
    let (size, range) = match (answer.status, h("content-range")) {
        (StatusCode::PARTIAL_CONTENT, Some(cr)) => {
            let parsed = cr
                .trim()
                .strip_prefix("bytes ")
                .and_then(|r| r.split_once('/'))
                .and_then(|(span, total)| {
                    let (a, b) = span.split_once('-')?;
                    let (a, b, total) = (
                        a.parse::<u64>().ok()?,
                        b.parse::<u64>().ok()?,
                        total.parse::<u64>().ok()?,
                    );
                    (b >= a).then_some((
                        total,
                        ByteRange {
                            start: a,
                            len: b - a + 1,
                        },
                    ))
                })
                .ok_or_else(|| {
                    S3Error::internal(std::io::Error::other(
                        "the upstream answered a range without a valid Content-Range",
                    ))
                })?;
            (parsed.0, Some(parsed.1))
        }
        // A whole object's size is its Content-Length; an answer without one (chunked) is not
        // an S3 answer, and taking it as 0 bytes served a silently empty object (review of the
        // upstream path, F3).
        _ => (
            length.ok_or_else(|| {
                S3Error::internal(std::io::Error::other(
                    "the upstream answered an object without a Content-Length",
                ))
            })?,
            None,
        ),
    };
    let mut user = BTreeMap::new();
    for (name, value) in &answer.headers {
        if let Some(meta) = name.as_str().strip_prefix("x-amz-meta-") {
            user.insert(
                meta.to_owned(),
                crate::s3::rfc2047::decode(value.as_bytes()),
            );
        }
    }
    let head = ObjectHead {
        size,
        etag: answer.etag(),
        last_modified: h("last-modified")
            .as_deref()
            .and_then(super::conditions::parse_http_date)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        meta: ObjectMeta {
            content_type: h("content-type"),
            content_encoding: h("content-encoding"),
            content_disposition: h("content-disposition"),
            content_language: h("content-language"),
            cache_control: h("cache-control"),
            expires: h("expires"),
            user,
            tags: Vec::new(),
            lock: keyhole_store::ObjectLock::default(),
            checksum: None,
        },
        tag_count: h("x-amz-tagging-count")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        version_id: h("x-amz-version-id"),
        extra: passed(answer),
        tags: None,
        parts: Vec::new(),
    };
    Ok((head, range))
}

fn md5_header(doc: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(doc))
}

impl UpstreamBackend {
    /// The upstream of `cfg`, with the `[buckets]` table's mappings, signing with credentials
    /// from `source` (read now, and again in the background when temporary).
    pub fn open(
        cfg: &UpstreamConfig,
        buckets: &BTreeMap<String, BucketTarget>,
        source: Arc<dyn CredentialSource>,
        gateway_region: &str,
    ) -> std::result::Result<UpstreamBackend, UpstreamError> {
        let describe = source.describe();
        let cell = CredentialCell::open(source).map_err(UpstreamError::Credentials)?;
        cell.keep_fresh();
        tracing::info!(credentials = %describe, "upstream credentials read");
        Ok(UpstreamBackend {
            http: UpstreamClient::new(cfg, cell)?,
            map: BucketMap::new(buckets),
            upstream_region: cfg.region.clone(),
            gateway_region: gateway_region.to_owned(),
        })
    }

    /// Upstream bucket names that keyhole buckets of the same name must not reach.
    pub fn reserved(&self) -> Vec<String> {
        self.map.reserved().map(str::to_owned).collect()
    }

    fn mapping(&self, bucket: &str) -> Mapping {
        self.map.resolve(bucket)
    }

    async fn buckets(&self) -> Result<Vec<BucketInfo>> {
        let answer = self
            .http
            .send(Call::new(Method::GET, None, None), Bytes::new())
            .await?;
        let doc = read_xml(answer).await?;
        let mut out = Vec::new();
        if let Some(list) = doc.child("Buckets") {
            for b in list.children_named("Bucket") {
                let upstream = text(b, "Name");
                let created = xml_time(&text(b, "CreationDate"));
                for name in self.map.names_of(&upstream) {
                    out.push(BucketInfo {
                        name,
                        region: self.gateway_region.clone(),
                        created,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn create(&self, bucket: &str) -> Result<()> {
        let m = self.mapping(bucket);
        if m.is_prefix() {
            // The bucket is a prefix of an upstream bucket: it exists when that bucket does.
            self.head(bucket).await.map_err(|e| {
                if e.code() == "NoSuchBucket" {
                    S3Error::invalid_request(
                        "This bucket is mapped onto an upstream bucket that does not exist; the gateway's operator must create it.",
                    )
                } else {
                    e
                }
            })?;
            return Err(S3Error::from(
                keyhole_store::StoreError::BucketAlreadyOwnedByYou,
            ));
        }
        let body = if self.upstream_region == "us-east-1" {
            Bytes::new()
        } else {
            let mut w = XmlWriter::new();
            w.root("CreateBucketConfiguration");
            w.elem("LocationConstraint", &self.upstream_region);
            w.close("CreateBucketConfiguration");
            Bytes::from(w.finish())
        };
        self.http
            .send(Call::new(Method::PUT, Some(&m.bucket), None), body)
            .await
            .map(|_| ())
    }

    async fn delete(&self, bucket: &str) -> Result<()> {
        let m = self.mapping(bucket);
        if m.is_prefix() {
            return Err(S3Error::invalid_request(
                "This bucket is a prefix of an upstream bucket, defined by the gateway's configuration; it cannot be deleted through S3.",
            ));
        }
        self.http
            .send(
                Call::new(Method::DELETE, Some(&m.bucket), None),
                Bytes::new(),
            )
            .await
            .map(|_| ())
    }

    async fn head(&self, bucket: &str) -> Result<BucketInfo> {
        let m = self.mapping(bucket);
        self.http
            .send(Call::new(Method::HEAD, Some(&m.bucket), None), Bytes::new())
            .await?;
        Ok(BucketInfo {
            name: bucket.to_owned(),
            region: self.gateway_region.clone(),
            created: DateTime::<Utc>::UNIX_EPOCH,
        })
    }

    async fn get(&self, req: GetObject) -> Result<Got> {
        // Versions are the local store's: an upstream bucket's versions are not served (yet).
        if req.version_id.is_some() {
            return Err(super::versioning_not_implemented());
        }
        let m = self.mapping(&req.bucket);
        let key = m.key(&req.key)?;
        let method = if req.head { Method::HEAD } else { Method::GET };
        let mut call = Call::new(method, Some(&m.bucket), Some(&key));
        // Only a range S3 would honour is forwarded: the forms S3 ignores (several ranges, bad
        // syntax) mean the whole object everywhere, whatever the upstream would make of them.
        let range = req.range.as_deref().filter(|r| range_is_honoured(r));
        if let Some(r) = range {
            call = call.header("range", r)?;
            if let Some(v) = &req.if_range {
                call = call.header("if-range", v)?;
            }
        }
        for (name, value) in forwarded(&req.conditions).headers("") {
            call = call.header(&name, &value)?;
        }
        if req.checksum_mode {
            call = call.header("x-amz-checksum-mode", "ENABLED")?;
        }
        if let Some(n) = req.part_number {
            call = call.query("partNumber", n.to_string());
        }
        let answer = match self.http.send(call, Bytes::new()).await {
            Err(e) if e.code() == "InvalidRange" && range.is_some() && req.if_range.is_some() => {
                // Upstreams judge the range before `If-Range` and the other conditions. The
                // object's head (with those conditions: a 412 or 304 comes first) decides: an
                // `If-Range` that still holds keeps the 416; one that does not makes the range
                // ignored with it, and the whole object is the answer.
                let validator = req.if_range.clone();
                let judged = Box::pin(self.get(GetObject {
                    range: None,
                    if_range: None,
                    head: true,
                    ..req.clone()
                }))
                .await?;
                return match judged {
                    Got::Object(h)
                        if !super::conditions::if_range_holds(
                            validator.as_deref(),
                            &h.head.etag,
                        ) =>
                    {
                        if req.head {
                            Ok(Got::Object(h))
                        } else {
                            Box::pin(self.get(GetObject {
                                range: None,
                                if_range: None,
                                ..req.clone()
                            }))
                            .await
                        }
                    }
                    Got::NotModified { .. } => Ok(judged),
                    Got::Object(_) => Err(e),
                };
            }
            Err(e) if e.code() == "InvalidRange" && range.is_some() => {
                // Upstreams answer a bare 416; S3's names the range asked for and the object's
                // size (`Content-Range: bytes */SIZE` too). The size is the object's head's, and
                // the error is made here as for the local store, so both answer alike.
                return match Box::pin(self.get(GetObject {
                    range: None,
                    if_range: None,
                    head: true,
                    ..req.clone()
                }))
                .await
                {
                    Ok(Got::Object(h)) => {
                        match super::conditions::parse_range(range, h.head.size) {
                            Err(ours) => Err(ours),
                            Ok(_) => Err(e),
                        }
                    }
                    _ => Err(e),
                };
            }
            other => other?,
        };
        if answer.status == StatusCode::NOT_MODIFIED {
            return Ok(Got::NotModified {
                etag: answer.etag(),
                last_modified: answer
                    .header("last-modified")
                    .and_then(super::conditions::parse_http_date)
                    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            });
        }
        let (head, mut got_range) = head_of(&answer)?;
        // The upstream evaluated the conditions; they are evaluated again on what it answered,
        // so an upstream that ignores one still gives S3's answer.
        if super::conditions::evaluate(&req.conditions, &head.etag, head.last_modified, false)?
            == super::conditions::Conditional::NotModified
        {
            return Ok(Got::NotModified {
                etag: head.etag,
                last_modified: head.last_modified,
            });
        }
        let mut body = if req.head {
            crate::body::empty()
        } else {
            answer.body
        };
        let range_applies = super::conditions::if_range_holds(req.if_range.as_deref(), &head.etag);
        if got_range.is_some() && !range_applies {
            // The upstream ignored `If-Range` and sent a range of an object the validator no
            // longer names: the answer is the whole object, asked for again without a range.
            return Box::pin(self.get(GetObject {
                range: None,
                if_range: None,
                ..req
            }))
            .await;
        }
        if got_range.is_none() && range.is_some() && range_applies {
            // The upstream sent the whole object for a range S3 honours: cut the range here.
            got_range = super::conditions::parse_range(range, head.size)?;
            if let (Some(r), false) = (got_range, req.head) {
                body = slice_body(body, r);
            }
        }
        Ok(Got::Object(Box::new(GotObject {
            head,
            range: got_range,
            body,
        })))
    }

    async fn put(&self, req: PutObject, body: &mut dyn Payload) -> Result<Written> {
        let m = self.mapping(&req.bucket);
        let key = m.key(&req.key)?;
        let mut call = with_meta(
            Call::new(Method::PUT, Some(&m.bucket), Some(&key)),
            &req.meta,
        )?;
        if !req.meta.tags.is_empty() {
            call = call.header("x-amz-tagging", &tagging_header(&req.meta.tags))?;
        }
        let call = with_condition(call, req.condition.as_ref())?;
        self.send_upload(call, body, req.length, req.content_md5, &req.checksums)
            .await
    }

    /// Sends an upload's body (PutObject, UploadPart) with its `Content-MD5` and the client's
    /// checksum headers, the MD5 checked on the way when one was given; the upstream's ETag and
    /// the headers it passes back.
    async fn send_upload(
        &self,
        mut call: Call<'_>,
        body: &mut dyn Payload,
        length: u64,
        content_md5: Option<[u8; 16]>,
        checksums: &[(String, String)],
    ) -> Result<Written> {
        if let Some(md5) = content_md5 {
            call = call.header(
                "content-md5",
                &base64::engine::general_purpose::STANDARD.encode(md5),
            )?;
        }
        for (name, value) in checksums {
            call = call.header(name, value)?;
        }
        let answer = match content_md5 {
            Some(md5) => {
                let mut checked = Md5Checked::new(body, md5);
                self.http.send_stream(call, &mut checked, length).await?
            }
            None => self.http.send_stream(call, body, length).await?,
        };
        Ok(Written {
            etag: answer.etag(),
            extra: passed(&answer),
            version_id: answer.header("x-amz-version-id").map(str::to_owned),
        })
    }

    /// The copy-source conditions (and a part copy's range), checked here on the source as it
    /// is now; forwarded as an `x-amz-copy-source-if-match` on the ETag checked, so the upstream
    /// copies that version or refuses.
    async fn check_source(
        &self,
        bucket: &str,
        key: &str,
        conditions: &super::ReadConditions,
        range: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        if conditions.is_empty() && range.is_none() {
            return Ok(Vec::new());
        }
        let got = self.get(GetObject::head(bucket, key)).await?;
        let Got::Object(o) = got else {
            return Err(S3Error::internal(std::io::Error::other(
                "an unconditional HEAD answered 304",
            )));
        };
        super::conditions::evaluate(conditions, &o.head.etag, o.head.last_modified, true)?;
        if range.is_some() {
            let r = super::conditions::copy_range(range, o.head.size)?;
            if r.len > crate::config::MAX_SINGLE_PUT_BYTES {
                return Err(S3Error::invalid_request(
                    "A copied part may be at most 5 GiB.",
                ));
            }
        }
        Ok(vec![(
            "x-amz-copy-source-if-match".to_owned(),
            format!("\"{}\"", o.head.etag),
        )])
    }

    async fn copy(&self, req: CopyObject) -> Result<Copied> {
        if req.src_version_id.is_some() {
            return Err(super::versioning_not_implemented());
        }
        let pinned = self
            .check_source(&req.src_bucket, &req.src_key, &req.source_conditions, None)
            .await?;
        let src = self.mapping(&req.src_bucket);
        let src_key = src.key(&req.src_key)?;
        let m = self.mapping(&req.bucket);
        let key = m.key(&req.key)?;
        let source = format!("/{}/{}", src.bucket, client::encode_key(&src_key));
        let mut call = Call::new(Method::PUT, Some(&m.bucket), Some(&key))
            .header("x-amz-copy-source", &source)?;
        if let Directive::Replace(meta) = &req.meta {
            call = with_meta(call.header("x-amz-metadata-directive", "REPLACE")?, meta)?;
        }
        if let Directive::Replace(tags) = &req.tags {
            call = call
                .header("x-amz-tagging-directive", "REPLACE")?
                .header("x-amz-tagging", &tagging_header(tags))?;
        }
        for (name, value) in &pinned {
            call = call.header(name, value)?;
        }
        if let Some(kind) = req.checksum_algorithm {
            call = call.header("x-amz-checksum-algorithm", kind.algorithm())?;
        }
        let call = with_condition(call, req.condition.as_ref())?;
        let answer = self.http.send(call, Bytes::new()).await?;
        let version_id = answer.header("x-amz-version-id").map(str::to_owned);
        let src_version_id = answer
            .header("x-amz-copy-source-version-id")
            .map(str::to_owned);
        let doc = read_xml(answer).await?;
        Ok(Copied {
            etag: unquote(&text(&doc, "ETag")),
            last_modified: xml_time(&text(&doc, "LastModified")),
            version_id,
            src_version_id,
        })
    }

    async fn delete_one(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        condition: Option<WriteCondition>,
    ) -> Result<super::Deleted> {
        if version_id.is_some() {
            return Err(super::versioning_not_implemented());
        }
        let m = self.mapping(bucket);
        let key = m.key(key)?;
        let call =
            Call::new(Method::DELETE, Some(&m.bucket), Some(&key)).idempotent(condition.is_none());
        let conditional = condition.is_some();
        let call = with_condition(call, condition.as_ref())?;
        match self.http.send(call, Bytes::new()).await {
            Ok(answer) => Ok(super::Deleted {
                version_id: answer.header("x-amz-version-id").map(str::to_owned),
                delete_marker: answer.header("x-amz-delete-marker") == Some("true"),
            }),
            // Deleting an absent key succeeds in S3; a store that says otherwise is not
            // followed, unless the delete was conditional (If-Match on no object is 404).
            Err(e) if e.code() == "NoSuchKey" && !conditional => Ok(super::Deleted::default()),
            Err(e) => Err(e),
        }
    }

    async fn delete_many(
        &self,
        bucket: &str,
        keys: Vec<Authorized<DeleteKey>>,
    ) -> Result<DeleteResults> {
        if keys.iter().any(|k| k.call().if_match.is_some()) {
            // A conditional key goes as a DeleteObject with `If-Match`, judged as that one is
            // (an upstream that ignored a per-object `ETag` element would delete whatever the
            // object had become), and then so does every key, in the body's order, so that a
            // key named twice is decided as S3 decides it (review 20, L2). One upstream request
            // per key: such a request costs as many round trips as it names keys.
            let mut out = Vec::with_capacity(keys.len());
            for item in keys {
                let DeleteKey {
                    key,
                    version_id,
                    if_match,
                    ..
                } = item.into_call();
                let result = if version_id.is_some() {
                    Err(super::versioning_not_implemented())
                } else {
                    self.delete_one(bucket, &key, None, if_match.map(WriteCondition::ETag))
                        .await
                };
                out.push((key, result));
            }
            return Ok(out);
        }
        let m = self.mapping(bucket);
        let mut results: Vec<(String, Option<Result<()>>)> = Vec::with_capacity(keys.len());
        let mut w = XmlWriter::new();
        w.root("Delete");
        w.elem("Quiet", "false");
        let mut any = false;
        for item in keys {
            let DeleteKey {
                key, version_id, ..
            } = item.into_call();
            if version_id.is_some() {
                results.push((key, Some(Err(super::versioning_not_implemented()))));
                continue;
            }
            match m.key(&key) {
                Ok(upstream) => {
                    w.open("Object");
                    w.elem("Key", &upstream);
                    w.close("Object");
                    any = true;
                    results.push((key, None));
                }
                Err(e) => results.push((key, Some(Err(e)))),
            }
        }
        w.close("Delete");
        if any {
            let doc = w.finish();
            let call = Call::new(Method::POST, Some(&m.bucket), None)
                .query("delete", "")
                .header("content-md5", &md5_header(doc.as_bytes()))?
                .header("content-type", "application/xml")?
                .idempotent(true);
            let answer = read_xml(self.http.send(call, Bytes::from(doc)).await?).await?;
            let mut outcome: HashMap<String, Result<()>> = HashMap::new();
            for d in answer.children_named("Deleted") {
                outcome.insert(raw(d, "Key"), Ok(()));
            }
            for e in answer.children_named("Error") {
                let code = text(e, "Code");
                outcome.insert(
                    raw(e, "Key"),
                    Err(errors::from_code(
                        StatusCode::BAD_REQUEST,
                        &code,
                        "NoSuchKey",
                    )),
                );
            }
            let answered: std::collections::HashSet<String> = outcome.keys().cloned().collect();
            for (key, slot) in &mut results {
                if slot.is_some() {
                    continue;
                }
                let upstream = m.prefixed(key);
                *slot = Some(match outcome.remove(&upstream) {
                    Some(r) => r,
                    // A key named twice is answered once; its first mention got the answer.
                    None if answered.contains(&upstream) => Ok(()),
                    None => Err(S3Error::internal(std::io::Error::other(
                        "the upstream's DeleteObjects answer left a key out",
                    ))),
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|(k, r)| (k, r.unwrap_or(Ok(())).map(|()| super::Deleted::default())))
            .collect())
    }

    async fn list(&self, bucket: &str, req: ListObjects) -> Result<ObjectsPage> {
        let m = self.mapping(bucket);
        xml_safe(&req.prefix)?;
        xml_safe(req.delimiter.as_deref().unwrap_or(""))?;
        // Where the page starts, as a keyhole name: tokens are this gateway's own (the
        // position, base64url), never the upstream's, so they name no upstream key.
        let after = match req.position {
            ListPosition::Start => None,
            ListPosition::Marker(s) | ListPosition::StartAfter(s) => Some(s),
            ListPosition::Token(t) => Some(decode_token(&t)?),
        }
        .filter(|s| !s.is_empty());
        xml_safe(after.as_deref().unwrap_or(""))?;
        // Starting after a common prefix returns it again (its keys sort after it): ask for one
        // more and drop it.
        let ask = if after.is_some() && req.delimiter.is_some() {
            (req.max_keys + 1).min(1000)
        } else {
            req.max_keys
        };
        // Keys come back as XML text (not `encoding-type=url`: some stores claim the encoding
        // without applying it); an answer that says it is URL-encoded is decoded.
        let mut call = Call::new(Method::GET, Some(&m.bucket), None)
            .query("list-type", "2")
            .query("max-keys", ask.to_string())
            .query("prefix", m.prefixed(&req.prefix));
        if let Some(d) = &req.delimiter {
            call = call.query("delimiter", d.clone());
        }
        if let Some(a) = &after {
            call = call.query("start-after", m.prefixed(a));
        }
        let doc = read_xml(self.http.send(call, Bytes::new()).await?).await?;
        let encoded = text(&doc, "EncodingType") == "url";
        let upstream_truncated = text(&doc, "IsTruncated") == "true";
        let mut entries = Vec::new();
        // Contents and CommonPrefixes come as two lists; S3 orders the page by name.
        for c in doc.children.iter() {
            match c.name.as_str() {
                "Contents" => {
                    let key = m.strip(&url_decoded(&raw(c, "Key"), encoded)?)?;
                    let class = text(c, "StorageClass");
                    entries.push(Listed::Object(ListedObject {
                        key,
                        size: text(c, "Size").parse().unwrap_or(0),
                        etag: unquote(&text(c, "ETag")),
                        last_modified: xml_time(&text(c, "LastModified")),
                        storage_class: if class.is_empty() {
                            "STANDARD".to_owned()
                        } else {
                            class
                        },
                    }));
                }
                "CommonPrefixes" => {
                    let p = m.strip(&url_decoded(&raw(c, "Prefix"), encoded)?)?;
                    entries.push(Listed::Prefix(p));
                }
                _ => {}
            }
        }
        entries.sort_by(|a, b| listed_name(a).cmp(listed_name(b)));
        if let (Some(a), Some(Listed::Prefix(first))) = (&after, entries.first()) {
            if first == a {
                entries.remove(0);
            }
        }
        let mut truncated = upstream_truncated;
        if entries.len() > req.max_keys {
            entries.truncate(req.max_keys);
            truncated = true;
        }
        let next = if truncated {
            entries.last().map(|e| listed_name(e).to_owned())
        } else {
            None
        };
        Ok(ObjectsPage {
            entries,
            truncated,
            next_token: next.as_deref().map(encode_token),
            next_marker: next,
        })
    }

    async fn tags(&self, bucket: &str, key: &str) -> Result<Vec<(String, String)>> {
        let m = self.mapping(bucket);
        let key = m.key(key)?;
        let call = Call::new(Method::GET, Some(&m.bucket), Some(&key)).query("tagging", "");
        let doc = read_xml(self.http.send(call, Bytes::new()).await?).await?;
        Ok(doc
            .child("TagSet")
            .map(|set| {
                set.children_named("Tag")
                    .map(|t| (raw(t, "Key"), raw(t, "Value")))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn set_tags(&self, bucket: &str, key: &str, tags: Vec<(String, String)>) -> Result<()> {
        let m = self.mapping(bucket);
        let key = m.key(key)?;
        let doc = crate::s3::tagging::document(&tags);
        let call = Call::new(Method::PUT, Some(&m.bucket), Some(&key))
            .query("tagging", "")
            .header("content-md5", &md5_header(doc.as_bytes()))?
            .idempotent(true);
        self.http.send(call, Bytes::from(doc)).await.map(|_| ())
    }

    async fn clear_tags(&self, bucket: &str, key: &str) -> Result<()> {
        let m = self.mapping(bucket);
        let key = m.key(key)?;
        let call = Call::new(Method::DELETE, Some(&m.bucket), Some(&key))
            .query("tagging", "")
            .idempotent(true);
        self.http.send(call, Bytes::new()).await.map(|_| ())
    }

    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        checksum: Option<keyhole_store::ChecksumSpec>,
    ) -> Result<String> {
        let m = self.mapping(bucket);
        let key = m.key(key)?;
        let mut call = with_meta(
            Call::new(Method::POST, Some(&m.bucket), Some(&key)).query("uploads", ""),
            &meta,
        )?;
        if !meta.tags.is_empty() {
            call = call.header("x-amz-tagging", &tagging_header(&meta.tags))?;
        }
        if let Some(spec) = &checksum {
            call = call
                .header("x-amz-checksum-algorithm", &spec.algorithm)?
                .header("x-amz-checksum-type", spec.kind.as_str())?;
        }
        let doc = read_xml(self.http.send(call, Bytes::new()).await?).await?;
        let id = text(&doc, "UploadId");
        if id.is_empty() {
            return Err(S3Error::internal(std::io::Error::other(
                "the upstream created an upload without an id",
            )));
        }
        Ok(id)
    }

    async fn part(&self, req: UploadPart, body: &mut dyn Payload) -> Result<Written> {
        let m = self.mapping(&req.bucket);
        let key = m.key(&req.key)?;
        let mut call = Call::new(Method::PUT, Some(&m.bucket), Some(&key))
            .query("partNumber", req.part_number.to_string())
            .query("uploadId", req.upload_id.clone());
        call.not_found = "NoSuchUpload";
        self.send_upload(call, body, req.length, req.content_md5, &req.checksums)
            .await
    }

    async fn part_copy(&self, req: UploadPartCopy) -> Result<Copied> {
        if req.src_version_id.is_some() {
            return Err(super::versioning_not_implemented());
        }
        let pinned = self
            .check_source(
                &req.src_bucket,
                &req.src_key,
                &req.source_conditions,
                req.source_range.as_deref(),
            )
            .await?;
        let src = self.mapping(&req.src_bucket);
        let src_key = src.key(&req.src_key)?;
        let m = self.mapping(&req.bucket);
        let key = m.key(&req.key)?;
        let source = format!("/{}/{}", src.bucket, client::encode_key(&src_key));
        let mut call = Call::new(Method::PUT, Some(&m.bucket), Some(&key))
            .query("partNumber", req.part_number.to_string())
            .query("uploadId", req.upload_id.clone())
            .header("x-amz-copy-source", &source)?;
        if let Some(r) = &req.source_range {
            call = call.header("x-amz-copy-source-range", r)?;
        }
        for (name, value) in &pinned {
            call = call.header(name, value)?;
        }
        let doc = read_xml(self.http.send(call, Bytes::new()).await?).await?;
        Ok(Copied {
            etag: unquote(&text(&doc, "ETag")),
            last_modified: xml_time(&text(&doc, "LastModified")),
            version_id: None,
            src_version_id: None,
        })
    }

    async fn complete(&self, req: CompleteUpload) -> Result<Written> {
        let m = self.mapping(&req.bucket);
        let key = m.key(&req.key)?;
        let mut w = XmlWriter::new();
        w.root("CompleteMultipartUpload");
        for (i, (n, etag)) in req.parts.iter().enumerate() {
            w.open("Part");
            w.elem("PartNumber", &n.to_string());
            w.elem("ETag", &format!("\"{etag}\""));
            if let Some(Some((kind, value))) = req.checksums.parts.get(i) {
                w.elem(&crate::checksum::element(kind.algorithm()), value);
            }
            w.close("Part");
        }
        w.close("CompleteMultipartUpload");
        let mut call = Call::new(Method::POST, Some(&m.bucket), Some(&key))
            .query("uploadId", req.upload_id.clone())
            .header("content-type", "application/xml")?;
        if let Some((kind, value)) = &req.checksums.whole {
            call = call.header(kind.header_name(), value)?;
        }
        call.not_found = "NoSuchUpload";
        let call = with_condition(call, req.condition.as_ref())?;
        let answer = self.http.send(call, Bytes::from(w.finish())).await?;
        let mut extra = passed(&answer);
        let version_id = answer.header("x-amz-version-id").map(str::to_owned);
        let doc = read_xml(answer).await?;
        // The object's checksum comes in the result document: kept as the headers that carry it.
        for kind in [
            keyhole_sigv4::ChecksumKind::Crc32,
            keyhole_sigv4::ChecksumKind::Crc32c,
            keyhole_sigv4::ChecksumKind::Crc64Nvme,
            keyhole_sigv4::ChecksumKind::Sha1,
            keyhole_sigv4::ChecksumKind::Sha256,
        ] {
            let value = text(&doc, &crate::checksum::element(kind.algorithm()));
            if !value.is_empty() && !extra.iter().any(|(n, _)| n == kind.header_name()) {
                extra.push((kind.header_name().to_owned(), value));
            }
        }
        let kind = text(&doc, "ChecksumType");
        if !kind.is_empty() && !extra.iter().any(|(n, _)| n == "x-amz-checksum-type") {
            extra.push(("x-amz-checksum-type".to_owned(), kind));
        }
        Ok(Written {
            etag: unquote(&text(&doc, "ETag")),
            extra,
            version_id,
        })
    }

    async fn abort(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let m = self.mapping(bucket);
        let key = m.key(key)?;
        let mut call = Call::new(Method::DELETE, Some(&m.bucket), Some(&key))
            .query("uploadId", upload_id.to_owned());
        call.not_found = "NoSuchUpload";
        self.http.send(call, Bytes::new()).await.map(|_| ())
    }

    async fn parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        max: u32,
        marker: u32,
    ) -> Result<PartsPage> {
        let m = self.mapping(bucket);
        let key = m.key(key)?;
        let mut call = Call::new(Method::GET, Some(&m.bucket), Some(&key))
            .query("uploadId", upload_id.to_owned())
            .query("max-parts", max.to_string());
        if marker > 0 {
            call = call.query("part-number-marker", marker.to_string());
        }
        call.not_found = "NoSuchUpload";
        let doc = read_xml(self.http.send(call, Bytes::new()).await?).await?;
        let mut parts: Vec<Part> = doc
            .children_named("Part")
            .map(|p| Part {
                part_number: text(p, "PartNumber").parse().unwrap_or(0),
                etag: unquote(&text(p, "ETag")),
                size: text(p, "Size").parse().unwrap_or(0),
                last_modified: xml_time(&text(p, "LastModified")),
                checksum: p
                    .children
                    .iter()
                    .find(|c| c.name.starts_with("Checksum") && c.name != "ChecksumType")
                    .map(|c| c.text.clone()),
            })
            .collect();
        // S3 lists parts by number, after the marker, at most `max`; so does this gateway,
        // whatever a store answers.
        parts.sort_by_key(|p| p.part_number);
        parts.retain(|p| p.part_number > marker);
        let mut truncated = text(&doc, "IsTruncated") == "true";
        if parts.len() > max as usize {
            parts.truncate(max as usize);
            truncated = true;
        }
        let checksum = crate::checksum::spec_from_headers(
            Some(text(&doc, "ChecksumAlgorithm"))
                .filter(|a| !a.is_empty())
                .as_deref(),
            Some(text(&doc, "ChecksumType"))
                .filter(|t| !t.is_empty())
                .as_deref(),
        )
        .ok()
        .flatten();
        Ok(PartsPage {
            parts,
            truncated,
            checksum,
        })
    }

    async fn uploads(&self, bucket: &str, req: ListUploads) -> Result<UploadsPage> {
        let m = self.mapping(bucket);
        for text in [&req.prefix, &req.key_marker, &req.upload_id_marker] {
            xml_safe(text)?;
        }
        xml_safe(req.delimiter.as_deref().unwrap_or(""))?;
        let mut call = Call::new(Method::GET, Some(&m.bucket), None)
            .query("uploads", "")
            .query("max-uploads", req.max.to_string())
            .query("prefix", m.prefixed(&req.prefix));
        if let Some(d) = &req.delimiter {
            call = call.query("delimiter", d.clone());
        }
        if !req.key_marker.is_empty() {
            call = call.query("key-marker", m.prefixed(&req.key_marker));
            if !req.upload_id_marker.is_empty() {
                call = call.query("upload-id-marker", req.upload_id_marker.clone());
            }
        }
        let doc = read_xml(self.http.send(call, Bytes::new()).await?).await?;
        let encoded = text(&doc, "EncodingType") == "url";
        let mut page = UploadsPage {
            truncated: text(&doc, "IsTruncated") == "true",
            ..UploadsPage::default()
        };
        for c in doc.children.iter() {
            match c.name.as_str() {
                "Upload" => page.entries.push(UploadEntry::Upload {
                    key: m.strip(&url_decoded(&raw(c, "Key"), encoded)?)?,
                    upload_id: text(c, "UploadId"),
                    initiated: xml_time(&text(c, "Initiated")),
                }),
                "CommonPrefixes" => page.entries.push(UploadEntry::Prefix(
                    m.strip(&url_decoded(&raw(c, "Prefix"), encoded)?)?,
                )),
                _ => {}
            }
        }
        if page.truncated {
            let next_key = raw(&doc, "NextKeyMarker");
            page.next_key_marker = if next_key.is_empty() {
                match page.entries.last() {
                    Some(UploadEntry::Upload { key, .. }) => Some(key.clone()),
                    Some(UploadEntry::Prefix(p)) => Some(p.clone()),
                    None => None,
                }
            } else {
                Some(m.strip(&url_decoded(&next_key, encoded)?)?)
            };
            page.next_upload_id_marker = Some(text(&doc, "NextUploadIdMarker"));
        }
        Ok(page)
    }
}

/// The read conditions forwarded upstream: the ones S3's precedence leaves in force (If-Match
/// over If-Unmodified-Since, If-None-Match over If-Modified-Since), and only single entity tags
/// (not `*`, which any object matches, nor lists, which some stores do not read). They are
/// evaluated again, in full, on the answer, so leaving one out never changes the outcome;
/// forwarding them saves sending a body for nothing.
fn forwarded(c: &super::ReadConditions) -> super::ReadConditions {
    let any = |v: &Option<String>| {
        v.as_deref()
            .is_some_and(|l| l.contains(',') || l.trim() == "*")
    };
    let mut f = c.clone();
    if f.if_match.is_some() {
        f.if_unmodified_since = None;
    }
    if f.if_none_match.is_some() {
        f.if_modified_since = None;
    }
    if any(&f.if_match) {
        f.if_match = None;
    }
    if any(&f.if_none_match) {
        f.if_none_match = None;
    }
    f
}

/// A listing parameter the upstream's answer repeats: it must be text XML 1.0 can carry (no
/// control characters but tab, line feed and carriage return), or the answer could not be read.
fn xml_safe(text: &str) -> Result<()> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r') && (c as u32) < 0x20)
    {
        return Err(S3Error::invalid_argument(
            "Listing parameters with control characters cannot be sent to the upstream store.",
        ));
    }
    Ok(())
}

/// Whether S3 honours this `Range` header: one range, `bytes=FIRST-[LAST]` with LAST >= FIRST,
/// or `bytes=-SUFFIX` (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html and
/// RFC 9110 section 14.1.1; anything else serves the whole object).
fn range_is_honoured(header: &str) -> bool {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return false;
    };
    if spec.contains(',') {
        return false;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return false;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    match (a.is_empty(), b.is_empty()) {
        (true, _) => num(b),
        (false, true) => num(a),
        (false, false) => num(a) && num(b) && a.parse::<u64>().ok() <= b.parse::<u64>().ok(),
    }
}

/// `range` of a body that holds the whole object.
fn slice_body(body: crate::body::Body, range: ByteRange) -> crate::body::Body {
    use http_body_util::BodyExt;
    let (tx, out) = crate::body::channel(4);
    tokio::spawn(async move {
        let mut body = body;
        let (mut skip, mut take) = (range.start, range.len);
        while take > 0 {
            let chunk = match body.frame().await {
                None => {
                    let _ = tx
                        .send(Err(std::io::Error::other("the upstream's body was short")))
                        .await;
                    return;
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
            };
            let n = chunk.len() as u64;
            if skip >= n {
                skip -= n;
                continue;
            }
            let from = usize::try_from(skip).unwrap_or(usize::MAX);
            let rest = chunk.slice(from.min(chunk.len())..);
            skip = 0;
            let keep = usize::try_from(take.min(rest.len() as u64)).unwrap_or(rest.len());
            take -= keep as u64;
            if tx.send(Ok(rest.slice(..keep))).await.is_err() {
                return;
            }
        }
    });
    out
}

/// A payload whose end is checked against the client's `Content-MD5` (S3's `BadDigest`), so
/// that an upstream that does not check it never gets the last piece of a wrong body.
struct Md5Checked<'a> {
    inner: &'a mut dyn Payload,
    hasher: md5::Md5,
    expected: [u8; 16],
}

impl<'a> Md5Checked<'a> {
    fn new(inner: &'a mut dyn Payload, expected: [u8; 16]) -> Self {
        Md5Checked {
            inner,
            hasher: md5::Md5::new(),
            expected,
        }
    }
}

impl Payload for Md5Checked<'_> {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>> {
        Box::pin(async move {
            match self.inner.next().await? {
                Some(chunk) => {
                    self.hasher.update(&chunk);
                    Ok(Some(chunk))
                }
                None => {
                    let got = std::mem::take(&mut self.hasher).finalize();
                    if got.as_slice() == self.expected {
                        Ok(None)
                    } else {
                        Err(S3Error::from(keyhole_store::StoreError::BadDigest))
                    }
                }
            }
        })
    }

    fn checksum_kind(&self) -> Option<keyhole_sigv4::ChecksumKind> {
        self.inner.checksum_kind()
    }

    fn verified_checksum(&self) -> Option<(keyhole_sigv4::ChecksumKind, String)> {
        self.inner.verified_checksum()
    }
}

fn listed_name(e: &Listed) -> &str {
    match e {
        Listed::Object(o) => &o.key,
        Listed::Prefix(p) => p,
    }
}

/// A V2 continuation token: the position, base64url (a keyhole name, as the client knows it).
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

impl Backend for UpstreamBackend {
    fn kind(&self) -> &'static str {
        "upstream"
    }

    fn seal(&self) -> BoxFuture<'_, Result<()>> {
        // Nothing to wait for or refuse here: a request already forwarded completes at the
        // upstream, and the listener has stopped taking new ones.
        Box::pin(async { Ok(()) })
    }

    fn list_buckets(&self) -> BoxFuture<'_, Result<Vec<BucketInfo>>> {
        Box::pin(self.buckets())
    }

    fn create_bucket<'a>(&'a self, bucket: &'a str, _region: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.create(bucket))
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.delete(bucket))
    }

    fn head_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<BucketInfo>> {
        Box::pin(self.head(bucket))
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
        // Object Lock is not forwarded (lock operations answer NotImplemented on upstream
        // buckets); a bypass asks for nothing an upstream delete would honour.
        let _ = bypass_governance;
        Box::pin(self.delete_one(bucket, key, version_id, condition))
    }

    fn delete_objects<'a>(
        &'a self,
        bucket: &'a str,
        keys: Vec<Authorized<DeleteKey>>,
    ) -> BoxFuture<'a, Result<DeleteResults>> {
        Box::pin(self.delete_many(bucket, keys))
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
        Box::pin(async move {
            if version_id.is_some() {
                return Err(super::versioning_not_implemented());
            }
            self.tags(bucket, key).await
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
            if version_id.is_some() {
                return Err(super::versioning_not_implemented());
            }
            self.set_tags(bucket, key, tags).await.map(|()| None)
        })
    }

    fn delete_tags<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            if version_id.is_some() {
                return Err(super::versioning_not_implemented());
            }
            self.clear_tags(bucket, key).await.map(|()| None)
        })
    }

    fn create_multipart<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        checksum: Option<keyhole_store::ChecksumSpec>,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.create_upload(bucket, key, meta, checksum))
    }

    fn upload_part<'a>(
        &'a self,
        req: UploadPart,
        body: &'a mut dyn Payload,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(self.part(req, body))
    }

    fn upload_part_copy(&self, req: UploadPartCopy) -> BoxFuture<'_, Result<Copied>> {
        Box::pin(self.part_copy(req))
    }

    fn complete_multipart(&self, req: CompleteUpload) -> BoxFuture<'_, Result<Written>> {
        Box::pin(self.complete(req))
    }

    fn abort_multipart<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.abort(bucket, key, upload_id))
    }

    fn list_parts<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        max: u32,
        marker: u32,
    ) -> BoxFuture<'a, Result<PartsPage>> {
        Box::pin(self.parts(bucket, key, upload_id, max, marker))
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
    fn url_encoded_names_decode_like_s3_clients_do() {
        assert_eq!(url_decoded("a+b%2Bc/d%25", true).unwrap(), "a b+c/d%");
        assert_eq!(url_decoded("a+b", false).unwrap(), "a+b");
        assert!(url_decoded("%FF", true).is_err());
    }

    #[test]
    fn tagging_header_is_a_query_string() {
        let h = tagging_header(&[("a b".into(), "x&y=z".into()), ("k".into(), String::new())]);
        assert_eq!(h, "a%20b=x%26y%3Dz&k=");
        let q = crate::s3::route::Query::parse(Some(&h));
        assert_eq!(q.get("a b"), Some("x&y=z"));
    }

    #[test]
    fn only_ranges_s3_honours_are_forwarded() {
        for ok in [
            "bytes=0-9",
            "bytes=5-",
            "bytes=-5",
            "bytes=3-3",
            " bytes=1-2 ",
        ] {
            assert!(range_is_honoured(ok), "{ok}");
        }
        for ignored in [
            "bytes=5-2",
            "bytes=abc",
            "items=0-5",
            "bytes=",
            "bytes=--1",
            "bytes=0-1,3-4",
            "bytes=-",
        ] {
            assert!(!range_is_honoured(ignored), "{ignored}");
        }
    }

    #[tokio::test]
    async fn a_whole_body_is_cut_to_the_range() {
        use http_body_util::BodyExt;
        let (tx, whole) = crate::body::channel(8);
        tokio::spawn(async move {
            for piece in [&b"0123"[..], b"4567", b"89"] {
                let _ = tx.send(Ok(Bytes::from_static(piece))).await;
            }
        });
        let cut = slice_body(whole, ByteRange { start: 3, len: 5 });
        let bytes = cut.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"34567");
    }

    #[tokio::test]
    async fn a_wrong_content_md5_fails_before_the_end() {
        let mut inner = super::super::BytesPayload(Some(Bytes::from_static(b"hello")));
        let good: [u8; 16] = md5::Md5::digest(b"hello").into();
        let mut p = Md5Checked::new(&mut inner, good);
        assert_eq!(p.next().await.unwrap().as_deref(), Some(&b"hello"[..]));
        assert!(p.next().await.unwrap().is_none());
        let mut inner = super::super::BytesPayload(Some(Bytes::from_static(b"hello")));
        let mut p = Md5Checked::new(&mut inner, [0; 16]);
        assert!(p.next().await.unwrap().is_some());
        assert_eq!(p.next().await.unwrap_err().code(), "BadDigest");
    }

    #[test]
    fn tokens_are_keyhole_positions() {
        assert_eq!(decode_token(&encode_token("dir/ü")).unwrap(), "dir/ü");
        assert!(decode_token("!!").is_err());
    }
}
