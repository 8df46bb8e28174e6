//! The upstream's errors as the client's S3 errors.
//!
//! A client must get the error S3 would have given it: the upstream's code and status are kept
//! for every error S3 defines (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html),
//! with S3's own message for the code rather than the upstream's text, which may name the
//! upstream's host, buckets or keys. Two kinds are not the client's business and change:
//! - the upstream refusing keyhole's *own* credentials (`InvalidAccessKeyId`,
//!   `SignatureDoesNotMatch`, `ExpiredToken`, ...): the client's signature was fine, so it gets
//!   `503 ServiceUnavailable` (retry) and the operator a log line;
//! - redirects (`PermanentRedirect`, `TemporaryRedirect`: a wrong region or endpoint in the
//!   configuration): `500 InternalError` and a log line.
//!
//! Codes S3 does not define become `InternalError` for a 5xx and `InvalidRequest` otherwise,
//! with the status kept.

use http::StatusCode;

use crate::error::S3Error;

/// S3's error codes and the message S3 gives with each (the ones a client of this gateway can
/// meet; see the module documentation).
const CODES: &[(&str, &str)] = &[
    ("AccessDenied", "Access Denied"),
    ("BadDigest", "The Content-MD5 or checksum value that you specified did not match what the server received."),
    ("BucketAlreadyExists", "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."),
    ("BucketAlreadyOwnedByYou", "The bucket that you tried to create already exists, and you own it."),
    ("BucketNotEmpty", "The bucket that you tried to delete is not empty."),
    ("ConditionalRequestConflict", "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part."),
    ("EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size."),
    ("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size."),
    ("IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header."),
    ("InternalError", "We encountered an internal error. Please try again."),
    ("InvalidArgument", "Invalid Argument"),
    ("InvalidBucketName", "The specified bucket is not valid."),
    ("InvalidBucketState", "The request is not valid for the current state of the bucket."),
    ("InvalidDigest", "The Content-MD5 or checksum value that you specified is not valid."),
    ("InvalidLocationConstraint", "The specified location (Region) constraint is not valid."),
    ("InvalidObjectState", "The operation is not valid for the current state of the object."),
    ("InvalidPart", "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified ETag might not have matched the uploaded part's ETag."),
    ("InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number."),
    ("InvalidRange", "The requested range is not satisfiable"),
    ("InvalidRequest", "Invalid Request"),
    ("InvalidStorageClass", "The storage class that you specified is not valid."),
    ("InvalidTag", "The tag provided was not a valid tag."),
    ("InvalidURI", "The specified URI couldn't be parsed."),
    ("KeyTooLongError", "Your key is too long."),
    ("MalformedXML", "The XML that you provided was not well-formed or did not validate against our published schema."),
    ("MaxMessageLengthExceeded", "Your request was too large."),
    ("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size."),
    ("MethodNotAllowed", "The specified method is not allowed against this resource."),
    ("MissingContentLength", "You must provide the Content-Length HTTP header."),
    ("NoSuchBucket", "The specified bucket does not exist"),
    ("NoSuchKey", "The specified key does not exist."),
    ("NoSuchTagSet", "There is no tag set associated with the bucket."),
    ("NoSuchUpload", "The specified multipart upload does not exist. The upload ID might not be valid, or the multipart upload might have been aborted or completed."),
    ("NotImplemented", "A header that you provided implies functionality that is not implemented."),
    ("OperationAborted", "A conflicting conditional operation is currently in progress against this resource. Try again."),
    ("PreconditionFailed", "At least one of the preconditions that you specified did not hold."),
    ("RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period."),
    ("ServiceUnavailable", "Service is unable to handle request."),
    ("SlowDown", "Please reduce your request rate."),
    ("TooManyBuckets", "You have attempted to create more buckets than allowed."),
];

/// Codes that mean the upstream refused keyhole's own credentials or clock.
const GATEWAY_CREDENTIAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "RequestTimeTooSkewed",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
    "AccountProblem",
    "AllAccessDisabled",
];

/// The known form of `code`, if S3 defines it.
fn known(code: &str) -> Option<(&'static str, &'static str)> {
    CODES.iter().find(|(c, _)| *c == code).copied()
}

/// The upstream is not reachable, or not answering in time.
pub fn unavailable() -> S3Error {
    S3Error::new(
        "ServiceUnavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        "The storage behind this gateway did not answer in time. Please try again.",
    )
}

/// Too many requests are waiting for the upstream.
pub fn slow_down() -> S3Error {
    S3Error::new(
        "SlowDown",
        StatusCode::SERVICE_UNAVAILABLE,
        "Please reduce your request rate.",
    )
}

/// Whether an upstream error means keyhole's own credentials need reading again.
pub fn wants_fresh_credentials(code: &str) -> bool {
    matches!(
        code,
        "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired"
    )
}

