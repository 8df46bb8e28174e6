//! Streaming writers (objects and parts) and the object reader.
//!
//! A writer streams the body into a temp file, hashing MD5 as it goes; nothing is held in
//! memory beyond a small buffer. Commit makes the body durable and visible in this order:
//! fsync the file, rename it into place, fsync the directory, commit the index transaction
//! (durable), then remove the body it replaced. Dropping a writer without committing
//! removes its temp file.
//!
//! An object body of at most [`crate::StoreOptions::inline_max`] bytes never gets a file: the
//! writer keeps it in memory (spilling to the temp file the moment it grows past the limit), and
//! the commit writes it into the index (`inline_bodies`) in the transaction that records the
//! object, so it is durable exactly when the object is, for one `fdatasync` shared with the
//! other writes of the group commit instead of a file creation, two fsyncs and a rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use md5::{Digest, Md5};
use redb::ReadableTable;

use crate::commit::Update;
use crate::index::{self, blob_ref, decode, encode, ObjectRecord, PartRecord};
use crate::index::{BLOB_REFS, BUCKETS, INLINE_BODIES, OBJECTS, PARTS, UPLOADS};
use crate::layout::{self, new_id, Layout, Loc};
use crate::store::bucket_record;
use crate::{
    validate_key, validate_tags, LocalStore, ObjectInfo, ObjectMeta, PartInfo, StoreError,
    WriteCondition,
};

/// Removes the temp file on drop unless it was renamed away.
#[derive(Debug)]
pub(crate) struct TempGuard {
    path: Option<PathBuf>,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = layout::remove_file_quiet(&p);
        }
    }
}

/// A body being received and hashed: kept in memory while it fits in the writer's inline
/// limit, in a temp file once it outgrows it (or from the start when it may not be inline).
#[derive(Debug)]
pub(crate) struct BlobWriter {
    /// The temp file's path (created when the body first needs a file).
    path: PathBuf,
    guard: TempGuard,
    file: Option<BufWriter<File>>,
    /// The body while it has no file.
    mem: Vec<u8>,
    /// Largest body kept in memory to the end (0: every body goes to a file).
    inline_max: u64,
    md5: Md5,
    written: u64,
    limit: u64,
    /// Up to where the body may grow before the free space is checked again ([`crate::space`]).
    space_checked_to: u64,
}

/// Where a finished body is.
#[derive(Debug)]
pub(crate) enum Body {
    /// A fsynced temp file.
    File(TempGuard),
    /// In memory, to be written into the index.
    Inline(Vec<u8>),
}

/// A finished body: fsynced in its temp file, or in memory.
pub(crate) struct Finished {
    pub(crate) body: Body,
    pub(crate) md5: [u8; 16],
    pub(crate) size: u64,
}

impl Finished {
    /// Renames the temp file to `dest` (whose directory is `dir`) and makes it durable.
    /// `NotFound` means `dir` is gone.
    pub(crate) fn publish(self, dir: &std::path::Path, dest: &std::path::Path) -> io::Result<()> {
        let Body::File(mut guard) = self.body else {
            return Err(io::Error::other("an inline body has no file to publish"));
        };
        let Some(src) = guard.path.as_ref() else {
            return Err(io::Error::other("temp file already published"));
        };
        fs::rename(src, dest)?;
        guard.path = None;
        layout::sync_dir(dir)
    }
}

impl BlobWriter {
    /// A writer of bodies up to `limit` bytes that keeps a body of at most `inline_max` bytes
    /// in memory (0: none; the temp file is created at once).
    pub(crate) fn create(layout: &Layout, limit: u64, inline_max: u64) -> Result<Self, StoreError> {
        let path = layout.resolve(Loc::Temp { id: &new_id() })?;
        let mut w = Self {
            path,
            guard: TempGuard { path: None },
            file: None,
            mem: Vec::new(),
            inline_max,
            md5: Md5::new(),
            written: 0,
            limit,
            space_checked_to: 0,
        };
        if inline_max == 0 {
            w.spill()?;
        }
        Ok(w)
    }

