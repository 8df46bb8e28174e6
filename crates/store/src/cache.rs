//! The read cache: the current object record of recently read keys, kept in memory so that a
//! GetObject or HeadObject of a key read before costs neither an index read transaction nor the
//! decoding of its records (issue 16's profiles: about a tenth of a small GET's CPU).
//!
//! # Why it is never stale
//!
//! Every change to the index goes through one write transaction type, [`WriteTx`], whose
//! `commit` invalidates after redb's commit returns and before the writer learns it succeeded:
//! the keys the transaction declared it touched, or the whole cache when it declared nothing
//! (the default, so a write path that forgets to declare is merely slower, never wrong). A
//! write is acknowledged only after its commit returns, so a read that starts after the
//! acknowledgement cannot find the old record here.
//!
//! A reader that misses takes a *ticket* (the count of invalidations so far) before it opens
//! its read transaction, and may insert what it read only if no invalidation happened since:
//! had a commit landed between the ticket and the insert, the record read might predate it.
//! Whole-cache invalidations raise a floor instead of walking the map: entries inserted below
//! the floor are ignored and replaced.
//!
//! Only current versions of objects are cached (never a version asked for by id, a missing key
//! or a delete marker). The cache is bounded by entry count; when full it is emptied and refills
//! from the reads that follow.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::index::{ObjectRecord, Versioning};
use crate::{LocalStore, StoreError};

/// What a cached read returns: the bucket's versioning state and id, and the key's current
/// object record.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) versioning: Versioning,
    pub(crate) bucket_id: String,
    pub(crate) rec: ObjectRecord,
    /// The body of an object kept in the index, once read (`ReadCache::attach_body`). A body's
    /// row never changes while it exists (its blob id is new with every write), so the bytes are
    /// right for as long as the record is.
    pub(crate) body: std::sync::OnceLock<Arc<[u8]>>,
}

impl Cached {
    pub(crate) fn new(versioning: Versioning, bucket_id: String, rec: ObjectRecord) -> Self {
        Self {
            versioning,
            bucket_id,
            rec,
            body: std::sync::OnceLock::new(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// The invalidation count when it was inserted.
    at: u64,
    value: Arc<Cached>,
}

#[derive(Debug, Default)]
struct State {
    /// Invalidations so far (per key or whole).
    epoch: u64,
    /// Entries inserted before this epoch are void (the last whole-cache invalidation).
    floor: u64,
    /// Bucket name → key → entry.
    buckets: HashMap<String, HashMap<String, Entry>>,
    len: usize,
    /// Bytes of the bodies attached to entries (entries voided by the floor still count until
    /// they are replaced or the cache is emptied).
    bytes: usize,
}

impl State {
    fn clear(&mut self) {
        self.buckets.clear();
        self.len = 0;
        self.bytes = 0;
    }

    fn forget(&mut self, e: &Entry) {
        self.len -= 1;
        self.bytes -= e.value.body.get().map_or(0, |b| b.len());
    }
}

/// The store's read cache (see the module's documentation).
#[derive(Debug)]
pub(crate) struct ReadCache {
    state: Mutex<State>,
    capacity: usize,
    /// Most bytes of bodies kept.
    body_budget: usize,
}

/// A miss: the epoch a later [`ReadCache::insert`] must still find.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl ReadCache {
    pub(crate) fn new(capacity: usize, body_budget: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity,
            body_budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that changes it: a panic elsewhere
        // while it was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached current record of `key`, or the ticket to insert it with after reading it.
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Result<Arc<Cached>, Ticket> {
        let s = self.lock();
        match s.buckets.get(bucket).and_then(|b| b.get(key)) {
            Some(e) if e.at >= s.floor => Ok(Arc::clone(&e.value)),
            _ => Err(Ticket(s.epoch)),
        }
    }

    /// Keeps `value`, read after `ticket` was taken, unless the index changed since.
    pub(crate) fn insert(&self, ticket: Ticket, bucket: &str, key: &str, value: Arc<Cached>) {
        if self.capacity == 0 {
            return;
        }
        let mut s = self.lock();
        if s.epoch != ticket.0 {
            return;
        }
        if s.len >= self.capacity {
            s.clear();
        }
        let at = s.epoch;
        let entry = Entry { at, value };
        let old = match s.buckets.get_mut(bucket) {
            Some(b) => b.insert(key.to_owned(), entry),
            None => {
                let mut b = HashMap::new();
                b.insert(key.to_owned(), entry);
                s.buckets.insert(bucket.to_owned(), b);
                None
            }
        };
        s.len += 1;
        if let Some(old) = old {
            s.forget(&old);
        }
    }

    /// Keeps `body` with `value`, the cached entry of `key` that it is the body of, if that entry
    /// is still there and the bodies kept stay within the budget (a cache whose bodies would
    /// not is emptied first, as a full one is).
    pub(crate) fn attach_body(&self, bucket: &str, key: &str, value: &Arc<Cached>, body: &[u8]) {
        if body.len() > self.body_budget {
            return;
        }
        let mut s = self.lock();
        let current = s
            .buckets
            .get(bucket)
            .and_then(|b| b.get(key))
            .is_some_and(|e| Arc::ptr_eq(&e.value, value));
        if !current || value.body.get().is_some() {
            return;
        }
        if s.bytes + body.len() > self.body_budget {
            // Emptying drops `value` from the map too: keep nothing this time.
            s.clear();
            return;
        }
        if value.body.set(Arc::from(body)).is_ok() {
            s.bytes += body.len();
        }
    }

    /// After a commit that changed only `keys` (bucket name, key).
    fn invalidate(&self, keys: &[(String, String)]) {
        let mut s = self.lock();
        s.epoch += 1;
        for (bucket, key) in keys {
            let removed = s.buckets.get_mut(bucket).and_then(|b| b.remove(key));
            if let Some(e) = removed {
                s.forget(&e);
            }
        }
    }

    /// After a commit that may have changed anything.
    fn invalidate_all(&self) {
        let mut s = self.lock();
        s.epoch += 1;
        s.floor = s.epoch;
    }
}

/// What a write transaction changed, as far as the read cache is concerned.
#[derive(Debug)]
enum Touched {
    /// Anything (the default).
    All,
    /// Only these keys' current records (bucket name, key).
    Keys(Vec<(String, String)>),
}

/// A redb write transaction whose commit keeps the read cache right. Every index change goes
/// through one (`LocalStore::begin_write`; redb's own `begin_write` is not called elsewhere).
pub(crate) struct WriteTx<'a> {
    tx: redb::WriteTransaction,
    cache: &'a ReadCache,
    touched: Touched,
}

impl Deref for WriteTx<'_> {
    type Target = redb::WriteTransaction;

    fn deref(&self) -> &redb::WriteTransaction {
        &self.tx
    }
}

impl WriteTx<'_> {
    /// Declares that this transaction changes no bucket and no object record other than those
    /// of `key` in `bucket` (call once per key). Without it, a commit voids the whole cache.
    pub(crate) fn touches(&mut self, bucket: &str, key: &str) {
        let k = (bucket.to_owned(), key.to_owned());
        match &mut self.touched {
            Touched::All => self.touched = Touched::Keys(vec![k]),
            Touched::Keys(v) => v.push(k),
        }
    }

