//! AssumeRole's session inputs: session tags (`Tags.member.N.Key/Value`), transitive tag keys
//! (`TransitiveTagKeys.member.N`), managed session policies (`PolicyArns.member.N.arn`), and the
//! packed size of session policies and tags.
//!
//! AWS rules (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html,
//! https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html,
//! https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html):
//! - at most 50 session tags, keys of 1-128 and values of 0-256 characters with IAM's tag
//!   character rules; keys are case-insensitive ("you cannot have separate Department and
//!   department tag keys");
//! - at most 50 transitive keys, each the key of a tag passed in the same request;
//! - "if you used temporary credentials to perform this operation, the new session inherits any
//!   transitive session tags from the calling session. If you pass a session tag with the same
//!   key as an inherited tag, the operation fails"; inherited tags stay transitive;
//! - at most 10 managed policy ARNs, of policies in the role's account; "the plaintext that you
//!   use for both inline and managed session policies can't exceed 2,048 characters";
//! - "An AWS conversion compresses the passed inline session policy, managed policy ARNs, and
//!   session tags into a packed binary format that has a separate limit", reported as
//!   `PackedPolicySize` (a percentage) and refused over 100 % with `PackedPolicyTooLarge`.
//!
//! keyhole does not compress. Its packed measure has two allotments of
//! [`PACKED_ALLOTTED_CHARS`] characters each: the session policies' plaintext (the inline policy
//! without white space, plus the managed policy ARNs) and the session tags (keys plus values,
//! inherited transitive tags included). `PackedPolicySize` is the fuller of the two, in percent
//! rounded up; over 100 % the request fails with AWS's messages ("Packed policy consumes N% of
//! allotted space, please use smaller policy." / "Packed size of session tags consumes N% of
//! allotted space.", https://repost.aws/knowledge-center/iam-role-aws-sts-error). The bound keeps
//! session tokens (which carry all of it) a few kilobytes long.

use http::StatusCode;

use super::{invalid_parameter, validation, MAX_SESSION_POLICY_CHARS};
use crate::error::S3Error;
use crate::s3::route::Query;
use crate::state::same_tag_key;

/// At most this many session tags a request (AWS: 50).
pub const MAX_SESSION_TAGS: usize = 50;
/// At most this many transitive tag keys a request (AWS: 50).
pub const MAX_TRANSITIVE_KEYS: usize = 50;
/// At most this many managed session policies (AWS: 10).
pub const MAX_POLICY_ARNS: usize = 10;
/// Each of keyhole's two packed allotments (session policies' plaintext, session tags), in
/// characters.
pub const PACKED_ALLOTTED_CHARS: usize = MAX_SESSION_POLICY_CHARS;

/// The session tags and transitive keys a request passes, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTags {
    /// `Tags.member.N`, in request order.
    pub tags: Vec<(String, String)>,
    /// `TransitiveTagKeys.member.N`, spelled as the tag they name.
    pub transitive: Vec<String>,
}

/// `PREFIX.member.N` values in index order (the Query protocol's lists), stopping at the first
/// missing index.
fn members(form: &Query, prefix: &str) -> Vec<String> {
    (1..)
        .map_while(|i| form.get(&format!("{prefix}.member.{i}")).map(str::to_owned))
        .collect()
}

