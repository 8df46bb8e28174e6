//! The policy document model: mirrors the AWS IAM JSON grammar element by element.
//!
//! See <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html>.
//! Values keep whether they were written as a single string or as an array, so a document
//! prints back as it was read ([`Policy::to_json_string`]).

use std::fmt;

use crate::json::{write_str, Span};

/// A policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `Version`; absent means the 2008 language (no policy variables).
    pub version: Option<Version>,
    /// `Id`.
    pub id: Option<String>,
    /// `Statement`, in document order.
    pub statements: Vec<Statement>,
    /// Whether `Statement` was written as an array (else a single object).
    pub statement_is_array: bool,
}

/// The policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`: the current language, with policy variables.
    V2012_10_17,
    /// `2008-10-17`: the old language; `${...}` is literal text.
    V2008_10_17,
}

impl Version {
    /// The version string as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2012_10_17 => "2012-10-17",
            Version::V2008_10_17 => "2008-10-17",
        }
    }
}

impl Policy {
    /// Whether `${...}` policy variables are substituted (only in the 2012-10-17 language).
    pub fn variables_enabled(&self) -> bool {
        self.version == Some(Version::V2012_10_17)
    }

    /// The context keys the policy refers to, as written, each once (keys compare
    /// case-insensitively; the first spelling wins), in document order: for each statement the
    /// policy variables of `Resource`/`NotResource`, then each condition's key and the variables
    /// in its values. Variables count only in the 2012-10-17 language. This is what IAM's
    /// GetContextKeysForCustomPolicy answers, e.g. `["aws:username", "aws:CurrentTime"]` for a
    /// `Resource` ending in `${aws:username}` and a `DateGreaterThan` on `aws:CurrentTime`
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/iam_example_iam_GetContextKeysForCustomPolicy_section.html>).
    pub fn context_keys(&self) -> Vec<String> {
        let variables = self.variables_enabled();
        let mut keys: Vec<String> = Vec::new();
        let mut add = |k: &str| {
            if !keys.iter().any(|seen| seen.eq_ignore_ascii_case(k)) {
                keys.push(k.to_owned());
            }
        };
        for st in &self.statements {
            if let (true, Some(ResourceRule::Resource(r) | ResourceRule::NotResource(r))) =
                (variables, &st.resource)
            {
                for text in r.iter() {
                    crate::pattern::variable_keys(text)
                        .into_iter()
                        .for_each(&mut add);
                }
            }
            for c in &st.conditions {
                add(&c.key);
                if !variables {
                    continue;
                }
                for v in c.values.iter() {
                    if let ConditionValue::String(s) = v {
                        crate::pattern::variable_keys(s)
                            .into_iter()
                            .for_each(&mut add);
                    }
                }
            }
        }
        keys
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `Allow`.
    Allow,
    /// `Deny`.
    Deny,
}

impl Effect {
    /// The effect as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// A string or an array of strings, remembering which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMore<T> {
    /// A single value written without brackets.
    One(T),
    /// An array (never empty after parsing).
    More(Vec<T>),
}

impl<T> OneOrMore<T> {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMore::One(v) => std::slice::from_ref(v),
            OneOrMore::More(v) => v,
        }
    }

    /// Iterates the values.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `Sid`.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal` or `NotPrincipal` (resource-based and trust policies only).
    pub principal: Option<PrincipalRule>,
    /// `Action` or `NotAction`.
    pub action: ActionRule,
    /// `Resource` or `NotResource` (absent in trust policies).
    pub resource: Option<ResourceRule>,
    /// `Condition`, flattened to one entry per (operator, key) in document order.
    pub conditions: Vec<Condition>,
    /// 1-based line where the statement object starts (0 when not read from text).
    pub line: u32,
    /// The bytes of the statement object, from `{` through `}`, in the document it was read
    /// from (empty when not read from text); [`crate::line_col`] turns its ends into positions.
    pub span: Span,
}

/// `Principal` or `NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalRule {
    /// `Principal`.
    Principal(Principal),
    /// `NotPrincipal`.
    NotPrincipal(Principal),
}

/// The value of `Principal` / `NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The bare string `"*"`: everyone, including anonymous callers.
    Any,
    /// An object such as `{"AWS": [...], "Service": "..."}`, in document order.
    Map(Vec<(PrincipalKind, OneOrMore<String>)>),
}

