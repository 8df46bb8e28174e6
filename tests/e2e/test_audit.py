"""Issue 5: the audit trail. Every request leaves an event, in order; tampering is caught by
`keyhole audit verify`; an unwritable trail makes writes fail closed; kill -9 under load loses no
acknowledged write's event; no secret ever reaches the trail.

Issue 20: the trail's integrity is proven by Ed25519-signed digests checked with the operator's
key (never one from the data directory): each attack of the adversarial review is performed here
on a real trail, with the restart variants (tests/e2e/test_audit_integrity.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import types
import uuid
import urllib.request
from pathlib import Path

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from e2e_helpers import (
    REGION,
    assert_s3_error,
    audit_dir,
    keyhole_cli,
    make_client,
    presign_url,
    raw_request,
    read_trail,
    secret_findings,
    signed_request,
    wait_for_events,
)


def target(kp) -> types.SimpleNamespace:
    """What signed_request needs to know about a server."""
    ak, sk = kp.credentials()
    return types.SimpleNamespace(port=kp.port, endpoint=kp.endpoint, access_key=ak, secret_key=sk)


def summary(e: dict) -> tuple:
    return (
        e["eventName"],
        e["stage"],
        e.get("httpStatus"),
        e.get("decision"),
        e["userIdentity"]["type"],
        e.get("errorCode"),
    )


def s3_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["api"] != "ops"]


def fingerprint(kp) -> str:
    """The audit key fingerprint the server printed at start (the operator records it)."""
    found = re.findall(r"audit key fingerprint: ([0-9a-f]{64})", kp.stdout_text())
    assert found, kp.logs()
    return found[0]


def verify(data_dir: Path, fp: str, *extra: str) -> subprocess.CompletedProcess:
    return keyhole_cli("audit", "verify", "--data-dir", str(data_dir), "--fingerprint", fp, *extra)


def test_mixed_session_produces_the_expected_events_in_order(fresh_server_factory):
    kp = fresh_server_factory()
    srv = target(kp)
    account = kp.account_id()
    s3 = make_client(kp.endpoint, srv.access_key, srv.secret_key)
    b = "audit-mixed"
    s3.create_bucket(Bucket=b)
    put = s3.put_object(Bucket=b, Key="data/k1", Body=b"hello")
    got = s3.get_object(Bucket=b, Key="data/k1")
    assert got["Body"].read() == b"hello"
    # Wait for the GET's event: it is recorded when its body has been sent.
    wait_for_events(kp.data_dir, lambda ev: any(e["eventName"] == "GetObject" for e in ev))
    anon = raw_request(kp.port, "GET", f"/{b}/data/k1")
    assert_s3_error(anon, 403, "AccessDenied")
    wait_for_events(kp.data_dir, lambda ev: any(e["userIdentity"]["type"] == "AnonymousPrincipal" for e in ev))
    bad = signed_request(srv, "PUT", f"/{b}/data/k2", body=b"x", secret_key="wrong" + srv.secret_key[5:])
    assert_s3_error(bad, 403, "SignatureDoesNotMatch")
    wait_for_events(kp.data_dir, lambda ev: any(e.get("errorCode") == "SignatureDoesNotMatch" for e in ev))
    # An STS request (signed for service sts): recorded with api "sts".
    form = b"Action=GetCallerIdentity&Version=2011-06-15"
    req = AWSRequest(
        method="POST",
        url=kp.endpoint + "/",
        data=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Amz-Content-SHA256": hashlib.sha256(form).hexdigest(),
        },
    )
    botocore.auth.SigV4Auth(Credentials(srv.access_key, srv.secret_key), "sts", REGION).add_auth(req)
    sts = raw_request(kp.port, "POST", "/", dict(req.headers), req.body)
    assert sts.status == 200, sts.body[:300]
    wait_for_events(kp.data_dir, lambda ev: any(e["api"] == "sts" for e in ev))
    up = s3.create_multipart_upload(Bucket=b, Key="data/big")
    part = s3.upload_part(Bucket=b, Key="data/big", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 1000)
    s3.complete_multipart_upload(
        Bucket=b,
        Key="data/big",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    s3.delete_object(Bucket=b, Key="data/k1")

    events = s3_events(read_trail(kp.data_dir))
    expected = [
        ("CreateBucket", "authorized", None, "Allow", "Root", None),
        ("CreateBucket", "completed", 200, "Allow", "Root", None),
        ("PutObject", "authorized", None, "Allow", "Root", None),
        ("PutObject", "completed", 200, "Allow", "Root", None),
        ("GetObject", "completed", 200, "Allow", "Root", None),
        ("GetObject", "completed", 403, "Deny", "AnonymousPrincipal", "AccessDenied"),
        ("Unknown", "completed", 403, "Deny", "Unknown", "SignatureDoesNotMatch"),
        ("GetCallerIdentity", "completed", 200, "Allow", "Root", None),
        ("CreateMultipartUpload", "authorized", None, "Allow", "Root", None),
        ("CreateMultipartUpload", "completed", 200, "Allow", "Root", None),
        ("UploadPart", "authorized", None, "Allow", "Root", None),
        ("UploadPart", "completed", 200, "Allow", "Root", None),
        ("CompleteMultipartUpload", "authorized", None, "Allow", "Root", None),
        ("CompleteMultipartUpload", "completed", 200, "Allow", "Root", None),
        ("DeleteObject", "authorized", None, "Allow", "Root", None),
        ("DeleteObject", "completed", 204, "Allow", "Root", None),
    ]
    assert [summary(e) for e in events] == expected, json.dumps(events, indent=1)[:6000]

    # Details CloudTrail users look for.
    put_done = events[3]
    assert put_done["requestID"] == put["ResponseMetadata"]["RequestId"]
    assert put_done["eventSource"] == "s3.amazonaws.com"
    assert put_done["sourceIPAddress"] == "127.0.0.1"
    assert put_done["userAgent"].startswith("Boto3/")
    assert put_done["userIdentity"] == {
        "type": "Root",
        # CloudTrail's principalId, the value of aws:userid: the account id for the root user.
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": srv.access_key,
    }
    assert put_done["requestParameters"] == {"bucketName": b, "key": "data/k1"}
    assert put_done["resources"] == [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{b}/data/k1"}]
    assert put_done["authorization"][0]["action"] == "s3:PutObject"
    assert put_done["bytesIn"] == 5 and put_done["tls"] is False and put_done["durationMs"] >= 0
    assert events[4]["bytesOut"] == 5
    assert events[11]["bytesIn"] == 1000
    assert events[6]["userIdentity"] == {"type": "Unknown", "accessKeyId": srv.access_key}
    assert events[7]["api"] == "sts" and events[7]["eventSource"] == "sts.amazonaws.com"
    seqs = [e["seq"] for e in read_trail(kp.data_dir)]
    assert seqs == list(range(1, len(seqs) + 1))

    ok = verify(kp.data_dir, fingerprint(kp))
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stdout + ok.stderr
    denied = keyhole_cli("audit", "query", "--data-dir", str(kp.data_dir), "--decision", "deny", "--format", "jsonl")
    assert denied.returncode == 0, denied.stderr
    codes = [json.loads(line).get("errorCode") for line in denied.stdout.splitlines()]
    assert codes == ["AccessDenied", "SignatureDoesNotMatch"]
    table = keyhole_cli("audit", "query", "--data-dir", str(kp.data_dir), "--bucket", b, "--prefix", "data/big",
                        "--operation", "UploadPart", "--status", "200")
    rows = table.stdout.splitlines()
    assert len(rows) == 2 and "UploadPart" in rows[1] and f"{b}/data/big" in rows[1], table.stdout
    # Write-ahead records alone (issue 20, item 7).
    ahead = keyhole_cli("audit", "query", "--data-dir", str(kp.data_dir), "--stage", "authorized", "--format", "jsonl")
    stages = {json.loads(line)["stage"] for line in ahead.stdout.splitlines()}
    assert ahead.returncode == 0 and stages == {"authorized"}, ahead.stdout + ahead.stderr
    assert len(ahead.stdout.splitlines()) == 6
    # The trail is private: directory 0700, files 0600 (issue 20, item 7).
    assert audit_dir(kp.data_dir).stat().st_mode & 0o777 == 0o700
    for f in audit_dir(kp.data_dir).iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f


def _stopped_trail(fresh_server_factory, tmp_path: Path, n: int = 6) -> tuple[Path, str]:
    """A data dir with a trail of 2n events (n PUTs), its server stopped; and its key's
    fingerprint."""
    kp = fresh_server_factory()
    s3 = make_client(kp.endpoint, *kp.credentials())
    s3.create_bucket(Bucket="tamper")
    for i in range(n - 1):
        s3.put_object(Bucket="tamper", Key=f"k{i}", Body=b"x")
    assert kp.stop() == 0
    return kp.data_dir, fingerprint(kp)


def _copy(data_dir: Path, dest: Path) -> tuple[Path, Path]:
    shutil.copytree(data_dir, dest, ignore=shutil.ignore_patterns("store"))
    (trail,) = sorted(audit_dir(dest).glob("audit-*.jsonl"))[-1:]
    return dest, trail


def _edit(path: Path, fn) -> None:
    lines = path.read_bytes().split(b"\n")[:-1]
    fn(lines)
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize(
    "kind,edit,line",
    [
        ("edited", lambda l: l.__setitem__(3, l[3].replace(b'"httpStatus":200', b'"httpStatus":403')), 4),
        ("deleted", lambda l: l.pop(4), 5),
        ("reordered", lambda l: l.insert(2, l.pop(3)), 3),
        ("inserted", lambda l: l.insert(6, l[1]), 7),
    ],
)
def test_verify_names_the_first_tampered_event(fresh_server_factory, tmp_path, kind, edit, line):
    data, fp = _stopped_trail(fresh_server_factory, tmp_path)
    assert verify(data, fp).returncode == 0
    copy, trail = _copy(data, tmp_path / kind)
    _edit(trail, edit)
    r = verify(copy, fp)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"FAILED at {trail.name}:{line}:" in r.stdout, r.stdout


def test_verify_catches_truncation(fresh_server_factory, tmp_path):
    data, fp = _stopped_trail(fresh_server_factory, tmp_path)
    # The last event removed: only the signed digests can tell.
    copy, trail = _copy(data, tmp_path / "tail")
    _edit(trail, lambda l: l.pop())
    r = verify(copy, fp)
    assert r.returncode == 1 and "cut from the tail" in r.stdout, r.stdout
    # The file cut in the middle of an event.
    copy, trail = _copy(data, tmp_path / "mid")
    with open(trail, "r+b") as f:
        f.truncate(trail.stat().st_size // 2)
    r = verify(copy, fp)
    assert r.returncode == 1 and "cut" in r.stdout, r.stdout
    # A digest edited without the key (the newest one moved back a step).
    copy, _ = _copy(data, tmp_path / "forged")
    (log,) = sorted(audit_dir(copy).glob("digest-*.jsonl"))[-1:]
    _edit(log, lambda l: l.__setitem__(-1, l[-1].replace(b'"kind":"stop"', b'"kind":"periodic"')))
    r = verify(copy, fp)
    assert r.returncode == 1 and "signature does not match" in r.stdout, r.stdout


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


def _immutable_trail(data_dir: Path):
    """Make the audit directory and every file in it immutable (chattr +i): as root too, appends to
    the open trail file fail with EPERM and no file can be created. Returns the undo function."""
    paths = [audit_dir(data_dir), *audit_dir(data_dir).iterdir()]
    _chattr("+i", *paths)
    return lambda: _chattr("-i", *paths)


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr")
def test_unwritable_trail_fails_writes_closed(fresh_server_factory):
    kp = fresh_server_factory()
    srv = target(kp)
    s3 = make_client(kp.endpoint, srv.access_key, srv.secret_key)
    s3.create_bucket(Bucket="closed")
    s3.put_object(Bucket="closed", Key="before", Body=b"1")
    undo = _immutable_trail(kp.data_dir)
    try:
        r = signed_request(srv, "PUT", "/closed/during", body=b"2")
        assert_s3_error(r, 503, "ServiceUnavailable")
        r = signed_request(srv, "DELETE", "/closed/before")
        assert_s3_error(r, 503, "ServiceUnavailable")
        # Nothing was stored or deleted without its event.
        assert signed_request(srv, "HEAD", "/closed/during").status == 404
        assert signed_request(srv, "GET", "/closed/before").body == b"1"
        metrics = urllib.request.urlopen(kp.endpoint + "/metrics").read().decode()
        failed = [l for l in metrics.splitlines() if l.startswith("keyhole_audit_events_failed_total ")]
        assert failed and int(failed[0].split()[1]) >= 2, metrics
    finally:
        undo()
    # Writable again: writes resume and the chain still verifies.
    r = signed_request(srv, "PUT", "/closed/after", body=b"3")
    assert r.status == 200, r.body
    events = read_trail(kp.data_dir)
    # The refused PUT left no write-ahead record and no success; its 503 and the HEAD's 404 may be
    # recorded once the trail is writable again (reads and refusals are not waited for).
    during = [e for e in events if e["requestParameters"].get("key") == "during"]
    assert not any(e["eventName"] == "PutObject" and (e["stage"] == "authorized" or e.get("httpStatus") == 200)
                   for e in during), during
    assert any(e["requestParameters"].get("key") == "after" and e["stage"] == "completed" for e in events)
    assert kp.stop() == 0
    ok = verify(kp.data_dir, fingerprint(kp))
    assert ok.returncode == 0, ok.stdout + ok.stderr


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr")
def test_audit_fail_open_serves_writes_when_the_trail_is_unwritable(fresh_server_factory):
    kp = fresh_server_factory(extra_args=["--audit-fail-open"])
    srv = target(kp)
    make_client(kp.endpoint, srv.access_key, srv.secret_key).create_bucket(Bucket="open")
    undo = _immutable_trail(kp.data_dir)
    try:
        r = signed_request(srv, "PUT", "/open/k", body=b"2")
        assert r.status == 200, r.body
    finally:
        undo()
    assert signed_request(srv, "GET", "/open/k").body == b"2"


def _metric(kp, name: str) -> int:
    text = urllib.request.urlopen(kp.endpoint + "/metrics").read().decode()
    found = [l for l in text.splitlines() if l.startswith(name + " ")]
    assert found, text
    return int(found[0].split()[1])


def test_unwritable_authorized_record_refuses_the_overwrite_and_changes_nothing(fresh_server_factory):
    """Issue 11 item 2, first ordering: the write-ahead record cannot be written, so the request is
    refused (503) and the object keeps its old data."""
    kp = fresh_server_factory(env={"KEYHOLE_TEST_AUDIT_FAULT": "authorized:PutObject"})
    srv = target(kp)
    s3 = make_client(kp.endpoint, srv.access_key, srv.secret_key)
    s3.create_bucket(Bucket="refused")
    # Seed the object without a PutObject (multipart), which the fault does not touch.
    up = s3.create_multipart_upload(Bucket="refused", Key="k")
    part = s3.upload_part(Bucket="refused", Key="k", UploadId=up["UploadId"], PartNumber=1, Body=b"old")
    s3.complete_multipart_upload(
        Bucket="refused", Key="k", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    r = signed_request(srv, "PUT", "/refused/k", body=b"new")
    assert_s3_error(r, 503, "ServiceUnavailable")
    assert s3.get_object(Bucket="refused", Key="k")["Body"].read() == b"old"
    assert _metric(kp, "keyhole_audit_unrecorded_outcomes_total") == 0
    events = read_trail(kp.data_dir)
    assert not any(e["eventName"] == "PutObject" and e["stage"] == "authorized" for e in events)


def test_unwritable_completed_record_still_tells_the_truth(fresh_server_factory):
    """Issue 11 item 2, second ordering: the overwrite was applied, then its `completed` record
    could not be written. The client is told the truth (200 and the new ETag), not "503, try
    again"; the trail shows the request as authorized with an unknown outcome, and verify lists it."""
    kp = fresh_server_factory(env={"KEYHOLE_TEST_AUDIT_FAULT": "completed:PutObject"})
    srv = target(kp)
    s3 = make_client(kp.endpoint, srv.access_key, srv.secret_key)
    s3.create_bucket(Bucket="applied")
    put = s3.put_object(Bucket="applied", Key="k", Body=b"new")
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    head = s3.head_object(Bucket="applied", Key="k")
    assert head["ETag"] == put["ETag"]
    assert s3.get_object(Bucket="applied", Key="k")["Body"].read() == b"new"
    request_id = put["ResponseMetadata"]["RequestId"]
    assert _metric(kp, "keyhole_audit_unrecorded_outcomes_total") == 1
    # Other changes are recorded as usual (the fault only hits PutObject's completed record).
    s3.delete_object(Bucket="applied", Key="k")
    wait_for_events(kp.data_dir, lambda ev: any(e["eventName"] == "DeleteObject" and e["stage"] == "completed" for e in ev))
    events = [e for e in read_trail(kp.data_dir) if e["requestID"] == request_id]
    assert [e["stage"] for e in events] == ["authorized"], events
    assert kp.stop() == 0
    r = verify(kp.data_dir, fingerprint(kp))
    # The chain is intact; the request is listed as authorized with an unknown outcome.
    assert r.returncode == 0, r.stdout + r.stderr
    assert "orphaned: 1" in r.stdout and "outcome unknown" in r.stdout, r.stdout
    assert request_id in r.stdout, r.stdout


