//! The policy linter: findings about a policy document, classed as IAM Access Analyzer's
//! `ValidatePolicy` classes them (`ERROR`, `SECURITY_WARNING`, `WARNING`, `SUGGESTION`).
//!
//! Each [`Finding`] carries an issue code (Access Analyzer's own where one exists, listed in
//! "IAM Access Analyzer policy check reference",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html>;
//! keyhole's own otherwise, see [`codes`]), a message, the AWS documentation page it rests on,
//! and its locations as a JSON path plus start and end positions, in the shape of the
//! `ValidatePolicy` response (`findings[].locations[].path`, `span.start.line/column/offset`).
//!
//! The linter reads the document twice: with [`crate::parse_policy`] for its meaning, and with
//! the span-keeping JSON reader for where each element sits, so a finding's path resolves to
//! the bytes of the element it names. A document keyhole cannot parse yields one `ERROR` finding
//! at the spot the parser names. Findings never change what a policy grants: keyhole's IAM API
//! keeps accepting documents AWS accepts, whatever the linter says.
//!
//! The checks live in the submodules, by what they look at: [`lint::names`] (actions, services
//! and condition keys against the catalogues), [`lint::conditions`] (operators and values),
//! [`lint::resources`] (action/resource-type pairs that can never match), [`lint::security`]
//! (over-permissive grants) and [`lint::suggest`] (redundancy, empty blocks).

pub mod codes;
pub mod conditions;
pub mod glob;
pub mod names;
pub mod resources;
pub mod security;
pub mod suggest;

use std::fmt;

use crate::err::{ParseError, ParseErrorKind};
use crate::json::{self, Json, JsonKind, Span};
use crate::model::{OneOrMore, Policy, Statement};
use crate::{parse_policy, CompiledPolicy, PolicyKind};

/// How Access Analyzer classes a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingType {
    /// Part of the policy is not functional (or keyhole refuses the document).
    Error,
    /// The policy allows access considered overly permissive.
    SecurityWarning,
    /// The policy does not follow policy-writing best practice.
    Warning,
    /// A stylistic improvement that does not change access.
    Suggestion,
}

impl FindingType {
    /// The name as the `ValidatePolicy` response spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingType::Error => "ERROR",
            FindingType::SecurityWarning => "SECURITY_WARNING",
            FindingType::Warning => "WARNING",
            FindingType::Suggestion => "SUGGESTION",
        }
    }
}

impl fmt::Display for FindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of policy being linted (Access Analyzer's `policyType`, with keyhole's finer split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintPolicyType {
    /// Identity-based policy (user, group, role, or a job's policy).
    Identity,
    /// Resource-based policy such as a bucket policy.
    Resource,
    /// A role's trust policy (a resource-based policy on the role, for `sts:AssumeRole*`).
    Trust,
    /// Permissions boundary.
    Boundary,
    /// Session policy.
    Session,
}

impl LintPolicyType {
    /// The role the policy plays in evaluation (a trust policy is a resource-based policy).
    pub fn kind(self) -> PolicyKind {
        match self {
            LintPolicyType::Identity => PolicyKind::Identity,
            LintPolicyType::Resource | LintPolicyType::Trust => PolicyKind::Resource,
            LintPolicyType::Boundary => PolicyKind::PermissionsBoundary,
            LintPolicyType::Session => PolicyKind::Session,
        }
    }

    fn has_principal(self) -> bool {
        matches!(self, LintPolicyType::Resource | LintPolicyType::Trust)
    }
}

/// Options of a lint run.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// What the policy is; `None` lints the document without role-specific checks.
    pub policy_type: Option<LintPolicyType>,
    /// The account that owns the resource, for cross-account principal findings.
    pub account: Option<String>,
    /// The gateway serves TLS: suggest `aws:SecureTransport` in resource policies without it.
    pub tls: bool,
}

/// One step of a path through the policy's JSON, as Access Analyzer's `PathElement` union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathElement {
    /// The value of an object member (`{"value": "Statement"}`).
    Value(String),
    /// An array element (`{"index": 0}`).
    Index(usize),
    /// An object member's key itself (`{"key": "s3:prefx"}`).
    Key(String),
}

/// A position in the document, as Access Analyzer's `Position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, starting from 1.
    pub line: u32,
    /// Column in characters, starting from 0.
    pub column: u32,
    /// Offset in characters from the start of the document, starting from 0.
    pub offset: usize,
}

