//! Decoding aws-chunked bodies (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`,
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER`) while verifying chained chunk signatures and trailers.
//!
//! A chunk is `hex-size;chunk-signature=<sig>\r\n<data>\r\n`; the last one has size 0 and is
//! followed by optional trailer lines and an empty line
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>).
//! Each chunk signature signs the previous one, so chunks cannot be dropped, reordered or
//! altered.
//!
//! # Security
//!
//! Data of a signed chunk is released only after its signature is verified: the decoder holds
//! at most one chunk (capped at [`MAX_CHUNK_SIZE`]). Trailer checksums are compared when the
//! trailers arrive, after all data was released: callers must not commit a body before
//! [`ChunkDecoder::finish`] succeeds.

use std::fmt;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::canonical::{hmac_sha256, sha256_hex, EMPTY_SHA256};
use crate::err::AuthError;
use crate::secret::SigningKey;

/// Largest accepted chunk.
pub const MAX_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// Longest accepted chunk header line.
const MAX_LINE: usize = 4096;
/// Largest accepted trailer section.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// A checksum algorithm that can be announced in `x-amz-trailer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    /// `x-amz-checksum-crc32`.
    Crc32,
    /// `x-amz-checksum-crc32c`.
    Crc32c,
    /// `x-amz-checksum-sha1`.
    Sha1,
    /// `x-amz-checksum-sha256`.
    Sha256,
    /// `x-amz-checksum-crc64nvme` (CRC-64/NVME, the AWS SDKs' full-object checksum).
    Crc64Nvme,
}

impl ChecksumKind {
    /// The checksum named by a (lowercase) trailer header name.
    #[must_use]
    pub fn from_header_name(name: &str) -> Option<Self> {
        match name {
            "x-amz-checksum-crc32" => Some(Self::Crc32),
            "x-amz-checksum-crc32c" => Some(Self::Crc32c),
            "x-amz-checksum-sha1" => Some(Self::Sha1),
            "x-amz-checksum-sha256" => Some(Self::Sha256),
            "x-amz-checksum-crc64nvme" => Some(Self::Crc64Nvme),
            _ => None,
        }
    }

    /// The trailer header name.
    #[must_use]
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    /// The algorithm's name as S3 spells it (`CRC32`, `CRC32C`, `SHA1`, `SHA256`, `CRC64NVME`).
    #[must_use]
    pub fn algorithm(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Crc64Nvme => "CRC64NVME",
        }
    }

    /// The algorithm named as S3 spells it (`x-amz-checksum-algorithm`,
    /// `x-amz-sdk-checksum-algorithm`, `ChecksumAlgorithm`), case aside.
    #[must_use]
    pub fn from_algorithm(name: &str) -> Option<Self> {
        [
            Self::Crc32,
            Self::Crc32c,
            Self::Sha1,
            Self::Sha256,
            Self::Crc64Nvme,
        ]
        .into_iter()
        .find(|k| k.algorithm().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this is a CRC, whose values of consecutive pieces combine into the value of the
    /// whole ([`combine_crc`]), so a multipart object can have a full-object checksum.
    #[must_use]
    pub fn is_crc(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64Nvme)
    }
}

/// The value of a CRC of `a ++ b` from the CRC of `a` and the CRC of `b` (`len_b` bytes), all as
/// big-endian bytes (as S3 base64-encodes them); `None` for a digest that is not a CRC or a value
/// of the wrong width.
#[must_use]
pub fn combine_crc(kind: ChecksumKind, a: &[u8], b: &[u8], len_b: u64) -> Option<Vec<u8>> {
    let algorithm = match kind {
        ChecksumKind::Crc32 => crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        ChecksumKind::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
        ChecksumKind::Crc64Nvme => crc_fast::CrcAlgorithm::Crc64Nvme,
        ChecksumKind::Sha1 | ChecksumKind::Sha256 => return None,
    };
    let width = if kind == ChecksumKind::Crc64Nvme {
        8
    } else {
        4
    };
    if a.len() != width || b.len() != width {
        return None;
    }
    let mut wa = [0u8; 8];
    let mut wb = [0u8; 8];
    wa.get_mut(8 - width..)?.copy_from_slice(a);
    wb.get_mut(8 - width..)?.copy_from_slice(b);
    let c = crc_fast::checksum_combine(
        algorithm,
        u64::from_be_bytes(wa),
        u64::from_be_bytes(wb),
        len_b,
    );
    Some(c.to_be_bytes().get(8 - width..)?.to_vec())
}

