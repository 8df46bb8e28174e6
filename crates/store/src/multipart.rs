//! Multipart uploads: create, stage parts, list, abort, complete.
//!
//! Parts are staged as files under the upload's own directory, named by random ids and
//! recorded in the index. Completion streams the listed parts into one new temp file
//! (never into memory), publishes it like a single PUT, removes the upload's records in the
//! same index transaction, and then removes the staging directory.

use std::fs::File;
use std::io;

use md5::{Digest, Md5};
use redb::ReadableTable;

use crate::index::{
    self, decode, encode, ObjectRecord, PartRecord, UploadRecord, BUCKETS, OBJECTS, PARTS, UPLOADS,
    UPLOADS_BY_KEY,
};
use crate::layout::{self, is_id, new_id, Loc};
use crate::object::{current_etag, publish_object, BlobWriter, PartWriter};
use crate::store::bucket_record;
use crate::{
    normalize_etag, validate_key, validate_tags, LocalStore, ObjectInfo, ObjectMeta, PartInfo,
    StoreError, UploadInfo, WriteCondition, MAX_OBJECT_SIZE, MAX_PART_NUMBER, MAX_PART_SIZE,
};

fn upload_info(upload_id: &str, rec: UploadRecord) -> UploadInfo {
    UploadInfo {
        bucket: rec.bucket,
        key: rec.key,
        upload_id: upload_id.to_owned(),
        initiated: rec.initiated,
        meta: rec.meta,
        checksum: rec.checksum,
    }
}

fn part_info(part_number: u32, p: PartRecord) -> PartInfo {
    PartInfo {
        part_number,
        etag: p.etag,
        size: p.size,
        last_modified: p.last_modified,
        checksum: p.checksum,
    }
}

/// What completing an upload makes of the upload's checksum and its chosen parts' (each with
/// its checksum): the object's checksum, or an error that leaves the upload open (the caller
/// checks the checksums the client sent here).
pub type ChecksumFinish<'a> = &'a dyn Fn(
    Option<&crate::ChecksumSpec>,
    &[PartInfo],
) -> Result<Option<crate::ObjectChecksum>, StoreError>;

