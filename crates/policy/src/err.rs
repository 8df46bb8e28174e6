//! Errors of the policy crate: parse errors (with JSON path, line/column and source span).

use miette::SourceSpan;

/// What is wrong with a policy document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// The document is larger than [`crate::MAX_POLICY_BYTES`].
    #[error("document is {size} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Size of the document.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A value has the wrong JSON type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What would be valid.
        expected: String,
        /// The JSON type found.
        found: &'static str,
    },
    /// An element name that the grammar does not have.
    #[error("unknown element `{name}`; valid elements here are {valid}")]
    UnknownElement {
        /// The name found.
        name: String,
        /// The valid names.
        valid: &'static str,
    },
    /// The same element appears twice in one object.
    #[error("duplicate element `{0}`")]
    Duplicate(String),
    /// A required element is absent.
    #[error("missing element `{0}`")]
    Missing(&'static str),
    /// Two elements that exclude each other are both present.
    #[error("`{0}` and `{1}` cannot both be present")]
    Conflict(&'static str, &'static str),
    /// An array that must hold at least one value is empty.
    #[error("empty array; give at least one value")]
    EmptyArray,
    /// A value that does not fit its element.
    #[error("invalid value `{value}`; expected {expected}")]
    InvalidValue {
        /// The value found.
        value: String,
        /// What would be valid.
        expected: String,
    },
    /// A count over its limit.
    #[error("more than {max} {what}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
}

/// A policy document that cannot be accepted, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{kind} at `{path}` (line {line}, column {column})")]
#[diagnostic(code(keyhole::policy::parse))]
pub struct ParseError {
    kind: ParseErrorKind,
    path: String,
    line: u32,
    column: u32,
    #[label("here")]
    span: SourceSpan,
}

impl ParseError {
    pub(crate) fn new(
        kind: ParseErrorKind,
        path: String,
        text: &str,
        offset: usize,
        len: usize,
    ) -> Self {
        let (line, column) = crate::json::line_col(text, offset);
        Self {
            kind,
            path,
            line,
            column,
            span: SourceSpan::new(offset.into(), len),
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The JSON path of the offending value, e.g. `$.Statement[1].Effect`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// 1-based line of the offending value.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// 1-based column (in characters) of the offending value.
    pub fn column(&self) -> u32 {
        self.column
    }

    /// Byte span of the offending value in the document.
    pub fn span(&self) -> SourceSpan {
        self.span
    }
}

/// A parsed policy that cannot be used in the role it was given (for example a `Principal` in
/// an identity-based policy), or a hand-built model with invalid values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("statement {statement}: {message}")]
#[diagnostic(code(keyhole::policy::compile))]
pub struct CompileError {
    pub(crate) statement: usize,
    pub(crate) message: String,
}

impl CompileError {
    /// Index of the offending statement.
    pub fn statement(&self) -> usize {
        self.statement
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}
