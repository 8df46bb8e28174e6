//! Keyhole buckets and keys as upstream buckets and keys.
//!
//! By default a bucket is the upstream bucket of the same name. The `[buckets]` table can map a
//! keyhole bucket onto an upstream bucket, or onto a prefix of one (`acme-ml/datasets/`): its key
//! `K` is then the upstream key `datasets/K`, and only keys under that prefix are ever named
//! upstream or shown to clients.
//!
//! # Security
//! A mapped prefix cannot be escaped:
//! - every upstream key is the prefix followed by the client's key, whole: nothing is removed or
//!   reinterpreted, and a listing's prefix, markers and start-after are built the same way;
//! - keys with a `.` or `..` path segment are refused before anything is sent: an upstream (or a
//!   proxy on the way) that resolves them as paths (a filesystem-backed store, a normalizing
//!   proxy) would otherwise read `datasets/../other` as `other`;
//! - every key and prefix an upstream answers with must start with the mapped prefix, which is
//!   then removed; one that does not is an internal error, never shown;
//! - an upstream bucket that the table maps is reachable only under the keyhole names the table
//!   gives it (the router reserves its own name), so a policy on `datasets` cannot be side-stepped
//!   through `acme-ml`.

use std::collections::{BTreeMap, HashMap, HashSet};

use http::StatusCode;

use crate::backend::Result;
use crate::config::BucketTarget;
use crate::error::S3Error;

/// Where one keyhole bucket lives upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The upstream bucket.
    pub bucket: String,
    /// The prefix its keys live under: empty, or ending in `/`.
    pub prefix: String,
}

/// Longest S3 key, in bytes.
const MAX_KEY_BYTES: usize = 1024;

impl Mapping {
    /// The upstream key of a keyhole key.
    pub fn key(&self, key: &str) -> Result<String> {
        let full = format!("{}{key}", self.prefix);
        if full
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err(S3Error::invalid_argument(
                "Object keys with a `.` or `..` path segment are not accepted for buckets kept in an upstream store: some stores resolve them as paths.",
            ));
        }
        if full.len() > MAX_KEY_BYTES {
            return Err(S3Error::new(
                "KeyTooLongError",
                StatusCode::BAD_REQUEST,
                "Your key is too long",
            ));
        }
        Ok(full)
    }

    /// A listing's prefix (or marker, or start-after) upstream: the mapped prefix, then the
    /// client's, whole.
    pub fn prefixed(&self, text: &str) -> String {
        format!("{}{text}", self.prefix)
    }

    /// The keyhole key (or common prefix) of an upstream one, which must lie under the mapped
    /// prefix.
    pub fn strip(&self, upstream: &str) -> Result<String> {
        upstream
            .strip_prefix(self.prefix.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                S3Error::internal(std::io::Error::other(
                    "the upstream answered with a key outside the bucket's mapped prefix",
                ))
            })
    }

    /// Whether the bucket is a prefix of an upstream bucket (not a whole one).
    pub fn is_prefix(&self) -> bool {
        !self.prefix.is_empty()
    }
}

/// The `[buckets]` table's upstream entries.
#[derive(Debug, Clone, Default)]
pub struct BucketMap {
    explicit: HashMap<String, Mapping>,
    /// Upstream buckets the table maps, reachable only under their mapped names.
    reserved: HashSet<String>,
}

impl BucketMap {
    /// The upstream entries of the `[buckets]` table.
    pub fn new(table: &BTreeMap<String, BucketTarget>) -> BucketMap {
        let mut map = BucketMap::default();
        for (name, target) in table {
            if let BucketTarget::Upstream { bucket, prefix } = target {
                map.explicit.insert(
                    name.clone(),
                    Mapping {
                        bucket: bucket.clone(),
                        prefix: prefix.clone(),
                    },
                );
                map.reserved.insert(bucket.clone());
            }
        }
        // A bucket the table maps onto itself, whole, keeps its name.
        for (name, m) in &map.explicit {
            if m.bucket == *name && m.prefix.is_empty() {
                map.reserved.remove(name);
            }
        }
        map
    }

