"""Several gateway nodes on one PostgreSQL state (issue 14, steps 2 and 3).

The test starts a private PostgreSQL cluster of its own: `initdb` into a temporary directory and
`postgres` on a free 127.0.0.1 port (as the `postgres` user when the suite runs as root, since
PostgreSQL refuses root), then two keyhole nodes with separate data directories on the same
database and the same --master-key-file. It shows, with boto3 and the keyhole CLI, that:

- the second node adopts the first node's account (same id and root credentials), and a node
  with another master key is refused;
- a user, access key and policy created on node A work on node B within a second;
- a session issued by node A verifies on node B (one sealing key);
- `keyhole admin revoke-session` on node B is enforced on node A within a second, and so is
  deleting an access key on node B;
- a bucket policy put on node A binds on node B within a second;
- failure behaviour (step 3): a node cut off from PostgreSQL (through a TCP relay the test cuts)
  refuses IAM writes with 503 at once, serves S3 from its snapshot within its staleness bound
  (--state-max-staleness-secs 3 here) and refuses with 503 after it, and /healthz says not
  ready; once the way is back it catches up without a restart, and an access key deleted on the
  other node while it was cut off is refused there before it serves again. Stopping PostgreSQL
  itself (fast shutdown, by the postmaster's PID) fails writes on every node with 503 at once,
  and once it is started again the nodes write and are ready without a restart.

Objects stay local to each node in this step (the upstream backend is another issue), so the
buckets the test uses are created on each node.

The cluster is `pg_cluster.PgCluster` (shared with the TLS tests).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.error
import urllib.request
import subprocess
import time
import uuid

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import start_server
from e2e_helpers import REGION, free_port, keyhole_bin, read_credentials
from pg_cluster import PgCluster

PROPAGATION_S = 1.0
STALENESS_S = 3
# The running cluster, for the tests that stop and start it.
_PG: dict = {}


@pytest.fixture(scope="module")
def postgres_url():
    """A private PostgreSQL cluster on loopback; yields a URL of a fresh database. Stopped by the
    postmaster's PID at the end."""
    cluster = PgCluster()
    _PG["cluster"] = cluster
    try:
        yield cluster.url()
    finally:
        cluster.destroy()


def _stop_postgres() -> None:
    _PG["cluster"].stop()


def _start_postgres() -> None:
    _PG["cluster"].start()


