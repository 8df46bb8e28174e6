//! The error type of the store, and its mapping to S3 error codes.

/// Everything that can go wrong in the store.
///
/// Client-facing variants map to the S3 error code of the same name through
/// [`StoreError::s3_code`]; storage and index failures map to `InternalError`, and their
/// text must never reach a response body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The bucket does not exist.
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    /// The object does not exist.
    #[error("the specified key does not exist")]
    NoSuchKey,
    /// The multipart upload does not exist (never created, aborted or completed).
    #[error("the specified multipart upload does not exist")]
    NoSuchUpload,
    /// The bucket still holds objects.
    #[error("the bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// A bucket of this name already exists (there is a single owner).
    #[error("the bucket you tried to create already exists and you own it")]
    BucketAlreadyOwnedByYou,
    /// The bucket name breaks the naming rules.
    #[error("the specified bucket is not valid: {reason}")]
    InvalidBucketName {
        /// Which rule the name breaks.
        reason: String,
    },
    /// The key is longer than 1024 bytes of UTF-8.
    #[error("the key is longer than 1024 bytes")]
    KeyTooLong,
    /// The key is not acceptable (empty, or contains U+0000).
    #[error("the key is not valid: {reason}")]
    InvalidKey {
        /// Why the key is refused.
        reason: String,
    },
    /// A listed part does not exist or its ETag does not match.
    #[error(
        "one or more of the specified parts could not be found or its entity tag did not match"
    )]
    InvalidPart,
    /// The parts of a completion request are not in ascending part-number order.
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the minimum part size.
    #[error("your proposed upload is smaller than the minimum allowed object size")]
    EntityTooSmall,
    /// The body is larger than the store accepts for one object or part.
    #[error("your proposed upload exceeds the maximum allowed object size")]
    EntityTooLarge,
    /// The body's MD5 is not the one the client announced.
    #[error("the content-md5 you specified did not match what we received")]
    BadDigest,
    /// An object tag set is not acceptable.
    #[error("the tag set is not valid: {reason}")]
    InvalidTag {
        /// Which tagging rule is broken.
        reason: String,
    },
    /// A write's condition (`If-None-Match: *`, `If-Match`) did not hold.
    #[error("at least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    /// An argument is out of range.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Which argument and why.
        reason: String,
    },
    /// The version asked for (or the current version) is a delete marker. S3 answers `404
    /// NoSuchKey` when it is the current version and `405 MethodNotAllowed` when it was named by
    /// its version id, both with `x-amz-delete-marker: true`.
    #[error("the specified version is a delete marker")]
    DeleteMarker {
        /// The marker's version id (`null` for a null marker).
        version_id: String,
        /// When the marker was made.
        last_modified: chrono::DateTime<chrono::Utc>,
        /// Whether the request named the version (`405`) or asked for the current one (`404`).
        by_version: bool,
    },
    /// No version of the key has this id.
    #[error("the specified version does not exist")]
    NoSuchVersion,
    /// The version id is not one this store makes (nor `null`).
    #[error("invalid version id specified")]
    InvalidVersionId,
    /// The version is protected by Object Lock (a legal hold, or a retention in force that the
    /// request may not bypass).
    #[error("Access Denied because object protected by object lock.")]
    ObjectLocked,
    /// The request asks for what the bucket cannot do (S3's `InvalidRequest`), such as a lock on
    /// a version in a bucket without Object Lock.
    #[error("{reason}")]
    InvalidRequest {
        /// What is missing.
        reason: String,
    },
    /// The request does not fit the bucket's state (Object Lock and versioning).
    #[error("{reason}")]
    InvalidBucketState {
        /// What the bucket's state forbids.
        reason: String,
    },
    /// The store was sealed ([`crate::LocalStore::seal`]): the gateway is shutting down and
    /// changes nothing any more. S3's `ServiceUnavailable` (503): try again.
    #[error("the gateway is shutting down and makes no more changes; try again")]
    Sealed,
    /// A filesystem operation failed.
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The metadata index failed or holds an undecodable record.
    #[error("metadata index error: {0}")]
    Index(String),
}