/// Reads and validates `Tags.member.N.Key/Value` and `TransitiveTagKeys.member.N`.
pub fn parse_session_tags(form: &Query) -> Result<SessionTags, S3Error> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for i in 1.. {
        let Some(key) = form.get(&format!("Tags.member.{i}.Key")) else {
            break;
        };
        let value = form.get(&format!("Tags.member.{i}.Value")).ok_or_else(|| {
            validation(format!(
                "Tags.member.{i}.Value is missing: every session tag needs a Key and a Value (the Value may be empty)"
            ))
        })?;
        crate::state::validate_tag(key, value)
            .map_err(|e| validation(format!("Tags.member.{i}: {e}")))?;
        if let Some((first, _)) = tags.iter().find(|(k, _)| same_tag_key(k, key)) {
            return Err(invalid_parameter(format!(
                "Duplicate tag keys found: `{first}` and `{key}` (Tags.member.{i}); session tag keys are case insensitive"
            )));
        }
        tags.push((key.to_owned(), value.to_owned()));
    }
    if tags.len() > MAX_SESSION_TAGS {
        return Err(validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to {MAX_SESSION_TAGS} ({} tags passed)",
            tags.len()
        )));
    }
    let requested = members(form, "TransitiveTagKeys");
    if requested.len() > MAX_TRANSITIVE_KEYS {
        return Err(validation(format!(
            "1 validation error detected: Value at 'transitiveTagKeys' failed to satisfy constraint: Member must have length less than or equal to {MAX_TRANSITIVE_KEYS}"
        )));
    }
    let mut transitive: Vec<String> = Vec::new();
    for (i, key) in requested.iter().enumerate() {
        let Some((spelled, _)) = tags.iter().find(|(k, _)| same_tag_key(k, key)) else {
            return Err(invalid_parameter(format!(
                "TransitiveTagKeys.member.{}: `{key}` is not the key of a session tag in this request; a transitive key must name one of the Tags passed with it",
                i + 1
            )));
        };
        if !transitive.iter().any(|t| t == spelled) {
            transitive.push(spelled.clone());
        }
    }
    Ok(SessionTags { tags, transitive })
}

/// The new session's tags and transitive keys: the tags inherited (transitive) from the calling
/// session, then the passed ones. A passed tag may not reuse an inherited key: "If you pass a
/// session tag with the same key as an inherited tag, the operation fails."
pub fn with_inherited(
    passed: SessionTags,
    inherited: &[(String, String)],
) -> Result<SessionTags, S3Error> {
    if let Some((key, _)) = passed
        .tags
        .iter()
        .find(|(k, _)| inherited.iter().any(|(i, _)| same_tag_key(i, k)))
    {
        return Err(invalid_parameter(format!(
            "the session tag `{key}` has the key of a transitive tag inherited from the calling session; inherited transitive tags cannot be overridden, so leave `{key}` out of Tags"
        )));
    }
    let mut tags = inherited.to_vec();
    let mut transitive: Vec<String> = inherited.iter().map(|(k, _)| k.clone()).collect();
    tags.extend(passed.tags);
    transitive.extend(passed.transitive);
    Ok(SessionTags { tags, transitive })
}

/// Reads `PolicyArns.member.N.arn` (at most 10, each of a managed policy of this account).
pub fn parse_policy_arns(
    form: &Query,
    known: &std::collections::HashMap<String, keyhole_policy::CompiledPolicy>,
) -> Result<Vec<String>, S3Error> {
    let mut arns: Vec<String> = Vec::new();
    for i in 1.. {
        let Some(arn) = form.get(&format!("PolicyArns.member.{i}.arn")) else {
            break;
        };
        if !(20..=2048).contains(&arn.chars().count()) {
            return Err(validation(format!(
                "PolicyArns.member.{i}.arn `{arn}` must be 20 to 2048 characters long"
            )));
        }
        if !known.contains_key(arn) {
            return Err(invalid_parameter(format!(
                "PolicyArns.member.{i}.arn: no managed policy `{arn}` in this account; managed session policies must exist in the role's account (create it with iam create-policy)"
            )));
        }
        if !arns.iter().any(|a| a == arn) {
            arns.push(arn.to_owned());
        }
    }
    if arns.len() > MAX_POLICY_ARNS {
        return Err(validation(format!(
            "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to {MAX_POLICY_ARNS} ({} passed)",
            arns.len()
        )));
    }
    Ok(arns)
}

