//! The audit event: one typed, serde-serialized record per request.
//!
//! Field names follow CloudTrail's where CloudTrail has one (`eventTime`, `eventSource`,
//! `eventName`, `requestID`, `sourceIPAddress`, `userAgent`, `userIdentity`, `requestParameters`,
//! `resources`, `errorCode`, `errorMessage`); the rest are keyhole's own.
//!
//! # Security
//! An event holds no secret by construction: there is no field for a header, a query string, a
//! signature, a session token or a secret key. Identity is the access key *id* (as CloudTrail
//! records it), never its secret.

use serde::{Deserialize, Serialize};

/// The `eventVersion` written by this release.
pub const EVENT_VERSION: &str = "1.0";

/// Longest `userAgent` kept, in characters; longer ones are cut.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// One request, as recorded in the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Format version of this record.
    pub event_version: String,
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    pub event_time: String,
    /// The service, CloudTrail style (`s3.amazonaws.com`, `keyhole`).
    pub event_source: String,
    /// The operation (`PutObject`, ...); `Unknown` when the request could not be routed.
    pub event_name: String,
    /// The API family: `s3`, `sts`, `iam`, `keyhole`, `ops`.
    pub api: String,
    /// `authorized` for the write-ahead record of a mutating request, written and made durable
    /// before its handler runs; `completed` for the record of a finished request.
    pub stage: Stage,
    /// The gateway's region.
    pub aws_region: String,
    /// The request id returned to the client (`x-amz-request-id`).
    #[serde(rename = "requestID")]
    pub request_id: String,
    /// The TCP peer address (forwarded headers are not trusted).
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    /// The `User-Agent` header, cut to [`MAX_USER_AGENT_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Who sent the request.
    pub user_identity: UserIdentity,
    /// The bucket and key the request named, and what else identifies the request (CloudTrail's
    /// `requestParameters`: the role and session name of an AssumeRole, the user of an IAM call,
    /// the locations of a CreateJob).
    pub request_parameters: RequestParameters,
    /// What a request that issued credentials or created something returned, without secrets
    /// (CloudTrail's `responseElements`: the issued access key id and the assumed-role ARN of an
    /// AssumeRole, the new access key id of a CreateAccessKey), so any key can be traced to the
    /// request that obtained it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_elements: Option<serde_json::Value>,
    /// The resources the request was checked against.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Every (action, resource) pair checked, with its decision.
    #[serde(default)]
    pub authorization: Vec<Check>,
    /// The overall decision: `Deny` if authentication failed or any check denied, `Allow` if
    /// every check allowed, absent when the request was refused before authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// HTTP status sent (absent on `authorized` records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// AWS error code of a failed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The error message sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Payload bytes received (after aws-chunked decoding).
    pub bytes_in: u64,
    /// Body bytes sent.
    pub bytes_out: u64,
    /// Time from arrival to the end of the response body, in milliseconds.
    pub duration_ms: f64,
    /// Whether the connection used TLS.
    pub tls: bool,
    /// The gateway node that served the request ([`crate::node`]); stamped by the sink on every
    /// event it is handed. Absent in trails written before nodes had ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Which record of a request this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Written before a mutating handler runs (write-ahead).
    Authorized,
    /// Written when the request finished.
    Completed,
}

/// CloudTrail's `userIdentity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `Root`, `IAMUser`, `AssumedRole`, `AnonymousPrincipal`, or `Unknown` when authentication
    /// failed (then `accessKeyId` is the key the request claimed).
    #[serde(rename = "type")]
    pub kind: String,
    /// The principal's unique id, as `aws:userid` has it (CloudTrail's `principalId`): the
    /// account id for the root user, `AIDA...` for a user, `AROA...:SESSION` for a role session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// The principal's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The principal's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The access key id used (or claimed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Session name of an assumed-role session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// Source identity of a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// The keyhole job the credentials belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// An IAM user's name at the time of the request, or a web identity caller's `sub`
    /// (CloudTrail's `userName` of an `IAMUser` and of a `WebIdentityUser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// A web identity caller's provider (`HOST[/PATH]`, CloudTrail's `identityProvider`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
}

/// CloudTrail's `requestParameters`, restricted to what keyhole records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequestParameters {
    /// The bucket named by the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,
    /// The key named by the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The `prefix` of a listing (ListObjects, ListObjectsV2), as CloudTrail records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The parameters of IAM, STS and keyhole API requests, by CloudTrail's names
    /// (`roleArn`, `roleSessionName`, `durationSeconds`, `userName`, ...).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// CloudTrail's `resources` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// `AWS::S3::Object`, `AWS::S3::Bucket`, `AWS::IAM::User`, `AWS::IAM::Role`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
}