/// Where a finding is: a JSON path and the span it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The path from the document root.
    pub path: Vec<PathElement>,
    /// Start of the element.
    pub start: Position,
    /// End of the element (exclusive).
    pub end: Position,
    /// The element's bytes in the document (for code frames).
    pub bytes: Span,
}

impl Location {
    /// The path as text, e.g. `Statement[0].Condition.StringLike.s3:prefx`.
    pub fn path_text(&self) -> String {
        let mut out = String::new();
        for p in &self.path {
            match p {
                PathElement::Value(k) | PathElement::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathElement::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The class.
    pub finding_type: FindingType,
    /// The issue code, e.g. `INVALID_ACTION`.
    pub issue_code: &'static str,
    /// What is wrong and how to fix it.
    pub details: String,
    /// The AWS documentation page the finding rests on.
    pub learn_more_link: String,
    /// Where.
    pub locations: Vec<Location>,
}

impl Finding {
    /// The finding as a `ValidatePolicyFinding` JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let locations: Vec<serde_json::Value> = self
            .locations
            .iter()
            .map(|l| {
                let path: Vec<serde_json::Value> = l
                    .path
                    .iter()
                    .map(|p| match p {
                        PathElement::Value(v) => serde_json::json!({ "value": v }),
                        PathElement::Index(i) => serde_json::json!({ "index": i }),
                        PathElement::Key(k) => serde_json::json!({ "key": k }),
                    })
                    .collect();
                let pos = |p: &Position| {
                    serde_json::json!({"line": p.line, "column": p.column, "offset": p.offset})
                };
                serde_json::json!({
                    "path": path,
                    "span": {"start": pos(&l.start), "end": pos(&l.end)},
                })
            })
            .collect();
        serde_json::json!({
            "findingType": self.finding_type.as_str(),
            "issueCode": self.issue_code,
            "findingDetails": self.details,
            "learnMoreLink": self.learn_more_link,
            "locations": locations,
        })
    }
}

/// The findings as a `ValidatePolicy` response body (`{"findings": [...]}`).
pub fn findings_to_json(findings: &[Finding]) -> serde_json::Value {
    serde_json::json!({ "findings": findings.iter().map(Finding::to_json).collect::<Vec<_>>() })
}

/// Lints a policy document. Findings come sorted by class (errors first), then by position.
pub fn lint(text: &str, options: &LintOptions) -> Vec<Finding> {
    let policy = match parse_policy(text) {
        Ok(p) => p,
        Err(e) => return vec![parse_error_finding(text, &e)],
    };
    // INVARIANT: `parse_policy` read the same text as JSON, so this cannot fail.
    let Ok(tree) = json::parse(text, crate::MAX_JSON_DEPTH) else {
        return Vec::new();
    };
    let cx = Cx {
        text,
        tree: &tree,
        policy: &policy,
        options,
    };
    let mut out = Vec::new();
    if let Some(t) = options.policy_type {
        if let Err(e) = CompiledPolicy::compile(&policy, t.kind()) {
            let st = e.statement();
            let code = if e.message().contains("needs `Principal`") {
                codes::MISSING_PRINCIPAL
            } else if e.message().contains("cannot have `Principal`") {
                codes::UNSUPPORTED_PRINCIPAL
            } else if e.message().contains("needs `Resource`") {
                codes::MISSING_RESOURCE
            } else {
                codes::UNSUPPORTED_ELEMENT_COMBINATION
            };
            out.push(cx.finding(code, e.message().to_owned(), vec![cx.statement_path(st)]));
        }
    }
    names::check(&cx, &mut out);
    conditions::check(&cx, &mut out);
    resources::check(&cx, &mut out);
    security::check(&cx, &mut out);
    suggest::check(&cx, &mut out);
    out.sort_by(|a, b| {
        let pos = |f: &Finding| f.locations.first().map_or(0, |l| l.bytes.offset);
        (a.finding_type, pos(a)).cmp(&(b.finding_type, pos(b)))
    });
    out
}

/// Whether any finding fails a run: an `ERROR`, or with `strict` a `SECURITY_WARNING`.
pub fn fails(findings: &[Finding], strict: bool) -> bool {
    findings.iter().any(|f| {
        f.finding_type == FindingType::Error
            || (strict && f.finding_type == FindingType::SecurityWarning)
    })
}

/// What every check sees: the text, its JSON tree, the parsed policy and the options.
pub(crate) struct Cx<'a> {
    pub(crate) text: &'a str,
    tree: &'a Json,
    pub(crate) policy: &'a Policy,
    pub(crate) options: &'a LintOptions,
}

impl Cx<'_> {
    /// The path of statement `i`.
    pub(crate) fn statement_path(&self, i: usize) -> Vec<PathElement> {
        let mut p = vec![PathElement::Value("Statement".into())];
        if self.policy.statement_is_array {
            p.push(PathElement::Index(i));
        }
        p
    }