/// The keys of a principal object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// `AWS`: accounts, users, roles, sessions, or `*`.
    Aws,
    /// `Service`: service principals such as `ec2.amazonaws.com`.
    Service,
    /// `Federated`: identity providers.
    Federated,
    /// `CanonicalUser`: S3 canonical user ids.
    CanonicalUser,
}

impl PrincipalKind {
    /// The key as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Aws => "AWS",
            PrincipalKind::Service => "Service",
            PrincipalKind::Federated => "Federated",
            PrincipalKind::CanonicalUser => "CanonicalUser",
        }
    }
}

/// `Action` or `NotAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRule {
    /// `Action`.
    Action(OneOrMore<String>),
    /// `NotAction`.
    NotAction(OneOrMore<String>),
}

/// `Resource` or `NotResource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceRule {
    /// `Resource`.
    Resource(OneOrMore<String>),
    /// `NotResource`.
    NotResource(OneOrMore<String>),
}

/// One condition: an operator applied to one context key with one or more values.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The operator, e.g. `ForAnyValue:StringLikeIfExists`.
    pub operator: Operator,
    /// The context key as written (matched case-insensitively).
    pub key: String,
    /// The values to compare with.
    pub values: OneOrMore<ConditionValue>,
}

/// A condition value as written: JSON strings, numbers and booleans are all accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionValue {
    /// A JSON string.
    String(String),
    /// A JSON number, as written.
    Number(String),
    /// A JSON boolean.
    Bool(bool),
}

impl ConditionValue {
    /// The value as text (numbers as written, booleans as `true`/`false`).
    pub fn as_text(&self) -> &str {
        match self {
            ConditionValue::String(s) | ConditionValue::Number(s) => s,
            ConditionValue::Bool(true) => "true",
            ConditionValue::Bool(false) => "false",
        }
    }
}

/// A full condition operator: optional set qualifier, base operator, optional `IfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// `ForAnyValue:` or `ForAllValues:`.
    pub set: Option<SetQualifier>,
    /// The base operator.
    pub kind: OperatorKind,
    /// The `IfExists` suffix.
    pub if_exists: bool,
}

/// Set qualifiers for multi-valued context keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// `ForAnyValue:`.
    ForAnyValue,
    /// `ForAllValues:`.
    ForAllValues,
}

macro_rules! operator_kinds {
    ($($v:ident => $s:literal, $fam:ident, $neg:literal;)*) => {
        /// The base condition operators.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum OperatorKind {
            $(
                #[doc = concat!("`", $s, "`")]
                $v,
            )*
        }

        impl OperatorKind {
            /// Every base operator.
            pub const ALL: &'static [OperatorKind] = &[$(OperatorKind::$v),*];

            /// The operator name as written in documents.
            pub fn as_str(self) -> &'static str {
                match self { $(OperatorKind::$v => $s,)* }
            }

            /// The family (value type) of the operator.
            pub fn family(self) -> Family {
                match self { $(OperatorKind::$v => Family::$fam,)* }
            }

            /// Whether the operator is negated (`...Not...`, `NotIpAddress`).
            pub fn is_negated(self) -> bool {
                match self { $(OperatorKind::$v => $neg,)* }
            }

            /// Looks up a base operator by its exact name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($s => Some(OperatorKind::$v),)* _ => None }
            }
        }
    };
}

operator_kinds! {
    StringEquals => "StringEquals", String, false;
    StringNotEquals => "StringNotEquals", String, true;
    StringEqualsIgnoreCase => "StringEqualsIgnoreCase", String, false;
    StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase", String, true;
    StringLike => "StringLike", String, false;
    StringNotLike => "StringNotLike", String, true;
    NumericEquals => "NumericEquals", Numeric, false;
    NumericNotEquals => "NumericNotEquals", Numeric, true;
    NumericLessThan => "NumericLessThan", Numeric, false;
    NumericLessThanEquals => "NumericLessThanEquals", Numeric, false;
    NumericGreaterThan => "NumericGreaterThan", Numeric, false;
    NumericGreaterThanEquals => "NumericGreaterThanEquals", Numeric, false;
    DateEquals => "DateEquals", Date, false;
    DateNotEquals => "DateNotEquals", Date, true;
    DateLessThan => "DateLessThan", Date, false;
    DateLessThanEquals => "DateLessThanEquals", Date, false;
    DateGreaterThan => "DateGreaterThan", Date, false;
    DateGreaterThanEquals => "DateGreaterThanEquals", Date, false;
    Bool => "Bool", Bool, false;
    BinaryEquals => "BinaryEquals", Binary, false;
    IpAddress => "IpAddress", Ip, false;
    NotIpAddress => "NotIpAddress", Ip, true;
    ArnEquals => "ArnEquals", Arn, false;
    ArnLike => "ArnLike", Arn, false;
    ArnNotEquals => "ArnNotEquals", Arn, true;
    ArnNotLike => "ArnNotLike", Arn, true;
    Null => "Null", Null, false;
}