def _client(service: str, endpoint: str, ak: str, sk: str, token: str | None = None):
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=ak, aws_secret_access_key=sk, aws_session_token=token,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def _code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def _within(what: str, check, limit: float = PROPAGATION_S) -> float:
    """Polls `check` (True once the change took effect) and returns how long it took; fails past
    `limit` seconds."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            pytest.fail(f"{what}: not in effect on the other node within {limit}s", pytrace=False)
        time.sleep(0.02)


def _refused(call, codes: set[str]) -> bool:
    try:
        call()
    except ClientError as e:
        assert _code(e) in codes, e.response
        return True
    return False


def _works(call) -> bool:
    try:
        call()
        return True
    except ClientError:
        return False


@pytest.fixture(scope="module")
def nodes(postgres_url, tmp_path_factory):
    base = tmp_path_factory.mktemp("pg-nodes")
    key = base / "master.key"  # created by the first node
    args = ["--state", postgres_url, "--master-key-file", str(key)]
    a = start_server(base / "a", extra_args=args)
    b = start_server(base / "b", extra_args=args)
    yield a, b, key, postgres_url, base
    for kp in (a, b):
        kp.stop()


def test_the_second_node_joins_the_first_nodes_account(nodes):
    a, b, key, url, base = nodes
    assert a.account_id() and a.account_id() == b.account_id()
    assert "shared state:" in b.stdout_text() and "postgres://keyhole@" in b.stdout_text()
    assert a.credentials() == b.credentials()
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    assert not (a.data_dir / "master.key").exists(), "the shared key lives only in --master-key-file"
    # A node with another master key is refused, and says why.
    other = base / "other.key"
    other.write_text("ab" * 32)
    r = subprocess.run(
        [str(keyhole_bin()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(base / "c"),
         "--state", url, "--master-key-file", str(other)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))},
    )
    assert r.returncode != 0
    assert "master-key-file" in r.stderr, r.stderr


def test_a_user_key_and_policy_made_on_a_work_on_b_within_a_second(nodes):
    a, b, _, _, _ = nodes
    root = a.credentials()
    bucket = f"pg-{uuid.uuid4().hex[:8]}"
    for node in (a, b):  # objects are local to each node in this step
        s3 = _client("s3", node.endpoint, *root)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    iam_a = _client("iam", a.endpoint, *root)
    name = f"u-{uuid.uuid4().hex[:6]}"
    iam_a.create_user(UserName=name)
    key = iam_a.create_access_key(UserName=name)["AccessKey"]
    iam_a.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    s3_b = _client("s3", b.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    took = _within("a user, key and policy made on node A", lambda: _works(lambda: s3_b.get_object(Bucket=bucket, Key="k")))
    print(f"user+key+policy on A -> B: {took * 1000:.0f} ms")
    assert s3_b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"
    # Deleting the key on B is enforced on A within a second.
    s3_a = _client("s3", a.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    assert _works(lambda: s3_a.get_object(Bucket=bucket, Key="k"))
    _client("iam", b.endpoint, *root).delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    took = _within("a key deleted on node B",
                   lambda: _refused(lambda: s3_a.get_object(Bucket=bucket, Key="k"), {"InvalidAccessKeyId"}))
    print(f"key deletion on B -> A: {took * 1000:.0f} ms")


def test_a_session_from_a_verifies_on_b_and_its_revocation_on_b_binds_on_a(nodes):
    a, b, _, _, _ = nodes
    root = a.credentials()
    iam_a = _client("iam", a.endpoint, *root)
    name = f"s-{uuid.uuid4().hex[:6]}"
    iam_a.create_user(UserName=name)
    iam_a.put_user_policy(UserName=name, PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    key = iam_a.create_access_key(UserName=name)["AccessKey"]
    role = f"r-{uuid.uuid4().hex[:6]}"
    arn = iam_a.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": f"arn:aws:iam::{a.account_id()}:user/{name}"}}]}))["Role"]["Arn"]
    iam_a.put_role_policy(RoleName=role, PolicyName="list", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))
    sts_a = _client("sts", a.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    creds = sts_a.assume_role(RoleArn=arn, RoleSessionName="node-a")["Credentials"]
    session = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    on_a = _client("s3", a.endpoint, *session)
    on_b = _client("s3", b.endpoint, *session)
    on_a.list_buckets()
    # The session token node A sealed opens on node B (one master key), and the role it names
    # has reached B.
    _within("a role made on node A", lambda: _works(on_b.list_buckets))
    # Revoked on node B with the CLI; refused on node A within a second.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(b.creds_path), AWS_CONFIG_FILE="/dev/null", AWS_REGION=REGION,
               KEYHOLE_ENDPOINT=b.endpoint)
    r = subprocess.run([str(keyhole_bin()), "admin", "revoke-session", creds["AccessKeyId"]],
                       capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    took = _within("a session revoked on node B", lambda: _refused(on_a.list_buckets, {"InvalidToken"}))
    print(f"revoke-session on B -> A: {took * 1000:.0f} ms")
    assert _refused(on_b.list_buckets, {"InvalidToken"})


def test_a_bucket_policy_put_on_a_binds_on_b_within_a_second(nodes):
    a, b, _, _, _ = nodes
    root = a.credentials()
    bucket = f"bp-{uuid.uuid4().hex[:8]}"
    for node in (a, b):
        s3 = _client("s3", node.endpoint, *root)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    iam_a = _client("iam", a.endpoint, *root)
    name = f"bp-{uuid.uuid4().hex[:6]}"
    iam_a.create_user(UserName=name)
    key = iam_a.create_access_key(UserName=name)["AccessKey"]
    user_arn = f"arn:aws:iam::{a.account_id()}:user/{name}"
    s3_b = _client("s3", b.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    # No identity policy: only the bucket policy can let the user read.
    _within("a new key", lambda: _refused(lambda: s3_b.get_object(Bucket=bucket, Key="k"), {"AccessDenied"}))
    _client("s3", a.endpoint, *root).put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": user_arn},
                                                "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    took = _within("a bucket policy put on node A", lambda: _works(lambda: s3_b.get_object(Bucket=bucket, Key="k")))
    print(f"bucket policy on A -> B: {took * 1000:.0f} ms")
    # And its removal on A takes the grant away on B.
    _client("s3", a.endpoint, *root).delete_bucket_policy(Bucket=bucket)
    _within("a bucket policy deleted on node A",
            lambda: _refused(lambda: s3_b.get_object(Bucket=bucket, Key="k"), {"AccessDenied"}))


class _Relay:
    """A TCP relay to PostgreSQL that the test can cut (every connection closed, new ones closed
    as they come) and restore: one node loses the database while the others keep it."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _healthz(node) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{node.endpoint}/healthz", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _status(e: ClientError) -> int:
    return e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


