"""Issue 20: an audit trail whose integrity can be proven. Each attack of the adversarial review,
performed on a real trail written by the real binary, is detected by `keyhole audit verify` run
with the operator's key (a fingerprint or public key recorded away from the data directory), and
the restart variants are refused by the gateway's start check."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from e2e_helpers import ServerStartError, audit_dir, keyhole_cli, make_client, read_trail, signed_request
from test_audit import fingerprint, target, verify


def _puts(kp, n: int, prefix: str = "k", bucket: str = "integrity") -> None:
    s3 = make_client(kp.endpoint, *kp.credentials())
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for i in range(n):
        s3.put_object(Bucket=bucket, Key=f"{prefix}{i}", Body=b"x")


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _rechain(lines: list[bytes], start: int) -> None:
    """Recompute the unkeyed SHA-256 chain from `start` on, as anyone who can write the file can."""
    prev = json.loads(lines[start - 1])["hash"]
    for i in range(start, len(lines)):
        content = lines[i].rsplit(b',"hash":"', 1)[0]
        old_prev = json.loads(lines[i])["prevHash"]
        content = content.replace(f'"prevHash":"{old_prev}"'.encode(), f'"prevHash":"{prev}"'.encode())
        h = hashlib.sha256(content).hexdigest()
        lines[i] = content + f',"hash":"{h}"}}'.encode()
        prev = h


def _newest_trail(data_dir: Path) -> Path:
    return [p for p in sorted(audit_dir(data_dir).glob("audit-*.jsonl")) if p.stat().st_size > 0][-1]


def _refused(kp) -> str:
    """Start `kp` and expect the start check to refuse; returns the logs."""
    try:
        kp.start(timeout=20)
    except ServerStartError as e:
        # miette wraps lines (and breaks words at hyphens): join them back.
        return " ".join(str(e).replace("│", " ").replace("-\n", "-").split())
    raise AssertionError("the gateway started on a tampered trail\n" + kp.logs())


def _metric(kp, name: str) -> int:
    text = urllib.request.urlopen(kp.endpoint + "/metrics").read().decode()
    (line,) = [l for l in text.splitlines() if l.startswith(name + " ")]
    return int(line.split()[1])


def test_cut_tail_restart_is_refused_and_a_discontinuity_must_be_accepted(fresh_server_factory):
    """Attack 1: cut the last events, restart, make requests: verify must not say ok."""
    kp = fresh_server_factory()
    _puts(kp, 6)
    assert kp.stop() == 0
    fp = fingerprint(kp)
    trail = _newest_trail(kp.data_dir)
    _write(trail, _lines(trail)[:-4])
    r = verify(kp.data_dir, fp)
    assert r.returncode == 1 and "cut from the tail" in r.stdout, r.stdout
    logs = _refused(kp)
    assert "does not match its signed" in logs and "signed discontinuity digest" in logs, logs
    # The explicit flag: a signed discontinuity, an error in the log, a counter in /metrics.
    kp.extra_args = ["--audit-accept-discontinuity"]
    kp.start()
    assert _metric(kp, "keyhole_audit_discontinuities_total") == 1
    assert "AUDIT DISCONTINUITY" in kp.stderr_text()
    _puts(kp, 3, prefix="after")
    assert kp.stop() == 0
    r = verify(kp.data_dir, fp)
    assert r.returncode == 3 and "discontinuity: digest #" in r.stdout, r.stdout + r.stderr
    # The sequence went on from the signed head, not from the cut file.
    seqs = [e["seq"] for e in read_trail(kp.data_dir)]
    assert len(seqs) == len(set(seqs)), "a sequence number was reused"


def test_rechained_edit_is_named_and_the_restart_refused(fresh_server_factory):
    """Attack 1, second form: edit one event and recompute the chain forward."""
    kp = fresh_server_factory()
    _puts(kp, 5)
    assert kp.stop() == 0
    fp = fingerprint(kp)
    trail = _newest_trail(kp.data_dir)
    lines = _lines(trail)
    assert b'"httpStatus":200' in lines[3]
    lines[3] = lines[3].replace(b'"httpStatus":200', b'"httpStatus":404')
    _rechain(lines, 3)
    _write(trail, lines)
    r = verify(kp.data_dir, fp)
    assert r.returncode == 1, r.stdout
    assert f"FAILED at {trail.name}:4:" in r.stdout and "recomputed" in r.stdout, r.stdout
    assert "does not match its signed digests" in _refused(kp)


def test_verify_never_takes_the_key_from_the_directory_it_checks(fresh_server_factory, tmp_path):
    """Attack 2: replace the key in the data directory with one's own and a trail signed with it."""
    victim = fresh_server_factory(base=tmp_path / "victim")
    _puts(victim, 3)
    assert victim.stop() == 0
    fp = fingerprint(victim)
    # Without the operator's key, verify refuses to guess.
    r = keyhole_cli("audit", "verify", "--data-dir", str(victim.data_dir))
    assert r.returncode != 0 and "--fingerprint" in r.stderr, r.stderr
    # The attacker's own keyhole writes a clean, consistently signed trail...
    attacker = fresh_server_factory(base=tmp_path / "attacker")
    _puts(attacker, 1)
    assert attacker.stop() == 0
    shutil.rmtree(audit_dir(victim.data_dir))
    shutil.copytree(audit_dir(attacker.data_dir), audit_dir(victim.data_dir))
    shutil.copy(attacker.data_dir / "audit-signing.key", victim.data_dir / "audit-signing.key")
    # ...which the operator's fingerprint rejects,
    r = verify(victim.data_dir, fp)
    assert r.returncode == 1 and "not the operator's" in r.stdout, r.stdout
    # and a gateway with the fingerprint pinned refuses to start with the planted key.
    victim.extra_args = ["--audit-key-fingerprint", fp]
    logs = _refused(victim)
    assert "is not among audit_key_fingerprints" in logs, logs


