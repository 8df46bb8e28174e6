use super::*;
use crate::audit::event::tests_support::sample_event;
use crate::state::State;

const ACCOUNT: &str = "123456789012";

fn state() -> (tempfile::TempDir, State) {
    let dir = tempfile::tempdir().unwrap();
    let s = State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap();
    (dir, s)
}

fn home_only(prefix: &str) -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "ListOwnHome", "Effect": "Allow", "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::data",
        "Condition": {"StringLike": {"s3:prefix": prefix}}}]})
    .to_string()
}

/// What the authorizer records for `user` listing `data` with `prefix` (its policies as the
/// snapshot compiled them).
fn denial(s: &State, user: &str, prefix: &str) -> (AuditEvent, Evaluation) {
    let snap = s.snapshot();
    let u = snap.users.get(user).unwrap();
    let set = Policies {
        identity: &u.policies,
        session: None,
        boundaries: &[],
        resource: None,
        restrict_public_buckets: false,
        resource_gate: ResourceGate::Union,
    };
    let mut context = Context::new();
    context.insert("s3:prefix", prefix);
    context.insert("aws:SourceIp", "127.0.0.1");
    let principal = RequestPrincipal::User {
        arn: u.arn.clone(),
        account: ACCOUNT.into(),
    };
    let evaluation = record(&set, &principal, Some(&u.record.id), &context);
    let mut e = sample_event();
    e.decision = Some(Decision::Deny);
    e.authorization = vec![Check {
        action: "s3:ListBucket".into(),
        resource: "arn:aws:s3:::data".into(),
        decision: Decision::Deny,
        reason: "denied".into(),
        statements: Vec::new(),
        evaluation: Some(Box::new(evaluation.clone())),
        same_evaluation_as: None,
    }];
    (e, evaluation)
}

fn explained(s: &State, e: &AuditEvent) -> CheckExplanation {
    let x = s.with_db(|db| Ok(explain(e, db, ACCOUNT))).unwrap();
    x.checks.into_iter().next().unwrap()
}

#[test]
fn a_failed_prefix_condition_of_a_group_policy_is_named_then_and_a_change_shows_now() {
    let (_d, s) = state();
    s.create_user("alice", "/").unwrap();
    s.create_group("staff", "/").unwrap();
    s.add_user_to_group("staff", "alice").unwrap();
    s.put_inline_policy(
        PrincipalKind::Group,
        "staff",
        "homes",
        &home_only("home/alice/*"),
    )
    .unwrap();
    let (e, evaluation) = denial(&s, "alice", "private/");
    assert_eq!(evaluation.principal.kind, "user");
    assert_eq!(evaluation.policies.len(), 1);
    assert_eq!(
        evaluation.policies[0].sha256.as_deref(),
        Some(crate::state::documents::digest(&home_only("home/alice/*")).as_str())
    );

    let c = explained(&s, &e);
    assert_eq!(c.then.decision.as_deref(), Some("ImplicitlyDenied"));
    assert_eq!(
        c.then.why[0],
        "s3:prefix private/ does not match home/alice/* (StringLike, statement ListOwnHome of inline policy `homes` of group `staff`)"
    );
    assert_eq!(c.now, c.then, "nothing changed");

    // The group's policy is replaced: then is rebuilt from the history, now from the state.
    s.put_inline_policy(PrincipalKind::Group, "staff", "homes", &home_only("*"))
        .unwrap();
    let c = explained(&s, &e);
    assert_eq!(c.then.decision.as_deref(), Some("ImplicitlyDenied"));
    assert_eq!(c.now.decision.as_deref(), Some("Allowed"));
    assert!(c.now.statements[0].text.contains("\"s3:prefix\":\"*\""));
    assert!(render(&explained_all(&s, &e)).contains("the decision changed since"));

    // Leaving the group takes the grant away again.
    s.remove_user_from_group("staff", "alice").unwrap();
    let c = explained(&s, &e);
    assert_eq!(c.now.decision.as_deref(), Some("ImplicitlyDenied"));
    assert_eq!(
        c.now.why,
        ["no identity-based policy statement allows s3:ListBucket on arn:aws:s3:::data"]
    );
}

fn explained_all(s: &State, e: &AuditEvent) -> Explanation {
    s.with_db(|db| Ok(explain(e, db, ACCOUNT))).unwrap()
}

#[test]
fn a_document_the_history_does_not_have_is_said_so() {
    let (_d, s) = state();
    s.create_user("bob", "/").unwrap();
    s.put_inline_policy(
        PrincipalKind::User,
        "bob",
        "homes",
        &home_only("home/bob/*"),
    )
    .unwrap();
    let (mut e, mut evaluation) = denial(&s, "bob", "x/");
    evaluation.policies[0].sha256 = Some("0".repeat(64));
    e.authorization[0].evaluation = Some(Box::new(evaluation));
    let c = explained(&s, &e);
    assert_eq!(c.then.decision, None);
    let why = c.then.unavailable.unwrap();
    assert!(why.contains("is not in the policy history"), "{why}");
    assert_eq!(c.now.decision.as_deref(), Some("ImplicitlyDenied"));
}

#[test]
fn events_without_an_evaluation_say_why_nothing_is_made_again() {
    let (_d, s) = state();
    let e = sample_event();
    let c = explained(&s, &e);
    assert_eq!(c.recorded, Decision::Allow);
    assert!(c.then.unavailable.unwrap().contains("recorded for denials"));
    let mut old = sample_event();
    old.authorization[0].decision = Decision::Deny;
    let c = explained(&s, &old);
    assert!(c
        .then
        .unavailable
        .unwrap()
        .contains("written before keyhole recorded them"));
}

