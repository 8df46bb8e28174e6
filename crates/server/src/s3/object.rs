//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject.

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use http::{Response, StatusCode};
use keyhole_store::{ObjectInfo, ObjectMeta, StoreError, WriteCondition};

use super::route::{object_arn, CopySource};
use super::{
    check_acl_headers, empty_response, http_date, parse_http_date, quoted, set_header, tagging,
    xml_date, xml_ok, Ctx,
};
use crate::authz::Permission;
use crate::body::{blocking, pump, stream_object, Body, BodyReader};
use crate::config::{MAX_DELETE_KEYS, MAX_SINGLE_PUT_BYTES, MAX_XML_BODY_BYTES};
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

/// AWS's limit on user-defined metadata (`x-amz-meta-*` names and values together).
const MAX_USER_METADATA_BYTES: usize = 2048;

/// Request headers keyhole cannot honour; refusing them beats silently ignoring them.
const UNSUPPORTED_HEADERS: &[&str] = &[
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
    "x-amz-website-redirect-location",
];

/// The condition of a conditional write (`If-None-Match: *` or `If-Match: ETAG`) on PutObject,
/// CopyObject, CompleteMultipartUpload and DeleteObject
/// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). What S3 does
/// not accept is refused rather than ignored: `If-None-Match` with anything but `*`, and both
/// headers at once, are `NotImplemented`.
pub(super) fn write_condition(ctx: &Ctx<'_>) -> Result<Option<WriteCondition>, S3Error> {
    match (ctx.header("if-match")?, ctx.header("if-none-match")?) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(S3Error::not_implemented(
            "a write with both If-Match and If-None-Match",
        )),
        (None, Some(v)) if v.trim() == "*" => Ok(Some(WriteCondition::Absent)),
        (None, Some(_)) => Err(S3Error::not_implemented(
            "If-None-Match on a write with a value other than `*`",
        )),
        (Some(etag), None) => Ok(Some(WriteCondition::ETag(etag.trim().to_owned()))),
    }
}

