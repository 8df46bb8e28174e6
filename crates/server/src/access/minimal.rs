//! The minimal-policy generator: the narrowest identity policy covering the S3 access that was
//! observed, one location (a bucket and a key prefix) at a time. Job reports
//! ([`crate::jobs::report`]) and principal access reports ([`crate::access`]) both use it, so a
//! job and a user or role get the same kind of proposal.
//!
//! Per location: the object actions used, on the objects touched, listed one by one up to
//! [`MAX_EXACT_OBJECTS`] and otherwise as the location's prefix (`arn:aws:s3:::BUCKET/PREFIX*`);
//! `s3:ListBucket` on the bucket, limited by `s3:prefix` to the location's prefix when it has
//! one; actions on the bucket itself (other than listing) on the bucket ARN.

use std::collections::BTreeSet;

use serde_json::{json, Value};

/// Most object ARNs the minimal policy lists one by one before it names the prefix instead.
pub const MAX_EXACT_OBJECTS: usize = 10;

/// What was used under one location.
#[derive(Debug, Default, Clone)]
pub struct LocationUse {
    /// Object keys touched.
    pub objects: BTreeSet<String>,
    /// Allowed checks counted here.
    pub requests: u64,
    /// Object bytes moved.
    pub bytes: u64,
    /// Listings.
    pub lists: u64,
    /// Actions used on objects, and `s3:ListBucket`.
    pub actions: BTreeSet<String>,
    /// Actions used on the bucket itself, other than `s3:ListBucket` (`s3:GetBucketLocation`,
    /// ...): granted on the bucket's ARN.
    pub bucket_actions: BTreeSet<String>,
    /// Keys an allowed request acted on besides `objects` (a multipart upload started and
    /// aborted makes no object, yet its requests needed `s3:PutObject` on the key): the policy
    /// names them too.
    pub keys: BTreeSet<String>,
}

/// A location the generator writes statements for: a bucket and a key prefix (empty: the whole
/// bucket).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Key prefix, empty or as used (a job's ends in `/`).
    pub prefix: &'a str,
}

