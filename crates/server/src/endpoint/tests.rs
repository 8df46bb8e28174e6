//! Every endpoint declares what it must be allowed, and every action it names exists: a typo in
//! an action string (which no policy could ever grant, or worse, which a wildcard grant would
//! match by accident) fails here.

use std::collections::HashSet;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use keyhole_policy::catalogue::is_known;

use super::*;
use crate::auth::Principal;
use crate::s3::route::{CopySource, Query};

/// One sample of every S3 operation.
fn s3_samples() -> Vec<Op> {
    let src = || CopySource {
        bucket: "src".into(),
        key: "k".into(),
        version_id: None,
    };
    let upload_id = || "u".to_owned();
    vec![
        Op::ListBuckets,
        Op::CreateBucket,
        Op::DeleteBucket,
        Op::HeadBucket,
        Op::GetBucketLocation,
        Op::ListObjects,
        Op::ListObjectsV2,
        Op::ListMultipartUploads,
        Op::DeleteObjects,
        Op::PutObject,
        Op::CopyObject(src()),
        Op::GetObject,
        Op::HeadObject,
        Op::DeleteObject,
        Op::CreateMultipartUpload,
        Op::UploadPart {
            upload_id: upload_id(),
            part_number: 1,
        },
        Op::UploadPartCopy {
            upload_id: upload_id(),
            part_number: 1,
            source: src(),
        },
        Op::CompleteMultipartUpload {
            upload_id: upload_id(),
        },
        Op::AbortMultipartUpload {
            upload_id: upload_id(),
        },
        Op::ListParts {
            upload_id: upload_id(),
        },
        Op::GetBucketPolicy,
        Op::PutBucketPolicy,
        Op::DeleteBucketPolicy,
        Op::GetBucketPolicyStatus,
        Op::GetPublicAccessBlock,
        Op::PutPublicAccessBlock,
        Op::DeletePublicAccessBlock,
        Op::GetAccountPublicAccessBlock,
        Op::PutAccountPublicAccessBlock,
        Op::DeleteAccountPublicAccessBlock,
        Op::GetObjectTagging,
        Op::PutObjectTagging,
        Op::DeleteObjectTagging,
        Op::GetBucketAcl,
        Op::PutBucketAcl,
        Op::GetObjectAcl,
        Op::PutObjectAcl,
        Op::GetBucketOwnershipControls,
        Op::PutBucketOwnershipControls,
        Op::GetObjectAttributes,
        Op::PostObject,
        Op::GetBucketCors,
        Op::PutBucketCors,
        Op::DeleteBucketCors,
        Op::OptionsObject,
        Op::GetBucketVersioning,
        Op::PutBucketVersioning,
        Op::ListObjectVersions,
        Op::GetBucketTagging,
        Op::PutBucketTagging,
        Op::DeleteBucketTagging,
        Op::GetObjectLockConfiguration,
        Op::PutObjectLockConfiguration,
        Op::GetObjectRetention,
        Op::PutObjectRetention,
        Op::GetObjectLegalHold,
        Op::PutObjectLegalHold,
    ]
}

/// Exhaustive, with no wildcard arm: a new operation does not compile until it is numbered here,
/// and [`every_s3_operation_is_sampled`] fails until it is in [`s3_samples`].
fn s3_index(op: &Op) -> usize {
    match op {
        Op::ListBuckets => 0,
        Op::CreateBucket => 1,
        Op::DeleteBucket => 2,
        Op::HeadBucket => 3,
        Op::GetBucketLocation => 4,
        Op::ListObjects => 5,
        Op::ListObjectsV2 => 6,
        Op::ListMultipartUploads => 7,
        Op::DeleteObjects => 8,
        Op::PutObject => 9,
        Op::CopyObject(_) => 10,
        Op::GetObject => 11,
        Op::HeadObject => 12,
        Op::DeleteObject => 13,
        Op::CreateMultipartUpload => 14,
        Op::UploadPart { .. } => 15,
        Op::UploadPartCopy { .. } => 16,
        Op::CompleteMultipartUpload { .. } => 17,
        Op::AbortMultipartUpload { .. } => 18,
        Op::ListParts { .. } => 19,
        Op::GetBucketPolicy => 20,
        Op::PutBucketPolicy => 21,
        Op::DeleteBucketPolicy => 22,
        Op::GetBucketPolicyStatus => 23,
        Op::GetPublicAccessBlock => 24,
        Op::PutPublicAccessBlock => 25,
        Op::DeletePublicAccessBlock => 26,
        Op::GetAccountPublicAccessBlock => 27,
        Op::PutAccountPublicAccessBlock => 28,
        Op::DeleteAccountPublicAccessBlock => 29,
        Op::GetObjectTagging => 30,
        Op::PutObjectTagging => 31,
        Op::DeleteObjectTagging => 32,
        Op::GetBucketAcl => 33,
        Op::PutBucketAcl => 34,
        Op::GetObjectAcl => 35,
        Op::PutObjectAcl => 36,
        Op::GetBucketOwnershipControls => 37,
        Op::PutBucketOwnershipControls => 38,
        Op::GetObjectAttributes => 39,
        Op::PostObject => 40,
        Op::GetBucketCors => 41,
        Op::PutBucketCors => 42,
        Op::DeleteBucketCors => 43,
        Op::OptionsObject => 44,
        Op::GetBucketVersioning => 45,
        Op::PutBucketVersioning => 46,
        Op::ListObjectVersions => 47,
        Op::GetBucketTagging => 48,
        Op::PutBucketTagging => 49,
        Op::DeleteBucketTagging => 50,
        Op::GetObjectLockConfiguration => 51,
        Op::PutObjectLockConfiguration => 52,
        Op::GetObjectRetention => 53,
        Op::PutObjectRetention => 54,
        Op::GetObjectLegalHold => 55,
        Op::PutObjectLegalHold => 56,
    }
}
const S3_OPERATIONS: usize = 57;

