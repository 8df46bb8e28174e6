//! Property tests: parsing never panics on hostile input; signing then verifying round-trips
//! over random paths, queries and headers, and any change breaks the signature.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use keyhole_sigv4::{
    parse, presign, sign_headers, verify, AuthError, Credentials, SecretKey, SigningParams,
    EMPTY_SHA256,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use proptest::prelude::*;

fn time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 16, 1, 0, 0).unwrap()
}

/// Encodes everything but unreserved characters and the sub-delimiters a client may leave raw
/// in a path.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn headers_with(pairs: &[(String, String)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost:9000"));
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(format!("x-test-{name}").as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn build_uri(segments: &[String], query: &[(String, String)]) -> Uri {
    let mut text = String::from("http://localhost:9000");
    for segment in segments {
        text.push('/');
        text.extend(utf8_percent_encode(segment, SEGMENT));
    }
    if segments.is_empty() {
        text.push('/');
    }
    for (index, (name, value)) in query.iter().enumerate() {
        text.push(if index == 0 { '?' } else { '&' });
        text.extend(utf8_percent_encode(name, COMPONENT));
        text.push('=');
        text.extend(utf8_percent_encode(value, COMPONENT));
    }
    text.parse().unwrap()
}

fn verify_at(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    secret: &str,
) -> Result<(), AuthError> {
    let parsed = parse(method, uri, headers)?.expect("signed");
    verify(
        parsed,
        method,
        uri,
        headers,
        &SecretKey::new(secret),
        time(),
    )
    .map(|_| ())
}

fn segments() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            "\\PC{0,12}",
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just(String::new()),
            "[a-z+ $%]{1,6}",
        ],
        0..5,
    )
}

fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-z]{1,8}", "\\PC{0,10}"), 0..5)
}

fn header_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-z][a-z0-9-]{0,10}", "[!-~]([ -~]{0,20}[!-~])?"), 0..5)
}

proptest! {
    #[test]
    fn parse_never_panics_on_authorization_headers(
        value in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "AWS4-HMAC-SHA256 [ -~]{0,300}".prop_map(String::into_bytes),
            "AWS4-HMAC-SHA256 Credential=[ -~]{0,80}, SignedHeaders=[ -~]{0,40}, Signature=[0-9a-f]{0,70}"
                .prop_map(String::into_bytes),
        ],
        date in prop_oneof!["[0-9TZ]{0,20}", Just("20260716T010000Z".to_owned())],
        payload in prop_oneof!["[ -~]{0,70}", Just("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned())],
    ) {
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert("authorization", value);
        if let Ok(date) = HeaderValue::from_str(&date) {
            headers.insert("x-amz-date", date);
        }
        if let Ok(payload) = HeaderValue::from_str(&payload) {
            headers.insert("x-amz-content-sha256", payload);
        }
        let uri: Uri = "/b/k".parse().unwrap();
        if let Ok(Some(parsed)) = parse(&Method::GET, &uri, &headers) {
            // Whatever parsed must also go through verification without panicking.
            let result = verify(parsed, &Method::GET, &uri, &headers, &SecretKey::new("s"), time());
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn parse_never_panics_on_queries(
        query in "[A-Za-z0-9%=&/+._~-]{0,200}",
        prefix in prop_oneof![
            Just(String::new()),
            Just("X-Amz-Algorithm=AWS4-HMAC-SHA256&".to_owned()),
            Just("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=A%2F20260716%2Fr%2Fs3%2Faws4_request&X-Amz-Date=20260716T010000Z&X-Amz-SignedHeaders=host&X-Amz-Expires=".to_owned()),
        ],
    ) {
        let Ok(uri) = format!("/b/k?{prefix}{query}").parse::<Uri>() else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("localhost"));
        if let Ok(Some(parsed)) = parse(&Method::GET, &uri, &headers) {
            let result = verify(parsed, &Method::GET, &uri, &headers, &SecretKey::new("s"), time());
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn sign_then_verify_round_trips(
        segments in segments(),
        query in query(),
        pairs in header_pairs(),
        service in prop_oneof![Just("s3"), Just("iam"), Just("keyhole")],
        token in proptest::option::of("[A-Za-z0-9/+=]{1,40}"),
        tamper in any::<prop::sample::Index>(),
    ) {
        let uri = build_uri(&segments, &query);
        let mut headers = headers_with(&pairs);
        let credentials = Credentials {
            access_key_id: "AKIAKEYHOLETEST".to_owned(),
            secret_key: SecretKey::new("secret"),
            session_token: token,
        };
        let params = SigningParams { credentials: &credentials, region: "eu-west-1", service, time: time() };
        sign_headers(&Method::PUT, &uri, &mut headers, EMPTY_SHA256, &params).unwrap();
        prop_assert_eq!(verify_at(&Method::PUT, &uri, &headers, "secret"), Ok(()));
        prop_assert_eq!(
            verify_at(&Method::PUT, &uri, &headers, "secreT"),
            Err(AuthError::SignatureDoesNotMatch)
        );
        prop_assert_eq!(
            verify_at(&Method::POST, &uri, &headers, "secret"),
            Err(AuthError::SignatureDoesNotMatch)
        );

        // Any signed test header changed breaks the signature.
        if !pairs.is_empty() {
            let (name, _) = tamper.get(&pairs);
            let mut altered = headers.clone();
            altered.append(
                HeaderName::from_bytes(format!("x-test-{name}").as_bytes()).unwrap(),
                HeaderValue::from_static("injected"),
            );
            prop_assert_eq!(
                verify_at(&Method::PUT, &uri, &altered, "secret"),
                Err(AuthError::SignatureDoesNotMatch)
            );
        }
        // An extra query parameter breaks it.
        let extra: Uri = if uri.query().is_some() {
            format!("{uri}&zzz=1")
        } else {
            format!("{uri}?zzz=1")
        }
        .parse()
        .unwrap();
        prop_assert_eq!(
            verify_at(&Method::PUT, &extra, &headers, "secret"),
            Err(AuthError::SignatureDoesNotMatch)
        );
        // One flipped signature digit breaks it.
        let auth = headers["authorization"].to_str().unwrap().to_owned();
        let at = auth.len() - 1 - tamper.index(64);
        let mut bytes = auth.into_bytes();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        let mut flipped = headers.clone();
        flipped.insert("authorization", HeaderValue::from_bytes(&bytes).unwrap());
        prop_assert_eq!(
            verify_at(&Method::PUT, &uri, &flipped, "secret"),
            Err(AuthError::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn presign_then_verify_round_trips(
        segments in segments(),
        query in query(),
        pairs in header_pairs(),
        expires in 1u64..=604_800,
    ) {
        let uri = build_uri(&segments, &query);
        let credentials = Credentials {
            access_key_id: "AKIAKEYHOLETEST".to_owned(),
            secret_key: SecretKey::new("secret"),
            session_token: None,
        };
        let params = SigningParams { credentials: &credentials, region: "eu-west-1", service: "s3", time: time() };
        let headers = headers_with(&pairs);
        let presigned = presign(&Method::GET, &uri, &headers, expires, &params).unwrap();
        let parsed = parse(&Method::GET, &presigned, &headers).unwrap().unwrap();
        prop_assert_eq!(parsed.expires_secs(), Some(expires));
        prop_assert_eq!(verify_at(&Method::GET, &presigned, &headers, "secret"), Ok(()));
        prop_assert_eq!(
            verify_at(&Method::GET, &presigned, &headers, "other"),
            Err(AuthError::SignatureDoesNotMatch)
        );
    }
}
