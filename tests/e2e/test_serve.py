"""`keyhole serve` as a user meets it: first start (credentials, master key, what it prints),
restart on the same data dir, and graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, aws_bin, find_account_id, make_client, object_path, sign


def wait_for_stdout(kp, pattern: str, timeout: float = 5.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, kp.stdout_text(), re.MULTILINE)
        if m or time.monotonic() > deadline:
            assert m, f"stdout never matched {pattern!r}\n{kp.logs()}"
            return m
        time.sleep(0.1)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def master_key_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file() and "master" in p.name.lower())


def test_first_start(fresh_server_factory):
    kp = fresh_server_factory()
    wait_for_stdout(kp, rf"endpoint:\s+http://127\.0\.0\.1:{kp.port}\b")
    wait_for_stdout(kp, re.escape(str(kp.creds_path)))
    wait_for_stdout(kp, rf"aws --endpoint-url[ =]http://127\.0\.0\.1:{kp.port}\S* s3 ls")

    assert kp.creds_path.is_file()
    assert mode(kp.creds_path) == 0o600, oct(mode(kp.creds_path))
    ak, sk = kp.credentials()
    assert re.fullmatch(r"[A-Z0-9]{16,128}", ak), ak
    assert len(sk) >= 30
    assert sk not in kp.stdout_text() and sk not in kp.stderr_text(), "the secret is never printed"

    masters = master_key_files(kp.data_dir)
    assert masters, f"no master key file in {sorted(p.name for p in kp.data_dir.rglob('*'))}"
    for m in masters:
        assert mode(m) == 0o600, f"{m} has mode {oct(mode(m))}"
        assert m.stat().st_size >= 32

    account = json.loads((kp.data_dir / "account.json").read_text())
    assert find_account_id(account), f"no 12-digit account id in {account}"

    client = make_client(kp.endpoint, ak, sk)
    assert client.list_buckets()["Buckets"] == []
    assert kp.stop() == 0


def test_printed_aws_line_works_as_pasted(fresh_server_factory, tmp_path):
    kp = fresh_server_factory()
    # The command, with any `VAR=value` assignments written in front of it.
    m = wait_for_stdout(kp, r"((?:[A-Z_]+=\S+\s+)*aws --endpoint-url.*s3 ls.*)$")
    line = m.group(1).strip()
    # Run it as a user would paste it: a shell, a HOME with no AWS config, nothing AWS_* set.
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), PATH=f"{Path(aws_bin()).parent}:{env.get('PATH', '')}")
    kp_client = make_client(kp.endpoint, *kp.credentials())
    kp_client.create_bucket(Bucket="visible-in-ls")
    cp = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=120,
                        stdin=subprocess.DEVNULL, cwd=home)
    assert cp.returncode == 0, f"{line!r} failed: {cp.stderr}"
    assert "visible-in-ls" in cp.stdout
    assert kp.stop() == 0


def test_restart_reuses_identity_and_data(fresh_server_factory, tmp_path):
    base = tmp_path / "persist"
    kp1 = fresh_server_factory(base)
    creds1 = kp1.creds_path.read_bytes()
    account1 = (kp1.data_dir / "account.json").read_bytes()
    masters1 = {p: p.read_bytes() for p in master_key_files(kp1.data_dir)}
    c1 = make_client(kp1.endpoint, *kp1.credentials())
    c1.create_bucket(Bucket="persisted")
    c1.put_object(Bucket="persisted", Key="k", Body=b"still here", Metadata={"m": "1"})
    assert kp1.stop() == 0

    kp2 = fresh_server_factory(base)
    assert kp2.creds_path.read_bytes() == creds1
    assert mode(kp2.creds_path) == 0o600
    assert (kp2.data_dir / "account.json").read_bytes() == account1
    assert {p: p.read_bytes() for p in master_key_files(kp2.data_dir)} == masters1
    c2 = make_client(kp2.endpoint, *kp2.credentials())
    got = c2.get_object(Bucket="persisted", Key="k")
    assert got["Body"].read() == b"still here"
    assert got["Metadata"] == {"m": "1"}
    assert kp2.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero(fresh_server_factory, sig):
    kp = fresh_server_factory()
    assert kp.proc is not None
    kp.proc.send_signal(sig)
    assert kp.proc.wait(timeout=20) == 0, kp.logs()


def test_sigterm_lets_inflight_upload_finish(fresh_server_factory):
    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    client = make_client(kp.endpoint, ak, sk)
    client.create_bucket(Bucket="inflight")
    body = os.urandom(256 * 1024)
    path = object_path("inflight", "obj")
    headers = sign("PUT", f"{kp.endpoint}{path}", ak, sk,
                   {"Host": f"127.0.0.1:{kp.port}", "Content-Length": str(len(body))}, body)
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", kp.port), timeout=20)
    try:
        # First a whole request on this connection, so the server has surely accepted it.
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{kp.port}\r\n\r\n".encode())
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        length = re.search(rb"(?i)content-length:\s*(\d+)", first)
        pending = int(length.group(1)) - len(first.split(b"\r\n\r\n", 1)[1]) if length else 0
        while pending > 0:
            pending -= len(sock.recv(pending))
        sock.sendall(head.encode() + body[:1000])
        time.sleep(0.5)
        assert kp.proc is not None
        kp.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(body[1000:])
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), f"in-flight upload cut off by SIGTERM: {answer[:300]!r}\n{kp.logs()}"
    assert kp.proc.wait(timeout=20) == 0

    kp2 = fresh_server_factory(kp.data_dir.parent)
    got = make_client(kp2.endpoint, ak, sk).get_object(Bucket="inflight", Key="obj")["Body"].read()
    assert got == body


def test_region_flag_is_used_for_signing(fresh_server_factory):
    kp = fresh_server_factory(region="eu-central-1")
    ak, sk = kp.credentials()
    assert make_client(kp.endpoint, ak, sk, region="eu-central-1").list_buckets()["Buckets"] == []
    wrong = make_client(kp.endpoint, ak, sk, region=REGION)
    with pytest.raises(ClientError) as ei:
        wrong.list_buckets()
    assert ei.value.response["Error"]["Code"] == "AuthorizationHeaderMalformed"



def test_idle_keepalive_connection_does_not_delay_shutdown(fresh_server_factory):
    import http.client

    kp = fresh_server_factory()
    conn = http.client.HTTPConnection("127.0.0.1", kp.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() is not None  # connection stays open, idle
        assert kp.proc is not None
        started = time.monotonic()
        kp.proc.send_signal(signal.SIGTERM)
        assert kp.proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 5, "an idle keep-alive connection held up shutdown"
    finally:
        conn.close()


def test_sigterm_with_stalled_upload_leaves_no_partial_object(fresh_server_factory, tmp_path):
    """A client that stops sending mid-body cannot keep the server up forever, and what it sent
    never becomes an object (the server has a bounded grace period, 30 s today)."""
    base = tmp_path / "stalled"
    kp = fresh_server_factory(base)
    ak, sk = kp.credentials()
    make_client(kp.endpoint, ak, sk).create_bucket(Bucket="stall")
    path = object_path("stall", "partial")
    headers = sign("PUT", f"{kp.endpoint}{path}", ak, sk,
                   {"Host": f"127.0.0.1:{kp.port}", "Content-Length": str(1024 * 1024)}, unsigned_payload=True)
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", kp.port), timeout=90)
    try:
        sock.sendall(head.encode() + b"p" * 1000)
        time.sleep(0.3)
        assert kp.proc is not None
        kp.proc.send_signal(signal.SIGTERM)
        code = kp.proc.wait(timeout=75)
    finally:
        sock.close()
    assert code == 0, kp.logs()
    kp2 = fresh_server_factory(base)
    client = make_client(kp2.endpoint, ak, sk)
    assert client.list_objects_v2(Bucket="stall")["KeyCount"] == 0


# ---------------------------------------------------------------- configuration sources


def _spawn(args: list[str], env_extra: dict[str, str], cwd: Path) -> subprocess.Popen:
    from e2e_helpers import keyhole_bin

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(env_extra)
    return subprocess.Popen([str(keyhole_bin()), "serve", *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _healthy(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not healthy on {port}")


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def _region_works(port: int, data_dir: Path, region: str) -> None:
    from e2e_helpers import read_credentials

    ak, sk = read_credentials(data_dir / "root-credentials")
    assert make_client(f"http://127.0.0.1:{port}", ak, sk, region=region).list_buckets()["Buckets"] == []


def test_environment_variables_configure_serve(tmp_path):
    from e2e_helpers import free_port

    port = free_port()
    data = tmp_path / "env-data"
    proc = _spawn([], {"KEYHOLE_LISTEN": f"127.0.0.1:{port}", "KEYHOLE_DATA_DIR": str(data),
                       "KEYHOLE_REGION": "eu-west-2"}, tmp_path)
    try:
        _healthy(port, proc)
        assert (data / "root-credentials").is_file()
        _region_works(port, data, "eu-west-2")
    finally:
        assert _stop(proc) == 0


def test_config_file_and_precedence(tmp_path):
    from e2e_helpers import free_port

    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    data = tmp_path / "file-data"
    cfg = tmp_path / "keyhole.toml"
    cfg.write_text(f'listen = "127.0.0.1:{file_port}"\ndata_dir = "{data}"\nregion = "ap-south-1"\n')
    # The file alone.
    proc = _spawn(["--config", str(cfg)], {}, tmp_path)
    try:
        _healthy(file_port, proc)
        _region_works(file_port, data, "ap-south-1")
    finally:
        assert _stop(proc) == 0
    # A variable beats the file; a flag beats the variable.
    proc = _spawn(["--config", str(cfg), "--listen", f"127.0.0.1:{flag_port}"],
                  {"KEYHOLE_LISTEN": f"127.0.0.1:{env_port}", "KEYHOLE_REGION": "sa-east-1"}, tmp_path)
    try:
        _healthy(flag_port, proc)
        _region_works(flag_port, data, "sa-east-1")
    finally:
        assert _stop(proc) == 0


def test_default_data_dir_is_keyhole_data_in_cwd(tmp_path):
    from e2e_helpers import free_port

    port = free_port()
    proc = _spawn(["--listen", f"127.0.0.1:{port}"], {}, tmp_path)
    try:
        _healthy(port, proc)
        assert (tmp_path / "keyhole-data" / "root-credentials").is_file()
        assert mode(tmp_path / "keyhole-data" / "root-credentials") == 0o600
    finally:
        assert _stop(proc) == 0


@pytest.mark.parametrize("args", [["--listen", "not-an-address"], ["--region", ""], ["--bogus-flag"]])
def test_bad_configuration_fails_fast(tmp_path, args):
    proc = _spawn(["--data-dir", str(tmp_path / "d"), *args], {}, tmp_path)
    try:
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code != 0
    assert proc.stderr is not None and proc.stderr.read().strip(), "a refusal says why on stderr"


def test_port_in_use_is_reported(tmp_path):
    from e2e_helpers import free_port

    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        proc = _spawn(["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")], {}, tmp_path)
        try:
            code = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code != 0
        err = proc.stderr.read() if proc.stderr else ""
        assert str(port) in err, err


def test_json_logs_and_no_secret_in_output(fresh_server_factory):
    import json as _json

    from e2e_helpers import KeyholeProcess, free_port

    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    assert kp.stop() == 0
    # Restart the same data dir with JSON logs and provoke failures that are logged.
    kp2 = KeyholeProcess(data_dir=kp.data_dir, port=free_port(), log_dir=kp.log_dir / "json",
                         extra_args=["--log-format", "json"], cwd=kp.cwd)
    kp2.start()
    try:
        bad = make_client(kp2.endpoint, ak, sk[:-1] + ("A" if sk[-1] != "A" else "B"))
        with pytest.raises(ClientError):
            bad.list_buckets()
        good = make_client(kp2.endpoint, ak, sk)
        with pytest.raises(ClientError):
            good.get_object(Bucket="nope", Key="k")
    finally:
        assert kp2.stop() == 0
    lines = [ln for ln in kp2.stderr_text().splitlines() if ln.strip()]
    assert lines, "no log lines"
    for ln in lines:
        _json.loads(ln)
    for text in (kp.stdout_text(), kp.stderr_text(), kp2.stdout_text(), kp2.stderr_text()):
        assert sk not in text, "the root secret key appears in the server output"


def test_concurrent_first_starts_never_break_the_data_directory(tmp_path):
    """Review (B3): two `serve` processes started at once on the same new data directory could
    interleave their account files, or one's failed start removed what the other was using,
    leaving a directory no later start could open. The data directory is locked before anything
    is created in it: at most one start wins, the other changes nothing, and the directory then
    starts normally."""
    from e2e_helpers import free_port

    for attempt in range(3):
        data = tmp_path / f"d{attempt}"
        procs = [_spawn(["--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data)], {}, tmp_path)
                 for _ in range(2)]
        time.sleep(1.5)
        running = [p for p in procs if p.poll() is None]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=20)
        assert len(running) <= 1, "two gateways served one data directory"
        for p in procs:
            if p.returncode != 0:
                err = p.stderr.read() if p.stderr else ""
                assert "in use by another keyhole process" in " ".join(err.replace("│", " ").split()), err
        # Whatever happened, the directory (if left) starts cleanly.
        if data.exists():
            again = _spawn(["--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data)], {}, tmp_path)
            time.sleep(1.5)
            assert again.poll() is None, again.stderr.read() if again.stderr else ""
            again.send_signal(signal.SIGTERM)
            assert again.wait(timeout=20) == 0
