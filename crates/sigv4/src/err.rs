//! Errors of parsing, verifying and decoding SigV4-authenticated requests.
//!
//! Each variant maps to the S3 error code and HTTP status AWS returns for the same fault
//! ([`AuthError::code`], [`AuthError::http_status`]) and to an AWS-like human message
//! ([`AuthError::message`]). No variant ever carries a secret key, a signing key or a signature.

/// Why a request failed authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The `Authorization` header is not a well-formed SigV4 header; the reason names the problem.
    #[error("the authorization header is malformed: {0}")]
    HeaderMalformed(String),
    /// The `X-Amz-*` query parameters of a presigned request are malformed or out of range.
    #[error("the authorization query parameters are invalid: {0}")]
    QueryMalformed(String),
    /// An authorization mechanism other than `AWS4-HMAC-SHA256` (for example SigV2).
    #[error("unsupported authorization mechanism `{0}`")]
    UnsupportedAlgorithm(String),
    /// Both an `Authorization` header and presigned query parameters were sent.
    #[error("only one authentication mechanism is allowed")]
    MultipleMechanisms,
    /// Neither `x-amz-date` nor a parsable `Date` header (or `X-Amz-Date` parameter) was sent.
    #[error("the request has no valid `x-amz-date` or `date`")]
    MissingDate,
    /// An S3 request signed in the header carries no `x-amz-content-sha256`.
    #[error("missing required header `x-amz-content-sha256`")]
    MissingContentSha256,
    /// `x-amz-content-sha256` is neither a SHA-256 hex digest nor a known marker.
    #[error("invalid `x-amz-content-sha256` value `{0}`")]
    InvalidContentSha256(String),
    /// The payload marker cannot be used with this form of signing.
    #[error("payload `{0}` is not supported here")]
    UnsupportedPayload(String),
    /// Header form: the request time is more than 15 minutes from the server time.
    #[error("the request time is too far from the server time")]
    RequestTimeTooSkewed,
    /// Query form: the presigned URL is past its expiry.
    #[error("the request has expired")]
    Expired,
    /// Query form: `X-Amz-Date` is in the future beyond the allowed skew.
    #[error("the request is not valid yet")]
    NotYetValid,
    /// S3: `x-amz-*` headers present in the request were not signed.
    #[error("headers present in the request were not signed: `{0}`")]
    HeadersNotSigned(String),
    /// The recomputed signature differs from the one sent.
    #[error("the request signature does not match")]
    SignatureDoesNotMatch,
    /// The access key is unknown (produced by the caller's key lookup, not by this crate).
    #[error("the access key id does not exist")]
    InvalidAccessKeyId,
    /// The body's SHA-256 differs from `x-amz-content-sha256`.
    #[error("the body does not match `x-amz-content-sha256`")]
    ContentSha256Mismatch,
    /// The body ended before the final chunk (or the announced trailers, or the decoded length).
    #[error("the request body ended unexpectedly")]
    IncompleteBody,
    /// The aws-chunked body is not well formed; the reason names the problem.
    #[error("malformed aws-chunked body: {0}")]
    ChunkMalformed(String),
    /// A chunk is larger than [`crate::MAX_CHUNK_SIZE`].
    #[error("chunk of {0} bytes exceeds the chunk size limit")]
    ChunkTooLarge(u64),
    /// A chunk or trailer signature differs from the recomputed one.
    #[error("a chunk signature does not match")]
    ChunkSignatureDoesNotMatch,
    /// The trailer checksum differs from the checksum of the decoded body.
    #[error("the `{0}` checksum does not match the body")]
    ChecksumMismatch(String),
    /// A trailer checksum value is not valid base64 of the right length.
    #[error("invalid `{0}` checksum value")]
    InvalidChecksum(String),
    /// The announced trailer names a checksum algorithm this crate cannot verify.
    #[error("unsupported trailer `{0}`")]
    UnsupportedTrailer(String),
    /// The decoded body is longer than `x-amz-decoded-content-length`.
    #[error("the decoded body is longer than `x-amz-decoded-content-length`")]
    DecodedLengthExceeded,
    /// The SigV4 fields of a browser-form POST are malformed; the reason names the field.
    #[error("the POST form's signature fields are malformed: {0}")]
    PostFormMalformed(String),
    /// A URI, header or query could not be used to sign a request.
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

