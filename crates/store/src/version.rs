//! Object versioning: what a write, a delete and a read do in each bucket versioning state, and
//! ListObjectVersions.
//!
//! The rules follow S3 ("Using versioning in S3 buckets", "Working with delete markers",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeleteMarker.html>):
//!
//! | state | write | delete (no version id) |
//! |---|---|---|
//! | unversioned | replaces the object (its body is removed) | removes the object |
//! | enabled | adds a version with a new id; the previous current one is kept | adds a delete marker with a new id |
//! | suspended | makes the `null` version, replacing any earlier `null` version | makes a `null` delete marker, replacing any earlier `null` version |
//!
//! A delete *with* a version id removes that version for good (its body too: every version has
//! its own body); when it was the current one, the next newest becomes current. The table layout
//! and its invariant are in [`crate::index`]: `objects` keeps the current object of each key, so
//! GetObject and ListObjects do not read `versions` at all, except GetObject of an absent key,
//! which looks one entry up to tell a delete marker from nothing.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};

use crate::index::{
    self, blob_ref, decode, encode, BucketRecord, MarkerRecord, ObjectRecord, VersionRecord,
    Versioning, BLOB_REFS, BUCKETS, INLINE_BODIES, NULL_VERSION, OBJECTS, VERSIONS,
};
use crate::list::common_prefix;
use crate::store::bucket_record;
use crate::{validate_key, LocalStore, LockConfig, ObjectInfo, StoreError, MAX_LIST_KEYS};

/// What a DeleteObject did (`x-amz-version-id`, `x-amz-delete-marker`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The version made (a delete marker) or removed; `None` in a bucket never versioned.
    pub version_id: Option<String>,
    /// Whether the delete made a delete marker, or removed one by its version id.
    pub delete_marker: bool,
}

/// A ListObjectVersions request.
#[derive(Clone, Debug, Default)]
pub struct VersionQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Start after this key (or this common prefix and every key under it)...
    pub key_marker: Option<String>,
    /// ...or, with this, after this version of `key_marker` (`null` for the null version).
    pub version_id_marker: Option<String>,
    /// Page size (versions, delete markers and common prefixes); clamped to
    /// [`MAX_LIST_KEYS`], 0 gives an empty page.
    pub max_keys: usize,
}

/// One entry of a ListObjectVersions page.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "pages hold at most 1000 entries; boxing would only add allocations"
)]
pub enum VersionEntry {
    /// An object version (`version_id` is `null` for the null version).
    Object {
        /// The version.
        info: ObjectInfo,
        /// Whether it is the key's current version.
        is_latest: bool,
    },
    /// A delete marker.
    DeleteMarker {
        /// Its key.
        key: String,
        /// Its version id (`null` for a null marker).
        version_id: String,
        /// When it was made.
        last_modified: DateTime<Utc>,
        /// Whether it is the key's current version.
        is_latest: bool,
    },
    /// A common prefix.
    CommonPrefix(String),
}

impl VersionEntry {
    /// The key (or the common prefix) and the version id (`None` for a common prefix).
    #[must_use]
    pub fn position(&self) -> (&str, Option<&str>) {
        match self {
            Self::Object { info, .. } => (&info.key, info.version_id.as_deref()),
            Self::DeleteMarker {
                key, version_id, ..
            } => (key, Some(version_id)),
            Self::CommonPrefix(p) => (p, None),
        }
    }
}

/// One page of ListObjectVersions.
#[derive(Clone, Debug, Default)]
pub struct VersionPage {
    /// Entries by key; a key's versions newest first.
    pub entries: Vec<VersionEntry>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// When truncated: the key (or common prefix) of the last entry.
    pub next_key_marker: Option<String>,
    /// When truncated after a version: its id.
    pub next_version_id_marker: Option<String>,
}

/// What a version id in a request names: `None` is the null version.
fn parse_version_id(id: &str) -> Result<Option<&str>, StoreError> {
    if id == NULL_VERSION {
        Ok(None)
    } else if index::seq_of_version_id(id).is_some() {
        Ok(Some(id))
    } else {
        Err(StoreError::InvalidVersionId)
    }
}

fn shown(id: Option<&str>) -> String {
    id.unwrap_or(NULL_VERSION).to_owned()
}

