//! Authentication (who is calling) and authorization (may they do this).
//!
//! # Security
//! - Authentication is the only way to obtain a [`Principal`] other than `Anonymous`: it requires a
//!   SigV4 signature verified by `keyhole_sigv4::verify` against the key's secret.
//! - Authorization is a trait the gateway cannot be built without. This release ships
//!   [`RootOnly`]: the root user may do everything, everyone else nothing. The IAM engine replaces
//!   it behind the same call.
//! - Denials never echo policy text; they name the action, the resource and the reason class.

use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, StatusCode, Uri};
use keyhole_sigv4::{SecretKey, VerifiedRequest};

use crate::error::S3Error;
use crate::s3::route::Permission;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The account's root user.
    Root {
        /// The access key the request was signed with.
        access_key_id: String,
    },
    /// No signature at all.
    Anonymous,
}

impl Principal {
    /// The principal's ARN (`arn:aws:iam::ACCOUNT:root`), or `*` for anonymous callers.
    pub fn arn(&self, account_id: &str) -> String {
        match self {
            Principal::Root { .. } => format!("arn:aws:iam::{account_id}:root"),
            Principal::Anonymous => "*".to_owned(),
        }
    }

    /// A short label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Root { .. } => "Root",
            Principal::Anonymous => "Anonymous",
        }
    }
}

/// Maps access keys to principals and verifies signatures.
#[derive(Debug)]
pub struct Authenticator {
    root_access_key_id: String,
    root_secret: SecretKey,
    region: String,
}

impl Authenticator {
    /// An authenticator that knows the root credentials and the gateway's region.
    pub fn new(
        root_access_key_id: String,
        root_secret: SecretKey,
        region: String,
    ) -> Authenticator {
        Authenticator {
            root_access_key_id,
            root_secret,
            region,
        }
    }

    /// Verifies the request's signature (if any) and returns who sent it.
    pub fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<(Principal, Option<VerifiedRequest>), S3Error> {
        let Some(signed) = keyhole_sigv4::parse(method, uri, headers)? else {
            return Ok((Principal::Anonymous, None));
        };
        // AWS refuses a scope for another region, naming the one expected
        // (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html).
        if signed.scope().region != self.region {
            let reason = format!(
                "the region '{}' is wrong; expecting '{}'",
                signed.scope().region,
                self.region
            );
            let (code, message) = match signed.kind() {
                keyhole_sigv4::AuthKind::Header => (
                    "AuthorizationHeaderMalformed",
                    format!("The authorization header is malformed; {reason}"),
                ),
                keyhole_sigv4::AuthKind::Query => (
                    "AuthorizationQueryParametersError",
                    format!("Error parsing the X-Amz-Credential parameter; {reason}"),
                ),
            };
            return Err(S3Error::new(code, StatusCode::BAD_REQUEST, message)
                .with("Region", self.region.clone()));
        }
        if signed.access_key_id() != self.root_access_key_id {
            return Err(S3Error::new(
                "InvalidAccessKeyId",
                StatusCode::FORBIDDEN,
                "The AWS Access Key Id you provided does not exist in our records.",
            )
            .with("AWSAccessKeyId", signed.access_key_id()));
        }
        if signed.session_token().is_some() {
            return Err(S3Error::new(
                "InvalidToken",
                StatusCode::BAD_REQUEST,
                "The provided token is malformed or otherwise invalid.",
            ));
        }
        let access_key_id = signed.access_key_id().to_owned();
        let verified = keyhole_sigv4::verify(signed, method, uri, headers, &self.root_secret, now)?;
        Ok((Principal::Root { access_key_id }, Some(verified)))
    }
}

/// Decides whether a principal may perform one (action, resource) pair.
pub trait Authorize: Send + Sync + std::fmt::Debug {
    /// `Ok(())` only when the pair is allowed.
    fn authorize(&self, principal: &Principal, permission: &Permission) -> Result<(), S3Error>;
}

/// The foundation's authorizer: the root user may do everything, anyone else nothing.
#[derive(Debug, Clone)]
pub struct RootOnly {
    /// The account id, for messages.
    pub account_id: String,
}

impl Authorize for RootOnly {
    fn authorize(&self, principal: &Principal, permission: &Permission) -> Result<(), S3Error> {
        match principal {
            Principal::Root { .. } => Ok(()),
            Principal::Anonymous => Err(S3Error::access_denied("Access Denied")),
        }
        .inspect_err(|_| {
            tracing::debug!(
                principal = principal.kind(),
                action = permission.action,
                resource = %permission.resource,
                "denied"
            );
        })
    }
}

/// Builds AWS's denial message: `User: ARN is not authorized to perform: ACTION on resource:
/// "RESOURCE" because REASON`.
pub fn denial_message(principal_arn: &str, permission: &Permission, reason: &str) -> String {
    format!(
        "User: {principal_arn} is not authorized to perform: {} on resource: \"{}\" because {reason}",
        permission.action, permission.resource
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_only_allows_root_and_denies_anonymous() {
        let a = RootOnly {
            account_id: "123456789012".into(),
        };
        let p = Permission {
            action: "s3:GetObject",
            resource: "arn:aws:s3:::b/k".into(),
        };
        assert!(a
            .authorize(
                &Principal::Root {
                    access_key_id: "AKIA".into()
                },
                &p
            )
            .is_ok());
        let e = a.authorize(&Principal::Anonymous, &p).unwrap_err();
        assert_eq!(e.code(), "AccessDenied");
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn denial_message_has_aws_form() {
        let p = Permission {
            action: "s3:PutObject",
            resource: "arn:aws:s3:::b/k".into(),
        };
        assert_eq!(
            denial_message("arn:aws:iam::1:user/u", &p, "no identity-based policy allows the s3:PutObject action"),
            "User: arn:aws:iam::1:user/u is not authorized to perform: s3:PutObject on resource: \"arn:aws:s3:::b/k\" because no identity-based policy allows the s3:PutObject action"
        );
    }

    #[test]
    fn arns() {
        assert_eq!(
            Principal::Root {
                access_key_id: "x".into()
            }
            .arn("123456789012"),
            "arn:aws:iam::123456789012:root"
        );
        assert_eq!(Principal::Anonymous.arn("1"), "*");
    }
}
