//! JSON Web Key sets (RFC 7517): the public keys an OpenID Connect issuer signs its tokens with.
//!
//! Only signing keys keyhole can verify with are kept: RSA keys (`kty = RSA`, modulus of 2048 to
//! 8192 bits, as ring requires) and elliptic-curve keys on P-256 and P-384. A key whose `use` is
//! not `sig`, or which carries private parameters (`d`), is skipped, never an error: an issuer's
//! set may hold keys for other purposes. A set with no usable key at all is an error, so that a
//! misconfigured issuer is reported as such rather than as "unknown key" on every token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// The largest JWKS document accepted (real sets are a few KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The public part of one verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: big-endian modulus and exponent.
    Rsa {
        /// Modulus `n`.
        n: Vec<u8>,
        /// Exponent `e`.
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point (`04 || x || y`).
    P256(Vec<u8>),
    /// An uncompressed P-384 point.
    P384(Vec<u8>),
}

impl PublicKey {
    /// The JWS `alg` values this key can verify.
    pub fn verifies(&self, alg: &str) -> bool {
        match self {
            PublicKey::Rsa { .. } => matches!(
                alg,
                "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
            ),
            PublicKey::P256(_) => alg == "ES256",
            PublicKey::P384(_) => alg == "ES384",
        }
    }
}

/// One usable key of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// Its `kid`, if the issuer named it.
    pub kid: Option<String>,
    /// Its `alg`, if the issuer pinned one.
    pub alg: Option<String>,
    /// The key.
    pub key: PublicKey,
}

/// A parsed key set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    /// The usable keys, in document order.
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Why a key set could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    #[error("not a JSON Web Key set (a JSON object with a `keys` array): {0}")]
    NotASet(String),
    /// Larger than [`MAX_JWKS_BYTES`].
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// No key keyhole can verify with.
    #[error("the key set holds no RSA (2048-8192 bit) or P-256/P-384 signing key")]
    NoUsableKey,
}

fn text<'a>(m: &'a serde_json::Map<String, serde_json::Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(serde_json::Value::as_str)
}

fn b64(m: &serde_json::Map<String, serde_json::Value>, k: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text(m, k)?.trim_end_matches('='))
        .ok()
}

/// Strips the leading zero bytes of a big-endian integer.
fn unsigned(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

fn parse_key(m: &serde_json::Map<String, serde_json::Value>) -> Option<Jwk> {
    if m.contains_key("d") || text(m, "use").is_some_and(|u| u != "sig") {
        return None;
    }
    let key = match text(m, "kty")? {
        "RSA" => {
            let n = unsigned(b64(m, "n")?);
            let e = unsigned(b64(m, "e")?);
            let bits = n.len() * 8;
            if !(2048..=8192).contains(&bits) || e.is_empty() {
                return None;
            }
            PublicKey::Rsa { n, e }
        }
        "EC" => {
            let (len, crv) = match text(m, "crv")? {
                "P-256" => (32, 256),
                "P-384" => (48, 384),
                _ => return None,
            };
            let x = b64(m, "x")?;
            let y = b64(m, "y")?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if crv == 256 {
                PublicKey::P256(point)
            } else {
                PublicKey::P384(point)
            }
        }
        _ => return None,
    };
    Some(Jwk {
        kid: text(m, "kid").map(str::to_owned),
        alg: text(m, "alg").map(str::to_owned),
        key,
    })
}

impl KeySet {
    /// Parses a JWKS document.
    pub fn parse(doc: &[u8]) -> Result<KeySet, JwksError> {
        if doc.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let raw: RawSet =
            serde_json::from_slice(doc).map_err(|e| JwksError::NotASet(e.to_string()))?;
        let keys: Vec<Jwk> = raw.keys.iter().filter_map(parse_key).collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(KeySet { keys })
    }

    /// The keys that may have signed a token with header `kid` and `alg`: the key named by `kid`
    /// when the token names one, else every key of a kind that verifies `alg`; a key pinned to
    /// another `alg` never qualifies (RFC 7517 section 4.4).
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: &'a str,
    ) -> impl Iterator<Item = &'a Jwk> + 'a {
        self.keys.iter().filter(move |k| {
            k.key.verifies(alg)
                && k.alg.as_deref().is_none_or(|a| a == alg)
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }

    /// Whether the set names key `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_jwk(extra: &str) -> String {
        let n = URL_SAFE_NO_PAD.encode([0xC3u8; 256]);
        format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB","kid":"r1"{extra}}}"#)
    }

    #[test]
    fn keeps_only_public_signing_keys_it_can_verify_with() {
        let ec_x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let doc = format!(
            r#"{{"keys":[{},{},{},{{"kty":"EC","crv":"P-256","x":"{ec_x}","y":"{ec_x}","kid":"e1"}},{{"kty":"oct","k":"c2VjcmV0"}},{{"kty":"EC","crv":"P-521","x":"{ec_x}","y":"{ec_x}"}}]}}"#,
            rsa_jwk(""),
            rsa_jwk(r#","use":"enc""#),
            rsa_jwk(r#","d":"AQAB""#),
        );
        let set = KeySet::parse(doc.as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 2, "{set:?}");
        assert!(set.has_kid("r1") && set.has_kid("e1"));
        assert_eq!(set.candidates(Some("r1"), "RS256").count(), 1);
        assert_eq!(set.candidates(Some("r1"), "ES256").count(), 0);
        assert_eq!(set.candidates(None, "ES256").count(), 1);
        assert_eq!(set.candidates(Some("zz"), "RS256").count(), 0);
        assert_eq!(set.candidates(None, "HS256").count(), 0);
    }

    #[test]
    fn a_key_pinned_to_one_alg_verifies_only_that_one() {
        let doc = format!(r#"{{"keys":[{}]}}"#, rsa_jwk(r#","alg":"RS256""#));
        let set = KeySet::parse(doc.as_bytes()).unwrap();
        assert_eq!(set.candidates(None, "RS256").count(), 1);
        assert_eq!(set.candidates(None, "PS256").count(), 0);
    }

    #[test]
    fn weak_or_unusable_sets_are_errors() {
        let short = URL_SAFE_NO_PAD.encode([0xC3u8; 128]);
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","n":"{short}","e":"AQAB"}}]}}"#);
        assert_eq!(KeySet::parse(doc.as_bytes()), Err(JwksError::NoUsableKey));
        assert!(matches!(
            KeySet::parse(b"[1,2]"),
            Err(JwksError::NotASet(_))
        ));
        assert_eq!(
            KeySet::parse(&vec![b' '; MAX_JWKS_BYTES + 1]),
            Err(JwksError::TooLarge)
        );
    }
}
