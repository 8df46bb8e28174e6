"""Shared helpers for keyhole's end-to-end tests: spawning the real binary and crafting raw requests.

Nothing here fakes a result: every helper talks to a real `keyhole serve` process over loopback.
"""

from __future__ import annotations

import configparser
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from unittest import mock
from urllib.parse import quote

import boto3
import botocore.auth
import botocore.config
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def keyhole_bin() -> Path:
    """Path of the binary under test: $KEYHOLE_BIN, else <$CARGO_TARGET_DIR or repo/target>/debug/keyhole."""
    if os.environ.get("KEYHOLE_BIN"):
        return Path(os.environ["KEYHOLE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "keyhole"


def free_port() -> int:
    """A loopback port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_credentials(path: Path) -> tuple[str, str]:
    """(access key id, secret) of the `[default]` profile of an AWS shared-credentials file."""
    cp = configparser.ConfigParser()
    with open(path, encoding="utf-8") as f:
        cp.read_file(f)
    sect = cp["default"]
    return sect["aws_access_key_id"].strip(), sect["aws_secret_access_key"].strip()


def find_account_id(obj) -> str | None:
    """The first 12-digit string (or int) found anywhere in a parsed account.json."""
    if isinstance(obj, str) and re.fullmatch(r"\d{12}", obj):
        return obj
    if isinstance(obj, int) and not isinstance(obj, bool) and 10**11 <= obj < 10**12:
        return str(obj)
    if isinstance(obj, dict):
        for k in ("account_id", "accountId", "AccountId", "account", "id"):
            if k in obj:
                found = find_account_id(obj[k])
                if found:
                    return found
        for v in obj.values():
            found = find_account_id(v)
            if found:
                return found
    if isinstance(obj, list):
        for v in obj:
            found = find_account_id(v)
            if found:
                return found
    return None


class ServerStartError(RuntimeError):
    """The binary did not come up healthy; message carries its output."""


@dataclass
class KeyholeProcess:
    """A running `keyhole serve` child with its logs captured to files."""

    data_dir: Path
    port: int
    log_dir: Path
    domain: str | None = "localhost"
    region: str = REGION
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    cwd: Path | None = None
    # Extra environment (e.g. KEYHOLE_* settings), the open-file limit (soft and hard) and the
    # umask the server starts with; None leaves the test process's.
    env: dict[str, str] = field(default_factory=dict)
    nofile: int | None = None
    umask: int | None = None

    def _arg(self, name: str) -> str | None:
        """The value of `--name VALUE` or `--name=VALUE` in extra_args."""
        for i, a in enumerate(self.extra_args):
            if a == name and i + 1 < len(self.extra_args):
                return self.extra_args[i + 1]
            if a.startswith(name + "="):
                return a.split("=", 1)[1]
        return None

    @property
    def tls_cert(self) -> Path | None:
        """The certificate given with --tls-cert (TLS set only through env or a config file is
        not seen here)."""
        cert = self._arg("--tls-cert")
        return Path(cert) if cert else None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def creds_path(self) -> Path:
        return self.data_dir / "root-credentials"

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / "stderr.log"

    def start(self, timeout: float = 20.0) -> "KeyholeProcess":
        binary = keyhole_bin()
        if not binary.is_file():
            raise ServerStartError(
                f"keyhole binary not found at {binary}; run `cargo build -p keyhole` or set KEYHOLE_BIN"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(binary),
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            "--region",
            self.region,
        ]
        if self.domain:
            cmd += ["--domain", self.domain]
        cmd += self.extra_args
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
        env.setdefault("RUST_BACKTRACE", "1")
        # Tests reach loopback only: an upstream credential chain that finds nothing must not go
        # on to the link-local EC2 metadata service (a test that wants it points it at loopback).
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        env.update(self.env)
        nofile, umask = self.nofile, self.umask

        def preexec() -> None:
            import resource

            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if umask is not None:
                os.umask(umask)

        # Append so that a restart on the same log dir keeps the earlier run's output.
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=str(self.cwd or self.log_dir),
                env=env,
                preexec_fn=preexec if (nofile is not None or umask is not None) else None,
            )
        finally:
            out.close()
            err.close()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no attempt"
        # Over HTTPS, the server's own certificate is the trust anchor (self-signed in tests).
        context = ssl.create_default_context(cafile=str(self.tls_cert)) if self.tls_cert else None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerStartError(
                    f"keyhole exited with {self.proc.returncode} before /healthz answered\n{self.logs()}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2, context=context) as r:
                    if r.status == 200:
                        return
                    last = f"status {r.status}"
            except urllib.error.HTTPError as e:
                last = f"status {e.code}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        raise ServerStartError(f"/healthz not 200 within {timeout}s (last: {last})\n{self.logs()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code (kills with SIGKILL after `timeout`)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def logs(self, tail: int = 200) -> str:
        out = self.stdout_text().splitlines()[-tail:]
        err = self.stderr_text().splitlines()[-tail:]
        return "--- keyhole stdout ---\n" + "\n".join(out) + "\n--- keyhole stderr ---\n" + "\n".join(err)

    def credentials(self) -> tuple[str, str]:
        return read_credentials(self.creds_path)

    def account_id(self) -> str | None:
        path = self.data_dir / "account.json"
        if not path.exists():
            return None
        return find_account_id(json.loads(path.read_text()))


# ---------------------------------------------------------------------------------------------
# Raw HTTP with SigV4 (botocore's signer), for requests that an SDK would never send.


@dataclass
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None

    def error_code(self) -> str | None:
        return xml_text(self.body, "Code")

    def error_message(self) -> str | None:
        return xml_text(self.body, "Message")


def xml_text(body: bytes, tag: str) -> str | None:
    """Text of the first element named `tag` (namespace ignored) in an XML body."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.split("}")[-1] == tag:
            return el.text or ""
    return None


def object_path(bucket: str, key: str | None = None) -> str:
    """Path-style request path with S3's single URI encoding (slashes kept)."""
    if key is None:
        return f"/{bucket}"
    return f"/{bucket}/{quote(key, safe='/~')}"


class _DeclaredPayloadAuth(botocore.auth.S3SigV4Auth):
    """botocore hashes the payload whenever the URL is http; this one declares a fixed value
    (UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, ...)."""

    declared = "UNSIGNED-PAYLOAD"

    def payload(self, request):
        return self.declared


def sign(
    method: str,
    url: str,
    access_key: str,
    secret_key: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    now: datetime.datetime | None = None,
    unsigned_payload: bool = False,
    region: str = REGION,
    payload_hash: str | None = None,
) -> dict[str, str]:
    """Headers (incl. Authorization, X-Amz-Date, X-Amz-Content-SHA256) signed by botocore's S3SigV4Auth.

    `now` replaces the clock (naive UTC) to craft skewed requests.
    """
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    if unsigned_payload and payload_hash is None:
        payload_hash = "UNSIGNED-PAYLOAD"
    if payload_hash is not None:
        auth = _DeclaredPayloadAuth(Credentials(access_key, secret_key), "s3", region)
        auth.declared = payload_hash
    else:
        auth = botocore.auth.S3SigV4Auth(Credentials(access_key, secret_key), "s3", region)
    if now is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now):
            auth.add_auth(req)
    else:
        auth.add_auth(req)
    if payload_hash is not None:
        assert req.headers["X-Amz-Content-SHA256"] == payload_hash
    return {k: v for k, v in req.headers.items()}


