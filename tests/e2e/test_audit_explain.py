"""Issue 17 item 4: `keyhole audit explain REQUEST_ID` answers "why was I denied?" from the trail:
the decision made again with the policies in force then and now, the deciding statements, and
the condition that failed, in words.

Requests are made with boto3 as IAM users of the session's gateway; their request ids come from
the answers (`x-amz-request-id`), as a user would quote them."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import keyhole_cli, make_client, remember_secrets, wait_for_events
from test_iam import error_code, iam_client, new_user
from test_sts import client


def denied(call) -> str:
    """Runs a call that must be refused with AccessDenied; returns the answer's request id."""
    with pytest.raises(ClientError) as e:
        call()
    assert error_code(e.value) == "AccessDenied"
    return e.value.response["ResponseMetadata"]["RequestId"]


def explain(server, request_id: str, fmt: str = "json"):
    wait_for_events(server.data_dir, lambda ev: any(
        e["requestID"] == request_id and e["stage"] == "completed" for e in ev))
    r = keyhole_cli("audit", "explain", request_id, "--data-dir", str(server.data_dir), "--format", fmt)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if fmt == "json" else r.stdout


@pytest.fixture
def bucket(s3):
    name = f"explain-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="data/a.txt", Body=b"a")
    return name


def vpc_only(bucket: str, cidr: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "AllowFromVpc", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"IpAddress": {"aws:SourceIp": cidr}}}]}


def test_a_failed_source_ip_condition_is_named_then_and_a_policy_change_shows_now(server, bucket):
    iam = iam_client(server)
    name, ak, sk = new_user(iam, policy=vpc_only(bucket, "10.0.0.0/8"))
    user = make_client(server.endpoint, ak, sk)
    rid = denied(lambda: user.get_object(Bucket=bucket, Key="data/a.txt"))

    x = explain(server, rid)
    assert x["requestID"] == rid and x["decision"] == "Deny" and x["httpStatus"] == 403
    [check] = x["checks"]
    assert check["action"] == "s3:GetObject" and check["resource"] == f"arn:aws:s3:::{bucket}/data/a.txt"
    assert check["then"]["decision"] == "ImplicitlyDenied"
    why = " | ".join(check["then"]["why"])
    assert "aws:SourceIp 127.0.0.1 is not in 10.0.0.0/8" in why, why
    assert "statement AllowFromVpc of inline policy `p`" in why, why
    assert check["now"]["decision"] == "ImplicitlyDenied"

    # The policy changes after the request: "then" still rebuilds the old document (kept by
    # digest), "now" uses the new one.
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(vpc_only(bucket, "127.0.0.0/8")))
    assert user.get_object(Bucket=bucket, Key="data/a.txt")["Body"].read() == b"a"
    x = explain(server, rid)
    [check] = x["checks"]
    assert check["then"]["decision"] == "ImplicitlyDenied"
    assert check["now"]["decision"] == "Allowed"
    [st] = check["now"]["statements"]
    assert "AllowFromVpc" in st["statement"] and "127.0.0.0/8" in st["text"]
    assert check["then"]["policies"][0]["sha256"] != check["now"]["policies"][0]["sha256"]

    text = explain(server, rid, "text")
    assert f"request {rid}" in text
    assert "then: ImplicitlyDenied" in text and "now: Allowed" in text
    assert "aws:SourceIp 127.0.0.1 is not in 10.0.0.0/8" in text
    assert "the decision changed since" in text


def test_an_implicit_deny_says_no_statement_allows(server, bucket):
    iam = iam_client(server)
    _, ak, sk = new_user(iam, policy=vpc_only(bucket, "127.0.0.0/8"))
    user = make_client(server.endpoint, ak, sk)
    rid = denied(lambda: user.put_object(Bucket=bucket, Key="data/b.txt", Body=b"b"))
    [check] = explain(server, rid)["checks"]
    assert check["then"]["decision"] == "ImplicitlyDenied"
    assert check["then"]["why"] == [
        f"no identity-based policy statement allows s3:PutObject on arn:aws:s3:::{bucket}/data/b.txt"]


def test_an_explicit_deny_names_the_deny_statement_with_its_text(server, s3, bucket):
    iam = iam_client(server)
    name, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "NoDeletes", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    user = make_client(server.endpoint, ak, sk)
    rid = denied(lambda: user.delete_object(Bucket=bucket, Key="data/a.txt"))
    [check] = explain(server, rid)["checks"]
    assert check["then"]["decision"] == "ExplicitlyDenied"
    assert check["then"]["why"] == ["explicitly denied by bucket policy statement 0 (Sid NoDeletes)"]
    [st] = check["then"]["statements"]
    assert st["effect"] == "Deny" and '"NoDeletes"' in st["text"]
    # The bucket policy goes: now the user's own allow decides.
    s3.delete_bucket_policy(Bucket=bucket)
    [check] = explain(server, rid)["checks"]
    assert check["then"]["decision"] == "ExplicitlyDenied" and check["now"]["decision"] == "Allowed"


def test_an_allowed_request_and_bad_input(server, s3, bucket):
    s3.head_bucket(Bucket=bucket)
    # The root user's request: allowed, with nothing more than its deciding statements.
    obj = s3.get_object(Bucket=bucket, Key="data/a.txt")
    rid = obj["ResponseMetadata"]["RequestId"]
    [check] = explain(server, rid)["checks"]
    assert check["recorded"] == "Allow"
    assert "recorded for denials" in check["then"]["unavailable"]

    r = keyhole_cli("audit", "explain", "not-an-id!", "--data-dir", str(server.data_dir))
    assert r.returncode != 0 and "REQUEST_ID `not-an-id!` is not a request id" in r.stderr
    r = keyhole_cli("audit", "explain", "0000000000000000", "--data-dir", str(server.data_dir))
    assert r.returncode != 0 and "no event with request id 0000000000000000" in r.stderr


def test_a_role_sessions_s3_prefix_condition_through_aws_cli_and_a_role_policy_change(server, aws, bucket):
    """A role session lists outside the prefix its role grants: the failed s3:prefix condition is
    named; the role's policy then changes, and "now" reads the role's current policies."""
    iam = iam_client(server)
    runner, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]})
    role = f"explain-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:user/{runner}"},
        "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName=role, Path="/teams/", AssumeRolePolicyDocument=json.dumps(trust))

    def homes(prefix: str) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "ListHome", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": prefix}}}]})

    iam.put_role_policy(RoleName=role, PolicyName="homes", PolicyDocument=homes("home/*"))
    sts = client("sts", server, {"AccessKeyId": ak, "SecretAccessKey": sk})
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{server.account_id}:role/teams/{role}",
                            RoleSessionName="s1")["Credentials"]
    remember_secrets(creds["SecretAccessKey"], creds["SessionToken"])
    env = {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
           "AWS_SESSION_TOKEN": creds["SessionToken"]}
    r = aws("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "data/", "--debug", extra_env=env)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    rid = re.findall(r"x-amz-request-id['\"]?: ['\"]?([0-9A-F]{16})", r.stderr)[-1]

    [check] = explain(server, rid)["checks"]
    assert check["action"] == "s3:ListBucket"
    why = " | ".join(check["then"]["why"])
    assert "s3:prefix data/ does not match home/*" in why and "statement ListHome of inline policy `homes`" in why, why
    assert check["now"]["decision"] == "ImplicitlyDenied"
    iam.put_role_policy(RoleName=role, PolicyName="homes", PolicyDocument=homes("data/*"))
    [check] = explain(server, rid)["checks"]
    assert check["then"]["decision"] == "ImplicitlyDenied" and check["now"]["decision"] == "Allowed"
