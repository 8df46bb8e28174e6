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
