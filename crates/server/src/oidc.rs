//! OpenID Connect web identity: the tokens `sts:AssumeRoleWithWebIdentity` accepts.
//!
//! A token is accepted only when every check below holds, in this order (the model is AWS's IAM
//! OIDC identity providers, https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html):
//! 1. it is a compact JWS of 4 to 20,000 characters signed with an asymmetric algorithm
//!    ([`jwt`]; `none` and HMAC are refused before any key is consulted);
//! 2. its `iss` is the URL of an OIDC provider registered in the account (IAM
//!    `CreateOpenIDConnectProvider`); a token from any other issuer is refused without fetching
//!    anything;
//! 3. its signature verifies with a key of that issuer ([`keys`]: the issuer's JWKS, fetched
//!    over HTTPS through its discovery document, or read from a file the operator configured);
//! 4. its claims ([`check_claims`]): `aud` names one of the provider's client ids, `sub` is
//!    present, `exp` is not past, `nbf` and `iat` are not in the future, each with
//!    [`LEEWAY_SECS`] of clock skew; session tags in the `https://aws.amazon.com/tags` claim are
//!    well formed.
//!
//! What a token proves is a [`WebIdentity`]; the trust policy of the role then decides, with
//! the condition keys AWS defines for it (`ISSUER:sub`, `ISSUER:aud`, `ISSUER:oaud`,
//! `ISSUER:amr`, `aws:FederatedProvider`).

use serde::{Deserialize, Serialize};

use crate::error::S3Error;
use http::StatusCode;

pub mod jwks;
pub mod jwt;
pub mod keys;

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// The claim AWS reads session tags from
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_adding-assume-role-idp).
pub const TAGS_CLAIM: &str = "https://aws.amazon.com/tags";

/// The most session tags a session may have (AWS: 50).
pub const MAX_SESSION_TAGS: usize = 50;

/// Why a web identity token was refused; each maps to the STS error AWS answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed signed JWT, or a refused algorithm.
    #[error(transparent)]
    Jws(#[from] jwt::JwsError),
    /// `iss` missing.
    #[error("the token has no `iss` claim")]
    NoIssuer,
    /// No provider registered for the issuer.
    #[error("No OpenIDConnect provider found in your account for {0}")]
    UnknownIssuer(String),
    /// The provider's keys could not be had.
    #[error("Couldn't retrieve verification key from your identity provider: {0}")]
    Communication(String),
    /// `aud` names none of the provider's client ids.
    #[error("Incorrect token audience: {0:?} is not a client id of the provider")]
    Audience(Vec<String>),
    /// A required claim is missing or has the wrong type.
    #[error("the token's `{0}` claim is missing or is not {1}")]
    Claim(&'static str, &'static str),
    /// `exp` is past.
    #[error(
        "Token expired: current date/time {now} must be before the expiration date/time {exp}"
    )]
    Expired {
        /// Now, Unix seconds.
        now: i64,
        /// The token's `exp`.
        exp: i64,
    },
    /// `nbf` or `iat` is in the future.
    #[error("the token is not valid yet (its `{0}` is {1}, later than now plus {LEEWAY_SECS} s)")]
    NotYetValid(&'static str, i64),
    /// The session tags claim is malformed.
    #[error("the token's {TAGS_CLAIM} claim is not valid: {0}")]
    Tags(String),
}

impl TokenError {
    /// The STS error: `ExpiredTokenException` for an expired token, `IDPCommunicationError` when
    /// the keys could not be fetched, `InvalidIdentityToken` for everything else
    /// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html#API_AssumeRoleWithWebIdentity_Errors).
    pub fn to_s3(&self) -> S3Error {
        let code = match self {
            TokenError::Expired { .. } => "ExpiredTokenException",
            TokenError::Communication(_) => "IDPCommunicationError",
            _ => "InvalidIdentityToken",
        };
        let message = match self {
            // What went wrong talking to the issuer is for the operator (it is logged), not for
            // an unauthenticated caller (review round 4: it named internal hosts).
            TokenError::Communication(_) => {
                "Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements".to_owned()
            }
            other => other.to_string(),
        };
        S3Error::new(code, StatusCode::BAD_REQUEST, message)
    }
}

/// An IAM OIDC provider, as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// The issuer URL (`https://HOST[/PATH]`), exactly as tokens' `iss` spell it.
    pub url: String,
    /// The client ids (audiences) tokens must name.
    pub client_ids: Vec<String>,
    /// Certificate thumbprints (kept and shown as AWS does; TLS trust comes from the system's
    /// roots, see [`keys`]).
    pub thumbprints: Vec<String>,
    /// Creation time, RFC 3339.
    pub created: String,
}

