//! [`LocalStore`]: opening and recovery, buckets, and single-object operations.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata};

use crate::index::{
    self, blob_ref, decode, encode, BucketRecord, BLOB_REFS, BUCKETS, OBJECTS, PARTS, UPLOADS,
    UPLOADS_BY_KEY,
};
use crate::layout::{self, is_id, new_id, Layout, Loc};
use crate::object::{BlobWriter, ObjectReader, ObjectWriter};
use crate::{validate_bucket_name, BucketInfo, ObjectInfo, StoreError, StoreOptions, MAX_PUT_SIZE};

pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) db: Database,
    pub(crate) opts: StoreOptions,
    /// Shares index commits between concurrent object writes.
    pub(crate) group: crate::commit::GroupCommit,
    /// Current object records of recently read keys (`cache.rs`).
    pub(crate) cache: crate::cache::ReadCache,
    /// Set by [`LocalStore::seal`]: no write transaction commits any more.
    pub(crate) sealed: std::sync::atomic::AtomicBool,
}

/// The embedded object store. Cheap to clone (`Arc` inside), `Send + Sync`.
///
/// One process may have a given root open at a time (the index file is locked).
#[derive(Clone)]
pub struct LocalStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("layout", &self.inner.layout)
            .finish_non_exhaustive()
    }
}

