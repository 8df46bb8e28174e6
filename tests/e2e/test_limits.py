"""Issue 11, item 1: one client cannot take the gateway down. Connection limits (per source
address, total with headroom for new clients) and timeouts (request head, keep-alive idle, body
progress), each against a real `keyhole serve` over loopback.

Floods come from other loopback addresses (127.0.0.4, 127.0.0.5) in separate processes with
bounded loops; the client that must still be served uses 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from e2e_helpers import KeyholeProcess, free_port, make_client, object_path, sign

FLOOD = r'''
"""Hold up to N connections from SOURCE to PORT for SECONDS, reopening those the server closes."""
import json, select, socket, sys, time
source, port, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks, opened, closed_by_server, failed, most = [], 0, 0, 0, 0


def drop_closed():
    """Forgets the connections the server closed (those readable at EOF) within 50 ms."""
    global closed_by_server
    for s in select.select(socks, [], [], 0.05)[0] if socks else []:
        try:
            data = s.recv(1)
        except OSError:
            data = b""
        if not data:
            closed_by_server += 1
            socks.remove(s)
            s.close()


end = time.monotonic() + seconds
while time.monotonic() < end:
    while len(socks) < n and time.monotonic() < end:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
        except OSError:
            failed += 1
            s.close()
            break
        opened += 1
        socks.append(s)
    most = max(most, len(socks))
    drop_closed()
    time.sleep(0.01)
# Stop opening, and give the server a moment to close what it will not keep: the last round's
# connections may still wait in the listen backlog, where the kernel completed them before the
# gateway saw them (on a busy machine that can be more than the cap), so they say nothing yet of
# what the gateway holds.
settle_end = time.monotonic() + 2
while socks and time.monotonic() < settle_end:
    drop_closed()
held = len(socks)
for s in socks:
    s.close()
print(json.dumps({"opened": opened, "closed_by_server": closed_by_server, "failed": failed, "held_at_end": held}))
'''


def start(tmp_path: Path, *args: str, nofile: int | None = None, env: dict[str, str] | None = None) -> KeyholeProcess:
    kp = KeyholeProcess(data_dir=tmp_path / "data", port=free_port(), log_dir=tmp_path / "logs", cwd=tmp_path,
                        extra_args=list(args), nofile=nofile, env=env or {})
    kp.start()
    return kp


def metric(kp: KeyholeProcess, name: str) -> float:
    text = urllib.request.urlopen(f"{kp.endpoint}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def rss_kib(kp: KeyholeProcess) -> int:
    assert kp.proc is not None
    for line in Path(f"/proc/{kp.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def timed_request(kp: KeyholeProcess, path: str, headers: dict[str, str] | None = None) -> tuple[int, float]:
    """(status, seconds) of one request from 127.0.0.1 on a fresh connection."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", kp.port, timeout=10, source_address=("127.0.0.1", 0))
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for k, v in (headers or {"Host": f"127.0.0.1:{kp.port}"}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - started
    finally:
        conn.close()


def closed_after(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the server closes `sock` (reading and dropping whatever it sends), or None if
    it is still open after `limit` seconds."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def test_a_flood_from_two_addresses_does_not_starve_others(tmp_path):
    """127.0.0.4 and 127.0.0.5 each try to hold 300 connections, far above the per-address cap of
    50 and together above what 512 descriptors allow; requests from 127.0.0.1 are still served
    within 100 ms, and memory returns near its baseline afterwards."""
    kp = start(tmp_path, "--max-connections-per-ip", "50", nofile=512)
    try:
        ak, sk = kp.credentials()
        s3 = make_client(kp.endpoint, ak, sk)
        s3.create_bucket(Bucket="flood")
        s3.put_object(Bucket="flood", Key="k", Body=b"v" * 1024)
        path = object_path("flood", "k")
        for _ in range(20):  # warm up: allocator arenas, caches, the runtime's threads
            assert timed_request(kp, "/healthz")[0] == 200
            assert s3.get_object(Bucket="flood", Key="k")["Body"].read() == b"v" * 1024
        baseline = rss_kib(kp)

        script = tmp_path / "flood.py"
        script.write_text(FLOOD)
        floods = [subprocess.Popen([sys.executable, str(script), source, str(kp.port), "300", "8"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL)
                  for source in ("127.0.0.4", "127.0.0.5")]
        try:
            time.sleep(2)  # let both floods reach the cap
            times = []
            for i in range(30):
                headers = sign("GET", f"{kp.endpoint}{path}", ak, sk, {"Host": f"127.0.0.1:{kp.port}"})
                status, took = timed_request(kp, path if i % 2 else "/healthz", headers if i % 2 else None)
                assert status == 200, f"request {i} from 127.0.0.1 answered {status} during the flood"
                times.append(took)
                time.sleep(0.05)
            open_during = metric(kp, "keyhole_active_connections")
            peak = rss_kib(kp)
        finally:
            reports = []
            for f in floods:
                out, err = f.communicate(timeout=60)
                assert f.returncode == 0, err
                reports.append(json.loads(out))
        ms = sorted(t * 1000 for t in times)
        median, p90 = statistics.median(ms), ms[int(len(ms) * 0.9)]
        print(f"flood: 127.0.0.1 median {median:.1f} ms, p90 {p90:.1f} ms, max {ms[-1]:.1f} ms; "
              f"open during {open_during:.0f}; RSS {baseline} KiB -> {peak} KiB; floods {reports}")
        assert median < 100 and p90 < 100, f"127.0.0.1 not served within 100 ms during the flood: {ms}"
        assert ms[-1] < 2000, ms
        # Each flooder held at most its cap (plus the one being admitted), and was pushed back.
        for r in reports:
            assert r["opened"] > 300 and r["closed_by_server"] > 0, reports
            assert r["held_at_end"] <= 51, reports
        assert open_during <= 2 * 51 + 5, open_during
        assert metric(kp, 'keyhole_connections_closed_total{reason="shed"}') \
            + metric(kp, 'keyhole_connections_refused_total{limit="per_ip"}') > 0

        # Afterwards: every flood connection closed (what stays open is boto3's keep-alive
        # connection and the /metrics request itself), and memory back near where it was.
        deadline = time.monotonic() + 20
        while metric(kp, "keyhole_active_connections") > 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(kp, "keyhole_active_connections") <= 2
        after = rss_kib(kp)
        print(f"RSS after the flood: {after} KiB (baseline {baseline} KiB)")
        assert after <= baseline + max(baseline // 2, 16 * 1024), (baseline, peak, after)
        assert s3.get_object(Bucket="flood", Key="k")["Body"].read() == b"v" * 1024
    finally:
        kp.kill()


def test_headroom_near_the_maximum_keeps_room_for_new_clients(tmp_path):
    """With --max-connections 40 and no useful per-address cap, one address holding 60 idle
    connections cannot lock others out: connections between requests are closed for headroom."""
    kp = start(tmp_path, "--max-connections", "40", "--max-connections-per-ip", "1000")
    try:
        script = tmp_path / "flood.py"
        script.write_text(FLOOD)
        flood = subprocess.Popen([sys.executable, str(script), "127.0.0.4", str(kp.port), "60", "5"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            time.sleep(1.5)
            for _ in range(10):
                status, took = timed_request(kp, "/healthz")
                assert status == 200 and took < 2, (status, took)
                time.sleep(0.05)
            assert metric(kp, "keyhole_active_connections") <= 40
        finally:
            out, err = flood.communicate(timeout=60)
        assert flood.returncode == 0, err
        assert json.loads(out)["closed_by_server"] > 0, out
        assert metric(kp, 'keyhole_connections_closed_total{reason="shed"}') > 0
    finally:
        kp.kill()


def test_slowloris_is_closed_by_the_header_timeout(tmp_path):
    """One header line every half second never completes a request head: the connection is closed
    when the header timeout (2 s, set through KEYHOLE_HEADER_TIMEOUT_SECS) runs out. A client that
    takes a moment before sending a whole request is still served."""
    kp = start(tmp_path, env={"KEYHOLE_HEADER_TIMEOUT_SECS": "2"})
    try:
        slow = socket.create_connection(("127.0.0.1", kp.port), timeout=5)
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = None
        for i in range(40):  # at most 20 s of drip-feeding
            time.sleep(0.5)
            try:
                slow.sendall(f"X-Slow-{i}: a\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - started
                break
            slow.setblocking(False)
            try:
                if slow.recv(65536) == b"":
                    closed = time.monotonic() - started
                    break
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed = time.monotonic() - started
                break
            finally:
                slow.setblocking(True)
        slow.close()
        assert closed is not None, "a slowloris connection was kept open for 20 s"
        assert 1.5 <= closed <= 10, closed

        # A connection that sends nothing at all is closed the same way.
        silent = socket.create_connection(("127.0.0.1", kp.port), timeout=5)
        took = closed_after(silent, 10)
        silent.close()
        assert took is not None and 1.5 <= took <= 10, took
        assert metric(kp, 'keyhole_connections_closed_total{reason="header_timeout"}') >= 2

        # A client that waits a second, then sends a whole request, is served.
        ok = socket.create_connection(("127.0.0.1", kp.port), timeout=5)
        time.sleep(1)
        ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert ok.recv(4096).startswith(b"HTTP/1.1 200")
        ok.close()
    finally:
        kp.kill()


def test_idle_keepalive_connections_are_closed(tmp_path):
    """idle_timeout_secs = 2 (from the config file): a keep-alive connection without a request for
    2 s is closed; one that keeps sending requests stays open."""
    config = tmp_path / "keyhole.toml"
    config.write_text("idle_timeout_secs = 2\n")
    kp = start(tmp_path, "--config", str(config))
    try:
        busy = http.client.HTTPConnection("127.0.0.1", kp.port, timeout=5)
        for _ in range(6):  # 3 s of requests every half second on one connection
            busy.request("GET", "/healthz")
            assert busy.getresponse().read() == b"ok\n"
            time.sleep(0.5)
        local_port = busy.sock.getsockname()[1]
        busy.request("GET", "/healthz")
        assert busy.getresponse().read() == b"ok\n"
        assert busy.sock.getsockname()[1] == local_port, "the connection was kept between requests"
        took = closed_after(busy.sock, 10)
        busy.close()
        assert took is not None and 1.5 <= took <= 10, took
        assert metric(kp, 'keyhole_connections_closed_total{reason="idle_timeout"}') >= 1
    finally:
        kp.kill()


def _put_head(kp: KeyholeProcess, key: str, length: int) -> bytes:
    ak, sk = kp.credentials()
    path = object_path("slow", key)
    headers = sign("PUT", f"{kp.endpoint}{path}", ak, sk,
                   {"Host": f"127.0.0.1:{kp.port}", "Content-Length": str(length)}, unsigned_payload=True)
    return (f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


def _answer(sock: socket.socket, limit: float) -> bytes:
    sock.settimeout(limit)
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return got


def test_body_progress_refuses_stalls_and_trickles_but_not_slow_uploads(tmp_path):
    """--body-timeout-secs 2 --body-min-rate 100: a body that stops gets RequestTimeout; so does
    one that trickles 20 bytes a second; one that moves at 1000 bytes a second for 8 s (four
    windows) completes. A minimum progress, not a total deadline."""
    kp = start(tmp_path, "--body-timeout-secs", "2", "--body-min-rate", "100")
    try:
        ak, sk = kp.credentials()
        s3 = make_client(kp.endpoint, ak, sk)
        s3.create_bucket(Bucket="slow")

        stalled = socket.create_connection(("127.0.0.1", kp.port), timeout=20)
        started = time.monotonic()
        stalled.sendall(_put_head(kp, "stalled", 10_000) + b"s" * 100)
        answer = _answer(stalled, 15)
        took = time.monotonic() - started
        stalled.close()
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b"<Code>RequestTimeout</Code>" in answer, answer[:300]
        assert 1.5 <= took <= 10, took

        trickle = socket.create_connection(("127.0.0.1", kp.port), timeout=20)
        trickle.sendall(_put_head(kp, "trickle", 10_000))
        started = time.monotonic()
        trickle.setblocking(False)
        answer = b""
        while time.monotonic() - started < 15 and b"\r\n\r\n" not in answer:
            try:
                trickle.sendall(b"t" * 10)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            time.sleep(0.5)
            try:
                answer += trickle.recv(65536)
            except (BlockingIOError, ConnectionResetError):
                pass
        trickle.close()
        assert answer.startswith(b"HTTP/1.1 400") and b"RequestTimeout" in answer, answer[:300]

        body = bytes(range(256)) * 32  # 8 KiB, sent 500 bytes every half second
        moving = socket.create_connection(("127.0.0.1", kp.port), timeout=30)
        moving.sendall(_put_head(kp, "moving", len(body)))
        started = time.monotonic()
        for i in range(0, len(body), 500):
            moving.sendall(body[i:i + 500])
            time.sleep(0.5)
        answer = _answer(moving, 20)
        moving.close()
        assert time.monotonic() - started > 4 * 2, "the upload outlasted several windows"
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert s3.get_object(Bucket="slow", Key="moving")["Body"].read() == body
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="slow").get("Contents", [])]
        assert keys == ["moving"], keys
        assert metric(kp, "keyhole_request_body_timeouts_total") >= 2
    finally:
        kp.kill()


def _iam_head(kp: KeyholeProcess, ak: str, sk: str, length: int) -> bytes:
    """The head of an IAM Query POST declaring a `length`-byte form body, signed (UNSIGNED-PAYLOAD
    is not allowed for IAM, so the signature is over an empty body: it never verifies, and the
    body is what matters here)."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    req = botocore.awsrequest.AWSRequest(method="POST", url=f"{kp.endpoint}/", data=b"",
                                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                                  "Host": f"127.0.0.1:{kp.port}"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ak, sk), "iam", "us-east-1").add_auth(req)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "content-length"}
    headers["Content-Length"] = str(length)
    return (b"POST / HTTP/1.1\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n")


def test_signed_api_bodies_cannot_hold_connections_without_credentials(tmp_path):
    """Review (B1): an IAM/STS body is read before its signature can be checked; bodies trickled
    at just above the minimum rate under an unknown key kept connections busy (never shed) for a
    minute each. An unknown key is now refused before its body is read, and a known key's body is
    due within the header timeout."""
    kp = start(tmp_path, "--header-timeout-secs", "2")
    try:
        unknown = socket.create_connection(("127.0.0.1", kp.port), timeout=5)
        unknown.sendall(_iam_head(kp, "AKIAIOSFODNN7EXAMPLE", "x" * 40, 60_000) + b"Action=")
        started = time.monotonic()
        answer = _answer(unknown, 5)
        assert b" 403 " in answer.split(b"\r\n")[0], answer[:200]
        assert time.monotonic() - started < 1.5
        unknown.close()
        # A real key trickling its body: refused at the header timeout, not a minute later.
        ak, sk = kp.credentials()
        slow = socket.create_connection(("127.0.0.1", kp.port), timeout=10)
        slow.sendall(_iam_head(kp, ak, sk, 60_000) + b"Action=")
        started = time.monotonic()
        for _ in range(6):
            time.sleep(0.5)
            try:
                slow.sendall(b"x" * 1100)
            except OSError:
                break
        answer = _answer(slow, 5)
        assert b" 400 " in answer.split(b"\r\n")[0] and b"RequestTimeout" in answer, answer[:300]
        assert time.monotonic() - started < 4.5
        slow.close()
    finally:
        kp.stop()


def test_request_heads_are_bounded(tmp_path):
    """Review (B2): unfinished heads of up to ~400 KB were buffered per connection (1.5 GB of RSS
    under a flood, kept afterwards). Heads are now capped at 32 KiB: a larger one is 431, a
    normal large one (20 KiB of headers) is served."""
    kp = start(tmp_path)
    try:
        status, _ = timed_request(kp, "/healthz", {"Host": f"127.0.0.1:{kp.port}", "X-Pad": "a" * 20_000})
        assert status == 200
        sock = socket.create_connection(("127.0.0.1", kp.port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000)
        answer = _answer(sock, 5)
        assert b" 431 " in answer.split(b"\r\n")[0], answer[:200]
        sock.close()
    finally:
        kp.stop()


def test_the_gateway_runs_without_transparent_huge_pages(fresh_server_factory):
    """Issue 16: `keyhole serve` turns transparent huge pages off for itself, for the tail latency
    of small PUTs (docs/BENCHMARKS.md, "Huge pages off"); the kernel reports it per process."""
    kp = fresh_server_factory()
    status = Path(f"/proc/{kp.proc.pid}/status").read_text()
    line = next((x for x in status.splitlines() if x.startswith("THP_enabled:")), None)
    if line is None:
        pytest.skip("this kernel does not report THP_enabled in /proc/PID/status")
    assert line.split()[1] == "0", line


def test_a_change_left_running_by_its_client_still_counts_as_an_active_connection(fresh_server_factory):
    """A change whose client resets the connection runs to its end on a task of its own, counted
    against the connection caps until it ends; `keyhole_active_connections` counts it the same
    way (it used to drop at the reset while the caps still held the slot: review 24, filed)."""
    import os
    import struct

    from e2e_helpers import read_trail

    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="gauge")
    s3.put_object(Bucket="gauge", Key="big", Body=os.urandom(256 * 1024 * 1024))
    s3.close()  # no keep-alive connection of boto3's in the count
    before = metric(kp, "keyhole_active_connections")  # this /metrics request alone
    headers = {"Host": f"127.0.0.1:{kp.port}", "x-amz-copy-source": "/gauge/big"}
    signed = sign("PUT", f"{kp.endpoint}/gauge/copy", ak, sk, headers, b"")
    head = "PUT /gauge/copy HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    with socket.create_connection(("127.0.0.1", kp.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        s.sendall(f"{head}Content-Length: 0\r\n\r\n".encode())
        deadline = time.monotonic() + 10
        while not [e for e in read_trail(kp.data_dir) if e.get("eventName") == "CopyObject"]:
            assert time.monotonic() < deadline, "no authorized record for the copy"
            time.sleep(0.01)
    time.sleep(0.1)  # the reset reaches the server
    during = metric(kp, "keyhole_active_connections")
    stages = {e["stage"] for e in read_trail(kp.data_dir) if e.get("eventName") == "CopyObject"}
    assert stages == {"authorized"}, f"the copy ended before the gauge was read: {stages}"
    assert during == before + 1, (before, during)
    deadline = time.monotonic() + 60
    while "completed" not in {e["stage"] for e in read_trail(kp.data_dir) if e.get("eventName") == "CopyObject"}:
        assert time.monotonic() < deadline, "the copy never completed"
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while metric(kp, "keyhole_active_connections") != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(kp, "keyhole_active_connections") == before