    /// The path of element `name` of statement `i`.
    pub(crate) fn element_path(&self, i: usize, name: &str) -> Vec<PathElement> {
        let mut p = self.statement_path(i);
        p.push(PathElement::Value(name.into()));
        p
    }

    /// The path of value `j` of element `name` (an action, a resource...) of statement `i`.
    pub(crate) fn value_path<T>(
        &self,
        i: usize,
        name: &str,
        list: &OneOrMore<T>,
        j: usize,
    ) -> Vec<PathElement> {
        let mut p = self.element_path(i, name);
        if matches!(list, OneOrMore::More(_)) {
            p.push(PathElement::Index(j));
        }
        p
    }

    /// The path of a condition key (the key itself) in statement `i`.
    pub(crate) fn condition_key_path(
        &self,
        i: usize,
        operator: &str,
        key: &str,
    ) -> Vec<PathElement> {
        let mut p = self.element_path(i, "Condition");
        p.push(PathElement::Value(operator.into()));
        p.push(PathElement::Key(key.into()));
        p
    }

    /// The path of a condition's value(s) in statement `i`.
    pub(crate) fn condition_value_path(
        &self,
        i: usize,
        operator: &str,
        key: &str,
    ) -> Vec<PathElement> {
        let mut p = self.element_path(i, "Condition");
        p.push(PathElement::Value(operator.into()));
        p.push(PathElement::Value(key.into()));
        p
    }

    /// Builds a finding of `code` with `details` at `paths`.
    pub(crate) fn finding(
        &self,
        code: codes::Code,
        details: String,
        paths: Vec<Vec<PathElement>>,
    ) -> Finding {
        Finding {
            finding_type: code.finding_type,
            issue_code: code.code,
            details,
            learn_more_link: code.link(),
            locations: paths.into_iter().map(|p| self.locate(p)).collect(),
        }
    }

    /// Resolves a path to its span (as far as it resolves).
    pub(crate) fn locate(&self, path: Vec<PathElement>) -> Location {
        let span = resolve(self.tree, &path);
        location(self.text, path, span)
    }

