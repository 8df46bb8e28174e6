//! Compiled inline session policies, by the SHA-256 of their text.
//!
//! A session created with an inline `Policy` carries the policy text in its sealed token; every
//! request of the session needs it compiled. The cache keeps the compiled form so a session's
//! requests after the first skip parsing and compiling. It is bounded
//! ([`SESSION_POLICY_CACHE_ENTRIES`]); when full, the oldest entry goes (first in, first out).
//! Keying by SHA-256 makes a collision between two different policies practically impossible.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use keyhole_policy::CompiledPolicy;
use sha2::{Digest, Sha256};

use crate::error::S3Error;

/// How many compiled session policies the cache holds.
pub const SESSION_POLICY_CACHE_ENTRIES: usize = 1024;

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<[u8; 32], Arc<CompiledPolicy>>,
    /// Insertion order, oldest first.
    order: VecDeque<[u8; 32]>,
}

/// A bounded map from a session policy's text hash to the policy compiled.
#[derive(Debug)]
pub struct SessionPolicyCache {
    entries: RwLock<Entries>,
    capacity: usize,
    compiled: AtomicU64,
}

impl Default for SessionPolicyCache {
    fn default() -> Self {
        Self::with_capacity(SESSION_POLICY_CACHE_ENTRIES)
    }
}

impl SessionPolicyCache {
    /// A cache holding at most `capacity` policies (at least one).
    pub fn with_capacity(capacity: usize) -> SessionPolicyCache {
        SessionPolicyCache {
            entries: RwLock::default(),
            capacity: capacity.max(1),
            compiled: AtomicU64::new(0),
        }
    }

    /// The compiled form of `doc`, compiled now only if the cache does not hold it.
    pub fn get_or_compile(&self, doc: &str) -> Result<Arc<CompiledPolicy>, S3Error> {
        let key: [u8; 32] = Sha256::digest(doc.as_bytes()).into();
        {
            let entries = match self.entries.read() {
                Ok(e) => e,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(p) = entries.map.get(&key) {
                return Ok(p.clone());
            }
        }
        let compiled = Arc::new(crate::sts::compile_session_policy(doc)?);
        self.compiled.fetch_add(1, Ordering::Relaxed);
        let mut entries = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Another request may have compiled the same policy meanwhile: keep the first.
        if let Some(p) = entries.map.get(&key) {
            return Ok(p.clone());
        }
        while entries.map.len() >= self.capacity {
            match entries.order.pop_front() {
                Some(old) => {
                    entries.map.remove(&old);
                }
                None => break,
            }
        }
        entries.map.insert(key, compiled.clone());
        entries.order.push_back(key);
        Ok(compiled)
    }

    /// How many policies have been compiled (cache misses) since the cache was made.
    pub fn compilations(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// How many compiled policies the cache holds.
    pub fn len(&self) -> usize {
        match self.entries.read() {
            Ok(e) => e.map.len(),
            Err(poisoned) => poisoned.into_inner().map.len(),
        }
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(action: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
        )
    }

    #[test]
    fn a_policy_is_compiled_once_and_shared() {
        let cache = SessionPolicyCache::default();
        let a = cache.get_or_compile(&doc("s3:GetObject")).unwrap();
        let b = cache.get_or_compile(&doc("s3:GetObject")).unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second lookup reuses the first compile"
        );
        assert_eq!(cache.compilations(), 1);
        cache.get_or_compile(&doc("s3:PutObject")).unwrap();
        assert_eq!((cache.compilations(), cache.len()), (2, 2));
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest() {
        let cache = SessionPolicyCache::with_capacity(2);
        let first = cache.get_or_compile(&doc("s3:GetObject")).unwrap();
        cache.get_or_compile(&doc("s3:PutObject")).unwrap();
        cache.get_or_compile(&doc("s3:ListBucket")).unwrap();
        assert_eq!(cache.len(), 2);
        let again = cache.get_or_compile(&doc("s3:GetObject")).unwrap();
        assert!(!Arc::ptr_eq(&first, &again), "evicted, compiled again");
        assert_eq!(cache.compilations(), 4);
        // The newest survived.
        cache.get_or_compile(&doc("s3:ListBucket")).unwrap();
        assert_eq!(cache.compilations(), 4);
    }

    #[test]
    fn invalid_policies_are_not_cached() {
        let cache = SessionPolicyCache::default();
        let e = cache.get_or_compile("{not json").unwrap_err();
        assert_eq!(e.code(), "MalformedPolicyDocument");
        assert!(cache.is_empty());
    }
}
