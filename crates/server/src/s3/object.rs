//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject.

use std::collections::BTreeMap;

use base64::Engine;
use http::{Response, StatusCode};
use keyhole_sigv4::ChecksumKind;
use keyhole_store::{ObjectMeta, StoreError, WriteCondition};

use super::route::{object_arn, CopySource};
use super::{
    check_acl_headers, check_served_version, checksum_headers, empty_response,
    hold_to_judged_version, http_date, pin_copy_source, quoted, read_conditions, set_header,
    tagging, xml_date, xml_ok, Ctx, Upload,
};
use crate::authz::Permission;
use crate::backend::{CopyObject, Deleted, Directive, GetObject, Got, ObjectHead, PutObject};
use crate::body::{Body, BodyReader};
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
        (Some(etag), None) => Ok(Some(WriteCondition::ETag(if_match(etag, "If-Match")?))),
    }
}

/// The ETag an `If-Match` value names (`argument`: the header, or a DeleteObjects key's `ETag`),
/// trimmed. An empty value names nothing: refused, never forwarded to an upstream that could read
/// it as no condition at all (review 20, M2).
fn if_match(value: &str, argument: &str) -> Result<String, S3Error> {
    match value.trim() {
        "" => Err(S3Error::invalid_argument(format!(
            "{argument} is empty: give the object's ETag, or `*` for any existing object"
        ))
        .with("ArgumentName", argument)
        .with("ArgumentValue", "")),
        etag => Ok(etag.to_owned()),
    }
}

pub(super) fn check_unsupported(ctx: &Ctx<'_>) -> Result<(), S3Error> {
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
    let content_encoding = text("content-encoding")?.and_then(stored_content_encoding);
    let mut user = BTreeMap::new();
    let mut user_bytes = 0usize;
    for (name, value) in ctx.headers {
        if let Some(meta_name) = name.as_str().strip_prefix("x-amz-meta-") {
            let value = super::rfc2047::decode(value.as_bytes());
            user_bytes += meta_name.len() + value.len();
            user.insert(meta_name.to_owned(), value);
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
        // Checked for form here (InvalidArgument); a bucket without Object Lock refuses it
        // when the write commits.
        lock: super::lock::from_headers(ctx.headers, chrono::Utc::now())?,
        checksum: None,
    })
}

/// The Content-Encoding an object keeps: the header exactly as sent, less `aws-chunked`, which
/// describes how this request's body was framed, not the object (S3 does not store it:
/// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html). `None` when nothing
/// else remains.
fn stored_content_encoding(sent: String) -> Option<String> {
    let is_chunked = |e: &str| e.trim().eq_ignore_ascii_case("aws-chunked");
    if !sent.split(',').any(is_chunked) {
        return (!sent.trim().is_empty()).then_some(sent);
    }
    let rest: Vec<&str> = sent
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !is_chunked(e))
        .collect();
    (!rest.is_empty()).then(|| rest.join(", "))
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

pub(super) async fn put_object(ctx: &Ctx<'_>, body: BodyReader) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_key(&ctx.key)?;
    check_acl_headers(ctx)?;
    check_unsupported(ctx)?;
    super::check_checksum_headers(ctx)?;
    let length = check_upload_length(
        ctx,
        "an object uploaded in one request; use multipart upload for more",
    )?;
    let req = PutObject {
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        meta: meta_from_headers(ctx)?,
        content_md5: content_md5(ctx)?,
        condition: write_condition(ctx)?,
        length,
        checksums: checksum_headers(ctx),
    };
    let mut payload = Upload::new(body, ctx);
    let written = ctx.gw.storage.put_object(req, &mut payload).await?;
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "etag", &quoted(&written.etag))?;
    if let Some(v) = &written.version_id {
        set_header(&mut r, "x-amz-version-id", v)?;
    }
    for (name, value) in &written.extra {
        set_header(&mut r, name, value)?;
    }
    Ok(r)
}

