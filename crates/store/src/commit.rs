//! Group commit of object writes.
//!
//! Every object write ends in a durable redb transaction, and redb runs one write transaction at
//! a time: committed alone, concurrent writes queue for the index and each pays its own
//! `fdatasync`. [`GroupCommit`] lets them share it. A writer whose body is already durable
//! (fsynced, renamed into place, its directory fsynced) hands its index update to
//! [`GroupCommit::commit`] and:
//!
//! * if no commit is running, it becomes the *leader*: it takes every update waiting (its own
//!   and whatever arrived meanwhile, up to [`MAX_BATCH`]), applies them in arrival order in one
//!   write transaction, commits it (one `fdatasync` for all), and hands each writer its result;
//! * otherwise it waits for the running commit to finish and then the next leader (possibly
//!   itself) commits it with the others that queued meanwhile.
//!
//! The wait is bounded by the commit that is running plus its own, and there is no timer: a lone
//! writer finds no commit running and commits at once, exactly as it did alone.
//!
//! # Semantics
//!
//! Each update in a batch is checked (bucket still there, `If-None-Match`/`If-Match`, Object
//! Lock rules) against the state the updates before it in the batch left, inside the committing
//! transaction, exactly as if they had committed one after another in that order. An update
//! whose check fails fails alone: the transaction is aborted (nothing of it was written) and the
//! batch is applied again without it, so the others commit and see the state it would not have
//! changed. A failed commit fails every update of the batch, and each writer removes its body.
//! A writer is answered only after the transaction holding its update is durable.

use std::collections::HashMap;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::index::ObjectRecord;
use crate::object::{current_etag, install_object};
use crate::{LocalStore, StoreError, WriteCondition};

/// Most updates one transaction commits; more wait for the next one. It bounds how long a
/// leader works before it answers (a few milliseconds of index updates).
pub(crate) const MAX_BATCH: usize = 256;

/// One object write waiting for its index update to be committed.
#[derive(Debug, Clone)]
pub(crate) struct Update {
    pub(crate) bucket: String,
    pub(crate) bucket_id: String,
    pub(crate) key: String,
    pub(crate) rec: ObjectRecord,
    /// The body, when it is kept in the index (written in the same transaction as `rec`).
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) condition: Option<WriteCondition>,
}

/// What a committed update did.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The record as installed (with its sequence number and version id).
    pub(crate) rec: ObjectRecord,
    /// Bodies the update replaced, to remove now that the commit is durable.
    pub(crate) gone: Vec<String>,
}

type Outcome = Result<Committed, StoreError>;

/// Counters of a [`GroupCommit`] (for tests and measurements).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Write transactions committed (or attempted) by leaders.
    pub batches: u64,
    /// Updates they carried.
    pub updates: u64,
}

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    waiting: Vec<(u64, Update)>,
    answers: HashMap<u64, Outcome>,
    leading: bool,
    stats: CommitStats,
}

/// The committer of one store (see the module documentation).
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    turn: Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> CommitStats {
        self.lock().stats
    }

    /// Commits `update` durably, with whatever other updates are waiting, and returns what it
    /// did once the transaction holding it is durable.
    pub(crate) fn commit(&self, store: &LocalStore, update: Update) -> Outcome {
        let mut q = self.lock();
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.waiting.push((ticket, update));
        loop {
            if let Some(answer) = q.answers.remove(&ticket) {
                return answer;
            }
            if q.leading {
                q = self.turn.wait(q).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            q.leading = true;
            let n = q.waiting.len().min(MAX_BATCH);
            let batch: Vec<(u64, Update)> = q.waiting.drain(..n).collect();
            q.stats.batches += 1;
            q.stats.updates += n as u64;
            drop(q);
            let mut lead = Leading {
                committer: self,
                tickets: batch.iter().map(|(t, _)| *t).collect(),
                answers: Vec::new(),
            };
            let (tickets, updates): (Vec<u64>, Vec<Update>) = batch.into_iter().unzip();
            lead.answers = tickets
                .into_iter()
                .zip(apply_batch(store, &updates))
                .collect();
            drop(lead);
            q = self.lock();
        }
    }
}

/// A leader's turn: when it ends, normally or by a panic, every writer of the batch gets an
/// answer and the next leader may start.
struct Leading<'a> {
    committer: &'a GroupCommit,
    tickets: Vec<u64>,
    answers: Vec<(u64, Outcome)>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut q = self.committer.lock();
        let answered = std::mem::take(&mut self.answers);
        if answered.len() != self.tickets.len() {
            for t in &self.tickets {
                q.answers.insert(
                    *t,
                    Err(StoreError::Index("the group commit was interrupted".into())),
                );
            }
        }
        q.answers.extend(answered);
        q.leading = false;
        drop(q);
        self.committer.turn.notify_all();
    }
}

