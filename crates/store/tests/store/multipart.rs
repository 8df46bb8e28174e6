//! Multipart uploads.

use std::collections::BTreeMap;

use keyhole_store::{LocalStore, ObjectMeta, StoreError, MIN_PART_SIZE};
use md5::{Digest, Md5};

use crate::common::{files_under, md5_hex, open, open_small_parts, read_all};

fn part(s: &LocalStore, key: &str, id: &str, n: u32, body: &[u8]) -> String {
    let mut w = s.new_part("bkt", key, id, n).unwrap();
    for c in body.chunks(4096) {
        w.write(c).unwrap();
    }
    assert_eq!(w.written(), body.len() as u64);
    let info = w.commit(None).unwrap();
    assert_eq!(info.part_number, n);
    assert_eq!(info.size, body.len() as u64);
    assert_eq!(info.etag, md5_hex(body));
    info.etag
}

fn body(n: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| n.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// The S3 multipart ETag, computed independently.
fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(Md5::digest(p));
    }
    format!("{}-{}", hex::encode(h.finalize()), parts.len())
}

#[test]
fn complete_assembles_in_order_and_cleans_up() {
    let (d, s) = open_small_parts();
    s.create_bucket("bkt", "r").unwrap();
    let meta = ObjectMeta {
        content_type: Some("text/plain".into()),
        user: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        ..Default::default()
    };
    let id = s.create_multipart("bkt", "big/obj", meta.clone()).unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let (p1, p2, p3, p5) = (body(1, 2000), body(2, 1500), body(3, 1024), body(5, 10));
    // Uploaded out of order, part 2 twice (the second upload replaces the first).
    let e3 = part(&s, "big/obj", &id, 3, &p3);
    let _ = part(&s, "big/obj", &id, 2, b"replaced later");
    let e2 = part(&s, "big/obj", &id, 2, &p2);
    let e1 = part(&s, "big/obj", &id, 1, &p1);
    let e5 = part(&s, "big/obj", &id, 5, &p5);
    let _e4 = part(&s, "big/obj", &id, 4, &body(4, 3000));
    assert_eq!(files_under(&d.path().join("uploads").join(&id)).len(), 5);

    let (up, parts) = s.list_parts("bkt", "big/obj", &id).unwrap();
    assert_eq!(up.key, "big/obj");
    assert_eq!(up.bucket, "bkt");
    assert_eq!(up.upload_id, id);
    assert_eq!(up.meta, meta);
    let nums: Vec<u32> = parts.iter().map(|p| p.part_number).collect();
    assert_eq!(nums, [1, 2, 3, 4, 5]);
    assert_eq!(parts[1].etag, e2);
    assert_eq!(parts[1].size, 1500);

    // Part 4 is not listed: it is discarded. Quotes on ETags are accepted.
    let listed = [
        (1, format!("\"{e1}\"")),
        (2, e2.clone()),
        (3, e3.to_uppercase()),
        (5, e5.clone()),
    ];
    let info = s
        .complete_multipart("bkt", "big/obj", &id, &listed)
        .unwrap();
    let want: Vec<u8> = [p1.as_slice(), &p2, &p3, &p5].concat();
    assert_eq!(info.size, want.len() as u64);
    assert_eq!(info.etag, multipart_etag(&[&p1, &p2, &p3, &p5]));
    assert!(info.etag.ends_with("-4"));
    assert_eq!(info.parts_count, Some(4));
    assert_eq!(info.meta, meta);
    assert_eq!(read_all(&s, "bkt", "big/obj"), want);
    assert_eq!(s.head("bkt", "big/obj").unwrap().parts_count, Some(4));

    // The upload is gone, with its staging directory.
    assert!(matches!(
        s.list_parts("bkt", "big/obj", &id),
        Err(StoreError::NoSuchUpload)
    ));
    assert!(s.list_uploads("bkt", "").unwrap().is_empty());
    assert!(!d.path().join("uploads").join(&id).exists());
    assert_eq!(files_under(&d.path().join("blobs")).len(), 1);
    assert!(files_under(&d.path().join("tmp")).is_empty());
    // Completing again with the same parts answers the same result (a retry after a lost
    // answer) and changes nothing; with other parts the upload no longer exists.
    let again = s
        .complete_multipart("bkt", "big/obj", &id, &listed)
        .unwrap();
    assert_eq!((again.etag, again.size), (info.etag.clone(), info.size));
    assert_eq!(read_all(&s, "bkt", "big/obj"), want);
    assert_eq!(files_under(&d.path().join("blobs")).len(), 1);
    assert!(matches!(
        s.complete_multipart("bkt", "big/obj", &id, &listed[..3]),
        Err(StoreError::NoSuchUpload)
    ));
    // Once the key holds another object, the completed upload is gone for good.
    crate::common::put(&s, "bkt", "big/obj", b"newer");
    assert!(matches!(
        s.complete_multipart("bkt", "big/obj", &id, &listed),
        Err(StoreError::NoSuchUpload)
    ));
}

