//! Operators against keys: operator/key type mismatches, set qualifiers on single-valued keys,
//! `ForAnyValue` with negated operators, `…IfExists` on keys every request carries, and wildcards
//! given to operators that do not expand them.
//!
//! Values that do not parse for their operator (an `IpAddress` value that is no address, a date
//! that is no date) are refused by the parser and reported as `ERROR`s by [`super::lint`], with
//! the code [`value_code`] picks.

use super::names::{key_info, KeyInfo};
use super::{codes, Cx, Finding};
use crate::model::{Effect, Family, OperatorKind, SetQualifier};
use crate::s3::KeyType;

/// Keys AWS puts in every request's context (the global condition keys page marks them "This key
/// is always included in the request context",
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html>).
pub const ALWAYS_PRESENT: &[&str] = &[
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalIsAWSService",
    "aws:PrincipalType",
    "aws:RequestedRegion",
    "aws:SecureTransport",
    "aws:userid",
    "aws:ViaAWSService",
];

/// The Access Analyzer code for a value that does not fit an operator of `family`.
pub fn value_code(family: Family) -> codes::Code {
    match family {
        Family::Ip => codes::TYPE_MISMATCH_IP_RANGE,
        Family::Date => codes::TYPE_MISMATCH_DATE,
        Family::Numeric => codes::TYPE_MISMATCH_NUMBER,
        Family::Bool | Family::Null => codes::TYPE_MISMATCH_BOOLEAN,
        Family::String | Family::Arn | Family::Binary => codes::TYPE_MISMATCH_STRING,
    }
}

/// Whether an operator of `family` suits a key of type `kind`.
fn fits(family: Family, kind: KeyType) -> bool {
    match family {
        Family::Null => true,
        Family::String => !matches!(
            kind,
            KeyType::Ip | KeyType::Numeric | KeyType::Date | KeyType::Bool
        ),
        Family::Arn => matches!(kind, KeyType::Arn | KeyType::ArrayOfArn),
        Family::Numeric => kind == KeyType::Numeric,
        Family::Date => kind == KeyType::Date,
        Family::Bool => kind == KeyType::Bool,
        Family::Ip => kind == KeyType::Ip,
        Family::Binary => false,
    }
}

fn operators_for(kind: KeyType) -> &'static str {
    match kind {
        KeyType::String | KeyType::ArrayOfString => "String",
        KeyType::Arn | KeyType::ArrayOfArn => "Arn or String",
        KeyType::Numeric => "Numeric",
        KeyType::Date => "Date",
        KeyType::Bool => "Bool",
        KeyType::Ip => "IpAddress",
    }
}

