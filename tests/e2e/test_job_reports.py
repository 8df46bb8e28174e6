"""Issue 11, item 5: access reports and audit queries that tell the whole story.

- A CopyObject inside a job reads its source and writes its destination (the README's own
  `keyhole run ... -- aws s3 cp s3://... s3://...`), and the minimal policy names both objects.
- Refused credential fetches (wrong source address, after the window, after finish) are denials in
  the job's report.
- `keyhole audit query --principal <role ARN>` also finds that role's sessions.
- `keyhole run` says on stderr when the job's window ends while the command still runs.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

from e2e_helpers import REGION, aws_bin, keyhole_bin, remember_secrets


def cli_env(server, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(server.creds_path), AWS_CONFIG_FILE="/dev/null", AWS_REGION=REGION,
               KEYHOLE_ENDPOINT=server.endpoint,
               PATH=os.pathsep.join([str(Path(aws_bin()).parent), env.get("PATH", "")]))
    env.update(extra)
    return env


def keyhole(server, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(keyhole_bin()), *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(server), stdin=subprocess.DEVNULL)


def start_job(server, *args: str) -> dict:
    r = keyhole(server, "job", "start", "--output", "json", *args)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    c = created["Credentials"]
    remember_secrets(created["CredentialsToken"], c["SecretAccessKey"], c["SessionToken"])
    return created


def report_of(server, job_id: str) -> dict:
    r = keyhole(server, "job", "report", job_id, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return out.get("Report", out)


def fetch_credentials(server, token: str, source: str) -> int:
    """Status of a container-credentials fetch from the loopback address `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/_keyhole/credentials", headers={"Authorization": token})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status == 200:
            c = json.loads(body)
            remember_secrets(c["SecretAccessKey"], c["Token"])
        return resp.status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def buckets(s3):
    tag = uuid.uuid4().hex[:8]
    names = {"ds": f"rep-ds-{tag}", "out": f"rep-out-{tag}"}
    for b in names.values():
        s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=names["ds"], Key="wiki/part-0.jsonl", Body=b'{"text": "hello"}\n')
    return names


def test_a_copy_in_a_job_reads_its_source_and_writes_its_destination(server, buckets, s3, tmp_path):
    ds, out = buckets["ds"], buckets["out"]
    report_path = tmp_path / "report.json"
    run = keyhole(server, "run", "--name", "copy", "--read", f"s3://{ds}/wiki/", "--write", f"s3://{out}/cp/",
                  "--for", "10m", "--report-json", str(report_path), "--",
                  "aws", "s3", "cp", f"s3://{ds}/wiki/part-0.jsonl", f"s3://{out}/cp/part-0.jsonl")
    assert run.returncode == 0, run.stderr
    assert s3.get_object(Bucket=out, Key="cp/part-0.jsonl")["Body"].read() == b'{"text": "hello"}\n'
    report = json.loads(report_path.read_text())
    [read], [written] = report["read"], report["written"]
    assert read["objects"] == 1 and "s3:GetObject" in read["actionsUsed"], report
    assert written["objects"] == 1 and written["actionsUsed"] == ["s3:PutObject"], report
    assert "1 objects written" in run.stderr, run.stderr
    resources = sorted(r for s in report["minimalPolicy"]["Statement"]
                       for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]))
    assert resources == sorted([f"arn:aws:s3:::{out}/cp/part-0.jsonl", f"arn:aws:s3:::{ds}/wiki/part-0.jsonl"]), \
        "the minimal policy names the two objects, not the prefixes"
    assert report["unusedGrants"] == [] or all(u["sid"].endswith("List") for u in report["unusedGrants"]), report


def test_refused_credential_fetches_are_denials_in_the_report(server, buckets):
    ds = buckets["ds"]
    # Refused from another address, then after the window ends.
    short = start_job(server, "--name", "short", "--read", f"s3://{ds}/wiki/", "--for", "3s",
                      "--source-ip", "127.0.0.1/32")
    token = short["CredentialsToken"]
    assert fetch_credentials(server, token, "127.0.0.1") == 200
    assert fetch_credentials(server, token, "127.0.0.2") == 403
    time.sleep(3.5)
    assert fetch_credentials(server, token, "127.0.0.1") == 403
    report = report_of(server, short["Job"]["JobId"])
    assert report["credentialRefreshes"] == 1, report
    refused = [d for d in report["denied"]["attempts"] if d["operation"] == "GetJobCredentials"]
    assert report["denied"]["count"] == 2 and len(refused) == 2, report
    # The reason names the condition that was not met, with the request's value.
    assert refused[0]["sourceIp"] == "127.0.0.2" and "IpAddress on aws:SourceIp" in refused[0]["reason"] \
        and "127.0.0.2" in refused[0]["reason"], refused
    assert refused[1]["sourceIp"] == "127.0.0.1" and short["Job"]["JobId"] in refused[1]["reason"], refused

    # Refused after the job finished.
    done = start_job(server, "--name", "done", "--read", f"s3://{ds}/wiki/", "--for", "10m")
    assert keyhole(server, "job", "finish", done["Job"]["JobId"]).returncode == 0
    assert fetch_credentials(server, done["CredentialsToken"], "127.0.0.1") == 403
    # Its session credentials used after the finish: refused, and in the report too (the
    # request names the job through its authentic token; a jobs sweep, M2: such requests were
    # recorded without the job and missing from its report).
    c = done["Credentials"]
    leaked = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"],
        config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        leaked.get_object(Bucket=ds, Key="wiki/part-0.jsonl")
    assert e.value.response["Error"]["Code"] == "InvalidToken"
    r = keyhole(server, "job", "report", done["Job"]["JobId"])
    assert r.returncode == 0, r.stderr
    assert "denied: 2" in r.stdout + r.stderr and "GetJobCredentials from 127.0.0.1" in r.stdout + r.stderr, r
    attempts = report_of(server, done["Job"]["JobId"])["denied"]["attempts"]
    assert any(a.get("error") == "InvalidToken" or "InvalidToken" in json.dumps(a) for a in attempts), attempts


def _fetch_body(server, token: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/_keyhole/credentials", headers={"Authorization": token})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_a_forged_job_token_learns_nothing_and_leaves_no_trace_in_the_report(server, buckets):
    """Review round 2, F7: a token that is not the job's gets the same answer whether the job runs,
    is finished or does not exist, and is not counted as the job's denial (job ids are not
    secret: they are in ARNs and job names)."""
    ds = buckets["ds"]
    running = start_job(server, "--name", "probed", "--read", f"s3://{ds}/wiki/", "--for", "10m")
    finished = start_job(server, "--name", "probed-done", "--read", f"s3://{ds}/wiki/", "--for", "10m")
    assert keyhole(server, "job", "finish", finished["Job"]["JobId"]).returncode == 0
    answers = set()
    for job_id in (running["Job"]["JobId"], finished["Job"]["JobId"], "no-such-job-abc123"):
        status, body = _fetch_body(server, f"kh1.{job_id}.{'0' * 64}")
        answers.add((status, body.replace(job_id, "ID")))
    assert len(answers) == 1, answers
    [(status, body)] = answers
    assert status == 403 and "not valid" in body, body
    for created in (running, finished):
        report = report_of(server, created["Job"]["JobId"])
        assert report["denied"]["count"] == 0, report
    # The job's own token after the finish is still its denial, with the real reason.
    status, body = _fetch_body(server, finished["CredentialsToken"])
    assert status == 403 and "finished" in body, body
    assert report_of(server, finished["Job"]["JobId"])["denied"]["count"] == 1


def test_audit_query_for_a_role_finds_its_sessions(server):
    iam = boto3.session.Session().client("iam", endpoint_url=server.endpoint, region_name=REGION,
                                         aws_access_key_id=server.access_key,
                                         aws_secret_access_key=server.secret_key)
    tag = uuid.uuid4().hex[:6]
    user, role = f"assumer-{tag}", f"queried-{tag}"
    user_arn = iam.create_user(UserName=user)["User"]["Arn"]
    iam.put_user_policy(UserName=user, PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}]}
    role_arn = iam.create_role(RoleName=role, Path="/ml/", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    assert role_arn.endswith(f":role/ml/{role}")
    sts = boto3.session.Session().client("sts", endpoint_url=server.endpoint, region_name=REGION,
                                         aws_access_key_id=key["AccessKeyId"],
                                         aws_secret_access_key=key["SecretAccessKey"])
    c = sts.assume_role(RoleArn=role_arn, RoleSessionName="nightly")["Credentials"]
    remember_secrets(c["SecretAccessKey"], c["SessionToken"])
    session = boto3.session.Session().client("sts", endpoint_url=server.endpoint, region_name=REGION,
                                             aws_access_key_id=c["AccessKeyId"],
                                             aws_secret_access_key=c["SecretAccessKey"],
                                             aws_session_token=c["SessionToken"])
    session_arn = session.get_caller_identity()["Arn"]
    assert session_arn.endswith(f":assumed-role/{role}/nightly")
    found: list[dict] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not found:
        r = keyhole(server, "audit", "query", "--data-dir", str(server.data_dir), "--principal", role_arn,
                    "--format", "jsonl")
        assert r.returncode == 0, r.stderr
        found = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        time.sleep(0.3)
    arns = {e["userIdentity"]["arn"] for e in found}
    assert arns == {session_arn}, arns
    assert any(e["eventName"] == "GetCallerIdentity" for e in found)
    # A user's ARN still matches only that user.
    r = keyhole(server, "audit", "query", "--data-dir", str(server.data_dir), "--principal", user_arn,
                "--format", "jsonl")
    assert {json.loads(line)["userIdentity"]["arn"] for line in r.stdout.splitlines() if line.strip()} == {user_arn}


def test_keyhole_run_warns_when_the_window_ends_while_the_command_runs(server, buckets):
    ds = buckets["ds"]
    run = keyhole(server, "run", "--name", "overrun", "--read", f"s3://{ds}/wiki/", "--for", "2s", "--",
                  "sleep", "4")
    assert run.returncode == 0, run.stderr
    warning = [line for line in run.stderr.splitlines() if "WARNING" in line and "window ended" in line]
    assert len(warning) == 1 and "`sleep` is still running" in warning[0], run.stderr
    quick = keyhole(server, "run", "--name", "quick", "--read", f"s3://{ds}/wiki/", "--for", "1m", "--", "true")
    assert quick.returncode == 0 and "window ended" not in quick.stderr, quick.stderr
    assert "does not include" not in quick.stderr, quick.stderr


def test_keyhole_run_warns_when_its_own_address_is_outside_source_ip(server, buckets):
    """`keyhole run` starts its command on this machine: a source_ip that leaves this machine's
    address out would have every request refused, so it says so before the command runs."""
    ds = buckets["ds"]
    run = keyhole(server, "run", "--name", "elsewhere", "--read", f"s3://{ds}/wiki/", "--source-ip",
                  "10.1.2.0/24", "--for", "1m", "--", "true")
    assert run.returncode == 0, run.stderr
    warning = [line for line in run.stderr.splitlines() if "WARNING" in line and "source_ip" in line]
    assert len(warning) == 1, run.stderr
    assert "127.0.0.1" in warning[0] and "10.1.2.0/24" in warning[0] and "--source-ip 127.0.0.1" in warning[0]
