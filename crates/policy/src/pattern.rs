//! Wildcard patterns (`*`, `?` per character), policy-variable templates and ARN matching.
//!
//! Matching is linear in practice and never backtracks exponentially: a pattern is split at `*`
//! into segments; the first is anchored at the start, the last at the end, and each middle
//! segment is placed at its leftmost occurrence (greedy leftmost placement is optimal for
//! `*`-separated segments). The cost is bounded by input length × pattern length.
//!
//! Rules (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html>,
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html>):
//! `?` matches exactly one character (not byte); `*` matches any run, including `/` and `:`
//! within an ARN's resource part; the first five ARN segments are matched one by one.
//! `${key}` is replaced by the request's value of `key` (literally: a `*` in the value is not a
//! wildcard); `${*}`, `${?}`, `${$}` are the literal characters; `${key, 'default'}` supplies a
//! default for a missing key.

use std::fmt;

/// Supplies values for policy variables (keys are given lowercased).
pub trait Resolver {
    /// The single value of a context key, looked up by its lowercased name.
    fn resolve(&self, key_lower: &str) -> Option<&str>;
}

/// A resolver with no values (for patterns without variables).
pub struct NoVariables;

impl Resolver for NoVariables {
    fn resolve(&self, _key_lower: &str) -> Option<&str> {
        None
    }
}

/// A `${...}` policy variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The context key, lowercased.
    pub key: String,
    /// The default value from `${key, 'default'}`.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Lit(String),
    One,
    Var(Variable),
}

/// Why a pattern or template is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A compiled pattern: literal text, `?`, `*` and (optionally) policy variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The whole pattern when it is plain text (then `segments` is empty).
    exact: Option<Box<str>>,
    /// `*`-separated segments; exactly one when the pattern has no `*`.
    segments: Vec<Vec<Atom>>,
    /// Case-insensitive (ASCII) matching.
    ignore_case: bool,
    /// The pattern is `*` alone.
    match_all: bool,
}

/// How to read the text of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    /// `*` and `?` are wildcards (else literal characters).
    pub wildcards: bool,
    /// `${...}` is a policy variable (else literal text).
    pub variables: bool,
    /// Compare ASCII letters case-insensitively.
    pub ignore_case: bool,
}

fn push_lit(seg: &mut Vec<Atom>, s: &str) {
    if let Some(Atom::Lit(prev)) = seg.last_mut() {
        prev.push_str(s);
    } else {
        seg.push(Atom::Lit(s.to_owned()));
    }
}

/// Checks `${...}` syntax in `text` without building a pattern.
pub fn validate_variables(text: &str) -> Result<(), TemplateError> {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let body = rest.get(start + 2..).unwrap_or_default();
        let end = body
            .find('}')
            .ok_or_else(|| TemplateError(format!("unterminated policy variable in `{text}`")))?;
        let inner = body.get(..end).unwrap_or_default();
        check_variable(inner)?;
        rest = body.get(end + 1..).unwrap_or_default();
    }
    Ok(())
}

/// The context keys named by the `${...}` policy variables in `text`, as written and in order.
/// `${*}`, `${?}` and `${$}` are escapes, not keys; a default (`${key, 'default'}`) is not part
/// of the key. Malformed variables are skipped: the parser rejects them before this is asked.
pub fn variable_keys(text: &str) -> Vec<&str> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let body = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = body.find('}') else { break };
        let inner = body.get(..end).unwrap_or_default().trim();
        let name = inner.split_once(',').map_or(inner, |(n, _)| n).trim();
        if !matches!(name, "" | "*" | "?" | "$") {
            keys.push(name);
        }
        rest = body.get(end + 1..).unwrap_or_default();
    }
    keys
}

fn check_variable(inner: &str) -> Result<(), TemplateError> {
    let trimmed = inner.trim();
    if matches!(trimmed, "*" | "?" | "$") {
        return Ok(());
    }
    let name = match trimmed.split_once(',') {
        None => trimmed,
        Some((name, rest)) => {
            let rest = rest.trim();
            if rest.len() < 2 || !rest.starts_with('\'') || !rest.ends_with('\'') {
                return Err(TemplateError(format!(
                    "invalid default in `${{{inner}}}`; expected `${{key, 'default'}}`"
                )));
            }
            name.trim()
        }
    };
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '$' || c == '{') {
        return Err(TemplateError(format!(
            "invalid policy variable `${{{inner}}}`; expected `${{service:key}}`"
        )));
    }
    Ok(())
}

