"""The escalations of issues 10, 18 and 19, each reproduced as a user would try it (aws-cli and
boto3) and refused as AWS refuses it. Each test is named after the hole it closes.

AWS pages the rules come from:
- "Policy evaluation logic": IAM role trust policies "must explicitly allow access for principals"
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
- AssumeRole: "To allow a user to assume a role in the same account, you can do either of the
  following: attach a policy to the user that allows the user to call AssumeRole (as long as the
  role's trust policy trusts the account); or add the user as a principal directly in the role's
  trust policy" https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
- "Update a role trust policy": a user's permissions boundary must allow sts:AssumeRole; to
  re-assume the current role the trust policy must name the role or the account
  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_update-role-trust-policy.html
- "Passing session tags in AWS STS": the trust policy must allow sts:TagSession
  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html
- Principals by unique id: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
- Permissions boundaries and iam:PermissionsBoundary:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, AwsCli, make_client, read_trail, remember_secrets, signed_request, wait_for_events
from test_iam import iam_client, new_user
from test_jobs import keyhole

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ASSUME_ANY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}


def trust(principal, actions="sts:AssumeRole", condition=None) -> dict:
    st = {"Effect": "Allow", "Principal": principal, "Action": actions}
    if condition:
        st["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [st]}


def client(server, service, creds):
    return boto3.session.Session().client(
        service, endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
        aws_session_token=creds[2] if len(creds) > 2 else None,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def session_creds(c: dict) -> tuple[str, str, str]:
    remember_secrets(c["SecretAccessKey"], c["SessionToken"])
    return c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]


def code_of(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def creds_file(tmp_path: Path, ak: str, sk: str, name: str = "creds") -> Path:
    p = tmp_path / name
    p.write_text(f"[default]\naws_access_key_id = {ak}\naws_secret_access_key = {sk}\n")
    return p


def flat(text: str) -> str:
    """CLI error text with its line wrapping (miette's `│` frames) undone."""
    return re.sub(r"\s+", " ", text.replace("│", " "))


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def arn(server, kind: str, name: str) -> str:
    return f"arn:aws:iam::{server.account_id}:{kind}/{name}"


# ---------------------------------------------------------------- issue 10: trust policies


def test_trust_policy_is_required_even_when_identity_allows(server, tmp_path):
    """The repro: `weak` may call sts:AssumeRole on `*`, the role trusts only EC2. aws-cli's
    `sts assume-role` is refused, and the decision names the trust policy."""
    iam = iam_client(server)
    role = uid("admin")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"Service": "ec2.amazonaws.com"})))
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    weak, ak, sk = new_user(iam, ASSUME_ANY)
    aws = AwsCli(server.endpoint, creds_file(tmp_path, ak, sk))
    r = aws("sts", "assume-role", "--role-arn", arn(server, "role", role), "--role-session-name", "esc")
    assert r.returncode != 0
    assert "AccessDenied" in r.stderr and "sts:AssumeRole" in r.stderr, r.stderr
    assert "no resource-based policy allows" in flat(r.stderr), r.stderr
    # The audit trail shows the refusal against the role, not an allow from the user's policy.
    events = wait_for_events(server.data_dir, lambda ev: any(
        e["eventName"] == "AssumeRole" and e["requestParameters"].get("roleSessionName") == "esc" for e in ev))
    ev = [e for e in events if e["eventName"] == "AssumeRole" and e["requestParameters"].get("roleSessionName") == "esc"][-1]
    assert ev["decision"] == "Deny" and ev["httpStatus"] == 403
    assert ev["authorization"][0]["decision"] == "Deny"


def test_trust_condition_on_session_name_is_enforced(server):
    iam = iam_client(server)
    role = uid("svc")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(
        trust({"AWS": f"arn:aws:iam::{server.account_id}:root"},
              condition={"StringEquals": {"sts:RoleSessionName": "svc"}})))
    _, ak, sk = new_user(iam, ASSUME_ANY)
    sts = client(server, "sts", (ak, sk))
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="esc")
    assert code_of(e.value) == "AccessDenied"
    sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="svc")


def test_trust_naming_the_user_admits_it_without_an_identity_policy(server):
    iam = iam_client(server)
    user, ak, sk = new_user(iam)  # no policy at all
    role = uid("direct")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": arn(server, "user", user)})))
    got = client(server, "sts", (ak, sk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="s1")
    assert got["AssumedRoleUser"]["Arn"].endswith(f":assumed-role/{role}/s1")
    remember_secrets(got["Credentials"]["SecretAccessKey"], got["Credentials"]["SessionToken"])


def test_trust_naming_the_account_needs_an_identity_allow(server):
    iam = iam_client(server)
    role = uid("acct")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(
        trust({"AWS": f"arn:aws:iam::{server.account_id}:root"})))
    _, ak, sk = new_user(iam)
    with pytest.raises(ClientError) as e:
        client(server, "sts", (ak, sk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="s1")
    assert code_of(e.value) == "AccessDenied"
    assert "no identity-based policy allows the sts:AssumeRole action" in e.value.response["Error"]["Message"]
    _, ak, sk = new_user(iam, ASSUME_ANY)
    client(server, "sts", (ak, sk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="s1")


def test_explicit_deny_in_identity_boundary_or_trust_blocks_assume_role(server):
    iam = iam_client(server)
    role = uid("guarded")
    # Denied by the user's own policy though the trust policy names it.
    u1, ak1, sk1 = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"}]})
    # A boundary that does not allow sts:AssumeRole.
    boundary = iam.create_policy(PolicyName=uid("s3only"), PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))["Policy"]["Arn"]
    u2, ak2, sk2 = new_user(iam, ASSUME_ANY)
    iam.put_user_permissions_boundary(UserName=u2, PermissionsBoundary=boundary)
    # Named by the trust policy and by its explicit deny.
    u3, ak3, sk3 = new_user(iam, ASSUME_ANY)
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": [arn(server, "user", u) for u in (u1, u2, u3)]}, "Action": "sts:AssumeRole"},
        {"Effect": "Deny", "Principal": {"AWS": arn(server, "user", u3)}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(doc))
    for ak, sk, why in [(ak1, sk1, "explicit deny in an identity-based policy"),
                        (ak2, sk2, "no permissions boundary allows"),
                        (ak3, sk3, "explicit deny in a resource-based policy")]:
        with pytest.raises(ClientError) as e:
            client(server, "sts", (ak, sk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="s1")
        assert code_of(e.value) == "AccessDenied" and why in e.value.response["Error"]["Message"], e.value.response


def test_a_role_session_cannot_reassume_its_own_role_unless_trusted(server):
    iam = iam_client(server)
    user, ak, sk = new_user(iam)
    role = uid("self")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": arn(server, "user", user)})))
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    first = client(server, "sts", (ak, sk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="s1")
    as_role = client(server, "sts", session_creds(first["Credentials"]))
    with pytest.raises(ClientError) as e:
        as_role.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="again")
    assert code_of(e.value) == "AccessDenied"
    # Naming the role in its own trust policy allows it (role chaining, one hour at most).
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": [arn(server, "user", user), arn(server, "role", role)]}, "Action": "sts:AssumeRole"}]}
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(doc))
    again = as_role.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="again")
    remember_secrets(again["Credentials"]["SecretAccessKey"], again["Credentials"]["SessionToken"])


def test_root_and_job_sessions_cannot_assume_roles(server, data_bucket, tmp_path):
    iam = iam_client(server)
    role = uid("any")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust("*")))
    with pytest.raises(ClientError) as e:
        client(server, "sts", (server.access_key, server.secret_key)).assume_role(
            RoleArn=arn(server, "role", role), RoleSessionName="root")
    assert code_of(e.value) == "AccessDenied" and "root user cannot assume roles" in str(e.value)
    r = keyhole(server, "job", "start", "--output", "json", "--name", "nochain", "--read",
                f"s3://{data_bucket}/in/", "--for", "5m")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    remember_secrets(created["CredentialsToken"], created["Credentials"]["SecretAccessKey"],
                     created["Credentials"]["SessionToken"])
    job_sts = client(server, "sts", session_creds(created["Credentials"]))
    with pytest.raises(ClientError) as e:
        job_sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="chain")
    assert code_of(e.value) == "AccessDenied" and "job sessions cannot assume roles" in str(e.value)
    assert job_sts.get_caller_identity()["Arn"].endswith(f":federated-user/{created['Job']['JobId']}")
    # Nor create jobs: a rule of the API, recorded as a denial the job's report lists (a jobs
    # sweep, M2: it was counted as a request but not as denied).
    c = created["Credentials"]
    job_creds = tmp_path / "job-creds"
    job_creds.write_text(f"[default]\naws_access_key_id = {c['AccessKeyId']}\n"
                         f"aws_secret_access_key = {c['SecretAccessKey']}\naws_session_token = {c['SessionToken']}\n")
    r = keyhole(server, "job", "start", "--name", "nested", "--read", f"s3://{data_bucket}/in/", "--for", "5m",
                creds_file=job_creds)
    assert r.returncode != 0 and "can create jobs" in r.stderr, r.stderr
    report = keyhole(server, "job", "report", created["Job"]["JobId"], "--json")
    assert report.returncode == 0, report.stderr
    out = json.loads(report.stdout)
    denied = out.get("Report", out)["denied"]
    assert any(a["operation"] == "CreateJob" for a in denied["attempts"]), denied
    keyhole(server, "job", "finish", created["Job"]["JobId"])


@pytest.fixture
def data_bucket(s3):
    name = uid("esc-data")
    s3.create_bucket(Bucket=name)
    for key in ("in/a.txt", "secret/x", "tagged/ml/x", "tagged/secret/x"):
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    yield name


