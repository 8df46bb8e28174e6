"""Roles, trust policies and STS AssumeRole with sealed session credentials: issue 4's seed
scenario (shared/test-data/policies/training-job.json adapted to a window around now and to
127.0.0.1/32).

AWS pages: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use.html (AssumeRole, trust
policies), https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_session.html (session
policies intersect the role's policies).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import uuid
from pathlib import Path

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, remember_secrets, sign, status_from
from test_iam import error_code, iam_client, new_user

SHARED = Path(__file__).resolve().parents[3] / "shared" / "test-data" / "policies"
DATASET = "acmeco-training-datasets-wikipedia-2025-07-01"
BASE = "acmeco-base-models"
OUT = "acmeco-finetuned-models"


def client(service, server, creds: dict):
    return boto3.session.Session().client(
        service,
        endpoint_url=server.endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
        region_name=REGION,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def window_policy(start: dt.datetime, end: dt.datetime, cidr: str = "127.0.0.1/32") -> str:
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    text = (SHARED / "training-job.json").read_text()
    text = text.replace("2025-07-16T01:00:00Z", fmt(start)).replace("2025-07-16T04:00:00Z", fmt(end))
    text = text.replace("203.0.113.42/32", cidr)
    return json.dumps(json.loads(text))


@pytest.fixture(scope="module")
def seed(server, s3):
    """The three buckets with data, a role `training-job` trusting only user `job-runner`."""
    for b in (DATASET, BASE, OUT):
        try:
            s3.create_bucket(Bucket=b)
        except ClientError as e:
            assert error_code(e) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket=DATASET, Key="wiki/part-0001.jsonl", Body=b"{}\n")
    s3.put_object(Bucket=BASE, Key="llama/model.safetensors", Body=b"weights")
    iam = iam_client(server)
    runner = f"job-runner-{uuid.uuid4().hex[:6]}"
    _, ak, sk = new_user(iam, name=runner)
    _, other_ak, other_sk = new_user(iam)
    role = f"training-job-{uuid.uuid4().hex[:6]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:user/{runner}"}}]}
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    role_policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{b}{s}" for b in (DATASET, BASE, OUT) for s in ("", "/*")]}]}
    iam.put_role_policy(RoleName=role, PolicyName="buckets", PolicyDocument=json.dumps(role_policy))
    return {"role_arn": arn, "runner": {"AccessKeyId": ak, "SecretAccessKey": sk},
            "other": {"AccessKeyId": other_ak, "SecretAccessKey": other_sk}}


def assume(server, seed, policy: str | None, **kw) -> dict:
    sts = client("sts", server, seed["runner"])
    args = {"RoleArn": seed["role_arn"], "RoleSessionName": "run-1", **kw}
    if policy is not None:
        args["Policy"] = policy
    creds = sts.assume_role(**args)["Credentials"]
    remember_secrets(creds["SecretAccessKey"], creds["SessionToken"])
    return creds


def test_trust_policy_admits_only_the_named_user(server, seed):
    with pytest.raises(ClientError) as e:
        client("sts", server, seed["other"]).assume_role(RoleArn=seed["role_arn"], RoleSessionName="x1")
    assert error_code(e.value) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        client("sts", server, {"AccessKeyId": server.access_key, "SecretAccessKey": server.secret_key}).assume_role(
            RoleArn=seed["role_arn"], RoleSessionName="x2")
    assert error_code(e.value) == "AccessDenied", "the root user cannot assume roles"
    creds = assume(server, seed, None)
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"]
    ident = client("sts", server, creds).get_caller_identity()
    assert ident["Arn"] == f"arn:aws:sts::{server.account_id}:assumed-role/{seed['role_arn'].split('/')[-1]}/run-1"
    assert ident["Account"] == server.account_id
    with pytest.raises(ClientError) as e:
        client("sts", server, seed["runner"]).assume_role(
            RoleArn=seed["role_arn"], RoleSessionName="run-2", DurationSeconds=7200)
    assert error_code(e.value) == "ValidationError", "beyond the role's MaxSessionDuration"


def test_seed_training_job_session(server, seed):
    now = dt.datetime.now(dt.timezone.utc)
    creds = assume(server, seed, window_policy(now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=30)))
    s3 = client("s3", server, creds)
    # Dataset and base models: readable, not writable.
    assert s3.get_object(Bucket=DATASET, Key="wiki/part-0001.jsonl")["Body"].read() == b"{}\n"
    assert s3.get_object(Bucket=BASE, Key="llama/model.safetensors")["Body"].read() == b"weights"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=DATASET)["Contents"]] == ["wiki/part-0001.jsonl"]
    for bucket in (DATASET, BASE):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="evil", Body=b"x")
        assert error_code(e.value) == "AccessDenied"
        assert "because no session policy allows the s3:PutObject action" in e.value.response["Error"]["Message"]
    # Output: single and multipart upload.
    s3.put_object(Bucket=OUT, Key="run-1/checkpoint-1.pt", Body=b"ckpt")
    mpu = s3.create_multipart_upload(Bucket=OUT, Key="run-1/model.safetensors")
    part1 = b"a" * (5 * 1024 * 1024)
    e1 = s3.upload_part(Bucket=OUT, Key="run-1/model.safetensors", UploadId=mpu["UploadId"], PartNumber=1, Body=part1)
    e2 = s3.upload_part(Bucket=OUT, Key="run-1/model.safetensors", UploadId=mpu["UploadId"], PartNumber=2, Body=b"tail")
    s3.complete_multipart_upload(Bucket=OUT, Key="run-1/model.safetensors", UploadId=mpu["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1["ETag"]},
                                                            {"PartNumber": 2, "ETag": e2["ETag"]}]})
    assert s3.head_object(Bucket=OUT, Key="run-1/model.safetensors")["ContentLength"] == len(part1) + 4
    # Nothing the policy does not name: no delete anywhere.
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=OUT, Key="run-1/checkpoint-1.pt")
    assert error_code(e.value) == "AccessDenied"


@pytest.mark.parametrize("start_min,end_min", [(-30, -1), (1, 30)], ids=["ended-a-minute-ago", "starts-in-a-minute"])
def test_window_outside_now_denies(server, seed, start_min, end_min):
    now = dt.datetime.now(dt.timezone.utc)
    creds = assume(server, seed, window_policy(now + dt.timedelta(minutes=start_min), now + dt.timedelta(minutes=end_min)))
    s3 = client("s3", server, creds)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=OUT, Key="run-1/late.pt", Body=b"x")
    assert error_code(e.value) == "AccessDenied"
    # The dataset statements have no window in the seed policy: still readable.
    assert s3.get_object(Bucket=DATASET, Key="wiki/part-0001.jsonl")["Body"].read() == b"{}\n"


def _put_from(source: str, server, creds: dict, path: str) -> int:
    return status_from(source, server.port, "PUT", path, creds["AccessKeyId"], creds["SecretAccessKey"],
                       creds["SessionToken"], body=b"x")


def test_session_bound_to_127_0_0_1_is_denied_from_127_0_0_2(server, seed):
    now = dt.datetime.now(dt.timezone.utc)
    creds = assume(server, seed, window_policy(now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=30)))
    assert _put_from("127.0.0.1", server, creds, f"/{OUT}/run-1/from-1.pt") == 200
    assert _put_from("127.0.0.2", server, creds, f"/{OUT}/run-1/from-2.pt") == 403


def test_forged_and_foreign_tokens_are_rejected(server, seed):
    creds = assume(server, seed, None)
    token = creds["SessionToken"]
    forged = dict(creds, SessionToken=token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8))
    with pytest.raises(ClientError) as e:
        client("s3", server, forged).list_objects_v2(Bucket=OUT)
    assert error_code(e.value) == "InvalidToken"
    other = assume(server, seed, None, RoleSessionName="run-9")
    swapped = dict(creds, SessionToken=other["SessionToken"])
    with pytest.raises(ClientError) as e:
        client("s3", server, swapped).list_objects_v2(Bucket=OUT)
    assert error_code(e.value) == "InvalidToken", "a token is bound to its access key id"
    # The untouched credentials still work.
    assert client("s3", server, creds).list_objects_v2(Bucket=OUT)["KeyCount"] >= 1


def test_revoke_older_sessions_with_token_issue_time(server, seed):
    """AWS's "revoke active sessions": a role policy denying everything to sessions issued before
    a time (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_revoke-sessions.html)."""
    import time

    creds = assume(server, seed, None, RoleSessionName="old-session")
    s3 = client("s3", server, creds)
    s3.list_objects_v2(Bucket=OUT)
    time.sleep(1.1)
    cutoff = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    role = seed["role_arn"].split("/")[-1]
    iam = iam_client(server)
    iam.put_role_policy(RoleName=role, PolicyName="AWSRevokeOlderSessions", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                                                "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}}}]}))
    try:
        with pytest.raises(ClientError) as e:
            s3.list_objects_v2(Bucket=OUT)
        assert error_code(e.value) == "AccessDenied"
        assert "explicit deny" in e.value.response["Error"]["Message"]
        time.sleep(1.1)
        fresh = client("s3", server, assume(server, seed, None, RoleSessionName="new-session"))
        fresh.list_objects_v2(Bucket=OUT)
    finally:
        iam.delete_role_policy(RoleName=role, PolicyName="AWSRevokeOlderSessions")


def test_role_permissions_boundary_caps_its_sessions(server, seed):
    iam = iam_client(server)
    role = seed["role_arn"].split("/")[-1]
    ro = iam.create_policy(PolicyName=f"ro-{uuid.uuid4().hex[:6]}", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}))["Policy"]["Arn"]
    iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=ro)
    try:
        s3 = client("s3", server, assume(server, seed, None, RoleSessionName="bounded"))
        assert s3.get_object(Bucket=DATASET, Key="wiki/part-0001.jsonl")["Body"].read() == b"{}\n"
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=OUT, Key="run-1/capped.pt", Body=b"x")
        assert "because no permissions boundary allows the s3:PutObject action" in e.value.response["Error"]["Message"]
    finally:
        iam.delete_role_permissions_boundary(RoleName=role)


def test_session_requests_are_audited_with_their_identity(server, seed):
    """Issue 5 with identities: a session's requests carry AssumedRole, its ARN and session name;
    AssumeRole itself records the trust-policy check."""
    import time

    from test_audit import read_trail

    creds = assume(server, seed, None, RoleSessionName="audited-run")
    client("s3", server, creds).list_objects_v2(Bucket=OUT)
    deadline = time.time() + 10
    while True:
        events = read_trail(server.data_dir)
        listed = [e for e in events if e["userIdentity"].get("sessionName") == "audited-run"]
        if listed or time.time() > deadline:
            break
        time.sleep(0.1)
    assert listed, "no event for the session"
    ident = listed[-1]["userIdentity"]
    assert ident["type"] == "AssumedRole" and ident["accessKeyId"] == creds["AccessKeyId"]
    assert ident["arn"].endswith("/audited-run")
    assumed = [e for e in events if e["eventName"] == "AssumeRole" and e.get("httpStatus") == 200]
    assert assumed and assumed[-1]["userIdentity"]["type"] == "IAMUser"
    assert assumed[-1]["authorization"][0]["action"] == "sts:AssumeRole"
    assert assumed[-1]["decision"] == "Allow"
    # No secret of the session reaches the trail.
    text = "\n".join(json.dumps(e) for e in events)
    assert creds["SecretAccessKey"] not in text and creds["SessionToken"] not in text


# ---------------------------------------------------------------------------------------------
# Session policies from managed policies, session tags, role chaining, GetSessionToken (issue 4,
# item 3). AWS pages: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html,
# https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html,
# https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html,
# https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session,
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html.


def _user_arn(server, seed) -> str:
    ident = client("sts", server, seed["runner"]).get_caller_identity()
    return ident["Arn"]


def make_role(server, trust_statements: list[dict], policy: dict | None = None, max_session: int | None = None,
              tags: list[dict] | None = None) -> tuple[str, str]:
    """A fresh role with the given trust statements and inline policy; returns (name, arn)."""
    iam = iam_client(server)
    name = f"r-{uuid.uuid4().hex[:8]}"
    args = {"RoleName": name, "AssumeRolePolicyDocument": json.dumps(
        {"Version": "2012-10-17", "Statement": trust_statements})}
    if max_session:
        args["MaxSessionDuration"] = max_session
    if tags:
        args["Tags"] = tags
    arn = iam.create_role(**args)["Role"]["Arn"]
    if policy is not None:
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    return name, arn


def trust(principal_arn: str, *actions: str) -> dict:
    return {"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": list(actions) or "sts:AssumeRole"}


def bucket_with(s3, *keys: str) -> str:
    bucket = f"sts-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def cli_with(server, tmp_path: Path, creds: dict):
    """aws-cli bound to a credentials file holding `creds` (with the session token, if any)."""
    from e2e_helpers import AwsCli

    path = tmp_path / f"creds-{uuid.uuid4().hex[:6]}"
    lines = ["[default]", f"aws_access_key_id = {creds['AccessKeyId']}",
             f"aws_secret_access_key = {creds['SecretAccessKey']}"]
    if creds.get("SessionToken"):
        lines.append(f"aws_session_token = {creds['SessionToken']}")
    path.write_text("\n".join(lines) + "\n")
    return AwsCli(server.endpoint, path)


def test_policy_arns_narrow_the_session_to_role_and_union_of_session_policies(server, seed, s3, tmp_path):
    """PolicyArns: "The resulting session's permissions are the intersection of the role's
    identity-based policy and the session policies" (API_AssumeRole); the inline and managed
    session policies together are one OR-ed set (access_policies.html#policies-introduction)."""
    iam = iam_client(server)
    ro = iam.create_policy(PolicyName=f"ro-{uuid.uuid4().hex[:6]}", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{DATASET}/*"}]}))["Policy"]["Arn"]
    sts = client("sts", server, seed["runner"])
    resp = sts.assume_role(RoleArn=seed["role_arn"], RoleSessionName="arns", PolicyArns=[{"arn": ro}])
    assert resp["PackedPolicySize"] >= 1
    session = client("s3", server, resp["Credentials"])
    assert session.get_object(Bucket=DATASET, Key="wiki/part-0001.jsonl")["Body"].read() == b"{}\n"
    with pytest.raises(ClientError) as e:
        session.put_object(Bucket=OUT, Key="arns/x", Body=b"x")
    assert "because no session policy allows the s3:PutObject action" in e.value.response["Error"]["Message"]
    # Inline ∪ managed: the inline policy adds PutObject on the output bucket, still within the role.
    inline = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{OUT}/arns/*"}]})
    both = client("s3", server, sts.assume_role(RoleArn=seed["role_arn"], RoleSessionName="arns2",
                                                PolicyArns=[{"arn": ro}], Policy=inline)["Credentials"])
    both.put_object(Bucket=OUT, Key="arns/x", Body=b"x")
    assert both.get_object(Bucket=DATASET, Key="wiki/part-0001.jsonl")["Body"].read() == b"{}\n"
    with pytest.raises(ClientError):
        both.put_object(Bucket=OUT, Key="elsewhere/x", Body=b"x")
    # A managed policy granting more than the role does not widen the session.
    wide = iam.create_policy(PolicyName=f"wide-{uuid.uuid4().hex[:6]}", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))["Policy"]["Arn"]
    other = bucket_with(s3, "k")
    widened = client("s3", server, sts.assume_role(RoleArn=seed["role_arn"], RoleSessionName="wide",
                                                   PolicyArns=[{"arn": wide}])["Credentials"])
    with pytest.raises(ClientError) as e:
        widened.get_object(Bucket=other, Key="k")
    assert "because no identity-based policy allows" in e.value.response["Error"]["Message"]
    # Unknown ARNs and more than ten are refused.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=seed["role_arn"], RoleSessionName="bad",
                        PolicyArns=[{"arn": f"arn:aws:iam::{server.account_id}:policy/no-such-policy"}])
    assert error_code(e.value) == "InvalidParameterValue"
    arns = [iam.create_policy(PolicyName=f"p{i}-{uuid.uuid4().hex[:6]}", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))["Policy"]["Arn"]
        for i in range(11)]
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=seed["role_arn"], RoleSessionName="eleven", PolicyArns=[{"arn": a} for a in arns])
    assert error_code(e.value) == "ValidationError"
    # aws-cli: --policy-arns.
    cli = cli_with(server, tmp_path, seed["runner"])
    out = json.loads(cli.ok("sts", "assume-role", "--role-arn", seed["role_arn"], "--role-session-name", "cli-arns",
                            "--policy-arns", f"arn={ro}").stdout)
    cli_session = client("s3", server, out["Credentials"])
    with pytest.raises(ClientError):
        cli_session.put_object(Bucket=OUT, Key="arns/cli", Body=b"x")
    assert cli_session.get_object(Bucket=DATASET, Key="wiki/part-0001.jsonl")["Body"].read() == b"{}\n"


def test_session_tags_become_principal_tags_and_override_role_tags(server, seed, s3, tmp_path):
    """Session tags are `aws:PrincipalTag/KEY` of the session's requests and "override a role tag
    with the same key", regardless of case (id_session-tags.html#id_session-tags_know)."""
    bucket = bucket_with(s3, "ml/a.txt", "finance/b.txt")
    runner = _user_arn(server, seed)
    _, arn = make_role(server, [trust(runner, "sts:AssumeRole", "sts:TagSession")], {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                 "Resource": f"arn:aws:s3:::{bucket}/${{aws:PrincipalTag/team}}/*"}]},
        tags=[{"Key": "team", "Value": "finance"}])
    sts = client("sts", server, seed["runner"])
    plain = client("s3", server, sts.assume_role(RoleArn=arn, RoleSessionName="role-tag")["Credentials"])
    assert plain.get_object(Bucket=bucket, Key="finance/b.txt")["Body"].read() == b"finance/b.txt"
    tagged = client("s3", server, sts.assume_role(RoleArn=arn, RoleSessionName="tagged",
                                                  Tags=[{"Key": "Team", "Value": "ml"}])["Credentials"])
    assert tagged.get_object(Bucket=bucket, Key="ml/a.txt")["Body"].read() == b"ml/a.txt"
    with pytest.raises(ClientError) as e:
        tagged.get_object(Bucket=bucket, Key="finance/b.txt")
    assert error_code(e.value) == "AccessDenied", "the session tag replaced the role's team tag"
    # aws-cli: --tags.
    cli = cli_with(server, tmp_path, seed["runner"])
    out = json.loads(cli.ok("sts", "assume-role", "--role-arn", arn, "--role-session-name", "cli-tags",
                            "--tags", "Key=team,Value=ml").stdout)
    assert out["PackedPolicySize"] >= 1
    assert client("s3", server, out["Credentials"]).get_object(Bucket=bucket, Key="ml/a.txt")["Body"].read() == b"ml/a.txt"
    # AWS's tag rules: keys differing only in case, and the reserved aws: prefix, are refused.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="dup", Tags=[{"Key": "a", "Value": "1"}, {"Key": "A", "Value": "2"}])
    assert error_code(e.value) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="reserved", Tags=[{"Key": "aws:team", "Value": "ml"}])
    assert error_code(e.value) == "ValidationError"


def test_passing_session_tags_needs_sts_tag_session(server, seed):
    """"In addition to the action that matches the API operation, you must have the following
    permissions-only action in your policy: sts:TagSession"; aws:RequestTag/KEY and aws:TagKeys
    let the trust policy constrain the tags (id_session-tags.html#id_session-tags_permissions-required)."""
    runner = _user_arn(server, seed)
    sts = client("sts", server, seed["runner"])
    _, no_tag_session = make_role(server, [trust(runner)])
    assert sts.assume_role(RoleArn=no_tag_session, RoleSessionName="untagged")["Credentials"]["AccessKeyId"]
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=no_tag_session, RoleSessionName="tagged", Tags=[{"Key": "team", "Value": "ml"}])
    assert error_code(e.value) == "AccessDenied"
    assert "sts:TagSession" in e.value.response["Error"]["Message"]
    _, constrained = make_role(server, [
        trust(runner),
        {"Effect": "Allow", "Principal": {"AWS": runner}, "Action": "sts:TagSession",
         "Condition": {"StringEquals": {"aws:RequestTag/team": ["ml", "vision"]},
                       "ForAllValues:StringEquals": {"aws:TagKeys": ["team"],
                                                     "sts:TransitiveTagKeys": ["team"]}}}])
    assert sts.assume_role(RoleArn=constrained, RoleSessionName="ml", Tags=[{"Key": "team", "Value": "ml"}],
                           TransitiveTagKeys=["team"])["Credentials"]
    for tags, transitive in (([{"Key": "team", "Value": "finance"}], []),
                             ([{"Key": "team", "Value": "ml"}, {"Key": "cost", "Value": "1"}], [])):
        with pytest.raises(ClientError) as e:
            sts.assume_role(RoleArn=constrained, RoleSessionName="nope", Tags=tags, TransitiveTagKeys=transitive)
        assert error_code(e.value) == "AccessDenied", tags
    # A transitive key must name a tag of the request.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=constrained, RoleSessionName="nope", Tags=[{"Key": "team", "Value": "ml"}],
                        TransitiveTagKeys=["project"])
    assert error_code(e.value) == "InvalidParameterValue"


def test_transitive_tags_pass_through_role_chaining(server, seed, s3):
    """Role chaining (id_roles_terms-and-concepts.html#iam-term-role-chaining): a session assumes
    another role whose trust policy names the first role; the chained session lasts at most an
    hour and inherits the transitive session tags, which it cannot override
    (id_session-tags.html#id_session-tags_role-chaining)."""
    bucket = bucket_with(s3, "p1/a.txt", "c1/b.txt", "star/c.txt")
    runner = _user_arn(server, seed)
    # B first trusts the user only as a placeholder: its trust policy names A once A exists.
    b_name, b_arn = make_role(server, [trust(runner)], {
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [
                f"arn:aws:s3:::{bucket}/${{aws:PrincipalTag/project}}/*",
                f"arn:aws:s3:::{bucket}/${{aws:PrincipalTag/cost}}/*",
                f"arn:aws:s3:::{bucket}/${{aws:PrincipalTag/star}}/*"]}]},
        max_session=7200, tags=[{"Key": "project", "Value": "role-b"}])
    a_name, a_arn = make_role(server, [trust(runner, "sts:AssumeRole", "sts:TagSession")], {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                                                 "Resource": b_arn}]})
    iam = iam_client(server)
    iam.update_assume_role_policy(RoleName=b_name, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [trust(a_arn, "sts:AssumeRole", "sts:TagSession")]}))
    first = client("sts", server, seed["runner"]).assume_role(
        RoleArn=a_arn, RoleSessionName="hop-1",
        Tags=[{"Key": "project", "Value": "p1"}, {"Key": "cost", "Value": "c1"}],
        TransitiveTagKeys=["project"])["Credentials"]
    sts_a = client("sts", server, first)
    # Chained sessions last at most an hour.
    with pytest.raises(ClientError) as e:
        sts_a.assume_role(RoleArn=b_arn, RoleSessionName="hop-2", DurationSeconds=7200)
    assert error_code(e.value) == "ValidationError"
    assert "role chaining" in e.value.response["Error"]["Message"]
    # An inherited transitive tag cannot be overridden.
    with pytest.raises(ClientError) as e:
        sts_a.assume_role(RoleArn=b_arn, RoleSessionName="hop-2", Tags=[{"Key": "Project", "Value": "p2"}])
    assert error_code(e.value) == "InvalidParameterValue"
    second = sts_a.assume_role(RoleArn=b_arn, RoleSessionName="hop-2",
                               Tags=[{"Key": "star", "Value": "star"}])
    expires = second["Credentials"]["Expiration"]
    assert expires <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1, minutes=1)
    assert second["AssumedRoleUser"]["Arn"].endswith(f":assumed-role/{b_name}/hop-2")
    assert client("sts", server, second["Credentials"]).get_caller_identity()["Arn"] == second["AssumedRoleUser"]["Arn"]
    s3b = client("s3", server, second["Credentials"])
    # project=p1 came through (overriding role B's own project tag); cost was not transitive.
    assert s3b.get_object(Bucket=bucket, Key="p1/a.txt")["Body"].read() == b"p1/a.txt"
    assert s3b.get_object(Bucket=bucket, Key="star/c.txt")["Body"].read() == b"star/c.txt"
    with pytest.raises(ClientError):
        s3b.get_object(Bucket=bucket, Key="c1/b.txt")
    # The inherited tag stays transitive: a third hop (back to A, which trusts only the user)
    # is refused by A's trust policy, but B → B keeps project=p1.
    iam.update_assume_role_policy(RoleName=b_name, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [trust(a_arn, "sts:AssumeRole", "sts:TagSession"),
                                               trust(b_arn)]}))
    iam.put_role_policy(RoleName=b_name, PolicyName="chain", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": b_arn}]}))
    with pytest.raises(ClientError) as e:
        client("sts", server, second["Credentials"]).assume_role(RoleArn=a_arn, RoleSessionName="hop-3")
    assert error_code(e.value) == "AccessDenied"
    # The inherited transitive tag is a session tag of the new session: B's trust policy must
    # allow sts:TagSession for it, as for tags passed in the request (id_session-tags.html,
    # "Chaining roles with session tags").
    with pytest.raises(ClientError) as e:
        client("sts", server, second["Credentials"]).assume_role(RoleArn=b_arn, RoleSessionName="hop-3")
    assert error_code(e.value) == "AccessDenied" and "sts:TagSession" in str(e.value)
    iam.update_assume_role_policy(RoleName=b_name, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [trust(a_arn, "sts:AssumeRole", "sts:TagSession"),
                                               trust(b_arn, "sts:AssumeRole", "sts:TagSession")]}))
    third = client("sts", server, second["Credentials"]).assume_role(RoleArn=b_arn, RoleSessionName="hop-3")
    s3c = client("s3", server, third["Credentials"])
    assert s3c.get_object(Bucket=bucket, Key="p1/a.txt")["Body"].read() == b"p1/a.txt"
    with pytest.raises(ClientError):
        s3c.get_object(Bucket=bucket, Key="star/c.txt")  # star was not transitive


def test_get_session_token_acts_as_the_user(server, s3, seed, tmp_path):
    """GetSessionToken: credentials with "the same permissions as the IAM user", 900 s to 36 h
    (12 h by default); they cannot call IAM without MFA (keyhole has none) nor GetSessionToken,
    but can call AssumeRole and GetCallerIdentity (API_GetSessionToken)."""
    bucket = bucket_with(s3, "mine/a.txt", "other/b.txt")
    iam = iam_client(server)
    name, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "iam:ListUsers"], "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/mine/*"}]})
    user = {"AccessKeyId": ak, "SecretAccessKey": sk}
    sts = client("sts", server, user)
    before = dt.datetime.now(dt.timezone.utc)
    creds = sts.get_session_token()["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"]
    assert abs((creds["Expiration"] - before).total_seconds() - 43200) < 60, "12 hours by default"
    ident = client("sts", server, creds).get_caller_identity()
    me = client("sts", server, user).get_caller_identity()
    assert ident["Arn"] == me["Arn"] == f"arn:aws:iam::{server.account_id}:user/{name}"
    assert ident["UserId"] == me["UserId"] and ident["UserId"].startswith("AIDA")
    # Allowed exactly what the user is allowed, with the user's current policies.
    session = client("s3", server, creds)
    assert session.get_object(Bucket=bucket, Key="other/b.txt")["Body"].read() == b"other/b.txt"
    session.put_object(Bucket=bucket, Key="mine/new.txt", Body=b"x")
    with pytest.raises(ClientError) as e:
        session.put_object(Bucket=bucket, Key="other/new.txt", Body=b"x")
    assert f"User: arn:aws:iam::{server.account_id}:user/{name} is not authorized" in e.value.response["Error"]["Message"]
    iam.put_user_policy(UserName=name, PolicyName="deny-get", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]}))
    with pytest.raises(ClientError):
        session.get_object(Bucket=bucket, Key="other/b.txt")
    # No IAM without MFA, even where the user's policy allows it; no GetSessionToken again.
    iam_client(server, ak, sk).list_users()
    with pytest.raises(ClientError) as e:
        boto3.session.Session().client(
            "iam", endpoint_url=server.endpoint, aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
            region_name=REGION, config=botocore.config.Config(retries={"max_attempts": 1})).list_users()
    assert error_code(e.value) == "AccessDenied" and "MFA" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        client("sts", server, creds).get_session_token()
    assert error_code(e.value) == "AccessDenied"
    # Durations: 900 s to 36 h for users; the root user gets none here.
    short = sts.get_session_token(DurationSeconds=900)["Credentials"]
    assert abs((short["Expiration"] - dt.datetime.now(dt.timezone.utc)).total_seconds() - 900) < 60
    unchecked = boto3.session.Session().client(
        "sts", endpoint_url=server.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk, region_name=REGION,
        config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))
    for bad in (899, 129601):
        with pytest.raises(ClientError) as e:
            unchecked.get_session_token(DurationSeconds=bad)
        assert error_code(e.value) == "ValidationError", bad
    with pytest.raises(ClientError) as e:
        client("sts", server, {"AccessKeyId": server.access_key, "SecretAccessKey": server.secret_key}).get_session_token()
    assert error_code(e.value) == "AccessDenied"
    # The session may assume a role that trusts the user.
    runner_session = client("sts", server, client("sts", server, seed["runner"]).get_session_token(
        DurationSeconds=900)["Credentials"])
    assumed = runner_session.assume_role(RoleArn=seed["role_arn"], RoleSessionName="via-gst")
    assert assumed["AssumedRoleUser"]["Arn"].endswith("/via-gst")
    # aws-cli: get-session-token, then the temporary credentials from a credentials file.
    cli = cli_with(server, tmp_path, user)
    out = json.loads(cli.ok("sts", "get-session-token", "--duration-seconds", "900").stdout)["Credentials"]
    cli_session = cli_with(server, tmp_path, out)
    who = json.loads(cli_session.ok("sts", "get-caller-identity").stdout)
    assert who["Arn"] == me["Arn"]
    cp = cli_session("iam", "list-users")
    assert cp.returncode != 0 and "AccessDenied" in cp.stderr


def test_packed_policy_too_large_reports_the_percentage(server, seed):
    """"The total packed size of the session policies and session tags combined is too large. If
    the operation fails, the error message indicates by percentage how close the policies and tags
    combined are to the upper size limit" (id_session-tags.html; AWS's messages from
    https://repost.aws/knowledge-center/iam-role-aws-sts-error)."""
    import re

    runner = _user_arn(server, seed)
    _, arn = make_role(server, [trust(runner, "sts:AssumeRole", "sts:TagSession")], {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
    sts = client("sts", server, seed["runner"])
    ok = sts.assume_role(RoleArn=arn, RoleSessionName="small", Tags=[{"Key": "team", "Value": "ml"}])
    assert 1 <= ok["PackedPolicySize"] <= 100
    many = [{"Key": f"key-{i:02d}", "Value": "v" * 200} for i in range(20)]  # 20 * 206 characters
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="many-tags", Tags=many)
    assert error_code(e.value) == "PackedPolicyTooLarge"
    m = re.search(r"Packed size of session tags consumes (\d+)% of allotted space", e.value.response["Error"]["Message"])
    assert m and int(m.group(1)) == -(-20 * 206 * 100 // 2048), e.value.response["Error"]["Message"]
    big = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": f"S{i}", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::bucket-{i:03d}/*"}
        for i in range(40)]})
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="big-policy", Policy=big)
    assert error_code(e.value) == "PackedPolicyTooLarge"
    m = re.search(r"Packed policy consumes (\d+)% of allotted space, please use smaller policy", e.value.response["Error"]["Message"])
    assert m and int(m.group(1)) > 100, e.value.response["Error"]["Message"]


# Issue 11 item 6: STS and IAM speak their own error XML, and the global services accept the
# empty region botocore signs with when `region_name=''`.

STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"


def _query_error(resp) -> tuple[str, str]:
    """(root tag with namespace, Code) of a Query-protocol `<ErrorResponse>`."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(resp.body)
    code = root.find(f".//{root.tag.split('}')[0]}}}Code")
    return root.tag, code.text if code is not None else ""


def test_sts_and_iam_accept_the_empty_region_botocore_sends(server):
    for service, call in (("sts", "get_caller_identity"), ("iam", "list_users")):
        c = boto3.session.Session().client(
            service,
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name="",
        )
        seen = []
        c.meta.events.register("before-send", lambda request, **kw: seen.append(request.headers["Authorization"]))
        getattr(c, call)()
        assert f"//{service}/aws4_request".encode() in seen[0], seen


def test_sts_errors_are_in_the_sts_namespace(server):
    from e2e_helpers import raw_request

    body = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fnone&RoleSessionName=ss"
    url = f"{server.endpoint}/"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Host": f"127.0.0.1:{server.port}"}
    req = botocore.awsrequest.AWSRequest(method="POST", url=url, headers=headers, data=body)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(server.access_key, server.secret_key), "sts", REGION).add_auth(req)
    r = raw_request(server.port, "POST", "/", dict(req.headers), body)
    assert r.status in (400, 403), r.body
    tag, code = _query_error(r)
    assert tag == f"{STS_NS}ErrorResponse", r.body
    assert code, r.body
    # And through boto3, which parses it: the real code, not a parse failure.
    sts = client("sts", server, {"AccessKeyId": server.access_key, "SecretAccessKey": server.secret_key})
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/none", RoleSessionName="ss")
    assert error_code(e.value) == code


def test_malformed_sts_and_iam_signatures_are_answered_in_query_format(server):
    from e2e_helpers import raw_request

    sig = "0" * 64
    for service, ns in (("sts", STS_NS), ("iam", IAM_NS)):
        for scope in (f"20261203/{REGION}/{service}/aws5_request", f"2026-12-03/{REGION}/{service}/aws4_request"):
            auth = f"AWS4-HMAC-SHA256 Credential={server.access_key}/{scope}, SignedHeaders=host;x-amz-date, Signature={sig}"
            headers = {
                "Host": f"127.0.0.1:{server.port}",
                "X-Amz-Date": "20261203T000000Z",
                "Authorization": auth,
                "Content-Type": "application/x-www-form-urlencoded",
            }
            r = raw_request(server.port, "POST", "/", headers, b"Action=GetCallerIdentity&Version=2011-06-15")
            assert r.status == 400, r.body
            tag, code = _query_error(r)
            assert (tag, code) == (f"{ns}ErrorResponse", "IncompleteSignature"), r.body
    # An S3 request with the same fault still gets S3's <Error>.
    auth = f"AWS4-HMAC-SHA256 Credential={server.access_key}/20261203/{REGION}/s3/aws5_request, SignedHeaders=host;x-amz-date, Signature={sig}"
    r = raw_request(server.port, "GET", "/", {"Host": f"127.0.0.1:{server.port}", "X-Amz-Date": "20261203T000000Z", "Authorization": auth})
    assert r.status == 400 and b"<Error>" in r.body and r.error_code() == "AuthorizationHeaderMalformed", r.body


def test_sts_scope_for_another_region_is_refused_in_query_format(server):
    sts = boto3.session.Session().client(
        "sts",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="eu-west-3",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as e:
        sts.get_caller_identity()
    assert error_code(e.value) == "IncompleteSignature"
    assert REGION in str(e.value)


def test_update_role_changes_description_and_the_longest_session(server, seed):
    """UpdateRole (https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateRole.html):
    Description and MaxSessionDuration, each only when given; AssumeRole's DurationSeconds is
    then checked against the new maximum."""
    iam = iam_client(server)
    name, arn = make_role(server, [trust(_user_arn(server, seed))])
    before = iam.get_role(RoleName=name)["Role"]
    sts = client("sts", server, seed["runner"])
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="long", DurationSeconds=7200)
    assert error_code(e.value) == "ValidationError"
    iam.update_role(RoleName=name, Description="nightly training", MaxSessionDuration=43200)
    after = iam.get_role(RoleName=name)["Role"]
    assert (after["RoleId"], after["Arn"]) == (before["RoleId"], before["Arn"])
    assert (after["Description"], after["MaxSessionDuration"]) == ("nightly training", 43200)
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="long", DurationSeconds=7200)["Credentials"]
    remember_secrets(creds["SecretAccessKey"], creds["SessionToken"])
    # Only what is given changes; a bad value or an unknown role changes nothing.
    iam.update_role(RoleName=name, Description="")
    assert iam.get_role(RoleName=name)["Role"]["MaxSessionDuration"] == 43200
    # botocore refuses values under 3600 itself; the server checks the range too.
    with pytest.raises(ClientError) as e:
        iam.update_role(RoleName=name, MaxSessionDuration=43201)
    assert error_code(e.value) == "ValidationError"
    unchecked = boto3.session.Session().client(
        "iam", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name=REGION,
        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        unchecked.update_role(RoleName=name, MaxSessionDuration=3599)
    assert error_code(e.value) == "ValidationError"
    assert iam.get_role(RoleName=name)["Role"]["MaxSessionDuration"] == 43200
    with pytest.raises(ClientError) as e:
        iam.update_role(RoleName=f"{name}-none", MaxSessionDuration=7200)
    assert error_code(e.value) == "NoSuchEntity"
    # Description follows AWS's pattern (tab, newlines, printable ASCII, Latin-1) and length, at
    # UpdateRole and CreateRole alike: a control character once broke ListRoles for everyone
    # (review 21, M1).
    for bad in ("ok\x01", "\ufffe", "x" * 1001):
        with pytest.raises(ClientError) as e:
            iam.update_role(RoleName=name, Description=bad)
        assert error_code(e.value) == "ValidationError", bad
        with pytest.raises(ClientError) as e:
            iam.create_role(RoleName=f"{name}-d", AssumeRolePolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [trust(_user_arn(server, seed))]}), Description=bad)
        assert error_code(e.value) == "ValidationError", bad
    iam.update_role(RoleName=name, Description="Caf\u00e9 jobs\tnightly")
    assert iam.get_role(RoleName=name)["Role"]["Description"] == "Caf\u00e9 jobs\tnightly"
    assert name in [r["RoleName"] for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]]
    # UpdateRole is an IAM action like the others: a user without iam:UpdateRole is refused.
    with pytest.raises(ClientError) as e:
        client("iam", server, seed["other"]).update_role(RoleName=name, MaxSessionDuration=3600)
    assert error_code(e.value) == "AccessDenied" and "iam:UpdateRole" in str(e.value)
