"""`aws s3control get/put/delete-public-access-block --account-id ...` (issue 4) with the real
aws-cli, in its own process.

S3 Control clients send every request to `ACCOUNT.<endpoint host>`. RFC 6761 section 6.3 makes
every name under `localhost` a loopback name, and resolvers such as systemd-resolved answer them,
but this machine's glibc does not. The aws-cli process therefore gets a `sitecustomize` that maps
`*.localhost` to 127.0.0.1 (nothing else changes: the gateway sees the real Host header). On a
machine that resolves `*.localhost`, the same commands work without it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from e2e_helpers import aws_bin, aws_env

SITECUSTOMIZE = '''
import socket
_real = socket.getaddrinfo
def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _real(host, *args, **kwargs)
socket.getaddrinfo = _getaddrinfo
'''


def s3control(server, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = aws_env(server.creds_path)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([aws_bin(), "--endpoint-url", f"http://localhost:{server.port}", "s3control", *args,
                           "--account-id", server.account_id, "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_account_public_access_block_with_aws_cli(fresh_server_factory, tmp_path):
    kp = fresh_server_factory()

    class S:
        port, creds_path, account_id = kp.port, kp.creds_path, kp.account_id()

    got = s3control(S, tmp_path, "get-public-access-block")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    put = s3control(S, tmp_path, "put-public-access-block", "--public-access-block-configuration",
                    "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=false,RestrictPublicBuckets=false")
    assert put.returncode == 0, put.stderr
    got = s3control(S, tmp_path, "get-public-access-block")
    assert json.loads(got.stdout)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is False
    deleted = s3control(S, tmp_path, "delete-public-access-block")
    assert deleted.returncode == 0, deleted.stderr
    got = s3control(S, tmp_path, "get-public-access-block")
    assert got.returncode != 0 and "NoSuchPublicAccessBlockConfiguration" in got.stderr, got.stdout + got.stderr


def test_keyhole_admin_public_access_block_needs_no_account_host_name(fresh_server_factory, tmp_path):
    """`keyhole admin public-access-block get|put` (issue 11): the same S3 Control operations sent
    to the gateway's own address, so no ACCOUNT.localhost name has to resolve; aws-cli's
    s3control sees the same settings; a setting not given keeps its value."""
    import boto3
    from botocore.exceptions import ClientError

    from e2e_helpers import keyhole_bin, make_client

    kp = fresh_server_factory()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(kp.creds_path), AWS_CONFIG_FILE="/dev/null",
               KEYHOLE_ENDPOINT=kp.endpoint)

    def keyhole(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(keyhole_bin()), "admin", "public-access-block", *args], capture_output=True,
                              text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)

    got = keyhole("get")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    put = keyhole("put", "--block-public-policy", "false")
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is False

    class S:
        port, creds_path, account_id = kp.port, kp.creds_path, kp.account_id()

    seen = json.loads(s3control(S, tmp_path, "get-public-access-block").stdout)["PublicAccessBlockConfiguration"]
    assert seen == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
                    "RestrictPublicBuckets": True}, seen
    # It takes effect: a public bucket policy is accepted now, and refused again once put back.
    s3 = make_client(kp.endpoint, *kp.credentials())
    s3.create_bucket(Bucket="pab")
    public = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                                  "Action": "s3:GetObject",
                                                                  "Resource": "arn:aws:s3:::pab/*"}]})
    s3.put_bucket_policy(Bucket="pab", Policy=public)
    s3.delete_bucket_policy(Bucket="pab")
    assert keyhole("put", "--block-public-policy", "true").returncode == 0
    try:
        s3.put_bucket_policy(Bucket="pab", Policy=public)
        raise AssertionError("a public policy was accepted with BlockPublicPolicy on")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDenied", e.response
    # Nothing to change is an error that names the flags; so is a caller without the right.
    nothing = keyhole("put")
    flat = "".join(nothing.stderr.replace("│", "").split())  # miette wraps the report, even inside words
    assert nothing.returncode != 0 and "--block-public-policy" in flat, nothing.stderr
    iam = boto3.session.Session().client("iam", endpoint_url=kp.endpoint, region_name="us-east-1",
                                         aws_access_key_id=kp.credentials()[0],
                                         aws_secret_access_key=kp.credentials()[1])
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    creds = tmp_path / "nobody"
    creds.write_text(f"[default]\naws_access_key_id = {key['AccessKeyId']}\n"
                     f"aws_secret_access_key = {key['SecretAccessKey']}\n")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    denied = keyhole("get")
    said = "".join(denied.stderr.replace("│", "").split())
    assert denied.returncode != 0 and "AccessDenied" in said and "GetAccountPublicAccessBlock" in said, denied.stderr
