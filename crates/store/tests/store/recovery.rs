//! `open` removes what a crash leaves behind and keeps everything the index references.

use std::fs;

use keyhole_store::{LocalStore, ObjectMeta};

use crate::common::{files_only, files_under, put, read_all};

#[test]
fn open_removes_temp_files_and_orphans() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let (upload, part_etag) = {
        let s = LocalStore::open_with(root, files_only()).unwrap();
        s.create_bucket("bkt", "r").unwrap();
        put(&s, "bkt", "kept", b"kept body");
        let upload = s
            .create_multipart("bkt", "mp", ObjectMeta::default())
            .unwrap();
        let mut w = s.new_part("bkt", "mp", &upload, 1).unwrap();
        w.write(b"staged part").unwrap();
        let etag = w.commit(None).unwrap().etag;
        (upload, etag)
    };
    let blobs = files_under(&root.join("blobs"));
    assert_eq!(blobs.len(), 1);
    let bucket_dir = blobs[0].parent().unwrap().parent().unwrap().to_path_buf();

    // What crashes leave: temp files, a renamed blob never committed, a bucket directory
    // never committed, a part renamed but not recorded, an upload directory never recorded.
    fs::write(
        root.join("tmp/0123456789abcdef0123456789abcdef.tmp"),
        b"partial",
    )
    .unwrap();
    fs::write(root.join("tmp/stray"), b"x").unwrap();
    let orphan_shard = bucket_dir.join("ab");
    fs::create_dir_all(&orphan_shard).unwrap();
    fs::write(
        orphan_shard.join("ab000000000000000000000000000000"),
        b"orphan",
    )
    .unwrap();
    fs::write(bucket_dir.join("not-a-shard"), b"x").unwrap();
    let ghost_bucket = root.join("blobs/ffffffffffffffffffffffffffffffff/00");
    fs::create_dir_all(&ghost_bucket).unwrap();
    fs::write(ghost_bucket.join("00000000000000000000000000000000"), b"g").unwrap();
    fs::write(
        root.join("uploads")
            .join(&upload)
            .join("cccccccccccccccccccccccccccccccc"),
        b"unrecorded part",
    )
    .unwrap();
    let ghost_upload = root.join("uploads/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    fs::create_dir_all(&ghost_upload).unwrap();
    fs::write(ghost_upload.join("dddddddddddddddddddddddddddddddd"), b"p").unwrap();

    let s = LocalStore::open_with(root, files_only()).unwrap();
    assert!(files_under(&root.join("tmp")).is_empty());
    assert_eq!(files_under(&root.join("blobs")), blobs);
    assert!(!root.join("blobs/ffffffffffffffffffffffffffffffff").exists());
    assert!(!ghost_upload.exists());
    assert_eq!(files_under(&root.join("uploads")).len(), 1);
    // What the index references is intact.
    assert_eq!(read_all(&s, "bkt", "kept"), b"kept body");
    let (_, parts) = s.list_parts("bkt", "mp", &upload).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].etag, part_etag);
    let info = s
        .complete_multipart("bkt", "mp", &upload, &[(1, part_etag)])
        .unwrap();
    assert_eq!(info.size, 11);
    assert_eq!(read_all(&s, "bkt", "mp"), b"staged part");
}