impl AuthError {
    /// The S3 error code AWS returns for this fault.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::HeaderMalformed(_) => "AuthorizationHeaderMalformed",
            Self::QueryMalformed(_) => "AuthorizationQueryParametersError",
            Self::UnsupportedAlgorithm(_)
            | Self::MissingContentSha256
            | Self::UnsupportedPayload(_)
            | Self::ChunkMalformed(_)
            | Self::ChunkTooLarge(_)
            | Self::UnsupportedTrailer(_)
            | Self::DecodedLengthExceeded
            | Self::Signing(_) => "InvalidRequest",
            Self::MultipleMechanisms
            | Self::InvalidContentSha256(_)
            | Self::PostFormMalformed(_) => "InvalidArgument",
            Self::MissingDate | Self::Expired | Self::NotYetValid | Self::HeadersNotSigned(_) => {
                "AccessDenied"
            }
            Self::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Self::SignatureDoesNotMatch | Self::ChunkSignatureDoesNotMatch => {
                "SignatureDoesNotMatch"
            }
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::ContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            Self::IncompleteBody => "IncompleteBody",
            Self::ChecksumMismatch(_) => "BadDigest",
            Self::InvalidChecksum(_) => "InvalidDigest",
        }
    }

    /// The HTTP status AWS returns with [`AuthError::code`].
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::MissingDate
            | Self::RequestTimeTooSkewed
            | Self::Expired
            | Self::NotYetValid
            | Self::HeadersNotSigned(_)
            | Self::SignatureDoesNotMatch
            | Self::ChunkSignatureDoesNotMatch
            | Self::InvalidAccessKeyId => 403,
            Self::HeaderMalformed(_)
            | Self::QueryMalformed(_)
            | Self::UnsupportedAlgorithm(_)
            | Self::MultipleMechanisms
            | Self::PostFormMalformed(_)
            | Self::MissingContentSha256
            | Self::InvalidContentSha256(_)
            | Self::UnsupportedPayload(_)
            | Self::ContentSha256Mismatch
            | Self::IncompleteBody
            | Self::ChunkMalformed(_)
            | Self::ChunkTooLarge(_)
            | Self::ChecksumMismatch(_)
            | Self::InvalidChecksum(_)
            | Self::UnsupportedTrailer(_)
            | Self::DecodedLengthExceeded
            | Self::Signing(_) => 400,
        }
    }

    /// An AWS-like human message for the error response body. Never contains secrets or
    /// signatures.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::HeaderMalformed(reason) => {
                format!("The authorization header is malformed; {reason}.")
            }
            Self::QueryMalformed(reason) => sentence(reason),
            Self::UnsupportedAlgorithm(_) => {
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
                    .to_owned()
            }
            Self::MultipleMechanisms => "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified".to_owned(),
            Self::MissingDate => {
                "AWS authentication requires a valid Date or x-amz-date header".to_owned()
            }
            Self::MissingContentSha256 => {
                "Missing required header for this request: x-amz-content-sha256".to_owned()
            }
            Self::InvalidContentSha256(_) => "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.".to_owned(),
            Self::UnsupportedPayload(payload) => {
                format!("The payload option {payload} is not supported for this request.")
            }
            Self::RequestTimeTooSkewed => {
                "The difference between the request time and the current time is too large."
                    .to_owned()
            }
            Self::Expired => "Request has expired".to_owned(),
            Self::NotYetValid => "Request is not valid yet".to_owned(),
            Self::HeadersNotSigned(names) => {
                format!("There were headers present in the request which were not signed: {names}")
            }
            Self::SignatureDoesNotMatch => "The request signature we calculated does not match the signature you provided. Check your key and signing method.".to_owned(),
            Self::InvalidAccessKeyId => {
                "The AWS Access Key Id you provided does not exist in our records.".to_owned()
            }
            Self::ContentSha256Mismatch => "The provided 'x-amz-content-sha256' header does not match what was computed.".to_owned(),
            Self::IncompleteBody => "The request body terminated unexpectedly".to_owned(),
            Self::ChunkMalformed(reason) => format!("The chunked body is malformed: {reason}."),
            Self::ChunkTooLarge(size) => {
                format!("Chunk size {size} exceeds the maximum allowed chunk size.")
            }
            Self::ChunkSignatureDoesNotMatch => "The chunk signature we calculated does not match the signature you provided.".to_owned(),
            Self::ChecksumMismatch(algorithm) => {
                format!("The {algorithm} you specified did not match the calculated checksum.")
            }
            Self::InvalidChecksum(name) => format!("Value for {name} trailing header is invalid."),
            Self::UnsupportedTrailer(name) => {
                format!("The trailing header {name} is not supported.")
            }
            Self::DecodedLengthExceeded => "The decoded body is longer than x-amz-decoded-content-length.".to_owned(),
            Self::Signing(reason) => format!("The request cannot be signed: {reason}."),
            Self::PostFormMalformed(reason) => sentence(reason),
        }
    }
}

