//! A decision through `Evaluator::is_allowed` allocates nothing (DESIGN.md section 4).

use keyhole_policy::{
    CompiledPolicy, Context, DecisionKind, Evaluator, Policies, PolicyKind, Request,
    RequestPrincipal,
};

const TRAINING_JOB: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/test-data/policies/training-job.json"
));

#[test]
fn seed_policy_decision_allocates_nothing() {
    let identity = [CompiledPolicy::from_json(TRAINING_JOB, PolicyKind::Identity).unwrap()];
    let bucket = CompiledPolicy::from_json(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::acmeco-finetuned-models/*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/other"}, "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::acmeco-finetuned-models/${aws:username}/*"}]}"#,
        PolicyKind::Resource,
    )
    .unwrap();
    let mut ctx = Context::new();
    ctx.insert("aws:CurrentTime", "2025-07-16T02:30:00Z");
    ctx.insert("aws:SourceIp", "203.0.113.42");
    ctx.insert("aws:SecureTransport", "true");
    let principal = RequestPrincipal::from_arn(
        "arn:aws:sts::111122223333:assumed-role/training-jobs/j1",
        None,
    );
    let allowed = Request::new(
        principal.clone(),
        "s3:PutObject",
        "arn:aws:s3:::acmeco-finetuned-models/finetune-wiki-42/x",
        None,
        ctx.clone(),
    );
    ctx.insert("aws:SourceIp", "198.51.100.1");
    let denied = Request::new(
        principal,
        "s3:PutObject",
        "arn:aws:s3:::acmeco-finetuned-models/x",
        None,
        ctx,
    );
    let policies = Policies {
        identity: &identity,
        resource: Some(&bucket),
        ..Policies::default()
    };
    let mut results = [DecisionKind::ImplicitlyDenied; 2];
    let info = allocation_counter::measure(|| {
        results[0] = Evaluator::is_allowed(&policies, &allowed);
        results[1] = Evaluator::is_allowed(&policies, &denied);
    });
    assert_eq!(
        results,
        [DecisionKind::Allowed, DecisionKind::ImplicitlyDenied]
    );
    assert_eq!(info.count_total, 0, "decisions allocated: {info:?}");
}
