//! The report's analysis, end to end on events and policies (no gateway): the minimal policy it
//! proposes allows exactly the pairs that were used.

use keyhole_policy::{parse_policy, CompiledPolicy, Evaluator, Policies, PolicyKind, Request};

use super::grants::{granted, GrantedResource};
use super::usage::tests::{event, ROLE_ID, USER_ID};
use super::*;
use crate::state::key_usage::KeyUse;

const ACCOUNT: &str = "123456789012";

fn alice() -> Subject {
    Subject {
        kind: Kind::User,
        name: "alice".into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        id: USER_ID.into(),
        created: "2026-11-01T00:00:00Z".into(),
    }
}

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Data","Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":["arn:aws:s3:::data/*","arn:aws:s3:::archive/*"]},
  {"Sid":"List","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::data"},
  {"Sid":"Roles","Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::123456789012:role/etl"}]}"#;

fn decide(policy: &Value, action: &str, resource: &str, context: &[(&str, &str)]) -> DecisionKind {
    let compiled = CompiledPolicy::compile(
        &parse_policy(&policy.to_string()).unwrap(),
        PolicyKind::Identity,
    )
    .unwrap();
    let mut ctx = Context::new();
    for (k, v) in context {
        ctx.insert(k, *v);
    }
    let req = Request::new(
        RequestPrincipal::from_arn(&alice().arn, None),
        action,
        resource,
        None,
        ctx,
    );
    Evaluator::evaluate(
        &Policies {
            identity: std::slice::from_ref(&compiled),
            ..Policies::default()
        },
        &req,
    )
    .kind
}

fn alices_usage() -> Usage {
    let mut t = Tally::new([(USER_ID.to_owned(), Kind::User)], None);
    let mut list = event(
        USER_ID,
        "ListObjectsV2",
        "s3:ListBucket",
        "arn:aws:s3:::data",
        true,
    );
    list.request_parameters.prefix = Some("train/".into());
    t.add(&list);
    for k in ["train/1", "train/2"] {
        t.add(&event(
            USER_ID,
            "GetObject",
            "s3:GetObject",
            &format!("arn:aws:s3:::data/{k}"),
            true,
        ));
    }
    t.add(&event(
        USER_ID,
        "AssumeRole",
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/etl",
        true,
    ));
    t.add(&event(
        USER_ID,
        "DeleteObject",
        "s3:DeleteObject",
        "arn:aws:s3:::data/train/1",
        false,
    ));
    t.usage(USER_ID)
}

#[test]
fn unused_actions_and_resources_are_what_was_granted_and_never_used() {
    let usage = alices_usage();
    let docs = vec![("p".to_owned(), parse_policy(POLICY).unwrap())];
    let g = granted(&docs, |a, r| {
        decide(&serde_json::from_str(POLICY).unwrap(), a, r, &[]) == DecisionKind::Allowed
    });
    assert_eq!(
        unused_actions(&usage, &g),
        ["s3:DeleteObject", "s3:PutObject"],
        "a denied DeleteObject is an attempt, not a use"
    );
    let unused: Vec<String> = unused_resources(&usage, &g)
        .iter()
        .map(|u| u["resource"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unused, ["arn:aws:s3:::archive/*"]);
    let since = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let keys = [
        KeyFact {
            id: "AKIAUSERKEY000000001".into(),
            status: "Active".into(),
            created: "2026-11-01T00:00:00Z".into(),
            last_used: None,
        },
        KeyFact {
            id: "AKIASPARE00000000002".into(),
            status: "Active".into(),
            created: "2026-11-01T00:00:00Z".into(),
            last_used: None,
        },
    ];
    let r = report(
        &alice(),
        &usage,
        &g,
        &keys,
        &[
            "arn:aws:iam::123456789012:role/etl".into(),
            "arn:aws:iam::123456789012:role/other".into(),
        ],
        since,
        Utc::now(),
    );
    assert_eq!(r["requests"], 5);
    assert_eq!(r["denied"]["count"], 1);
    assert_eq!(
        r["accessKeys"][0]["usedInWindow"], true,
        "seen in the trail"
    );
    assert_eq!(r["accessKeys"][1]["usedInWindow"], false);
    assert_eq!(
        r["rolesNeverAssumed"],
        json!(["arn:aws:iam::123456789012:role/other"])
    );
    assert_eq!(r["buckets"][0]["prefix"], "train/");
}

#[test]
fn the_minimal_policy_allows_exactly_what_was_used() {
    let usage = alices_usage();
    let p = minimal_policy(&usage);
    let allowed =
        |a: &str, r: &str, ctx: &[(&str, &str)]| decide(&p, a, r, ctx) == DecisionKind::Allowed;
    assert!(
        allowed("s3:GetObject", "arn:aws:s3:::data/train/1", &[]),
        "{p:#}"
    );
    assert!(allowed("s3:GetObject", "arn:aws:s3:::data/train/2", &[]));
    assert!(allowed(
        "s3:ListBucket",
        "arn:aws:s3:::data",
        &[("s3:prefix", "train/")]
    ));
    assert!(allowed(
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/etl",
        &[]
    ));
    // Not used: the denied attempt, another object, another listing, another role.
    assert!(!allowed(
        "s3:DeleteObject",
        "arn:aws:s3:::data/train/1",
        &[]
    ));
    assert!(!allowed("s3:GetObject", "arn:aws:s3:::data/train/3", &[]));
    assert!(!allowed(
        "s3:ListBucket",
        "arn:aws:s3:::data",
        &[("s3:prefix", "secret/")]
    ));
    assert!(!allowed("s3:PutObject", "arn:aws:s3:::data/train/1", &[]));
    assert!(!allowed(
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/other",
        &[]
    ));
}

#[test]
fn many_objects_become_their_common_prefix() {
    let mut t = Tally::new([(ROLE_ID.to_owned(), Kind::Role)], None);
    for i in 0..=minimal::MAX_EXACT_OBJECTS {
        t.add(&event(
            &format!("{ROLE_ID}:etl"),
            "PutObject",
            "s3:PutObject",
            &format!("arn:aws:s3:::out/run-7/part-{i}"),
            true,
        ));
    }
    let p = minimal_policy(&t.usage(ROLE_ID));
    assert_eq!(
        p["Statement"][0]["Resource"],
        json!(["arn:aws:s3:::out/run-7/*"]),
        "{p:#}"
    );
    assert_eq!(
        decide(&p, "s3:PutObject", "arn:aws:s3:::out/run-8/x", &[]),
        DecisionKind::ImplicitlyDenied
    );
}

#[test]
fn unused_lists_idle_principals_and_keys() {
    let since = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let key = |id: &str, used_ms: Option<i64>| KeyFact {
        id: id.into(),
        status: "Active".into(),
        created: "2026-10-01T00:00:00Z".into(),
        last_used: used_ms.map(|at_ms| KeyUse {
            at_ms,
            service: "s3".into(),
            region: "us-east-1".into(),
        }),
    };
    let idle_role = Subject {
        kind: Kind::Role,
        name: "etl".into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:role/etl"),
        id: ROLE_ID.into(),
        created: "2026-10-01T00:00:00Z".into(),
    };
    let entries = [
        Entry {
            subject: alice(),
            usage: alices_usage(),
            granted: Granted::default(),
            keys: vec![
                // Seen in the trail.
                key("AKIAUSERKEY000000001", None),
                // Last used before the window.
                key("AKIAOLD0000000000003", Some(since.timestamp_millis() - 1)),
                // Last used in the window, on another node's trail.
                key("AKIARECENT0000000004", Some(since.timestamp_millis() + 1)),
            ],
        },
        Entry {
            subject: idle_role,
            usage: Usage::default(),
            granted: granted(
                &[("p".to_owned(), parse_policy(POLICY).unwrap())],
                |_, _| true,
            ),
            keys: Vec::new(),
        },
    ];
    let (users, roles, keys) = account_unused(&entries, since);
    assert_eq!(users[0]["unused"], false);
    // No request in this trail, but a key used in the window (on another node): not unused.
    let elsewhere = Entry {
        subject: alice(),
        usage: Usage::default(),
        granted: Granted::default(),
        keys: vec![key(
            "AKIARECENT0000000004",
            Some(since.timestamp_millis() + 1),
        )],
    };
    let (users_elsewhere, _, _) = account_unused(std::slice::from_ref(&elsewhere), since);
    assert_eq!(users_elsewhere[0]["unused"], false);
    assert_eq!(roles[0]["unused"], true);
    assert_eq!(roles[0]["unusedActionCount"], roles[0]["grantedActions"]);
    let ids: Vec<&str> = keys
        .iter()
        .map(|k| k["accessKeyId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["AKIAOLD0000000000003"]);
    assert_eq!(keys[0]["lastUsed"], "2026-10-31T23:59:59Z");
}

/// A trail whose first files retention removed says where it begins now; a whole one says
/// nothing (its first event is sequence 1).
#[test]
fn the_trail_start_is_named_only_when_retention_cut_it() {
    let dir = tempfile::tempdir().unwrap();
    let line = |seq: u64, time: &str| {
        let mut e = event(
            USER_ID,
            "GetObject",
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            true,
        );
        e.event_time = time.into();
        let mut v = serde_json::to_value(&e).unwrap();
        v["seq"] = json!(seq);
        format!("{v}\n")
    };
    let first = dir.path().join(crate::audit::sink::file_name(1));
    std::fs::write(&first, line(1, "2026-11-01T00:00:00.000Z")).unwrap();
    std::fs::write(
        dir.path().join(crate::audit::sink::file_name(5)),
        line(5, "2026-11-20T00:00:00.000Z"),
    )
    .unwrap();
    assert_eq!(trail_start(dir.path()), None);
    std::fs::remove_file(first).unwrap();
    assert_eq!(
        trail_start(dir.path()).as_deref(),
        Some("2026-11-20T00:00:00.000Z")
    );
}

/// How long a report's pass over the trail takes (`cargo test -p keyhole-server --lib
/// access::tests::trail_pass_cost -- --ignored --nocapture`): 100,000 events of 1,000 users and
/// roles, read from disk, tallied for every principal as `access unused` does, and reported.
#[test]
#[ignore = "a measurement, not a check"]
fn trail_pass_cost() {
    const EVENTS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let ids: Vec<String> = (0..1000).map(|i| format!("AIDAUSER{i:013}")).collect();
    for i in 0..EVENTS {
        let id = &ids[i % ids.len()];
        let mut e = event(
            id,
            "GetObject",
            "s3:GetObject",
            &format!("arn:aws:s3:::data/p{}/k{i}", i % 7),
            i % 10 != 0,
        );
        e.event_time = "2026-12-01T00:00:00.000Z".into();
        let mut v = serde_json::to_value(&e).unwrap();
        v["seq"] = json!(i + 1);
        text.push_str(&v.to_string());
        text.push('\n');
    }
    std::fs::write(dir.path().join(crate::audit::sink::file_name(1)), &text).unwrap();
    let start = std::time::Instant::now();
    let mut t = Tally::new(ids.iter().map(|i| (i.clone(), Kind::User)), None);
    let filter = t.filter();
    crate::audit::query::scan(dir.path(), &filter, |f| {
        t.add(&f.event);
        true
    })
    .unwrap();
    let scanned = start.elapsed();
    let mut statements = 0;
    for id in &ids {
        statements += minimal_policy(&t.usage(id))["Statement"]
            .as_array()
            .map_or(0, Vec::len);
    }
    let all = start.elapsed();
    // One principal's report: lines without its id are skipped unparsed.
    let start = std::time::Instant::now();
    let mut one = Tally::new([(ids[0].clone(), Kind::User)], None);
    let filter = one.filter();
    crate::audit::query::scan(dir.path(), &filter, |f| {
        one.add(&f.event);
        true
    })
    .unwrap();
    assert_eq!(one.usage(&ids[0]).requests, (EVENTS / ids.len()) as u64);
    println!(
        "{EVENTS} events ({} MB): every principal: trail pass {scanned:?}, with 1000 minimal policies {all:?} ({statements} statements); one principal: {:?}",
        text.len() / 1_000_000,
        start.elapsed()
    );
}

/// Review 14 (F3): a `${aws:username}` home folder used by every request was listed as granted
/// and never used; a variable stands for any value, so it is not.
#[test]
fn a_resource_with_policy_variables_is_used_by_what_its_variables_could_match() {
    let mut usage = Usage::default();
    usage.resources.insert(
        "s3:PutObject".into(),
        ["arn:aws:s3:::data/home/alice/x".to_owned()].into(),
    );
    let granted = Granted {
        actions: ["s3:PutObject".to_owned()].into(),
        resources: vec![
            GrantedResource {
                policy: "home".into(),
                resource: "arn:aws:s3:::data/home/${aws:username}/*".into(),
                actions: ["s3:PutObject".to_owned()].into(),
            },
            GrantedResource {
                policy: "other".into(),
                resource: "arn:aws:s3:::other/${aws:username}/*".into(),
                actions: ["s3:PutObject".to_owned()].into(),
            },
        ],
    };
    let unused: Vec<String> = unused_resources(&usage, &granted)
        .iter()
        .map(|v| v["resource"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unused, ["arn:aws:s3:::other/${aws:username}/*"]);
}
