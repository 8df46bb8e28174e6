//! Parsing the SigV4 parts of a request (header or query form) into a [`SignedRequest`], not yet
//! verified.
//!
//! Parsing checks the shape only: algorithm, credential scope, signed headers, signature format,
//! date and payload marker. Time and signature are checked by [`crate::verify`].

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;

use crate::canonical::{
    format_amz_date, is_scope_date, parse_amz_date, CredentialScope, SigningSettings, ALGORITHM,
    EMPTY_SHA256, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
};
use crate::err::AuthError;

/// Where the signature was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// The `Authorization` header.
    Header,
    /// `X-Amz-*` query parameters (presigned URL).
    Query,
    /// The fields of a browser-form POST upload: the signature covers the POST policy
    /// ([`crate::parse_post`]).
    PostPolicy,
}

/// What the signature says about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadHash {
    /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature.
    Unsigned,
    /// The body's SHA-256.
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: an aws-chunked body with chained chunk
    /// signatures, and with `trailer`, signed trailers.
    StreamingSigned {
        /// Whether trailers (`-TRAILER`) follow the final chunk.
        trailer: bool,
    },
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: an aws-chunked body with a checksum trailer.
    StreamingUnsignedTrailer,
}

/// A request whose SigV4 parts are parsed but not verified.
#[derive(Clone)]
pub struct SignedRequest {
    pub(crate) kind: AuthKind,
    pub(crate) access_key_id: String,
    pub(crate) scope: CredentialScope,
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: [u8; 32],
    pub(crate) amz_date: String,
    pub(crate) signed_at: DateTime<Utc>,
    pub(crate) expires: Option<u64>,
    pub(crate) session_token: Option<String>,
    pub(crate) payload: PayloadHash,
    /// The last line of the canonical request.
    pub(crate) payload_line: String,
    /// Non-S3 request without `x-amz-content-sha256`: the payload hash is that of the body.
    pub(crate) payload_from_body: bool,
    pub(crate) settings: SigningSettings,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("kind", &self.kind)
            .field("access_key_id", &self.access_key_id)
            .field("scope", &self.scope)
            .field("signed_headers", &self.signed_headers)
            .field("signed_at", &self.signed_at)
            .field("expires", &self.expires)
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl SignedRequest {
    /// The access key id of the credential.
    #[must_use]
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The credential scope.
    #[must_use]
    pub fn scope(&self) -> &CredentialScope {
        &self.scope
    }

    /// Header or query form.
    #[must_use]
    pub fn kind(&self) -> AuthKind {
        self.kind
    }

    /// `x-amz-security-token` (header, or `X-Amz-Security-Token` in the query form).
    #[must_use]
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    /// What the signature says about the body.
    #[must_use]
    pub fn payload(&self) -> &PayloadHash {
        &self.payload
    }

    /// The request time (`x-amz-date`, `Date` or `X-Amz-Date`).
    #[must_use]
    pub fn signed_at(&self) -> DateTime<Utc> {
        self.signed_at
    }

    /// The signed header names, lowercase, as listed by the client.
    #[must_use]
    pub fn signed_headers(&self) -> &[String] {
        &self.signed_headers
    }

    /// `X-Amz-Expires` of the query form.
    #[must_use]
    pub fn expires_secs(&self) -> Option<u64> {
        self.expires
    }

    /// The canonical-URI rules used to verify this request (by default those of the scope's
    /// service, [`SigningSettings::for_service`]).
    #[must_use]
    pub fn signing_settings(&self) -> SigningSettings {
        self.settings
    }

    /// Verify with other canonical-URI rules than the service's (for clients or test suites
    /// that sign with non-default rules).
    #[must_use]
    pub fn with_signing_settings(mut self, settings: SigningSettings) -> Self {
        self.settings = settings;
        self
    }

    /// True for a non-S3 request without `x-amz-content-sha256`: its canonical request holds
    /// the SHA-256 of the body, which the caller must compute and pass to
    /// [`crate::verify_with_payload`]. [`crate::verify`] assumes an empty body, which the
    /// [`crate::PayloadVerifier`] then enforces.
    #[must_use]
    pub fn body_hash_required(&self) -> bool {
        self.payload_from_body
    }
}

/// Longest algorithm name echoed back in an error.
const MAX_ECHO: usize = 64;

fn echo(value: &str) -> String {
    value.chars().take(MAX_ECHO).collect()
}

/// Parses the SigV4 parts of a request. `Ok(None)` means the request carries no signature at
/// all (anonymous).
///
/// # Errors
///
/// A malformed `Authorization` header or query, an algorithm other than `AWS4-HMAC-SHA256`,
/// both forms at once, a missing or invalid date, a missing (S3) or invalid
/// `x-amz-content-sha256`.
pub fn parse(
    _method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> Result<Option<SignedRequest>, AuthError> {
    let query = QueryAuth::collect(uri.query())?;
    if headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(AuthError::HeaderMalformed(
            "the Authorization header is repeated".to_owned(),
        ));
    }
    match headers.get(http::header::AUTHORIZATION) {
        Some(value) => {
            if query.is_present() {
                return Err(AuthError::MultipleMechanisms);
            }
            let value = value.to_str().map_err(|_| {
                AuthError::HeaderMalformed("the header is not visible ASCII".to_owned())
            })?;
            parse_header(value, headers).map(Some)
        }
        None if query.is_present() => parse_query(query, headers).map(Some),
        None if query.sigv2 => Err(AuthError::UnsupportedAlgorithm("AWS".to_owned())),
        None => Ok(None),
    }
}

fn parse_header(value: &str, headers: &http::HeaderMap) -> Result<SignedRequest, AuthError> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(echo(algorithm)));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, value)) = part.split_once('=') else {
            return Err(AuthError::HeaderMalformed(format!(
                "the component `{}` is not of the form name=value",
                echo(part)
            )));
        };
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(AuthError::HeaderMalformed(format!(
                    "unknown component `{}`",
                    echo(other)
                )))
            }
        };
        if slot.replace(value.trim()).is_some() {
            return Err(AuthError::HeaderMalformed(format!(
                "duplicate component `{}`",
                name.trim()
            )));
        }
    }
    let credential =
        credential.ok_or_else(|| AuthError::HeaderMalformed("missing Credential".to_owned()))?;
    let signed_headers = signed_headers
        .ok_or_else(|| AuthError::HeaderMalformed("missing SignedHeaders".to_owned()))?;
    let signature =
        signature.ok_or_else(|| AuthError::HeaderMalformed("missing Signature".to_owned()))?;

    let (access_key_id, scope) =
        parse_credential(credential).map_err(AuthError::HeaderMalformed)?;
    let signed_headers =
        parse_signed_headers(signed_headers).map_err(AuthError::HeaderMalformed)?;
    let signature = parse_signature(signature).map_err(AuthError::HeaderMalformed)?;

    let (amz_date, signed_at) = header_date(headers)?;
    check_scope_date(&scope, &amz_date).map_err(AuthError::HeaderMalformed)?;

    let settings = SigningSettings::for_service(&scope.service);
    let declared = header_str(headers, "x-amz-content-sha256")?;
    let (payload, payload_line, payload_from_body) = match declared {
        Some(line) => (parse_payload(line)?, line.to_owned(), false),
        None if scope.service == "s3" => return Err(AuthError::MissingContentSha256),
        None => (empty_sha256(), EMPTY_SHA256.to_owned(), true),
    };
    Ok(SignedRequest {
        kind: AuthKind::Header,
        access_key_id,
        scope,
        signed_headers,
        signature,
        amz_date,
        signed_at,
        expires: None,
        session_token: header_str(headers, "x-amz-security-token")?.map(str::to_owned),
        payload,
        payload_line,
        payload_from_body,
        settings,
    })
}