def test_rollback_is_caught_by_exported_digests(fresh_server_factory, tmp_path):
    """Attack 3: roll the trail and its digests back to an earlier copy (no key needed)."""
    kp = fresh_server_factory()
    _puts(kp, 3)
    assert kp.stop() == 0
    fp = fingerprint(kp)
    early = tmp_path / "early"
    shutil.copytree(audit_dir(kp.data_dir), early)
    kp.start()
    _puts(kp, 4, prefix="later")
    assert kp.stop() == 0
    witness = tmp_path / "witness"
    r = keyhole_cli("audit", "export-digests", str(witness), "--data-dir", str(kp.data_dir), "--fingerprint", fp)
    assert r.returncode == 0 and "exported" in r.stdout, r.stdout + r.stderr
    # The attacker restores the early copy while the gateway is stopped, and it goes on from it.
    shutil.rmtree(audit_dir(kp.data_dir))
    shutil.copytree(early, audit_dir(kp.data_dir))
    kp.start()
    _puts(kp, 1, prefix="after-rollback")
    assert kp.stop() == 0
    # The witness's digests expose it; so does the next export.
    r = verify(kp.data_dir, fp, "--digests", str(witness))
    assert r.returncode == 1, r.stdout
    r = keyhole_cli("audit", "export-digests", str(witness), "--data-dir", str(kp.data_dir), "--fingerprint", fp)
    assert r.returncode != 0 and "rolled back" in r.stderr, r.stdout + r.stderr


def test_a_swapped_trail_file_is_detected_while_running(fresh_server_factory):
    """Attack 3, third form: swap the file's inode while the gateway runs."""
    kp = fresh_server_factory(extra_args=["--audit-digest-seconds", "1"])
    srv = target(kp)
    _puts(kp, 2)
    fp = fingerprint(kp)
    trail = _newest_trail(kp.data_dir)
    frozen = trail.with_name("frozen")
    shutil.copy(trail, frozen)
    os.replace(frozen, trail)
    signed_request(srv, "PUT", "/integrity/unseen", body=b"x")
    deadline = time.monotonic() + 20
    while _metric(kp, "keyhole_audit_tampering_detected_total") == 0:
        assert time.monotonic() < deadline, kp.logs()
        time.sleep(0.1)
    assert "AUDIT TAMPERING DETECTED" in kp.stderr_text()
    # Fail closed from now on.
    assert signed_request(srv, "PUT", "/integrity/refused", body=b"x").status == 503
    assert kp.stop() == 0
    r = verify(kp.data_dir, fp)
    assert r.returncode == 1, r.stdout
    assert "does not match its signed digests" in _refused(kp)


