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
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, sign
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
    return sts.assume_role(**args)["Credentials"]


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
    headers = sign("PUT", f"{server.endpoint}{path}", creds["AccessKeyId"], creds["SecretAccessKey"],
                   {"Host": f"127.0.0.1:{server.port}", "X-Amz-Security-Token": creds["SessionToken"]}, b"x")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(source, 0))
    try:
        conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", "1")
        conn.endheaders(b"x")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


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
