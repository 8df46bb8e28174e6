//! aws-chunked bodies: chained chunk signatures, trailers (signed and unsigned), limits.
//! Formats: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html> and
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, Method, Uri};
use keyhole_sigv4::{
    checksum_base64, parse, sign_headers, verify, AuthError, ChecksumKind, ChunkDecoder,
    ChunkSigner, Credentials, PayloadHash, SecretKey, SigningParams, STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER,
};

fn time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 16, 1, 0, 0).unwrap()
}

fn credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIAKEYHOLETEST".to_owned(),
        secret_key: SecretKey::new("keyhole-test-secret"),
        session_token: None,
    }
}

fn params(creds: &Credentials) -> SigningParams<'_> {
    SigningParams {
        credentials: creds,
        region: "us-east-1",
        service: "s3",
        time: time(),
    }
}

/// A signed streaming PUT: its decoder and a chunk signer chained from its seed.
fn streaming(
    payload: &str,
    trailer: Option<&str>,
    decoded_length: Option<u64>,
) -> (ChunkDecoder, ChunkSigner) {
    let creds = credentials();
    let method = Method::PUT;
    let uri: Uri = "http://localhost:9000/bucket/key".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("content-encoding", "aws-chunked".parse().unwrap());
    if let Some(trailer) = trailer {
        headers.insert("x-amz-trailer", trailer.parse().unwrap());
    }
    if let Some(length) = decoded_length {
        headers.insert("x-amz-decoded-content-length", length.into());
    }
    sign_headers(&method, &uri, &mut headers, payload, &params(&creds)).unwrap();
    let authorization = headers["authorization"].to_str().unwrap();
    let seed = authorization
        .rsplit_once("Signature=")
        .unwrap()
        .1
        .to_owned();
    let parsed = parse(&method, &uri, &headers).unwrap().unwrap();
    let verified = verify(parsed, &method, &uri, &headers, &creds.secret_key, time()).unwrap();
    let decoder = verified.chunk_decoder().expect("a streaming payload");
    (decoder, ChunkSigner::new(&seed, &params(&creds)))
}

fn decode_all(decoder: &mut ChunkDecoder, body: &[u8]) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::new();
    for piece in body.chunks(1000) {
        out.extend_from_slice(&decoder.feed(piece)?);
    }
    Ok(out)
}

#[test]
fn signed_chunks_round_trip() {
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, Some(10_000));
    let mut body = signer.chunk(&[1u8; 8192]);
    body.extend(signer.chunk(&[2u8; 1808]));
    body.extend(signer.final_chunk());
    let out = decode_all(&mut decoder, &body).unwrap();
    assert_eq!(out.len(), 10_000);
    assert_eq!(&out[..8192], &[1u8; 8192][..]);
    assert_eq!(decoder.decoded_len(), 10_000);
    decoder.finish().unwrap();
}

#[test]
fn data_is_not_released_before_its_chunk_is_verified() {
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    let chunk = signer.chunk(&[7u8; 4096]);
    let (head, tail) = chunk.split_at(chunk.len() - 1);
    assert!(decoder.feed(head).unwrap().is_empty());
    assert_eq!(decoder.feed(tail).unwrap().len(), 4096);
}

#[test]
fn tampered_chunk_is_rejected_and_not_released() {
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    let first = signer.chunk(&[1u8; 100]);
    let mut second = signer.chunk(&[2u8; 100]);
    let at = second.len() - 10;
    second[at] ^= 1;
    assert_eq!(decoder.feed(&first).unwrap().len(), 100);
    assert_eq!(
        decoder.feed(&second),
        Err(AuthError::ChunkSignatureDoesNotMatch)
    );
    // The decoder stays failed.
    assert_eq!(
        decoder.feed(&signer.final_chunk()),
        Err(AuthError::ChunkSignatureDoesNotMatch)
    );
    assert_eq!(decoder.finish(), Err(AuthError::ChunkSignatureDoesNotMatch));
}

#[test]
fn reordered_chunks_are_rejected() {
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    let first = signer.chunk(b"first chunk");
    let second = signer.chunk(b"second chunk");
    let error = decoder.feed(&[second, first].concat()).unwrap_err();
    assert_eq!(error, AuthError::ChunkSignatureDoesNotMatch);
    assert_eq!(error.code(), "SignatureDoesNotMatch");
}

#[test]
fn a_chunk_from_another_upload_is_rejected() {
    let (mut decoder, _) = streaming(STREAMING_PAYLOAD, None, None);
    let (_, mut other) = streaming(STREAMING_PAYLOAD, Some("x-amz-checksum-crc32"), None);
    assert_eq!(
        decoder.feed(&other.chunk(b"data")),
        Err(AuthError::ChunkSignatureDoesNotMatch)
    );
}

