//! Condition operators: compilation of policy values and evaluation against a request context.
//!
//! Semantics follow
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>
//! and <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html>:
//!
//! - several values for one key are ORed; a negated operator is true only when *no* value
//!   matches ("NOT any");
//! - a key missing from the request makes a positive operator false and a negated operator true;
//!   `...IfExists` makes a missing key true; `Null` tests presence;
//! - `ForAnyValue:` is true when some request value satisfies the operator (false for a missing
//!   or empty key); `ForAllValues:` when every request value does (true for a missing or empty
//!   key);
//! - "multivalued context keys require a condition set operator": without one, a condition on
//!   a key the request gives as a list (even an empty one) does not match, for positive and
//!   negated operators alike (the behaviour of iam-simulate; AWS documents no other);
//! - `...IfExists` makes a missing key true also under `ForAnyValue:`/`ForAllValues:`;
//! - a request value that cannot be read as the operator's type (a non-number for `Numeric*`,
//!   a non-address for `IpAddress`) matches no policy value.

pub mod arn;
pub mod binary;
pub mod boolean;
pub mod date;
pub mod ip;
pub mod numeric;
pub mod string;

use crate::context::{Context, ContextValue};
use crate::model::{Condition, Family, Operator, SetQualifier};
use crate::pattern::{ArnPattern, Pattern, Resolver};
use date::Instant;
use ip::Cidr;

/// Compiled policy values of one condition.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    Str(Vec<Pattern>),
    Num(Vec<f64>),
    Date(Vec<Instant>),
    Bool(Vec<Option<bool>>),
    Bin(Vec<Vec<u8>>),
    Ip(Vec<Cidr>),
    Arn(Vec<ArnPattern>),
    Null(Vec<Option<bool>>),
}

/// A condition ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledCondition {
    operator: Operator,
    key: String,
    key_lower: String,
    values: Values,
}

/// A policy value that does not fit its operator: the index of the value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Index of the offending value in the condition's value list.
    pub index: usize,
    /// The value as written.
    pub value: String,
    /// What would be valid.
    pub expected: String,
}

