//! The IAM condition context of a request (DESIGN.md section 3): global `aws:*` keys from the
//! connection, the signature and the principal, and the S3 keys the operation has.
//!
//! Key names and value forms follow AWS's condition-key references:
//! https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html and
//! https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use keyhole_policy::Context;
use keyhole_sigv4::{AuthKind, VerifiedRequest};

use crate::auth::Principal;
use crate::s3::route::{Op, Query};

/// The client address for `aws:SourceIp`: the TCP peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` address that is not itself a trusted proxy (the
/// left-most entries are whatever the client chose to send, so they are never believed).
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[keyhole_policy::condition::ip::Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A malformed list cannot be trusted at all.
                Err(_) => return peer,
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// What the context is built from.
pub struct RequestFacts<'a> {
    /// When the request arrived.
    pub now: DateTime<Utc>,
    /// The client's address as text (`aws:SourceIp`): the TCP peer, or behind a trusted proxy
    /// its `X-Forwarded-For` client ([`client_ip`]).
    pub source_ip: &'a str,
    /// Whether the connection is TLS.
    pub secure: bool,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The gateway's region.
    pub region: &'a str,
    /// The account id.
    pub account_id: &'a str,
    /// Who is calling.
    pub principal: &'a Principal,
    /// The verified signature, if any.
    pub verified: Option<&'a VerifiedRequest>,
}

/// The global keys every request has.
pub fn global(f: &RequestFacts<'_>) -> Context {
    let mut c = Context::with_capacity(32);
    c.insert_static(
        "aws:CurrentTime",
        f.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    c.insert_static("aws:EpochTime", f.now.timestamp().to_string());
    c.insert_static("aws:SourceIp", f.source_ip);
    c.insert_static(
        "aws:SecureTransport",
        if f.secure { "true" } else { "false" },
    );
    c.insert_static("aws:RequestedRegion", f.region);
    // Every resource keyhole serves is the account's: `aws:ResourceAccount` ("always included in
    // the request context for most service actions"), and no request reaches it through or from
    // an AWS service: `aws:ViaAWSService` is always `false` ("always included ... for most
    // services") and `aws:PrincipalIsAWSService` `false` on every signed request ("present in
    // the request context for all signed API requests")
    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html).
    // Without them, AWS's own examples that Deny unless `aws:ViaAWSService` is false (the
    // source-address guardrail) never applied (a policy-evaluation sweep).
    c.insert_static("aws:ResourceAccount", f.account_id);
    c.insert_static("aws:ViaAWSService", "false");
    if f.verified.is_some() {
        c.insert_static("aws:PrincipalIsAWSService", "false");
    }
    for (key, header) in [
        ("aws:UserAgent", &http::header::USER_AGENT),
        ("aws:Referer", &http::header::REFERER),
    ] {
        if let Some(v) = f.headers.get(header).and_then(|v| v.to_str().ok()) {
            c.insert_static(key, v);
        }
    }
    add_principal(&mut c, f.principal, f.account_id);
    if let Some(v) = f.verified {
        c.insert_static("s3:signatureversion", "AWS4-HMAC-SHA256");
        c.insert_static(
            "s3:authType",
            match v.kind() {
                AuthKind::Header => "REST-HEADER",
                AuthKind::Query => "REST-QUERY-STRING",
                // "POST" for browser-based uploads (Amazon S3's s3:authType values,
                // https://docs.aws.amazon.com/AmazonS3/latest/API/bucket-policy-s3-sigv4-conditions.html).
                AuthKind::PostPolicy => "POST",
            },
        );
        let age_ms = (f.now - v.signed_at()).num_milliseconds().max(0);
        c.insert_static("s3:signatureAge", age_ms.to_string());
    }
    c
}

