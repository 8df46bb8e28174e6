"""Walkthroughs in docs/, run as written: the model-service profile of docs/JOBS.md (role
credentials that botocore refreshes through the gateway's STS) and the simulator input of
docs/SIMULATOR.md."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from e2e_helpers import REPO_ROOT, aws_bin, keyhole_bin
from test_readme import DOC_ENDPOINT, readme_blocks

JOBS_MD = REPO_ROOT / "docs" / "JOBS.md"
SIMULATOR_MD = REPO_ROOT / "docs" / "SIMULATOR.md"


def block(path: Path, marker: str) -> str:
    found = [body for m, _, body in readme_blocks(path.read_text(encoding="utf-8")) if m == marker]
    assert len(found) == 1, f"{path.name} has no single block after `<!-- {marker} -->`"
    return found[0]


def test_model_service_profile_gets_role_sessions_that_refresh(fresh_server_factory, tmp_path):
    kp = fresh_server_factory()
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(HOME=str(tmp_path), AWS_SHARED_CREDENTIALS_FILE=str(kp.creds_path), AWS_DEFAULT_REGION="us-east-1",
               PATH=f"{Path(aws_bin()).parent}{os.pathsep}{env.get('PATH', '')}")
    script = "set -euo pipefail\n" + block(JOBS_MD, "model-service").replace(DOC_ENDPOINT, kp.endpoint)
    cp = subprocess.run(["bash", "-c", script], env=env, cwd=work, capture_output=True, text=True, timeout=300,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"stdout: {cp.stdout[-3000:]}\nstderr: {cp.stderr[-3000:]}"
    assert ":assumed-role/model-reader/model-service" in cp.stdout, cp.stdout
    assert "b'weights\\n'" in cp.stdout, cp.stdout
    config = (work / "model-service-aws" / "config").read_text()
    assert "role_arn = arn:aws:iam::" in config and f"endpoint_url = {kp.endpoint}" in config

    # The refresh itself: with 15-minute sessions botocore is always inside its 15-minute refresh
    # window, so every request assumes the role again through the gateway's STS.
    (work / "model-service-aws" / "config").write_text(config + "duration_seconds = 900\n")
    probe = """
import boto3
from botocore.credentials import RefreshableCredentials
session = boto3.Session()
creds = session.get_credentials()
assert isinstance(creds, RefreshableCredentials), type(creds)
s3 = session.client("s3")
keys = set()
for _ in range(3):
    s3.get_object(Bucket="acmeco-serving-models", Key="llama/model.safetensors")["Body"].read()
    keys.add(creds.get_frozen_credentials().access_key)
print(sorted(keys))
assert len(keys) >= 2 and all(k.startswith("ASIA") for k in keys), keys
"""
    run_env = dict(env, AWS_CONFIG_FILE="model-service-aws/config",
                   AWS_SHARED_CREDENTIALS_FILE="model-service-aws/credentials", AWS_PROFILE="model-service")
    cp = subprocess.run([str(Path(aws_bin()).parent / "python3"), "-c", probe], env=run_env, cwd=work,
                        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, cp.stderr[-3000:]


def test_the_documented_simulator_input_runs(tmp_path):
    doc = SIMULATOR_MD.read_text(encoding="utf-8")
    given = block(SIMULATOR_MD, "simulator-input")
    path = tmp_path / "input.json"
    path.write_text(given)
    r = subprocess.run([str(keyhole_bin()), "policy", "simulate", str(path)], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["decision"] == "Allowed"
    # The documented output is the real one.
    shown = json.loads(doc.split("## Output", 1)[1].split("```json", 1)[1].split("```", 1)[0])
    assert got == shown, (got, shown)
    # Every input field the table documents is accepted, and an unknown one is refused by path.
    bad = json.loads(given)
    bad["request"]["acton"] = "s3:GetObject"
    path.write_text(json.dumps(bad))
    r = subprocess.run([str(keyhole_bin()), "policy", "simulate", str(path)], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "$.request.acton" in r.stderr, r.stderr
    for field in ("request.action", "request.resource", "request.principal", "request.resourceAccount",
                  "request.context", "identityPolicies", "resourcePolicy", "permissionBoundaries", "sessionPolicy",
                  "blockPublicAccess"):
        assert f"| `{field}` |" in doc, field
