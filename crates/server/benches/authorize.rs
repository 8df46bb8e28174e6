//! Authorization overhead per request: building the condition context and deciding one
//! (action, resource) pair, for the root user and for an assumed-role session carrying the seed
//! training-job session policy (../shared/test-data/policies/training-job.json).
//!
//! `cargo bench -p keyhole-server --bench authorize`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark set-up"
)]

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use keyhole_policy::{CompiledPolicy, PolicyKind};
use keyhole_server::auth::Principal;
use keyhole_server::authz::{Authorize, PolicyAuthorizer};
use keyhole_server::context::{self, RequestFacts};
use keyhole_server::s3::route::{Op, Permission, Query};
use keyhole_server::state::State;
use keyhole_server::sts::SessionClaims;

const ACCOUNT: &str = "123456789012";

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path(), &[9u8; 32], ACCOUNT).unwrap());
    let authz = PolicyAuthorizer {
        account_id: ACCOUNT.into(),
        jobs: Arc::new(keyhole_server::jobs::store::JobStore::new(state.clone())),
        state,
        region: "us-east-1".into(),
    };
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/test-data/policies/training-job.json"
    ))
    .unwrap()
    .replace("203.0.113.42/32", "127.0.0.1/32")
    .replace("2025-07-16T01:00:00Z", "2020-01-01T00:00:00Z")
    .replace("2025-07-16T04:00:00Z", "2099-01-01T00:00:00Z");
    let role = CompiledPolicy::from_json(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        PolicyKind::Identity,
    )
    .unwrap();
    let session = Principal::Session {
        claims: Arc::new(SessionClaims {
            ak: "ASIABENCH".into(),
            sk: String::new(),
            account: ACCOUNT.into(),
            role: "training-job".into(),
            role_id: "AROABENCH".into(),
            session: "run-1".into(),
            source_identity: None,
            policy: None,
            policy_arns: Vec::new(),
            iat: 0,
            exp: i64::MAX,
            job: None,
            tags: Vec::new(),
            transitive: Vec::new(),
            user: None,
            web_identity: None,
        }),
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/training-job/run-1"),
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/training-job"),
        role_policies: Arc::new(vec![role]),
        session_policies: Some(Arc::from([CompiledPolicy::from_json(
            &seed,
            PolicyKind::Session,
        )
        .unwrap()])),
        boundary: None,
        tags: Default::default(),
        creator: None,
    };
    let root = Principal::Root {
        access_key_id: "AKIAROOT".into(),
    };
    let headers = HeaderMap::new();
    let query = Query::parse(None);
    let put = Permission {
        action: "s3:PutObject",
        resource: "arn:aws:s3:::acmeco-finetuned-models/run-1/checkpoint.pt".into(),
    };
    let get = Permission {
        action: "s3:GetObject",
        resource: "arn:aws:s3:::acmeco-base-models/llama/model.safetensors".into(),
    };
    let decide = |who: &Principal, p: &Permission| {
        let mut ctx = context::global(&RequestFacts {
            now: chrono::Utc::now(),
            source_ip: "127.0.0.1",
            secure: false,
            headers: &headers,
            region: "us-east-1",
            account_id: ACCOUNT,
            principal: who,
            verified: None,
        });
        context::add_s3(&mut ctx, &Op::PutObject, &query, &headers, "123456789012");
        authz.decide(who, p, &ctx).outcome
    };
    assert!(decide(&session, &put).is_ok() && decide(&session, &get).is_ok());
    let mut g = c.benchmark_group("authorize (context + decision)");
    g.bench_function("root GetObject", |b| {
        b.iter(|| black_box(decide(&root, &get)).is_ok())
    });
    g.bench_function("session GetObject (training-job)", |b| {
        b.iter(|| black_box(decide(&session, &get)).is_ok())
    });
    g.bench_function("session PutObject in window (training-job)", |b| {
        b.iter(|| black_box(decide(&session, &put)).is_ok())
    });
    // A denial (the session policy does not grant deletes): the audit trail's evaluation
    // (keyhole audit explain) is built for denials only.
    let delete = Permission {
        action: "s3:DeleteObject",
        resource: "arn:aws:s3:::acmeco-base-models/llama/model.safetensors".into(),
    };
    assert!(decide(&session, &delete).is_err());
    g.bench_function("session DeleteObject denied (training-job)", |b| {
        b.iter(|| black_box(decide(&session, &delete)).is_err())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
