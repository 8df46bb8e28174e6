//! keyhole-policy: the AWS IAM policy language for keyhole — grammar, parser with precise
//! diagnostics, compiled policies and an evaluator that decides as AWS does and says why.
//!
//! The crate is pure: no I/O, no async. The pipeline follows the modules:
//! [`parse`] (JSON text → [`model`], errors with JSON path and line/column) →
//! [`eval::CompiledPolicy`] (compiled once: action sets, wildcard matchers, parsed CIDRs and
//! dates, the context keys the policy needs) → [`Evaluator`] (request → [`Decision`]).
//! [`s3`] holds the S3 action and condition-key catalogue, [`simulate`] the JSON simulator of
//! DESIGN.md section 4.
//!
//! ```
//! use keyhole_policy::{CompiledPolicy, Context, DecisionKind, Evaluator, Policies, PolicyKind, Request, RequestPrincipal};
//!
//! let job = CompiledPolicy::from_json(r#"{
//!     "Version": "2012-10-17",
//!     "Statement": [{"Sid": "Write", "Effect": "Allow", "Action": "s3:PutObject",
//!                    "Resource": "arn:aws:s3:::models/run-42/*",
//!                    "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.42/32"}}}]
//! }"#, PolicyKind::Identity)?;
//! let mut ctx = Context::new();
//! ctx.insert("aws:SourceIp", "203.0.113.42");
//! let who = RequestPrincipal::from_arn("arn:aws:sts::111122223333:assumed-role/jobs/run-42", None);
//! let req = Request::new(who, "s3:PutObject", "arn:aws:s3:::models/run-42/w.bin", None, ctx);
//! let identity = [job];
//! let policies = Policies { identity: &identity, ..Policies::default() };
//! assert_eq!(Evaluator::is_allowed(&policies, &req), DecisionKind::Allowed); // allocation-free
//! let decision = Evaluator::evaluate(&policies, &req); // with the deciding statements
//! assert_eq!(decision.matched[0].sid.as_deref(), Some("Write"));
//! # Ok::<(), keyhole_policy::PolicyError>(())
//! ```
#![deny(missing_docs)]

pub mod catalogue;
pub mod condition;
pub mod context;
pub mod err;
pub mod eval;
pub(crate) mod json;
pub mod lint;
pub mod model;
pub mod parse;
pub mod pattern;
pub mod s3;
pub mod simulate;

pub use context::{Context, ContextValue};
pub use err::{CompileError, ParseError, ParseErrorKind};
pub use eval::{
    CompiledPolicy, Decision, DecisionKind, DenialReason, Evaluator, FailedElement, Failure,
    Policies, PolicyError, PolicyKind, Request, RequestPrincipal, ResourceGate, StatementRef,
};
pub use json::{line_col, Span};
pub use lint::{lint, Finding, FindingType, LintOptions, LintPolicyType};
pub use model::Policy;
pub use parse::parse_policy;
pub use simulate::{
    simulate, simulate_json, PolicyText, SimulateError, SimulateInput, SimulateOutput,
};

/// Largest accepted policy document, in bytes.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;
/// Most statements in one document.
pub const MAX_STATEMENTS: usize = 10_000;
/// Deepest JSON nesting accepted (a valid policy needs 7).
pub const MAX_JSON_DEPTH: usize = 16;
/// Most values in one element (one `Action` array, one condition key's values...).
pub const MAX_VALUES_PER_ELEMENT: usize = 10_000;
