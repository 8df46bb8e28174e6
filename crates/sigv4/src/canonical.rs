//! Canonical request, string to sign, signing key and signature: the SigV4 pipeline shared by
//! the verifier and the signer.
//!
//! The canonical URI follows the service's rules ([`SigningSettings`]): S3 signs the path as
//! sent, without normalization, each byte URI-encoded once; other services normalize the path
//! and encode the already-encoded path a second time (AWS's "double encoding").

use std::fmt;
use std::ops::Range;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::secret::{SecretKey, SigningKey};

/// The algorithm name of SigV4 with HMAC-SHA256.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The literal payload hash of an unsigned payload.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The payload hash of a signed aws-chunked body.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// The payload hash of a signed aws-chunked body with signed trailers.
pub const STREAMING_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// The payload hash of an unsigned aws-chunked body with trailers.
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// SHA-256 of the empty string, hex encoded.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986 unreserved characters stay, everything else is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// [`UNRESERVED`] plus the path separator.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// The credential scope: `date/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialScope {
    /// `YYYYMMDD`.
    pub date: String,
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The service, e.g. `s3`, `sts`, `iam`.
    pub service: String,
}

impl fmt::Display for CredentialScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// How the canonical URI is computed from the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningSettings {
    /// Remove empty, `.` and `..` segments (every service but S3).
    pub normalize_path: bool,
    /// Encode the already percent-encoded path again (every service but S3). When false, the
    /// path is decoded and encoded once, which is what S3 does.
    pub double_encode_path: bool,
}

impl SigningSettings {
    /// The rules AWS applies to `service`: S3 signs the path as sent, others normalize and
    /// double-encode.
    #[must_use]
    pub fn for_service(service: &str) -> Self {
        let generic = service != "s3";
        Self {
            normalize_path: generic,
            double_encode_path: generic,
        }
    }
}

/// SHA-256 of `data`, lowercase hex.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    lower_hex(&Sha256::digest(data))
}

/// `bytes` as lowercase hex, written directly (the `hex` crate's `encode` goes through a `char`
/// iterator: 2,200 instructions for a SHA-256, issue 16's callgrind counts).
#[must_use]
pub fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digit = |nibble: u8| char::from(DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'));
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
    out
}

/// The canonical URI of `path` (the path as sent on the wire, percent-encoded by the client).
#[must_use]
pub fn canonical_uri(path: &str, settings: SigningSettings) -> String {
    let normalized;
    let path = if settings.normalize_path {
        normalized = normalize_path(path);
        normalized.as_str()
    } else if path.is_empty() {
        "/"
    } else {
        path
    };
    if settings.double_encode_path {
        percent_encode(path.as_bytes(), PATH).to_string()
    } else {
        // Per segment, so that an encoded `%2F` inside a segment stays encoded.
        let mut out = String::with_capacity(path.len() + 8);
        for (index, segment) in path.split('/').enumerate() {
            if index > 0 {
                out.push('/');
            }
            if segment.contains('%') {
                let decoded: Vec<u8> = percent_decode_str(segment).collect();
                out.extend(percent_encode(&decoded, UNRESERVED));
            } else {
                // Nothing to decode: encoding the segment as it is gives the same text.
                out.extend(percent_encode(segment.as_bytes(), UNRESERVED));
            }
        }
        out
    }
}

