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
    UpstreamProcess,
    make_client,
    secret_findings,
    ServerStartError,
    free_port,
    start_moto,
    start_s3s_fs,
    unique_bucket_name,
)

# The suite talks only to the server it starts: nothing from the caller's AWS setup (profiles,
# config files, credentials, endpoints) may reach boto3 in this process or aws-cli in children.
for _k in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[_k]
os.environ.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")

_SESSION_SERVERS: list[KeyholeProcess] = []

# Issue 13: the S3 suites below run against the gateway on its local store and, parametrized,
# against the gateway in front of each upstream: s3s-fs, moto's server, and a second keyhole.
# `server` (and everything built on it: `s3`, `bucket`, `aws`) is then that gateway.
UPSTREAMS = ["s3s-fs", "moto", "keyhole"]
BACKEND_MODULES = {
    "test_objects",
    "test_list",
    "test_multipart",
    "test_cli_s3",
    "test_existing_object_tag",
    "test_jobs",
    "test_conditional_writes",
    "test_bucket_policy",
    "test_job_reports",
    "test_post_upload",
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "local_only(reason): the test looks at what only the local store has (its files, its "
        "crash behaviour); it runs on the local backend only",
    )
    config.addinivalue_line(
        "markers",
        "upstream_gap(backends, reason, strict=True): the named upstreams do not implement what "
        "the test checks; it is expected to fail there (strict: a pass fails the run, so the "
        "mark goes once the upstream catches up; strict=False for races it loses sometimes)",
    )


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__ in BACKEND_MODULES and "server" in metafunc.fixturenames:
        metafunc.parametrize("backend", ["local", *UPSTREAMS], indirect=True, scope="session")


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend", "local") if callspec else "local"
        if backend == "local":
            continue
        only = item.get_closest_marker("local_only")
        if only:
            item.add_marker(pytest.mark.skip(reason=f"local store only: {only.args[0] if only.args else ''}"))
        for gap in item.iter_markers("upstream_gap"):
            backends, reason = gap.args
            if backend in backends:
                # strict=False only for races the upstream loses some of the time.
                strict = gap.kwargs.get("strict", True)
                item.add_marker(pytest.mark.xfail(strict=strict, reason=f"{backend}: {reason}"))


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
    # "local", or the upstream the gateway stands in front of (with that upstream's process).
    backend: str = "local"
    upstream: "UpstreamProcess | KeyholeProcess | None" = None

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
def backend(request) -> str:
    """Which storage the shared gateway uses: "local", or an upstream (see BACKEND_MODULES)."""
    return getattr(request, "param", "local")


def _stop_upstream(up) -> None:
    up.stop() if isinstance(up, UpstreamProcess) else up.kill()


@pytest.fixture(scope="session")
def upstream_s3s_fs(tmp_path_factory):
    try:
        up = start_s3s_fs(tmp_path_factory.mktemp("s3s-fs"))
    except ServerStartError as e:
        pytest.fail(str(e), pytrace=False)
    yield up
    _stop_upstream(up)


@pytest.fixture(scope="session")
def upstream_moto(tmp_path_factory):
    try:
        up = start_moto(tmp_path_factory.mktemp("moto"))
    except ServerStartError as e:
        pytest.fail(str(e), pytrace=False)
    yield up
    _stop_upstream(up)


@pytest.fixture(scope="session")
def upstream_keyhole(tmp_path_factory):
    """A second keyhole as the upstream; its root credentials are the gateway's upstream
    credentials, and its audit trail shows every request that reached it."""
    kp = start_server(tmp_path_factory.mktemp("keyhole-upstream"))
    yield kp
    kp.kill()


def upstream_args(up) -> list[str]:
    """The gateway's flags for standing in front of `up`."""
    return ["--upstream-endpoint", up.endpoint, "--upstream-credentials-file", str(up.creds_path)]


@pytest.fixture(scope="session")
def server(request, backend, tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp(f"keyhole-{backend}")
    upstream = None
    extra: list[str] = []
    if backend != "local":
        upstream = request.getfixturevalue("upstream_" + backend.replace("-", "_"))
        extra = upstream_args(upstream)
    kp = start_server(base, extra_args=extra)
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
        backend=backend,
        upstream=upstream,
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
    # Issue 13: nor the upstream's credentials, nor its address.
    secrets = [sk, *USED_SECRETS]
    if isinstance(upstream, UpstreamProcess):
        secrets.append(upstream.secret_key)
    elif isinstance(upstream, KeyholeProcess):
        secrets.append(upstream.credentials()[1])
    findings = secret_findings(kp.data_dir, secrets)
    if upstream is not None:
        findings += [f for f in _address_findings(kp.data_dir, upstream.port)]
    if findings:
        pytest.fail("secrets in the audit trail after the e2e run:\n" + "\n".join(findings[:50]), pytrace=False)


def _address_findings(data_dir: Path, port: int) -> list[str]:
    """Places where the gateway's trail names its upstream's address."""
    from e2e_helpers import audit_dir

    needle = f"127.0.0.1:{port}".encode()
    found = []
    for path in sorted(audit_dir(data_dir).glob("audit-*.jsonl")):
        for n, line in enumerate(path.read_bytes().split(b"\n"), 1):
            if needle in line:
                found.append(f"{path.name}:{n}: names the upstream's address")
    return found


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
        # A versioned bucket keeps older versions and delete markers: remove them all, as generic
        # cleanup code does (ListObjectVersions, then DeleteObjects by version id).
        try:
            for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
                objs = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                if objs:
                    client.delete_objects(Bucket=name, Delete={"Objects": objs, "Quiet": True})
        except Exception:
            pass  # a backend without versions (an upstream) has nothing more to remove
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