    /// Declares that this transaction changes no bucket and no object record (uploads, parts).
    pub(crate) fn touches_nothing(&mut self) {
        if let Touched::All = self.touched {
            self.touched = Touched::Keys(Vec::new());
        }
    }

    /// Commits durably, then invalidates what the transaction changed (also when the commit
    /// failed: its outcome is then unknown).
    pub(crate) fn commit(self) -> Result<(), StoreError> {
        let result = self.tx.commit();
        match &self.touched {
            Touched::All => self.cache.invalidate_all(),
            Touched::Keys(keys) => self.cache.invalidate(keys),
        }
        result.map_err(StoreError::from)
    }

    /// Abandons the transaction: nothing changed.
    pub(crate) fn abort(self) -> Result<(), StoreError> {
        self.tx.abort().map_err(StoreError::from)
    }
}

impl LocalStore {
    /// Starts the one kind of write transaction the store uses (see [`WriteTx`]).
    pub(crate) fn begin_write(&self) -> Result<WriteTx<'_>, StoreError> {
        #[expect(
            clippy::disallowed_methods,
            reason = "the one place a write transaction is begun"
        )]
        let tx = self.db().begin_write()?;
        // Read with the write lock held: `seal` sets the flag, then takes the lock once, so a
        // transaction begun after it returned sees the flag, and one begun before ended first.
        if self.inner.sealed.load(std::sync::atomic::Ordering::SeqCst) {
            tx.abort()?;
            return Err(StoreError::Sealed);
        }
        Ok(WriteTx {
            tx,
            cache: &self.inner.cache,
            touched: Touched::All,
        })
    }

    /// Closes the store to changes, for a shutdown: waits for the write transaction running
    /// now (if any) to end, and makes every later one fail with [`StoreError::Sealed`] before
    /// it changes anything. Reads go on. A gateway calls it before it closes its audit trail,
    /// so that no change can land after the trail's last record (a copy still streaming when
    /// the shutdown's grace period ends fails at its commit instead).
    ///
    /// # Errors
    /// [`StoreError::Index`] if the index cannot begin the transaction it waits with.
    pub fn seal(&self) -> Result<(), StoreError> {
        self.inner
            .sealed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        #[expect(
            clippy::disallowed_methods,
            reason = "waits for the running write transaction; changes nothing"
        )]
        let tx = self.db().begin_write()?;
        tx.abort()?;
        Ok(())
    }

    pub(crate) fn read_cache(&self) -> &ReadCache {
        &self.inner.cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(blob: &str) -> Arc<Cached> {
        Arc::new(Cached::new(
            Versioning::Unversioned,
            "b".repeat(32),
            ObjectRecord {
                blob: blob.to_owned(),
                size: 1,
                etag: "e".to_owned(),
                last_modified: chrono::DateTime::UNIX_EPOCH,
                meta: crate::ObjectMeta::default(),
                parts_count: None,
                parts: Vec::new(),
                version_id: None,
                seq: 1,
                completed_upload: None,
                inline: false,
            },
        ))
    }

    #[test]
    fn a_miss_then_an_insert_then_a_hit() {
        let c = ReadCache::new(10, 1 << 20);
        let t = c.get("bk", "k").unwrap_err();
        c.insert(t, "bk", "k", value("one"));
        assert_eq!(c.get("bk", "k").unwrap().rec.blob, "one");
        assert!(c.get("bk", "other").is_err());
        assert!(c.get("other", "k").is_err());
    }

    #[test]
    fn an_invalidation_between_ticket_and_insert_refuses_the_insert() {
        let c = ReadCache::new(10, 1 << 20);
        let t = c.get("bk", "k").unwrap_err();
        // A commit of an unrelated key lands while the reader reads: the reader cannot know
        // whether its snapshot predates it, so it does not insert.
        c.invalidate(&[("bk".to_owned(), "unrelated".to_owned())]);
        c.insert(t, "bk", "k", value("old"));
        assert!(c.get("bk", "k").is_err());
        let t = c.get("bk", "k").unwrap_err();
        c.invalidate_all();
        c.insert(t, "bk", "k", value("old"));
        assert!(c.get("bk", "k").is_err());
    }

    #[test]
    fn invalidating_a_key_drops_it_and_only_it() {
        let c = ReadCache::new(10, 1 << 20);
        for k in ["a", "b"] {
            let t = c.get("bk", k).unwrap_err();
            c.insert(t, "bk", k, value(k));
        }
        c.invalidate(&[("bk".to_owned(), "a".to_owned())]);
        assert!(c.get("bk", "a").is_err());
        assert_eq!(c.get("bk", "b").unwrap().rec.blob, "b");
    }

    #[test]
    fn invalidating_everything_voids_every_entry_and_later_inserts_count() {
        let c = ReadCache::new(10, 1 << 20);
        let t = c.get("bk", "a").unwrap_err();
        c.insert(t, "bk", "a", value("a"));
        c.invalidate_all();
        assert!(c.get("bk", "a").is_err());
        let t = c.get("bk", "a").unwrap_err();
        c.insert(t, "bk", "a", value("a2"));
        assert_eq!(c.get("bk", "a").unwrap().rec.blob, "a2");
    }

    #[test]
    fn a_full_cache_empties_and_refills() {
        let c = ReadCache::new(2, 1 << 20);
        for k in ["a", "b", "c"] {
            let t = c.get("bk", k).unwrap_err();
            c.insert(t, "bk", k, value(k));
        }
        assert!(c.get("bk", "a").is_err());
        assert!(c.get("bk", "b").is_err());
        assert_eq!(c.get("bk", "c").unwrap().rec.blob, "c");
        assert_eq!(c.lock().len, 1);
    }

    #[test]
    fn bodies_attach_to_the_current_entry_only_and_within_the_budget() {
        let c = ReadCache::new(10, 10);
        let t = c.get("bk", "a").unwrap_err();
        let a = value("a");
        c.insert(t, "bk", "a", Arc::clone(&a));
        // Not the entry in the map (a reader's copy of a record replaced meanwhile): ignored.
        let stale = value("a");
        c.attach_body("bk", "a", &stale, b"old");
        assert!(stale.body.get().is_none());
        c.attach_body("bk", "a", &a, b"four");
        assert_eq!(
            c.get("bk", "a").unwrap().body.get().unwrap().as_ref(),
            b"four"
        );
        assert_eq!(c.lock().bytes, 4);
        // Invalidating the key gives its bytes back.
        c.invalidate(&[("bk".to_owned(), "a".to_owned())]);
        assert_eq!(c.lock().bytes, 0);
        // A body over the budget is never kept; one that would overflow it empties the cache.
        let t = c.get("bk", "b").unwrap_err();
        let b = value("b");
        c.insert(t, "bk", "b", Arc::clone(&b));
        c.attach_body("bk", "b", &b, b"eleven byte");
        assert!(b.body.get().is_none());
        c.attach_body("bk", "b", &b, b"seven b");
        let t = c.get("bk", "c").unwrap_err();
        let v = value("c");
        c.insert(t, "bk", "c", Arc::clone(&v));
        c.attach_body("bk", "c", &v, b"four");
        assert!(v.body.get().is_none());
        assert_eq!(c.lock().bytes, 0);
        assert_eq!(c.lock().len, 0);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let c = ReadCache::new(0, 1 << 20);
        let t = c.get("bk", "a").unwrap_err();
        c.insert(t, "bk", "a", value("a"));
        assert!(c.get("bk", "a").is_err());
    }
}