def test_a_job_cannot_pass_a_role_whose_trust_does_not_admit_the_creator(server, data_bucket, tmp_path):
    """The repro: a scheduler denied sts:AssumeRole on R got `assumed-role/R/JOB` credentials
    through a job and read objects a bucket policy reserves for R."""
    iam = iam_client(server)
    role = uid("reserved")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(
        trust({"AWS": f"arn:aws:iam::{server.account_id}:root"})))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    make_client(server.endpoint, server.access_key, server.secret_key).put_bucket_policy(
        Bucket=data_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{data_bucket}/secret/*"}]}))
    sched, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "keyhole:CreateJob", "Resource": "*"},
        {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"}]})
    r = keyhole(server, "job", "start", "--name", "pass", "--read", f"s3://{data_bucket}/secret/", "--for", "5m",
                "--role", role, creds_file=creds_file(tmp_path, ak, sk))
    assert r.returncode != 0
    assert "AccessDenied" in r.stderr and "sts:AssumeRole" in r.stderr, r.stderr
    # Neither denied nor allowed by its policy: the trust policy names only the account, so the
    # creator's identity policies must allow sts:AssumeRole too.
    _, ak2, sk2 = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "keyhole:CreateJob", "Resource": "*"}]})
    r = keyhole(server, "job", "start", "--name", "pass2", "--read", f"s3://{data_bucket}/secret/", "--for", "5m",
                "--role", role, creds_file=creds_file(tmp_path, ak2, sk2, "c2"))
    assert r.returncode != 0 and "no identity-based policy allows the sts:AssumeRole action" in flat(r.stderr), r.stderr
    # The denied CreateJob is on record with the locations it asked for.
    events = wait_for_events(server.data_dir, lambda ev: any(
        e["eventName"] == "CreateJob" and e["requestParameters"].get("name") == "pass2" for e in ev))
    ev = [e for e in events if e["eventName"] == "CreateJob" and e["requestParameters"].get("name") == "pass2"][-1]
    assert ev["decision"] == "Deny"
    assert ev["requestParameters"]["read"] == [f"s3://{data_bucket}/secret/"] and ev["requestParameters"]["role"] == role


def test_job_labels_on_a_role_need_sts_tag_session(server, data_bucket, tmp_path):
    """Issue 18's repro: the role trusts `sched` for sts:AssumeRole only; its policy reads
    tagged/${aws:PrincipalTag/team}/*. A job with --label team=secret must be refused, naming
    sts:TagSession, as `aws sts assume-role --tags` is."""
    iam = iam_client(server)
    sched, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "sts:TagSession"], "Resource": "*"}]})
    role = uid("teamrole")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": arn(server, "user", sched)})))
    iam.put_role_policy(RoleName=role, PolicyName="team", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                  "Resource": f"arn:aws:s3:::{data_bucket}/tagged/${{aws:PrincipalTag/team}}/*"}]}))
    creds = creds_file(tmp_path, ak, sk)
    aws = AwsCli(server.endpoint, creds)
    r = aws("sts", "assume-role", "--role-arn", arn(server, "role", role), "--role-session-name", "tt",
            "--tags", "Key=team,Value=secret")
    assert r.returncode != 0 and "sts:TagSession" in r.stderr, r.stderr
    r = keyhole(server, "run", "--name", "tagjob", "--role", role, "--label", "team=secret",
                "--read", f"s3://{data_bucket}/tagged/secret/", "--for", "5m", "--",
                shutil.which("true") or "true", creds_file=creds)
    assert r.returncode != 0
    assert "AccessDenied" in r.stderr and "sts:TagSession" in r.stderr, r.stderr
    # Without labels the same scheduler may pass the role (sts:AssumeRole is trusted).
    r = keyhole(server, "job", "start", "--output", "json", "--name", "nolabels", "--role", role,
                "--read", f"s3://{data_bucket}/tagged/", "--for", "5m", creds_file=creds)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    remember_secrets(created["CredentialsToken"], created["Credentials"]["SecretAccessKey"],
                     created["Credentials"]["SessionToken"])
    keyhole(server, "job", "finish", created["Job"]["JobId"], creds_file=creds)


def test_a_trust_policy_restricts_which_label_values_a_scheduler_may_set(server, data_bucket, tmp_path):
    iam = iam_client(server)
    sched, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "keyhole:CreateJob", "Resource": "*"}]})
    role = uid("mlrole")
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": arn(server, "user", sched)}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": arn(server, "user", sched)}, "Action": "sts:TagSession",
         "Condition": {"StringEquals": {"aws:RequestTag/team": "ml"}}}]}
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(doc))
    iam.put_role_policy(RoleName=role, PolicyName="team", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                  "Resource": f"arn:aws:s3:::{data_bucket}/tagged/${{aws:PrincipalTag/team}}/*"}]}))
    creds = creds_file(tmp_path, ak, sk)
    r = keyhole(server, "job", "start", "--output", "json", "--name", "ml", "--role", role, "--label", "team=ml",
                "--read", f"s3://{data_bucket}/tagged/", "--for", "5m", creds_file=creds)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    remember_secrets(created["CredentialsToken"], created["Credentials"]["SecretAccessKey"],
                     created["Credentials"]["SessionToken"])
    job_s3 = client(server, "s3", session_creds(created["Credentials"]))
    assert job_s3.get_object(Bucket=data_bucket, Key="tagged/ml/x")["Body"].read() == b"tagged/ml/x"
    with pytest.raises(ClientError):
        job_s3.get_object(Bucket=data_bucket, Key="tagged/secret/x")
    keyhole(server, "job", "finish", created["Job"]["JobId"], creds_file=creds)
    r = keyhole(server, "job", "start", "--name", "secret", "--role", role, "--label", "team=secret",
                "--read", f"s3://{data_bucket}/tagged/", "--for", "5m", creds_file=creds)
    assert r.returncode != 0 and "sts:TagSession" in r.stderr, r.stderr


def test_encoded_slash_in_a_bucket_name_is_invalid_not_authorized(server):
    """`/bkt%2Fallowed/x` was authorized as arn:aws:s3:::bkt/allowed/x before the store said
    NoSuchBucket; a grant on bkt/allowed/* passed bucket-level calls on such names."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bkt/allowed/*"}]})
    for method, path, query in [("GET", "/bkt%2Fallowed/x", ""), ("GET", "/bkt%2Fallowed", "policy"),
                                ("DELETE", "/bkt%2Fallowed", ""), ("PUT", "/bkt%2Fallowed", "publicAccessBlock")]:
        r = signed_request(server, method, path, query=query, access_key=ak, secret_key=sk)
        assert r.status == 400 and b"InvalidBucketName" in r.body, (method, path, r.status, r.body)
    events = read_trail(server.data_dir)
    assert not any(e["requestParameters"].get("bucketName") == "bkt/allowed" and e.get("decision") == "Allow"
                   for e in events)


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr")
def test_iam_writes_fail_closed_and_change_nothing_when_the_trail_cannot_be_written(fresh_server_factory):
    from test_audit import _immutable_trail, target
    kp = fresh_server_factory()
    srv = target(kp)
    iam = boto3.session.Session().client(
        "iam", endpoint_url=kp.endpoint, region_name=REGION, aws_access_key_id=srv.access_key,
        aws_secret_access_key=srv.secret_key, config=botocore.config.Config(retries={"max_attempts": 1}))
    iam.create_user(UserName="existing")
    undo = _immutable_trail(kp.data_dir)
    try:
        for call in (lambda: iam.create_user(UserName="ghost"),
                     lambda: iam.put_user_policy(UserName="existing", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)),
                     lambda: iam.create_access_key(UserName="existing"),
                     lambda: iam.delete_user(UserName="existing")):
            with pytest.raises(ClientError) as e:
                call()
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.value.response
        # Nothing changed: reads are still served, and show the state as it was.
        names = [u["UserName"] for u in iam.list_users()["Users"]]
        assert names == ["existing"]
        assert iam.list_user_policies(UserName="existing")["PolicyNames"] == []
        assert iam.list_access_keys(UserName="existing")["AccessKeyMetadata"] == []
        with pytest.raises(ClientError) as e:
            client(kp, "sts", (srv.access_key, srv.secret_key)).get_session_token()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (403, 503)
    finally:
        undo()
    iam.create_user(UserName="after")
    assert any(e["eventName"] == "CreateUser" and e["stage"] == "authorized"
               and e["requestParameters"].get("userName") == "after" for e in read_trail(kp.data_dir))


def test_credentials_issued_by_assume_role_are_traceable_in_the_trail(server):
    iam = iam_client(server)
    user, ak, sk = new_user(iam)
    role = uid("traced")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": arn(server, "user", user)})))
    got = client(server, "sts", (ak, sk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="trace-me",
                                                      DurationSeconds=900)
    creds = got["Credentials"]
    remember_secrets(creds["SecretAccessKey"], creds["SessionToken"])
    events = wait_for_events(server.data_dir, lambda ev: any(
        (e.get("responseElements") or {}).get("credentials", {}).get("accessKeyId") == creds["AccessKeyId"] for e in ev))
    issued = [e for e in events if e["eventName"] == "AssumeRole" and e["stage"] == "completed"
              and e["requestParameters"].get("roleSessionName") == "trace-me"]
    assert len(issued) == 1
    e = issued[0]
    assert e["requestParameters"]["roleArn"] == arn(server, "role", role)
    assert e["requestParameters"]["durationSeconds"] == 900
    assert e["responseElements"]["credentials"]["accessKeyId"] == creds["AccessKeyId"]
    assert e["responseElements"]["assumedRoleUser"]["arn"] == got["AssumedRoleUser"]["Arn"]
    assert e["userIdentity"]["arn"] == arn(server, "user", user)
    text = json.dumps(e)
    assert creds["SecretAccessKey"] not in text and creds["SessionToken"] not in text
    # The write-ahead record was made before the credentials were issued.
    assert any(x["eventName"] == "AssumeRole" and x["stage"] == "authorized"
               and x["requestID"] == e["requestID"] for x in events)


# ---------------------------------------------------------------- issue 19: identities


def test_permissions_boundary_on_create_user_binds_and_is_shown(server, tmp_path):
    """`aws iam create-user --permissions-boundary` was ignored: a `*` identity policy then made
    an unbounded user who could create users."""
    iam = iam_client(server)
    readonly = iam.create_policy(PolicyName=uid("readonly"), PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}]}))["Policy"]["Arn"]
    aws = AwsCli(server.endpoint, server.creds_path)
    name = uid("bounded")
    out = json.loads(aws.ok("iam", "create-user", "--user-name", name, "--permissions-boundary", readonly).stdout)
    assert out["User"]["PermissionsBoundary"] == {"PermissionsBoundaryType": "PermissionsBoundaryPolicy",
                                                  "PermissionsBoundaryArn": readonly}
    iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    got = json.loads(aws.ok("iam", "get-user", "--user-name", name).stdout)["User"]
    assert got["PermissionsBoundary"]["PermissionsBoundaryArn"] == readonly
    bounded = AwsCli(server.endpoint, creds_file(tmp_path, key["AccessKeyId"], key["SecretAccessKey"]))
    r = bounded("iam", "create-user", "--user-name", uid("escalated"))
    assert r.returncode != 0 and "AccessDenied" in r.stderr and "permissions boundary" in flat(r.stderr), r.stderr
    bounded.ok("s3", "ls")
    # A role created with a boundary: its sessions are bounded too.
    role = uid("bounded-role")
    user, uak, usk = new_user(iam)
    aws.ok("iam", "create-role", "--role-name", role, "--permissions-boundary", readonly,
           "--assume-role-policy-document", json.dumps(trust({"AWS": arn(server, "user", user)})))
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    assert iam.get_role(RoleName=role)["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == readonly
    assert any(r["RoleName"] == role and r.get("PermissionsBoundary")
               for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"])
    sess = client(server, "sts", (uak, usk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="bb")
    role_iam = client(server, "iam", session_creds(sess["Credentials"]))
    with pytest.raises(ClientError) as e:
        role_iam.create_user(UserName=uid("from-role"))
    assert code_of(e.value) == "AccessDenied"


def test_delegated_admin_may_create_users_only_with_its_boundary(server):
    """AWS's delegated-administrator pattern: iam:PermissionsBoundary in the condition."""
    iam = iam_client(server)
    boundary = iam.create_policy(PolicyName=uid("dev-boundary"), PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))["Policy"]["Arn"]
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:CreateUser", "iam:PutUserPolicy"], "Resource": "*",
         "Condition": {"StringEquals": {"iam:PermissionsBoundary": boundary}}}]})
    admin = client(server, "iam", (ak, sk))
    with pytest.raises(ClientError) as e:
        admin.create_user(UserName=uid("unbounded"))
    assert code_of(e.value) == "AccessDenied"
    name = uid("dev")
    admin.create_user(UserName=name, PermissionsBoundary=boundary)
    admin.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    # On a user without that boundary, PutUserPolicy is refused.
    other, _, _ = new_user(iam)
    with pytest.raises(ClientError) as e:
        admin.put_user_policy(UserName=other, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    assert code_of(e.value) == "AccessDenied"


def test_session_tags_need_sts_tag_session_in_the_trust_policy(server, data_bucket):
    """A caller admitted for sts:AssumeRole only, holding sts:TagSession in its own policy, passed
    --tags team=secret and overrode the role's own tag."""
    iam = iam_client(server)
    user, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"}]})
    role = uid("tagged")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": arn(server, "user", user)})),
                    Tags=[{"Key": "team", "Value": "ml"}])
    iam.put_role_policy(RoleName=role, PolicyName="team", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                  "Resource": f"arn:aws:s3:::{data_bucket}/tagged/${{aws:PrincipalTag/team}}/*"}]}))
    sts = client(server, "sts", (ak, sk))
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="tt", Tags=[{"Key": "team", "Value": "secret"}])
    assert code_of(e.value) == "AccessDenied" and "sts:TagSession" in str(e.value)
    plain = sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="tt")
    s3 = client(server, "s3", session_creds(plain["Credentials"]))
    assert s3.get_object(Bucket=data_bucket, Key="tagged/ml/x")["Body"].read() == b"tagged/ml/x"
    with pytest.raises(ClientError):
        s3.get_object(Bucket=data_bucket, Key="tagged/secret/x")


def test_a_recreated_user_does_not_inherit_its_namesakes_bucket_grant(server, data_bucket, tmp_path):
    iam = iam_client(server)
    carol = uid("carol")
    iam.create_user(UserName=carol)
    carol_arn = arn(server, "user", carol)
    old_id = iam.get_user(UserName=carol)["User"]["UserId"]
    s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    s3.put_bucket_policy(Bucket=data_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": carol_arn}, "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{data_bucket}/secret/*"}]}))
    key = iam.create_access_key(UserName=carol)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    assert client(server, "s3", (key["AccessKeyId"], key["SecretAccessKey"])).get_object(
        Bucket=data_bucket, Key="secret/x")["Body"].read() == b"secret/x"
    iam.delete_access_key(UserName=carol, AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName=carol)
    # The policy now shows the old id, as AWS shows a deleted principal.
    shown = json.loads(s3.get_bucket_policy(Bucket=data_bucket)["Policy"])
    assert shown["Statement"][0]["Principal"]["AWS"] == old_id
    iam.create_user(UserName=carol)
    new_id = iam.get_user(UserName=carol)["User"]["UserId"]
    assert new_id != old_id and new_id.startswith("AIDA")
    key = iam.create_access_key(UserName=carol)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        client(server, "s3", (key["AccessKeyId"], key["SecretAccessKey"])).get_object(Bucket=data_bucket, Key="secret/x")
    assert code_of(e.value) == "AccessDenied"
    assert json.loads(s3.get_bucket_policy(Bucket=data_bucket)["Policy"])["Statement"][0]["Principal"]["AWS"] == old_id
    # A principal that does not exist is refused when the policy is stored, as in AWS.
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=data_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": arn(server, "user", uid("nobody"))}, "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{data_bucket}/*"}]}))
    assert code_of(e.value) == "MalformedPolicy" and "Invalid principal" in str(e.value)
    s3.delete_bucket_policy(Bucket=data_bucket)


def test_a_recreated_user_is_not_trusted_by_its_namesakes_trust_policy(server):
    iam = iam_client(server)
    dave = uid("dave")
    iam.create_user(UserName=dave)
    role = uid("daves-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": arn(server, "user", dave)})))
    old_id = iam.get_user(UserName=dave)["User"]["UserId"]
    iam.delete_user(UserName=dave)
    shown = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert shown["Statement"][0]["Principal"]["AWS"] == old_id
    iam.create_user(UserName=dave)
    key = iam.create_access_key(UserName=dave)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        client(server, "sts", (key["AccessKeyId"], key["SecretAccessKey"])).assume_role(
            RoleArn=arn(server, "role", role), RoleSessionName="namesake")
    assert code_of(e.value) == "AccessDenied"


def test_a_recreated_role_does_not_inherit_its_namesakes_bucket_grant(server, data_bucket):
    iam = iam_client(server)
    user, ak, sk = new_user(iam)
    role = uid("r")
    doc = json.dumps(trust({"AWS": arn(server, "user", user)}))
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=doc)
    s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    s3.put_bucket_policy(Bucket=data_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": arn(server, "role", role)}, "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{data_bucket}/secret/*"}]}))
    iam.delete_role(RoleName=role)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=doc)
    sess = client(server, "sts", (ak, sk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="ss")
    with pytest.raises(ClientError) as e:
        client(server, "s3", session_creds(sess["Credentials"])).get_object(Bucket=data_bucket, Key="secret/x")
    assert code_of(e.value) == "AccessDenied"
    s3.delete_bucket_policy(Bucket=data_bucket)


def test_job_ownership_is_by_unique_id_not_by_name(server, data_bucket, tmp_path):
    """The job's creator may get, finish and report on it; a recreated user of the same name may
    not (nor anyone assuming the creator's role under the same session name)."""
    iam = iam_client(server)
    name = uid("owner")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="create", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "keyhole:CreateJob", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    creds = creds_file(tmp_path, key["AccessKeyId"], key["SecretAccessKey"])
    r = keyhole(server, "job", "start", "--output", "json", "--name", "owned", "--read", f"s3://{data_bucket}/in/",
                "--for", "5m", creds_file=creds)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    remember_secrets(created["CredentialsToken"], created["Credentials"]["SecretAccessKey"],
                     created["Credentials"]["SessionToken"])
    job_id = created["Job"]["JobId"]
    assert keyhole(server, "job", "show", job_id, creds_file=creds).returncode == 0
    iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName=name, PolicyName="create")
    iam.delete_user(UserName=name)
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    namesake = creds_file(tmp_path, key["AccessKeyId"], key["SecretAccessKey"], "namesake")
    for args in (("job", "show", job_id), ("job", "report", job_id), ("job", "finish", job_id)):
        r = keyhole(server, *args, creds_file=namesake)
        assert r.returncode != 0 and "AccessDenied" in r.stderr, (args, r.stderr)
    assert keyhole(server, "job", "finish", job_id).returncode == 0


def test_update_user_renames_a_user_who_keeps_its_id_keys_groups_grants_and_jobs(server, data_bucket, tmp_path):
    """UpdateUser (https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateUser.html,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_users_rename.html): the user keeps its
    unique id, access keys, policies, groups and tags; bucket and trust policies that name it as a
    principal are rewritten to its new ARN; its GetSessionToken credentials and its jobs stay
    its own; the requester must be allowed on both names; a name taken in any case is refused."""
    iam = iam_client(server)
    s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    old, new = uid("erin"), uid("erin-new")
    iam.create_user(UserName=old, Tags=[{"Key": "team", "Value": "ml"}])
    user_id = iam.get_user(UserName=old)["User"]["UserId"]
    iam.put_user_policy(UserName=old, PolicyName="jobs", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "sts:GetSessionToken"], "Resource": "*"}]}))
    group = uid("g")
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="list", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{data_bucket}"}]}))
    iam.add_user_to_group(GroupName=group, UserName=old)
    key = iam.create_access_key(UserName=old)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    creds = (key["AccessKeyId"], key["SecretAccessKey"])
    old_arn = arn(server, "user", old)
    s3.put_bucket_policy(Bucket=data_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": [old_arn]}, "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{data_bucket}/secret/*"}]}))
    role = uid("erins-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": old_arn})))
    session = session_creds(client(server, "sts", creds).get_session_token()["Credentials"])
    r = keyhole(server, "job", "start", "--output", "json", "--name", "renamed", "--read", f"s3://{data_bucket}/in/",
                "--for", "5m", creds_file=creds_file(tmp_path, *creds))
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    remember_secrets(created["CredentialsToken"], created["Credentials"]["SecretAccessKey"],
                     created["Credentials"]["SessionToken"])
    job_id = created["Job"]["JobId"]

    # Allowed on the old name only: refused, and nothing changes.
    renamer, rak, rsk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:UpdateUser", "Resource": old_arn}]})
    with pytest.raises(ClientError) as e:
        iam_client(server, rak, rsk).update_user(UserName=old, NewUserName=new, NewPath="/moved/")
    assert code_of(e.value) == "AccessDenied"
    assert iam.get_user(UserName=old)["User"]["UserId"] == user_id
    # A name taken in another case, and a missing user.
    with pytest.raises(ClientError) as e:
        iam.update_user(UserName=old, NewUserName=renamer.upper())
    assert code_of(e.value) == "EntityAlreadyExists"
    with pytest.raises(ClientError) as e:
        iam.update_user(UserName=uid("nobody"), NewUserName=uid("x"))
    assert code_of(e.value) == "NoSuchEntity"
    for bad in ({"NewPath": "no-slash/"}, {"NewUserName": "a b"}, {"NewUserName": "x" * 65}):
        with pytest.raises(ClientError) as e:
            iam.update_user(UserName=old, **bad)
        assert code_of(e.value) == "ValidationError", bad

    # Allowed on both names: renamed and moved, through aws-cli.
    new_arn = f"arn:aws:iam::{server.account_id}:user/moved/{new}"
    iam.put_user_policy(UserName=renamer, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:UpdateUser", "Resource": [old_arn, new_arn]}]}))
    aws = AwsCli(server.endpoint, creds_file(tmp_path, rak, rsk, "renamer"))
    aws.ok("iam", "update-user", "--user-name", old, "--new-user-name", new, "--new-path", "/moved/")
    got = iam.get_user(UserName=new)["User"]
    assert (got["UserId"], got["Arn"], got["Path"]) == (user_id, new_arn, "/moved/")
    assert got["Tags"] == [{"Key": "team", "Value": "ml"}]
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName=old)
    assert code_of(e.value) == "NoSuchEntity"
    assert iam.list_user_policies(UserName=new)["PolicyNames"] == ["jobs"]
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=new)["AccessKeyMetadata"]] == [key["AccessKeyId"]]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=new)["Groups"]] == [group]
    assert [u["UserName"] for u in iam.get_group(GroupName=group)["Users"]] == [new]

    # The same key is the same user under its new name, with its group's and the bucket's grants.
    me = client(server, "sts", creds).get_caller_identity()
    assert (me["Arn"], me["UserId"]) == (new_arn, user_id)
    s3_as_user = client(server, "s3", creds)
    s3_as_user.list_objects_v2(Bucket=data_bucket)
    assert s3_as_user.get_object(Bucket=data_bucket, Key="secret/x")["Body"].read() == b"secret/x"
    # The policies that named it as a principal name it by its new ARN, as AWS rewrites them.
    policy = json.loads(s3.get_bucket_policy(Bucket=data_bucket)["Policy"])
    assert policy["Statement"][0]["Principal"]["AWS"] == [new_arn], policy
    shown = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert shown["Statement"][0]["Principal"]["AWS"] == new_arn, shown
    client(server, "sts", creds).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="after-rename")
    # Its GetSessionToken credentials act as it under the new name.
    assert client(server, "sts", session).get_caller_identity()["Arn"] == new_arn
    assert client(server, "s3", session).get_object(Bucket=data_bucket, Key="secret/x")["Body"].read() == b"secret/x"
    # A user created under the old name is somebody else: none of that follows it.
    iam.create_user(UserName=old)
    other = iam.create_access_key(UserName=old)["AccessKey"]
    remember_secrets(other["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        client(server, "s3", (other["AccessKeyId"], other["SecretAccessKey"])).get_object(Bucket=data_bucket, Key="secret/x")
    assert code_of(e.value) == "AccessDenied"
    # Its job is still its own.
    mine = creds_file(tmp_path, *creds, "mine")
    r = keyhole(server, "job", "show", job_id, "--json", creds_file=mine)
    assert r.returncode == 0, r.stderr
    # It names its creator by the unique id too, which a later namesake does not share (review 32).
    shown_job = json.loads(r.stdout)["Job"]
    assert (shown_job["CreatedBy"], shown_job["CreatorId"]) == (old_arn, user_id), shown_job
    r = keyhole(server, "job", "finish", job_id, creds_file=creds_file(tmp_path, other["AccessKeyId"], other["SecretAccessKey"], "o"))
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    assert keyhole(server, "job", "finish", job_id, creds_file=mine).returncode == 0
    s3.delete_bucket_policy(Bucket=data_bucket)
    # The trail names the user as it was called at each request, as CloudTrail's `userName`.
    events = wait_for_events(server.data_dir, lambda ev: any(
        e["userIdentity"].get("userName") == new for e in ev))
    names = {e["userIdentity"].get("userName") for e in events
             if e["userIdentity"].get("principalId") == user_id and e["userIdentity"]["type"] == "IAMUser"}
    assert {old, new} <= names, names
    # IAM records list the IAM resources checked, as S3 records list buckets and objects.
    renames = [e for e in events if e["eventName"] == "UpdateUser" and e["stage"] == "completed"
               and e.get("decision") == "Allow"]
    assert renames and {(r["type"], r["ARN"]) for r in renames[-1]["resources"]} == {
        ("AWS::IAM::User", old_arn), ("AWS::IAM::User", new_arn)}, renames[-1]


def test_update_user_refuses_a_name_a_policy_still_gives_a_deleted_user(server, data_bucket):
    """A bucket policy that names both a deleted user (shown by its unique id) and a user about
    to take the deleted one's name cannot say both after the rename:
    EntityTemporarilyUnmodifiable, and nothing changes."""
    iam = iam_client(server)
    s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    gone, keep = uid("gone"), uid("keep")
    iam.create_user(UserName=gone)
    gone_id = iam.get_user(UserName=gone)["User"]["UserId"]
    iam.create_user(UserName=keep)
    s3.put_bucket_policy(Bucket=data_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": [arn(server, "user", gone), arn(server, "user", keep)]},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{data_bucket}/secret/*"}]}))
    iam.delete_user(UserName=gone)
    with pytest.raises(ClientError) as e:
        iam.update_user(UserName=keep, NewUserName=gone)
    assert code_of(e.value) == "EntityTemporarilyUnmodifiable", e.value.response
    assert data_bucket in str(e.value)
    assert iam.get_user(UserName=keep)["User"]["UserName"] == keep
    shown = json.loads(s3.get_bucket_policy(Bucket=data_bucket)["Policy"])["Statement"][0]["Principal"]["AWS"]
    assert shown == [gone_id, arn(server, "user", keep)], shown
    s3.delete_bucket_policy(Bucket=data_bucket)
    iam.update_user(UserName=keep, NewUserName=gone)
    assert iam.get_user(UserName=gone)["User"]["UserName"] == gone


def test_role_sessions_own_jobs_only_with_their_source_identity(server, data_bucket, tmp_path):
    iam = iam_client(server)
    user, ak, sk = new_user(iam)
    role = uid("scheduler-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(
        trust({"AWS": arn(server, "user", user)}, ["sts:AssumeRole", "sts:SetSourceIdentity"])))
    iam.put_role_policy(RoleName=role, PolicyName="create", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "keyhole:CreateJob", "Resource": "*"}]}))
    sts = client(server, "sts", (ak, sk))

    def as_file(c: dict, fname: str) -> Path:
        ak_, sk_, tok = session_creds(c)
        p = tmp_path / fname
        p.write_text(f"[default]\naws_access_key_id = {ak_}\naws_secret_access_key = {sk_}\naws_session_token = {tok}\n")
        return p

    alice = as_file(sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="sched",
                                    SourceIdentity="alice")["Credentials"], "alice")
    r = keyhole(server, "job", "start", "--output", "json", "--name", "si", "--read", f"s3://{data_bucket}/in/",
                "--for", "5m", creds_file=alice)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    remember_secrets(created["CredentialsToken"], created["Credentials"]["SecretAccessKey"],
                     created["Credentials"]["SessionToken"])
    job_id = created["Job"]["JobId"]
    assert keyhole(server, "job", "show", job_id, creds_file=alice).returncode == 0
    # The same role and session name, another source identity (or none): not the creator.
    mallory = as_file(sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="sched",
                                      SourceIdentity="mallory")["Credentials"], "mallory")
    anon = as_file(sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="sched")["Credentials"], "anon")
    for f in (mallory, anon):
        r = keyhole(server, "job", "report", job_id, creds_file=f)
        assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    assert keyhole(server, "job", "finish", job_id, creds_file=alice).returncode == 0


def test_job_locations_with_dot_segments_are_refused(server, data_bucket):
    r = keyhole(server, "job", "start", "--name", "dots", "--read", f"s3://{data_bucket}/in/../secret/", "--for", "5m")
    assert r.returncode != 0 and "read[0]" in r.stderr and "segment" in r.stderr, r.stderr


def test_not_principal_deny_always_denies_a_principal_with_a_boundary(server, data_bucket):
    """"The NotPrincipal element with a Deny effect will always deny any IAM principal that has a
    permissions boundary policy attached"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html)."""
    iam = iam_client(server)
    read = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    name, ak, sk = new_user(iam, read)
    s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    s3.put_bucket_policy(Bucket=data_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "NotPrincipal": {"AWS": [server.account_id, arn(server, "user", name)]},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{data_bucket}/*"}]}))
    user_s3 = client(server, "s3", (ak, sk))
    assert user_s3.get_object(Bucket=data_bucket, Key="in/a.txt")["Body"].read() == b"in/a.txt"
    boundary = iam.create_policy(PolicyName=uid("read-boundary"), PolicyDocument=json.dumps(read))["Policy"]["Arn"]
    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=boundary)
    with pytest.raises(ClientError) as e:
        user_s3.get_object(Bucket=data_bucket, Key="in/a.txt")
    assert code_of(e.value) == "AccessDenied" and "explicit deny in a resource-based policy" in str(e.value)
    s3.delete_bucket_policy(Bucket=data_bucket)


def _assume_from(source: str, server, ak: str, sk: str, params: dict) -> tuple[int, bytes]:
    """AssumeRole signed for `sts` and sent from the loopback address `source`."""
    import hashlib
    import http.client
    import urllib.parse

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    form = urllib.parse.urlencode({"Action": "AssumeRole", "Version": "2011-06-15", **params}).encode()
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=form, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Amz-Content-SHA256": hashlib.sha256(form).hexdigest()})
    botocore.auth.SigV4Auth(Credentials(ak, sk), "sts", REGION).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", "/", body=form, headers=dict(req.headers))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_trust_conditions_on_source_address_external_id_and_principal_tags_are_enforced(server):
    """Issue 10, item 2: trust conditions unmet (aws:SourceIp, sts:ExternalId,
    aws:PrincipalTag/*) refuse AssumeRole even for a caller the trust policy names."""
    iam = iam_client(server)
    user, ak, sk = new_user(iam)
    iam.tag_user(UserName=user, Tags=[{"Key": "team", "Value": "ml"}])
    role = uid("conditional")
    doc = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": arn(server, "user", user)}, "Action": "sts:AssumeRole",
        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"},
                      "StringEquals": {"sts:ExternalId": "ext-42", "aws:PrincipalTag/team": "ml"}}}]}
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(doc))["Role"]["Arn"]
    ok = {"RoleArn": role_arn, "RoleSessionName": "cond", "ExternalId": "ext-42"}
    status, body = _assume_from("127.0.0.1", server, ak, sk, ok)
    assert status == 200, body
    remember_secrets(*[m.decode() for m in re.findall(rb"<(?:SecretAccessKey|SessionToken)>([^<]+)<", body)])
    for source, params in [("127.0.0.2", ok),  # another address
                           ("127.0.0.1", {**ok, "ExternalId": "guess"}),  # a wrong external id
                           ("127.0.0.1", {k: v for k, v in ok.items() if k != "ExternalId"})]:  # none
        status, body = _assume_from(source, server, ak, sk, params)
        assert status == 403 and b"AccessDenied" in body, (source, params, body)
    iam.tag_user(UserName=user, Tags=[{"Key": "team", "Value": "web"}])
    status, body = _assume_from("127.0.0.1", server, ak, sk, ok)
    assert status == 403 and b"AccessDenied" in body, body


# ---------------------------------------------------------------- review findings, round 1


def _start(server, creds: Path | None, *args: str) -> dict:
    r = keyhole(server, "job", "start", "--output", "json", *args, creds_file=creds)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    remember_secrets(created["CredentialsToken"], created["Credentials"]["SecretAccessKey"],
                     created["Credentials"]["SessionToken"])
    return created


def test_the_credential_endpoint_hands_out_nothing_before_the_jobs_window(server, data_bucket):
    """Review 37, F6: a job whose window starts later got sessions at once, which its policy
    refused everything with. The endpoint now refuses until the window starts, saying when."""
    import datetime

    start = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    job = _start(server, None, "--name", "later", "--read", f"s3://{data_bucket}/in/", "--start", start, "--for", "10m")
    assert _fetch(server, job["CredentialsToken"]) == 403
    events = wait_for_events(server.data_dir, lambda evs: any(
        e.get("eventName") == "GetJobCredentials" and (e.get("userIdentity") or {}).get("job") == job["Job"]["JobId"]
        for e in evs))
    refused = [e for e in events if e.get("eventName") == "GetJobCredentials"
               and (e.get("userIdentity") or {}).get("job") == job["Job"]["JobId"]]
    assert refused[-1]["decision"] == "Deny" and f"starts at {start}" in refused[-1]["errorMessage"], refused[-1]


def test_a_job_without_a_role_cannot_exceed_its_creators_permissions(server, data_bucket, tmp_path):
    """A job without a role follows GetFederationToken: the creator's current permissions ∩ the
    job policy. A creator denied the data (or bounded away from it) cannot read it through a job,
    and a deleted creator's jobs can do nothing."""
    iam = iam_client(server)
    denied, dak, dsk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "s3:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": f"arn:aws:s3:::{data_bucket}/secret/*"}]})
    job = _start(server, creds_file(tmp_path, dak, dsk, "denied"), "--name", "deny", "--read",
                 f"s3://{data_bucket}/", "--for", "5m")
    job_s3 = client(server, "s3", session_creds(job["Credentials"]))
    assert job_s3.get_object(Bucket=data_bucket, Key="in/a.txt")["Body"].read() == b"in/a.txt"
    with pytest.raises(ClientError) as e:
        job_s3.get_object(Bucket=data_bucket, Key="secret/x")
    assert code_of(e.value) == "AccessDenied" and "explicit deny in an identity-based policy" in str(e.value)
    # A boundary that allows only keyhole: the job reads nothing.
    only_keyhole = iam.create_policy(PolicyName=uid("only-keyhole"), PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "keyhole:*", "Resource": "*"}]}))["Policy"]["Arn"]
    bounded, bak, bsk = new_user(iam, ALLOW_ALL)
    iam.put_user_permissions_boundary(UserName=bounded, PermissionsBoundary=only_keyhole)
    job2 = _start(server, creds_file(tmp_path, bak, bsk, "bounded"), "--name", "bnd", "--read",
                  f"s3://{data_bucket}/secret/", "--for", "5m")
    with pytest.raises(ClientError) as e:
        client(server, "s3", session_creds(job2["Credentials"])).get_object(Bucket=data_bucket, Key="secret/x")
    assert code_of(e.value) == "AccessDenied" and "permissions boundary" in str(e.value)
    # The creator deleted: its job's sessions end.
    for k in iam.list_access_keys(UserName=denied)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=denied, AccessKeyId=k["AccessKeyId"])
    iam.delete_user_policy(UserName=denied, PolicyName="p")
    assert _fetch(server, job["CredentialsToken"]) == 200
    iam.delete_user(UserName=denied)
    with pytest.raises(ClientError) as e:
        job_s3.get_object(Bucket=data_bucket, Key="in/a.txt")
    assert code_of(e.value) == "InvalidToken"
    # ... and the credential endpoint hands out no session every request would be refused with;
    # the refusal is recorded as a denial of the job's (review 37, F4: it was recorded as Allow).
    assert _fetch(server, job["CredentialsToken"]) == 403
    events = wait_for_events(server.data_dir, lambda evs: any(
        e.get("eventName") == "GetJobCredentials" and e.get("errorCode")
        and (e.get("userIdentity") or {}).get("job") == job["Job"]["JobId"] for e in evs))
    refused = [e for e in events if e.get("eventName") == "GetJobCredentials" and e.get("errorCode")
               and (e.get("userIdentity") or {}).get("job") == job["Job"]["JobId"]]
    assert refused[-1]["decision"] == "Deny" and "no longer exists" in refused[-1]["errorMessage"], refused[-1]


def test_every_fresh_role_session_of_a_job_is_a_new_assume_role(fresh_server_factory, tmp_path):
    """The container-credentials endpoint hands out a fresh session of the job's role: each is
    decided again as the creator's AssumeRole (trust policy, creator and role as they are now)
    and lasts at most the role's MaxSessionDuration."""
    import urllib.error
    import urllib.request

    kp = fresh_server_factory(extra_args=["--job-session-secs", "7200"])
    srv = type("S", (), {"endpoint": kp.endpoint, "port": kp.port, "account_id": kp.account_id(),
                         "creds_path": kp.creds_path, "access_key": kp.credentials()[0],
                         "secret_key": kp.credentials()[1], "data_dir": kp.data_dir})()
    iam = iam_client(srv)
    make_client(srv.endpoint, srv.access_key, srv.secret_key).create_bucket(Bucket="renewals")
    sched, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "keyhole:CreateJob", "Resource": "*"}]})
    role = "renewed"
    named = trust({"AWS": arn(srv, "user", sched)})
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(named))
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    creds = creds_file(tmp_path, ak, sk)
    job = _start(srv, creds, "--name", "long", "--read", "s3://renewals/", "--for", "3h", "--role", role)

    def fetch() -> tuple[int, dict]:
        req = urllib.request.Request(f"{kp.endpoint}/_keyhole/credentials",
                                     headers={"Authorization": job["CredentialsToken"]})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                got = json.loads(r.read())
                remember_secrets(got["SecretAccessKey"], got["Token"])
                return r.status, got
        except urllib.error.HTTPError as e:
            return e.code, {"body": e.read().decode()}

    status, got = fetch()
    assert status == 200
    import datetime as dt
    expires = dt.datetime.fromisoformat(got["Expiration"].replace("Z", "+00:00"))
    # --job-session-secs is 2 h, the role's MaxSessionDuration 1 h: the session lasts 1 h.
    assert expires <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1, minutes=1), got["Expiration"]
    # The trust policy no longer admits the creator: no fresh session.
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust({"Service": "ec2.amazonaws.com"})))
    status, refused = fetch()
    assert status == 403
    # The token holder learns what was refused, not its creator's ARN (review 36, F1).
    assert "may no longer assume role" in refused["body"] and ":user/" not in refused["body"], refused
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(named))
    assert fetch()[0] == 200
    # A role created again under the name is another role.
    iam.delete_role_policy(RoleName=role, PolicyName="read")
    iam.delete_role(RoleName=role)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(named))
    assert fetch()[0] == 403
    # The fetches and their AssumeRole decisions are in the trail.
    events = [e for e in read_trail(kp.data_dir) if e["eventName"] == "GetJobCredentials"]
    assert any(c["action"] == "sts:AssumeRole" and c["decision"] == "Deny"
               for e in events for c in e["authorization"])


def test_a_deny_on_a_whole_bucket_location_matches_either_spelling(server, data_bucket, tmp_path):
    """`s3://b` and `s3://b/` are the same location: a CreateJob Deny written for either binds."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "s3:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "keyhole:CreateJob", "Resource": "*",
         "Condition": {"ForAnyValue:StringEquals": {"keyhole:ReadLocations": [f"s3://{data_bucket}"]}}}]})
    creds = creds_file(tmp_path, ak, sk)
    for location in (f"s3://{data_bucket}", f"s3://{data_bucket}/"):
        r = keyhole(server, "job", "start", "--name", "whole", "--read", location, "--for", "5m", creds_file=creds)
        assert r.returncode != 0 and "explicit deny" in flat(r.stderr), (location, r.stderr)


def test_the_job_tag_is_reserved_for_job_sessions(server):
    """Job sessions carry job=JOB_ID, and role policies key job outputs on it: nobody else may
    set that tag (AssumeRole session tags, role and user tags)."""
    iam = iam_client(server)
    user, ak, sk = new_user(iam)
    role = uid("jobs")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(
        trust({"AWS": arn(server, "user", user)}, ["sts:AssumeRole", "sts:TagSession"])))
    with pytest.raises(ClientError) as e:
        client(server, "sts", (ak, sk)).assume_role(RoleArn=arn(server, "role", role), RoleSessionName="victim-abc123",
                                                    Tags=[{"Key": "job", "Value": "victim-abc123"}])
    assert "reserved" in str(e.value)
    for call in (lambda: iam.tag_role(RoleName=role, Tags=[{"Key": "JOB", "Value": "x"}]),
                 lambda: iam.tag_user(UserName=user, Tags=[{"Key": "job", "Value": "x"}])):
        with pytest.raises(ClientError) as e:
            call()
        assert "reserved" in str(e.value)


def test_job_labels_and_policy_names_are_case_insensitive(server, data_bucket):
    r = keyhole(server, "job", "start", "--name", "cases", "--read", f"s3://{data_bucket}/in/", "--for", "5m",
                "--label", "team=ml", "--label", "TEAM=admin")
    assert r.returncode != 0 and "are the same tag key" in flat(r.stderr), r.stderr
    iam = iam_client(server)
    name = uid("Boundary")
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
    iam.create_policy(PolicyName=name, PolicyDocument=doc)
    with pytest.raises(ClientError) as e:
        iam.create_policy(PolicyName=name.lower(), PolicyDocument=doc)
    assert code_of(e.value) == "EntityAlreadyExists"


# ---------------------------------------------------------------- review findings, round 2


def _session_file(tmp_path: Path, c: dict, name: str) -> Path:
    ak, sk, tok = session_creds(c)
    p = tmp_path / name
    p.write_text(f"[default]\naws_access_key_id = {ak}\naws_secret_access_key = {sk}\naws_session_token = {tok}\n")
    return p


def _fetch(server, token: str) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{server.endpoint}/_keyhole/credentials", headers={"Authorization": token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            got = json.loads(r.read())
            remember_secrets(got["SecretAccessKey"], got["Token"])
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_a_roleless_job_is_bound_by_what_is_aimed_at_its_creator(server, tmp_path):
    """F1: a job's requests were checked against its creator's policies but with the job
    session's keys, so a label chose the creator's `aws:PrincipalTag` value and denies naming the
    creator (aws:username, a bucket policy on its ARN) missed the job. Now the request is
    decided again as the creator, with the creator's own keys."""
    iam = iam_client(server)
    root_s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    bucket = uid("f1-data")
    root_s3.create_bucket(Bucket=bucket)
    for k in ("teama/x", "teamb/x"):
        root_s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    # ABAC on the creator's tag.
    alice = uid("alice")
    iam.create_user(UserName=alice, Tags=[{"Key": "team", "Value": "teama"}])
    iam.put_user_policy(UserName=alice, PolicyName="abac", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/${{aws:PrincipalTag/team}}/*"},
        {"Effect": "Allow", "Action": "keyhole:CreateJob", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=alice)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    job = _start(server, creds_file(tmp_path, key["AccessKeyId"], key["SecretAccessKey"], "alice"),
                 "--name", "f1", "--read", f"s3://{bucket}/", "--label", "team=teamb", "--for", "10m")
    job_s3 = client(server, "s3", session_creds(job["Credentials"]))
    assert job_s3.get_object(Bucket=bucket, Key="teama/x")["Body"].read() == b"teama/x"
    with pytest.raises(ClientError) as e:
        job_s3.get_object(Bucket=bucket, Key="teamb/x")
    assert code_of(e.value) == "AccessDenied" and "job's creator may not" in str(e.value)
    # Denies aimed at the creator: by user name in its policy, by ARN in a bucket policy.
    dave, dak, dsk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "keyhole:CreateJob"], "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/teamb/*",
         "Condition": {"StringEquals": {"aws:username": "${aws:username}"}}}]})
    root_s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": arn(server, "user", dave)}, "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/teama/*"}]}))
    djob = _start(server, creds_file(tmp_path, dak, dsk, "dave"), "--name", "f1b", "--read", f"s3://{bucket}/",
                  "--for", "10m")
    dave_job = client(server, "s3", session_creds(djob["Credentials"]))
    for k in ("teama/x", "teamb/x"):
        with pytest.raises(ClientError) as e:
            dave_job.get_object(Bucket=bucket, Key=k)
        assert code_of(e.value) == "AccessDenied", k
    root_s3.delete_bucket_policy(Bucket=bucket)


def test_a_job_ends_with_the_temporary_credentials_that_created_it(server, data_bucket, tmp_path):
    """F2: a 15-minute role session created a 30-day job whose credentials survived the session's
    expiry and its revocation. A job created with temporary credentials now ends with them: its
    window may not outlast them, and revoking them (revoke-session, revoke-role-sessions, a
    deny on aws:TokenIssueTime) ends the job's sessions and credential fetches."""
    iam = iam_client(server)
    user, ak, sk = new_user(iam)
    role = uid("f2-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": arn(server, "user", user)})))
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}))
    sts = client(server, "sts", (ak, sk))
    short = sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="ci", DurationSeconds=900)["Credentials"]
    f = _session_file(tmp_path, short, "short")
    r = keyhole(server, "job", "start", "--name", "f2", "--read", f"s3://{data_bucket}/in/", "--for", "30d", creds_file=f)
    assert r.returncode != 0 and "after the temporary credentials creating it expire" in flat(r.stderr), r.stderr
    # Within the session: created; revoking the session ends the job.
    job = _start(server, f, "--name", "f2", "--read", f"s3://{data_bucket}/in/", "--for", "10m")
    job_s3 = client(server, "s3", session_creds(job["Credentials"]))
    assert job_s3.get_object(Bucket=data_bucket, Key="in/a.txt")["Body"].read() == b"in/a.txt"
    assert _fetch(server, job["CredentialsToken"]) == 200
    r = keyhole(server, "admin", "revoke-session", short["AccessKeyId"])
    assert r.returncode == 0, r.stderr
    with pytest.raises(ClientError) as e:
        job_s3.get_object(Bucket=data_bucket, Key="in/a.txt")
    assert code_of(e.value) == "InvalidToken" and "revoked" in str(e.value)
    assert _fetch(server, job["CredentialsToken"]) == 403
    # revoke-role-sessions (a deny on aws:TokenIssueTime) ends the jobs of the role's older sessions.
    other = _session_file(tmp_path, sts.assume_role(RoleArn=arn(server, "role", role), RoleSessionName="ci2")["Credentials"], "other")
    job2 = _start(server, other, "--name", "f2b", "--read", f"s3://{data_bucket}/in/", "--for", "10m")
    job2_s3 = client(server, "s3", session_creds(job2["Credentials"]))
    assert job2_s3.get_object(Bucket=data_bucket, Key="in/a.txt")["Body"].read() == b"in/a.txt"
    import time
    time.sleep(1.1)  # aws:TokenIssueTime has one-second resolution
    r = keyhole(server, "admin", "revoke-role-sessions", role)
    assert r.returncode == 0, r.stderr
    with pytest.raises(ClientError) as e:
        job2_s3.get_object(Bucket=data_bucket, Key="in/a.txt")
    assert code_of(e.value) == "AccessDenied" and "job's creator may not" in str(e.value)
    # GetSessionToken credentials and the user's own deny on older tokens.
    gst_user, gak, gsk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "s3:GetObject"], "Resource": "*"}]})
    gst = client(server, "sts", (gak, gsk)).get_session_token(DurationSeconds=900)["Credentials"]
    job3 = _start(server, _session_file(tmp_path, gst, "gst"), "--name", "f2c", "--read", f"s3://{data_bucket}/in/",
                  "--for", "10m")
    job3_s3 = client(server, "s3", session_creds(job3["Credentials"]))
    assert job3_s3.get_object(Bucket=data_bucket, Key="in/a.txt")["Body"].read() == b"in/a.txt"
    time.sleep(1.1)
    import datetime as dt
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    iam.put_user_policy(UserName=gst_user, PolicyName="revoke", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"DateLessThan": {"aws:TokenIssueTime": now}}}]}))
    with pytest.raises(ClientError) as e:
        job3_s3.get_object(Bucket=data_bucket, Key="in/a.txt")
    assert code_of(e.value) == "AccessDenied"


def test_a_role_job_keeps_its_creators_source_identity_and_transitive_tags(server, tmp_path):
    """F3: a job passing a role dropped the creating session's source identity and transitive
    tags, and a label could override them; STS refuses both in a role chain."""
    iam = iam_client(server)
    root_s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    bucket = uid("f3-data")
    root_s3.create_bucket(Bucket=bucket)
    root_s3.put_object(Bucket=bucket, Key="teamb/x", Body=b"B")
    user, ak, sk = new_user(iam)
    sched = uid("f3-sched")
    sched_arn = iam.create_role(RoleName=sched, AssumeRolePolicyDocument=json.dumps(
        trust({"AWS": arn(server, "user", user)}, ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"])))["Role"]["Arn"]
    iam.put_role_policy(RoleName=sched, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
         "Resource": "*"}]}))
    data_role = uid("f3-data")
    chain_trust = trust({"AWS": sched_arn}, ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"])
    iam.create_role(RoleName=data_role, AssumeRolePolicyDocument=json.dumps(chain_trust))
    iam.put_role_policy(RoleName=data_role, PolicyName="read", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"StringLike": {"aws:SourceIdentity": "contractor-*"}}}]}))
    carol = client(server, "sts", (ak, sk)).assume_role(
        RoleArn=sched_arn, RoleSessionName="carol", SourceIdentity="contractor-carol",
        Tags=[{"Key": "team", "Value": "teama"}], TransitiveTagKeys=["team"])["Credentials"]
    f = _session_file(tmp_path, carol, "carol")
    # A label may not override the transitive tag.
    r = keyhole(server, "job", "start", "--name", "f3", "--role", data_role, "--read", f"s3://{bucket}/teamb/",
                "--label", "team=teamb", "--for", "10m", creds_file=f)
    assert r.returncode != 0 and "transitive session tag" in flat(r.stderr), r.stderr
    # Without the label: the job's sessions carry the source identity, so the role's deny holds.
    job = _start(server, f, "--name", "f3", "--role", data_role, "--read", f"s3://{bucket}/teamb/", "--for", "10m")
    job_s3 = client(server, "s3", session_creds(job["Credentials"]))
    with pytest.raises(ClientError) as e:
        job_s3.get_object(Bucket=bucket, Key="teamb/x")
    assert code_of(e.value) == "AccessDenied"
    events = wait_for_events(server.data_dir, lambda ev: any(
        e["eventName"] == "GetObject" and e["userIdentity"].get("job") == job["Job"]["JobId"] for e in ev))
    ev = [e for e in events if e["eventName"] == "GetObject" and e["userIdentity"].get("job") == job["Job"]["JobId"]][-1]
    assert ev["userIdentity"].get("sourceIdentity") == "contractor-carol", ev["userIdentity"]
    # A target role that does not allow sts:SetSourceIdentity refuses the chain, as STS does.
    iam.update_assume_role_policy(RoleName=data_role, PolicyDocument=json.dumps(
        trust({"AWS": sched_arn}, ["sts:AssumeRole", "sts:TagSession"])))
    r = keyhole(server, "job", "start", "--name", "f3b", "--role", data_role, "--read", f"s3://{bucket}/teamb/",
                "--for", "10m", creds_file=f)
    assert r.returncode != 0 and "sts:SetSourceIdentity" in r.stderr, r.stderr


def test_a_role_jobs_renewal_sees_the_creators_current_tags(server, data_bucket, tmp_path):
    """F4: the trust policy admits the scheduler only while it is tagged may-pass=yes. Untagged,
    it can no longer assume the role itself, and its job gets no fresh session either."""
    iam = iam_client(server)
    sched = uid("sched4")
    iam.create_user(UserName=sched, Tags=[{"Key": "may-pass", "Value": "yes"}])
    iam.put_user_policy(UserName=sched, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "sts:AssumeRole"], "Resource": "*"}]}))
    key = iam.create_access_key(UserName=sched)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    role = uid("f4-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust(
        {"AWS": f"arn:aws:iam::{server.account_id}:root"},
        condition={"StringEquals": {"aws:PrincipalTag/may-pass": "yes"}})))
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    job = _start(server, creds_file(tmp_path, key["AccessKeyId"], key["SecretAccessKey"], "s4"), "--name", "f4",
                 "--role", role, "--read", f"s3://{data_bucket}/in/", "--for", "1h")
    assert _fetch(server, job["CredentialsToken"]) == 200
    iam.untag_user(UserName=sched, TagKeys=["may-pass"])
    with pytest.raises(ClientError) as e:
        client(server, "sts", (key["AccessKeyId"], key["SecretAccessKey"])).assume_role(
            RoleArn=arn(server, "role", role), RoleSessionName="xx")
    assert code_of(e.value) == "AccessDenied"
    assert _fetch(server, job["CredentialsToken"]) == 403


# ---------------------------------------------------------------- review findings, round 3


def test_a_revocation_lasts_as_long_as_the_longest_credentials(server, tmp_path):
    """R3-1: RevokeSession was kept 12 hours, GetSessionToken credentials live up to 36: after a
    restart past 12 hours the revoked credentials worked again. The stored revocation must outlive
    every credential keyhole issues (GetSessionToken: 900 to 129,600 s,
    https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html)."""
    import sqlite3

    iam = iam_client(server)
    _, ak, sk = new_user(iam, ALLOW_ALL)
    sts = client(server, "sts", (ak, sk, None))
    c = sts.get_session_token(DurationSeconds=129_600)["Credentials"]
    remember_secrets(c["SecretAccessKey"], c["SessionToken"])
    r = keyhole(server, "admin", "revoke-session", c["AccessKeyId"])
    assert r.returncode == 0, r.stderr
    with pytest.raises(ClientError) as e:
        client(server, "s3", session_creds(c)).list_buckets()
    assert code_of(e.value) == "InvalidToken"
    db = sqlite3.connect(f"file:{server.data_dir / 'state.db'}?mode=ro", uri=True)
    try:
        (expires,) = db.execute("SELECT expires_at FROM revoked_sessions WHERE access_key_id = ?",
                                (c["AccessKeyId"],)).fetchone()
    finally:
        db.close()
    assert expires >= int(c["Expiration"].timestamp()), "the revocation is forgotten before the credentials expire"


def test_a_token_issue_time_deny_on_the_creator_stops_its_roleless_jobs(server, data_bucket, tmp_path):
    """R3-2: AWS's way to revoke a user's temporary credentials, a Deny on aws:TokenIssueTime
    attached to the user that created them
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_disable-perms.html),
    must stop the sessions of its role-less jobs (a delegation like GetFederationToken's)."""
    import datetime as dt

    iam = iam_client(server)
    name, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*", "keyhole:*"], "Resource": "*"}]})
    job = _start(server, creds_file(tmp_path, ak, sk, "r3-2"), "--name", "r3-2", "--read",
                 f"s3://{data_bucket}/in/", "--for", "10m")
    job_s3 = client(server, "s3", session_creds(job["Credentials"]))
    assert job_s3.get_object(Bucket=data_bucket, Key="in/a.txt")["Body"].read() == b"in/a.txt"
    cutoff = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    iam.put_user_policy(UserName=name, PolicyName="revoke-older", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                                               "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}}}]}))
    with pytest.raises(ClientError) as e:
        job_s3.get_object(Bucket=data_bucket, Key="in/a.txt")
    assert code_of(e.value) == "AccessDenied" and "explicit deny" in str(e.value)
    # The user's own long-term key carries no aws:TokenIssueTime: the Deny does not touch it.
    own = make_client(server.endpoint, ak, sk)
    assert own.get_object(Bucket=data_bucket, Key="in/a.txt")["Body"].read() == b"in/a.txt"


def test_iam_and_sts_bodies_are_bound_to_the_signature_even_when_unsigned_payload_is_declared(server):
    """R3-5: UNSIGNED-PAYLOAD is Amazon S3's option
    (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html); an IAM request
    declaring it must not let its body (the action) be replaced."""
    import http.client

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    r = AWSRequest("POST", server.endpoint + "/", data="Action=GetUser&Version=2010-05-08",
                   headers={"Content-Type": "application/x-www-form-urlencoded",
                            "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(Credentials(server.access_key, server.secret_key), "iam", REGION).add_auth(r)
    injected = uid("injected")
    body = f"Action=CreateUser&UserName={injected}&Version=2010-05-08".encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {k: v for k, v in r.headers.items()}
    headers["Content-Length"] = str(len(body))
    conn.request("POST", "/", body=body, headers=headers)
    resp = conn.getresponse()
    out = resp.read()
    assert resp.status == 403 and b"SignatureDoesNotMatch" in out, out
    with pytest.raises(ClientError) as e:
        iam_client(server).get_user(UserName=injected)
    assert code_of(e.value) == "NoSuchEntity"


def test_creating_users_and_roles_is_authorized_on_their_path(server):
    """R3-6: CreateUser and CreateRole name `user/${UserNameWithPath}` and `role/${RoleNameWithPath}`
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html)."""
    iam = iam_client(server)
    acct = server.account_id
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:*", "Resource": [f"arn:aws:iam::{acct}:user/admins/*",
                                                            f"arn:aws:iam::{acct}:role/admins/*"]}]})
    deleg = iam_client(server, ak, sk)
    with pytest.raises(ClientError) as e:
        deleg.create_user(UserName=uid("evil"), Path="/admins/")
    assert code_of(e.value) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        deleg.create_role(RoleName=uid("evilr"), Path="/admins/", AssumeRolePolicyDocument=json.dumps(
            trust({"AWS": f"arn:aws:iam::{acct}:root"})))
    assert code_of(e.value) == "AccessDenied"
    # A delegate allowed only /dev/ may create there.
    _, dak, dsk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:CreateUser", "Resource": f"arn:aws:iam::{acct}:user/dev/*"}]})
    made = iam_client(server, dak, dsk).create_user(UserName=uid("dev"), Path="/dev/")["User"]
    assert made["Arn"].startswith(f"arn:aws:iam::{acct}:user/dev/")


def test_a_job_report_does_not_show_the_creator_a_bucket_policys_conditions(server, tmp_path):
    """R3-8: the report named the Sid, operator and key of a bucket policy the creator cannot read;
    AWS's denials never name a policy's conditions
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html)."""
    root_s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    bucket = uid("r3-8")
    root_s3.create_bucket(Bucket=bucket)
    root_s3.put_object(Bucket=bucket, Key="d/x", Body=b"x")
    root_s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyClearedStaff", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/clearance-level": "high"}}}]}))
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:*", "s3:ListBucket"], "Resource": "*"}]})
    creds = creds_file(tmp_path, ak, sk, "r3-8")
    job = _start(server, creds, "--name", "r3-8", "--read", f"s3://{bucket}/d/", "--for", "10m")
    with pytest.raises(ClientError):
        client(server, "s3", session_creds(job["Credentials"])).get_object(Bucket=bucket, Key="d/x")
    wait_for_events(server.data_dir, lambda evs: any(
        e.get("eventName") == "GetObject" and (e.get("userIdentity") or {}).get("job") == job["Job"]["JobId"] for e in evs))
    r = keyhole(server, "job", "report", job["Job"]["JobId"], creds_file=creds)
    assert r.returncode == 0, r.stderr
    assert "OnlyClearedStaff" not in r.stdout and "clearance-level" not in r.stdout, r.stdout
    assert "denied" in r.stdout
    root_s3.delete_bucket_policy(Bucket=bucket)


# (the round-5 review's findings 3, 4 and 7: /work/review5/REPORT.md)


def test_setting_tags_with_x_amz_tagging_needs_put_object_tagging(server, data_bucket):
    """Finding 3. "s3:PutObjectTagging – To successfully set the tag-set with your PutObject
    request, you must have the s3:PutObjectTagging"
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html, Permissions); the same
    header sets the tags of CreateMultipartUpload and of CopyObject with REPLACE. A principal
    denied tagging could otherwise label its objects for an ABAC rule (s3:ExistingObjectTag)."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": f"arn:aws:s3:::{data_bucket}/*"},
        {"Effect": "Deny", "Action": "s3:PutObjectTagging", "Resource": "*"}]})
    u = client(server, "s3", (ak, sk))
    admin = make_client(server.endpoint, server.access_key, server.secret_key)
    u.put_object(Bucket=data_bucket, Key="t/plain", Body=b"hi")
    for attempt in (
        lambda: u.put_object(Bucket=data_bucket, Key="t/x", Body=b"hi", Tagging="classification=public"),
        lambda: u.create_multipart_upload(Bucket=data_bucket, Key="t/mp", Tagging="classification=public"),
        lambda: u.copy_object(Bucket=data_bucket, Key="t/copy", CopySource={"Bucket": data_bucket, "Key": "t/plain"},
                              TaggingDirective="REPLACE", Tagging="classification=public"),
    ):
        with pytest.raises(ClientError) as e:
            attempt()
        assert code_of(e.value) == "AccessDenied" and "s3:PutObjectTagging" in str(e.value), e.value
    for key in ("t/x", "t/copy"):
        with pytest.raises(ClientError) as e:
            admin.head_object(Bucket=data_bucket, Key=key)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404, "nothing was written"
    assert admin.list_multipart_uploads(Bucket=data_bucket).get("Uploads", []) == []
    # A copy that keeps the source's tags (COPY, the default) sets none from the request.
    u.copy_object(Bucket=data_bucket, Key="t/copy", CopySource={"Bucket": data_bucket, "Key": "t/plain"})


def test_the_tagging_check_sees_the_request_tags(server, data_bucket):
    """Finding 3: the s3:PutObjectTagging check of a tagged PutObject sees the request's tags as
    s3:RequestObjectTag/KEY ("useful when adding tags to objects using the PutObjectTagging and
    PutObject", https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html)."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{data_bucket}/*"},
        {"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": f"arn:aws:s3:::{data_bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/classification": "internal"}}}]})
    u = client(server, "s3", (ak, sk))
    u.put_object(Bucket=data_bucket, Key="t/internal", Body=b"hi", Tagging="classification=internal")
    admin = make_client(server.endpoint, server.access_key, server.secret_key)
    assert admin.get_object_tagging(Bucket=data_bucket, Key="t/internal")["TagSet"] == [
        {"Key": "classification", "Value": "internal"}]
    with pytest.raises(ClientError) as e:
        u.put_object(Bucket=data_bucket, Key="t/public", Body=b"hi", Tagging="classification=public")
    assert code_of(e.value) == "AccessDenied"


def test_a_tag_repeated_in_another_case_does_not_hide_a_denied_value(server, data_bucket):
    """Review 16, F2: S3 keeps tags whose keys differ only in case apart, but condition key names
    are not case sensitive (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html),
    so `Classification=secret&classification=ok` would be one s3:RequestObjectTag/Classification
    holding one of the values, and a Deny on `secret` would miss. Such tag sets are refused."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:PutObjectTagging"], "Resource": f"arn:aws:s3:::{data_bucket}/*"},
        {"Effect": "Deny", "Action": ["s3:PutObject", "s3:PutObjectTagging"], "Resource": "*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/Classification": "secret"}}}]})
    u = client(server, "s3", (ak, sk))
    u.put_object(Bucket=data_bucket, Key="t/case-ok", Body=b"hi", Tagging="Classification=ok&Team=a")
    admin = make_client(server.endpoint, server.access_key, server.secret_key)
    for tagging in ("Classification=secret", "Classification=secret&classification=ok",
                    "CLASSIFICATION=ok&Classification=secret"):
        with pytest.raises(ClientError) as e:
            u.put_object(Bucket=data_bucket, Key="t/case-hidden", Body=b"hi", Tagging=tagging)
        assert code_of(e.value) == "AccessDenied", tagging
    with pytest.raises(ClientError) as e:
        admin.head_object(Bucket=data_bucket, Key="t/case-hidden")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404, "nothing was written"
    # Each refusal is a recorded denial, whether a policy or the case rule made it (review 17,
    # L2: the case rule's records had no decision, so `audit query --decision deny` missed them).
    events = wait_for_events(server.data_dir, lambda ev: sum(
        1 for e in ev if e["eventName"] == "PutObject" and e["stage"] == "completed"
        and e["requestParameters"].get("key") == "t/case-hidden") == 3)
    refused = [e for e in events if e["eventName"] == "PutObject"
               and e["requestParameters"].get("key") == "t/case-hidden"]
    assert [e["stage"] for e in refused] == ["completed"] * 3, "no write-ahead record for a refusal"
    assert all(e["decision"] == "Deny" and e["httpStatus"] == 403 for e in refused), refused
    assert any("differ only in case" in c["reason"] for e in refused for c in e["authorization"])



def test_put_object_tagging_is_decided_with_the_tags_it_sets(server, data_bucket):
    """Review 16, F3: s3:RequestObjectTag/KEY and s3:RequestObjectTagKeys are for "adding tags to
    objects using the PutObjectTagging and PutObject" requests
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html). A
    PutObjectTagging is decided once its document is read, with the tags it sets; an
    `x-amz-tagging` header sent beside it adds nothing."""
    iam = iam_client(server)
    admin = make_client(server.endpoint, server.access_key, server.secret_key)
    admin.put_object(Bucket=data_bucket, Key="t/retag", Body=b"hi")
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": f"arn:aws:s3:::{data_bucket}/*"},
        {"Effect": "Deny", "Action": "s3:PutObjectTagging", "Resource": "*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/Classification": "secret"}}}]})
    u = client(server, "s3", (ak, sk))
    u.put_object_tagging(Bucket=data_bucket, Key="t/retag",
                         Tagging={"TagSet": [{"Key": "Classification", "Value": "ok"}]})
    for tag_set in ([{"Key": "Classification", "Value": "secret"}],
                    [{"Key": "Classification", "Value": "secret"}, {"Key": "classification", "Value": "ok"}]):
        with pytest.raises(ClientError) as e:
            u.put_object_tagging(Bucket=data_bucket, Key="t/retag", Tagging={"TagSet": tag_set})
        assert code_of(e.value) == "AccessDenied", tag_set
    assert admin.get_object_tagging(Bucket=data_bucket, Key="t/retag")["TagSet"] == [
        {"Key": "Classification", "Value": "ok"}], "the denied tag sets were not stored"
    denied = wait_for_events(server.data_dir, lambda ev: sum(
        1 for e in ev if e["eventName"] == "PutObjectTagging" and e.get("httpStatus") == 403
        and e["requestParameters"].get("key") == "t/retag") >= 2)
    assert all(e["decision"] == "Deny" for e in denied if e["eventName"] == "PutObjectTagging"
               and e.get("httpStatus") == 403 and e["requestParameters"].get("key") == "t/retag")
    # An Allow that requires a value is met by the document (it failed closed before).
    _, ak2, sk2 = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": f"arn:aws:s3:::{data_bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/Approved": "yes"}}}]})
    u2 = client(server, "s3", (ak2, sk2))
    u2.put_object_tagging(Bucket=data_bucket, Key="t/retag", Tagging={"TagSet": [{"Key": "Approved", "Value": "yes"}]})
    # ... and not by a header beside a document that does not set it.
    def smuggle(request, **_):
        request.headers["x-amz-tagging"] = "Approved=yes"
    u2.meta.events.register("before-sign.s3.PutObjectTagging", smuggle)
    with pytest.raises(ClientError) as e:
        u2.put_object_tagging(Bucket=data_bucket, Key="t/retag", Tagging={"TagSet": [{"Key": "Approved", "Value": "no"}]})
    assert code_of(e.value) == "AccessDenied"
    assert admin.get_object_tagging(Bucket=data_bucket, Key="t/retag")["TagSet"] == [
        {"Key": "Approved", "Value": "yes"}]


def test_a_refused_subresource_write_leaves_no_authorized_record(server, data_bucket):
    """An `authorized` record is the write-ahead record of a request that passed authorization
    (docs/AUDIT.md, Guarantees). PutObjectTagging, PutObjectRetention and PutObjectLegalHold are
    decided by their handler once their document is read: a refused one leaves only its
    `completed` record with the denial, and an allowed one's `authorized` record carries the
    decision that allowed it (found by review 16's second pass, filed Low, fixed 2026-12-04)."""
    iam = iam_client(server)
    admin = make_client(server.endpoint, server.access_key, server.secret_key)
    key = f"t/ahead-{uuid.uuid4().hex[:8]}"
    admin.put_object(Bucket=data_bucket, Key=key, Body=b"hi")
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": f"arn:aws:s3:::{data_bucket}/*"},
        {"Effect": "Deny", "Action": "s3:PutObjectTagging", "Resource": "*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/Classification": "secret"}}}]})
    u = client(server, "s3", (ak, sk))
    with pytest.raises(ClientError) as e:
        u.put_object_tagging(Bucket=data_bucket, Key=key,
                             Tagging={"TagSet": [{"Key": "Classification", "Value": "secret"}]})
    assert code_of(e.value) == "AccessDenied"
    for refused in (
        lambda: u.put_object_retention(Bucket=data_bucket, Key=key, Retention={
            "Mode": "GOVERNANCE", "RetainUntilDate": "2030-01-01T00:00:00Z"}),
        lambda: u.put_object_legal_hold(Bucket=data_bucket, Key=key, LegalHold={"Status": "ON"}),
    ):
        with pytest.raises(ClientError):
            refused()
    u.put_object_tagging(Bucket=data_bucket, Key=key,
                         Tagging={"TagSet": [{"Key": "Classification", "Value": "ok"}]})
    ops = ("PutObjectTagging", "PutObjectRetention", "PutObjectLegalHold")
    events = wait_for_events(server.data_dir, lambda ev: sum(
        1 for e in ev if e["eventName"] in ops and e["stage"] == "completed"
        and e["requestParameters"].get("key") == key) == 4)
    mine = [e for e in events if e["eventName"] in ops and e["requestParameters"].get("key") == key]
    ahead = [e for e in mine if e["stage"] == "authorized"]
    assert len(ahead) == 1 and ahead[0]["eventName"] == "PutObjectTagging", [
        (e["eventName"], e["stage"], e.get("httpStatus")) for e in mine]
    assert ahead[0]["decision"] == "Allow"
    assert [(c["action"], c["decision"]) for c in ahead[0]["authorization"]] == [("s3:PutObjectTagging", "Allow")]
    done = [e for e in mine if e["stage"] == "completed"]
    statuses: dict[str, list[int]] = {}
    for e in done:
        statuses.setdefault(e["eventName"], []).append(e["httpStatus"])
    assert sorted(statuses["PutObjectTagging"]) == [200, 403], statuses
    assert all(s >= 400 for s in statuses["PutObjectRetention"] + statuses["PutObjectLegalHold"]), statuses
    # Each request's records are in order: its `authorized` record precedes its `completed` one.
    seq = {(e["requestID"], e["stage"]): e["seq"] for e in mine}
    rid = ahead[0]["requestID"]
    assert seq[(rid, "authorized")] < seq[(rid, "completed")]


def test_a_delete_objects_with_every_key_refused_leaves_no_authorized_record(server, data_bucket):
    """Review 17, L1: DeleteObjects queued its write-ahead record before deciding its keys, so a
    request whose every key was refused (it changes nothing) still left an `authorized` record.
    Now the record is queued once the keys are decided, only if one is allowed; with one allowed
    it still names every key of the body and precedes the deletion."""
    iam = iam_client(server)
    admin = make_client(server.endpoint, server.access_key, server.secret_key)
    tag = uuid.uuid4().hex[:8]
    keep, gone = f"t/keep-{tag}", f"t/gone-{tag}"
    for k in (keep, gone):
        admin.put_object(Bucket=data_bucket, Key=k, Body=b"x")
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{data_bucket}/{gone}"}]})
    u = client(server, "s3", (ak, sk))
    refused = u.delete_objects(Bucket=data_bucket, Delete={"Objects": [{"Key": keep}]})
    assert [e["Code"] for e in refused.get("Errors", [])] == ["AccessDenied"] and not refused.get("Deleted")
    mixed = u.delete_objects(Bucket=data_bucket, Delete={"Objects": [{"Key": keep}, {"Key": gone}]})
    assert [d["Key"] for d in mixed["Deleted"]] == [gone]
    assert admin.head_object(Bucket=data_bucket, Key=keep)["ContentLength"] == 1
    rids = {refused["ResponseMetadata"]["RequestId"]: "refused", mixed["ResponseMetadata"]["RequestId"]: "mixed"}
    events = wait_for_events(server.data_dir, lambda ev: sum(
        1 for e in ev if e["requestID"] in rids and e["stage"] == "completed") == 2)
    stages = {(rids[e["requestID"]], e["stage"]): e for e in events if e["requestID"] in rids}
    assert ("refused", "authorized") not in stages, "a request that changes nothing has no write-ahead record"
    ahead = stages[("mixed", "authorized")]
    assert ahead["requestParameters"]["keys"] == [keep, gone]
    # ... with every key's decision (review 18: the record had none).
    assert [(c["action"], c["resource"].rsplit("/", 1)[-1], c["decision"]) for c in ahead["authorization"]] == [
        ("s3:DeleteObject", keep.rsplit("/", 1)[-1], "Deny"), ("s3:DeleteObject", gone.rsplit("/", 1)[-1], "Allow")]
    assert ahead["seq"] < stages[("mixed", "completed")]["seq"]


SPLIT_EVERYWHERE = ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]


def _anyone_from(bucket: str, cidrs: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"IpAddress": {"aws:SourceIp": cidrs}}}]})


def test_a_source_ip_condition_split_into_broad_ranges_is_public(server, data_bucket):
    """Finding 4. "Bucket policies that grant access conditioned on the aws:SourceIp condition key
    with very broad IP ranges (for example, 0.0.0.0/1) are evaluated as 'public.' This includes
    values broader than /8 for IPv4 and /32 for IPv6" (The meaning of "public",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html#access-control-block-public-access-policy-status).
    With BlockPublicPolicy on (the default) such a policy is refused, as 0.0.0.0/0 is; so is the
    whole IPv4 space spelt as 256 /8s (keyhole judges the set by what it admits)."""
    admin = make_client(server.endpoint, server.access_key, server.secret_key)
    for cidrs in (SPLIT_EVERYWHERE, ["0.0.0.0/1"], [f"{i}.0.0.0/8" for i in range(256)]):
        with pytest.raises(ClientError) as e:
            admin.put_bucket_policy(Bucket=data_bucket, Policy=_anyone_from(data_bucket, cidrs))
        assert code_of(e.value) == "AccessDenied" and "BlockPublicPolicy" in str(e.value), e.value
        # Recorded as a denial (review 18: the trail said Allow for it).
        rid = e.value.response["ResponseMetadata"]["RequestId"]
        done = wait_for_events(server.data_dir, lambda ev: any(
            x["requestID"] == rid and x["stage"] == "completed" for x in ev))
        assert [x["decision"] for x in done if x["requestID"] == rid and x["stage"] == "completed"] == ["Deny"]
    with pytest.raises(ClientError) as e:
        admin.get_bucket_policy(Bucket=data_bucket)
    assert code_of(e.value) == "NoSuchBucketPolicy"
    # One /8 is as broad as a non-public range may be.
    admin.put_bucket_policy(Bucket=data_bucket, Policy=_anyone_from(data_bucket, ["198.0.0.0/8"]))
    assert admin.get_bucket_policy_status(Bucket=data_bucket)["PolicyStatus"]["IsPublic"] is False
    admin.delete_bucket_policy(Bucket=data_bucket)


def test_restrict_public_buckets_stops_anonymous_reads_through_split_ranges(fresh_server_factory):
    """Finding 4, RestrictPublicBuckets: with BlockPublicPolicy off (so the policy is stored) and
    RestrictPublicBuckets on, a policy admitting everyone through split ranges is public and
    anonymous reads are refused (RestrictPublicBuckets "restricts access to ... a bucket with a
    public policy to only AWS service principals and authorized users within the bucket owner's
    account"). Runs on its own server: it changes account settings."""
    import socket

    from test_bucket_policy import _real_getaddrinfo, _resolve_account_prefix, anonymous_get

    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)

    class Srv:  # what anonymous_get needs
        endpoint = kp.endpoint

    bucket = "split-ranges"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    socket.getaddrinfo = _resolve_account_prefix
    try:
        control = boto3.session.Session().client(
            "s3control", endpoint_url=kp.endpoint, region_name=REGION, aws_access_key_id=ak,
            aws_secret_access_key=sk, config=botocore.config.Config(retries={"max_attempts": 1}))
        control.put_public_access_block(AccountId=kp.account_id(), PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": False, "RestrictPublicBuckets": True})
    finally:
        socket.getaddrinfo = _real_getaddrinfo
    s3.put_bucket_policy(Bucket=bucket, Policy=_anyone_from(bucket, SPLIT_EVERYWHERE))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert anonymous_get(Srv, bucket, "k") == 403


def test_a_not_principal_deny_naming_a_role_does_not_spare_its_sessions(server, data_bucket):
    """Finding 7. "When you specify an assumed-role session in a NotPrincipal element, you cannot
    use a wildcard (*) to mean 'all sessions'. Principals must always name a specific session";
    the page's example exempts a session by listing the session ARN, the role ARN and the account
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html)."""
    iam = iam_client(server)
    user, ak, sk = new_user(iam, ASSUME_ANY)
    role = uid("np-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust({"AWS": arn(server, "user", user)})))
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    sts = client(server, "sts", (ak, sk))
    sessions = {name: client(server, "s3", session_creds(sts.assume_role(
        RoleArn=arn(server, "role", role), RoleSessionName=name)["Credentials"])) for name in ("audit", "mallory")}
    audit_arn = f"arn:aws:sts::{server.account_id}:assumed-role/{role}/audit"
    admin = make_client(server.endpoint, server.access_key, server.secret_key)

    def deny_all_but(listed: list[str]) -> None:
        admin.put_bucket_policy(Bucket=data_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "NotPrincipal": {"AWS": listed}, "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{data_bucket}", f"arn:aws:s3:::{data_bucket}/*"]}]}))

    def reads(name: str) -> bool:
        try:
            sessions[name].get_object(Bucket=data_bucket, Key="in/a.txt")
            return True
        except ClientError as e:
            assert code_of(e) == "AccessDenied" and "explicit deny in a resource-based policy" in str(e), e
            return False

    root = f"arn:aws:iam::{server.account_id}:root"
    deny_all_but([arn(server, "role", role), root])
    assert not reads("audit") and not reads("mallory")
    deny_all_but([audit_arn, arn(server, "role", role), root])
    assert reads("audit") and not reads("mallory")
    admin.delete_bucket_policy(Bucket=data_bucket)


def test_a_read_locations_deny_written_as_jobs_md_shows_also_stops_the_parent(server, data_bucket, tmp_path):
    """Review 37, F3: `keyhole:ReadLocations` holds the locations as asked for, so a Deny on
    `s3://B/private/*` alone let a job ask for `s3://B/` and read private/ anyway. JOBS.md now
    says to deny the parents too; this is its example, checked."""
    iam = iam_client(server)
    name, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob", "s3:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "keyhole:CreateJob", "Resource": "*",
         "Condition": {"ForAnyValue:StringLike": {"keyhole:ReadLocations": [
             f"s3://{data_bucket}/secret/*", f"s3://{data_bucket}/", f"s3://{data_bucket}"]}}}]})
    creds = creds_file(tmp_path, ak, sk, "f3")
    for location in (f"s3://{data_bucket}/secret/", f"s3://{data_bucket}/", f"s3://{data_bucket}"):
        r = keyhole(server, "job", "start", "--name", uid("f3"), "--read", location, "--for", "5m", creds_file=creds)
        assert r.returncode != 0 and "explicit deny" in flat(r.stderr), (location, r.stderr)
    job = _start(server, creds, "--name", uid("f3ok"), "--read", f"s3://{data_bucket}/in/", "--for", "5m")
    assert job["Job"]["Read"] == [f"s3://{data_bucket}/in/"]
