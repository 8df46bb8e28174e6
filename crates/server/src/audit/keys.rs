//! The audit signing key (Ed25519) and the public keys `verify` trusts.
//!
//! The private key is a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`), as written by
//! `keyhole audit keygen` or `openssl genpkey -algorithm ed25519`; the public key a SPKI PEM file
//! (`-----BEGIN PUBLIC KEY-----`, `openssl pkey -pubout`). A key's fingerprint is the lowercase
//! hex SHA-256 of its SPKI DER encoding, so it can be recomputed anywhere with
//! `openssl pkey -pubin -in audit.pub -outform DER | sha256sum`.
//!
//! # Security
//! Digests carry their signer's public key and fingerprint, but [`TrustedKeys`] only accepts a
//! key the operator gave (a public key file) or pinned (a fingerprint): a key found in the
//! directory being checked is never trusted by itself. The private key is read once, at start,
//! from a path the operator chooses (it may be outside the data directory, `/dev/fd/N`, or a
//! systemd credential); it is zeroized when dropped and never printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::err::AuditError;

/// The signature algorithm named in every digest.
pub const SIGNATURE_ALGORITHM: &str = "Ed25519";

/// A public key and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    fingerprint: String,
}

impl PublicKey {
    fn new(key: VerifyingKey) -> PublicKey {
        let der = key
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        PublicKey {
            key,
            fingerprint: hex::encode(Sha256::digest(der)),
        }
    }

    /// Parses a SPKI PEM public key.
    pub fn from_pem(text: &str) -> Result<PublicKey, String> {
        VerifyingKey::from_public_key_pem(text.trim())
            .map(PublicKey::new)
            .map_err(|e| {
                format!("not an Ed25519 public key in PEM (`-----BEGIN PUBLIC KEY-----`): {e}")
            })
    }

    /// Reads a SPKI PEM public key file.
    pub fn read(path: &Path) -> Result<PublicKey, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::Key {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        PublicKey::from_pem(&text).map_err(|reason| AuditError::Key {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses the raw key embedded in a digest (base64 of its 32 bytes).
    pub fn from_embedded(b64: &str) -> Option<PublicKey> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let raw: [u8; 32] = bytes.try_into().ok()?;
        VerifyingKey::from_bytes(&raw).ok().map(PublicKey::new)
    }

    /// The raw key as embedded in digests.
    pub fn embedded(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key.as_bytes())
    }

    /// Lowercase hex SHA-256 of the SPKI DER encoding.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// SPKI PEM text.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap_or_default()
    }

    /// Whether `signature` (64 bytes) signs `message` (strict verification: no malleable or
    /// small-order forms).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &sig).is_ok()
    }
}

/// The private signing key.
pub struct Signer {
    key: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.public.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Signer {
    fn from_key(key: SigningKey) -> Signer {
        let public = PublicKey::new(key.verifying_key());
        Signer { key, public }
    }

    /// A new random key (from the operating system's generator).
    pub fn generate() -> Signer {
        Signer::from_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Reads a PKCS#8 PEM private key (a path, `/dev/fd/N`, a systemd credential...).
    pub fn read(path: &Path) -> Result<Signer, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::Key {
            path: path.to_owned(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file; create a key with `keyhole audit keygen --out FILE` (or `openssl genpkey -algorithm ed25519 -out FILE`)".into()
            } else {
                e.to_string()
            },
        })?;
        let text = zeroize::Zeroizing::new(text);
        SigningKey::from_pkcs8_pem(text.trim())
            .map(Signer::from_key)
            .map_err(|e| AuditError::Key {
                path: path.to_owned(),
                reason: format!(
                    "not an Ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`): {e}"
                ),
            })
    }

