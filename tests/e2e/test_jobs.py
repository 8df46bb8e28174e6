"""Jobs (issue 6): `keyhole run` / `keyhole job ...` give a command exactly its data, only in its
window, only from its address, with credentials that stop working when it ends; the access report
comes from the audit trail.

The job programs are plain boto3 with no configuration of their own: everything they know comes
from the environment `keyhole run` (or `keyhole job start --output env`) gives them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, keyhole_bin, read_trail, remember_secrets, status_from
from test_iam import iam_client, new_user

MiB = 1024 * 1024


def cli_env(server, creds_file: Path | None = None, **extra) -> dict[str, str]:
    """The environment of a `keyhole` CLI call signed with a shared-credentials file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(creds_file or server.creds_path),
        AWS_CONFIG_FILE="/dev/null",
        AWS_REGION=REGION,
        KEYHOLE_ENDPOINT=server.endpoint,
    )
    env.update(extra)
    return env


def keyhole(server, *args: str, creds_file: Path | None = None, timeout: float = 120, **extra):
    return subprocess.run([str(keyhole_bin()), *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(server, creds_file, **extra), stdin=subprocess.DEVNULL)


def session_client(server, creds: dict, service: str = "s3"):
    return boto3.session.Session().client(
        service, endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken") or creds.get("Token"),
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def code_of(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


@pytest.fixture(scope="module")
def data(server, s3):
    """A dataset bucket (wiki/ and other/), a models bucket (base/), an output bucket."""
    tag = uuid.uuid4().hex[:8]
    names = {"ds": f"ds-{tag}", "models": f"models-{tag}", "out": f"out-{tag}"}
    for b in names.values():
        s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=names["ds"], Key="wiki/part-0.jsonl", Body=b"a" * 1000)
    s3.put_object(Bucket=names["ds"], Key="wiki/part-1.jsonl", Body=b"b" * 2000)
    s3.put_object(Bucket=names["ds"], Key="other/secret.txt", Body=b"no")
    s3.put_object(Bucket=names["models"], Key="base/model.safetensors", Body=b"w" * 3000)
    return names


JOB_PY = textwrap.dedent('''
    """A training job: boto3 with no configuration of its own."""
    import io, json, sys
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError

    ds, models, out, result_path = sys.argv[1:5]
    s3 = boto3.client("s3")
    results = {}

    def attempt(name, f):
        try:
            f()
            results[name] = "ok"
        except ClientError as e:
            results[name] = e.response["Error"]["Code"]

    attempt("read_dataset", lambda: s3.get_object(Bucket=ds, Key="wiki/part-0.jsonl")["Body"].read())
    attempt("read_dataset_2", lambda: s3.get_object(Bucket=ds, Key="wiki/part-1.jsonl")["Body"].read())
    attempt("list_dataset", lambda: s3.list_objects_v2(Bucket=ds, Prefix="wiki/"))
    attempt("read_base", lambda: s3.get_object(Bucket=models, Key="base/model.safetensors")["Body"].read())
    attempt("write_single", lambda: s3.put_object(Bucket=out, Key="run-1/metrics.json", Body=b"{}"))
    attempt("write_multipart", lambda: s3.upload_fileobj(
        io.BytesIO(b"c" * (6 * 1024 * 1024)), out, "run-1/ckpt.pt",
        Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024,
                              use_threads=False)))
    attempt("write_dataset", lambda: s3.put_object(Bucket=ds, Key="wiki/poison.jsonl", Body=b"x"))
    attempt("read_other_prefix", lambda: s3.get_object(Bucket=ds, Key="other/secret.txt"))
    attempt("delete_output", lambda: s3.delete_object(Bucket=out, Key="run-1/metrics.json"))
    attempt("write_outside_run", lambda: s3.put_object(Bucket=out, Key="run-2/x", Body=b"x"))
    attempt("read_output", lambda: s3.get_object(Bucket=out, Key="run-1/metrics.json"))
    frozen = boto3.Session().get_credentials().get_frozen_credentials()
    results["credentials"] = {"AccessKeyId": frozen.access_key, "SecretAccessKey": frozen.secret_key,
                              "SessionToken": frozen.token}
    with open(result_path, "w") as f:
        json.dump(results, f)
    sys.exit(7)
''')


def test_keyhole_run_gives_the_command_exactly_its_job(server, data, tmp_path):
    job_py = tmp_path / "job.py"
    job_py.write_text(JOB_PY)
    result, report_path = tmp_path / "result.json", tmp_path / "report.json"
    ds, models, out = data["ds"], data["models"], data["out"]
    run = keyhole(server, "run", "--name", "wiki-ft", "--read", f"s3://{ds}/wiki/",
                  "--read", f"s3://{models}/base/", "--write", f"s3://{out}/run-1/", "--for", "10m",
                  "--report-json", str(report_path), "--",
                  sys.executable, str(job_py), ds, models, out, str(result))
    assert run.returncode == 7, f"the command's exit code is returned\n{run.stdout}\n{run.stderr}"
    got = json.loads(result.read_text())
    creds = got.pop("credentials")
    remember_secrets(creds["SecretAccessKey"], creds["SessionToken"])
    assert got == {
        "read_dataset": "ok", "read_dataset_2": "ok", "list_dataset": "ok", "read_base": "ok",
        "write_single": "ok", "write_multipart": "ok",
        "write_dataset": "AccessDenied", "read_other_prefix": "AccessDenied",
        "delete_output": "AccessDenied", "write_outside_run": "AccessDenied", "read_output": "AccessDenied",
    }, run.stderr
    assert creds["AccessKeyId"].startswith("ASIA")
    # After exit the same credentials are refused.
    with pytest.raises(ClientError) as e:
        session_client(server, creds).get_object(Bucket=ds, Key="wiki/part-0.jsonl")
    assert code_of(e.value) == "InvalidToken"
    # The report is exact.
    report = json.loads(report_path.read_text())
    assert report["state"] == "finished"
    reads = {r["location"]: r for r in report["read"]}
    assert reads[f"s3://{ds}/wiki/"]["objects"] == 2 and reads[f"s3://{ds}/wiki/"]["bytes"] == 3000
    assert reads[f"s3://{ds}/wiki/"]["lists"] == 1
    assert reads[f"s3://{models}/base/"]["objects"] == 1 and reads[f"s3://{models}/base/"]["bytes"] == 3000
    [written] = report["written"]
    assert written["location"] == f"s3://{out}/run-1/"
    assert written["objects"] == 2 and written["bytes"] == 2 + 6 * MiB
    assert report["denied"]["count"] == 5
    denied_ops = sorted((d["operation"], d["bucket"], d["key"]) for d in report["denied"]["attempts"])
    assert denied_ops == sorted([
        ("PutObject", ds, "wiki/poison.jsonl"), ("GetObject", ds, "other/secret.txt"),
        ("DeleteObject", out, "run-1/metrics.json"), ("PutObject", out, "run-2/x"),
        ("GetObject", out, "run-1/metrics.json")])
    assert all("is not authorized to perform" in d["reason"] for d in report["denied"]["attempts"])
    # The models location was read but never listed: that grant went unused.
    assert [u["sid"] for u in report["unusedGrants"]] == ["Read1List"]
    minimal = report["minimalPolicy"]["Statement"]
    resources = sorted(r for s in minimal for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]))
    assert resources == sorted([
        f"arn:aws:s3:::{ds}/wiki/part-0.jsonl", f"arn:aws:s3:::{ds}/wiki/part-1.jsonl", f"arn:aws:s3:::{ds}",
        f"arn:aws:s3:::{models}/base/model.safetensors",
        f"arn:aws:s3:::{out}/run-1/ckpt.pt", f"arn:aws:s3:::{out}/run-1/metrics.json"])
    assert all(s["Condition"]["IpAddress"]["aws:SourceIp"] == ["127.0.0.1/32"] for s in minimal)
    # The human report went to stderr, with the job's outcome.
    assert "access report for job wiki-ft-" in run.stderr and "denied: 5" in run.stderr
    # The job's sessions were tagged and audited with the job id.
    events = [e for e in read_trail(server.data_dir) if e.get("userIdentity", {}).get("job") == report["jobId"]]
    assert any(e["eventName"] == "GetObject" for e in events)
    assert all(creds["SecretAccessKey"] not in json.dumps(e) for e in events)