impl StoreError {
    /// The S3 error code for this error (`InternalError` for storage and index failures).
    #[must_use]
    pub fn s3_code(&self) -> &'static str {
        match self {
            Self::NoSuchBucket => "NoSuchBucket",
            Self::NoSuchKey => "NoSuchKey",
            Self::NoSuchUpload => "NoSuchUpload",
            Self::BucketNotEmpty => "BucketNotEmpty",
            Self::BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            Self::InvalidBucketName { .. } => "InvalidBucketName",
            Self::KeyTooLong => "KeyTooLongError",
            // S3 has no dedicated code for an empty key or a NUL in a key.
            Self::InvalidKey { .. } | Self::InvalidArgument { .. } => "InvalidArgument",
            Self::InvalidPart => "InvalidPart",
            Self::InvalidPartOrder => "InvalidPartOrder",
            Self::EntityTooSmall => "EntityTooSmall",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::BadDigest => "BadDigest",
            Self::InvalidTag { .. } => "InvalidTag",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::DeleteMarker {
                by_version: false, ..
            } => "NoSuchKey",
            Self::DeleteMarker {
                by_version: true, ..
            } => "MethodNotAllowed",
            Self::NoSuchVersion => "NoSuchVersion",
            // S3 answers a malformed version id with InvalidArgument ("Invalid version id
            // specified").
            Self::InvalidVersionId => "InvalidArgument",
            Self::ObjectLocked => "AccessDenied",
            Self::InvalidRequest { .. } => "InvalidRequest",
            Self::InvalidBucketState { .. } => "InvalidBucketState",
            Self::Sealed => "ServiceUnavailable",
            Self::Io(_) | Self::Index(_) => "InternalError",
        }
    }

    /// The HTTP status S3 answers with for this error.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NoSuchBucket
            | Self::NoSuchKey
            | Self::NoSuchUpload
            | Self::NoSuchVersion
            | Self::DeleteMarker {
                by_version: false, ..
            } => 404,
            Self::DeleteMarker {
                by_version: true, ..
            } => 405,
            Self::PreconditionFailed => 412,
            Self::ObjectLocked => 403,
            Self::BucketNotEmpty
            | Self::BucketAlreadyOwnedByYou
            | Self::InvalidBucketState { .. } => 409,
            Self::InvalidBucketName { .. }
            | Self::KeyTooLong
            | Self::InvalidKey { .. }
            | Self::InvalidPart
            | Self::InvalidPartOrder
            | Self::EntityTooSmall
            | Self::EntityTooLarge
            | Self::BadDigest
            | Self::InvalidTag { .. }
            | Self::InvalidArgument { .. }
            | Self::InvalidRequest { .. }
            | Self::InvalidVersionId => 400,
            Self::Sealed => 503,
            Self::Io(_) | Self::Index(_) => 500,
        }
    }

    pub(crate) fn index(e: impl std::fmt::Display) -> Self {
        Self::Index(e.to_string())
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        Self::index(e)
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        match e {
            // An I/O failure of the index stays an I/O error, so a full disk under the index is
            // answered as a full disk (507), not as an index fault (review 37, F1).
            redb::StorageError::Io(io) => Self::Io(io),
            redb::StorageError::PreviousIo => Self::Index(
                "the index stopped taking changes after an earlier I/O error (a full disk?); restart the gateway once the cause is fixed".into(),
            ),
            other => Self::index(other),
        }
    }
}

/// The redb errors that wrap a [`redb::StorageError`] in their `Storage` variant: that one is
/// converted as a storage error (an I/O failure stays one), the others are index faults.
macro_rules! from_redb_wrapping_storage {
    ($($t:ident),*) => {$(
        impl From<redb::$t> for StoreError {
            fn from(e: redb::$t) -> Self {
                match e {
                    redb::$t::Storage(s) => s.into(),
                    other => Self::index(other),
                }
            }
        }
    )*};
}

from_redb_wrapping_storage!(DatabaseError, TransactionError, TableError, CommitError);

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Index(format!("undecodable record: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let cases: Vec<(StoreError, &str, u16)> = vec![
            (StoreError::NoSuchBucket, "NoSuchBucket", 404),
            (StoreError::NoSuchKey, "NoSuchKey", 404),
            (StoreError::NoSuchUpload, "NoSuchUpload", 404),
            (StoreError::BucketNotEmpty, "BucketNotEmpty", 409),
            (
                StoreError::BucketAlreadyOwnedByYou,
                "BucketAlreadyOwnedByYou",
                409,
            ),
            (
                StoreError::InvalidBucketName { reason: "x".into() },
                "InvalidBucketName",
                400,
            ),
            (StoreError::KeyTooLong, "KeyTooLongError", 400),
            (StoreError::InvalidPart, "InvalidPart", 400),
            (StoreError::InvalidPartOrder, "InvalidPartOrder", 400),
            (StoreError::EntityTooSmall, "EntityTooSmall", 400),
            (StoreError::EntityTooLarge, "EntityTooLarge", 400),
            (StoreError::BadDigest, "BadDigest", 400),
            (
                StoreError::InvalidTag { reason: "x".into() },
                "InvalidTag",
                400,
            ),
            (
                StoreError::InvalidArgument { reason: "x".into() },
                "InvalidArgument",
                400,
            ),
            (
                StoreError::Io(std::io::Error::other("disk on fire")),
                "InternalError",
                500,
            ),
            (StoreError::Index("x".into()), "InternalError", 500),
        ];
        for (e, code, status) in cases {
            assert_eq!(e.s3_code(), code, "{e:?}");
            assert_eq!(e.http_status(), status, "{e:?}");
        }
    }

    #[test]
    fn messages_are_lowercase_without_final_period() {
        let msgs = [
            StoreError::NoSuchBucket.to_string(),
            StoreError::KeyTooLong.to_string(),
            StoreError::InvalidKey {
                reason: "empty".into(),
            }
            .to_string(),
        ];
        for m in msgs {
            assert!(!m.ends_with('.'), "{m}");
            assert!(m.chars().next().is_some_and(char::is_lowercase), "{m}");
        }
    }
}