impl Resource {
    /// The resource entry for an S3 ARN, or an IAM user, role, group, managed policy or OIDC
    /// provider (typed as CloudFormation names them); `None` for `*` and anything else.
    pub fn for_arn(arn: &str) -> Option<Resource> {
        let kind = if let Some(rest) = arn.strip_prefix("arn:aws:s3:::") {
            if rest.contains('/') {
                "AWS::S3::Object"
            } else {
                "AWS::S3::Bucket"
            }
        } else {
            let rest = arn.strip_prefix("arn:aws:iam::")?;
            let (_account, resource) = rest.split_once(':')?;
            if resource.contains('*') {
                return None;
            }
            match resource.split_once('/')?.0 {
                "user" => "AWS::IAM::User",
                "role" => "AWS::IAM::Role",
                "group" => "AWS::IAM::Group",
                "policy" => "AWS::IAM::ManagedPolicy",
                "oidc-provider" => "AWS::IAM::OIDCProvider",
                _ => return None,
            }
        };
        Some(Resource {
            kind: kind.to_owned(),
            arn: arn.to_owned(),
        })
    }
}

/// An authorization decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied (explicitly, implicitly, or because authentication failed).
    Deny,
}

/// One (action, resource) pair checked, and what was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// IAM action.
    pub action: String,
    /// Resource ARN.
    pub resource: String,
    /// The decision.
    pub decision: Decision,
    /// Why, in words.
    pub reason: String,
    /// The statements that decided, as `POLICY statement INDEX (Sid SID)`: the allows that
    /// granted, or the denies that refused; empty when none did (the root user, an implicit
    /// deny).
    #[serde(default)]
    pub statements: Vec<String>,
    /// For a denial made by the policy engine: what it was made with, so that `keyhole audit
    /// explain` can make it again. Absent for allowed pairs (they cost nothing more to record),
    /// for refusals that are rules of the API, and in trails written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Box<Evaluation>>,
    /// For a denial decided with the same evaluation as an earlier check of the event (the keys
    /// of one DeleteObjects): that check's position in `authorization`, instead of a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_evaluation_as: Option<u32>,
}

impl Check {
    /// A refusal made by a rule of the API or of keyhole's (not by a policy) after or instead
    /// of a policy decision: recorded as a denial of `action` on `resource`, so that the
    /// request's records say Deny (`keyhole audit query --decision deny` lists it).
    pub fn rule_denial(action: &str, resource: String, reason: &str) -> Check {
        Check {
            action: action.to_owned(),
            resource,
            decision: Decision::Deny,
            reason: reason.to_owned(),
            statements: Vec::new(),
            evaluation: None,
            same_evaluation_as: None,
        }
    }
}

/// What a denied decision was made with: the principal as the engine saw it, the policies in
/// play (by the SHA-256 of their documents, kept in the state's `policy_documents`), and the
/// request's condition keys. No secret is here: the policies are named, not copied, and
/// `sts:ExternalId` is left out (named in `redacted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// The principal the decision was made for (for a job session's second decision, the job's
    /// creator).
    pub principal: EvaluatedPrincipal,
    /// The policies in play, in the order the engine was given them.
    #[serde(default)]
    pub policies: Vec<PolicyUsed>,
    /// The principal had session policies (then the `session` ones must allow too; none left
    /// allows nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session_policies: bool,
    /// S3 Block Public Access `RestrictPublicBuckets` was in force for the resource.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restrict_public_buckets: bool,
    /// The resource policy was a role's trust policy (`ResourceGate::RoleTrust`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub role_trust: bool,
    /// The condition keys of the request, as the decision saw them (keys as first spelt).
    #[serde(default)]
    pub context: std::collections::BTreeMap<String, ContextValue>,
    /// Keys of the request whose values are not recorded (secrets such as `sts:ExternalId`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