/// Finds the noncurrent version (or delete marker) `want` of `key`: one lookup for an id this
/// store made, a scan of the key's versions for the null one.
fn find_version(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket_id: &str,
    key: &str,
    want: Option<&str>,
) -> Result<Option<(Vec<u8>, VersionRecord)>, StoreError> {
    match want {
        Some(id) => {
            let Some(seq) = index::seq_of_version_id(id) else {
                return Ok(None);
            };
            let vk = index::version_key(bucket_id, key, seq);
            let Some(v) = versions.get(vk.as_slice())? else {
                return Ok(None);
            };
            let rec: VersionRecord = decode(v.value())?;
            Ok((rec.version_id() == Some(id)).then_some((vk, rec)))
        }
        None => {
            let (lo, hi) = index::version_range(bucket_id, key);
            for item in versions.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
                let (k, v) = item?;
                let rec: VersionRecord = decode(v.value())?;
                if rec.version_id().is_none() {
                    return Ok(Some((k.value().to_vec(), rec)));
                }
            }
            Ok(None)
        }
    }
}

/// The newest noncurrent version or delete marker of `key`.
fn newest_version(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket_id: &str,
    key: &str,
) -> Result<Option<(Vec<u8>, VersionRecord)>, StoreError> {
    let (lo, hi) = index::version_range(bucket_id, key);
    match versions
        .range::<&[u8]>(lo.as_slice()..hi.as_slice())?
        .next()
    {
        Some(item) => {
            let (k, v) = item?;
            Ok(Some((k.value().to_vec(), decode(v.value())?)))
        }
        None => Ok(None),
    }
}

/// Reads the version `version` of `key` (`None`: the current one) from a read or write
/// transaction's tables.
pub(crate) fn lookup(
    objects: &impl ReadableTable<&'static [u8], &'static [u8]>,
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket_id: &str,
    key: &str,
    version: Option<&str>,
) -> Result<ObjectRecord, StoreError> {
    let current: Option<ObjectRecord> =
        match objects.get(index::object_key(bucket_id, key).as_slice())? {
            Some(v) => Some(decode(v.value())?),
            None => None,
        };
    let Some(id) = version else {
        if let Some(rec) = current {
            return Ok(rec);
        }
        return match newest_version(versions, bucket_id, key)? {
            Some((_, VersionRecord::DeleteMarker(m))) => Err(StoreError::DeleteMarker {
                version_id: shown(m.version_id.as_deref()),
                last_modified: m.last_modified,
                by_version: false,
            }),
            _ => Err(StoreError::NoSuchKey),
        };
    };
    let want = parse_version_id(id)?;
    if let Some(rec) = current.filter(|c| c.version_id.as_deref() == want) {
        return Ok(rec);
    }
    match find_version(versions, bucket_id, key, want)? {
        Some((_, VersionRecord::Object(rec))) => Ok(rec),
        Some((_, VersionRecord::DeleteMarker(m))) => Err(StoreError::DeleteMarker {
            version_id: shown(m.version_id.as_deref()),
            last_modified: m.last_modified,
            by_version: true,
        }),
        None => Err(StoreError::NoSuchVersion),
    }
}

/// Drops the index's reference to the body of `rec`, which no version refers to any more: a
/// body kept in the index goes with this transaction; a file's blob id is returned (the caller
/// removes the file after the commit).
fn unref_blob(
    w: &WriteTransaction,
    bucket_id: &str,
    rec: ObjectRecord,
) -> Result<Option<String>, StoreError> {
    let r = blob_ref(bucket_id, &rec.blob);
    if rec.inline {
        w.open_table(INLINE_BODIES)?.remove(r.as_str())?;
        Ok(None)
    } else {
        w.open_table(BLOB_REFS)?.remove(r.as_str())?;
        Ok(Some(rec.blob))
    }
}

/// Keeps `old` (the previous current object) as a noncurrent version.
fn demote(
    w: &WriteTransaction,
    bucket_id: &str,
    key: &str,
    old: ObjectRecord,
) -> Result<(), StoreError> {
    let vk = index::version_key(bucket_id, key, old.seq);
    w.open_table(VERSIONS)?.insert(
        vk.as_slice(),
        encode(&VersionRecord::Object(old))?.as_slice(),
    )?;
    Ok(())
}

