//! JSON text → [`Policy`], with validation errors that name the JSON path, line/column and what
//! would be valid.
//!
//! Grammar: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html>.
//! Limits ([`crate::MAX_POLICY_BYTES`], [`crate::MAX_STATEMENTS`], [`crate::MAX_JSON_DEPTH`],
//! [`crate::MAX_VALUES_PER_ELEMENT`]) are checked before and during reading.

use crate::condition::CompiledCondition;
use crate::err::{ParseError, ParseErrorKind as K};
use crate::json::{self, Json, JsonKind, LineIndex, Span};
use crate::model::{
    ActionRule, Condition, ConditionValue, Effect, OneOrMore, Operator, Policy, Principal,
    PrincipalKind, PrincipalRule, ResourceRule, Statement, Version,
};
use crate::pattern::ArnPattern;

const TOP_ELEMENTS: &str = "`Version`, `Id`, `Statement`";
const STATEMENT_ELEMENTS: &str = "`Sid`, `Effect`, `Principal`, `NotPrincipal`, `Action`, `NotAction`, `Resource`, `NotResource`, `Condition`";
const PRINCIPAL_KEYS: &str = "`AWS`, `Service`, `Federated`, `CanonicalUser`";

type Check<'a> = &'a dyn Fn(&str) -> Result<(), String>;

/// A JSON path, formatted only when an error needs it.
#[derive(Clone, Copy)]
enum JPath<'a> {
    Root,
    Key(&'a JPath<'a>, &'a str),
    Index(&'a JPath<'a>, usize),
}

impl std::fmt::Display for JPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JPath::Root => f.write_str("$"),
            JPath::Key(p, k) => write!(f, "{p}.{k}"),
            JPath::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

struct Ctx<'a> {
    text: &'a str,
    lines: LineIndex,
}

impl Ctx<'_> {
    fn err(&self, kind: K, path: &JPath<'_>, span: Span) -> ParseError {
        ParseError::new(kind, path.to_string(), self.text, span.offset, span.len)
    }

    fn wrong(&self, expected: &str, v: &Json, path: &JPath<'_>) -> ParseError {
        self.err(
            K::WrongType {
                expected: expected.to_owned(),
                found: v.kind.type_name(),
            },
            path,
            v.span,
        )
    }

    fn invalid(
        &self,
        value: &str,
        expected: impl Into<String>,
        path: &JPath<'_>,
        span: Span,
    ) -> ParseError {
        self.err(
            K::InvalidValue {
                value: value.to_owned(),
                expected: expected.into(),
            },
            path,
            span,
        )
    }
}

/// Parses and validates a policy document.
pub fn parse_policy(text: &str) -> Result<Policy, ParseError> {
    if text.len() > crate::MAX_POLICY_BYTES {
        return Err(ParseError::new(
            K::TooLarge {
                size: text.len(),
                max: crate::MAX_POLICY_BYTES,
            },
            "$".to_owned(),
            text,
            0,
            0,
        ));
    }
    let root = json::parse(text, crate::MAX_JSON_DEPTH)
        .map_err(|e| ParseError::new(K::Syntax(e.message), "$".to_owned(), text, e.offset, 0))?;
    let cx = Ctx {
        text,
        lines: LineIndex::new(text),
    };
    let JsonKind::Object(members) = &root.kind else {
        return Err(cx.wrong("a policy object", &root, &JPath::Root));
    };
    check_duplicates(&cx, members, &JPath::Root)?;
    let mut version = None;
    let mut id = None;
    let mut statement = None;
    for (k, kspan, v) in members {
        let path = JPath::Key(&JPath::Root, k);
        match k.as_str() {
            "Version" => {
                let s = string(&cx, v, &path, "`2012-10-17` or `2008-10-17`")?;
                version = Some(match s {
                    "2012-10-17" => Version::V2012_10_17,
                    "2008-10-17" => Version::V2008_10_17,
                    _ => return Err(cx.invalid(s, "`2012-10-17` or `2008-10-17`", &path, v.span)),
                });
            }
            "Id" => id = Some(string(&cx, v, &path, "a string")?.to_owned()),
            "Statement" => statement = Some(v),
            _ => {
                return Err(cx.err(
                    K::UnknownElement {
                        name: k.clone(),
                        valid: TOP_ELEMENTS,
                    },
                    &path,
                    *kspan,
                ));
            }
        }
    }
    let Some(st) = statement else {
        return Err(cx.err(K::Missing("Statement"), &JPath::Root, root.span));
    };
    let variables = version == Some(Version::V2012_10_17);
    let st_path = JPath::Key(&JPath::Root, "Statement");
    let (statements, statement_is_array) = match &st.kind {
        JsonKind::Object(_) => (vec![statement_from(&cx, st, &st_path, variables)?], false),
        JsonKind::Array(items) => {
            if items.is_empty() {
                return Err(cx.err(K::EmptyArray, &st_path, st.span));
            }
            if items.len() > crate::MAX_STATEMENTS {
                return Err(cx.err(
                    K::TooMany {
                        what: "statements",
                        max: crate::MAX_STATEMENTS,
                    },
                    &st_path,
                    st.span,
                ));
            }
            let v = items
                .iter()
                .enumerate()
                .map(|(i, s)| statement_from(&cx, s, &JPath::Index(&st_path, i), variables))
                .collect::<Result<Vec<_>, _>>()?;
            (v, true)
        }
        _ => return Err(cx.wrong("a statement object or an array of statements", st, &st_path)),
    };
    Ok(Policy {
        version,
        id,
        statements,
        statement_is_array,
    })
}