def presign_url(
    endpoint: str,
    path: str,
    access_key: str,
    secret_key: str,
    expires: int,
    now: datetime.datetime | None = None,
    method: str = "GET",
) -> str:
    """A presigned (query-string SigV4) URL made by botocore's S3SigV4QueryAuth."""
    req = AWSRequest(method=method, url=endpoint + path)
    auth = botocore.auth.S3SigV4QueryAuth(Credentials(access_key, secret_key), "s3", REGION, expires=expires)
    if now is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now):
            auth.add_auth(req)
    else:
        auth.add_auth(req)
    return req.url


def raw_request(
    port: int,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> RawResponse:
    """Send exactly this request with http.client (no path normalization, no retries)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        conn.putrequest(method, path, skip_host="Host" in hdrs or "host" in hdrs, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if body or method in ("PUT", "POST"):
            if not any(k.lower() == "content-length" for k in hdrs):
                conn.putheader("Content-Length", str(len(body)))
        try:
            conn.endheaders(body if body else None)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (e.g. 400 for an oversized body) and close before reading it
            # all; its answer is still readable.
            pass
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, {k: v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def signed_request(
    server,
    method: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    access_key: str | None = None,
    secret_key: str | None = None,
    now: datetime.datetime | None = None,
    sign_body: bytes | None = None,
    unsigned_payload: bool = False,
) -> RawResponse:
    """Sign with root credentials (or the given ones) and send. `sign_body` signs a different body."""
    ak, sk = server.access_key, server.secret_key
    if access_key is not None:
        ak = access_key
    if secret_key is not None:
        sk = secret_key
    target = path + (f"?{query}" if query else "")
    hdrs = dict(headers or {})
    hdrs.setdefault("Host", f"127.0.0.1:{server.port}")
    signed = sign(
        method,
        f"{server.endpoint}{target}",
        ak,
        sk,
        hdrs,
        body if sign_body is None else sign_body,
        now=now,
        unsigned_payload=unsigned_payload,
    )
    return raw_request(server.port, method, target, signed, body)


def md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def multipart_etag(parts: list[bytes]) -> str:
    """S3's multipart ETag: md5 of the concatenated binary part MD5s, then `-N`."""
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def unique_bucket_name(hint: str = "b") -> str:
    hint = re.sub(r"[^a-z0-9-]", "-", hint.lower()).strip("-")[:30].strip("-") or "b"
    return f"e2e-{hint}-{uuid.uuid4().hex[:12]}"


def assert_s3_error(resp: RawResponse, status: int, code: str | set[str]) -> None:
    """An S3 XML `<Error>` with the expected status and code, and a request id (header and body)."""
    codes = {code} if isinstance(code, str) else code
    assert resp.status == status, f"expected HTTP {status} {codes}, got {resp.status}: {resp.body[:500]!r}"
    try:
        root = ET.fromstring(resp.body)
    except ET.ParseError as e:
        raise AssertionError(f"error body is not XML ({e}): {resp.body[:500]!r}") from e
    assert root.tag.split("}")[-1] == "Error", f"root element is {root.tag}, not Error: {resp.body[:500]!r}"
    got = resp.error_code()
    assert got in codes, f"expected code {codes}, got {got!r}: {resp.body[:500]!r}"
    assert resp.header("x-amz-request-id"), f"no x-amz-request-id header: {dict(resp.headers)}"
    assert xml_text(resp.body, "RequestId"), f"no <RequestId> in error body: {resp.body[:500]!r}"


# ---------------------------------------------------------------------------------------------
# Upstream S3 servers keyhole can stand in front of (issue 13): s3s-fs and moto, started here on
# loopback and stopped by PID. A second keyhole is started with `KeyholeProcess`.


def s3s_fs_bin() -> Path:
    """s3s-fs, installed by scripts/test.sh under <target>/s3s-fs (or $KEYHOLE_S3S_FS)."""
    if os.environ.get("KEYHOLE_S3S_FS"):
        return Path(os.environ["KEYHOLE_S3S_FS"])
    return keyhole_bin().parent.parent / "s3s-fs" / "bin" / "s3s-fs"


def moto_server_bin() -> Path:
    """moto's server, installed into the suite's venv from requirements.txt."""
    return Path(sys.executable).parent / "moto_server"


@dataclass
class UpstreamProcess:
    """An S3 server (not keyhole) running as a child, with credentials keyhole signs with."""

    name: str
    port: int
    base_dir: Path
    proc: subprocess.Popen | None = None
    access_key: str = "UPSTREAMTESTKEY0001"
    secret_key: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def creds_path(self) -> Path:
        return self.base_dir / "upstream-credentials"

    @property
    def log_path(self) -> Path:
        return self.base_dir / f"{self.name}.log"

    def start(self, cmd: list[str], timeout: float = 30.0) -> "UpstreamProcess":
        if not Path(cmd[0]).is_file():
            raise ServerStartError(f"{self.name} not found at {cmd[0]} (scripts/test.sh installs it)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.creds_path.write_text(
            f"[default]\naws_access_key_id = {self.access_key}\naws_secret_access_key = {self.secret_key}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                         cwd=str(self.base_dir))
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(f"{self.name} exited with {self.proc.returncode}\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ServerStartError(f"{self.name} did not listen on {self.port} within {timeout}s\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def client(self):
        """boto3 straight to this server (to look at what keyhole stored, bypassing keyhole)."""
        return make_client(self.endpoint, self.access_key, self.secret_key)


def start_s3s_fs(base_dir: Path) -> UpstreamProcess:
    up = UpstreamProcess("s3s-fs", free_port(), base_dir)
    root = base_dir / "root"
    root.mkdir(parents=True, exist_ok=True)
    return up.start([str(s3s_fs_bin()), "--host", "127.0.0.1", "--port", str(up.port),
                     "--access-key", up.access_key, "--secret-key", up.secret_key, str(root)])


def start_moto(base_dir: Path) -> UpstreamProcess:
    up = UpstreamProcess("moto", free_port(), base_dir)
    return up.start([str(moto_server_bin()), "-H", "127.0.0.1", "-p", str(up.port)])


# ---------------------------------------------------------------------------------------------
# Clients


def aws_env(creds_path: Path) -> dict[str, str]:
    """The environment for aws-cli: ours only, nothing AWS_* leaked from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(creds_path),
        AWS_CONFIG_FILE="/dev/null",
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def aws_bin() -> str:
    venv_aws = Path(sys.executable).parent / "aws"
    if venv_aws.exists():
        return str(venv_aws)
    found = shutil.which("aws")
    if found is None:
        pytest.fail("aws-cli not found next to the python running pytest nor on PATH", pytrace=False)
    return found


class AwsCli:
    """`aws --endpoint-url <server> ...` with an isolated environment."""

    def __init__(self, endpoint: str, creds_path: Path):
        self.endpoint = endpoint
        self.env = aws_env(creds_path)
        self.bin = aws_bin()

    def __call__(
        self, *args: str, cwd: Path | None = None, timeout: float = 300, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.bin, "--endpoint-url", self.endpoint, *args],
            env={**self.env, **(extra_env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        cp = self(*args, **kw)
        assert cp.returncode == 0, (
            f"aws {' '.join(args)} exited {cp.returncode}\nstdout: {cp.stdout[-2000:]}\nstderr: {cp.stderr[-2000:]}"
        )
        return cp


def make_client(endpoint: str, ak: str, sk: str, addressing: str = "path", region: str = REGION,
                verify: str | bool | None = None):
    """boto3 S3 client; `verify` is a CA bundle path for an https endpoint (boto3's own meaning)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        verify=verify,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name=region,
        config=botocore.config.Config(
            s3={"addressing_style": addressing},
            retries={"max_attempts": 1, "mode": "standard"},
            signature_version="s3v4",
            connect_timeout=10,
            read_timeout=120,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Audit trail


def audit_dir(data_dir: Path) -> Path:
    return data_dir / "audit"


def read_trail(data_dir: Path) -> list[dict]:
    """Every complete event of the trail, oldest first (files in name order, lines in order)."""
    events = []
    for path in sorted(audit_dir(data_dir).glob("audit-*.jsonl")):
        for line in path.read_bytes().split(b"\n"):
            if line:
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # an incomplete final line after kill -9
    return events


def wait_for_events(data_dir: Path, predicate, timeout: float = 10.0) -> list[dict]:
    """Poll the trail until `predicate(events)` holds (events not awaited by the server, such as
    those of reads, are written right after the response)."""
    deadline = time.monotonic() + timeout
    events = read_trail(data_dir)
    while not predicate(events):
        if time.monotonic() > deadline:
            raise AssertionError(f"trail never satisfied the condition; it has {len(events)} events:\n"
                                 + "\n".join(json.dumps(e)[:300] for e in events[-20:]))
        time.sleep(0.05)
        events = read_trail(data_dir)
    return events


_HEX64 = re.compile(rb"[0-9a-fA-F]{64}")
_SECRET_MARKERS = [b"Signature=", b"X-Amz-Signature", b"X-Amz-Security-Token", b"Credential=", b"AWS4-HMAC-SHA256 "]


def status_from(source: str, port: int, method: str, path: str, ak: str, sk: str, token: str | None = None,
                body: bytes = b"", unsigned_headers: dict[str, str] | None = None) -> int:
    """The status of a request signed with (ak, sk[, token]) and sent over a connection bound to
    the loopback address `source` (tests of `aws:SourceIp`); `unsigned_headers` are added after
    signing (e.g. X-Forwarded-For, which a proxy adds)."""
    signed = {"Host": f"127.0.0.1:{port}"}
    if token:
        signed["X-Amz-Security-Token"] = token
    headers = sign(method, f"http://127.0.0.1:{port}{path}", ak, sk, signed, body)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in {**headers, **(unsigned_headers or {})}.items():
            conn.putheader(k, v)
        if body or method in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


# Every secret a test hands the shared server or gets from it (user keys, session secrets and
# tokens, job credentials tokens): after the run, the shared server's trail must hold none of them.
USED_SECRETS: list[str] = []


def remember_secrets(*values: str | None) -> None:
    """Adds secrets to the list the end-of-run audit scan looks for."""
    USED_SECRETS.extend(v for v in values if v)


def _strings(value) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def secret_findings(data_dir: Path, secrets: list[str]) -> list[str]:
    """Places in the trail where a secret, a signature-like 64-hex value (outside the chain's own
    hash fields) or an auth parameter name appears."""
    found = []
    for path in sorted(audit_dir(data_dir).glob("audit-*.jsonl")):
        for n, line in enumerate(path.read_bytes().split(b"\n"), 1):
            if not line:
                continue
            for s in secrets:
                if s and s.encode() in line:
                    found.append(f"{path.name}:{n}: contains secret {s[:4]}...")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            obj.pop("hash", None)
            obj.pop("prevHash", None)
            # Bucket and key names are the client's own data (tests use keys such as "a" * 1024):
            # drop them, wherever they are echoed, before looking for signature-shaped values.
            # Resource ARNs are made of such names too (DeleteObjects names keys in its body).
            # (IAM, STS and keyhole API parameters hold lists and numbers too: their strings count.)
            names = [v for v in _strings(obj.pop("requestParameters", None) or {}) if v]
            # DeleteObjects' per-key results echo the keys too.
            results = (obj.get("responseElements") or {}) if obj.get("eventName") == "DeleteObjects" else {}
            names += [k for k in results.pop("deleted", []) if k]
            names += [e.get("key", "") for e in results.pop("errors", []) if e.get("key")]
            obj.pop("resources", None)
            for check in obj.get("authorization", []):
                check.pop("resource", None)
                # A denial's evaluation names policy documents by their SHA-256 and holds the
                # request's s3:x-amz-content-sha256 (the payload's hash): digests, not signatures.
                evaluation = check.get("evaluation") or {}
                for p in evaluation.get("policies", []):
                    p.pop("sha256", None)
                for k in [k for k in evaluation.get("context", {}) if k.lower() == "s3:x-amz-content-sha256"]:
                    evaluation["context"].pop(k)
            rest = json.dumps(obj)
            for name in sorted(names, key=len, reverse=True):
                rest = rest.replace(json.dumps(name)[1:-1], "")
            rest = rest.encode()
            for m in _HEX64.findall(rest):
                found.append(f"{path.name}:{n}: 64-hex value {m[:12].decode()}... (a signature?)")
            for marker in _SECRET_MARKERS:
                if marker in rest:
                    found.append(f"{path.name}:{n}: contains {marker.decode()}")
    return found


def keyhole_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the keyhole binary (not serve) and capture its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    return subprocess.run([str(keyhole_bin()), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