    /// Creates the temp file and moves what is in memory into it.
    fn spill(&mut self) -> Result<(), StoreError> {
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(layout::FILE_MODE)
                .open(&self.path)?
        };
        self.guard.path = Some(self.path.clone());
        let mut file = BufWriter::with_capacity(256 * 1024, file);
        file.write_all(&self.mem)?;
        self.mem = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    /// Whether `more` bytes would still be kept in memory (no file work).
    pub(crate) fn stays_in_memory(&self, more: usize) -> bool {
        self.file.is_none()
            && u64::try_from(more)
                .ok()
                .and_then(|m| self.written.checked_add(m))
                .is_some_and(|t| t <= self.inline_max)
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let len = u64::try_from(data.len()).map_err(|_| StoreError::EntityTooLarge)?;
        let total = self
            .written
            .checked_add(len)
            .filter(|t| *t <= self.limit)
            .ok_or(StoreError::EntityTooLarge)?;
        if self.file.is_none() && total > self.inline_max {
            self.spill()?;
        }
        if self.file.is_some() && total > self.space_checked_to {
            let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
            crate::space::ensure(dir, len.saturating_add(crate::space::CHECK_EVERY))?;
            self.space_checked_to = total.saturating_add(crate::space::CHECK_EVERY);
        }
        match &mut self.file {
            Some(f) => f.write_all(data)?,
            None => self.mem.extend_from_slice(data),
        }
        self.md5.update(data);
        self.written = total;
        Ok(())
    }

    /// Flushes and fsyncs a file body; checks the digest when one is expected.
    pub(crate) fn finish(self, expected_md5: Option<[u8; 16]>) -> Result<Finished, StoreError> {
        let md5: [u8; 16] = self.md5.finalize().into();
        if expected_md5.is_some_and(|e| e != md5) {
            return Err(StoreError::BadDigest);
        }
        let body = match self.file {
            None => Body::Inline(self.mem),
            Some(file) => {
                let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
                file.sync_all()?;
                drop(file);
                Body::File(self.guard)
            }
        };
        Ok(Finished {
            body,
            md5,
            size: self.written,
        })
    }
}

/// Streams a new object body to disk; [`ObjectWriter::commit`] publishes it under a key.
#[derive(Debug)]
pub struct ObjectWriter {
    store: LocalStore,
    bucket: String,
    bucket_id: String,
    blob: BlobWriter,
}

impl ObjectWriter {
    pub(crate) fn new(
        store: LocalStore,
        bucket: String,
        bucket_id: String,
        blob: BlobWriter,
    ) -> Self {
        Self {
            store,
            bucket,
            bucket_id,
            blob,
        }
    }

    /// Appends `data` to the body.
    ///
    /// # Errors
    /// [`StoreError::EntityTooLarge`] past [`crate::MAX_PUT_SIZE`], I/O errors.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.blob.write(data)
    }

    /// Bytes written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.blob.written
    }

    /// Whether writing `more` bytes would keep the whole body so far in memory (the body is
    /// small enough to be kept in the index): such a write, and a [`ObjectWriter::seal`] after
    /// it, touch no file and never block.
    #[must_use]
    pub fn stays_in_memory(&self, more: usize) -> bool {
        self.blob.stays_in_memory(more)
    }

    /// Durably publishes the object under `key`, replacing any previous one atomically
    /// (concurrent writers: the last commit wins).
    ///
    /// # Errors
    /// [`StoreError::BadDigest`] if `expected_md5` differs (nothing is stored), key and tag
    /// validation errors, [`StoreError::NoSuchBucket`] if the bucket was deleted meanwhile.
    pub fn commit(
        self,
        key: &str,
        meta: ObjectMeta,
        expected_md5: Option<[u8; 16]>,
    ) -> Result<ObjectInfo, StoreError> {
        self.commit_if(key, meta, expected_md5, None)
    }

    /// [`ObjectWriter::commit`] only if `condition` holds for the object it would replace,
    /// checked in the committing transaction (nothing is stored when it does not).
    ///
    /// # Errors
    /// Those of `commit`, [`StoreError::PreconditionFailed`], [`StoreError::NoSuchKey`] (an
    /// `If-Match` with no object).
    pub fn commit_if(
        self,
        key: &str,
        meta: ObjectMeta,
        expected_md5: Option<[u8; 16]>,
        condition: Option<&WriteCondition>,
    ) -> Result<ObjectInfo, StoreError> {
        validate_key(key)?;
        validate_tags(&meta.tags)?;
        self.seal(expected_md5)?.commit_if(key, meta, condition)
    }

    /// Makes the body durable in its place without publishing it: the file is fsynced, renamed
    /// into the bucket and its directory fsynced. Nothing refers to it yet, so this changes
    /// nothing anyone can see; [`SealedObject::commit_if`] then publishes it. A caller may do
    /// this while it waits for permission to change anything (keyhole waits for its write-ahead
    /// audit record meanwhile). A body small enough to be kept in the index stays in memory
    /// (no file work at all): the commit writes it into the index with its object.
    ///
    /// # Errors
    /// [`StoreError::BadDigest`] if `expected_md5` differs (nothing is stored),
    /// [`StoreError::NoSuchBucket`] if the bucket was deleted meanwhile, I/O errors.
    pub fn seal(self, expected_md5: Option<[u8; 16]>) -> Result<SealedObject, StoreError> {
        let Self {
            store,
            bucket,
            bucket_id,
            blob,
        } = self;
        let done = blob.finish(expected_md5)?;
        let (md5, size) = (done.md5, done.size);
        let (blob, dest, inline) = match done.body {
            // Bodies in the index are keyed in write order (see `layout::new_ordered_id`).
            Body::Inline(bytes) => (layout::new_ordered_id(), None, Some(bytes)),
            Body::File(_) => {
                let blob = new_id();
                let dest = place_body(&store, &bucket_id, &blob, done)?;
                (blob, Some(dest), None)
            }
        };
        Ok(SealedObject {
            store,
            bucket,
            bucket_id,
            blob,
            dest,
            inline,
            md5,
            size,
        })
    }
}