/// The keys that describe who is calling (`aws:PrincipalArn`, `aws:userid`, `aws:PrincipalTag/*`,
/// the temporary-credential keys, ...).
fn add_principal(c: &mut Context, principal: &Principal, account_id: &str) {
    match principal {
        Principal::Root { .. } => {
            c.insert_static(
                "aws:PrincipalArn",
                format!("arn:aws:iam::{}:root", account_id),
            );
            c.insert_static("aws:PrincipalAccount", account_id);
            c.insert_static("aws:PrincipalType", "Account");
            c.insert_static("aws:userid", account_id);
        }
        Principal::User {
            name,
            id,
            arn,
            tags,
            session,
            ..
        } => {
            add_principal_tags(c, tags);
            c.insert_static("aws:PrincipalArn", arn.as_str());
            c.insert_static("aws:PrincipalAccount", account_id);
            c.insert_static("aws:PrincipalType", "User");
            c.insert_static("aws:userid", id.as_str());
            c.insert_static("aws:username", name.as_str());
            if let Some(claims) = session {
                add_temporary_credentials(c, claims);
            }
        }
        Principal::Session {
            claims,
            role_arn,
            arn,
            tags,
            ..
        } => {
            add_principal_tags(c, tags);
            c.insert_static("aws:PrincipalAccount", account_id);
            if role_arn.is_empty() {
                // A role-less job session: a federated-user principal
                // (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#principaltable).
                c.insert_static("aws:PrincipalArn", arn.as_str());
                c.insert_static("aws:PrincipalType", "FederatedUser");
                c.insert_static("aws:userid", format!("{}:{}", account_id, claims.session));
            } else {
                // For sessions, aws:PrincipalArn is the role's ARN (AWS's documented value).
                c.insert_static("aws:PrincipalArn", role_arn.as_str());
                c.insert_static("aws:PrincipalType", "AssumedRole");
                c.insert_static(
                    "aws:userid",
                    format!("{}:{}", claims.role_id, claims.session),
                );
            }
            add_temporary_credentials(c, claims);
            if let Some(s) = &claims.source_identity {
                c.insert_static("aws:SourceIdentity", s.as_str());
            }
            // A session bought with a web identity token keeps the token's keys
            // (`PROVIDER:sub`, ..., `aws:FederatedProvider`), so the role's policies can key
            // prefixes on the caller.
            if let Some(w) = &claims.web_identity {
                w.add_context(c);
            }
        }
        Principal::WebIdentity { identity, .. } => {
            c.insert_static("aws:PrincipalType", "WebIdentityUser");
            identity.add_context(c);
        }
        Principal::JobToken { arn, .. } => {
            // Not an IAM principal: the holder of a job's credentials token.
            c.insert_static("aws:PrincipalArn", arn.as_str());
            c.insert_static("aws:PrincipalAccount", account_id);
            c.insert_static("aws:PrincipalType", "JobToken");
        }
        Principal::Anonymous => {
            c.insert_static("aws:PrincipalType", "Anonymous");
        }
    }
}

/// Keys [`add_principal`] sets (`aws:PrincipalTag/` as a prefix).
const PRINCIPAL_KEYS: [&str; 8] = [
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principaltype",
    "aws:userid",
    "aws:username",
    "aws:tokenissuetime",
    "aws:multifactorauthpresent",
    "aws:sourceidentity",
];

/// `context` as if `principal` had sent the request: the keys about the caller are `principal`'s,
/// every other key (time, source address, transport, the operation's keys) is kept. A role-less
/// job's request is decided again this way as its creator ([`crate::jobs::grant`]).
pub fn rebase_principal(context: &Context, principal: &Principal, account_id: &str) -> Context {
    // Everything else of the context stays, including the keys declared unknown for an upper
    // bound (`Context::assume_unknown`; review 8, F1).
    let mut c = context.clone();
    let principal_keys: Vec<String> = context
        .iter()
        .map(|(key, _)| key.to_ascii_lowercase())
        .filter(|lower| {
            PRINCIPAL_KEYS.contains(&lower.as_str()) || lower.starts_with("aws:principaltag/")
        })
        .collect();
    for key in principal_keys {
        c.remove(&key);
    }
    add_principal(&mut c, principal, account_id);
    c
}