    /// Writes the key as PKCS#8 PEM, mode 0600, refusing to replace an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), AuditError> {
        let err = |e: std::io::Error| AuditError::Io {
            action: "create the audit signing key",
            path: path.to_owned(),
            source: e,
        };
        // PKCS#8 v1 (the private key alone), as `openssl genpkey -algorithm ed25519` writes it:
        // OpenSSL 3.0 cannot read the v2 form that also carries the public key.
        let pem = {
            ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: self.key.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| err(std::io::Error::other(e.to_string())))?
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(path).map_err(err)?;
        f.write_all(pem.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(())
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Parses a fingerprint as the operator may write it: 64 hex digits, optionally prefixed
/// `sha256:`, any case.
pub fn parse_fingerprint(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    (t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

/// Parses a pinned key as the operator may write it: a fingerprint ([`parse_fingerprint`]),
/// optionally followed by `@SEQ` for a key retired by rotation, which may sign only the digests
/// before #SEQ (the first its successor signed). Returns it normalized (`hex` or `hex@SEQ`).
pub fn parse_pin(text: &str) -> Option<String> {
    match text.trim().split_once('@') {
        None => parse_fingerprint(text),
        Some((fp, seq)) => {
            let seq: u64 = seq.trim().parse().ok().filter(|s| *s > 1)?;
            Some(format!("{}@{seq}", parse_fingerprint(fp)?))
        }
    }
}

/// The keys a digest may be signed with: public keys the operator gave, and fingerprints the
/// operator pinned (a digest signed by a pinned key carries that key; it is accepted when its
/// fingerprint is pinned). A pin `FINGERPRINT@SEQ` retires its key from digest #SEQ on.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
    fingerprints: Vec<String>,
    retired: Vec<(String, u64)>,
}

impl TrustedKeys {
    /// Trusts these keys and these pins ([`parse_pin`]'s forms).
    pub fn new(keys: Vec<PublicKey>, pins: Vec<String>) -> TrustedKeys {
        let mut fingerprints = Vec::new();
        let mut retired = Vec::new();
        for pin in pins {
            match pin.split_once('@') {
                Some((fp, seq)) => {
                    if let Ok(seq) = seq.parse() {
                        retired.push((fp.to_owned(), seq));
                    }
                    fingerprints.push(fp.to_owned());
                }
                None => fingerprints.push(pin),
            }
        }
        TrustedKeys {
            keys,
            fingerprints,
            retired,
        }
    }

    /// The first digest the key `fingerprint` may no longer sign, if it was retired.
    pub fn retired_from(&self, fingerprint: &str) -> Option<u64> {
        self.retired
            .iter()
            .filter(|(f, _)| f == fingerprint)
            .map(|(_, s)| *s)
            .min()
    }

    /// Every retired key and the first digest it may no longer sign.
    pub fn retirements(&self) -> &[(String, u64)] {
        &self.retired
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.fingerprints.is_empty()
    }

    /// The trusted fingerprints, for messages.
    pub fn describe(&self) -> String {
        let mut all: Vec<&str> = self.keys.iter().map(|k| k.fingerprint()).collect();
        all.extend(self.fingerprints.iter().map(String::as_str));
        all.dedup();
        all.join(", ")
    }

    /// The key to check a digest with, given the fingerprint and key it names; `None` when the
    /// operator trusts neither.
    pub fn resolve(&self, fingerprint: &str, embedded: &str) -> Option<PublicKey> {
        if let Some(k) = self.keys.iter().find(|k| k.fingerprint() == fingerprint) {
            return Some(k.clone());
        }
        if self.fingerprints.iter().any(|f| f == fingerprint) {
            return PublicKey::from_embedded(embedded).filter(|k| k.fingerprint() == fingerprint);
        }
        None
    }
}

/// Where the signing key is, and whether it lies inside the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLocation {
    /// The file.
    pub path: PathBuf,
    /// True for the default location under the data directory.
    pub in_data_dir: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_signatures_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let s = Signer::generate();
        s.write_new(&path).unwrap();
        assert!(s.write_new(&path).is_err(), "never replaces a key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = Signer::read(&path).unwrap();
        assert_eq!(back.public(), s.public());
        let sig = back.sign(b"m");
        assert!(s.public().verifies(b"m", &sig));
        assert!(!s.public().verifies(b"n", &sig));
        let pem = s.public().to_pem();
        assert_eq!(&PublicKey::from_pem(&pem).unwrap(), s.public());
        assert_eq!(
            PublicKey::from_embedded(&s.public().embedded()).as_ref(),
            Some(s.public())
        );
        assert!(!format!("{s:?}").contains("key:"));
    }

    #[test]
    fn openssl_style_keys_are_read() {
        // RFC 8410 section 10.3's example private key and its public key.
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, private).unwrap();
        let s = Signer::read(&path).unwrap();
        assert_eq!(s.public(), &PublicKey::from_pem(public).unwrap());
        // The fingerprint is SHA-256 over the 44-byte SPKI DER.
        let der = base64::engine::general_purpose::STANDARD
            .decode("MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=")
            .unwrap();
        assert_eq!(s.public().fingerprint(), hex::encode(Sha256::digest(der)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_key_is_read_from_a_file_descriptor() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let s = Signer::generate();
        s.write_new(&path).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let via_fd = Signer::read(Path::new(&format!("/dev/fd/{}", f.as_raw_fd()))).unwrap();
        assert_eq!(via_fd.public(), s.public());
    }

    #[test]
    fn bad_key_files_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = Signer::read(&missing).unwrap_err().to_string();
        assert!(
            e.contains("nope.pem") && e.contains("keyhole audit keygen"),
            "{e}"
        );
        std::fs::write(&missing, "hello").unwrap();
        let e = Signer::read(&missing).unwrap_err().to_string();
        assert!(e.contains("PKCS#8"), "{e}");
    }

    #[test]
    fn only_given_or_pinned_keys_are_trusted() {
        let a = Signer::generate();
        let b = Signer::generate();
        let by_key = TrustedKeys::new(vec![a.public().clone()], vec![]);
        assert!(by_key
            .resolve(a.public().fingerprint(), &b.public().embedded())
            .is_some_and(|k| &k == a.public()));
        assert!(by_key
            .resolve(b.public().fingerprint(), &b.public().embedded())
            .is_none());
        let pinned = TrustedKeys::new(vec![], vec![b.public().fingerprint().to_owned()]);
        assert!(pinned
            .resolve(b.public().fingerprint(), &b.public().embedded())
            .is_some());
        // A digest naming the pinned fingerprint but carrying another key is refused.
        assert!(pinned
            .resolve(b.public().fingerprint(), &a.public().embedded())
            .is_none());
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{}", "AB".repeat(32))),
            Some("ab".repeat(32))
        );
        assert_eq!(parse_fingerprint("abc"), None);
    }
}