/// Parses the inside of `${...}`.
fn parse_variable(inner: &str) -> Result<Result<Variable, char>, TemplateError> {
    check_variable(inner)?;
    let trimmed = inner.trim();
    match trimmed {
        "*" => return Ok(Err('*')),
        "?" => return Ok(Err('?')),
        "$" => return Ok(Err('$')),
        _ => {}
    }
    let (name, default) = match trimmed.split_once(',') {
        None => (trimmed, None),
        Some((name, rest)) => {
            let rest = rest.trim();
            let d = rest
                .strip_prefix('\'')
                .and_then(|r| r.strip_suffix('\''))
                .ok_or_else(|| {
                    TemplateError(format!(
                        "invalid default in `${{{inner}}}`; expected `${{key, 'default'}}`"
                    ))
                })?;
            (name.trim(), Some(d.to_owned()))
        }
    };
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '$' || c == '{') {
        return Err(TemplateError(format!(
            "invalid policy variable `${{{inner}}}`; expected `${{service:key}}`"
        )));
    }
    Ok(Ok(Variable {
        key: name.to_ascii_lowercase(),
        default,
    }))
}

impl Pattern {
    /// Compiles `text` under `syntax`.
    pub fn new(text: &str, syntax: Syntax) -> Result<Self, TemplateError> {
        let special = |c: char| {
            (syntax.wildcards && (c == '*' || c == '?')) || (syntax.variables && c == '$')
        };
        if !text.contains(special) {
            let lit = if syntax.ignore_case {
                text.to_ascii_lowercase()
            } else {
                text.to_owned()
            };
            return Ok(Self {
                exact: Some(lit.into_boxed_str()),
                segments: Vec::new(),
                ignore_case: syntax.ignore_case,
                match_all: false,
            });
        }
        let mut segments = vec![Vec::new()];
        let mut rest = text;
        let mut buf = [0u8; 4];
        while !rest.is_empty() {
            let Some(i) = rest.find(special) else {
                if let Some(seg) = segments.last_mut() {
                    push_lit(seg, rest);
                }
                break;
            };
            let seg = segments
                .last_mut()
                .ok_or_else(|| TemplateError("internal".into()))?;
            if i > 0 {
                push_lit(seg, rest.get(..i).unwrap_or_default());
            }
            let after = rest.get(i + 1..).unwrap_or_default();
            if rest.get(i..).is_some_and(|r| r.starts_with('$')) {
                if let Some(body) = after.strip_prefix('{') {
                    let end = body.find('}').ok_or_else(|| {
                        TemplateError(format!("unterminated policy variable in `{text}`"))
                    })?;
                    let inner = body.get(..end).unwrap_or_default();
                    match parse_variable(inner)? {
                        Ok(v) => seg.push(Atom::Var(v)),
                        Err(lit) => push_lit(seg, lit.encode_utf8(&mut buf)),
                    }
                    rest = body.get(end + 1..).unwrap_or_default();
                } else {
                    push_lit(seg, "$");
                    rest = after;
                }
                continue;
            }
            if rest.get(i..).is_some_and(|r| r.starts_with('*')) {
                segments.push(Vec::new());
            } else {
                seg.push(Atom::One);
            }
            rest = after;
        }
        if syntax.ignore_case {
            for seg in &mut segments {
                for a in seg {
                    if let Atom::Lit(s) = a {
                        s.make_ascii_lowercase();
                    }
                }
            }
        }
        let match_all = segments.len() == 2 && segments.iter().all(Vec::is_empty);
        Ok(Self {
            exact: None,
            segments,
            ignore_case: syntax.ignore_case,
            match_all,
        })
    }

    /// A wildcard pattern without variables.
    pub fn wildcard(text: &str, ignore_case: bool) -> Self {
        // INVARIANT: without variables no syntax error is possible.
        Self::new(
            text,
            Syntax {
                wildcards: true,
                variables: false,
                ignore_case,
            },
        )
        .unwrap_or(Self {
            exact: Some(text.into()),
            segments: Vec::new(),
            ignore_case,
            match_all: false,
        })
    }

