//! The checksums S3 stores with an object (`x-amz-checksum-*`): which algorithm a write's object
//! gets, the headers and XML elements that carry them, and how a multipart object's checksum is
//! made from its parts'.
//!
//! What S3 does (Checking object integrity,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity-upload.html>;
//! the `Checksum`, `ObjectPart` and `CompletedPart` API types):
//! - a single-request upload stores the checksum the client sent (verified against the body) or,
//!   when it sent none, a CRC64NVME S3 computes ("the default checksum"); its type is
//!   `FULL_OBJECT`;
//! - a multipart upload is created with an algorithm and a type: `COMPOSITE` (CRC32, CRC32C,
//!   SHA1, SHA256: the checksum of the parts' checksums, with `-N` appended) or `FULL_OBJECT`
//!   (CRC32, CRC32C, CRC64NVME: a checksum of every byte); without one, CRC64NVME full-object.
//!   Every part's checksum is kept in the upload's algorithm: the client's, or computed when the
//!   part came without one;
//! - the checksum is returned on GET and HEAD only when asked for (`x-amz-checksum-mode:
//!   ENABLED`) and only for the whole object (not for a range).
//!
//! The gateway never trusts a value it did not check: a client's checksum is stored only after
//! the body reader verified it, every other value is computed here from the bytes.

use bytes::Bytes;
use keyhole_sigv4::{combine_crc, ChecksumHasher, ChecksumKind};
use keyhole_store::{ChecksumSpec, ChecksumType, ObjectChecksum, PartInfo, StoreError};

use crate::backend::{BoxFuture, Payload};
use crate::error::S3Error;

/// The algorithm S3 adds to an object uploaded without a checksum.
pub const DEFAULT: ChecksumKind = ChecksumKind::Crc64Nvme;

/// The response header of an algorithm (`x-amz-checksum-crc32`).
#[must_use]
pub fn header_name(algorithm: &str) -> String {
    format!("x-amz-checksum-{}", algorithm.to_ascii_lowercase())
}

/// The XML element of an algorithm (`ChecksumCRC32`).
#[must_use]
pub fn element(algorithm: &str) -> String {
    format!("Checksum{}", algorithm.to_ascii_uppercase())
}

/// The headers that carry a stored checksum: `x-amz-checksum-<alg>` and `x-amz-checksum-type`.
#[must_use]
pub fn headers(c: &ObjectChecksum) -> Vec<(String, String)> {
    vec![
        (header_name(&c.algorithm), c.value.clone()),
        ("x-amz-checksum-type".to_owned(), c.kind.as_str().to_owned()),
    ]
}

/// A stored checksum read back from the headers that carry it (an upstream's answer, or
/// [`headers`]).
#[must_use]
pub fn from_headers(extra: &[(String, String)]) -> Option<ObjectChecksum> {
    let (kind, value) = extra.iter().find_map(|(name, value)| {
        ChecksumKind::from_header_name(name).map(|k| (k, value.clone()))
    })?;
    let declared = extra
        .iter()
        .find(|(name, _)| name == "x-amz-checksum-type")
        .and_then(|(_, v)| ChecksumType::parse(v));
    let kind_of_value = if value.contains('-') {
        ChecksumType::Composite
    } else {
        ChecksumType::FullObject
    };
    Some(ObjectChecksum {
        algorithm: kind.algorithm().to_owned(),
        kind: declared.unwrap_or(kind_of_value),
        value,
    })
}

/// A full-object checksum of `kind`.
#[must_use]
pub fn full_object(kind: ChecksumKind, value: String) -> ObjectChecksum {
    ObjectChecksum {
        algorithm: kind.algorithm().to_owned(),
        kind: ChecksumType::FullObject,
        value,
    }
}

fn invalid_request(message: String) -> S3Error {
    S3Error::invalid_request(message)
}

