//! Verifying a parsed request: clock skew or presign expiry, then the signature recomputed and
//! compared in constant time. The result, [`VerifiedRequest`], is the only proof of
//! authentication the rest of keyhole accepts.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::canonical::{
    canonical_request, hmac_sha256, signing_key, string_to_sign, CredentialScope,
};
use crate::chunked::{ChecksumKind, ChunkDecoder};
use crate::err::AuthError;
use crate::parse::{AuthKind, PayloadHash, SignedRequest};
use crate::secret::{SecretKey, SigningKey};

/// Largest allowed difference between `x-amz-date` and the server clock (header form), and
/// how far in the future a presigned `X-Amz-Date` may be.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// Longest lifetime of a presigned URL: 7 days.
pub const MAX_PRESIGN_EXPIRES_SECS: u64 = 7 * 24 * 60 * 60;

/// A request whose signature has been verified.
#[derive(Clone)]
pub struct VerifiedRequest {
    request: SignedRequest,
    /// Present for signed streaming payloads, to verify chunk signatures.
    chunk_key: Option<SigningKey>,
    trailer: Option<ChecksumKind>,
    decoded_length: Option<u64>,
}

impl fmt::Debug for VerifiedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedRequest")
            .field("request", &self.request)
            .field("trailer", &self.trailer)
            .field("decoded_length", &self.decoded_length)
            .finish_non_exhaustive()
    }
}

impl VerifiedRequest {
    /// The access key id of the credential.
    #[must_use]
    pub fn access_key_id(&self) -> &str {
        self.request.access_key_id()
    }

    /// The credential scope.
    #[must_use]
    pub fn scope(&self) -> &CredentialScope {
        self.request.scope()
    }

    /// Header or query form.
    #[must_use]
    pub fn kind(&self) -> AuthKind {
        self.request.kind()
    }

    /// The session token sent with the request, if any.
    #[must_use]
    pub fn session_token(&self) -> Option<&str> {
        self.request.session_token()
    }

    /// What the signature says about the body.
    #[must_use]
    pub fn payload(&self) -> &PayloadHash {
        self.request.payload()
    }

    /// The request time.
    #[must_use]
    pub fn signed_at(&self) -> DateTime<Utc> {
        self.request.signed_at()
    }

    /// The signed header names, lowercase.
    #[must_use]
    pub fn signed_headers(&self) -> &[String] {
        self.request.signed_headers()
    }

    /// For [`PayloadHash::Sha256`]: a verifier to feed with the body; it fails at
    /// [`PayloadVerifier::finish`] with `XAmzContentSHA256Mismatch` if the body differs.
    /// `None` otherwise.
    #[must_use]
    pub fn payload_verifier(&self) -> Option<PayloadVerifier> {
        match self.request.payload {
            PayloadHash::Sha256(expected) => Some(PayloadVerifier {
                hasher: Sha256::new(),
                expected,
            }),
            _ => None,
        }
    }

    /// For streaming payloads: the decoder of the aws-chunked body, verifying each chunk
    /// signature (chained from the seed signature) and the trailer. `None` otherwise.
    #[must_use]
    pub fn chunk_decoder(&self) -> Option<ChunkDecoder> {
        match self.request.payload {
            PayloadHash::StreamingSigned { trailer } => {
                let key = self.chunk_key.clone()?;
                Some(ChunkDecoder::signed(
                    key,
                    self.request.signature,
                    self.request.amz_date.clone(),
                    self.request.scope.to_string(),
                    trailer.then_some(self.trailer).flatten(),
                    trailer,
                    self.decoded_length,
                ))
            }
            PayloadHash::StreamingUnsignedTrailer => {
                Some(ChunkDecoder::unsigned(self.trailer, self.decoded_length))
            }
            PayloadHash::Unsigned | PayloadHash::Sha256(_) => None,
        }
    }
}

/// Checks a body against the SHA-256 its signature declared.
#[derive(Clone)]
pub struct PayloadVerifier {
    hasher: Sha256,
    expected: [u8; 32],
}

impl fmt::Debug for PayloadVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadVerifier").finish_non_exhaustive()
    }
}

impl PayloadVerifier {
    /// Feeds the next part of the body.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Checks the whole body.
    ///
    /// # Errors
    ///
    /// [`AuthError::ContentSha256Mismatch`] when the body's SHA-256 differs.
    pub fn finish(self) -> Result<(), AuthError> {
        let actual: [u8; 32] = self.hasher.finalize().into();
        if bool::from(actual.ct_eq(&self.expected)) {
            Ok(())
        } else {
            Err(AuthError::ContentSha256Mismatch)
        }
    }
}

