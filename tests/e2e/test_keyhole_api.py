"""The keyhole API (SigV4 service `keyhole`, AWS JSON 1.1) refuses bad input clearly and changes
nothing: unknown actions, malformed JSON, oversized bodies, anonymous or badly signed calls,
unknown jobs (not revealed to callers without the right to ask)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from e2e_helpers import REGION
from test_iam import iam_client, new_user


def call(server, target: str, body: bytes, ak: str | None = None, sk: str | None = None,
         sign: bool = True) -> tuple[int, dict]:
    headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
    req = AWSRequest(method="POST", url=f"{server.endpoint}/", data=body, headers=headers)
    if sign:
        creds = Credentials(ak or server.access_key, sk or server.secret_key)
        botocore.auth.SigV4Auth(creds, "keyhole", REGION).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except json.JSONDecodeError:
            return e.code, {"raw": text.decode(errors="replace")}


def jobs(server) -> list:
    status, out = call(server, "Keyhole.ListJobs", b"{}")
    assert status == 200, out
    return out["Jobs"]


def test_bad_requests_get_json_errors_and_change_nothing(server):
    before = len(jobs(server))
    status, out = call(server, "Keyhole.DropAllJobs", b"{}")
    assert status == 400 and out["__type"] == "UnknownOperationException", out
    assert "Keyhole.CreateJob" in out["message"]
    status, out = call(server, "Keyhole.CreateJob", b"{not json")
    assert status == 400 and out["__type"] == "SerializationException", out
    status, out = call(server, "Keyhole.CreateJob", json.dumps({"name": "x", "reads": []}).encode())
    assert status == 400 and out["__type"] == "ValidationException" and "reads" in out["message"], out
    status, out = call(server, "Keyhole.CreateJob", json.dumps({"name": "x" * 1024, "read": ["s3://b/"]}).encode())
    assert status == 400 and "`name`" in out["message"], out
    status, out = call(server, "Keyhole.CreateJob", b"{" + b" " * (70 * 1024) + b"}")
    assert status in (400, 413), out
    # A field of the wrong type is named, with the form it takes (it named only `spec`).
    status, out = call(server, "Keyhole.CreateJob", json.dumps({"name": "x", "read": "s3://b/x/"}).encode())
    assert status == 400 and "`read`" in out["message"] and "list of strings" in out["message"], out
    status, out = call(server, "Keyhole.CreateJob", json.dumps({"name": "x", "labels": ["team"]}).encode())
    assert status == 400 and "`labels`" in out["message"], out
    status, out = call(server, "Keyhole.CreateJob", b'["read"]')
    assert status == 400 and "JSON object" in out["message"], out
    status, out = call(server, "Keyhole.GetJob", b"{}")
    assert status == 400 and "JobId" in out["message"], out
    assert len(jobs(server)) == before


def test_unsigned_and_forged_calls_are_refused(server):
    # Unsigned requests are routed by path (DESIGN.md section 1): `POST /` is then an S3 request,
    # which S3 does not allow.
    status, out = call(server, "Keyhole.ListJobs", b"{}", sign=False)
    assert status in (403, 405) and "Jobs" not in out, out
    status, out = call(server, "Keyhole.ListJobs", b"{}", sk="wrong" * 8)
    assert status == 403 and out["__type"] == "SignatureDoesNotMatch", out


def test_unknown_jobs_are_not_revealed_to_callers_without_the_right(server):
    status, out = call(server, "Keyhole.GetJob", json.dumps({"JobId": "no-such-job-123456"}).encode())
    assert status == 404 and out["__type"] == "ResourceNotFoundException", out
    _, ak, sk = new_user(iam_client(server))
    status, out = call(server, "Keyhole.GetJob", json.dumps({"JobId": "no-such-job-123456"}).encode(), ak, sk)
    assert status == 403 and out["__type"] == "AccessDenied" and "keyhole:GetJob" in out["message"], out