def test_a_node_cut_off_from_postgres_fails_closed_and_catches_up(nodes):
    a, _, key, url, base = nodes
    relay = _Relay(int(url.rsplit(":", 1)[1].split("/")[0]))
    relayed = url.replace(f":{relay.target[1]}/", f":{relay.port}/")
    c = start_server(base / "cut", extra_args=["--state", relayed, "--master-key-file", str(key),
                                                "--state-max-staleness-secs", str(STALENESS_S)])
    try:
        root = a.credentials()
        bucket = f"cut-{uuid.uuid4().hex[:8]}"
        s3_root_c = _client("s3", c.endpoint, *root)
        s3_root_c.create_bucket(Bucket=bucket)
        s3_root_c.put_object(Bucket=bucket, Key="k", Body=b"before")
        iam_a = _client("iam", a.endpoint, *root)
        name = f"cut-{uuid.uuid4().hex[:6]}"
        iam_a.create_user(UserName=name)
        ak = iam_a.create_access_key(UserName=name)["AccessKey"]
        iam_a.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
        user_c = _client("s3", c.endpoint, ak["AccessKeyId"], ak["SecretAccessKey"])
        _within("a user made on node A", lambda: _works(lambda: user_c.get_object(Bucket=bucket, Key="k")))
        assert _healthz(c) == (200, "ok\n")

        relay.cut()
        cut_at = time.monotonic()
        # Control-plane writes fail closed at once, naming the reason.
        iam_c = _client("iam", c.endpoint, *root)
        started = time.monotonic()
        with pytest.raises(ClientError) as e:
            iam_c.create_user(UserName=f"x-{uuid.uuid4().hex[:6]}")
        assert (_code(e.value), _status(e.value)) == ("ServiceUnavailable", 503), e.value.response
        assert "state database is unavailable" in e.value.response["Error"]["Message"]
        assert time.monotonic() - started < 2, "a write is refused at once, not after a wait"
        # The access key is deleted on node A while C cannot hear of it.
        iam_a.delete_access_key(UserName=name, AccessKeyId=ak["AccessKeyId"])
        # Within the bound, C serves its snapshot (the key it still holds included) ...
        assert user_c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"before"
        assert time.monotonic() - cut_at < STALENESS_S
        # ... and past it, refuses everything, and is not ready.
        took = _within("the staleness bound", lambda: _refused(lambda: s3_root_c.list_buckets(), {"ServiceUnavailable"}),
                       limit=STALENESS_S + 3)
        print(f"cut off -> 503: {time.monotonic() - cut_at:.1f} s (bound {STALENESS_S} s, {took:.1f} s of polling)")
        with pytest.raises(ClientError) as e:
            user_c.get_object(Bucket=bucket, Key="k")
        assert (_code(e.value), _status(e.value)) == ("ServiceUnavailable", 503)
        assert "--state-max-staleness-secs" in e.value.response["Error"]["Message"]
        status, text = _healthz(c)
        assert status == 503 and "not ready" in text and "old" in text, text
        # Node A, which reaches the database, is unaffected.
        assert _healthz(a) == (200, "ok\n")

        relay.restore()
        # C rejoins by itself; the first answer it gives after catching up refuses the key
        # deleted while it was away (never the stale "allowed").
        def caught_up() -> bool:
            try:
                user_c.get_object(Bucket=bucket, Key="k")
            except ClientError as e:
                if _code(e) == "ServiceUnavailable":
                    return False
                assert _code(e) == "InvalidAccessKeyId", e.response
                return True
            pytest.fail("a key deleted while the node was cut off was accepted after it rejoined", pytrace=False)
        took = _within("catching up after the way to PostgreSQL is back", caught_up, limit=10)
        print(f"rejoined and caught up: {took:.1f} s")
        assert _healthz(c) == (200, "ok\n")
        iam_c.create_user(UserName=f"back-{uuid.uuid4().hex[:6]}")
    finally:
        c.stop()
        relay.close()


def test_stopping_postgres_fails_writes_closed_and_a_restart_rejoins(nodes):
    a, b, _, _, _ = nodes
    root = a.credentials()
    iam_a, iam_b = _client("iam", a.endpoint, *root), _client("iam", b.endpoint, *root)
    _stop_postgres()
    try:
        for iam in (iam_a, iam_b):
            started = time.monotonic()
            with pytest.raises(ClientError) as e:
                iam.create_user(UserName=f"down-{uuid.uuid4().hex[:6]}")
            assert (_code(e.value), _status(e.value)) == ("ServiceUnavailable", 503), e.value.response
            assert time.monotonic() - started < 2
        # Reads go on within the (default, 30 s) bound.
        _client("s3", a.endpoint, *root).list_buckets()
    finally:
        _start_postgres()
    # Both nodes write again and are ready, without a restart.
    name = f"up-{uuid.uuid4().hex[:6]}"
    _within("a write after PostgreSQL is back", lambda: _works(lambda: iam_a.create_user(UserName=name)), limit=10)
    _within("the user on node B", lambda: _works(lambda: iam_b.get_user(UserName=name)))
    assert _healthz(a) == (200, "ok\n") and _healthz(b) == (200, "ok\n")