/// The checksum a CreateMultipartUpload asks for (`x-amz-checksum-algorithm`,
/// `x-amz-checksum-type`). The type defaults to `FULL_OBJECT` for CRC64NVME (its only type) and
/// `COMPOSITE` for the others; SHA1 and SHA256 have no full-object type and CRC64NVME no
/// composite one.
///
/// # Errors
/// `InvalidRequest` for an unknown algorithm or type, a type without an algorithm, or a type the
/// algorithm does not have.
pub fn spec_from_headers(
    algorithm: Option<&str>,
    kind: Option<&str>,
) -> Result<Option<ChecksumSpec>, S3Error> {
    let Some(algorithm) = algorithm else {
        if kind.is_some() {
            return Err(invalid_request(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.".to_owned(),
            ));
        }
        return Ok(None);
    };
    let alg = ChecksumKind::from_algorithm(algorithm).ok_or_else(|| {
        invalid_request(format!(
            "Checksum algorithm `{algorithm}` is not supported: use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256."
        ))
    })?;
    let kind = match kind {
        None if alg == ChecksumKind::Crc64Nvme => ChecksumType::FullObject,
        None => ChecksumType::Composite,
        Some(k) => ChecksumType::parse(k).ok_or_else(|| {
            invalid_request(format!(
                "Checksum type `{k}` is not supported: use FULL_OBJECT or COMPOSITE."
            ))
        })?,
    };
    match (alg, kind) {
        (ChecksumKind::Sha1 | ChecksumKind::Sha256, ChecksumType::FullObject) => {
            Err(invalid_request(format!(
                "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                alg.algorithm()
            )))
        }
        (ChecksumKind::Crc64Nvme, ChecksumType::Composite) => Err(invalid_request(
            "The COMPOSITE checksum type cannot be used with the CRC64NVME checksum algorithm."
                .to_owned(),
        )),
        _ => Ok(Some(ChecksumSpec {
            algorithm: alg.algorithm().to_owned(),
            kind,
        })),
    }
}

/// The algorithm of an upload's parts: the one it was created with, else the default.
///
/// # Errors
/// An internal error for a stored algorithm that is not one (a corrupt record).
pub fn part_algorithm(spec: Option<&ChecksumSpec>) -> Result<ChecksumKind, S3Error> {
    match spec {
        None => Ok(DEFAULT),
        Some(s) => ChecksumKind::from_algorithm(&s.algorithm).ok_or_else(|| {
            S3Error::internal(std::io::Error::other(format!(
                "stored checksum algorithm `{}`",
                s.algorithm
            )))
        }),
    }
}

/// A payload that also computes a checksum of `want` over the bytes passing through, unless
/// the client's own checksum of that algorithm is verified by the payload (then that one is
/// taken, and nothing is computed twice).
pub struct Digesting<'a> {
    inner: &'a mut dyn Payload,
    want: ChecksumKind,
    hasher: Option<ChecksumHasher>,
}

impl<'a> Digesting<'a> {
    /// Wraps `inner`, to end with a checksum of `want`.
    pub fn new(inner: &'a mut dyn Payload, want: ChecksumKind) -> Digesting<'a> {
        let hasher = (inner.checksum_kind() != Some(want)).then(|| ChecksumHasher::new(want));
        Digesting {
            inner,
            want,
            hasher,
        }
    }

    /// After the verified end: the checksum of `want` (base64).
    ///
    /// # Errors
    /// An internal error if the payload announced a checksum of `want` but verified none.
    pub fn finish(self) -> Result<String, S3Error> {
        match self.hasher {
            Some(h) => Ok(h.finish_base64()),
            None => match self.inner.verified_checksum() {
                Some((kind, value)) if kind == self.want => Ok(value),
                _ => Err(S3Error::internal(std::io::Error::other(
                    "the body's announced checksum was not verified",
                ))),
            },
        }
    }
}

impl Payload for Digesting<'_> {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, S3Error>> {
        Box::pin(async move {
            let chunk = self.inner.next().await?;
            if let (Some(h), Some(c)) = (&mut self.hasher, &chunk) {
                h.update(c);
            }
            Ok(chunk)
        })
    }

    fn checksum_kind(&self) -> Option<ChecksumKind> {
        self.inner.checksum_kind()
    }

    fn verified_checksum(&self) -> Option<(ChecksumKind, String)> {
        self.inner.verified_checksum()
    }

    fn defer_ready(&mut self) {
        self.inner.defer_ready();
    }

    fn ready(&mut self) -> BoxFuture<'_, Result<(), S3Error>> {
        self.inner.ready()
    }
}

fn b64(value: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
}

fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What a CompleteMultipartUpload sent about checksums: each listed part's (algorithm, value),
/// in the order listed, and the whole object's (`x-amz-checksum-<alg>` header).
#[derive(Debug, Clone, Default)]
pub struct CompleteChecksums {
    /// Per listed part: the `Checksum<ALG>` element, if any.
    pub parts: Vec<Option<(ChecksumKind, String)>>,
    /// The `x-amz-checksum-<alg>` header, if any.
    pub whole: Option<(ChecksumKind, String)>,
}

