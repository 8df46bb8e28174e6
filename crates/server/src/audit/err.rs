//! Errors of the audit trail.

use std::path::PathBuf;

/// The trail could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// An I/O failure on a trail file.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The last event on disk does not check out, so the chain cannot be continued.
    #[error("the audit trail is damaged at {position}: {reason}; run `keyhole audit verify`")]
    Damaged {
        /// `file:line`.
        position: String,
        /// What is wrong.
        reason: String,
    },
    /// An event could not be serialized.
    #[error("cannot encode an audit event: {0}")]
    Encode(serde_json::Error),
    /// The sink could not make the event durable.
    #[error("the audit trail cannot be written")]
    Unavailable,
}