#[test]
fn missing_final_chunk_is_an_incomplete_body() {
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    decoder.feed(&signer.chunk(b"data")).unwrap();
    let error = decoder.finish().unwrap_err();
    assert_eq!(error, AuthError::IncompleteBody);
    assert_eq!(error.code(), "IncompleteBody");

    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    let chunk = signer.chunk(b"data that is cut");
    decoder.feed(&chunk[..chunk.len() - 3]).unwrap();
    assert_eq!(decoder.finish(), Err(AuthError::IncompleteBody));

    // The final chunk without its closing CRLF.
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    decoder.feed(&signer.chunk(b"data")).unwrap();
    let last = signer.final_chunk();
    decoder.feed(&last[..last.len() - 2]).unwrap();
    assert_eq!(decoder.finish(), Err(AuthError::IncompleteBody));
}

#[test]
fn dropping_the_final_chunk_signature_chain_is_detected() {
    // A final chunk signed as if a data chunk were skipped.
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    let first = signer.chunk(b"kept");
    let _skipped = signer.chunk(b"dropped");
    let last = signer.final_chunk();
    decoder.feed(&first).unwrap();
    assert_eq!(
        decoder.feed(&last),
        Err(AuthError::ChunkSignatureDoesNotMatch)
    );
}

#[test]
fn decoded_length_is_enforced() {
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, Some(5));
    let mut body = signer.chunk(b"abc");
    body.extend(signer.final_chunk());
    decode_all(&mut decoder, &body).unwrap();
    assert_eq!(decoder.finish(), Err(AuthError::IncompleteBody));

    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, Some(2));
    assert_eq!(
        decoder.feed(&signer.chunk(b"abc")),
        Err(AuthError::DecodedLengthExceeded)
    );
}

#[test]
fn oversized_and_malformed_chunks_are_rejected() {
    let (mut decoder, _) = streaming(STREAMING_PAYLOAD, None, None);
    let header = format!("1000001;chunk-signature={}\r\n", "0".repeat(64));
    assert_eq!(
        decoder.feed(header.as_bytes()),
        Err(AuthError::ChunkTooLarge(0x100_0001))
    );

    let (mut decoder, _) = streaming(STREAMING_PAYLOAD, None, None);
    assert!(matches!(
        decoder.feed(b"zz;chunk-signature=00\r\n"),
        Err(AuthError::ChunkMalformed(_))
    ));

    let (mut decoder, _) = streaming(STREAMING_PAYLOAD, None, None);
    assert!(matches!(
        decoder.feed(b"4\r\ndata\r\n"),
        Err(AuthError::ChunkMalformed(_))
    ));

    let (mut decoder, _) = streaming(STREAMING_PAYLOAD, None, None);
    assert!(matches!(
        decoder.feed(&vec![b'1'; 5000]),
        Err(AuthError::ChunkMalformed(_))
    ));

    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    let mut body = signer.final_chunk();
    body.extend_from_slice(b"extra");
    assert!(matches!(
        decoder.feed(&body),
        Err(AuthError::ChunkMalformed(_))
    ));
}

#[test]
fn signed_trailer_with_checksum() {
    let data = b"hello world";
    for kind in [
        ChecksumKind::Crc32,
        ChecksumKind::Crc32c,
        ChecksumKind::Sha1,
        ChecksumKind::Sha256,
        ChecksumKind::Crc64Nvme,
    ] {
        let name = kind.header_name();
        let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD_TRAILER, Some(name), None);
        let mut body = signer.chunk(data);
        body.extend(signer.final_chunk_with_trailers(&[(name, &checksum_base64(kind, data))]));
        assert_eq!(decode_all(&mut decoder, &body).unwrap(), data);
        decoder.finish().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn checksum_values_match_known_digests() {
    let data = b"hello world";
    assert_eq!(checksum_base64(ChecksumKind::Crc32, data), "DUoRhQ==");
    assert_eq!(checksum_base64(ChecksumKind::Crc32c, data), "yZRlqg==");
    assert_eq!(
        checksum_base64(ChecksumKind::Sha1, data),
        "Kq5sNclPz7QV2+lfQIuc6R7oRu0="
    );
    assert_eq!(
        checksum_base64(ChecksumKind::Sha256, data),
        "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
    );
    // CRC-64/NVME: check value 0xAE8B14860A799888 for "123456789" (the NVMe specification's
    // CRC-64, as the AWS SDKs compute it), base64 of the big-endian bytes.
    assert_eq!(
        checksum_base64(ChecksumKind::Crc64Nvme, b"123456789"),
        "rosUhgp5mIg="
    );
    assert_eq!(
        checksum_base64(ChecksumKind::Crc64Nvme, data),
        "jSnVw/bqjr4="
    );
}

#[test]
fn signed_trailer_checksum_mismatch() {
    let name = "x-amz-checksum-crc32";
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD_TRAILER, Some(name), None);
    let mut body = signer.chunk(b"hello world");
    let wrong = checksum_base64(ChecksumKind::Crc32, b"hello worle");
    body.extend(signer.final_chunk_with_trailers(&[(name, &wrong)]));
    let error = decode_all(&mut decoder, &body).unwrap_err();
    assert_eq!(error, AuthError::ChecksumMismatch("CRC32".to_owned()));
    assert_eq!(error.code(), "BadDigest");
    assert_eq!(decoder.finish(), Err(error));
}

