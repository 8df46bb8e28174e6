//! Buckets: create, get, list, delete and their errors.

use keyhole_store::{LocalStore, ObjectMeta, StoreError};

use crate::common::{files_under, open, put};

#[test]
fn store_handle_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<LocalStore>();
}

#[test]
fn create_get_list() {
    let (_d, s) = open();
    assert!(s.list_buckets().unwrap().is_empty());
    let b = s.create_bucket("zeta", "eu-west-1").unwrap();
    assert_eq!(b.name, "zeta");
    assert_eq!(b.region, "eu-west-1");
    s.create_bucket("alpha", "us-east-1").unwrap();
    s.create_bucket("mid.dle", "us-east-1").unwrap();
    let names: Vec<_> = s
        .list_buckets()
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["alpha", "mid.dle", "zeta"]);
    let got = s.bucket("zeta").unwrap();
    assert_eq!(got.region, "eu-west-1");
    assert_eq!(got.created, b.created);
}

#[test]
fn create_errors() {
    let (_d, s) = open();
    s.create_bucket("abc", "r").unwrap();
    assert!(matches!(
        s.create_bucket("abc", "r"),
        Err(StoreError::BucketAlreadyOwnedByYou)
    ));
    for bad in ["AB", "ab", "../etc", "a..b", "10.0.0.1", "xn--x"] {
        assert!(
            matches!(
                s.create_bucket(bad, "r"),
                Err(StoreError::InvalidBucketName { .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(s.list_buckets().unwrap().len(), 1);
}

#[test]
fn missing_bucket_everywhere() {
    let (_d, s) = open();
    let nsb =
        |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::NoSuchBucket)), "{r:?}");
    nsb(s.bucket("nope").map(drop));
    nsb(s.delete_bucket("nope"));
    nsb(s.new_object("nope").map(drop));
    nsb(s.get("nope", "k").map(drop));
    nsb(s.head("nope", "k").map(drop));
    nsb(s.delete("nope", "k"));
    nsb(s.list("nope", &Default::default()).map(drop));
    nsb(s.get_tags("nope", "k").map(drop));
    nsb(s.put_tags("nope", "k", vec![]));
    nsb(s.delete_tags("nope", "k"));
    nsb(s
        .create_multipart("nope", "k", ObjectMeta::default())
        .map(drop));
    nsb(s.list_uploads("nope", "").map(drop));
    nsb(s.new_part("nope", "k", &"a".repeat(32), 1).map(drop));
    nsb(s.list_parts("nope", "k", &"a".repeat(32)).map(drop));
    nsb(s.abort_multipart("nope", "k", &"a".repeat(32)));
    nsb(s
        .complete_multipart("nope", "k", &"a".repeat(32), &[])
        .map(drop));
}

#[test]
fn delete_bucket_rules() {
    let (d, s) = open();
    s.create_bucket("bkt", "r").unwrap();
    put(&s, "bkt", "k", b"x");
    assert!(matches!(
        s.delete_bucket("bkt"),
        Err(StoreError::BucketNotEmpty)
    ));
    s.delete("bkt", "k").unwrap();
    // An in-progress upload does not keep the bucket alive; it is aborted with it.
    let id = s
        .create_multipart("bkt", "big", ObjectMeta::default())
        .unwrap();
    let mut p = s.new_part("bkt", "big", &id, 1).unwrap();
    p.write(b"part").unwrap();
    p.commit(None).unwrap();
    s.delete_bucket("bkt").unwrap();
    assert!(matches!(s.bucket("bkt"), Err(StoreError::NoSuchBucket)));
    assert!(files_under(&d.path().join("blobs")).is_empty());
    assert!(files_under(&d.path().join("uploads")).is_empty());
    // Recreated, the bucket is empty and the old upload is gone.
    s.create_bucket("bkt", "r").unwrap();
    assert!(s.list_uploads("bkt", "").unwrap().is_empty());
    assert!(matches!(
        s.list_parts("bkt", "big", &id),
        Err(StoreError::NoSuchUpload)
    ));
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
}

#[test]
fn deleting_a_bucket_keeps_other_buckets_uploads() {
    let (_d, s) = open();
    s.create_bucket("aaa", "r").unwrap();
    s.create_bucket("bbb", "r").unwrap();
    s.create_bucket("ccc", "r").unwrap();
    let a = s
        .create_multipart("aaa", "k", ObjectMeta::default())
        .unwrap();
    let b = s
        .create_multipart("bbb", "k", ObjectMeta::default())
        .unwrap();
    let c = s
        .create_multipart("ccc", "k", ObjectMeta::default())
        .unwrap();
    s.delete_bucket("bbb").unwrap();
    assert_eq!(s.list_uploads("aaa", "").unwrap()[0].upload_id, a);
    assert_eq!(s.list_uploads("ccc", "").unwrap()[0].upload_id, c);
    assert!(s.list_parts("aaa", "k", &a).is_ok());
    assert!(s.list_parts("ccc", "k", &c).is_ok());
    assert!(matches!(
        s.list_parts("bbb", "k", &b),
        Err(StoreError::NoSuchBucket)
    ));
}

#[test]
fn buckets_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = LocalStore::open(d.path()).unwrap();
        s.create_bucket("keep", "r").unwrap();
        put(&s, "keep", "k", b"body");
    }
    let s = LocalStore::open(d.path()).unwrap();
    assert_eq!(s.bucket("keep").unwrap().region, "r");
    assert_eq!(crate::common::read_all(&s, "keep", "k"), b"body");
}

#[test]
fn second_open_of_the_same_root_is_refused() {
    let (d, _s) = open();
    assert!(LocalStore::open(d.path()).is_err());
}
