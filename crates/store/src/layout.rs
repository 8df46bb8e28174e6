//! On-disk layout and the single function that turns identifiers into paths.
//!
//! ```text
//! <root>/index.redb                          metadata index (buckets, objects, uploads, parts)
//!                                            and object bodies of at most `inline_max` bytes
//! <root>/tmp/<id>.tmp                        bodies being written; wiped by `open`
//! <root>/blobs/<bucket-id>/<bb>/<blob-id>    larger object bodies (`bb` = first two hex digits)
//! <root>/uploads/<upload-id>/<part-blob-id>  staged multipart parts
//! ```
//!
//! # Security
//!
//! Object keys, bucket names and client-supplied upload ids never become paths. Every path
//! under the root is built by [`Layout::resolve`], which only accepts identifiers made of
//! exactly [`ID_LEN`] lowercase hexadecimal digits (the store generates them, at random or, for
//! bodies kept in the index, in time order), so
//! no input can name `..`, a separator, an absolute path or anything outside the root. A
//! proptest in this module checks it for arbitrary strings.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Length of every storage identifier (bucket ids, blob ids, upload ids): 128 random bits
/// as lowercase hex.
pub const ID_LEN: usize = 32;

/// A fresh random identifier of [`ID_LEN`] lowercase hex digits.
pub(crate) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A fresh identifier of [`ID_LEN`] lowercase hex digits that sorts after the ones this process
/// made before it: the time in nanoseconds (64 bits, big-endian; one more than the last one
/// made if the clock has not moved on or stepped back), then 64 random bits. For bodies kept in the index, whose table is ordered by this id: a batch of
/// small writes then adds its bodies next to each other at the table's end, so its commit copies
/// and checksums a few pages instead of one leaf and its branches per body (docs/BENCHMARKS.md,
/// "Bodies in the index in write order"). Never for file bodies, whose shard directory is the
/// id's first byte (all would land in one). Across restarts uniqueness rests on the random half,
/// as [`new_id`]'s does.
pub(crate) fn new_ordered_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or_else(|last| last);
    let nanos = now.max(prev.saturating_add(1));
    let mut id = [0u8; 16];
    let (time, random) = id.split_at_mut(8);
    time.copy_from_slice(&nanos.to_be_bytes());
    random.copy_from_slice(&rand::random::<[u8; 8]>());
    hex::encode(id)
}