def test_kill_9_under_load_keeps_every_acknowledged_write(fresh_server_factory):
    # Rotate often so the crash also exercises the chain across files.
    kp = fresh_server_factory(extra_args=["--audit-rotate-bytes", "20000"])
    srv = target(kp)
    make_client(kp.endpoint, srv.access_key, srv.secret_key).create_bucket(Bucket="crash")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"w{w}/k{i}"
            try:
                r = signed_request(srv, "PUT", f"/crash/{key}", body=os.urandom(64), unsigned_payload=True)
            except OSError:
                return  # the server is gone
            if r.status == 200:
                with lock:
                    acked.append(key)
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(3)
    kp.proc.send_signal(signal.SIGKILL)
    kp.proc.wait()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) > 50, f"only {len(acked)} writes acknowledged before the kill"

    events = read_trail(kp.data_dir)
    completed = {e["requestParameters"].get("key") for e in events if e["eventName"] == "PutObject" and e["stage"] == "completed" and e.get("httpStatus") == 200}
    missing = [k for k in acked if k not in completed]
    assert not missing, f"{len(missing)} acknowledged writes have no event, e.g. {missing[:5]}"
    assert len(sorted(audit_dir(kp.data_dir).glob("audit-*.jsonl"))) > 1
    fp = fingerprint(kp)
    r = verify(kp.data_dir, fp)
    assert r.returncode == 0, r.stdout + r.stderr
    # A restart cuts an incomplete final line, signs what the crash left unsigned (within the
    # bound), continues the chain, and the trail still verifies; the restart shows as a gap.
    kp.start()
    assert signed_request(srv, "PUT", "/crash/after", body=b"x").status == 200
    assert kp.stop() == 0
    r = verify(kp.data_dir, fp)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    assert "gap: " in r.stdout and "unclean stop" in r.stdout, r.stdout