    /// Where keyhole bucket `bucket` lives: its mapping, or the upstream bucket of the same name.
    pub fn resolve(&self, bucket: &str) -> Mapping {
        self.explicit
            .get(bucket)
            .cloned()
            .unwrap_or_else(|| Mapping {
                bucket: bucket.to_owned(),
                prefix: String::new(),
            })
    }

    /// Upstream bucket names that no keyhole bucket of the same name may reach.
    pub fn reserved(&self) -> impl Iterator<Item = &str> {
        self.reserved
            .iter()
            .filter(|name| !self.explicit.contains_key(*name))
            .map(String::as_str)
    }

    /// The keyhole names under which upstream bucket `upstream` is seen: the table's names for
    /// it, and its own name unless reserved.
    pub fn names_of(&self, upstream: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .explicit
            .iter()
            .filter(|(_, m)| m.bucket == upstream)
            .map(|(name, _)| name.clone())
            .collect();
        if !self.reserved.contains(upstream) && !self.explicit.contains_key(upstream) {
            names.push(upstream.to_owned());
        }
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &str, &str)]) -> BucketMap {
        let t = entries
            .iter()
            .map(|(name, bucket, prefix)| {
                (
                    (*name).to_owned(),
                    BucketTarget::Upstream {
                        bucket: (*bucket).to_owned(),
                        prefix: (*prefix).to_owned(),
                    },
                )
            })
            .collect();
        BucketMap::new(&t)
    }

    #[test]
    fn keys_gain_the_prefix_whole_and_lose_it_on_the_way_back() {
        let m = table(&[("datasets", "acme-ml", "datasets/")]).resolve("datasets");
        assert_eq!(m.bucket, "acme-ml");
        assert_eq!(m.key("wiki/a b+c").unwrap(), "datasets/wiki/a b+c");
        assert_eq!(m.key("/lead").unwrap(), "datasets//lead");
        assert_eq!(m.strip("datasets/wiki/x").unwrap(), "wiki/x");
        assert_eq!(m.strip("datasets/").unwrap(), "");
        assert_eq!(m.strip("other/x").unwrap_err().code(), "InternalError");
        assert_eq!(m.strip("datasetsx/y").unwrap_err().code(), "InternalError");
        assert_eq!(m.prefixed("wiki/"), "datasets/wiki/");
    }

    #[test]
    fn hostile_keys_cannot_leave_the_prefix() {
        let m = table(&[("datasets", "acme-ml", "datasets/")]).resolve("datasets");
        for hostile in ["../x", "..", "a/../../b", "./x", "a/./b", "a/..", "..%2f"] {
            let r = m.key(hostile);
            match r {
                Ok(k) => {
                    assert!(k.starts_with("datasets/"), "{hostile}");
                    assert!(!k.split('/').any(|s| s == ".." || s == "."), "{hostile}");
                }
                Err(e) => assert_eq!(e.code(), "InvalidArgument", "{hostile}"),
            }
        }
        assert!(m.key("../x").is_err());
        assert!(
            m.key("...").is_ok(),
            "three dots are a name, not a path step"
        );
        assert!(m.key("a..b/c..").is_ok());
        assert_eq!(
            m.key(&"k".repeat(1020)).unwrap_err().code(),
            "KeyTooLongError"
        );
        // Without a prefix, too: `/bucket/../other` must never reach another bucket.
        let whole = BucketMap::default().resolve("b");
        assert!(whole.key("../other/x").is_err());
    }

    #[test]
    fn mapped_upstream_buckets_are_reserved() {
        let m = table(&[
            ("datasets", "acme-ml", "datasets/"),
            ("models", "acme-ml", "models/"),
            ("same", "same", ""),
        ]);
        let reserved: Vec<&str> = m.reserved().collect();
        assert_eq!(reserved, vec!["acme-ml"]);
        assert_eq!(m.names_of("acme-ml"), vec!["datasets", "models"]);
        assert_eq!(m.names_of("same"), vec!["same"]);
        assert_eq!(m.names_of("other"), vec!["other"]);
        assert_eq!(m.resolve("other").bucket, "other");
        assert!(!m.resolve("other").is_prefix());
    }
}
