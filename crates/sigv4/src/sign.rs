//! Signing requests: the `Authorization` header, presigned URLs and aws-chunked bodies. Used by
//! tests, the CLI and the upstream backend.

use chrono::{DateTime, Utc};
use http::header::{HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::canonical::{
    canonical_request, format_amz_date, hmac_sha256, signing_key, string_to_sign, CredentialScope,
    SigningSettings, ALGORITHM, EMPTY_SHA256, UNSIGNED_PAYLOAD,
};
use crate::chunked::{chunk_string_to_sign, trailer_string_to_sign};
use crate::err::AuthError;
use crate::secret::{Credentials, SigningKey};
use crate::verify::MAX_PRESIGN_EXPIRES_SECS;

/// What a signature is made with.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// The access key pair (and session token) to sign with.
    pub credentials: &'a Credentials,
    /// The region of the credential scope.
    pub region: &'a str,
    /// The service of the credential scope (`s3`, `sts`, `iam`, `keyhole`).
    pub service: &'a str,
    /// The signing time.
    pub time: DateTime<Utc>,
}

impl SigningParams<'_> {
    fn scope(&self) -> CredentialScope {
        CredentialScope {
            date: self.time.format("%Y%m%d").to_string(),
            region: self.region.to_owned(),
            service: self.service.to_owned(),
        }
    }
}

/// Headers that are never signed: they are hop-by-hop or rewritten by proxies and clients.
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// Query-string encoding: everything but the RFC 3986 unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn header_value(value: &str) -> Result<HeaderValue, AuthError> {
    HeaderValue::from_str(value)
        .map_err(|_| AuthError::Signing("a header value is not visible ASCII".to_owned()))
}

/// Sorted, deduplicated lowercase names of the headers to sign (with `host`).
fn names_to_sign(headers: &http::HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|name| !UNSIGNED_HEADERS.contains(name))
        .map(str::to_owned)
        .collect();
    if !names.iter().any(|name| name == "host") {
        names.push("host".to_owned());
    }
    names.sort_unstable();
    names.dedup();
    names
}

/// Adds the `Host` header from the URI authority if missing.
fn ensure_host(uri: &http::Uri, headers: &mut http::HeaderMap) -> Result<(), AuthError> {
    if headers.contains_key(http::header::HOST) {
        return Ok(());
    }
    let authority = uri.authority().ok_or_else(|| {
        AuthError::Signing("no `host` header and no authority in the URI".to_owned())
    })?;
    headers.insert(http::header::HOST, header_value(authority.as_str())?);
    Ok(())
}

/// Signs a request in the `Authorization` header with the rules of `params.service`.
///
/// Adds `x-amz-date`, `x-amz-content-sha256` (= `payload_hash`), `x-amz-security-token` (with
/// a session token) and `authorization`; `host` is taken from the URI authority when missing.
/// Every header present is signed except hop-by-hop ones and `user-agent`.
///
/// # Errors
///
/// [`AuthError::Signing`] when there is no host or a value is not a valid header value.
pub fn sign_headers(
    method: &http::Method,
    uri: &http::Uri,
    headers: &mut http::HeaderMap,
    payload_hash: &str,
    params: &SigningParams<'_>,
) -> Result<(), AuthError> {
    sign_headers_with(
        method,
        uri,
        headers,
        payload_hash,
        params,
        SigningSettings::for_service(params.service),
    )
}