fn all<T>(
    vals: &[&str],
    expected: &str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, ValueError> {
    vals.iter()
        .enumerate()
        .map(|(index, v)| {
            f(v).ok_or_else(|| ValueError {
                index,
                value: (*v).to_owned(),
                expected: expected.to_owned(),
            })
        })
        .collect()
}

impl CompiledCondition {
    /// Compiles `cond`; `variables` enables `${...}` in string and ARN values.
    pub fn compile(cond: &Condition, variables: bool) -> Result<Self, ValueError> {
        let texts: Vec<&str> = cond.values.iter().map(|v| v.as_text()).collect();
        Self::compile_texts(cond.operator, &cond.key, &texts, variables)
    }

    /// Compiles an operator, key and value texts.
    pub fn compile_texts(
        operator: Operator,
        key: &str,
        texts: &[&str],
        variables: bool,
    ) -> Result<Self, ValueError> {
        let values = match operator.kind.family() {
            Family::String => Values::Str(string::compile(operator.kind, texts, variables)?),
            Family::Arn => Values::Arn(arn::compile(texts, variables)?),
            Family::Numeric => Values::Num(all(texts, "a number", numeric::parse_number)?),
            Family::Date => Values::Date(all(
                texts,
                "an ISO 8601 date such as `2025-07-16T01:00:00Z` or epoch seconds",
                date::parse_date,
            )?),
            Family::Ip => Values::Ip(all(
                texts,
                "an IPv4 or IPv6 address or CIDR range",
                Cidr::parse,
            )?),
            Family::Binary => Values::Bin(all(texts, "base64-encoded bytes", binary::decode)?),
            Family::Null => Values::Null(all(texts, "`true` or `false`", |s| {
                boolean::parse(s).map(Some)
            })?),
            // AWS accepts any string for `Bool`; one that is not `true`/`false` matches nothing.
            Family::Bool => Values::Bool(texts.iter().map(|s| boolean::parse(s)).collect()),
        };
        Ok(Self {
            operator,
            key: key.to_owned(),
            key_lower: key.to_ascii_lowercase(),
            values,
        })
    }

    /// Checks values for `operator` without building matchers (used by the parser).
    pub fn validate_texts(
        operator: Operator,
        texts: &[&str],
        variables: bool,
    ) -> Result<(), ValueError> {
        let fail = |index: usize, value: &str, expected: String| ValueError {
            index,
            value: value.to_owned(),
            expected,
        };
        for (index, v) in texts.iter().enumerate() {
            let ok = match operator.kind.family() {
                Family::String => match variables {
                    true => crate::pattern::validate_variables(v).map_err(|e| fail(index, v, e.0)),
                    false => Ok(()),
                },
                Family::Arn => ArnPattern::validate(v, variables, true).map_err(|e| {
                    fail(
                        index,
                        v,
                        format!("an ARN with six colon-separated parts or `*` ({e})"),
                    )
                }),
                Family::Bool => Ok(()),
                _ => {
                    // Numeric, date, IP, binary and null values: compile the one value.
                    Self::compile_texts(operator, "", &[v], false)
                        .map(|_| ())
                        .map_err(|e| ValueError { index, ..e })
                }
            };
            ok?;
        }
        Ok(())
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The context key as written in the policy.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The context key, lowercased.
    pub fn key_lower(&self) -> &str {
        &self.key_lower
    }

    /// Context keys named by policy variables in the values (lowercased).
    pub fn variable_keys(&self) -> Vec<&str> {
        match &self.values {
            Values::Str(p) => p
                .iter()
                .flat_map(Pattern::variables)
                .map(|v| v.key.as_str())
                .collect(),
            Values::Arn(p) => p
                .iter()
                .flat_map(ArnPattern::variables)
                .map(|v| v.key.as_str())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether every policy variable in the values (without a default) has a value in `ctx`.
    pub fn variables_resolvable(&self, ctx: &Context) -> bool {
        match &self.values {
            Values::Str(p) => p.iter().all(|p| p.resolvable(ctx)),
            Values::Arn(p) => p.iter().all(|p| p.resolvable(ctx)),
            _ => true,
        }
    }

    /// Whether any policy value matches request value `v` under the positive form of the
    /// operator.
    fn any_matches(&self, v: &str, ctx: &Context) -> bool {
        let kind = self.operator.kind;
        match &self.values {
            Values::Str(pats) => pats.iter().any(|p| p.matches_with(v, ctx as &dyn Resolver)),
            Values::Arn(pats) => pats.iter().any(|p| p.matches_with(v, ctx as &dyn Resolver)),
            Values::Num(ns) => match numeric::parse_number(v) {
                Some(r) => ns.iter().any(|&p| numeric::compare(kind, r, p)),
                None => false,
            },
            Values::Date(ds) => match date::parse_date(v) {
                Some(r) => ds.iter().any(|&p| date::compare(kind, r, p)),
                None => false,
            },
            Values::Ip(cs) => cs.iter().any(|c| c.contains_str(v)),
            Values::Bool(bs) => match boolean::parse(v) {
                Some(r) => bs.contains(&Some(r)),
                None => false,
            },
            // "compares the value of the specified key byte for byte against a base-64 encoded
            // representation of the binary value in the policy": the policy's values are
            // decoded (when compiled), the request's are its bytes as they are.
            Values::Bin(bs) => bs.iter().any(|b| b.as_slice() == v.as_bytes()),
            Values::Null(_) => false,
        }
    }

    /// Evaluates the condition. Returns whether it holds and whether the key was missing.
    pub fn evaluate(&self, ctx: &Context) -> (bool, bool) {
        let entry = ctx.get_lower(&self.key_lower);
        let vals: &[String] = entry.map_or(&[], ContextValue::values);
        let absent = vals.is_empty();
        if let Values::Null(ps) = &self.values {
            // `"Null": {"k": "true"}` holds when the key is absent (or an empty set).
            return (ps.contains(&Some(absent)), false);
        }
        let multi = matches!(entry, Some(ContextValue::Multi(_)));
        if multi && self.operator.set.is_none() {
            // "Multivalued context keys require a condition set operator": without one the
            // condition does not match, whatever the operator (as iam-simulate decides too).
            return (false, false);
        }
        if absent {
            let holds = if self.operator.if_exists {
                true
            } else {
                match self.operator.set {
                    Some(SetQualifier::ForAllValues) => true,
                    Some(SetQualifier::ForAnyValue) => false,
                    None => self.operator.kind.is_negated(),
                }
            };
            return (holds, entry.is_none());
        }
        let negated = self.operator.kind.is_negated();
        let pred = |v: &String| self.any_matches(v, ctx) != negated;
        let holds = match self.operator.set {
            Some(SetQualifier::ForAnyValue) => vals.iter().any(pred),
            Some(SetQualifier::ForAllValues) => vals.iter().all(pred),
            None => vals.iter().any(pred),
        };
        (holds, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(op: &str, key: &str, vals: &[&str]) -> CompiledCondition {
        CompiledCondition::compile_texts(Operator::parse(op).unwrap(), key, vals, true).unwrap()
    }

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        let mut c = Context::new();
        for (k, v) in pairs {
            c.insert(k, *v);
        }
        c
    }

    #[test]
    fn string_family() {
        let c = ctx(&[("aws:username", "Alice")]);
        assert!(
            cond("StringEquals", "aws:username", &["Alice"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("StringEquals", "aws:username", &["alice"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond("StringEqualsIgnoreCase", "aws:username", &["alice"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond("StringNotEquals", "aws:username", &["bob", "carol"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("StringNotEquals", "aws:username", &["bob", "Alice"])
                .evaluate(&c)
                .0
        );
        assert!(cond("StringLike", "aws:username", &["A*"]).evaluate(&c).0);
        assert!(!cond("StringEquals", "aws:username", &["A*"]).evaluate(&c).0);
        assert!(
            cond("StringNotLike", "aws:username", &["B*"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond("StringNotEqualsIgnoreCase", "aws:username", &["bob"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("StringNotEqualsIgnoreCase", "aws:username", &["ALICE"])
                .evaluate(&c)
                .0
        );
    }

    #[test]
    fn missing_keys() {
        let c = Context::new();
        assert_eq!(
            cond("StringEquals", "k:x", &["a"]).evaluate(&c),
            (false, true)
        );
        assert_eq!(
            cond("StringNotEquals", "k:x", &["a"]).evaluate(&c),
            (true, true)
        );
        assert_eq!(
            cond("StringEqualsIfExists", "k:x", &["a"]).evaluate(&c),
            (true, true)
        );
        assert!(
            cond("ForAllValues:StringEquals", "k:x", &["a"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("ForAnyValue:StringEquals", "k:x", &["a"])
                .evaluate(&c)
                .0
        );
        assert!(cond("Null", "k:x", &["true"]).evaluate(&c).0);
        assert!(!cond("Null", "k:x", &["false"]).evaluate(&c).0);
    }

    #[test]
    fn keys_case_insensitive() {
        let c = ctx(&[("AWS:SourceIP", "10.0.0.1")]);
        assert!(
            cond("IpAddress", "aws:sourceip", &["10.0.0.0/8"])
                .evaluate(&c)
                .0
        );
    }

    #[test]
    fn set_qualifiers() {
        let mut c = Context::new();
        c.insert_multi("aws:TagKeys", vec!["a".into(), "b".into()]);
        assert!(
            cond("ForAllValues:StringEquals", "aws:TagKeys", &["a", "b", "c"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("ForAllValues:StringEquals", "aws:TagKeys", &["a"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond("ForAnyValue:StringEquals", "aws:TagKeys", &["b"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("ForAnyValue:StringEquals", "aws:TagKeys", &["z"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond("ForAnyValue:StringNotEquals", "aws:TagKeys", &["a"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("ForAllValues:StringNotEquals", "aws:TagKeys", &["a"])
                .evaluate(&c)
                .0
        );
        // Without a set operator a multi-valued key matches nothing.
        assert!(
            !cond("StringEquals", "aws:TagKeys", &["a", "b"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("StringNotEquals", "aws:TagKeys", &["z"])
                .evaluate(&c)
                .0
        );
        assert!(!cond("StringLike", "aws:TagKeys", &["*"]).evaluate(&c).0);
        c.insert_multi("aws:TagKeys", vec![]);
        assert!(
            !cond("StringNotEquals", "aws:TagKeys", &["z"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond("ForAllValues:StringEquals", "aws:TagKeys", &["a"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("ForAnyValue:StringEquals", "aws:TagKeys", &["a"])
                .evaluate(&c)
                .0
        );
    }

    #[test]
    fn numeric_date_bool_binary_ip_arn() {
        let c = ctx(&[
            ("s3:max-keys", "10"),
            ("aws:CurrentTime", "2025-07-16T02:00:00Z"),
            ("aws:SecureTransport", "true"),
            ("k:bin", "hello"),
            ("aws:SourceIp", "203.0.113.42"),
            ("aws:SourceArn", "arn:aws:sns:us-east-1:123456789012:topic"),
        ]);
        assert!(
            cond("NumericLessThanEquals", "s3:max-keys", &["10"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("NumericLessThan", "s3:max-keys", &["10"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond("NumericNotEquals", "s3:max-keys", &["11"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond(
                "DateGreaterThan",
                "aws:CurrentTime",
                &["2025-07-16T01:00:00Z"]
            )
            .evaluate(&c)
            .0
        );
        assert!(
            cond("DateLessThan", "aws:CurrentTime", &["1752634800"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond(
                "DateNotEquals",
                "aws:CurrentTime",
                &["2025-07-16T02:00:00Z"]
            )
            .evaluate(&c)
            .0
        );
        assert!(
            cond("Bool", "aws:SecureTransport", &["true"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("Bool", "aws:SecureTransport", &["false"])
                .evaluate(&c)
                .0
        );
        assert!(!cond("Bool", "aws:SecureTransport", &["yes"]).evaluate(&c).0);
        assert!(cond("BinaryEquals", "k:bin", &["aGVsbG8="]).evaluate(&c).0);
        // The request's value is compared as it is with the policy's decoded bytes
        // (reference_policies_elements_condition_operators.html#Conditions_BinaryEquals): a
        // value that is itself the base64 text does not match (a policy-evaluation sweep).
        let prefix = |v: &str| ctx(&[("s3:prefix", v)]);
        assert!(
            cond("BinaryEquals", "s3:prefix", &["YWJj"])
                .evaluate(&prefix("abc"))
                .0
        );
        assert!(
            !cond("BinaryEquals", "s3:prefix", &["YWJj"])
                .evaluate(&prefix("YWJj"))
                .0
        );
        assert!(
            cond("IpAddress", "aws:SourceIp", &["203.0.113.0/24"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond(
                "NotIpAddress",
                "aws:SourceIp",
                &["203.0.113.0/24", "10.0.0.0/8"]
            )
            .evaluate(&c)
            .0
        );
        assert!(
            cond(
                "ArnLike",
                "aws:SourceArn",
                &["arn:aws:sns:*:123456789012:*"]
            )
            .evaluate(&c)
            .0
        );
        assert!(
            cond(
                "ArnEquals",
                "aws:SourceArn",
                &["arn:aws:sns:us-east-1:123456789012:topic"]
            )
            .evaluate(&c)
            .0
        );
        assert!(
            cond("ArnNotLike", "aws:SourceArn", &["arn:aws:sqs:*:*:*"])
                .evaluate(&c)
                .0
        );
    }

    #[test]
    fn bad_values_rejected() {
        let bad = |op: &str, good: &str, v: &str| {
            let op = Operator::parse(op).unwrap();
            assert!(CompiledCondition::compile_texts(op, "k:k", &[good], true).is_ok());
            CompiledCondition::compile_texts(op, "k:k", &[good, v], true)
                .unwrap_err()
                .index
        };
        assert_eq!(bad("NumericEquals", "1", "ten"), 1);
        assert_eq!(bad("DateLessThan", "1", "tomorrow"), 1);
        assert_eq!(bad("IpAddress", "10.0.0.0/8", "10.0.0.0/40"), 1);
        assert_eq!(bad("BinaryEquals", "aGk=", "!!"), 1);
        assert_eq!(bad("ArnLike", "arn:*:*:*:*:*", "not-an-arn"), 1);
        assert_eq!(bad("Null", "true", "maybe"), 1);
    }

    #[test]
    fn variables_in_values() {
        let c = ctx(&[("aws:username", "alice"), ("s3:prefix", "home/alice/")]);
        assert!(
            cond("StringLike", "s3:prefix", &["home/${aws:username}/*"])
                .evaluate(&c)
                .0
        );
        assert!(
            !cond("StringLike", "s3:prefix", &["home/${aws:userid}/*"])
                .evaluate(&c)
                .0
        );
        assert!(
            cond(
                "StringLike",
                "s3:prefix",
                &["home/${aws:userid, 'alice'}/*"]
            )
            .evaluate(&c)
            .0
        );
    }
}