/// An object body durable in its place but not yet published ([`ObjectWriter::seal`]).
/// Dropping it without committing removes the body.
#[derive(Debug)]
pub struct SealedObject {
    store: LocalStore,
    bucket: String,
    bucket_id: String,
    blob: String,
    /// The body's path while this owns it (a file body).
    dest: Option<PathBuf>,
    /// The body itself, when it goes into the index.
    inline: Option<Vec<u8>>,
    md5: [u8; 16],
    size: u64,
}

impl Drop for SealedObject {
    fn drop(&mut self) {
        if let Some(p) = self.dest.take() {
            let _ = layout::remove_file_quiet(&p);
        }
    }
}

impl SealedObject {
    /// Body size in bytes.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Durably publishes the body under `key` if `condition` holds for the object it would
    /// replace (checked in the committing transaction), replacing any previous one atomically.
    /// Concurrent commits share index transactions (group commit, see `commit.rs`); this returns
    /// once the one holding this write is durable.
    ///
    /// # Errors
    /// Key and tag validation errors, [`StoreError::PreconditionFailed`],
    /// [`StoreError::NoSuchKey`] (an `If-Match` with no object), [`StoreError::NoSuchBucket`]
    /// if the bucket was deleted meanwhile, Object Lock errors; the body is removed on any.
    pub fn commit_if(
        mut self,
        key: &str,
        meta: ObjectMeta,
        condition: Option<&WriteCondition>,
    ) -> Result<ObjectInfo, StoreError> {
        validate_key(key)?;
        validate_tags(&meta.tags)?;
        let rec = ObjectRecord {
            blob: self.blob.clone(),
            size: self.size,
            etag: hex::encode(self.md5),
            last_modified: index::now_secs(),
            meta,
            parts_count: None,
            parts: Vec::new(),
            version_id: None,
            seq: 0,
            completed_upload: None,
            inline: false,
        };
        let update = Update {
            bucket: self.bucket.clone(),
            bucket_id: self.bucket_id.clone(),
            key: key.to_owned(),
            rec,
            body: self.inline.take(),
            condition: condition.cloned(),
        };
        // On an error `self` is dropped and removes the body.
        let c = self.store.inner.group.commit(&self.store, update)?;
        self.dest = None;
        for old in &c.gone {
            self.store.remove_blob(&self.bucket_id, old);
        }
        Ok(c.rec.written(key.to_owned()))
    }
}

/// The ETag of the object under `key` in the transaction's view, if there is one.
pub(crate) fn current_etag(
    w: &redb::WriteTransaction,
    bucket_id: &str,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let t = w.open_table(OBJECTS)?;
    let etag = match t.get(index::object_key(bucket_id, key).as_slice())? {
        Some(v) => Some(decode::<ObjectRecord>(v.value())?.etag),
        None => None,
    };
    Ok(etag)
}

