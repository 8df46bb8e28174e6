//! The request context: condition keys and their values, looked up case-insensitively.
//!
//! "Condition key names are not case-sensitive"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html>).
//! Keys are kept as spelled and hashed and compared without regard to ASCII case, so neither an
//! insertion nor a lookup during a decision allocates for the key.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};

use crate::pattern::Resolver;

/// The value of one context key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    /// A single-valued key.
    Single(String),
    /// A multi-valued key (possibly empty).
    Multi(Vec<String>),
}

impl ContextValue {
    /// All values as a slice.
    pub fn values(&self) -> &[String] {
        match self {
            ContextValue::Single(v) => std::slice::from_ref(v),
            ContextValue::Multi(v) => v,
        }
    }
}

/// A key name as spelled, equal to any other spelling of it: hashed and compared with ASCII
/// letters folded to lowercase. Names given as `'static` strings are not copied.
#[derive(Debug, Clone)]
struct Key(Cow<'static, str>);

/// A key name to look up, in any spelling.
struct Lookup<'a>(&'a str);

/// Feeds `name` to `state` with ASCII letters lowercased, in chunks, then a terminator (as
/// `str`'s own `Hash` does), so that `Key` and `Lookup` hash alike for every spelling.
fn hash_folded<H: Hasher>(name: &str, state: &mut H) {
    let mut buf = [0u8; 32];
    for chunk in name.as_bytes().chunks(buf.len()) {
        let folded = buf.get_mut(..chunk.len()).unwrap_or_default();
        for (to, from) in folded.iter_mut().zip(chunk) {
            *to = from.to_ascii_lowercase();
        }
        state.write(folded);
    }
    state.write_u8(0xff);
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_folded(&self.0, state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for Key {}

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_folded(self.0, state);
    }
}

impl Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0.eq_ignore_ascii_case(&key.0)
    }
}

/// Condition keys of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Key → (the key as last spelled, its value). The map's own key keeps the first spelling
    /// (an insert replaces only the value), so the spelling shown by [`Context::iter`] is kept
    /// beside the value: a value must never be shown under a spelling it was not set with
    /// (review 16, F1).
    entries: HashMap<Key, (Cow<'static, str>, ContextValue)>,
    /// Lowercased prefixes of keys whose values are not known yet (see [`Context::assume_unknown`]).
    unknown: Vec<String>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty context with room for `n` keys.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: HashMap::with_capacity(n),
            unknown: Vec::new(),
        }
    }

    /// Sets a single-valued key.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.set(
            Cow::Owned(key.to_owned()),
            ContextValue::Single(value.into()),
        )
    }

    /// [`Context::insert`] of a key named by a `'static` string (a key name in the code): the
    /// name is not copied.
    pub fn insert_static(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        self.set(Cow::Borrowed(key), ContextValue::Single(value.into()))
    }

    /// Sets a multi-valued key.
    pub fn insert_multi(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.set(Cow::Owned(key.to_owned()), ContextValue::Multi(values))
    }

    /// Sets `key`, spelled as given now, to `value`.
    fn set(&mut self, key: Cow<'static, str>, value: ContextValue) -> &mut Self {
        self.entries.insert(Key(key.clone()), (key, value));
        self
    }

    /// Removes a key (any spelling).
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(&Lookup(key));
    }

    /// Looks a key up by its lowercased name (any spelling is found: kept for the callers that
    /// hold lowercased names).
    pub fn get_lower(&self, key_lower: &str) -> Option<&ContextValue> {
        self.get(key_lower)
    }

    /// Looks a key up by any spelling.
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.entries.get(&Lookup(key)).map(|(_, v)| v)
    }

    /// Sets every key of `other` (replacing keys of the same name).
    pub fn extend(&mut self, other: Context) {
        self.entries.extend(other.entries);
        self.unknown.extend(other.unknown);
    }

    /// Declares the values of every key starting with `prefix` (any spelling) unknown, to ask
    /// for an upper bound of a decision before paying for those facts: a condition (or a
    /// policy variable) on such a key then counts as met in an Allow statement and as unmet in a
    /// Deny statement. Both only widen what is allowed, so when the bound is a denial, every
    /// value those keys could have is denied too.
    pub fn assume_unknown(&mut self, prefix: &str) -> &mut Self {
        self.unknown.push(prefix.to_ascii_lowercase());
        self
    }

    /// Whether the lowercased `key_lower` was declared unknown.
    pub fn is_unknown(&self, key_lower: &str) -> bool {
        self.unknown
            .iter()
            .any(|p| key_lower.starts_with(p.as_str()))
    }

    /// Whether any key was declared unknown.
    pub fn has_unknown(&self) -> bool {
        !self.unknown.is_empty()
    }

    /// Every key (as first spelled) with its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.entries.values().map(|(k, v)| (k.as_ref(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Resolver for Context {
    /// Policy variables take single values only: "you can't use multivalued context keys as
    /// policy variables" (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html>).
    fn resolve(&self, key_lower: &str) -> Option<&str> {
        match self.get_lower(key_lower)? {
            ContextValue::Single(v) => Some(v),
            ContextValue::Multi(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive() {
        let mut c = Context::new();
        c.insert("aws:SourceIp", "1.2.3.4");
        assert_eq!(c.get("AWS:SOURCEIP").unwrap().values(), ["1.2.3.4"]);
        assert_eq!(c.resolve("aws:sourceip"), Some("1.2.3.4"));
        c.insert_multi("aws:TagKeys", vec!["a".into()]);
        assert_eq!(c.resolve("aws:tagkeys"), None);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn another_spelling_replaces_the_value_and_keeps_one_key() {
        let mut c = Context::new();
        c.insert_static("aws:PrincipalTag/Team", "a");
        c.insert("AWS:principaltag/team", "b");
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("aws:principaltag/TEAM").unwrap().values(), ["b"]);
        // Shown as it was spelled when set to that value (review 16, F1).
        assert_eq!(c.iter().next().unwrap().0, "AWS:principaltag/team");
        c.remove("Aws:PrincipalTag/TEAM");
        assert!(c.is_empty());
    }

    #[test]
    fn a_lookup_allocates_nothing() {
        let mut c = Context::with_capacity(4);
        c.insert_static("aws:CurrentTime", "2026-12-04T10:00:00Z");
        let counted = allocation_counter::measure(|| {
            assert!(c.get("AWS:currenttime").is_some());
            assert!(c.get_lower("aws:currenttime").is_some());
        });
        assert_eq!(counted.count_total, 0);
    }

    proptest::proptest! {
        /// Any ASCII case of any key (longer than the hashing chunk too) finds it, and a key
        /// that differs in anything but case does not.
        #[test]
        fn any_spelling_finds_the_key(
            key in "[a-zA-Z0-9:/_-]{1,80}",
            flips in proptest::collection::vec(proptest::bool::ANY, 80),
            other in "[a-zA-Z0-9:/_-]{1,80}",
        ) {
            let mut c = Context::new();
            c.insert(&key, "v");
            let respelled: String = key
                .chars()
                .zip(flips.iter().chain(std::iter::repeat(&false)))
                .map(|(ch, &f)| if f { ch.to_ascii_uppercase() } else { ch.to_ascii_lowercase() })
                .collect();
            proptest::prop_assert!(c.get(&respelled).is_some());
            proptest::prop_assert_eq!(
                c.get(&other).is_some(),
                other.eq_ignore_ascii_case(&key)
            );
        }
    }
}
