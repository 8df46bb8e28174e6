//! Request rules: S3 path handling, malformed headers and queries, clock skew, presign expiry,
//! payload hashes, anonymous requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use http::{HeaderMap, HeaderValue, Method, Uri};
use keyhole_sigv4::{
    canonical_uri, parse, presign, sha256_hex, sign_headers, verify, verify_with_payload,
    AuthError, AuthKind, Credentials, PayloadHash, SecretKey, SigningParams, SigningSettings,
    EMPTY_SHA256, UNSIGNED_PAYLOAD,
};

fn time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 16, 1, 0, 0).unwrap()
}

fn credentials(token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIAKEYHOLETEST".to_owned(),
        secret_key: SecretKey::new("keyhole-test-secret"),
        session_token: token.map(str::to_owned),
    }
}

fn signed(method: &Method, uri: &str, service: &str, payload: &str) -> (Uri, HeaderMap) {
    let uri: Uri = uri.parse().unwrap();
    let creds = credentials(None);
    let mut headers = HeaderMap::new();
    if uri.authority().is_none() {
        headers.insert("host", HeaderValue::from_static("localhost"));
    }
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service,
        time: time(),
    };
    sign_headers(method, &uri, &mut headers, payload, &params).unwrap();
    (uri, headers)
}

fn check(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let parsed = parse(method, uri, headers)?.expect("signed");
    verify(
        parsed,
        method,
        uri,
        headers,
        &SecretKey::new("keyhole-test-secret"),
        now,
    )
    .map(|_| ())
}

#[test]
fn s3_paths_are_signed_as_sent() {
    let s3 = SigningSettings::for_service("s3");
    assert_eq!(canonical_uri("/b/a/../b", s3), "/b/a/../b");
    assert_eq!(canonical_uri("//x", s3), "//x");
    assert_eq!(
        canonical_uri("/b/key%20with%20spaces", s3),
        "/b/key%20with%20spaces"
    );
    assert_eq!(
        canonical_uri("/b/%E2%82%AC%20%C3%A9", s3),
        "/b/%E2%82%AC%20%C3%A9"
    );
    assert_eq!(canonical_uri("/b/a+b", s3), "/b/a%2Bb");
    assert_eq!(canonical_uri("/b/a%2Bb", s3), "/b/a%2Bb");
    for path in [
        "/b/a/../b",
        "//x",
        "/b/./x",
        "/b/key%20with%20spaces",
        "/b/%E2%82%AC%20%C3%A9t%C3%A9",
        "/b/a+b",
        "/b/a%2Bb",
        "/b/dir%2Ffile",
        "/b/~tilde_-.",
    ] {
        let (uri, headers) = signed(&Method::GET, path, "s3", EMPTY_SHA256);
        assert_eq!(
            check(&Method::GET, &uri, &headers, time()),
            Ok(()),
            "{path}"
        );
    }
    // A signature over `/b/a/../b` does not verify for `/b/b`, nor `//x` for `/x`.
    for (path, other) in [("/b/a/../b", "/b/b"), ("//x", "/x"), ("/b/a+b", "/b/a%20b")] {
        let (_, headers) = signed(&Method::GET, path, "s3", EMPTY_SHA256);
        let other: Uri = other.parse().unwrap();
        assert_eq!(
            check(&Method::GET, &other, &headers, time()),
            Err(AuthError::SignatureDoesNotMatch),
            "{path} vs {other}"
        );
    }
    // Encoded and raw forms of the same byte are the same key: `$` and `%24`.
    let (_, headers) = signed(&Method::GET, "/b/a$b", "s3", EMPTY_SHA256);
    let encoded: Uri = "/b/a%24b".parse().unwrap();
    assert_eq!(check(&Method::GET, &encoded, &headers, time()), Ok(()));
}

#[test]
fn other_services_normalize_and_double_encode() {
    let iam = SigningSettings::for_service("iam");
    assert_eq!(canonical_uri("/a/../b//c/", iam), "/b/c/");
    assert_eq!(canonical_uri("/a%20b", iam), "/a%2520b");
    let (_, headers) = signed(&Method::GET, "/a/../b", "keyhole", EMPTY_SHA256);
    let other: Uri = "/b".parse().unwrap();
    assert_eq!(check(&Method::GET, &other, &headers, time()), Ok(()));
}