fn check_duplicates(
    cx: &Ctx<'_>,
    members: &[(String, Span, Json)],
    path: &JPath<'_>,
) -> Result<(), ParseError> {
    for (i, (k, span, _)) in members.iter().enumerate() {
        if members.iter().take(i).any(|(p, _, _)| p == k) {
            return Err(cx.err(K::Duplicate(k.clone()), &JPath::Key(path, k), *span));
        }
    }
    Ok(())
}

fn string<'j>(
    cx: &Ctx<'_>,
    v: &'j Json,
    path: &JPath<'_>,
    expected: &str,
) -> Result<&'j str, ParseError> {
    match &v.kind {
        JsonKind::String(s) => Ok(s),
        _ => Err(cx.wrong(&format!("a string ({expected})"), v, path)),
    }
}

/// A string or a non-empty array of strings, each checked by `check`.
fn strings(
    cx: &Ctx<'_>,
    v: &Json,
    path: &JPath<'_>,
    expected: &str,
    check: &dyn Fn(&str) -> Result<(), String>,
) -> Result<OneOrMore<String>, ParseError> {
    let one = |s: &str, p: &JPath<'_>, span: Span| -> Result<String, ParseError> {
        check(s).map_err(|why| cx.invalid(s, why, p, span))?;
        Ok(s.to_owned())
    };
    match &v.kind {
        JsonKind::String(s) => Ok(OneOrMore::One(one(s, path, v.span)?)),
        JsonKind::Array(items) => {
            if items.is_empty() {
                return Err(cx.err(K::EmptyArray, path, v.span));
            }
            if items.len() > crate::MAX_VALUES_PER_ELEMENT {
                return Err(cx.err(
                    K::TooMany {
                        what: "values",
                        max: crate::MAX_VALUES_PER_ELEMENT,
                    },
                    path,
                    v.span,
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let JsonKind::String(s) = &item.kind else {
                    return Err(cx.wrong(
                        &format!("a string ({expected})"),
                        item,
                        &JPath::Index(path, i),
                    ));
                };
                if check(s).is_err() {
                    one(s, &JPath::Index(path, i), item.span)?;
                }
                out.push(s.clone());
            }
            Ok(OneOrMore::More(out))
        }
        _ => Err(cx.wrong(
            &format!("a string or an array of strings ({expected})"),
            v,
            path,
        )),
    }
}

fn check_action(s: &str) -> Result<(), String> {
    const EXPECTED: &str = "`*` or `service:action` such as `s3:GetObject` (wildcards `*` and `?` allowed in the action)";
    if s == "*" {
        return Ok(());
    }
    let Some((svc, act)) = s.split_once(':') else {
        return Err(EXPECTED.to_owned());
    };
    let svc_ok = !svc.is_empty()
        && svc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*' || b == b'?');
    let act_ok = !act.is_empty()
        && act
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'?' | b'-' | b'_'));
    if svc_ok && act_ok {
        Ok(())
    } else {
        Err(EXPECTED.to_owned())
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An IAM unique id such as `AIDACKCEVSQ6C2EXAMPLE`, which AWS shows in place of a deleted
/// principal's ARN (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids>).
fn is_unique_id(s: &str) -> bool {
    s.len() >= 16
        && [
            "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ASIA", "AKIA", "AGPA",
        ]
        .iter()
        .any(|p| s.starts_with(p))
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn check_aws_principal(s: &str) -> Result<(), String> {
    const EXPECTED: &str =
        "`*`, a 12-digit account id, an IAM unique id, or an IAM/STS ARN such as `arn:aws:iam::123456789012:role/name`";
    if s == "*" || is_account_id(s) || is_unique_id(s) {
        return Ok(());
    }
    match crate::pattern::split_arn(s) {
        Some(["arn", partition, "iam" | "sts", "", account, rest])
            if !partition.is_empty() && is_account_id(account) && !rest.is_empty() =>
        {
            Ok(())
        }
        _ => Err(EXPECTED.to_owned()),
    }
}

fn check_nonempty(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err("a non-empty string".to_owned())
    } else {
        Ok(())
    }
}

fn principal_from(cx: &Ctx<'_>, v: &Json, path: &JPath<'_>) -> Result<Principal, ParseError> {
    match &v.kind {
        JsonKind::String(s) if s == "*" => Ok(Principal::Any),
        JsonKind::Object(members) => {
            check_duplicates(cx, members, path)?;
            if members.is_empty() {
                return Err(cx.invalid(
                    "{}",
                    format!("an object with one of {PRINCIPAL_KEYS}"),
                    path,
                    v.span,
                ));
            }
            let mut out = Vec::new();
            for (k, kspan, val) in members {
                let p = JPath::Key(path, k);
                let (kind, check): (PrincipalKind, Check<'_>) = match k.as_str() {
                    "AWS" => (PrincipalKind::Aws, &check_aws_principal),
                    "Service" => (PrincipalKind::Service, &check_nonempty),
                    "Federated" => (PrincipalKind::Federated, &check_nonempty),
                    "CanonicalUser" => (PrincipalKind::CanonicalUser, &check_nonempty),
                    _ => {
                        return Err(cx.err(
                            K::UnknownElement {
                                name: k.clone(),
                                valid: PRINCIPAL_KEYS,
                            },
                            &p,
                            *kspan,
                        ));
                    }
                };
                out.push((kind, strings(cx, val, &p, "a principal", check)?));
            }
            Ok(Principal::Map(out))
        }
        _ => Err(cx.wrong(
            &format!("`\"*\"` or an object with {PRINCIPAL_KEYS}"),
            v,
            path,
        )),
    }
}

fn condition_from(
    cx: &Ctx<'_>,
    v: &Json,
    path: &JPath<'_>,
    variables: bool,
    out: &mut Vec<Condition>,
) -> Result<(), ParseError> {
    let JsonKind::Object(ops) = &v.kind else {
        return Err(cx.wrong("an object of condition operators", v, path));
    };
    check_duplicates(cx, ops, path)?;
    for (op_name, op_span, keys) in ops {
        let op_path = JPath::Key(path, op_name);
        let operator = Operator::parse(op_name).ok_or_else(|| {
            cx.invalid(
                op_name,
                "a condition operator such as `StringEquals`, `StringLike`, `NumericLessThan`, `DateGreaterThan`, \
                 `Bool`, `BinaryEquals`, `IpAddress`, `ArnLike` or `Null`, optionally prefixed with \
                 `ForAnyValue:`/`ForAllValues:` and suffixed with `IfExists` (not for `Null`)",
                &op_path,
                *op_span,
            )
        })?;
        let JsonKind::Object(entries) = &keys.kind else {
            return Err(cx.wrong("an object of condition keys", keys, &op_path));
        };
        check_duplicates(cx, entries, &op_path)?;
        if entries.is_empty() {
            return Err(cx.invalid("{}", "at least one condition key", &op_path, keys.span));
        }
        for (key, kspan, vals) in entries {
            let kpath = JPath::Key(&op_path, key);
            if key.trim().is_empty() {
                return Err(cx.invalid(
                    key,
                    "a condition key such as `aws:SourceIp`",
                    &kpath,
                    *kspan,
                ));
            }
            let scalar = |j: &Json, p: &JPath<'_>| -> Result<ConditionValue, ParseError> {
                match &j.kind {
                    JsonKind::String(s) => Ok(ConditionValue::String(s.clone())),
                    JsonKind::Number(n) => Ok(ConditionValue::Number(n.clone())),
                    JsonKind::Bool(b) => Ok(ConditionValue::Bool(*b)),
                    _ => Err(cx.wrong("a string, number or boolean", j, p)),
                }
            };
            let (values, spans): (OneOrMore<ConditionValue>, Vec<Span>) = match &vals.kind {
                JsonKind::Array(items) => {
                    if items.is_empty() {
                        return Err(cx.err(K::EmptyArray, &kpath, vals.span));
                    }
                    if items.len() > crate::MAX_VALUES_PER_ELEMENT {
                        return Err(cx.err(
                            K::TooMany {
                                what: "values",
                                max: crate::MAX_VALUES_PER_ELEMENT,
                            },
                            &kpath,
                            vals.span,
                        ));
                    }
                    let mut vs = Vec::new();
                    let mut spans = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        vs.push(scalar(item, &JPath::Index(&kpath, i))?);
                        spans.push(item.span);
                    }
                    (OneOrMore::More(vs), spans)
                }
                _ => (OneOrMore::One(scalar(vals, &kpath)?), vec![vals.span]),
            };
            let is_array = matches!(values, OneOrMore::More(_));
            let cond = Condition {
                operator,
                key: key.clone(),
                values,
            };
            let texts: Vec<&str> = cond.values.iter().map(ConditionValue::as_text).collect();
            if let Err(e) = CompiledCondition::validate_texts(cond.operator, &texts, variables) {
                let span = spans.get(e.index).copied().unwrap_or(vals.span);
                let p = if is_array {
                    JPath::Index(&kpath, e.index)
                } else {
                    kpath
                };
                return Err(cx.invalid(&e.value, e.expected, &p, span));
            }
            out.push(cond);
        }
    }
    Ok(())
}

