"""Browser-form POST uploads (issue 12): a web page uploads straight to keyhole with a form that
boto3's `generate_presigned_post` signed, posted here with `requests` as a browser would.

AWS's rules followed (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-UsingHTTPPOST.html,
sigv4-HTTPPOSTConstructPolicy.html, RESTObjectPOST.html): the policy is the string to sign; every
field but `policy`, `x-amz-signature`, `file` and `x-ignore-*` must be covered by a condition;
`content-length-range` bounds the file; `success_action_status` 200/201/204 and
`success_action_redirect` shape the answer; the upload is authorized as `s3:PutObject` (plus
`s3:PutObjectTagging` / `s3:PutObjectAcl` when the form sets tags or an ACL), exactly as a
PutObject by the same signer would be.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import boto3
import botocore.config
import pytest
import requests

from e2e_helpers import REGION, make_client, remember_secrets, wait_for_events, xml_text
from test_iam import iam_client, new_user
from test_jobs import _assumable_role, keyhole


def post(presigned: dict, data: bytes, extra: dict | None = None, filename: str = "photo.jpg",
         drop: tuple[str, ...] = ()) -> requests.Response:
    """Posts the form as a browser does: the fields in order, then the file last."""
    fields = {k: v for k, v in presigned["fields"].items() if k not in drop}
    fields.update(extra or {})
    files = [(k, (None, v)) for k, v in fields.items()] + [("file", (filename, data, "image/jpeg"))]
    return requests.post(presigned["url"], files=files, allow_redirects=False, timeout=60)


def error(r: requests.Response) -> tuple[int, str | None, str | None]:
    return r.status_code, xml_text(r.content, "Code"), xml_text(r.content, "Message")


def test_a_presigned_post_uploads_the_file_with_its_metadata(server, s3, bucket):
    p = s3.generate_presigned_post(
        bucket, "docs/report.txt",
        Fields={"Content-Type": "text/plain", "x-amz-meta-color": "red", "success_action_status": "201"},
        Conditions=[{"Content-Type": "text/plain"}, {"x-amz-meta-color": "red"}, {"success_action_status": "201"}],
        ExpiresIn=300)
    r = post(p, b"hello from a browser")
    assert r.status_code == 201, r.content
    assert xml_text(r.content, "Bucket") == bucket and xml_text(r.content, "Key") == "docs/report.txt"
    got = s3.get_object(Bucket=bucket, Key="docs/report.txt")
    assert got["Body"].read() == b"hello from a browser"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"color": "red"}
    assert xml_text(r.content, "ETag") == got["ETag"] == r.headers["ETag"]
    assert r.headers["Location"].endswith(f"/{bucket}/docs/report.txt")
    # Audited like any request: a PostObject by the root user, allowed as s3:PutObject.
    events = wait_for_events(server.data_dir, lambda es: any(
        e["eventName"] == "PostObject" and e.get("stage") == "completed"
        and e["requestParameters"].get("key") == "docs/report.txt" for e in es))
    done = [e for e in events if e["eventName"] == "PostObject" and e.get("stage") == "completed"
            and e["requestParameters"].get("key") == "docs/report.txt"][-1]
    assert done["decision"] == "Allow" and done["httpStatus"] == 201
    assert [c["action"] for c in done["authorization"]] == ["s3:PutObject"]


def test_default_answer_is_204_and_200_is_empty(s3, bucket):
    p = s3.generate_presigned_post(bucket, "a", ExpiresIn=300)
    r = post(p, b"x")
    assert r.status_code == 204 and r.content == b"", r.content
    p = s3.generate_presigned_post(bucket, "b", Fields={"success_action_status": "200"},
                                   Conditions=[{"success_action_status": "200"}], ExpiresIn=300)
    r = post(p, b"y")
    assert r.status_code == 200 and r.content == b""
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"y"


@pytest.mark.upstream_gap(["moto"], "moto 5.2.5 keeps no checksum a PutObject sends without x-amz-sdk-checksum-algorithm")
def test_a_form_checksum_is_checked_and_kept_as_the_objects(s3, bucket):
    """A form's `x-amz-checksum-crc32` field is checked against the file and kept as the
    object's checksum, as a PutObject's header is
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html);
    it used to be checked and then replaced by one keyhole computed (a conformance sweep)."""
    import zlib
    data = b"checked form file"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    p = s3.generate_presigned_post(bucket, "crc", Fields={"x-amz-checksum-crc32": crc},
                                   Conditions=[{"x-amz-checksum-crc32": crc}], ExpiresIn=300)
    r = post(p, data)
    assert r.status_code == 204, r.content
    got = s3.head_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc, got
    bad = base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode()
    p = s3.generate_presigned_post(bucket, "crc2", Fields={"x-amz-checksum-crc32": bad},
                                   Conditions=[{"x-amz-checksum-crc32": bad}], ExpiresIn=300)
    r = post(p, data)
    assert error(r)[:2] == (400, "BadDigest"), r.content


def test_filename_substitution_and_redirect(s3, bucket):
    target = "http://app.example/done?from=form"
    p = s3.generate_presigned_post(
        bucket, "uploads/${filename}", Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}], ExpiresIn=300)
    r = post(p, b"image bytes", filename="cat.jpg")
    assert r.status_code == 303, r.content
    loc = r.headers["Location"]
    assert loc.startswith(target + "&bucket=" + bucket) and "key=uploads%2Fcat.jpg" in loc, loc
    assert "etag=%22" in loc
    assert s3.get_object(Bucket=bucket, Key="uploads/cat.jpg")["Body"].read() == b"image bytes"


def test_a_user_without_put_object_on_the_key_is_denied(server, bucket):
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/allowed/*"}]})
    user = make_client(server.endpoint, ak, sk)
    ok = post(user.generate_presigned_post(bucket, "allowed/x", ExpiresIn=300), b"fine")
    assert ok.status_code == 204, ok.content
    denied = post(user.generate_presigned_post(bucket, "other/x", ExpiresIn=300), b"no")
    status, code, message = error(denied)
    assert (status, code) == (403, "AccessDenied") and "s3:PutObject" in message, message
    events = wait_for_events(server.data_dir, lambda es: any(
        e["eventName"] == "PostObject" and e["requestParameters"].get("key") == "other/x" for e in es))
    ev = [e for e in events if e["eventName"] == "PostObject" and e["requestParameters"].get("key") == "other/x"][-1]
    assert ev["decision"] == "Deny" and ev["userIdentity"]["accessKeyId"] == ak
    assert make_client(server.endpoint, server.access_key, server.secret_key).list_objects_v2(
        Bucket=bucket, Prefix="other/").get("KeyCount") == 0


def test_a_field_no_condition_covers_is_refused(s3, bucket):
    p = s3.generate_presigned_post(bucket, "k", ExpiresIn=300)
    status, code, message = error(post(p, b"x", extra={"x-amz-meta-sneaky": "1"}))
    assert (status, code) == (403, "AccessDenied")
    assert message == "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky"
    # x-ignore-* fields need no condition.
    assert post(p, b"x", extra={"x-ignore-tracking": "1"}).status_code == 204
    # A condition the form does not meet.
    p = s3.generate_presigned_post(bucket, "k", Fields={"Content-Type": "image/png"},
                                   Conditions=[["starts-with", "$Content-Type", "image/"]], ExpiresIn=300)
    status, code, message = error(post(p, b"x", extra={"Content-Type": "text/html"}))
    assert (status, code) == (403, "AccessDenied") and "Policy Condition failed" in message, message
    assert post(p, b"x", extra={"Content-Type": "image/gif"}).status_code == 204


def test_an_expired_policy_is_refused(s3, bucket):
    p = s3.generate_presigned_post(bucket, "late", ExpiresIn=1)
    time.sleep(2.1)
    status, code, message = error(post(p, b"x"))
    assert (status, code, message) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")


def test_a_tampered_policy_does_not_match_its_signature(s3, bucket):
    p = s3.generate_presigned_post(bucket, "mine/k", Conditions=[["starts-with", "$key", "mine/"]], ExpiresIn=300)
    doc = json.loads(base64.b64decode(p["fields"]["policy"]))
    doc["conditions"] = [c for c in doc["conditions"] if not (isinstance(c, list) and c[0] == "starts-with")]
    doc["conditions"].append(["starts-with", "$key", ""])
    forged = base64.b64encode(json.dumps(doc).encode()).decode()
    status, code, _ = error(post(p, b"x", extra={"policy": forged, "key": "theirs/k"}))
    assert (status, code) == (403, "SignatureDoesNotMatch")
    with pytest.raises(Exception):
        s3.head_object(Bucket=bucket, Key="theirs/k")
    # Missing signature fields are named.
    status, code, message = error(post(p, b"x", drop=("x-amz-signature",)))
    assert (status, code) == (400, "InvalidArgument") and "'x-amz-signature'" in message


def test_a_revoked_session_cannot_post(server, s3, bucket):
    sts, role, arn = _assumable_role(server)
    iam_client(server).put_role_policy(RoleName=role, PolicyName="put", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject",
                                                "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="uploader")["Credentials"]
    remember_secrets(creds["SecretAccessKey"], creds["SessionToken"])
    session = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
        config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    p = session.generate_presigned_post(bucket, "by-session", ExpiresIn=300)
    assert "x-amz-security-token" in p["fields"]
    assert post(p, b"first").status_code == 204
    r = keyhole(server, "admin", "revoke-session", creds["AccessKeyId"])
    assert r.returncode == 0, r.stderr
    status, code, _ = error(post(p, b"second"))
    assert (status, code) == (400, "InvalidToken")
    assert s3.get_object(Bucket=bucket, Key="by-session")["Body"].read() == b"first"


def test_content_length_range_bounds_the_file(s3, bucket):
    p = s3.generate_presigned_post(bucket, "sized", Conditions=[["content-length-range", 2, 10]], ExpiresIn=300)
    status, code, _ = error(post(p, b"x" * 11))
    assert (status, code) == (400, "EntityTooLarge")
    status, code, _ = error(post(p, b"x"))
    assert (status, code) == (400, "EntityTooSmall")
    with pytest.raises(Exception):
        s3.head_object(Bucket=bucket, Key="sized")
    assert post(p, b"x" * 10).status_code == 204
    assert s3.head_object(Bucket=bucket, Key="sized")["ContentLength"] == 10


def test_block_public_access_refuses_a_public_read_acl_field(server, s3, bucket):
    p = s3.generate_presigned_post(bucket, "public", Fields={"acl": "public-read"},
                                   Conditions=[{"acl": "public-read"}], ExpiresIn=300)
    r = post(p, b"x")
    status, code, message = error(r)
    assert (status, code) == (403, "AccessDenied") and "BlockPublicAcls" in message, message
    # The trail records the refusal as a denial of the ACL (review 11: it said Allow).
    rid = r.headers["x-amz-request-id"]
    events = wait_for_events(server.data_dir, lambda es: any(
        e.get("requestID") == rid and e.get("stage") == "completed" for e in es))
    event = next(e for e in events if e.get("requestID") == rid and e.get("stage") == "completed")
    assert event["decision"] == "Deny", event
    assert any(c["action"] == "s3:PutObjectAcl" and c["decision"] == "Deny" for c in event["authorization"])
    # An owner-only ACL is accepted, and is decided on s3:PutObjectAcl too.
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    user = make_client(server.endpoint, ak, sk)
    p = user.generate_presigned_post(bucket, "owned", Fields={"acl": "bucket-owner-full-control"},
                                     Conditions=[{"acl": "bucket-owner-full-control"}], ExpiresIn=300)
    status, code, message = error(post(p, b"x"))
    assert (status, code) == (403, "AccessDenied") and "s3:PutObjectAcl" in message, message
    p = s3.generate_presigned_post(bucket, "owned", Fields={"acl": "bucket-owner-full-control"},
                                   Conditions=[{"acl": "bucket-owner-full-control"}], ExpiresIn=300)
    assert post(p, b"x").status_code == 204


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not implement object tagging (NotImplemented)")
def test_the_tagging_field_sets_tags_and_needs_put_object_tagging(server, s3, bucket):
    tagging = "<Tagging><TagSet><Tag><Key>class</Key><Value>public data</Value></Tag></TagSet></Tagging>"
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/class": "internal"}}}]})
    user = make_client(server.endpoint, ak, sk)
    p = user.generate_presigned_post(bucket, "tagged", Fields={"tagging": tagging},
                                     Conditions=[{"tagging": tagging}], ExpiresIn=300)
    status, code, message = error(post(p, b"x"))
    assert (status, code) == (403, "AccessDenied") and "s3:PutObjectTagging" in message, message
    internal = tagging.replace("public data", "internal")
    p = user.generate_presigned_post(bucket, "tagged", Fields={"tagging": internal},
                                     Conditions=[{"tagging": internal}], ExpiresIn=300)
    assert post(p, b"x").status_code == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="tagged")["TagSet"] == [{"Key": "class", "Value": "internal"}]


def test_anonymous_and_sigv2_forms(server, s3, bucket):
    url = f"{server.endpoint}/{bucket}"
    # No policy: an anonymous upload, which nothing grants here.
    r = requests.post(url, files=[("key", (None, "anon")), ("file", ("f", b"x"))], timeout=30)
    assert error(r)[:2] == (403, "AccessDenied")
    events = wait_for_events(server.data_dir, lambda es: any(
        e["eventName"] == "PostObject" and e["requestParameters"].get("key") == "anon" for e in es))
    assert [e for e in events if e["requestParameters"].get("key") == "anon"][-1]["userIdentity"]["type"] == \
        "AnonymousPrincipal"
    # SigV2 (AWSAccessKeyId + signature): refused as S3 refuses it for buckets made after June 2020.
    r = requests.post(url, files=[("key", (None, "v2")), ("AWSAccessKeyId", (None, server.access_key)),
                                  ("policy", (None, "e30=")), ("signature", (None, "abc=")),
                                  ("file", ("f", b"x"))], timeout=30)
    status, code, message = error(r)
    assert (status, code) == (400, "InvalidRequest") and "AWS4-HMAC-SHA256" in message
    # No file field at all.
    r = requests.post(url, files=[("key", (None, "nofile")), ("x", (None, "y"))], timeout=30)
    assert error(r)[:2] == (400, "InvalidArgument")


def test_fields_before_the_file_are_bounded(server, s3, bucket):
    p = s3.generate_presigned_post(bucket, "big-head", ExpiresIn=300)
    status, code, _ = error(post(p, b"x", extra={"x-ignore-padding": "p" * (25 * 1024)}))
    assert (status, code) == (400, "MaxPostPreDataLengthExceeded")


def test_a_large_file_streams_through(server, s3, bucket):
    """8 MiB through the form: stored whole, with the ETag of its bytes."""
    import hashlib
    data = uuid.uuid4().bytes * (8 * 1024 * 1024 // 16)
    p = s3.generate_presigned_post(bucket, "large", ExpiresIn=300)
    r = post(p, data)
    assert r.status_code == 204, r.content
    assert r.headers["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"'
    assert s3.head_object(Bucket=bucket, Key="large")["ContentLength"] == len(data)


def test_virtual_host_style_post(server, s3, s3_vhost, bucket):
    p = s3_vhost.generate_presigned_post(bucket, "vh", ExpiresIn=300)
    assert p["url"].startswith(f"http://{bucket}.localhost")
    assert post(p, b"vhost").status_code == 204
    assert s3.get_object(Bucket=bucket, Key="vh")["Body"].read() == b"vhost"


def test_a_form_is_decided_with_the_request_context(server, bucket):
    """The same condition keys as any request: `s3:authType` is POST for a form (so a policy can
    allow uploads only through forms), and `aws:SourceIp` is the client's address."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:authType": "POST"}}},
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/blocked/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}}}]})
    user = make_client(server.endpoint, ak, sk)
    assert post(user.generate_presigned_post(bucket, "form-only", ExpiresIn=300), b"x").status_code == 204
    with pytest.raises(Exception) as e:
        user.put_object(Bucket=bucket, Key="header-signed", Body=b"x")
    assert "AccessDenied" in str(e.value)
    status, code, message = error(post(user.generate_presigned_post(bucket, "blocked/x", ExpiresIn=300), b"x"))
    assert (status, code) == (403, "AccessDenied") and "explicit deny" in message, message


