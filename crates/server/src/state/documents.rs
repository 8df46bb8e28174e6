//! The history of policy documents, by content: every identity, managed (each version), trust
//! and bucket policy document the state has stored, keyed by the SHA-256 of its text.
//!
//! A denied request's audit event names the documents its decision was made with by these
//! digests (`audit::event::Evaluation`), so `keyhole audit explain` can rebuild the decision as
//! it was, even after an inline policy, a trust policy or a bucket policy was replaced (those
//! have no versions of their own) or a managed policy version was deleted. Rows are only ever
//! added: a document is written in the same transaction that stores it (and migration 8 added
//! every document stored before the table existed), so a digest the trail names is here unless
//! the document was stored before that migration and replaced before it ran.
//!
//! The digest is computed when a policy is stored and when it is compiled into the snapshot,
//! never per request.

use sha2::{Digest, Sha256};

use super::db::Conn;
use super::StateError;
use crate::params;

/// The table (migration 8).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS policy_documents (
    digest TEXT PRIMARY KEY, document TEXT NOT NULL, first_stored TEXT NOT NULL)";

/// The digest of a policy document: lowercase hex SHA-256 of its text as stored.
pub fn digest(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

/// Adds `document` to the history (nothing when it is already there); returns its digest.
pub fn remember(db: &dyn Conn, document: &str) -> Result<String, StateError> {
    let d = digest(document);
    db.execute(
        "INSERT INTO policy_documents (digest, document, first_stored) VALUES (?1, ?2, ?3)
         ON CONFLICT (digest) DO NOTHING",
        params![d, document, super::now()],
    )?;
    Ok(d)
}

/// The document whose digest is `digest`, if the history has it.
pub fn find(db: &dyn Conn, digest: &str) -> Result<Option<String>, StateError> {
    db.query_opt(
        "SELECT document FROM policy_documents WHERE digest = ?1",
        params![digest],
        |r| r.get(0),
    )
}

/// Adds every document the state holds now (migration 8, for databases that stored policies
/// before the history existed).
pub fn remember_all(db: &dyn Conn) -> Result<usize, StateError> {
    let mut docs: Vec<String> = Vec::new();
    for sql in [
        "SELECT document FROM user_policies",
        "SELECT document FROM group_policies",
        "SELECT document FROM role_policies",
        "SELECT document FROM managed_policies",
        "SELECT document FROM policy_versions",
        "SELECT trust_policy FROM roles",
        "SELECT document FROM bucket_policies",
        "SELECT policy FROM jobs",
    ] {
        docs.extend(db.query_map(sql, params![], |r| r.get::<String>(0))?);
    }
    for d in &docs {
        remember(db, d)?;
    }
    Ok(docs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_the_sha256_of_the_text() {
        // echo -n '{}' | sha256sum
        assert_eq!(
            digest("{}"),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_ne!(digest("{ }"), digest("{}"), "the text, not its meaning");
    }
}