#[test]
fn every_s3_operation_is_sampled() {
    let seen: HashSet<usize> = s3_samples().iter().map(s3_index).collect();
    assert_eq!(seen.len(), S3_OPERATIONS);
}

/// The actions a requirement names; fails on an empty one (which would authorize nothing and is
/// refused at run time) and on an unconditional one without a reason.
fn actions_of(endpoint: &str, r: &Requirement) -> Vec<String> {
    match r {
        Requirement::Permissions(list) => {
            assert!(!list.is_empty(), "{endpoint} declares no permission");
            for p in list {
                assert!(
                    !p.resource.is_empty(),
                    "{endpoint}: {} on no resource",
                    p.action
                );
            }
            list.iter().map(|p| p.action.to_owned()).collect()
        }
        Requirement::Unconditional { action, reason } => {
            assert!(
                !reason.is_empty(),
                "{endpoint}: no reason for needing no permission"
            );
            vec![(*action).to_owned()]
        }
        Requirement::PerItem { action } => vec![(*action).to_owned()],
    }
}

/// A query-protocol form naming every parameter any action might read.
fn form(action: &str, account: &str) -> Query {
    Query::parse(Some(&format!(
        "Action={action}&UserName=u&GroupName=g&RoleName=r&PolicyName=p\
         &PolicyArn=arn%3Aaws%3Aiam%3A%3A{account}%3Apolicy%2Fp&VersionId=v1\
         &PolicySourceArn=arn%3Aaws%3Aiam%3A%3A{account}%3Auser%2Fu&AccessKeyId=AKIAXXXXXXXXXXXXXXXX\
         &Status=Active&PolicyDocument=%7B%7D&AssumeRolePolicyDocument=%7B%7D\
         &PermissionsBoundary=arn%3Aaws%3Aiam%3A%3A{account}%3Apolicy%2Fb\
         &Tags.member.1.Key=team&Tags.member.1.Value=ml&TagKeys.member.1=team\
         &RoleArn=arn%3Aaws%3Aiam%3A%3A{account}%3Arole%2Fr&RoleSessionName=s1\
         &SourceIdentity=someone&Url=https%3A%2F%2Fidp.example&ClientID=c\
         &OpenIDConnectProviderArn=arn%3Aaws%3Aiam%3A%3A{account}%3Aoidc-provider%2Fidp.example"
    )))
}

