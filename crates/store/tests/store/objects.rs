//! Objects: write, read, head, delete, tags, overwrite, concurrency, odd keys.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use keyhole_store::{ListEntry, ListQuery, ObjectMeta, StoreError};

use crate::common::{files_under, md5_bin, md5_hex, open, open_files, put, put_meta, read_all};

fn tag(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

#[test]
fn put_get_head_roundtrip() {
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let meta = ObjectMeta {
        content_type: Some("application/x-test".into()),
        content_encoding: Some("gzip".into()),
        content_disposition: Some("attachment".into()),
        content_language: Some("en".into()),
        cache_control: Some("no-cache".into()),
        expires: Some("Thu, 01 Dec 1994 16:00:00 GMT".into()),
        user: BTreeMap::from([("owner".to_owned(), "me".to_owned())]),
        tags: vec![tag("team", "ml")],
        lock: keyhole_store::ObjectLock::default(),
        checksum: Some(keyhole_store::ObjectChecksum {
            algorithm: "CRC32".into(),
            kind: keyhole_store::ChecksumType::FullObject,
            value: "AAAAAA==".into(),
        }),
    };
    let mut w = s.new_object("bkt").unwrap();
    assert_eq!(w.written(), 0);
    w.write(&body[..1000]).unwrap();
    assert_eq!(w.written(), 1000);
    w.write(&body[1000..]).unwrap();
    assert_eq!(w.written(), body.len() as u64);
    let info = w
        .commit("dir/file.bin", meta.clone(), Some(md5_bin(&body)))
        .unwrap();
    assert_eq!(info.key, "dir/file.bin");
    assert_eq!(info.size, body.len() as u64);
    assert_eq!(info.etag, md5_hex(&body));
    assert_eq!(info.parts_count, None);
    assert_eq!(info.meta, meta);
    assert_eq!(info.last_modified.timestamp_subsec_nanos(), 0);

    let head = s.head("bkt", "dir/file.bin").unwrap();
    assert_eq!(head.etag, info.etag);
    assert_eq!(head.meta, meta);
    assert_eq!(head.last_modified, info.last_modified);
    let (ginfo, mut r) = s.get("bkt", "dir/file.bin").unwrap();
    assert_eq!(ginfo.size, body.len() as u64);
    assert_eq!(r.len(), body.len() as u64);
    assert!(!r.is_empty());
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(got, body);
    // Seek works for ranges.
    r.seek(SeekFrom::Start(1234)).unwrap();
    let mut ten = [0u8; 10];
    r.read_exact(&mut ten).unwrap();
    assert_eq!(&ten, &body[1234..1244]);
    r.seek(SeekFrom::End(-5)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &body[body.len() - 5..]);
}

#[test]
fn empty_object_has_the_md5_of_nothing() {
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let info = s
        .new_object("bkt")
        .unwrap()
        .commit("empty", ObjectMeta::default(), None)
        .unwrap();
    assert_eq!(info.etag, "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(info.size, 0);
    let (_, r) = s.get("bkt", "empty").unwrap();
    assert!(r.is_empty());
}

#[test]
fn bad_digest_stores_nothing() {
    let (d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"hello").unwrap();
    let err = w
        .commit("k", ObjectMeta::default(), Some(md5_bin(b"other")))
        .unwrap_err();
    assert!(matches!(err, StoreError::BadDigest));
    assert_eq!(err.s3_code(), "BadDigest");
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
    assert!(files_under(&d.path().join("tmp")).is_empty());
    assert!(files_under(&d.path().join("blobs")).is_empty());
}

#[test]
fn dropped_writer_leaves_nothing() {
    let (d, s) = open_files();
    s.create_bucket("bkt", "r").unwrap();
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"abandoned").unwrap();
    assert_eq!(files_under(&d.path().join("tmp")).len(), 1);
    drop(w);
    assert!(files_under(&d.path().join("tmp")).is_empty());
}

#[test]
fn commit_validates_key_and_tags() {
    let (d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let commit = |key: &str, meta: ObjectMeta| {
        let mut w = s.new_object("bkt").unwrap();
        w.write(b"x").unwrap();
        w.commit(key, meta, None)
    };
    assert!(matches!(
        commit("", ObjectMeta::default()),
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(
        commit("a\0b", ObjectMeta::default()),
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(
        commit(&"k".repeat(1025), ObjectMeta::default()),
        Err(StoreError::KeyTooLong)
    ));
    let bad_tags = ObjectMeta {
        tags: vec![tag("k", "v"), tag("k", "w")],
        ..Default::default()
    };
    assert!(matches!(
        commit("ok", bad_tags),
        Err(StoreError::InvalidTag { .. })
    ));
    assert!(files_under(&d.path().join("tmp")).is_empty());
    assert!(files_under(&d.path().join("blobs")).is_empty());
    assert!(commit(&"k".repeat(1024), ObjectMeta::default()).is_ok());
}

#[test]
fn reads_validate_keys() {
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    assert!(matches!(
        s.get("bkt", ""),
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(
        s.head("bkt", &"k".repeat(2000)),
        Err(StoreError::KeyTooLong)
    ));
    assert!(matches!(s.get("bkt", "absent"), Err(StoreError::NoSuchKey)));
    assert!(matches!(
        s.head("bkt", "absent"),
        Err(StoreError::NoSuchKey)
    ));
    assert!(matches!(
        s.delete("bkt", "a\0"),
        Err(StoreError::InvalidKey { .. })
    ));
}

#[test]
fn overwrite_replaces_and_frees_the_old_body() {
    let (d, s) = open_files();
    s.create_bucket("bkt", "r").unwrap();
    put(&s, "bkt", "k", b"first version");
    let (_, mut old_reader) = s.get("bkt", "k").unwrap();
    let info = put(&s, "bkt", "k", b"second");
    assert_eq!(info.etag, md5_hex(b"second"));
    assert_eq!(read_all(&s, "bkt", "k"), b"second");
    assert_eq!(files_under(&d.path().join("blobs")).len(), 1);
    // A reader opened before the overwrite still sees the old version.
    let mut v = Vec::new();
    old_reader.read_to_end(&mut v).unwrap();
    assert_eq!(v, b"first version");
    let page = s
        .list(
            "bkt",
            &ListQuery {
                max_keys: 10,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page.entries.len(), 1);
}

#[test]
fn delete_removes_and_tolerates_absence() {
    let (d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    put(&s, "bkt", "k", b"x");
    s.delete("bkt", "k").unwrap();
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
    assert!(files_under(&d.path().join("blobs")).is_empty());
    s.delete("bkt", "k").unwrap();
    s.delete("bkt", "never-was").unwrap();
}

#[test]
fn tags_get_put_delete() {
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let meta = ObjectMeta {
        tags: vec![tag("a", "1")],
        ..Default::default()
    };
    let info = put_meta(&s, "bkt", "k", b"x", meta);
    assert_eq!(s.get_tags("bkt", "k").unwrap(), vec![tag("a", "1")]);
    s.put_tags("bkt", "k", vec![tag("b", "2"), tag("c", "3")])
        .unwrap();
    assert_eq!(
        s.get_tags("bkt", "k").unwrap(),
        vec![tag("b", "2"), tag("c", "3")]
    );
    let head = s.head("bkt", "k").unwrap();
    assert_eq!(head.etag, info.etag);
    assert_eq!(head.last_modified, info.last_modified);
    assert!(matches!(
        s.put_tags("bkt", "k", vec![tag("aws:x", "1")]),
        Err(StoreError::InvalidTag { .. })
    ));
    let eleven: Vec<_> = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
    assert!(matches!(
        s.put_tags("bkt", "k", eleven),
        Err(StoreError::InvalidTag { .. })
    ));
    assert_eq!(s.get_tags("bkt", "k").unwrap().len(), 2);
    s.delete_tags("bkt", "k").unwrap();
    assert!(s.get_tags("bkt", "k").unwrap().is_empty());
    for r in [
        s.get_tags("bkt", "none").map(drop),
        s.put_tags("bkt", "none", vec![]),
        s.delete_tags("bkt", "none"),
    ] {
        assert!(matches!(r, Err(StoreError::NoSuchKey)));
    }
}

/// Keys that would be dangerous or mangled as paths are stored and listed exactly.
#[test]
fn path_like_keys_are_plain_keys() {
    let (d, s) = open_files();
    s.create_bucket("bkt", "r").unwrap();
    let keys = [
        "../x",
        "../../../../etc/passwd",
        "//a",
        "/lead",
        ".",
        "..",
        "a/./b",
        "a/../b",
        "trailing/",
        "with space",
        " ",
        "tab\there",
        "new\nline",
        "ünïcødé/☃/日本語",
        "C:\\windows\\path",
        "%2e%2e/enc",
        "😀",
    ];
    for (i, k) in keys.iter().enumerate() {
        put(&s, "bkt", k, format!("body {i}").as_bytes());
    }
    let long = "é".repeat(512);
    put(&s, "bkt", &long, b"long");
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            read_all(&s, "bkt", k),
            format!("body {i}").as_bytes(),
            "{k:?}"
        );
    }
    let page = s
        .list(
            "bkt",
            &ListQuery {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .unwrap();
    let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    want.push(long);
    want.sort();
    let got: Vec<String> = page.entries.iter().map(|e| e.name().to_owned()).collect();
    assert_eq!(got, want);
    assert!(page
        .entries
        .iter()
        .all(|e| matches!(e, ListEntry::Object(_))));
    // Nothing was written outside the layout directories.
    let mut top: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["blobs", "index.redb", "tmp", "uploads"]);
    assert_eq!(files_under(&d.path().join("blobs")).len(), keys.len() + 1);
}

#[test]
fn concurrent_writers_last_commit_wins() {
    let (d, s) = open_files();
    s.create_bucket("bkt", "r").unwrap();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..8 {
                    let body = format!("writer {t} round {i} ").repeat(100 + t * 37);
                    let mut w = s.new_object("bkt").unwrap();
                    for c in body.as_bytes().chunks(333) {
                        w.write(c).unwrap();
                    }
                    w.commit("same", ObjectMeta::default(), None).unwrap();
                    // Readers never see a torn body.
                    let (info, mut r) = s.get("bkt", "same").unwrap();
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).unwrap();
                    assert_eq!(md5_hex(&got), info.etag);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (info, mut r) = s.get("bkt", "same").unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(md5_hex(&got), info.etag);
    assert_eq!(files_under(&d.path().join("blobs")).len(), 1);
    assert!(files_under(&d.path().join("tmp")).is_empty());
}

#[test]
fn commit_into_a_deleted_bucket_fails_cleanly() {
    let (d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"late").unwrap();
    s.delete_bucket("bkt").unwrap();
    assert!(matches!(
        w.commit("k", ObjectMeta::default(), None),
        Err(StoreError::NoSuchBucket)
    ));
    // Same name, new bucket: the late write must not appear in it either.
    s.create_bucket("bkt", "r").unwrap();
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"late").unwrap();
    s.delete_bucket("bkt").unwrap();
    s.create_bucket("bkt", "r").unwrap();
    assert!(matches!(
        w.commit("k", ObjectMeta::default(), None),
        Err(StoreError::NoSuchBucket)
    ));
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
    assert!(files_under(&d.path().join("blobs")).is_empty());
    assert!(files_under(&d.path().join("tmp")).is_empty());
}

/// S3 conditional writes: the condition is checked in the committing transaction, so of two
/// writers that both started while the key was free, only the first to commit succeeds.
#[test]
fn conditional_commits_and_deletes() {
    use keyhole_store::WriteCondition;
    let (_d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    let mut a = s.new_object("bkt").unwrap();
    a.write(b"first").unwrap();
    let mut b = s.new_object("bkt").unwrap();
    b.write(b"second").unwrap();
    let absent = WriteCondition::Absent;
    let first = a
        .commit_if("k", ObjectMeta::default(), None, Some(&absent))
        .unwrap();
    assert!(matches!(
        b.commit_if("k", ObjectMeta::default(), None, Some(&absent)),
        Err(StoreError::PreconditionFailed)
    ));
    assert_eq!(read_all(&s, "bkt", "k"), b"first");
    // If-Match: the current ETag (quoted or not, any case) or `*`; a stale one fails.
    let mut c = s.new_object("bkt").unwrap();
    c.write(b"third").unwrap();
    let quoted = WriteCondition::ETag(format!("\"{}\"", first.etag.to_ascii_uppercase()));
    let third = c
        .commit_if("k", ObjectMeta::default(), None, Some(&quoted))
        .unwrap();
    let mut d = s.new_object("bkt").unwrap();
    d.write(b"fourth").unwrap();
    assert!(matches!(
        d.commit_if("k", ObjectMeta::default(), None, Some(&quoted)),
        Err(StoreError::PreconditionFailed)
    ));
    let mut e = s.new_object("bkt").unwrap();
    e.write(b"x").unwrap();
    assert!(matches!(
        e.commit_if(
            "missing",
            ObjectMeta::default(),
            None,
            Some(&WriteCondition::ETag("*".into()))
        ),
        Err(StoreError::NoSuchKey)
    ));
    assert!(matches!(
        s.head("bkt", "missing"),
        Err(StoreError::NoSuchKey)
    ));
    // Conditional delete.
    assert!(matches!(
        s.delete_if("bkt", "k", Some(&quoted)),
        Err(StoreError::PreconditionFailed)
    ));
    assert_eq!(read_all(&s, "bkt", "k"), b"third");
    s.delete_if("bkt", "k", Some(&WriteCondition::ETag(third.etag)))
        .unwrap();
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
}

/// A sealed body is durable in its place but invisible; dropping it (a write refused after
/// sealing, such as a PUT whose write-ahead audit record could not be written) removes it, and
/// committing it publishes it.
#[test]
fn sealed_bodies_are_invisible_until_committed_and_removed_when_dropped() {
    let (d, s) = open_files();
    s.create_bucket("bkt", "r").unwrap();
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"refused").unwrap();
    let sealed = w.seal(None).unwrap();
    assert_eq!(sealed.size(), 7);
    assert_eq!(files_under(&d.path().join("blobs")).len(), 1);
    assert!(files_under(&d.path().join("tmp")).is_empty());
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
    drop(sealed);
    assert!(files_under(&d.path().join("blobs")).is_empty());

    let mut w = s.new_object("bkt").unwrap();
    w.write(b"kept").unwrap();
    let sealed = w.seal(Some(md5_bin(b"kept"))).unwrap();
    let info = sealed.commit_if("k", ObjectMeta::default(), None).unwrap();
    assert_eq!(info.etag, md5_hex(b"kept"));
    assert_eq!(read_all(&s, "bkt", "k"), b"kept");

    // A failed commit (the condition does not hold) removes its body too.
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"late").unwrap();
    let sealed = w.seal(None).unwrap();
    let e = sealed
        .commit_if(
            "k",
            ObjectMeta::default(),
            Some(&keyhole_store::WriteCondition::Absent),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::PreconditionFailed));
    assert_eq!(files_under(&d.path().join("blobs")).len(), 1);

    // A wrong digest seals nothing.
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"x").unwrap();
    assert!(matches!(
        w.seal(Some(md5_bin(b"y"))),
        Err(StoreError::BadDigest)
    ));
    assert_eq!(files_under(&d.path().join("blobs")).len(), 1);
    assert!(files_under(&d.path().join("tmp")).is_empty());
}
