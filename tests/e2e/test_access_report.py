"""Least privilege from observed access, for any principal (issue 17, item 3):
`keyhole access report --principal ARN` and `keyhole access unused`, driven with boto3, aws-cli
and the keyhole CLI against a gateway of its own.

The scenario is the README's: the `slm-reader` user with the README's own `slm-readonly.json`
policy (read from README.md), which lists and reads `prompts/` and `embeddings/` of
`acmeco-slm-data`. The reader uses one of its two keys, is denied twice, assumes one of the two
roles it may assume, and the role writes. The proposed minimal policies are then fed to
`keyhole policy simulate`: every pair that was used is allowed, every pair that was denied or not
used is not.

AWS pages the semantics follow:
- https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids
  (a user deleted and created again is another principal: events are matched by principalId)
- https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_last-accessed.html
  (last-accessed information: what was used, to remove what was not)
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccessKeyLastUsed.html
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, AwsCli, keyhole_bin, make_client, remember_secrets

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "acmeco-slm-data"


def readme_reader_policy() -> dict:
    """The `slm-readonly.json` the README's `reader` block writes."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"cat > slm-readonly\.json <<'EOF'\n(.*?)\nEOF\n", text, re.S)
    assert m, "README.md no longer writes slm-readonly.json"
    return json.loads(m.group(1))