#[test]
fn clock_skew_boundary_is_15_minutes_both_sides() {
    let (uri, headers) = signed(&Method::GET, "/b/k", "s3", EMPTY_SHA256);
    let at = |delta: Duration| check(&Method::GET, &uri, &headers, time() + delta);
    assert_eq!(at(Duration::minutes(15)), Ok(()));
    assert_eq!(at(-Duration::minutes(15)), Ok(()));
    assert_eq!(
        at(Duration::minutes(15) + Duration::seconds(1)),
        Err(AuthError::RequestTimeTooSkewed)
    );
    let error = at(-Duration::minutes(15) - Duration::seconds(1)).unwrap_err();
    assert_eq!(error, AuthError::RequestTimeTooSkewed);
    assert_eq!(error.code(), "RequestTimeTooSkewed");
    assert_eq!(error.http_status(), 403);
}

fn presigned(uri: &str, expires: u64, headers: &HeaderMap, token: Option<&str>) -> Uri {
    let creds = credentials(token);
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: time(),
    };
    presign(
        &Method::GET,
        &uri.parse().unwrap(),
        headers,
        expires,
        &params,
    )
    .unwrap()
}

#[test]
fn presign_expiry_and_seven_day_cap() {
    let host = {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("localhost:9000"));
        map
    };
    let week = 604_800;
    let uri = presigned("http://localhost:9000/b/k", week, &HeaderMap::new(), None);
    assert_eq!(
        check(
            &Method::GET,
            &uri,
            &host,
            time() + Duration::seconds(week as i64)
        ),
        Ok(())
    );
    assert_eq!(
        check(
            &Method::GET,
            &uri,
            &host,
            time() + Duration::seconds(week as i64 + 1)
        ),
        Err(AuthError::Expired)
    );

    // More than 7 days is refused before the signature is looked at; so is 0.
    for (from, to) in [
        ("X-Amz-Expires=604800", "X-Amz-Expires=604801"),
        ("X-Amz-Expires=604800", "X-Amz-Expires=0"),
    ] {
        let forged: Uri = uri.to_string().replace(from, to).parse().unwrap();
        let error = check(&Method::GET, &forged, &host, time()).unwrap_err();
        assert!(matches!(error, AuthError::QueryMalformed(_)), "{error:?}");
        assert_eq!(error.code(), "AuthorizationQueryParametersError");
    }
    // A negative lifetime has expired: 403 like any expired URL (issue 12).
    for negative in ["-7", "-604800"] {
        let forged: Uri = uri
            .to_string()
            .replace("X-Amz-Expires=604800", &format!("X-Amz-Expires={negative}"))
            .parse()
            .unwrap();
        let error = check(&Method::GET, &forged, &host, time()).unwrap_err();
        assert_eq!(error, AuthError::Expired, "{negative}");
        assert_eq!((error.code(), error.http_status()), ("AccessDenied", 403));
    }
    // A lone minus sign is not a number.
    let forged: Uri = uri
        .to_string()
        .replace("X-Amz-Expires=604800", "X-Amz-Expires=-")
        .parse()
        .unwrap();
    assert_eq!(
        check(&Method::GET, &forged, &host, time())
            .unwrap_err()
            .code(),
        "AuthorizationQueryParametersError"
    );
    let forged: Uri = uri
        .to_string()
        .replace("X-Amz-Expires=604800", "X-Amz-Expires=soon")
        .parse()
        .unwrap();
    assert_eq!(
        check(&Method::GET, &forged, &host, time())
            .unwrap_err()
            .code(),
        "AuthorizationQueryParametersError"
    );

    // presign itself refuses the same bounds.
    let creds = credentials(None);
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: time(),
    };
    let base: Uri = "http://localhost:9000/b/k".parse().unwrap();
    for expires in [0, week + 1] {
        assert!(presign(&Method::GET, &base, &HeaderMap::new(), expires, &params).is_err());
    }
    // A longer lifetime written into a valid URL breaks the signature.
    let short = presigned("http://localhost:9000/b/k", 60, &HeaderMap::new(), None);
    let longer: Uri = short
        .to_string()
        .replace("X-Amz-Expires=60", "X-Amz-Expires=3600")
        .parse()
        .unwrap();
    assert_eq!(
        check(&Method::GET, &longer, &host, time()),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn presigned_session_token_is_signed() {
    let host = {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("localhost:9000"));
        map
    };
    let uri = presigned(
        "http://localhost:9000/b/k?versionId=3",
        60,
        &HeaderMap::new(),
        Some("tok/en+1="),
    );
    let parsed = parse(&Method::GET, &uri, &host).unwrap().unwrap();
    assert_eq!(parsed.kind(), AuthKind::Query);
    assert_eq!(parsed.session_token(), Some("tok/en+1="));
    assert_eq!(check(&Method::GET, &uri, &host, time()), Ok(()));
    let swapped: Uri = uri
        .to_string()
        .replace(
            "X-Amz-Security-Token=tok%2Fen%2B1%3D",
            "X-Amz-Security-Token=other",
        )
        .parse()
        .unwrap();
    assert_eq!(
        check(&Method::GET, &swapped, &host, time()),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn presigned_s3_requests_must_sign_amz_headers() {
    let mut host = HeaderMap::new();
    host.insert("host", HeaderValue::from_static("localhost:9000"));
    let uri = presigned("http://localhost:9000/b/k", 60, &HeaderMap::new(), None);
    let mut extra = host.clone();
    extra.insert("x-amz-acl", HeaderValue::from_static("public-read"));
    let error = check(&Method::GET, &uri, &extra, time()).unwrap_err();
    assert_eq!(error, AuthError::HeadersNotSigned("x-amz-acl".to_owned()));
    assert_eq!(error.code(), "AccessDenied");

    let mut acl = HeaderMap::new();
    acl.insert("x-amz-acl", HeaderValue::from_static("private"));
    let uri = presigned("http://localhost:9000/b/k", 60, &acl, None);
    extra.insert("x-amz-acl", HeaderValue::from_static("private"));
    assert_eq!(check(&Method::GET, &uri, &extra, time()), Ok(()));
    extra.insert("x-amz-acl", HeaderValue::from_static("public-read"));
    assert_eq!(
        check(&Method::GET, &uri, &extra, time()),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

/// Header-signed S3 requests too: an `x-amz-*` header added after signing is refused, as S3 does
/// ("There were headers present in the request which were not signed"), while other services
/// are not held to it.
#[test]
fn header_signed_s3_requests_must_sign_amz_headers() {
    let (uri, headers) = signed(
        &Method::PUT,
        "http://localhost:9000/b/k",
        "s3",
        UNSIGNED_PAYLOAD,
    );
    assert_eq!(check(&Method::PUT, &uri, &headers, time()), Ok(()));
    let mut extra = headers.clone();
    extra.insert("x-amz-tagging", HeaderValue::from_static("owner=attacker"));
    assert_eq!(
        check(&Method::PUT, &uri, &extra, time()),
        Err(AuthError::HeadersNotSigned("x-amz-tagging".to_owned()))
    );
    let (uri, headers) = signed(&Method::POST, "http://localhost:9000/", "sts", EMPTY_SHA256);
    let mut extra = headers.clone();
    extra.insert("x-amz-tagging", HeaderValue::from_static("x"));
    assert_eq!(check(&Method::POST, &uri, &extra, time()), Ok(()));
}

fn with_authorization(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost"));
    headers.insert("x-amz-date", HeaderValue::from_static("20260716T010000Z"));
    headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static(EMPTY_SHA256),
    );
    headers.insert("authorization", value.parse().unwrap());
    headers
}

#[test]
fn malformed_authorization_headers_name_the_problem() {
    let sig = "a".repeat(64);
    let cred = "AKID/20260716/us-east-1/s3/aws4_request";
    let cases = [
        (format!("AWS4-HMAC-SHA256 SignedHeaders=host, Signature={sig}"), "missing Credential"),
        (format!("AWS4-HMAC-SHA256 Credential={cred}, Signature={sig}"), "missing SignedHeaders"),
        (format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host"), "missing Signature"),
        (
            format!("AWS4-HMAC-SHA256 Credential=AKID/20260716/us-east-1/s3, SignedHeaders=host, Signature={sig}"),
            "Credential is mal-formed",
        ),
        (
            format!("AWS4-HMAC-SHA256 Credential=AKID/2026-07-16/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}"),
            "invalid credential date",
        ),
        (
            format!("AWS4-HMAC-SHA256 Credential=AKID/20260715/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}"),
            "not the same as X-Amz-Date",
        ),
        (
            format!("AWS4-HMAC-SHA256 Credential=AKID/20260716/us-east-1/s3/aws5_request, SignedHeaders=host, Signature={sig}"),
            "incorrect terminal",
        ),
        (
            format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=x-amz-date, Signature={sig}"),
            "must include `host`",
        ),
        (
            format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=Host, Signature={sig}"),
            "lowercase",
        ),
        (
            format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature=abc"),
            "64 hexadecimal digits",
        ),
        (
            format!("AWS4-HMAC-SHA256 Credential={cred}, Credential={cred}, SignedHeaders=host, Signature={sig}"),
            "duplicate",
        ),
        (
            format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature={sig}, Extra=1"),
            "unknown component",
        ),
    ];
    for (value, reason) in cases {
        let headers = with_authorization(&value);
        let error = parse(&Method::GET, &"/".parse().unwrap(), &headers).unwrap_err();
        assert_eq!(error.code(), "AuthorizationHeaderMalformed", "{value}");
        assert_eq!(error.http_status(), 400);
        assert!(
            error.message().contains(reason),
            "{value}: {}",
            error.message()
        );
        assert!(!error.message().contains(&sig), "no signature in messages");
        assert!(!format!("{error:?}").contains(&sig));
    }
}

#[test]
fn other_mechanisms_get_a_clear_error() {
    let uri: Uri = "/".parse().unwrap();
    let error = parse(
        &Method::GET,
        &uri,
        &with_authorization("AWS AKID:c2lnbmF0dXJl"),
    )
    .unwrap_err();
    assert_eq!(error, AuthError::UnsupportedAlgorithm("AWS".to_owned()));
    assert!(error.message().contains("AWS4-HMAC-SHA256"));
    let error = parse(
        &Method::GET,
        &uri,
        &with_authorization("AWS4-ECDSA-P256-SHA256 Credential=x"),
    )
    .unwrap_err();
    assert_eq!(error.code(), "InvalidRequest");

    let v2: Uri = "/b/k?AWSAccessKeyId=AKID&Expires=1&Signature=abc"
        .parse()
        .unwrap();
    assert_eq!(
        parse(&Method::GET, &v2, &HeaderMap::new()).unwrap_err(),
        AuthError::UnsupportedAlgorithm("AWS".to_owned())
    );

    let both: Uri = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256".parse().unwrap();
    let sig = "a".repeat(64);
    let headers = with_authorization(&format!(
        "AWS4-HMAC-SHA256 Credential=AKID/20260716/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}"
    ));
    assert_eq!(
        parse(&Method::GET, &both, &headers).unwrap_err(),
        AuthError::MultipleMechanisms
    );
}

#[test]
fn repeated_authorization_header_is_malformed() {
    let (uri, mut headers) = signed(&Method::GET, "/b/k", "s3", EMPTY_SHA256);
    let first = headers["authorization"].clone();
    headers.append("authorization", first);
    let error = parse(&Method::GET, &uri, &headers).unwrap_err();
    assert_eq!(error.code(), "AuthorizationHeaderMalformed");
    assert!(error.message().contains("repeated"));
}

#[test]
fn anonymous_requests_parse_to_none() {
    let uri: Uri = "/bucket/key?prefix=a&max-keys=2".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost"));
    assert!(parse(&Method::GET, &uri, &headers).unwrap().is_none());
}

#[test]
fn malformed_presigned_queries() {
    let uri = presigned("http://localhost:9000/b/k", 60, &HeaderMap::new(), None).to_string();
    let mut host = HeaderMap::new();
    host.insert("host", HeaderValue::from_static("localhost:9000"));
    for (from, to) in [
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Algorithm=AWS4-HMAC-SHA1",
        ),
        ("&X-Amz-SignedHeaders=host", ""),
        ("X-Amz-Date=20260716T010000Z", "X-Amz-Date=2026-07-16"),
        ("X-Amz-Date=20260716T010000Z", "X-Amz-Date=20260717T010000Z"),
        ("us-east-1%2Fs3%2Faws4_request", "us-east-1%2Fs3"),
        (
            "X-Amz-SignedHeaders=host",
            "X-Amz-SignedHeaders=host&X-Amz-SignedHeaders=host",
        ),
    ] {
        let forged: Uri = uri.replace(from, to).parse().unwrap();
        let error = parse(&Method::GET, &forged, &host).unwrap_err();
        assert_eq!(
            error.code(),
            "AuthorizationQueryParametersError",
            "{to}: {error:?}"
        );
    }
}

#[test]
fn s3_header_form_requires_x_amz_content_sha256() {
    let (uri, mut headers) = signed(&Method::GET, "/b/k", "s3", EMPTY_SHA256);
    headers.remove("x-amz-content-sha256");
    let error = parse(&Method::GET, &uri, &headers).unwrap_err();
    assert_eq!(error, AuthError::MissingContentSha256);
    assert_eq!(error.code(), "InvalidRequest");
    assert_eq!(
        error.message(),
        "Missing required header for this request: x-amz-content-sha256"
    );

    headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("not-a-hash"),
    );
    assert_eq!(
        parse(&Method::GET, &uri, &headers).unwrap_err().code(),
        "InvalidArgument"
    );
}

#[test]
fn payload_markers_are_parsed_and_signed() {
    let (uri, headers) = signed(&Method::PUT, "/b/k", "s3", UNSIGNED_PAYLOAD);
    let parsed = parse(&Method::PUT, &uri, &headers).unwrap().unwrap();
    assert_eq!(parsed.payload(), &PayloadHash::Unsigned);
    let verified = verify(
        parsed,
        &Method::PUT,
        &uri,
        &headers,
        &SecretKey::new("keyhole-test-secret"),
        time(),
    )
    .unwrap();
    assert!(verified.payload_verifier().is_none());
    assert!(verified.chunk_decoder().is_none());

    // Swapping a declared hash for UNSIGNED-PAYLOAD breaks the signature.
    let (uri, mut headers) = signed(&Method::PUT, "/b/k", "s3", &sha256_hex(b"body"));
    headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static(UNSIGNED_PAYLOAD),
    );
    assert_eq!(
        check(&Method::PUT, &uri, &headers, time()),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

/// STS and IAM clients (boto3) send no `x-amz-content-sha256`: the body hash is the payload.
#[test]
fn query_protocol_bodies_are_verified_with_the_body_hash() {
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let uri: Uri = "http://localhost:9000/".parse().unwrap();
    let creds = credentials(None);
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "sts",
        time: time(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    sign_headers(
        &Method::POST,
        &uri,
        &mut headers,
        &sha256_hex(body),
        &params,
    )
    .unwrap();
    // boto3 signs the body hash without sending the header.
    headers.remove("x-amz-content-sha256");
    let auth = headers["authorization"]
        .to_str()
        .unwrap()
        .replace("x-amz-content-sha256;", "");
    headers.insert("authorization", auth.parse().unwrap());
    // Re-sign without the header: compute the expected signature through the public helpers.
    let names: Vec<String> = vec!["content-type".into(), "host".into(), "x-amz-date".into()];
    let creq = keyhole_sigv4::canonical_request(
        &Method::POST,
        &uri,
        &headers,
        &names,
        &sha256_hex(body),
        SigningSettings::for_service("sts"),
        false,
    );
    let scope = keyhole_sigv4::CredentialScope {
        date: "20260716".into(),
        region: "us-east-1".into(),
        service: "sts".into(),
    };
    let sts = keyhole_sigv4::string_to_sign("20260716T010000Z", &scope, &creq);
    let sig = keyhole_sigv4::signature(&creds.secret_key, &scope, &sts);
    headers.insert(
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIAKEYHOLETEST/{scope}, SignedHeaders=content-type;host;x-amz-date, Signature={sig}"
        )
        .parse()
        .unwrap(),
    );

    let secret = &creds.secret_key;
    let parsed = parse(&Method::POST, &uri, &headers).unwrap().unwrap();
    assert!(parsed.body_hash_required());
    let verified = verify_with_payload(
        parsed.clone(),
        &Method::POST,
        &uri,
        &headers,
        &sha256_hex(body),
        secret,
        time(),
    )
    .unwrap();
    let mut check_body = verified.payload_verifier().unwrap();
    check_body.update(body);
    assert_eq!(check_body.finish(), Ok(()));

    // Another body does not verify.
    assert_eq!(
        verify_with_payload(
            parsed.clone(),
            &Method::POST,
            &uri,
            &headers,
            &sha256_hex(b"Action=AssumeRole"),
            secret,
            time(),
        )
        .unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
    // Plain `verify` assumes an empty body, which this signature does not cover.
    assert_eq!(
        verify(parsed, &Method::POST, &uri, &headers, secret, time()).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );

    // With a declared hash, the given one must match it.
    let (uri, headers) = signed(&Method::PUT, "/b/k", "s3", &sha256_hex(b"declared"));
    let parsed = parse(&Method::PUT, &uri, &headers).unwrap().unwrap();
    assert_eq!(
        verify_with_payload(
            parsed,
            &Method::PUT,
            &uri,
            &headers,
            &sha256_hex(b"other"),
            secret,
            time()
        )
        .unwrap_err(),
        AuthError::ContentSha256Mismatch
    );
}

/// Review round 3: only S3 has the unsigned payload option
/// (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html); an IAM, STS
/// or keyhole request declaring `UNSIGNED-PAYLOAD` is verified against its body's hash, so its
/// signature (over `UNSIGNED-PAYLOAD`) does not match and no other body can be slipped in.
#[test]
fn unsigned_payload_binds_no_body_outside_s3() {
    let secret = SecretKey::new("keyhole-test-secret");
    for service in ["iam", "sts", "keyhole"] {
        let (uri, headers) = signed(&Method::POST, "/", service, "UNSIGNED-PAYLOAD");
        let parsed = parse(&Method::POST, &uri, &headers).unwrap().unwrap();
        let body = b"Action=CreateUser&UserName=injected&Version=2010-05-08";
        assert_eq!(
            verify_with_payload(
                parsed,
                &Method::POST,
                &uri,
                &headers,
                &sha256_hex(body),
                &secret,
                time()
            )
            .unwrap_err(),
            AuthError::SignatureDoesNotMatch,
            "{service}"
        );
    }
    // S3 keeps the option.
    let (uri, headers) = signed(&Method::PUT, "/b/k", "s3", "UNSIGNED-PAYLOAD");
    assert_eq!(check(&Method::PUT, &uri, &headers, time()), Ok(()));
}

#[test]
fn session_token_is_reported_and_signed_in_headers() {
    let uri: Uri = "http://localhost:9000/b/k".parse().unwrap();
    let creds = credentials(Some("session-token"));
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: time(),
    };
    let mut headers = HeaderMap::new();
    sign_headers(&Method::GET, &uri, &mut headers, EMPTY_SHA256, &params).unwrap();
    let parsed = parse(&Method::GET, &uri, &headers).unwrap().unwrap();
    assert_eq!(parsed.session_token(), Some("session-token"));
    assert!(parsed
        .signed_headers()
        .iter()
        .any(|h| h == "x-amz-security-token"));
    assert_eq!(check(&Method::GET, &uri, &headers, time()), Ok(()));
    headers.insert("x-amz-security-token", HeaderValue::from_static("other"));
    assert_eq!(
        check(&Method::GET, &uri, &headers, time()),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn host_header_is_required_to_match() {
    let (uri, mut headers) = signed(
        &Method::GET,
        "http://localhost:9000/b/k",
        "s3",
        EMPTY_SHA256,
    );
    assert_eq!(headers["host"], "localhost:9000");
    assert_eq!(check(&Method::GET, &uri, &headers, time()), Ok(()));
    // HTTP/2: no Host header, the authority is used.
    headers.remove("host");
    assert_eq!(check(&Method::GET, &uri, &headers, time()), Ok(()));
    headers.insert("host", HeaderValue::from_static("evil:9000"));
    assert_eq!(
        check(&Method::GET, &uri, &headers, time()),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn debug_output_has_no_secrets_or_signatures() {
    let (uri, headers) = signed(&Method::GET, "/b/k", "s3", EMPTY_SHA256);
    let auth = headers["authorization"].to_str().unwrap();
    let signature = auth.rsplit_once("Signature=").unwrap().1;
    let parsed = parse(&Method::GET, &uri, &headers).unwrap().unwrap();
    let shown = format!("{parsed:?}");
    assert!(!shown.contains(signature), "{shown}");
    let verified = verify(
        parsed,
        &Method::GET,
        &uri,
        &headers,
        &SecretKey::new("keyhole-test-secret"),
        time(),
    )
    .unwrap();
    let shown = format!("{verified:?}");
    assert!(!shown.contains(signature));
    assert!(!shown.contains("keyhole-test-secret"));
}

/// S3 accepts the `Date` header (RFC 1123) instead of `x-amz-date`
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-auth-using-authorization-header.html>).
#[test]
fn date_header_can_replace_x_amz_date() {
    let uri: Uri = "/b/k".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost"));
    headers.insert(
        "date",
        HeaderValue::from_static("Thu, 16 Jul 2026 01:00:00 GMT"),
    );
    headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static(EMPTY_SHA256),
    );
    let scope = keyhole_sigv4::CredentialScope {
        date: "20260716".into(),
        region: "us-east-1".into(),
        service: "s3".into(),
    };
    let names = ["date", "host", "x-amz-content-sha256"];
    let creq = keyhole_sigv4::canonical_request(
        &Method::GET,
        &uri,
        &headers,
        &names,
        EMPTY_SHA256,
        SigningSettings::for_service("s3"),
        false,
    );
    let to_sign = keyhole_sigv4::string_to_sign("20260716T010000Z", &scope, &creq);
    let secret = SecretKey::new("keyhole-test-secret");
    let sig = keyhole_sigv4::signature(&secret, &scope, &to_sign);
    headers.insert(
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIAKEYHOLETEST/{scope}, SignedHeaders={}, Signature={sig}",
            names.join(";")
        )
        .parse()
        .unwrap(),
    );
    let parsed = parse(&Method::GET, &uri, &headers).unwrap().unwrap();
    assert_eq!(parsed.signed_at(), time());
    assert_eq!(check(&Method::GET, &uri, &headers, time()), Ok(()));
    assert_eq!(
        check(&Method::GET, &uri, &headers, time() + Duration::minutes(16)),
        Err(AuthError::RequestTimeTooSkewed)
    );
    headers.insert(
        "date",
        HeaderValue::from_static("Thu, 16 Jul 2026 01:00:01 GMT"),
    );
    assert_eq!(
        check(&Method::GET, &uri, &headers, time()),
        Err(AuthError::SignatureDoesNotMatch)
    );
    headers.insert("date", HeaderValue::from_static("yesterday"));
    assert_eq!(
        parse(&Method::GET, &uri, &headers).unwrap_err(),
        AuthError::MissingDate
    );
}

/// botocore signs IAM and STS with an empty region when `region_name=''`
/// (`AKID/20260716//sts/aws4_request`); the global services accept it, S3 does not.
#[test]
fn empty_region_is_a_valid_scope_for_the_global_services_only() {
    let creds = credentials(None);
    for (service, accepted) in [("sts", true), ("iam", true), ("s3", false)] {
        let uri: Uri = "http://localhost:9000/".parse().unwrap();
        let mut headers = HeaderMap::new();
        let params = SigningParams {
            credentials: &creds,
            region: "",
            service,
            time: time(),
        };
        sign_headers(&Method::POST, &uri, &mut headers, EMPTY_SHA256, &params).unwrap();
        let auth = headers["authorization"].to_str().unwrap().to_owned();
        assert!(
            auth.contains(&format!("/20260716//{service}/aws4_request")),
            "{auth}"
        );
        let result = check(&Method::POST, &uri, &headers, time());
        if accepted {
            assert_eq!(result, Ok(()), "{service}");
        } else {
            let error = result.unwrap_err();
            assert_eq!(error.code(), "AuthorizationHeaderMalformed", "{service}");
            assert!(error.message().contains("Credential is mal-formed"));
        }
    }
}
