//! What a principal's policies grant, action by action and resource by resource: the other half
//! of "granted but never used".
//!
//! Each `Allow` statement of the principal's identity policies names action patterns (or
//! `NotAction`) and resource patterns (or `NotResource`). The patterns are expanded against the
//! action catalogue ([`keyhole_policy::catalogue::expand`]), and an S3 action is kept for a
//! resource pattern only when the action applies to that resource type (the Service
//! Authorization Reference's table, [`keyhole_policy::s3::Action::resources`]: `s3:ListBucket`
//! on `arn:aws:s3:::b/*` grants nothing). Every remaining (action, resource pattern) pair is then
//! decided by the engine that decides requests, through the caller's `allows` (the principal's
//! policies, its permissions boundary and every explicit deny, with unknown condition keys
//! assumed to be met in `Allow` statements and unmet in `Deny` ones): an upper bound, so a grant
//! that only some requests could use still counts as granted.

use std::collections::{BTreeMap, BTreeSet};

use keyhole_policy::model::{ActionRule, Effect, ResourceRule};
use keyhole_policy::Policy;

/// The actions granted on one resource pattern by one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedResource {
    /// The policy's name.
    pub policy: String,
    /// The resource pattern as written (`*` for `NotResource` and absent resources).
    pub resource: String,
    /// The actions it grants there.
    pub actions: BTreeSet<String>,
}

/// Everything granted.
#[derive(Debug, Default, Clone)]
pub struct Granted {
    /// Every action granted on some resource.
    pub actions: BTreeSet<String>,
    /// Per policy and resource pattern, in policy order.
    pub resources: Vec<GrantedResource>,
}

/// Whether `action` can apply to a resource `pattern` matches.
fn applies(action: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let service = |s: &str| s.split(':').nth(2).map(str::to_ascii_lowercase);
    let Some((action_service, _)) = action.split_once(':') else {
        return false;
    };
    let Some(resource_service) = service(pattern) else {
        return false;
    };
    if resource_service.contains(['*', '?']) {
        return true;
    }
    match action_service {
        "s3" => {
            let Some(a) = keyhole_policy::s3::action(action) else {
                return false;
            };
            if resource_service != "s3" {
                return false;
            }
            let rest = pattern.splitn(6, ':').nth(5).unwrap_or("");
            let mut types = Vec::new();
            match keyhole_policy::s3::resource_type(pattern) {
                Some(keyhole_policy::s3::ResourceType::Bucket) if rest.contains(['*', '?']) => {
                    // `arn:aws:s3:::data*` matches buckets and objects alike.
                    types.push(keyhole_policy::s3::ResourceType::Bucket);
                    types.push(keyhole_policy::s3::ResourceType::Object);
                }
                Some(t) => types.push(t),
                None => return false,
            }
            types.iter().any(|t| a.resources.contains(t))
        }
        // AssumeRole and its kin are on roles (`arn:aws:iam::...:role/...`).
        "sts" => matches!(resource_service.as_str(), "iam" | "sts"),
        // GetAccessReport is on users and roles.
        "keyhole" => matches!(resource_service.as_str(), "keyhole" | "iam"),
        other => resource_service == other,
    }
}