/// A running checksum of one of S3's algorithms, for a server that stores what it received.
#[derive(Clone)]
pub struct ChecksumHasher {
    kind: ChecksumKind,
    checksum: Checksum,
}

impl std::fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumHasher")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ChecksumHasher {
    /// A new checksum of `kind`.
    #[must_use]
    pub fn new(kind: ChecksumKind) -> ChecksumHasher {
        ChecksumHasher {
            kind,
            checksum: Checksum::new(kind),
        }
    }

    /// Its algorithm.
    #[must_use]
    pub fn kind(&self) -> ChecksumKind {
        self.kind
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.checksum.update(data);
    }

    /// The digest, big-endian bytes.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        self.checksum.finish()
    }

    /// The digest in base64, as S3 sends it.
    #[must_use]
    pub fn finish_base64(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.checksum.finish())
    }
}

/// A running checksum of the decoded data.
#[derive(Clone)]
pub(crate) enum Checksum {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Sha1(Sha1),
    Sha256(Sha256),
    Crc64Nvme(crc_fast::Digest),
}

impl Checksum {
    pub(crate) fn new(kind: ChecksumKind) -> Self {
        match kind {
            ChecksumKind::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            ChecksumKind::Crc32c => Self::Crc32c(0),
            ChecksumKind::Sha1 => Self::Sha1(Sha1::new()),
            ChecksumKind::Sha256 => Self::Sha256(Sha256::new()),
            ChecksumKind::Crc64Nvme => {
                Self::Crc64Nvme(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
            }
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(hasher) => hasher.update(data),
            Self::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            Self::Sha1(hasher) => hasher.update(data),
            Self::Sha256(hasher) => hasher.update(data),
            Self::Crc64Nvme(digest) => digest.update(data),
        }
    }

    /// The big-endian digest bytes, as AWS base64-encodes them.
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Self::Crc32(hasher) => hasher.finalize().to_be_bytes().to_vec(),
            Self::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            Self::Sha1(hasher) => hasher.finalize().to_vec(),
            Self::Sha256(hasher) => hasher.finalize().to_vec(),
            Self::Crc64Nvme(digest) => digest.finalize().to_be_bytes().to_vec(),
        }
    }
}

/// The string to sign of one chunk.
pub(crate) fn chunk_string_to_sign(
    amz_date: &str,
    scope: &str,
    previous: &[u8; 32],
    data: &[u8],
) -> String {
    format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{}\n{EMPTY_SHA256}\n{}",
        hex::encode(previous),
        sha256_hex(data)
    )
}

/// The string to sign of the trailers (`name:value\n` each, in the order sent).
pub(crate) fn trailer_string_to_sign(
    amz_date: &str,
    scope: &str,
    previous: &[u8; 32],
    canonical_trailers: &str,
) -> String {
    format!(
        "AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{}\n{}",
        hex::encode(previous),
        sha256_hex(canonical_trailers.as_bytes())
    )
}

/// What chunk signatures are checked against.
#[derive(Clone)]
struct Chain {
    key: SigningKey,
    previous: [u8; 32],
    amz_date: String,
    scope: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk header line.
    Header,
    /// Expecting `size` data bytes and CRLF.
    Data {
        size: usize,
        signature: Option<[u8; 32]>,
    },
    /// After the final chunk: trailer lines until an empty line.
    Trailers,
    /// The body is complete and verified.
    Done,
    /// An error occurred; the body is rejected.
    Failed,
}

/// Decodes and verifies an aws-chunked body. Obtain it from
/// [`crate::VerifiedRequest::chunk_decoder`].
pub struct ChunkDecoder {
    chain: Option<Chain>,
    /// Whether trailer lines may follow the final chunk.
    trailers_allowed: bool,
    checksum: Option<(ChecksumKind, Checksum)>,
    decoded_length: Option<u64>,
    decoded: u64,
    buf: BytesMut,
    state: State,
    trailer_lines: Vec<(String, String)>,
    trailer_bytes: usize,
    error: Option<AuthError>,
    /// The announced trailer checksum, once verified: its kind and canonical base64.
    verified: Option<(ChecksumKind, String)>,
}

