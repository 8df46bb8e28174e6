//! The evaluator against a naïve reference evaluator (STYLE.md convention 11, cedar's DRT idea).
//!
//! The reference works on JSON values directly, matches wildcards with `regex`, and spells the
//! AWS rules out case by case for a same-account IAM user or role session
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>).
#![expect(
    clippy::indexing_slicing,
    reason = "`serde_json::Value` indexing returns `Null`; it never panics"
)]
#![expect(clippy::unwrap_used, reason = "proptest helpers outside #[test] fns")]

use keyhole_policy::simulate_json;
use proptest::prelude::*;
use serde_json::{json, Value};

const ACCT: &str = "111122223333";
const USER: &str = "arn:aws:iam::111122223333:user/alice";
const ROLE: &str = "arn:aws:iam::111122223333:role/worker";
const SESS: &str = "arn:aws:sts::111122223333:assumed-role/worker/s1";
const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "s3:DeleteObject",
];
const ACTION_PATS: &[&str] = &[
    "*",
    "s3:*",
    "s3:Get*",
    "s3:GetObject",
    "s3:PutObject",
    "s3:?etObject",
    "S3:LISTBUCKET",
    "s3:*Object",
];
const RESOURCES: &[&str] = &[
    "arn:aws:s3:::data",
    "arn:aws:s3:::data/a/b",
    "arn:aws:s3:::data/c",
    "arn:aws:s3:::other/a",
];
const RES_PATS: &[&str] = &[
    "*",
    "arn:aws:s3:::data",
    "arn:aws:s3:::data/*",
    "arn:aws:s3:::data/a/*",
    "arn:aws:s3:::*/a*",
    "arn:aws:s3:::data/?",
    "arn:aws:s3:::other/*",
];
const PRINCIPALS: &[&str] = &["*", USER, ROLE, SESS, ACCT];
const IPS: &[&str] = &["203.0.113.0/24", "10.0.0.0/8"];

fn glob(p: &str, s: &str, ci: bool) -> bool {
    let mut re = String::from(if ci { "(?i)^" } else { "^" });
    for c in p.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).unwrap().is_match(s)
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

/// Which principal values of a resource-policy statement name the caller.
fn named(st: &Value, caller: &str) -> Vec<String> {
    let vals = if st["Principal"] == json!("*") {
        vec!["*".to_owned()]
    } else {
        list(&st["Principal"]["AWS"])
    };
    vals.into_iter()
        .filter(|v| v == "*" || v == caller || v == ACCT || (caller == SESS && v == ROLE))
        .collect()
}

fn applies(st: &Value, action: &str, resource: &str, ip: &str) -> bool {
    let (acts, not_a) = if st.get("NotAction").is_some() {
        (list(&st["NotAction"]), true)
    } else {
        (list(&st["Action"]), false)
    };
    if acts.iter().any(|a| glob(a, action, true)) == not_a {
        return false;
    }
    let (res, not_r) = if st.get("NotResource").is_some() {
        (list(&st["NotResource"]), true)
    } else {
        (list(&st["Resource"]), false)
    };
    if res.iter().any(|r| glob(r, resource, false)) == not_r {
        return false;
    }
    if let Some(c) = st.get("Condition") {
        let cidr = c["IpAddress"]["aws:SourceIp"].as_str().unwrap();
        let inside = match cidr {
            "203.0.113.0/24" => ip.starts_with("203.0.113."),
            _ => ip.starts_with("10."),
        };
        if !inside {
            return false;
        }
    }
    true
}

fn stmts(p: &Value) -> Vec<Value> {
    p["Statement"].as_array().cloned().unwrap_or_default()
}

