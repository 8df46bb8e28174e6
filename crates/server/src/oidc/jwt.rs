//! Compact JSON Web Signatures (RFC 7515) as OpenID Connect ID tokens use them: parsing and the
//! signature check, nothing else (the claims are judged by [`super::check_claims`]).
//!
//! # Security
//! The algorithm is taken from the token's header but only from a fixed list of asymmetric ones
//! (RS256/384/512, PS256/384/512, ES256, ES384), and only a key of the matching kind verifies
//! it: `none` and the HMAC algorithms are refused before any key is looked at, so a token cannot
//! pick a public key as an HMAC secret (the classic algorithm-confusion attack). Signatures are
//! checked by ring.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;

use super::jwks::{KeySet, PublicKey};

/// AWS's limit on `WebIdentityToken`: 4 to 20,000 characters
/// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html).
pub const MAX_TOKEN_CHARS: usize = 20_000;
/// The shortest token the API accepts.
pub const MIN_TOKEN_CHARS: usize = 4;

/// The asymmetric algorithms keyhole verifies.
pub const ALGORITHMS: [&str; 8] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

/// Why a token is not acceptable as a JWS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts with a JSON header and payload.
    #[error("the token is not a signed JWT (header.payload.signature, base64url): {0}")]
    Malformed(&'static str),
    /// `none`, HMAC or an algorithm keyhole does not verify.
    #[error("the token's algorithm `{0}` is not accepted (use RS256, RS384, RS512, PS256, PS384, PS512, ES256 or ES384)")]
    Algorithm(String),
    /// No key of the set verifies the signature.
    #[error("the token's signature does not verify with any key of the issuer{}", .0.as_deref().map(|k| format!(" (kid `{k}`)")).unwrap_or_default())]
    Signature(Option<String>),
}

/// The parts of a token, decoded but not yet verified.
#[derive(Debug)]
pub struct Unverified<'t> {
    /// `alg` from the header.
    pub alg: String,
    /// `kid` from the header, if any.
    pub kid: Option<String>,
    /// The claims (the decoded payload).
    pub claims: serde_json::Map<String, serde_json::Value>,
    signing_input: &'t str,
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// A value taken from a token, fit to be quoted in an error: control characters escaped, at
/// most 100 characters (an unauthenticated caller chooses it).
pub fn quoted(v: &str) -> String {
    v.chars().take(100).flat_map(char::escape_debug).collect()
}

/// Decodes a compact JWS without checking its signature (for reading `iss`, which names the
/// keys to check it with).
pub fn decode(token: &str) -> Result<Unverified<'_>, JwsError> {
    if !(MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(&token.len()) {
        return Err(JwsError::Malformed(
            "its length is not 4 to 20,000 characters",
        ));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed("it does not have exactly three parts"));
    };
    let header = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| JwsError::Malformed("its header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header)
        .map_err(|_| JwsError::Malformed("its header is not a JSON object with `alg`"))?;
    if header.crit.is_some() {
        // RFC 7515 4.1.11: extensions the recipient does not understand make the JWS invalid.
        return Err(JwsError::Malformed("its header has `crit` extensions"));
    }
    if !ALGORITHMS.contains(&header.alg.as_str()) {
        return Err(JwsError::Algorithm(quoted(&header.alg)));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| JwsError::Malformed("its payload is not base64url"))?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&payload)
        .map_err(|_| JwsError::Malformed("its payload is not a JSON object"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwsError::Malformed("its signature is not base64url"))?;
    let signing_input = token
        .rsplit_once('.')
        .map(|(input, _)| input)
        .ok_or(JwsError::Malformed("it does not have exactly three parts"))?;
    Ok(Unverified {
        alg: header.alg,
        kid: header.kid,
        claims,
        signing_input,
        signature,
    })
}

fn verify_with(key: &PublicKey, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    let rsa = |params: &'static signature::RsaParameters, n: &[u8], e: &[u8]| {
        signature::RsaPublicKeyComponents { n, e }
            .verify(params, msg, sig)
            .is_ok()
    };
    match (key, alg) {
        (PublicKey::Rsa { n, e }, "RS256") => rsa(&signature::RSA_PKCS1_2048_8192_SHA256, n, e),
        (PublicKey::Rsa { n, e }, "RS384") => rsa(&signature::RSA_PKCS1_2048_8192_SHA384, n, e),
        (PublicKey::Rsa { n, e }, "RS512") => rsa(&signature::RSA_PKCS1_2048_8192_SHA512, n, e),
        (PublicKey::Rsa { n, e }, "PS256") => rsa(&signature::RSA_PSS_2048_8192_SHA256, n, e),
        (PublicKey::Rsa { n, e }, "PS384") => rsa(&signature::RSA_PSS_2048_8192_SHA384, n, e),
        (PublicKey::Rsa { n, e }, "PS512") => rsa(&signature::RSA_PSS_2048_8192_SHA512, n, e),
        (PublicKey::P256(point), "ES256") => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        (PublicKey::P384(point), "ES384") => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        _ => false,
    }
}