def test_a_content_md5_field_is_checked_against_the_file(s3, bucket):
    """"When you use this form field, Amazon S3 checks the object against the provided MD5 value"
    (RESTObjectPOST.html)."""
    import hashlib
    good = base64.b64encode(hashlib.md5(b"checked").digest()).decode()
    p = s3.generate_presigned_post(bucket, "md5", Fields={"Content-MD5": good},
                                   Conditions=[["starts-with", "$Content-MD5", ""]], ExpiresIn=300)
    assert post(p, b"checked").status_code == 204
    status, code, _ = error(post(p, b"tampered", extra={"Content-MD5": good}))
    assert (status, code) == (400, "BadDigest")
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == b"checked"


def _signed_form(server, bucket: str, key: str, signed_at, expires_at) -> dict:
    """A SigV4 POST form signed by hand (root credentials) as of `signed_at`."""
    import datetime
    import hashlib
    import hmac

    day = signed_at.strftime("%Y%m%d")
    amz_date = signed_at.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{server.access_key}/{day}/{REGION}/s3/aws4_request"
    policy = base64.b64encode(json.dumps({
        "expiration": expires_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [{"bucket": bucket}, {"key": key}, {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                       {"x-amz-credential": credential}, {"x-amz-date": amz_date}],
    }).encode()).decode()
    k = ("AWS4" + server.secret_key).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, policy.encode(), hashlib.sha256).hexdigest()
    assert isinstance(signed_at, datetime.datetime)
    return {"url": f"{server.endpoint}/{bucket}", "fields": {
        "key": key, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential,
        "x-amz-date": amz_date, "policy": policy, "x-amz-signature": signature}}


