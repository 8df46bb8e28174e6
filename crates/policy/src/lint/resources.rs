//! Actions against resources: S3 actions whose resource types none of the statement's
//! resources can be, and resources no action of the statement applies to — parts of a statement
//! that can never match a request.
//!
//! The resource types of each action come from "Actions, resources, and condition keys for
//! Amazon S3" ([`crate::s3`]): `s3:ListBucket` is authorized against the bucket ARN
//! (`arn:aws:s3:::b`), `s3:GetObject` against object ARNs (`arn:aws:s3:::b/key`); an action with
//! no resource type needs `"Resource": "*"`.

use super::{codes, Cx, Finding};
use crate::model::{ResourceRule, Statement};
use crate::s3::{self, ResourceType};

/// The S3 resource types a `Resource` entry can denote; `None` for "any" (`*`, wildcard
/// services).
fn types_of(resource: &str) -> Option<Vec<ResourceType>> {
    if resource == "*" {
        return None;
    }
    let Some([_, _, service, region, account, res]) = crate::pattern::split_arn(resource) else {
        return Some(Vec::new());
    };
    if service.contains(['*', '?']) {
        return None;
    }
    if service != "s3" && service != "s3-object-lambda" {
        return Some(Vec::new());
    }
    let wild = |s: &str| s.contains(['*', '?']);
    if service == "s3" && region.is_empty() && account.is_empty() {
        return Some(if res.contains('/') {
            vec![ResourceType::Object]
        } else if wild(res) {
            vec![ResourceType::Bucket, ResourceType::Object]
        } else {
            vec![ResourceType::Bucket]
        });
    }
    if wild(res) || wild(region) || wild(account) {
        return None;
    }
    Some(s3::resource_type(resource).into_iter().collect())
}

fn describe(t: ResourceType) -> &'static str {
    match t {
        ResourceType::Bucket => "bucket ARNs (arn:aws:s3:::BUCKET)",
        ResourceType::Object => "object ARNs (arn:aws:s3:::BUCKET/KEY)",
        ResourceType::AccessPoint => "access point ARNs",
        ResourceType::ObjectLambdaAccessPoint => "Object Lambda access point ARNs",
        ResourceType::MultiRegionAccessPoint => "Multi-Region Access Point ARNs",
        ResourceType::MultiRegionAccessPointRequest => "Multi-Region Access Point request ARNs",
        ResourceType::Job => "Batch Operations job ARNs",
        ResourceType::StorageLensConfiguration => "Storage Lens configuration ARNs",
        ResourceType::StorageLensGroup => "Storage Lens group ARNs",
        ResourceType::AccessGrantsInstance => "Access Grants instance ARNs",
        ResourceType::AccessGrantsLocation => "Access Grants location ARNs",
        ResourceType::AccessGrant => "Access Grant ARNs",
    }
}

/// Whether action `a` can apply to resource entry `r`.
fn applies(a: &s3::Action, r: &str) -> bool {
    match types_of(r) {
        None => true,
        // An action without resource types is authorized against `*` only.
        Some(_) if a.resources.is_empty() => false,
        Some(ts) => ts.iter().any(|t| a.resources.contains(t)),
    }
}

/// Runs the checks.
pub(crate) fn check(cx: &Cx<'_>, out: &mut Vec<Finding>) {
    for (i, st) in cx.statements() {
        check_statement(cx, i, st, out);
    }
}

fn check_statement(cx: &Cx<'_>, i: usize, st: &Statement, out: &mut Vec<Finding>) {
    let Some(list) = super::names::actions(st) else {
        return;
    };
    let Some(ResourceRule::Resource(resources)) = &st.resource else {
        return;
    };
    let mut only_s3 = true;
    let mut all_expanded: Vec<&s3::Action> = Vec::new();
    for (j, a) in list.iter().enumerate() {
        if a == "*"
            || !a
                .split_once(':')
                .is_some_and(|(s, _)| s.eq_ignore_ascii_case("s3"))
        {
            only_s3 = false;
            continue;
        }
        let expanded = s3::expand(a);
        if expanded.is_empty() {
            continue; // reported as an unknown action
        }
        all_expanded.extend(expanded.iter().copied());
        if expanded
            .iter()
            .any(|x| resources.iter().any(|r| applies(x, r)))
        {
            continue;
        }
        let mut wants: Vec<&str> = Vec::new();
        for x in &expanded {
            if x.resources.is_empty() && !wants.contains(&"`*`") {
                wants.push("`*`");
            }
            for t in x.resources {
                if !wants.contains(&describe(*t)) {
                    wants.push(describe(*t));
                }
            }
        }
        let what = if a.contains(['*', '?']) {
            format!("No action `{a}` matches")
        } else {
            format!("`{a}`")
        };
        out.push(cx.finding(
            codes::RESOURCE_TYPE_MISMATCH,
            format!(
                "{what} applies to {}, and no resource of this statement is one ({}), so it never matches a request.",
                wants.join(" or "),
                resources.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
            ),
            vec![cx.value_path(i, "Action", list, j)],
        ));
    }
    if !only_s3 || all_expanded.is_empty() {
        return;
    }
    for (j, r) in resources.iter().enumerate() {
        let s3_resource = types_of(r).is_some_and(|ts| !ts.is_empty());
        if s3_resource && !all_expanded.iter().any(|a| applies(a, r)) {
            out.push(cx.finding(
                codes::RESOURCE_TYPE_MISMATCH,
                format!(
                    "No action of this statement applies to `{r}` ({}), so this resource never matches a request.",
                    types_of(r)
                        .unwrap_or_default()
                        .iter()
                        .map(|t| describe(*t))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                vec![cx.value_path(i, "Resource", resources, j)],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_entries_denote_types() {
        assert_eq!(types_of("arn:aws:s3:::b"), Some(vec![ResourceType::Bucket]));
        assert_eq!(
            types_of("arn:aws:s3:::b/*"),
            Some(vec![ResourceType::Object])
        );
        assert_eq!(
            types_of("arn:aws:s3:::b*"),
            Some(vec![ResourceType::Bucket, ResourceType::Object])
        );
        assert_eq!(types_of("*"), None);
        assert_eq!(types_of("arn:aws:iam::111122223333:role/r"), Some(vec![]));
        assert_eq!(
            types_of("arn:aws:s3:us-east-1:111122223333:job/j"),
            Some(vec![ResourceType::Job])
        );
        let list = s3::action("s3:ListBucket").unwrap();
        let get = s3::action("s3:GetObject").unwrap();
        let all = s3::action("s3:ListAllMyBuckets").unwrap();
        assert!(applies(list, "arn:aws:s3:::b"));
        assert!(!applies(list, "arn:aws:s3:::b/*"));
        assert!(applies(get, "arn:aws:s3:::b/*"));
        assert!(!applies(get, "arn:aws:s3:::b"));
        assert!(applies(all, "*"));
        assert!(!applies(all, "arn:aws:s3:::b"));
    }
}