/// Headers describing a stored object (shared by GET and HEAD).
fn object_headers(r: &mut Response<Body>, head: &ObjectHead) -> Result<(), S3Error> {
    set_header(r, "etag", &quoted(&head.etag))?;
    set_header(r, "last-modified", &http_date(head.last_modified))?;
    r.headers_mut().insert(
        http::header::ACCEPT_RANGES,
        http::HeaderValue::from_static("bytes"),
    );
    let m = &head.meta;
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
        set_header(r, &format!("x-amz-meta-{k}"), &super::rfc2047::encode(v))?;
    }
    if head.tag_count > 0 {
        set_header(r, "x-amz-tagging-count", &head.tag_count.to_string())?;
    }
    for (name, value) in &head.extra {
        set_header(r, name, value)?;
    }
    if let Some(v) = &head.version_id {
        set_header(r, "x-amz-version-id", v)?;
    }
    // The version's Object Lock, as much of it as the caller may see (`lock::visible`).
    for (name, value) in super::lock::response_headers(&m.lock) {
        set_header(r, name, &value)?;
    }
    Ok(())
}

/// `response-*` query parameters override the stored headers (signed requests only, which every
/// request reaching here is, or an anonymous one the policy allowed).
fn apply_overrides(ctx: &Ctx<'_>, r: &mut Response<Body>) -> Result<(), S3Error> {
    if !ctx.query.names().any(|n| n.starts_with("response-")) {
        return Ok(());
    }
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
    // "partNumber: Part number of the object being read ... Effectively performs a 'ranged' GET
    // request for the part specified" (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
    let part_number = match ctx.query.get("partNumber") {
        None => None,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=10_000).contains(&n) => Some(n),
            _ => {
                return Err(S3Error::invalid_argument(
                    "Part number must be an integer between 1 and 10000, inclusive",
                )
                .with("ArgumentName", "partNumber")
                .with("ArgumentValue", raw))
            }
        },
    };
    if part_number.is_some() && ctx.headers.contains_key("range") {
        return Err(S3Error::invalid_request(
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    let req = GetObject {
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        range: ctx.header("range")?.map(str::to_owned),
        if_range: ctx.header("if-range")?.map(str::to_owned),
        conditions: read_conditions(ctx, super::ConditionsOf::Object)?,
        checksum_mode: ctx
            .header("x-amz-checksum-mode")?
            .is_some_and(|m| m.eq_ignore_ascii_case("ENABLED")),
        head,
        version_id: ctx.version_id.clone(),
        part_number,
    };
    let got = match ctx.gw.storage.get_object(req).await? {
        Got::NotModified {
            etag,
            last_modified,
        } => {
            check_served_version(ctx, &ctx.bucket, &ctx.key, &etag, last_modified, None)?;
            let mut r = empty_response(StatusCode::NOT_MODIFIED);
            set_header(&mut r, "etag", &quoted(&etag))?;
            set_header(&mut r, "last-modified", &http_date(last_modified))?;
            return Ok(r);
        }
        Got::Object(got) => *got,
    };
    // The body is not read yet: a version other than the one judged is dropped unsent.
    hold_to_judged_version(ctx, &got.head).await?;
    let mut got = got;
    if !got.head.meta.lock.is_empty() {
        got.head.meta.lock = super::lock::visible(ctx, got.head.meta.lock).await;
    }
    let size = got.head.size;
    let (start, len) = got.range.map_or((0, size), |r| (r.start, r.len));
    let mut r = Response::new(got.body);
    object_headers(&mut r, &got.head)?;
    apply_overrides(ctx, &mut r)?;
    set_header(&mut r, "content-length", &len.to_string())?;
    if got.range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        let last = (start + len).saturating_sub(1);
        set_header(
            &mut r,
            "content-range",
            &format!("bytes {start}-{last}/{size}"),
        )?;
    }
    Ok(r)
}

/// The attributes GetObjectAttributes may be asked for (`x-amz-object-attributes`).
const OBJECT_ATTRIBUTES: [&str; 5] = [
    "ETag",
    "Checksum",
    "ObjectParts",
    "StorageClass",
    "ObjectSize",
];

/// GetObjectAttributes (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectAttributes.html):
/// the attributes named in `x-amz-object-attributes` of the object's current version. `ETag` is
/// unquoted, as S3 answers it here; `Checksum` is the stored checksum with its type;
/// `ObjectParts` is given for an object a multipart upload made: its part count, and, where the
/// backend keeps them (the local store, for objects completed since parts were recorded), the
/// parts with their sizes and checksums, a page at a time (`x-amz-max-parts`,
/// `x-amz-part-number-marker`).
pub(super) async fn get_object_attributes(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_key(&ctx.key)?;
    let missing = || {
        S3Error::invalid_argument(
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        )
        .with("ArgumentName", "x-amz-object-attributes")
    };
    let raw = ctx.header("x-amz-object-attributes")?.ok_or_else(missing)?;
    let mut wanted = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !OBJECT_ATTRIBUTES.contains(&name) {
            return Err(S3Error::invalid_argument(format!(
                "Invalid attribute name specified: `{name}` (one of ETag, Checksum, ObjectParts, StorageClass, ObjectSize)"
            ))
            .with("ArgumentName", "x-amz-object-attributes")
            .with("ArgumentValue", name));
        }
        wanted.push(name);
    }
    if wanted.is_empty() {
        return Err(missing());
    }
    let max_parts = match ctx.header("x-amz-max-parts")? {
        None => 1000,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map(|n| n.min(1000))
            .map_err(|_| {
                S3Error::invalid_argument("x-amz-max-parts must be a non-negative integer")
                    .with("ArgumentName", "x-amz-max-parts")
            })?,
    };
    let part_marker = match ctx.header("x-amz-part-number-marker")? {
        None => 0,
        Some(v) => v.trim().parse::<usize>().map_err(|_| {
            S3Error::invalid_argument("x-amz-part-number-marker must be a non-negative integer")
                .with("ArgumentName", "x-amz-part-number-marker")
        })?,
    };
    let head = match ctx
        .gw
        .storage
        .get_object(GetObject {
            checksum_mode: true,
            ..GetObject::head_version(&ctx.bucket, &ctx.key, ctx.version())
        })
        .await?
    {
        Got::Object(got) => got.head,
        Got::NotModified { .. } => {
            return Err(S3Error::internal(std::io::Error::other(
                "an unconditional read answered Not Modified",
            )))
        }
    };
    hold_to_judged_version(ctx, &head).await?;
    let mut w = XmlWriter::new();
    w.root("GetObjectAttributesResponse");
    if wanted.contains(&"ETag") {
        w.elem("ETag", &head.etag);
    }
    let stored = crate::checksum::from_headers(&head.extra);
    if wanted.contains(&"Checksum") {
        if let Some(c) = &stored {
            w.open("Checksum");
            w.elem(&crate::checksum::element(&c.algorithm), &c.value);
            w.elem("ChecksumType", c.kind.as_str());
            w.close("Checksum");
        }
    }
    if wanted.contains(&"ObjectParts") {
        let parts = head
            .etag
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<usize>().ok());
        if let Some(n) = parts {
            w.open("ObjectParts");
            w.elem("PartsCount", &n.to_string());
            if head.parts.len() == n {
                let page: Vec<_> = head
                    .parts
                    .iter()
                    .enumerate()
                    .skip(part_marker)
                    .take(max_parts)
                    .collect();
                let last = page.last().map_or(part_marker, |(i, _)| i + 1);
                w.elem("PartNumberMarker", &part_marker.to_string());
                w.elem("NextPartNumberMarker", &last.to_string());
                w.elem("MaxParts", &max_parts.to_string());
                w.elem("IsTruncated", if last < n { "true" } else { "false" });
                // Part checksums are given for uploads created with an algorithm: the
                // object's checksum is then of that algorithm.
                let algorithm = stored.as_ref().map(|c| c.algorithm.clone());
                for (i, p) in page {
                    w.open("Part");
                    w.elem("PartNumber", &(i + 1).to_string());
                    w.elem("Size", &p.size.to_string());
                    if let (Some(a), Some(v)) = (&algorithm, &p.checksum) {
                        w.elem(&crate::checksum::element(a), v);
                    }
                    w.close("Part");
                }
            }
            w.close("ObjectParts");
        }
    }
    if wanted.contains(&"StorageClass") {
        w.elem("StorageClass", "STANDARD");
    }
    if wanted.contains(&"ObjectSize") {
        w.elem("ObjectSize", &head.size.to_string());
    }
    w.close("GetObjectAttributesResponse");
    let mut r = xml_ok(w.finish());
    set_header(&mut r, "last-modified", &http_date(head.last_modified))?;
    if let Some(v) = &head.version_id {
        set_header(&mut r, "x-amz-version-id", v)?;
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
    let deleted = ctx
        .gw
        .storage
        .delete_object(
            &ctx.bucket,
            &ctx.key,
            ctx.version(),
            condition,
            // Authorized for s3:BypassGovernanceRetention when asked (S3Call::lock_actions).
            super::lock::bypass_requested(ctx.headers),
        )
        .await?;
    // "x-amz-delete-marker: Indicates whether the specified object version that was permanently
    // deleted was (true) or was not (false) a delete marker before deletion. In a simple DELETE,
    // this header indicates whether (true) or not (false) the current version of the object is a
    // delete marker"; "x-amz-version-id: Returns the version ID of the delete marker created as
    // a result of the DELETE operation" (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html).
    let mut r = empty_response(StatusCode::NO_CONTENT);
    if deleted.delete_marker {
        set_header(&mut r, "x-amz-delete-marker", "true")?;
    }
    if let Some(v) = &deleted.version_id {
        set_header(&mut r, "x-amz-version-id", v)?;
    }
    Ok(r)
}