impl fmt::Debug for ChunkDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkDecoder")
            .field("signed", &self.chain.is_some())
            .field("state", &self.state)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

impl ChunkDecoder {
    pub(crate) fn signed(
        key: SigningKey,
        seed: [u8; 32],
        amz_date: String,
        scope: String,
        checksum: Option<ChecksumKind>,
        trailers_allowed: bool,
        decoded_length: Option<u64>,
    ) -> Self {
        let mut decoder = Self::unsigned(checksum, decoded_length);
        decoder.trailers_allowed = trailers_allowed;
        decoder.chain = Some(Chain {
            key,
            previous: seed,
            amz_date,
            scope,
        });
        decoder
    }

    pub(crate) fn unsigned(checksum: Option<ChecksumKind>, decoded_length: Option<u64>) -> Self {
        Self {
            chain: None,
            trailers_allowed: true,
            checksum: checksum.map(|kind| (kind, Checksum::new(kind))),
            decoded_length,
            decoded: 0,
            buf: BytesMut::new(),
            state: State::Header,
            trailer_lines: Vec::new(),
            trailer_bytes: 0,
            error: None,
            verified: None,
        }
    }

    /// The checksum announced in `x-amz-trailer`, if any (known before the body is read).
    #[must_use]
    pub fn checksum_kind(&self) -> Option<ChecksumKind> {
        self.checksum
            .as_ref()
            .map(|(kind, _)| *kind)
            .or(self.verified.as_ref().map(|(kind, _)| *kind))
    }

    /// Number of payload bytes decoded and verified so far.
    #[must_use]
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// Feeds raw body bytes; returns the payload bytes decoded and verified so far (possibly
    /// empty). After an error every later call fails too.
    ///
    /// # Errors
    ///
    /// `SignatureDoesNotMatch` for a chunk or trailer signature, `InvalidRequest` for a
    /// malformed or oversized chunk or data after the end, `BadDigest`/`InvalidDigest` for the
    /// trailer checksum.
    pub fn feed(&mut self, input: &[u8]) -> Result<Bytes, AuthError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        match self.feed_inner(input) {
            Ok(out) => Ok(out),
            Err(error) => {
                self.state = State::Failed;
                self.buf.clear();
                self.error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Checks the end of the body.
    ///
    /// # Errors
    ///
    /// `IncompleteBody` if the final chunk (and the trailers) did not arrive or fewer bytes
    /// than `x-amz-decoded-content-length` were decoded; an earlier error again.
    pub fn finish(self) -> Result<(), AuthError> {
        self.finish_checksum().map(|_| ())
    }

    /// [`ChunkDecoder::finish`] that also gives the trailer checksum it verified (its kind and
    /// canonical base64), if one was announced.
    ///
    /// # Errors
    /// Those of `finish`.
    pub fn finish_checksum(self) -> Result<Option<(ChecksumKind, String)>, AuthError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.state != State::Done {
            return Err(AuthError::IncompleteBody);
        }
        match self.decoded_length {
            Some(expected) if expected != self.decoded => Err(AuthError::IncompleteBody),
            _ => Ok(self.verified),
        }
    }

    fn feed_inner(&mut self, input: &[u8]) -> Result<Bytes, AuthError> {
        self.buf.extend_from_slice(input);
        let mut released: Vec<Bytes> = Vec::new();
        loop {
            match self.state {
                State::Header => {
                    let Some(line) = self.take_line(MAX_LINE)? else {
                        break;
                    };
                    self.state = self.parse_header(&line)?;
                }
                State::Data { size, signature } => {
                    if size == 0 {
                        self.verify_chunk(signature, &[])?;
                        self.state = State::Trailers;
                        continue;
                    }
                    let needed = size.saturating_add(2);
                    if self.buf.len() < needed {
                        break;
                    }
                    let data = self.buf.split_to(size).freeze();
                    let crlf = self.buf.split_to(2);
                    if crlf.as_ref() != b"\r\n" {
                        return Err(AuthError::ChunkMalformed(
                            "chunk data is not followed by CRLF".to_owned(),
                        ));
                    }
                    self.verify_chunk(signature, &data)?;
                    self.decoded = self.decoded.saturating_add(data.len() as u64);
                    if let Some(expected) = self.decoded_length {
                        if self.decoded > expected {
                            return Err(AuthError::DecodedLengthExceeded);
                        }
                    }
                    if let Some((_, checksum)) = &mut self.checksum {
                        checksum.update(&data);
                    }
                    released.push(data);
                    self.state = State::Header;
                }
                State::Trailers => {
                    let limit = MAX_TRAILER_BYTES.saturating_sub(self.trailer_bytes);
                    let Some(line) = self.take_line(limit)? else {
                        break;
                    };
                    self.trailer_bytes = self.trailer_bytes.saturating_add(line.len() + 2);
                    if line.is_empty() {
                        self.check_trailers()?;
                        self.state = State::Done;
                    } else {
                        self.push_trailer(&line)?;
                    }
                }
                State::Done => {
                    if !self.buf.is_empty() {
                        return Err(AuthError::ChunkMalformed(
                            "data after the final chunk".to_owned(),
                        ));
                    }
                    break;
                }
                State::Failed => return Err(AuthError::IncompleteBody),
            }
        }
        Ok(match released.len() {
            0 => Bytes::new(),
            1 => released.pop().unwrap_or_default(),
            _ => {
                let mut out = BytesMut::with_capacity(released.iter().map(Bytes::len).sum());
                for part in released {
                    out.extend_from_slice(&part);
                }
                out.freeze()
            }
        })
    }

    /// Takes one line (without its `\r\n` or `\n`) if complete; errors past `limit` bytes.
    fn take_line(&mut self, limit: usize) -> Result<Option<String>, AuthError> {
        let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
            if self.buf.len() > limit {
                return Err(AuthError::ChunkMalformed("line too long".to_owned()));
            }
            return Ok(None);
        };
        if end > limit {
            return Err(AuthError::ChunkMalformed("line too long".to_owned()));
        }
        let line = self.buf.split_to(end + 1);
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        String::from_utf8(line.to_vec())
            .map(Some)
            .map_err(|_| AuthError::ChunkMalformed("line is not UTF-8".to_owned()))
    }

