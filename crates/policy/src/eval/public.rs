//! Whether a resource-policy statement makes the bucket "public", for S3 Block Public Access.
//!
//! "Amazon S3 considers a bucket policy public unless at least one of the following conditions
//! is true: the policy limits access to a set of CIDRs using aws:SourceIp; the policy grants
//! permissions, not including any bad actions, to [...] a fixed AWS principal, user, role, or
//! service principal, a fixed aws:SourceArn, aws:SourceVpc, aws:SourceVpce, aws:SourceOwner,
//! aws:SourceAccount, s3:x-amz-server-side-encryption-aws-kms-key-id, or aws:userid outside the
//! pattern AROLEID:*." Bad actions are `s3:Get*`, `s3:List*`, `s3:AbortMultipartUpload`,
//! `s3:Delete*`, `s3:Put*` and `s3:RestoreObject`
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_PublicAccessBlockConfiguration.html>,
//! "The meaning of public" in the S3 user guide).
//!
//! A statement is public here when it allows, to a wildcard principal (`*`, `{"AWS": "*"}` or
//! any `NotPrincipal`), at least one bad action (any action for `NotAction`), and no
//! condition pins it to fixed values as above.

use crate::condition::ip::Cidr;
use crate::model::{
    ActionRule, Condition, Effect, OperatorKind, Principal, PrincipalKind, PrincipalRule, Statement,
};

const FIXED_KEYS: &[&str] = &[
    "aws:sourcearn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceowner",
    "aws:sourceaccount",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "aws:userid",
];

fn is_bad_s3_action(name: &str) -> bool {
    ["Get", "List", "Delete", "Put"]
        .iter()
        .any(|p| name.starts_with(p))
        || name == "AbortMultipartUpload"
        || name == "RestoreObject"
}

fn wildcard_principal(rule: Option<&PrincipalRule>) -> bool {
    match rule {
        None => false,
        Some(PrincipalRule::NotPrincipal(_)) | Some(PrincipalRule::Principal(Principal::Any)) => {
            true
        }
        Some(PrincipalRule::Principal(Principal::Map(entries))) => entries
            .iter()
            .any(|(kind, vals)| *kind == PrincipalKind::Aws && vals.iter().any(|v| v == "*")),
    }
}

fn grants_bad_action(rule: &ActionRule) -> bool {
    match rule {
        ActionRule::NotAction(_) => true,
        ActionRule::Action(list) => list.iter().any(|a| {
            crate::s3::expand(a)
                .iter()
                .any(|act| is_bad_s3_action(act.name))
        }),
    }
}

/// Whether a condition pins the statement to fixed values.
fn restricts(c: &Condition) -> bool {
    let op = c.operator;
    if op.if_exists || op.kind.is_negated() || op.set.is_some() {
        return false;
    }
    let key = c.key.to_ascii_lowercase();
    let texts = || c.values.iter().map(|v| v.as_text());
    if key == "aws:sourceip" && op.kind == OperatorKind::IpAddress {
        return texts().all(|t| Cidr::parse(t).is_some_and(|cidr| cidr.prefix_len() > 0));
    }
    let fixed_op = matches!(
        op.kind,
        OperatorKind::StringEquals
            | OperatorKind::StringEqualsIgnoreCase
            | OperatorKind::StringLike
            | OperatorKind::ArnEquals
            | OperatorKind::ArnLike
    );
    fixed_op && FIXED_KEYS.contains(&key.as_str()) && texts().all(|t| !t.contains(['*', '?']))
}

/// Whether an `Allow` statement of a resource policy grants public access.
pub(crate) fn statement_is_public(st: &Statement) -> bool {
    st.effect == Effect::Allow
        && wildcard_principal(st.principal.as_ref())
        && grants_bad_action(&st.action)
        && !st.conditions.iter().any(restricts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(stmt: &str) -> bool {
        let p = crate::parse_policy(&format!(
            r#"{{"Version": "2012-10-17", "Statement": {stmt}}}"#
        ))
        .unwrap();
        statement_is_public(&p.statements[0])
    }

    #[test]
    fn meaning_of_public() {
        assert!(public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}"#
        ));
        assert!(public(
            r#"{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": "*"}"#
        ));
        assert!(!public(
            r#"{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}"#
        ));
        assert!(!public(
            r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:*", "Resource": "*"}"#
        ));
        assert!(!public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}"#
        ));
        assert!(public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}}"#
        ));
        assert!(public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}"#
        ));
        assert!(!public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}}"#
        ));
        assert!(public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"StringLike": {"aws:SourceVpce": "vpce-*"}}}"#
        ));
        // `s3:Get*` is a bad action, whatever it reads.
        assert!(public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetBucketNotification", "Resource": "*"}"#
        ));
        // Not a bad action.
        assert!(!public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:ReplicateObject", "Resource": "*"}"#
        ));
    }
}