/// Removes the noncurrent null version of `key`, if any; returns its body file, if it had one.
fn remove_null_noncurrent(
    w: &WriteTransaction,
    bucket_id: &str,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let found = find_version(&w.open_table(VERSIONS)?, bucket_id, key, None)?;
    let Some((vk, rec)) = found else {
        return Ok(None);
    };
    w.open_table(VERSIONS)?.remove(vk.as_slice())?;
    match rec {
        VersionRecord::Object(o) => unref_blob(w, bucket_id, o),
        VersionRecord::DeleteMarker(_) => Ok(None),
    }
}

/// Restores the invariant after the current version was removed: when `key` has no current
/// object and its newest remaining version is an object, that one becomes current.
fn promote(w: &WriteTransaction, bucket_id: &str, key: &str) -> Result<(), StoreError> {
    let ok = index::object_key(bucket_id, key);
    if w.open_table(OBJECTS)?.get(ok.as_slice())?.is_some() {
        return Ok(());
    }
    let newest = newest_version(&w.open_table(VERSIONS)?, bucket_id, key)?;
    if let Some((vk, VersionRecord::Object(rec))) = newest {
        w.open_table(VERSIONS)?.remove(vk.as_slice())?;
        w.open_table(OBJECTS)?
            .insert(ok.as_slice(), encode(&rec)?.as_slice())?;
    }
    Ok(())
}

/// What becomes of the version that was current when another write or a delete marker replaces
/// it: kept as a noncurrent version when it has an id or the bucket keeps versions, else its
/// body is no longer referenced (added to `gone`, removed after the commit).
fn retire(
    w: &WriteTransaction,
    b: &BucketRecord,
    key: &str,
    old: ObjectRecord,
    gone: &mut Vec<String>,
) -> Result<(), StoreError> {
    if b.versioning == Versioning::Enabled || old.version_id.is_some() {
        demote(w, &b.id, key, old)
    } else {
        gone.extend(unref_blob(w, &b.id, old)?);
        Ok(())
    }
}

/// Makes `rec` (whose body is referenced already) the current version of `key` in bucket `b`,
/// giving it its sequence number and version id as the bucket's state says. Returns the bodies
/// no version refers to any more (removed from disk after the commit).
pub(crate) fn install_current(
    w: &WriteTransaction,
    b: &BucketRecord,
    key: &str,
    rec: &mut ObjectRecord,
) -> Result<Vec<String>, StoreError> {
    apply_lock_rules(b, rec)?;
    rec.seq = index::next_seq(w)?;
    rec.version_id = match b.versioning {
        Versioning::Enabled => Some(index::new_version_id(rec.seq)),
        Versioning::Unversioned | Versioning::Suspended => None,
    };
    let mut gone = Vec::new();
    if b.versioning == Versioning::Suspended {
        gone.extend(remove_null_noncurrent(w, &b.id, key)?);
    }
    let ok = index::object_key(&b.id, key);
    let old: Option<ObjectRecord> = {
        let mut t = w.open_table(OBJECTS)?;
        let old = t.insert(ok.as_slice(), encode(&*rec)?.as_slice())?;
        match old {
            Some(v) => Some(decode(v.value())?),
            None => None,
        }
    };
    if let Some(old) = old {
        retire(w, b, key, old, &mut gone)?;
    }
    Ok(gone)
}

/// Object Lock on a new version: a lock named by the write needs a bucket with Object Lock
/// ("Bucket is missing Object Lock Configuration"), and a version written without a retention
/// of its own gets the bucket's default retention, counted from its write
/// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html).
fn apply_lock_rules(b: &BucketRecord, rec: &mut ObjectRecord) -> Result<(), StoreError> {
    match &b.object_lock {
        None if !rec.meta.lock.is_empty() => Err(StoreError::InvalidRequest {
            reason: "Bucket is missing Object Lock Configuration".to_owned(),
        }),
        Some(cfg) => {
            if rec.meta.lock.retention.is_none() {
                rec.meta.lock.retention = cfg
                    .default_retention
                    .map(|d| d.retention_from(rec.last_modified));
            }
            Ok(())
        }
        None => Ok(()),
    }
}