/// Looks a bucket up by name in an open `buckets` table.
pub(crate) fn bucket_record(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<BucketRecord, StoreError> {
    match t.get(name)? {
        Some(v) => decode(v.value()),
        None => Err(StoreError::NoSuchBucket),
    }
}

impl LocalStore {
    /// Opens (creating if needed) the store under `root` with default options.
    ///
    /// Recovery runs first: temp files are removed, and so are blobs no object references,
    /// bucket directories of unknown buckets, staged parts not recorded in the index and
    /// staging directories of unknown uploads (what a crash between the rename and the
    /// index commit, or after the commit and before a replaced body's removal, leaves).
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Index`] (also when another process has the
    /// store open).
    pub fn open(root: &Path) -> Result<LocalStore, StoreError> {
        Self::open_with(root, StoreOptions::default())
    }

    /// Like [`LocalStore::open`], with explicit options.
    ///
    /// # Errors
    /// As [`LocalStore::open`].
    pub fn open_with(root: &Path, opts: StoreOptions) -> Result<LocalStore, StoreError> {
        layout::create_private_dir_all(root)?;
        let layout = Layout::new(root);
        layout.create()?;
        // The index file is created 0600 before redb opens it (redb would use the umask).
        {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(layout::FILE_MODE)
                .open(layout.index_file())?;
        }
        let db = Database::builder()
            .set_cache_size(opts.index_cache_bytes)
            .create(layout.index_file())?;
        // Before the store (and its read cache) exists: nothing can be cached yet.
        #[expect(
            clippy::disallowed_methods,
            reason = "creating the tables, before any read"
        )]
        let w = db.begin_write()?;
        {
            w.open_table(BUCKETS)?;
            w.open_table(OBJECTS)?;
            w.open_table(BLOB_REFS)?;
            w.open_table(index::INLINE_BODIES)?;
            w.open_table(UPLOADS)?;
            w.open_table(UPLOADS_BY_KEY)?;
            w.open_table(PARTS)?;
            w.open_table(index::VERSIONS)?;
            w.open_table(index::COUNTERS)?;
        }
        w.commit()?;
        let cache =
            crate::cache::ReadCache::new(opts.read_cache_entries, opts.read_cache_body_bytes);
        let store = LocalStore {
            inner: Arc::new(Inner {
                layout,
                db,
                opts,
                group: crate::commit::GroupCommit::default(),
                cache,
                sealed: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        store.recover()?;
        Ok(store)
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    /// How many index transactions object writes have committed, and how many writes they
    /// carried (see the `commit` module: concurrent writes share one).
    #[must_use]
    pub fn commit_stats(&self) -> crate::CommitStats {
        self.inner.group.stats()
    }

    pub(crate) fn opts(&self) -> &StoreOptions {
        &self.inner.opts
    }

    fn recover(&self) -> Result<(), StoreError> {
        let l = self.layout();
        for e in fs::read_dir(l.tmp_dir())? {
            remove_any(&e?.path())?;
        }
        let r = self.db().begin_read()?;
        let buckets = r.open_table(BUCKETS)?;
        let refs = r.open_table(BLOB_REFS)?;
        let uploads = r.open_table(UPLOADS)?;
        let parts = r.open_table(PARTS)?;
        let mut bucket_ids = HashSet::new();
        for item in buckets.iter()? {
            let (_, v) = item?;
            bucket_ids.insert(decode::<BucketRecord>(v.value())?.id);
        }
        for e in fs::read_dir(l.blobs_dir())? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !(bucket_ids.contains(&name) && e.file_type()?.is_dir()) {
                remove_any(&e.path())?;
                continue;
            }
            for s in fs::read_dir(e.path())? {
                let s = s?;
                let shard = s.file_name().to_string_lossy().into_owned();
                if !(shard.len() == 2 && s.file_type()?.is_dir()) {
                    remove_any(&s.path())?;
                    continue;
                }
                for b in fs::read_dir(s.path())? {
                    let b = b?;
                    let blob = b.file_name().to_string_lossy().into_owned();
                    let keep = is_id(&blob)
                        && blob.starts_with(&shard)
                        && refs.get(blob_ref(&name, &blob).as_str())?.is_some();
                    if !keep {
                        remove_any(&b.path())?;
                    }
                }
            }
        }
        for e in fs::read_dir(l.uploads_dir())? {
            let e = e?;
            let upload = e.file_name().to_string_lossy().into_owned();
            if !(is_id(&upload)
                && e.file_type()?.is_dir()
                && uploads.get(upload.as_str())?.is_some())
            {
                remove_any(&e.path())?;
                continue;
            }
            let (lo, hi) = index::part_range(&upload);
            let mut staged = HashSet::new();
            for item in parts.range(lo.as_str()..hi.as_str())? {
                let (_, v) = item?;
                staged.insert(decode::<index::PartRecord>(v.value())?.blob);
            }
            for p in fs::read_dir(e.path())? {
                let p = p?;
                if !staged.contains(p.file_name().to_string_lossy().as_ref()) {
                    remove_any(&p.path())?;
                }
            }
        }
        Ok(())
    }

    /// Creates a bucket.
    ///
    /// # Errors
    /// [`StoreError::InvalidBucketName`], [`StoreError::BucketAlreadyOwnedByYou`].
    pub fn create_bucket(&self, name: &str, region: &str) -> Result<BucketInfo, StoreError> {
        self.create_bucket_with(name, region, false)
    }

    /// [`LocalStore::create_bucket`]; with `object_lock`, the bucket is created versioned and
    /// with Object Lock (no default retention) in the same commit, as S3 creates a bucket asked
    /// for with `x-amz-bucket-object-lock-enabled`.
    ///
    /// # Errors
    /// As [`LocalStore::create_bucket`].
    pub fn create_bucket_with(
        &self,
        name: &str,
        region: &str,
        object_lock: bool,
    ) -> Result<BucketInfo, StoreError> {
        validate_bucket_name(name)?;
        let rec = BucketRecord {
            id: new_id(),
            region: region.to_owned(),
            created: index::now_millis(),
            versioning: if object_lock {
                index::Versioning::Enabled
            } else {
                index::Versioning::Unversioned
            },
            object_lock: object_lock.then(crate::LockConfig::default),
        };
        // The directory first: a crash before the commit leaves an unknown directory,
        // which `open` removes.
        let dir = self.layout().resolve(Loc::BucketDir { bucket: &rec.id })?;
        layout::ensure_dir(&dir)?;
        let result = (|| {
            let w = self.begin_write()?;
            {
                let mut t = w.open_table(BUCKETS)?;
                if t.get(name)?.is_some() {
                    return Err(StoreError::BucketAlreadyOwnedByYou);
                }
                t.insert(name, encode(&rec)?.as_slice())?;
            }
            w.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = layout::remove_dir_quiet(&dir);
            return Err(e);
        }
        Ok(BucketInfo {
            name: name.to_owned(),
            region: rec.region,
            created: rec.created,
        })
    }

    /// Deletes an empty bucket, aborting its in-progress multipart uploads.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::BucketNotEmpty`].
    pub fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        let w = self.begin_write()?;
        let (rec, upload_ids) = {
            let mut buckets = w.open_table(BUCKETS)?;
            let rec = bucket_record(&buckets, name)?;
            let objects = w.open_table(OBJECTS)?;
            let start = rec.id.as_bytes();
            if let Some(first) = objects.range(start..)?.next() {
                if first?.0.value().starts_with(start) {
                    return Err(StoreError::BucketNotEmpty);
                }
            }
            // Noncurrent versions and delete markers count too (S3: a versioned bucket is
            // empty only when ListObjectVersions is).
            let versions = w.open_table(index::VERSIONS)?;
            if let Some(first) = versions.range(start..)?.next() {
                if first?.0.value().starts_with(start) {
                    return Err(StoreError::BucketNotEmpty);
                }
            }
            let mut by_key = w.open_table(UPLOADS_BY_KEY)?;
            let mut uploads = w.open_table(UPLOADS)?;
            let mut parts = w.open_table(PARTS)?;
            let mut upload_ids = Vec::new();
            let end = index::successor(start)
                .ok_or_else(|| StoreError::Index("bad bucket id".to_owned()))?;
            let gone = by_key.extract_from_if(start..end.as_slice(), |_, ()| true)?;
            for item in gone {
                let (k, _) = item?;
                if let Some(id) = index::upload_id_of(k.value()) {
                    upload_ids.push(id.to_owned());
                }
            }
            for id in &upload_ids {
                uploads.remove(id.as_str())?;
                let (lo, hi) = index::part_range(id);
                parts.retain_in(lo.as_str()..hi.as_str(), |_, _| false)?;
            }
            buckets.remove(name)?;
            (rec, upload_ids)
        };
        w.commit()?;
        // Best effort: anything left is removed by the next `open`.
        if let Ok(dir) = self.layout().resolve(Loc::BucketDir { bucket: &rec.id }) {
            let _ = layout::remove_dir_quiet(&dir);
        }
        for id in &upload_ids {
            if let Ok(dir) = self.layout().resolve(Loc::UploadDir { upload: id }) {
                let _ = layout::remove_dir_quiet(&dir);
            }
        }
        Ok(())
    }

    /// A bucket's information.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`].
    pub fn bucket(&self, name: &str) -> Result<BucketInfo, StoreError> {
        let r = self.db().begin_read()?;
        let rec = bucket_record(&r.open_table(BUCKETS)?, name)?;
        Ok(BucketInfo {
            name: name.to_owned(),
            region: rec.region,
            created: rec.created,
        })
    }

    /// All buckets, sorted by name.
    ///
    /// # Errors
    /// Only storage errors.
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>, StoreError> {
        let r = self.db().begin_read()?;
        let t = r.open_table(BUCKETS)?;
        let mut out = Vec::with_capacity(usize::try_from(t.len()?).unwrap_or(0));
        for item in t.iter()? {
            let (k, v) = item?;
            let rec: BucketRecord = decode(v.value())?;
            out.push(BucketInfo {
                name: k.value().to_owned(),
                region: rec.region,
                created: rec.created,
            });
        }
        Ok(out)
    }

    /// The id of bucket `name`.
    pub(crate) fn bucket_id(&self, name: &str) -> Result<String, StoreError> {
        let r = self.db().begin_read()?;
        Ok(bucket_record(&r.open_table(BUCKETS)?, name)?.id)
    }

    /// Starts writing a new object into `bucket`; the key is given at commit.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`].
    pub fn new_object(&self, bucket: &str) -> Result<ObjectWriter, StoreError> {
        let bucket_id = self.bucket_id(bucket)?;
        let blob = BlobWriter::create(self.layout(), MAX_PUT_SIZE, self.opts().inline_max)?;
        Ok(ObjectWriter::new(
            self.clone(),
            bucket.to_owned(),
            bucket_id,
            blob,
        ))
    }

    /// An object's information and a reader over its body.
    ///
    /// The reader holds the body open: it stays readable even if the object is replaced or
    /// deleted meanwhile.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::NoSuchKey`], key validation errors.
    pub fn get(&self, bucket: &str, key: &str) -> Result<(ObjectInfo, ObjectReader), StoreError> {
        self.open_record(bucket, key, None)
            .map_err(marker_is_no_such_key)
    }

    /// [`LocalStore::get_version`]'s body.
    pub(crate) fn open_record(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(ObjectInfo, ObjectReader), StoreError> {
        // A concurrent overwrite may remove the body between the index read and the open;
        // then the index holds a newer record: read again.
        // The read cache may hold a record whose body an overwrite has just removed: the retries
        // read the index itself.
        let mut attempts = 0;
        loop {
            let c = self.current_record(bucket, key, version_id, attempts == 0)?;
            let reader = if c.rec.inline {
                match c.body.get() {
                    Some(body) => Some(ObjectReader::in_memory(body.to_vec())),
                    None => self.inline_body(&c.bucket_id, &c.rec)?.map(|body| {
                        if version_id.is_none() {
                            self.read_cache().attach_body(bucket, key, &c, &body);
                        }
                        ObjectReader::in_memory(body)
                    }),
                }
            } else {
                let path = self.layout().resolve(Loc::Blob {
                    bucket: &c.bucket_id,
                    blob: &c.rec.blob,
                })?;
                match fs::File::open(&path) {
                    Ok(f) => Some(ObjectReader::new(f, c.rec.size)),
                    // A version named by its id that vanished was deleted meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 8 => None,
                    Err(e) => return Err(e.into()),
                }
            };
            match reader {
                Some(reader) => {
                    let info = c.rec.clone().info_in(key.to_owned(), c.versioning);
                    return Ok((info, reader));
                }
                // The body was removed by a commit after the record was read (or the read cache
                // held a record an overwrite has just replaced): read the index again.
                None if attempts < 8 => attempts += 1,
                None => {
                    return Err(StoreError::Index(
                        "an inline object without its body".to_owned(),
                    ))
                }
            }
        }
    }

    /// The body of `rec`, kept in the index; `None` when it is no longer there (its version was
    /// removed after `rec` was read).
    fn inline_body(
        &self,
        bucket_id: &str,
        rec: &index::ObjectRecord,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db().begin_read()?;
        let t = r.open_table(index::INLINE_BODIES)?;
        let Some(v) = t.get(blob_ref(bucket_id, &rec.blob).as_str())? else {
            return Ok(None);
        };
        let body = v.value().to_vec();
        if body.len() as u64 != rec.size {
            return Err(StoreError::Index(format!(
                "inline body of {} bytes for an object of {}",
                body.len(),
                rec.size
            )));
        }
        Ok(Some(body))
    }

    /// An object's information.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::NoSuchKey`], key validation errors.
    pub fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo, StoreError> {
        self.head_version(bucket, key, None)
            .map_err(marker_is_no_such_key)
    }

    /// Deletes an object; deleting an absent key succeeds.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], key validation errors.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.delete_if(bucket, key, None)
    }

    /// [`LocalStore::delete`] only if `condition` holds for the object, checked in the deleting
    /// transaction.
    ///
    /// # Errors
    /// Those of `delete`, [`StoreError::PreconditionFailed`], [`StoreError::NoSuchKey`] (an
    /// `If-Match` with no object).
    pub fn delete_if(
        &self,
        bucket: &str,
        key: &str,
        condition: Option<&crate::WriteCondition>,
    ) -> Result<(), StoreError> {
        self.delete_version(bucket, key, None, condition)
            .map(|_| ())
    }

    /// Removes a body that the index no longer references. Best effort: a failure leaves an
    /// orphan that the next `open` removes.
    pub(crate) fn remove_blob(&self, bucket_id: &str, blob: &str) {
        if let Ok(p) = self.layout().resolve(Loc::Blob {
            bucket: bucket_id,
            blob,
        }) {
            let _ = layout::remove_file_quiet(&p);
        }
    }

    /// An object's tags.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::NoSuchKey`].
    pub fn get_tags(&self, bucket: &str, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self.head(bucket, key)?.meta.tags)
    }

    /// Replaces an object's tags (the ETag and last-modified time stay).
    ///
    /// # Errors
    /// [`StoreError::InvalidTag`], [`StoreError::NoSuchBucket`], [`StoreError::NoSuchKey`].
    pub fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        self.put_version_tags(bucket, key, None, tags)
            .map_err(marker_is_no_such_key)
            .map(|_| ())
    }

    /// Removes all of an object's tags.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::NoSuchKey`].
    pub fn delete_tags(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.put_tags(bucket, key, Vec::new())
    }

    /// Index-only bulk insert for benchmarks: records `keys` in `bucket` as objects of
    /// `size` bytes in ONE transaction, without writing any body. Getting such an object
    /// fails with an I/O error. Only compiled with the `bench-support` feature, which
    /// exists for `benches/list.rs`; never enable it in a server build.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], key validation errors, storage errors.
    #[cfg(feature = "bench-support")]
    pub fn bench_insert_index_only(
        &self,
        bucket: &str,
        keys: impl IntoIterator<Item = String>,
        size: u64,
    ) -> Result<u64, StoreError> {
        self.insert_index_only(bucket, keys, size)
    }

    #[cfg(any(test, feature = "bench-support"))]
    pub(crate) fn insert_index_only(
        &self,
        bucket: &str,
        keys: impl IntoIterator<Item = String>,
        size: u64,
    ) -> Result<u64, StoreError> {
        let w = self.begin_write()?;
        let mut n = 0;
        {
            let b = bucket_record(&w.open_table(BUCKETS)?, bucket)?;
            let mut t = w.open_table(OBJECTS)?;
            let rec = index::ObjectRecord {
                blob: new_id(),
                size,
                etag: "d41d8cd98f00b204e9800998ecf8427e".to_owned(),
                last_modified: index::now_secs(),
                meta: crate::ObjectMeta::default(),
                parts_count: None,
                parts: Vec::new(),
                version_id: None,
                seq: 0,
                completed_upload: None,
                inline: false,
            };
            let value = encode(&rec)?;
            for key in keys {
                crate::validate_key(&key)?;
                t.insert(index::object_key(&b.id, &key).as_slice(), value.as_slice())?;
                n += 1;
            }
        }
        w.commit()?;
        Ok(n)
    }
}

/// The plain (unversioned) calls answer a current delete marker as S3 does without versions:
/// no such key.
fn marker_is_no_such_key(e: StoreError) -> StoreError {
    match e {
        StoreError::DeleteMarker { .. } => StoreError::NoSuchKey,
        e => e,
    }
}

fn remove_any(p: &Path) -> io::Result<()> {
    if fs::symlink_metadata(p)?.is_dir() {
        layout::remove_dir_quiet(p)
    } else {
        layout::remove_file_quiet(p)
    }
}
