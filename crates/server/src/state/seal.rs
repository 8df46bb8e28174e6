//! Secrets at rest: sealed with ChaCha20-Poly1305 under a key derived from the master key.
//!
//! # Security
//! Each purpose has its own key, `HMAC-SHA256(master key, label)` (secrets at rest, session
//! tokens), so the master key itself never encrypts anything. Each value gets a random 96-bit nonce, and the associated data
//! binds a sealed secret to the record it belongs to (e.g. its access key id): a sealed value
//! copied into another row does not open.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;

/// Key-derivation label for secrets stored in the state database.
pub const SECRETS_LABEL: &[u8] = b"keyhole/v1/secrets-at-rest";
/// Key-derivation label for STS session tokens.
pub const SESSION_TOKEN_LABEL: &[u8] = b"keyhole/v1/session-tokens";
const NONCE_LEN: usize = 12;

/// Seals and opens secrets.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

/// A sealed value that does not open (wrong key, tampered, or bound to another record).
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret does not open: the master key changed or the database was tampered with")]
pub struct SealError;

impl Sealer {
    /// A sealer for secrets at rest, keyed from the deployment's master key bytes.
    pub fn new(master_key: &[u8]) -> Result<Sealer, SealError> {
        Sealer::with_label(master_key, SECRETS_LABEL)
    }

    /// A sealer whose key is derived from the master key with `label` (one key per purpose).
    pub fn with_label(master_key: &[u8], label: &[u8]) -> Result<Sealer, SealError> {
        let mut mac =
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(master_key).map_err(|_| SealError)?;
        mac.update(label);
        let key = mac.finalize().into_bytes();
        Ok(Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    /// Seals `plaintext` bound to `context`; the result is base64 text for a database column.
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens a value sealed with the same key and `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| SealError)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        String::from_utf8(pt).map_err(|_| SealError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let s = Sealer::new(&[7u8; 32]).unwrap();
        let sealed = s.seal("wJalrXUtnFEMI", "AKIA1").unwrap();
        assert!(!sealed.contains("wJalr"));
        assert_eq!(s.open(&sealed, "AKIA1").unwrap(), "wJalrXUtnFEMI");
        assert!(s.open(&sealed, "AKIA2").is_err(), "bound to its record");
        let other = Sealer::new(&[8u8; 32]).unwrap();
        assert!(other.open(&sealed, "AKIA1").is_err(), "another master key");
        let mut tampered = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
        assert!(s.open(&tampered, "AKIA1").is_err());
        assert_ne!(
            s.seal("x", "c").unwrap(),
            s.seal("x", "c").unwrap(),
            "fresh nonces"
        );
    }
}