#[test]
fn every_endpoint_declares_known_actions() {
    let (_dir, gw) = crate::test_gateway();
    let gw = Arc::new(gw);
    let account = gw.account.record.account_id.clone();
    let root = Principal::Root {
        access_key_id: "AKIAROOT".into(),
    };
    let mut declared: Vec<(String, Vec<String>)> = Vec::new();
    for op in s3_samples() {
        let call = crate::s3::S3Call {
            op: op.clone(),
            bucket: "bucket".into(),
            key: "key".into(),
            reads_current: op.compares_current_etag(),
            sets_tags: op.applies_tagging_header(Some("REPLACE")),
            sets_acl: false,
            version_id: None,
            lock_actions: Vec::new(),
        };
        declared.push((op.name().into(), actions_of(op.name(), &call.requirement())));
    }
    for &action in crate::iam::IamAction::ALL {
        let call = crate::iam::describe(&gw, &root, form(action.name(), &account)).unwrap();
        let actions = actions_of(action.name(), &call.requirement());
        assert_eq!(
            actions.first().map(String::as_str),
            Some(action.iam_action())
        );
        declared.push((action.name().into(), actions));
    }
    let web = Principal::WebIdentity {
        identity: Arc::new(crate::oidc::WebIdentity {
            provider_arn: format!("arn:aws:iam::{account}:oidc-provider/idp.example"),
            provider: "idp.example".into(),
            sub: "s".into(),
            aud: "a".into(),
            oaud: None,
            amr: Vec::new(),
        }),
        tags: Arc::new(crate::oidc::TokenTags::default()),
    };
    for action in crate::sts::StsAction::ALL {
        let caller = if action == crate::sts::StsAction::AssumeRoleWithWebIdentity {
            &web
        } else {
            &root
        };
        let call = crate::sts::describe(&gw, caller, &form(action.name(), &account)).unwrap();
        declared.push((
            action.name().into(),
            actions_of(action.name(), &call.requirement()),
        ));
    }
    gw.state
        .create_role(
            "r",
            "/",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}}"#
            ),
            3600,
            "",
        )
        .unwrap();
    for action in KeyholeAction::ALL {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-target",
            HeaderValue::from_str(&format!("Keyhole.{}", action.name())).unwrap(),
        );
        let body = match action {
            KeyholeAction::CreateJob => serde_json::json!({
                "name": "j", "read": ["s3://bucket/in/"], "write": ["s3://bucket/out/"],
                "duration": "1h", "role": "r", "labels": {"team": "ml"},
            }),
            _ => serde_json::json!({
                "JobId": "j-abc123", "AccessKeyId": "ASIAEXAMPLE",
                "Principal": format!("arn:aws:iam::{account}:user/u"),
            }),
        };
        let call =
            crate::jobs::describe(&gw, &root, &headers, body.to_string().as_bytes()).unwrap();
        let actions = actions_of(action.name(), &call.requirement());
        assert_eq!(
            actions.first().map(String::as_str),
            Some(action.iam_action())
        );
        declared.push((action.name().into(), actions));
    }
    let fetch = crate::jobs::CredentialFetch {
        job_arn: crate::jobs::job_arn("us-east-1", &account, "j-abc123"),
    };
    declared.push((
        "GetJobCredentials".into(),
        actions_of("credentials", &fetch.requirement()),
    ));
    declared.push((
        "GetMetrics".into(),
        actions_of("metrics", &Call::Metrics.requirement()),
    ));
    let mut all = HashSet::new();
    for (endpoint, actions) in &declared {
        for a in actions {
            assert!(
                is_known(a),
                "{endpoint} needs `{a}`, which is in no action catalogue (a typo?)"
            );
            all.insert(a.clone());
        }
    }
    // The role-passing and tagging checks are declared where they apply.
    for a in [
        "sts:AssumeRole",
        "sts:TagSession",
        "sts:SetSourceIdentity",
        "iam:TagUser",
        "iam:TagRole",
    ] {
        assert!(all.contains(a), "no endpoint declares {a}");
    }
    assert_eq!(
        declared.len(),
        S3_OPERATIONS
            + crate::iam::IamAction::ALL.len()
            + crate::sts::StsAction::ALL.len()
            + KeyholeAction::ALL.len()
            + 2
    );
}

/// The write-ahead rule (issue 10, item 5): every endpoint that changes state or issues
/// credentials is mutating; reads are not.
#[test]
fn endpoints_that_change_state_are_mutating() {
    use crate::iam::IamAction as I;
    let post = http::Method::POST;
    for a in [
        I::CreateUser,
        I::PutUserPolicy,
        I::CreateAccessKey,
        I::DeleteUser,
        I::UpdateAccessKey,
    ] {
        assert!(Endpoint::Iam(a).mutating(&post), "{a:?}");
    }
    for a in [
        I::GetUser,
        I::ListUsers,
        I::SimulatePrincipalPolicy,
        I::GetContextKeysForCustomPolicy,
    ] {
        assert!(!Endpoint::Iam(a).mutating(&post), "{a:?}");
    }
    assert!(Endpoint::Sts(StsAction::AssumeRole).mutating(&post));
    assert!(Endpoint::Sts(StsAction::GetSessionToken).mutating(&post));
    assert!(!Endpoint::Sts(StsAction::GetCallerIdentity).mutating(&post));
    assert!(Endpoint::Keyhole(KeyholeAction::CreateJob).mutating(&post));
    assert!(!Endpoint::Keyhole(KeyholeAction::GetJobReport).mutating(&post));
    assert!(Endpoint::JobCredentials.mutating(&http::Method::GET));
    assert!(!Endpoint::S3(Op::GetObject).mutating(&http::Method::GET));
}
