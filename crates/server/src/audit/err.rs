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
    /// The signing key or a public key could not be read.
    #[error("audit key `{path}`: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// At start, the trail on disk does not match the last signed digest (or has none).
    #[error("the audit trail does not match its signed digests: {reason}. The gateway did not start. See what changed with `keyhole audit verify --data-dir DATA_DIR --fingerprint {fingerprint}`; then restore the audit directory from a copy, or start once with --audit-accept-discontinuity to record the loss in a signed discontinuity digest and go on")]
    Mismatch {
        /// What does not match.
        reason: String,
        /// The signing key's fingerprint (for the verify command).
        fingerprint: String,
    },
    /// A file of the trail is not what the writer wrote (swapped, cut or extended).
    #[error("audit tampering detected on `{path}`: {reason}")]
    Tampered {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The sink could not make the event durable.
    #[error("the audit trail cannot be written")]
    Unavailable,
}

/// Maps an I/O error on `path` to [`AuditError::Io`] (for `map_err`).
pub(crate) fn io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> AuditError {
    let path = path.to_owned();
    move |source| AuditError::Io {
        action,
        path,
        source,
    }
}