/// `reason` with an uppercase first letter and a final period, as AWS writes messages.
fn sentence(reason: &str) -> String {
    let mut chars = reason.chars();
    let mut out: String = chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_statuses_and_messages() {
        let cases = [
            (
                AuthError::HeaderMalformed("missing Credential".into()),
                "AuthorizationHeaderMalformed",
                400,
            ),
            (
                AuthError::QueryMalformed("x".into()),
                "AuthorizationQueryParametersError",
                400,
            ),
            (
                AuthError::UnsupportedAlgorithm("AWS".into()),
                "InvalidRequest",
                400,
            ),
            (AuthError::MultipleMechanisms, "InvalidArgument", 400),
            (AuthError::MissingDate, "AccessDenied", 403),
            (AuthError::MissingContentSha256, "InvalidRequest", 400),
            (AuthError::RequestTimeTooSkewed, "RequestTimeTooSkewed", 403),
            (AuthError::Expired, "AccessDenied", 403),
            (
                AuthError::SignatureDoesNotMatch,
                "SignatureDoesNotMatch",
                403,
            ),
            (
                AuthError::ChunkSignatureDoesNotMatch,
                "SignatureDoesNotMatch",
                403,
            ),
            (AuthError::InvalidAccessKeyId, "InvalidAccessKeyId", 403),
            (
                AuthError::ContentSha256Mismatch,
                "XAmzContentSHA256Mismatch",
                400,
            ),
            (AuthError::IncompleteBody, "IncompleteBody", 400),
            (
                AuthError::ChecksumMismatch("CRC32".into()),
                "BadDigest",
                400,
            ),
            (
                AuthError::InvalidChecksum("x-amz-checksum-crc32".into()),
                "InvalidDigest",
                400,
            ),
        ];
        for (error, code, status) in cases {
            assert_eq!(error.code(), code, "{error:?}");
            assert_eq!(error.http_status(), status, "{error:?}");
            assert!(!error.message().is_empty());
            let display = error.to_string();
            assert!(display.starts_with(|c: char| c.is_lowercase()), "{display}");
            assert!(!display.ends_with('.'), "{display}");
        }
        assert_eq!(
            AuthError::HeaderMalformed("missing Credential".into()).message(),
            "The authorization header is malformed; missing Credential."
        );
        assert_eq!(
            AuthError::QueryMalformed("X-Amz-Expires should be a number".into()).message(),
            "X-Amz-Expires should be a number."
        );
    }
}
