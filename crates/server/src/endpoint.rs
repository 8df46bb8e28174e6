//! Every endpoint the gateway serves, declared once: its API, its name in the audit trail and
//! metrics, whether it changes state, and (through [`Describe`]) what it must be allowed.
//!
//! | endpoint | protocol | described by | permission |
//! |---|---|---|---|
//! | S3 operations ([`Op`]) | REST | [`crate::s3::S3Call`] | [`Op::access`]: the S3 actions on the bucket or object, as AWS's S3 authorization reference lists them; DeleteObjects per key |
//! | IAM actions ([`IamAction`]) | Query, service `iam` | [`crate::iam::IamCall`] | `iam:ACTION` on the entity, plus `iam:TagUser`/`iam:TagRole` when creating with tags |
//! | STS actions ([`StsAction`]) | Query, service `sts` | [`crate::sts::StsCall`] | AssumeRole: `sts:AssumeRole` (+ `sts:TagSession`, `sts:SetSourceIdentity`) on the role, against its trust policy; GetSessionToken and GetCallerIdentity: none, as in AWS |
//! | keyhole API ([`KeyholeAction`]) | AWS JSON 1.1, service `keyhole` | [`crate::jobs::ApiCall`] | `keyhole:ACTION` on the job or session (GetAccessReport: the user or role; ListUnusedAccess: `*`); CreateJob with a role also `sts:AssumeRole` (+ `sts:TagSession`) on the role |
//! | Access Analyzer ValidatePolicy | REST-JSON, service `access-analyzer`, `POST /policy/validation` | [`crate::analyzer::ValidatePolicy`] | `access-analyzer:ValidatePolicy` on `*` |
//! | container credentials | `GET /_keyhole/credentials`, job token | [`crate::jobs::CredentialFetch`] | `keyhole:GetJobCredentials` on the job (from the job's addresses) |
//! | metrics | `GET /metrics` | [`Call::Metrics`] | none: served to every caller (scrapers do not sign) |
//!
//! `/healthz` is not an endpoint in this sense: it answers `ok` before anything else and reads
//! nothing.

use keyhole_policy::Context;

use crate::authz::{Describe, Requirement};
use crate::iam::IamAction;
pub use crate::jobs::Action as KeyholeAction;
use crate::s3::route::Op;
use crate::sts::StsAction;

/// A request's endpoint, as the audit trail and metrics name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An S3 operation.
    S3(Op),
    /// An IAM action.
    Iam(IamAction),
    /// An STS action.
    Sts(StsAction),
    /// A keyhole API action.
    Keyhole(KeyholeAction),
    /// Access Analyzer's ValidatePolicy.
    ValidatePolicy,
    /// `GET /_keyhole/credentials`.
    JobCredentials,
    /// `GET /metrics`.
    Metrics,
}

impl Endpoint {
    /// The API family (`s3`, `iam`, `sts`, `keyhole`, `ops`).
    pub fn api(&self) -> &'static str {
        match self {
            Endpoint::S3(_) => "s3",
            Endpoint::Iam(_) => "iam",
            Endpoint::Sts(_) => "sts",
            Endpoint::Keyhole(_) | Endpoint::JobCredentials => "keyhole",
            Endpoint::ValidatePolicy => "access-analyzer",
            Endpoint::Metrics => "ops",
        }
    }

    /// The operation's name (audit `eventName`, metrics `operation`).
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::S3(op) => op.name(),
            Endpoint::Iam(a) => a.name(),
            Endpoint::Sts(a) => a.name(),
            Endpoint::Keyhole(a) => a.name(),
            Endpoint::JobCredentials => "GetJobCredentials",
            Endpoint::ValidatePolicy => "ValidatePolicy",
            Endpoint::Metrics => "GetMetrics",
        }
    }

    /// Whether the endpoint changes state or issues credentials: its write-ahead `authorized`
    /// record is made durable before anything changes, and when that fails the request is
    /// refused with 503 and nothing changes (unless `audit_fail_open`). S3 decides by method.
    pub fn mutating(&self, method: &http::Method) -> bool {
        match self {
            Endpoint::S3(_) => matches!(
                *method,
                http::Method::PUT | http::Method::POST | http::Method::DELETE
            ),
            Endpoint::Iam(a) => a.mutating(),
            Endpoint::Sts(a) => a.mutating(),
            Endpoint::Keyhole(a) => a.mutating(),
            Endpoint::JobCredentials => true,
            Endpoint::ValidatePolicy | Endpoint::Metrics => false,
        }
    }
}

/// A described request of any endpoint: what the authorization stage decides on.
#[derive(Debug)]
pub enum Call {
    /// An S3 operation.
    S3(crate::s3::S3Call),
    /// An IAM action.
    Iam(crate::iam::IamCall),
    /// An STS action.
    Sts(crate::sts::StsCall),
    /// A keyhole API action.
    Keyhole(Box<crate::jobs::ApiCall>),
    /// A job's credentials.
    JobCredentials(crate::jobs::CredentialFetch),
    /// Access Analyzer's ValidatePolicy.
    ValidatePolicy(crate::analyzer::ValidatePolicy),
    /// The metrics.
    Metrics,
}

impl Describe for Call {
    fn requirement(&self) -> Requirement {
        match self {
            Call::S3(c) => c.requirement(),
            Call::Iam(c) => c.requirement(),
            Call::Sts(c) => c.requirement(),
            Call::Keyhole(c) => c.requirement(),
            Call::JobCredentials(c) => c.requirement(),
            Call::ValidatePolicy(c) => c.requirement(),
            Call::Metrics => Requirement::Unconditional {
                action: "keyhole:GetMetrics",
                reason: "/metrics is served to every caller (Prometheus scrapers do not sign)",
            },
        }
    }

    fn add_context(&self, context: &mut Context) {
        match self {
            Call::S3(c) => c.add_context(context),
            Call::Iam(c) => c.add_context(context),
            Call::Sts(c) => c.add_context(context),
            Call::Keyhole(c) => c.add_context(context),
            Call::JobCredentials(c) => c.add_context(context),
            Call::ValidatePolicy(c) => c.add_context(context),
            Call::Metrics => {}
        }
    }
}

impl Call {
    /// The endpoint.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Call::S3(c) => Endpoint::S3(c.op.clone()),
            Call::Iam(c) => Endpoint::Iam(c.action),
            Call::Sts(c) => Endpoint::Sts(c.action()),
            Call::Keyhole(c) => Endpoint::Keyhole(c.action),
            Call::JobCredentials(_) => Endpoint::JobCredentials,
            Call::ValidatePolicy(_) => Endpoint::ValidatePolicy,
            Call::Metrics => Endpoint::Metrics,
        }
    }

    /// What the audit trail records of the request beyond the bucket and key (CloudTrail's
    /// `requestParameters`).
    pub fn audit_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        match self {
            Call::Iam(c) => c.audit_parameters(),
            Call::Sts(c) => c.audit_parameters(),
            Call::Keyhole(c) => c.audit_parameters(),
            Call::ValidatePolicy(c) => c.audit_parameters(),
            Call::S3(c) => c.audit_parameters(),
            Call::JobCredentials(_) | Call::Metrics => serde_json::Map::new(),
        }
    }
}

#[cfg(test)]
mod tests;