def test_an_emptied_trail_fails_even_for_a_fresh_account(fresh_server_factory):
    """Attack 4: delete every trail file (and digest) of an account."""
    kp = fresh_server_factory()
    assert kp.stop() == 0
    fp = fingerprint(kp)
    assert verify(kp.data_dir, fp).returncode == 0
    for f in audit_dir(kp.data_dir).iterdir():
        f.unlink()
    r = verify(kp.data_dir, fp)
    assert r.returncode == 1 and "no signed digest" in r.stdout, r.stdout
    assert "no signed digest" in _refused(kp)


def test_unsigned_window_after_a_crash_is_reported_and_signed_at_restart(fresh_server_factory):
    """Attack 6: events acknowledged but not yet signed: verify says how many; the restart signs
    them (within the bound), and the unclean restart shows."""
    kp = fresh_server_factory(extra_args=["--audit-digest-seconds", "3600"])
    _puts(kp, 3)
    fp = fingerprint(kp)
    kp.proc.send_signal(signal.SIGKILL)
    kp.proc.wait()
    r = verify(kp.data_dir, fp)
    assert r.returncode == 0 and "unsigned: " in r.stdout, r.stdout
    n = int(r.stdout.split("unsigned: ")[1].split()[0])
    assert n >= 8, r.stdout
    kp.start()
    assert kp.stop() == 0
    r = verify(kp.data_dir, fp)
    assert r.returncode == 0 and "unsigned:" not in r.stdout and f"{n} event(s) written after it" in r.stdout, r.stdout


