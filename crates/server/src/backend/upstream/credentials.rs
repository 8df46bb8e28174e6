//! keyhole's own credentials for the upstream: where they come from ([`CredentialSource`], given
//! by the binary, which knows the AWS credential chain) and how they stay fresh.
//!
//! # Security
//! These credentials are the gateway's, never a client's. They live only here and in the
//! signatures of upstream requests: `Credentials`'s `Debug` redacts the secret and the token, no
//! error message quotes them, and nothing writes them to the audit trail.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use keyhole_sigv4::Credentials;

/// Where the upstream credentials come from.
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// Reads the credentials (again); the error says where it looked and what is wrong, without
    /// any secret. May block (it can read files or run `credential_process`).
    fn resolve(&self) -> Result<Credentials, String>;

    /// Where the credentials come from, for logs (`shared credentials file F [profile P]`).
    fn describe(&self) -> String;
}

/// Fixed credentials (tests, and callers that resolve them once).
#[derive(Debug)]
pub struct StaticCredentials(pub Credentials);

impl CredentialSource for StaticCredentials {
    fn resolve(&self) -> Result<Credentials, String> {
        Ok(Credentials {
            access_key_id: self.0.access_key_id.clone(),
            secret_key: keyhole_sigv4::SecretKey::new(self.0.secret_key.expose()),
            session_token: self.0.session_token.clone(),
        })
    }

    fn describe(&self) -> String {
        "fixed credentials".to_owned()
    }
}

/// How often temporary credentials (with a session token) are read again. AWS's SDKs renew
/// temporary credentials five minutes before they expire; a source whose credentials are renewed
/// at the source (a sidecar rewriting the file, `credential_process`) is read this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// The credentials in use, replaced when they are read again.
#[derive(Debug)]
pub struct CredentialCell {
    current: RwLock<Arc<Credentials>>,
    source: Arc<dyn CredentialSource>,
}

impl CredentialCell {
    /// Reads the credentials once; fails when the source has none.
    pub fn open(source: Arc<dyn CredentialSource>) -> Result<Arc<CredentialCell>, String> {
        let first = source.resolve()?;
        Ok(Arc::new(CredentialCell {
            current: RwLock::new(Arc::new(first)),
            source,
        }))
    }

    /// The credentials to sign with now.
    pub fn current(&self) -> Arc<Credentials> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the credentials again (on a blocking thread); on failure the old ones stay and the
    /// failure is logged.
    pub async fn refresh(self: &Arc<Self>) {
        let me = self.clone();
        let fresh = tokio::task::spawn_blocking(move || me.source.resolve()).await;
        match fresh {
            Ok(Ok(c)) => {
                let mut slot = match self.current.write() {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *slot = Arc::new(c);
            }
            Ok(Err(e)) => {
                tracing::warn!(source = %self.source.describe(), error = %e, "cannot read the upstream credentials again; the previous ones stay in use");
            }
            Err(e) => tracing::warn!(error = %e, "reading the upstream credentials failed"),
        }
    }

    /// Re-reads temporary credentials every [`REFRESH_EVERY`] in the background, for as long as
    /// the cell is in use.
    pub fn keep_fresh(self: &Arc<Self>) {
        if self.current().session_token.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(cell) = weak.upgrade() else { return };
                cell.refresh().await;
            }
        });
    }
}