/// The client's error for an upstream answer with `status` and (possibly empty) `body`; a
/// bodiless 404 (HEAD) is `not_found`.
pub fn from_upstream(status: StatusCode, body: &[u8], not_found: &'static str) -> S3Error {
    let parsed = crate::xml::parse(body).ok().filter(|e| e.name == "Error");
    let code = parsed
        .as_ref()
        .and_then(|e| e.child_text("Code"))
        .map(str::trim)
        .unwrap_or("");
    from_code(status, code, not_found)
}

/// As [`from_upstream`], with the code already read (an `<Error>` inside a 200 answer).
pub fn from_code(status: StatusCode, code: &str, not_found: &'static str) -> S3Error {
    if GATEWAY_CREDENTIAL_CODES.contains(&code) {
        tracing::error!(
            upstream_code = code,
            status = status.as_u16(),
            "the upstream refused keyhole's own credentials or clock; check the upstream credentials and the system time"
        );
        return S3Error::new(
            "ServiceUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "The storage behind this gateway refused the gateway's credentials. Please try again later.",
        );
    }
    if status.is_redirection()
        || matches!(code, "PermanentRedirect" | "TemporaryRedirect" | "Redirect")
    {
        tracing::error!(
            upstream_code = code,
            status = status.as_u16(),
            "the upstream redirects: check upstream_endpoint and upstream_region"
        );
        return S3Error::new(
            "InternalError",
            StatusCode::INTERNAL_SERVER_ERROR,
            "We encountered an internal error. Please try again.",
        );
    }
    let status = if status.is_client_error() || status.is_server_error() {
        status
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    if let Some((code, message)) = known(code) {
        return S3Error::new(code, status, message);
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND if code.is_empty() => {
            known(not_found).unwrap_or(("NoSuchKey", "The specified key does not exist."))
        }
        StatusCode::FORBIDDEN => ("AccessDenied", "Access Denied"),
        StatusCode::PRECONDITION_FAILED => (
            "PreconditionFailed",
            "At least one of the preconditions that you specified did not hold.",
        ),
        StatusCode::NOT_MODIFIED => ("NotModified", "Not Modified"),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            ("InvalidRange", "The requested range is not satisfiable")
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            ("ServiceUnavailable", "Service is unable to handle request.")
        }
        s if s.is_server_error() => (
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        _ => (
            "InvalidRequest",
            "The storage behind this gateway refused the request.",
        ),
    };
    if !code.is_empty() {
        tracing::debug!(
            status = status.as_u16(),
            "an upstream error without a known S3 code"
        );
    }
    S3Error::new(code, status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> (String, u16, String) {
        let e = from_upstream(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            "NoSuchKey",
        );
        (
            e.code().to_owned(),
            e.status().as_u16(),
            e.message().to_owned(),
        )
    }

    #[test]
    fn known_codes_keep_code_and_status_but_not_the_upstreams_words() {
        let (code, status, message) = err(
            404,
            "<Error><Code>NoSuchBucket</Code><Message>bucket acme-ml on s3.internal.example does not exist</Message><BucketName>acme-ml</BucketName></Error>",
        );
        assert_eq!((code.as_str(), status), ("NoSuchBucket", 404));
        assert!(
            !message.contains("acme") && !message.contains("internal.example"),
            "{message}"
        );
        assert_eq!(
            err(412, "<Error><Code>PreconditionFailed</Code></Error>").0,
            "PreconditionFailed"
        );
        assert_eq!(err(503, "<Error><Code>SlowDown</Code></Error>").1, 503);
    }

    #[test]
    fn the_gateways_own_credential_problems_are_not_the_clients() {
        for code in [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "ExpiredToken",
        ] {
            let (c, s, m) = err(403, &format!("<Error><Code>{code}</Code></Error>"));
            assert_eq!((c.as_str(), s), ("ServiceUnavailable", 503), "{code}");
            assert!(!m.contains(code));
        }
        assert_eq!(err(301, "<Error><Code>PermanentRedirect</Code><Endpoint>x.s3.eu-west-1.amazonaws.com</Endpoint></Error>").0, "InternalError");
    }

    #[test]
    fn bodiless_and_unknown_errors_map_by_status() {
        assert_eq!(err(404, "").0, "NoSuchKey");
        let e = from_upstream(StatusCode::NOT_FOUND, b"", "NoSuchBucket");
        assert_eq!(e.code(), "NoSuchBucket");
        assert_eq!(err(403, "").0, "AccessDenied");
        assert_eq!(
            err(500, "<Error><Code>WeirdInternal</Code></Error>").0,
            "InternalError"
        );
        assert_eq!(
            err(400, "<Error><Code>XMinioSpecial</Code></Error>"),
            (
                "InvalidRequest".into(),
                400,
                "The storage behind this gateway refused the request.".into()
            )
        );
        assert_eq!(err(416, "").0, "InvalidRange");
    }
}
