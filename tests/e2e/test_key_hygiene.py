"""Key hygiene as IAM has it (issue 17, item 5): access keys' last use, the credential report,
`keyhole admin keys` and `max_key_age_days`, driven with aws-cli, boto3 and the keyhole CLI.

AWS pages the cases follow:
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccessKeyLastUsed.html
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_AccessKeyLastUsed.html ("N/A")
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_GenerateCredentialReport.html
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetCredentialReport.html
- https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html (columns)
- https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html

Each test runs on a gateway of its own (`fresh_server_factory`): `--enforce` deactivates keys,
and the credential report and `keyhole admin keys` cover every user of the account.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, AwsCli, keyhole_bin, make_client, remember_secrets

REPORT_COLUMNS = [
    "user", "arn", "user_creation_time", "password_enabled", "password_last_used",
    "password_last_changed", "password_next_rotation", "mfa_active",
    "access_key_1_active", "access_key_1_last_rotated", "access_key_1_last_used_date",
    "access_key_1_last_used_region", "access_key_1_last_used_service",
    "access_key_2_active", "access_key_2_last_rotated", "access_key_2_last_used_date",
    "access_key_2_last_used_region", "access_key_2_last_used_service",
    "cert_1_active", "cert_1_last_rotated", "cert_2_active", "cert_2_last_rotated",
]


def client(kp, service: str, ak: str | None = None, sk: str | None = None, token: str | None = None):
    root_ak, root_sk = kp.credentials()
    return boto3.session.Session().client(
        service, endpoint_url=kp.endpoint, region_name=REGION,
        aws_access_key_id=ak or root_ak, aws_secret_access_key=sk or root_sk, aws_session_token=token,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def new_user(iam, policy: dict | None = None) -> tuple[str, str, str]:
    name = f"u-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    return name, key["AccessKeyId"], key["SecretAccessKey"]


def allow(*actions: str, resource: str = "*") -> dict:
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}]}


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def aws_for(kp) -> AwsCli:
    return AwsCli(kp.endpoint, kp.creds_path)


def last_used_cli(kp, key: str) -> dict:
    """`aws iam get-access-key-last-used` as the root user."""
    return json.loads(aws_for(kp).ok("iam", "get-access-key-last-used", "--access-key-id", key).stdout)


def keyhole_cli(kp, *args: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    e.update(AWS_SHARED_CREDENTIALS_FILE=str(kp.creds_path), AWS_CONFIG_FILE="/dev/null", AWS_REGION=REGION,
             KEYHOLE_ENDPOINT=kp.endpoint)
    e.update(env)
    return subprocess.run([str(keyhole_bin()), *args], capture_output=True, text=True, timeout=120, env=e,
                          stdin=subprocess.DEVNULL)


def test_get_access_key_last_used_names_the_service_and_region_of_the_last_request(fresh_server_factory):
    """A new key is "N/A" (AccessKeyLastUsed page); after an S3 request it names `s3` and the
    region of the request's signature, after an IAM request `iam` (GetAccessKeyLastUsed page: "the
    AWS service and Region that were specified in the last request made with that key")."""
    kp = fresh_server_factory()
    iam = client(kp, "iam")
    name, ak, sk = new_user(iam, allow("s3:ListAllMyBuckets", "iam:GetUser"))
    fresh = last_used_cli(kp, ak)
    assert fresh == {"UserName": name, "AccessKeyLastUsed": {"ServiceName": "N/A", "Region": "N/A"}}

    make_client(kp.endpoint, ak, sk).list_buckets()
    after_s3 = iam.get_access_key_last_used(AccessKeyId=ak)
    assert after_s3["UserName"] == name
    used = after_s3["AccessKeyLastUsed"]
    assert (used["ServiceName"], used["Region"]) == ("s3", REGION)
    first = used["LastUsedDate"]

    client(kp, "iam", ak, sk).get_user()
    cli = last_used_cli(kp, ak)["AccessKeyLastUsed"]
    assert (cli["ServiceName"], cli["Region"]) == ("iam", REGION)
    assert cli["LastUsedDate"] >= first.strftime("%Y-%m-%dT%H:%M:%S")


