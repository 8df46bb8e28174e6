//! Redundancy and style: actions and resources covered by another in the same list, statements
//! that repeat or fall inside another `Allow`, empty `Condition` blocks, a missing `Version`,
//! repeated `Sid`s, and (with TLS on) resource policies that never require `aws:SecureTransport`.

use super::{codes, glob::covers, Cx, Finding, LintPolicyType};
use crate::model::{ActionRule, Effect, OneOrMore, ResourceRule, Statement};

/// Entries of `list` covered by another entry (the first of equal ones is kept).
fn redundant(list: &OneOrMore<String>, ignore_case: bool) -> Vec<(usize, usize)> {
    let items = list.as_slice();
    let mut out = Vec::new();
    for (j, x) in items.iter().enumerate() {
        let by = items.iter().enumerate().find(|(k, y)| {
            *k != j
                && covers(y, x, ignore_case)
                // Of two equal entries, the later one is the redundant one.
                && (!covers(x, y, ignore_case) || *k < j)
        });
        if let Some((k, _)) = by {
            out.push((j, k));
        }
    }
    out
}

/// Whether every request `inner` matches, `outer` matches too (same effect, conditions and
/// principal; `Action` and `Resource` lists only).
fn statement_covers(outer: &Statement, inner: &Statement) -> bool {
    if outer.effect != inner.effect
        || outer.principal != inner.principal
        || outer.conditions != inner.conditions
    {
        return false;
    }
    let (ActionRule::Action(oa), ActionRule::Action(ia)) = (&outer.action, &inner.action) else {
        return false;
    };
    let actions = ia.iter().all(|i| oa.iter().any(|o| covers(o, i, true)));
    let resources = match (&outer.resource, &inner.resource) {
        (None, None) => true,
        (Some(ResourceRule::Resource(or)), Some(ResourceRule::Resource(ir))) => {
            ir.iter().all(|i| or.iter().any(|o| covers(o, i, false)))
        }
        _ => false,
    };
    actions && resources
}

fn same_permissions(a: &Statement, b: &Statement) -> bool {
    statement_covers(a, b) && statement_covers(b, a)
}

/// Runs the checks.
pub(crate) fn check(cx: &Cx<'_>, out: &mut Vec<Finding>) {
    let statements = &cx.policy.statements;
    for (i, st) in cx.statements() {
        if let ActionRule::Action(list) = &st.action {
            for (j, k) in redundant(list, true) {
                out.push(cx.finding(
                    codes::REDUNDANT_ACTION,
                    format!(
                        "The action `{}` is redundant: `{}` in the same list already covers it. Remove it.",
                        list.as_slice().get(j).map_or("", String::as_str),
                        list.as_slice().get(k).map_or("", String::as_str)
                    ),
                    vec![cx.value_path(i, "Action", list, j)],
                ));
            }
        }
        if let Some(ResourceRule::Resource(list)) = &st.resource {
            for (j, k) in redundant(list, false) {
                out.push(cx.finding(
                    codes::REDUNDANT_RESOURCE,
                    format!(
                        "The resource `{}` is redundant: `{}` in the same list already covers it. Remove it.",
                        list.as_slice().get(j).map_or("", String::as_str),
                        list.as_slice().get(k).map_or("", String::as_str)
                    ),
                    vec![cx.value_path(i, "Resource", list, j)],
                ));
            }
        }
        let cond = cx.element_path(i, "Condition");
        if cx.is_empty_object(&cond) {
            out.push(cx.finding(
                codes::EMPTY_OBJECT_CONDITION,
                "The Condition element is an empty object and has no effect; remove it.".into(),
                vec![cond],
            ));
        }
        // Compare with the statements before: report the later of a pair.
        let earlier = statements.iter().take(i).enumerate();
        if let Some((k, _)) = earlier.clone().find(|(_, o)| same_permissions(o, st)) {
            out.push(cx.finding(
                codes::REDUNDANT_STATEMENT,
                format!("The statements are redundant because they provide identical permissions: statement {i} repeats statement {k}. Remove one."),
                vec![cx.statement_path(i), cx.statement_path(k)],
            ));
            continue;
        }
        if st.effect != Effect::Allow {
            continue;
        }
        let outer = statements
            .iter()
            .enumerate()
            .find(|(k, o)| *k != i && statement_covers(o, st) && !same_permissions(o, st));
        if let Some((k, _)) = outer {
            out.push(cx.finding(
                codes::OVERLAPPING_ALLOW,
                format!("Every request this Allow matches, statement {k} allows already; this statement adds nothing. Remove it, or narrow statement {k}."),
                vec![cx.statement_path(i), cx.statement_path(k)],
            ));
        }
    }
    if cx.policy.version.is_none() {
        out.push(cx.finding(
            codes::MISSING_VERSION,
            "We recommend that you specify the Version element to help you with debugging permission issues: without it, the 2008-10-17 language applies and policy variables such as ${aws:username} are plain text.".into(),
            vec![Vec::new()],
        ));
    }
    for (i, st) in cx.statements() {
        let Some(sid) = &st.sid else { continue };
        if statements
            .iter()
            .take(i)
            .any(|o| o.sid.as_ref() == Some(sid))
        {
            out.push(cx.finding(
                codes::UNIQUE_SIDS_RECOMMENDED,
                format!("The Sid `{sid}` is used by more than one statement; we recommend unique Sid values."),
                vec![cx.element_path(i, "Sid")],
            ));
        }
    }
    let resource_policy = matches!(cx.options.policy_type, Some(LintPolicyType::Resource));
    let mentions_tls = statements.iter().any(|s| {
        s.conditions
            .iter()
            .any(|c| c.key.eq_ignore_ascii_case("aws:SecureTransport"))
    });
    if cx.options.tls && resource_policy && !mentions_tls {
        out.push(cx.finding(
            codes::MISSING_SECURE_TRANSPORT,
            "The gateway serves TLS, but this policy never requires it: add a statement denying `s3:*` when `aws:SecureTransport` is `false`.".into(),
            vec![vec![super::PathElement::Value("Statement".into())]],
        ));
    }
}
