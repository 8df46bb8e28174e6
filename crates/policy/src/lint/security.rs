//! Over-permissive grants (`SECURITY_WARNING`): `Allow` with `NotAction`/`NotResource`/
//! `NotPrincipal`, every action or a whole service on every resource, public and cross-account
//! principals, trust policies that admit anyone or a whole account unconditionally, federated
//! principals without the conditions that pin them, `iam:PassRole` on `*`, and principals that
//! can change their own permissions.

use super::{codes, glob::covers, Cx, Finding, LintPolicyType};
use crate::model::{
    ActionRule, Effect, OneOrMore, Principal, PrincipalKind, PrincipalRule, ResourceRule, Statement,
};

/// IAM actions that change a principal's permissions (policies, boundaries, group membership,
/// policy versions) — "Managing IAM policies"
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_manage.html>).
const PERMISSION_CHANGING: &[&str] = &[
    "iam:AddUserToGroup",
    "iam:AttachGroupPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachUserPolicy",
    "iam:CreatePolicyVersion",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "iam:PutGroupPolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:PutUserPolicy",
    "iam:SetDefaultPolicyVersion",
    "iam:UpdateAssumeRolePolicy",
];

/// Keys whose fixed values pin an `Allow` to known callers (besides those Block Public Access
/// counts, [`crate::eval::public::restricts`]).
const PINNING_KEYS: &[&str] = &[
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:sourceorgid",
    "aws:resourceaccount",
    "sts:externalid",
];

fn pinned(st: &Statement) -> bool {
    st.conditions.iter().any(|c| {
        crate::eval::public::restricts(c)
            || (!c.operator.kind.is_negated()
                && !c.operator.if_exists
                && PINNING_KEYS.contains(&c.key.to_ascii_lowercase().as_str()))
    })
}

fn action_list(st: &Statement) -> Option<&OneOrMore<String>> {
    match &st.action {
        ActionRule::Action(a) => Some(a),
        ActionRule::NotAction(_) => None,
    }
}

/// Whether the statement's actions include `action` (through wildcards too).
fn grants(st: &Statement, action: &str) -> bool {
    match &st.action {
        ActionRule::Action(list) => list.iter().any(|a| covers(a, action, true)),
        ActionRule::NotAction(list) => !list.iter().any(|a| covers(a, action, true)),
    }
}

fn resource_is_star(st: &Statement) -> bool {
    matches!(&st.resource, Some(ResourceRule::Resource(r)) if r.iter().any(|x| x == "*"))
}

/// Runs the checks.
pub(crate) fn check(cx: &Cx<'_>, out: &mut Vec<Finding>) {
    let ty = cx.options.policy_type;
    for (i, st) in cx.statements() {
        if st.effect != Effect::Allow {
            continue;
        }
        let at = |el: &str| vec![cx.element_path(i, el)];
        match &st.action {
            ActionRule::NotAction(_) => out.push(cx.finding(
                codes::ALLOW_WITH_NOT_ACTION,
                "`Allow` with `NotAction` allows every action not listed, including actions added to AWS later; list the actions to allow instead.".into(),
                at("NotAction"),
            )),
            ActionRule::Action(list) => wildcard_actions(cx, i, st, list, out),
        }
        if matches!(st.resource, Some(ResourceRule::NotResource(_))) {
            out.push(cx.finding(
                codes::ALLOW_WITH_NOT_RESOURCE,
                "`Allow` with `NotResource` allows every resource not listed, including resources created later; list the resources to allow instead.".into(),
                at("NotResource"),
            ));
        }
        if matches!(st.principal, Some(PrincipalRule::NotPrincipal(_))) {
            out.push(cx.finding(
                codes::ALLOW_WITH_NOT_PRINCIPAL,
                "Using Allow with NotPrincipal can be overly permissive: it allows every principal not listed, anonymous callers included.".into(),
                at("NotPrincipal"),
            ));
        }
        pass_role(cx, i, st, out);
        self_permissions(cx, i, st, out);
        if ty.is_some_and(LintPolicyType::has_principal) {
            principals(cx, i, st, ty == Some(LintPolicyType::Trust), out);
        }
    }
}

