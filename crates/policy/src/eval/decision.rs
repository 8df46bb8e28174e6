//! The outcome of an evaluation: [`Decision`], the deciding statements and the reasons.

use std::fmt;

use super::{PolicyKind, Request};
use crate::model::Effect;

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// Allowed.
    Allowed,
    /// An applicable `Deny` statement.
    ExplicitlyDenied,
    /// Nothing (or not enough) allows.
    ImplicitlyDenied,
}

impl DecisionKind {
    /// `Allowed`, `ExplicitlyDenied` or `ImplicitlyDenied`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Allowed => "Allowed",
            DecisionKind::ExplicitlyDenied => "ExplicitlyDenied",
            DecisionKind::ImplicitlyDenied => "ImplicitlyDenied",
        }
    }
}

/// Where a statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// Which policy list.
    pub policy_kind: PolicyKind,
    /// Index in that list (0 for the resource and session policy).
    pub policy_index: usize,
    /// The policy's name, if it has one.
    pub policy_name: Option<String>,
    /// Index of the statement in the policy.
    pub statement_index: usize,
    /// The statement's `Sid`.
    pub sid: Option<String>,
    /// The statement's effect.
    pub effect: Effect,
    /// Line of the statement in its document (0 if unknown).
    pub line: u32,
    /// The statement's bytes in its document (empty if unknown); see [`crate::line_col`].
    pub span: crate::json::Span,
}

/// Which part of a statement did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailedElement {
    /// `Resource`/`NotResource` did not match the request's resource.
    Resource,
    /// `Principal`/`NotPrincipal` did not match the caller.
    Principal,
    /// A condition was false.
    Condition {
        /// The operator as written.
        operator: String,
        /// The key as written.
        key: String,
        /// Whether the key was absent from the request.
        key_missing: bool,
    },
}

impl fmt::Display for FailedElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailedElement::Resource => f.write_str("resource does not match"),
            FailedElement::Principal => f.write_str("principal does not match"),
            FailedElement::Condition {
                operator,
                key,
                key_missing: true,
            } => {
                write!(
                    f,
                    "condition `{operator}` on `{key}` is false (key missing from the request)"
                )
            }
            FailedElement::Condition { operator, key, .. } => {
                write!(f, "condition `{operator}` on `{key}` is false")
            }
        }
    }
}

/// A statement whose action matched but which did not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The statement.
    pub statement: StatementRef,
    /// The first element that failed.
    pub element: FailedElement,
}

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialReason {
    /// An explicit deny in a policy of this kind.
    ExplicitDeny(PolicyKind),
    /// No policy of this kind allows.
    NoAllow(PolicyKind),
}

/// A decision with its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The outcome.
    pub kind: DecisionKind,
    /// The statements that decided: the applicable denies, or the allows that granted.
    pub matched: Vec<StatementRef>,
    /// For denials: statements whose action matched but that did not apply.
    pub failures: Vec<Failure>,
    /// Context keys the policies refer to but the request lacks (lowercased, sorted).
    pub missing_context_keys: Vec<String>,
    /// For denials: why.
    pub reason: Option<DenialReason>,
}

impl Decision {
    /// A one-line explanation in the style of AWS access-denied messages.
    pub fn explanation(&self, request: &Request) -> String {
        let head = |verb: &str| {
            format!(
                "{verb} to perform: {} on resource: {}",
                request.action(),
                request.resource()
            )
        };
        match (self.kind, self.reason) {
            (DecisionKind::Allowed, _) => {
                let by: Vec<String> = self.matched.iter().map(describe_ref).collect();
                if by.is_empty() {
                    format!("{} (root user of the account)", head("authorized"))
                } else {
                    format!("{} because of {}", head("authorized"), by.join(", "))
                }
            }
            (_, Some(DenialReason::ExplicitDeny(k))) => {
                let by: Vec<String> = self.matched.iter().map(describe_ref).collect();
                format!(
                    "{} with an explicit deny in {} ({})",
                    head("not authorized"),
                    k.with_article(),
                    by.join(", ")
                )
            }
            (_, Some(DenialReason::NoAllow(k))) => {
                format!(
                    "{} because no {} allows the {} action",
                    head("not authorized"),
                    k.describe(),
                    request.action()
                )
            }
            (_, None) => head("not authorized"),
        }
    }
}

fn describe_ref(r: &StatementRef) -> String {
    let name = r
        .policy_name
        .clone()
        .unwrap_or_else(|| format!("{} policy {}", r.policy_kind.as_str(), r.policy_index));
    let sid = r
        .sid
        .as_ref()
        .map(|s| format!(" `{s}`"))
        .unwrap_or_default();
    if r.line > 0 {
        format!(
            "{name} statement {}{sid} (line {})",
            r.statement_index, r.line
        )
    } else {
        format!("{name} statement {}{sid}", r.statement_index)
    }
}