/// The grants of `policies` (each with its name), keeping the pairs `allows` admits.
pub fn granted(policies: &[(String, Policy)], allows: impl Fn(&str, &str) -> bool) -> Granted {
    let mut by_key: BTreeMap<(usize, String, String), BTreeSet<String>> = BTreeMap::new();
    for (pi, (name, policy)) in policies.iter().enumerate() {
        for s in &policy.statements {
            if s.effect != Effect::Allow {
                continue;
            }
            let actions: BTreeSet<String> = match &s.action {
                ActionRule::Action(list) => list
                    .as_slice()
                    .iter()
                    .flat_map(|p| keyhole_policy::catalogue::expand(p))
                    .collect(),
                ActionRule::NotAction(list) => {
                    let excluded: BTreeSet<String> = list
                        .as_slice()
                        .iter()
                        .flat_map(|p| keyhole_policy::catalogue::expand(p))
                        .collect();
                    keyhole_policy::catalogue::all_actions()
                        .filter(|a| !excluded.contains(a))
                        .collect()
                }
            };
            let resources: Vec<String> = match &s.resource {
                Some(ResourceRule::Resource(list)) => list.as_slice().to_vec(),
                Some(ResourceRule::NotResource(_)) | None => vec!["*".to_owned()],
            };
            for r in resources {
                for a in &actions {
                    if applies(a, &r) && allows(a, &r) {
                        by_key
                            .entry((pi, name.clone(), r.clone()))
                            .or_default()
                            .insert(a.clone());
                    }
                }
            }
        }
    }
    let mut out = Granted::default();
    for ((_, policy, resource), actions) in by_key {
        out.actions.extend(actions.iter().cloned());
        out.resources.push(GrantedResource {
            policy,
            resource,
            actions,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhole_policy::{
        parse_policy, CompiledPolicy, Context, DecisionKind, Evaluator, Policies, PolicyKind,
        Request, RequestPrincipal,
    };

    /// `allows` as the gateway builds it: the engine, unknown keys assumed.
    fn engine(docs: &[&str]) -> impl Fn(&str, &str) -> bool {
        let compiled: Vec<CompiledPolicy> = docs
            .iter()
            .map(|d| {
                CompiledPolicy::compile(&parse_policy(d).unwrap(), PolicyKind::Identity).unwrap()
            })
            .collect();
        move |action: &str, resource: &str| {
            let mut ctx = Context::new();
            ctx.assume_unknown("");
            let req = Request::new(
                RequestPrincipal::from_arn("arn:aws:iam::123456789012:user/alice", None),
                action,
                resource,
                None,
                ctx,
            );
            let p = Policies {
                identity: &compiled,
                ..Policies::default()
            };
            Evaluator::evaluate(&p, &req).kind == DecisionKind::Allowed
        }
    }

    fn parsed(docs: &[&str]) -> Vec<(String, Policy)> {
        docs.iter()
            .enumerate()
            .map(|(i, d)| (format!("p{i}"), parse_policy(d).unwrap()))
            .collect()
    }

    #[test]
    fn wildcards_expand_to_the_actions_that_apply_to_the_resource() {
        let docs = [r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::data/*"},
            {"Effect":"Allow","Action":["s3:ListBucket","s3:GetObject"],"Resource":"arn:aws:s3:::data"}]}"#];
        let g = granted(&parsed(&docs), engine(&docs));
        assert!(g.actions.contains("s3:GetObject"));
        assert!(g.actions.contains("s3:PutObjectTagging"));
        assert!(g.actions.contains("s3:ListBucket"));
        let objects = &g
            .resources
            .iter()
            .find(|r| r.resource == "arn:aws:s3:::data/*")
            .unwrap();
        assert!(
            !objects.actions.contains("s3:ListBucket"),
            "ListBucket is a bucket action"
        );
        assert!(!objects.actions.contains("s3:CreateBucket"));
        let bucket = g
            .resources
            .iter()
            .find(|r| r.resource == "arn:aws:s3:::data")
            .unwrap();
        assert_eq!(
            bucket.actions.iter().collect::<Vec<_>>(),
            ["s3:ListBucket"],
            "GetObject does not apply to a bucket"
        );
    }

    #[test]
    fn explicit_denies_and_conditions_are_decided_by_the_engine() {
        let docs = [r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::b/*",
             "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
            {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"},
            {"Effect":"Allow","NotAction":"s3:*","Resource":"arn:aws:iam::123456789012:role/etl"}]}"#];
        let g = granted(&parsed(&docs), engine(&docs));
        assert!(g.actions.contains("s3:GetObject"), "a condition may be met");
        assert!(!g.actions.contains("s3:DeleteObject"), "denied everywhere");
        assert!(g.actions.contains("sts:AssumeRole"));
        let role = g
            .resources
            .iter()
            .find(|r| r.resource.ends_with(":role/etl"))
            .unwrap();
        assert!(
            role.actions.iter().all(|a| !a.starts_with("s3:")),
            "no S3 action applies to a role"
        );
    }
}