def test_a_denied_request_counts_and_a_failed_signature_does_not(fresh_server_factory):
    """AWS records use of the key, not success: a request the policies deny is a use; a request
    whose signature does not verify was not made with the key."""
    kp = fresh_server_factory()
    iam = client(kp, "iam")
    _, ak, sk = new_user(iam)  # no policy: everything is denied
    wrong = make_client(kp.endpoint, ak, "x" * 40)
    with pytest.raises(ClientError) as e:
        wrong.list_buckets()
    assert code(e.value) == "SignatureDoesNotMatch"
    assert last_used_cli(kp, ak)["AccessKeyLastUsed"] == {"ServiceName": "N/A", "Region": "N/A"}

    with pytest.raises(ClientError) as e:
        make_client(kp.endpoint, ak, sk).list_buckets()
    assert code(e.value) == "AccessDenied"
    used = last_used_cli(kp, ak)["AccessKeyLastUsed"]
    assert (used["ServiceName"], used["Region"]) == ("s3", REGION) and "LastUsedDate" in used


def test_temporary_credentials_are_not_uses_of_the_long_term_key(fresh_server_factory):
    """GetSessionToken is signed with the long-term key (a use, service `sts`); requests signed
    with the session's own ASIA key are not requests made with the long-term key."""
    kp = fresh_server_factory()
    iam = client(kp, "iam")
    _, ak, sk = new_user(iam, allow("s3:ListAllMyBuckets", "sts:GetSessionToken"))
    creds = client(kp, "sts", ak, sk).get_session_token()["Credentials"]
    remember_secrets(creds["SecretAccessKey"], creds["SessionToken"])
    after_sts = last_used_cli(kp, ak)["AccessKeyLastUsed"]
    assert after_sts["ServiceName"] == "sts"
    s3 = client(kp, "s3", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    s3.list_buckets()
    assert last_used_cli(kp, ak)["AccessKeyLastUsed"] == after_sts


def test_get_access_key_last_used_is_authorized_on_the_key_owner(fresh_server_factory):
    """The action's resource is the owner's user ARN (service authorization reference): a user
    without iam:GetAccessKeyLastUsed is denied even for its own key, one allowed on its own user
    is denied another user's key; a key nobody owns is NoSuchEntity only for a caller allowed on
    every user; the root key is the root user's."""
    kp = fresh_server_factory()
    iam = client(kp, "iam")
    _, other_ak, _ = new_user(iam)
    name, ak, sk = new_user(iam)
    mine = client(kp, "iam", ak, sk)
    with pytest.raises(ClientError) as e:
        mine.get_access_key_last_used(AccessKeyId=ak)
    assert code(e.value) == "AccessDenied"
    assert "iam:GetAccessKeyLastUsed" in e.value.response["Error"]["Message"]

    account = kp.account_id()
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
        allow("iam:GetAccessKeyLastUsed", resource=f"arn:aws:iam::{account}:user/{name}")))
    assert mine.get_access_key_last_used(AccessKeyId=ak)["UserName"] == name
    for key in (other_ak, "AKIANOSUCHKEY0000000"):
        with pytest.raises(ClientError) as e:
            mine.get_access_key_last_used(AccessKeyId=key)
        assert code(e.value) == "AccessDenied", key

    with pytest.raises(ClientError) as e:
        iam.get_access_key_last_used(AccessKeyId="AKIANOSUCHKEY0000000")
    assert code(e.value) == "NoSuchEntity"
    root_ak, _ = kp.credentials()
    root = iam.get_access_key_last_used(AccessKeyId=root_ak)
    assert root["UserName"] == "root"
    assert root["AccessKeyLastUsed"]["ServiceName"] == "iam"