#[test]
fn complete_errors() {
    let (_d, s) = open_small_parts();
    s.create_bucket("bkt", "r").unwrap();
    let id = s
        .create_multipart("bkt", "k", ObjectMeta::default())
        .unwrap();
    let e1 = part(&s, "k", &id, 1, &body(1, 2048));
    let e2 = part(&s, "k", &id, 2, &body(2, 100));
    let e3 = part(&s, "k", &id, 3, &body(3, 100));
    let c = |parts: &[(u32, String)]| s.complete_multipart("bkt", "k", &id, parts);
    assert!(matches!(
        c(&[(2, e2.clone()), (1, e1.clone())]),
        Err(StoreError::InvalidPartOrder)
    ));
    assert!(matches!(
        c(&[(1, e1.clone()), (1, e1.clone())]),
        Err(StoreError::InvalidPartOrder)
    ));
    assert!(matches!(
        c(&[(1, e1.clone()), (4, e2.clone())]),
        Err(StoreError::InvalidPart)
    ));
    assert!(matches!(
        c(&[(1, e2.clone())]),
        Err(StoreError::InvalidPart)
    ));
    assert!(matches!(
        c(&[(1, "garbage".into())]),
        Err(StoreError::InvalidPart)
    ));
    // Part 2 (100 bytes) is not last: too small.
    let err = c(&[(1, e1.clone()), (2, e2.clone()), (3, e3.clone())]).unwrap_err();
    assert!(matches!(err, StoreError::EntityTooSmall));
    assert_eq!(err.s3_code(), "EntityTooSmall");
    assert!(matches!(c(&[]), Err(StoreError::InvalidArgument { .. })));
    // Failed completions leave the upload intact; a valid one then succeeds.
    assert_eq!(s.list_parts("bkt", "k", &id).unwrap().1.len(), 3);
    let info = c(&[(1, e1), (3, e3)]).unwrap();
    assert_eq!(info.size, 2148);
}

#[test]
fn default_minimum_part_size_is_five_mib() {
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let id = s
        .create_multipart("bkt", "k", ObjectMeta::default())
        .unwrap();
    let small = vec![7u8; (MIN_PART_SIZE - 1) as usize];
    let e1 = part(&s, "k", &id, 1, &small);
    let e2 = part(&s, "k", &id, 2, b"tail");
    assert!(matches!(
        s.complete_multipart("bkt", "k", &id, &[(1, e1.clone()), (2, e2.clone())]),
        Err(StoreError::EntityTooSmall)
    ));
    let mut exact = small;
    exact.push(7);
    let e1 = part(&s, "k", &id, 1, &exact);
    let info = s
        .complete_multipart("bkt", "k", &id, &[(1, e1), (2, e2)])
        .unwrap();
    assert_eq!(info.size, MIN_PART_SIZE + 4);
}

