//! Property test: `parse(print(p)) == p` for generated policies (STYLE.md convention 11).
#![expect(
    clippy::unwrap_used,
    reason = "proptest generators outside #[test] fns build only valid operators"
)]

use keyhole_policy::model::{
    ActionRule, Condition, ConditionValue, Effect, OneOrMore, Operator, Policy, Principal,
    PrincipalKind, PrincipalRule, ResourceRule, Statement, Version,
};
use keyhole_policy::{parse_policy, Span};
use proptest::prelude::*;

fn one_or_more<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + Clone + 'static,
) -> BoxedStrategy<OneOrMore<T>> {
    prop_oneof![
        s.clone().prop_map(OneOrMore::One),
        proptest::collection::vec(s, 1..4).prop_map(OneOrMore::More),
    ]
    .boxed()
}

fn text() -> impl Strategy<Value = String> + Clone {
    "[a-zA-Z0-9 _\"\\\\/é\\n\\t-]{0,12}"
}

fn action() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just("*".to_owned()),
        "s3:[A-Za-z*?]{1,10}",
        "iam:Get[A-Z][a-z]{0,5}"
    ]
}

fn resource() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just("*".to_owned()),
        "arn:aws:s3:::[a-z0-9-]{1,10}(/[a-z*?/]{0,8})?",
        "arn:aws:iam::[0-9]{12}:role/[a-z]{1,6}",
    ]
}

fn principal() -> impl Strategy<Value = Principal> {
    let aws = prop_oneof![
        Just("*".to_owned()),
        "[0-9]{12}",
        "arn:aws:iam::[0-9]{12}:(root|user/[a-z]{1,5})"
    ];
    prop_oneof![
        Just(Principal::Any),
        proptest::collection::vec(
            prop_oneof![
                one_or_more(aws).prop_map(|v| (PrincipalKind::Aws, v)),
                one_or_more("[a-z]{1,8}\\.amazonaws\\.com")
                    .prop_map(|v| (PrincipalKind::Service, v)),
            ],
            1..2
        )
        .prop_map(Principal::Map),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    let s_op = prop_oneof![
        Just("StringEquals"),
        Just("ForAnyValue:StringLike"),
        Just("StringNotEqualsIgnoreCaseIfExists"),
        Just("ForAllValues:StringNotLike")
    ];
    let strings = (
        s_op,
        "[a-z]{1,4}:[A-Za-z/-]{1,8}",
        one_or_more(text().prop_map(ConditionValue::String)),
    );
    let nums = (
        prop_oneof![Just("NumericLessThan"), Just("NumericEqualsIfExists")],
        Just("s3:max-keys".to_owned()),
        one_or_more(prop_oneof![
            (0u32..1000).prop_map(|n| ConditionValue::Number(n.to_string())),
            (0u32..1000).prop_map(|n| ConditionValue::String(n.to_string())),
        ]),
    );
    let bools = (
        prop_oneof![Just("Bool"), Just("Null")],
        Just("aws:SecureTransport".to_owned()),
        one_or_more(any::<bool>().prop_map(ConditionValue::Bool)),
    );
    let ips = (
        prop_oneof![Just("IpAddress"), Just("NotIpAddressIfExists")],
        Just("aws:SourceIp".to_owned()),
        one_or_more((any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| {
            ConditionValue::String(format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3]))
        })),
    );
    prop_oneof![strings, nums, bools, ips].prop_map(|(op, key, values)| Condition {
        operator: Operator::parse(op).unwrap(),
        key,
        values,
    })
}

fn dedup_conditions(cs: Vec<Condition>) -> Vec<Condition> {
    // The grammar has one object per operator and one entry per key: keep the first of each
    // and group entries by operator, as a parsed document would be.
    let mut out: Vec<Condition> = Vec::new();
    for c in cs {
        if !out
            .iter()
            .any(|o| o.operator == c.operator && o.key == c.key)
        {
            let pos = out
                .iter()
                .rposition(|o| o.operator == c.operator)
                .map_or(out.len(), |p| p + 1);
            out.insert(pos, c);
        }
    }
    out
}

fn statement() -> impl Strategy<Value = Statement> {
    (
        proptest::option::of("[A-Za-z0-9]{1,8}"),
        prop_oneof![Just(Effect::Allow), Just(Effect::Deny)],
        proptest::option::of((any::<bool>(), principal())),
        (any::<bool>(), one_or_more(action())),
        proptest::option::of((any::<bool>(), one_or_more(resource()))),
        proptest::collection::vec(condition(), 0..4),
    )
        .prop_map(
            |(sid, effect, principal, (na, actions), resource, conds)| Statement {
                sid,
                effect,
                principal: principal.map(|(n, p)| {
                    if n {
                        PrincipalRule::NotPrincipal(p)
                    } else {
                        PrincipalRule::Principal(p)
                    }
                }),
                action: if na {
                    ActionRule::NotAction(actions)
                } else {
                    ActionRule::Action(actions)
                },
                resource: resource.map(|(n, r)| {
                    if n {
                        ResourceRule::NotResource(r)
                    } else {
                        ResourceRule::Resource(r)
                    }
                }),
                conditions: dedup_conditions(conds),
                line: 0,
                span: Span::default(),
            },
        )
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![
            Just(None),
            Just(Some(Version::V2012_10_17)),
            Just(Some(Version::V2008_10_17))
        ],
        proptest::option::of(text()),
        proptest::collection::vec(statement(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(version, id, statements, arr)| {
            let statement_is_array = arr || statements.len() > 1;
            let statements = if statement_is_array {
                statements
            } else {
                statements.into_iter().take(1).collect()
            };
            Policy {
                version,
                id,
                statements,
                statement_is_array,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn parse_print_round_trip(p in policy()) {
        let printed = p.to_json_string();
        let mut q = parse_policy(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
        for s in &mut q.statements {
            s.line = 0;
            s.span = Span::default();
        }
        prop_assert_eq!(&p, &q, "{}", printed);
        // printing is a fixed point
        prop_assert_eq!(q.to_json_string(), printed);
    }

    #[test]
    fn parser_never_panics(s in "\\PC{0,200}") {
        let _ = parse_policy(&s);
    }
}
