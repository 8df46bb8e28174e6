//! Whether a resource-policy statement makes the bucket "public", for S3 Block Public Access.
//!
//! "When evaluating a bucket policy, Amazon S3 begins by assuming that the policy is public. [...]
//! To be considered non-public, a bucket policy must grant access only to fixed values (values
//! that don't contain a wildcard or an AWS Identity and Access Management Policy Variable) for
//! one or more of the following: an AWS principal, user, role, or service principal (e.g.
//! aws:PrincipalOrgID); a set of Classless Inter-Domain Routings (CIDR) blocks, using
//! aws:SourceIp [...]; aws:SourceArn; aws:SourceVpc; aws:SourceVpce; aws:SourceOwner;
//! aws:SourceAccount; aws:userid, outside the pattern "AROLEID:*"; s3:DataAccessPointArn;
//! s3:DataAccessPointAccount", and "Bucket policies that grant access conditioned on the
//! aws:SourceIp condition key with very broad IP ranges (for example, 0.0.0.0/1) are evaluated
//! as 'public.' This includes values broader than /8 for IPv4 and /32 for IPv6 (excluding RFC1918
//! private ranges)" (S3 user guide, "The meaning of public",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html#access-control-block-public-access-policy-status>).
//! The API reference adds a fixed `s3:x-amz-server-side-encryption-aws-kms-key-id`. Bad actions
//! are `s3:Get*`, `s3:List*`, `s3:AbortMultipartUpload`, `s3:Delete*`, `s3:Put*` and
//! `s3:RestoreObject`
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_PublicAccessBlockConfiguration.html>).
//!
//! A statement is public here when it allows, to a wildcard principal (`*`, `{"AWS": "*"}` or
//! any `NotPrincipal`), at least one bad action (any action for `NotAction`), and no
//! condition pins it to fixed values as above.
//!
//! `aws:SourceIp` is judged by what the set admits, not by how it is spelt: a statement is
//! public when any one range is broader than `/8` (IPv4) or `/32` (IPv6), as AWS documents, and
//! also when the ranges together, less the RFC 1918 private ranges, admit more addresses than one
//! such range. The second rule is keyhole's, stricter than AWS's documented one: without it,
//! `0.0.0.0/0` split into 256 `/8`s would be non-public while admitting everyone (review round
//! 5, finding 4, where two `/1`s did). It refuses a policy AWS might accept (two public `/8`s),
//! never the reverse.
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

/// The broadest `aws:SourceIp` range that is not public, per family: "broader than /8 for IPv4
/// and /32 for IPv6" is public.
const NARROWEST_PUBLIC_V4: u8 = 8;
const NARROWEST_PUBLIC_V6: u8 = 32;

/// RFC 1918's private IPv4 ranges, which AWS leaves out of the rule above.
const RFC1918: [(u128, u128); 3] = [
    (0x0a00_0000, 0x0aff_ffff), // 10.0.0.0/8
    (0xac10_0000, 0xac1f_ffff), // 172.16.0.0/12
    (0xc0a8_0000, 0xc0a8_ffff), // 192.168.0.0/16
];

/// How many addresses the union of the inclusive ranges holds (saturating at `u128::MAX`).
fn union_size(mut ranges: Vec<(u128, u128)>) -> u128 {
    ranges.sort_unstable();
    let mut total: u128 = 0;
    let mut current: Option<(u128, u128)> = None;
    for (lo, hi) in ranges {
        current = match current {
            Some((clo, chi)) if lo <= chi.saturating_add(1) => Some((clo, chi.max(hi))),
            Some((clo, chi)) => {
                total = total.saturating_add((chi - clo).saturating_add(1));
                Some((lo, hi))
            }
            None => Some((lo, hi)),
        };
    }
    if let Some((clo, chi)) = current {
        total = total.saturating_add((chi - clo).saturating_add(1));
    }
    total
}

