//! AWS's published S3 SigV4 examples, verbatim: credentials AKIAIOSFODNN7EXAMPLE /
//! wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, bucket `examplebucket`, 2013-05-24.
//!
//! - Single chunk: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>
//! - Multiple chunks: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>
//! - Presigned URL: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use http::{HeaderMap, Method, Uri};
use keyhole_sigv4::{
    canonical_request, parse, presign, sha256_hex, sign_headers, string_to_sign, verify, AuthError,
    ChunkSigner, Credentials, PayloadHash, SecretKey, SigningParams, SigningSettings, EMPTY_SHA256,
    STREAMING_PAYLOAD,
};

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const HOST: &str = "examplebucket.s3.amazonaws.com";

fn time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).unwrap()
}

fn credentials() -> Credentials {
    Credentials {
        access_key_id: AKID.to_owned(),
        secret_key: SecretKey::new(SECRET),
        session_token: None,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

fn authorization(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders={signed_headers},Signature={signature}"
    )
}

/// Verifies the documented request, then re-signs it with `sign_headers` and expects the
/// documented signature.
fn check_header_example(
    method: Method,
    uri: &str,
    pairs: Vec<(&str, &str)>,
    signed_headers: &str,
    signature: &str,
) {
    let uri: Uri = uri.parse().unwrap();
    let auth = authorization(signed_headers, signature);
    let unsigned = headers(&pairs);
    let mut pairs = pairs;
    pairs.push(("authorization", auth.as_str()));
    let map = headers(&pairs);
    let parsed = parse(&method, &uri, &map).unwrap().unwrap();
    assert_eq!(parsed.access_key_id(), AKID);
    let secret = SecretKey::new(SECRET);
    verify(parsed, &method, &uri, &map, &secret, time()).unwrap();

    let mut resigned = unsigned.clone();
    resigned.remove("x-amz-date");
    let payload = unsigned["x-amz-content-sha256"]
        .to_str()
        .unwrap()
        .to_owned();
    let creds = credentials();
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: time(),
    };
    sign_headers(&method, &uri, &mut resigned, &payload, &params).unwrap();
    let got = resigned["authorization"].to_str().unwrap();
    assert!(got.ends_with(&format!("Signature={signature}")), "{got}");
    assert!(
        got.contains(&format!("SignedHeaders={signed_headers},")),
        "{got}"
    );

    let wrong = SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ");
    let parsed = parse(&method, &uri, &map).unwrap().unwrap();
    assert_eq!(
        verify(parsed, &method, &uri, &map, &wrong, time()).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

/// sig-v4-header-based-auth.html, "Example: GET Object" (Range: bytes=0-9).
#[test]
fn doc_sig_v4_header_based_auth_get_object() {
    let uri: Uri = "/test.txt".parse().unwrap();
    let map = headers(&[
        ("host", HOST),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
    ]);
    let names = ["host", "range", "x-amz-content-sha256", "x-amz-date"];
    let creq = canonical_request(
        &Method::GET,
        &uri,
        &map,
        &names,
        EMPTY_SHA256,
        SigningSettings::for_service("s3"),
        false,
    );
    assert_eq!(
        creq,
        format!(
            "GET\n/test.txt\n\nhost:{HOST}\nrange:bytes=0-9\nx-amz-content-sha256:{EMPTY_SHA256}\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
        )
    );
    let scope = keyhole_sigv4::CredentialScope {
        date: "20130524".into(),
        region: "us-east-1".into(),
        service: "s3".into(),
    };
    assert_eq!(
        string_to_sign("20130524T000000Z", &scope, &creq),
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
         7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
    check_header_example(
        Method::GET,
        "/test.txt",
        vec![
            ("host", HOST),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ],
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
}

/// sig-v4-header-based-auth.html, "Example: PUT Object" (`test$file.text`, Date header,
/// storage class), with the body checked by the payload verifier.
#[test]
fn doc_sig_v4_header_based_auth_put_object() {
    let body = b"Welcome to Amazon S3.";
    let payload = sha256_hex(body);
    assert_eq!(
        payload,
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    );
    let signature = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
    let signed = "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class";
    let pairs = vec![
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("host", HOST),
        ("x-amz-content-sha256", payload.as_str()),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
    ];
    // `$` sent raw and sent encoded give the same canonical URI, `/test%24file.text`.
    for uri in ["/test$file.text", "/test%24file.text"] {
        check_header_example(Method::PUT, uri, pairs.clone(), signed, signature);
    }

    let uri: Uri = "/test$file.text".parse().unwrap();
    let auth = authorization(signed, signature);
    let mut with_auth = pairs.clone();
    with_auth.push(("authorization", &auth));
    let map = headers(&with_auth);
    let parsed = parse(&Method::PUT, &uri, &map).unwrap().unwrap();
    assert!(matches!(parsed.payload(), PayloadHash::Sha256(_)));
    let verified = verify(
        parsed,
        &Method::PUT,
        &uri,
        &map,
        &SecretKey::new(SECRET),
        time(),
    )
    .unwrap();
    let mut body_check = verified.payload_verifier().unwrap();
    body_check.update(&body[..7]);
    body_check.update(&body[7..]);
    assert_eq!(body_check.finish(), Ok(()));
    let mut altered = verified.payload_verifier().unwrap();
    altered.update(b"Welcome to Amazon S4.");
    assert_eq!(altered.finish(), Err(AuthError::ContentSha256Mismatch));
    assert!(verified.chunk_decoder().is_none());
}

/// sig-v4-header-based-auth.html, "Example: GET Bucket Lifecycle".
#[test]
fn doc_sig_v4_header_based_auth_get_bucket_lifecycle() {
    check_header_example(
        Method::GET,
        "/?lifecycle",
        vec![
            ("host", HOST),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ],
        "host;x-amz-content-sha256;x-amz-date",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    );
}

/// sig-v4-header-based-auth.html, "Example: Get Bucket (List Objects)", query out of order.
#[test]
fn doc_sig_v4_header_based_auth_list_objects() {
    for uri in ["/?max-keys=2&prefix=J", "/?prefix=J&max-keys=2"] {
        check_header_example(
            Method::GET,
            uri,
            vec![
                ("host", HOST),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", "20130524T000000Z"),
            ],
            "host;x-amz-content-sha256;x-amz-date",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        );
    }
}

const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const CHUNK_SIGNATURES: [&str; 3] = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];

fn streaming_example_headers() -> HeaderMap {
    headers(&[
        ("host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (
            "authorization",
            &format!(
                "AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;\
                 x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature={SEED}"
            ),
        ),
        ("x-amz-content-sha256", STREAMING_PAYLOAD),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("content-length", "66824"),
    ])
}

fn streaming_example_body() -> Vec<u8> {
    let mut body = Vec::new();
    for (size, signature) in [65536usize, 1024, 0].into_iter().zip(CHUNK_SIGNATURES) {
        body.extend_from_slice(format!("{size:x};chunk-signature={signature}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'a', size));
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// sigv4-streaming.html, "Example: PUT Object": the seed signature verifies and the 64 KiB +
/// 1 KiB + final chunks decode, whatever the read sizes.
#[test]
fn doc_sigv4_streaming_put_object_chunked() {
    let uri: Uri = "/examplebucket/chunkObject.txt".parse().unwrap();
    let map = streaming_example_headers();
    let body = streaming_example_body();
    assert_eq!(body.len(), 66824, "Content-Length of the example");
    let secret = SecretKey::new(SECRET);
    let parsed = parse(&Method::PUT, &uri, &map).unwrap().unwrap();
    assert_eq!(
        parsed.payload(),
        &PayloadHash::StreamingSigned { trailer: false }
    );
    let verified = verify(parsed, &Method::PUT, &uri, &map, &secret, time()).unwrap();
    assert!(verified.payload_verifier().is_none());
    for step in [1, 7, 4096, 65_624, body.len()] {
        let mut decoder = verified.chunk_decoder().unwrap();
        let mut out = Vec::new();
        for piece in body.chunks(step) {
            out.extend_from_slice(&decoder.feed(piece).unwrap());
        }
        assert_eq!(decoder.decoded_len(), 66560);
        decoder.finish().unwrap();
        assert_eq!(out.len(), 66560);
        assert!(out.iter().all(|&b| b == b'a'));
    }

    // The signer reproduces the documented chunk signatures from the seed.
    let creds = credentials();
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: time(),
    };
    let mut signer = ChunkSigner::new(SEED, &params);
    let mut encoded = signer.chunk(&[b'a'; 65536]);
    encoded.extend(signer.chunk(&[b'a'; 1024]));
    encoded.extend(signer.final_chunk());
    assert_eq!(encoded, body);
}

/// The trailer signature of the AWS CRT chunk-signing test (awslabs/aws-crt-swift
/// `ChunkSignerTests`), chained from the final chunk signature of the example above;
/// format per <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>.
#[test]
fn crt_trailer_signature_vector() {
    let creds = credentials();
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: time(),
    };
    let mut signer = ChunkSigner::new(SEED, &params);
    signer.chunk(&[b'a'; 65536]);
    signer.chunk(&[b'a'; 1024]);
    let final_chunk = signer.final_chunk();
    assert!(String::from_utf8(final_chunk)
        .unwrap()
        .contains(CHUNK_SIGNATURES[2]));
    assert_eq!(
        signer.trailer_signature("first:1st\nsecond:2nd\nthird:3rd\n"),
        "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c"
    );
}

const PRESIGNED: &str = "https://examplebucket.s3.amazonaws.com/test.txt\
    ?X-Amz-Algorithm=AWS4-HMAC-SHA256\
    &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
    &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
    &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

/// sigv4-query-string-auth.html, "An Example": the presigned GET of `test.txt` for 86400 s.
#[test]
fn doc_sigv4_query_string_auth_presigned_get() {
    let creds = credentials();
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: time(),
    };
    let uri: Uri = "https://examplebucket.s3.amazonaws.com/test.txt"
        .parse()
        .unwrap();
    let presigned = presign(&Method::GET, &uri, &HeaderMap::new(), 86400, &params).unwrap();
    assert_eq!(presigned.to_string(), PRESIGNED);

    let uri: Uri = PRESIGNED.parse().unwrap();
    let map = headers(&[("host", HOST)]);
    let secret = SecretKey::new(SECRET);
    let check = |now: DateTime<Utc>| {
        let parsed = parse(&Method::GET, &uri, &map).unwrap().unwrap();
        assert_eq!(parsed.payload(), &PayloadHash::Unsigned);
        verify(parsed, &Method::GET, &uri, &map, &secret, now).map(|_| ())
    };
    assert_eq!(check(time()), Ok(()));
    assert_eq!(check(time() + Duration::seconds(86400)), Ok(()));
    assert_eq!(
        check(time() + Duration::seconds(86401)),
        Err(AuthError::Expired)
    );
    assert_eq!(check(time() - Duration::minutes(15)), Ok(()));
    assert_eq!(
        check(time() - Duration::minutes(15) - Duration::seconds(1)),
        Err(AuthError::NotYetValid)
    );
    let expired = check(time() + Duration::days(2)).unwrap_err();
    assert_eq!(expired.code(), "AccessDenied");
    assert_eq!(expired.message(), "Request has expired");
    assert_eq!(expired.http_status(), 403);

    // Another method or path does not verify.
    let parsed = parse(&Method::PUT, &uri, &map).unwrap().unwrap();
    assert_eq!(
        verify(parsed, &Method::PUT, &uri, &map, &secret, time()).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}