/// DeleteObject without a version id in bucket `b`. Returns what it did and the bodies to
/// remove after the commit.
pub(crate) fn delete_current(
    w: &WriteTransaction,
    b: &BucketRecord,
    key: &str,
) -> Result<(Deleted, Vec<String>), StoreError> {
    let ok = index::object_key(&b.id, key);
    let mut gone = Vec::new();
    if b.versioning == Versioning::Suspended {
        gone.extend(remove_null_noncurrent(w, &b.id, key)?);
    }
    let old: Option<ObjectRecord> = {
        let mut t = w.open_table(OBJECTS)?;
        let old = t.remove(ok.as_slice())?;
        match old {
            Some(v) => Some(decode(v.value())?),
            None => None,
        }
    };
    if b.versioning == Versioning::Unversioned {
        if let Some(old) = old {
            gone.extend(unref_blob(w, &b.id, old)?);
        }
        let deleted = Deleted {
            version_id: None,
            delete_marker: false,
        };
        return Ok((deleted, gone));
    }
    if let Some(old) = old {
        retire(w, b, key, old, &mut gone)?;
    }
    let seq = index::next_seq(w)?;
    let version_id = (b.versioning == Versioning::Enabled).then(|| index::new_version_id(seq));
    let marker = MarkerRecord {
        version_id: version_id.clone(),
        seq,
        last_modified: index::now_secs(),
    };
    w.open_table(VERSIONS)?.insert(
        index::version_key(&b.id, key, seq).as_slice(),
        encode(&VersionRecord::DeleteMarker(marker))?.as_slice(),
    )?;
    let deleted = Deleted {
        version_id: Some(shown(version_id.as_deref())),
        delete_marker: true,
    };
    Ok((deleted, gone))
}

/// DeleteObject of version `id` (`null` included): removes it for good. Deleting a version that
/// does not exist succeeds (as deleting an absent key does).
pub(crate) fn delete_version(
    w: &WriteTransaction,
    b: &BucketRecord,
    key: &str,
    id: &str,
    bypass_governance: bool,
) -> Result<(Deleted, Vec<String>), StoreError> {
    let now = Utc::now();
    let want = parse_version_id(id)?;
    let ok = index::object_key(&b.id, key);
    let shown_id = (b.versioning != Versioning::Unversioned).then(|| id.to_owned());
    let current: Option<ObjectRecord> = match w.open_table(OBJECTS)?.get(ok.as_slice())? {
        Some(v) => Some(decode(v.value())?),
        None => None,
    };
    let mut gone = Vec::new();
    let mut delete_marker = false;
    if let Some(cur) = current.filter(|c| c.version_id.as_deref() == want) {
        cur.meta.lock.check_delete(now, bypass_governance)?;
        w.open_table(OBJECTS)?.remove(ok.as_slice())?;
        gone.extend(unref_blob(w, &b.id, cur)?);
    } else {
        let found = find_version(&w.open_table(VERSIONS)?, &b.id, key, want)?;
        if let Some((vk, rec)) = found {
            if let VersionRecord::Object(o) = &rec {
                o.meta.lock.check_delete(now, bypass_governance)?;
            }
            w.open_table(VERSIONS)?.remove(vk.as_slice())?;
            match rec {
                VersionRecord::Object(o) => gone.extend(unref_blob(w, &b.id, o)?),
                VersionRecord::DeleteMarker(_) => delete_marker = true,
            }
        }
    }
    promote(w, &b.id, key)?;
    let deleted = Deleted {
        version_id: shown_id,
        delete_marker,
    };
    Ok((deleted, gone))
}

/// Applies `f` to version `version` of `key` (`None`: the current one) and stores it back.
/// Returns the version id S3 reports for it.
pub(crate) fn update_version(
    w: &WriteTransaction,
    b: &BucketRecord,
    key: &str,
    version: Option<&str>,
    f: impl FnOnce(&mut ObjectRecord),
) -> Result<Option<String>, StoreError> {
    let mut rec = lookup(
        &w.open_table(OBJECTS)?,
        &w.open_table(VERSIONS)?,
        &b.id,
        key,
        version,
    )?;
    let ok = index::object_key(&b.id, key);
    let is_current = match w.open_table(OBJECTS)?.get(ok.as_slice())? {
        Some(v) => decode::<ObjectRecord>(v.value())?.seq == rec.seq,
        None => false,
    };
    f(&mut rec);
    if is_current {
        w.open_table(OBJECTS)?
            .insert(ok.as_slice(), encode(&rec)?.as_slice())?;
    } else {
        let vk = index::version_key(&b.id, key, rec.seq);
        let value = encode(&VersionRecord::Object(rec.clone()))?;
        w.open_table(VERSIONS)?
            .insert(vk.as_slice(), value.as_slice())?;
    }
    Ok(rec.info_in(key.to_owned(), b.versioning).version_id)
}