/// The principal of a recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluatedPrincipal {
    /// `root`, `user`, `session`, `federated` or `anonymous`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its ARN (a session's ARN; a federated provider's ARN; `anonymous`).
    pub arn: String,
    /// A session's role ARN (the session's own ARN for a session no role backs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The unique id stored principals are matched by (`AIDA...`, `AROA...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// The account the principal belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// One policy of a recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyUsed {
    /// `identity`, `session`, `boundary` or `resource`.
    pub kind: String,
    /// Its name as the trail's statements name it (``inline policy `s3-read` ``, `bucket
    /// policy`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lowercase hex SHA-256 of its document; absent for policies keyhole writes itself and
    /// does not store (a job creator's grant, a job token's credentials policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A condition key's value: one string, or a list for a multivalued key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ContextValue {
    /// A single-valued key.
    One(String),
    /// A multivalued key.
    Many(Vec<String>),
}

/// Cuts a user agent to [`MAX_USER_AGENT_CHARS`] characters.
pub fn clip_user_agent(ua: &str) -> String {
    ua.chars().take(MAX_USER_AGENT_CHARS).collect()
}

/// A fixed event for tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A completed root PutObject.
    pub(crate) fn sample_event() -> AuditEvent {
        AuditEvent {
            event_version: EVENT_VERSION.into(),
            event_time: "2026-11-22T08:00:00.000Z".into(),
            event_source: "s3.amazonaws.com".into(),
            event_name: "PutObject".into(),
            api: "s3".into(),
            stage: Stage::Completed,
            aws_region: "us-east-1".into(),
            request_id: "0123456789ABCDEF".into(),
            source_ip_address: "127.0.0.1".into(),
            user_agent: Some("boto3".into()),
            user_identity: UserIdentity {
                kind: "Root".into(),
                arn: Some("arn:aws:iam::123456789012:root".into()),
                account_id: Some("123456789012".into()),
                access_key_id: Some("AKIAEXAMPLE".into()),
                ..Default::default()
            },
            request_parameters: RequestParameters {
                bucket_name: Some("b".into()),
                key: Some("k".into()),
                prefix: None,
                other: Default::default(),
            },
            response_elements: None,
            resources: vec![Resource::for_arn("arn:aws:s3:::b/k").unwrap()],
            authorization: vec![Check {
                action: "s3:PutObject".into(),
                resource: "arn:aws:s3:::b/k".into(),
                decision: Decision::Allow,
                reason: "root user".into(),
                statements: vec![],
                evaluation: None,
                same_evaluation_as: None,
            }],
            decision: Some(Decision::Allow),
            http_status: Some(200),
            error_code: None,
            error_message: None,
            bytes_in: 5,
            bytes_out: 0,
            duration_ms: 1.5,
            tls: false,
            node: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample_event as sample;
    use super::*;

    #[test]
    fn serializes_with_cloudtrail_names_and_round_trips() {
        let e = sample();
        let json = serde_json::to_string(&e).unwrap();
        for name in [
            "\"eventTime\"",
            "\"eventSource\"",
            "\"eventName\"",
            "\"requestID\"",
            "\"sourceIPAddress\"",
            "\"userAgent\"",
            "\"userIdentity\"",
            "\"accessKeyId\"",
            "\"requestParameters\"",
            "\"bucketName\"",
            "\"ARN\"",
            "\"httpStatus\"",
            "\"bytesIn\"",
            "\"durationMs\"",
        ] {
            assert!(json.contains(name), "{name} missing from {json}");
        }
        assert!(json.contains("\"type\":\"AWS::S3::Object\""));
        assert!(!json.contains("errorCode"), "absent fields are omitted");
        let back: AuditEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn resource_kinds() {
        assert_eq!(
            Resource::for_arn("arn:aws:s3:::b").unwrap().kind,
            "AWS::S3::Bucket"
        );
        assert!(Resource::for_arn("*").is_none());
        assert_eq!(
            Resource::for_arn("arn:aws:iam::123456789012:user/team/ann")
                .unwrap()
                .kind,
            "AWS::IAM::User"
        );
        assert_eq!(
            Resource::for_arn("arn:aws:iam::123456789012:policy/p")
                .unwrap()
                .kind,
            "AWS::IAM::ManagedPolicy"
        );
        assert!(Resource::for_arn("arn:aws:iam::123456789012:root").is_none());
        assert!(Resource::for_arn("arn:aws:iam::123456789012:user/*").is_none());
    }

    #[test]
    fn user_agent_is_clipped_on_a_char_boundary() {
        let ua = "é".repeat(MAX_USER_AGENT_CHARS + 10);
        assert_eq!(clip_user_agent(&ua).chars().count(), MAX_USER_AGENT_CHARS);
    }
}