fn wildcard_actions(
    cx: &Cx<'_>,
    i: usize,
    st: &Statement,
    list: &OneOrMore<String>,
    out: &mut Vec<Finding>,
) {
    for (j, a) in list.iter().enumerate() {
        let path = vec![cx.value_path(i, "Action", list, j)];
        if a == "*" || a == "*:*" {
            out.push(cx.finding(
                codes::ALL_ACTIONS_ALLOWED,
                format!("`{a}` allows every action of every service; list the actions needed."),
                path,
            ));
        } else if a.ends_with(":*") && resource_is_star(st) && st.conditions.is_empty() {
            out.push(cx.finding(
                codes::SERVICE_WILDCARD_ON_ALL_RESOURCES,
                format!("`{a}` on `\"Resource\": \"*\"` allows every action of the service on every resource, with no condition; list the actions and resources needed."),
                path,
            ));
        }
    }
}

fn pass_role(cx: &Cx<'_>, i: usize, st: &Statement, out: &mut Vec<Finding>) {
    if !grants(st, "iam:PassRole") {
        return;
    }
    let every_action = action_list(st).is_some_and(|l| l.iter().any(|a| a == "*"));
    match &st.resource {
        Some(ResourceRule::NotResource(_)) => out.push(cx.finding(
            codes::PASS_ROLE_WITH_NOT_RESOURCE,
            "Using the iam:PassRole action with NotResource can be overly permissive because this can allow iam:PassRole permissions on multiple resources; list the roles that may be passed.".into(),
            vec![cx.element_path(i, "NotResource")],
        )),
        Some(ResourceRule::Resource(r)) if r.iter().any(|x| x == "*") => {
            let code = if every_action {
                codes::PASS_ROLE_WITH_STAR_IN_ACTION_AND_RESOURCE
            } else {
                codes::PASS_ROLE_WITH_STAR_IN_RESOURCE
            };
            out.push(cx.finding(
                code,
                "Using the iam:PassRole action with wildcards (*) in the resource can be overly permissive because it allows iam:PassRole permissions on multiple resources; name the roles that may be passed and add an iam:PassedToService condition.".into(),
                vec![cx.element_path(i, "Resource")],
            ));
        }
        _ => {}
    }
}

fn self_permissions(cx: &Cx<'_>, i: usize, st: &Statement, out: &mut Vec<Finding>) {
    if action_list(st).is_some_and(|l| l.iter().any(|a| a == "*")) {
        return; // reported as every action allowed
    }
    let changing: Vec<&str> = PERMISSION_CHANGING
        .iter()
        .copied()
        .filter(|a| grants(st, a))
        .collect();
    if changing.is_empty() {
        return;
    }
    // The caller's own user/role/group/policy is among the resources when they are `*`, an IAM
    // wildcard, or name the caller through `${aws:username}`.
    let own = match &st.resource {
        Some(ResourceRule::NotResource(_)) | None => true,
        Some(ResourceRule::Resource(r)) => r.iter().any(|x| {
            x == "*"
                || x.contains("${aws:username}")
                || x.contains("${aws:userid}")
                || (x.starts_with("arn:") && x.contains(":iam:") && x.contains('*'))
        }),
    };
    if own {
        let el = match &st.action {
            ActionRule::Action(_) => "Action",
            ActionRule::NotAction(_) => "NotAction",
        };
        out.push(cx.finding(
            codes::SELF_PERMISSIONS_MANAGEMENT,
            format!(
                "This statement lets a principal change its own permissions ({}) on resources that include itself; scope the resources to other principals or drop the actions.",
                changing.join(", ")
            ),
            vec![cx.element_path(i, el)],
        ));
    }
}

fn account_of(principal: &str) -> Option<&str> {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Some(principal);
    }
    let [_, _, _, _, account, _] = crate::pattern::split_arn(principal)?;
    Some(account)
}

fn is_whole_account(principal: &str) -> bool {
    (principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()))
        || crate::pattern::split_arn(principal)
            .is_some_and(|[_, _, svc, _, _, res]| svc == "iam" && res == "root")
}