/// Removes empty, `.` and `..` segments, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical query string: each name and value decoded then encoded once, sorted by name
/// then value. With `exclude_signature`, `X-Amz-Signature` is left out (query form).
#[must_use]
pub fn canonical_query(query: Option<&str>, exclude_signature: bool) -> String {
    let Some(query) = query else {
        return String::new();
    };
    // Every name and value is written once, decoded and re-encoded in one pass, into one
    // buffer; the pairs are sorted as ranges of it (no string per parameter: this runs for every
    // presigned request).
    let mut encoded = String::with_capacity(query.len() + 16);
    let mut pairs: Vec<(Range<usize>, Range<usize>)> =
        Vec::with_capacity(query.bytes().filter(|&b| b == b'&').count() + 1);
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let mark = encoded.len();
        reencode_into(&mut encoded, name);
        if exclude_signature && part(&encoded, mark..encoded.len()) == "X-Amz-Signature" {
            encoded.truncate(mark);
            continue;
        }
        let name_end = encoded.len();
        reencode_into(&mut encoded, value);
        pairs.push((mark..name_end, name_end..encoded.len()));
    }
    let text = |(name, value): &(Range<usize>, Range<usize>)| {
        (part(&encoded, name.clone()), part(&encoded, value.clone()))
    };
    pairs.sort_unstable_by(|a, b| text(a).cmp(&text(b)));
    let mut out = String::with_capacity(encoded.len() + 2 * pairs.len());
    for (index, pair) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        let (name, value) = text(pair);
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The part `range` of `s` (ranges of [`canonical_query`]'s buffer always lie on it).
fn part(s: &str, range: Range<usize>) -> &str {
    s.get(range).unwrap_or_default()
}

/// Appends `raw` percent-decoded (`%XX` with two hex digits; anything else is taken as it is)
/// and then encoded as SigV4 wants: RFC 3986 unreserved bytes as they are, every other byte as
/// `%XX` in upper case.
fn reencode_into(out: &mut String, raw: &str) {
    let mut rest = raw.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        let (byte, tail) = match (first, tail) {
            (b'%', [h, l, after @ ..]) => match (hex_value(*h), hex_value(*l)) {
                (Some(h), Some(l)) => ((h << 4) | l, after),
                _ => (first, tail),
            },
            _ => (first, tail),
        };
        rest = tail;
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0xf));
        }
    }
}

/// The value of one hex digit.
fn hex_value(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The upper-case hex digit of a nibble.
fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).map_or('0', |c| c.to_ascii_uppercase())
}

/// Appends a header value trimmed and with runs of spaces collapsed to one.
fn push_header_value(out: &mut String, value: &[u8]) {
    let value = String::from_utf8_lossy(value);
    let mut previous_space = false;
    for c in value.trim_matches([' ', '\t']).chars() {
        if c == ' ' {
            if !previous_space {
                out.push(' ');
            }
            previous_space = true;
        } else {
            out.push(c);
            previous_space = false;
        }
    }
}