/// Applies `updates` in order in one write transaction and commits it. An update that fails is
/// left out and the others applied again (see the module documentation); one answer per update,
/// in order.
pub(crate) fn apply_batch(store: &LocalStore, updates: &[Update]) -> Vec<Outcome> {
    // What the batch adds to the index (bodies kept in it, and a page's worth per record) must
    // leave the file system's reserve free ([`crate::space`]): otherwise every update fails as
    // a full disk, and the index is never left to fail a commit for want of space.
    let adding: u64 = updates
        .iter()
        .map(|u| u.body.as_ref().map_or(0, Vec::len) as u64 + 4096)
        .sum();
    if let Err(e) = crate::space::ensure(store.inner.layout.root(), adding) {
        return updates.iter().map(|_| Err(same_error(&e))).collect();
    }
    let mut failed: HashMap<usize, StoreError> = HashMap::new();
    loop {
        let attempt = (|| -> Result<Result<Vec<(usize, Committed)>, usize>, StoreError> {
            let mut w = store.begin_write()?;
            for u in updates.iter() {
                w.touches(&u.bucket, &u.key);
            }
            let mut done = Vec::with_capacity(updates.len());
            for (i, u) in updates.iter().enumerate() {
                if failed.contains_key(&i) {
                    continue;
                }
                match apply(&w, u) {
                    Ok(c) => done.push((i, c)),
                    Err(e) => {
                        w.abort()?;
                        failed.insert(i, e);
                        return Ok(Err(i));
                    }
                }
            }
            if !done.is_empty() {
                w.commit()?;
            }
            Ok(Ok(done))
        })();
        match attempt {
            Ok(Err(_)) => continue,
            Ok(Ok(done)) => {
                let mut out: Vec<Option<Outcome>> = (0..updates.len()).map(|_| None).collect();
                for (i, c) in done {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(Ok(c));
                    }
                }
                for (i, e) in failed {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(Err(e));
                    }
                }
                return out
                    .into_iter()
                    .map(|o| o.unwrap_or_else(|| Err(StoreError::Index("no answer".into()))))
                    .collect();
            }
            Err(e) => {
                // The transaction could not be begun, aborted or committed: nothing of it is
                // durable, and every update still in it fails with the same error.
                return (0..updates.len())
                    .map(|i| Err(failed.remove(&i).unwrap_or_else(|| same_error(&e))))
                    .collect();
            }
        }
    }
}

/// One update inside the batch's transaction: the checks a lone write makes, then the install.
fn apply(w: &redb::WriteTransaction, u: &Update) -> Result<Committed, StoreError> {
    let mut rec = u.rec.clone();
    let body = u.body.as_deref();
    let gone = install_object(
        w,
        &u.bucket,
        &u.bucket_id,
        &u.key,
        &mut rec,
        body,
        |w| match &u.condition {
            Some(c) => c.check(current_etag(w, &u.bucket_id, &u.key)?.as_deref()),
            None => Ok(()),
        },
    )?;
    Ok(Committed { rec, gone })
}

