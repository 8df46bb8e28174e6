//! The S3 REST API: routing ([`route`]) and one handler module per operation family.

pub mod route;

mod bucket;
mod list;
mod multipart;
mod object;
mod policy;
mod tagging;

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::auth::Principal;
use crate::body::{self, Body, BodyReader};
use crate::error::S3Error;
use crate::Gateway;
use route::{Op, Query};

/// An S3 request, described for authorization: the operation and what it names.
#[derive(Debug)]
pub struct S3Call {
    /// The operation.
    pub op: Op,
    /// The bucket (empty for ListBuckets and S3 Control).
    pub bucket: String,
    /// The key (empty for bucket operations).
    pub key: String,
    /// A write or delete conditional on the object's ETag (`If-Match`), which reveals the object:
    /// it needs `s3:GetObject` too ("To perform a conditional write with the HTTP If-Match
    /// header, you must have s3:PutObject and s3:GetObject permissions",
    /// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html; likewise
    /// for deletes, https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-delete-enforce.html).
    pub reads_current: bool,
}

impl crate::authz::Describe for S3Call {
    fn requirement(&self) -> crate::authz::Requirement {
        let access = self.op.access(&self.bucket, &self.key);
        match access.per_key {
            Some(action) => crate::authz::Requirement::PerItem { action },
            None => {
                let mut list = access.upfront;
                if self.reads_current {
                    list.push(crate::authz::Permission::new(
                        "s3:GetObject",
                        route::object_arn(&self.bucket, &self.key),
                    ));
                }
                crate::authz::Requirement::Permissions(list)
            }
        }
    }
}

/// What a handler knows about its (already authorized) request.
pub struct Ctx<'a> {
    /// The gateway.
    pub gw: &'a Gateway,
    /// Who is calling.
    pub principal: &'a Principal,
    /// The bucket (empty for ListBuckets).
    pub bucket: String,
    /// The key (empty for bucket operations).
    pub key: String,
    /// Decoded query parameters.
    pub query: Query,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The payload length the client declared, if any.
    pub declared_length: Option<u64>,
    /// The request's IAM condition context (for checks made inside handlers).
    pub context: keyhole_policy::Context,
    /// Where handlers that check per key (DeleteObjects) record their checks for the audit event.
    pub checks: &'a crate::audit::Checks,
    /// The request's write-ahead audit record; see [`Ctx::before_change`].
    pub write_ahead: &'a crate::audit::WriteAhead,
    /// Serve even when the write-ahead record could not be written (`audit_fail_open`).
    pub audit_fail_open: bool,
    /// What the handler reports for the audit event's `responseElements` (DeleteObjects' per-key
    /// results).
    pub response_elements: &'a std::sync::Mutex<Option<serde_json::Value>>,
}

impl Ctx<'_> {
    /// Waits until the request's write-ahead audit record is durable: call before changing
    /// anything visible. Fails with 503 if it could not be written (fail closed), unless
    /// `audit_fail_open`.
    pub async fn before_change(&self) -> Result<(), S3Error> {
        if self.write_ahead.wait().await || self.audit_fail_open {
            Ok(())
        } else {
            Err(crate::pipeline::audit_unavailable())
        }
    }

    /// A request header as text.
    pub fn header(&self, name: &str) -> Result<Option<&str>, S3Error> {
        crate::pipeline::header_str(self.headers, name)
    }
}