/// Where a listing goes on: the first key at or after a position.
enum From {
    /// Keys `>= k` (bucket id ++ key bytes).
    AtOrAfter(Vec<u8>),
    /// Keys `> k`.
    After(Vec<u8>),
}

impl From {
    fn objects_bound(&self) -> Bound<&[u8]> {
        match self {
            From::AtOrAfter(k) => Bound::Included(k.as_slice()),
            From::After(k) => Bound::Excluded(k.as_slice()),
        }
    }

    fn versions_bound(&self) -> Bound<Vec<u8>> {
        match self {
            From::AtOrAfter(k) => Bound::Included(k.clone()),
            // Past every `versions` entry of `k` (`k ++ 0x00 ++ seq`), before `k ++ 0x01…`.
            From::After(k) => {
                let mut v = k.clone();
                v.push(1);
                Bound::Included(v)
            }
        }
    }
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn key_str(k: &[u8], base: usize) -> Result<&str, StoreError> {
    k.get(base..)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| StoreError::Index("object key is not utf-8".to_owned()))
}

/// The next key in either table at or after `from`.
fn next_key(
    objects: &impl ReadableTable<&'static [u8], &'static [u8]>,
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket_id: &str,
    from: &From,
) -> Result<Option<String>, StoreError> {
    let base = bucket_id.len();
    let o = match objects
        .range::<&[u8]>((from.objects_bound(), Bound::Unbounded))?
        .next()
    {
        Some(item) => {
            let (k, _) = item?;
            let kb = k.value();
            kb.starts_with(bucket_id.as_bytes())
                .then(|| key_str(kb, base).map(str::to_owned))
                .transpose()?
        }
        None => None,
    };
    let vb = from.versions_bound();
    let vbound = bound_ref(&vb);
    let v = match versions.range::<&[u8]>((vbound, Bound::Unbounded))?.next() {
        Some(item) => {
            let (k, _) = item?;
            let kb = k.value();
            if kb.starts_with(bucket_id.as_bytes()) {
                Some(
                    index::key_of_version(kb)
                        .ok_or_else(|| StoreError::Index("bad versions key".to_owned()))?
                        .to_owned(),
                )
            } else {
                None
            }
        }
        None => None,
    };
    Ok(match (o, v) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

fn entry(key: &str, rec: VersionRecord, is_latest: bool) -> VersionEntry {
    match rec {
        VersionRecord::Object(o) => VersionEntry::Object {
            info: o.info_in(key.to_owned(), Versioning::Enabled),
            is_latest,
        },
        VersionRecord::DeleteMarker(m) => VersionEntry::DeleteMarker {
            key: key.to_owned(),
            version_id: shown(m.version_id.as_deref()),
            last_modified: m.last_modified,
            is_latest,
        },
    }
}

/// ListObjectVersions over both tables: keys in byte order (each common prefix once, then a
/// seek past it), each key's versions newest first.
pub(crate) fn list_versions_in(
    objects: &impl ReadableTable<&'static [u8], &'static [u8]>,
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket_id: &str,
    q: &VersionQuery,
) -> Result<VersionPage, StoreError> {
    let max = q.max_keys.min(MAX_LIST_KEYS);
    let mut page = VersionPage::default();
    if max == 0 {
        return Ok(page);
    }
    let delim = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let full_prefix = index::object_key(bucket_id, &q.prefix);
    let mut from = From::AtOrAfter(full_prefix.clone());
    // Versions of the key marker after the version id marker come first.
    let mut resume: Option<(&str, &str)> = None;
    if let Some(km) = q.key_marker.as_deref().filter(|k| !k.is_empty()) {
        let rolled = delim.and_then(|d| common_prefix(km, &q.prefix, d));
        if rolled == Some(km) {
            match index::successor(&index::object_key(bucket_id, km)) {
                Some(s) => from = From::AtOrAfter(s),
                None => return Ok(page),
            }
        } else if km.as_bytes() >= q.prefix.as_bytes() {
            match q.version_id_marker.as_deref().filter(|v| !v.is_empty()) {
                Some(vm) if rolled.is_none() => {
                    resume = Some((km, vm));
                    from = From::AtOrAfter(index::object_key(bucket_id, km));
                }
                _ => from = From::After(index::object_key(bucket_id, km)),
            }
        }
    }
    let mut last: Option<(String, Option<String>)> = None;
    'keys: while let Some(key) = next_key(objects, versions, bucket_id, &from)? {
        if !key.as_bytes().starts_with(q.prefix.as_bytes()) {
            break;
        }
        if let Some(cp) = delim.and_then(|d| common_prefix(&key, &q.prefix, d)) {
            if page.entries.len() == max {
                page.is_truncated = true;
                break;
            }
            page.entries.push(VersionEntry::CommonPrefix(cp.to_owned()));
            last = Some((cp.to_owned(), None));
            match index::successor(&index::object_key(bucket_id, cp)) {
                Some(s) => from = From::AtOrAfter(s),
                None => break,
            }
            continue;
        }
        // The key's versions, newest first: the current object, then `versions`, read lazily
        // (a key may have many versions). Resuming after a version with an id seeks to it; after
        // the `null` version (no sequence number in its id) the key's versions are scanned.
        let current: Option<ObjectRecord> =
            match objects.get(index::object_key(bucket_id, &key).as_slice())? {
                Some(v) => Some(decode(v.value())?),
                None => None,
            };
        let (lo, hi) = index::version_range(bucket_id, &key);
        let marker = resume.filter(|(k, _)| *k == key).map(|(_, v)| v);
        let mut start = Bound::Included(lo);
        let mut skipping = None;
        let mut with_current = true;
        if let Some(vm) = marker {
            with_current = false;
            let is_current = current
                .as_ref()
                .is_some_and(|c| shown(c.version_id.as_deref()) == vm);
            if !is_current {
                match index::seq_of_version_id(vm) {
                    Some(seq) => start = Bound::Excluded(index::version_key(bucket_id, &key, seq)),
                    None => skipping = Some(vm),
                }
            }
        }
        // Only the very first version of the key is its latest.
        let mut latest = marker.is_none();
        let range = (bound_ref(&start), Bound::Excluded(hi.as_slice()));
        let rest = versions.range::<&[u8]>(range)?.map(|item| {
            item.map_err(StoreError::from)
                .and_then(|(_, v)| decode::<VersionRecord>(v.value()))
        });
        let head = current
            .filter(|_| with_current)
            .map(|c| Ok(VersionRecord::Object(c)));
        for rec in head.into_iter().chain(rest) {
            let rec = rec?;
            if let Some(vm) = skipping {
                if shown(rec.version_id()) == vm {
                    skipping = None;
                }
                continue;
            }
            if page.entries.len() == max {
                page.is_truncated = true;
                break 'keys;
            }
            let e = entry(&key, rec, latest);
            latest = false;
            let (k, v) = e.position();
            last = Some((k.to_owned(), v.map(str::to_owned)));
            page.entries.push(e);
        }
        from = From::After(index::object_key(bucket_id, &key));
    }
    if page.is_truncated {
        if let Some((k, v)) = last {
            page.next_key_marker = Some(k);
            page.next_version_id_marker = v;
        }
    }
    Ok(page)
}

impl LocalStore {
    /// A bucket's versioning state.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`].
    pub fn versioning(&self, bucket: &str) -> Result<Versioning, StoreError> {
        let r = self.db().begin_read()?;
        Ok(bucket_record(&r.open_table(BUCKETS)?, bucket)?.versioning)
    }

    /// Enables or suspends versioning (PutBucketVersioning). A bucket never goes back to
    /// unversioned.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::InvalidArgument`] for
    /// [`Versioning::Unversioned`].
    pub fn set_versioning(&self, bucket: &str, state: Versioning) -> Result<(), StoreError> {
        if state == Versioning::Unversioned {
            return Err(StoreError::InvalidArgument {
                reason: "versioning can only be Enabled or Suspended".to_owned(),
            });
        }
        let w = self.begin_write()?;
        {
            let mut t = w.open_table(BUCKETS)?;
            let mut rec = bucket_record(&t, bucket)?;
            if rec.object_lock.is_some() && state != Versioning::Enabled {
                return Err(StoreError::InvalidBucketState {
                    reason: "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.".to_owned(),
                });
            }
            rec.versioning = state;
            t.insert(bucket, encode(&rec)?.as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    /// Version `version_id` of an object (`None`: the current one) and a reader over its body.
    ///
    /// # Errors
    /// As [`LocalStore::get`], and [`StoreError::DeleteMarker`] (the current version or the one
    /// named is a delete marker), [`StoreError::NoSuchVersion`],
    /// [`StoreError::InvalidVersionId`].
    pub fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(ObjectInfo, crate::ObjectReader), StoreError> {
        self.open_record(bucket, key, version_id)
    }

    /// Version `version_id` of an object (`None`: the current one).
    ///
    /// # Errors
    /// As [`LocalStore::get_version`].
    pub fn head_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectInfo, StoreError> {
        let c = self.current_record(bucket, key, version_id, true)?;
        Ok(c.rec.clone().info_in(key.to_owned(), c.versioning))
    }

    /// A version of `key` (`version_id: None`: the current one). The current version comes
    /// from the read cache when it holds the key and `cached` allows it, and is kept there when
    /// it did not.
    pub(crate) fn current_record(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        cached: bool,
    ) -> Result<std::sync::Arc<crate::cache::Cached>, StoreError> {
        validate_key(key)?;
        let ticket = match (version_id, cached) {
            (None, true) => match self.read_cache().get(bucket, key) {
                Ok(hit) => return Ok(hit),
                Err(ticket) => Some(ticket),
            },
            _ => None,
        };
        let r = self.db().begin_read()?;
        let b = bucket_record(&r.open_table(BUCKETS)?, bucket)?;
        let rec = lookup(
            &r.open_table(OBJECTS)?,
            &r.open_table(VERSIONS)?,
            &b.id,
            key,
            version_id,
        )?;
        let found = std::sync::Arc::new(crate::cache::Cached::new(b.versioning, b.id, rec));
        if let Some(ticket) = ticket {
            self.read_cache()
                .insert(ticket, bucket, key, std::sync::Arc::clone(&found));
        }
        Ok(found)
    }

    /// Deletes an object (`version_id: None`: as the bucket's versioning state says) or one of
    /// its versions for good, only if `condition` holds for the current object.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], key validation errors, [`StoreError::InvalidVersionId`],
    /// [`StoreError::PreconditionFailed`], [`StoreError::NoSuchKey`] (an `If-Match` with no
    /// object).
    pub fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        condition: Option<&crate::WriteCondition>,
    ) -> Result<Deleted, StoreError> {
        self.delete_version_with(bucket, key, version_id, condition, false)
    }

    /// [`LocalStore::delete_version`] that may delete a version under a GOVERNANCE retention
    /// (`bypass_governance`: the request asked to and its caller was allowed to).
    ///
    /// # Errors
    /// Those of `delete_version`, and [`StoreError::ObjectLocked`] for a version Object Lock
    /// protects.
    pub fn delete_version_with(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        condition: Option<&crate::WriteCondition>,
        bypass_governance: bool,
    ) -> Result<Deleted, StoreError> {
        validate_key(key)?;
        let mut w = self.begin_write()?;
        w.touches(bucket, key);
        let (bucket_id, deleted, gone) = {
            let b = bucket_record(&w.open_table(BUCKETS)?, bucket)?;
            if let Some(c) = condition {
                c.check(crate::object::current_etag(&w, &b.id, key)?.as_deref())?;
            }
            let (deleted, gone) = match version_id {
                Some(id) => delete_version(&w, &b, key, id, bypass_governance)?,
                None => delete_current(&w, &b, key)?,
            };
            (b.id, deleted, gone)
        };
        w.commit()?;
        for blob in gone {
            self.remove_blob(&bucket_id, &blob);
        }
        Ok(deleted)
    }

    /// Replaces the tags of version `version_id` (`None`: the current one); returns the version
    /// id S3 reports.
    ///
    /// # Errors
    /// As [`LocalStore::head_version`], [`StoreError::InvalidTag`].
    pub fn put_version_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: Vec<(String, String)>,
    ) -> Result<Option<String>, StoreError> {
        validate_key(key)?;
        crate::validate_tags(&tags)?;
        let mut w = self.begin_write()?;
        w.touches(bucket, key);
        let shown = {
            let b = bucket_record(&w.open_table(BUCKETS)?, bucket)?;
            update_version(&w, &b, key, version_id, |rec| rec.meta.tags = tags)?
        };
        w.commit()?;
        Ok(shown)
    }

    /// A bucket's Object Lock configuration (`None`: Object Lock is not enabled).
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`].
    pub fn lock_configuration(&self, bucket: &str) -> Result<Option<LockConfig>, StoreError> {
        let r = self.db().begin_read()?;
        Ok(bucket_record(&r.open_table(BUCKETS)?, bucket)?.object_lock)
    }

    /// Enables Object Lock on a bucket, or replaces its default retention
    /// (PutObjectLockConfiguration). Versioning must be enabled (a bucket created with Object
    /// Lock is: [`LocalStore::create_bucket_with`]).
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`], [`StoreError::InvalidBucketState`] when versioning is not
    /// enabled.
    pub fn set_lock_configuration(
        &self,
        bucket: &str,
        config: LockConfig,
    ) -> Result<(), StoreError> {
        let w = self.begin_write()?;
        {
            let mut t = w.open_table(BUCKETS)?;
            let mut rec = bucket_record(&t, bucket)?;
            if rec.versioning != Versioning::Enabled {
                return Err(StoreError::InvalidBucketState {
                    reason: "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration".to_owned(),
                });
            }
            rec.object_lock = Some(config);
            t.insert(bucket, encode(&rec)?.as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    /// Sets the retention of version `version_id` (`None`: the current one; `retention: None`
    /// removes it) as of `now`, if Object Lock allows the change. Returns the version id S3
    /// reports.
    ///
    /// # Errors
    /// As [`LocalStore::head_version`], [`StoreError::InvalidRequest`] for a bucket without
    /// Object Lock, [`StoreError::ObjectLocked`] for a change the version's retention forbids.
    pub fn put_version_retention(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        retention: Option<crate::Retention>,
        bypass_governance: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.update_lock(bucket, key, version_id, |lock| {
            lock.check_retention_change(retention.as_ref(), now, bypass_governance)?;
            lock.retention = retention;
            Ok(())
        })
    }

    /// Turns the legal hold of version `version_id` (`None`: the current one) on or off.
    /// Returns the version id S3 reports.
    ///
    /// # Errors
    /// As [`LocalStore::put_version_retention`].
    pub fn put_version_legal_hold(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        on: bool,
    ) -> Result<Option<String>, StoreError> {
        self.update_lock(bucket, key, version_id, |lock| {
            lock.legal_hold = Some(on);
            Ok(())
        })
    }

    fn update_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: impl FnOnce(&mut crate::ObjectLock) -> Result<(), StoreError>,
    ) -> Result<Option<String>, StoreError> {
        validate_key(key)?;
        let mut w = self.begin_write()?;
        w.touches(bucket, key);
        let shown = {
            let b = bucket_record(&w.open_table(BUCKETS)?, bucket)?;
            if b.object_lock.is_none() {
                return Err(StoreError::InvalidRequest {
                    reason: "Bucket is missing Object Lock Configuration".to_owned(),
                });
            }
            // The check and the change happen in this one write transaction.
            let mut lock = lookup(
                &w.open_table(OBJECTS)?,
                &w.open_table(VERSIONS)?,
                &b.id,
                key,
                version_id,
            )?
            .meta
            .lock;
            change(&mut lock)?;
            update_version(&w, &b, key, version_id, |rec| rec.meta.lock = lock)?
        };
        w.commit()?;
        Ok(shown)
    }

    /// One page of ListObjectVersions.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`].
    pub fn list_versions(&self, bucket: &str, q: &VersionQuery) -> Result<VersionPage, StoreError> {
        let r = self.db().begin_read()?;
        let b = bucket_record(&r.open_table(BUCKETS)?, bucket)?;
        list_versions_in(&r.open_table(OBJECTS)?, &r.open_table(VERSIONS)?, &b.id, q)
    }
}