#[test]
fn signed_trailer_tampering_is_rejected() {
    let name = "x-amz-checksum-crc32";
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD_TRAILER, Some(name), None);
    let mut body = signer.chunk(b"hello world");
    let good = checksum_base64(ChecksumKind::Crc32, b"hello world");
    let trailer = signer.final_chunk_with_trailers(&[(name, &good)]);
    let text = String::from_utf8(trailer).unwrap();
    // The value replaced by another (valid-looking) one after signing.
    body.extend(text.replace(&good, "AAAAAA==").into_bytes());
    assert_eq!(
        decode_all(&mut decoder, &body),
        Err(AuthError::ChunkSignatureDoesNotMatch)
    );

    // The trailer signature removed.
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD_TRAILER, Some(name), None);
    let mut body = signer.chunk(b"hello world");
    let text = String::from_utf8(signer.final_chunk_with_trailers(&[(name, &good)])).unwrap();
    let without: String = text
        .split_inclusive("\r\n")
        .filter(|line| !line.starts_with("x-amz-trailer-signature"))
        .collect();
    body.extend(without.into_bytes());
    assert!(matches!(
        decode_all(&mut decoder, &body),
        Err(AuthError::ChunkMalformed(_))
    ));

    // Trailers cut off.
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD_TRAILER, Some(name), None);
    let mut body = signer.chunk(b"hello world");
    let trailer = signer.final_chunk_with_trailers(&[(name, &good)]);
    body.extend_from_slice(&trailer[..trailer.len() - 2]);
    decode_all(&mut decoder, &body).unwrap();
    assert_eq!(decoder.finish(), Err(AuthError::IncompleteBody));
}

#[test]
fn trailers_are_refused_when_not_announced() {
    let (mut decoder, mut signer) = streaming(STREAMING_PAYLOAD, None, None);
    let mut body = signer.chunk(b"data");
    body.extend(signer.final_chunk_with_trailers(&[("x-amz-checksum-crc32", "AAAAAA==")]));
    assert!(matches!(
        decode_all(&mut decoder, &body),
        Err(AuthError::ChunkMalformed(_))
    ));
}

/// An unsigned streaming upload: `hex-size\r\ndata\r\n`, `0\r\n`, the checksum trailer.
fn unsigned_body(chunks: &[&[u8]], trailers: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for chunk in chunks {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    body.extend_from_slice(trailers.as_bytes());
    body.extend_from_slice(b"\r\n");
    body
}

#[test]
fn unsigned_payload_trailer_variant() {
    let name = "x-amz-checksum-crc32c";
    let (mut decoder, _) = streaming(STREAMING_UNSIGNED_TRAILER, Some(name), Some(11));
    let good = checksum_base64(ChecksumKind::Crc32c, b"hello world");
    let body = unsigned_body(&[b"hello ", b"world"], &format!("{name}:{good}\r\n"));
    assert_eq!(decode_all(&mut decoder, &body).unwrap(), b"hello world");
    decoder.finish().unwrap();

    let (mut decoder, _) = streaming(STREAMING_UNSIGNED_TRAILER, Some(name), None);
    let body = unsigned_body(&[b"hello ", b"w0rld"], &format!("{name}:{good}\r\n"));
    assert_eq!(
        decode_all(&mut decoder, &body),
        Err(AuthError::ChecksumMismatch("CRC32C".to_owned()))
    );

    let (mut decoder, _) = streaming(STREAMING_UNSIGNED_TRAILER, Some(name), None);
    let body = unsigned_body(&[b"hello world"], "");
    assert_eq!(
        decode_all(&mut decoder, &body),
        Err(AuthError::IncompleteBody)
    );

    let (mut decoder, _) = streaming(STREAMING_UNSIGNED_TRAILER, Some(name), None);
    let body = unsigned_body(&[b"hello world"], &format!("{name}:not base64!\r\n"));
    let error = decode_all(&mut decoder, &body).unwrap_err();
    assert_eq!(error.code(), "InvalidDigest");

    let (mut decoder, _) = streaming(STREAMING_UNSIGNED_TRAILER, Some(name), None);
    let body = unsigned_body(&[b"hello world"], &format!("{name}:{good}\r\n"));
    decoder.feed(&body[..body.len() - 4]).unwrap();
    assert_eq!(decoder.finish(), Err(AuthError::IncompleteBody));
}

#[test]
fn unsupported_trailer_is_refused_at_verify() {
    let creds = credentials();
    let method = Method::PUT;
    let uri: Uri = "http://localhost:9000/bucket/key".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-amz-trailer", "x-amz-checksum-md5".parse().unwrap());
    sign_headers(
        &method,
        &uri,
        &mut headers,
        STREAMING_UNSIGNED_TRAILER,
        &params(&creds),
    )
    .unwrap();
    let parsed = parse(&method, &uri, &headers).unwrap().unwrap();
    assert_eq!(parsed.payload(), &PayloadHash::StreamingUnsignedTrailer);
    let error = verify(parsed, &method, &uri, &headers, &creds.secret_key, time()).unwrap_err();
    assert_eq!(
        error,
        AuthError::UnsupportedTrailer("x-amz-checksum-md5".to_owned())
    );
    assert_eq!(error.code(), "InvalidRequest");
}
