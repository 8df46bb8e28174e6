//! Object versioning: version ids and ordering, the null version, delete markers, deletion by
//! version id and ListObjectVersions pagination (S3 "Using versioning in S3 buckets",
//! "Working with delete markers", "ListObjectVersions").

use std::io::Read;

use keyhole_store::{
    ListQuery, LocalStore, StoreError, VersionEntry, VersionPage, VersionQuery, Versioning,
};

use crate::common::{files_only, files_under, open, open_files, put};

fn read_version(s: &LocalStore, key: &str, v: Option<&str>) -> Vec<u8> {
    let (_, mut r) = s.get_version("bkt", key, v).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// (key, version id, is delete marker, is latest) of each entry; common prefixes as (p, "", ..).
fn summary(p: &VersionPage) -> Vec<(String, String, bool, bool)> {
    p.entries
        .iter()
        .map(|e| match e {
            VersionEntry::Object { info, is_latest } => (
                info.key.clone(),
                info.version_id.clone().unwrap(),
                false,
                *is_latest,
            ),
            VersionEntry::DeleteMarker {
                key,
                version_id,
                is_latest,
                ..
            } => (key.clone(), version_id.clone(), true, *is_latest),
            VersionEntry::CommonPrefix(p) => (p.clone(), String::new(), false, false),
        })
        .collect()
}

fn all(s: &LocalStore) -> Vec<(String, String, bool, bool)> {
    summary(
        &s.list_versions(
            "bkt",
            &VersionQuery {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

fn versioned() -> (tempfile::TempDir, LocalStore) {
    let (d, s) = open();
    s.create_bucket("bkt", "us-east-1").unwrap();
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    (d, s)
}

#[test]
fn unversioned_buckets_behave_as_before() {
    let (_d, s) = open_files();
    s.create_bucket("bkt", "r").unwrap();
    assert_eq!(s.versioning("bkt").unwrap(), Versioning::Unversioned);
    let a = put(&s, "bkt", "k", b"one");
    assert_eq!(
        a.version_id, None,
        "no x-amz-version-id in a bucket never versioned"
    );
    put(&s, "bkt", "k", b"two");
    // One body on disk: the overwrite removed the first.
    assert_eq!(files_under(&_d.path().join("blobs")).len(), 1);
    assert_eq!(all(&s), [("k".into(), "null".into(), false, true)]);
    let d = s.delete_version("bkt", "k", None, None).unwrap();
    assert!(!d.delete_marker && d.version_id.is_none());
    assert!(all(&s).is_empty());
    s.delete_bucket("bkt").unwrap();
    assert!(matches!(
        s.set_versioning("bkt", Versioning::Enabled),
        Err(StoreError::NoSuchBucket)
    ));
}

#[test]
fn versions_are_kept_newest_first_and_readable_by_id() {
    let (_d, s) = versioned();
    let ids: Vec<String> = (0..5)
        .map(|i| {
            put(&s, "bkt", "k", format!("v{i}").as_bytes())
                .version_id
                .unwrap()
        })
        .collect();
    // Opaque, URL-safe, distinct.
    for id in &ids {
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
    }
    let got = all(&s);
    let want: Vec<_> = ids
        .iter()
        .rev()
        .enumerate()
        .map(|(i, id)| ("k".to_owned(), id.clone(), false, i == 0))
        .collect();
    assert_eq!(got, want);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(read_version(&s, "k", Some(id)), format!("v{i}").as_bytes());
    }
    assert_eq!(read_version(&s, "k", None), b"v4");
    // ListObjects sees the current version only.
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
    assert!(matches!(
        s.get_version("bkt", "k", Some("0000000000000099ffffffffffffffff")),
        Err(StoreError::NoSuchVersion)
    ));
    let e = s.get_version("bkt", "k", Some("../x")).unwrap_err();
    assert!(matches!(e, StoreError::InvalidVersionId));
    assert_eq!(e.s3_code(), "InvalidArgument");
    assert!(matches!(
        s.set_versioning("bkt", Versioning::Unversioned),
        Err(StoreError::InvalidArgument { .. })
    ));
}

#[test]
fn delete_markers_hide_and_their_removal_restores() {
    let (_d, s) = versioned();
    let v1 = put(&s, "bkt", "k", b"one").version_id.unwrap();
    let d = s.delete_version("bkt", "k", None, None).unwrap();
    assert!(d.delete_marker);
    let marker = d.version_id.unwrap();
    assert_ne!(marker, v1);
    // The current version is a marker: 404 NoSuchKey with the marker's id.
    match s.get_version("bkt", "k", None).unwrap_err() {
        e @ StoreError::DeleteMarker {
            by_version: false, ..
        } => {
            assert_eq!(e.s3_code(), "NoSuchKey");
            assert_eq!(e.http_status(), 404);
        }
        e => panic!("{e:?}"),
    }
    // The plain calls see no key.
    assert!(matches!(s.head("bkt", "k"), Err(StoreError::NoSuchKey)));
    // The marker by id: 405.
    match s.head_version("bkt", "k", Some(&marker)).unwrap_err() {
        e @ StoreError::DeleteMarker {
            by_version: true, ..
        } => {
            assert!(
                matches!(&e, StoreError::DeleteMarker { version_id, .. } if *version_id == marker)
            );
            assert_eq!(e.http_status(), 405);
            assert_eq!(e.s3_code(), "MethodNotAllowed");
        }
        e => panic!("{e:?}"),
    }
    assert!(s
        .list(
            "bkt",
            &ListQuery {
                max_keys: 10,
                ..Default::default()
            }
        )
        .unwrap()
        .entries
        .is_empty());
    assert_eq!(
        all(&s),
        [
            ("k".into(), marker.clone(), true, true),
            ("k".into(), v1.clone(), false, false)
        ]
    );
    // The old version is still readable by id.
    assert_eq!(read_version(&s, "k", Some(&v1)), b"one");
    // A bucket with versions is not empty.
    assert!(matches!(
        s.delete_bucket("bkt"),
        Err(StoreError::BucketNotEmpty)
    ));
    // Removing the marker makes v1 current again.
    let d = s.delete_version("bkt", "k", Some(&marker), None).unwrap();
    assert!(d.delete_marker);
    assert_eq!(d.version_id.as_deref(), Some(marker.as_str()));
    assert_eq!(read_version(&s, "k", None), b"one");
    assert_eq!(all(&s), [("k".into(), v1.clone(), false, true)]);
    // Deleting the last version by id empties the bucket.
    let d = s.delete_version("bkt", "k", Some(&v1), None).unwrap();
    assert!(!d.delete_marker);
    assert!(all(&s).is_empty());
    assert!(files_under(&_d.path().join("blobs")).is_empty());
    s.delete_bucket("bkt").unwrap();
}

#[test]
fn deleting_the_current_version_promotes_the_previous_one() {
    let (_d, s) = open_files();
    s.create_bucket("bkt", "us-east-1").unwrap();
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    let v1 = put(&s, "bkt", "k", b"one").version_id.unwrap();
    let v2 = put(&s, "bkt", "k", b"two").version_id.unwrap();
    let v3 = put(&s, "bkt", "k", b"three").version_id.unwrap();
    s.delete_version("bkt", "k", Some(&v3), None).unwrap();
    assert_eq!(read_version(&s, "k", None), b"two");
    // Deleting a noncurrent version leaves the current one.
    s.delete_version("bkt", "k", Some(&v1), None).unwrap();
    assert_eq!(read_version(&s, "k", None), b"two");
    assert_eq!(all(&s), [("k".into(), v2.clone(), false, true)]);
    // A version that is gone: deleting it again succeeds, reading it is NoSuchVersion.
    s.delete_version("bkt", "k", Some(&v1), None).unwrap();
    assert!(matches!(
        s.get_version("bkt", "k", Some(&v1)),
        Err(StoreError::NoSuchVersion)
    ));
    // Exactly one body left.
    assert_eq!(files_under(&_d.path().join("blobs")).len(), 1);
}

#[test]
fn suspended_writes_replace_the_null_version_only() {
    let (_d, s) = open_files();
    s.create_bucket("bkt", "r").unwrap();
    // Written before versioning: the null version.
    put(&s, "bkt", "k", b"old");
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    let v1 = put(&s, "bkt", "k", b"one").version_id.unwrap();
    assert_eq!(read_version(&s, "k", Some("null")), b"old");
    s.set_versioning("bkt", Versioning::Suspended).unwrap();
    let n = put(&s, "bkt", "k", b"suspended-1");
    // The write makes the null version and, as S3, names no version id in its answer
    // (API_PutObject, "Versioning suspended" example); reads name it `null`.
    assert_eq!(n.version_id, None);
    assert_eq!(
        s.head_version("bkt", "k", None)
            .unwrap()
            .version_id
            .as_deref(),
        Some("null")
    );
    // The earlier null version ("old") was replaced; v1 stays.
    assert_eq!(
        all(&s),
        [
            ("k".into(), "null".into(), false, true),
            ("k".into(), v1.clone(), false, false)
        ]
    );
    put(&s, "bkt", "k", b"suspended-2");
    assert_eq!(read_version(&s, "k", Some("null")), b"suspended-2");
    assert_eq!(all(&s).len(), 2);
    // A delete makes a null marker, replacing the null object.
    let d = s.delete_version("bkt", "k", None, None).unwrap();
    assert_eq!(d.version_id.as_deref(), Some("null"));
    assert!(d.delete_marker);
    assert_eq!(
        all(&s),
        [
            ("k".into(), "null".into(), true, true),
            ("k".into(), v1.clone(), false, false)
        ]
    );
    // Bodies: v1 only.
    assert_eq!(files_under(&_d.path().join("blobs")).len(), 1);
    // A write after the null marker replaces it.
    put(&s, "bkt", "k", b"again");
    assert_eq!(
        all(&s),
        [
            ("k".into(), "null".into(), false, true),
            ("k".into(), v1.clone(), false, false)
        ]
    );
    // Enabled again: new writes get ids, the null version is kept as noncurrent.
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    let v2 = put(&s, "bkt", "k", b"two").version_id.unwrap();
    assert_eq!(
        all(&s),
        [
            ("k".into(), v2, false, true),
            ("k".into(), "null".into(), false, false),
            ("k".into(), v1, false, false)
        ]
    );
    assert_eq!(read_version(&s, "k", Some("null")), b"again");
}

#[test]
fn tags_belong_to_one_version() {
    let (_d, s) = versioned();
    let v1 = put(&s, "bkt", "k", b"one").version_id.unwrap();
    put(&s, "bkt", "k", b"two");
    let shown = s
        .put_version_tags("bkt", "k", Some(&v1), vec![("t".into(), "1".into())])
        .unwrap();
    assert_eq!(shown.as_deref(), Some(v1.as_str()));
    assert_eq!(
        s.head_version("bkt", "k", Some(&v1)).unwrap().meta.tags,
        [("t".to_owned(), "1".to_owned())]
    );
    assert!(s.get_tags("bkt", "k").unwrap().is_empty());
    // The tagged noncurrent version stays noncurrent.
    assert_eq!(read_version(&s, "k", None), b"two");
    assert_eq!(read_version(&s, "k", Some(&v1)), b"one");
}

#[test]
fn list_versions_paginates_with_markers_and_prefixes() {
    let (_d, s) = versioned();
    for key in ["a", "d/1", "d/2", "z"] {
        for i in 0..3 {
            put(&s, "bkt", key, format!("{key}{i}").as_bytes());
        }
    }
    s.delete_version("bkt", "z", None, None).unwrap();
    let full = all(&s);
    assert_eq!(full.len(), 13);
    // Every page size walks the same sequence.
    for max in 1..=14 {
        let mut q = VersionQuery {
            max_keys: max,
            ..Default::default()
        };
        let mut got = Vec::new();
        for _ in 0..100 {
            let p = s.list_versions("bkt", &q).unwrap();
            assert!(p.entries.len() <= max);
            got.extend(summary(&p));
            if !p.is_truncated {
                assert!(p.next_key_marker.is_none());
                break;
            }
            q.key_marker = p.next_key_marker;
            q.version_id_marker = p.next_version_id_marker;
        }
        assert_eq!(got, full, "max_keys {max}");
    }
    // With a delimiter, d/ is one common prefix.
    let q = VersionQuery {
        delimiter: Some("/".into()),
        max_keys: 4,
        ..Default::default()
    };
    let p = s.list_versions("bkt", &q).unwrap();
    let names: Vec<String> = summary(&p).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["a", "a", "a", "d/"]);
    assert!(p.is_truncated);
    assert_eq!(p.next_key_marker.as_deref(), Some("d/"));
    assert_eq!(p.next_version_id_marker, None);
    let p = s
        .list_versions(
            "bkt",
            &VersionQuery {
                key_marker: p.next_key_marker,
                ..q.clone()
            },
        )
        .unwrap();
    let names: Vec<String> = summary(&p).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["z", "z", "z", "z"]);
    // Prefix.
    let p = s
        .list_versions(
            "bkt",
            &VersionQuery {
                prefix: "d/".into(),
                max_keys: 100,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(p.entries.len(), 6);
    // key-marker alone starts after every version of that key.
    let p = s
        .list_versions(
            "bkt",
            &VersionQuery {
                key_marker: Some("d/2".into()),
                max_keys: 100,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(summary(&p)[0].0, "z");
    assert!(matches!(
        s.list_versions("nope", &q),
        Err(StoreError::NoSuchBucket)
    ));
}

#[test]
fn conditional_writes_see_a_delete_marker_as_absent() {
    let (_d, s) = versioned();
    put(&s, "bkt", "k", b"one");
    s.delete_version("bkt", "k", None, None).unwrap();
    let mut w = s.new_object("bkt").unwrap();
    w.write(b"two").unwrap();
    let info = w
        .commit_if(
            "k",
            Default::default(),
            None,
            Some(&keyhole_store::WriteCondition::Absent),
        )
        .unwrap();
    assert!(info.version_id.is_some());
    assert_eq!(all(&s).len(), 3);
}

#[test]
fn records_written_before_versioning_still_read() {
    // An index made by an earlier keyhole: reopening keeps it readable and versionable.
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LocalStore::open_with(dir.path(), files_only()).unwrap();
        s.create_bucket("bkt", "r").unwrap();
        put(&s, "bkt", "k", b"old");
    }
    let s = LocalStore::open_with(dir.path(), files_only()).unwrap();
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    let v = put(&s, "bkt", "k", b"new").version_id.unwrap();
    assert_eq!(read_version(&s, "k", Some("null")), b"old");
    assert_eq!(read_version(&s, "k", Some(&v)), b"new");
    drop(s);
    // Bodies of every version survive recovery.
    let s = LocalStore::open_with(dir.path(), files_only()).unwrap();
    assert_eq!(read_version(&s, "k", Some("null")), b"old");
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 2);
}

#[test]
fn pages_within_one_key_resume_at_the_marker() {
    let (_d, s) = versioned();
    let mut ids: Vec<String> = (0..20)
        .map(|i| {
            put(&s, "bkt", "hot", format!("{i}").as_bytes())
                .version_id
                .unwrap()
        })
        .collect();
    // A null version in the middle of the history (written while suspended).
    s.set_versioning("bkt", Versioning::Suspended).unwrap();
    put(&s, "bkt", "hot", b"null");
    ids.push("null".to_owned());
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    ids.extend((20..30).map(|i| {
        put(&s, "bkt", "hot", format!("{i}").as_bytes())
            .version_id
            .unwrap()
    }));
    put(&s, "bkt", "z", b"after");
    ids.reverse();
    let want: Vec<(String, String, bool, bool)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| ("hot".to_owned(), id.clone(), false, i == 0))
        .chain([(
            "z".to_owned(),
            all(&s).last().unwrap().1.clone(),
            false,
            true,
        )])
        .collect();
    assert_eq!(all(&s), want);
    for max in [1, 3, 7, 31, 32] {
        let mut q = VersionQuery {
            max_keys: max,
            ..Default::default()
        };
        let mut got = Vec::new();
        for _ in 0..100 {
            let p = s.list_versions("bkt", &q).unwrap();
            got.extend(summary(&p));
            if !p.is_truncated {
                break;
            }
            q.key_marker = p.next_key_marker;
            q.version_id_marker = p.next_version_id_marker;
        }
        assert_eq!(got, want, "max_keys {max}");
    }
    // A marker naming a version deleted meanwhile still resumes where that version was.
    let q = VersionQuery {
        key_marker: Some("hot".into()),
        version_id_marker: Some(ids[4].clone()),
        max_keys: 2,
        ..Default::default()
    };
    s.delete_version("bkt", "hot", Some(&ids[4]), None).unwrap();
    let p = s.list_versions("bkt", &q).unwrap();
    assert_eq!(
        summary(&p).into_iter().map(|e| e.1).collect::<Vec<_>>(),
        [ids[5].clone(), ids[6].clone()]
    );
}