/// Checks a write's condition against the object as it is now, before any body is read: `412
/// PreconditionFailed` (or `404 NoSuchKey` for an `If-Match` with no object) at once.
pub(super) async fn check_condition_early(
    ctx: &Ctx<'_>,
    condition: Option<&WriteCondition>,
) -> Result<(), S3Error> {
    let Some(condition) = condition.cloned() else {
        return Ok(());
    };
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
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
/// changed the object meanwhile. S3 answers `409 ConditionalRequestConflict` then.
pub(super) fn conflict_if_condition_failed(e: S3Error, conditional: bool) -> S3Error {
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

fn check_unsupported(ctx: &Ctx<'_>) -> Result<(), S3Error> {
    for name in UNSUPPORTED_HEADERS {
        if ctx.headers.contains_key(*name) {
            return Err(S3Error::not_implemented(&format!("the `{name}` header")));
        }
    }
    if let Some(class) = ctx.header("x-amz-storage-class")? {
        if class != "STANDARD" {
            return Err(S3Error::not_implemented(&format!(
                "storage class `{class}` (only STANDARD is stored)"
            )));
        }
    }
    Ok(())
}

/// Parses `Content-MD5` (base64 of 16 bytes).
pub(super) fn content_md5(ctx: &Ctx<'_>) -> Result<Option<[u8; 16]>, S3Error> {
    let Some(v) = ctx.header("content-md5")? else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        .map(Some)
        .ok_or_else(|| {
            S3Error::new(
                "InvalidDigest",
                StatusCode::BAD_REQUEST,
                "The Content-MD5 you specified is not valid: it must be the base64 of a 16-byte MD5 digest.",
            )
        })
}

/// Builds object metadata from the request's headers (and `x-amz-tagging`).
pub(super) fn meta_from_headers(ctx: &Ctx<'_>) -> Result<ObjectMeta, S3Error> {
    let text = |name: &str| -> Result<Option<String>, S3Error> {
        Ok(ctx.header(name)?.map(str::to_owned))
    };
    let content_encoding = text("content-encoding")?.and_then(|v| {
        // `aws-chunked` describes the transfer, not the object (AWS strips it too).
        let rest: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|e| !e.eq_ignore_ascii_case("aws-chunked") && !e.is_empty())
            .collect();
        (!rest.is_empty()).then(|| rest.join(","))
    });
    let mut user = BTreeMap::new();
    let mut user_bytes = 0usize;
    for (name, value) in ctx.headers {
        if let Some(meta_name) = name.as_str().strip_prefix("x-amz-meta-") {
            let value = value.to_str().map_err(|_| {
                S3Error::invalid_argument(format!("metadata header `{name}` is not valid text"))
            })?;
            user_bytes += meta_name.len() + value.len();
            user.insert(meta_name.to_owned(), value.to_owned());
        }
    }
    if user_bytes > MAX_USER_METADATA_BYTES {
        return Err(S3Error::new(
            "MetadataTooLarge",
            StatusCode::BAD_REQUEST,
            format!("Your metadata headers exceed the maximum allowed metadata size of {MAX_USER_METADATA_BYTES} bytes"),
        ));
    }
    let tags = match ctx.header("x-amz-tagging")? {
        Some(v) => tagging::parse_header(v)?,
        None => Vec::new(),
    };
    Ok(ObjectMeta {
        content_type: text("content-type")?,
        content_encoding,
        content_disposition: text("content-disposition")?,
        content_language: text("content-language")?,
        cache_control: text("cache-control")?,
        expires: text("expires")?,
        user,
        tags,
    })
}

/// A body for PutObject or UploadPart must declare its length, at most 5 GiB (AWS's limit for
/// both); `what` completes the EntityTooLarge message.
pub(super) fn check_upload_length(ctx: &Ctx<'_>, what: &str) -> Result<u64, S3Error> {
    let len = ctx.declared_length.ok_or_else(|| {
        S3Error::new(
            "MissingContentLength",
            StatusCode::LENGTH_REQUIRED,
            "You must provide the Content-Length HTTP header.",
        )
    })?;
    if len > MAX_SINGLE_PUT_BYTES {
        return Err(S3Error::new(
            "EntityTooLarge",
            StatusCode::BAD_REQUEST,
            format!("Your proposed upload exceeds the maximum allowed size: 5 GiB for {what}."),
        ));
    }
    Ok(len)
}

pub(super) async fn put_object(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_key(&ctx.key)?;
    check_acl_headers(ctx)?;
    check_unsupported(ctx)?;
    check_upload_length(
        ctx,
        "an object uploaded in one request; use multipart upload for more",
    )?;
    let md5 = content_md5(ctx)?;
    let meta = meta_from_headers(ctx)?;
    let condition = write_condition(ctx)?;
    check_condition_early(ctx, condition.as_ref()).await?;
    let store = ctx.gw.store.clone();
    let bucket = ctx.bucket.clone();
    let writer = pump(&mut body, move || store.new_object(&bucket)).await?;
    let key = ctx.key.clone();
    ctx.before_change().await?;
    let conditional = condition.is_some();
    let info = blocking(move || writer.commit_if(&key, meta, md5, condition.as_ref()))
        .await
        .map_err(|e| conflict_if_condition_failed(e, conditional))?;
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "etag", &quoted(&info.etag))?;
    Ok(r)
}

/// Whether an `If-Match`/`If-None-Match` list names this ETag (`*` names every ETag).
fn etag_listed(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|candidate| {
        let c = candidate.strip_prefix("W/").unwrap_or(candidate);
        c == "*" || c.trim_matches('"') == etag
    })
}

/// Compares at whole-second precision, as HTTP dates carry.
fn modified_since(info: &ObjectInfo, since: DateTime<Utc>) -> bool {
    info.last_modified.timestamp() > since.timestamp()
}

fn precondition_failed(condition: &str) -> S3Error {
    S3Error::new(
        "PreconditionFailed",
        StatusCode::PRECONDITION_FAILED,
        "At least one of the pre-conditions you specified did not hold",
    )
    .with("Condition", condition)
}

/// Outcome of evaluating conditional headers.
enum Conditional {
    Proceed,
    NotModified,
}

/// Evaluates conditional request headers (with `prefix` "" for GET, "x-amz-copy-source-" for
/// copies) as S3 does: If-Match wins over If-Unmodified-Since, If-None-Match over
/// If-Modified-Since (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
fn conditional(ctx: &Ctx<'_>, info: &ObjectInfo, prefix: &str) -> Result<Conditional, S3Error> {
    let h = |n: &str| ctx.header(&format!("{prefix}{n}"));
    let date = |n: &str| -> Result<Option<DateTime<Utc>>, S3Error> {
        // An unparseable date is ignored, as HTTP prescribes.
        Ok(h(n)?.and_then(parse_http_date))
    };
    if let Some(list) = h("if-match")? {
        if !etag_listed(list, &info.etag) {
            return Err(precondition_failed(&format!("{prefix}If-Match")));
        }
    } else if let Some(since) = date("if-unmodified-since")? {
        if modified_since(info, since) {
            return Err(precondition_failed(&format!("{prefix}If-Unmodified-Since")));
        }
    }
    let not_modified = if let Some(list) = h("if-none-match")? {
        etag_listed(list, &info.etag)
    } else if let Some(since) = date("if-modified-since")? {
        !modified_since(info, since)
    } else {
        false
    };
    if not_modified {
        if prefix.is_empty() {
            return Ok(Conditional::NotModified);
        }
        return Err(precondition_failed(&format!("{prefix}If-None-Match")));
    }
    Ok(Conditional::Proceed)
}