impl LocalStore {
    /// Looks up upload `upload_id` of `key` in `bucket`.
    fn upload_record(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(String, UploadRecord), StoreError> {
        validate_key(key)?;
        let r = self.db().begin_read()?;
        let b = bucket_record(&r.open_table(BUCKETS)?, bucket)?;
        if !is_id(upload_id) {
            return Err(StoreError::NoSuchUpload);
        }
        let rec: UploadRecord = match r.open_table(UPLOADS)?.get(upload_id)? {
            Some(v) => decode(v.value())?,
            None => return Err(StoreError::NoSuchUpload),
        };
        if rec.bucket_id != b.id || rec.key != key {
            return Err(StoreError::NoSuchUpload);
        }
        Ok((b.id, rec))
    }

    /// Upload `upload_id` of `key` in `bucket`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::NoSuchUpload`].
    pub fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadInfo, StoreError> {
        let (_, rec) = self.upload_record(bucket, key, upload_id)?;
        Ok(upload_info(upload_id, rec))
    }

    /// Starts a multipart upload of `key`; returns its id (32 lowercase hex digits).
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], key and tag validation errors.
    pub fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
    ) -> Result<String, StoreError> {
        self.create_multipart_with(bucket, key, meta, None)
    }

    /// [`LocalStore::create_multipart`] of an upload created with a checksum algorithm
    /// (`x-amz-checksum-algorithm`, `x-amz-checksum-type`).
    ///
    /// # Errors
    /// Those of `create_multipart`.
    pub fn create_multipart_with(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        checksum: Option<crate::ChecksumSpec>,
    ) -> Result<String, StoreError> {
        validate_key(key)?;
        validate_tags(&meta.tags)?;
        let upload_id = new_id();
        let bucket_id = self.bucket_id(bucket)?;
        // The directory first: a crash before the commit leaves an unknown directory,
        // which `open` removes.
        let dir = self
            .layout()
            .resolve(Loc::UploadDir { upload: &upload_id })?;
        layout::ensure_dir(&dir)?;
        let rec = UploadRecord {
            bucket: bucket.to_owned(),
            bucket_id,
            key: key.to_owned(),
            initiated: index::now_millis(),
            meta,
            checksum,
        };
        let result = (|| {
            let mut w = self.begin_write()?;
            w.touches_nothing();
            {
                let b = bucket_record(&w.open_table(BUCKETS)?, bucket)?;
                if b.id != rec.bucket_id {
                    return Err(StoreError::NoSuchBucket);
                }
                w.open_table(UPLOADS)?
                    .insert(upload_id.as_str(), encode(&rec)?.as_slice())?;
                let k = index::upload_key(&rec.bucket_id, key, rec.initiated, &upload_id);
                w.open_table(UPLOADS_BY_KEY)?.insert(k.as_slice(), ())?;
            }
            w.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = layout::remove_dir_quiet(&dir);
            return Err(e);
        }
        Ok(upload_id)
    }

    /// Starts writing part `part_number` of an upload.
    ///
    /// # Errors
    /// [`StoreError::InvalidArgument`] unless `part_number` is in 1..=10000,
    /// [`StoreError::NoSuchBucket`], [`StoreError::NoSuchUpload`].
    pub fn new_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<PartWriter, StoreError> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(StoreError::InvalidArgument {
                reason: format!(
                    "part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
                ),
            });
        }
        self.upload_record(bucket, key, upload_id)?;
        let blob = BlobWriter::create(self.layout(), MAX_PART_SIZE, 0)?;
        Ok(PartWriter::new(
            self.clone(),
            upload_id.to_owned(),
            part_number,
            blob,
        ))
    }

    fn parts_of(
        t: &impl ReadableTable<&'static str, &'static [u8]>,
        upload_id: &str,
    ) -> Result<Vec<(u32, PartRecord)>, StoreError> {
        let (lo, hi) = index::part_range(upload_id);
        let mut out = Vec::new();
        for item in t.range(lo.as_str()..hi.as_str())? {
            let (k, v) = item?;
            let n = k
                .value()
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| StoreError::Index("bad part key".to_owned()))?;
            out.push((n, decode(v.value())?));
        }
        Ok(out)
    }

    /// An upload and its parts, sorted by part number.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::NoSuchUpload`].
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(UploadInfo, Vec<PartInfo>), StoreError> {
        let (_, rec) = self.upload_record(bucket, key, upload_id)?;
        let r = self.db().begin_read()?;
        let parts = Self::parts_of(&r.open_table(PARTS)?, upload_id)?
            .into_iter()
            .map(|(n, p)| part_info(n, p))
            .collect();
        Ok((upload_info(upload_id, rec), parts))
    }

    /// In-progress uploads of `bucket` whose key starts with `prefix`, sorted by key, then
    /// initiation time.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`].
    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<UploadInfo>, StoreError> {
        let r = self.db().begin_read()?;
        let b = bucket_record(&r.open_table(BUCKETS)?, bucket)?;
        let by_key = r.open_table(UPLOADS_BY_KEY)?;
        let uploads = r.open_table(UPLOADS)?;
        let start = index::object_key(&b.id, prefix);
        let mut out = Vec::new();
        for item in by_key.range(start.as_slice()..)? {
            let (k, _) = item?;
            if !k.value().starts_with(&start) {
                break;
            }
            let id = index::upload_id_of(k.value())
                .ok_or_else(|| StoreError::Index("bad upload key".to_owned()))?;
            if let Some(v) = uploads.get(id)? {
                out.push(upload_info(id, decode(v.value())?));
            }
        }
        Ok(out)
    }

    /// Removes the records of an upload inside a write transaction.
    fn drop_upload(
        w: &redb::WriteTransaction,
        upload_id: &str,
        rec: &UploadRecord,
    ) -> Result<(), StoreError> {
        w.open_table(UPLOADS)?.remove(upload_id)?;
        let k = index::upload_key(&rec.bucket_id, &rec.key, rec.initiated, upload_id);
        w.open_table(UPLOADS_BY_KEY)?.remove(k.as_slice())?;
        let (lo, hi) = index::part_range(upload_id);
        w.open_table(PARTS)?
            .retain_in(lo.as_str()..hi.as_str(), |_, _| false)?;
        Ok(())
    }

    fn remove_upload_dir(&self, upload_id: &str) {
        if let Ok(dir) = self.layout().resolve(Loc::UploadDir { upload: upload_id }) {
            let _ = layout::remove_dir_quiet(&dir);
        }
    }

    /// Aborts an upload, discarding its parts.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::NoSuchUpload`].
    pub fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.upload_record(bucket, key, upload_id)?;
        let mut w = self.begin_write()?;
        w.touches_nothing();
        {
            // Read again inside the transaction: a concurrent completion may have won.
            let rec: UploadRecord = match w.open_table(UPLOADS)?.get(upload_id)? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::NoSuchUpload),
            };
            Self::drop_upload(&w, upload_id, &rec)?;
        }
        w.commit()?;
        self.remove_upload_dir(upload_id);
        Ok(())
    }

    /// Completes an upload from `parts` as listed in the CompleteMultipartUpload body.
    ///
    /// Part numbers must ascend strictly ([`StoreError::InvalidPartOrder`]); each part
    /// must exist with that ETag, quotes optional ([`StoreError::InvalidPart`]); every part
    /// but the last must be at least the minimum part size ([`StoreError::EntityTooSmall`]).
    /// The ETag is `hex(md5(concat(md5 of each part)))-N`. Parts not listed are discarded.
    ///
    /// # Errors
    /// The above, [`StoreError::NoSuchBucket`], [`StoreError::NoSuchUpload`],
    /// [`StoreError::InvalidArgument`] for an empty part list.
    pub fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<ObjectInfo, StoreError> {
        self.complete_multipart_if(bucket, key, upload_id, parts, None)
    }

    /// [`LocalStore::complete_multipart`] that commits only if `condition` holds for the object
    /// it would replace, checked in the committing transaction; the upload stays open when it
    /// does not (as S3 leaves it: the client may complete it again or abort it).
    ///
    /// # Errors
    /// Those of `complete_multipart`, [`StoreError::PreconditionFailed`],
    /// [`StoreError::NoSuchKey`] (an `If-Match` with no object).
    pub fn complete_multipart_if(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<&WriteCondition>,
    ) -> Result<ObjectInfo, StoreError> {
        self.complete_multipart_with(bucket, key, upload_id, parts, condition, &|_, _| Ok(None))
    }

    /// [`LocalStore::complete_multipart_if`] whose object's checksum `finish` makes from the
    /// upload's checksum and the chosen parts (it may refuse: the upload then stays open).
    ///
    /// # Errors
    /// Those of `complete_multipart_if`, and what `finish` returns.
    pub fn complete_multipart_with(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<&WriteCondition>,
        finish: ChecksumFinish<'_>,
    ) -> Result<ObjectInfo, StoreError> {
        match self.assemble(bucket, key, upload_id, parts, condition, finish) {
            // A part that vanished while assembling means the upload was aborted meanwhile when
            // the upload is gone too; S3 answers NoSuchUpload for an aborted upload.
            Err(StoreError::InvalidPart)
                if matches!(
                    self.upload_record(bucket, key, upload_id),
                    Err(StoreError::NoSuchUpload)
                ) =>
            {
                Err(StoreError::NoSuchUpload)
            }
            Err(StoreError::NoSuchUpload) => self
                .completed_by(bucket, key, upload_id, parts)?
                .ok_or(StoreError::NoSuchUpload),
            other => other,
        }
    }

    /// The key's current object when upload `upload_id` made it from exactly `parts`: a client
    /// that repeats a CompleteMultipartUpload that succeeded (its answer lost, or a retry) gets
    /// the same result instead of NoSuchUpload, as from S3. Once the object is replaced the
    /// upload is simply gone.
    fn completed_by(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<Option<ObjectInfo>, StoreError> {
        let r = self.db().begin_read()?;
        let b = bucket_record(&r.open_table(BUCKETS)?, bucket)?;
        let rec: ObjectRecord = match r
            .open_table(OBJECTS)?
            .get(index::object_key(&b.id, key).as_slice())?
        {
            Some(v) => decode(v.value())?,
            None => return Ok(None),
        };
        let same_upload = rec.completed_upload.as_deref() == Some(upload_id);
        Ok(
            (same_upload && multipart_etag(parts).as_deref() == Some(rec.etag.as_str()))
                .then(|| rec.info(key.to_owned())),
        )
    }

    fn assemble(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<&WriteCondition>,
        finish: ChecksumFinish<'_>,
    ) -> Result<ObjectInfo, StoreError> {
        let (bucket_id, upload) = self.upload_record(bucket, key, upload_id)?;
        if parts.is_empty() {
            return Err(StoreError::InvalidArgument {
                reason: "you must specify at least one part".to_owned(),
            });
        }
        if parts.windows(2).any(|w| matches!(w, [a, b] if a.0 >= b.0)) {
            return Err(StoreError::InvalidPartOrder);
        }
        let staged = {
            let r = self.db().begin_read()?;
            Self::parts_of(&r.open_table(PARTS)?, upload_id)?
        };
        let mut chosen: Vec<PartRecord> = Vec::with_capacity(parts.len());
        for (n, etag) in parts {
            let found = staged
                .iter()
                .find(|(m, _)| m == n)
                .filter(|(_, p)| p.etag == normalize_etag(etag))
                .ok_or(StoreError::InvalidPart)?;
            chosen.push(found.1.clone());
        }
        let (_last, rest) = chosen.split_last().ok_or(StoreError::InvalidPart)?;
        if rest.iter().any(|p| p.size < self.opts().min_part_size) {
            return Err(StoreError::EntityTooSmall);
        }
        let total = chosen
            .iter()
            .try_fold(0u64, |acc, p| acc.checked_add(p.size))
            .filter(|t| *t <= MAX_OBJECT_SIZE)
            .ok_or(StoreError::EntityTooLarge)?;
        let chosen_info: Vec<PartInfo> = parts
            .iter()
            .zip(&chosen)
            .map(|((n, _), p)| part_info(*n, p.clone()))
            .collect();
        let checksum = finish(upload.checksum.as_ref(), &chosen_info)?;

        // Stream the parts into one new body.
        let mut out = BlobWriter::create(self.layout(), MAX_OBJECT_SIZE, 0)?;
        let mut etag_md5 = Md5::new();
        let mut buf = vec![0u8; 256 * 1024];
        for p in &chosen {
            let path = self.layout().resolve(Loc::Part {
                upload: upload_id,
                part: &p.blob,
            })?;
            let mut f = File::open(&path).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    // Aborted or replaced meanwhile (see `complete_multipart`).
                    StoreError::InvalidPart
                } else {
                    StoreError::Io(e)
                }
            })?;
            loop {
                let n = io::Read::read(&mut f, &mut buf)?;
                if n == 0 {
                    break;
                }
                out.write(buf.get(..n).unwrap_or_default())?;
            }
            let bin = hex::decode(&p.etag).map_err(StoreError::index)?;
            etag_md5.update(&bin);
        }
        let done = out.finish(None)?;
        if done.size != total {
            return Err(StoreError::InvalidPart);
        }
        let mut meta = upload.meta.clone();
        meta.checksum = checksum;
        let rec = ObjectRecord {
            blob: new_id(),
            size: done.size,
            etag: format!("{}-{}", hex::encode(etag_md5.finalize()), chosen.len()),
            last_modified: index::now_secs(),
            meta,
            parts_count: u32::try_from(chosen.len()).ok(),
            parts: chosen_info
                .into_iter()
                .map(|p| crate::PartSummary {
                    size: p.size,
                    checksum: p.checksum,
                })
                .collect(),
            version_id: None,
            seq: 0,
            completed_upload: Some(upload_id.to_owned()),
            inline: false,
        };
        let info = publish_object(self, bucket, &bucket_id, key, rec, done, |w| {
            if let Some(c) = condition {
                c.check(current_etag(w, &bucket_id, key)?.as_deref())?;
            }
            // The upload and the chosen parts must still be the ones we assembled.
            let current: UploadRecord = match w.open_table(UPLOADS)?.get(upload_id)? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::NoSuchUpload),
            };
            let now = Self::parts_of(&w.open_table(PARTS)?, upload_id)?;
            for ((n, _), p) in parts.iter().zip(&chosen) {
                if !now.iter().any(|(m, q)| m == n && q.blob == p.blob) {
                    return Err(StoreError::InvalidPart);
                }
            }
            Self::drop_upload(w, upload_id, &current)
        })?;
        self.remove_upload_dir(upload_id);
        Ok(info)
    }
}

/// `hex(md5(concat(md5 of each part)))-N` from the parts' ETags as a client lists them;
/// `None` when one is not an MD5 in hex.
fn multipart_etag(parts: &[(u32, String)]) -> Option<String> {
    let mut md5 = Md5::new();
    for (_, etag) in parts {
        md5.update(hex::decode(normalize_etag(etag)).ok()?);
    }
    Some(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

#[cfg(test)]
mod tests {
    use crate::normalize_etag;

    #[test]
    fn etags_normalize() {
        assert_eq!(normalize_etag("\"ABCdef\""), "abcdef");
        assert_eq!(normalize_etag("abc"), "abc");
        assert_eq!(normalize_etag(" \"abc\" "), "abc");
    }
}