/// Renames a finished body into bucket `bucket_id` as blob `blob` and makes the rename durable
/// (the directory is fsynced); returns where it is. Nothing refers to it until an index commit
/// does, and `open` removes it if none ever does.
pub(crate) fn place_body(
    store: &LocalStore,
    bucket_id: &str,
    blob: &str,
    done: Finished,
) -> Result<PathBuf, StoreError> {
    let l = store.layout();
    let shard = l.resolve(Loc::BlobShard {
        bucket: bucket_id,
        blob,
    })?;
    let dest = l.resolve(Loc::Blob {
        bucket: bucket_id,
        blob,
    })?;
    let gone = |e: io::Error| {
        if e.kind() == io::ErrorKind::NotFound {
            StoreError::NoSuchBucket
        } else {
            StoreError::Io(e)
        }
    };
    layout::ensure_dir(&shard).map_err(gone)?;
    done.publish(&shard, &dest).map_err(gone)?;
    Ok(dest)
}

/// Inside write transaction `w`: checks that `bucket` is still the bucket `bucket_id` the body
/// was written into and that `check` agrees, then references the body (a file's: `inline` is
/// `None`) or writes it into the index (`inline`) and makes `rec` the current object of `key`.
/// Returns the file bodies the write retired (to remove once the
/// transaction is durable). A lone write and a group commit's batch (`commit.rs`) both install
/// through here.
pub(crate) fn install_object(
    w: &redb::WriteTransaction,
    bucket: &str,
    bucket_id: &str,
    key: &str,
    rec: &mut ObjectRecord,
    inline: Option<&[u8]>,
    check: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
) -> Result<Vec<String>, StoreError> {
    let b = bucket_record(&w.open_table(BUCKETS)?, bucket)?;
    if b.id != bucket_id {
        return Err(StoreError::NoSuchBucket);
    }
    check(w)?;
    let r = blob_ref(bucket_id, &rec.blob);
    rec.inline = inline.is_some();
    match inline {
        Some(body) => {
            w.open_table(INLINE_BODIES)?.insert(r.as_str(), body)?;
        }
        None => {
            w.open_table(BLOB_REFS)?.insert(r.as_str(), ())?;
        }
    }
    crate::version::install_current(w, &b, key, rec)
}

/// Renames a finished body into bucket `bucket_id` and commits `rec` for `key` in a transaction
/// of its own, after `check` (run inside it) agrees. On any failure the body is removed.
pub(crate) fn publish_object(
    store: &LocalStore,
    bucket: &str,
    bucket_id: &str,
    key: &str,
    mut rec: ObjectRecord,
    done: Finished,
    check: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
) -> Result<ObjectInfo, StoreError> {
    let dest = place_body(store, bucket_id, &rec.blob, done)?;
    let result = (|| {
        let mut w = store.begin_write()?;
        w.touches(bucket, key);
        let installed = install_object(&w, bucket, bucket_id, key, &mut rec, None, check)?;
        w.commit()?;
        Ok(installed)
    })();
    match result {
        Ok(gone) => {
            for old in gone {
                store.remove_blob(bucket_id, &old);
            }
            Ok(rec.written(key.to_owned()))
        }
        Err(e) => {
            let _ = layout::remove_file_quiet(&dest);
            Err(e)
        }
    }
}

/// Streams one multipart part to disk; [`PartWriter::commit`] stages it.
#[derive(Debug)]
pub struct PartWriter {
    store: LocalStore,
    upload_id: String,
    part_number: u32,
    blob: BlobWriter,
}

impl PartWriter {
    pub(crate) fn new(
        store: LocalStore,
        upload_id: String,
        part_number: u32,
        blob: BlobWriter,
    ) -> Self {
        Self {
            store,
            upload_id,
            part_number,
            blob,
        }
    }