    fn parse_header(&self, line: &str) -> Result<State, AuthError> {
        let (size, extensions) = line.split_once(';').unwrap_or((line, ""));
        let size = size.trim();
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::ChunkMalformed(
                "chunk size is not hexadecimal".to_owned(),
            ));
        }
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| AuthError::ChunkMalformed("chunk size is not hexadecimal".to_owned()))?;
        if size > MAX_CHUNK_SIZE {
            return Err(AuthError::ChunkTooLarge(size));
        }
        let size = usize::try_from(size).map_err(|_| AuthError::ChunkTooLarge(size))?;
        let signature = if self.chain.is_some() {
            let value = extensions
                .trim()
                .strip_prefix("chunk-signature=")
                .ok_or_else(|| {
                    AuthError::ChunkMalformed("chunk-signature is missing".to_owned())
                })?;
            let mut signature = [0u8; 32];
            if value.len() != 64 || hex::decode_to_slice(value, &mut signature).is_err() {
                return Err(AuthError::ChunkMalformed(
                    "chunk-signature is not 64 hexadecimal digits".to_owned(),
                ));
            }
            Some(signature)
        } else {
            None
        };
        Ok(State::Data { size, signature })
    }

    fn verify_chunk(&mut self, signature: Option<[u8; 32]>, data: &[u8]) -> Result<(), AuthError> {
        let Some(chain) = &mut self.chain else {
            return Ok(());
        };
        let Some(signature) = signature else {
            return Err(AuthError::ChunkMalformed(
                "chunk-signature is missing".to_owned(),
            ));
        };
        let to_sign = chunk_string_to_sign(&chain.amz_date, &chain.scope, &chain.previous, data);
        let computed = hmac_sha256(&chain.key.0, to_sign.as_bytes());
        if !bool::from(computed.ct_eq(&signature)) {
            return Err(AuthError::ChunkSignatureDoesNotMatch);
        }
        chain.previous = computed;
        Ok(())
    }

    fn push_trailer(&mut self, line: &str) -> Result<(), AuthError> {
        if !self.trailers_allowed {
            return Err(AuthError::ChunkMalformed(
                "trailers were not announced".to_owned(),
            ));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            AuthError::ChunkMalformed("trailer is not of the form name:value".to_owned())
        })?;
        if self.trailer_lines.len() >= 16 {
            return Err(AuthError::ChunkMalformed("too many trailers".to_owned()));
        }
        self.trailer_lines
            .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        Ok(())
    }

    /// Verifies the trailer signature (signed streaming) and the announced checksum.
    fn check_trailers(&mut self) -> Result<(), AuthError> {
        let lines = std::mem::take(&mut self.trailer_lines);
        let mut trailer_signature = None;
        let mut canonical = String::new();
        let mut checksum_value = None;
        let announced = self.checksum.as_ref().map(|(kind, _)| *kind);
        for (name, value) in &lines {
            if name == "x-amz-trailer-signature" {
                if trailer_signature.replace(value.as_str()).is_some() {
                    return Err(AuthError::ChunkMalformed(
                        "duplicate x-amz-trailer-signature".to_owned(),
                    ));
                }
                continue;
            }
            if trailer_signature.is_some() {
                return Err(AuthError::ChunkMalformed(
                    "x-amz-trailer-signature must be the last trailer".to_owned(),
                ));
            }
            match announced {
                Some(kind) if kind.header_name() == name => {
                    if checksum_value.replace(value.as_str()).is_some() {
                        return Err(AuthError::ChunkMalformed(format!(
                            "duplicate trailer `{name}`"
                        )));
                    }
                }
                _ => {
                    return Err(AuthError::ChunkMalformed(format!(
                        "trailer `{}` was not announced in x-amz-trailer",
                        name.chars().take(64).collect::<String>()
                    )))
                }
            }
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(value);
            canonical.push('\n');
        }
        if let Some(chain) = &self.chain {
            if self.trailers_allowed {
                let value = trailer_signature.ok_or_else(|| {
                    AuthError::ChunkMalformed("x-amz-trailer-signature is missing".to_owned())
                })?;
                let mut signature = [0u8; 32];
                if value.len() != 64 || hex::decode_to_slice(value, &mut signature).is_err() {
                    return Err(AuthError::ChunkMalformed(
                        "x-amz-trailer-signature is not 64 hexadecimal digits".to_owned(),
                    ));
                }
                let to_sign = trailer_string_to_sign(
                    &chain.amz_date,
                    &chain.scope,
                    &chain.previous,
                    &canonical,
                );
                let computed = hmac_sha256(&chain.key.0, to_sign.as_bytes());
                if !bool::from(computed.ct_eq(&signature)) {
                    return Err(AuthError::ChunkSignatureDoesNotMatch);
                }
            }
        } else if trailer_signature.is_some() {
            return Err(AuthError::ChunkMalformed(
                "x-amz-trailer-signature in an unsigned body".to_owned(),
            ));
        }
        if let Some((kind, checksum)) = self.checksum.take() {
            let value = checksum_value.ok_or(AuthError::IncompleteBody)?;
            self.verified = Some((kind, compare_checksum(kind, checksum, value)?));
        }
        Ok(())
    }
}