def read_report(content: bytes) -> list[dict]:
    rows = list(csv.reader(io.StringIO(content.decode())))
    assert rows[0] == REPORT_COLUMNS
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_credential_report_with_aws_cli_and_boto3(fresh_server_factory):
    """ReportNotPresent before one is generated; GenerateCredentialReport STARTED then COMPLETE
    (a report younger than four hours is current); the CSV has AWS's columns in AWS's order, the
    `<root_account>` row first, and what AWS writes for a user without password, MFA device or
    signing certificate."""
    kp = fresh_server_factory()
    aws = aws_for(kp)
    iam = client(kp, "iam")
    missing = aws("iam", "get-credential-report")
    assert missing.returncode != 0 and "ReportNotPresent" in missing.stderr, missing.stderr
    with pytest.raises(iam.exceptions.CredentialReportNotPresentException):
        iam.get_credential_report()

    name, ak, sk = new_user(iam, allow("s3:ListAllMyBuckets"))
    # Keys are numbered by creation time, kept to the second.
    time.sleep(1.1)
    second = iam.create_access_key(UserName=name)["AccessKey"]
    remember_secrets(second["SecretAccessKey"])
    iam.update_access_key(UserName=name, AccessKeyId=second["AccessKeyId"], Status="Inactive")
    keyless = f"nokey-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=keyless)
    make_client(kp.endpoint, ak, sk).list_buckets()

    started = json.loads(aws.ok("iam", "generate-credential-report").stdout)
    assert started == {"State": "STARTED", "Description": "No report exists. Starting a new report generation task"}
    assert iam.generate_credential_report()["State"] == "COMPLETE"

    got = json.loads(aws.ok("iam", "get-credential-report").stdout)
    assert got["ReportFormat"] == "text/csv"
    cli_rows = read_report(base64.b64decode(got["Content"]))
    report = iam.get_credential_report()
    assert report["ReportFormat"] == "text/csv"
    rows = read_report(report["Content"])
    assert rows == cli_rows

    account = kp.account_id()
    root = rows[0]
    assert root["user"] == "<root_account>" and root["arn"] == f"arn:aws:iam::{account}:root"
    assert (root["password_enabled"], root["password_last_changed"], root["password_next_rotation"]) == (
        "not_supported", "not_supported", "not_supported")
    assert root["access_key_1_active"] == "true"
    # The root user generated the report through IAM just before.
    assert root["access_key_1_last_used_service"] == "iam"

    by_user = {r["user"]: r for r in rows[1:]}
    assert set(by_user) == {name, keyless}
    u = by_user[name]
    assert u["arn"] == f"arn:aws:iam::{account}:user/{name}"
    assert (u["password_enabled"], u["password_last_used"], u["mfa_active"]) == ("false", "N/A", "false")
    assert u["access_key_1_active"] == "true" and u["access_key_1_last_rotated"].endswith("+00:00")
    assert (u["access_key_1_last_used_service"], u["access_key_1_last_used_region"]) == ("s3", REGION)
    assert u["access_key_1_last_used_date"].endswith("+00:00")
    # The second key is inactive and never used.
    assert [u[f"access_key_2_{c}"] for c in ("active", "last_rotated", "last_used_date", "last_used_region",
                                              "last_used_service")] == ["false", "N/A", "N/A", "N/A", "N/A"]
    assert [u[c] for c in ("cert_1_active", "cert_1_last_rotated", "cert_2_active", "cert_2_last_rotated")] == [
        "false", "N/A", "false", "N/A"]
    k = by_user[keyless]
    assert k["access_key_1_active"] == "false" and k["access_key_1_last_rotated"] == "N/A"


def test_credential_report_actions_need_their_permissions(fresh_server_factory):
    kp = fresh_server_factory()
    iam = client(kp, "iam")
    _, ak, sk = new_user(iam, allow("iam:GenerateCredentialReport"))
    user = client(kp, "iam", ak, sk)
    assert user.generate_credential_report()["State"] == "STARTED"
    with pytest.raises(ClientError) as e:
        user.get_credential_report()
    assert code(e.value) == "AccessDenied"
    assert "iam:GetCredentialReport" in e.value.response["Error"]["Message"]


