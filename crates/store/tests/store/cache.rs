//! The read cache never serves a record older than the last acknowledged write: every kind of
//! write after a cached read is seen by the next read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use keyhole_store::{LocalStore, ObjectMeta, StoreError, StoreOptions, Versioning};

use crate::common::{md5_hex, open, open_small_parts, put, read_all};

/// Reads `key` twice (the second read is served by the cache when it holds the key).
fn read_twice(s: &LocalStore, key: &str) -> Vec<u8> {
    let first = read_all(s, "bkt", key);
    assert_eq!(read_all(s, "bkt", key), first);
    first
}

#[test]
fn overwrites_deletes_and_tags_are_seen_after_a_cached_read() {
    let (_d, s) = open();
    s.create_bucket("bkt", "us-east-1").unwrap();
    put(&s, "bkt", "k", b"one");
    assert_eq!(read_twice(&s, "k"), b"one");
    put(&s, "bkt", "k", b"two");
    assert_eq!(read_twice(&s, "k"), b"two");
    assert_eq!(s.head("bkt", "k").unwrap().etag, md5_hex(b"two"));

    s.put_tags("bkt", "k", vec![("a".into(), "1".into())])
        .unwrap();
    assert_eq!(
        s.head("bkt", "k").unwrap().meta.tags,
        vec![("a".into(), "1".into())]
    );
    s.delete_tags("bkt", "k").unwrap();
    assert!(s.head("bkt", "k").unwrap().meta.tags.is_empty());

    s.delete("bkt", "k").unwrap();
    assert!(matches!(s.get("bkt", "k"), Err(StoreError::NoSuchKey)));
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
}

#[test]
fn bucket_changes_are_seen_after_a_cached_read() {
    let (_d, s) = open();
    s.create_bucket("bkt", "us-east-1").unwrap();
    put(&s, "bkt", "k", b"one");
    read_twice(&s, "k");
    // Versioning changes what a read reports (the null version's id) without touching the key.
    assert_eq!(s.head("bkt", "k").unwrap().version_id, None);
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    assert_eq!(
        s.head("bkt", "k").unwrap().version_id.as_deref(),
        Some("null")
    );

    // A bucket deleted and made again under the same name holds none of the old keys.
    let (_d, s) = open();
    s.create_bucket("bkt", "us-east-1").unwrap();
    put(&s, "bkt", "k", b"one");
    read_twice(&s, "k");
    s.delete("bkt", "k").unwrap();
    s.delete_bucket("bkt").unwrap();
    s.create_bucket("bkt", "us-east-1").unwrap();
    assert!(matches!(s.get("bkt", "k"), Err(StoreError::NoSuchKey)));
    put(&s, "bkt", "k", b"three");
    assert_eq!(read_twice(&s, "k"), b"three");
}

#[test]
fn versioned_deletes_and_multipart_completions_are_seen_after_a_cached_read() {
    let (_d, s) = open_small_parts();
    s.create_bucket("bkt", "us-east-1").unwrap();
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    let v1 = put(&s, "bkt", "k", b"one").version_id.unwrap();
    let v2 = put(&s, "bkt", "k", b"two").version_id.unwrap();
    assert_eq!(read_twice(&s, "k"), b"two");
    // Deleting the current version by id makes the previous one current.
    s.delete_version("bkt", "k", Some(&v2), None).unwrap();
    assert_eq!(read_twice(&s, "k"), b"one");
    assert_eq!(
        s.head("bkt", "k").unwrap().version_id.as_deref(),
        Some(v1.as_str())
    );
    // A delete marker hides it.
    s.delete("bkt", "k").unwrap();
    assert!(matches!(
        s.get_version("bkt", "k", None),
        Err(StoreError::DeleteMarker { .. })
    ));

    let upload = s
        .create_multipart("bkt", "k", ObjectMeta::default())
        .unwrap();
    let mut w = s.new_part("bkt", "k", &upload, 1).unwrap();
    w.write(b"from parts").unwrap();
    let part = w.commit(None).unwrap();
    s.complete_multipart("bkt", "k", &upload, &[(1, part.etag)])
        .unwrap();
    assert_eq!(read_twice(&s, "k"), b"from parts");
}

#[test]
fn a_cache_of_size_zero_reads_the_index_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open_with(
        dir.path(),
        StoreOptions {
            read_cache_entries: 0,
            ..Default::default()
        },
    )
    .unwrap();
    s.create_bucket("bkt", "us-east-1").unwrap();
    put(&s, "bkt", "k", b"one");
    assert_eq!(read_twice(&s, "k"), b"one");
    put(&s, "bkt", "k", b"two");
    assert_eq!(read_twice(&s, "k"), b"two");
}

/// Readers racing a writer never see a body older than the last write acknowledged before the
/// read began (strong read-after-write consistency, as S3 promises).
#[test]
fn readers_racing_overwrites_never_go_back_in_time() {
    let (_d, s) = open();
    s.create_bucket("bkt", "us-east-1").unwrap();
    put(&s, "bkt", "k", b"0");
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    // HeadObject names the body by its ETag (GetObject alone could hide a stale record: its
    // body is gone after an overwrite, and the retry reads the index).
    let by_etag: Arc<std::collections::HashMap<String, u64>> = Arc::new(
        (0..=300u64)
            .map(|i| (md5_hex(i.to_string().as_bytes()), i))
            .collect(),
    );
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, acked, done) = (s.clone(), Arc::clone(&acked), Arc::clone(&done));
            let by_etag = Arc::clone(&by_etag);
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while done.load(Ordering::SeqCst) == 0 {
                    let floor = acked.load(Ordering::SeqCst);
                    let body = read_all(&s, "bkt", "k");
                    let n: u64 = std::str::from_utf8(&body).unwrap().parse().unwrap();
                    assert!(n >= floor, "read {n} after {floor} was acknowledged");
                    let floor = acked.load(Ordering::SeqCst);
                    let n = by_etag[&s.head("bkt", "k").unwrap().etag];
                    assert!(n >= floor, "head saw {n} after {floor} was acknowledged");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 1..=300u64 {
        put(&s, "bkt", "k", i.to_string().as_bytes());
        acked.store(i, Ordering::SeqCst);
        if i % 3 == 0 {
            // Let the readers fill the cache between some writes.
            std::thread::yield_now();
        }
    }
    done.store(1, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(read_all(&s, "bkt", "k"), b"300");
}
