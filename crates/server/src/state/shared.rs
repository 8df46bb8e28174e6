//! The account several nodes share: one row in the database (id, root access key id, root
//! secret sealed under the master key, creation time), written by the first node that starts
//! on an empty database and adopted by every node after it.
//!
//! # Security
//! The master key is not in the database: it comes from a file every node is given
//! (`--master-key-file`). The database alone therefore opens no secret (access keys and the
//! root secret are sealed), and a dump or a backup of it is not a key to the account. The
//! sealed root secret doubles as the check that a joining node holds the right key: it opens
//! under that key or the node is refused.

use super::db::Conn;
use super::seal::Sealer;
use super::StateError;
use crate::params;

/// The table (migration v3); `singleton` is always `account`, so there is at most one row.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS shared_account (
    singleton TEXT PRIMARY KEY, account_id TEXT NOT NULL, root_access_key_id TEXT NOT NULL,
    root_secret_sealed TEXT NOT NULL, created TEXT NOT NULL)";

/// The account as the database holds it, with the root secret opened.
#[derive(Debug, Clone)]
pub struct SharedAccount {
    /// 12-digit account id.
    pub account_id: String,
    /// The root user's access key id.
    pub root_access_key_id: String,
    /// The root user's secret access key.
    pub root_secret: keyhole_sigv4::SecretKey,
    /// When the account was created (RFC 3339).
    pub created: String,
    /// True when this call created it (the database had none).
    pub created_now: bool,
}

fn context(key_id: &str) -> String {
    format!("root-secret:{key_id}")
}

/// Adopts the database's account, or (on an empty database) stores `fresh` as the account.
/// Runs in one write transaction under the engine's write lock, so of several nodes starting
/// together exactly one creates it. Refused when the stored root secret does not open with
/// `master_key`.
pub fn join(
    tx: &dyn Conn,
    master_key: &[u8],
    fresh: &SharedAccount,
) -> Result<SharedAccount, StateError> {
    let sealer = Sealer::new(master_key)?;
    let stored = tx.query_opt(
        "SELECT account_id, root_access_key_id, root_secret_sealed, created FROM shared_account WHERE singleton = 'account'",
        params![],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
            ))
        },
    )?;
    match stored {
        Some((account_id, key_id, sealed, created)) => {
            let secret = sealer.open(&sealed, &context(&key_id)).map_err(|_| {
                StateError::Engine(format!(
                    "the master key is not the one account {account_id}'s database was sealed with: give every node the same --master-key-file"
                ))
            })?;
            Ok(SharedAccount {
                account_id,
                root_access_key_id: key_id,
                root_secret: keyhole_sigv4::SecretKey::new(secret),
                created,
                created_now: false,
            })
        }
        None => {
            let sealed = sealer.seal(
                fresh.root_secret.expose(),
                &context(&fresh.root_access_key_id),
            )?;
            tx.execute(
                "INSERT INTO shared_account (singleton, account_id, root_access_key_id, root_secret_sealed, created) VALUES ('account', ?1, ?2, ?3, ?4)",
                params![fresh.account_id, fresh.root_access_key_id, sealed, fresh.created],
            )?;
            Ok(SharedAccount {
                created_now: true,
                ..fresh.clone()
            })
        }
    }
}