/// Verifies a parsed request at time `now` with the secret of its access key.
///
/// Header form: `|now - x-amz-date|` must be at most 15 minutes. Query form: `X-Amz-Expires`
/// must be within `1..=604800` and not past, and `X-Amz-Date` not more than 15 minutes ahead.
/// The canonical request uses the declared `x-amz-content-sha256` (or `UNSIGNED-PAYLOAD` for
/// presigned S3 requests; for other services without the header, the hash of an empty body,
/// see [`SignedRequest::body_hash_required`] and [`verify_with_payload`]).
///
/// # Errors
///
/// `RequestTimeTooSkewed`, `AccessDenied` (expired, not yet valid, unsigned `x-amz-*` headers
/// in an S3 request), `AuthorizationQueryParametersError`, `SignatureDoesNotMatch`,
/// or `InvalidRequest` for an unsupported trailer.
pub fn verify(
    req: SignedRequest,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    secret: &SecretKey,
    now: DateTime<Utc>,
) -> Result<VerifiedRequest, AuthError> {
    verify_inner(req, method, uri, headers, secret, now)
}

/// Like [`verify`], with the SHA-256 (hex) of the body computed by the caller. A request
/// without `x-amz-content-sha256` (non-S3 services) is verified against this hash; a request
/// declaring a SHA-256 must declare this one.
///
/// # Errors
///
/// Those of [`verify`], and `XAmzContentSHA256Mismatch` when the declared hash differs from
/// `payload_sha256_hex`, `InvalidArgument` when it is not 64 hex digits.
pub fn verify_with_payload(
    mut req: SignedRequest,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    payload_sha256_hex: &str,
    secret: &SecretKey,
    now: DateTime<Utc>,
) -> Result<VerifiedRequest, AuthError> {
    let given = crate::parse::parse_payload(payload_sha256_hex)?;
    let PayloadHash::Sha256(given_bytes) = given else {
        return Err(AuthError::InvalidContentSha256(
            payload_sha256_hex.to_owned(),
        ));
    };
    // Only S3 lets a request declare its payload (`UNSIGNED-PAYLOAD`, streaming): every other
    // service signs the hash of the body it sends, whatever `x-amz-content-sha256` says, so a
    // signed IAM, STS or keyhole request cannot be replayed with another body
    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html: the last line
    // of the canonical request is the payload's hash;
    // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html: the
    // unsigned payload option is Amazon S3's).
    if req.kind != AuthKind::PostPolicy && (req.payload_from_body || req.scope.service != "s3") {
        req.payload_line = payload_sha256_hex.to_ascii_lowercase();
        req.payload = PayloadHash::Sha256(given_bytes);
    }
    let declared = req.payload.clone();
    let verified = verify_inner(req, method, uri, headers, secret, now)?;
    if let PayloadHash::Sha256(declared) = declared {
        if !bool::from(declared.ct_eq(&given_bytes)) {
            return Err(AuthError::ContentSha256Mismatch);
        }
    }
    Ok(verified)
}