/// The statements for `scopes` (paired with what was used under each), named
/// `{sid}{i}Objects`, `{sid}{i}List` and `{sid}{i}Bucket`, each with `conditions` (left out
/// when it is an empty object).
pub fn s3_statements(
    sid: &str,
    scopes: &[Scope<'_>],
    uses: &[LocationUse],
    conditions: &Value,
) -> Vec<Value> {
    let with_condition = |mut statement: Value, condition: &Value| {
        let empty = condition.as_object().is_none_or(serde_json::Map::is_empty);
        if let (Some(o), false) = (statement.as_object_mut(), empty) {
            o.insert("Condition".into(), condition.clone());
        }
        statement
    };
    let mut statements = Vec::new();
    for (i, (l, u)) in scopes.iter().zip(uses).enumerate() {
        let object_actions: Vec<&String> =
            u.actions.iter().filter(|a| *a != "s3:ListBucket").collect();
        if !object_actions.is_empty() {
            let named: BTreeSet<&String> = u.objects.union(&u.keys).collect();
            let resources: Vec<String> = if named.is_empty() || named.len() > MAX_EXACT_OBJECTS {
                vec![format!(
                    "arn:aws:s3:::{}/{}*",
                    literal(l.bucket),
                    literal(l.prefix)
                )]
            } else {
                named
                    .iter()
                    .map(|k| format!("arn:aws:s3:::{}/{}", literal(l.bucket), literal(k)))
                    .collect()
            };
            statements.push(with_condition(
                json!({
                    "Sid": format!("{sid}{i}Objects"),
                    "Effect": "Allow",
                    "Action": object_actions,
                    "Resource": resources,
                }),
                conditions,
            ));
        }
        if u.actions.contains("s3:ListBucket") {
            let mut cond = conditions.clone();
            if cond.is_null() {
                cond = json!({});
            }
            if let (Some(o), false) = (cond.as_object_mut(), l.prefix.is_empty()) {
                o.insert(
                    "StringLike".into(),
                    json!({"s3:prefix": format!("{}*", literal(l.prefix))}),
                );
            }
            statements.push(with_condition(
                json!({
                    "Sid": format!("{sid}{i}List"),
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": format!("arn:aws:s3:::{}", literal(l.bucket)),
                }),
                &cond,
            ));
        }
        if !u.bucket_actions.is_empty() {
            statements.push(with_condition(
                json!({
                    "Sid": format!("{sid}{i}Bucket"),
                    "Effect": "Allow",
                    "Action": u.bucket_actions,
                    "Resource": format!("arn:aws:s3:::{}", literal(l.bucket)),
                }),
                conditions,
            ));
        }
    }
    statements
}

/// `s` as a literal in a resource or `StringLike` pattern of a `2012-10-17` policy: `*`, `?`
/// and `$` written as the escapes `${*}`, `${?}` and `${$}`, so that an object named `team/*`
/// or `${aws:username}` is granted as itself and never as a wildcard or a policy variable
/// ("Special characters", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html).
pub fn literal(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['*', '?', '$']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '*' | '?' | '$' => {
                out.push_str("${");
                out.push(c);
                out.push('}');
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The longest prefix of every key in `keys` that ends in `/` (empty when they share none), so
/// a location named after observed keys stops at a "directory", as people name prefixes.
pub fn common_prefix<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut common: Option<&str> = None;
    for k in keys {
        common = Some(match common {
            None => k,
            Some(c) => {
                let n = c
                    .char_indices()
                    .zip(k.chars())
                    .take_while(|((_, a), b)| a == b)
                    .last()
                    .map_or(0, |((i, a), _)| i + a.len_utf8());
                c.get(..n).unwrap_or("")
            }
        });
    }
    let c = common.unwrap_or("");
    match c.rfind('/') {
        Some(i) => c.get(..=i).unwrap_or("").to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review 14 (F1): keys with wildcard or variable characters were granted as patterns: a key
    /// `team/*` became every object under `team/`.
    #[test]
    fn keys_and_prefixes_are_granted_as_literals() {
        use keyhole_policy::{
            CompiledPolicy, Context, DecisionKind, Evaluator, Policies, PolicyKind, Request,
            RequestPrincipal,
        };
        let mut used = LocationUse::default();
        used.actions.insert("s3:PutObject".into());
        used.actions.insert("s3:ListBucket".into());
        for k in ["t*/*", "t*/?", "t*/${aws:username}/x"] {
            used.objects.insert(k.into());
        }
        let statements = s3_statements(
            "S",
            &[Scope {
                bucket: "data",
                prefix: "t*/",
            }],
            &[used],
            &json!({}),
        );
        assert_eq!(
            statements[0]["Resource"],
            json!([
                "arn:aws:s3:::data/t${*}/${$}{aws:username}/x",
                "arn:aws:s3:::data/t${*}/${*}",
                "arn:aws:s3:::data/t${*}/${?}"
            ])
        );
        assert_eq!(
            statements[1]["Condition"]["StringLike"]["s3:prefix"],
            "t${*}/*"
        );
        let doc = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
        let policy = keyhole_policy::parse_policy(&doc).unwrap();
        let compiled = [CompiledPolicy::compile(&policy, PolicyKind::Identity).unwrap()];
        let allowed = |action: &str, resource: &str, prefix: Option<&str>| {
            let mut ctx = Context::new();
            ctx.insert("aws:username", "alice");
            if let Some(p) = prefix {
                ctx.insert("s3:prefix", p);
            }
            let req = Request::new(
                RequestPrincipal::from_arn("arn:aws:iam::111122223333:user/alice", None),
                action,
                resource,
                None,
                ctx,
            );
            let policies = Policies {
                identity: &compiled,
                ..Policies::default()
            };
            Evaluator::evaluate(&policies, &req).kind == DecisionKind::Allowed
        };
        for used in ["data/t*/*", "data/t*/?", "data/t*/${aws:username}/x"] {
            let arn = format!("arn:aws:s3:::{used}");
            assert!(allowed("s3:PutObject", &arn, None), "{arn}");
        }
        for other in [
            "data/t*/secret",
            "data/tx/a",
            "data/t*/a",
            "data/t*/alice/x",
        ] {
            let arn = format!("arn:aws:s3:::{other}");
            assert!(!allowed("s3:PutObject", &arn, None), "{arn}");
        }
        assert!(allowed(
            "s3:ListBucket",
            "arn:aws:s3:::data",
            Some("t*/sub/")
        ));
        assert!(!allowed(
            "s3:ListBucket",
            "arn:aws:s3:::data",
            Some("tsecret/")
        ));
    }

    #[test]
    fn common_prefixes_stop_at_a_slash() {
        assert_eq!(common_prefix(["a/b/c", "a/b/d"]), "a/b/");
        assert_eq!(common_prefix(["a/bc", "a/bd"]), "a/");
        assert_eq!(common_prefix(["a/b/c"]), "a/b/");
        assert_eq!(common_prefix(["x", "a/b"]), "");
        assert_eq!(common_prefix(["a/b/", "a/b/c"]), "a/b/");
        assert_eq!(common_prefix(["é/a", "é/b"]), "é/");
        assert_eq!(common_prefix(Vec::<&str>::new()), "");
    }

    #[test]
    fn few_objects_are_named_many_become_the_prefix_and_listing_is_bounded() {
        let mut few = LocationUse::default();
        few.actions.insert("s3:GetObject".into());
        few.actions.insert("s3:ListBucket".into());
        few.objects.insert("p/a".into());
        few.bucket_actions.insert("s3:GetBucketLocation".into());
        let mut many = LocationUse::default();
        many.actions.insert("s3:PutObject".into());
        for i in 0..=MAX_EXACT_OBJECTS {
            many.objects.insert(format!("q/{i}"));
        }
        let s = s3_statements(
            "S",
            &[
                Scope {
                    bucket: "b",
                    prefix: "p/",
                },
                Scope {
                    bucket: "c",
                    prefix: "q/",
                },
            ],
            &[few, many],
            &json!({}),
        );
        assert_eq!(s.len(), 4, "{s:#?}");
        assert_eq!(s[0]["Resource"], json!(["arn:aws:s3:::b/p/a"]));
        assert!(s[0].get("Condition").is_none(), "no empty Condition");
        assert_eq!(s[1]["Condition"]["StringLike"]["s3:prefix"], "p/*");
        assert_eq!(s[2]["Sid"], "S0Bucket");
        assert_eq!(s[2]["Resource"], "arn:aws:s3:::b");
        assert_eq!(s[3]["Resource"], json!(["arn:aws:s3:::c/q/*"]));
    }
}