fn statement_from(
    cx: &Ctx<'_>,
    v: &Json,
    path: &JPath<'_>,
    variables: bool,
) -> Result<Statement, ParseError> {
    let JsonKind::Object(members) = &v.kind else {
        return Err(cx.wrong("a statement object", v, path));
    };
    check_duplicates(cx, members, path)?;
    let mut sid = None;
    let mut effect = None;
    let mut principal = None;
    let mut action = None;
    let mut resource = None;
    let mut conditions = Vec::new();
    let resource_check = |s: &str| -> Result<(), String> {
        ArnPattern::validate(s, variables, true).map_err(|e| e.0)
    };
    for (k, kspan, val) in members {
        let p = JPath::Key(path, k);
        match k.as_str() {
            "Sid" => sid = Some(string(cx, val, &p, "a statement id")?.to_owned()),
            "Effect" => {
                let s = string(cx, val, &p, "`Allow` or `Deny`")?;
                effect = Some(match s {
                    "Allow" => Effect::Allow,
                    "Deny" => Effect::Deny,
                    _ => return Err(cx.invalid(s, "`Allow` or `Deny`", &p, val.span)),
                });
            }
            "Principal" | "NotPrincipal" => {
                if principal.is_some() {
                    return Err(cx.err(K::Conflict("Principal", "NotPrincipal"), &p, *kspan));
                }
                let pr = principal_from(cx, val, &p)?;
                principal = Some(if k == "Principal" {
                    PrincipalRule::Principal(pr)
                } else {
                    PrincipalRule::NotPrincipal(pr)
                });
            }
            "Action" | "NotAction" => {
                if action.is_some() {
                    return Err(cx.err(K::Conflict("Action", "NotAction"), &p, *kspan));
                }
                let a = strings(cx, val, &p, "an action", &check_action)?;
                action = Some(if k == "Action" {
                    ActionRule::Action(a)
                } else {
                    ActionRule::NotAction(a)
                });
            }
            "Resource" | "NotResource" => {
                if resource.is_some() {
                    return Err(cx.err(K::Conflict("Resource", "NotResource"), &p, *kspan));
                }
                let r = strings(cx, val, &p, "a resource ARN", &resource_check)?;
                resource = Some(if k == "Resource" {
                    ResourceRule::Resource(r)
                } else {
                    ResourceRule::NotResource(r)
                });
            }
            "Condition" => condition_from(cx, val, &p, variables, &mut conditions)?,
            _ => {
                return Err(cx.err(
                    K::UnknownElement {
                        name: k.clone(),
                        valid: STATEMENT_ELEMENTS,
                    },
                    &p,
                    *kspan,
                ));
            }
        }
    }
    let effect = effect.ok_or_else(|| cx.err(K::Missing("Effect"), path, v.span))?;
    let action = action.ok_or_else(|| cx.err(K::Missing("Action"), path, v.span))?;
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
        line: cx.lines.line(v.span.offset),
        span: v.span,
    })
}