fn principals(cx: &Cx<'_>, i: usize, st: &Statement, trust: bool, out: &mut Vec<Finding>) {
    let Some(PrincipalRule::Principal(p)) = &st.principal else {
        return;
    };
    let entries: Vec<(PrincipalKind, &str, Vec<super::PathElement>)> = match p {
        Principal::Any => vec![(PrincipalKind::Aws, "*", cx.element_path(i, "Principal"))],
        Principal::Map(m) => m
            .iter()
            .flat_map(|(kind, vals)| {
                vals.iter().enumerate().map(move |(j, v)| {
                    let mut path = cx.element_path(i, "Principal");
                    path.push(super::PathElement::Value(kind.as_str().into()));
                    if matches!(vals, OneOrMore::More(_)) {
                        path.push(super::PathElement::Index(j));
                    }
                    (*kind, v.as_str(), path)
                })
            })
            .collect(),
    };
    let pinned = pinned(st);
    for (kind, v, path) in entries {
        match kind {
            PrincipalKind::Aws if v == "*" && !pinned => {
                let code = if trust {
                    codes::TRUST_ANY_PRINCIPAL
                } else {
                    codes::PUBLIC_PRINCIPAL
                };
                let what = if trust {
                    "any AWS principal, in any account, to assume this role"
                } else {
                    "anyone, anonymous callers included"
                };
                out.push(cx.finding(
                    code,
                    format!("The principal `*` without a condition that pins the caller (aws:PrincipalOrgID, aws:PrincipalAccount, aws:SourceIp...) allows {what}."),
                    vec![path],
                ));
            }
            PrincipalKind::Aws if v != "*" => {
                if trust && is_whole_account(v) && st.conditions.is_empty() {
                    out.push(cx.finding(
                        codes::TRUST_WHOLE_ACCOUNT_WITHOUT_CONDITION,
                        format!("`{v}` admits every principal of the account whose own policies allow sts:AssumeRole, with no condition; name the roles or users, or add a condition such as sts:ExternalId or aws:PrincipalArn."),
                        vec![path.clone()],
                    ));
                }
                if let (Some(own), Some(acct)) = (cx.options.account.as_deref(), account_of(v)) {
                    if acct != own && !acct.is_empty() {
                        out.push(cx.finding(
                            codes::CROSS_ACCOUNT_PRINCIPAL,
                            format!("`{v}` belongs to account {acct}, not {own}: this statement grants access to another account."),
                            vec![path],
                        ));
                    }
                }
            }
            PrincipalKind::Federated
                if !v.contains("saml-provider/") && v != "cognito-identity.amazonaws.com" =>
            {
                oidc(cx, st, v, path, out);
            }
            _ => {}
        }
    }
}

/// An OIDC provider in a trust policy needs conditions on its `aud`/`sub` claims; GitHub's on
/// `sub` (the repository).
fn oidc(
    cx: &Cx<'_>,
    st: &Statement,
    provider: &str,
    path: Vec<super::PathElement>,
    out: &mut Vec<Finding>,
) {
    let host = provider
        .split_once(":oidc-provider/")
        .map_or(provider, |(_, h)| h)
        .to_ascii_lowercase();
    let has = |claim: &str| {
        let key = format!("{host}:{claim}");
        st.conditions
            .iter()
            .any(|c| c.key.eq_ignore_ascii_case(&key))
    };
    if host == "token.actions.githubusercontent.com" {
        if !has("sub") {
            out.push(cx.finding(
                codes::MISSING_GITHUB_REPO_CONDITION_KEY,
                "Granting a federated GitHub principal permissions without a condition key can allow more sources to assume the role than you intended. Add the token.actions.githubusercontent.com:sub condition key and specify the branch and repository name in the value.".into(),
                vec![path],
            ));
        }
    } else if !has("aud") && !has("sub") && !has("amr") {
        out.push(cx.finding(
            codes::MISSING_CONDITION_KEY_FOR_OIDC_PRINCIPAL,
            format!("Granting a federated OIDC principal permissions without a condition key can allow more tokens to assume the role than you intended. Add a condition on `{host}:aud` (and `{host}:sub`)."),
            vec![path],
        ));
    }
}
