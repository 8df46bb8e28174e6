//! Criterion benchmarks for issue 3: a seed-policy decision, a 100-statement policy decision,
//! and parsing plus compiling a 10 KiB policy.
#![expect(clippy::unwrap_used, reason = "benchmark setup")]
#![expect(missing_docs, reason = "criterion macros generate undocumented items")]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keyhole_policy::{
    CompiledPolicy, Context, Evaluator, Policies, PolicyKind, Request, RequestPrincipal,
};

const TRAINING_JOB: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/test-data/policies/training-job.json"
));

fn request(action: &str, resource: &str) -> Request {
    let mut ctx = Context::new();
    ctx.insert("aws:CurrentTime", "2025-07-16T02:30:00Z");
    ctx.insert("aws:SourceIp", "203.0.113.42");
    ctx.insert("aws:SecureTransport", "true");
    ctx.insert("aws:username", "alice");
    Request::new(
        RequestPrincipal::from_arn(
            "arn:aws:sts::111122223333:assumed-role/training-jobs/j1",
            None,
        ),
        action,
        resource,
        None,
        ctx,
    )
}

/// A policy with `n` statements of mixed shapes; the one that grants is last.
fn big_policy(n: usize) -> String {
    let mut stmts = Vec::new();
    for i in 0..n.saturating_sub(1) {
        stmts.push(format!(
            r#"{{"Sid": "S{i}", "Effect": "Allow", "Action": ["s3:GetObject", "s3:List*", "s3:Put*Tagging"],
               "Resource": ["arn:aws:s3:::bucket-{i}", "arn:aws:s3:::bucket-{i}/team-*/${{aws:username}}/*"],
               "Condition": {{"IpAddress": {{"aws:SourceIp": ["10.{i}.0.0/16", "192.0.2.0/24"]}},
                             "DateLessThan": {{"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
                             "StringLike": {{"s3:prefix": ["team-{i}/*", "shared/*"]}}}}}}"#
        ));
    }
    stmts.push(
        r#"{"Sid": "Last", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::target/*",
            "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}"#
            .to_owned(),
    );
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
        stmts.join(",\n")
    )
}

fn benches(c: &mut Criterion) {
    let seed = [CompiledPolicy::from_json(TRAINING_JOB, PolicyKind::Identity).unwrap()];
    let req = request(
        "s3:PutObject",
        "arn:aws:s3:::acmeco-finetuned-models/finetune-wiki-42/model.safetensors",
    );
    let pols = Policies {
        identity: &seed,
        ..Policies::default()
    };
    c.bench_function("decision/training-job/allowed", |b| {
        b.iter(|| Evaluator::is_allowed(black_box(&pols), black_box(&req)))
    });
    let out = request("s3:DeleteObject", "arn:aws:s3:::acmeco-finetuned-models/x");
    c.bench_function("decision/training-job/denied", |b| {
        b.iter(|| Evaluator::is_allowed(black_box(&pols), black_box(&out)))
    });
    c.bench_function("decision/training-job/explained", |b| {
        b.iter(|| Evaluator::evaluate(black_box(&pols), black_box(&req)))
    });

    let big = [CompiledPolicy::from_json(&big_policy(100), PolicyKind::Identity).unwrap()];
    let bpols = Policies {
        identity: &big,
        ..Policies::default()
    };
    let breq = request("s3:PutObject", "arn:aws:s3:::target/a/b");
    c.bench_function("decision/100-statements", |b| {
        b.iter(|| Evaluator::is_allowed(black_box(&bpols), black_box(&breq)))
    });

    let mut text = big_policy(1);
    let mut n = 1;
    while text.len() < 10 * 1024 {
        n += 1;
        text = big_policy(n);
    }
    eprintln!(
        "parse+compile input: {} statements, {} bytes",
        n,
        text.len()
    );
    c.bench_function("parse/10KiB", |b| {
        b.iter(|| keyhole_policy::parse_policy(black_box(&text)).unwrap())
    });
    let parsed = keyhole_policy::parse_policy(&text).unwrap();
    c.bench_function("compile/10KiB", |b| {
        b.iter(|| CompiledPolicy::compile(black_box(&parsed), PolicyKind::Identity).unwrap())
    });
    c.bench_function("parse+compile/10KiB", |b| {
        b.iter(|| CompiledPolicy::from_json(black_box(&text), PolicyKind::Identity).unwrap())
    });
}

criterion_group!(policy, benches);
criterion_main!(policy);