/// The `X-Amz-*` parameters of a query, decoded (borrowed from the query when nothing needed
/// decoding).
#[derive(Default)]
struct QueryAuth<'q> {
    algorithm: Option<Cow<'q, str>>,
    credential: Option<Cow<'q, str>>,
    date: Option<Cow<'q, str>>,
    expires: Option<Cow<'q, str>>,
    signed_headers: Option<Cow<'q, str>>,
    signature: Option<Cow<'q, str>>,
    security_token: Option<Cow<'q, str>>,
    content_sha256: Option<Cow<'q, str>>,
    /// `AWSAccessKeyId` and `Signature`: a SigV2 presigned URL.
    sigv2: bool,
}

impl<'q> QueryAuth<'q> {
    fn collect(query: Option<&'q str>) -> Result<Self, AuthError> {
        let mut auth = Self::default();
        let Some(query) = query else {
            return Ok(auth);
        };
        let mut sigv2_key = false;
        let mut sigv2_signature = false;
        for piece in query.split('&') {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            // Most names and values have no escape: borrowed as they are, without a decoding pass.
            let name = if name.contains('%') {
                percent_decode_str(name).decode_utf8_lossy()
            } else {
                Cow::Borrowed(name)
            };
            let slot = match name.as_ref() {
                "X-Amz-Algorithm" => &mut auth.algorithm,
                "X-Amz-Credential" => &mut auth.credential,
                "X-Amz-Date" => &mut auth.date,
                "X-Amz-Expires" => &mut auth.expires,
                "X-Amz-SignedHeaders" => &mut auth.signed_headers,
                "X-Amz-Signature" => &mut auth.signature,
                "X-Amz-Security-Token" => &mut auth.security_token,
                "X-Amz-Content-Sha256" => &mut auth.content_sha256,
                "AWSAccessKeyId" => {
                    sigv2_key = true;
                    continue;
                }
                "Signature" => {
                    sigv2_signature = true;
                    continue;
                }
                _ => continue,
            };
            let value = if value.contains('%') {
                percent_decode_str(value).decode_utf8().map_err(|_| {
                    AuthError::QueryMalformed(format!("`{name}` is not valid UTF-8"))
                })?
            } else {
                Cow::Borrowed(value)
            };
            if slot.replace(value).is_some() {
                return Err(AuthError::QueryMalformed(format!(
                    "duplicate parameter `{name}`"
                )));
            }
        }
        auth.sigv2 = sigv2_key && sigv2_signature;
        Ok(auth)
    }

