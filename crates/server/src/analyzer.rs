//! IAM Access Analyzer's `ValidatePolicy` (service `access-analyzer`, REST-JSON
//! `POST /policy/validation`), answered by keyhole's policy linter, so
//! `aws accessanalyzer validate-policy --endpoint-url ...` and CI tools written for Access
//! Analyzer check a policy against the gateway
//! (https://docs.aws.amazon.com/access-analyzer/latest/APIReference/API_ValidatePolicy.html).
//!
//! The request is authorized as `access-analyzer:ValidatePolicy` on `*` (the action has no
//! resource type) through the one authorization stage. `policyType` `IDENTITY_POLICY` lints an
//! identity-based policy; `RESOURCE_POLICY` a resource-based one, a role's trust policy when
//! `validatePolicyResourceType` is `AWS::IAM::AssumeRolePolicyDocument`. Service and resource
//! control policies (`SERVICE_CONTROL_POLICY`, `RESOURCE_CONTROL_POLICY`) belong to AWS
//! Organizations, which keyhole does not have: refused with `ValidationException`. All findings
//! come in one page (`maxResults` and `nextToken` are accepted and a page is never cut).

use http::{HeaderValue, Response, StatusCode};
use keyhole_policy::{lint, LintOptions, LintPolicyType};
use serde_json::Value;

use crate::authz::{Describe, Permission, Requirement};
use crate::body::{self, Body};
use crate::error::S3Error;

/// The one action of this API keyhole serves.
pub const VALIDATE_POLICY: &str = "access-analyzer:ValidatePolicy";
/// The request path.
pub const PATH: &str = "/policy/validation";
/// Largest policy document accepted (Access Analyzer's own limit is far below this).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A described ValidatePolicy request.
#[derive(Debug)]
pub struct ValidatePolicy {
    /// The policy document's text.
    pub document: String,
    /// What the document is.
    pub policy_type: LintPolicyType,
    /// `policyType` as sent, for the audit trail.
    pub type_name: String,
}

/// Access Analyzer's validation error: `ValidationException` naming the field.
fn invalid(field: &str, message: &str) -> S3Error {
    S3Error::new(
        "ValidationException",
        StatusCode::BAD_REQUEST,
        format!("{field}: {message}"),
    )
}

/// Reads a ValidatePolicy request (`POST /policy/validation`, a JSON body).
pub fn describe(method: &http::Method, path: &str, raw: &[u8]) -> Result<ValidatePolicy, S3Error> {
    if path != PATH {
        return Err(S3Error::new(
            "ResourceNotFoundException",
            StatusCode::NOT_FOUND,
            format!(
                "keyhole serves only ValidatePolicy (POST {PATH}) of Access Analyzer, not {path}"
            ),
        ));
    }
    if method != http::Method::POST {
        return Err(S3Error::new(
            "ValidationException",
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{PATH} takes POST"),
        ));
    }
    let v: Value = serde_json::from_slice(raw)
        .map_err(|e| invalid("body", &format!("not a JSON object: {e}")))?;
    let field = |name: &str| v.get(name).and_then(Value::as_str);
    let document = field("policyDocument")
        .ok_or_else(|| {
            invalid(
                "policyDocument",
                "is required (the policy as a JSON string)",
            )
        })?
        .to_owned();
    let type_name = field("policyType")
        .ok_or_else(|| {
            invalid(
                "policyType",
                "is required: IDENTITY_POLICY or RESOURCE_POLICY",
            )
        })?
        .to_owned();
    let policy_type = match (type_name.as_str(), field("validatePolicyResourceType")) {
        ("IDENTITY_POLICY", None) => LintPolicyType::Identity,
        ("IDENTITY_POLICY", Some(_)) => {
            return Err(invalid(
                "validatePolicyResourceType",
                "applies only to RESOURCE_POLICY",
            ))
        }
        ("RESOURCE_POLICY", Some("AWS::IAM::AssumeRolePolicyDocument")) => LintPolicyType::Trust,
        ("RESOURCE_POLICY", _) => LintPolicyType::Resource,
        ("SERVICE_CONTROL_POLICY" | "RESOURCE_CONTROL_POLICY", _) => {
            return Err(invalid(
                "policyType",
                &format!("{type_name} is an AWS Organizations policy, which keyhole does not have; use IDENTITY_POLICY or RESOURCE_POLICY"),
            ))
        }
        (other, _) => {
            return Err(invalid(
                "policyType",
                &format!("`{other}` is not IDENTITY_POLICY or RESOURCE_POLICY"),
            ))
        }
    };
    Ok(ValidatePolicy {
        document,
        policy_type,
        type_name,
    })
}