    /// Whether `path` names an empty JSON object (`"Condition": {}`).
    pub(crate) fn is_empty_object(&self, path: &[PathElement]) -> bool {
        let mut node = self.tree;
        for step in path {
            let next = match (step, &node.kind) {
                (PathElement::Value(k), JsonKind::Object(m)) => {
                    m.iter().find(|(n, _, _)| n == k).map(|(_, _, v)| v)
                }
                (PathElement::Index(i), JsonKind::Array(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        matches!(&node.kind, JsonKind::Object(m) if m.is_empty())
    }

    /// Statements with their index.
    pub(crate) fn statements(&self) -> impl Iterator<Item = (usize, &Statement)> {
        self.policy.statements.iter().enumerate()
    }
}

fn resolve(tree: &Json, path: &[PathElement]) -> Span {
    let mut node = tree;
    for step in path {
        match (step, &node.kind) {
            (PathElement::Value(k), JsonKind::Object(members)) => {
                match members.iter().find(|(name, _, _)| name == k) {
                    Some((_, _, v)) => node = v,
                    None => return node.span,
                }
            }
            (PathElement::Key(k), JsonKind::Object(members)) => {
                return members
                    .iter()
                    .find(|(name, _, _)| name == k)
                    .map_or(node.span, |(_, s, _)| *s);
            }
            (PathElement::Index(i), JsonKind::Array(items)) => match items.get(*i) {
                Some(v) => node = v,
                None => return node.span,
            },
            _ => return node.span,
        }
    }
    node.span
}

fn position(text: &str, offset: usize) -> Position {
    let (line, col) = crate::line_col(text, offset);
    let chars = text
        .get(..offset.min(text.len()))
        .map_or(0, |s| s.chars().count());
    Position {
        line,
        column: col.saturating_sub(1),
        offset: chars,
    }
}

fn location(text: &str, path: Vec<PathElement>, span: Span) -> Location {
    Location {
        path,
        start: position(text, span.offset),
        end: position(text, span.offset + span.len),
        bytes: span,
    }
}

/// The path of the innermost element containing `offset` (keys as [`PathElement::Key`]).
fn path_at(tree: &Json, offset: usize) -> (Vec<PathElement>, Span) {
    let inside = |s: &Span| s.offset <= offset && offset < s.offset + s.len.max(1);
    let mut path = Vec::new();
    let mut node = tree;
    loop {
        match &node.kind {
            JsonKind::Object(members) => {
                if let Some((k, ks, _)) = members.iter().find(|(_, ks, _)| inside(ks)) {
                    path.push(PathElement::Key(k.clone()));
                    return (path, *ks);
                }
                match members.iter().find(|(_, _, v)| inside(&v.span)) {
                    Some((k, _, v)) => {
                        path.push(PathElement::Value(k.clone()));
                        node = v;
                    }
                    None => return (path, node.span),
                }
            }
            JsonKind::Array(items) => match items.iter().position(|v| inside(&v.span)) {
                Some(i) => {
                    path.push(PathElement::Index(i));
                    match items.get(i) {
                        Some(v) => node = v,
                        None => return (path, node.span),
                    }
                }
                None => return (path, node.span),
            },
            _ => return (path, node.span),
        }
    }
}

/// One `ERROR` finding for a document keyhole refuses, with Access Analyzer's code for the
/// kind of mistake.
fn parse_error_finding(text: &str, e: &ParseError) -> Finding {
    let path_s = e.path();
    let code = match e.kind() {
        ParseErrorKind::Syntax(_) | ParseErrorKind::TooLarge { .. } => codes::JSON_SYNTAX_ERROR,
        ParseErrorKind::WrongType { .. } => codes::DATA_TYPE_MISMATCH,
        ParseErrorKind::UnknownElement { .. } if path_s.contains(".Principal") => {
            codes::INVALID_PRINCIPAL_KEY
        }
        ParseErrorKind::UnknownElement { .. } => codes::INVALID_POLICY_ELEMENT,
        ParseErrorKind::Duplicate(_) => codes::INVALID_POLICY_ELEMENT,
        ParseErrorKind::Missing("Effect") => codes::MISSING_EFFECT,
        ParseErrorKind::Missing("Action") => codes::MISSING_ACTION,
        ParseErrorKind::Missing(_) => codes::MISSING_STATEMENT,
        ParseErrorKind::Conflict(..) => codes::UNSUPPORTED_ELEMENT_COMBINATION,
        ParseErrorKind::EmptyArray => codes::EMPTY_ARRAY,
        ParseErrorKind::TooMany { .. } => codes::POLICY_SIZE_EXCEEDED,
        ParseErrorKind::InvalidValue { .. } => invalid_value_code(path_s),
    };
    let span = Span {
        offset: e.span().offset(),
        len: e.span().len(),
    };
    let (path, span) = match json::parse(text, crate::MAX_JSON_DEPTH) {
        Ok(tree) => {
            let (p, s) = path_at(&tree, span.offset);
            (p, if span.len > 0 { span } else { s })
        }
        Err(_) => (Vec::new(), span),
    };
    Finding {
        finding_type: FindingType::Error,
        issue_code: code.code,
        details: format!("keyhole refuses this document: {}", e.kind()),
        learn_more_link: code.link(),
        locations: vec![location(text, path, span)],
    }
}

fn invalid_value_code(path: &str) -> codes::Code {
    let after_condition = path.split_once(".Condition.").map(|(_, rest)| rest);
    if path.ends_with(".Effect") {
        codes::INVALID_EFFECT
    } else if path == "$.Version" {
        codes::INVALID_VERSION
    } else if path.contains(".Principal") {
        codes::INVALID_PRINCIPAL_FORMAT
    } else if path.contains(".Action") || path.contains(".NotAction") {
        codes::INVALID_ACTION
    } else if path.contains(".Resource") || path.contains(".NotResource") {
        codes::INVALID_ARN_RESOURCE
    } else if let Some(rest) = after_condition {
        // `Operator` alone is a bad operator; `Operator.key[...]` a bad value.
        let op = rest.split('.').next().unwrap_or_default();
        match (rest.contains('.'), crate::model::Operator::parse(op)) {
            (false, _) | (true, None) => codes::INVALID_CONDITION_OPERATOR,
            (true, Some(o)) => conditions::value_code(o.kind.family()),
        }
    } else {
        codes::INVALID_POLICY_ELEMENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_default(text: &str) -> Vec<Finding> {
        lint(text, &LintOptions::default())
    }

    #[test]
    fn the_three_mistakes_of_issue_17_have_findings_with_locations() {
        let text = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "arn:aws:s3:::b/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
     "Condition": {"StringLike": {"s3:prefx": "home/*"}}},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b/*"}
  ]
}"#;
        let f = lint_default(text);
        let find = |code: &str| {
            f.iter()
                .find(|x| x.issue_code == code)
                .unwrap_or_else(|| panic!("no {code} in {f:#?}"))
        };
        let typo = find("INVALID_ACTION");
        assert!(typo.details.contains("s3:GetObject"), "{}", typo.details);
        assert_eq!(typo.locations[0].path_text(), "Statement[0].Action");
        assert_eq!(
            (typo.locations[0].start.line, typo.locations[0].start.column),
            (4, 34)
        );
        let key = find("INVALID_SERVICE_CONDITION_KEY");
        assert!(key.details.contains("s3:prefix"), "{}", key.details);
        assert_eq!(
            key.locations[0].path_text(),
            "Statement[1].Condition.StringLike.s3:prefx"
        );
        let mismatch = find("RESOURCE_TYPE_MISMATCH");
        assert_eq!(mismatch.locations[0].path_text(), "Statement[2].Action");
        assert!(f.iter().all(|x| x.finding_type != FindingType::Error
            || [
                "INVALID_ACTION",
                "INVALID_SERVICE_CONDITION_KEY",
                "RESOURCE_TYPE_MISMATCH"
            ]
            .contains(&x.issue_code)));
    }

    #[test]
    fn parse_errors_become_one_error_finding_at_the_spot() {
        let text = "{\"Version\": \"2012-10-17\", \"Statement\": {\"Effect\": \"Alow\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\"}}";
        let f = lint_default(text);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].issue_code, "INVALID_EFFECT");
        assert_eq!(f[0].locations[0].path_text(), "Statement.Effect");
        assert_eq!(f[0].locations[0].start.column, 50);
        let f = lint_default("{\"Statement\": [");
        assert_eq!(f[0].issue_code, "JSON_SYNTAX_ERROR");
        let bad_ip = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "not-an-ip"}}}}"#;
        let f = lint_default(bad_ip);
        assert_eq!(f[0].issue_code, "TYPE_MISMATCH_IP_RANGE");
        assert_eq!(
            f[0].locations[0].path_text(),
            "Statement.Condition.IpAddress.aws:SourceIp"
        );
    }

    #[test]
    fn json_has_the_validate_policy_shape() {
        let f = lint_default(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "*"}]}"#,
        );
        let v = findings_to_json(&f);
        let first = &v["findings"][0];
        assert_eq!(first["findingType"], "ERROR");
        assert_eq!(first["issueCode"], "INVALID_ACTION");
        assert!(first["learnMoreLink"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.aws.amazon.com/"));
        assert_eq!(
            first["locations"][0]["path"],
            serde_json::json!([{"value": "Statement"}, {"index": 0}, {"value": "Action"}])
        );
        assert_eq!(first["locations"][0]["span"]["start"]["line"], 1);
        assert!(
            first["locations"][0]["span"]["end"]["offset"]
                .as_u64()
                .unwrap()
                > 0
        );
    }

    #[test]
    fn strictness() {
        let mk = |t| Finding {
            finding_type: t,
            issue_code: "X",
            details: String::new(),
            learn_more_link: String::new(),
            locations: Vec::new(),
        };
        assert!(fails(&[mk(FindingType::Error)], false));
        assert!(!fails(&[mk(FindingType::SecurityWarning)], false));
        assert!(fails(&[mk(FindingType::SecurityWarning)], true));
        assert!(!fails(
            &[mk(FindingType::Warning), mk(FindingType::Suggestion)],
            true
        ));
    }
}