impl Unverified<'_> {
    /// Checks the signature with the keys of `set` that qualify for this token's `kid` and `alg`.
    pub fn verify(
        self,
        set: &KeySet,
    ) -> Result<serde_json::Map<String, serde_json::Value>, JwsError> {
        let msg = self.signing_input.as_bytes();
        let ok = set
            .candidates(self.kid.as_deref(), &self.alg)
            .any(|k| verify_with(&k.key, &self.alg, msg, &self.signature));
        if ok {
            Ok(self.claims)
        } else {
            Err(JwsError::Signature(self.kid.as_deref().map(quoted)))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// A P-256 key pair, its JWKS and a signer of compact tokens.
    pub(crate) struct TestIssuer {
        pair: EcdsaKeyPair,
        pub kid: String,
    }

    impl TestIssuer {
        pub(crate) fn new(kid: &str) -> TestIssuer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            TestIssuer {
                pair,
                kid: kid.into(),
            }
        }

        pub(crate) fn jwks_json(&self) -> serde_json::Value {
            let point = self.pair.public_key().as_ref();
            let (x, y) = point[1..].split_at(32);
            serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}]})
        }

        pub(crate) fn jwks(&self) -> KeySet {
            KeySet::parse(self.jwks_json().to_string().as_bytes()).unwrap()
        }

        pub(crate) fn sign(&self, header: serde_json::Value, claims: &serde_json::Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }

        pub(crate) fn token(&self, claims: &serde_json::Value) -> String {
            self.sign(serde_json::json!({"alg": "ES256", "kid": self.kid}), claims)
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_issuers_key_only() {
        let issuer = TestIssuer::new("k1");
        let claims = serde_json::json!({"iss": "https://idp", "sub": "me"});
        let token = issuer.token(&claims);
        let got = decode(&token).unwrap().verify(&issuer.jwks()).unwrap();
        assert_eq!(got.get("sub").and_then(|v| v.as_str()), Some("me"));
        let other = TestIssuer::new("k1");
        assert_eq!(
            decode(&token).unwrap().verify(&other.jwks()).unwrap_err(),
            JwsError::Signature(Some("k1".into()))
        );
        // Another kid: no candidate key at all.
        let renamed = TestIssuer::new("k2");
        assert!(decode(&token).unwrap().verify(&renamed.jwks()).is_err());
    }

    #[test]
    fn a_changed_payload_does_not_verify() {
        let issuer = TestIssuer::new("k1");
        let token = issuer.token(&serde_json::json!({"sub": "me"}));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#),
            parts[2]
        );
        assert!(decode(&forged).unwrap().verify(&issuer.jwks()).is_err());
    }

    /// `none` and HMAC are refused before any key is consulted (RFC 8725 section 3.1: "libraries
    /// MUST enable the caller to specify a supported set of algorithms").
    #[test]
    fn none_and_hmac_are_refused() {
        for alg in ["none", "HS256", "HS512", "EdDSA", "RS1"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let p = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
            let err = decode(&format!("{h}.{p}.")).unwrap_err();
            assert_eq!(err, JwsError::Algorithm(alg.into()));
        }
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","crit":["exp"]}"#);
        assert!(matches!(
            decode(&format!("{h}.e30.AA")),
            Err(JwsError::Malformed(_))
        ));
    }

    #[test]
    fn lengths_and_shapes_are_checked() {
        for bad in ["", "a.b", "a.b.c.d", "!!!.e30.AA"] {
            assert!(matches!(decode(bad), Err(JwsError::Malformed(_))), "{bad}");
        }
        let long = format!("{}.e30.AA", "A".repeat(MAX_TOKEN_CHARS));
        assert!(matches!(decode(&long), Err(JwsError::Malformed(_))));
    }

    proptest! {
        /// Arbitrary input never panics and is never accepted by a key set it was not signed for.
        #[test]
        fn arbitrary_tokens_never_verify(s in "[A-Za-z0-9_.-]{0,400}") {
            let issuer = TestIssuer::new("k1");
            if let Ok(u) = decode(&s) {
                prop_assert!(u.verify(&issuer.jwks()).is_err());
            }
        }
    }
}