def test_no_secret_reaches_the_trail_from_hostile_requests(fresh_server_factory):
    kp = fresh_server_factory()
    srv = target(kp)
    s3 = make_client(kp.endpoint, srv.access_key, srv.secret_key)
    s3.create_bucket(Bucket="secrets")
    s3.put_object(Bucket="secrets", Key="k", Body=b"v")
    token = "FQoGZXIvYXdzEJr//////////wEaDHKr-session-token-under-test"
    # A session token in the header and in a presigned query, a presigned URL with a bad signature,
    # a good presigned URL, a wrong secret, a garbage Authorization header, and the secret itself
    # sent as a header value.
    signed_request(srv, "GET", "/secrets/k", headers={"X-Amz-Security-Token": token})
    url = presign_url(kp.endpoint, "/secrets/k", srv.access_key, srv.secret_key, 300)
    assert urllib.request.urlopen(url).read() == b"v"
    path = url[len(kp.endpoint):]
    raw_request(kp.port, "GET", path + "&X-Amz-Security-Token=" + token)
    raw_request(kp.port, "GET", path[:-8] + "deadbeef")
    signed_request(srv, "PUT", "/secrets/k2", body=b"x", secret_key=srv.secret_key[::-1])
    raw_request(kp.port, "GET", "/secrets/k", {"Authorization": f"AWS4-HMAC-SHA256 Credential={srv.access_key}/x, Signature={'ab' * 32}"})
    raw_request(kp.port, "GET", "/secrets/k", {"X-Secret": srv.secret_key, "Cookie": token})
    events = wait_for_events(kp.data_dir, lambda ev: len(s3_events(ev)) >= 11)
    assert len(s3_events(events)) >= 11
    assert kp.stop() == 0
    findings = secret_findings(kp.data_dir, [srv.secret_key, token, srv.secret_key[::-1]])
    assert not findings, "\n".join(findings)


