//! Helpers shared by the integration tests.

use std::io::Read;
use std::path::{Path, PathBuf};

use keyhole_store::{LocalStore, ObjectInfo, ObjectMeta, StoreOptions};
use md5::{Digest, Md5};

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub fn md5_bin(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

pub fn open() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path()).unwrap();
    (dir, s)
}

/// Options under which every body is a file of its own (none is kept in the index), for the
/// tests that count body files.
pub fn files_only() -> StoreOptions {
    StoreOptions {
        inline_max: 0,
        ..StoreOptions::default()
    }
}

/// A store that keeps every body in a file (see [`files_only`]).
pub fn open_files() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open_with(dir.path(), files_only()).unwrap();
    (dir, s)
}

/// A store whose minimum part size is 1 KiB, so multipart tests stay small.
pub fn open_small_parts() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open_with(
        dir.path(),
        StoreOptions {
            min_part_size: 1024,
            ..Default::default()
        },
    )
    .unwrap();
    (dir, s)
}

pub fn put(s: &LocalStore, bucket: &str, key: &str, body: &[u8]) -> ObjectInfo {
    put_meta(s, bucket, key, body, ObjectMeta::default())
}

pub fn put_meta(
    s: &LocalStore,
    bucket: &str,
    key: &str,
    body: &[u8],
    meta: ObjectMeta,
) -> ObjectInfo {
    let mut w = s.new_object(bucket).unwrap();
    for chunk in body.chunks(7000) {
        w.write(chunk).unwrap();
    }
    w.commit(key, meta, None).unwrap()
}

pub fn read_all(s: &LocalStore, bucket: &str, key: &str) -> Vec<u8> {
    let (info, mut r) = s.get(bucket, key).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    assert_eq!(v.len() as u64, info.size);
    v
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
