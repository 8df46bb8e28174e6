//! Secret material: the secret access key and the credentials that carry it.
//!
//! # Security
//!
//! [`SecretKey`] prints as `SecretKey(***)`, is zeroized on drop, compares in constant time and
//! is read only through [`SecretKey::expose`].

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A secret access key.
#[derive(Clone)]
pub struct SecretKey(String);

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SecretKey {
    /// Wraps a secret access key.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself; use only to derive signing keys or to store it encrypted.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretKey {}

/// An access key pair, optionally with the session token of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA...` or `ASIA...`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_key: SecretKey,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_key", &self.secret_key)
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A 32-byte key derived from a secret for one date, region and service.
#[derive(Clone)]
pub(crate) struct SigningKey(pub(crate) [u8; 32]);

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
        let creds = Credentials {
            access_key_id: "AKID".into(),
            secret_key: key.clone(),
            session_token: Some("token-value".into()),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("EXAMPLEKEY"));
        assert!(!shown.contains("token-value"));
        assert_eq!(key.expose(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    }

    #[test]
    fn equality() {
        assert_eq!(SecretKey::new("a"), SecretKey::new("a"));
        assert_ne!(SecretKey::new("a"), SecretKey::new("b"));
        assert_ne!(SecretKey::new("a"), SecretKey::new("ab"));
    }
}