/// Runs the checks.
pub(crate) fn check(cx: &Cx<'_>, out: &mut Vec<Finding>) {
    for (i, st) in cx.statements() {
        for c in &st.conditions {
            let op = c.operator;
            let op_text = op.to_string();
            let key_path = || vec![cx.condition_key_path(i, &op_text, &c.key)];
            let kind = match key_info(&c.key) {
                KeyInfo::Known(k) => Some(k),
                _ => None,
            };
            if let Some(k) = kind {
                if !fits(op.kind.family(), k) {
                    out.push(cx.finding(
                        codes::TYPE_MISMATCH,
                        format!(
                            "Use the operator type {} instead of operator `{op_text}` for the condition key `{}`: a {:?} key never matches it.",
                            operators_for(k),
                            c.key,
                            k
                        ),
                        key_path(),
                    ));
                }
                let multi = matches!(k, KeyType::ArrayOfString | KeyType::ArrayOfArn);
                if op.set == Some(SetQualifier::ForAllValues) && !multi {
                    out.push(cx.finding(
                        codes::FORALLVALUES_WITH_SINGLE_VALUED_KEY,
                        format!(
                            "Using ForAllValues qualifier with the single-valued condition key `{}` can be overly permissive: it also holds when the key is absent. Remove `ForAllValues:`.",
                            c.key
                        ),
                        key_path(),
                    ));
                }
            }
            if op.set == Some(SetQualifier::ForAnyValue) && op.kind.is_negated() {
                let code = if st.effect == Effect::Allow {
                    codes::FORANYVALUE_WITH_NEGATED_OPERATOR
                } else {
                    codes::FORANYVALUE_NEGATED_IN_DENY
                };
                out.push(cx.finding(
                    code,
                    format!(
                        "`{op_text}` holds when any one value of `{}` differs from the listed values, so a request that adds one unlisted value passes. If every value must be listed, use `ForAllValues:{}`; if none may be, use `ForAllValues:{}`.",
                        c.key,
                        positive(op.kind).as_str(),
                        op.kind.as_str()
                    ),
                    key_path(),
                ));
            }
            if op.if_exists
                && ALWAYS_PRESENT
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&c.key))
            {
                out.push(cx.finding(
                    codes::IF_EXISTS_ON_ALWAYS_PRESENT_KEY,
                    format!(
                        "`{}` is in every request's context, so `IfExists` in `{op_text}` changes nothing; write `{}`.",
                        c.key,
                        crate::model::Operator { if_exists: false, ..op }
                    ),
                    key_path(),
                ));
            }
            if op.kind == OperatorKind::Bool
                && c.values
                    .iter()
                    .any(|v| crate::condition::boolean::parse(v.as_text()).is_none())
            {
                out.push(cx.finding(
                    codes::TYPE_MISMATCH_BOOLEAN,
                    format!(
                        "The condition operator `{op_text}` is used with a value that is neither `true` nor `false`; it never matches. Use `true` or `false`."
                    ),
                    vec![cx.condition_value_path(i, &op_text, &c.key)],
                ));
            }
            let equality = matches!(
                op.kind,
                OperatorKind::StringEquals
                    | OperatorKind::StringNotEquals
                    | OperatorKind::StringEqualsIgnoreCase
                    | OperatorKind::StringNotEqualsIgnoreCase
                    | OperatorKind::ArnEquals
                    | OperatorKind::ArnNotEquals
            );
            if equality
                && c.values
                    .iter()
                    .any(|v| v.as_text().contains('*') && !v.as_text().contains("${*}"))
            {
                let like = op_text.replace("Equals", "Like").replace("IgnoreCase", "");
                out.push(cx.finding(
                    codes::WILDCARD_WITHOUT_LIKE_OPERATOR,
                    format!(
                        "`{op_text}` compares `*` literally; use `{like}` if the value is a pattern."
                    ),
                    vec![cx.condition_value_path(i, &op_text, &c.key)],
                ));
            }
        }
    }
}

/// The non-negated operator of a negated one.
fn positive(k: OperatorKind) -> OperatorKind {
    match k {
        OperatorKind::StringNotEquals => OperatorKind::StringEquals,
        OperatorKind::StringNotEqualsIgnoreCase => OperatorKind::StringEqualsIgnoreCase,
        OperatorKind::StringNotLike => OperatorKind::StringLike,
        OperatorKind::NumericNotEquals => OperatorKind::NumericEquals,
        OperatorKind::DateNotEquals => OperatorKind::DateEquals,
        OperatorKind::NotIpAddress => OperatorKind::IpAddress,
        OperatorKind::ArnNotEquals => OperatorKind::ArnEquals,
        OperatorKind::ArnNotLike => OperatorKind::ArnLike,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_families_fit_key_types() {
        assert!(fits(Family::String, KeyType::Arn));
        assert!(fits(Family::Arn, KeyType::Arn));
        assert!(!fits(Family::Arn, KeyType::String));
        assert!(!fits(Family::Ip, KeyType::String));
        assert!(!fits(Family::String, KeyType::Ip));
        assert!(fits(Family::Null, KeyType::Ip));
        assert!(fits(Family::Date, KeyType::Date));
        assert!(!fits(Family::Numeric, KeyType::Date));
        for k in ALWAYS_PRESENT {
            assert!(key_info(k) != KeyInfo::Unknown, "{k}");
        }
    }
}
