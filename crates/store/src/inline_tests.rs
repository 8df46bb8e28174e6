//! Bodies kept in the index (`inline_bodies`): sizes around the limit, overwrites both ways,
//! versions, deletes, persistence and failed conditional commits.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use redb::ReadableTableMetadata;

use crate::index::{self, blob_ref, decode, ObjectRecord, BLOB_REFS, INLINE_BODIES, OBJECTS};
use crate::{LocalStore, ObjectMeta, StoreError, StoreOptions, Versioning, WriteCondition};

/// A small limit keeps the bodies small.
const MAX: u64 = 1000;

fn opts(inline_max: u64) -> StoreOptions {
    StoreOptions {
        inline_max,
        ..StoreOptions::default()
    }
}

fn open(dir: &Path, inline_max: u64) -> LocalStore {
    let s = LocalStore::open_with(dir, opts(inline_max)).unwrap();
    if s.bucket("bkt").is_err() {
        s.create_bucket("bkt", "r").unwrap();
    }
    s
}

fn body(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Writes `data` in chunks of `chunk` bytes and commits it under `key`.
fn put_chunks(s: &LocalStore, key: &str, data: &[u8], chunk: usize) -> crate::ObjectInfo {
    let mut w = s.new_object("bkt").unwrap();
    for c in data.chunks(chunk.max(1)) {
        w.write(c).unwrap();
    }
    w.commit(key, ObjectMeta::default(), None).unwrap()
}

fn put(s: &LocalStore, key: &str, data: &[u8]) -> crate::ObjectInfo {
    put_chunks(s, key, data, 300)
}

fn read(s: &LocalStore, key: &str, version: Option<&str>) -> Vec<u8> {
    let (_, mut r) = s.get_version("bkt", key, version).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

fn blob_files(dir: &Path) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |rd| {
            rd.map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
        })
    }
    walk(&dir.join("blobs")) + walk(&dir.join("tmp"))
}

fn inline_rows(s: &LocalStore) -> u64 {
    let r = s.db().begin_read().unwrap();
    r.open_table(INLINE_BODIES).unwrap().len().unwrap()
}

fn file_refs(s: &LocalStore) -> u64 {
    let r = s.db().begin_read().unwrap();
    r.open_table(BLOB_REFS).unwrap().len().unwrap()
}

/// The current record of `key`, as stored.
fn record(s: &LocalStore, key: &str) -> ObjectRecord {
    let id = s.bucket_id("bkt").unwrap();
    let r = s.db().begin_read().unwrap();
    let t = r.open_table(OBJECTS).unwrap();
    let v = t
        .get(index::object_key(&id, key).as_slice())
        .unwrap()
        .unwrap();
    decode(v.value()).unwrap()
}

#[test]
fn sizes_around_the_limit_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), MAX);
    for (len, inline) in [(0, true), (1, true), (MAX, true), (MAX + 1, false)] {
        let data = body(len);
        let key = format!("k{len}");
        let info = put(&s, &key, &data);
        assert_eq!(info.size, len);
        assert_eq!(
            info.etag,
            hex::encode(<md5::Md5 as md5::Digest>::digest(&data))
        );
        assert_eq!(record(&s, &key).inline, inline, "{len} bytes");
        assert_eq!(read(&s, &key, None), data, "{len} bytes");
        assert_eq!(s.head("bkt", &key).unwrap().etag, info.etag);
        // Seek and ranged reads work on both kinds of reader.
        if len > 10 {
            let (_, mut r) = s.get("bkt", &key).unwrap();
            r.seek(SeekFrom::Start(len - 10)).unwrap();
            let mut tail = Vec::new();
            r.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, data[data.len() - 10..]);
        }
        // read_cached answers an inline body whole, at once.
        let (_, mut r) = s.get("bkt", &key).unwrap();
        let mut buf = Vec::new();
        if r.read_cached(&mut buf).unwrap() {
            assert_eq!(buf, data);
        } else {
            assert!(!inline, "an inline body is always in memory");
        }
    }
    assert_eq!(inline_rows(&s), 3);
    assert_eq!(file_refs(&s), 1);
    assert_eq!(blob_files(dir.path()), 1);
    // One chunk bigger than the limit, and a body that crosses the limit mid-chunk.
    let big = body(MAX * 3);
    put_chunks(&s, "one-chunk", &big, big.len());
    put_chunks(&s, "mid-chunk", &big, 700);
    assert_eq!(read(&s, "one-chunk", None), big);
    assert_eq!(read(&s, "mid-chunk", None), big);
    assert_eq!(blob_files(dir.path()), 3);
    assert_eq!(inline_rows(&s), 3);
}

#[test]
fn zero_never_inlines() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), 0);
    put(&s, "empty", b"");
    put(&s, "small", b"abc");
    assert!(!record(&s, "empty").inline);
    assert_eq!(read(&s, "small", None), b"abc");
    assert_eq!(inline_rows(&s), 0);
    assert_eq!(blob_files(dir.path()), 2);
}

#[test]
fn overwrites_remove_the_replaced_body_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), MAX);
    put(&s, "k", &body(10));
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (1, 0));
    // inline -> file: the row goes.
    put(&s, "k", &body(MAX + 5));
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (0, 1));
    // file -> inline: the file goes.
    put(&s, "k", &body(20));
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (1, 0));
    assert_eq!(file_refs(&s), 0);
    // inline -> inline.
    put(&s, "k", &body(30));
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (1, 0));
    assert_eq!(read(&s, "k", None), body(30));
    s.delete("bkt", "k").unwrap();
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (0, 0));
    s.delete_bucket("bkt").unwrap();
}