/// Compares a running checksum with the base64 value the client sent (constant time).
fn compare_checksum(
    kind: ChecksumKind,
    checksum: Checksum,
    sent_b64: &str,
) -> Result<String, AuthError> {
    let sent = base64::engine::general_purpose::STANDARD
        .decode(sent_b64.trim())
        .map_err(|_| AuthError::InvalidChecksum(kind.header_name().to_owned()))?;
    let computed = checksum.finish();
    if sent.len() != computed.len() {
        return Err(AuthError::InvalidChecksum(kind.header_name().to_owned()));
    }
    if !bool::from(sent.ct_eq(&computed)) {
        return Err(AuthError::ChecksumMismatch(kind.algorithm().to_owned()));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(computed))
}

/// Checks an `x-amz-checksum-*` request header against the body actually received (for bodies
/// that are not aws-chunked; aws-chunked trailers are checked by [`ChunkDecoder`]).
pub struct ChecksumVerifier {
    kind: ChecksumKind,
    expected: String,
    checksum: Checksum,
}

impl std::fmt::Debug for ChecksumVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumVerifier")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ChecksumVerifier {
    /// Expects the body's `kind` checksum to be `expected_b64`.
    #[must_use]
    pub fn new(kind: ChecksumKind, expected_b64: &str) -> ChecksumVerifier {
        ChecksumVerifier {
            kind,
            expected: expected_b64.to_owned(),
            checksum: Checksum::new(kind),
        }
    }

    /// Feeds body bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.checksum.update(data);
    }

    /// At the end of the body: `BadDigest` when the checksum differs, `InvalidDigest` when the
    /// sent value is not a checksum of that kind.
    ///
    /// # Errors
    /// [`AuthError::ChecksumMismatch`] or [`AuthError::InvalidChecksum`].
    pub fn finish(self) -> Result<(), AuthError> {
        self.finish_value().map(|_| ())
    }

    /// [`ChecksumVerifier::finish`] that also gives the verified checksum (its kind and its
    /// canonical base64).
    ///
    /// # Errors
    /// Those of `finish`.
    pub fn finish_value(self) -> Result<(ChecksumKind, String), AuthError> {
        let kind = self.kind;
        let value = compare_checksum(kind, self.checksum, &self.expected)?;
        Ok((kind, value))
    }

    /// The algorithm it checks.
    #[must_use]
    pub fn kind(&self) -> ChecksumKind {
        self.kind
    }
}