/// Whether an `IpAddress` condition on `aws:SourceIp` with these values pins the statement to a
/// non-public set of addresses (see the module documentation).
fn source_ips_restrict<'a>(mut values: impl Iterator<Item = &'a str>) -> bool {
    let Some(cidrs) = values.try_fold(Vec::new(), |mut v, t| {
        v.push(Cidr::parse(t)?);
        Some(v)
    }) else {
        // A value that is not an address restricts nothing we can vouch for.
        return false;
    };
    let is_private = |c: &Cidr| {
        let (lo, hi) = c.bounds();
        !c.is_v6() && RFC1918.iter().any(|&(plo, phi)| plo <= lo && hi <= phi)
    };
    let too_broad = |c: &Cidr| {
        let narrowest = if c.is_v6() {
            NARROWEST_PUBLIC_V6
        } else {
            NARROWEST_PUBLIC_V4
        };
        c.prefix_len() < narrowest && !is_private(c)
    };
    if cidrs.iter().any(too_broad) {
        return false;
    }
    let family = |v6: bool| -> Vec<(u128, u128)> {
        cidrs
            .iter()
            .filter(|c| c.is_v6() == v6)
            .map(Cidr::bounds)
            .collect()
    };
    let v4 = family(false);
    let private: u128 = RFC1918
        .iter()
        .map(|&(plo, phi)| {
            union_size(
                v4.iter()
                    .filter(|&&(lo, hi)| lo <= phi && plo <= hi)
                    .map(|&(lo, hi)| (lo.max(plo), hi.min(phi)))
                    .collect(),
            )
        })
        .sum();
    let public_v4 = union_size(v4).saturating_sub(private);
    let public_v6 = union_size(family(true));
    public_v4 <= 1u128 << (32 - NARROWEST_PUBLIC_V4)
        && public_v6 <= 1u128 << (128 - NARROWEST_PUBLIC_V6)
}

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
pub(crate) fn restricts(c: &Condition) -> bool {
    let op = c.operator;
    if op.if_exists || op.kind.is_negated() || op.set.is_some() {
        return false;
    }
    let key = c.key.to_ascii_lowercase();
    let texts = || c.values.iter().map(|v| v.as_text());
    if key == "aws:sourceip" && op.kind == OperatorKind::IpAddress {
        return source_ips_restrict(texts());
    }
    let fixed_op = matches!(
        op.kind,
        OperatorKind::StringEquals
            | OperatorKind::StringEqualsIgnoreCase
            | OperatorKind::StringLike
            | OperatorKind::ArnEquals
            | OperatorKind::ArnLike
    );
    // Fixed: no wildcard and no policy variable (`${aws:userid}` would match every caller).
    fixed_op
        && FIXED_KEYS.contains(&key.as_str())
        && texts().all(|t| !t.contains(['*', '?']) && !t.contains("${"))
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

    fn public_from(ips: &[&str]) -> bool {
        public(&format!(
            r#"{{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {{"IpAddress": {{"aws:SourceIp": {}}}}}}}"#,
            serde_json::to_string(ips).unwrap()
        ))
    }

    /// "Bucket policies that grant access conditioned on the aws:SourceIp condition key with very
    /// broad IP ranges (for example, 0.0.0.0/1) are evaluated as 'public.' This includes values
    /// broader than /8 for IPv4 and /32 for IPv6 (excluding RFC1918 private ranges)"
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html#access-control-block-public-access-policy-status).
    #[test]
    fn source_ip_ranges_broader_than_a_slash_8_or_slash_32_are_public() {
        // Review round 5, finding 4: the whole space, split in halves.
        assert!(public_from(&[
            "0.0.0.0/1",
            "128.0.0.0/1",
            "::/1",
            "8000::/1"
        ]));
        assert!(public_from(&["0.0.0.0/1"]));
        assert!(public_from(&["::/1"]));
        assert!(public_from(&["203.0.113.0/24", "0.0.0.0/7"]));
        assert!(public_from(&["2001:db8::/31"]));
        // IPv4-mapped IPv6 notation names IPv4 space.
        assert!(public_from(&["::ffff:0.0.0.0/97"]));
        // As broad as AWS allows, and narrower.
        assert!(!public_from(&["11.0.0.0/8"]));
        assert!(!public_from(&["2001:db8::/32"]));
        assert!(!public_from(&[
            "203.0.113.0/24",
            "2001:db8::/48",
            "198.51.100.7"
        ]));
        // The private ranges, together broader than a /8, are not public.
        assert!(!public_from(&[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16"
        ]));
        assert!(!public_from(&[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "11.0.0.0/8"
        ]));
        // Overlapping ranges count once.
        assert!(!public_from(&["11.0.0.0/8", "11.1.0.0/16", "11.0.0.0/9"]));
    }

    /// keyhole's own rule, stricter than AWS's documented one: the ranges together may not admit
    /// more than one /8 (IPv4, RFC 1918 aside) or one /32 (IPv6), so `0.0.0.0/0` cannot be spelt
    /// as many narrow ranges either.
    #[test]
    fn source_ip_sets_are_judged_by_what_they_admit() {
        let slash8s: Vec<String> = (0..=255).map(|i| format!("{i}.0.0.0/8")).collect();
        let refs: Vec<&str> = slash8s.iter().map(String::as_str).collect();
        assert!(public_from(&refs));
        assert!(public_from(&["11.0.0.0/8", "12.0.0.0/8"]));
        assert!(public_from(&["2001:db8::/32", "2001:db9::/32"]));
        assert!(!public_from(&["11.0.0.0/9", "11.128.0.0/9"]));
    }

    /// "To be considered non-public, a bucket policy must grant access only to fixed values
    /// (values that don't contain a wildcard or an AWS Identity and Access Management Policy
    /// Variable)" (same page).
    #[test]
    fn policy_variables_are_not_fixed_values() {
        assert!(public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"StringEquals": {"aws:userid": "${aws:userid}"}}}"#
        ));
        assert!(public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": "${aws:PrincipalAccount}"}}}"#
        ));
        assert!(!public(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333"}}}"#
        ));
    }

    mod properties {
        use super::public_from;
        use proptest::prelude::*;

        /// Splits `[lo, lo + 2^(bits-prefix))` into CIDRs, choosing at random where to stop.
        fn split(
            lo: u32,
            prefix: u8,
            choices: &mut impl Iterator<Item = bool>,
            out: &mut Vec<String>,
        ) {
            if prefix >= 16 || !choices.next().unwrap_or(false) {
                out.push(format!("{}/{prefix}", std::net::Ipv4Addr::from(lo)));
                return;
            }
            let half = 1u32 << (31 - prefix);
            split(lo, prefix + 1, choices, out);
            split(lo | half, prefix + 1, choices, out);
        }

        proptest! {
            /// However `0.0.0.0/0` is cut into ranges, the set admits everyone and is public.
            #[test]
            fn any_split_of_the_whole_ipv4_space_is_public(choices in proptest::collection::vec(any::<bool>(), 0..600)) {
                let mut cidrs = Vec::new();
                split(0, 0, &mut choices.into_iter(), &mut cidrs);
                let refs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
                prop_assert!(public_from(&refs), "{cidrs:?}");
            }

            /// Any set of ranges inside one public /8 is not public.
            #[test]
            fn ranges_inside_one_slash_8_are_not_public(
                first in 11u8..=126,
                ranges in proptest::collection::vec((any::<u32>(), 8u8..=32), 1..20),
            ) {
                let cidrs: Vec<String> = ranges
                    .iter()
                    .map(|&(bits, prefix)| {
                        let addr = (u32::from(first) << 24) | (bits & 0x00ff_ffff);
                        format!("{}/{prefix}", std::net::Ipv4Addr::from(addr))
                    })
                    .collect();
                let refs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
                prop_assert!(!public_from(&refs), "{cidrs:?}");
            }

            /// Adding a range never makes a public set non-public.
            #[test]
            fn adding_a_range_keeps_a_public_set_public(
                ranges in proptest::collection::vec((any::<u32>(), 0u8..=32), 1..10),
                extra in (any::<u32>(), 0u8..=32),
            ) {
                let fmt = |&(bits, prefix): &(u32, u8)| format!("{}/{prefix}", std::net::Ipv4Addr::from(bits));
                let mut cidrs: Vec<String> = ranges.iter().map(fmt).collect();
                let before = public_from(&cidrs.iter().map(String::as_str).collect::<Vec<_>>());
                cidrs.push(fmt(&extra));
                let after = public_from(&cidrs.iter().map(String::as_str).collect::<Vec<_>>());
                prop_assert!(!before || after, "{cidrs:?}");
            }
        }
    }
}