/// Whether `s` has the exact shape of a storage identifier.
pub(crate) fn is_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A place in the layout, named only by storage identifiers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Loc<'a> {
    /// The directory holding one bucket's blobs.
    BucketDir { bucket: &'a str },
    /// The shard directory of one blob.
    BlobShard { bucket: &'a str, blob: &'a str },
    /// One object body.
    Blob { bucket: &'a str, blob: &'a str },
    /// The staging directory of one multipart upload.
    UploadDir { upload: &'a str },
    /// One staged part.
    Part { upload: &'a str, part: &'a str },
    /// A temporary file.
    Temp { id: &'a str },
}

/// Paths under one store root.
#[derive(Debug)]
pub(crate) struct Layout {
    root: PathBuf,
}

fn check(id: &str) -> Result<&str, StoreError> {
    if is_id(id) {
        Ok(id)
    } else {
        Err(StoreError::Index(format!(
            "refusing to build a path from `{}`",
            id.escape_debug()
        )))
    }
}

fn shard(blob: &str) -> Result<&str, StoreError> {
    check(blob)?
        .get(..2)
        .ok_or_else(|| StoreError::Index("blob id too short".to_owned()))
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The store's root directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn index_file(&self) -> PathBuf {
        self.root.join("index.redb")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub(crate) fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// The path of `loc`. This is the only function that joins identifiers onto the root;
    /// it refuses anything that is not a storage identifier.
    pub(crate) fn resolve(&self, loc: Loc<'_>) -> Result<PathBuf, StoreError> {
        Ok(match loc {
            Loc::BucketDir { bucket } => self.blobs_dir().join(check(bucket)?),
            Loc::BlobShard { bucket, blob } => {
                self.blobs_dir().join(check(bucket)?).join(shard(blob)?)
            }
            Loc::Blob { bucket, blob } => self
                .blobs_dir()
                .join(check(bucket)?)
                .join(shard(blob)?)
                .join(blob),
            Loc::UploadDir { upload } => self.uploads_dir().join(check(upload)?),
            Loc::Part { upload, part } => {
                self.uploads_dir().join(check(upload)?).join(check(part)?)
            }
            Loc::Temp { id } => self.tmp_dir().join(format!("{}.tmp", check(id)?)),
        })
    }

    /// Creates the fixed directories.
    pub(crate) fn create(&self) -> io::Result<()> {
        for d in [self.tmp_dir(), self.blobs_dir(), self.uploads_dir()] {
            create_private_dir_all(&d)?;
        }
        sync_dir(&self.root)
    }
}

/// Mode of every directory the store creates (whatever the umask, never wider).
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of every file the store creates.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parent, mode 0700.
pub(crate) fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Makes directory entry changes (create, rename, remove) in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (whose parent must exist), making the new entry durable. Returns `NotFound`
/// if the parent is gone.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => match dir.parent() {
            Some(p) => sync_dir(p),
            None => Ok(()),
        },
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_file_quiet(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory tree, treating "already gone" as success.
pub(crate) fn remove_dir_quiet(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    fn all_locs<'a>(a: &'a str, b: &'a str) -> [Loc<'a>; 6] {
        [
            Loc::BucketDir { bucket: a },
            Loc::BlobShard { bucket: a, blob: b },
            Loc::Blob { bucket: a, blob: b },
            Loc::UploadDir { upload: a },
            Loc::Part { upload: a, part: b },
            Loc::Temp { id: a },
        ]
    }

    /// A resolved path must be the root followed only by plain file names.
    fn confined(root: &Path, p: &Path) -> bool {
        p.strip_prefix(root).is_ok_and(|rest| {
            rest.components()
                .all(|c| matches!(c, Component::Normal(n) if n.to_str().is_some_and(|s| !s.contains(['/', '\\', '\0']) && s != "." && s != "..")))
        })
    }

    #[test]
    fn ordered_ids_are_ids_distinct_and_in_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_ordered_id()).collect();
        assert!(ids.iter().all(|id| is_id(id)));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Made one after another in one process: their time halves go up.
        assert!(ids
            .windows(2)
            .all(|w| w[0].as_bytes().get(..16) < w[1].as_bytes().get(..16)));
    }

    #[test]
    fn ids_resolve_under_the_root() {
        let l = Layout::new(Path::new("/data/store"));
        let (a, b) = (new_id(), new_id());
        assert!(is_id(&a) && is_id(&b));
        let blob = l
            .resolve(Loc::Blob {
                bucket: &a,
                blob: &b,
            })
            .unwrap();
        assert_eq!(
            blob,
            Path::new("/data/store/blobs")
                .join(&a)
                .join(b.get(..2).unwrap())
                .join(&b)
        );
        for loc in all_locs(&a, &b) {
            assert!(confined(Path::new("/data/store"), &l.resolve(loc).unwrap()));
        }
    }

    #[test]
    fn hostile_inputs_are_refused() {
        let l = Layout::new(Path::new("/data/store"));
        let good = new_id();
        for bad in [
            "",
            "..",
            ".",
            "/",
            "/etc/passwd",
            "../../../../etc/passwd",
            "a/b",
            "a\0b",
            "0123456789abcdef0123456789abcde/",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdef0",
            "..3456789abcdef0123456789abcdef",
        ] {
            for loc in all_locs(bad, &good).into_iter().chain(all_locs(&good, bad)) {
                let needs_bad = match loc {
                    Loc::BucketDir { bucket } => bucket == bad,
                    Loc::UploadDir { upload } => upload == bad,
                    Loc::Temp { id } => id == bad,
                    _ => true,
                };
                if needs_bad {
                    assert!(l.resolve(loc).is_err(), "{loc:?}");
                }
            }
        }
    }

    fn hostile() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_owned()),
            Just("/".to_owned()),
            Just("/etc/passwd".to_owned()),
            Just("\0".to_owned()),
            "[./a-f0-9\\\\\0]{0,40}",
            "\\PC{0,64}",
            "[a-f0-9]{32}",
            "[a-f0-9./]{32}",
            ".{1024}",
            proptest::collection::vec(
                prop_oneof!["\\.\\.", "/", "[a-f0-9]{1,4}", "\0", "é"],
                0..40
            )
            .prop_map(|v| v.concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn nothing_escapes_the_root(a in hostile(), b in hostile()) {
            let root = Path::new("/srv/keyhole");
            let l = Layout::new(root);
            for loc in all_locs(&a, &b) {
                if let Ok(p) = l.resolve(loc) {
                    prop_assert!(confined(root, &p), "{loc:?} -> {p:?}");
                    prop_assert!(p.starts_with(root.join("blobs")) || p.starts_with(root.join("uploads")) || p.starts_with(root.join("tmp")));
                }
            }
        }
    }
}