/// Validates one string as an action pattern (used by callers building policies by hand).
pub fn validate_action(s: &str) -> Result<(), String> {
    check_action(s)
}

/// Validates one string as a resource pattern.
pub fn validate_resource(s: &str, variables: bool) -> Result<(), String> {
    ArnPattern::validate(s, variables, true).map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ParseError {
        parse_policy(text).unwrap_err()
    }

    #[test]
    fn parses_the_seed_policies() {
        for f in ["training-job.json", "slm-readonly.json"] {
            let path = format!(
                "{}/../../../shared/test-data/policies/{f}",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(path).unwrap();
            let p = parse_policy(&text).unwrap();
            assert!(p.statement_is_array);
            assert_eq!(p.statements[0].line, 4);
        }
    }

    /// The statement's span runs from `{` through `}`, so [`crate::line_col`] of its ends gives
    /// the positions IAM's simulator reports in `MatchedStatements`: the example of
    /// https://docs.aws.amazon.com/cli/latest/reference/iam/simulate-custom-policy.html reports
    /// `EndPosition` line 1 column 167 for this policy (one past the statement's `}`).
    #[test]
    fn statement_spans_give_line_and_column() {
        let text = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}"#;
        let s = &parse_policy(text).unwrap().statements[0];
        assert_eq!(crate::line_col(text, s.span.offset), (1, 37));
        assert_eq!(crate::line_col(text, s.span.offset + s.span.len), (1, 167));
        let text = "{\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": \"s3:*\", \"Resource\": \"*\"},\n    {\n      \"Effect\": \"Deny\", \"Action\": \"s3:*\", \"Resource\": \"*\"\n    }\n  ]\n}";
        let p = parse_policy(text).unwrap();
        let pos = |s: &Statement| {
            (
                crate::line_col(text, s.span.offset),
                crate::line_col(text, s.span.offset + s.span.len),
            )
        };
        assert_eq!(pos(&p.statements[0]), ((3, 5), (3, 59)));
        assert_eq!(pos(&p.statements[1]), ((4, 5), (6, 6)));
    }

    #[test]
    fn principals_accept_unique_ids_and_sts_arns() {
        let doc = |p: &str| {
            format!(
                r#"{{"Statement": {{"Effect": "Deny", "Principal": {{"AWS": {p}}}, "Action": "s3:*", "Resource": "*"}}}}"#
            )
        };
        for ok in [
            r#""AIDACKCEVSQ6C2EXAMPLE""#,
            r#""arn:aws:sts::111122223333:assumed-role/r/s""#,
            r#"["*", "111122223333"]"#,
        ] {
            assert!(parse_policy(&doc(ok)).is_ok(), "{ok}");
        }
        for bad in [
            r#""aidackcevsq6c2example""#,
            r#""arn:aws:s3:::bucket""#,
            r#""arn:aws:iam::1234:root""#,
        ] {
            assert!(parse_policy(&doc(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn single_statement_object_and_strings() {
        let p =
            parse_policy(r#"{"Statement": {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}}"#)
                .unwrap();
        assert_eq!(p.version, None);
        assert!(!p.statement_is_array);
        assert_eq!(p.statements[0].effect, Effect::Deny);
    }

    #[test]
    fn errors_name_path_line_and_column() {
        let e = err("{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Effect\": \"allow\", \"Action\": \"s3:*\"}]\n}");
        assert_eq!(e.path(), "$.Statement[0].Effect");
        assert_eq!((e.line(), e.column()), (3, 28));
        assert!(e.to_string().contains("`Allow` or `Deny`"), "{e}");
    }

    #[test]
    fn error_cases() {
        let cases: &[(&str, &str)] = &[
            ("[]", "$"),
            ("{}", "$"),
            (
                r#"{"Statement": [], "Version": "2012-10-17"}"#,
                "$.Statement",
            ),
            (r#"{"Version": "2012-10-18", "Statement": []}"#, "$.Version"),
            (r#"{"Statemnt": []}"#, "$.Statemnt"),
            (r#"{"Statement": [{"Effect": "Allow"}]}"#, "$.Statement[0]"),
            (r#"{"Statement": [{"Action": "s3:*"}]}"#, "$.Statement[0]"),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}"#,
                "$.Statement[0].Action",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "GetObject", "Resource": "*"}]}"#,
                "$.Statement[0].Action",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": ["s3:x", 3], "Resource": "*"}]}"#,
                "$.Statement[0].Action[1]",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "bucket/*"}]}"#,
                "$.Statement[0].Resource",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:x"}]}"#,
                "$.Statement[0].NotAction",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Actions": "s3:x"}]}"#,
                "$.Statement[0].Actions",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Effect": "Deny"}]}"#,
                "$.Statement[0].Effect",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Principal": "bob"}]}"#,
                "$.Statement[0].Principal",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Principal": {"AWS": "12345"}}]}"#,
                "$.Statement[0].Principal.AWS",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Principal": {"Aws": "*"}}]}"#,
                "$.Statement[0].Principal.Aws",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Condition": {"StringEqual": {"a:b": "c"}}}]}"#,
                "$.Statement[0].Condition.StringEqual",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Condition": {"IpAddress": {"aws:SourceIp": ["1.2.3.4/8", "300.1.1.1"]}}}]}"#,
                "$.Statement[0].Condition.IpAddress.aws:SourceIp[1]",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Condition": {"NumericLessThan": {"s3:max-keys": "ten"}}}]}"#,
                "$.Statement[0].Condition.NumericLessThan.s3:max-keys",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Condition": {"DateLessThan": {"aws:CurrentTime": null}}}]}"#,
                "$.Statement[0].Condition.DateLessThan.aws:CurrentTime",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Condition": {"StringLike": {"s3:prefix": []}}}]}"#,
                "$.Statement[0].Condition.StringLike.s3:prefix",
            ),
            (
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username"}]}"#,
                "$.Statement[0].Resource",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*"}], "Statement": []}"#,
                "$.Statement",
            ),
            ("{\"Statement\": [", "$"),
        ];
        for (text, path) in cases {
            let e = err(text);
            assert_eq!(e.path(), *path, "{text}: {e}");
        }
    }

    #[test]
    fn limits() {
        let big = format!(
            "{{\"Id\": \"{}\", \"Statement\": []}}",
            "x".repeat(crate::MAX_POLICY_BYTES)
        );
        assert!(matches!(err(&big).kind(), K::TooLarge { .. }));
        let deep = format!("{{\"Statement\": {}{}}}", "[".repeat(40), "]".repeat(40));
        assert!(matches!(err(&deep).kind(), K::Syntax(_)));
    }

    #[test]
    fn one_mebibyte_document_parses() {
        let stmt = r#"{"Sid": "S", "Effect": "Allow", "Action": ["s3:GetObject", "s3:List*"], "Resource": "arn:aws:s3:::bucket/prefix/*", "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.0/24"]}}}"#;
        let n = (crate::MAX_POLICY_BYTES - 100) / (stmt.len() + 1);
        let text = format!(
            r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
            vec![stmt; n].join(",")
        );
        assert!(
            text.len() <= crate::MAX_POLICY_BYTES && text.len() > crate::MAX_POLICY_BYTES - 1000
        );
        let start = std::time::Instant::now();
        let p = parse_policy(&text).unwrap();
        assert_eq!(p.statements.len(), n);
        // Generous bound for unoptimised test builds on a shared machine.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn variables_only_in_2012() {
        let doc = |v: &str| {
            format!(
                r#"{{{v}"Statement": {{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${{oops"}}}}"#
            )
        };
        assert!(parse_policy(&doc("")).is_ok());
        assert!(parse_policy(&doc(r#""Version": "2008-10-17","#)).is_ok());
        assert!(parse_policy(&doc(r#""Version": "2012-10-17","#)).is_err());
    }

    #[test]
    fn print_round_trips() {
        let text = r#"{"Version": "2012-10-17", "Id": "x", "Statement": [{"Sid": "A", "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::123456789012:root", "*"], "Service": "ec2.amazonaws.com"},
            "NotAction": "s3:Delete*", "NotResource": ["arn:aws:s3:::b/*"],
            "Condition": {"Bool": {"aws:SecureTransport": false}, "NumericLessThan": {"s3:max-keys": 10, "k:x": ["1", 2.5]}}}]}"#;
        let p = parse_policy(text).unwrap();
        let printed = p.to_json_string();
        let mut q = parse_policy(&printed).unwrap();
        q.statements[0].line = p.statements[0].line;
        q.statements[0].span = p.statements[0].span;
        assert_eq!(p, q);
    }
}