fn verify_inner(
    req: SignedRequest,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    secret: &SecretKey,
    now: DateTime<Utc>,
) -> Result<VerifiedRequest, AuthError> {
    if req.kind == AuthKind::PostPolicy {
        // The string to sign is the base64 POST policy itself; its `expiration` (checked by the
        // caller once the signature holds) bounds the form's life instead of a clock skew.
        let key = signing_key(secret, &req.scope);
        let computed = hmac_sha256(&key.0, req.payload_line.as_bytes());
        if !bool::from(computed.ct_eq(&req.signature)) {
            return Err(AuthError::SignatureDoesNotMatch);
        }
        check_time(&req, now)?;
        return Ok(VerifiedRequest {
            request: req,
            chunk_key: None,
            trailer: None,
            decoded_length: None,
        });
    }
    check_time(&req, now)?;
    if req.scope.service == "s3" {
        check_signed_amz_headers(&req, headers)?;
    }
    let streaming = matches!(
        req.payload,
        PayloadHash::StreamingSigned { .. } | PayloadHash::StreamingUnsignedTrailer
    );
    let trailer = if streaming {
        trailer_kind(headers)?
    } else {
        None
    };
    let decoded_length = if streaming {
        decoded_length(headers)?
    } else {
        None
    };

    let canonical = canonical_request(
        method,
        uri,
        headers,
        &req.signed_headers,
        &req.payload_line,
        req.settings,
        req.kind == AuthKind::Query,
    );
    let to_sign = string_to_sign(&req.amz_date, &req.scope, &canonical);
    let key = signing_key(secret, &req.scope);
    let computed = hmac_sha256(&key.0, to_sign.as_bytes());
    if !bool::from(computed.ct_eq(&req.signature)) {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    let chunk_key = matches!(req.payload, PayloadHash::StreamingSigned { .. }).then_some(key);
    Ok(VerifiedRequest {
        request: req,
        chunk_key,
        trailer,
        decoded_length,
    })
}

fn check_time(req: &SignedRequest, now: DateTime<Utc>) -> Result<(), AuthError> {
    let skew = Duration::seconds(MAX_CLOCK_SKEW_SECS);
    match req.kind {
        AuthKind::Header => {
            let delta = now.signed_duration_since(req.signed_at);
            if delta > skew || delta < -skew {
                return Err(AuthError::RequestTimeTooSkewed);
            }
        }
        // A POST form's policy `expiration` bounds its life (checked by the caller), within what
        // its signature may live: a SigV4 signing key is valid for up to seven days, "so
        // signatures are also valid for up to 7 days"
        // (https://docs.aws.amazon.com/AmazonS3/latest/API/bucket-policy-s3-sigv4-conditions.html),
        // and a form dated in the future (beyond the clock skew) is not valid yet, so
        // `s3:signatureAge` is never negative (review 11).
        AuthKind::PostPolicy => {
            match now.checked_add_signed(skew) {
                Some(latest) if req.signed_at <= latest => {}
                _ => return Err(AuthError::NotYetValid),
            }
            let week = Duration::seconds(i64::try_from(MAX_PRESIGN_EXPIRES_SECS).unwrap_or(0));
            match req.signed_at.checked_add_signed(week) {
                Some(end) if now <= end => {}
                _ => return Err(AuthError::Expired),
            }
        }
        AuthKind::Query => {
            let expires = req.expires.unwrap_or(0);
            if expires == 0 {
                return Err(AuthError::QueryMalformed(
                    "X-Amz-Expires must be at least 1 second".to_owned(),
                ));
            }
            if expires > MAX_PRESIGN_EXPIRES_SECS {
                return Err(AuthError::QueryMalformed(
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800".to_owned(),
                ));
            }
            // INVARIANT: expires <= 604800, so the conversion and the additions cannot fail
            // for dates of years 0..=9999; a failure is treated as the stricter outcome.
            let lifetime = Duration::seconds(i64::try_from(expires).unwrap_or(i64::MAX));
            match now.checked_add_signed(skew) {
                Some(latest) if req.signed_at <= latest => {}
                _ => return Err(AuthError::NotYetValid),
            }
            match req.signed_at.checked_add_signed(lifetime) {
                Some(end) if now <= end => {}
                _ => return Err(AuthError::Expired),
            }
        }
    }
    Ok(())
}

/// An S3 request, presigned or header-signed, must sign every `x-amz-*` header it carries (AWS
/// answers "There were headers present in the request which were not signed"); otherwise a
/// captured request could be replayed with an added `x-amz-copy-source` or `x-amz-tagging`.
fn check_signed_amz_headers(
    req: &SignedRequest,
    headers: &http::HeaderMap,
) -> Result<(), AuthError> {
    let mut unsigned: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-"))
        // Its value is the payload line of the canonical request, so it is covered anyway;
        // `x-amz-user-agent` is informational and some SDKs never sign it.
        .filter(|name| *name != "x-amz-content-sha256" && *name != "x-amz-user-agent")
        .filter(|name| !req.signed_headers.iter().any(|signed| signed == name))
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    Err(AuthError::HeadersNotSigned(unsigned.join(", ")))
}

/// The checksum announced in `x-amz-trailer`.
fn trailer_kind(headers: &http::HeaderMap) -> Result<Option<ChecksumKind>, AuthError> {
    let Some(value) = headers.get("x-amz-trailer") else {
        return Ok(None);
    };
    let name = value
        .to_str()
        .map_err(|_| AuthError::UnsupportedTrailer("non-ASCII".to_owned()))?
        .trim()
        .to_ascii_lowercase();
    ChecksumKind::from_header_name(&name)
        .map(Some)
        .ok_or_else(|| AuthError::UnsupportedTrailer(name.chars().take(64).collect()))
}

fn decoded_length(headers: &http::HeaderMap) -> Result<Option<u64>, AuthError> {
    let Some(value) = headers.get("x-amz-decoded-content-length") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            AuthError::ChunkMalformed("x-amz-decoded-content-length is not a number".to_owned())
        })
}
