//! Tests of authentication and authorization together: principals as the authenticator makes
//! them, decided by the policy authorizer.

use chrono::Utc;
use http::{HeaderMap, Method, StatusCode, Uri};
use keyhole_sigv4::SecretKey;

use super::*;
use crate::auth::Authenticator;

impl PolicyAuthorizer {
    /// The decision alone.
    fn authorize(
        &self,
        principal: &Principal,
        permission: &Permission,
        context: &Context,
    ) -> Result<(), S3Error> {
        self.decide(principal, permission, context).outcome
    }
}

/// An authorizer over `state` (whose database also holds the jobs).
fn authorizer_in(state: Arc<crate::state::State>) -> PolicyAuthorizer {
    PolicyAuthorizer {
        account_id: "123456789012".into(),
        jobs: Arc::new(crate::jobs::store::JobStore::new(state.clone())),
        state,
        region: "us-east-1".into(),
    }
}

fn authorizer() -> PolicyAuthorizer {
    let dir = tempfile::tempdir().unwrap();
    let state = crate::state::State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
    // The database stays open after the directory handle is dropped (unlinked, still valid).
    authorizer_in(Arc::new(state))
}

fn perm(action: &'static str, resource: &str) -> Permission {
    Permission {
        action,
        resource: resource.into(),
    }
}

fn user(doc: &str) -> Principal {
    let p = keyhole_policy::CompiledPolicy::from_json(doc, keyhole_policy::PolicyKind::Identity)
        .unwrap();
    Principal::User {
        name: "u".into(),
        id: "AIDAX".into(),
        arn: "arn:aws:iam::123456789012:user/u".into(),
        access_key_id: "AKIAX".into(),
        session: None,
        policies: std::sync::Arc::new(vec![p]),
        boundary: None,
        tags: Default::default(),
    }
}

#[test]
fn root_allowed_anonymous_denied() {
    let a = authorizer();
    let ctx = keyhole_policy::Context::new();
    let p = perm("s3:GetObject", "arn:aws:s3:::b/k");
    assert!(a
        .authorize(
            &Principal::Root {
                access_key_id: "AKIA".into()
            },
            &p,
            &ctx
        )
        .is_ok());
    let e = a.authorize(&Principal::Anonymous, &p, &ctx).unwrap_err();
    assert_eq!(
        (e.code(), e.status()),
        ("AccessDenied", StatusCode::FORBIDDEN)
    );
}