def client(kp, service: str, ak: str | None = None, sk: str | None = None, token: str | None = None):
    root_ak, root_sk = kp.credentials()
    return boto3.session.Session().client(
        service, endpoint_url=kp.endpoint, region_name=REGION,
        aws_access_key_id=ak or root_ak, aws_secret_access_key=sk or root_sk, aws_session_token=token,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def keyhole(kp, *args: str, creds: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds or kp.creds_path), AWS_CONFIG_FILE="/dev/null",
               AWS_REGION=REGION, KEYHOLE_ENDPOINT=kp.endpoint)
    return subprocess.run([str(keyhole_bin()), *args], capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def flat(text: str) -> str:
    """An error as one line (miette wraps and frames long messages)."""
    return " ".join(text.replace("│", " ").split())


def report(kp, arn: str, *extra: str) -> dict:
    cp = keyhole(kp, "access", "report", "--principal", arn, "--format", "json", *extra)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def simulate(tmp: Path, policy: dict, principal: str, action: str, resource: str, *context: str) -> int:
    """`keyhole policy simulate` of the proposed policy: 0 allowed, 2 implicitly denied."""
    path = tmp / f"min-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(policy))
    args = [str(keyhole_bin()), "policy", "simulate", "--policy", str(path), "--principal", principal,
            "--action", action, "--resource", resource]
    for c in context:
        args += ["--context", c]
    cp = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert cp.returncode in (0, 2, 3), cp.stderr
    return cp.returncode


@pytest.fixture
def scenario(fresh_server_factory, tmp_path):
    """The README's reader at work: returns what it did, with the gateway."""
    kp = fresh_server_factory()
    iam, s3 = client(kp, "iam"), client(kp, "s3")
    account = kp.account_id()
    s3.create_bucket(Bucket=BUCKET)
    for key in ["prompts/p-0001.jsonl", "prompts/p-0002.jsonl", "embeddings/e-0001.npy"]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")

    user = iam.create_user(UserName="slm-reader")["User"]
    iam.put_user_policy(UserName="slm-reader", PolicyName="slm-readonly",
                        PolicyDocument=json.dumps(readme_reader_policy()))
    used_key = iam.create_access_key(UserName="slm-reader")["AccessKey"]
    spare_key = iam.create_access_key(UserName="slm-reader")["AccessKey"]
    remember_secrets(used_key["SecretAccessKey"], spare_key["SecretAccessKey"])

    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}]}
    role_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": f"arn:aws:s3:::{BUCKET}/out/*"}]}
    roles = {}
    for name in ["slm-writer", "slm-unused"]:
        roles[name] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        iam.put_role_policy(RoleName=name, PolicyName="write-out", PolicyDocument=json.dumps(role_policy))

    reader = make_client(kp.endpoint, used_key["AccessKeyId"], used_key["SecretAccessKey"])
    listed = reader.list_objects_v2(Bucket=BUCKET, Prefix="prompts/")
    assert [o["Key"] for o in listed["Contents"]] == ["prompts/p-0001.jsonl", "prompts/p-0002.jsonl"]
    assert reader.get_object(Bucket=BUCKET, Key="prompts/p-0001.jsonl")["Body"].read() == b"x"
    denied = []
    with pytest.raises(ClientError) as e:
        reader.put_object(Bucket=BUCKET, Key="prompts/mine.jsonl", Body=b"y")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    denied.append(("s3:PutObject", f"arn:aws:s3:::{BUCKET}/prompts/mine.jsonl"))
    with pytest.raises(ClientError) as e:
        reader.list_objects_v2(Bucket=BUCKET)  # no prefix: the s3:prefix condition fails
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    denied.append(("s3:ListBucket", f"arn:aws:s3:::{BUCKET}"))

    # The reader assumes the writer role with aws-cli and writes with the session.
    creds_file = tmp_path / "reader-credentials"
    creds_file.write_text(f"[default]\naws_access_key_id = {used_key['AccessKeyId']}\n"
                          f"aws_secret_access_key = {used_key['SecretAccessKey']}\n")
    aws = AwsCli(kp.endpoint, creds_file)
    session = json.loads(aws.ok("sts", "assume-role", "--role-arn", roles["slm-writer"]["Arn"],
                                "--role-session-name", "nightly").stdout)["Credentials"]
    remember_secrets(session["SecretAccessKey"], session["SessionToken"])
    src = tmp_path / "a.txt"
    src.write_text("out")
    aws.ok("s3", "cp", str(src), f"s3://{BUCKET}/out/run-1/a.txt", extra_env={
        "AWS_ACCESS_KEY_ID": session["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": session["SecretAccessKey"],
        "AWS_SESSION_TOKEN": session["SessionToken"]})
    return {"kp": kp, "account": account, "user": user, "used_key": used_key, "spare_key": spare_key,
            "roles": roles, "denied": denied, "reader_creds": creds_file}


def test_a_users_report_shows_use_attempts_unused_grants_and_a_minimal_policy(scenario, tmp_path):
    kp, user, roles = scenario["kp"], scenario["user"], scenario["roles"]
    r = report(kp, user["Arn"], "--since", "1h")
    assert r["principal"] == {"arn": user["Arn"], "type": "user", "id": user["UserId"],
                              "created": r["principal"]["created"]}
    assert r["source"]["complete"] is True
    used = {a["action"]: a["count"] for a in r["actionsUsed"]}
    assert used == {"s3:ListBucket": 1, "s3:GetObject": 1, "sts:AssumeRole": 1}, r["actionsUsed"]
    [bucket] = r["buckets"]
    assert (bucket["bucket"], bucket["prefix"], bucket["objects"], bucket["lists"]) == (BUCKET, "prompts/", 1, 1)

    # Denied requests are attempts, with the check that denied them; never use.
    assert r["denied"]["count"] == 2
    assert {(d["action"], d["resource"]) for d in r["denied"]["attempts"]} == set(scenario["denied"])

    # The README policy grants ListBucket and GetObject, both used; embeddings/ never was.
    assert r["unusedActions"] == []
    assert [u["resource"] for u in r["unusedResources"]] == [f"arn:aws:s3:::{BUCKET}/embeddings/*"]

    keys = {k["accessKeyId"]: k for k in r["accessKeys"]}
    assert keys[scenario["used_key"]["AccessKeyId"]]["usedInWindow"] is True
    assert keys[scenario["used_key"]["AccessKeyId"]]["lastUsed"]
    assert keys[scenario["spare_key"]["AccessKeyId"]]["usedInWindow"] is False
    assert keys[scenario["spare_key"]["AccessKeyId"]]["lastUsed"] is None
    assert [x["role"] for x in r["rolesAssumed"]] == [roles["slm-writer"]["Arn"]]
    assert r["rolesNeverAssumed"] == [roles["slm-unused"]["Arn"]]

    # The proposed policy allows exactly what was used.
    policy, arn = r["minimalPolicy"], user["Arn"]
    allowed = [
        ("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", "s3:prefix=prompts/"),
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/prompts/p-0001.jsonl", None),
        ("sts:AssumeRole", roles["slm-writer"]["Arn"], None),
    ]
    for action, resource, ctx in allowed:
        assert simulate(tmp_path, policy, arn, action, resource, *([ctx] if ctx else [])) == 0, (action, policy)
    not_used = [
        *[(a, res, None) for a, res in scenario["denied"]],
        ("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", "s3:prefix=embeddings/"),
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/prompts/p-0002.jsonl", None),
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/embeddings/e-0001.npy", None),
        ("sts:AssumeRole", roles["slm-unused"]["Arn"], None),
    ]
    for action, resource, ctx in not_used:
        assert simulate(tmp_path, policy, arn, action, resource, *([ctx] if ctx else [])) == 2, (action, resource)

    text = keyhole(kp, "access", "report", "--principal", user["Arn"], "--since", "1h")
    assert text.returncode == 0, text.stderr
    assert f"{scenario['spare_key']['AccessKeyId']} Active" in text.stdout
    assert "UNUSED in the window" in text.stdout
    assert f"roles it may assume and never did: {roles['slm-unused']['Arn']}" in text.stdout
    assert "minimal policy" in text.stdout and "s3:PutObject on arn:aws:s3:::" in text.stdout


def test_a_roles_report_counts_its_sessions_and_what_it_was_granted_and_did_not_use(scenario, tmp_path):
    kp, roles = scenario["kp"], scenario["roles"]
    writer = roles["slm-writer"]
    r = report(kp, writer["Arn"])
    assert r["principal"]["type"] == "role" and r["principal"]["id"] == writer["RoleId"]
    assert r["assumed"]["count"] == 1 and r["sessions"] == ["nightly"]
    assert {a["action"] for a in r["actionsUsed"]} == {"s3:PutObject"}
    assert r["unusedActions"] == ["s3:GetObject"]
    policy = r["minimalPolicy"]
    session_arn = f"arn:aws:sts::{scenario['account']}:assumed-role/slm-writer/nightly"
    assert simulate(tmp_path, policy, session_arn, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/out/run-1/a.txt") == 0
    assert simulate(tmp_path, policy, session_arn, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/out/run-1/a.txt") == 2
    assert simulate(tmp_path, policy, session_arn, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/out/run-2/a.txt") == 2

    idle = report(kp, roles["slm-unused"]["Arn"])
    assert idle["requests"] == 0 and idle["assumed"]["count"] == 0
    assert idle["minimalPolicy"]["Statement"] == []


def test_unused_lists_users_roles_and_keys_unused_in_the_window(scenario):
    kp = scenario["kp"]
    iam = client(kp, "iam")
    iam.create_user(UserName="idle")
    idle_key = iam.create_access_key(UserName="idle")["AccessKey"]
    remember_secrets(idle_key["SecretAccessKey"])
    cp = keyhole(kp, "access", "unused", "--since", "1h", "--format", "json")
    assert cp.returncode == 0, cp.stderr
    u = json.loads(cp.stdout)
    users = {e["arn"].rsplit("/", 1)[1]: e for e in u["users"]}
    assert users["idle"]["unused"] is True and users["slm-reader"]["unused"] is False
    roles = {e["arn"].rsplit("/", 1)[1]: e for e in u["roles"]}
    assert roles["slm-unused"]["unused"] is True and roles["slm-writer"]["unused"] is False
    assert roles["slm-writer"]["unusedActions"] == ["s3:GetObject"]
    assert {k["accessKeyId"] for k in u["unusedKeys"]} == {
        scenario["spare_key"]["AccessKeyId"], idle_key["AccessKeyId"]}

    text = keyhole(kp, "access", "unused", "--since", "1h")
    assert text.returncode == 0, text.stderr
    assert re.search(r"user/idle\s+UNUSED", text.stdout), text.stdout
    assert f"{idle_key['AccessKeyId']} of arn:aws:iam::{scenario['account']}:user/idle" in text.stdout


def test_a_user_created_again_under_the_same_name_starts_with_no_history(fresh_server_factory):
    """Events are matched by principalId: the new `temp` is not the deleted one."""
    kp = fresh_server_factory()
    iam = client(kp, "iam")
    iam.create_user(UserName="temp")
    key = iam.create_access_key(UserName="temp")["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    with pytest.raises(ClientError):
        make_client(kp.endpoint, key["AccessKeyId"], key["SecretAccessKey"]).list_buckets()
    first = iam.get_user(UserName="temp")["User"]
    assert report(kp, first["Arn"])["requests"] == 1
    iam.delete_access_key(UserName="temp", AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName="temp")
    again = iam.create_user(UserName="temp")["User"]
    assert again["Arn"] == first["Arn"] and again["UserId"] != first["UserId"]
    r = report(kp, again["Arn"])
    assert (r["requests"], r["denied"]["count"], r["principal"]["id"]) == (0, 0, again["UserId"])


def test_bad_input_and_callers_without_the_permission_are_refused(scenario):
    kp = scenario["kp"]
    cp = keyhole(kp, "access", "report", "--principal", "alice")
    assert cp.returncode != 0 and "--principal `alice` is not the ARN of a user or role" in flat(cp.stderr), cp.stderr
    cp = keyhole(kp, "access", "report", "--principal", scenario["user"]["Arn"], "--since", "last week")
    assert cp.returncode != 0 and "--since: `last week` is not a time" in flat(cp.stderr), cp.stderr
    # Another account's user: the gateway names the field and the account it serves.
    cp = keyhole(kp, "access", "report", "--principal", "arn:aws:iam::000000000000:user/slm-reader")
    assert cp.returncode != 0 and f"is not of this gateway's account {scenario['account']}" in flat(cp.stderr), cp.stderr
    cp = keyhole(kp, "access", "report", "--principal", f"arn:aws:iam::{scenario['account']}:user/slm-*")
    assert cp.returncode != 0 and "has a wildcard: name one user or role" in flat(cp.stderr), cp.stderr
    cp = keyhole(kp, "access", "report", "--principal", f"arn:aws:iam::{scenario['account']}:user/nobody")
    assert cp.returncode != 0 and "There is no user or role" in flat(cp.stderr), cp.stderr
    # The reader's policy does not allow keyhole:GetAccessReport: the authorize stage refuses.
    cp = keyhole(kp, "access", "report", "--principal", scenario["user"]["Arn"], creds=scenario["reader_creds"])
    assert cp.returncode != 0 and "keyhole:GetAccessReport" in flat(cp.stderr), cp.stderr
    cp = keyhole(kp, "access", "unused", creds=scenario["reader_creds"])
    assert cp.returncode != 0 and "keyhole:ListUnusedAccess" in flat(cp.stderr), cp.stderr


def test_keys_that_look_like_wildcards_are_granted_as_themselves(fresh_server_factory, tmp_path):
    """Review 14: a writer that stored `team/*`, `team/?` and `team/${aws:username}/x` got a
    "minimal" policy granting every object under `team/`. The keys are now escaped (`${*}`,
    `${?}`, `${$}`: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html,
    "Special characters"), so the policy allows those objects and no other; a future `--since` is
    refused instead of calling everything unused; the text output escapes control characters."""
    kp = fresh_server_factory()
    iam, s3 = client(kp, "iam"), client(kp, "s3")
    account = kp.account_id()
    s3.create_bucket(Bucket="data")
    arn = iam.create_user(UserName="writer")["User"]["Arn"]
    iam.put_user_policy(UserName="writer", PolicyName="rw", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "arn:aws:s3:::data/*"},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::data/home/${aws:username}/*"}]}))
    key = iam.create_access_key(UserName="writer")["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    w = make_client(kp.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    used = ["team/*", "team/?", "team/${aws:username}/x", "home/writer/y", "team/e\x1b[31mRED\n  forged"]
    for k in used:
        w.put_object(Bucket="data", Key=k, Body=b"x")

    r = report(kp, arn, "--since", "1h")
    policy = r["minimalPolicy"]
    for k in used:
        assert simulate(tmp_path, policy, arn, "s3:PutObject", f"arn:aws:s3:::data/{k}") == 0, k
    for other in ["team/secret", "team/x", "team/writer/x", "tea/m"]:
        assert simulate(tmp_path, policy, arn, "s3:PutObject", f"arn:aws:s3:::data/{other}") != 0, (other, policy)
    # The home folder (a policy variable) was used by home/writer/y: not an unused resource.
    assert not [u for u in r["unusedResources"] if "${aws:username}" in u["resource"]], r["unusedResources"]

    text = keyhole(kp, "access", "report", "--principal", arn, "--since", "1h")
    assert text.returncode == 0, text.stderr
    assert "\x1b" not in text.stdout and "\n  forged" not in text.stdout, text.stdout
    assert "\\u{1b}" in text.stdout or "\\u001b" in text.stdout, text.stdout  # shown, escaped

    future = keyhole(kp, "access", "unused", "--since", "2099-01-01")
    assert future.returncode != 0 and "past" in flat(future.stderr), future.stderr
