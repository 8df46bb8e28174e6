"""Fixtures for keyhole's end-to-end suite: the real binary on a free loopback port, driven by
aws-cli (v1, from the venv) and boto3."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e_helpers import (
    REGION,
    USED_SECRETS,
    AwsCli,
    KeyholeProcess,
    make_client,
    secret_findings,
    ServerStartError,
    free_port,
    unique_bucket_name,
)

# The suite talks only to the server it starts: nothing from the caller's AWS setup (profiles,
# config files, credentials, endpoints) may reach boto3 in this process or aws-cli in children.
for _k in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[_k]
os.environ.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")

_SESSION_SERVERS: list[KeyholeProcess] = []


@dataclass
class Server:
    """What a test needs to know about the running gateway."""

    proc: KeyholeProcess
    endpoint: str
    port: int
    data_dir: Path
    base_dir: Path
    creds_path: Path
    account_id: str | None
    access_key: str
    secret_key: str

    @property
    def vhost_endpoint(self) -> str:
        return f"http://localhost:{self.port}"


def start_server(
    base_dir: Path,
    domain: str | None = "localhost",
    region: str = REGION,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> KeyholeProcess:
    """Start a keyhole on a fresh port with data in base_dir/data, logs in base_dir/logs."""
    base_dir.mkdir(parents=True, exist_ok=True)
    cwd = base_dir / "cwd"
    cwd.mkdir(exist_ok=True)
    kp = KeyholeProcess(
        data_dir=base_dir / "data",
        port=free_port(),
        log_dir=base_dir / "logs",
        domain=domain,
        region=region,
        cwd=cwd,
        extra_args=list(extra_args or []),
        env=dict(env or {}),
    )
    _SESSION_SERVERS.append(kp)
    try:
        kp.start()
    except ServerStartError as e:
        pytest.fail(str(e), pytrace=False)
    return kp


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("keyhole")
    kp = start_server(base)
    if not kp.creds_path.exists():
        kp.kill()
        pytest.fail(f"{kp.creds_path} was not created\n{kp.logs()}", pytrace=False)
    ak, sk = kp.credentials()
    srv = Server(
        proc=kp,
        endpoint=kp.endpoint,
        port=kp.port,
        data_dir=kp.data_dir,
        base_dir=base,
        creds_path=kp.creds_path,
        account_id=kp.account_id(),
        access_key=ak,
        secret_key=sk,
    )
    yield srv
    try:
        code = kp.stop()
    except subprocess.TimeoutExpired:
        pytest.fail(f"keyhole did not exit within 20s of SIGTERM\n{kp.logs()}", pytrace=False)
    if code != 0:
        pytest.fail(f"keyhole exited with {code} after SIGTERM\n{kp.logs()}", pytrace=False)
    # Everything the gateway writes belongs in its data dir; its working directory stays empty.
    stray = sorted(p.name for p in (base / "cwd").iterdir())
    if stray:
        pytest.fail(f"keyhole wrote outside its data dir, into its working directory: {stray}", pytrace=False)
    # Issue 5: after the whole run, the shared server's audit trail holds no secret it was sent.
    findings = secret_findings(kp.data_dir, [sk, *USED_SECRETS])
    if findings:
        pytest.fail("secrets in the audit trail after the e2e run:\n" + "\n".join(findings[:50]), pytrace=False)


@pytest.fixture(autouse=True)
def _server_still_alive(request):
    """A test that uses the shared server fails loudly if the server died during it."""
    yield
    if "server" in request.fixturenames:
        srv: Server = request.getfixturevalue("server")
        if not srv.proc.alive():
            pytest.fail(f"keyhole died during this test\n{srv.proc.logs()}", pytrace=False)


@pytest.fixture
def aws(server) -> AwsCli:
    return AwsCli(server.endpoint, server.creds_path)


@pytest.fixture(scope="session")
def s3(server):
    """boto3 S3 client, path-style, root credentials."""
    return make_client(server.endpoint, server.access_key, server.secret_key)


_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo_localhost(host, *args, **kwargs):
    # RFC 6761 6.3: names under .localhost are loopback. glibc here does not resolve them,
    # so the test process maps them itself; the server sees the real Host header.
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(scope="session")
def s3_vhost(server):
    """boto3 S3 client, virtual-host style (Host: <bucket>.localhost:PORT)."""
    socket.getaddrinfo = _getaddrinfo_localhost
    try:
        yield make_client(server.vhost_endpoint, server.access_key, server.secret_key, addressing="virtual")
    finally:
        socket.getaddrinfo = _real_getaddrinfo


def empty_and_delete_bucket(client, name: str) -> None:
    """Best-effort cleanup; what it cleans is not under test here."""
    try:
        for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    except Exception:
        pass
    try:
        token = None
        while True:
            kw = {"Bucket": name}
            if token:
                kw["ContinuationToken"] = token
            page = client.list_objects_v2(**kw)
            objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objs:
                client.delete_objects(Bucket=name, Delete={"Objects": objs, "Quiet": True})
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        client.delete_bucket(Bucket=name)
    except Exception:
        pass


@pytest.fixture
def bucket(request, s3) -> str:
    """A fresh, uniquely named, empty bucket."""
    name = unique_bucket_name(request.node.originalname)
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete_bucket(s3, name)


@pytest.fixture
def fresh_server_factory(tmp_path):
    """Start extra servers with their own data dirs; all are stopped at the end of the test."""
    started: list[KeyholeProcess] = []

    def factory(
        base: Path | None = None,
        region: str = REGION,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> KeyholeProcess:
        kp = start_server(base or (tmp_path / f"srv{len(started)}"), region=region, extra_args=extra_args, env=env)
        started.append(kp)
        return kp

    yield factory
    for kp in started:
        kp.kill()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == 0:
        return
    for kp in _SESSION_SERVERS:
        err = kp.stderr_text().strip()
        if err:
            terminalreporter.write_sep("-", f"keyhole stderr (port {kp.port}, last 60 lines)")
            terminalreporter.write_line("\n".join(err.splitlines()[-60:]))
