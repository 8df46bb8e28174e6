//! ListObjects(V2) over the ordered index.
//!
//! With a delimiter, each common prefix is emitted once and the cursor then *seeks* to the
//! first key past every key that shares it ([`crate::index::successor`]), so a page costs
//! O(entries × log n) whatever the number of keys under each common prefix.

use std::ops::Bound;

use redb::ReadableTable;

use crate::index::{self, decode, ObjectRecord, BUCKETS, OBJECTS};
use crate::store::bucket_record;
use crate::{ListEntry, ListPage, ListQuery, LocalStore, StoreError, MAX_LIST_KEYS};

/// The common prefix `key` rolls up to: `prefix` plus everything up to and including the
/// first `delim` after it.
pub(crate) fn common_prefix<'k>(key: &'k str, prefix: &str, delim: &str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delim)?;
    key.get(..prefix.len() + at + delim.len())
}

impl LocalStore {
    /// One page of ListObjects(V2).
    ///
    /// Entries are keys starting with `q.prefix` that sort after `q.start_after`, in byte
    /// order; with a delimiter, keys containing it after the prefix are rolled up into one
    /// common prefix each. A common prefix equal to `start_after` is skipped with all its
    /// keys, so passing [`ListPage::next_start_after`] back continues exactly.
    ///
    /// # Errors
    /// [`StoreError::NoSuchBucket`].
    pub fn list(&self, bucket: &str, q: &ListQuery) -> Result<ListPage, StoreError> {
        let r = self.db().begin_read()?;
        let b = bucket_record(&r.open_table(BUCKETS)?, bucket)?;
        let t = r.open_table(OBJECTS)?;
        Ok(list_in(&t, &b.id, q)?.0)
    }
}