/// The object's checksum from the upload's checksum and the chosen parts' checksums, checking
/// what the client sent: a listed part whose checksum differs from the stored one is
/// `InvalidPart` (as a wrong ETag is), a whole-object checksum that differs is `BadDigest`, one
/// of another algorithm than the upload's is `InvalidRequest`. `None` when some part has no
/// stored checksum (parts staged before checksums were stored).
///
/// # Errors
/// As above.
pub fn complete(
    spec: Option<&ChecksumSpec>,
    parts: &[PartInfo],
    sent: &CompleteChecksums,
) -> Result<Option<ObjectChecksum>, StoreError> {
    let alg = match spec {
        None => DEFAULT,
        Some(s) => ChecksumKind::from_algorithm(&s.algorithm)
            .ok_or_else(|| StoreError::Index(format!("checksum algorithm `{}`", s.algorithm)))?,
    };
    let kind = spec.map_or(ChecksumType::FullObject, |s| s.kind);
    // The whole-object checksum is checked first: a client that sent a wrong one learns that,
    // whatever else is wrong.
    let computed = object_checksum(alg, kind, parts)?;
    if let Some((sent_alg, sent_value)) = &sent.whole {
        if *sent_alg != alg {
            return Err(StoreError::InvalidArgument {
                reason: format!(
                    "the upload was created with the {} checksum algorithm; x-amz-checksum-{} cannot be checked against it",
                    alg.algorithm(),
                    sent_alg.algorithm().to_ascii_lowercase()
                ),
            });
        }
        let matches = computed.as_ref().is_some_and(|c| {
            let (want, want_n) = split_count(&c.value);
            let (got, got_n) = split_count(sent_value);
            b64(want).is_some() && b64(want) == b64(got) && (got_n.is_none() || got_n == want_n)
        });
        if !matches {
            return Err(StoreError::BadDigest);
        }
    }
    for (listed, part) in sent.parts.iter().zip(parts) {
        let Some((sent_alg, sent_value)) = listed else {
            continue;
        };
        if *sent_alg != alg {
            if spec.is_some() {
                return Err(StoreError::InvalidPart);
            }
            // An upload without an algorithm keeps only the default checksum of its parts:
            // another algorithm's value cannot be checked here (the part's own request was).
            continue;
        }
        let stored = part.checksum.as_deref().and_then(b64);
        if stored.is_none() || stored != b64(sent_value) {
            return Err(StoreError::InvalidPart);
        }
    }
    Ok(computed)
}

