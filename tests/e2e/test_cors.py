"""CORS (issue 12): bucket CORS configurations with aws-cli (`s3api put-bucket-cors`,
`get-bucket-cors`, `delete-bucket-cors`), browser preflights (`OPTIONS`, unsigned) and the CORS
headers of actual cross-origin requests, following
https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketCors.html and
https://docs.aws.amazon.com/AmazonS3/latest/API/RESTOPTIONSobject.html.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from e2e_helpers import make_client, wait_for_events, xml_text
from test_iam import iam_client, new_user

APP = "https://app.example.com"

CONFIG = {"CORSRules": [
    {"ID": "uploads", "AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["PUT", "POST"],
     "AllowedHeaders": ["x-amz-*", "Content-Type"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3000},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
]}


def preflight(server, path: str, origin: str | None, method: str | None, headers: str | None = None):
    h = {}
    if origin is not None:
        h["Origin"] = origin
    if method is not None:
        h["Access-Control-Request-Method"] = method
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    return requests.options(f"{server.endpoint}{path}", headers=h, timeout=30)


def test_cors_configuration_with_aws_cli(aws, bucket, tmp_path):
    r = aws("s3api", "get-bucket-cors", "--bucket", bucket)
    assert r.returncode != 0 and "NoSuchCORSConfiguration" in r.stderr, r.stderr
    path = tmp_path / "cors.json"
    path.write_text(json.dumps(CONFIG))
    aws.ok("s3api", "put-bucket-cors", "--bucket", bucket, "--cors-configuration", f"file://{path}")
    got = json.loads(aws.ok("s3api", "get-bucket-cors", "--bucket", bucket).stdout)
    assert got == CONFIG
    aws.ok("s3api", "delete-bucket-cors", "--bucket", bucket)
    r = aws("s3api", "get-bucket-cors", "--bucket", bucket)
    assert r.returncode != 0 and "NoSuchCORSConfiguration" in r.stderr
    # A bucket that does not exist.
    r = aws("s3api", "put-bucket-cors", "--bucket", f"nope-{uuid.uuid4().hex[:8]}",
            "--cors-configuration", f"file://{path}")
    assert r.returncode != 0 and "NoSuchBucket" in r.stderr


def test_bad_configurations_are_refused(s3, bucket):
    for rules, code in [
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["https://*.*.example.com"], "AllowedMethods": ["GET"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, "InvalidRequest"),
    ]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
        assert e.value.response["Error"]["Code"] == code, rules[:1]
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"


def test_preflights_are_answered_from_the_configuration(server, s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CONFIG)
    r = preflight(server, f"/{bucket}/photos/cat.jpg", APP, "PUT", "Content-Type, x-amz-date")
    assert r.status_code == 200, r.content
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Allow-Methods"] == "PUT, POST"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    assert r.headers["Access-Control-Max-Age"] == "3000"
    assert "Origin" in r.headers["Vary"]
    # The second rule: GET from anywhere, answered with `*`.
    r = preflight(server, f"/{bucket}/x", "https://other.test", "GET")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    # A header, method or origin no rule allows.
    for origin, method, headers in [(APP, "PUT", "Authorization"), (APP, "DELETE", None),
                                    ("http://app.example.com", "PUT", None)]:
        r = preflight(server, f"/{bucket}/x", origin, method, headers)
        assert r.status_code == 403 and xml_text(r.content, "Code") == "AccessForbidden", (origin, method)
        assert "This CORS request is not allowed" in xml_text(r.content, "Message")
        assert "Access-Control-Allow-Origin" not in r.headers
    # What a preflight must carry.
    r = preflight(server, f"/{bucket}/x", None, "PUT")
    assert r.status_code == 400 and "Origin" in xml_text(r.content, "Message")
    r = preflight(server, f"/{bucket}/x", APP, None)
    assert r.status_code == 400


def test_a_preflight_reveals_no_more_than_the_configuration(server, s3, bucket):
    """No configuration and no bucket get the same answer; the preflight is audited, unsigned."""
    r1 = preflight(server, f"/{bucket}/x", APP, "GET")
    r2 = preflight(server, f"/nope-{uuid.uuid4().hex[:8]}/x", APP, "GET")
    for r in (r1, r2):
        assert r.status_code == 403 and xml_text(r.content, "Code") == "AccessForbidden"
        assert xml_text(r.content, "Message") == "CORSResponse: CORS is not enabled for this bucket."
    events = wait_for_events(server.data_dir, lambda es: any(
        e["eventName"] == "OptionsObject" and e["requestParameters"].get("bucketName") == bucket for e in es))
    ev = [e for e in events if e["eventName"] == "OptionsObject"
          and e["requestParameters"].get("bucketName") == bucket][-1]
    assert ev["userIdentity"]["type"] == "AnonymousPrincipal" and ev["httpStatus"] == 403
    assert [c["action"] for c in ev["authorization"]] == ["keyhole:CorsPreflight"]


def test_actual_requests_with_an_origin_get_cors_headers_errors_too(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    plain = requests.get(f"{server.endpoint}/{bucket}/k", headers={"Origin": APP}, timeout=30)
    assert plain.status_code == 403 and "Access-Control-Allow-Origin" not in plain.headers
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CONFIG)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    r = requests.get(url, headers={"Origin": APP}, timeout=30)
    assert r.status_code == 200 and r.content == b"v"
    assert r.headers["Access-Control-Allow-Origin"] == "*" and "Origin" in r.headers["Vary"]
    # A refused request still carries them (a browser could not read the error otherwise).
    r = requests.get(f"{server.endpoint}/{bucket}/k", headers={"Origin": APP}, timeout=30)
    assert r.status_code == 403 and r.headers["Access-Control-Allow-Origin"] == "*"
    # A method no rule allows for that origin: no Allow-Origin.
    r = requests.delete(f"{server.endpoint}/{bucket}/k", headers={"Origin": APP}, timeout=30)
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers


def test_cors_actions_are_authorized(server, s3, bucket):
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetBucketCORS", "Resource": f"arn:aws:s3:::{bucket}"}]})
    user = make_client(server.endpoint, ak, sk)
    with pytest.raises(ClientError) as e:
        user.put_bucket_cors(Bucket=bucket, CORSConfiguration=CONFIG)
    assert e.value.response["Error"]["Code"] == "AccessDenied" and "s3:PutBucketCORS" in str(e.value)
    with pytest.raises(ClientError) as e:
        user.delete_bucket_cors(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "AccessDenied" and "s3:PutBucketCORS" in str(e.value)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CONFIG)
    assert user.get_bucket_cors(Bucket=bucket)["CORSRules"] == CONFIG["CORSRules"]


def test_deleting_the_bucket_forgets_its_configuration(server, s3):
    name = f"e2e-cors-gone-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_cors(Bucket=name, CORSConfiguration=CONFIG)
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    try:
        with pytest.raises(ClientError) as e:
            s3.get_bucket_cors(Bucket=name)
        assert e.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    finally:
        s3.delete_bucket(Bucket=name)


def test_a_browser_upload_flow_preflight_then_post(server, s3, bucket):
    """What a web page does: the browser preflights the form's POST, then posts the presigned
    form; both answers carry the CORS headers it needs to read the result."""
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CONFIG)
    r = preflight(server, f"/{bucket}", APP, "POST")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == APP
    p = s3.generate_presigned_post(bucket, "from-page.txt", ExpiresIn=300)
    files = [(k, (None, v)) for k, v in p["fields"].items()] + [("file", ("f.txt", b"page data"))]
    r = requests.post(p["url"], files=files, headers={"Origin": APP}, timeout=30)
    assert r.status_code == 204, r.content
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    assert s3.get_object(Bucket=bucket, Key="from-page.txt")["Body"].read() == b"page data"