def test_admin_keys_table_json_and_enforce(fresh_server_factory):
    """`keyhole admin keys`: a row per key with age and last use; `--max-age-days 0` flags every
    active key (exit status 3); `--enforce` deactivates them, a line per key, and the old key is
    then refused with InvalidAccessKeyId."""
    kp = fresh_server_factory()
    iam = client(kp, "iam")
    name, ak, sk = new_user(iam, allow("s3:ListAllMyBuckets"))
    make_client(kp.endpoint, ak, sk).list_buckets()
    idle_name, idle_ak, _ = new_user(iam)

    table = keyhole_cli(kp, "admin", "keys")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["USER", "ACCESS", "KEY"]
    row = next(line for line in lines if ak in line)
    assert row.split()[:5] == [name, ak, "Active", row.split()[3], "0"]
    assert f"s3 {REGION}" in row
    assert "never (N/A)" in next(line for line in lines if idle_ak in line)

    listed = keyhole_cli(kp, "admin", "keys", "--json", "--max-age-days", "1000")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    keys = {k["access_key_id"]: k for k in doc["keys"]}
    assert set(keys) == {ak, idle_ak}
    assert keys[ak]["last_used"]["service"] == "s3" and keys[ak]["last_used"]["region"] == REGION
    assert keys[idle_ak]["last_used"] is None and keys[idle_ak]["user"] == idle_name
    assert not any(k["over_max_age"] for k in keys.values()) and doc["active_over_max_age"] == 0

    # The bound from the environment (the variable `keyhole serve` reads too): every key is over 0 days.
    flagged = keyhole_cli(kp, "admin", "keys", KEYHOLE_MAX_KEY_AGE_DAYS="0")
    assert flagged.returncode == 3, flagged.stdout + flagged.stderr
    assert sum("OVER 0 DAYS" in line for line in flagged.stdout.splitlines()) == 2
    assert "2 active key(s) at least 0 days old" in flagged.stdout

    enforced = keyhole_cli(kp, "admin", "keys", "--max-age-days", "0", "--enforce")
    assert enforced.returncode == 0, enforced.stdout + enforced.stderr
    for key, user in ((ak, name), (idle_ak, idle_name)):
        assert f"deactivated {key} of user {user}" in enforced.stdout
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]}
    assert statuses == {ak: "Inactive"}
    with pytest.raises(ClientError) as e:
        make_client(kp.endpoint, ak, sk).list_buckets()
    assert code(e.value) == "InvalidAccessKeyId"
    again = keyhole_cli(kp, "admin", "keys", "--max-age-days", "0")
    assert again.returncode == 0 and "no active key is 0 days old or older" in again.stdout