fn reference(input: &Value) -> &'static str {
    let req = &input["request"];
    let (caller, action, resource) = (
        req["principal"].as_str().unwrap(),
        req["action"].as_str().unwrap(),
        req["resource"].as_str().unwrap(),
    );
    let ip = req["context"]["aws:SourceIp"].as_str().unwrap();
    let identity: Vec<Value> = input["identityPolicies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let boundary = input
        .get("permissionBoundaries")
        .and_then(|b| b.as_array())
        .and_then(|b| b.first().cloned());
    let session = input.get("sessionPolicy").cloned();
    let resource_pol = input.get("resourcePolicy").cloned();
    let applicable = |p: &Value, effect: &str| {
        stmts(p)
            .into_iter()
            .filter(|s| s["Effect"] == effect && applies(s, action, resource, ip))
            .collect::<Vec<_>>()
    };
    let mut all: Vec<&Value> = identity.iter().collect();
    all.extend(boundary.iter());
    all.extend(session.iter());
    if all.iter().any(|p| !applicable(p, "Deny").is_empty()) {
        return "ExplicitlyDenied";
    }
    let res_names: Vec<String> = resource_pol
        .as_ref()
        .map(|p| {
            applicable(p, "Deny")
                .iter()
                .flat_map(|s| named(s, caller))
                .collect()
        })
        .unwrap_or_default();
    if !res_names.is_empty() {
        return "ExplicitlyDenied";
    }
    let grants: Vec<String> = resource_pol
        .as_ref()
        .map(|p| {
            applicable(p, "Allow")
                .iter()
                .flat_map(|s| named(s, caller))
                .collect()
        })
        .unwrap_or_default();
    let has = |v: &str| grants.iter().any(|g| g == v);
    // Final grants: the caller's own ARN (user or exact session); `*` for a user; `*` for a
    // session when the session policy (if any) allows too.
    if has(caller) || (caller == USER && has("*")) {
        return "Allowed";
    }
    if caller == SESS && has("*") {
        return match &session {
            Some(s) if applicable(s, "Allow").is_empty() => "ImplicitlyDenied",
            _ => "Allowed",
        };
    }
    let identity_allows = identity.iter().any(|p| !applicable(p, "Allow").is_empty());
    // A grant to the session's role stands in for an identity-based allow.
    let stands_in = caller == SESS && has(ROLE);
    if !identity_allows && !stands_in {
        return "ImplicitlyDenied";
    }
    if boundary
        .as_ref()
        .is_some_and(|b| applicable(b, "Allow").is_empty())
    {
        return "ImplicitlyDenied";
    }
    if session
        .as_ref()
        .is_some_and(|s| applicable(s, "Allow").is_empty())
    {
        return "ImplicitlyDenied";
    }
    "Allowed"
}

fn one_or_list(pool: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::sample::select(pool).prop_map(|s| json!(s)),
        proptest::sample::subsequence(pool, 1..3).prop_map(|v| json!(v)),
    ]
}

fn statement(with_principal: bool) -> impl Strategy<Value = Value> {
    (
        prop_oneof![3 => Just("Allow"), 1 => Just("Deny")],
        any::<bool>(),
        one_or_list(ACTION_PATS),
        prop_oneof![4 => Just(false), 1 => Just(true)],
        one_or_list(RES_PATS),
        proptest::option::weighted(0.3, proptest::sample::select(IPS)),
        prop_oneof![
            Just(json!("*")),
            one_or_list(PRINCIPALS).prop_map(|v| json!({ "AWS": v }))
        ],
    )
        .prop_map(move |(effect, not_a, acts, not_r, res, ip, principal)| {
            let mut s = serde_json::Map::new();
            s.insert("Effect".into(), json!(effect));
            if with_principal {
                s.insert("Principal".into(), principal);
            }
            s.insert(
                if not_a && !with_principal {
                    "NotAction"
                } else {
                    "Action"
                }
                .into(),
                acts,
            );
            s.insert(if not_r { "NotResource" } else { "Resource" }.into(), res);
            if let Some(ip) = ip {
                s.insert(
                    "Condition".into(),
                    json!({"IpAddress": {"aws:SourceIp": ip}}),
                );
            }
            Value::Object(s)
        })
}

fn policy(with_principal: bool) -> impl Strategy<Value = Value> {
    proptest::collection::vec(statement(with_principal), 1..4)
        .prop_map(|s| json!({"Version": "2012-10-17", "Statement": s}))
}

fn case() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(&[USER, SESS][..]),
        proptest::sample::select(ACTIONS),
        proptest::sample::select(RESOURCES),
        proptest::sample::select(&["203.0.113.7", "10.1.2.3", "192.0.2.1"][..]),
        proptest::collection::vec(policy(false), 0..3),
        proptest::option::of(policy(true)),
        proptest::option::weighted(0.3, policy(false)),
        proptest::option::weighted(0.3, policy(false)),
    )
        .prop_map(|(who, action, resource, ip, identity, res, boundary, session)| {
            let mut input = json!({
                "request": {"principal": who, "action": action, "resource": resource, "context": {"aws:SourceIp": ip}},
                "identityPolicies": identity,
            });
            if let Some(r) = res {
                input["resourcePolicy"] = r;
            }
            if let Some(b) = boundary {
                input["permissionBoundaries"] = json!([b]);
            }
            if let Some(s) = session {
                input["sessionPolicy"] = s;
            }
            input
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn evaluator_agrees_with_reference(input in case()) {
        let out = simulate_json(&input).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(out["decision"].as_str().unwrap(), reference(&input), "{:#}\n{:#}", input, out);
    }
}