/// Percent of `allotted` that `used` takes, rounded up.
fn percent(used: usize, allotted: usize) -> usize {
    used.saturating_mul(100).div_ceil(allotted.max(1))
}

/// Checks the packed size of a session's policies and tags (see the module docs) and returns
/// `PackedPolicySize`.
pub fn packed_size(
    policy: Option<&str>,
    policy_arns: &[String],
    tags: &[(String, String)],
) -> Result<usize, S3Error> {
    let policy_chars = policy.map_or(0, crate::state::policy_chars)
        + policy_arns.iter().map(|a| a.chars().count()).sum::<usize>();
    let tag_chars: usize = tags
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    let policies = percent(policy_chars, PACKED_ALLOTTED_CHARS);
    let tags = percent(tag_chars, PACKED_ALLOTTED_CHARS);
    let too_large =
        |message: String| S3Error::new("PackedPolicyTooLarge", StatusCode::BAD_REQUEST, message);
    if policies > 100 {
        return Err(too_large(format!(
            "Packed policy consumes {policies}% of allotted space, please use smaller policy. (The inline session policy without white space and the managed policy ARNs are {policy_chars} characters; at most {MAX_SESSION_POLICY_CHARS}.)"
        )));
    }
    if tags > 100 {
        return Err(too_large(format!(
            "Packed size of session tags consumes {tags}% of allotted space. (Session tag keys and values, inherited transitive tags included, are {tag_chars} characters; keyhole allots {PACKED_ALLOTTED_CHARS}.)"
        )));
    }
    Ok(policies.max(tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    /// AWS's rules for session tags
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_know
    /// and https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html).
    #[test]
    fn session_tags_follow_aws_rules() {
        let t = parse_session_tags(&q(
            "Tags.member.1.Key=Project&Tags.member.1.Value=Automation&Tags.member.2.Key=cost%20center&Tags.member.2.Value=&TransitiveTagKeys.member.1=project",
        ))
        .unwrap();
        assert_eq!(
            t.tags,
            [
                ("Project".into(), "Automation".into()),
                ("cost center".into(), String::new())
            ]
        );
        assert_eq!(t.transitive, ["Project"], "spelled as the tag it names");
        let code = |s: &str| parse_session_tags(&q(s)).unwrap_err().code();
        assert_eq!(
            code("Tags.member.1.Key=Dept&Tags.member.1.Value=a&Tags.member.2.Key=dept&Tags.member.2.Value=b"),
            "InvalidParameterValue",
            "keys differing only in case"
        );
        assert_eq!(
            code("Tags.member.1.Key=a%21&Tags.member.1.Value=x"),
            "ValidationError"
        );
        assert_eq!(
            code("Tags.member.1.Key=aws%3Ax&Tags.member.1.Value=x"),
            "ValidationError"
        );
        assert_eq!(code("Tags.member.1.Key=k"), "ValidationError", "no Value");
        let long_key = "k".repeat(129);
        assert_eq!(
            code(&format!(
                "Tags.member.1.Key={long_key}&Tags.member.1.Value=x"
            )),
            "ValidationError"
        );
        let long_value = "v".repeat(257);
        assert_eq!(
            code(&format!(
                "Tags.member.1.Key=k&Tags.member.1.Value={long_value}"
            )),
            "ValidationError"
        );
        let fifty_one: String = (1..=51)
            .map(|i| format!("Tags.member.{i}.Key=k{i}&Tags.member.{i}.Value=v&"))
            .collect();
        assert_eq!(code(&fifty_one), "ValidationError");
        let fifty: String = (1..=50)
            .map(|i| format!("Tags.member.{i}.Key=k{i}&Tags.member.{i}.Value=v&"))
            .collect();
        assert_eq!(parse_session_tags(&q(&fifty)).unwrap().tags.len(), 50);
        let e = parse_session_tags(&q(
            "Tags.member.1.Key=a&Tags.member.1.Value=x&TransitiveTagKeys.member.1=b",
        ))
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValue");
        assert!(
            e.message().contains("TransitiveTagKeys.member.1"),
            "{}",
            e.message()
        );
    }

    /// "If you pass a session tag with the same key as an inherited tag, the operation fails";
    /// inherited tags "will continue to be transitive"
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_role-chaining).
    #[test]
    fn inherited_transitive_tags_cannot_be_overridden_and_stay_transitive() {
        let inherited = [("Heart".to_owned(), "1".to_owned())];
        let passed = SessionTags {
            tags: vec![("Sun".into(), "2".into())],
            transitive: vec![],
        };
        let merged = with_inherited(passed, &inherited).unwrap();
        assert_eq!(
            merged.tags,
            [("Heart".into(), "1".into()), ("Sun".into(), "2".into())]
        );
        assert_eq!(merged.transitive, ["Heart"]);
        let clash = SessionTags {
            tags: vec![("heart".into(), "3".into())],
            transitive: vec![],
        };
        let e = with_inherited(clash, &inherited).unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValue");
        assert!(e.message().contains("`heart`"), "{}", e.message());
    }

    #[test]
    fn policy_arns_must_name_managed_policies_of_the_account() {
        let p = keyhole_policy::CompiledPolicy::from_json(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
            keyhole_policy::PolicyKind::Session,
        )
        .unwrap();
        let known = std::collections::HashMap::from([(
            "arn:aws:iam::123456789012:policy/ro".to_owned(),
            p,
        )]);
        assert_eq!(
            parse_policy_arns(
                &q("PolicyArns.member.1.arn=arn:aws:iam::123456789012:policy/ro"),
                &known
            )
            .unwrap(),
            ["arn:aws:iam::123456789012:policy/ro"]
        );
        let e = parse_policy_arns(
            &q("PolicyArns.member.1.arn=arn:aws:iam::123456789012:policy/nope"),
            &known,
        )
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValue");
        assert!(e.message().contains("PolicyArns.member.1.arn"));
        assert_eq!(
            parse_policy_arns(&q("PolicyArns.member.1.arn=short"), &known)
                .unwrap_err()
                .code(),
            "ValidationError"
        );
    }

    /// PackedPolicySize and PackedPolicyTooLarge with AWS's messages
    /// (https://repost.aws/knowledge-center/iam-role-aws-sts-error).
    #[test]
    fn packed_size_counts_policies_arns_and_tags() {
        assert_eq!(packed_size(None, &[], &[]).unwrap(), 0);
        // White space does not count; the percentage rounds up.
        let doc = format!("{{ \"a\" : \"{}\" }}", "x".repeat(1016)); // 1024 characters counted
        assert_eq!(packed_size(Some(&doc), &[], &[]).unwrap(), 50);
        let arn = "arn:aws:iam::123456789012:policy/p".to_owned(); // 34 characters
        assert_eq!(
            packed_size(Some(&doc), std::slice::from_ref(&arn), &[]).unwrap(),
            52
        );
        let e = packed_size(Some(&doc), &vec![arn; 31], &[]).unwrap_err();
        assert_eq!(e.code(), "PackedPolicyTooLarge");
        assert!(
            e.message().starts_with(
                "Packed policy consumes 102% of allotted space, please use smaller policy."
            ),
            "{}",
            e.message()
        );
        let tags: Vec<(String, String)> = (0..8)
            .map(|i| (format!("key-{i}"), "v".repeat(251)))
            .collect(); // 8 * 256 = 2048
        assert_eq!(packed_size(None, &[], &tags).unwrap(), 100);
        let mut more = tags.clone();
        more.push(("k".into(), "v".into()));
        let e = packed_size(None, &[], &more).unwrap_err();
        assert_eq!(e.code(), "PackedPolicyTooLarge");
        assert!(
            e.message()
                .starts_with("Packed size of session tags consumes 101% of allotted space."),
            "{}",
            e.message()
        );
    }
}
