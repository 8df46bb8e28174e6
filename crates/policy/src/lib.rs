//! keyhole-policy: the AWS IAM policy language for keyhole — grammar, parser with precise
//! diagnostics, compiled policies and an evaluator that decides as AWS does and says why.
//!
//! The crate is pure: no I/O, no async.
#![deny(missing_docs)]

pub mod condition;
pub mod context;
pub mod err;
pub mod eval;
pub(crate) mod json;
pub mod model;
pub mod parse;
pub mod pattern;
pub mod s3;
pub mod simulate;

pub use context::{Context, ContextValue};
pub use err::{CompileError, ParseError, ParseErrorKind};
pub use eval::{
    CompiledPolicy, Decision, DecisionKind, DenialReason, Evaluator, FailedElement, Failure,
    Policies, PolicyError, PolicyKind, Request, RequestPrincipal, StatementRef,
};
pub use json::{line_col, Span};
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