/// [`sign_headers`] with explicit canonical-URI rules.
///
/// # Errors
///
/// As [`sign_headers`].
pub fn sign_headers_with(
    method: &http::Method,
    uri: &http::Uri,
    headers: &mut http::HeaderMap,
    payload_hash: &str,
    params: &SigningParams<'_>,
    settings: SigningSettings,
) -> Result<(), AuthError> {
    headers.remove(http::header::AUTHORIZATION);
    ensure_host(uri, headers)?;
    let amz_date = format_amz_date(params.time);
    headers.insert("x-amz-date", header_value(&amz_date)?);
    headers.insert("x-amz-content-sha256", header_value(payload_hash)?);
    if let Some(token) = &params.credentials.session_token {
        headers.insert("x-amz-security-token", header_value(token)?);
    }
    let scope = params.scope();
    let names = names_to_sign(headers);
    let canonical = canonical_request(method, uri, headers, &names, payload_hash, settings, false);
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = signing_key(&params.credentials.secret_key, &scope);
    let signature = hex::encode(hmac_sha256(&key.0, to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        params.credentials.access_key_id,
        names.join(";")
    );
    headers.insert(http::header::AUTHORIZATION, header_value(&authorization)?);
    Ok(())
}

/// A presigned URL: `uri` with the `X-Amz-*` query parameters, valid for `expires_secs`.
///
/// Signs `host` and the headers in `headers` (which the request must then carry). The payload
/// is `UNSIGNED-PAYLOAD` for S3 and the hash of an empty body for other services.
///
/// # Errors
///
/// [`AuthError::QueryMalformed`] when `expires_secs` is not within `1..=604800`;
/// [`AuthError::Signing`] when the URI has no authority and `headers` no host.
pub fn presign(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    expires_secs: u64,
    params: &SigningParams<'_>,
) -> Result<http::Uri, AuthError> {
    presign_with(
        method,
        uri,
        headers,
        expires_secs,
        params,
        SigningSettings::for_service(params.service),
    )
}

/// [`presign`] with explicit canonical-URI rules.
///
/// # Errors
///
/// As [`presign`].
pub fn presign_with(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    expires_secs: u64,
    params: &SigningParams<'_>,
    settings: SigningSettings,
) -> Result<http::Uri, AuthError> {
    if expires_secs == 0 || expires_secs > MAX_PRESIGN_EXPIRES_SECS {
        return Err(AuthError::QueryMalformed(
            "X-Amz-Expires must be between 1 and 604800 seconds".to_owned(),
        ));
    }
    let mut headers = headers.clone();
    ensure_host(uri, &mut headers)?;
    let names = names_to_sign(&headers);
    let scope = params.scope();
    let amz_date = format_amz_date(params.time);
    let credential = format!("{}/{scope}", params.credentials.access_key_id);
    let mut query = uri.query().unwrap_or_default().to_owned();
    let mut add = |name: &str, value: &str| {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        query.extend(utf8_percent_encode(value, QUERY));
    };
    add("X-Amz-Algorithm", ALGORITHM);
    add("X-Amz-Credential", &credential);
    add("X-Amz-Date", &amz_date);
    add("X-Amz-Expires", &expires_secs.to_string());
    add("X-Amz-SignedHeaders", &names.join(";"));
    if let Some(token) = &params.credentials.session_token {
        add("X-Amz-Security-Token", token);
    }
    let unsigned_uri = with_query(uri, &query)?;
    let payload = if params.service == "s3" {
        UNSIGNED_PAYLOAD
    } else {
        EMPTY_SHA256
    };
    let canonical = canonical_request(
        method,
        &unsigned_uri,
        &headers,
        &names,
        payload,
        settings,
        true,
    );
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = signing_key(&params.credentials.secret_key, &scope);
    let signature = hex::encode(hmac_sha256(&key.0, to_sign.as_bytes()));
    query.push_str("&X-Amz-Signature=");
    query.push_str(&signature);
    with_query(uri, &query)
}

/// `uri` with its query replaced.
fn with_query(uri: &http::Uri, query: &str) -> Result<http::Uri, AuthError> {
    let mut parts = uri.clone().into_parts();
    let path_and_query = format!("{}?{query}", uri.path());
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| AuthError::Signing("the signed URI is invalid".to_owned()))?,
    );
    http::Uri::from_parts(parts)
        .map_err(|_| AuthError::Signing("the signed URI is invalid".to_owned()))
}

/// Encodes an aws-chunked body signed with `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`,
/// chaining each chunk signature from the seed signature of the `Authorization` header.
pub struct ChunkSigner {
    key: SigningKey,
    previous: [u8; 32],
    amz_date: String,
    scope: String,
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ChunkSigner {
    /// Starts the chain at `seed_signature` (hex). An invalid seed starts from zeros, which
    /// yields signatures that will not verify.
    #[must_use]
    pub fn new(seed_signature: &str, params: &SigningParams<'_>) -> ChunkSigner {
        let scope = params.scope();
        let mut previous = [0u8; 32];
        if hex::decode_to_slice(seed_signature, &mut previous).is_err() {
            previous = [0u8; 32];
        }
        ChunkSigner {
            key: signing_key(&params.credentials.secret_key, &scope),
            previous,
            amz_date: format_amz_date(params.time),
            scope: scope.to_string(),
        }
    }

    fn sign(&mut self, data: &[u8]) -> String {
        let to_sign = chunk_string_to_sign(&self.amz_date, &self.scope, &self.previous, data);
        self.previous = hmac_sha256(&self.key.0, to_sign.as_bytes());
        hex::encode(self.previous)
    }

    /// One chunk: `hex-size;chunk-signature=sig\r\ndata\r\n`.
    pub fn chunk(&mut self, data: &[u8]) -> Vec<u8> {
        let signature = self.sign(data);
        let mut out = format!("{:x};chunk-signature={signature}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The final, empty chunk and the end of the body (no trailers).
    pub fn final_chunk(&mut self) -> Vec<u8> {
        let signature = self.sign(&[]);
        format!("0;chunk-signature={signature}\r\n\r\n").into_bytes()
    }

    /// The final, empty chunk followed by `trailers` (`name`, `value`) and their signature
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`).
    pub fn final_chunk_with_trailers(&mut self, trailers: &[(&str, &str)]) -> Vec<u8> {
        let signature = self.sign(&[]);
        let mut out = format!("0;chunk-signature={signature}\r\n");
        let mut canonical = String::new();
        for (name, value) in trailers {
            let name = name.to_ascii_lowercase();
            out.push_str(&format!("{name}:{value}\r\n"));
            canonical.push_str(&format!("{name}:{}\n", value.trim()));
        }
        let signature = self.trailer_signature_of(&canonical);
        out.push_str(&format!("x-amz-trailer-signature:{signature}\r\n\r\n"));
        out.into_bytes()
    }

    fn trailer_signature_of(&mut self, canonical: &str) -> String {
        let to_sign =
            trailer_string_to_sign(&self.amz_date, &self.scope, &self.previous, canonical);
        self.previous = hmac_sha256(&self.key.0, to_sign.as_bytes());
        hex::encode(self.previous)
    }

    /// The signature of trailers given as canonical text (`name:value\n` each), chained from
    /// the last chunk signature.
    pub fn trailer_signature(&mut self, canonical_trailers: &str) -> String {
        self.trailer_signature_of(canonical_trailers)
    }
}