    /// Appends `data` to the part.
    ///
    /// # Errors
    /// [`StoreError::EntityTooLarge`] past [`crate::MAX_PART_SIZE`], I/O errors.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.blob.write(data)
    }

    /// Bytes written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.blob.written
    }

    /// Durably stages the part, replacing an earlier upload of the same part number.
    ///
    /// # Errors
    /// [`StoreError::BadDigest`] (nothing is stored), [`StoreError::NoSuchUpload`] if the
    /// upload was completed or aborted meanwhile.
    pub fn commit(self, expected_md5: Option<[u8; 16]>) -> Result<PartInfo, StoreError> {
        self.commit_with_checksum(expected_md5, None)
    }

    /// [`PartWriter::commit`] that stores the part's checksum (base64, in the upload's
    /// algorithm) with it.
    ///
    /// # Errors
    /// Those of `commit`.
    pub fn commit_with_checksum(
        self,
        expected_md5: Option<[u8; 16]>,
        checksum: Option<String>,
    ) -> Result<PartInfo, StoreError> {
        let Self {
            store,
            upload_id,
            part_number,
            blob,
        } = self;
        let done = blob.finish(expected_md5)?;
        let rec = PartRecord {
            blob: new_id(),
            etag: hex::encode(done.md5),
            size: done.size,
            last_modified: index::now_secs(),
            checksum,
        };
        let l = store.layout();
        let dir = l.resolve(Loc::UploadDir { upload: &upload_id })?;
        let dest = l.resolve(Loc::Part {
            upload: &upload_id,
            part: &rec.blob,
        })?;
        done.publish(&dir, &dest).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NoSuchUpload
            } else {
                StoreError::Io(e)
            }
        })?;
        let result = (|| {
            let mut w = store.begin_write()?;
            w.touches_nothing();
            let old = {
                if w.open_table(UPLOADS)?.get(upload_id.as_str())?.is_none() {
                    return Err(StoreError::NoSuchUpload);
                }
                let mut parts = w.open_table(PARTS)?;
                let k = index::part_key(&upload_id, part_number);
                let old = parts.insert(k.as_str(), encode(&rec)?.as_slice())?;
                match old {
                    Some(v) => Some(decode::<PartRecord>(v.value())?.blob),
                    None => None,
                }
            };
            w.commit()?;
            Ok(old)
        })();
        match result {
            Ok(old) => {
                if let Some(old) = old {
                    if let Ok(p) = l.resolve(Loc::Part {
                        upload: &upload_id,
                        part: &old,
                    }) {
                        let _ = layout::remove_file_quiet(&p);
                    }
                }
                Ok(PartInfo {
                    part_number,
                    etag: rec.etag,
                    size: rec.size,
                    last_modified: rec.last_modified,
                    checksum: rec.checksum,
                })
            }
            Err(e) => {
                let _ = layout::remove_file_quiet(&dest);
                Err(e)
            }
        }
    }
}

/// Reads an object body; `Read + Seek`. It holds the file open (or the body, for one kept in
/// the index), so it keeps reading the version it was opened on even if the object is replaced
/// or deleted meanwhile.
#[derive(Debug)]
pub struct ObjectReader {
    src: Source,
    len: u64,
}

#[derive(Debug)]
enum Source {
    File(File),
    Memory(io::Cursor<Vec<u8>>),
}

impl ObjectReader {
    pub(crate) fn new(file: File, len: u64) -> Self {
        Self {
            src: Source::File(file),
            len,
        }
    }

    /// A reader over a body kept in the index.
    pub(crate) fn in_memory(body: Vec<u8>) -> Self {
        Self {
            len: body.len() as u64,
            src: Source::Memory(io::Cursor::new(body)),
        }
    }