#[test]
fn versions_keep_their_inline_bodies_until_deleted_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), MAX);
    put(&s, "k", b"null one"); // the null version, written before versioning
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    let v1 = put(&s, "k", b"one").version_id.unwrap();
    let v2 = put(&s, "k", &body(MAX + 1)).version_id.unwrap();
    let v3 = put(&s, "k", b"three").version_id.unwrap();
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (3, 1));
    assert_eq!(read(&s, "k", Some("null")), b"null one");
    assert_eq!(read(&s, "k", Some(&v1)), b"one");
    assert_eq!(read(&s, "k", Some(&v2)), body(MAX + 1));
    // A delete marker keeps every body.
    let marker = s.delete_version("bkt", "k", None, None).unwrap();
    assert!(marker.delete_marker);
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (3, 1));
    assert_eq!(read(&s, "k", Some(&v3)), b"three");
    // Deleting versions by id removes their bodies, row or file.
    s.delete_version("bkt", "k", Some(&v1), None).unwrap();
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (2, 1));
    s.delete_version("bkt", "k", Some(&v2), None).unwrap();
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (2, 0));
    // Removing the marker promotes v3, whose body is still in the index.
    let id = marker.version_id.unwrap();
    s.delete_version("bkt", "k", Some(&id), None).unwrap();
    assert_eq!(read(&s, "k", None), b"three");
    // Suspended: a write replaces the null version and its row.
    s.set_versioning("bkt", Versioning::Suspended).unwrap();
    put(&s, "k", b"suspended");
    assert_eq!(inline_rows(&s), 2); // v3 and the new null version
    assert_eq!(read(&s, "k", Some("null")), b"suspended");
    s.delete_version("bkt", "k", Some(&v3), None).unwrap();
    s.delete_version("bkt", "k", Some("null"), None).unwrap();
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (0, 0));
    s.delete_bucket("bkt").unwrap();
    assert!(matches!(s.bucket("bkt"), Err(StoreError::NoSuchBucket)));
}

#[test]
fn inline_bodies_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let data = body(MAX);
    {
        let s = open(dir.path(), MAX);
        put(&s, "a", &data);
        put(&s, "b", &body(MAX + 1));
        s.set_versioning("bkt", Versioning::Enabled).unwrap();
        put(&s, "a", b"newer");
    }
    // Reopened with another limit (or none): what is stored reads as it was written.
    let s = open(dir.path(), 0);
    assert_eq!(read(&s, "a", Some("null")), data);
    assert_eq!(read(&s, "a", None), b"newer");
    assert_eq!(read(&s, "b", None), body(MAX + 1));
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (2, 1));
    put(&s, "c", b"file now");
    assert_eq!(blob_files(dir.path()), 2);
}

#[test]
fn failed_conditional_commits_leave_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), MAX);
    put(&s, "k", b"first");
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"second").unwrap();
    let e = w
        .commit_if(
            "k",
            ObjectMeta::default(),
            None,
            Some(&WriteCondition::Absent),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::PreconditionFailed));
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"bad digest").unwrap();
    let e = w
        .commit("k2", ObjectMeta::default(), Some([0; 16]))
        .unwrap_err();
    assert!(matches!(e, StoreError::BadDigest));
    // A sealed body dropped without a commit.
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"dropped").unwrap();
    drop(w.seal(None).unwrap());
    assert_eq!(read(&s, "k", None), b"first");
    assert_eq!((inline_rows(&s), blob_files(dir.path())), (1, 0));
    // The one row is the current object's.
    let id = s.bucket_id("bkt").unwrap();
    let r = s.db().begin_read().unwrap();
    let t = r.open_table(INLINE_BODIES).unwrap();
    let rec = record(&s, "k");
    let row = t.get(blob_ref(&id, &rec.blob).as_str()).unwrap().unwrap();
    assert_eq!(row.value(), b"first");
}

#[test]
fn a_writer_knows_when_its_body_stays_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), MAX);
    let mut w = s.new_object("bkt").unwrap();
    assert!(w.stays_in_memory(usize::try_from(MAX).unwrap()));
    assert!(!w.stays_in_memory(usize::try_from(MAX + 1).unwrap()));
    w.write(&body(MAX)).unwrap();
    assert!(w.stays_in_memory(0));
    assert!(!w.stays_in_memory(1));
    assert_eq!(blob_files(dir.path()), 0);
    w.write(b"x").unwrap();
    assert_eq!(blob_files(dir.path()), 1); // spilled to its temp file
    assert!(!w.stays_in_memory(0));
    drop(w);
    assert_eq!(blob_files(dir.path()), 0);
}

/// Records written before bodies could be inline have no `inline` field and are files; file
/// records are written without it.
#[test]
fn records_without_the_flag_are_files() {
    let rec: ObjectRecord = decode(
        br#"{"blob":"00","size":1,"etag":"e","last_modified":"2026-01-01T00:00:00Z","meta":{"content_type":null,"content_encoding":null,"content_disposition":null,"content_language":null,"cache_control":null,"expires":null,"user":{},"tags":[]},"parts_count":null}"#,
    )
    .unwrap();
    assert!(!rec.inline);
    let json = String::from_utf8(index::encode(&rec).unwrap()).unwrap();
    assert!(!json.contains("inline"), "{json}");
    let inline = ObjectRecord {
        inline: true,
        ..rec
    };
    let json = String::from_utf8(index::encode(&inline).unwrap()).unwrap();
    assert!(json.contains(r#""inline":true"#), "{json}");
}