/// A satisfiable byte range `[start, start + len)`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) struct ByteRange {
    pub start: u64,
    pub len: u64,
}

/// Parses a `Range` header against an object of `size` bytes. `Ok(None)` means "serve the whole
/// object" (no header, or one S3 ignores such as several ranges); `Err` is 416.
pub(super) fn parse_range(header: Option<&str>, size: u64) -> Result<Option<ByteRange>, S3Error> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || {
        S3Error::new(
            "InvalidRange",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested range is not satisfiable",
        )
        .with("RangeRequested", spec.to_owned())
        .with("ActualObjectSize", size.to_string())
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        let n = n.min(size);
        return Ok(Some(ByteRange {
            start: size - n,
            len: n,
        }));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            _ => return Ok(None),
        }
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    let last = end.map_or(size - 1, |e| e.min(size - 1));
    Ok(Some(ByteRange {
        start,
        len: last - start + 1,
    }))
}

/// Headers describing a stored object (shared by GET and HEAD).
fn object_headers(r: &mut Response<Body>, info: &ObjectInfo) -> Result<(), S3Error> {
    set_header(r, "etag", &quoted(&info.etag))?;
    set_header(r, "last-modified", &http_date(info.last_modified))?;
    set_header(r, "accept-ranges", "bytes")?;
    let m = &info.meta;
    set_header(
        r,
        "content-type",
        m.content_type.as_deref().unwrap_or("binary/octet-stream"),
    )?;
    for (name, value) in [
        ("content-encoding", &m.content_encoding),
        ("content-disposition", &m.content_disposition),
        ("content-language", &m.content_language),
        ("cache-control", &m.cache_control),
        ("expires", &m.expires),
    ] {
        if let Some(v) = value {
            set_header(r, name, v)?;
        }
    }
    for (k, v) in &m.user {
        set_header(r, &format!("x-amz-meta-{k}"), v)?;
    }
    if !m.tags.is_empty() {
        set_header(r, "x-amz-tagging-count", &m.tags.len().to_string())?;
    }
    Ok(())
}

/// `response-*` query parameters override the stored headers (signed requests only, which every
/// request reaching here is, or an anonymous one the policy allowed).
fn apply_overrides(ctx: &Ctx<'_>, r: &mut Response<Body>) -> Result<(), S3Error> {
    for (param, header) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ] {
        if let Some(v) = ctx.query.get(param) {
            set_header(r, header, v)?;
        }
    }
    Ok(())
}

pub(super) async fn get_object(ctx: &Ctx<'_>, head: bool) -> Result<Response<Body>, S3Error> {
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
    let (info, reader) = if head {
        (blocking(move || store.head(&bucket, &key)).await?, None)
    } else {
        let (info, reader) = blocking(move || store.get(&bucket, &key)).await?;
        (info, Some(reader))
    };
    if let Conditional::NotModified = conditional(ctx, &info, "")? {
        let mut r = empty_response(StatusCode::NOT_MODIFIED);
        set_header(&mut r, "etag", &quoted(&info.etag))?;
        set_header(&mut r, "last-modified", &http_date(info.last_modified))?;
        return Ok(r);
    }
    let range = parse_range(ctx.header("range")?, info.size)?;
    let (start, len) = range.map_or((0, info.size), |r| (r.start, r.len));
    let body = match reader {
        Some(reader) if len > 0 => stream_object(reader, start, len),
        _ => crate::body::empty(),
    };
    let mut r = Response::new(body);
    object_headers(&mut r, &info)?;
    apply_overrides(ctx, &mut r)?;
    set_header(&mut r, "content-length", &len.to_string())?;
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        set_header(
            &mut r,
            "content-range",
            &format!("bytes {}-{}/{}", start, start + len - 1, info.size),
        )?;
    }
    Ok(r)
}