def test_a_key_outside_the_data_directory_and_verify_with_its_public_key(fresh_server_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    made = keyhole_cli("audit", "keygen", "--out", str(keys / "audit.key"))
    assert made.returncode == 0, made.stderr
    fp = made.stdout.split("fingerprint: ")[1].split()[0]
    assert (keys / "audit.key").stat().st_mode & 0o777 == 0o600
    if shutil.which("openssl"):
        # Review (A9): the key is PKCS#8 v1, as OpenSSL writes and reads it.
        derived = subprocess.run(["openssl", "pkey", "-in", str(keys / "audit.key"), "-pubout"],
                                 capture_output=True, text=True)
        assert derived.returncode == 0, derived.stderr
        assert derived.stdout == (keys / "audit.key.pub").read_text()
    kp = fresh_server_factory(extra_args=["--audit-signing-key", str(keys / "audit.key"), "--audit-key-fingerprint", fp])
    assert fingerprint(kp) == fp
    assert not (kp.data_dir / "audit-signing.key").exists()
    _puts(kp, 2)
    assert kp.stop() == 0
    r = keyhole_cli("audit", "verify", "--data-dir", str(kp.data_dir), "--public-key", str(keys / "audit.key.pub"))
    assert r.returncode == 0 and r.stdout.startswith("ok:") and fp in r.stdout, r.stdout + r.stderr
    # The pinned fingerprint in a config file works for verify too.
    conf = tmp_path / "keyhole.toml"
    conf.write_text(f'data_dir = "{kp.data_dir}"\naudit_key_fingerprints = ["{fp}"]\n')
    r = keyhole_cli("audit", "verify", "--config", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr


def test_verify_holds_the_unsigned_window_to_the_writers_bounds(fresh_server_factory):
    """Review (A1): after a kill -9, 5,000 chained events appended past the last digest, or a few
    dated a year later, verified `ok`. The writer never leaves more than 1024 events unsigned,
    nor any dated later than one cadence (+30 s) after its last digest: verify now fails both,
    as the start check does."""
    kp = fresh_server_factory(extra_args=["--audit-digest-seconds", "3600"])
    _puts(kp, 2)
    fp = fingerprint(kp)
    kp.proc.send_signal(signal.SIGKILL)
    kp.proc.wait()
    path = _newest_trail(kp.data_dir)
    original = _lines(path)
    assert verify(kp.data_dir, fp).returncode == 0

    def appended(n: int, when: str | None) -> list[bytes]:
        lines = list(original)
        last = json.loads(lines[-1])
        for i in range(n):
            ev = dict(last, seq=last["seq"] + 1 + i, eventName="GetObject")
            if when:
                ev["eventTime"] = when
            lines.append(json.dumps(ev, separators=(",", ":")).encode())
        _rechain(lines, len(original))
        return lines

    _write(path, appended(5000, None))
    r = verify(kp.data_dir, fp)
    assert r.returncode == 1 and "more than the writer ever leaves unsigned" in r.stdout, r.stdout
    _write(path, appended(3, "2027-12-03T00:00:00.000Z"))
    r = verify(kp.data_dir, fp)
    assert r.returncode == 1 and "later than the writer leaves events unsigned" in r.stdout, r.stdout
    _write(path, original)
    assert verify(kp.data_dir, fp).returncode == 0


def test_export_copies_only_signed_digests_and_never_follows_links(fresh_server_factory, tmp_path):
    """Review (A2): a symlink planted as a digest log made the export copy any file it could read
    (e.g. /etc/shadow) into the witness, world-readable, and a junk line appended to a log was
    exported and broke every later `verify --digests`. Now nothing is exported unless every
    digest is signed by the operator's key and continues the chain, links are not followed, and
    the copies are owner-only."""
    kp = fresh_server_factory()
    _puts(kp, 2)
    assert kp.stop() == 0
    fp = fingerprint(kp)
    adir = audit_dir(kp.data_dir)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:*:20228:0:99999:7:::\n")
    link = adir / "digest-00000000000000000500.jsonl"
    link.symlink_to(secret)
    witness = tmp_path / "witness"
    r = keyhole_cli("audit", "export-digests", str(witness), "--data-dir", str(kp.data_dir), "--fingerprint", fp)
    assert r.returncode != 0, r.stdout
    assert not any("root:" in p.read_text() for p in witness.glob("*") if p.is_file())
    link.unlink()
    # A junk line appended to a real log: refused, nothing exported.
    log = sorted(adir.glob("digest-*.jsonl"))[-1]
    good = log.read_bytes()
    log.write_bytes(good + b'{"junk":1}\n')
    r = keyhole_cli("audit", "export-digests", str(witness), "--data-dir", str(kp.data_dir), "--fingerprint", fp)
    assert r.returncode != 0 and "not a digest record" in " ".join(r.stderr.replace("│", " ").split()), r.stderr
    assert not list(witness.glob("digest-*.jsonl"))
    # A replayed (validly signed, older) digest appended: refused too.
    first = good.split(b"\n")[0]
    log.write_bytes(good + first + b"\n")
    r = keyhole_cli("audit", "export-digests", str(witness), "--data-dir", str(kp.data_dir), "--fingerprint", fp)
    assert r.returncode != 0 and "does not continue" in " ".join(r.stderr.replace("│", " ").split()), r.stderr
    # Without the operator's key, no export at all.
    log.write_bytes(good)
    r = keyhole_cli("audit", "export-digests", str(witness), "--data-dir", str(kp.data_dir))
    assert r.returncode != 0 and "operator's key" in " ".join(r.stderr.replace("│", " ").split()), r.stderr
    r = keyhole_cli("audit", "export-digests", str(witness), "--data-dir", str(kp.data_dir), "--fingerprint", fp)
    assert r.returncode == 0, r.stdout + r.stderr
    modes = {p.name: p.stat().st_mode & 0o777 for p in witness.iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes
    assert witness.stat().st_mode & 0o777 == 0o700
    assert verify(kp.data_dir, fp, "--digests", str(witness)).returncode == 0


def test_a_symlink_planted_as_the_next_trail_file_is_refused(fresh_server_factory, tmp_path):
    """Review (A6): the next trail file's name is predictable; a symlink planted there (to a
    world-readable file, or /dev/null) was written through. The gateway now refuses to open it."""
    kp = fresh_server_factory()
    _puts(kp, 1)
    assert kp.stop() == 0
    head = max(e["seq"] for e in read_trail(kp.data_dir))
    target_file = tmp_path / "elsewhere.jsonl"
    target_file.write_text("")
    link = audit_dir(kp.data_dir) / f"audit-{head + 1:020}.jsonl"
    link.symlink_to(target_file)
    logs = _refused(kp)
    assert f"{head + 1:020}.jsonl" in logs and "symbolic link" in logs, logs
    assert target_file.read_text() == ""
    link.unlink()
    kp.start()
    _puts(kp, 1, prefix="after")
    assert kp.stop() == 0
    assert verify(kp.data_dir, fingerprint(kp)).returncode == 0


def test_digests_exported_to_an_s3_bucket_of_another_store_catch_a_rollback(fresh_server_factory, tmp_path):
    """Issue 20: export-digests to s3://BUCKET/PREFIX (another keyhole as the witness store, with
    the standard AWS settings); a rolled-back trail is refused by the next export, and a download
    of the witness's copy exposes it to `verify --digests` on another machine."""
    import subprocess

    from e2e_helpers import keyhole_bin

    kp = fresh_server_factory()
    witness = fresh_server_factory()
    wak, wsk = witness.credentials()
    ws3 = make_client(witness.endpoint, wak, wsk)
    ws3.create_bucket(Bucket="audit-witness")
    _puts(kp, 3)
    assert kp.stop() == 0
    fp = fingerprint(kp)
    early = tmp_path / "early"
    shutil.copytree(audit_dir(kp.data_dir), early)
    kp.start()
    _puts(kp, 4, prefix="later")
    assert kp.stop() == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_ENDPOINT_URL=witness.endpoint, AWS_SHARED_CREDENTIALS_FILE=str(witness.creds_path),
               AWS_CONFIG_FILE="/dev/null", AWS_REGION="us-east-1")

    def export():
        return subprocess.run([str(keyhole_bin()), "audit", "export-digests", "s3://audit-witness/gw1",
                               "--data-dir", str(kp.data_dir), "--fingerprint", fp],
                              env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    r = export()
    assert r.returncode == 0 and "exported" in r.stdout, r.stdout + r.stderr
    again = export()
    assert again.returncode == 0 and "already up to date" in again.stdout, again.stdout
    keys = [o["Key"] for o in ws3.list_objects_v2(Bucket="audit-witness", Prefix="gw1/")["Contents"]]
    assert keys and all(k.startswith("gw1/digest-") for k in keys), keys

    def download(dest: Path) -> Path:
        dest.mkdir()
        for k in keys:
            (dest / k.split("/")[-1]).write_bytes(ws3.get_object(Bucket="audit-witness", Key=k)["Body"].read())
        return dest

    assert verify(kp.data_dir, fp, "--digests", str(download(tmp_path / "copy1"))).returncode == 0
    # The attacker restores the early copy and the gateway goes on from it.
    shutil.rmtree(audit_dir(kp.data_dir))
    shutil.copytree(early, audit_dir(kp.data_dir))
    kp.start()
    _puts(kp, 1, prefix="after-rollback")
    assert kp.stop() == 0
    r = export()
    assert r.returncode != 0 and "rolled back" in r.stderr, r.stdout + r.stderr
    assert verify(kp.data_dir, fp, "--digests", str(download(tmp_path / "copy2"))).returncode == 1


def test_a_client_that_resets_mid_request_leaves_no_change_without_its_completed_record(fresh_server_factory):
    """A client that resets its connection right after sending a change (PutUserPolicy): the
    request runs to its end anyway, so every `authorized` record has its `completed` one and
    every applied change is recorded as done. Before, hyper dropped the request's future and a
    change already under way was left `authorized`, outcome unknown (5 of 20, found with review 22)."""
    import socket
    import struct

    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    iam = boto3.client("iam", endpoint_url=kp.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                       region_name="us-east-1")
    iam.create_user(UserName="reset-victim")
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})
    # IAM takes the Query protocol as a POST form or as a GET's query (review 23, H1: the GETs
    # were left out at first).
    for i in range(30):
        form = urllib.parse.urlencode({"Action": "PutUserPolicy", "Version": "2010-05-08", "UserName": "reset-victim",
                                       "PolicyName": f"p{i}", "PolicyDocument": doc},
                                      quote_via=urllib.parse.quote)
        if i % 3:
            # On `/`, and on an object's path with `Credential =`, which routing's SigV4 parser
            # reads as IAM's (review 24: a text scan took it for S3).
            path = "/" if i % 3 == 1 else "/somebucket/somekey"
            method, target, body = "GET", f"{path}?{form}", b""
            headers = {"Host": f"127.0.0.1:{kp.port}"}
        else:
            method, target, body = "POST", "/", form.encode()
            headers = {"Host": f"127.0.0.1:{kp.port}", "Content-Type": "application/x-www-form-urlencoded"}
        req = AWSRequest(method, kp.endpoint + target, data=body, headers=headers)
        SigV4Auth(Credentials(ak, sk), "iam", "us-east-1").add_auth(req)
        if i % 3 == 2:
            auth = req.headers["Authorization"].replace("Credential=", "Credential =")
            del req.headers["Authorization"]  # botocore's headers would keep both
            req.headers["Authorization"] = auth
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
        with socket.create_connection(("127.0.0.1", kp.port)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            s.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(0.002)
    applied = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = [e for e in read_trail(kp.data_dir) if e.get("eventName") == "PutUserPolicy"]
        stages: dict[str, set] = {}
        for e in events:
            stages.setdefault(e["requestID"], set()).add(e["stage"])
        applied = set(iam.list_user_policies(UserName="reset-victim")["PolicyNames"])
        done = [e for e in events if e["stage"] == "completed" and e.get("httpStatus") == 200]
        if all(v == {"authorized", "completed"} for v in stages.values()) and len(done) == len(applied):
            break
        time.sleep(0.2)
    assert applied, "no reset request got through; the test did not test anything"
    for kind in (1, 2):
        assert any(int(p[1:]) % 3 == kind for p in applied), ("a kind of GET never got through", kind, sorted(applied))
    assert all(v == {"authorized", "completed"} for v in stages.values()), stages
    assert len(done) == len(applied), (len(done), sorted(applied))


def test_a_shutdown_waits_for_a_change_whose_client_went_away(fresh_server_factory):
    """A change whose client reset the connection runs on a task of its own; SIGTERM waits for it
    as for a connection (review 23, M1: the server exited at once and the trail kept the copy's
    `authorized` record alone, though the copy was made)."""
    import socket
    import struct

    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="shutdown")
    s3.put_object(Bucket="shutdown", Key="big", Body=os.urandom(64 * 1024 * 1024))
    headers = {"Host": f"127.0.0.1:{kp.port}", "x-amz-copy-source": "/shutdown/big"}
    s3.copy_object(Bucket="shutdown", Key="copy", CopySource={"Bucket": "shutdown", "Key": "big"})
    from e2e_helpers import sign
    signed = sign("PUT", f"{kp.endpoint}/shutdown/copy2", ak, sk, headers, b"")
    head = "PUT /shutdown/copy2 HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    with socket.create_connection(("127.0.0.1", kp.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(f"{head}Content-Length: 0\r\n\r\n".encode())
        time.sleep(0.05)
    assert kp.stop() == 0
    copies = [e for e in read_trail(kp.data_dir)
              if e.get("eventName") == "CopyObject" and (e.get("requestParameters") or {}).get("key") == "copy2"]
    assert {e["stage"] for e in copies} == {"authorized", "completed"}, copies


def test_verify_beside_a_running_gateway_calls_a_request_in_flight_open(fresh_server_factory):
    """`keyhole audit verify` run while the gateway serves: a PUT whose body is still arriving has
    its `authorized` record and no `completed` one yet. It is listed under `open:` (running, or
    cut short if the gateway dies), not as orphaned, which says the gateway stopped before it
    ended (review 22: requests in flight were called orphaned). Once its body arrives, it is in
    neither list."""
    import socket

    from e2e_helpers import sign

    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="inflight")
    body = b"0123456789"
    headers = {"Host": f"127.0.0.1:{kp.port}"}
    signed = sign("PUT", f"{kp.endpoint}/inflight/slow", ak, sk, headers, body, unsigned_payload=True)
    head = "PUT /inflight/slow HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    fp = fingerprint(kp)
    with socket.create_connection(("127.0.0.1", kp.port)) as s:
        s.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:4])
        deadline = time.monotonic() + 10
        while not [e for e in read_trail(kp.data_dir) if e.get("eventName") == "PutObject"]:
            assert time.monotonic() < deadline, "no authorized record for the PUT in flight"
            time.sleep(0.05)
        (rid,) = {e["requestID"] for e in read_trail(kp.data_dir) if e.get("eventName") == "PutObject"}
        r = verify(kp.data_dir, fp)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "orphaned:" not in r.stdout, r.stdout
        assert "open: 1 " in r.stdout and rid in r.stdout, r.stdout
        s.sendall(body[4:])
        assert s.recv(4096).startswith(b"HTTP/1.1 200"), "the slow PUT failed"
    deadline = time.monotonic() + 10
    while {e["stage"] for e in read_trail(kp.data_dir) if e.get("requestID") == rid} != {"authorized", "completed"}:
        assert time.monotonic() < deadline, "the PUT's completed record never came"
        time.sleep(0.05)
    r = verify(kp.data_dir, fp)
    assert "open:" not in r.stdout and "orphaned:" not in r.stdout, r.stdout
    assert s3.get_object(Bucket="inflight", Key="slow")["Body"].read() == body