#[test]
fn an_external_id_is_never_recorded_and_the_evaluation_round_trips() {
    let mut context = Context::new();
    context.insert("sts:ExternalId", "s3cr3t-external");
    context.insert_multi("aws:TagKeys", vec!["a".into(), "b".into()]);
    let set = Policies {
        identity: &[],
        session: Some(&[]),
        boundaries: &[],
        resource: None,
        restrict_public_buckets: true,
        resource_gate: ResourceGate::RoleTrust,
    };
    let e = record(&set, &RequestPrincipal::Anonymous, None, &context);
    assert_eq!(e.redacted, ["sts:ExternalId"]);
    let json = serde_json::to_string(&e).unwrap();
    assert!(!json.contains("s3cr3t"), "{json}");
    assert!(json.contains(r#""aws:TagKeys":["a","b"]"#), "{json}");
    assert!(e.session_policies && e.restrict_public_buckets && e.role_trust);
    let back: Evaluation = serde_json::from_str(&json).unwrap();
    assert_eq!(back, e);
    let c = context_of(&back);
    assert!(c.get("sts:externalid").is_none());
    assert_eq!(c.get("aws:tagkeys").unwrap().values(), ["a", "b"]);
}

/// Review 15: a presigned page's URL reached the trail as `aws:Referer`, and a denial carrying
/// thousands of tags recorded every one.
#[test]
fn a_referer_loses_its_query_and_a_huge_context_is_bounded() {
    let mut context = Context::new();
    context.insert(
        "aws:Referer",
        "https://gw.example/b/page.html?X-Amz-Signature=abc&X-Amz-Security-Token=tok#x",
    );
    for i in 0..(MAX_RECORDED_KEYS + 50) {
        context.insert(&format!("aws:RequestTag/t{i}"), "v".repeat(5000));
    }
    let set = Policies {
        identity: &[],
        session: None,
        boundaries: &[],
        resource: None,
        restrict_public_buckets: true,
        resource_gate: ResourceGate::default(),
    };
    let e = record(&set, &RequestPrincipal::Anonymous, None, &context);
    let json = serde_json::to_string(&e).unwrap();
    assert!(
        !json.contains("X-Amz-Signature") && !json.contains("tok"),
        "{}",
        json.get(..200).unwrap_or_default()
    );
    assert!(json.contains("https://gw.example/b/page.html?(query withheld)"));
    assert!(
        json.len() < (MAX_RECORDED_KEYS + 2) * (MAX_RECORDED_VALUE_BYTES + 64),
        "{}",
        json.len()
    );
    assert_eq!(e.redacted.len(), 1, "{:?}", e.redacted);
    assert!(
        e.redacted[0].starts_with("51 more condition key(s)"),
        "{:?}",
        e.redacted
    );
    assert_eq!(
        recordable("sts:ExternalId", "s3cr3t"),
        "(withheld: a secret)"
    );
    assert_eq!(recordable("aws:SourceIp", "10.0.0.1"), "10.0.0.1");
}

#[test]
fn an_old_check_line_without_evaluation_parses_and_is_written_back_unchanged() {
    let line = r#"{"action":"s3:GetObject","resource":"arn:aws:s3:::b/k","decision":"Deny","reason":"r","statements":[]}"#;
    let c: Check = serde_json::from_str(line).unwrap();
    assert!(c.evaluation.is_none());
    assert_eq!(serde_json::to_string(&c).unwrap(), line);
}

#[test]
fn stored_documents_are_kept_by_digest_when_replaced() {
    let (_d, s) = state();
    s.create_user("carol", "/").unwrap();
    let first = home_only("a/*");
    let second = home_only("b/*");
    s.put_inline_policy(PrincipalKind::User, "carol", "p", &first)
        .unwrap();
    s.put_inline_policy(PrincipalKind::User, "carol", "p", &second)
        .unwrap();
    s.put_bucket_policy(
        "data",
        &serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
        "Resource": "arn:aws:s3:::data/*"}]})
        .to_string(),
    )
    .unwrap();
    s.with_db(|db| {
        for d in [&first, &second] {
            let digest = crate::state::documents::digest(d);
            assert_eq!(
                crate::state::documents::find(db, &digest)?.as_deref(),
                Some(d.as_str())
            );
        }
        Ok(())
    })
    .unwrap();
    let snap = s.snapshot();
    let p = snap.bucket_policies.get("data").unwrap();
    assert!(p.digest().is_some());
    s.with_db(|db| {
        assert!(crate::state::documents::find(db, p.digest().unwrap())?.is_some());
        Ok(())
    })
    .unwrap();
}

#[test]
fn denials_with_the_same_evaluation_share_it_and_are_each_explained() {
    let (_d, s) = state();
    s.create_user("dave", "/").unwrap();
    s.put_inline_policy(PrincipalKind::User, "dave", "homes", &home_only("home/*"))
        .unwrap();
    let (e, _) = denial(&s, "dave", "x/");
    let checks = crate::audit::Checks::default();
    let first = e.authorization[0].clone();
    let mut second = first.clone();
    second.resource = "arn:aws:s3:::other".into();
    checks.push(first);
    checks.push(second);
    let recorded = checks.snapshot();
    assert!(recorded[0].evaluation.is_some());
    assert!(recorded[1].evaluation.is_none());
    assert_eq!(recorded[1].same_evaluation_as, Some(0));
    let mut e = e;
    e.authorization = recorded;
    let x = explained_all(&s, &e);
    assert_eq!(x.checks.len(), 2);
    for c in &x.checks {
        assert_eq!(
            c.then.decision.as_deref(),
            Some("ImplicitlyDenied"),
            "{c:?}"
        );
    }
    assert!(x.checks[1].then.why[0].contains("arn:aws:s3:::other"));
}