    fn is_present(&self) -> bool {
        self.algorithm.is_some() || self.credential.is_some() || self.signature.is_some()
    }
}

fn parse_query(
    query: QueryAuth<'_>,
    headers: &http::HeaderMap,
) -> Result<SignedRequest, AuthError> {
    let missing = |name: &str| {
        AuthError::QueryMalformed(format!(
            "query-string authentication requires the {name} parameter"
        ))
    };
    let algorithm = query.algorithm.ok_or_else(|| missing("X-Amz-Algorithm"))?;
    if algorithm != ALGORITHM {
        return Err(AuthError::QueryMalformed(format!(
            "X-Amz-Algorithm only supports \"{ALGORITHM}\", not `{}`",
            echo(&algorithm)
        )));
    }
    let credential = query
        .credential
        .ok_or_else(|| missing("X-Amz-Credential"))?;
    let date = query.date.ok_or_else(|| missing("X-Amz-Date"))?;
    let expires = query.expires.ok_or_else(|| missing("X-Amz-Expires"))?;
    let signed_headers = query
        .signed_headers
        .ok_or_else(|| missing("X-Amz-SignedHeaders"))?;
    let signature = query.signature.ok_or_else(|| missing("X-Amz-Signature"))?;

    let date = date.into_owned();
    let (access_key_id, scope) =
        parse_credential(&credential).map_err(AuthError::QueryMalformed)?;
    let signed_headers =
        parse_signed_headers(&signed_headers).map_err(AuthError::QueryMalformed)?;
    let signature = parse_signature(&signature).map_err(AuthError::QueryMalformed)?;
    let signed_at = parse_amz_date(&date).ok_or_else(|| {
        AuthError::QueryMalformed(format!(
            "X-Amz-Date must be in the ISO8601 long format, not `{}`",
            echo(&date)
        ))
    })?;
    check_scope_date(&scope, &date).map_err(AuthError::QueryMalformed)?;
    // A negative lifetime is a URL that expired before it was made: S3 answers it 403 "Request
    // has expired" like any expired URL, not 400 (issue 12; ceph/s3-tests
    // `test_object_raw_get_x_amz_expires_out_positive_range`, which AWS passes).
    if expires
        .strip_prefix('-')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(AuthError::Expired);
    }
    if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::QueryMalformed(
            "X-Amz-Expires should be a number".to_owned(),
        ));
    }
    // Too many digits for u64 is certainly more than the 7-day cap.
    let expires = expires.parse::<u64>().unwrap_or(u64::MAX);

    let settings = SigningSettings::for_service(&scope.service);
    let declared = match query.content_sha256 {
        Some(value) => Some(value.into_owned()),
        None => header_str(headers, "x-amz-content-sha256")?.map(str::to_owned),
    };
    let (payload, payload_line, payload_from_body) = match declared {
        Some(line) => {
            let payload = parse_payload(&line)?;
            if matches!(
                payload,
                PayloadHash::StreamingSigned { .. } | PayloadHash::StreamingUnsignedTrailer
            ) {
                return Err(AuthError::UnsupportedPayload(line));
            }
            (payload, line, false)
        }
        None if scope.service == "s3" => {
            (PayloadHash::Unsigned, UNSIGNED_PAYLOAD.to_owned(), false)
        }
        None => (empty_sha256(), EMPTY_SHA256.to_owned(), true),
    };
    let session_token = match query.security_token {
        Some(token) => Some(token.into_owned()),
        None => header_str(headers, "x-amz-security-token")?.map(str::to_owned),
    };
    Ok(SignedRequest {
        kind: AuthKind::Query,
        access_key_id,
        scope,
        signed_headers,
        signature,
        amz_date: date,
        signed_at,
        expires: Some(expires),
        session_token,
        payload,
        payload_line,
        payload_from_body,
        settings,
    })
}

const CREDENTIAL_SHAPE: &str =
    "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"";

