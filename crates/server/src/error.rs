//! The one wire-error type, [`S3Error`], and its XML rendering.
//!
//! Every failure a client can see is an `S3Error`: a code from AWS's list, an HTTP status and a
//! message. Internal causes (I/O, index) travel in `source` for the log and never reach the body.

use http::StatusCode;
use keyhole_sigv4::AuthError;
use keyhole_store::StoreError;

use crate::xml::XmlWriter;

/// A client-visible error. Boxed so `Result<_, S3Error>` stays one pointer wide.
#[derive(Debug)]
pub struct S3Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    code: &'static str,
    status: StatusCode,
    message: String,
    /// Extra elements of the `<Error>` body, e.g. `BucketName`, `Key`.
    details: Vec<(&'static str, String)>,
    /// Response headers that go with the error (`x-amz-delete-marker`, `x-amz-version-id`).
    headers: Vec<(&'static str, String)>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl S3Error {
    /// Builds an error with AWS's code, status and message.
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> S3Error {
        S3Error(Box::new(Inner {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
            source: None,
        }))
    }

    /// Adds a response header to the error answer (S3 sends `x-amz-delete-marker` and
    /// `x-amz-version-id` with a 404 or 405 about a delete marker).
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> S3Error {
        self.0.headers.push((name, value.into()));
        self
    }

    /// The response headers that go with the error.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.0.headers
    }

    /// Adds an element to the `<Error>` body (for example `BucketName`).
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> S3Error {
        self.0.details.push((name, value.into()));
        self
    }

    /// `507 InsufficientStorage`: the gateway's file system is full, so retrying will not help
    /// until space is freed. `what` says what could not be written.
    pub fn storage_full(what: &str) -> S3Error {
        S3Error::new(
            "InsufficientStorage",
            StatusCode::INSUFFICIENT_STORAGE,
            format!("The gateway's storage is full: {what}. Free space on its data directory's file system (or delete objects), then retry."),
        )
    }

    /// An internal failure: logged with its cause, answered as `InternalError`; or, when the
    /// cause is a full file system (`ENOSPC`, `EDQUOT`), as `InsufficientStorage` (507): the
    /// client learns that retrying will not help until space is freed (SDKs retry 500s, not
    /// 507), and the operator's log names the cause either way.
    #[track_caller]
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> S3Error {
        let source = source.into();
        let location = std::panic::Location::caller();
        let mut e = if is_storage_full(&*source) {
            tracing::error!(%location, error = %source, "the data directory's file system is full");
            S3Error::storage_full("nothing was stored")
        } else {
            tracing::error!(%location, error = %source, "internal error");
            S3Error::new(
                "InternalError",
                StatusCode::INTERNAL_SERVER_ERROR,
                "We encountered an internal error. Please try again.",
            )
        };
        e.0.source = Some(source);
        e
    }

    /// The AWS error code.
    pub fn code(&self) -> &'static str {
        self.0.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The human message sent to the client.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Renders the `<Error>` document.
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        let mut w = XmlWriter::new();
        w.open("Error");
        w.elem("Code", self.0.code);
        w.elem("Message", &self.0.message);
        for (name, value) in &self.0.details {
            w.elem(name, value);
        }
        w.elem("Resource", resource);
        w.elem("RequestId", request_id);
        w.close("Error");
        w.finish()
    }

    /// Renders the Query-protocol `<ErrorResponse>` document (IAM, STS) in the service's
    /// namespace `ns`.
    pub fn to_query_xml(&self, request_id: &str, ns: &str) -> String {
        let mut w = XmlWriter::new();
        w.root_ns("ErrorResponse", ns);
        w.open("Error");
        w.elem(
            "Type",
            if self.0.status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            },
        );
        w.elem("Code", self.0.code);
        w.elem("Message", &self.0.message);
        w.close("Error");
        w.elem("RequestId", request_id);
        w.close("ErrorResponse");
        w.finish()
    }

    // Shorthands for errors raised in many places.

    /// `NotImplemented` (501) for a recognised but unsupported operation.
    pub fn not_implemented(what: &str) -> S3Error {
        S3Error::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            format!("A header or query you provided implies functionality that is not implemented: {what}"),
        )
    }

    /// `InvalidArgument` (400).
    pub fn invalid_argument(message: impl Into<String>) -> S3Error {
        S3Error::new("InvalidArgument", StatusCode::BAD_REQUEST, message)
    }

    /// `InvalidRequest` (400).
    pub fn invalid_request(message: impl Into<String>) -> S3Error {
        S3Error::new("InvalidRequest", StatusCode::BAD_REQUEST, message)
    }

    /// `MalformedXML` (400).
    pub fn malformed_xml(detail: impl std::fmt::Display) -> S3Error {
        S3Error::new(
            "MalformedXML",
            StatusCode::BAD_REQUEST,
            format!("The XML you provided was not well-formed or did not validate against our published schema: {detail}"),
        )
    }

    /// `MalformedACLError` (400): an ACL document that is not an `AccessControlPolicy`.
    pub fn malformed_acl(detail: impl std::fmt::Display) -> S3Error {
        S3Error::new(
            "MalformedACLError",
            StatusCode::BAD_REQUEST,
            format!("The XML you provided was not well-formed or did not validate against our published schema: {detail}"),
        )
    }

    /// `AccessDenied` (403).
    pub fn access_denied(message: impl Into<String>) -> S3Error {
        S3Error::new("AccessDenied", StatusCode::FORBIDDEN, message)
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl std::error::Error for S3Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Whether an error, or one of its causes, is the file system running out of space or quota.
pub(crate) fn is_storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> S3Error {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        S3Error::new(e.code(), status, e.message())
    }
}