/// Runs the handler for an authorized operation. Exhaustive: a new `Op` does not compile until it
/// has a handler.
pub async fn dispatch(
    call: crate::authz::Authorized<S3Call>,
    ctx: Ctx<'_>,
    body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let op = call.into_call().op;
    // Uploads wait for the write-ahead record just before they commit (the body streams into a
    // temporary file meanwhile); every other handler waits before it starts.
    // DeleteObjects first reads which keys it names, for its write-ahead record.
    if !matches!(
        op,
        Op::PutObject | Op::UploadPart { .. } | Op::DeleteObjects
    ) {
        ctx.before_change().await?;
    }
    match op {
        Op::ListBuckets => bucket::list_buckets(&ctx).await,
        Op::CreateBucket => bucket::create_bucket(&ctx, body).await,
        Op::DeleteBucket => bucket::delete_bucket(&ctx).await,
        Op::HeadBucket => bucket::head_bucket(&ctx).await,
        Op::GetBucketLocation => bucket::get_bucket_location(&ctx).await,
        Op::ListObjects => list::list_objects(&ctx, false).await,
        Op::ListObjectsV2 => list::list_objects(&ctx, true).await,
        Op::ListMultipartUploads => multipart::list_uploads(&ctx).await,
        Op::DeleteObjects => object::delete_objects(&ctx, body).await,
        Op::PutObject => object::put_object(&ctx, body).await,
        Op::CopyObject(src) => object::copy_object(&ctx, src).await,
        Op::GetObject => object::get_object(&ctx, false).await,
        Op::HeadObject => object::get_object(&ctx, true).await,
        Op::DeleteObject => object::delete_object(&ctx).await,
        Op::CreateMultipartUpload => multipart::create(&ctx).await,
        Op::UploadPart {
            upload_id,
            part_number,
        } => multipart::upload_part(&ctx, body, upload_id, part_number).await,
        Op::UploadPartCopy {
            upload_id,
            part_number,
            source,
        } => multipart::upload_part_copy(&ctx, upload_id, part_number, source).await,
        Op::CompleteMultipartUpload { upload_id } => {
            multipart::complete(&ctx, body, upload_id).await
        }
        Op::AbortMultipartUpload { upload_id } => multipart::abort(&ctx, upload_id).await,
        Op::ListParts { upload_id } => multipart::list_parts(&ctx, upload_id).await,
        Op::GetBucketPolicy => policy::get_bucket_policy(&ctx).await,
        Op::PutBucketPolicy => policy::put_bucket_policy(&ctx, body).await,
        Op::DeleteBucketPolicy => policy::delete_bucket_policy(&ctx).await,
        Op::GetBucketPolicyStatus => policy::get_policy_status(&ctx).await,
        Op::GetPublicAccessBlock => policy::get_pab(&ctx, true).await,
        Op::PutPublicAccessBlock => policy::put_pab(&ctx, body, true).await,
        Op::DeletePublicAccessBlock => policy::delete_pab(&ctx, true).await,
        Op::GetAccountPublicAccessBlock => policy::get_pab(&ctx, false).await,
        Op::PutAccountPublicAccessBlock => policy::put_pab(&ctx, body, false).await,
        Op::DeleteAccountPublicAccessBlock => policy::delete_pab(&ctx, false).await,
        Op::GetObjectTagging => tagging::get(&ctx).await,
        Op::PutObjectTagging => tagging::put(&ctx, body).await,
        Op::DeleteObjectTagging => tagging::delete(&ctx).await,
    }
}

/// An XML response with status 200.
pub(crate) fn xml_ok(doc: String) -> Response<Body> {
    xml_response(doc, "application/xml")
}

/// An XML response with status 200 and this content type.
pub(crate) fn xml_response(doc: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(doc));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// An empty response with this status.
pub(crate) fn empty_response(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = status;
    r
}

/// `Last-Modified` style date (RFC 7231 IMF-fixdate).
pub(crate) fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The timestamp form S3 uses in XML (`2009-10-12T17:50:30.000Z`).
pub(crate) fn xml_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses an HTTP date (IMF-fixdate, RFC 850 or asctime are all HTTP; S3 clients send the first).
pub(crate) fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s.trim(), "%A, %d-%b-%y %H:%M:%S GMT")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// An ETag as sent on the wire (quoted).
pub(crate) fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// Sets a header from text that may contain characters HTTP forbids; such values are refused.
pub(crate) fn set_header(r: &mut Response<Body>, name: &str, value: &str) -> Result<(), S3Error> {
    let name = http::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| S3Error::invalid_argument(format!("invalid header name `{name}`")))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| S3Error::invalid_argument(format!("invalid value for header `{name}`")))?;
    r.headers_mut().insert(name, value);
    Ok(())
}

/// Canned ACLs that grant nothing beyond the bucket owner. Every other ACL is public in AWS's
/// sense: refused while BlockPublicAcls is in force (the default), and otherwise not implemented,
/// since keyhole stores no ACLs.
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html
const PRIVATE_CANNED_ACLS: &[&str] = &["private", "bucket-owner-read", "bucket-owner-full-control"];

/// Refuses public canned ACLs and explicit grants.
pub(crate) fn check_acl_headers(ctx: &Ctx<'_>) -> Result<(), S3Error> {
    if let Some(acl) = ctx.header("x-amz-acl")? {
        if !PRIVATE_CANNED_ACLS.contains(&acl) {
            if ctx
                .gw
                .state
                .snapshot()
                .effective_bpa(&ctx.bucket)
                .block_public_acls
            {
                return Err(S3Error::access_denied(format!(
                    "Access Denied: the canned ACL `{acl}` would make the resource public, and Block Public Access (BlockPublicAcls) is on"
                )));
            }
            return Err(S3Error::not_implemented(&format!(
                "the public canned ACL `{acl}` (keyhole stores no ACLs; grant access with a bucket policy)"
            )));
        }
    }
    if let Some(name) = ctx
        .headers
        .keys()
        .map(http::HeaderName::as_str)
        .find(|n| n.starts_with("x-amz-grant-"))
    {
        return Err(S3Error::not_implemented(&format!(
            "the `{name}` header (explicit ACL grants)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T07:30:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(t), "Sun, 22 Nov 2026 07:30:05 GMT");
        assert_eq!(parse_http_date(&http_date(t)), Some(t));
        assert_eq!(xml_date(t), "2026-11-22T07:30:05.000Z");
        assert_eq!(parse_http_date("Sunday, 22-Nov-26 07:30:05 GMT"), Some(t));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