/// A storage error told to every writer of a failed batch.
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Io(io) => StoreError::Io(io::Error::new(io.kind(), io.to_string())),
        StoreError::Sealed => StoreError::Sealed,
        other => StoreError::Index(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{self, blob_ref, BLOB_REFS, OBJECTS};
    use crate::layout::new_id;
    use crate::lock::{LockMode, ObjectLock, Retention};
    use crate::object::{place_body, BlobWriter};
    use crate::ObjectMeta;
    use redb::ReadableTableMetadata;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path()).unwrap();
        s.create_bucket("bkt", "r").unwrap();
        (dir, s)
    }

    /// An update for `key` whose body (`body`) is already durable in its place, as
    /// `ObjectWriter::commit_if` hands it over.
    fn update(s: &LocalStore, key: &str, body: &[u8], condition: Option<WriteCondition>) -> Update {
        let bucket_id = s.bucket_id("bkt").unwrap();
        let mut w = BlobWriter::create(s.layout(), 1 << 20, 0).unwrap();
        w.write(body).unwrap();
        let done = w.finish(None).unwrap();
        let rec = ObjectRecord {
            blob: new_id(),
            size: done.size,
            etag: hex::encode(done.md5),
            last_modified: index::now_secs(),
            meta: ObjectMeta::default(),
            parts_count: None,
            parts: Vec::new(),
            version_id: None,
            seq: 0,
            completed_upload: None,
            inline: false,
        };
        place_body(s, &bucket_id, &rec.blob, done).unwrap();
        Update {
            bucket: "bkt".into(),
            bucket_id,
            key: key.into(),
            rec,
            body: None,
            condition,
        }
    }

    fn read(s: &LocalStore, key: &str) -> Vec<u8> {
        let (_, mut r) = s.get("bkt", key).unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut v).unwrap();
        v
    }

    fn referenced(s: &LocalStore, u: &Update) -> bool {
        let r = s.db().begin_read().unwrap();
        let t = r.open_table(BLOB_REFS).unwrap();
        t.get(blob_ref(&u.bucket_id, &u.rec.blob).as_str())
            .unwrap()
            .is_some()
    }

    /// A batch where some writes fail (a precondition, a lock the bucket cannot hold): each
    /// fails alone, the others commit, and each is checked against the state the ones before it
    /// in the batch left, as if they had committed one after another.
    #[test]
    fn a_failing_write_fails_alone_and_each_sees_the_ones_before_it() {
        let (_d, s) = store();
        let mut w = s.new_object("bkt").unwrap();
        w.write(b"old").unwrap();
        let taken = w.commit("taken", ObjectMeta::default(), None).unwrap();

        let a = update(&s, "x", b"first x", None);
        let a_etag = a.rec.etag.clone();
        let b = update(&s, "taken", b"must not land", Some(WriteCondition::Absent));
        // Holds only because `a`, earlier in the same batch, wrote this ETag.
        let c = update(&s, "x", b"second x", Some(WriteCondition::ETag(a_etag)));
        let d = update(&s, "y", b"y", Some(WriteCondition::Absent));
        // Fails only because `d`, earlier in the same batch, created the key.
        let e = update(&s, "y", b"late y", Some(WriteCondition::Absent));
        // Object Lock on a bucket without it: refused after the blob reference was written,
        // which the aborted transaction must take back.
        let mut f = update(&s, "z", b"locked", None);
        f.rec.meta.lock = ObjectLock {
            retention: Some(Retention {
                mode: LockMode::Governance,
                until: chrono::Utc::now() + chrono::Duration::days(1),
            }),
            legal_hold: None,
        };
        let g = update(&s, "w", b"last", None);
        let batch = vec![a, b, c, d, e, f, g];

        let out = apply_batch(&s, &batch);
        assert_eq!(out.len(), batch.len());
        let codes: Vec<&str> = out
            .iter()
            .map(|o| match o {
                Ok(_) => "ok",
                Err(e) => e.s3_code(),
            })
            .collect();
        assert_eq!(
            codes,
            [
                "ok",
                "PreconditionFailed",
                "ok",
                "ok",
                "PreconditionFailed",
                "InvalidRequest",
                "ok"
            ]
        );
        assert_eq!(read(&s, "taken"), b"old");
        assert_eq!(s.head("bkt", "taken").unwrap().etag, taken.etag);
        assert_eq!(read(&s, "x"), b"second x");
        assert_eq!(read(&s, "y"), b"y");
        assert_eq!(read(&s, "w"), b"last");
        assert!(matches!(s.head("bkt", "z"), Err(StoreError::NoSuchKey)));
        // What committed is referenced, what failed is not; `a` was replaced by `c` within the
        // batch (unversioned), so its body is no longer referenced and is among what `c` retired.
        for (i, (u, o)) in batch.iter().zip(&out).enumerate() {
            assert_eq!(referenced(&s, u), o.is_ok() && i != 0, "{}", u.key);
        }
        let c_gone = &out[2].as_ref().unwrap().gone;
        assert_eq!(c_gone, &vec![batch[0].rec.blob.clone()]);
    }

    #[test]
    fn versions_written_in_one_batch_keep_their_order() {
        let (_d, s) = store();
        s.set_versioning("bkt", crate::index::Versioning::Enabled)
            .unwrap();
        let batch = vec![
            update(&s, "k", b"one", None),
            update(&s, "k", b"two", None),
            update(&s, "k", b"three", None),
        ];
        let out = apply_batch(&s, &batch);
        let ids: Vec<String> = out
            .iter()
            .map(|o| o.as_ref().unwrap().rec.version_id.clone().unwrap())
            .collect();
        assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
        assert!(out.iter().all(|o| o.as_ref().unwrap().gone.is_empty()));
        assert_eq!(read(&s, "k"), b"three");
        for (id, body) in ids.iter().zip([&b"one"[..], b"two", b"three"]) {
            let (_, mut r) = s.get_version("bkt", "k", Some(id)).unwrap();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut v).unwrap();
            assert_eq!(v, body);
        }
    }

    #[test]
    fn a_batch_for_a_deleted_bucket_fails_only_its_writes() {
        let (_d, s) = store();
        s.create_bucket("other", "r").unwrap();
        let mut gone = update(&s, "k", b"x", None);
        gone.bucket = "other".into(); // names a bucket whose id is not the one it was written in
        let ok = update(&s, "k", b"y", None);
        let out = apply_batch(&s, &[gone, ok]);
        assert!(matches!(out[0], Err(StoreError::NoSuchBucket)));
        assert!(out[1].is_ok());
        assert_eq!(read(&s, "k"), b"y");
    }

    /// A sealed store (a gateway shutting down) changes nothing any more: a write whose body
    /// was already placed fails at its commit and leaves no object, a delete and a new bucket
    /// fail too, and reads go on.
    #[test]
    fn a_sealed_store_refuses_every_change_and_still_reads() {
        let (_d, s) = store();
        let mut w = s.new_object("bkt").unwrap();
        w.write(b"before").unwrap();
        w.commit("kept", ObjectMeta::default(), None).unwrap();
        let mut late = s.new_object("bkt").unwrap();
        late.write(b"streamed while the gateway stopped").unwrap();
        s.seal().unwrap();
        let refused = late.commit("late", ObjectMeta::default(), None);
        assert!(matches!(refused, Err(StoreError::Sealed)), "{refused:?}");
        assert_eq!(StoreError::Sealed.http_status(), 503);
        assert!(matches!(s.head("bkt", "late"), Err(StoreError::NoSuchKey)));
        assert!(matches!(s.delete("bkt", "kept"), Err(StoreError::Sealed)));
        assert!(matches!(
            s.create_bucket("other", "r"),
            Err(StoreError::Sealed)
        ));
        assert_eq!(read(&s, "kept"), b"before");
        // Nothing the refused write streamed is left behind either.
        let r = s.db().begin_read().unwrap();
        let bodies = r.open_table(BLOB_REFS).unwrap().len().unwrap()
            + r.open_table(index::INLINE_BODIES).unwrap().len().unwrap();
        assert_eq!(bodies, 1);
    }

    /// A bucket asked for with Object Lock is created versioned and locked in one commit.
    #[test]
    fn a_locked_bucket_is_created_whole() {
        let (_d, s) = store();
        s.create_bucket_with("locked", "r", true).unwrap();
        assert_eq!(
            s.lock_configuration("locked").unwrap(),
            Some(crate::LockConfig::default())
        );
        assert_eq!(
            s.versioning("locked").unwrap(),
            crate::index::Versioning::Enabled
        );
        s.seal().unwrap();
        assert!(matches!(
            s.create_bucket_with("late", "r", true),
            Err(StoreError::Sealed)
        ));
        assert!(matches!(s.bucket("late"), Err(StoreError::NoSuchBucket)));
    }

    /// A writer alone commits at once, as leader of a batch of one.
    #[test]
    fn a_lone_writer_commits_its_own_batch() {
        let (_d, s) = store();
        for i in 0..5 {
            let mut w = s.new_object("bkt").unwrap();
            w.write(b"v").unwrap();
            w.commit(&format!("k{i}"), ObjectMeta::default(), None)
                .unwrap();
        }
        assert_eq!(
            s.commit_stats(),
            CommitStats {
                batches: 5,
                updates: 5
            }
        );
    }

    /// Concurrent writers share transactions, and every acknowledged write is there.
    #[test]
    fn concurrent_writers_share_commits() {
        let (_d, s) = store();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..20)
                        .map(|i| {
                            let key = format!("t{t}/{i}");
                            let mut w = s.new_object("bkt").unwrap();
                            w.write(key.as_bytes()).unwrap();
                            (
                                key.clone(),
                                w.commit(&key, ObjectMeta::default(), None).unwrap(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut acked = 0;
        for t in threads {
            for (key, info) in t.join().unwrap() {
                assert_eq!(read(&s, &key), key.as_bytes());
                assert_eq!(s.head("bkt", &key).unwrap().etag, info.etag);
                acked += 1;
            }
        }
        let stats = s.commit_stats();
        assert_eq!(stats.updates, acked);
        assert!(stats.batches < stats.updates, "{stats:?}");
        let r = s.db().begin_read().unwrap();
        assert_eq!(r.open_table(OBJECTS).unwrap().len().unwrap(), acked);
    }
}
