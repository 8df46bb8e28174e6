//! AWS Signature Version 4 for keyhole: parse, verify and sign requests. Pure: no I/O.
//!
//! The request path is [`parse`] (shape only; `Ok(None)` means anonymous) → look up the secret
//! of [`SignedRequest::access_key_id`] → [`verify`] (or [`verify_with_payload`] for non-S3
//! requests whose payload hash is that of the body) → [`VerifiedRequest`], the only proof of
//! authentication the server accepts. The body is then checked while it streams: with
//! [`VerifiedRequest::payload_verifier`] (declared SHA-256) or decoded with
//! [`VerifiedRequest::chunk_decoder`] (aws-chunked, signed chunks and trailers).
//!
//! Supported: `AWS4-HMAC-SHA256` in the `Authorization` header, in the query (presigned
//! URLs, at most 7 days) and in the fields of a browser-form POST ([`parse_post`]), `UNSIGNED-PAYLOAD`, `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`,
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with `x-amz-checksum-{crc32,crc32c,sha1,sha256,crc64nvme}`
//! trailers. Not supported (refused with a clear error): SigV2, SigV4a (ECDSA), other trailers.
//!
//! # Security
//!
//! - Signatures, chunk signatures, trailer signatures, payload hashes and checksums are compared
//!   in constant time (`subtle`).
//! - [`SecretKey`] and derived signing keys are zeroized on drop and print as `***`; no error
//!   or `Debug` output contains a secret, a signing key or a signature.
//! - Header-signed requests must be within 15 minutes of the server clock; presigned URLs must
//!   not be expired, not be dated more than 15 minutes ahead, and live at most 7 days.
//! - A presigned S3 request must sign every `x-amz-*` header it carries.
//! - A chunk's data is released only after its signature verified; chunks are chained, so none
//!   can be dropped, reordered or replaced; the body must end with the final chunk (and the
//!   announced trailers). Trailer checksums are known only at the end: commit a body only after
//!   [`ChunkDecoder::finish`] / [`PayloadVerifier::finish`] succeed.
//! - For non-S3 services without `x-amz-content-sha256`, [`verify`] assumes an empty body and
//!   its [`PayloadVerifier`] rejects any other body; use [`verify_with_payload`] for bodies.

mod canonical;
mod chunked;
mod err;
mod parse;
mod post;
mod secret;
mod sign;
mod verify;

pub use canonical::{
    canonical_query, canonical_request, canonical_uri, format_amz_date, lower_hex, parse_amz_date,
    sha256_hex, signature, string_to_sign, CredentialScope, SigningSettings, ALGORITHM,
    EMPTY_SHA256, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
};
pub use chunked::{
    checksum_base64, combine_crc, ChecksumHasher, ChecksumKind, ChecksumVerifier, ChunkDecoder,
    MAX_CHUNK_SIZE,
};
pub use err::AuthError;
pub use parse::{parse, AuthKind, PayloadHash, SignedRequest};
pub use post::{parse_post, PostAuthFields};
pub use secret::{Credentials, SecretKey};
pub use sign::{
    presign, presign_with, sign_headers, sign_headers_with, ChunkSigner, SigningParams,
};
pub use verify::{
    verify, verify_with_payload, PayloadVerifier, VerifiedRequest, MAX_CLOCK_SKEW_SECS,
    MAX_PRESIGN_EXPIRES_SECS,
};