#[test]
fn part_numbers_and_upload_ids_are_checked() {
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let id = s
        .create_multipart("bkt", "k", ObjectMeta::default())
        .unwrap();
    for n in [0, 10_001, u32::MAX] {
        assert!(matches!(
            s.new_part("bkt", "k", &id, n),
            Err(StoreError::InvalidArgument { .. })
        ));
    }
    assert!(s.new_part("bkt", "k", &id, 10_000).is_ok());
    for bad in ["", "../../etc", "0123", &"f".repeat(32), &"A".repeat(32)] {
        assert!(matches!(
            s.new_part("bkt", "k", bad, 1),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(matches!(
            s.list_parts("bkt", "k", bad),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(matches!(
            s.abort_multipart("bkt", "k", bad),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(matches!(
            s.complete_multipart("bkt", "k", bad, &[(1, "x".into())]),
            Err(StoreError::NoSuchUpload)
        ));
    }
    // The id belongs to key `k`: other keys and buckets do not see it.
    assert!(matches!(
        s.new_part("bkt", "other", &id, 1),
        Err(StoreError::NoSuchUpload)
    ));
    s.create_bucket("bkt2", "r").unwrap();
    assert!(matches!(
        s.list_parts("bkt2", "k", &id),
        Err(StoreError::NoSuchUpload)
    ));
    assert!(matches!(
        s.create_multipart("bkt", "", ObjectMeta::default()),
        Err(StoreError::InvalidKey { .. })
    ));
}

#[test]
fn part_bad_digest_stores_nothing() {
    let (d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let id = s
        .create_multipart("bkt", "k", ObjectMeta::default())
        .unwrap();
    let mut w = s.new_part("bkt", "k", &id, 1).unwrap();
    w.write(b"data").unwrap();
    assert!(matches!(
        w.commit(Some(crate::common::md5_bin(b"other"))),
        Err(StoreError::BadDigest)
    ));
    assert!(s.list_parts("bkt", "k", &id).unwrap().1.is_empty());
    assert!(files_under(&d.path().join("uploads")).is_empty());
    assert!(files_under(&d.path().join("tmp")).is_empty());
}

#[test]
fn abort_discards_and_late_parts_fail() {
    let (d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let id = s
        .create_multipart("bkt", "k", ObjectMeta::default())
        .unwrap();
    part(&s, "k", &id, 1, b"one");
    let mut late = s.new_part("bkt", "k", &id, 2).unwrap();
    late.write(b"late").unwrap();
    s.abort_multipart("bkt", "k", &id).unwrap();
    assert!(!d.path().join("uploads").join(&id).exists());
    assert!(matches!(late.commit(None), Err(StoreError::NoSuchUpload)));
    assert!(matches!(
        s.abort_multipart("bkt", "k", &id),
        Err(StoreError::NoSuchUpload)
    ));
    assert!(matches!(
        s.new_part("bkt", "k", &id, 1),
        Err(StoreError::NoSuchUpload)
    ));
    assert!(files_under(&d.path().join("uploads")).is_empty());
    assert!(files_under(&d.path().join("tmp")).is_empty());
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
}

#[test]
fn list_uploads_sorted_by_key_then_time() {
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    s.create_bucket("other", "r").unwrap();
    let b1 = s
        .create_multipart("bkt", "b", ObjectMeta::default())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    let a1 = s
        .create_multipart("bkt", "a/x", ObjectMeta::default())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    let b2 = s
        .create_multipart("bkt", "b", ObjectMeta::default())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    let a2 = s
        .create_multipart("bkt", "a", ObjectMeta::default())
        .unwrap();
    s.create_multipart("other", "a", ObjectMeta::default())
        .unwrap();
    let ups = s.list_uploads("bkt", "").unwrap();
    let got: Vec<(&str, &str)> = ups
        .iter()
        .map(|u| (u.key.as_str(), u.upload_id.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", a2.as_str()),
            ("a/x", a1.as_str()),
            ("b", b1.as_str()),
            ("b", b2.as_str())
        ]
    );
    assert!(ups[2].initiated < ups[3].initiated);
    assert!(ups.iter().all(|u| u.bucket == "bkt"));
    let ups = s.list_uploads("bkt", "a/").unwrap();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].upload_id, a1);
    assert!(s.list_uploads("bkt", "zzz").unwrap().is_empty());
    // Aborted and completed uploads disappear from the list.
    s.abort_multipart("bkt", "b", &b1).unwrap();
    let e = part(&s, "a", &a2, 1, b"only part");
    s.complete_multipart("bkt", "a", &a2, &[(1, e)]).unwrap();
    let keys: Vec<String> = s
        .list_uploads("bkt", "")
        .unwrap()
        .into_iter()
        .map(|u| u.upload_id)
        .collect();
    assert_eq!(keys, [a1, b2]);
}

#[test]
fn complete_replaces_an_existing_object() {
    let (d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    crate::common::put(&s, "bkt", "k", b"old body");
    let id = s
        .create_multipart("bkt", "k", ObjectMeta::default())
        .unwrap();
    let e = part(&s, "k", &id, 7, b"new body");
    let info = s.complete_multipart("bkt", "k", &id, &[(7, e)]).unwrap();
    assert_eq!(info.etag, multipart_etag(&[b"new body"]));
    assert_eq!(read_all(&s, "bkt", "k"), b"new body");
    assert_eq!(files_under(&d.path().join("blobs")).len(), 1);
}

/// Complete racing Abort of the same upload: exactly one wins; a Complete that loses answers
/// NoSuchUpload (what S3 answers for an aborted upload), never InvalidPart or an I/O error, and
/// the object is whole or absent.
#[test]
fn complete_racing_abort_has_one_clean_outcome() {
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let data = body(7, 256 * 1024);
    for round in 0..150 {
        let key = format!("race{round}");
        let id = s
            .create_multipart("bkt", &key, ObjectMeta::default())
            .unwrap();
        let etag = part(&s, &key, &id, 1, &data);
        let (s1, s2) = (s.clone(), s.clone());
        let (k1, k2, id1, id2) = (key.clone(), key.clone(), id.clone(), id.clone());
        let complete =
            std::thread::spawn(move || s1.complete_multipart("bkt", &k1, &id1, &[(1, etag)]));
        let abort = std::thread::spawn(move || s2.abort_multipart("bkt", &k2, &id2));
        let (c, a) = (complete.join().unwrap(), abort.join().unwrap());
        match c {
            Ok(info) => {
                assert!(matches!(a, Ok(()) | Err(StoreError::NoSuchUpload)), "{a:?}");
                assert_eq!(info.etag, multipart_etag(&[&data]));
                assert_eq!(read_all(&s, "bkt", &key), data);
            }
            Err(StoreError::NoSuchUpload) => {
                assert!(a.is_ok(), "{a:?}");
                assert!(matches!(s.head("bkt", &key), Err(StoreError::NoSuchKey)));
            }
            Err(other) => panic!("round {round}: complete answered {other:?}"),
        }
    }
}

/// An upload's checksum, its parts' checksums and sizes are kept: the completing caller sees
/// the chosen parts with theirs, its answer becomes the object's checksum, and the object
/// records its parts (GetObjectAttributes' `ObjectParts`); a refusal leaves the upload open.
#[test]
fn checksums_and_parts_are_kept_through_completion() {
    use keyhole_store::{ChecksumSpec, ChecksumType, ObjectChecksum, StoreError};
    let (_d, s) = open_small_parts();
    s.create_bucket("bkt", "r").unwrap();
    let spec = ChecksumSpec {
        algorithm: "SHA256".into(),
        kind: ChecksumType::Composite,
    };
    let id = s
        .create_multipart_with("bkt", "obj", ObjectMeta::default(), Some(spec.clone()))
        .unwrap();
    assert_eq!(
        s.upload("bkt", "obj", &id).unwrap().checksum,
        Some(spec.clone())
    );
    let mut etags = Vec::new();
    for (n, len) in [(1u32, 1500usize), (2, 700)] {
        let mut w = s.new_part("bkt", "obj", &id, n).unwrap();
        w.write(&body(n as u8, len)).unwrap();
        let info = w
            .commit_with_checksum(None, Some(format!("sum-{n}")))
            .unwrap();
        assert_eq!(info.checksum.as_deref(), Some(format!("sum-{n}").as_str()));
        etags.push((n, info.etag));
    }
    let (_, listed) = s.list_parts("bkt", "obj", &id).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|p| p.checksum.clone())
            .collect::<Vec<_>>(),
        [Some("sum-1".to_owned()), Some("sum-2".to_owned())]
    );
    // A refusal from the caller: nothing is written and the upload stays open.
    let refused = s.complete_multipart_with("bkt", "obj", &id, &etags, None, &|_, _| {
        Err(StoreError::BadDigest)
    });
    assert!(matches!(refused, Err(StoreError::BadDigest)));
    assert!(matches!(s.head("bkt", "obj"), Err(StoreError::NoSuchKey)));
    let object_checksum = ObjectChecksum {
        algorithm: "SHA256".into(),
        kind: ChecksumType::Composite,
        value: "whole-2".into(),
    };
    let info = s
        .complete_multipart_with("bkt", "obj", &id, &etags, None, &|got_spec, parts| {
            assert_eq!(got_spec, Some(&spec));
            assert_eq!(
                parts
                    .iter()
                    .map(|p| (p.part_number, p.size))
                    .collect::<Vec<_>>(),
                [(1, 1500), (2, 700)]
            );
            Ok(Some(object_checksum.clone()))
        })
        .unwrap();
    assert_eq!(info.meta.checksum.as_ref(), Some(&object_checksum));
    let head = s.head("bkt", "obj").unwrap();
    assert_eq!(head.meta.checksum, Some(object_checksum));
    assert_eq!(
        head.parts
            .iter()
            .map(|p| (p.size, p.checksum.clone()))
            .collect::<Vec<_>>(),
        [
            (1500, Some("sum-1".to_owned())),
            (700, Some("sum-2".to_owned()))
        ]
    );
}