/// The provider's name in ARNs and condition keys: its URL without `https://`.
pub fn provider_name(url: &str) -> &str {
    url.strip_prefix("https://").unwrap_or(url)
}

/// `arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH]`.
pub fn provider_arn(account: &str, url: &str) -> String {
    format!(
        "arn:aws:iam::{account}:oidc-provider/{}",
        provider_name(url)
    )
}

/// What a verified token proves, kept in the session it buys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebIdentity {
    /// The provider's ARN (`aws:FederatedProvider`).
    pub provider_arn: String,
    /// The provider's name (`HOST[/PATH]`), the prefix of its condition keys.
    pub provider: String,
    /// `sub`.
    pub sub: String,
    /// The value of `PROVIDER:aud`: the `azp` claim when the token has one, else the `aud`
    /// value that matched a client id.
    pub aud: String,
    /// `PROVIDER:oaud`: the matched `aud` value when `azp` took its place in `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oaud: Option<String>,
    /// `amr` values, if the token has them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

impl WebIdentity {
    /// Adds the web identity keys AWS defines to a condition context: `PROVIDER:sub`,
    /// `PROVIDER:aud`, `PROVIDER:oaud`, `PROVIDER:amr` and `aws:FederatedProvider`
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif).
    pub fn add_context(&self, ctx: &mut keyhole_policy::Context) {
        let p = &self.provider;
        ctx.insert(&format!("{p}:sub"), self.sub.as_str());
        ctx.insert(&format!("{p}:aud"), self.aud.as_str());
        if let Some(o) = &self.oaud {
            ctx.insert(&format!("{p}:oaud"), o.as_str());
        }
        if !self.amr.is_empty() {
            ctx.insert_multi(&format!("{p}:amr"), self.amr.clone());
        }
        ctx.insert("aws:FederatedProvider", self.provider_arn.as_str());
    }
}

/// Session tags a token carries (`principal_tags` and `transitive_tag_keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenTags {
    /// Key, value.
    pub tags: Vec<(String, String)>,
    /// Keys that pass on in role chains.
    pub transitive: Vec<String>,
}

fn string_or_list(v: Option<&serde_json::Value>) -> Option<Vec<String>> {
    match v? {
        serde_json::Value::String(s) => Some(vec![s.clone()]),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
}

fn seconds(
    claims: &serde_json::Map<String, serde_json::Value>,
    k: &'static str,
) -> Result<Option<i64>, TokenError> {
    match claims.get(k) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::Claim(k, "a number of seconds")),
    }
}