/// `AKID/YYYYMMDD/region/service/aws4_request`.
pub(crate) fn parse_credential(value: &str) -> Result<(String, CredentialScope), String> {
    let mut parts = value.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(CREDENTIAL_SHAPE.to_owned());
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    // The global services IAM and STS are also signed with an empty region (botocore does so
    // when `region_name=''`; Ceph RGW accepts it too): the region is then the empty string in
    // the scope and in the signing key.
    let region_ok = token(region) || (region.is_empty() && matches!(service, "iam" | "sts"));
    if !token(akid) || !region_ok || !token(service) {
        return Err(CREDENTIAL_SHAPE.to_owned());
    }
    if !is_scope_date(date) {
        return Err(format!(
            "invalid credential date `{}`; expecting YYYYMMDD",
            echo(date)
        ));
    }
    if terminator != "aws4_request" {
        return Err(format!(
            "incorrect terminal `{}`; this endpoint uses \"aws4_request\"",
            echo(terminator)
        ));
    }
    Ok((
        akid.to_owned(),
        CredentialScope {
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        },
    ))
}

/// `host;range;x-amz-date`: lowercase header names, `host` among them.
fn parse_signed_headers(value: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for name in value.split(';') {
        let valid = !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'_' | b'.' | b'!' | b'#' | b'$' | b'%' | b'&')
                    || matches!(b, b'\'' | b'*' | b'+' | b'^' | b'`' | b'|' | b'~')
            });
        if !valid {
            return Err(format!(
                "SignedHeaders must be lowercase header names separated by `;`, not `{}`",
                echo(value)
            ));
        }
        names.push(name.to_owned());
    }
    if !names.iter().any(|name| name == "host") {
        return Err("SignedHeaders must include `host`".to_owned());
    }
    Ok(names)
}

/// 64 hex digits.
pub(crate) fn parse_signature(value: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    if value.len() != 64 || hex::decode_to_slice(value, &mut out).is_err() {
        return Err("the Signature must be 64 hexadecimal digits".to_owned());
    }
    Ok(out)
}

fn check_scope_date(scope: &CredentialScope, amz_date: &str) -> Result<(), String> {
    if amz_date.get(..8) == Some(scope.date.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "invalid credential date `{}`; it is not the same as X-Amz-Date `{}`",
            scope.date,
            amz_date.get(..8).unwrap_or(amz_date)
        ))
    }
}

/// `x-amz-date`, else `Date` (RFC 1123), as the string to sign uses it and as a time.
fn header_date(headers: &http::HeaderMap) -> Result<(String, DateTime<Utc>), AuthError> {
    if let Some(value) = header_str(headers, "x-amz-date")? {
        let time = parse_amz_date(value).ok_or(AuthError::MissingDate)?;
        return Ok((value.to_owned(), time));
    }
    let value = header_str(headers, "date")?.ok_or(AuthError::MissingDate)?;
    let time = DateTime::parse_from_rfc2822(value)
        .map_err(|_| AuthError::MissingDate)?
        .with_timezone(&Utc);
    Ok((format_amz_date(time), time))
}

/// A header as text; `None` when absent. Several values or non-ASCII are malformed.
fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::HeaderMalformed(format!(
            "the `{name}` header is repeated"
        )));
    }
    value
        .to_str()
        .map(|value| Some(value.trim()))
        .map_err(|_| AuthError::HeaderMalformed(format!("the `{name}` header is not ASCII")))
}

fn empty_sha256() -> PayloadHash {
    let mut out = [0u8; 32];
    // INVARIANT: EMPTY_SHA256 is 64 hex digits.
    let _ = hex::decode_to_slice(EMPTY_SHA256, &mut out);
    PayloadHash::Sha256(out)
}

/// Parses a `x-amz-content-sha256` value.
pub(crate) fn parse_payload(value: &str) -> Result<PayloadHash, AuthError> {
    match value {
        UNSIGNED_PAYLOAD => Ok(PayloadHash::Unsigned),
        STREAMING_PAYLOAD => Ok(PayloadHash::StreamingSigned { trailer: false }),
        STREAMING_PAYLOAD_TRAILER => Ok(PayloadHash::StreamingSigned { trailer: true }),
        STREAMING_UNSIGNED_TRAILER => Ok(PayloadHash::StreamingUnsignedTrailer),
        other if other.starts_with("STREAMING-") => Err(AuthError::UnsupportedPayload(echo(other))),
        other => {
            let mut out = [0u8; 32];
            if other.len() == 64 && hex::decode_to_slice(other, &mut out).is_ok() {
                Ok(PayloadHash::Sha256(out))
            } else {
                Err(AuthError::InvalidContentSha256(echo(other)))
            }
        }
    }
}
