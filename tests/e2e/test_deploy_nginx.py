"""docs/DEPLOY.md's nginx example works (issue 14, item 7).

The test takes the nginx block after the `<!-- deploy-nginx -->` marker in docs/DEPLOY.md, changes
only its three ports, and runs nginx with it (wrapped in a minimal nginx.conf: pid, logs and temp
directories in a temporary directory) in front of two keyhole nodes that share a private
PostgreSQL cluster (`pg_cluster.PgCluster`), one master key and one upstream store (s3s-fs), with
`--trusted-proxy 127.0.0.1/32`. Through nginx, with boto3, it does a multipart upload whose parts
reach both nodes and a GET of the object, then checks that `aws:SourceIp` is the client's address:
a policy allowing GetObject only from 127.0.0.5/32 admits a client bound to 127.0.0.5 and
refuses one bound to 127.0.0.6, also when that one claims 127.0.0.5 in its own X-Forwarded-For.

nginx comes from the PATH, or Debian's `nginx` package installed with apt-get when the suite runs
as root; otherwise the test fails saying so (it never skips).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid

import boto3
import botocore.config
import pytest
from boto3.s3.transfer import TransferConfig

from conftest import start_server, upstream_args
from e2e_helpers import REGION, REPO_ROOT, ServerStartError, free_port, start_s3s_fs, status_from
from pg_cluster import PgCluster, apt_install
from test_readme import readme_blocks

MIB = 1024 * 1024


def _nginx() -> str:
    apt_install("nginx", lambda: shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _example_block() -> str:
    """The block after the `<!-- deploy-nginx -->` marker in docs/DEPLOY.md."""
    found = [body for marker, _, body in readme_blocks((REPO_ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8"))
             if marker == "deploy-nginx"]
    assert len(found) == 1, "docs/DEPLOY.md has no single block after `<!-- deploy-nginx -->`"
    return found[0]


def _client(service: str, endpoint: str, ak: str, sk: str):
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ak, aws_secret_access_key=sk,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      signature_version="s3v4"))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    nginx = _nginx()
    base = tmp_path_factory.mktemp("deploy")
    cluster = PgCluster()
    try:
        up = start_s3s_fs(base / "s3s-fs")
    except ServerStartError as e:
        cluster.destroy()
        pytest.fail(str(e), pytrace=False)
    nodes = []
    proc = None
    try:
        key = base / "master.key"
        common = ["--state", cluster.url(), "--master-key-file", str(key), "--trusted-proxy", "127.0.0.1/32",
                  *upstream_args(up), "--default-backend", "upstream"]
        nodes = [start_server(base / name, domain=None, extra_args=common) for name in ("a", "b")]
        block = _example_block()
        listen = free_port()
        for old, new in (("127.0.0.1:9001", f"127.0.0.1:{nodes[0].port}"),
                         ("127.0.0.1:9002", f"127.0.0.1:{nodes[1].port}"),
                         ("127.0.0.1:8080", f"127.0.0.1:{listen}")):
            assert old in block, f"the DEPLOY.md nginx block no longer names {old}"
            block = block.replace(old, new)
        ngx = base / "nginx"
        for d in ("logs", "tmp"):
            (ngx / d).mkdir(parents=True)
        conf = ngx / "nginx.conf"
        conf.write_text(
            f"daemon off;\nmaster_process on;\nworker_processes 1;\npid {ngx}/nginx.pid;\n"
            f"error_log {ngx}/logs/error.log info;\n"
            + ("user root;\n" if os.geteuid() == 0 else "")
            + "events { worker_connections 256; }\n"
            f"http {{\n  access_log {ngx}/logs/access.log;\n  client_body_temp_path {ngx}/tmp/body;\n"
            f"  proxy_temp_path {ngx}/tmp/proxy;\n  fastcgi_temp_path {ngx}/tmp/fcgi;\n"
            f"  uwsgi_temp_path {ngx}/tmp/uwsgi;\n  scgi_temp_path {ngx}/tmp/scgi;\n{block}\n}}\n")
        r = subprocess.run([nginx, "-t", "-p", str(ngx), "-c", str(conf)], capture_output=True, text=True)
        assert r.returncode == 0, f"nginx -t refused the DEPLOY.md block:\n{r.stderr}"
        proc = subprocess.Popen([nginx, "-p", str(ngx), "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=open(ngx / "logs" / "stderr.log", "wb"))
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{listen}/healthz", timeout=2) as resp:
                    assert resp.read().strip() == b"ok"
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not come up:\n{(ngx / 'logs' / 'error.log').read_text()[-2000:]}",
                                pytrace=False)
                time.sleep(0.1)
        yield {"endpoint": f"http://127.0.0.1:{listen}", "port": listen, "nodes": nodes, "nginx": ngx}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        for n in nodes:
            n.stop()
        up.stop()
        cluster.destroy()


def _requests_seen(node, op: str) -> int:
    """How many requests of operation `op` the node's request log shows."""
    return sum(1 for line in node.stderr_text().splitlines() if f'"{op}"' in line)


def test_a_multipart_upload_and_a_get_through_nginx(deployment, tmp_path):
    a, b = deployment["nodes"]
    s3 = _client("s3", deployment["endpoint"], *a.credentials())
    bucket = f"lb-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    before = (_requests_seen(a, "UploadPart"), _requests_seen(b, "UploadPart"))
    # Four parts: three of 5 MiB and one of 1 MiB, sent one at a time.
    body = os.urandom(16 * MIB)
    src = tmp_path / "big.bin"
    src.write_bytes(body)
    s3.upload_file(str(src), bucket, "big", Config=TransferConfig(multipart_threshold=5 * MIB,
                                                                   multipart_chunksize=5 * MIB, max_concurrency=1))
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == len(body) and head["ETag"].endswith('-4"'), head
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body
    # nginx spread the parts over both nodes (round robin): the upload was really multi-node.
    seen = (_requests_seen(a, "UploadPart") - before[0], _requests_seen(b, "UploadPart") - before[1])
    assert seen[0] >= 1 and seen[1] >= 1 and sum(seen) == 4, seen


def test_source_ip_behind_nginx_is_the_clients_address(deployment):
    a, _ = deployment["nodes"]
    root = a.credentials()
    endpoint, port = deployment["endpoint"], deployment["port"]
    s3 = _client("s3", endpoint, *root)
    bucket = f"ip-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    iam = _client("iam", endpoint, *root)
    name = f"ip-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="from-5", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.5/32"}}}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    ak, sk = key["AccessKeyId"], key["SecretAccessKey"]
    path = f"/{bucket}/k"
    # Both nodes know the user within a second (the change log); then the address decides.
    deadline = time.monotonic() + 5
    while status_from("127.0.0.5", port, "GET", path, ak, sk) != 200:
        assert time.monotonic() < deadline, "the user never worked from 127.0.0.5 through nginx"
        time.sleep(0.05)
    for _ in range(4):  # every request, whichever node nginx picks
        assert status_from("127.0.0.5", port, "GET", path, ak, sk) == 200
        assert status_from("127.0.0.6", port, "GET", path, ak, sk) == 403
        # A client's own X-Forwarded-For is left of the address nginx appends: not believed.
        assert status_from("127.0.0.6", port, "GET", path, ak, sk,
                           unsigned_headers={"X-Forwarded-For": "127.0.0.5"}) == 403