/// The canonical request.
///
/// `signed_headers` are lowercase header names in the order the client listed them; each is
/// written as `name:values`, several values joined with `,`. A signed `host` that is not among
/// the headers is taken from the URI authority (HTTP/2). `payload_hash` is the last line.
#[must_use]
pub fn canonical_request<S: AsRef<str>>(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    signed_headers: &[S],
    payload_hash: &str,
    settings: SigningSettings,
    exclude_signature: bool,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(method.as_str());
    out.push('\n');
    out.push_str(&canonical_uri(uri.path(), settings));
    out.push('\n');
    out.push_str(&canonical_query(uri.query(), exclude_signature));
    out.push('\n');
    for name in signed_headers {
        let name = name.as_ref();
        out.push_str(name);
        out.push(':');
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_none() && name == "host" {
            if let Some(authority) = uri.authority() {
                out.push_str(authority.as_str());
            }
        }
        let mut first = true;
        for value in values {
            if !first {
                out.push(',');
            }
            first = false;
            push_header_value(&mut out, value.as_bytes());
        }
        out.push('\n');
    }
    out.push('\n');
    for (index, name) in signed_headers.iter().enumerate() {
        if index > 0 {
            out.push(';');
        }
        out.push_str(name.as_ref());
    }
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The string to sign: algorithm, `amz_date` (`YYYYMMDDTHHMMSSZ`), scope, canonical request hash.
#[must_use]
pub fn string_to_sign(amz_date: &str, scope: &CredentialScope, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// How many derived keys each thread keeps (see [`signing_key`]).
const KEY_CACHE: usize = 8;

/// A derived key and what it was derived from.
struct CachedKey {
    secret: zeroize::Zeroizing<String>,
    scope: CredentialScope,
    key: SigningKey,
}

std::thread_local! {
    /// The keys this thread derived last, and where the next one goes (round robin).
    static KEYS: std::cell::RefCell<(usize, Vec<CachedKey>)> =
        const { std::cell::RefCell::new((0, Vec::new())) };
}

/// The signing key of `scope` for `secret`. A key depends only on the secret, the day, the
/// region and the service, so each thread keeps the last few it derived: a client signing many
/// requests in one day and region costs the four HMACs of the derivation once (issue 16).
pub(crate) fn signing_key(secret: &SecretKey, scope: &CredentialScope) -> SigningKey {
    let hit = KEYS.with(|c| {
        c.borrow()
            .1
            .iter()
            .find(|e| e.scope == *scope && e.secret.as_str() == secret.expose())
            .map(|e| SigningKey(e.key.0))
    });
    if let Some(key) = hit {
        return key;
    }
    let key = derive_signing_key(secret, scope);
    KEYS.with(|c| {
        let mut c = c.borrow_mut();
        let entry = CachedKey {
            secret: zeroize::Zeroizing::new(secret.expose().to_owned()),
            scope: scope.clone(),
            key: SigningKey(key.0),
        };
        let (next, keys) = &mut *c;
        if let Some(slot) = keys.get_mut(*next) {
            *slot = entry;
        } else {
            keys.push(entry);
        }
        *next = (*next + 1) % KEY_CACHE;
    });
    key
}

/// Derives the signing key of `scope` from `secret` (AWS's four HMACs).
fn derive_signing_key(secret: &SecretKey, scope: &CredentialScope) -> SigningKey {
    let mut seed = zeroize::Zeroizing::new(Vec::with_capacity(4 + secret.expose().len()));
    seed.extend_from_slice(b"AWS4");
    seed.extend_from_slice(secret.expose().as_bytes());
    let key = zeroize::Zeroizing::new(hmac_sha256(&seed, scope.date.as_bytes()));
    let key = zeroize::Zeroizing::new(hmac_sha256(key.as_slice(), scope.region.as_bytes()));
    let key = zeroize::Zeroizing::new(hmac_sha256(key.as_slice(), scope.service.as_bytes()));
    SigningKey(hmac_sha256(key.as_slice(), b"aws4_request"))
}

/// The hex signature of `string_to_sign` under the key of `scope`.
#[must_use]
pub fn signature(secret: &SecretKey, scope: &CredentialScope, string_to_sign: &str) -> String {
    let key = signing_key(secret, scope);
    lower_hex(&hmac_sha256(&key.0, string_to_sign.as_bytes()))
}

/// Formats `time` as `YYYYMMDDTHHMMSSZ`.
#[must_use]
pub fn format_amz_date(time: DateTime<Utc>) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// Parses `YYYYMMDDTHHMMSSZ` strictly.
#[must_use]
pub fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 || bytes.get(8) != Some(&b'T') || bytes.get(15) != Some(&b'Z') {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        let digits = value.get(from..to)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, number(4, 6)?, number(6, 8)?)?;
    let time = date.and_hms_opt(number(9, 11)?, number(11, 13)?, number(13, 15)?)?;
    Some(Utc.from_utc_datetime(&time))
}

/// Whether `value` is a `YYYYMMDD` calendar date.
pub(crate) fn is_scope_date(value: &str) -> bool {
    let number = |from: usize, to: usize| -> Option<u32> { value.get(from..to)?.parse().ok() };
    value.len() == 8
        && value.bytes().all(|b| b.is_ascii_digit())
        && match (number(0, 4), number(4, 6), number(6, 8)) {
            (Some(y), Some(m), Some(d)) => {
                i32::try_from(y).is_ok_and(|y| NaiveDate::from_ymd_opt(y, m, d).is_some())
            }
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3: SigningSettings = SigningSettings {
        normalize_path: false,
        double_encode_path: false,
    };
    const GENERIC: SigningSettings = SigningSettings {
        normalize_path: true,
        double_encode_path: true,
    };

    #[test]
    fn s3_uri_is_not_normalized() {
        assert_eq!(canonical_uri("/a/../b", S3), "/a/../b");
        assert_eq!(canonical_uri("//x", S3), "//x");
        assert_eq!(canonical_uri("/./x/", S3), "/./x/");
        assert_eq!(canonical_uri("", S3), "/");
    }

    #[test]
    fn s3_uri_is_encoded_once() {
        assert_eq!(canonical_uri("/b/a%20b", S3), "/b/a%20b");
        assert_eq!(canonical_uri("/b/a+b", S3), "/b/a%2Bb");
        assert_eq!(canonical_uri("/b/a%2Bb", S3), "/b/a%2Bb");
        assert_eq!(canonical_uri("/b/%C3%A9t%C3%A9", S3), "/b/%C3%A9t%C3%A9");
        assert_eq!(canonical_uri("/b/%c3%a9", S3), "/b/%C3%A9");
        assert_eq!(
            canonical_uri("/b/test$file.text", S3),
            "/b/test%24file.text"
        );
        assert_eq!(canonical_uri("/b/a%2Fb", S3), "/b/a%2Fb");
        assert_eq!(canonical_uri("/b/~-._", S3), "/b/~-._");
    }

    #[test]
    fn generic_uri_is_normalized_and_double_encoded() {
        assert_eq!(
            canonical_uri("/example%20space/", GENERIC),
            "/example%2520space/"
        );
        assert_eq!(canonical_uri("//example//", GENERIC), "/example/");
        assert_eq!(canonical_uri("/example1/example2/../..", GENERIC), "/");
        assert_eq!(canonical_uri("/./example", GENERIC), "/example");
        assert_eq!(canonical_uri("", GENERIC), "/");
    }

    #[test]
    fn query_is_sorted_and_encoded() {
        assert_eq!(canonical_query(Some("b=2&a=1&a=0"), false), "a=0&a=1&b=2");
        assert_eq!(canonical_query(Some("lifecycle"), false), "lifecycle=");
        assert_eq!(canonical_query(Some("k=a b+c%2F"), false), "k=a%20b%2Bc%2F");
        assert_eq!(
            canonical_query(Some("X-Amz-Signature=abc&x=1"), true),
            "x=1"
        );
        assert_eq!(
            canonical_query(Some("X-Amz-Signature=abc&x=1"), false),
            "X-Amz-Signature=abc&x=1"
        );
        assert_eq!(canonical_query(Some("&&a=1&"), false), "a=1");
        assert_eq!(canonical_query(None, false), "");
    }

    /// The canonical query as first written (decode each name and value, encode them again,
    /// sort the pairs): the one-pass version must agree with it on any query.
    fn canonical_query_reference(query: &str, exclude_signature: bool) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for piece in query.split('&').filter(|piece| !piece.is_empty()) {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let name: Vec<u8> = percent_decode_str(name).collect();
            if exclude_signature && name == b"X-Amz-Signature" {
                continue;
            }
            let value: Vec<u8> = percent_decode_str(value).collect();
            pairs.push((
                percent_encode(&name, UNRESERVED).to_string(),
                percent_encode(&value, UNRESERVED).to_string(),
            ));
        }
        pairs.sort_unstable();
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    proptest::proptest! {
        #[test]
        fn one_pass_canonical_query_agrees_with_decode_then_encode(
            query in "([a-zA-Z0-9%&=+ ./_~-]|%[0-9a-fA-F]{2}|%[0-9a-fA-F]|X-Amz-Signature|\\PC){0,40}",
            exclude in proptest::bool::ANY,
        ) {
            proptest::prop_assert_eq!(
                canonical_query(Some(&query), exclude),
                canonical_query_reference(&query, exclude)
            );
        }

        /// The direct hex encoder writes what the `hex` crate writes.
        #[test]
        fn lower_hex_is_hex_encode(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            proptest::prop_assert_eq!(lower_hex(&bytes), hex::encode(&bytes));
        }

        /// The direct check of a scope date agrees with parsing it as the day's midnight (the
        /// check it replaced), for dates near and far from valid ones.
        #[test]
        fn scope_date_check_agrees_with_parsing_midnight(
            date in "([0-9]{8}|[0-9+ -]{1,9}|20[0-9]{2}(0[0-9]|1[0-3])(0[0-9]|[1-3][0-9])|\\PC{0,9})",
        ) {
            proptest::prop_assert_eq!(
                is_scope_date(&date),
                parse_amz_date(&format!("{date}T000000Z")).is_some()
            );
        }

        /// A path without escapes gives the canonical URI it gave when each segment was decoded
        /// first.
        #[test]
        fn canonical_uri_of_segments_without_escapes(path in "(/[a-zA-Z0-9 +._~!$&'()*,;=:@é-]{0,12}){1,5}/?") {
            let settings = SigningSettings::for_service("s3");
            let reference: Vec<String> = path
                .split('/')
                .map(|segment| {
                    let decoded: Vec<u8> = percent_decode_str(segment).collect();
                    percent_encode(&decoded, UNRESERVED).to_string()
                })
                .collect();
            proptest::prop_assert_eq!(canonical_uri(&path, settings), reference.join("/"));
        }
    }

    #[test]
    fn a_signature_named_with_escapes_is_still_excluded() {
        assert_eq!(
            canonical_query(Some("X-Amz-Signatur%65=abc&x=1"), true),
            "x=1"
        );
        assert_eq!(canonical_query(Some("k=%zz%4"), false), "k=%25zz%254");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut out = String::new();
        push_header_value(&mut out, b"  \"a   b   c\"  ");
        assert_eq!(out, "\"a b c\"");
    }

    #[test]
    fn amz_date_round_trip() {
        let time = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(format_amz_date(time), "20150830T123600Z");
        assert!(parse_amz_date("20150830T123600").is_none());
        assert!(parse_amz_date("2015083OT123600Z").is_none());
        assert!(parse_amz_date("20151330T123600Z").is_none());
        assert!(parse_amz_date("+0150830T123600Z").is_none());
        assert!(is_scope_date("20130524"));
        assert!(!is_scope_date("2013052"));
    }

    /// The signing-key example of the SigV4 documentation,
    /// <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>.
    #[test]
    fn signing_key_derivation() {
        let scope = CredentialScope {
            date: "20120215".into(),
            region: "us-east-1".into(),
            service: "iam".into(),
        };
        let key = signing_key(
            &SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            &scope,
        );
        assert_eq!(
            hex::encode(key.0),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    /// The per-thread cache answers exactly what the derivation does, for more secrets and
    /// scopes than it holds, asked in an order that evicts and refills it.
    #[test]
    fn cached_signing_keys_match_the_derivation() {
        let scopes: Vec<CredentialScope> = [
            ("20120215", "us-east-1", "s3"),
            ("20120216", "us-east-1", "s3"),
            ("20120215", "eu-west-1", "s3"),
            ("20120215", "us-east-1", "iam"),
        ]
        .iter()
        .map(|(d, r, s)| CredentialScope {
            date: (*d).into(),
            region: (*r).into(),
            service: (*s).into(),
        })
        .collect();
        let secrets: Vec<SecretKey> = (0..5)
            .map(|i| SecretKey::new(format!("secret-{i}")))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for round in 0..3 {
            for (i, secret) in secrets.iter().enumerate() {
                for scope in &scopes {
                    let cached = signing_key(secret, scope).0;
                    assert_eq!(
                        cached,
                        derive_signing_key(secret, scope).0,
                        "round {round}, secret {i}, {scope}"
                    );
                    if round == 0 {
                        assert!(seen.insert(cached), "two secrets or scopes share a key");
                    }
                }
            }
        }
    }
}