pub(super) async fn delete_object(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_key(&ctx.key)?;
    // Conditions S3 has only for directory buckets: refused rather than ignored.
    for name in ["x-amz-if-match-size", "x-amz-if-match-last-modified-time"] {
        if ctx.headers.contains_key(name) {
            return Err(S3Error::not_implemented(&format!("the `{name}` header")));
        }
    }
    let condition = match write_condition(ctx)? {
        Some(WriteCondition::Absent) => {
            return Err(S3Error::not_implemented("If-None-Match on DeleteObject"))
        }
        other => other,
    };
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
    blocking(move || store.delete_if(&bucket, &key, condition.as_ref())).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn delete_objects(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let md5 = content_md5(ctx)?;
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    if let Some(expected) = md5 {
        use md5::Digest;
        if md5::Md5::digest(&doc).as_slice() != expected {
            return Err(S3Error::from(StoreError::BadDigest));
        }
    }
    let root = xml::parse(&doc).map_err(S3Error::malformed_xml)?;
    if root.name != "Delete" {
        return Err(S3Error::malformed_xml("expected a Delete document"));
    }
    let quiet = root.child_text("Quiet").is_some_and(|q| q.trim() == "true");
    let mut keys = Vec::new();
    for object in root.children_named("Object") {
        let key = object
            .child_text("Key")
            .ok_or_else(|| S3Error::malformed_xml("an Object has no Key"))?;
        if let Some(v) = object.child_text("VersionId") {
            if !v.is_empty() && v != "null" {
                return Err(S3Error::not_implemented("DeleteObjects with VersionId"));
            }
        }
        // Per-object conditions (directory buckets in S3): refused rather than ignored.
        for name in ["ETag", "LastModifiedTime", "Size"] {
            if object.child_text(name).is_some() {
                return Err(S3Error::not_implemented(&format!(
                    "DeleteObjects with a per-object `{name}` condition"
                )));
            }
        }
        keys.push(key.to_owned());
    }
    if keys.is_empty() || keys.len() > MAX_DELETE_KEYS {
        return Err(S3Error::malformed_xml(format!(
            "a Delete document names between 1 and {MAX_DELETE_KEYS} objects, this one names {}",
            keys.len()
        )));
    }
    // The write-ahead record names every key before any is deleted.
    ctx.write_ahead
        .amend(|event| {
            event
                .request_parameters
                .other
                .insert("keys".into(), serde_json::json!(keys));
            event
                .request_parameters
                .other
                .insert("quiet".into(), serde_json::json!(quiet));
        })
        .await;
    ctx.before_change().await?;
    // Bucket must exist before per-key results are produced.
    {
        let store = ctx.gw.store.clone();
        let bucket = ctx.bucket.clone();
        blocking(move || store.bucket(&bucket)).await?;
    }
    let mut w = XmlWriter::new();
    w.root("DeleteResult");
    // Every key's result, quiet or not, for the audit event.
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for key in keys {
        // Each key is authorized by the one authorization stage, like any request: a denied key
        // is an `Error` entry and the others go on, as in S3.
        let item = DeleteKey {
            bucket: ctx.bucket.clone(),
            key: key.clone(),
        };
        let result =
            match crate::authz::authorize(ctx.gw, ctx.principal, item, &ctx.context, ctx.checks) {
                Err(e) => Err(e),
                Ok(authorized) => delete_key(ctx, authorized).await,
            };
        match result {
            Ok(()) => {
                if !quiet {
                    w.open("Deleted");
                    w.elem("Key", &key);
                    w.close("Deleted");
                }
                deleted.push(serde_json::Value::String(key));
            }
            Err(e) => {
                w.open("Error");
                w.elem("Key", &key);
                w.elem("Code", e.code());
                w.elem("Message", e.message());
                w.close("Error");
                errors.push(serde_json::json!({"key": key, "code": e.code()}));
            }
        }
    }
    w.close("DeleteResult");
    if let Ok(mut elements) = ctx.response_elements.lock() {
        *elements = Some(serde_json::json!({"deleted": deleted, "errors": errors}));
    }
    Ok(xml_ok(w.finish()))
}

/// One key of a DeleteObjects request: it needs `s3:DeleteObject` on its object.
#[derive(Debug)]
pub struct DeleteKey {
    bucket: String,
    key: String,
}

impl crate::authz::Describe for DeleteKey {
    fn requirement(&self) -> crate::authz::Requirement {
        crate::authz::Requirement::Permissions(vec![Permission::new(
            "s3:DeleteObject",
            object_arn(&self.bucket, &self.key),
        )])
    }
}

/// Deletes one authorized key of a DeleteObjects request.
async fn delete_key(
    ctx: &Ctx<'_>,
    item: crate::authz::Authorized<DeleteKey>,
) -> Result<(), S3Error> {
    let DeleteKey { bucket, key } = item.into_call();
    let store = ctx.gw.store.clone();
    blocking(move || {
        keyhole_store::validate_key(&key)?;
        store.delete(&bucket, &key)
    })
    .await
}

/// Reads `x-amz-*-directive` (COPY or REPLACE).
fn directive(ctx: &Ctx<'_>, name: &str) -> Result<bool, S3Error> {
    match ctx.header(name)? {
        None | Some("COPY") => Ok(false),
        Some("REPLACE") => Ok(true),
        Some(other) => Err(S3Error::invalid_argument(format!(
            "Unknown {name} `{other}`: use COPY or REPLACE"
        ))
        .with("ArgumentName", name.to_owned())),
    }
}

/// Opens the copy source and checks the `x-amz-copy-source-if-*` conditions.
pub(super) async fn open_source(
    ctx: &Ctx<'_>,
    src: &CopySource,
) -> Result<(ObjectInfo, keyhole_store::ObjectReader), S3Error> {
    let store = ctx.gw.store.clone();
    let (b, k) = (src.bucket.clone(), src.key.clone());
    let (info, reader) = blocking(move || store.get(&b, &k)).await?;
    conditional(ctx, &info, "x-amz-copy-source-")?;
    Ok((info, reader))
}

pub(super) async fn copy_object(ctx: &Ctx<'_>, src: CopySource) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_key(&ctx.key)?;
    check_acl_headers(ctx)?;
    check_unsupported(ctx)?;
    let replace_meta = directive(ctx, "x-amz-metadata-directive")?;
    let replace_tags = directive(ctx, "x-amz-tagging-directive")?;
    let condition = write_condition(ctx)?;
    check_condition_early(ctx, condition.as_ref()).await?;
    let (info, mut reader) = open_source(ctx, &src).await?;
    if src.bucket == ctx.bucket && src.key == ctx.key && !replace_meta && !replace_tags {
        return Err(S3Error::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    if info.size > MAX_SINGLE_PUT_BYTES {
        return Err(S3Error::invalid_request(
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
        ));
    }
    let from_headers = meta_from_headers(ctx)?;
    let mut meta = if replace_meta {
        ObjectMeta {
            tags: Vec::new(),
            ..from_headers.clone()
        }
    } else {
        ObjectMeta {
            tags: Vec::new(),
            ..info.meta.clone()
        }
    };
    meta.tags = if replace_tags {
        from_headers.tags
    } else {
        info.meta.tags.clone()
    };
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
    let conditional = condition.is_some();
    let copied = blocking(move || {
        let mut w = store.new_object(&bucket)?;
        copy_stream(&mut reader, info.size, |chunk| w.write(chunk))?;
        w.commit_if(&key, meta, None, condition.as_ref())
    })
    .await
    .map_err(|e| conflict_if_condition_failed(e, conditional))?;
    let mut w = XmlWriter::new();
    w.root("CopyObjectResult");
    w.elem("ETag", &quoted(&copied.etag));
    w.elem("LastModified", &xml_date(copied.last_modified));
    w.close("CopyObjectResult");
    Ok(xml_ok(w.finish()))
}

/// Copies `len` bytes from `reader` (at its current position) into `sink`, a buffer at a time.
pub(super) fn copy_stream(
    reader: &mut impl std::io::Read,
    len: u64,
    mut sink: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(h: &str, size: u64) -> Result<Option<(u64, u64)>, String> {
        parse_range(Some(h), size)
            .map(|o| o.map(|r| (r.start, r.len)))
            .map_err(|e| e.code().to_owned())
    }

    #[test]
    fn ranges_as_s3_reads_them() {
        assert_eq!(r("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(r("bytes=90-200", 100), Ok(Some((90, 10))));
        assert_eq!(r("bytes=10-", 100), Ok(Some((10, 90))));
        assert_eq!(r("bytes=-5", 100), Ok(Some((95, 5))));
        assert_eq!(r("bytes=-500", 100), Ok(Some((0, 100))));
        assert_eq!(r("bytes=100-", 100), Err("InvalidRange".into()));
        assert_eq!(r("bytes=-0", 100), Err("InvalidRange".into()));
        assert_eq!(r("bytes=0-0", 0), Err("InvalidRange".into()));
        // Ignored forms: whole object.
        assert_eq!(r("bytes=5-1", 100), Ok(None));
        assert_eq!(r("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(r("items=0-1", 100), Ok(None));
        assert_eq!(r("bytes=x-", 100), Ok(None));
    }

    #[test]
    fn etag_lists() {
        assert!(etag_listed("\"abc\"", "abc"));
        assert!(etag_listed("\"x\", \"abc\"", "abc"));
        assert!(etag_listed("*", "abc"));
        assert!(etag_listed("W/\"abc\"", "abc"));
        assert!(!etag_listed("\"abd\"", "abc"));
    }

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
}