    /// Whether the pattern has `*` or `?` wildcards.
    pub fn has_wildcards(&self) -> bool {
        self.segments.len() > 1
            || self
                .segments
                .iter()
                .flatten()
                .any(|a| matches!(a, Atom::One))
    }

    /// The policy variables the pattern uses.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.segments.iter().flatten().filter_map(|a| match a {
            Atom::Var(v) => Some(v),
            _ => None,
        })
    }

    /// The pattern with every variable whose key `unknown` names taken as `*`, so it matches
    /// every input the pattern matches for some value of those variables (an upper bound, for
    /// `Context::assume_unknown`). Variables with a default are widened too.
    pub fn widened(&self, unknown: &dyn Fn(&str) -> bool) -> Pattern {
        if self.exact.is_some() || self.match_all {
            return self.clone();
        }
        let mut segments: Vec<Vec<Atom>> = Vec::with_capacity(self.segments.len() + 1);
        for seg in &self.segments {
            segments.push(Vec::new());
            for atom in seg {
                match atom {
                    Atom::Var(v) if unknown(&v.key) => segments.push(Vec::new()),
                    other => {
                        if let Some(last) = segments.last_mut() {
                            last.push(other.clone());
                        }
                    }
                }
            }
        }
        Pattern {
            exact: None,
            segments,
            ignore_case: self.ignore_case,
            match_all: false,
        }
    }

    /// The literal text when the pattern has no wildcards and no variables.
    pub fn as_literal(&self) -> Option<&str> {
        if let Some(e) = &self.exact {
            return Some(e);
        }
        match self.segments.as_slice() {
            [seg] => match seg.as_slice() {
                [] => Some(""),
                [Atom::Lit(s)] => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether every variable without a default has a value in `res`.
    pub fn resolvable(&self, res: &dyn Resolver) -> bool {
        self.segments.iter().flatten().all(|a| match a {
            Atom::Var(v) => v.default.is_some() || res.resolve(&v.key).is_some(),
            _ => true,
        })
    }

    /// Matches without variable values (variables then only match through their default).
    pub fn matches(&self, input: &str) -> bool {
        self.matches_with(input, &NoVariables)
    }

    /// Matches `input`, substituting variables from `res`. An unresolvable variable without a
    /// default makes the pattern match nothing.
    pub fn matches_with(&self, input: &str, res: &dyn Resolver) -> bool {
        if self.match_all {
            return true;
        }
        if let Some(e) = &self.exact {
            return if self.ignore_case {
                input.eq_ignore_ascii_case(e)
            } else {
                input == &**e
            };
        }
        let Some((first, rest)) = self.segments.split_first() else {
            return input.is_empty();
        };
        let Some((last, middle)) = rest.split_last() else {
            return self.seg_at(first, input, 0, res) == Some(input.len());
        };
        let Some(mut pos) = self.seg_at(first, input, 0, res) else {
            return false;
        };
        let Some(last_chars) = self.seg_chars(last, res) else {
            return false;
        };
        let last_start = if last_chars == 0 {
            input.len()
        } else {
            match input.char_indices().rev().nth(last_chars - 1) {
                Some((i, _)) => i,
                None => return false,
            }
        };
        if last_start < pos || self.seg_at(last, input, last_start, res) != Some(input.len()) {
            return false;
        }
        let window = input.get(..last_start).unwrap_or_default();
        for seg in middle {
            if seg.is_empty() {
                continue;
            }
            let mut found = None;
            let mut i = pos;
            while i <= window.len() {
                if let Some(end) = self.seg_at(seg, window, i, res) {
                    found = Some(end);
                    break;
                }
                match window.get(i..).and_then(|s| s.chars().next()) {
                    Some(c) => i += c.len_utf8(),
                    None => break,
                }
            }
            match found {
                Some(end) => pos = end,
                None => return false,
            }
        }
        true
    }

    fn resolve<'a>(v: &'a Variable, res: &'a dyn Resolver) -> Option<&'a str> {
        res.resolve(&v.key).or(v.default.as_deref())
    }

    /// Number of characters the segment consumes, `None` if a variable is unresolvable.
    fn seg_chars(&self, seg: &[Atom], res: &dyn Resolver) -> Option<usize> {
        let mut n = 0;
        for a in seg {
            n += match a {
                Atom::Lit(s) => s.chars().count(),
                Atom::One => 1,
                Atom::Var(v) => Self::resolve(v, res)?.chars().count(),
            };
        }
        Some(n)
    }

    fn lit_at(&self, lit: &str, input: &str, pos: usize) -> Option<usize> {
        let end = pos.checked_add(lit.len())?;
        let got = input.get(pos..end)?;
        let ok = if self.ignore_case {
            got.eq_ignore_ascii_case(lit)
        } else {
            got == lit
        };
        ok.then_some(end)
    }

    /// Matches `seg` at byte `pos` of `input`, returning the end position.
    fn seg_at(&self, seg: &[Atom], input: &str, pos: usize, res: &dyn Resolver) -> Option<usize> {
        let mut p = pos;
        for a in seg {
            p = match a {
                Atom::Lit(s) => self.lit_at(s, input, p)?,
                Atom::One => p + input.get(p..)?.chars().next()?.len_utf8(),
                Atom::Var(v) => self.lit_at(Self::resolve(v, res)?, input, p)?,
            };
        }
        Some(p)
    }
}

/// Splits an ARN into its six colon-separated parts (the last keeps any further colons).
pub fn split_arn(arn: &str) -> Option<[&str; 6]> {
    let mut it = arn.splitn(6, ':');
    let parts = [
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    ];
    Some(parts)
}

/// Splits on `:` outside `${...}`, into at most six parts.
fn split_arn_template(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes.get(i - 1) == Some(&b'$') => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b':' if depth == 0 && parts.len() < 5 => {
                parts.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

/// A compiled ARN pattern (for `Resource` and the `Arn*` condition operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArnPattern {
    /// `*`: every resource.
    Any,
    /// The first five segments are plain text: one prefix (ending with the fifth colon) and
    /// a pattern for the resource part.
    Prefixed {
        /// `arn:partition:service:region:account:`.
        prefix: Box<str>,
        /// The resource part.
        rest: Pattern,
    },
    /// Six per-segment patterns.
    Parts(Box<[Pattern; 6]>),
}

impl ArnPattern {
    /// Compiles an ARN pattern; `text` must be `*` or have six colon-separated parts.
    pub fn new(text: &str, variables: bool, wildcards: bool) -> Result<Self, TemplateError> {
        if text == "*" && wildcards {
            return Ok(ArnPattern::Any);
        }
        let parts = split_arn_template(text);
        let syntax = Syntax {
            wildcards,
            variables,
            ignore_case: false,
        };
        match parts.as_slice() {
            [a, b, c, d, e, f] => {
                if *a != "arn" && !(wildcards && a.contains(['*', '?'])) {
                    return Err(TemplateError(format!("`{text}` is not an ARN; expected `arn:partition:service:region:account:resource` or `*`")));
                }
                let special = |p: &str| p.contains(['*', '?']) || (variables && p.contains('$'));
                if wildcards && ![a, b, c, d, e].iter().any(|p| special(p)) {
                    // Fast path: plain first five segments need no matchers of their own.
                    let prefix = format!("{a}:{b}:{c}:{d}:{e}:");
                    return Ok(ArnPattern::Prefixed { prefix: prefix.into(), rest: Pattern::new(f, syntax)? });
                }
                let pats = [
                    Pattern::new(a, syntax)?,
                    Pattern::new(b, syntax)?,
                    Pattern::new(c, syntax)?,
                    Pattern::new(d, syntax)?,
                    Pattern::new(e, syntax)?,
                    Pattern::new(f, syntax)?,
                ];
                let prefix: Option<String> = pats
                    .iter()
                    .take(5)
                    .map(Pattern::as_literal)
                    .collect::<Option<Vec<&str>>>()
                    .map(|lits| format!("{}:", lits.join(":")));
                match prefix {
                    Some(prefix) => {
                        let [.., rest] = pats;
                        Ok(ArnPattern::Prefixed { prefix: prefix.into(), rest })
                    }
                    None => Ok(ArnPattern::Parts(Box::new(pats))),
                }
            }
            _ => Err(TemplateError(format!(
                "`{text}` is not an ARN; expected `arn:partition:service:region:account:resource` or `*`"
            ))),
        }
    }

    /// Checks that `text` would compile, without building the pattern.
    pub fn validate(text: &str, variables: bool, wildcards: bool) -> Result<(), TemplateError> {
        if text == "*" && wildcards {
            return Ok(());
        }
        let not_arn = || {
            TemplateError(format!(
                "`{text}` is not an ARN; expected `arn:partition:service:region:account:resource` or `*`"
            ))
        };
        let mut depth = 0usize;
        let mut colons = 0;
        let mut first_end = None;
        let bytes = text.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'{' if i > 0 && bytes.get(i - 1) == Some(&b'$') => depth += 1,
                b'}' if depth > 0 => depth -= 1,
                b':' if depth == 0 && colons < 5 => {
                    colons += 1;
                    first_end = first_end.or(Some(i));
                }
                _ => {}
            }
        }
        if colons < 5 {
            return Err(not_arn());
        }
        let first = text.get(..first_end.unwrap_or(0)).unwrap_or_default();
        if first != "arn" && !(wildcards && first.contains(['*', '?'])) {
            return Err(not_arn());
        }
        if variables {
            validate_variables(text)?;
        }
        Ok(())
    }

    /// Matches a request ARN.
    pub fn matches_with(&self, arn: &str, res: &dyn Resolver) -> bool {
        match self {
            ArnPattern::Any => true,
            ArnPattern::Prefixed { prefix, rest } => match arn.strip_prefix(&**prefix) {
                // INVARIANT: `prefix` holds exactly five colons and its segments none, so the
                // request's first five segments equal the pattern's and the rest is the sixth.
                Some(tail) => rest.matches_with(tail, res),
                None => false,
            },
            ArnPattern::Parts(pats) => {
                let Some(parts) = split_arn(arn) else {
                    return false;
                };
                pats.iter().zip(parts).all(|(p, s)| p.matches_with(s, res))
            }
        }
    }

    /// Whether every variable without a default has a value in `res`.
    pub fn resolvable(&self, res: &dyn Resolver) -> bool {
        match self {
            ArnPattern::Any => true,
            ArnPattern::Prefixed { rest, .. } => rest.resolvable(res),
            ArnPattern::Parts(p) => p.iter().all(|p| p.resolvable(res)),
        }
    }

    /// The policy variables the pattern uses.
    pub fn variables(&self) -> Vec<&Variable> {
        match self {
            ArnPattern::Any => Vec::new(),
            ArnPattern::Prefixed { rest, .. } => rest.variables().collect(),
            ArnPattern::Parts(p) => p.iter().flat_map(Pattern::variables).collect(),
        }
    }

    /// [`Pattern::widened`] for each part.
    pub fn widened(&self, unknown: &dyn Fn(&str) -> bool) -> ArnPattern {
        match self {
            ArnPattern::Any => ArnPattern::Any,
            ArnPattern::Prefixed { prefix, rest } => ArnPattern::Prefixed {
                prefix: prefix.clone(),
                rest: rest.widened(unknown),
            },
            ArnPattern::Parts(p) => {
                ArnPattern::Parts(Box::new(p.clone().map(|x| x.widened(unknown))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    struct Map(HashMap<String, String>);
    impl Resolver for Map {
        fn resolve(&self, key_lower: &str) -> Option<&str> {
            self.0.get(key_lower).map(String::as_str)
        }
    }

    fn w(p: &str) -> Pattern {
        Pattern::wildcard(p, false)
    }

    #[test]
    fn basics() {
        assert!(w("*").matches(""));
        assert!(w("*").matches("anything/at:all"));
        assert!(w("").matches(""));
        assert!(!w("").matches("a"));
        assert!(w("a*b").matches("ab"));
        assert!(w("a*b").matches("axxb"));
        assert!(!w("a*b").matches("axxbc"));
        assert!(w("a?c").matches("abc"));
        assert!(!w("a?c").matches("ac"));
        assert!(w("*a*a").matches("aa"));
        assert!(!w("*a*a").matches("a"));
        assert!(w("**").matches("x"));
        assert!(w("a**b?").matches("abc"));
    }

    #[test]
    fn question_mark_is_one_character_not_byte() {
        assert!(w("caf?").matches("café"));
        assert!(!w("caf??").matches("café"));
        assert!(w("?").matches("😀"));
        assert!(w("*?").matches("😀"));
        assert!(!w("??").matches("😀"));
    }

    #[test]
    fn case_rules() {
        let p = Pattern::wildcard("s3:Get*", true);
        assert!(p.matches("S3:GETOBJECT"));
        assert!(p.matches("s3:getobject"));
        assert!(!Pattern::wildcard("Bucket/*", false).matches("bucket/x"));
    }

    #[test]
    fn hostile_pattern_is_fast() {
        let p = w("*a*a*a*a*a*a*a*a*a*a*a*a*b");
        let input = "a".repeat(1024);
        let start = std::time::Instant::now();
        for _ in 0..100 {
            assert!(!p.matches(&input));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn variables_and_specials() {
        let syn = Syntax {
            wildcards: true,
            variables: true,
            ignore_case: false,
        };
        let p = Pattern::new("home/${aws:username}/*", syn).unwrap();
        let mut m = HashMap::new();
        m.insert("aws:username".to_owned(), "alice".to_owned());
        let r = Map(m);
        assert!(p.matches_with("home/alice/x", &r));
        assert!(!p.matches_with("home/bob/x", &r));
        assert!(!p.matches_with("home/alice/x", &NoVariables));
        let lit = Pattern::new("a${*}b${?}${$}", syn).unwrap();
        assert!(lit.matches("a*b?$"));
        assert!(!lit.matches("axb?$"));
        let d = Pattern::new("${aws:PrincipalTag/team, 'none'}", syn).unwrap();
        assert!(d.matches("none"));
        assert!(!d.matches("x"));
        // a `*` inside a variable value is literal
        let mut m2 = HashMap::new();
        m2.insert("aws:username".to_owned(), "*".to_owned());
        assert!(!p.matches_with("home/alice/x", &Map(m2)));
        assert!(Pattern::new("${aws:username", syn).is_err());
        assert!(Pattern::new("${aws:username, default}", syn).is_err());
        // without variables, `${` is text
        let plain = Pattern::new(
            "${x}",
            Syntax {
                variables: false,
                ..syn
            },
        )
        .unwrap();
        assert!(plain.matches("${x}"));
    }

    #[test]
    fn arn_segments() {
        let p = ArnPattern::new("arn:aws:s3:::bucket/*", false, true).unwrap();
        assert!(p.matches_with("arn:aws:s3:::bucket/a/b:c", &NoVariables));
        assert!(!p.matches_with("arn:aws:s3:::bucket2/a", &NoVariables));
        let p = ArnPattern::new("arn:aws:iam::*:role/x", false, true).unwrap();
        assert!(p.matches_with("arn:aws:iam::123456789012:role/x", &NoVariables));
        // `*` in one segment does not cross into the next
        let p = ArnPattern::new("arn:aws:*:role/x:::", false, true).unwrap();
        assert!(!p.matches_with("arn:aws:iam::123:role/x", &NoVariables));
        assert!(ArnPattern::new("bucket/*", false, true).is_err());
        let p = ArnPattern::new("arn:aws:s3:::${aws:username}/*", true, true).unwrap();
        assert_eq!(p.variables().len(), 1);
    }

    fn to_regex(p: &str) -> regex::Regex {
        let mut s = String::from("^");
        for c in p.chars() {
            match c {
                '*' => s.push_str("(?s:.*)"),
                '?' => s.push_str("(?s:.)"),
                c => s.push_str(&regex::escape(&c.to_string())),
            }
        }
        s.push('$');
        regex::Regex::new(&s).unwrap()
    }

    proptest! {
        #[test]
        fn agrees_with_regex(p in "[ab*?é]{0,8}", s in "[abé]{0,12}") {
            prop_assert_eq!(w(&p).matches(&s), to_regex(&p).is_match(&s), "pattern {:?} input {:?}", p, s);
        }

        #[test]
        fn agrees_with_regex_wide(p in "[a-c/:*?]{0,10}", s in "[a-c/:]{0,20}") {
            prop_assert_eq!(w(&p).matches(&s), to_regex(&p).is_match(&s));
        }
    }
}