impl Describe for ValidatePolicy {
    fn requirement(&self) -> Requirement {
        Requirement::Permissions(vec![Permission::new(VALIDATE_POLICY, "*")])
    }
}

impl ValidatePolicy {
    /// What the audit trail records of the request (not the document: it can be large).
    pub fn audit_parameters(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("policyType".into(), Value::String(self.type_name.clone()));
        m
    }

    /// The findings, in Access Analyzer's response shape.
    pub fn answer(&self, account: &str, tls: bool) -> Response<Body> {
        let findings = lint(
            &self.document,
            &LintOptions {
                policy_type: Some(self.policy_type),
                account: Some(account.to_owned()),
                tls,
            },
        );
        let mut r = Response::new(body::full(
            keyhole_policy::lint::findings_to_json(&findings).to_string(),
        ));
        *r.status_mut() = StatusCode::OK;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

/// An error in Access Analyzer's own codes: `AccessDeniedException` (403) for a denial,
/// `ValidationException` for a malformed request, `ThrottlingException` and
/// `InternalServerException` for the rest
/// (https://docs.aws.amazon.com/access-analyzer/latest/APIReference/CommonErrors.html).
pub fn service_error(e: S3Error) -> S3Error {
    let code = match e.code() {
        c if c.ends_with("Exception") => return e,
        "AccessDenied"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "InvalidToken"
        | "InvalidClientTokenId" => "AccessDeniedException",
        "SlowDown" | "ServiceUnavailable" | "RequestTimeout" => "ThrottlingException",
        _ if e.status().is_client_error() => "ValidationException",
        _ => "InternalServerException",
    };
    S3Error::new(code, e.status(), e.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn requests_name_their_policy_type() {
        let post = http::Method::POST;
        let d = describe(
            &post,
            PATH,
            &body(serde_json::json!({"policyDocument": "{}", "policyType": "IDENTITY_POLICY"})),
        )
        .unwrap();
        assert_eq!(d.policy_type, LintPolicyType::Identity);
        let d = describe(
            &post,
            PATH,
            &body(serde_json::json!({"policyDocument": "{}", "policyType": "RESOURCE_POLICY",
                                     "validatePolicyResourceType": "AWS::IAM::AssumeRolePolicyDocument"})),
        )
        .unwrap();
        assert_eq!(d.policy_type, LintPolicyType::Trust);
        for (v, field) in [
            (
                serde_json::json!({"policyType": "IDENTITY_POLICY"}),
                "policyDocument",
            ),
            (serde_json::json!({"policyDocument": "{}"}), "policyType"),
            (
                serde_json::json!({"policyDocument": "{}", "policyType": "SERVICE_CONTROL_POLICY"}),
                "policyType",
            ),
            (
                serde_json::json!({"policyDocument": "{}", "policyType": "NOPE"}),
                "policyType",
            ),
        ] {
            let e = describe(&post, PATH, &body(v)).unwrap_err();
            assert_eq!(e.code(), "ValidationException");
            assert!(e.message().starts_with(field), "{}", e.message());
        }
        assert_eq!(
            describe(&post, "/analyzer", b"{}").unwrap_err().code(),
            "ResourceNotFoundException"
        );
        assert_eq!(
            describe(&post, PATH, b"not json").unwrap_err().code(),
            "ValidationException"
        );
    }
}
