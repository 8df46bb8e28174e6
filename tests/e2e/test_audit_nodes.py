"""Issue 14, item 4: the audit trail across several gateway nodes on one PostgreSQL state.

Two nodes share a private PostgreSQL cluster (pg_cluster.PgCluster) and a --master-key-file; node B's
id is chosen by the operator (its data directory's `node-id` file, written before the first
start), node A's is generated. The test shows, with boto3, the keyhole CLI and /metrics, that:

- each node has a stable id, printed in the banner, in /metrics and on every event of its trail;
- a job whose session reads on node A and writes on node B gets one report listing both, asked
  from either node, and the report names the nodes it covered and says it is complete;
- while node B is frozen (SIGSTOP: it can record nothing), a report on node A waits its bound,
  then says it is incomplete and names node B; once B runs again the report is complete;
- `keyhole audit verify` over both nodes' trails reports both chains intact, by node, and over
  copies (a --trails directory) detects an event edited in one of them, naming that node;
- `keyhole audit query` over both trails returns their events merged in time order, each with
  its node id (JSON lines and the table).

Objects are local to each node (as in test_postgres.py), so the buckets are made on both nodes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest

from conftest import start_server
from e2e_helpers import REGION, aws_bin, keyhole_bin, remember_secrets
from pg_cluster import PgCluster

NODE_B = "gw-b.eu"


@pytest.fixture(scope="module")
def postgres_url():
    cluster = PgCluster()
    try:
        yield cluster.url()
    finally:
        cluster.destroy()


def client(service: str, endpoint: str, ak: str, sk: str, token: str | None = None):
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=ak, aws_secret_access_key=sk, aws_session_token=token,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def two_nodes(postgres_url, tmp_path_factory):
    base = tmp_path_factory.mktemp("audit-nodes")
    args = ["--state", postgres_url, "--master-key-file", str(base / "master.key")]
    a = start_server(base / "a", extra_args=args)
    # The operator names node B before its first start.
    (base / "b" / "data").mkdir(parents=True, mode=0o700)
    (base / "b" / "data" / "node-id").write_text(NODE_B + "\n")
    b = start_server(base / "b", extra_args=args)
    yield a, b, base
    for kp in (a, b):
        kp.stop()


def _env(node) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(node.creds_path), AWS_CONFIG_FILE="/dev/null", AWS_REGION=REGION,
               KEYHOLE_ENDPOINT=node.endpoint,
               PATH=os.pathsep.join([str(Path(aws_bin()).parent), env.get("PATH", "")]))
    return env


def keyhole(node, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(keyhole_bin()), *args], capture_output=True, text=True, timeout=120,
                          env=_env(node), stdin=subprocess.DEVNULL)


def _node_id(node) -> str:
    m = re.search(r"node id:\s+(\S+)", node.stdout_text())
    assert m, node.stdout_text()
    return m.group(1)


def _fingerprint(node) -> str:
    m = re.search(r"audit key fingerprint: ([0-9a-f]{64})", node.stdout_text())
    assert m, node.stdout_text()
    return m.group(1)


def test_each_node_has_a_stable_id_in_banner_metrics_and_trail(two_nodes):
    a, b, _ = two_nodes
    id_a, id_b = _node_id(a), _node_id(b)
    assert id_b == NODE_B
    assert re.fullmatch(r"node-[0-9a-f]{12}", id_a), id_a
    assert (a.data_dir / "node-id").read_text().strip() == id_a
    assert (a.data_dir / "node-id").stat().st_mode & 0o777 == 0o600
    for node, nid in ((a, id_a), (b, id_b)):
        metrics = urllib.request.urlopen(node.endpoint + "/metrics").read().decode()
        assert f'keyhole_node_info{{node="{nid}"}} 1' in metrics, metrics[-500:]
        # The genesis digest names the node.
        genesis = json.loads((node.data_dir / "audit" / "digest-00000000000000000001.jsonl").read_text().splitlines()[0])
        assert genesis["kind"] == "genesis" and genesis["nodeId"] == nid, genesis


def _wait_job_on(node, job_id: str) -> None:
    """Waits (at most a second, the propagation bound) until `node` knows the job, without using
    its credentials (a refused request would be a denial in the report)."""
    deadline = time.monotonic() + 1.0
    while True:
        r = keyhole(node, "job", "show", job_id)
        if r.returncode == 0:
            return
        assert time.monotonic() < deadline, f"job {job_id} not on {node.endpoint} within 1s: {r.stderr}"
        time.sleep(0.05)


def test_a_job_that_reads_on_a_and_writes_on_b_gets_one_report_from_either_node(two_nodes):
    a, b, _ = two_nodes
    root = a.credentials()
    tag = uuid.uuid4().hex[:8]
    ds, out = f"nodes-ds-{tag}", f"nodes-out-{tag}"
    for node in (a, b):
        s3 = client("s3", node.endpoint, *root)
        s3.create_bucket(Bucket=ds)
        s3.create_bucket(Bucket=out)
    body = b'{"text": "read on node A"}\n'
    client("s3", a.endpoint, *root).put_object(Bucket=ds, Key="wiki/part-0.jsonl", Body=body)
    r = keyhole(a, "job", "start", "--output", "json", "--name", "split", "--read", f"s3://{ds}/wiki/",
                "--write", f"s3://{out}/run/", "--for", "10m")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    job_id, c = created["Job"]["JobId"], created["Credentials"]
    remember_secrets(created["CredentialsToken"], c["SecretAccessKey"], c["SessionToken"])
    _wait_job_on(b, job_id)
    session = (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    got = client("s3", a.endpoint, *session).get_object(Bucket=ds, Key="wiki/part-0.jsonl")["Body"].read()
    assert got == body
    client("s3", b.endpoint, *session).put_object(Bucket=out, Key="run/result.txt", Body=b"written on B")
    id_a, id_b = _node_id(a), _node_id(b)
    for node in (a, b):
        started = time.monotonic()
        r = keyhole(node, "job", "report", job_id, "--json")
        print(f"report on {_node_id(node)}: {(time.monotonic() - started) * 1000:.0f} ms (CLI included)")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        report = report.get("Report", report)
        assert report["complete"] is True and report["source"] == "nodes", report
        [read], [written] = report["read"], report["written"]
        assert read["objects"] == 1 and read["bytes"] == len(body), report
        assert written["objects"] == 1 and written["bytes"] == len(b"written on B"), report
        assert report["requests"] == 2 and report["denied"]["count"] == 0, report
        assert {n["node"]: n["requests"] for n in report["nodes"]} == {id_a: 1, id_b: 1}, report
        assert {n["node"] for n in report["nodesChecked"]} == {id_a, id_b}, report
        # The human form says which nodes it covers.
        text = keyhole(node, "job", "report", job_id)
        assert text.returncode == 0 and id_a in text.stdout and id_b in text.stdout, text.stdout + text.stderr


def test_a_report_names_a_node_that_has_not_recorded_its_requests(two_nodes):
    a, b, _ = two_nodes
    root = a.credentials()
    out = f"nodes-frozen-{uuid.uuid4().hex[:8]}"
    for node in (a, b):
        client("s3", node.endpoint, *root).create_bucket(Bucket=out)
    r = keyhole(a, "job", "start", "--output", "json", "--name", "frozen", "--write", f"s3://{out}/run/",
                "--for", "10m")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    job_id, c = created["Job"]["JobId"], created["Credentials"]
    remember_secrets(created["CredentialsToken"], c["SecretAccessKey"], c["SessionToken"])
    _wait_job_on(b, job_id)
    client("s3", b.endpoint, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]).put_object(
        Bucket=out, Key="run/before-freeze", Body=b"x")
    time.sleep(0.5)  # B writes its records every 200 ms
    id_b = _node_id(b)
    b.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = keyhole(a, "job", "report", job_id, "--json")
        took = time.monotonic() - started
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        report = report.get("Report", report)
        assert report["complete"] is False, report
        [behind] = report["incomplete"]
        assert behind["node"] == id_b and f"keyhole audit query --job {job_id}" in behind["reason"], behind
        # What B recorded before it froze is there.
        assert report["requests"] == 1 and report["written"][0]["objects"] == 1, report
        assert 2.0 <= took < 6.0, f"the report waits its 2 s bound, then answers: {took:.2f}s"
        print(f"report with node B frozen: {took * 1000:.0f} ms (CLI included)")
        text = keyhole(a, "job", "report", job_id)
        assert "INCOMPLETE" in text.stdout and id_b in text.stdout, text.stdout
    finally:
        b.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 5
    while True:
        r = keyhole(a, "job", "report", job_id, "--json")
        report = json.loads(r.stdout)
        report = report.get("Report", report)
        if report["complete"] is True:
            break
        assert time.monotonic() < deadline, f"node B did not catch up after SIGCONT: {report}"
    assert report["requests"] == 1, report


def _verify(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    return subprocess.run([str(keyhole_bin()), "audit", "verify", *args], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)


def test_verify_checks_each_nodes_chain_and_names_the_tampered_one(two_nodes, tmp_path):
    a, b, _ = two_nodes
    id_a, id_b = _node_id(a), _node_id(b)
    keys = ["--fingerprint", _fingerprint(a), "--fingerprint", _fingerprint(b)]
    for kp in (a, b):  # closed trails: the stop digests sign everything
        kp.stop()
    r = _verify("--data-dir", str(a.data_dir), "--data-dir", str(b.data_dir), *keys)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"node {id_a} (" in r.stdout and f"node {id_b} (" in r.stdout, r.stdout
    assert r.stdout.count("  ok: ") == 2 and "2 trails: all intact" in r.stdout, r.stdout
    # Copies of both trails under one directory; an event edited in node B's copy.
    trails = tmp_path / "trails"
    for name, kp in (("a", a), ("b", b)):
        shutil.copytree(kp.data_dir / "audit", trails / name)
    target = trails / "b" / "audit-00000000000000000001.jsonl"
    lines = target.read_text().splitlines(keepends=True)
    edited = next(i for i, l in enumerate(lines) if '"eventName":"PutObject"' in l and '"stage":"completed"' in l)
    lines[edited] = lines[edited].replace('"bytesIn":12', '"bytesIn":99', 1)
    assert lines[edited] != target.read_text().splitlines(keepends=True)[edited], "the edit changed the line"
    target.write_text("".join(lines))
    r = _verify("--trails", str(trails), *keys)
    assert r.returncode == 1, r.stdout + r.stderr
    sections = re.split(r"^node ", r.stdout, flags=re.M)
    [sec_a] = [s for s in sections if s.startswith(id_a)]
    [sec_b] = [s for s in sections if s.startswith(id_b)]
    assert "  ok: " in sec_a and "FAILED" not in sec_a, r.stdout
    assert f"FAILED at audit-00000000000000000001.jsonl:{edited + 1}" in sec_b, r.stdout
    assert "at least one FAILED" in r.stdout, r.stdout
    # --digests holds one trail's copy: refused with several, saying why.
    r = _verify("--trails", str(trails), "--digests", str(tmp_path), *keys)
    assert r.returncode != 0 and "one trail" in r.stderr, r.stderr
    # Node A's trail in node B's place, or the same trail twice: each copy verifies on its own,
    # but the set is not both nodes' trails (review 10, F3).
    swapped = tmp_path / "swapped"
    for name in ("a", "b"):
        shutil.copytree(a.data_dir / "audit", swapped / name)
    for args in (["--trails", str(swapped)], ["--data-dir", str(a.data_dir), "--data-dir", str(a.data_dir)]):
        r = _verify(*args, *keys)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "same node as" in r.stdout and id_a in r.stdout, r.stdout


def test_query_merges_both_trails_by_time_with_node_ids(two_nodes):
    a, b, _ = two_nodes
    id_a, id_b = _node_id(a), _node_id(b)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    run = lambda *args: subprocess.run(  # noqa: E731
        [str(keyhole_bin()), "audit", "query", "--data-dir", str(a.data_dir), "--data-dir", str(b.data_dir), *args],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    r = run("--format", "jsonl")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    nodes = [e["node"] for e in events]
    assert set(nodes) == {id_a, id_b}, set(nodes)
    times = [e["eventTime"] for e in events]
    assert times == sorted(times), "merged in time order"
    # Interleaved, not one trail after the other.
    switches = sum(1 for x, y in zip(nodes, nodes[1:]) if x != y)
    assert switches >= 2, nodes
    # The job's read on A and write on B, each with its node.
    job = [e for e in events if e["userIdentity"].get("job", "").startswith("split-") and e["stage"] == "completed"
           and e["eventName"] in ("GetObject", "PutObject")]
    assert [(e["eventName"], e["node"]) for e in job] == [("GetObject", id_a), ("PutObject", id_b)], job
    # The table has a NODE column.
    r = run("--operation", "PutObject")
    rows = r.stdout.splitlines()
    assert r.returncode == 0 and "NODE" in rows[0], r.stdout
    assert any(id_b in row for row in rows[1:]) and any(id_a in row for row in rows[1:]), r.stdout