/// Operator families: the value type an operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// String operators.
    String,
    /// Numeric operators.
    Numeric,
    /// Date operators.
    Date,
    /// `Bool`.
    Bool,
    /// `BinaryEquals`.
    Binary,
    /// `IpAddress` / `NotIpAddress`.
    Ip,
    /// ARN operators.
    Arn,
    /// `Null`.
    Null,
}

impl Operator {
    /// Parses an operator name such as `ForAllValues:StringNotLikeIfExists`.
    ///
    /// `Null` takes neither `IfExists` nor a set qualifier.
    pub fn parse(name: &str) -> Option<Self> {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else {
            (None, name)
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let kind = OperatorKind::from_name(base)?;
        if kind == OperatorKind::Null && (if_exists || set.is_some()) {
            return None;
        }
        Some(Operator {
            set,
            kind,
            if_exists,
        })
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.set {
            Some(SetQualifier::ForAnyValue) => f.write_str("ForAnyValue:")?,
            Some(SetQualifier::ForAllValues) => f.write_str("ForAllValues:")?,
            None => {}
        }
        f.write_str(self.kind.as_str())?;
        if self.if_exists {
            f.write_str("IfExists")?;
        }
        Ok(())
    }
}

fn write_strings(out: &mut String, v: &OneOrMore<String>) {
    match v {
        OneOrMore::One(s) => write_str(out, s),
        OneOrMore::More(items) => {
            out.push('[');
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, s);
            }
            out.push(']');
        }
    }
}

fn write_cond_value(out: &mut String, v: &ConditionValue) {
    match v {
        ConditionValue::String(s) => write_str(out, s),
        ConditionValue::Number(n) => out.push_str(n),
        ConditionValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
    }
}

fn write_principal(out: &mut String, p: &Principal) {
    match p {
        Principal::Any => out.push_str("\"*\""),
        Principal::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k.as_str());
                out.push_str(": ");
                write_strings(out, v);
            }
            out.push('}');
        }
    }
}

impl Statement {
    fn write(&self, out: &mut String, indent: &str) {
        out.push_str("{\n");
        let mut fields: Vec<(&str, String)> = Vec::new();
        if let Some(sid) = &self.sid {
            let mut s = String::new();
            write_str(&mut s, sid);
            fields.push(("Sid", s));
        }
        fields.push(("Effect", format!("\"{}\"", self.effect.as_str())));
        if let Some(p) = &self.principal {
            let (name, p) = match p {
                PrincipalRule::Principal(p) => ("Principal", p),
                PrincipalRule::NotPrincipal(p) => ("NotPrincipal", p),
            };
            let mut s = String::new();
            write_principal(&mut s, p);
            fields.push((name, s));
        }
        let (name, a) = match &self.action {
            ActionRule::Action(a) => ("Action", a),
            ActionRule::NotAction(a) => ("NotAction", a),
        };
        let mut s = String::new();
        write_strings(&mut s, a);
        fields.push((name, s));
        if let Some(r) = &self.resource {
            let (name, r) = match r {
                ResourceRule::Resource(r) => ("Resource", r),
                ResourceRule::NotResource(r) => ("NotResource", r),
            };
            let mut s = String::new();
            write_strings(&mut s, r);
            fields.push((name, s));
        }
        if !self.conditions.is_empty() {
            let mut s = String::from("{");
            let mut prev: Option<Operator> = None;
            for c in &self.conditions {
                if prev == Some(c.operator) {
                    s.push_str(", ");
                } else {
                    if prev.is_some() {
                        s.push_str("}, ");
                    }
                    write_str(&mut s, &c.operator.to_string());
                    s.push_str(": {");
                    prev = Some(c.operator);
                }
                write_str(&mut s, &c.key);
                s.push_str(": ");
                match &c.values {
                    OneOrMore::One(v) => write_cond_value(&mut s, v),
                    OneOrMore::More(vs) => {
                        s.push('[');
                        for (i, v) in vs.iter().enumerate() {
                            if i > 0 {
                                s.push_str(", ");
                            }
                            write_cond_value(&mut s, v);
                        }
                        s.push(']');
                    }
                }
            }
            s.push_str("}}");
            fields.push(("Condition", s));
        }
        for (i, (k, v)) in fields.iter().enumerate() {
            out.push_str(indent);
            out.push_str("  \"");
            out.push_str(k);
            out.push_str("\": ");
            out.push_str(v);
            if i + 1 < fields.len() {
                out.push(',');
            }
            out.push('\n');
        }
        out.push_str(indent);
        out.push('}');
    }
}

