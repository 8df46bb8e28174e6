//! `Context::assume_unknown` gives an upper bound of a decision: when the bound denies, the
//! decision denies whatever values the unknown keys turn out to have. The gateway relies on it
//! to skip reading an object's tags (`s3:ExistingObjectTag/*`) for requests that no tag could
//! allow, so the property is checked here against every tag assignment of random policies with
//! every kind of condition on those keys (plain, negated, `...IfExists`, `Null`, set operators,
//! policy variables in values and resources) next to conditions on known keys.
#![expect(
    clippy::indexing_slicing,
    reason = "`serde_json::Value` index assignment on an object never panics"
)]

use keyhole_policy::{
    CompiledPolicy, Context, DecisionKind, Evaluator, Policies, PolicyKind, Request,
    RequestPrincipal,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const USER: &str = "arn:aws:iam::111122223333:user/alice";
const TAG: &str = "s3:ExistingObjectTag/class";
const OBJECT: &str = "arn:aws:s3:::data/team/x";

/// A condition block on the tag key or on a known key.
fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"StringEquals": {TAG: "public"}})),
        Just(json!({"StringNotEquals": {TAG: "secret"}})),
        Just(json!({"StringLike": {TAG: "pub*"}})),
        Just(json!({"StringEqualsIfExists": {TAG: "public"}})),
        Just(json!({"StringNotEqualsIfExists": {TAG: "public"}})),
        Just(json!({"Null": {TAG: "true"}})),
        Just(json!({"Null": {TAG: "false"}})),
        Just(json!({"ForAnyValue:StringEquals": {TAG: ["public", "open"]}})),
        Just(json!({"ForAllValues:StringEquals": {TAG: ["public"]}})),
        Just(json!({"StringEquals": {"aws:username": "${s3:ExistingObjectTag/owner}"}})),
        Just(json!({"StringEquals": {"aws:username": "alice"}})),
        Just(json!({"StringEquals": {"aws:username": "bob"}})),
        Just(json!({"StringEquals": {TAG: "public", "aws:username": "alice"}})),
    ]
}

fn statement() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("Allow"), Just("Deny")],
        prop_oneof![
            Just(json!("arn:aws:s3:::data/*")),
            Just(json!("arn:aws:s3:::data/team/*")),
            Just(json!("arn:aws:s3:::other/*")),
            Just(json!("arn:aws:s3:::data/${s3:ExistingObjectTag/dir}/*")),
        ],
        prop::option::of(condition()),
        any::<bool>(),
    )
        .prop_map(|(effect, resource, condition, not_resource)| {
            let mut s = json!({"Effect": effect, "Action": "s3:GetObject"});
            let field = if not_resource {
                "NotResource"
            } else {
                "Resource"
            };
            s[field] = resource;
            if let Some(c) = condition {
                s["Condition"] = c;
            }
            s
        })
}

fn policy() -> impl Strategy<Value = String> {
    prop::collection::vec(statement(), 1..4)
        .prop_map(|st| json!({"Version": "2012-10-17", "Statement": st}).to_string())
}

/// Every assignment of the tag keys the policies use: each absent or one of a few values.
fn assignments() -> Vec<Vec<(&'static str, &'static str)>> {
    let values = [
        None,
        Some("public"),
        Some("secret"),
        Some("alice"),
        Some("team"),
    ];
    let mut out = Vec::new();
    for class in values {
        for owner in values {
            for dir in values {
                let mut a = Vec::new();
                for (k, v) in [
                    (TAG, class),
                    ("s3:ExistingObjectTag/owner", owner),
                    ("s3:ExistingObjectTag/dir", dir),
                ] {
                    if let Some(v) = v {
                        a.push((k, v));
                    }
                }
                out.push(a);
            }
        }
    }
    out
}

fn decide(identity: &[CompiledPolicy], ctx: Context) -> DecisionKind {
    let request = Request::new(
        RequestPrincipal::from_arn(USER, None),
        "s3:GetObject",
        OBJECT,
        None,
        ctx,
    );
    let policies = Policies {
        identity,
        ..Policies::default()
    };
    Evaluator::is_allowed(&policies, &request)
}

fn base() -> Context {
    let mut ctx = Context::new();
    ctx.insert("aws:username", "alice");
    ctx
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn a_denying_bound_means_every_assignment_denies(policies in prop::collection::vec(policy(), 1..3)) {
        let identity: Vec<CompiledPolicy> = policies
            .iter()
            .map(|p| CompiledPolicy::from_json(p, PolicyKind::Identity).unwrap())
            .collect();
        let mut bound = base();
        bound.assume_unknown("S3:existingObjectTag/");
        if decide(&identity, bound) != DecisionKind::Allowed {
            for assignment in assignments() {
                let mut ctx = base();
                for (k, v) in &assignment {
                    ctx.insert(k, *v);
                }
                prop_assert_ne!(
                    decide(&identity, ctx),
                    DecisionKind::Allowed,
                    "bound denies but {:?} is allowed under {:?}",
                    assignment,
                    policies
                );
            }
        }
    }
}

/// The bound is useful: it denies what no tag can allow, and allows what some tag can.
#[test]
fn the_bound_separates_what_tags_can_and_cannot_allow() {
    let identity = [CompiledPolicy::from_json(
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/team/*",
             "Condition": {"StringEquals": {TAG: "public"}}},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"StringEquals": {TAG: "secret"}}}]})
        .to_string(),
        PolicyKind::Identity,
    )
    .unwrap()];
    let mut bound = base();
    bound.assume_unknown(TAG);
    assert_eq!(decide(&identity, bound.clone()), DecisionKind::Allowed);
    let other = Request::new(
        RequestPrincipal::from_arn(USER, None),
        "s3:GetObject",
        "arn:aws:s3:::data/elsewhere/x",
        None,
        bound,
    );
    let policies = Policies {
        identity: &identity,
        ..Policies::default()
    };
    assert_ne!(
        Evaluator::is_allowed(&policies, &other),
        DecisionKind::Allowed
    );

    // A tag variable in an Allow's Resource widens to `*` in the bound and no further: the
    // bucket and the literal parts still decide (review 8, F4).
    let by_folder = [CompiledPolicy::from_json(
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::data/${s3:ExistingObjectTag/folder}/*"}]})
        .to_string(),
        PolicyKind::Identity,
    )
    .unwrap()];
    let decide_at = |resource: &str| {
        let mut bound = base();
        bound.assume_unknown(TAG);
        bound.assume_unknown("s3:ExistingObjectTag/");
        let request = Request::new(
            RequestPrincipal::from_arn(USER, None),
            "s3:GetObject",
            resource,
            None,
            bound,
        );
        let policies = Policies {
            identity: &by_folder,
            ..Policies::default()
        };
        Evaluator::is_allowed(&policies, &request)
    };
    assert_eq!(decide_at("arn:aws:s3:::data/team/x"), DecisionKind::Allowed);
    assert_ne!(
        decide_at("arn:aws:s3:::other/team/x"),
        DecisionKind::Allowed
    );
    assert_ne!(
        decide_at("arn:aws:s3:::data-other/x"),
        DecisionKind::Allowed
    );
}