def start_job(server, *args: str, creds_file: Path | None = None) -> dict:
    r = keyhole(server, "job", "start", "--output", "json", *args, creds_file=creds_file)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    c = created["Credentials"]
    remember_secrets(created["CredentialsToken"], c["SecretAccessKey"], c["SessionToken"])
    return created


def test_a_job_is_denied_until_its_window_starts(server, data):
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=10)
    created = start_job(server, "--name", "later", "--read", f"s3://{data['ds']}/wiki/",
                        "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--for", "5m")
    assert created["Job"]["State"] == "pending"
    s3 = session_client(server, created["Credentials"])
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=data["ds"], Key="wiki/part-0.jsonl")
    assert code_of(e.value) == "AccessDenied"
    time.sleep(max(0.0, (start - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.2)
    assert s3.get_object(Bucket=data["ds"], Key="wiki/part-0.jsonl")["Body"].read() == b"a" * 1000
    assert keyhole(server, "job", "finish", created["Job"]["JobId"]).returncode == 0


def _get_from(source: str, server, creds: dict, path: str) -> int:
    return status_from(source, server.port, "GET", path, creds["AccessKeyId"], creds["SecretAccessKey"],
                       creds["SessionToken"])


def test_a_job_bound_to_127_0_0_1_is_denied_from_127_0_0_2(server, data):
    created = start_job(server, "--name", "bound", "--read", f"s3://{data['ds']}/wiki/", "--for", "5m",
                        "--source-ip", "127.0.0.1/32")
    creds, path = created["Credentials"], f"/{data['ds']}/wiki/part-0.jsonl"
    assert _get_from("127.0.0.1", server, creds, path) == 200
    assert _get_from("127.0.0.2", server, creds, path) == 403
    # The credential endpoint refuses the other address too.
    import urllib.request
    req = urllib.request.Request(f"{server.endpoint}/_keyhole/credentials",
                                 headers={"Authorization": created["CredentialsToken"]})
    assert urllib.request.urlopen(req, timeout=10).status == 200
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10, source_address=("127.0.0.2", 0))
    conn.request("GET", "/_keyhole/credentials", headers={"Authorization": created["CredentialsToken"]})
    refused = conn.getresponse()
    body = refused.read().decode()
    conn.close()
    # It says why, as JOBS.md shows it: the job's addresses, not a policy the holder never sees.
    job_id = created["Job"]["JobId"]
    assert refused.status == 403, body
    assert f"job {job_id} may be used only from 127.0.0.1/32, not from 127.0.0.2" in body, body
    keyhole(server, "job", "finish", job_id)


REFRESH_PY = textwrap.dedent('''
    """Reads in a loop through the container-credentials endpoint until told to stop."""
    import json, sys, time
    from pathlib import Path
    import boto3
    from botocore.exceptions import ClientError, CredentialRetrievalError

    ds, state_dir = sys.argv[1], Path(sys.argv[2])
    s3 = boto3.client("s3")
    log = []
    while not (state_dir / "stop").exists():
        try:
            s3.get_object(Bucket=ds, Key="wiki/part-0.jsonl")["Body"].read()
            key = s3._request_signer._credentials.get_frozen_credentials().access_key
            log.append(["ok", key])
        except (ClientError, CredentialRetrievalError) as e:
            log.append(["error", type(e).__name__ + ": " + str(e)[:200]])
        # Written whole then renamed: the test reads it meanwhile and must never see it half written.
        (state_dir / "log.json.tmp").write_text(json.dumps(log))
        (state_dir / "log.json.tmp").replace(state_dir / "log.json")
        time.sleep(0.5)
''')


def _job_on_the_endpoint(kp, name: str, duration: str):
    """A dataset and a job reading it with `--credentials endpoint` on the fresh server `kp`:
    (server stand-in, dataset bucket, the environment `keyhole job start --output env` gives)."""
    from e2e_helpers import make_client
    admin = make_client(kp.endpoint, *kp.credentials())
    ds = f"ds-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(Bucket=ds)
    admin.put_object(Bucket=ds, Key="wiki/part-0.jsonl", Body=b"x")

    class S:
        endpoint, creds_path = kp.endpoint, kp.creds_path
    r = keyhole(S, "job", "start", "--name", name, "--read", f"s3://{ds}/wiki/", "--for", duration,
                "--output", "env", "--credentials", "endpoint")
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for line in r.stdout.splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        env[k] = v.strip("'")
    return S, ds, env


def test_sdks_refresh_through_the_credential_endpoint_until_the_job_finishes(fresh_server_factory, tmp_path):
    kp = fresh_server_factory(extra_args=["--job-session-secs", "15"])
    S, ds, env = _job_on_the_endpoint(kp, "long", "10m")
    assert "AWS_ACCESS_KEY_ID" not in env and env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith("/_keyhole/credentials")
    state = tmp_path / "state"
    state.mkdir()
    reader = subprocess.Popen([sys.executable, "-c", REFRESH_PY, ds, str(state)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        # 15-second sessions: keep reading for longer than two lifetimes.
        time.sleep(33)
        log = json.loads((state / "log.json").read_text())
        assert log and all(entry[0] == "ok" for entry in log), log
        assert len({entry[1] for entry in log}) >= 3, "several refreshes (distinct session keys)"
        assert keyhole(S, "job", "finish", env["KEYHOLE_JOB_ID"]).returncode == 0
        seen = len(log)
        while time.time() < deadline:
            log = json.loads((state / "log.json").read_text())
            if len(log) > seen + 2:
                break
            time.sleep(0.5)
        assert all(entry[0] == "error" for entry in log[seen + 1:]), log[seen:]
    finally:
        (state / "stop").touch()
        reader.wait(timeout=30)


def test_a_short_job_is_not_refreshed_on_every_request_and_still_ends_with_its_window(fresh_server_factory,
                                                                                     tmp_path):
    """botocore refreshes container credentials expiring within 15 minutes, so a session dated by
    the window's end was fetched again on every request of a job's last 15 minutes (an 11-request
    script: 12 fetches, 11 sessions). The endpoint now dates such a session past the window
    (docs/JOBS.md); boto3 keeps one session for the whole short job, and every request after the
    window still fails."""
    kp = fresh_server_factory()
    from e2e_helpers import read_trail
    _, ds, env = _job_on_the_endpoint(kp, "short", "25s")
    started = time.time()
    job_id = env["KEYHOLE_JOB_ID"]
    state = tmp_path / "state"
    state.mkdir()
    reader = subprocess.Popen([sys.executable, "-c", REFRESH_PY, ds, str(state)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)
        log = json.loads((state / "log.json").read_text())
        assert len(log) >= 11 and all(entry[0] == "ok" for entry in log), log
        assert len({entry[1] for entry in log}) == 1, "one session for the whole short job"
        fetches = [e for e in read_trail(kp.data_dir)
                   if e.get("eventName") == "GetJobCredentials" and job_id in json.dumps(e)]
        assert 1 <= len(fetches) <= 2, len(fetches)
        # The window ends 25 s after the start: every request after it fails.
        time.sleep(max(0.0, started + 25 + 2 - time.time()))
        seen = len(json.loads((state / "log.json").read_text()))
        deadline = time.time() + 20
        while time.time() < deadline:
            log = json.loads((state / "log.json").read_text())
            if len(log) > seen + 3:
                break
            time.sleep(0.5)
        assert len(log) > seen + 3 and all(entry[0] == "error" for entry in log[seen:]), log[seen:]
    finally:
        (state / "stop").touch()
        reader.wait(timeout=30)


def test_a_scheduler_allowed_only_createjob(server, data, tmp_path):
    """A scheduler that may start jobs over some data, through a role it may pass, and do nothing
    else itself (docs/JOBS.md, "Passing a role to a job")."""
    iam = iam_client(server)
    name, ak, sk = new_user(iam)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "keyhole:CreateJob", "Resource": "*",
        "Condition": {"ForAllValues:StringLike": {"keyhole:ReadLocations": [f"s3://{data['ds']}/*"],
                                                   "keyhole:WriteLocations": [f"s3://{data['out']}/*"]}}}]}
    iam.put_user_policy(UserName=name, PolicyName="scheduler", PolicyDocument=json.dumps(policy))
    role = f"job-data-{uuid.uuid4().hex[:6]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:user/{name}"}}]}))
    iam.put_role_policy(RoleName=role, PolicyName="data", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"], "Resource": "*"}]}))
    creds_file = tmp_path / "scheduler-credentials"
    creds_file.write_text(f"[default]\naws_access_key_id = {ak}\naws_secret_access_key = {sk}\n")
    # It can start jobs over the data it was given, with the role...
    created = start_job(server, "--name", "sched", "--read", f"s3://{data['ds']}/wiki/", "--for", "5m",
                        "--role", role, creds_file=creds_file)
    job_s3 = session_client(server, created["Credentials"])
    assert job_s3.get_object(Bucket=data["ds"], Key="wiki/part-0.jsonl")["Body"].read() == b"a" * 1000
    # ...while a job without a role has the scheduler's own permissions (none on S3) ∩ the job
    # policy: AWS's GetFederationToken model.
    bare = start_job(server, "--name", "bare", "--read", f"s3://{data['ds']}/wiki/", "--for", "5m",
                     creds_file=creds_file)
    with pytest.raises(ClientError) as e:
        session_client(server, bare["Credentials"]).get_object(Bucket=data["ds"], Key="wiki/part-0.jsonl")
    assert code_of(e.value) == "AccessDenied" and "no identity-based policy allows" in str(e.value)
    assert keyhole(server, "job", "finish", bare["Job"]["JobId"], creds_file=creds_file).returncode == 0
    # ...not over other data...
    r = keyhole(server, "job", "start", "--name", "greedy", "--read", f"s3://{data['models']}/base/",
                "--for", "5m", creds_file=creds_file)
    assert r.returncode != 0 and "AccessDenied" in r.stderr and "keyhole:CreateJob" in r.stderr, r.stderr
    # ...cannot read data itself...
    own = session_client(server, {"AccessKeyId": ak, "SecretAccessKey": sk})
    with pytest.raises(ClientError) as e:
        own.get_object(Bucket=data["ds"], Key="wiki/part-0.jsonl")
    assert code_of(e.value) == "AccessDenied"
    # ...cannot finish (or see) someone else's job, but can finish its own.
    others = start_job(server, "--name", "root-job", "--read", f"s3://{data['ds']}/wiki/", "--for", "5m")
    r = keyhole(server, "job", "finish", others["Job"]["JobId"], creds_file=creds_file)
    assert r.returncode != 0 and "AccessDenied" in r.stderr and "keyhole:FinishJob" in r.stderr, r.stderr
    r = keyhole(server, "job", "show", others["Job"]["JobId"], creds_file=creds_file)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    session_client(server, others["Credentials"]).get_object(Bucket=data["ds"], Key="wiki/part-0.jsonl")
    r = keyhole(server, "job", "finish", created["Job"]["JobId"], creds_file=creds_file)
    assert r.returncode == 0, r.stderr
    with pytest.raises(ClientError) as e:
        job_s3.get_object(Bucket=data["ds"], Key="wiki/part-0.jsonl")
    assert code_of(e.value) == "InvalidToken"
    assert keyhole(server, "job", "finish", others["Job"]["JobId"]).returncode == 0


def test_bad_specs_name_the_field_and_create_nothing(server, data):
    cases = [
        (["--name", "x", "--read", "s3://no-such-bucket-zz/", "--for", "5m"], "read[0]", "does not exist"),
        (["--name", "x", "--read", f"s3://{data['ds']}/wiki/", "--write", f"s3://{data['ds']}/wiki/out/",
          "--for", "5m"], "write[0]", "overlaps"),
        (["--name", "x", "--read", f"s3://{data['ds']}/wiki/", "--end", "2020-01-01T00:00:00Z"], "end",
         "before it starts"),
        (["--name", "x", "--read", f"s3://{data['ds']}/wiki/", "--start", "2020-01-01T00:00:00Z", "--for", "1h"],
         "duration", "in the past"),
        (["--name", "x", "--read", f"s3://{data['ds']}/wiki/", "--for", "5m", "--source-ip", "10.0.0.300/8"],
         "source_ip[0]", "not an IP address or CIDR"),
        (["--name", "x", "--read", f"s3://{data['ds']}/wiki", "--for", "5m"], "read[0]", "must end with `/`"),
    ]
    before = json.loads(keyhole(server, "job", "list", "--json").stdout)["Jobs"]
    for args, field, words in cases:
        r = keyhole(server, "job", "start", *args)
        assert r.returncode != 0, args
        flat = " ".join(r.stderr.split()).replace("│ ", "")
        assert f"`{field}`" in flat and words in flat, (args, r.stderr)
    after = json.loads(keyhole(server, "job", "list", "--json").stdout)["Jobs"]
    assert len(after) == len(before)


def test_job_plan_prints_the_grants_and_exports_aws_json(server, tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(textwrap.dedent('''
        name = "finetune-wiki-42"
        read = ["s3://acmeco-training-datasets-wikipedia-2025-07-01", "s3://acmeco-base-models/llama-3-8b/"]
        write = ["s3://acmeco-finetuned-models/finetune-wiki-42/"]
        duration = "3h"
        source_ip = ["203.0.113.42/32"]
    '''))
    r = keyhole(server, "job", "plan", str(spec))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("  allow ") == 5 and "only from 203.0.113.42/32" in r.stdout
    r = keyhole(server, "job", "plan", str(spec), "--export", "aws", "--trust", "sagemaker",
                "--out-dir", str(tmp_path / "aws"))
    assert r.returncode == 0, r.stderr
    permissions = json.loads((tmp_path / "aws" / "permissions-policy.json").read_text())
    trust = json.loads((tmp_path / "aws" / "trust-policy.json").read_text())
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    actions = sorted(a for s in permissions["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    assert "s3:DeleteObject" not in actions and "s3:PutObject" in actions
    # The exported policy is valid for keyhole's own validator (AWS grammar).
    v = keyhole(server, "policy", "validate", str(tmp_path / "aws" / "permissions-policy.json"))
    assert v.returncode == 0, v.stdout + v.stderr


def test_credential_process_gives_aws_cli_the_jobs_credentials(server, data, tmp_path):
    created = start_job(server, "--name", "cp", "--read", f"s3://{data['ds']}/wiki/", "--for", "5m")
    job_id, token = created["Job"]["JobId"], created["CredentialsToken"]
    config = tmp_path / "config"
    config.write_text(f"[default]\ncredential_process = {keyhole_bin()} credentials --job {job_id}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_REGION=REGION,
               KEYHOLE_JOB_TOKEN=token, KEYHOLE_ENDPOINT=server.endpoint)
    from e2e_helpers import aws_bin
    r = subprocess.run([aws_bin(), "--endpoint-url", server.endpoint, "s3", "cp",
                        f"s3://{data['ds']}/wiki/part-1.jsonl", str(tmp_path / "p1")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p1").read_bytes() == b"b" * 2000
    keyhole(server, "job", "finish", job_id)
    r = subprocess.run([aws_bin(), "--endpoint-url", server.endpoint, "s3", "cp",
                        f"s3://{data['ds']}/wiki/part-1.jsonl", str(tmp_path / "p2")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "finished" in r.stderr, r.stderr


S3FS_PY = textwrap.dedent('''
    """The guide's s3fs job: fsspec paths, no configuration of its own."""
    import json, sys
    import s3fs

    ds, out = sys.argv[1:3]
    fs = s3fs.S3FileSystem()
    listing = sorted(fs.ls(f"{ds}/wiki/"))
    data = fs.cat(f"{ds}/wiki/part-0.jsonl")
    with fs.open(f"{out}/run-s3fs/copy.jsonl", "wb") as f:
        f.write(data)
    try:
        fs.cat(f"{ds}/other/secret.txt")
        other = "read"
    except PermissionError:
        other = "denied"
    print(json.dumps({"listing": listing, "bytes": len(data), "other": other}))
''')


def test_an_s3fs_job_gets_its_data_through_keyhole_run(server, data, s3, tmp_path):
    python = os.environ.get("KEYHOLE_S3FS_PYTHON") or str(Path(__file__).resolve().parents[2] / ".venv-s3fs/bin/python")
    if not Path(python).exists():
        pytest.fail(f"s3fs venv missing at {python}: scripts/test.sh creates it from tests/e2e/requirements-s3fs.txt")
    script = tmp_path / "s3fs_job.py"
    script.write_text(S3FS_PY)
    ds, out = data["ds"], data["out"]
    r = keyhole(server, "run", "--name", "s3fs-job", "--read", f"s3://{ds}/wiki/", "--write",
                f"s3://{out}/run-s3fs/", "--for", "10m", "--", python, str(script), ds, out)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {"listing": [f"{ds}/wiki/part-0.jsonl", f"{ds}/wiki/part-1.jsonl"], "bytes": 1000,
                   "other": "denied"}, r.stderr
    assert s3.get_object(Bucket=out, Key="run-s3fs/copy.jsonl")["Body"].read() == b"a" * 1000
    assert "denied: 1" in r.stderr


def test_readme_jobs_quickstart_runs(fresh_server_factory, tmp_path):
    """README's jobs block, run as written after the admin block (keyhole and aws on PATH)."""
    from e2e_helpers import REPO_ROOT, aws_bin
    from test_readme import DOC_ENDPOINT, block_commands

    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    commands = block_commands(text, "<!-- admin-quickstart -->") + block_commands(text, "<!-- jobs-quickstart -->")
    assert any(c.startswith("keyhole run ") for c in commands), commands
    kp = fresh_server_factory()
    work = tmp_path / "work"
    work.mkdir()
    (work / "keyhole-data").symlink_to(kp.data_dir)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(HOME=str(home),
               PATH=os.pathsep.join([str(Path(aws_bin()).parent), str(keyhole_bin().parent), env.get("PATH", "")]))
    script = "set -euxo pipefail\n" + "\n".join(c.replace(DOC_ENDPOINT, kp.endpoint) for c in commands) + "\n"
    cp = subprocess.run(["bash", "-c", script], env=env, cwd=work, capture_output=True, text=True, timeout=300,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"script:\n{script}\nstdout: {cp.stdout[-3000:]}\nstderr: {cp.stderr[-3000:]}"
    assert "allow read" in cp.stdout and "access report for job wiki-ft-" in cp.stderr
    ak, sk = kp.credentials()
    from e2e_helpers import make_client
    copied = make_client(kp.endpoint, ak, sk).get_object(Bucket="acmeco-models", Key="wiki-ft/part-0.jsonl")
    assert copied["Body"].read() == b'{"text": "hello"}\n'


def test_a_role_capped_job_gets_the_intersection_and_its_job_tag(server, data, tmp_path):
    """With `role`, a job gets the role's policies ∩ the job policy; its sessions carry
    aws:PrincipalTag/job, usable in the role's policy
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html). Passing
    the role is an AssumeRole by the job's creator: the role's trust policy admits the scheduler
    for sts:AssumeRole and, since the job has a label, sts:TagSession."""
    iam = iam_client(server)
    sched, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["keyhole:CreateJob"], "Resource": "*"}]})
    creds_file = tmp_path / "scheduler-credentials"
    creds_file.write_text(f"[default]\naws_access_key_id = {ak}\naws_secret_access_key = {sk}\n")
    role = f"training-jobs-{uuid.uuid4().hex[:6]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:user/{sched}"}}]}
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    out = data["out"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"arn:aws:s3:::{out}/jobs/${{aws:PrincipalTag/job}}/*",
                      f"arn:aws:s3:::{out}/jobs/teams/${{aws:PrincipalTag/team}}/*"]},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{data['ds']}/*"}]}
    iam.put_role_policy(RoleName=role, PolicyName="jobs", PolicyDocument=json.dumps(policy))
    created = start_job(server, "--name", "capped", "--read", f"s3://{data['ds']}/wiki/",
                        "--write", f"s3://{out}/jobs/", "--for", "5m", "--role", role, "--label", "team=nlp",
                        creds_file=creds_file)
    job_id = created["Job"]["JobId"]
    assert created["Job"]["Role"] == role
    s3 = session_client(server, created["Credentials"])
    arn = session_client(server, created["Credentials"], "sts").get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{server.account_id}:assumed-role/{role}/{job_id}"
    s3.put_object(Bucket=out, Key=f"jobs/{job_id}/ckpt", Body=b"1")
    s3.put_object(Bucket=out, Key="jobs/teams/nlp/shared.txt", Body=b"1")  # the label is a tag too
    for key in ("jobs/someone-else/ckpt", "jobs/teams/vision/x"):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=out, Key=key, Body=b"1")
        assert code_of(e.value) == "AccessDenied"
    # The role allows delete, the job policy does not: the intersection denies it.
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=out, Key=f"jobs/{job_id}/ckpt")
    assert code_of(e.value) == "AccessDenied" and "session policy" in e.value.response["Error"]["Message"]
    # The job policy reads wiki/ only, though the role reads the whole bucket.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=data["ds"], Key="other/secret.txt")
    assert code_of(e.value) == "AccessDenied"
    assert s3.get_object(Bucket=data["ds"], Key="wiki/part-0.jsonl")["Body"].read() == b"a" * 1000
    # The scheduler created it: it may finish it (the job's creator grant, by unique id).
    assert keyhole(server, "job", "finish", job_id, creds_file=creds_file).returncode == 0


def _assumable_role(server):
    """A user and a role that trusts it (with S3 read on everything); returns (sts client, role arn)."""
    iam = iam_client(server)
    name, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]})
    role = f"revocable-{uuid.uuid4().hex[:6]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:user/{name}"}}]}
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))
    return session_client(server, {"AccessKeyId": ak, "SecretAccessKey": sk}, "sts"), role, arn


def test_admin_revokes_one_session_at_once(server):
    sts, _, arn = _assumable_role(server)
    a = sts.assume_role(RoleArn=arn, RoleSessionName="sa")["Credentials"]
    b = sts.assume_role(RoleArn=arn, RoleSessionName="sb")["Credentials"]
    session_client(server, a).list_buckets()
    r = keyhole(server, "admin", "revoke-session", a["AccessKeyId"])
    assert r.returncode == 0, r.stderr
    with pytest.raises(ClientError) as e:
        session_client(server, a).list_buckets()
    assert code_of(e.value) == "InvalidToken"
    session_client(server, b).list_buckets()  # only that session
    r = keyhole(server, "admin", "revoke-session", "AKIANOTASESSION")
    assert r.returncode != 0 and "AccessKeyId" in r.stderr


def test_admin_revokes_a_roles_older_sessions_the_aws_way(server):
    """https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_revoke-sessions.html"""
    sts, role, arn = _assumable_role(server)
    old = sts.assume_role(RoleArn=arn, RoleSessionName="old")["Credentials"]
    session_client(server, old).list_buckets()
    time.sleep(1.1)  # aws:TokenIssueTime has one-second resolution
    r = keyhole(server, "admin", "revoke-role-sessions", role)
    assert r.returncode == 0, r.stderr
    with pytest.raises(ClientError) as e:
        session_client(server, old).list_buckets()
    assert code_of(e.value) == "AccessDenied" and "explicit deny" in e.value.response["Error"]["Message"]
    time.sleep(1.1)
    new = sts.assume_role(RoleArn=arn, RoleSessionName="new")["Credentials"]
    session_client(server, new).list_buckets()


def test_keyhole_run_forwards_signals_and_returns_the_status(server, data, tmp_path):
    marker = tmp_path / "got-term"
    script = tmp_path / "trap.sh"
    script.write_text(f"trap 'echo term > {marker}; exit 42' TERM\necho ready\nwhile true; do sleep 0.1; done\n")
    proc = subprocess.Popen([str(keyhole_bin()), "run", "--name", "sig", "--read", f"s3://{data['ds']}/wiki/",
                             "--for", "5m", "--", "bash", str(script)], env=cli_env(server),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(15)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert marker.read_text().strip() == "term", err
    assert proc.returncode == 42, err
    assert "finished; its credentials no longer work" in err


TORCH_CLIENT_PY = textwrap.dedent('''
    """PyTorch's S3 connector's client (s3torchconnectorclient, the AWS CRT-based client under
    S3MapDataset/S3IterableDataset/S3Checkpoint), configured only from the environment."""
    import json, os, sys
    from s3torchconnectorclient._mountpoint_s3_client import MountpointS3Client

    ds, out = sys.argv[1:3]
    client = MountpointS3Client(os.environ["AWS_REGION"], endpoint=os.environ["AWS_ENDPOINT_URL"],
                                force_path_style=True)
    keys = [o.key for page in client.list_objects(ds, "wiki/") for o in page.object_info]
    data = b"".join(client.get_object(ds, "wiki/part-1.jsonl"))
    writer = client.put_object(out, "run-torch/ckpt.pt")
    writer.write(b"weights" * 1000)
    writer.close()
    try:
        b"".join(client.get_object(ds, "other/secret.txt"))
        other = "read"
    except Exception as e:
        other = "denied" if "Forbidden" in str(e) else repr(e)
    print(json.dumps({"keys": keys, "bytes": len(data), "other": other}))
''')


def test_pytorch_s3_connector_client_through_keyhole_run(server, data, s3, tmp_path):
    """The CRT client PyTorch's connector uses finds the job's credentials through the
    container endpoint and the endpoint in AWS_ENDPOINT_URL (path style)."""
    script = tmp_path / "torch_job.py"
    script.write_text(TORCH_CLIENT_PY)
    ds, out = data["ds"], data["out"]
    r = keyhole(server, "run", "--name", "torch-job", "--read", f"s3://{ds}/wiki/", "--write",
                f"s3://{out}/run-torch/", "--for", "10m", "--", sys.executable, str(script), ds, out)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {"keys": ["wiki/part-0.jsonl", "wiki/part-1.jsonl"], "bytes": 2000, "other": "denied"}, r.stderr
    assert s3.get_object(Bucket=out, Key="run-torch/ckpt.pt")["Body"].read() == b"weights" * 1000
    assert "7000 bytes" in r.stderr, r.stderr


def test_keyhole_run_keeps_the_callers_keyhole_variables_from_the_command(server, data, tmp_path):
    """Review 37, F2: `keyhole run` removed the caller's AWS_* variables but passed KEYHOLE_*
    ones through, so a write-only job's command could use another job's KEYHOLE_JOB_TOKEN (or
    read a KEYHOLE_STATE URL with its password)."""
    dump = tmp_path / "env.json"
    run = keyhole(server, "run", "--name", "env-dump", "--write", f"s3://{data['out']}/env/", "--for", "2m", "--",
                  sys.executable, "-c", f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))",
                  KEYHOLE_JOB_TOKEN="kh1.other-job.secret", KEYHOLE_STATE="postgres://u:pw@127.0.0.1/db")
    assert run.returncode == 0, run.stderr
    env = json.loads(dump.read_text())
    assert "KEYHOLE_JOB_TOKEN" not in env and "KEYHOLE_STATE" not in env, sorted(env)
    assert env["KEYHOLE_JOB_ID"].startswith("env-dump") and env["AWS_ENDPOINT_URL"] == server.endpoint