impl Policy {
    /// Prints the document as JSON, preserving element order and single-vs-array forms.
    ///
    /// A condition operator that appears in several places is printed once per run of entries;
    /// parsing never produces such documents, because duplicate operators are rejected.
    pub fn to_json_string(&self) -> String {
        let mut out = String::from("{\n");
        if let Some(v) = self.version {
            out.push_str("  \"Version\": \"");
            out.push_str(v.as_str());
            out.push_str("\",\n");
        }
        if let Some(id) = &self.id {
            out.push_str("  \"Id\": ");
            write_str(&mut out, id);
            out.push_str(",\n");
        }
        out.push_str("  \"Statement\": ");
        if self.statement_is_array {
            out.push_str("[\n");
            for (i, s) in self.statements.iter().enumerate() {
                out.push_str("    ");
                s.write(&mut out, "    ");
                if i + 1 < self.statements.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str("  ]\n");
        } else {
            for s in &self.statements {
                s.write(&mut out, "  ");
            }
            out.push('\n');
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_round_trip() {
        for name in [
            "StringEquals",
            "ForAnyValue:StringLike",
            "ForAllValues:StringNotEqualsIgnoreCaseIfExists",
            "NumericLessThanEqualsIfExists",
            "DateGreaterThan",
            "NotIpAddressIfExists",
            "ArnNotLike",
            "Null",
            "Bool",
            "BinaryEqualsIfExists",
        ] {
            assert_eq!(Operator::parse(name).unwrap().to_string(), name);
        }
    }

    #[test]
    fn bad_operator_names() {
        for name in [
            "stringequals",
            "StringEqual",
            "NullIfExists",
            "ForAnyValue:Null",
            "ForOneValue:StringLike",
            "",
        ] {
            assert!(Operator::parse(name).is_none(), "{name}");
        }
    }

    #[test]
    fn families_and_negation() {
        assert_eq!(OperatorKind::NotIpAddress.family(), Family::Ip);
        assert!(OperatorKind::NotIpAddress.is_negated());
        assert!(OperatorKind::ArnNotEquals.is_negated());
        assert!(!OperatorKind::ArnLike.is_negated());
        assert_eq!(OperatorKind::ALL.len(), 27);
    }

    /// The AWS CLI example of GetContextKeysForCustomPolicy
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/iam_example_iam_GetContextKeysForCustomPolicy_section.html):
    /// keys as written, the `Resource` variable before the condition key.
    #[test]
    fn context_keys_as_written_in_document_order() {
        let p = crate::parse_policy(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","Resource":"arn:aws:dynamodb:us-west-2:123456789012:table/${aws:username}","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2015-08-16T12:00:00Z"}}}}"#,
        )
        .unwrap();
        assert_eq!(p.context_keys(), ["aws:username", "aws:CurrentTime"]);
        let p = crate::parse_policy(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
                 "Condition":{"StringLike":{"s3:prefix":["${aws:PrincipalTag/team}/*", "${*}x"]},
                              "IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
                {"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::b/${AWS:UserName, 'none'}",
                 "Condition":{"NotIpAddress":{"AWS:SOURCEIP":"10.0.0.0/8"}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.context_keys(),
            [
                "s3:prefix",
                "aws:PrincipalTag/team",
                "aws:SourceIp",
                "AWS:UserName"
            ]
        );
        // 2008-10-17 has no variables: `${...}` is literal text.
        let p = crate::parse_policy(
            r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}"}}"#,
        )
        .unwrap();
        assert!(p.context_keys().is_empty());
    }
}