/// Base64 of the checksum of `data`, as sent in a `x-amz-checksum-*` trailer.
#[must_use]
pub fn checksum_base64(kind: ChecksumKind, data: &[u8]) -> String {
    let mut checksum = Checksum::new(kind);
    checksum.update(data);
    base64::engine::general_purpose::STANDARD.encode(checksum.finish())
}

#[cfg(test)]
mod checksum_verifier_tests {
    use super::*;

    #[test]
    fn header_checksums_are_checked_against_the_body() {
        for kind in [
            ChecksumKind::Crc32,
            ChecksumKind::Crc32c,
            ChecksumKind::Sha1,
            ChecksumKind::Sha256,
        ] {
            let good = checksum_base64(kind, b"hello world");
            let mut v = ChecksumVerifier::new(kind, &good);
            v.update(b"hello ");
            v.update(b"world");
            assert!(v.finish().is_ok(), "{kind:?}");
            let mut v = ChecksumVerifier::new(kind, &good);
            v.update(b"hello there");
            assert_eq!(v.finish().unwrap_err().code(), "BadDigest", "{kind:?}");
            let v = ChecksumVerifier::new(kind, "not base64!");
            assert_eq!(v.finish().unwrap_err().code(), "InvalidDigest", "{kind:?}");
        }
    }
}

#[cfg(test)]
mod combine_tests {
    use super::*;

    /// A CRC of a whole equals the CRCs of its pieces combined, for every CRC S3 offers; the
    /// digests refuse.
    #[test]
    fn crcs_of_pieces_combine_into_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for kind in [
            ChecksumKind::Crc32,
            ChecksumKind::Crc32c,
            ChecksumKind::Crc64Nvme,
        ] {
            for cut in [0usize, 1, 4096, 9_999, 10_000] {
                let (a, b) = data.split_at(cut);
                let whole = {
                    let mut h = ChecksumHasher::new(kind);
                    h.update(&data);
                    h.finish()
                };
                let ha = {
                    let mut h = ChecksumHasher::new(kind);
                    h.update(a);
                    h.finish()
                };
                let hb = {
                    let mut h = ChecksumHasher::new(kind);
                    h.update(b);
                    h.finish()
                };
                assert_eq!(
                    combine_crc(kind, &ha, &hb, b.len() as u64).as_deref(),
                    Some(whole.as_slice()),
                    "{kind:?} cut at {cut}"
                );
            }
        }
        assert!(combine_crc(ChecksumKind::Sha256, &[0; 32], &[0; 32], 1).is_none());
        assert!(combine_crc(ChecksumKind::Crc32, &[0; 8], &[0; 4], 1).is_none());
    }

    #[test]
    fn algorithms_are_named_as_s3_names_them() {
        for kind in [
            ChecksumKind::Crc32,
            ChecksumKind::Crc32c,
            ChecksumKind::Sha1,
            ChecksumKind::Sha256,
            ChecksumKind::Crc64Nvme,
        ] {
            assert_eq!(ChecksumKind::from_algorithm(kind.algorithm()), Some(kind));
            assert_eq!(
                ChecksumKind::from_algorithm(&kind.algorithm().to_ascii_lowercase()),
                Some(kind)
            );
        }
        assert_eq!(ChecksumKind::from_algorithm("MD5"), None);
    }
}