/// Reads AWS's session tags claim: `{"principal_tags": {"K": ["V"]}, "transitive_tag_keys":
/// ["K"]}`, each tag with exactly one value, at most [`MAX_SESSION_TAGS`], keys unique ignoring
/// case, transitive keys among the tags.
fn token_tags(
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<TokenTags, TokenError> {
    let Some(v) = claims.get(TAGS_CLAIM) else {
        return Ok(TokenTags::default());
    };
    let bad = |m: &str| TokenError::Tags(m.to_owned());
    let obj = v
        .as_object()
        .ok_or_else(|| bad("it is not a JSON object"))?;
    let mut out = TokenTags::default();
    if let Some(pt) = obj.get("principal_tags") {
        let pt = pt
            .as_object()
            .ok_or_else(|| bad("`principal_tags` is not an object"))?;
        for (k, vals) in pt {
            let value = match vals.as_array().map(Vec::as_slice) {
                Some([serde_json::Value::String(s)]) => s.clone(),
                _ => {
                    return Err(TokenError::Tags(format!(
                        "the tag `{k}` must have a list of exactly one string value"
                    )))
                }
            };
            crate::state::validate_tag(k, &value).map_err(|e| TokenError::Tags(e.to_string()))?;
            if out
                .tags
                .iter()
                .any(|(x, _)| crate::state::same_tag_key(x, k))
            {
                return Err(TokenError::Tags(format!(
                    "the tag key `{k}` appears twice (keys are case-insensitive)"
                )));
            }
            out.tags.push((k.clone(), value));
        }
    }
    if out.tags.len() > MAX_SESSION_TAGS {
        return Err(TokenError::Tags(format!(
            "{} tags; a session may have at most {MAX_SESSION_TAGS}",
            out.tags.len()
        )));
    }
    if let Some(t) = obj.get("transitive_tag_keys") {
        let keys = string_or_list(Some(t))
            .ok_or_else(|| bad("`transitive_tag_keys` is not a list of strings"))?;
        for k in keys {
            if !out
                .tags
                .iter()
                .any(|(x, _)| crate::state::same_tag_key(x, &k))
            {
                return Err(TokenError::Tags(format!(
                    "the transitive key `{k}` is not one of the token's principal_tags"
                )));
            }
            out.transitive.push(k);
        }
    }
    Ok(out)
}

/// Authenticates a web identity token: every check of the module documentation, in order.
pub async fn authenticate(
    state: &crate::state::State,
    keys: &keys::KeyCache,
    account: &str,
    token: &str,
    now: i64,
) -> Result<(WebIdentity, TokenTags), TokenError> {
    let unverified = jwt::decode(token)?;
    let iss = unverified
        .claims
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or(TokenError::NoIssuer)?
        .to_owned();
    // A token from an issuer nobody registered costs no fetch.
    let provider = state
        .snapshot()
        .oidc_providers
        .get(&iss)
        .cloned()
        .ok_or_else(|| TokenError::UnknownIssuer(jwt::quoted(&iss)))?;
    let set = keys.keys(&iss, unverified.kid.as_deref()).await?;
    let claims = unverified.verify(&set)?;
    check_claims(&claims, &provider.provider, account, now)
}

/// Checks the claims of a token whose signature verified with `provider`'s keys, at `now` (Unix
/// seconds).
pub fn check_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    provider: &Provider,
    account: &str,
    now: i64,
) -> Result<(WebIdentity, TokenTags), TokenError> {
    let iss = claims
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or(TokenError::NoIssuer)?;
    if iss != provider.url {
        return Err(TokenError::UnknownIssuer(jwt::quoted(iss)));
    }
    let exp = seconds(claims, "exp")?.ok_or(TokenError::Claim("exp", "a number of seconds"))?;
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired { now, exp });
    }
    for k in ["nbf", "iat"] {
        if let Some(t) = seconds(claims, k)? {
            if t > now.saturating_add(LEEWAY_SECS) {
                return Err(TokenError::NotYetValid(k, t));
            }
        }
    }
    let auds = string_or_list(claims.get("aud"))
        .ok_or(TokenError::Claim("aud", "a string or a list of strings"))?;
    let matched = auds
        .iter()
        .find(|a| provider.client_ids.iter().any(|c| c == *a))
        .cloned()
        .ok_or_else(|| {
            TokenError::Audience(auds.iter().take(5).map(|a| jwt::quoted(a)).collect())
        })?;
    let sub = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or(TokenError::Claim("sub", "a string of 1 to 255 characters"))?;
    // AWS documents the azp mapping for Google only ("If the azp claim is set, ... the
    // accounts.google.com:aud key maps to azp, and oaud to aud",
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif);
    // for any other issuer `azp` stands for nothing (review round 4: a token for another client
    // with `azp` set to ours satisfied `ISSUER:aud`).
    let azp = claims
        .get("azp")
        .and_then(|v| v.as_str())
        .filter(|_| provider_name(&provider.url) == "accounts.google.com");
    let (aud, oaud) = match azp {
        Some(azp) => (azp.to_owned(), Some(matched)),
        None => (matched, None),
    };
    let amr = match claims.get("amr") {
        None => Vec::new(),
        v => string_or_list(v).ok_or(TokenError::Claim("amr", "a string or a list of strings"))?,
    };
    let tags = token_tags(claims)?;
    Ok((
        WebIdentity {
            provider_arn: provider_arn(account, &provider.url),
            provider: provider_name(&provider.url).to_owned(),
            sub: sub.to_owned(),
            aud,
            oaud,
            amr,
        },
        tags,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider() -> Provider {
        Provider {
            url: "https://idp.example".into(),
            client_ids: vec!["keyhole".into()],
            thumbprints: vec![],
            created: String::new(),
        }
    }

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    const NOW: i64 = 1_800_000_000;

    fn ok_claims() -> serde_json::Value {
        json!({"iss": "https://idp.example", "sub": "system:serviceaccount:ml:trainer",
               "aud": ["other", "keyhole"], "exp": NOW + 600, "iat": NOW - 10, "nbf": NOW - 10})
    }

    #[test]
    fn a_good_token_yields_the_identity_and_its_condition_keys() {
        let (id, tags) =
            check_claims(&claims(ok_claims()), &provider(), "123456789012", NOW).unwrap();
        assert_eq!(id.provider, "idp.example");
        assert_eq!(
            id.provider_arn,
            "arn:aws:iam::123456789012:oidc-provider/idp.example"
        );
        assert_eq!(id.sub, "system:serviceaccount:ml:trainer");
        assert_eq!(id.aud, "keyhole");
        assert_eq!(id.oaud, None);
        assert_eq!(tags, TokenTags::default());
        let mut ctx = keyhole_policy::Context::default();
        id.add_context(&mut ctx);
        assert!(ctx.get("idp.example:sub").is_some());
        assert!(ctx.get("aws:FederatedProvider").is_some());
    }

    /// "If the azp claim is present, the aud key maps to azp and oaud to aud"
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_aud).
    #[test]
    fn azp_takes_the_place_of_aud_for_google_only() {
        let google = Provider {
            url: "https://accounts.google.com".into(),
            ..provider()
        };
        let mut c = ok_claims();
        c["iss"] = json!("https://accounts.google.com");
        c["azp"] = json!("1234567890");
        let (id, _) = check_claims(&claims(c), &google, "1", NOW).unwrap();
        assert_eq!(id.aud, "1234567890");
        assert_eq!(id.oaud.as_deref(), Some("keyhole"));
        // Any other issuer: azp names nothing, ISSUER:aud is the matched audience.
        let mut c = ok_claims();
        c["azp"] = json!("keyhole-admin");
        let (id, _) = check_claims(&claims(c), &provider(), "1", NOW).unwrap();
        assert_eq!((id.aud.as_str(), id.oaud), ("keyhole", None));
    }

    #[test]
    fn each_bad_claim_is_refused_with_the_right_code() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                json!({"exp": NOW - LEEWAY_SECS - 1}),
                "ExpiredTokenException",
            ),
            (json!({"aud": "someone-else"}), "InvalidIdentityToken"),
            (
                json!({"iss": "https://evil.example"}),
                "InvalidIdentityToken",
            ),
            (
                json!({"nbf": NOW + LEEWAY_SECS + 5}),
                "InvalidIdentityToken",
            ),
            (json!({"iat": NOW + 3600}), "InvalidIdentityToken"),
            (json!({"sub": ""}), "InvalidIdentityToken"),
            (json!({"exp": "soon"}), "InvalidIdentityToken"),
            (json!({"aud": 7}), "InvalidIdentityToken"),
        ];
        for (patch, code) in cases {
            let mut c = ok_claims();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            let e = check_claims(&claims(c), &provider(), "1", NOW).unwrap_err();
            assert_eq!(e.to_s3().code(), code, "{patch} -> {e}");
        }
        let mut c = ok_claims();
        c.as_object_mut().unwrap().remove("exp");
        assert!(check_claims(&claims(c), &provider(), "1", NOW).is_err());
        // Within the leeway.
        let mut c = ok_claims();
        c["exp"] = json!(NOW - LEEWAY_SECS + 1);
        assert!(check_claims(&claims(c), &provider(), "1", NOW).is_ok());
    }

    /// The tags claim as AWS documents it
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_adding-assume-role-idp).
    #[test]
    fn session_tags_follow_the_documented_shape() {
        let mut c = ok_claims();
        c[TAGS_CLAIM] = json!({"principal_tags": {"team": ["ml"], "Project": ["x"]},
                               "transitive_tag_keys": ["team"]});
        let (_, tags) = check_claims(&claims(c), &provider(), "1", NOW).unwrap();
        assert_eq!(tags.tags.len(), 2);
        assert_eq!(tags.transitive, ["team"]);
        for bad in [
            json!({"principal_tags": {"team": "ml"}}),
            json!({"principal_tags": {"team": ["a", "b"]}}),
            json!({"principal_tags": {"team": ["a"], "TEAM": ["b"]}}),
            json!({"principal_tags": {"team": ["a"]}, "transitive_tag_keys": ["other"]}),
            json!("team=ml"),
        ] {
            let mut c = ok_claims();
            c[TAGS_CLAIM] = bad.clone();
            let e = check_claims(&claims(c), &provider(), "1", NOW).unwrap_err();
            assert!(matches!(e, TokenError::Tags(_)), "{bad}: {e}");
        }
        let many: serde_json::Map<String, serde_json::Value> =
            (0..51).map(|i| (format!("k{i}"), json!(["v"]))).collect();
        let mut c = ok_claims();
        c[TAGS_CLAIM] = json!({"principal_tags": many});
        assert!(check_claims(&claims(c), &provider(), "1", NOW).is_err());
    }
}
