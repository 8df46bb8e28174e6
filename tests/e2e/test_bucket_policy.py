"""Bucket policies and Block Public Access (issue 4, items 5 and 6), through aws-cli `s3api`,
boto3 (S3 and S3 Control) and unsigned requests.

AWS pages: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-policies.html,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, AwsCli, make_client
from test_iam import error_code, iam_client, new_user

_real_getaddrinfo = socket.getaddrinfo


def _resolve_account_prefix(host, *args, **kwargs):
    # S3 Control clients put the account id in front of the endpoint's host
    # (`ACCOUNT.127.0.0.1`); this process maps such names to loopback itself.
    if isinstance(host, str) and host.endswith(".127.0.0.1"):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture
def s3control(server):
    socket.getaddrinfo = _resolve_account_prefix
    try:
        yield boto3.session.Session().client(
            "s3control", endpoint_url=server.endpoint, region_name=REGION,
            aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
            config=botocore.config.Config(retries={"max_attempts": 1}))
    finally:
        socket.getaddrinfo = _real_getaddrinfo


def anonymous_get(server, bucket: str, key: str) -> int:
    try:
        with urllib.request.urlopen(f"{server.endpoint}/{bucket}/{key}", timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_bucket_policy_grants_a_user_and_denies_root(server, s3, aws, tmp_path):
    bucket = f"bp-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="shared/a.txt", Body=b"a")
    name, ak, sk = new_user(iam_client(server))
    user = make_client(server.endpoint, ak, sk)
    with pytest.raises(ClientError) as e:
        user.get_object(Bucket=bucket, Key="shared/a.txt")
    assert error_code(e.value) == "AccessDenied"

    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "GrantUser", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:user/{name}"},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/shared/*"},
        {"Sid": "NoDeletes", "Effect": "Deny", "Principal": "*",
         "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    f = tmp_path / "policy.json"
    f.write_text(json.dumps(policy))
    aws.ok("s3api", "put-bucket-policy", "--bucket", bucket, "--policy", f"file://{f}")
    got = json.loads(aws.ok("s3api", "get-bucket-policy", "--bucket", bucket).stdout)
    assert json.loads(got["Policy"]) == policy
    status = json.loads(aws.ok("s3api", "get-bucket-policy-status", "--bucket", bucket).stdout)
    assert status["PolicyStatus"]["IsPublic"] is False

    assert user.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"a"
    with pytest.raises(ClientError):
        user.put_object(Bucket=bucket, Key="shared/b.txt", Body=b"b")
    # Root bypasses identity checks but not the bucket policy's explicit deny...
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="shared/a.txt")
    assert error_code(e.value) == "AccessDenied"
    assert "explicit deny in a resource-based policy" in e.value.response["Error"]["Message"]
    # ...and can always manage the policy.
    aws.ok("s3api", "delete-bucket-policy", "--bucket", bucket)
    cp = aws("s3api", "get-bucket-policy", "--bucket", bucket)
    assert cp.returncode != 0 and "NoSuchBucketPolicy" in cp.stderr
    s3.delete_object(Bucket=bucket, Key="shared/a.txt")


def test_malformed_bucket_policy_names_the_problem(s3, aws, tmp_path):
    bucket = f"bpm-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    f = tmp_path / "bad.json"
    f.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Alow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]}')
    cp = aws("s3api", "put-bucket-policy", "--bucket", bucket, "--policy", f"file://{f}")
    assert cp.returncode != 0 and "MalformedPolicy" in cp.stderr
    assert "Effect" in cp.stderr, cp.stderr
    cp = aws("s3api", "get-bucket-policy", "--bucket", bucket)
    assert "NoSuchBucketPolicy" in cp.stderr, "nothing was stored"


def test_public_access_is_blocked_by_default_and_opens_only_when_allowed(fresh_server_factory):
    """A public bucket policy is refused while the account blocks public policies (the default);
    with BPA off it lets anonymous callers read, and RestrictPublicBuckets on the bucket shuts
    them out again. Runs on its own server: it changes account settings."""
    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    aws = AwsCli(kp.endpoint, kp.creds_path)
    account = kp.account_id()

    class Srv:  # what anonymous_get needs
        endpoint = kp.endpoint

    bucket = "public-datasets"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="open/readme.txt", Body=b"hello")
    public = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/open/*"}]})
    assert anonymous_get(Srv, bucket, "open/readme.txt") == 403
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=public)
    assert error_code(e.value) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="open/x", Body=b"x", ACL="public-read")
    assert error_code(e.value) == "AccessDenied", "BlockPublicAcls"

    socket.getaddrinfo = _resolve_account_prefix
    try:
        control = boto3.session.Session().client(
            "s3control", endpoint_url=kp.endpoint, region_name=REGION, aws_access_key_id=ak,
            aws_secret_access_key=sk, config=botocore.config.Config(retries={"max_attempts": 1}))
        cfg = control.get_public_access_block(AccountId=account)["PublicAccessBlockConfiguration"]
        assert cfg == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                       "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        control.put_public_access_block(AccountId=account, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
        assert control.get_public_access_block(AccountId=account)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is False
    finally:
        socket.getaddrinfo = _real_getaddrinfo

    s3.put_bucket_policy(Bucket=bucket, Policy=public)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert anonymous_get(Srv, bucket, "open/readme.txt") == 200
    assert anonymous_get(Srv, bucket, "closed.txt") == 403

    # Bucket-level setting with aws-cli s3api adds to the account's.
    aws.ok("s3api", "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
           "BlockPublicAcls=false,IgnorePublicAcls=false,BlockPublicPolicy=false,RestrictPublicBuckets=true")
    got = json.loads(aws.ok("s3api", "get-public-access-block", "--bucket", bucket).stdout)
    assert got["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert anonymous_get(Srv, bucket, "open/readme.txt") == 403
    aws.ok("s3api", "delete-public-access-block", "--bucket", bucket)
    cp = aws("s3api", "get-public-access-block", "--bucket", bucket)
    assert cp.returncode != 0 and "NoSuchPublicAccessBlockConfiguration" in cp.stderr
    assert anonymous_get(Srv, bucket, "open/readme.txt") == 200
    # Anonymous callers never get more than the policy grants.
    req = urllib.request.Request(f"{kp.endpoint}/{bucket}/open/new.txt", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403


def _root_of(kp):
    """The root user's keys, an S3 client with them, and the account id."""
    ak, sk = kp.credentials()
    sts = boto3.client("sts", endpoint_url=kp.endpoint, region_name="us-east-1",
                       aws_access_key_id=ak, aws_secret_access_key=sk)
    return ak, sk, make_client(kp.endpoint, ak, sk), sts.get_caller_identity()["Account"]