pub(super) async fn delete_objects(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let md5 = content_md5(ctx)?;
    // "The Content-MD5 or x-amz-sdk-checksum-algorithm header is required for all Multi-Object
    // Delete requests" (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html):
    // a body that names what to delete is integrity-checked, by its MD5 or by an
    // `x-amz-checksum-*` value (a header, or a trailer the body reader verifies).
    // Only a checksum of an algorithm S3 knows counts (`x-amz-checksum-foo` is no integrity
    // check: review 34, L1); the body reader verifies it, or the trailer it announces.
    let has_checksum = super::SentChecksums::of(ctx)?.any();
    if md5.is_none() && !has_checksum {
        return Err(S3Error::new(
            "InvalidRequest",
            StatusCode::BAD_REQUEST,
            "Missing required header for this request: Content-MD5 (or an x-amz-checksum-* header): DeleteObjects needs its body's MD5 or checksum",
        ));
    }
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
    // `Quiet` is an XML boolean: anything else is malformed, not "false".
    let quiet = match root.child_text("Quiet").map(str::trim) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(S3Error::malformed_xml(format!(
                "Quiet must be true or false, not `{other}`"
            )))
        }
    };
    let mut keys: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for object in root.children_named("Object") {
        let key = object
            .child_text("Key")
            .ok_or_else(|| S3Error::malformed_xml("an Object has no Key"))?;
        // An empty VersionId names no version: refused as `?versionId=` is, never read as "no
        // version" (which would add a delete marker instead; review 12).
        let version_id = match object.child_text("VersionId").map(str::trim) {
            Some("") => {
                return Err(S3Error::invalid_argument("Invalid version id specified")
                    .with("ArgumentName", "VersionId")
                    .with("ArgumentValue", ""))
            }
            v => v.map(str::to_owned),
        };
        // Conditions S3 has only for directory buckets: refused rather than ignored.
        for name in ["LastModifiedTime", "Size"] {
            if object.child_text(name).is_some() {
                return Err(S3Error::not_implemented(&format!(
                    "DeleteObjects with a per-object `{name}` condition"
                )));
            }
        }
        // An `ETag` makes that key's delete conditional, as `If-Match` does DeleteObject's: "For
        // conditionally deleting multiple objects using the DeleteObjects operation, you must
        // provide the ETag value in the ETag element of the object in the XML request body"
        // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html).
        let if_match = object
            .child_text("ETag")
            .map(|e| if_match(e, "ETag"))
            .transpose()?;
        keys.push((key.to_owned(), version_id, if_match));
    }
    if keys.is_empty() || keys.len() > MAX_DELETE_KEYS {
        return Err(S3Error::malformed_xml(format!(
            "a Delete document names between 1 and {MAX_DELETE_KEYS} objects, this one names {}",
            keys.len()
        )));
    }
    // Bucket must exist before per-key results are produced.
    ctx.gw.storage.head_bucket(&ctx.bucket).await?;
    // Each key is authorized by the one authorization stage, like any request: a denied key is
    // an `Error` entry and the others go on, as in S3. The allowed ones are deleted together.
    let mut results: Vec<Result<Deleted, S3Error>> = Vec::with_capacity(keys.len());
    let mut allowed = Vec::new();
    for (key, version_id, if_match) in &keys {
        let item = DeleteKey {
            bucket: ctx.bucket.clone(),
            key: key.clone(),
            version_id: version_id.clone(),
            if_match: if_match.clone(),
            bypass_governance: super::lock::bypass_requested(ctx.headers),
        };
        match crate::authz::authorize(ctx.gw, ctx.principal, item, &ctx.context, ctx.checks).await {
            Ok(authorized) => {
                allowed.push((results.len(), authorized));
                results.push(Ok(Deleted::default()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    let (slots, items): (Vec<usize>, Vec<_>) = allowed.into_iter().unzip();
    // The write-ahead record names every key (and version) before any is deleted, and exists
    // only when one of them is allowed: a request whose every key is refused changes nothing
    // and leaves no `authorized` record (review 17, L1).
    let deleted_results = if items.is_empty() {
        Vec::new()
    } else {
        let named: Vec<serde_json::Value> = keys
            .iter()
            .map(|(k, v, e)| match (v, e) {
                (None, None) => serde_json::json!(k),
                _ => {
                    let mut m = serde_json::Map::new();
                    m.insert("key".into(), serde_json::json!(k));
                    if let Some(v) = v {
                        m.insert("versionId".into(), serde_json::json!(v));
                    }
                    if let Some(e) = e {
                        m.insert("ifMatch".into(), serde_json::json!(e));
                    }
                    serde_json::Value::Object(m)
                }
            })
            .collect();
        ctx.write_ahead
            .amend(|event| {
                event
                    .request_parameters
                    .other
                    .insert("keys".into(), serde_json::json!(named));
                event
                    .request_parameters
                    .other
                    .insert("quiet".into(), serde_json::json!(quiet));
                // Every key's decision, made above (review 18: the record had none).
                crate::pipeline::record_decisions(event, ctx.checks);
            })
            .await;
        ctx.before_change().await?;
        ctx.gw.storage.delete_objects(&ctx.bucket, items).await?
    };
    for (slot, (_, result)) in slots.into_iter().zip(deleted_results) {
        if let Some(entry) = results.get_mut(slot) {
            *entry = result;
        }
    }
    let mut w = XmlWriter::new();
    w.root("DeleteResult");
    // Every key's result, quiet or not, for the audit event.
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    // Each `Deleted` as S3 answers it (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html,
    // DeletedObject): `VersionId` the version named; `DeleteMarker` and `DeleteMarkerVersionId`
    // when a marker was made (its id) or the version removed was a marker (that id).
    for ((key, asked, _), result) in keys.into_iter().zip(results) {
        match result {
            Ok(d) => {
                if !quiet {
                    w.open("Deleted");
                    w.elem("Key", &key);
                    if let Some(v) = &asked {
                        w.elem("VersionId", v);
                    }
                    if d.delete_marker {
                        w.elem("DeleteMarker", "true");
                        if let Some(v) = &d.version_id {
                            w.elem("DeleteMarkerVersionId", v);
                        }
                    }
                    w.close("Deleted");
                }
                deleted.push(match (&asked, d.delete_marker, &d.version_id) {
                    (Some(v), _, _) => serde_json::json!({"key": key, "versionId": v}),
                    (None, true, Some(m)) => {
                        serde_json::json!({"key": key, "deleteMarkerVersionId": m})
                    }
                    _ => serde_json::Value::String(key),
                });
            }
            Err(e) => {
                w.open("Error");
                w.elem("Key", &key);
                if let Some(v) = &asked {
                    w.elem("VersionId", v);
                }
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

/// One key of a DeleteObjects request: it needs `s3:DeleteObject` on its object, or with a
/// `VersionId` `s3:DeleteObjectVersion` ("To delete a specific version ... you must have the
/// s3:DeleteObjectVersion permission", API_DeleteObjects.html), decided with `s3:versionid`.
#[derive(Debug)]
pub struct DeleteKey {
    /// The bucket.
    pub(crate) bucket: String,
    /// The key.
    pub(crate) key: String,
    /// The version to remove for good.
    pub(crate) version_id: Option<String>,
    /// The object's `ETag` element: deleted only while the current object has that ETag
    /// (compared as DeleteObject's `If-Match` is). Knowing whether it matches tells the caller
    /// about the object, so it needs `s3:GetObject` too ("To perform a conditional delete with
    /// the If-Match header with an ETag value, you must have the s3:DeleteObject and
    /// s3:GetObject permissions", conditional-deletes.html), and the check sees the value as
    /// `s3:if-match`, so a policy can require conditional deletes
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-delete-enforce.html).
    pub(crate) if_match: Option<String>,
    /// `x-amz-bypass-governance-retention: true`: it needs `s3:BypassGovernanceRetention` too,
    /// and may then remove a version under GOVERNANCE retention.
    pub(crate) bypass_governance: bool,
}

impl crate::authz::Describe for DeleteKey {
    fn requirement(&self) -> crate::authz::Requirement {
        let action = if self.version_id.is_some() {
            "s3:DeleteObjectVersion"
        } else {
            "s3:DeleteObject"
        };
        let mut list = vec![Permission::new(action, object_arn(&self.bucket, &self.key))];
        if self.if_match.is_some() {
            list.push(Permission::new(
                "s3:GetObject",
                object_arn(&self.bucket, &self.key),
            ));
        }
        if self.bypass_governance {
            // "To use this header, you must have the s3:BypassGovernanceRetention permission"
            // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html).
            list.push(Permission::new(
                "s3:BypassGovernanceRetention",
                object_arn(&self.bucket, &self.key),
            ));
        }
        crate::authz::Requirement::Permissions(list)
    }

    fn add_context(&self, context: &mut keyhole_policy::Context) {
        if let Some(v) = &self.version_id {
            context.insert("s3:versionid", v.as_str());
        }
        if let Some(e) = &self.if_match {
            context.insert("s3:if-match", e.as_str());
        }
    }
}

/// A copy's error, where a `PreconditionFailed` from the version pin of
/// [`pin_copy_source`] means the source changed while the request was decided.
pub(super) fn source_changed(e: S3Error, pinned: bool) -> S3Error {
    if pinned && e.code() == "PreconditionFailed" {
        crate::authz::changed_meanwhile()
    } else {
        e
    }
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

pub(super) async fn copy_object(ctx: &Ctx<'_>, src: CopySource) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_key(&ctx.key)?;
    check_acl_headers(ctx)?;
    check_unsupported(ctx)?;
    let replace_meta = directive(ctx, "x-amz-metadata-directive")?;
    let replace_tags = directive(ctx, "x-amz-tagging-directive")?;
    let condition = write_condition(ctx)?;
    let source_conditions = read_conditions(ctx, super::ConditionsOf::CopySource)?;
    let checksum_algorithm = match ctx.header("x-amz-checksum-algorithm")? {
        None => None,
        Some(a) => Some(ChecksumKind::from_algorithm(a).ok_or_else(|| {
            S3Error::invalid_request(format!(
                "Checksum algorithm `{a}` is not supported: use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256."
            ))
        })?),
    };
    // Copying an object onto itself is how S3 changes its checksum algorithm; copying an
    // earlier version onto its own key is how a version is restored ("Restoring previous
    // versions", https://docs.aws.amazon.com/AmazonS3/latest/userguide/RestoringPreviousVersions.html):
    // only a copy of the current version onto itself that changes nothing is refused.
    if src.bucket == ctx.bucket
        && src.key == ctx.key
        && src.version_id.is_none()
        && !replace_meta
        && !replace_tags
        && checksum_algorithm.is_none()
    {
        // The source must exist and meet its conditions before this is the answer.
        let source = GetObject {
            conditions: source_conditions,
            ..GetObject::head(&src.bucket, &src.key)
        };
        if let Got::NotModified { .. } = ctx.gw.storage.get_object(source).await? {
            return Err(S3Error::new(
                "PreconditionFailed",
                StatusCode::PRECONDITION_FAILED,
                "At least one of the pre-conditions you specified did not hold",
            )
            .with("Condition", "x-amz-copy-source-If-None-Match"));
        }
        return Err(S3Error::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let (source_conditions, pinned) =
        pin_copy_source(ctx, &src.bucket, &src.key, source_conditions)?;
    let from_headers = meta_from_headers(ctx)?;
    let req = CopyObject {
        src_bucket: src.bucket,
        src_key: src.key,
        src_version_id: src.version_id,
        source_conditions,
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        meta: if replace_meta {
            Directive::Replace(ObjectMeta {
                tags: Vec::new(),
                ..from_headers.clone()
            })
        } else {
            Directive::Copy
        },
        tags: if replace_tags {
            Directive::Replace(from_headers.tags)
        } else {
            Directive::Copy
        },
        condition,
        checksum_algorithm,
        lock: super::lock::from_headers(ctx.headers, chrono::Utc::now())?,
    };
    let copied = ctx
        .gw
        .storage
        .copy_object(req)
        .await
        .map_err(|e| source_changed(e, pinned))?;
    let mut w = XmlWriter::new();
    w.root("CopyObjectResult");
    w.elem("ETag", &quoted(&copied.etag));
    w.elem("LastModified", &xml_date(copied.last_modified));
    w.close("CopyObjectResult");
    let mut r = xml_ok(w.finish());
    if let Some(v) = &copied.version_id {
        set_header(&mut r, "x-amz-version-id", v)?;
    }
    if let Some(v) = &copied.src_version_id {
        set_header(&mut r, "x-amz-copy-source-version-id", v)?;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::stored_content_encoding;

    #[test]
    fn content_encoding_is_kept_as_sent_less_aws_chunked() {
        let stored = |v: &str| stored_content_encoding(v.to_owned());
        assert_eq!(stored("gzip").as_deref(), Some("gzip"));
        assert_eq!(stored("deflate, gzip").as_deref(), Some("deflate, gzip"));
        assert_eq!(stored("deflate,gzip").as_deref(), Some("deflate,gzip"));
        assert_eq!(stored("gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(stored("AWS-Chunked,gzip").as_deref(), Some("gzip"));
        assert_eq!(stored("aws-chunked"), None);
        assert_eq!(stored("aws-chunked, aws-chunked"), None);
        assert_eq!(stored(""), None);
    }
}