fn list_in(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket_id: &str,
    q: &ListQuery,
) -> Result<(ListPage, usize), StoreError> {
    let max = q.max_keys.min(MAX_LIST_KEYS);
    let mut page = ListPage::default();
    // Index entries read, for the test that proves common prefixes are skipped.
    let mut visited = 0usize;
    if max == 0 {
        return Ok((page, visited));
    }
    let delim = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let base = bucket_id.len();
    let full_prefix = index::object_key(bucket_id, &q.prefix);

    let mut from: Bound<Vec<u8>> = Bound::Included(full_prefix.clone());
    if let Some(sa) = q.start_after.as_deref() {
        if sa.as_bytes() >= q.prefix.as_bytes() {
            let rolled = delim.and_then(|d| common_prefix(sa, &q.prefix, d));
            from = if rolled == Some(sa) {
                // `sa` is a common prefix: skip every key under it.
                match index::successor(&index::object_key(bucket_id, sa)) {
                    Some(s) => Bound::Included(s),
                    None => return Ok((page, visited)),
                }
            } else {
                Bound::Excluded(index::object_key(bucket_id, sa))
            };
        }
    }

    'seek: loop {
        let range = (bound_ref(&from), Bound::<&[u8]>::Unbounded);
        for item in t.range::<&[u8]>(range)? {
            let (k, v) = item?;
            visited += 1;
            let kb = k.value();
            if !kb.starts_with(&full_prefix) {
                break 'seek;
            }
            if page.entries.len() == max {
                page.is_truncated = true;
                break 'seek;
            }
            let key = kb
                .get(base..)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| StoreError::Index("object key is not utf-8".to_owned()))?;
            if let Some(cp) = delim.and_then(|d| common_prefix(key, &q.prefix, d)) {
                page.entries.push(ListEntry::CommonPrefix(cp.to_owned()));
                match index::successor(&index::object_key(bucket_id, cp)) {
                    Some(s) => {
                        from = Bound::Included(s);
                        continue 'seek;
                    }
                    None => break 'seek,
                }
            }
            let rec: ObjectRecord = decode(v.value())?;
            page.entries
                .push(ListEntry::Object(rec.info(key.to_owned())));
        }
        break;
    }
    if page.is_truncated {
        page.next_start_after = page.entries.last().map(|e| e.name().to_owned());
    }
    Ok((page, visited))
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix("a/b/c", "", "/"), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", "/"), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", "/"), None);
        assert_eq!(common_prefix("x", "a/", "/"), None);
        assert_eq!(common_prefix("aXXbXXc", "a", "XX"), Some("aXX"));
        assert_eq!(common_prefix("é/ü/", "é/", "/"), Some("é/ü/"));
    }

    /// S3 listing, computed the obvious way from a sorted set of keys.
    fn reference(keys: &BTreeSet<String>, q: &ListQuery) -> Vec<String> {
        let delim = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut out: Vec<String> = Vec::new();
        for k in keys {
            if !k.starts_with(&q.prefix) {
                continue;
            }
            if q.start_after.as_ref().is_some_and(|sa| k <= sa) {
                continue;
            }
            let name = match delim.and_then(|d| common_prefix(k, &q.prefix, d)) {
                Some(cp) if q.start_after.as_deref() == Some(cp) => continue,
                Some(cp) => cp.to_owned(),
                None => k.clone(),
            };
            if out.last() != Some(&name) {
                out.push(name);
            }
        }
        out
    }

    fn names(p: &ListPage) -> Vec<String> {
        p.entries.iter().map(|e| e.name().to_owned()).collect()
    }

    fn store_with(keys: &BTreeSet<String>) -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path()).unwrap();
        s.create_bucket("bkt", "us-east-1").unwrap();
        s.insert_index_only("bkt", keys.iter().cloned(), 0).unwrap();
        (dir, s)
    }

    #[test]
    fn delimiter_rolls_up_and_paginates() {
        let keys: BTreeSet<String> = ["a", "a/1", "a/2", "a/b/1", "b", "c/", "c/x", "d/e/f"]
            .into_iter()
            .map(String::from)
            .collect();
        let (_d, s) = store_with(&keys);
        let q = ListQuery {
            delimiter: Some("/".into()),
            max_keys: 1000,
            ..Default::default()
        };
        let p = s.list("bkt", &q).unwrap();
        assert_eq!(names(&p), ["a", "a/", "b", "c/", "d/"]);
        assert!(!p.is_truncated);
        assert!(p.next_start_after.is_none());
        assert!(matches!(p.entries[0], ListEntry::Object(_)));
        assert!(matches!(p.entries[1], ListEntry::CommonPrefix(_)));

        let q2 = ListQuery {
            max_keys: 2,
            ..q.clone()
        };
        let p = s.list("bkt", &q2).unwrap();
        assert_eq!(names(&p), ["a", "a/"]);
        assert!(p.is_truncated);
        assert_eq!(p.next_start_after.as_deref(), Some("a/"));
        let p = s
            .list(
                "bkt",
                &ListQuery {
                    start_after: p.next_start_after,
                    ..q2.clone()
                },
            )
            .unwrap();
        assert_eq!(names(&p), ["b", "c/"]);
        assert!(p.is_truncated);
        let p = s
            .list(
                "bkt",
                &ListQuery {
                    start_after: p.next_start_after,
                    ..q2
                },
            )
            .unwrap();
        assert_eq!(names(&p), ["d/"]);
        assert!(!p.is_truncated);

        let p = s
            .list(
                "bkt",
                &ListQuery {
                    prefix: "a/".into(),
                    ..q.clone()
                },
            )
            .unwrap();
        assert_eq!(names(&p), ["a/1", "a/2", "a/b/"]);
        let p = s
            .list(
                "bkt",
                &ListQuery {
                    max_keys: 1000,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(names(&p), keys.iter().cloned().collect::<Vec<_>>());
        // Exactly max_keys entries left: not truncated.
        let p = s
            .list(
                "bkt",
                &ListQuery {
                    max_keys: 5,
                    ..q.clone()
                },
            )
            .unwrap();
        assert!(!p.is_truncated);
        assert_eq!(p.entries.len(), 5);
        // max_keys 0: empty, not truncated.
        let p = s.list("bkt", &ListQuery::default()).unwrap();
        assert!(p.entries.is_empty() && !p.is_truncated);
        assert!(matches!(s.list("nope", &q), Err(StoreError::NoSuchBucket)));
    }

    /// Each common prefix costs one seek, not a scan of the keys under it.
    #[test]
    fn common_prefixes_are_skipped_not_scanned() {
        let keys: BTreeSet<String> = (0..40)
            .flat_map(|d| (0..250).map(move |f| format!("dir-{d:02}/sub/file-{f:04}")))
            .collect();
        let (_d, s) = store_with(&keys);
        let r = s.db().begin_read().unwrap();
        let id = s.bucket_id("bkt").unwrap();
        let t = r.open_table(OBJECTS).unwrap();
        let q = ListQuery {
            delimiter: Some("/".into()),
            max_keys: 1000,
            ..Default::default()
        };
        let (page, visited) = list_in(&t, &id, &q).unwrap();
        assert_eq!(page.entries.len(), 40);
        assert!(visited <= 41, "visited {visited} entries for 40 prefixes");
        let q = ListQuery {
            prefix: "dir-07/".into(),
            ..q
        };
        let (page, visited) = list_in(&t, &id, &q).unwrap();
        assert_eq!(names(&page), ["dir-07/sub/"]);
        assert!(visited <= 2, "visited {visited}");
        // Continuing after a common prefix seeks past it too.
        let q = ListQuery {
            prefix: String::new(),
            start_after: Some("dir-38/".into()),
            ..q
        };
        let (page, visited) = list_in(&t, &id, &q).unwrap();
        assert_eq!(names(&page), ["dir-39/"]);
        assert!(visited <= 2, "visited {visited}");
    }

    #[test]
    fn max_keys_is_clamped() {
        let keys: BTreeSet<String> = (0..1005).map(|i| format!("k{i:05}")).collect();
        let (_d, s) = store_with(&keys);
        let p = s
            .list(
                "bkt",
                &ListQuery {
                    max_keys: 5000,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(p.entries.len(), MAX_LIST_KEYS);
        assert!(p.is_truncated);
        assert_eq!(p.next_start_after.as_deref(), Some("k00999"));
    }

    #[test]
    fn buckets_do_not_leak_into_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path()).unwrap();
        s.create_bucket("one", "r").unwrap();
        s.create_bucket("two", "r").unwrap();
        s.insert_index_only("one", ["x".to_owned(), "y".to_owned()], 0)
            .unwrap();
        s.insert_index_only("two", ["z".to_owned()], 0).unwrap();
        let q = ListQuery {
            max_keys: 10,
            ..Default::default()
        };
        assert_eq!(names(&s.list("one", &q).unwrap()), ["x", "y"]);
        assert_eq!(names(&s.list("two", &q).unwrap()), ["z"]);
    }

    fn small_key() -> impl Strategy<Value = String> {
        "[ab/]{1,6}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn pages_concatenate_to_the_reference(
            keys in proptest::collection::btree_set(small_key(), 0..40),
            prefix in "[ab/]{0,2}",
            delimiter in proptest::option::of(prop_oneof![Just("/".to_owned()), Just("b".to_owned()), Just("/a".to_owned()), Just(String::new())]),
            max_keys in 1usize..6,
            start_after in proptest::option::of("[ab/]{0,4}"),
        ) {
            let (_d, s) = store_with(&keys);
            // Full pagination from the start equals the reference listing.
            let mut q = ListQuery { prefix: prefix.clone(), delimiter: delimiter.clone(), start_after: None, max_keys };
            let want = reference(&keys, &q);
            let mut got = Vec::new();
            for _ in 0..100 {
                let p = s.list("bkt", &q).unwrap();
                prop_assert!(p.entries.len() <= max_keys);
                got.extend(names(&p));
                if !p.is_truncated {
                    prop_assert!(p.next_start_after.is_none());
                    break;
                }
                prop_assert_eq!(p.entries.len(), max_keys);
                prop_assert_eq!(p.next_start_after.as_deref(), got.last().map(String::as_str));
                q.start_after = p.next_start_after;
            }
            prop_assert_eq!(&got, &want);
            // An arbitrary start_after agrees with the reference too.
            let q = ListQuery { prefix, delimiter, start_after, max_keys: 1000 };
            let p = s.list("bkt", &q).unwrap();
            prop_assert_eq!(names(&p), reference(&keys, &q));
        }
    }
}