def test_a_form_signature_lives_at_most_seven_days_and_never_starts_in_the_future(server, s3, bucket):
    # "the signing key is valid for up to seven days, so signatures are also valid for up to 7
    # days" (https://docs.aws.amazon.com/AmazonS3/latest/API/bucket-policy-s3-sigv4-conditions.html);
    # review 11: forms signed days ahead or weeks ago were accepted, and a future date made
    # s3:signatureAge negative.
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc)
    far = now + datetime.timedelta(days=60)
    ok = _signed_form(server, bucket, "age/ok", now - datetime.timedelta(days=6), far)
    assert post(ok, b"x").status_code == 204
    future = _signed_form(server, bucket, "age/future", now + datetime.timedelta(hours=1), far)
    assert error(post(future, b"x"))[:2] == (403, "AccessDenied")
    old = _signed_form(server, bucket, "age/old", now - datetime.timedelta(days=8), far)
    status, code, message = error(post(old, b"x"))
    assert (status, code) == (403, "AccessDenied") and "expired" in message, message
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="age/").get("Contents", [])]
    assert keys == ["age/ok"]


def test_a_form_its_policy_refuses_is_audited_as_a_denied_write_of_its_key(server, s3, bucket):
    p = s3.generate_presigned_post(bucket, "allowed/k", ExpiresIn=300)
    r = post(p, b"x", extra={"key": "elsewhere/k"})
    assert error(r)[:2] == (403, "AccessDenied")
    request_id = r.headers["x-amz-request-id"]
    events = wait_for_events(server.data_dir, lambda es: any(
        e.get("requestID") == request_id and e.get("stage") == "completed" for e in es))
    event = next(e for e in events if e.get("requestID") == request_id and e.get("stage") == "completed")
    assert event["decision"] == "Deny", event
    assert event["requestParameters"]["key"] == "elsewhere/k", event
    check = event["authorization"][0]
    assert check["action"] == "s3:PutObject" and check["resource"] == f"arn:aws:s3:::{bucket}/elsewhere/k"
    assert "POST policy" in check["reason"], check