    /// Body size in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the whole body into `buf` (from its start, after what `buf` already holds) as far
    /// as it is in the page cache, without ever waiting for the disk: `Ok(true)` when `buf` holds
    /// the whole body, `Ok(false)` when the rest must be read the ordinary way (from offset
    /// `buf.len()`, on a thread that may block). Lets an async caller answer a small cached
    /// object without a hand-off to a blocking thread (Linux `preadv2(RWF_NOWAIT)`, which
    /// returns `EAGAIN` instead of starting disk I/O; elsewhere, or on a filesystem without it,
    /// always `Ok(false)`). A body kept in the index is always returned whole at once.
    ///
    /// # Errors
    /// I/O errors other than "would block", and a file shorter than its index entry.
    pub fn read_cached(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        let file = match &mut self.src {
            Source::File(f) => f,
            Source::Memory(c) => {
                let rest = c.get_ref().get(buf.len()..).unwrap_or_default();
                buf.extend_from_slice(rest);
                return Ok(true);
            }
        };
        let want = usize::try_from(self.len)
            .map_err(|_| io::Error::other("object too large for memory"))?;
        buf.reserve(want.saturating_sub(buf.len()));
        #[cfg(target_os = "linux")]
        while buf.len() < want {
            let start = buf.len();
            buf.resize(want, 0);
            let n = {
                let mut slices = [io::IoSliceMut::new(
                    buf.get_mut(start..).unwrap_or_default(),
                )];
                rustix::io::preadv2(
                    &*file,
                    &mut slices,
                    start as u64,
                    rustix::io::ReadWriteFlags::NOWAIT,
                )
            };
            match n {
                Ok(0) => {
                    buf.truncate(start);
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "object file shorter than its index entry",
                    ));
                }
                Ok(n) => buf.truncate(start + n),
                // Interrupted before reading anything: try again.
                Err(rustix::io::Errno::INTR) => buf.truncate(start),
                // Not cached, or no RWF_NOWAIT on this filesystem: the rest is read the
                // ordinary way.
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::OPNOTSUPP) => {
                    buf.truncate(start);
                    return rest_from(file, start).map(|()| false);
                }
                Err(e) => {
                    buf.truncate(start);
                    return Err(e.into());
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        if buf.len() < want {
            let start = buf.len();
            return rest_from(file, start).map(|()| false);
        }
        Ok(true)
    }
}

/// Positions `file` at `offset` so that ordinary reads continue from there.
fn rest_from(file: &mut File, offset: usize) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset as u64)).map(|_| ())
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.src {
            Source::File(f) => f.read(buf),
            Source::Memory(c) => c.read(buf),
        }
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match &mut self.src {
            Source::File(f) => f.seek(pos),
            Source::Memory(c) => c.seek(pos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_enforces_its_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path());
        l.create().unwrap();
        let mut w = BlobWriter::create(&l, 10, 0).unwrap();
        w.write(b"0123456789").unwrap();
        let e = w.write(b"x").unwrap_err();
        assert!(matches!(e, StoreError::EntityTooLarge));
        assert_eq!(e.s3_code(), "EntityTooLarge");
        assert_eq!(w.written, 10);
        let done = w.finish(None).unwrap();
        assert_eq!(done.size, 10);
        assert_eq!(hex::encode(done.md5), "781e5e245d69b566979b86e28d23f2c7");
        drop(done);
        assert_eq!(std::fs::read_dir(l.tmp_dir()).unwrap().count(), 0);
    }

    /// A body just written is in the page cache: `read_cached` returns it whole without a
    /// blocking read; a reader positioned by an incomplete attempt continues where it stopped.
    #[test]
    fn read_cached_returns_the_body_and_leaves_the_rest_to_ordinary_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store.create_bucket("bkt", "us-east-1").unwrap();
        let body: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = store.new_object("bkt").unwrap();
        w.write(&body).unwrap();
        w.commit("k", crate::ObjectMeta::default(), None).unwrap();

        let (_, mut reader) = store.get("bkt", "k").unwrap();
        let mut buf = Vec::new();
        if reader.read_cached(&mut buf).unwrap() {
            assert_eq!(buf, body);
        } else {
            // Not cached here (or no RWF_NOWAIT): the ordinary read finishes from the offset.
            reader.read_to_end(&mut buf).unwrap();
            assert_eq!(buf, body);
        }

        // Starting with part of the body already in the buffer reads only the rest.
        let (_, mut reader) = store.get("bkt", "k").unwrap();
        let mut buf = body[..1000].to_vec();
        if !reader.read_cached(&mut buf).unwrap() {
            reader.read_to_end(&mut buf).unwrap();
        }
        assert_eq!(buf, body);

        let (_, mut reader) = store.get("bkt", "k").unwrap();
        let mut empty = Vec::new();
        assert!(reader.read_cached(&mut empty).is_ok());
    }

    #[test]
    fn corrupt_records_are_index_errors() {
        let e = index::decode::<ObjectRecord>(b"{not json").unwrap_err();
        assert!(matches!(e, StoreError::Index(_)));
        assert_eq!(e.s3_code(), "InternalError");
    }
}