/// `aws:PrincipalTag/KEY` for each of the principal's tags.
/// Keys of requests signed with temporary credentials: `aws:TokenIssueTime`, and
/// `aws:MultiFactorAuthPresent` = `false` ("included in the request context only when the
/// principal uses temporary credentials"; keyhole has no MFA,
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-multifactorauthpresent).
fn add_temporary_credentials(c: &mut Context, claims: &crate::sts::SessionClaims) {
    if let Some(t) = DateTime::<Utc>::from_timestamp(claims.iat, 0) {
        c.insert_static(
            "aws:TokenIssueTime",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    c.insert_static("aws:MultiFactorAuthPresent", "false");
}

/// The tags a request sets: `aws:RequestTag/KEY` for each, and `aws:TagKeys` when there are any
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-requesttag).
pub fn add_request_tags(c: &mut Context, tags: &[(String, String)]) {
    for (k, v) in tags {
        c.insert(&format!("aws:RequestTag/{k}"), v.as_str());
    }
    if !tags.is_empty() {
        c.insert_multi("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()).collect());
    }
}

/// The tags of the IAM entity a request acts on: `aws:ResourceTag/KEY` and its IAM spelling
/// `iam:ResourceTag/KEY`
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_iam-tags.html#access_iam-tags_control-resources).
pub fn add_resource_tags(c: &mut Context, tags: &[(String, String)]) {
    for (k, v) in tags {
        c.insert(&format!("aws:ResourceTag/{k}"), v.as_str());
        c.insert(&format!("iam:ResourceTag/{k}"), v.as_str());
    }
}

fn add_principal_tags(c: &mut Context, tags: &[(String, String)]) {
    for (k, v) in tags {
        c.insert(&format!("aws:PrincipalTag/{k}"), v.as_str());
    }
}

/// Adds the S3 keys an operation has: `s3:ResourceAccount` (every bucket and object is the
/// gateway's one account's), listing parameters for ListBucket, request headers for writes.
pub fn add_s3(c: &mut Context, op: &Op, query: &Query, headers: &HeaderMap, account_id: &str) {
    c.insert_static("s3:ResourceAccount", account_id);
    // `s3:versionid`: the version the request names, for the version actions that take the key
    // (s3:GetObjectVersion, s3:DeleteObjectVersion, the version tagging and ACL actions: "Actions,
    // resources, and condition keys for Amazon S3"). A copy names its source's version.
    let version = if op.takes_version_id() {
        query.get("versionId")
    } else {
        op.copy_source().and_then(|s| s.version_id.as_deref())
    };
    if let Some(v) = version {
        c.insert_static("s3:versionid", v);
    }
    // ListObjectVersions (`s3:ListBucketVersions`) takes the same listing keys as ListBucket.
    if matches!(
        op,
        Op::ListObjects | Op::ListObjectsV2 | Op::ListObjectVersions
    ) {
        for (key, param) in [
            ("s3:prefix", "prefix"),
            ("s3:delimiter", "delimiter"),
            ("s3:max-keys", "max-keys"),
        ] {
            if let Some(v) = query.get(param) {
                c.insert_static(key, v);
            }
        }
    }
    // The Object Lock a write sets in its headers (`s3:object-lock-*`, "Actions, resources, and
    // condition keys for Amazon S3": PutObject takes them), so a policy can cap retention or
    // forbid COMPLIANCE (review 12: they were never set, so such Denies never applied).
    // PutObjectRetention and PutObjectLegalHold set them from their documents (s3::lock).
    if matches!(
        op,
        Op::PutObject | Op::PostObject | Op::CopyObject(_) | Op::CreateMultipartUpload
    ) {
        crate::s3::lock::add_header_keys(c, headers, chrono::Utc::now());
    }
    use crate::names;
    for (key, header) in [
        ("s3:x-amz-acl", &names::X_AMZ_ACL),
        ("s3:x-amz-content-sha256", &names::X_AMZ_CONTENT_SHA256),
        ("s3:x-amz-copy-source", &names::X_AMZ_COPY_SOURCE),
        (
            "s3:x-amz-metadata-directive",
            &names::X_AMZ_METADATA_DIRECTIVE,
        ),
        (
            "s3:x-amz-server-side-encryption",
            &names::X_AMZ_SERVER_SIDE_ENCRYPTION,
        ),
        ("s3:x-amz-storage-class", &names::X_AMZ_STORAGE_CLASS),
    ] {
        if let Some(v) = headers.get(header).and_then(|v| v.to_str().ok()) {
            c.insert_static(key, v);
        }
    }
    // Conditional writes: `s3:if-match` and `s3:if-none-match` from the headers of the writes that
    // take them, and `s3:ObjectCreationOperation` (true for those writes, false for the
    // multipart steps before completion), so a bucket policy can require conditional writes
    // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
    if op.is_conditional_write() {
        for (key, header) in [
            ("s3:if-match", &http::header::IF_MATCH),
            ("s3:if-none-match", &http::header::IF_NONE_MATCH),
        ] {
            if let Some(v) = headers.get(header).and_then(|v| v.to_str().ok()) {
                c.insert_static(key, v);
            }
        }
    }
    // Conditional deletes likewise: `s3:if-match` from DeleteObject's `If-Match`, so a policy can
    // require them (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-delete-enforce.html,
    // `"Null": {"s3:if-match": "false"}` on s3:DeleteObject). DeleteObjects' keys carry theirs
    // from their `ETag` elements (`s3::object::DeleteKey`).
    if *op == Op::DeleteObject {
        if let Some(v) = headers
            .get(http::header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
        {
            c.insert_static("s3:if-match", v);
        }
    }
    if op.creates_object()
        || matches!(
            op,
            Op::CreateMultipartUpload | Op::UploadPart { .. } | Op::UploadPartCopy { .. }
        )
    {
        c.insert_static(
            "s3:ObjectCreationOperation",
            if op.creates_object() { "true" } else { "false" },
        );
    }
    // PutObjectTagging's tags are those of its document, added when the handler has read it
    // (`s3::tagging::TagSetChange`): a header must not add keys its document does not set.
    let tagging = if matches!(op, Op::PutObjectTagging) {
        None
    } else {
        headers.get("x-amz-tagging")
    };
    if let Some(v) = tagging.and_then(|v| v.to_str().ok()) {
        let tags = Query::parse(Some(v));
        let keys: Vec<String> = tags.names().map(str::to_owned).collect();
        // In one pass (a lookup per key was quadratic in the keys of a hostile header); a key
        // sent twice keeps its first value, as the lookup did.
        for (k, value) in tags.pairs() {
            let key = format!("s3:RequestObjectTag/{k}");
            if c.get(&key).is_none() {
                c.insert(&key, value);
            }
        }
        c.insert_multi("s3:RequestObjectTagKeys", keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_keys_for_a_user() {
        let headers = HeaderMap::new();
        let p = Principal::User {
            name: "job-runner".into(),
            id: "AIDAEXAMPLE".into(),
            arn: "arn:aws:iam::123456789012:user/job-runner".into(),
            access_key_id: "AKIA".into(),
            session: None,
            policies: Default::default(),
            boundary: None,
            tags: std::sync::Arc::new(vec![("team".into(), "ml".into())]),
        };
        let now = DateTime::parse_from_rfc3339("2025-07-16T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = global(&RequestFacts {
            now,
            source_ip: "127.0.0.2",
            secure: false,
            headers: &headers,
            region: "us-east-1",
            account_id: "123456789012",
            principal: &p,
            verified: None,
        });
        let get = |k: &str| c.get(k).map(|v| v.values().to_vec());
        assert_eq!(
            get("aws:CurrentTime"),
            Some(vec!["2025-07-16T02:00:00Z".into()])
        );
        assert_eq!(get("aws:SourceIp"), Some(vec!["127.0.0.2".into()]));
        assert_eq!(get("aws:username"), Some(vec!["job-runner".into()]));
        assert_eq!(get("aws:PrincipalType"), Some(vec!["User".into()]));
        assert_eq!(get("aws:SecureTransport"), Some(vec!["false".into()]));
        assert_eq!(
            get("AWS:SOURCEIP"),
            Some(vec!["127.0.0.2".into()]),
            "keys are case-insensitive"
        );
        // Long-term keys: no aws:MultiFactorAuthPresent, no aws:TokenIssueTime.
        assert_eq!(get("aws:MultiFactorAuthPresent"), None);
        assert_eq!(get("aws:TokenIssueTime"), None);
        let over_tls = global(&RequestFacts {
            now,
            source_ip: "127.0.0.2",
            secure: true,
            headers: &headers,
            region: "us-east-1",
            account_id: "123456789012",
            principal: &p,
            verified: None,
        });
        assert_eq!(
            over_tls
                .get("aws:SecureTransport")
                .map(|v| v.values().to_vec()),
            Some(vec!["true".into()])
        );
    }

    /// GetSessionToken credentials act as the user (aws:userid, aws:username, aws:PrincipalArn
    /// of the user) and carry the keys of temporary credentials
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-multifactorauthpresent).
    #[test]
    fn global_keys_for_a_user_session() {
        let headers = HeaderMap::new();
        let now = DateTime::parse_from_rfc3339("2025-07-16T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut claims = crate::sts::SessionClaims::fresh("123456789012", now, 900);
        claims.user = Some(crate::sts::SessionUser {
            name: "job-runner".into(),
            id: "AIDAEXAMPLE".into(),
        });
        let p = Principal::User {
            name: "job-runner".into(),
            id: "AIDAEXAMPLE".into(),
            arn: "arn:aws:iam::123456789012:user/job-runner".into(),
            access_key_id: claims.ak.clone(),
            session: Some(std::sync::Arc::new(claims)),
            policies: Default::default(),
            boundary: None,
            tags: Default::default(),
        };
        let c = global(&RequestFacts {
            now,
            source_ip: "127.0.0.2",
            secure: false,
            headers: &headers,
            region: "us-east-1",
            account_id: "123456789012",
            principal: &p,
            verified: None,
        });
        let get = |k: &str| c.get(k).map(|v| v.values().to_vec());
        assert_eq!(get("aws:userid"), Some(vec!["AIDAEXAMPLE".into()]));
        assert_eq!(get("aws:username"), Some(vec!["job-runner".into()]));
        assert_eq!(
            get("aws:PrincipalArn"),
            Some(vec!["arn:aws:iam::123456789012:user/job-runner".into()])
        );
        assert_eq!(get("aws:PrincipalType"), Some(vec!["User".into()]));
        assert_eq!(
            get("aws:TokenIssueTime"),
            Some(vec!["2025-07-16T02:00:00Z".into()])
        );
        assert_eq!(
            get("aws:MultiFactorAuthPresent"),
            Some(vec!["false".into()])
        );
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        use keyhole_policy::condition::ip::Cidr;
        let trusted = vec![
            Cidr::parse("127.0.0.1/32").unwrap(),
            Cidr::parse("10.0.0.0/8").unwrap(),
        ];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7, 10.1.2.3".parse().unwrap(),
        );
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let untrusted: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(
            client_ip(untrusted, &h, &trusted),
            untrusted,
            "untrusted peer: header ignored"
        );
        assert_eq!(
            client_ip(peer, &h, &[]),
            peer,
            "no trusted proxies configured"
        );
        h.insert(
            "x-forwarded-for",
            "198.51.100.7, not-an-ip".parse().unwrap(),
        );
        assert_eq!(
            client_ip(peer, &h, &trusted),
            peer,
            "malformed list is not believed"
        );
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn list_parameters_only_for_listing() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-tagging", "team=ml&stage=dev".parse().unwrap());
        let q = Query::parse(Some("list-type=2&prefix=prompts/&delimiter=/"));
        let mut c = Context::new();
        add_s3(&mut c, &Op::ListObjectsV2, &q, &headers, "123456789012");
        assert_eq!(c.get("s3:prefix").unwrap().values(), ["prompts/"]);
        assert_eq!(c.get("s3:delimiter").unwrap().values(), ["/"]);
        assert_eq!(
            c.get("s3:RequestObjectTagKeys").unwrap().values(),
            ["team", "stage"]
        );
        let mut c = Context::new();
        add_s3(
            &mut c,
            &Op::GetObject,
            &q,
            &HeaderMap::new(),
            "123456789012",
        );
        assert!(c.get("s3:prefix").is_none());
        let mut c = Context::new();
        add_s3(
            &mut c,
            &Op::ListObjectVersions,
            &Query::parse(Some("versions&prefix=run-1/&max-keys=5")),
            &HeaderMap::new(),
            "123456789012",
        );
        assert_eq!(c.get("s3:prefix").unwrap().values(), ["run-1/"]);
        assert_eq!(c.get("s3:max-keys").unwrap().values(), ["5"]);
    }

    /// `s3:versionid`: the version a request names, or a copy's source version.
    #[test]
    fn the_version_named_is_in_the_context() {
        let mut c = Context::new();
        add_s3(
            &mut c,
            &Op::GetObject,
            &Query::parse(Some("versionId=abc")),
            &HeaderMap::new(),
            "123456789012",
        );
        assert_eq!(c.get("s3:versionid").unwrap().values(), ["abc"]);
        let copy = Op::CopyObject(crate::s3::route::CopySource {
            bucket: "b".into(),
            key: "k".into(),
            version_id: Some("v1".into()),
        });
        let mut c = Context::new();
        add_s3(
            &mut c,
            &copy,
            &Query::default(),
            &HeaderMap::new(),
            "123456789012",
        );
        assert_eq!(c.get("s3:versionid").unwrap().values(), ["v1"]);
        let mut c = Context::new();
        add_s3(
            &mut c,
            &Op::GetObject,
            &Query::default(),
            &HeaderMap::new(),
            "123456789012",
        );
        assert!(c.get("s3:versionid").is_none());
    }
}