impl From<StoreError> for S3Error {
    #[track_caller]
    fn from(e: StoreError) -> S3Error {
        // The store chooses the client-visible code and status; only the wording of the common
        // messages is AWS's here. Storage and index failures stay internal.
        let message: String = match &e {
            StoreError::Io(_) | StoreError::Index(_) => return S3Error::internal(e),
            StoreError::NoSuchBucket => "The specified bucket does not exist".into(),
            StoreError::NoSuchKey => "The specified key does not exist.".into(),
            StoreError::NoSuchUpload => "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.".into(),
            StoreError::BucketNotEmpty => "The bucket you tried to delete is not empty".into(),
            StoreError::BucketAlreadyOwnedByYou => "Your previous request to create the named bucket succeeded and you already own it.".into(),
            StoreError::KeyTooLong => "Your key is too long (the limit is 1024 bytes of UTF-8)".into(),
            StoreError::InvalidPart => "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.".into(),
            StoreError::InvalidPartOrder => "The list of parts was not in ascending order. Parts must be ordered by part number.".into(),
            StoreError::EntityTooSmall => "Your proposed upload is smaller than the minimum allowed object size (5 MiB for every part but the last).".into(),
            StoreError::EntityTooLarge => "Your proposed upload exceeds the maximum allowed object size.".into(),
            StoreError::BadDigest => "The Content-MD5 you specified did not match what we received.".into(),
            StoreError::PreconditionFailed => "At least one of the pre-conditions you specified did not hold".into(),
            StoreError::DeleteMarker { by_version: false, .. } => "The specified key does not exist.".into(),
            StoreError::DeleteMarker { by_version: true, .. } => "The specified method is not allowed against this resource.".into(),
            StoreError::NoSuchVersion => "The specified version does not exist.".into(),
            StoreError::InvalidVersionId => "Invalid version id specified".into(),
            other => other.to_string(),
        };
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let err = S3Error::new(e.s3_code(), status, message);
        match e {
            // "If the current version of the object is a delete marker, Amazon S3 behaves as if
            // the object was deleted and includes x-amz-delete-marker: true in the response";
            // naming a delete marker's version answers 405 with the marker's Last-Modified
            // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html,
            // https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html).
            StoreError::DeleteMarker {
                version_id,
                last_modified,
                by_version,
            } => {
                let err = err
                    .with_header("x-amz-delete-marker", "true")
                    .with_header("x-amz-version-id", version_id);
                if by_version {
                    err.with_header("last-modified", crate::s3::http_date(last_modified))
                        .with_header("allow", "DELETE")
                } else {
                    err
                }
            }
            _ => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_body_has_code_message_resource_and_request_id() {
        let e = S3Error::new(
            "NoSuchKey",
            StatusCode::NOT_FOUND,
            "The specified key does not exist.",
        )
        .with("Key", "a<b");
        let xml = e.to_xml("/bkt/a<b", "REQ123");
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(xml.contains("<Code>NoSuchKey</Code>"));
        assert!(xml.contains("<Key>a&lt;b</Key>"));
        assert!(xml.contains("<Resource>/bkt/a&lt;b</Resource>"));
        assert!(xml.contains("<RequestId>REQ123</RequestId>"));
    }

    #[test]
    fn a_full_file_system_is_insufficient_storage_not_internal() {
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        let e = S3Error::from(StoreError::Io(full));
        assert_eq!(
            (e.code(), e.status().as_u16()),
            ("InsufficientStorage", 507)
        );
        assert!(e.message().contains("storage is full"), "{}", e.message());
        let quota = std::io::Error::from_raw_os_error(122); // EDQUOT
        assert_eq!(S3Error::internal(quota).code(), "InsufficientStorage");
        let other = std::io::Error::from_raw_os_error(5); // EIO
        assert_eq!(S3Error::from(StoreError::Io(other)).code(), "InternalError");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = S3Error::internal(std::io::Error::other("disk on fire at /secret/path"));
        assert_eq!(e.code(), "InternalError");
        assert!(!e.to_xml("/", "r").contains("secret"));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn store_errors_map_to_s3_codes() {
        assert_eq!(
            S3Error::from(StoreError::NoSuchBucket).code(),
            "NoSuchBucket"
        );
        assert_eq!(
            S3Error::from(StoreError::KeyTooLong).code(),
            "KeyTooLongError"
        );
        assert_eq!(
            S3Error::from(StoreError::BucketNotEmpty).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(S3Error::from(StoreError::BadDigest).code(), "BadDigest");
        let tag = S3Error::from(StoreError::InvalidTag { reason: "x".into() });
        assert_eq!(
            (tag.code(), tag.status()),
            ("InvalidTag", StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            S3Error::from(StoreError::EntityTooLarge).code(),
            "EntityTooLarge"
        );
        let io = S3Error::from(StoreError::Io(std::io::Error::other("x")));
        assert_eq!(io.code(), "InternalError");
    }
}