def test_a_request_head_the_gateway_cannot_read_is_recorded(fresh_server_factory, tmp_path):
    """The HTTP layer answers a head it cannot parse (400) or one far over the 32 KiB bound (431)
    before any routing; the trail records those answers too (AUDIT.md), and still verifies. A
    head over the bound that the HTTP layer did read whole is refused by the gateway (431,
    RequestHeaderSectionTooLarge), exactly at the bound."""
    import socket

    kp = fresh_server_factory()

    def send(raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", kp.port), timeout=10) as s:
            s.sendall(raw)
            return s.recv(300)

    def head(pad: int) -> bytes:
        return b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * pad + b"\r\n\r\n"

    assert send(b"GET /not a uri HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert send(head(200_000)).startswith(b"HTTP/1.1 431")
    events = wait_for_events(kp.data_dir, lambda ev: {e.get("httpStatus") for e in ev} >= {400, 431})
    refused = [e for e in events if e.get("httpStatus") in (400, 431)]
    assert len(refused) == 2, refused
    assert {(e["httpStatus"], e["errorCode"]) for e in refused} == {(400, "BadRequest"), (431, "RequestHeaderSectionTooLarge")}
    # An HTTP/2 preface is closed unanswered, and recorded without a status (review 30, F4).
    with socket.create_connection(("127.0.0.1", kp.port), timeout=10) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert s.recv(100) == b""
    h2 = wait_for_events(kp.data_dir, lambda ev: any(e.get("errorCode") == "HTTP2NotSupported" for e in ev))
    [preface] = [e for e in h2 if e.get("errorCode") == "HTTP2NotSupported"]
    assert "httpStatus" not in preface and preface["eventName"] == "Unknown", preface
    for e in refused:
        assert e["eventName"] == "Unknown" and e["userIdentity"]["type"] == "Unknown", e
        assert e["sourceIPAddress"] == "127.0.0.1" and e["stage"] == "completed", e
        assert "decision" not in e and e["errorMessage"].startswith("the HTTP request could not be read"), e
        assert re.fullmatch(r"[0-9A-F]{16}", e["requestID"]), e
    # Read whole by the HTTP layer, yet over the bound: refused by the gateway, and recorded.
    base = len(head(0))
    at_bound = head(32 * 1024 - base)
    assert len(at_bound) == 32 * 1024
    assert not send(at_bound).startswith(b"HTTP/1.1 431")
    over = send(head(32 * 1024 - base + 1))
    assert over.startswith(b"HTTP/1.1 431") and b"RequestHeaderSectionTooLarge" in over, over
    wait_for_events(kp.data_dir, lambda ev: any(e.get("errorCode") == "RequestHeaderSectionTooLarge" for e in ev))
    # The heads the HTTP layer refused are counted with every other request.
    metrics = urllib.request.urlopen(kp.endpoint + "/metrics").read().decode()
    for status in (400, 431):
        line = f'keyhole_requests_total{{api="s3",operation="Unknown",decision="None",status="{status}"}}'
        assert line in metrics, metrics
    fp = fingerprint(kp)
    assert kp.stop() == 0
    checked = verify(kp.data_dir, fp)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_quit_stops_the_gateway_cleanly_and_hangup_and_usr1_do_not_kill_it(fresh_server_factory):
    """SIGQUIT (nginx's graceful stop) stops the gateway as SIGTERM does: exit 0, a stop digest,
    and no `gap:` in verify after the restart. SIGHUP (a reload: of the TLS certificate, none
    here) and SIGUSR1 leave it serving; each used to kill it with no stop digest."""
    kp = fresh_server_factory()
    srv = target(kp)
    assert signed_request(srv, "PUT", "/sig-bucket").status == 200
    for sig in (signal.SIGUSR1, signal.SIGHUP):
        kp.proc.send_signal(sig)
        time.sleep(0.3)
        assert kp.proc.poll() is None, kp.logs()
    assert signed_request(srv, "PUT", "/sig-bucket/k", body=b"x").status == 200
    kp.proc.send_signal(signal.SIGQUIT)
    assert kp.proc.wait(timeout=20) == 0, kp.logs()
    assert "SIGHUP: nothing to reload" in kp.stderr_text() + kp.stdout_text(), kp.logs()
    kp.start()
    assert signed_request(srv, "GET", "/sig-bucket/k").status == 200
    assert kp.stop() == 0
    r = verify(kp.data_dir, fingerprint(kp))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gap: " not in r.stdout, r.stdout


def test_retention_ignores_file_times(fresh_server_factory, tmp_path):
    """Issue 20, attack 5: backdated files (`touch -d '10 days ago'`) are not old: retention goes
    by the event times signed in the digests, never by mtimes. (Retention of really old events,
    and a restart after every file expired, are tested with a clock ten days ahead in
    crates/server/src/audit/tests.rs.)"""
    base = tmp_path / "retained"
    kp = fresh_server_factory(base=base, extra_args=["--audit-rotate-bytes", "2000"])
    srv = target(kp)
    s3 = make_client(kp.endpoint, srv.access_key, srv.secret_key)
    s3.create_bucket(Bucket="old-events")
    for i in range(10):
        s3.put_object(Bucket="old-events", Key=f"k{i}", Body=b"x")
    assert kp.stop() == 0
    fp = fingerprint(kp)
    files = sorted(audit_dir(kp.data_dir).glob("*.jsonl"))
    assert len(files) >= 6, files
    ten_days_ago = time.time() - 10 * 86400
    for f in files:
        os.utime(f, (ten_days_ago, ten_days_ago))
    kp2 = fresh_server_factory(base=base, extra_args=["--audit-retain-days", "1", "--audit-rotate-bytes", "2000"])
    s3 = make_client(kp2.endpoint, srv.access_key, srv.secret_key)
    s3.put_object(Bucket="old-events", Key="after", Body=b"y")
    assert kp2.stop() == 0
    left = set(audit_dir(kp2.data_dir).glob("*.jsonl"))
    assert set(files) <= left, sorted(set(files) - left)
    r = verify(kp2.data_dir, fp)
    assert r.returncode == 0 and "retention" not in r.stderr, r.stdout + r.stderr
    assert len(read_trail(kp2.data_dir)) == 24


def test_events_name_the_statements_that_decided(server, s3):
    """Each check records the deciding statements: the allows that granted, the denies that
    refused (none for an implicit deny)."""
    from test_iam import iam_client, new_user

    bucket = f"stmts-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="open/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="closed/b", Body=b"b")
    iam = iam_client(server)
    name, ak, sk = new_user(iam)
    iam.put_user_policy(UserName=name, PolicyName="reader", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "ReadAll", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
            {"Sid": "NotClosed", "Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/closed/*"}]}))
    user = make_client(server.endpoint, ak, sk)
    user.get_object(Bucket=bucket, Key="open/a")["Body"].read()
    for key in ("closed/b",):
        try:
            user.get_object(Bucket=bucket, Key=key)
        except Exception:
            pass
    try:
        user.put_object(Bucket=bucket, Key="open/c", Body=b"c")
    except Exception:
        pass

    def check_of(key: str, op: str) -> dict:
        events = wait_for_events(server.data_dir, lambda evs: any(
            e["requestParameters"].get("key") == key and e["eventName"] == op and e["stage"] == "completed"
            for e in evs))
        [e] = [e for e in events if e["requestParameters"].get("key") == key and e["eventName"] == op
               and e["stage"] == "completed" and e["userIdentity"].get("accessKeyId") == ak]
        [c] = e["authorization"]
        return c

    assert check_of("open/a", "GetObject")["statements"] == ["inline policy `reader` statement 0 (Sid ReadAll)"]
    denied = check_of("closed/b", "GetObject")
    assert denied["decision"] == "Deny" and denied["statements"] == ["inline policy `reader` statement 1 (Sid NotClosed)"]
    assert check_of("open/c", "PutObject")["statements"] == []  # implicit deny: no statement decided