def test_a_change_still_running_after_the_grace_period_does_not_land_after_the_trail_closes(fresh_server_factory):
    """A shutdown waits for requests in flight for a grace period (30 s; shortened here through a
    debug-build hook). A copy still streaming when it ends used to land after the trail's `stop`
    digest, with its `authorized` record alone, while the trail said the gateway had stopped
    (review 24, filed). The store and the state are now closed to changes before the trail is:
    the copy fails at its commit, nothing lands, and verify names the request as orphaned
    (authorized, outcome unknown)."""
    import socket

    from e2e_helpers import sign

    kp = fresh_server_factory(env={"KEYHOLE_TEST_SHUTDOWN_GRACE_SECS": "0"})
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="grace")
    s3.put_object(Bucket="grace", Key="big", Body=os.urandom(256 * 1024 * 1024))
    headers = {"Host": f"127.0.0.1:{kp.port}", "x-amz-copy-source": "/grace/big"}
    signed = sign("PUT", f"{kp.endpoint}/grace/copy", ak, sk, headers, b"")
    head = "PUT /grace/copy HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    fp = fingerprint(kp)
    with socket.create_connection(("127.0.0.1", kp.port)) as s:
        s.sendall(f"{head}Content-Length: 0\r\n\r\n".encode())
        deadline = time.monotonic() + 10
        while not [e for e in read_trail(kp.data_dir) if e.get("eventName") == "CopyObject"]:
            assert time.monotonic() < deadline, "no authorized record for the copy"
            time.sleep(0.01)
        (rid,) = {e["requestID"] for e in read_trail(kp.data_dir) if e.get("eventName") == "CopyObject"}
        assert kp.stop() == 0
    events = [e for e in read_trail(kp.data_dir) if e.get("requestID") == rid]
    stages = [e["stage"] for e in events]
    kp.start()
    s3 = make_client(kp.endpoint, ak, sk)
    try:
        s3.head_object(Bucket="grace", Key="copy")
        landed = True
    except s3.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "404", e.response
        landed = False
    assert stages[0] == "authorized", stages
    if stages == ["authorized", "completed"] and events[1].get("httpStatus") == 200:
        # The copy was quicker than the shutdown: recorded whole, before the trail closed.
        assert landed
        return
    # Refused at its commit by the seal (its completed record, written while the trail was
    # still open, says 503), or cut off after the seal (its authorized record alone): either
    # way nothing of it landed.
    assert not landed, ("the copy landed after the seal", events)
    assert kp.stop() == 0
    r = verify(kp.data_dir, fp)
    assert r.returncode == 0, r.stdout + r.stderr
    if stages == ["authorized", "completed"]:
        assert events[1].get("httpStatus") == 503, events
        assert "orphaned:" not in r.stdout, r.stdout
    else:
        assert stages == ["authorized"], stages
        assert "orphaned: 1 " in r.stdout and rid in r.stdout, r.stdout