#[test]
fn users_are_decided_by_their_policies_with_the_context() {
    let a = authorizer();
    let u = user(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":"data/*"}}},
        {"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"},
        {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"}]}"#,
    );
    let mut ctx = keyhole_policy::Context::new();
    assert!(a
        .authorize(&u, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
        .is_ok());
    let e = a
        .authorize(&u, &perm("s3:DeleteObject", "arn:aws:s3:::b/k"), &ctx)
        .unwrap_err();
    assert!(
        e.message()
            .ends_with("with an explicit deny in an identity-based policy"),
        "{}",
        e.message()
    );
    let e = a
        .authorize(&u, &perm("s3:ListBucket", "arn:aws:s3:::b"), &ctx)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "User: arn:aws:iam::123456789012:user/u is not authorized to perform: s3:ListBucket on resource: \"arn:aws:s3:::b\" because no identity-based policy allows the s3:ListBucket action"
    );
    ctx.insert("s3:prefix", "data/x");
    assert!(a
        .authorize(&u, &perm("s3:ListBucket", "arn:aws:s3:::b"), &ctx)
        .is_ok());
    assert!(a
        .authorize(&u, &perm("s3:GetObject", "arn:aws:s3:::other/k"), &ctx)
        .is_err());
}

#[test]
fn sessions_are_role_policies_intersected_with_the_session_policy() {
    let a = authorizer();
    let compile = |doc: &str, kind| keyhole_policy::CompiledPolicy::from_json(doc, kind).unwrap();
    let role = compile(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
        keyhole_policy::PolicyKind::Identity,
    );
    let session = compile(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        keyhole_policy::PolicyKind::Session,
    );
    let p = Principal::Session {
        claims: std::sync::Arc::new(crate::sts::SessionClaims {
            ak: "ASIAX".into(),
            sk: String::new(),
            account: "123456789012".into(),
            role: "r".into(),
            role_id: "AROAX".into(),
            session: "s".into(),
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
        arn: "arn:aws:sts::123456789012:assumed-role/r/s".into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        role_policies: std::sync::Arc::new(vec![role]),
        session_policies: Some(std::sync::Arc::from([session])),
        boundary: None,
        tags: Default::default(),
        creator: None,
    };
    let ctx = keyhole_policy::Context::new();
    assert!(a
        .authorize(&p, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
        .is_ok());
    let e = a
        .authorize(&p, &perm("s3:PutObject", "arn:aws:s3:::b/k"), &ctx)
        .unwrap_err();
    assert!(
        e.message()
            .ends_with("because no session policy allows the s3:PutObject action"),
        "{}",
        e.message()
    );
    assert!(a
        .authorize(&p, &perm("s3:GetObject", "arn:aws:s3:::other/k"), &ctx)
        .is_err());
}

const ACCOUNT: &str = "123456789012";

/// An authenticator over a fresh state with a role `r` (allowed s3:GetObject and
/// s3:PutObject), a managed policy `ro` (s3:GetObject) and a user `u`.
fn authenticator() -> (
    Authenticator,
    std::sync::Arc<crate::state::State>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let state =
        std::sync::Arc::new(crate::state::State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap());
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    state.create_role("r", "/", trust, 3600, "").unwrap();
    state
        .put_inline_policy(
            crate::state::PrincipalKind::Role,
            "r",
            "rw",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"*"}]}"#,
        )
        .unwrap();
    state
        .create_policy(
            "ro",
            "/",
            "",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
        )
        .unwrap();
    state.create_user("u", "/").unwrap();
    let jobs = std::sync::Arc::new(crate::jobs::store::JobStore::new(state.clone()));
    let authn = Authenticator::new(
        "AKIAROOT".into(),
        SecretKey::new("root-secret".to_owned()),
        "us-east-1".into(),
        state.clone(),
        std::sync::Arc::new(crate::sts::TokenSealer::new(&[7u8; 32]).unwrap()),
        jobs,
    );
    (authn, state, dir)
}

/// Signs a GET with temporary credentials and verifies it.
fn verify_session(
    authn: &Authenticator,
    claims: &crate::sts::SessionClaims,
) -> Result<Principal, S3Error> {
    let token = authn.tokens.seal(claims).unwrap();
    let uri: Uri = "http://127.0.0.1:9000/b/k".parse().unwrap();
    let mut headers = HeaderMap::new();
    let creds = keyhole_sigv4::Credentials {
        access_key_id: claims.ak.clone(),
        secret_key: SecretKey::new(claims.sk.clone()),
        session_token: Some(token),
    };
    let now = Utc::now();
    keyhole_sigv4::sign_headers(
        &Method::GET,
        &uri,
        &mut headers,
        "UNSIGNED-PAYLOAD",
        &keyhole_sigv4::SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "s3",
            time: now,
        },
    )
    .unwrap();
    let signed = authn.parse(&Method::GET, &uri, &headers)?.unwrap();
    authn
        .verify(signed, &Method::GET, &uri, &headers, now, None)
        .map(|(p, _)| p)
}

fn role_claims(state: &crate::state::State) -> crate::sts::SessionClaims {
    let mut c = crate::sts::SessionClaims::fresh(ACCOUNT, Utc::now(), 900);
    c.role = "r".into();
    c.role_id = state.get_role("r").unwrap().id;
    c.session = "s".into();
    c
}

/// Issue 4, item 3: the hot path does not recompile a session's inline policy.
#[test]
fn a_sessions_second_request_reuses_the_compiled_session_policy() {
    let (authn, state, _dir) = authenticator();
    let mut claims = role_claims(&state);
    claims.policy = Some(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#
            .into(),
    );
    assert_eq!(authn.session_policy_cache().compilations(), 0);
    let first = verify_session(&authn, &claims).unwrap();
    let second = verify_session(&authn, &claims).unwrap();
    assert_eq!(
        authn.session_policy_cache().compilations(),
        1,
        "the second request found the policy compiled"
    );
    for p in [&first, &second] {
        let Principal::Session {
            session_policies: Some(list),
            claims,
            ..
        } = p
        else {
            panic!("{p:?}")
        };
        assert_eq!(list.len(), 1);
        assert!(
            claims.sk.is_empty(),
            "the secret does not outlive verification"
        );
    }
    let a = authorizer_in(state);
    let ctx = keyhole_policy::Context::new();
    assert!(a
        .authorize(&second, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
        .is_ok());
    assert!(a
        .authorize(&second, &perm("s3:PutObject", "arn:aws:s3:::b/k"), &ctx)
        .is_err());
}

/// PolicyArns: role policies ∩ (inline ∪ managed session policies)
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session);
/// a managed session policy deleted since leaves the session nothing it granted.
#[test]
fn managed_session_policies_narrow_the_role_and_are_resolved_per_request() {
    let (authn, state, _dir) = authenticator();
    let mut claims = role_claims(&state);
    claims.policy_arns = vec![format!("arn:aws:iam::{ACCOUNT}:policy/ro")];
    let a = authorizer_in(state.clone());
    let ctx = keyhole_policy::Context::new();
    let p = verify_session(&authn, &claims).unwrap();
    assert!(a
        .authorize(&p, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
        .is_ok());
    let e = a
        .authorize(&p, &perm("s3:PutObject", "arn:aws:s3:::b/k"), &ctx)
        .unwrap_err();
    assert!(
        e.message()
            .ends_with("because no session policy allows the s3:PutObject action"),
        "{}",
        e.message()
    );
    // Inline ∪ managed: an inline policy granting PutObject adds it back (within the role).
    claims.policy = Some(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}"#
            .into(),
    );
    let both = verify_session(&authn, &claims).unwrap();
    assert!(a
        .authorize(&both, &perm("s3:PutObject", "arn:aws:s3:::b/k"), &ctx)
        .is_ok());
    assert!(a
        .authorize(&both, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
        .is_ok());
    claims.policy = None;
    state
        .delete_policy(&format!("arn:aws:iam::{ACCOUNT}:policy/ro"))
        .unwrap();
    let orphan = verify_session(&authn, &claims).unwrap();
    assert!(a
        .authorize(&orphan, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
        .is_err());
}

/// GetSessionToken credentials act as the user
/// (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html) and end
/// when the user is deleted.
#[test]
fn user_sessions_authenticate_as_their_user() {
    let (authn, state, _dir) = authenticator();
    let (record, arn) = state.get_user("u").unwrap();
    let mut claims = crate::sts::SessionClaims::fresh(ACCOUNT, Utc::now(), 900);
    claims.user = Some(crate::sts::SessionUser {
        name: "u".into(),
        id: record.id.clone(),
    });
    let p = verify_session(&authn, &claims).unwrap();
    match &p {
        Principal::User {
            name,
            id,
            arn: a,
            access_key_id,
            session: Some(s),
            ..
        } => {
            assert_eq!((name.as_str(), id, a), ("u", &record.id, &arn));
            assert_eq!(access_key_id, &claims.ak);
            assert!(s.sk.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((p.kind(), p.arn(ACCOUNT)), ("IAMUser", arn));
    // They expire like any session.
    let mut expired = claims.clone();
    expired.exp = Utc::now().timestamp() - 1;
    assert_eq!(
        verify_session(&authn, &expired).unwrap_err().code(),
        "ExpiredToken"
    );
    // Another user's id under the same name (deleted and created again) does not open.
    let mut namesake = claims.clone();
    namesake.user = Some(crate::sts::SessionUser {
        name: "u".into(),
        id: "AIDAOTHER".into(),
    });
    assert_eq!(
        verify_session(&authn, &namesake).unwrap_err().code(),
        "InvalidToken"
    );
    state.delete_user("u").unwrap();
    assert_eq!(
        verify_session(&authn, &claims).unwrap_err().code(),
        "InvalidToken"
    );
}

#[test]
fn bucket_policies_bind_root_grant_users_and_anonymous_only_when_unrestricted() {
    let a = authorizer();
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"},
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/u"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
        {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/*"}]}"#;
    a.state
        .put_public_access_block(None, crate::state::PublicAccessBlock::OFF)
        .unwrap();
    let (u_record, _) = a.state.create_user("u", "/").unwrap();
    assert!(a.state.put_bucket_policy("b", policy).unwrap());
    let ctx = keyhole_policy::Context::new();
    let root = Principal::Root {
        access_key_id: "AKIA".into(),
    };
    let e = a
        .authorize(&root, &perm("s3:DeleteObject", "arn:aws:s3:::b/k"), &ctx)
        .unwrap_err();
    assert!(
        e.message()
            .contains("explicit deny in a resource-based policy"),
        "{}",
        e.message()
    );
    assert!(a
        .authorize(&root, &perm("s3:PutBucketPolicy", "arn:aws:s3:::b"), &ctx)
        .is_ok());
    assert!(a
        .authorize(&root, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
        .is_ok());
    // A user with no identity policy is granted by the bucket policy naming it.
    let mut u = user(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#,
    );
    if let Principal::User { id, .. } = &mut u {
        id.clone_from(&u_record.id);
    }
    assert!(a
        .authorize(&u, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
        .is_ok());
    assert!(a
        .authorize(&u, &perm("s3:GetObject", "arn:aws:s3:::c/k"), &ctx)
        .is_err());
    // Anonymous: the public statement grants while RestrictPublicBuckets is off, only there.
    assert!(a
        .authorize(
            &Principal::Anonymous,
            &perm("s3:GetObject", "arn:aws:s3:::b/public/x"),
            &ctx
        )
        .is_ok());
    let e = a
        .authorize(
            &Principal::Anonymous,
            &perm("s3:GetObject", "arn:aws:s3:::b/k"),
            &ctx,
        )
        .unwrap_err();
    assert_eq!(e.message(), "Access Denied");
    a.state
        .put_public_access_block(
            Some("b"),
            crate::state::PublicAccessBlock {
                restrict_public_buckets: true,
                ..crate::state::PublicAccessBlock::OFF
            },
        )
        .unwrap();
    assert!(a
        .authorize(
            &Principal::Anonymous,
            &perm("s3:GetObject", "arn:aws:s3:::b/public/x"),
            &ctx
        )
        .is_err());
}

/// Review round 2, F1: a role-less job is decided again as its creator, with the creator's own
/// keys: a deny aimed at the creator (`aws:username`, `aws:PrincipalTag`) binds the job, and the
/// job's labels cannot stand in for the creator's tags.
#[test]
fn a_roleless_job_is_decided_again_as_its_creator() {
    let a = authorizer();
    let compile = |doc: &str, kind| keyhole_policy::CompiledPolicy::from_json(doc, kind).unwrap();
    let everything = |kind| {
        compile(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            kind,
        )
    };
    let creator = |policy: &str, tags: Vec<(String, String)>| Principal::User {
        name: "alice".into(),
        id: "AIDAALICE".into(),
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        access_key_id: String::new(),
        session: None,
        policies: std::sync::Arc::new(vec![compile(policy, keyhole_policy::PolicyKind::Identity)]),
        boundary: None,
        tags: std::sync::Arc::new(tags),
    };
    let job = |creator: Principal, labels: Vec<(String, String)>| {
        let mut claims = crate::sts::SessionClaims::fresh("123456789012", Utc::now(), 900);
        claims.session = "job-1".into();
        claims.job = Some("job-1".into());
        Principal::Session {
            claims: std::sync::Arc::new(claims),
            arn: "arn:aws:sts::123456789012:federated-user/job-1".into(),
            role_arn: String::new(),
            role_policies: std::sync::Arc::new(vec![everything(
                keyhole_policy::PolicyKind::Identity,
            )]),
            session_policies: Some(std::sync::Arc::from([everything(
                keyhole_policy::PolicyKind::Session,
            )])),
            boundary: None,
            tags: std::sync::Arc::new(labels),
            creator: Some(std::sync::Arc::new(creator)),
        }
    };
    let ctx = keyhole_policy::Context::new();
    let get = perm("s3:GetObject", "arn:aws:s3:::b/teamb/x");
    // Allowed to the creator: allowed to the job.
    let open = creator(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
        vec![],
    );
    assert!(a.authorize(&job(open, vec![]), &get, &ctx).is_ok());
    // A deny on the creator's user name binds its job.
    let denied = creator(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},
            {"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::b/teamb/*","Condition":{"StringEquals":{"aws:username":"alice"}}}]}"#,
        vec![],
    );
    let e = a.authorize(&job(denied, vec![]), &get, &ctx).unwrap_err();
    assert!(
        e.message().contains("job's creator may not"),
        "{}",
        e.message()
    );
    // The job's code is told the kind of refusal, not who the creator is.
    assert!(
        !e.message().contains(":user/") && e.message().contains("explicit deny"),
        "{}",
        e.message()
    );
    assert_eq!(
        super::denial_reason(
            r#"User: arn:aws:iam::1:user/a is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::b/k" with an explicit deny in an identity-based policy"#
        ),
        Some("with an explicit deny in an identity-based policy")
    );
    // ABAC on the creator's tag: a label cannot choose the creator's tag value.
    let abac = creator(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:PrincipalTag/team}/*"}]}"#,
        vec![("team".into(), "teama".into())],
    );
    let labels = vec![("team".to_owned(), "teamb".to_owned())];
    assert!(a.authorize(&job(abac, labels), &get, &ctx).is_err());
}

/// A denial records what it was decided with (for `keyhole audit explain`); an allowed pair and
/// a rule of the API record nothing more.
#[test]
fn only_policy_denials_record_their_evaluation() {
    let a = authorizer();
    let mut ctx = keyhole_policy::Context::new();
    ctx.insert("aws:SourceIp", "127.0.0.5");
    ctx.insert("sts:ExternalId", "shared-secret");
    let u = user(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllowFromVpc","Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
    );
    let denied = a.decide(&u, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx);
    assert!(denied.outcome.is_err());
    let e = denied.evaluation.expect("a denial records its evaluation");
    assert_eq!(e.principal.kind, "user");
    assert_eq!(e.principal.arn, "arn:aws:iam::123456789012:user/u");
    assert_eq!(e.principal.unique_id.as_deref(), Some("AIDAX"));
    assert_eq!(e.policies.len(), 1);
    assert_eq!(e.policies[0].kind, "identity");
    assert_eq!(
        e.context.get("aws:SourceIp"),
        Some(&crate::audit::event::ContextValue::One("127.0.0.5".into()))
    );
    assert!(e
        .context
        .keys()
        .all(|k| !k.eq_ignore_ascii_case("sts:ExternalId")));
    assert_eq!(e.redacted, ["sts:ExternalId"]);
    let record = check_record(
        &u,
        &perm("s3:GetObject", "arn:aws:s3:::b/k"),
        &Verdict {
            evaluation: Some(e),
            ..Verdict::of(Err(S3Error::access_denied("no")))
        },
    );
    assert!(record.evaluation.is_some());

    ctx.insert("aws:SourceIp", "10.1.2.3");
    let allowed = a.decide(&u, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx);
    assert!(allowed.outcome.is_ok() && allowed.evaluation.is_none());

    let root = Principal::Root {
        access_key_id: "AKIA".into(),
    };
    let rule = a.decide(
        &root,
        &perm("sts:AssumeRole", "arn:aws:iam::123456789012:role/r"),
        &ctx,
    );
    assert!(rule.outcome.is_err() && rule.evaluation.is_none());
}