def test_delete_objects_records_its_keys_before_and_each_result_after(server, s3):
    """Issue 20 item 7: DeleteObjects' `authorized` record names every key before any is deleted,
    and its `completed` record says what happened to each, quiet or not."""
    from test_iam import iam_client, new_user

    b = f"audit-delete-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=b)
    for k in ("keep/a", "tmp/b", "tmp/c"):
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    _, ak, sk = new_user(iam_client(server), {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{b}/tmp/*"}],
    })
    user = make_client(server.endpoint, ak, sk)
    keys = ["tmp/b", "keep/a", "tmp/c"]
    got = user.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    assert [e["Key"] for e in got.get("Errors", [])] == ["keep/a"]
    assert "Deleted" not in got  # quiet
    request_id = got["ResponseMetadata"]["RequestId"]
    wait_for_events(server.data_dir, lambda ev: any(
        e["requestID"] == request_id and e["stage"] == "completed" for e in ev))
    events = {e["stage"]: e for e in read_trail(server.data_dir) if e["requestID"] == request_id}
    assert events["authorized"]["requestParameters"]["keys"] == keys
    assert events["authorized"]["requestParameters"]["quiet"] is True
    assert events["completed"]["responseElements"] == {
        "deleted": ["tmp/b", "tmp/c"],
        "errors": [{"key": "keep/a", "code": "AccessDenied"}],
    }
    assert s3.get_object(Bucket=b, Key="keep/a")["Body"].read() == b"x"


def test_a_cli_command_piped_into_a_reader_that_stops_ends_quietly():
    """`keyhole job plan ... | head -1`: the reader has closed the pipe before the command
    prints; it ends with a broken pipe's status (141, as a process killed by SIGPIPE) and no
    panic trace (a jobs/CLI sweep, L4: it printed a panic and aborted)."""
    from e2e_helpers import keyhole_bin

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    proc = subprocess.Popen([str(keyhole_bin()), "job", "plan", "--name", "x", "--read", "s3://bucket-a/p/",
                             "--for", "1h"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "panic" not in err, err


def test_cli_errors_show_what_a_spec_holds_escaped(tmp_path):
    """A spec someone else wrote may hold terminal escape sequences; the CLI's errors show them
    escaped, never raw (review 36, F4)."""
    from e2e_helpers import keyhole_bin

    spec = tmp_path / "job.toml"
    spec.write_text('name = "bad\\u001b[31mname"\nread = ["s3://bucket-a/p/"]\nduration = "1h"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    r = subprocess.run([str(keyhole_bin()), "job", "plan", str(spec)], capture_output=True, text=True,
                       env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode != 0
    assert "\x1b" not in r.stderr and "\\u{1b}" in r.stderr, r.stderr
