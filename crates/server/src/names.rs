//! Names of the request headers read on every S3 request, made once.
//!
//! A lookup by a `&str` name parses the name first (about 200 instructions each, and a small GET
//! made 27 of them: issue 16's callgrind counts); these are ready to hash.

use http::header::HeaderName;

/// `x-amz-account-id` (S3 Control requests).
pub static X_AMZ_ACCOUNT_ID: HeaderName = HeaderName::from_static("x-amz-account-id");
/// `x-amz-copy-source`.
pub static X_AMZ_COPY_SOURCE: HeaderName = HeaderName::from_static("x-amz-copy-source");
/// `x-amz-expected-bucket-owner`.
pub static X_AMZ_EXPECTED_BUCKET_OWNER: HeaderName =
    HeaderName::from_static("x-amz-expected-bucket-owner");
/// `x-amz-source-expected-bucket-owner`.
pub static X_AMZ_SOURCE_EXPECTED_BUCKET_OWNER: HeaderName =
    HeaderName::from_static("x-amz-source-expected-bucket-owner");
/// `x-amz-acl`.
pub static X_AMZ_ACL: HeaderName = HeaderName::from_static("x-amz-acl");
/// `x-amz-content-sha256`.
pub static X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");
/// `x-amz-metadata-directive`.
pub static X_AMZ_METADATA_DIRECTIVE: HeaderName =
    HeaderName::from_static("x-amz-metadata-directive");
/// `x-amz-server-side-encryption`.
pub static X_AMZ_SERVER_SIDE_ENCRYPTION: HeaderName =
    HeaderName::from_static("x-amz-server-side-encryption");
/// `x-amz-storage-class`.
pub static X_AMZ_STORAGE_CLASS: HeaderName = HeaderName::from_static("x-amz-storage-class");
/// `x-amz-version-id`.
pub static X_AMZ_VERSION_ID: HeaderName = HeaderName::from_static("x-amz-version-id");
/// `x-amz-delete-marker`.
pub static X_AMZ_DELETE_MARKER: HeaderName = HeaderName::from_static("x-amz-delete-marker");
/// `x-amz-copy-source-version-id`.
pub static X_AMZ_COPY_SOURCE_VERSION_ID: HeaderName =
    HeaderName::from_static("x-amz-copy-source-version-id");
/// `x-amz-tagging`.
pub static X_AMZ_TAGGING: HeaderName = HeaderName::from_static("x-amz-tagging");