def test_a_policy_written_while_its_bucket_is_deleted_does_not_outlive_it(fresh_server_factory):
    """Review 26: a PutBucketPolicy whose body was still arriving when the bucket was deleted
    stored the policy for the deleted name (204), and a bucket created later under that name
    inherited its grants. A setting is now written only to the bucket its request found (its
    creation time, checked under the name's lock): NoSuchBucket, and nothing is left for the
    next bucket of that name."""
    import time

    from e2e_helpers import sign

    kp = fresh_server_factory()
    ak, sk, s3, account = _root_of(kp)
    s3.create_bucket(Bucket="doomed")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::doomed/*"}]}).encode()
    headers = {"Host": f"127.0.0.1:{kp.port}"}
    signed = sign("PUT", f"{kp.endpoint}/doomed?policy", ak, sk, headers, policy)
    head = "PUT /doomed?policy HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    with socket.create_connection(("127.0.0.1", kp.port)) as c:
        c.sendall(f"{head}Content-Length: {len(policy)}\r\n\r\n".encode() + policy[:5])
        time.sleep(0.3)  # the handler has looked the bucket up and waits for the body
        s3.delete_bucket(Bucket="doomed")
        c.sendall(policy[5:])
        answer = c.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 404") and "NoSuchBucket" in answer, answer
    s3.create_bucket(Bucket="doomed")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket="doomed")
    assert e.value.response["Error"]["Code"] == "NoSuchBucketPolicy"
    # Review 27: the same, with the bucket deleted and created again (and given its owner's own
    # policy) before the body ends: the request is about the bucket it found, which is gone.
    own = policy.replace(b'"s3:GetObject"', b'"s3:ListBucket"').replace(b"doomed/*", b"doomed")
    signed = sign("PUT", f"{kp.endpoint}/doomed?policy", ak, sk, headers, policy)
    head = "PUT /doomed?policy HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    with socket.create_connection(("127.0.0.1", kp.port)) as c:
        c.sendall(f"{head}Content-Length: {len(policy)}\r\n\r\n".encode() + policy[:5])
        time.sleep(0.3)
        s3.delete_bucket(Bucket="doomed")
        s3.create_bucket(Bucket="doomed")
        s3.put_bucket_policy(Bucket="doomed", Policy=own.decode())
        c.sendall(policy[5:])
        answer = c.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 404") and "NoSuchBucket" in answer, answer
    assert json.loads(s3.get_bucket_policy(Bucket="doomed")["Policy"]) == json.loads(own)


def test_a_new_bucket_starts_without_the_settings_a_crash_left_for_its_name(fresh_server_factory):
    """DeleteBucket removes the bucket from the store, then its settings from the state; a crash
    between the two (review 26: kill -9 during DeleteBuckets) left the policy and tags, and a
    bucket created later under the name took them on. CreateBucket now removes what the state
    still holds for a name no bucket has. The leftovers are made here as that crash leaves them:
    written into the stopped gateway's state for a name no bucket has."""
    import sqlite3

    kp = fresh_server_factory()
    ak, sk, s3, account = _root_of(kp)
    s3.create_bucket(Bucket="first")
    s3.put_bucket_policy(Bucket="first", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reborn/*"}]}))
    s3.put_bucket_tagging(Bucket="first", Tagging={"TagSet": [{"Key": "team", "Value": "old"}]})
    assert kp.stop() == 0
    db = sqlite3.connect(kp.data_dir / "state.db")
    with db:
        db.execute("INSERT INTO bucket_policies SELECT 'reborn', document FROM bucket_policies WHERE bucket = 'first'")
        db.execute("INSERT INTO bucket_tags SELECT 'reborn', tags FROM bucket_tags WHERE bucket = 'first'")
    db.close()
    kp.start()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="reborn")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket="reborn")
    assert e.value.response["Error"]["Code"] == "NoSuchBucketPolicy"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket="reborn")
    assert e.value.response["Error"]["Code"] == "NoSuchTagSet"
    # The bucket that was never deleted keeps its own.
    assert "reborn/*" in s3.get_bucket_policy(Bucket="first")["Policy"]
