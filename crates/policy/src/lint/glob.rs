//! Containment of `*`/`?` patterns: whether every text one pattern matches, another matches too.
//!
//! Used to find redundant actions, resources and statements. The test is sound (a `true` is
//! always right) but not complete: `*?` covers `?*`, yet [`covers`] says no. A missed
//! redundancy only costs a suggestion.

/// Whether every text `inner` matches is matched by `outer` (`*` any run of characters, `?` one
/// character; `ignore_case` for actions, which compare case-insensitively).
pub fn covers(outer: &str, inner: &str, ignore_case: bool) -> bool {
    let a: Vec<char> = outer.chars().collect();
    let b: Vec<char> = inner.chars().collect();
    let same = |x: char, y: char| {
        if ignore_case {
            x.eq_ignore_ascii_case(&y)
        } else {
            x == y
        }
    };
    // reach[i][j]: outer[..i] can stand for inner[..j].
    let w = b.len() + 1;
    let mut reach = vec![false; (a.len() + 1) * w];
    let idx = |i: usize, j: usize| i * w + j;
    if let Some(r) = reach.get_mut(0) {
        *r = true;
    }
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            if !reach.get(idx(i, j)).copied().unwrap_or(false) {
                continue;
            }
            let mut set = |ii: usize, jj: usize| {
                if let Some(r) = reach.get_mut(idx(ii, jj)) {
                    *r = true;
                }
            };
            match (a.get(i).copied(), b.get(j).copied()) {
                (Some('*'), bj) => {
                    set(i + 1, j);
                    if bj.is_some() {
                        set(i, j + 1);
                    }
                }
                (Some('?'), Some(c)) if c != '*' => set(i + 1, j + 1),
                (Some(x), Some(y))
                    if x != '*' && x != '?' && y != '*' && y != '?' && same(x, y) =>
                {
                    set(i + 1, j + 1)
                }
                _ => {}
            }
        }
    }
    reach.get(idx(a.len(), b.len())).copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, text: &str) -> bool {
        crate::pattern::Pattern::wildcard(pattern, false).matches(text)
    }

    #[test]
    fn examples() {
        assert!(covers("s3:*", "s3:GetObject", true));
        assert!(covers("s3:Get*", "s3:GetObject*", true));
        assert!(covers("S3:GET*", "s3:getobject", true));
        assert!(!covers("s3:Get*", "s3:*", true));
        assert!(covers("arn:aws:s3:::b/*", "arn:aws:s3:::b/logs/*", false));
        assert!(!covers("arn:aws:s3:::b/*", "arn:aws:s3:::b", false));
        assert!(!covers("arn:aws:s3:::B/*", "arn:aws:s3:::b/x", false));
        assert!(covers("*", "", false));
        assert!(covers("a?c", "abc", false));
        assert!(!covers("a?c", "a*c", false));
        assert!(covers("a*c", "a?c", false));
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab/]{0,6}").unwrap()
    }

    fn pattern() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab/*?]{0,5}").unwrap()
    }

    /// Replaces each wildcard of `p` by text, giving a string `p` matches.
    fn instance(p: &str, fills: &[String]) -> String {
        let mut out = String::new();
        let mut k = 0;
        for c in p.chars() {
            let fill = fills
                .get(k % fills.len().max(1))
                .cloned()
                .unwrap_or_default();
            match c {
                '*' => {
                    out.push_str(&fill);
                    k += 1;
                }
                '?' => {
                    out.push(fill.chars().next().unwrap_or('a'));
                    k += 1;
                }
                c => out.push(c),
            }
        }
        out
    }

    proptest! {
        /// Soundness: when `outer` covers `inner`, every text `inner` matches, `outer` matches.
        #[test]
        fn covering_is_sound(outer in pattern(), inner in pattern(), fills in proptest::collection::vec(text(), 1..4)) {
            let s = instance(&inner, &fills);
            prop_assert!(matches(&inner, &s));
            if covers(&outer, &inner, false) {
                prop_assert!(matches(&outer, &s), "{outer} covers {inner} but not {s}");
            }
        }

        /// A literal is covered exactly when the pattern matches it.
        #[test]
        fn literals_are_covered_exactly_when_matched(outer in pattern(), s in text()) {
            prop_assert_eq!(covers(&outer, &s, false), matches(&outer, &s));
        }

        /// Every pattern covers itself.
        #[test]
        fn covering_is_reflexive(p in pattern()) {
            prop_assert!(covers(&p, &p, false));
        }
    }
}
