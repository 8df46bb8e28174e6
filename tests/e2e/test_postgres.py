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

The cluster is `pg_cluster.PgCluster` (shared with the TLS tests); the clients, polling and the relay
are in multinode.py (shared with test_nodes.py, three nodes in front of one upstream).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import start_server
from e2e_helpers import REGION, free_port, keyhole_bin
from multinode import Relay, client, error_code, healthz, http_status, refused, within, works
from pg_cluster import PgCluster

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
        s3 = client("s3", node.endpoint, *root)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    iam_a = client("iam", a.endpoint, *root)
    name = f"u-{uuid.uuid4().hex[:6]}"
    iam_a.create_user(UserName=name)
    key = iam_a.create_access_key(UserName=name)["AccessKey"]
    iam_a.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    s3_b = client("s3", b.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    took = within("a user, key and policy made on node A", lambda: works(lambda: s3_b.get_object(Bucket=bucket, Key="k")))
    print(f"user+key+policy on A -> B: {took * 1000:.0f} ms")
    assert s3_b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"
    # Deleting the key on B is enforced on A within a second.
    s3_a = client("s3", a.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    assert works(lambda: s3_a.get_object(Bucket=bucket, Key="k"))
    client("iam", b.endpoint, *root).delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    took = within("a key deleted on node B",
                   lambda: refused(lambda: s3_a.get_object(Bucket=bucket, Key="k"), {"InvalidAccessKeyId"}))
    print(f"key deletion on B -> A: {took * 1000:.0f} ms")


def test_a_session_from_a_verifies_on_b_and_its_revocation_on_b_binds_on_a(nodes):
    a, b, _, _, _ = nodes
    root = a.credentials()
    iam_a = client("iam", a.endpoint, *root)
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
    sts_a = client("sts", a.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    creds = sts_a.assume_role(RoleArn=arn, RoleSessionName="node-a")["Credentials"]
    session = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    on_a = client("s3", a.endpoint, *session)
    on_b = client("s3", b.endpoint, *session)
    on_a.list_buckets()
    # The session token node A sealed opens on node B (one master key), and the role it names
    # has reached B.
    within("a role made on node A", lambda: works(on_b.list_buckets))
    # Revoked on node B with the CLI; refused on node A within a second.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(b.creds_path), AWS_CONFIG_FILE="/dev/null", AWS_REGION=REGION,
               KEYHOLE_ENDPOINT=b.endpoint)
    r = subprocess.run([str(keyhole_bin()), "admin", "revoke-session", creds["AccessKeyId"]],
                       capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    took = within("a session revoked on node B", lambda: refused(on_a.list_buckets, {"InvalidToken"}))
    print(f"revoke-session on B -> A: {took * 1000:.0f} ms")
    assert refused(on_b.list_buckets, {"InvalidToken"})


def test_a_bucket_policy_put_on_a_binds_on_b_within_a_second(nodes):
    a, b, _, _, _ = nodes
    root = a.credentials()
    bucket = f"bp-{uuid.uuid4().hex[:8]}"
    for node in (a, b):
        s3 = client("s3", node.endpoint, *root)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    iam_a = client("iam", a.endpoint, *root)
    name = f"bp-{uuid.uuid4().hex[:6]}"
    iam_a.create_user(UserName=name)
    key = iam_a.create_access_key(UserName=name)["AccessKey"]
    user_arn = f"arn:aws:iam::{a.account_id()}:user/{name}"
    s3_b = client("s3", b.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    # No identity policy: only the bucket policy can let the user read.
    within("a new key", lambda: refused(lambda: s3_b.get_object(Bucket=bucket, Key="k"), {"AccessDenied"}))
    client("s3", a.endpoint, *root).put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": user_arn},
                                                "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    took = within("a bucket policy put on node A", lambda: works(lambda: s3_b.get_object(Bucket=bucket, Key="k")))
    print(f"bucket policy on A -> B: {took * 1000:.0f} ms")
    # And its removal on A takes the grant away on B.
    client("s3", a.endpoint, *root).delete_bucket_policy(Bucket=bucket)
    within("a bucket policy deleted on node A",
            lambda: refused(lambda: s3_b.get_object(Bucket=bucket, Key="k"), {"AccessDenied"}))


def test_a_cors_configuration_put_on_a_answers_preflights_on_b_within_a_second(nodes):
    """Bucket CORS configurations live in the shared state (migration 5): a preflight on any
    node answers from the configuration put on another."""
    import urllib.error
    import urllib.request

    a, b, _, _, _ = nodes
    root = a.credentials()
    bucket = f"cors-{uuid.uuid4().hex[:8]}"
    for node in (a, b):
        client("s3", node.endpoint, *root).create_bucket(Bucket=bucket)

    def preflight_on_b() -> int:
        req = urllib.request.Request(f"{b.endpoint}/{bucket}/k", method="OPTIONS", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert preflight_on_b() == 403
    client("s3", a.endpoint, *root).put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://app.example.com"], "AllowedMethods": ["PUT"]}]})
    took = within("a CORS configuration put on node A", lambda: preflight_on_b() == 200)
    print(f"CORS configuration on A -> B: {took * 1000:.0f} ms")
    assert client("s3", b.endpoint, *root).get_bucket_cors(Bucket=bucket)["CORSRules"][0]["AllowedMethods"] == ["PUT"]
    client("s3", a.endpoint, *root).delete_bucket_cors(Bucket=bucket)
    within("a CORS configuration deleted on node A", lambda: preflight_on_b() == 403)


def test_a_node_cut_off_from_postgres_fails_closed_and_catches_up(nodes):
    a, _, key, url, base = nodes
    relay = Relay(int(url.rsplit(":", 1)[1].split("/")[0]))
    relayed = url.replace(f":{relay.target[1]}/", f":{relay.port}/")
    c = start_server(base / "cut", extra_args=["--state", relayed, "--master-key-file", str(key),
                                                "--state-max-staleness-secs", str(STALENESS_S)])
    try:
        root = a.credentials()
        bucket = f"cut-{uuid.uuid4().hex[:8]}"
        s3_root_c = client("s3", c.endpoint, *root)
        s3_root_c.create_bucket(Bucket=bucket)
        s3_root_c.put_object(Bucket=bucket, Key="k", Body=b"before")
        iam_a = client("iam", a.endpoint, *root)
        name = f"cut-{uuid.uuid4().hex[:6]}"
        iam_a.create_user(UserName=name)
        ak = iam_a.create_access_key(UserName=name)["AccessKey"]
        iam_a.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
        user_c = client("s3", c.endpoint, ak["AccessKeyId"], ak["SecretAccessKey"])
        within("a user made on node A", lambda: works(lambda: user_c.get_object(Bucket=bucket, Key="k")))
        assert healthz(c) == (200, "ok\n")

        relay.cut()
        cut_at = time.monotonic()
        # Control-plane writes fail closed at once, naming the reason.
        iam_c = client("iam", c.endpoint, *root)
        started = time.monotonic()
        with pytest.raises(ClientError) as e:
            iam_c.create_user(UserName=f"x-{uuid.uuid4().hex[:6]}")
        assert (error_code(e.value), http_status(e.value)) == ("ServiceUnavailable", 503), e.value.response
        assert "state database is unavailable" in e.value.response["Error"]["Message"]
        assert time.monotonic() - started < 2, "a write is refused at once, not after a wait"
        # The access key is deleted on node A while C cannot hear of it.
        iam_a.delete_access_key(UserName=name, AccessKeyId=ak["AccessKeyId"])
        # Within the bound, C serves its snapshot (the key it still holds included) ...
        assert user_c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"before"
        assert time.monotonic() - cut_at < STALENESS_S
        # ... and past it, refuses everything, and is not ready.
        took = within("the staleness bound", lambda: refused(lambda: s3_root_c.list_buckets(), {"ServiceUnavailable"}),
                       limit=STALENESS_S + 3)
        print(f"cut off -> 503: {time.monotonic() - cut_at:.1f} s (bound {STALENESS_S} s, {took:.1f} s of polling)")
        with pytest.raises(ClientError) as e:
            user_c.get_object(Bucket=bucket, Key="k")
        assert (error_code(e.value), http_status(e.value)) == ("ServiceUnavailable", 503)
        assert "--state-max-staleness-secs" in e.value.response["Error"]["Message"]
        status, text = healthz(c)
        assert status == 503 and "not ready" in text and "old" in text, text
        # Node A, which reaches the database, is unaffected.
        assert healthz(a) == (200, "ok\n")

        relay.restore()
        # C rejoins by itself; the first answer it gives after catching up refuses the key
        # deleted while it was away (never the stale "allowed").
        def caught_up() -> bool:
            try:
                user_c.get_object(Bucket=bucket, Key="k")
            except ClientError as e:
                if error_code(e) == "ServiceUnavailable":
                    return False
                assert error_code(e) == "InvalidAccessKeyId", e.response
                return True
            pytest.fail("a key deleted while the node was cut off was accepted after it rejoined", pytrace=False)
        took = within("catching up after the way to PostgreSQL is back", caught_up, limit=10)
        print(f"rejoined and caught up: {took:.1f} s")
        assert healthz(c) == (200, "ok\n")
        iam_c.create_user(UserName=f"back-{uuid.uuid4().hex[:6]}")
    finally:
        c.stop()
        relay.close()


def test_stopping_postgres_fails_writes_closed_and_a_restart_rejoins(nodes):
    a, b, _, _, _ = nodes
    root = a.credentials()
    iam_a, iam_b = client("iam", a.endpoint, *root), client("iam", b.endpoint, *root)
    _stop_postgres()
    try:
        for iam in (iam_a, iam_b):
            started = time.monotonic()
            with pytest.raises(ClientError) as e:
                iam.create_user(UserName=f"down-{uuid.uuid4().hex[:6]}")
            assert (error_code(e.value), http_status(e.value)) == ("ServiceUnavailable", 503), e.value.response
            assert time.monotonic() - started < 2
        # Reads go on within the (default, 30 s) bound.
        client("s3", a.endpoint, *root).list_buckets()
    finally:
        _start_postgres()
    # Both nodes write again and are ready, without a restart.
    name = f"up-{uuid.uuid4().hex[:6]}"
    within("a write after PostgreSQL is back", lambda: works(lambda: iam_a.create_user(UserName=name)), limit=10)
    within("the user on node B", lambda: works(lambda: iam_b.get_user(UserName=name)))
    assert healthz(a) == (200, "ok\n") and healthz(b) == (200, "ok\n")
