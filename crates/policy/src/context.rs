//! The request context: condition keys and their values, looked up case-insensitively.
//!
//! "Condition key names are not case-sensitive"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html>).
//! Keys are lowercased once when inserted, so a lookup during a decision allocates nothing.

use std::borrow::Cow;
use std::collections::HashMap;

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

/// Condition keys of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Lowercased key → (the key as first spelled, its value). Keys given as `'static` strings
    /// are not copied.
    entries: HashMap<Cow<'static, str>, (Cow<'static, str>, ContextValue)>,
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
        self.entries.insert(
            Cow::Owned(key.to_ascii_lowercase()),
            (
                Cow::Owned(key.to_owned()),
                ContextValue::Single(value.into()),
            ),
        );
        self
    }

    /// [`Context::insert`] of a key named by a `'static` string (a key name in the code): the
    /// name is not copied, and its lowercase form only when it has capitals.
    pub fn insert_static(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        let lower = if key.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(key.to_ascii_lowercase())
        } else {
            Cow::Borrowed(key)
        };
        self.entries.insert(
            lower,
            (Cow::Borrowed(key), ContextValue::Single(value.into())),
        );
        self
    }

    /// Sets a multi-valued key.
    pub fn insert_multi(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.entries.insert(
            Cow::Owned(key.to_ascii_lowercase()),
            (Cow::Owned(key.to_owned()), ContextValue::Multi(values)),
        );
        self
    }

    /// Removes a key.
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key.to_ascii_lowercase().as_str());
    }

    /// Looks a key up by its lowercased name.
    pub fn get_lower(&self, key_lower: &str) -> Option<&ContextValue> {
        self.entries.get(key_lower).map(|(_, v)| v)
    }

    /// Looks a key up by any spelling.
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.get_lower(&key.to_ascii_lowercase())
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
}