def test_admin_keys_reads_every_page_of_users(fresh_server_factory):
    """ListUsers answers at most 1,000 users a call (MaxItems, then Marker:
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListUsers.html): `keyhole admin
    keys` follows the markers, so a key of the 1,001st user is in the report."""
    from concurrent.futures import ThreadPoolExecutor

    kp = fresh_server_factory()
    iam = client(kp, "iam")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: iam.create_user(UserName=f"bulk-{i:04d}"), range(1000)))
    last = "zz-last-user"
    iam.create_user(UserName=last)
    key = iam.create_access_key(UserName=last)["AccessKey"]["AccessKeyId"]
    listed = keyhole_cli(kp, "admin", "keys", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = {k["access_key_id"]: k["user"] for k in json.loads(listed.stdout)["keys"]}
    assert keys.get(key) == last, keys


def test_admin_keys_is_authorized_like_any_iam_call(fresh_server_factory, tmp_path):
    """The CLI goes through the IAM API with the caller's credentials: a user without
    iam:ListUsers is refused, naming the action."""
    kp = fresh_server_factory()
    _, ak, sk = new_user(client(kp, "iam"))
    creds = tmp_path / "creds"
    creds.write_text(f"[default]\naws_access_key_id = {ak}\naws_secret_access_key = {sk}\n")
    r = keyhole_cli(kp, "admin", "keys", AWS_SHARED_CREDENTIALS_FILE=str(creds))
    assert r.returncode == 1
    assert "AccessDenied" in r.stderr and "iam:ListUsers" in r.stderr


def test_admin_keys_help_teaches():
    r = subprocess.run([str(keyhole_bin()), "admin", "keys", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for words in ("--max-age-days", "--enforce", "KEYHOLE_MAX_KEY_AGE_DAYS", "exit status is 3",
                  "keyhole admin keys --max-age-days 90 --enforce"):
        assert words in r.stdout, words


def metric(kp, name: str) -> str | None:
    with urllib.request.urlopen(f"{kp.endpoint}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return line.split()[1]
    return None


def wait_for_metric(kp, name: str, timeout: float = 10.0) -> str | None:
    """The metric once the gateway's first count exported it (its task starts with the server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = metric(kp, name)
        if value is not None:
            return value
        time.sleep(0.1)
    return None


def test_max_key_age_days_warns_counts_and_never_deactivates(fresh_server_factory, tmp_path):
    """The gateway's `max_key_age_days` (here 0, so every active key is over it): a warning per
    active key at start, the count in /metrics, the key still works. Uses recorded before a
    clean stop survive it (the recorder writes its last batch at shutdown)."""
    base = tmp_path / "gw"
    kp = fresh_server_factory(base=base)
    iam = client(kp, "iam")
    _, ak, sk = new_user(iam, allow("s3:ListAllMyBuckets"))
    off_name, off_ak, _ = new_user(iam)
    iam.update_access_key(UserName=off_name, AccessKeyId=off_ak, Status="Inactive")
    make_client(kp.endpoint, ak, sk).list_buckets()
    assert metric(kp, "keyhole_access_keys_over_max_age") is None, "not exported without the setting"
    assert kp.stop() == 0

    kp.env["KEYHOLE_MAX_KEY_AGE_DAYS"] = "0"
    kp.start()
    assert wait_for_metric(kp, "keyhole_access_keys_over_max_age") == "1"
    warnings = [line for line in kp.stderr_text().splitlines() if "older than max_key_age_days" in line]
    assert len(warnings) == 1 and ak in warnings[0] and off_ak not in warnings[0], warnings
    make_client(kp.endpoint, ak, sk).list_buckets()
    used = last_used_cli(kp, ak)["AccessKeyLastUsed"]
    assert used["ServiceName"] == "s3"


def test_max_key_age_days_is_checked_at_start(tmp_path):
    data = tmp_path / "d"
    r = subprocess.run([str(keyhole_bin()), "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0",
                        "--max-key-age-days", "40000"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "max_key_age_days" in r.stderr and "0 to 36500" in r.stderr
    assert not data.exists()


@pytest.mark.parametrize("field", ["max_key_age_days = 30"])
def test_max_key_age_days_config_key(fresh_server_factory, tmp_path: Path, field: str):
    config = tmp_path / "keyhole.toml"
    config.write_text(field + "\n")
    kp = fresh_server_factory(extra_args=["--config", str(config)])
    assert wait_for_metric(kp, "keyhole_access_keys_over_max_age") == "0"


def test_two_nodes_on_postgres_agree_on_last_use_and_share_the_report(tmp_path):
    """Several nodes: each keeps its uses in memory and writes them every 2 s, newest wins, so a
    use on node A is seen on node B within the flush interval, a later use on B then wins on A,
    and the credential report generated on A is the one B serves (it is in the database)."""
    from conftest import start_server
    from multinode import within
    from pg_cluster import PgCluster

    cluster = PgCluster()
    nodes = []
    try:
        args = ["--state", cluster.url(), "--master-key-file", str(tmp_path / "master.key")]
        a = start_server(tmp_path / "a", extra_args=args)
        nodes.append(a)
        b = start_server(tmp_path / "b", extra_args=args)
        nodes.append(b)
        iam_a, iam_b = client(a, "iam"), client(b, "iam")
        name, ak, sk = new_user(iam_a, allow("s3:ListAllMyBuckets", "iam:GetUser"))

        def service_on(iam) -> str:
            return iam.get_access_key_last_used(AccessKeyId=ak)["AccessKeyLastUsed"]["ServiceName"]

        def known_on_b() -> bool:
            # Until the user and its key reach node B, B does not know the key (NoSuchEntity):
            # not in effect yet, not a failure.
            try:
                return service_on(iam_b) == "N/A"
            except ClientError as e:
                if e.response["Error"]["Code"] == "NoSuchEntity":
                    return False
                raise

        within("a user made on A", known_on_b)
        make_client(a.endpoint, ak, sk).list_buckets()
        assert service_on(iam_a) == "s3", "node A answers with its own pending use at once"
        took = within("a use on node A", lambda: service_on(iam_b) == "s3", limit=3.5)
        print(f"last use on A -> B: {took * 1000:.0f} ms")
        client(b, "iam", ak, sk).get_user()
        within("a later use on node B", lambda: service_on(iam_a) == "iam", limit=3.5)

        assert iam_a.generate_credential_report()["State"] == "STARTED"
        assert iam_b.generate_credential_report()["State"] == "COMPLETE"
        report_b = iam_b.get_credential_report()
        assert report_b["Content"] == iam_a.get_credential_report()["Content"]
        rows = read_report(report_b["Content"])
        assert [r["user"] for r in rows] == ["<root_account>", name]
    finally:
        for kp in nodes:
            kp.stop()
        cluster.destroy()


def test_a_browser_form_signed_with_a_key_is_a_use_of_it(fresh_server_factory):
    """A POST upload's policy is signed with the key (SigV4, service s3): a use of the key, like
    any request whose signature verified."""
    import requests

    kp = fresh_server_factory()
    iam = client(kp, "iam")
    bucket = f"kh-{uuid.uuid4().hex[:8]}"
    client(kp, "s3").create_bucket(Bucket=bucket)
    _, ak, sk = new_user(iam, allow("s3:PutObject", resource=f"arn:aws:s3:::{bucket}/*"))
    form = make_client(kp.endpoint, ak, sk).generate_presigned_post(bucket, "up/x", ExpiresIn=300)
    assert last_used_cli(kp, ak)["AccessKeyLastUsed"]["ServiceName"] == "N/A", "presigning sends nothing"
    files = [(k, (None, v)) for k, v in form["fields"].items()] + [("file", ("x.txt", b"hello", "text/plain"))]
    r = requests.post(form["url"], files=files, allow_redirects=False, timeout=60)
    assert r.status_code == 204, r.content
    used = last_used_cli(kp, ak)["AccessKeyLastUsed"]
    assert (used["ServiceName"], used["Region"]) == ("s3", REGION)


def test_admin_keys_enforce_never_deactivates_the_key_it_signs_with(fresh_server_factory, tmp_path):
    """Review 13: an operator's --enforce deactivated its own key halfway and then failed on every
    other key, saying nothing of what it had done. The caller's key is now skipped and named, the
    others are deactivated a line each, and the exit status says a key over the bound remains."""
    kp = fresh_server_factory()
    iam = client(kp, "iam")
    _, other_ak, _ = new_user(iam)
    ops_name, ops_ak, ops_sk = new_user(iam, allow("iam:*"))
    creds = tmp_path / "ops"
    creds.write_text(f"[default]\naws_access_key_id = {ops_ak}\naws_secret_access_key = {ops_sk}\n")
    r = keyhole_cli(kp, "admin", "keys", "--max-age-days", "0", "--enforce",
                    AWS_SHARED_CREDENTIALS_FILE=str(creds))
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"deactivated {other_ak}" in r.stdout
    assert f"{ops_ak} (user {ops_name}) is the key this command signs with" in r.stderr
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=ops_name)["AccessKeyMetadata"]}
    assert statuses == {ops_ak: "Active"}
