//! Fuzz target: any text must parse or fail cleanly; whatever parses must print, re-parse to
//! the same model, compile in every role (or fail cleanly) and evaluate without panicking.
#![no_main]

use keyhole_policy::{
    parse_policy, CompiledPolicy, Context, Evaluator, Policies, PolicyKind, Request, RequestPrincipal,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = parse_policy(text) else { return };
    let printed = policy.to_json_string();
    let mut again = parse_policy(&printed).expect("printed policy parses");
    for (a, b) in again.statements.iter_mut().zip(&policy.statements) {
        a.line = b.line;
        a.span = b.span;
    }
    assert_eq!(again, policy, "print/parse round trip");
    let mut ctx = Context::new();
    ctx.insert("aws:SourceIp", "203.0.113.7");
    ctx.insert("aws:CurrentTime", "2025-07-16T02:00:00Z");
    ctx.insert("aws:username", "alice");
    ctx.insert_multi("aws:TagKeys", vec!["a".into(), "b".into()]);
    let req = Request::new(
        RequestPrincipal::from_arn("arn:aws:sts::111122223333:assumed-role/r/s", None),
        "s3:GetObject",
        "arn:aws:s3:::bucket/key",
        None,
        ctx,
    );
    for kind in [PolicyKind::Identity, PolicyKind::Resource, PolicyKind::PermissionsBoundary, PolicyKind::Session] {
        if let Ok(c) = CompiledPolicy::compile(&policy, kind) {
            let one = [c.clone()];
            let p = match kind {
                PolicyKind::Identity => Policies { identity: &one, ..Policies::default() },
                PolicyKind::Resource => Policies { resource: Some(&c), ..Policies::default() },
                PolicyKind::PermissionsBoundary => Policies { boundaries: &one, ..Policies::default() },
                PolicyKind::Session => Policies { session: Some(&one), ..Policies::default() },
            };
            let d = Evaluator::evaluate(&p, &req);
            assert_eq!(d.kind, Evaluator::is_allowed(&p, &req), "evaluate and is_allowed agree");
        }
    }
});