/// `value-N` → (`value`, `Some(N)`).
fn split_count(v: &str) -> (&str, Option<&str>) {
    match v.trim().rsplit_once('-') {
        Some((value, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (value, Some(n))
        }
        _ => (v.trim(), None),
    }
}

fn object_checksum(
    alg: ChecksumKind,
    kind: ChecksumType,
    parts: &[PartInfo],
) -> Result<Option<ObjectChecksum>, StoreError> {
    let mut raw = Vec::with_capacity(parts.len());
    for p in parts {
        let Some(v) = p.checksum.as_deref().and_then(b64) else {
            return Ok(None);
        };
        raw.push((v, p.size));
    }
    let value = match kind {
        ChecksumType::Composite => {
            let mut h = ChecksumHasher::new(alg);
            for (v, _) in &raw {
                h.update(v);
            }
            format!("{}-{}", h.finish_base64(), raw.len())
        }
        ChecksumType::FullObject => {
            let mut acc: Option<Vec<u8>> = None;
            for (v, size) in &raw {
                acc = Some(match acc {
                    None => v.clone(),
                    Some(a) => combine_crc(alg, &a, v, *size).ok_or_else(|| {
                        StoreError::Index(format!(
                            "a part checksum is not a {} value",
                            alg.algorithm()
                        ))
                    })?,
                });
            }
            match acc {
                Some(a) => b64_encode(&a),
                None => return Ok(None),
            }
        }
    };
    Ok(Some(ObjectChecksum {
        algorithm: alg.algorithm().to_owned(),
        kind,
        value,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, data: &[u8], alg: ChecksumKind) -> PartInfo {
        let mut h = ChecksumHasher::new(alg);
        h.update(data);
        PartInfo {
            part_number: n,
            etag: String::new(),
            size: data.len() as u64,
            last_modified: chrono::Utc::now(),
            checksum: Some(h.finish_base64()),
        }
    }

    fn whole(alg: ChecksumKind, data: &[u8]) -> String {
        let mut h = ChecksumHasher::new(alg);
        h.update(data);
        h.finish_base64()
    }

    /// The composite SHA256 of ceph/s3-tests' `test_multipart_checksum_sha256`: one 1 KiB part
    /// of `A`s, whose checksum AWS documents as the SHA256 of the part's SHA256, `-1`.
    #[test]
    fn composite_is_the_checksum_of_the_part_checksums_with_the_count() {
        let data = vec![b'A'; 1024];
        let spec = spec_from_headers(Some("SHA256"), None).unwrap();
        let parts = [part(1, &data, ChecksumKind::Sha256)];
        assert_eq!(
            parts[0].checksum.as_deref(),
            Some("arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0=")
        );
        let c = complete(spec.as_ref(), &parts, &CompleteChecksums::default())
            .unwrap()
            .unwrap();
        assert_eq!(c.kind, ChecksumType::Composite);
        assert_eq!(c.value, "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1");
    }

    #[test]
    fn full_object_crcs_equal_the_crc_of_the_whole_object() {
        let a = vec![1u8; 5000];
        let b = vec![2u8; 3000];
        let c = vec![3u8; 17];
        let all: Vec<u8> = [a.clone(), b.clone(), c.clone()].concat();
        for (alg, header) in [
            (ChecksumKind::Crc32, Some("CRC32")),
            (ChecksumKind::Crc32c, Some("CRC32C")),
            (ChecksumKind::Crc64Nvme, Some("CRC64NVME")),
            (ChecksumKind::Crc64Nvme, None),
        ] {
            let spec = spec_from_headers(header, header.map(|_| "FULL_OBJECT")).unwrap();
            let parts = [part(1, &a, alg), part(2, &b, alg), part(3, &c, alg)];
            let got = complete(spec.as_ref(), &parts, &CompleteChecksums::default())
                .unwrap()
                .unwrap();
            assert_eq!(got.kind, ChecksumType::FullObject);
            assert_eq!(got.value, whole(alg, &all), "{alg:?}");
        }
    }

    #[test]
    fn what_the_client_sent_is_checked() {
        let data = vec![b'A'; 1024];
        let spec = spec_from_headers(Some("SHA256"), None).unwrap();
        let parts = [part(1, &data, ChecksumKind::Sha256)];
        let good = "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1";
        let sent = |whole: Option<&str>, part: Option<&str>| CompleteChecksums {
            parts: vec![part.map(|p| (ChecksumKind::Sha256, p.to_owned()))],
            whole: whole.map(|w| (ChecksumKind::Sha256, w.to_owned())),
        };
        let ok = parts[0].checksum.clone();
        assert!(complete(spec.as_ref(), &parts, &sent(Some(good), ok.as_deref())).is_ok());
        // Without the -N too.
        assert!(complete(
            spec.as_ref(),
            &parts,
            &sent(Some(good.trim_end_matches("-1")), None)
        )
        .is_ok());
        assert!(matches!(
            complete(spec.as_ref(), &parts, &sent(Some("bad"), ok.as_deref())),
            Err(StoreError::BadDigest)
        ));
        assert!(matches!(
            complete(
                spec.as_ref(),
                &parts,
                &sent(Some(&good.replace("-1", "-2")), None)
            ),
            Err(StoreError::BadDigest)
        ));
        assert!(matches!(
            complete(
                spec.as_ref(),
                &parts,
                &sent(None, Some(&whole(ChecksumKind::Sha256, b"x")))
            ),
            Err(StoreError::InvalidPart)
        ));
        let other = CompleteChecksums {
            parts: vec![None],
            whole: Some((ChecksumKind::Crc32, "AAAAAA==".to_owned())),
        };
        assert!(matches!(
            complete(spec.as_ref(), &parts, &other),
            Err(StoreError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn parts_without_stored_checksums_give_no_object_checksum() {
        let mut p = part(1, b"abc", DEFAULT);
        p.checksum = None;
        assert_eq!(
            complete(None, &[p], &CompleteChecksums::default()).unwrap(),
            None
        );
    }

    #[test]
    fn upload_specs_follow_the_types_each_algorithm_has() {
        let s = |a: Option<&str>, t: Option<&str>| spec_from_headers(a, t);
        assert_eq!(s(None, None).unwrap(), None);
        assert_eq!(
            s(Some("sha256"), None).unwrap().unwrap().kind,
            ChecksumType::Composite
        );
        assert_eq!(
            s(Some("CRC64NVME"), None).unwrap().unwrap().kind,
            ChecksumType::FullObject
        );
        assert_eq!(
            s(Some("CRC32"), Some("FULL_OBJECT")).unwrap().unwrap().kind,
            ChecksumType::FullObject
        );
        for (a, t) in [
            (Some("SHA1"), Some("FULL_OBJECT")),
            (Some("CRC64NVME"), Some("COMPOSITE")),
            (Some("MD5"), None),
            (None, Some("COMPOSITE")),
            (Some("CRC32"), Some("PARTIAL")),
        ] {
            assert_eq!(s(a, t).unwrap_err().code(), "InvalidRequest", "{a:?} {t:?}");
        }
    }

    #[test]
    fn stored_checksums_round_trip_through_their_headers() {
        for c in [
            full_object(ChecksumKind::Crc32, "AAAAAA==".to_owned()),
            ObjectChecksum {
                algorithm: "SHA256".to_owned(),
                kind: ChecksumType::Composite,
                value: "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1".to_owned(),
            },
        ] {
            assert_eq!(from_headers(&headers(&c)), Some(c));
        }
        assert_eq!(from_headers(&[]), None);
    }
}
