"""Hostile input, crafted with http.client / raw sockets and botocore's SigV4 signer: bad and
stale signatures, payload hash mismatches, truncated bodies, traversal keys, oversized XML,
anonymous requests and unknown operations."""

from __future__ import annotations

import datetime
import hashlib
import zlib
import base64
import os
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import (
    assert_s3_error,
    make_client,
    object_path,
    presign_url,
    raw_request,
    sign,
    signed_request,
)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def keys_of(s3, bucket) -> list[str]:
    out, token = [], None
    while True:
        kw = {"Bucket": bucket}
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kw)
        out += [o["Key"] for o in resp.get("Contents", [])]
        if not resp["IsTruncated"]:
            return out
        token = resp["NextContinuationToken"]


# ---------------------------------------------------------------- signatures


def test_bad_signature(server, s3, bucket):
    path = object_path(bucket, "forged")
    headers = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                   {"Host": f"127.0.0.1:{server.port}"}, b"payload")
    auth = headers["Authorization"]
    sig = auth.rsplit("Signature=", 1)[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    headers["Authorization"] = auth.replace(f"Signature={sig}", f"Signature={flipped}")
    resp = raw_request(server.port, "PUT", path, headers, b"payload")
    assert_s3_error(resp, 403, "SignatureDoesNotMatch")
    assert server.secret_key.encode() not in resp.body
    assert "forged" not in keys_of(s3, bucket)


def test_wrong_secret_key(server, bucket):
    # A different last character (a secret that ends in "x" would otherwise be left unchanged).
    last = "y" if server.secret_key.endswith("x") else "x"
    bad = make_client(server.endpoint, server.access_key, server.secret_key[:-1] + last)
    with pytest.raises(ClientError) as ei:
        bad.list_objects_v2(Bucket=bucket)
    assert ei.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_signed_header_changed_after_signing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    path = object_path(bucket, "k")
    headers = sign("GET", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                   {"Host": f"127.0.0.1:{server.port}", "Range": "bytes=0-0"})
    assert "range" in headers["Authorization"]
    headers["Range"] = "bytes=0-1"
    assert_s3_error(raw_request(server.port, "GET", path, headers), 403, "SignatureDoesNotMatch")


def test_unknown_access_key(server, bucket):
    resp = signed_request(server, "GET", f"/{bucket}", access_key="AKIAUNKNOWNKEY000000", secret_key="x" * 40)
    assert_s3_error(resp, 403, "InvalidAccessKeyId")


def test_wrong_region_in_scope(server, bucket):
    path = f"/{bucket}"
    headers = sign("GET", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                   {"Host": f"127.0.0.1:{server.port}"}, region="eu-west-1")
    assert_s3_error(raw_request(server.port, "GET", path, headers), 400, "AuthorizationHeaderMalformed")


def test_garbage_authorization_header(server, bucket):
    headers = {"Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": utcnow().strftime("%Y%m%dT%H%M%SZ"),
               "X-Amz-Content-SHA256": hashlib.sha256(b"").hexdigest()}
    resp = raw_request(server.port, "GET", f"/{bucket}", headers)
    assert_s3_error(resp, 400, {"AuthorizationHeaderMalformed", "InvalidArgument", "InvalidRequest"})


def test_expired_presigned_url(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"secret")
    url = presign_url(server.endpoint, object_path(bucket, "p"), server.access_key, server.secret_key,
                      expires=60, now=utcnow() - datetime.timedelta(hours=2))
    target = url.split(f"127.0.0.1:{server.port}", 1)[1]
    resp = raw_request(server.port, "GET", target)
    assert_s3_error(resp, 403, "AccessDenied")
    assert "Request has expired" in (resp.error_message() or ""), resp.body[:500]
    assert b"secret" not in resp.body


def test_valid_presigned_url_and_tampered_query(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"secret")
    url = presign_url(server.endpoint, object_path(bucket, "p"), server.access_key, server.secret_key, expires=300)
    target = url.split(f"127.0.0.1:{server.port}", 1)[1]
    ok = raw_request(server.port, "GET", target)
    assert ok.status == 200 and ok.body == b"secret"
    longer = target.replace("X-Amz-Expires=300", "X-Amz-Expires=3000")
    assert longer != target
    assert_s3_error(raw_request(server.port, "GET", longer), 403, "SignatureDoesNotMatch")


def test_presigned_expiry_over_seven_days(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"secret")
    url = presign_url(server.endpoint, object_path(bucket, "p"), server.access_key, server.secret_key,
                      expires=604801)
    target = url.split(f"127.0.0.1:{server.port}", 1)[1]
    resp = raw_request(server.port, "GET", target)
    assert_s3_error(resp, 400, "AuthorizationQueryParametersError")


@pytest.mark.parametrize("minutes", [20, -20])
def test_clock_skew(server, s3, bucket, minutes):
    resp = signed_request(server, "PUT", object_path(bucket, "skewed"), body=b"x",
                          now=utcnow() + datetime.timedelta(minutes=minutes))
    assert_s3_error(resp, 403, "RequestTimeTooSkewed")
    assert "skewed" not in keys_of(s3, bucket)


def test_clock_skew_within_fifteen_minutes_is_accepted(server, s3, bucket):
    resp = signed_request(server, "PUT", object_path(bucket, "slightly"), body=b"x",
                          now=utcnow() - datetime.timedelta(minutes=10))
    assert resp.status == 200, resp.body[:500]
    assert s3.get_object(Bucket=bucket, Key="slightly")["Body"].read() == b"x"


def test_content_sha256_mismatch(server, s3, bucket):
    # The signature is valid for the declared hash of "AAAA"; the body actually sent is "BBBB".
    resp = signed_request(server, "PUT", object_path(bucket, "mismatch"), body=b"BBBB", sign_body=b"AAAA")
    assert_s3_error(resp, 400, "XAmzContentSHA256Mismatch")
    assert "mismatch" not in keys_of(s3, bucket)


def test_content_sha256_mismatch_does_not_replace_existing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"original")
    resp = signed_request(server, "PUT", object_path(bucket, "keep"), body=b"evil" * 1000, sign_body=b"good" * 1000)
    assert_s3_error(resp, 400, "XAmzContentSHA256Mismatch")
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"original"


def _send_truncated(server, bucket, key, declared, sent, half_close, unsigned=True) -> bytes:
    path = object_path(bucket, key)
    full = b"z" * declared
    headers = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                   {"Host": f"127.0.0.1:{server.port}", "Content-Length": str(declared)}, full,
                   unsigned_payload=unsigned)
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(head.encode() + full[:sent])
        if not half_close:
            return b""
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                c = sock.recv(65536)
                if not c:
                    break
                chunks.append(c)
        except (ConnectionResetError, socket.timeout):
            pass
        return b"".join(chunks)
    finally:
        sock.close()


def test_body_shorter_than_content_length_then_close(server, s3, bucket):
    _send_truncated(server, bucket, "short-unsigned", 100_000, 50_000, half_close=False, unsigned=True)
    _send_truncated(server, bucket, "short-signed", 100_000, 50_000, half_close=False, unsigned=False)
    time.sleep(1.0)
    keys = keys_of(s3, bucket)
    assert "short-unsigned" not in keys and "short-signed" not in keys
    with pytest.raises(ClientError) as ei:
        s3.head_object(Bucket=bucket, Key="short-unsigned")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_body_shorter_than_content_length_half_close(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="short", Body=b"previous")
    answer = _send_truncated(server, bucket, "short", 10_000, 10, half_close=True)
    # Either the connection is dropped or the answer is an error (S3: 400 IncompleteBody); never 200.
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:300]
    time.sleep(0.5)
    assert s3.get_object(Bucket=bucket, Key="short")["Body"].read() == b"previous"


# ---------------------------------------------------------------- keys


TRICKY_KEYS = [
    "../x",
    "..",
    "a/../../etc/passwd",
    "../../../../../../../../tmp/keyhole-escape",
    "//double",
    "/double",
    "/lead",
    ".",
    "./dot",
    "a/./b",
    "a//b",
    "trailing/",
    "back\\slash\\..\\..\\x",
    "%2e%2e/literal-percent",
    "ünïcødé/日本語/🔑",
    "NFC-é",
    "NFD-e\u0301",
    "space key",
    "data",
    "root-credentials",
    "semi;colon=param",
    "line\nbreak",
    "crlf\r\nkey",
    "a%2Fb",
    "a/b",
    " ",
    "del\x7f",
    "nul-free\u2028sep",
]


def _tree(root: Path, skip: set[Path]) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if (d / n) not in skip]
        for n in dirnames + filenames:
            out.add(str((d / n).relative_to(root)))
    return out


def test_tricky_keys_stored_and_listed_exactly(server, s3, bucket, tmp_path_factory):
    skip = {server.data_dir, server.base_dir / "logs"}
    before = _tree(server.base_dir, skip)
    basetemp = tmp_path_factory.getbasetemp()
    ancestors = [p for p in server.data_dir.parents if p == basetemp or basetemp in p.parents]
    before_anc = {p: set(os.listdir(p)) for p in ancestors}
    passwd = os.stat("/etc/passwd")

    bodies = {k: f"body of {k!r}".encode() for k in TRICKY_KEYS}
    for k, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=k, Body=body)
    for k, body in bodies.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == body, f"key {k!r} read back wrong"
    assert sorted(keys_of(s3, bucket)) == sorted(TRICKY_KEYS)
    # Prefix listing matches keys literally, not as normalized paths.
    for prefix in ("/", "..", "a/", "./"):
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        assert listed == sorted(k for k in TRICKY_KEYS if k.startswith(prefix)), f"prefix {prefix!r}"

    assert _tree(server.base_dir, skip) == before, "files appeared next to the data dir"
    for p, entries in before_anc.items():
        assert set(os.listdir(p)) == entries, f"new entries in {p}"
    assert not Path("/tmp/keyhole-escape").exists()
    after = os.stat("/etc/passwd")
    assert (after.st_mtime_ns, after.st_size) == (passwd.st_mtime_ns, passwd.st_size)

    for k in TRICKY_KEYS:
        s3.delete_object(Bucket=bucket, Key=k)
    assert keys_of(s3, bucket) == []


def test_tricky_keys_via_raw_paths(server, s3, bucket):
    # http.client sends the path byte for byte: no client-side normalization of `..` or `//`.
    for raw_path, key in [
        (f"/{bucket}/../raw-x", "../raw-x"),
        (f"/{bucket}//raw-double", "/raw-double"),
        (f"/{bucket}/a/../../raw", "a/../../raw"),
    ]:
        resp = signed_request(server, "PUT", raw_path, body=key.encode())
        assert resp.status == 200, (raw_path, resp.status, resp.body[:300])
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    assert sorted(keys_of(s3, bucket)) == sorted(["/raw-double", "../raw-x", "a/../../raw"])


def test_key_length_limit(s3, bucket):
    ok_ascii = "k/" + "a" * 1022
    ok_multibyte = "é" * 512
    assert len(ok_ascii.encode()) == 1024 and len(ok_multibyte.encode()) == 1024
    for k in (ok_ascii, ok_multibyte):
        s3.put_object(Bucket=bucket, Key=k, Body=b"long")
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == b"long"
    assert sorted(keys_of(s3, bucket)) == sorted([ok_ascii, ok_multibyte])
    for k in ("k/" + "a" * 1023, "é" * 512 + "a"):
        assert len(k.encode()) == 1025
        with pytest.raises(ClientError) as ei:
            s3.put_object(Bucket=bucket, Key=k, Body=b"too long")
        assert ei.value.response["Error"]["Code"] == "KeyTooLongError"
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sorted(keys_of(s3, bucket)) == sorted([ok_ascii, ok_multibyte])


def test_invalid_utf8_key_rejected(server, s3, bucket):
    resp = signed_request(server, "PUT", f"/{bucket}/bad-%FF-utf8", body=b"x")
    assert resp.status == 400, resp.body[:300]
    assert resp.header("x-amz-request-id")
    assert keys_of(s3, bucket) == []


# ---------------------------------------------------------------- oversized XML


def _delete_body(keys: list[str], pad_to: int = 0) -> bytes:
    objs = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    body = f'<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{objs}'
    body += "</Delete>"
    if pad_to and len(body) < pad_to:
        # Pad with more (nonexistent) keys until the body is large enough.
        extra, i = [], 0
        size = len(body)
        while size < pad_to:
            entry = f"<Object><Key>pad/{i:08d}</Key></Object>"
            extra.append(entry)
            size += len(entry)
            i += 1
        body = body.replace("</Delete>", "".join(extra) + "</Delete>")
    return body.encode()


def test_two_mib_delete_objects_body_rejected(server, s3, bucket):
    for k in ("v1", "v2"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    body = _delete_body(["v1", "v2"], pad_to=2 * 1024 * 1024)
    assert len(body) >= 2 * 1024 * 1024
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = signed_request(server, "POST", f"/{bucket}", query="delete", body=body, headers={"Content-MD5": md5})
    assert_s3_error(resp, 400, {"MalformedXML", "EntityTooLarge", "MaxMessageLengthExceeded"})
    assert sorted(keys_of(s3, bucket)) == ["v1", "v2"]


def test_more_than_1000_keys_in_delete_objects(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="v1", Body=b"x")
    body = _delete_body(["v1"] + [f"k{i}" for i in range(1000)])
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = signed_request(server, "POST", f"/{bucket}", query="delete", body=body, headers={"Content-MD5": md5})
    assert_s3_error(resp, 400, "MalformedXML")
    assert keys_of(s3, bucket) == ["v1"]


def test_delete_objects_malformed_xml(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="v1", Body=b"x")
    body = b"<Delete><Object><Key>v1</Key></Object>"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = signed_request(server, "POST", f"/{bucket}", query="delete", body=body, headers={"Content-MD5": md5})
    assert_s3_error(resp, 400, "MalformedXML")
    assert keys_of(s3, bucket) == ["v1"]


def test_delete_objects_needs_a_checksum_and_a_boolean_quiet(server, s3, bucket):
    """"The Content-MD5 or x-amz-sdk-checksum-algorithm header is required for all Multi-Object
    Delete requests" (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html), and
    `Quiet` is a boolean: a body without either, or a Quiet that is neither, deletes nothing."""
    s3.put_object(Bucket=bucket, Key="v1", Body=b"x")
    body = _delete_body(["v1"])
    resp = signed_request(server, "POST", f"/{bucket}", query="delete", body=body)
    assert_s3_error(resp, 400, "InvalidRequest")
    assert keys_of(s3, bucket) == ["v1"]
    quiet = b"<Delete><Quiet>maybe</Quiet><Object><Key>v1</Key></Object></Delete>"
    md5 = base64.b64encode(hashlib.md5(quiet).digest()).decode()
    resp = signed_request(server, "POST", f"/{bucket}", query="delete", body=quiet, headers={"Content-MD5": md5})
    assert_s3_error(resp, 400, "MalformedXML")
    assert keys_of(s3, bucket) == ["v1"]
    # A header of no algorithm S3 knows is no checksum (review 34, L1).
    resp = signed_request(server, "POST", f"/{bucket}", query="delete", body=body, headers={"x-amz-checksum-foo": "AAAA"})
    assert_s3_error(resp, 400, "InvalidRequest")
    assert keys_of(s3, bucket) == ["v1"]
    # A CRC32 checksum instead of the MD5 (what recent SDKs send) is enough.
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    resp = signed_request(server, "POST", f"/{bucket}", query="delete", body=body, headers={"x-amz-checksum-crc32": crc})
    assert resp.status == 200, resp.body
    assert keys_of(s3, bucket) == []


def test_xml_entity_expansion_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="v1", Body=b"x")
    body = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "v1"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<Delete><Object><Key>&a;</Key></Object></Delete>"
    )
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = signed_request(server, "POST", f"/{bucket}", query="delete", body=body, headers={"Content-MD5": md5})
    assert_s3_error(resp, 400, "MalformedXML")
    assert keys_of(s3, bucket) == ["v1"]


# ---------------------------------------------------------------- anonymous and unknown


def test_anonymous_requests_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    host = {"Host": f"127.0.0.1:{server.port}"}
    assert_s3_error(raw_request(server.port, "GET", "/", host), 403, "AccessDenied")
    assert_s3_error(raw_request(server.port, "GET", f"/{bucket}", host), 403, "AccessDenied")
    resp = raw_request(server.port, "GET", f"/{bucket}/private", host)
    assert_s3_error(resp, 403, "AccessDenied")
    assert b"secret" not in resp.body
    assert_s3_error(raw_request(server.port, "PUT", f"/{bucket}/anon", host, b"x"), 403, "AccessDenied")
    assert_s3_error(raw_request(server.port, "DELETE", f"/{bucket}/private", host), 403, "AccessDenied")
    assert sorted(keys_of(s3, bucket)) == ["private"]


@pytest.mark.parametrize("query", ["website", "replication", "inventory&id=x"])
def test_unknown_operation_not_implemented(server, bucket, query):
    resp = signed_request(server, "GET", f"/{bucket}", query=query)
    assert_s3_error(resp, 501, "NotImplemented")


def test_unknown_operation_put_changes_nothing(server, s3, bucket):
    body = b'<WebsiteConfiguration><IndexDocument><Suffix>index.html</Suffix></IndexDocument></WebsiteConfiguration>'
    resp = signed_request(server, "PUT", f"/{bucket}", query="website", body=body)
    assert_s3_error(resp, 501, "NotImplemented")
    assert keys_of(s3, bucket) == []


def test_sigv2_authorization_header_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="v2", Body=b"secret")
    headers = {"Host": f"127.0.0.1:{server.port}", "Date": "Sun, 22 Nov 2026 08:00:00 GMT",
               "Authorization": f"AWS {server.access_key}:c2lnbmF0dXJlLXYyLW5vdC12YWxpZA=="}
    resp = raw_request(server.port, "GET", object_path(bucket, "v2"), headers)
    assert resp.status in (400, 403), resp.body[:300]
    assert resp.error_code(), resp.body[:300]
    assert b"secret" not in resp.body


def test_error_request_ids_are_unique(server, bucket):
    ids = set()
    for _ in range(5):
        resp = signed_request(server, "GET", object_path(bucket, "absent"))
        assert_s3_error(resp, 404, "NoSuchKey")
        ids.add(resp.header("x-amz-request-id"))
    assert len(ids) == 5


def test_head_error_has_request_id_and_no_body(server, bucket):
    resp = signed_request(server, "HEAD", object_path(bucket, "absent"))
    assert resp.status == 404
    assert resp.header("x-amz-request-id")
    assert resp.body == b""


def test_oversized_request_headers_do_not_hurt_the_server(server, s3, bucket):
    headers = {"Host": f"127.0.0.1:{server.port}", "X-Junk": "j" * (256 * 1024)}
    try:
        resp = raw_request(server.port, "GET", f"/{bucket}", headers, timeout=10)
        assert 400 <= resp.status < 500, resp.status
    except (ConnectionError, http_client_errors()) as e:  # dropping the connection is fine too
        _ = e
    s3.put_object(Bucket=bucket, Key="after", Body=b"ok")
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"ok"


def http_client_errors():
    import http.client

    return http.client.HTTPException


def _headers_only_then_answer(server, headers: dict[str, str], path: str) -> bytes:
    """Send only the request head of a 1 GiB PUT and return what the server answers within 5 s."""
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode())
        data = b""
        try:
            while b"</Error>" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        return data


def test_authentication_happens_before_the_body_is_read(server, s3, bucket):
    # DESIGN.md section 1: authorization happens before the body is read. A forged 1 GiB upload is
    # answered 403 from its headers alone, without the server waiting for the body.
    path = object_path(bucket, "huge")
    gib = str(1024 * 1024 * 1024)
    forged = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key + "x",
                  {"Host": f"127.0.0.1:{server.port}", "Content-Length": gib}, unsigned_payload=True)
    answer = _headers_only_then_answer(server, forged, path)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b"<Code>SignatureDoesNotMatch</Code>" in answer

    anonymous = {"Host": f"127.0.0.1:{server.port}", "Content-Length": gib}
    answer = _headers_only_then_answer(server, anonymous, path)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b"<Code>AccessDenied</Code>" in answer
    assert "huge" not in keys_of(s3, bucket)


@pytest.mark.parametrize(
    "method, target, body, ok_root",
    [
        ("GET", "{b}?versions", b"", "ListVersionsResult"),
        ("GET", "{b}?versioning", b"", "VersioningConfiguration"),
        # PutBucketVersioning answers 200 with no body (issue 12): "" stands for that.
        ("PUT", "{b}?versioning", b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                                   b"<Status>Enabled</Status></VersioningConfiguration>", ""),
        ("GET", "{b}?lifecycle", b"", "LifecycleConfiguration"),
        ("GET", "{b}?cors", b"", "CORSConfiguration"),
        ("GET", "{b}?object-lock", b"", "ObjectLockConfiguration"),
        ("GET", "{b}?acl", b"", "AccessControlPolicy"),
        ("GET", "{b}/k?acl", b"", "AccessControlPolicy"),
        ("GET", "{b}/k?retention", b"", "Retention"),
        ("GET", "{b}/k?legal-hold", b"", "LegalHold"),
        ("GET", "{b}/k?torrent", b"", None),
        ("GET", "{b}/k?attributes", b"", "GetObjectAttributesResponse"),
        ("POST", "{b}/k?restore", b"<RestoreRequest><Days>1</Days></RestoreRequest>", None),
        ("POST", "{b}/k?select&select-type=2", b"<SelectObjectContentRequest/>", None),
    ],
)
def test_subresources_never_a_wrong_success(server, s3, bucket, method, target, body, ok_root):
    """Issue 2: an operation that isn't implemented answers NotImplemented, never a wrong success.
    Either 501 NotImplemented, or (where the operation exists) its own response document."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"content")
    path, _, query = f"/{target.format(b=bucket)}".partition("?")
    headers = {"x-amz-object-attributes": "ETag"} if "attributes" in query else {}
    if body:
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = signed_request(server, method, path, query=query, body=body, headers=headers)
    if resp.status == 501:
        assert_s3_error(resp, 501, "NotImplemented")
    else:
        assert ok_root is not None, f"{method} {target}: got {resp.status} where only 501 fits: {resp.body[:300]!r}"
        if query in ("retention", "legal-hold") and resp.status == 400:
            # The bucket has no Object Lock: S3 answers InvalidRequest "Bucket is missing Object
            # Lock Configuration" (issue 12).
            assert_s3_error(resp, 400, "InvalidRequest")
            assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"content"
            return
        assert resp.status in (200, 404), f"{method} {target}: {resp.status} {resp.body[:300]!r}"
        if resp.status == 200 and ok_root == "":
            assert resp.body == b"", resp.body[:300]
        elif resp.status == 200:
            root = ET.fromstring(resp.body)
            assert root.tag.split("}")[-1] == ok_root, resp.body[:300]
    # Whatever happened, the object is untouched.
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"content"


def test_repeated_authorization_header_refused(server, s3, bucket):
    path = object_path(bucket, "twice")
    good = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                {"Host": f"127.0.0.1:{server.port}"}, b"x")
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in good.items())
    head += f"Authorization: {good['Authorization'][:-4]}beef\r\nContent-Length: 1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"x")
        answer = sock.recv(65536)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 403")), answer[:300]
    assert b"<Code>" in answer
    assert "twice" not in keys_of(s3, bucket)


def test_plain_http_chunked_put(server, s3, bucket):
    # Transfer-Encoding: chunked without Content-Length: S3 answers 411 MissingContentLength; a
    # gateway that accepts it must store exactly the bytes sent.
    path = object_path(bucket, "te-chunked")
    headers = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                   {"Host": f"127.0.0.1:{server.port}"}, unsigned_payload=True)
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "Transfer-Encoding: chunked\r\n\r\n"
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        answer = sock.recv(65536)
    if answer.startswith(b"HTTP/1.1 200"):
        assert s3.get_object(Bucket=bucket, Key="te-chunked")["Body"].read() == b"hello world"
    else:
        assert answer.startswith(b"HTTP/1.1 411"), answer[:300]
        assert b"<Code>MissingContentLength</Code>" in answer
        assert "te-chunked" not in keys_of(s3, bucket)


# ---------------------------------------------------------------- headers added after signing
# S3 refuses x-amz-* headers that the signature does not cover: 403 AccessDenied "There were
# headers present in the request which were not signed" (e.g. versity/versitygw#2158 and
# demarche-numerique/ds_proxy#164 record S3's answer). Otherwise a captured presigned PUT could
# be replayed with an added x-amz-copy-source or x-amz-tagging that changes what it does.


def _assert_headers_not_signed(resp) -> None:
    assert_s3_error(resp, 403, "AccessDenied")
    assert "not signed" in (resp.error_message() or ""), resp.body[:500]


@pytest.mark.parametrize(
    "extra",
    [{"x-amz-meta-injected": "1"}, {"x-amz-tagging": "owner=attacker"}, {"x-amz-storage-class": "STANDARD"}],
)
def test_unsigned_amz_header_on_signed_put(server, s3, bucket, extra):
    path = object_path(bucket, "injected")
    headers = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                   {"Host": f"127.0.0.1:{server.port}"}, b"body")
    headers.update(extra)
    _assert_headers_not_signed(raw_request(server.port, "PUT", path, headers, b"body"))
    assert "injected" not in keys_of(s3, bucket)


def test_unsigned_copy_source_on_presigned_put(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"top secret")
    url = presign_url(server.endpoint, object_path(bucket, "dropbox"), server.access_key, server.secret_key,
                      expires=300, method="PUT")
    target = url.split(f"127.0.0.1:{server.port}", 1)[1]
    headers = {"Host": f"127.0.0.1:{server.port}", "x-amz-copy-source": f"/{bucket}/secret"}
    _assert_headers_not_signed(raw_request(server.port, "PUT", target, headers, b""))
    assert "dropbox" not in keys_of(s3, bucket)
    # The same URL without the added header does what it was signed for.
    ok = raw_request(server.port, "PUT", target, {"Host": f"127.0.0.1:{server.port}"}, b"dropped")
    assert ok.status == 200, ok.body[:300]
    assert s3.get_object(Bucket=bucket, Key="dropbox")["Body"].read() == b"dropped"


def test_unsigned_tagging_on_presigned_put(server, s3, bucket):
    url = presign_url(server.endpoint, object_path(bucket, "tagged"), server.access_key, server.secret_key,
                      expires=300, method="PUT")
    target = url.split(f"127.0.0.1:{server.port}", 1)[1]
    headers = {"Host": f"127.0.0.1:{server.port}", "x-amz-tagging": "owner=attacker"}
    _assert_headers_not_signed(raw_request(server.port, "PUT", target, headers, b"x"))
    assert "tagged" not in keys_of(s3, bucket)


# ---------------------------------------------------------------- request changed after signing


def test_query_added_after_header_signing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret/a", Body=b"x")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    host = {"Host": f"127.0.0.1:{server.port}"}
    # A signed ListObjects with a prefix added afterwards.
    h = sign("GET", f"{server.endpoint}/{bucket}", server.access_key, server.secret_key, host)
    assert_s3_error(raw_request(server.port, "GET", f"/{bucket}?prefix=secret/", h), 403, "SignatureDoesNotMatch")
    # A signed PutObject turned into PutObjectTagging by adding ?tagging.
    body = b'<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>'
    path = object_path(bucket, "k")
    h = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key, host, body)
    assert_s3_error(raw_request(server.port, "PUT", f"{path}?tagging", h, body), 403, "SignatureDoesNotMatch")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_query_added_to_presigned_url(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = presign_url(server.endpoint, object_path(bucket, "k"), server.access_key, server.secret_key,
                      expires=300)
    target = url.split(f"127.0.0.1:{server.port}", 1)[1]
    for extra in ("&tagging", "&response-content-type=text/html", "&x-id=DeleteObject"):
        resp = raw_request(server.port, "GET", target + extra, {"Host": f"127.0.0.1:{server.port}"})
        assert_s3_error(resp, 403, "SignatureDoesNotMatch")


def test_method_changed_after_header_signing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    path = object_path(bucket, "k")
    h = sign("GET", f"{server.endpoint}{path}", server.access_key, server.secret_key,
             {"Host": f"127.0.0.1:{server.port}"})
    assert_s3_error(raw_request(server.port, "DELETE", path, h), 403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_host_changed_after_signing(server, s3, bucket):
    # Signed path-style for /<bucket>/k on 127.0.0.1; replayed with another Host header, which
    # would address another bucket in virtual-host style.
    other = bucket + "-h"
    s3.create_bucket(Bucket=other)
    try:
        path = object_path(bucket, "k")
        h = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                 {"Host": f"127.0.0.1:{server.port}"}, b"x")
        h["Host"] = f"{other}.localhost:{server.port}"
        assert_s3_error(raw_request(server.port, "PUT", path, h, b"x"), 403, "SignatureDoesNotMatch")
        assert keys_of(s3, bucket) == [] and keys_of(s3, other) == []
    finally:
        s3.delete_bucket(Bucket=other)


def test_oversized_xml_bodies_everywhere(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=1")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    try:
        e = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"p")["ETag"]
        big_parts = "".join(f"<Part><PartNumber>1</PartNumber><ETag>{e}</ETag></Part>" for _ in range(40000))
        bodies = [
            ("POST", object_path(bucket, "mp"), f"uploadId={uid}",
             f"<CompleteMultipartUpload>{big_parts}</CompleteMultipartUpload>".encode()),
            ("PUT", object_path(bucket, "k"), "tagging",
             b"<Tagging><TagSet>" + b"<Tag><Key>a</Key><Value>b</Value></Tag>" * 60000 + b"</TagSet></Tagging>"),
            ("PUT", f"/{bucket}-big", "",
             b"<CreateBucketConfiguration><LocationConstraint>" + b"x" * (2 * 1024 * 1024)
             + b"</LocationConstraint></CreateBucketConfiguration>"),
        ]
        for method, path, query, body in bodies:
            assert len(body) >= 2 * 1024 * 1024
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            resp = signed_request(server, method, path, query=query, body=body, headers={"Content-MD5": md5})
            assert resp.status == 400, (path, query, resp.status, resp.body[:300])
            # Refused for its size, before parsing (what the element holds does not matter).
            assert resp.error_code() in {"MalformedXML", "EntityTooLarge", "MaxMessageLengthExceeded"}, resp.body[:300]
        assert "mp" not in keys_of(s3, bucket)
        assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "keep", "Value": "1"}]
        assert f"{bucket}-big" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid)


def test_presigned_url_dated_in_the_future_is_refused(server, s3, bucket):
    # Dating a URL ahead would stretch it past the 7-day limit; S3 refuses a presigned request whose
    # X-Amz-Date is beyond the allowed clock skew.
    s3.put_object(Bucket=bucket, Key="p", Body=b"secret")
    url = presign_url(server.endpoint, object_path(bucket, "p"), server.access_key, server.secret_key,
                      expires=604800, now=utcnow() + datetime.timedelta(days=3))
    resp = raw_request(server.port, "GET", url.split(f"127.0.0.1:{server.port}", 1)[1])
    assert_s3_error(resp, 403, {"AccessDenied", "RequestTimeTooSkewed"})
    assert b"secret" not in resp.body


@pytest.mark.parametrize("expires", [-1, 0])
def test_presigned_nonpositive_expiry(server, s3, bucket, expires):
    s3.put_object(Bucket=bucket, Key="p", Body=b"secret")
    url = presign_url(server.endpoint, object_path(bucket, "p"), server.access_key, server.secret_key,
                      expires=expires, now=utcnow() - datetime.timedelta(seconds=2))
    resp = raw_request(server.port, "GET", url.split(f"127.0.0.1:{server.port}", 1)[1])
    assert resp.status in (400, 403), resp.status
    assert resp.error_code() in ("AuthorizationQueryParametersError", "AccessDenied"), resp.body[:300]
    assert b"secret" not in resp.body


def test_idle_and_half_sent_connections_do_not_block_service(server, s3, bucket):
    socks = []
    try:
        for i in range(300):
            sk = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if i % 2:
                sk.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
            socks.append(sk)
        started = time.monotonic()
        s3.put_object(Bucket=bucket, Key="served", Body=b"still serving")
        assert s3.get_object(Bucket=bucket, Key="served")["Body"].read() == b"still serving"
        assert time.monotonic() - started < 5
    finally:
        for sk in socks:
            sk.close()


def test_junk_session_token_refused(server, s3, bucket):
    # A session token that keyhole never issued must not be ignored, even next to valid root keys.
    resp = signed_request(server, "PUT", object_path(bucket, "tok"), body=b"x",
                          headers={"X-Amz-Security-Token": "bm90LWEtcmVhbC10b2tlbg=="})
    assert resp.status in (400, 403), resp.body[:300]
    assert resp.error_code() in ("InvalidToken", "InvalidAccessKeyId", "AccessDenied"), resp.body[:300]
    assert "tok" not in keys_of(s3, bucket)


@pytest.mark.parametrize("declared", ["zzzz", "STREAMING-NONSENSE", "A" * 64])
def test_malformed_content_sha256_refused(server, s3, bucket, declared):
    path = object_path(bucket, "decl")
    headers = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                   {"Host": f"127.0.0.1:{server.port}"}, b"x", payload_hash=declared)
    resp = raw_request(server.port, "PUT", path, headers, b"x")
    assert resp.status == 400, resp.body[:300]
    assert resp.error_code() in ("InvalidArgument", "XAmzContentSHA256Mismatch", "InvalidRequest"), resp.body[:300]
    assert "decl" not in keys_of(s3, bucket)


def test_expect_100_continue(server, s3, bucket):
    """Expect: 100-continue: a refused request gets its final answer without a 100 (the client never
    sends the body); an accepted one gets 100 Continue, then the body is read and stored."""
    body = os.urandom(1024 * 1024)
    path = object_path(bucket, "expect")
    for secret, wanted in ((server.secret_key + "x", b"HTTP/1.1 403"), (server.secret_key, b"HTTP/1.1 100")):
        headers = sign("PUT", f"{server.endpoint}{path}", server.access_key, secret,
                       {"Host": f"127.0.0.1:{server.port}", "Content-Length": str(len(body)),
                        "Expect": "100-continue"}, body)
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head.encode())
            first = sock.recv(65536)
            assert first.startswith(wanted), first[:200]
            if wanted.endswith(b"100"):
                sock.sendall(body)
                rest = first.split(b"\r\n\r\n", 1)[1]
                while b"\r\n\r\n" not in rest:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                assert rest.startswith(b"HTTP/1.1 200"), rest[:200]
            else:
                assert b"SignatureDoesNotMatch" in first or b"SignatureDoesNotMatch" in sock.recv(65536)
    assert s3.get_object(Bucket=bucket, Key="expect")["Body"].read() == body


def test_date_header_signing(server, s3, bucket):
    """SigV4 may carry the time in `Date` instead of `X-Amz-Date`
    (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html); an X-Amz-Date
    added after signing is an unsigned x-amz-* header and must be refused."""
    path = object_path(bucket, "dated")
    headers = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key,
                   {"Host": f"127.0.0.1:{server.port}", "Date": "placeholder"}, b"x")
    assert "X-Amz-Date" not in headers and "date" in headers["Authorization"]
    ok = raw_request(server.port, "PUT", path, headers, b"x")
    assert ok.status == 200, ok.body[:300]
    assert s3.get_object(Bucket=bucket, Key="dated")["Body"].read() == b"x"

    path2 = object_path(bucket, "dated2")
    now = utcnow()
    for added, status, codes in [
        # Same day: only the unsigned header is wrong.
        (now.replace(second=(now.second + 7) % 60), 403, {"AccessDenied", "SignatureDoesNotMatch"}),
        # Another day: the credential scope no longer matches either.
        (now - datetime.timedelta(days=1), None, {"AccessDenied", "SignatureDoesNotMatch",
                                                  "AuthorizationHeaderMalformed", "RequestTimeTooSkewed"}),
    ]:
        headers = sign("PUT", f"{server.endpoint}{path2}", server.access_key, server.secret_key,
                       {"Host": f"127.0.0.1:{server.port}", "Date": "placeholder"}, b"y")
        headers["X-Amz-Date"] = added.strftime("%Y%m%dT%H%M%SZ")
        resp = raw_request(server.port, "PUT", path2, headers, b"y")
        assert resp.status in ((status,) if status else (400, 403)), resp.body[:300]
        assert resp.error_code() in codes, resp.body[:300]
        assert "dated2" not in keys_of(s3, bucket)


@pytest.mark.parametrize("method,query", [
    ("PUT", "policy="), ("GET", "location="), ("GET", "policyStatus="), ("GET", "publicAccessBlock="),
    ("GET", "list-type=2"), ("DELETE", "policy="), ("DELETE", "publicAccessBlock="),
])
def test_bucket_subresources_on_an_object_path_are_refused(server, s3, bucket, method, query):
    """A bucket's sub-resource on an object path is no S3 operation: 501, and the object is
    neither written, read nor deleted (before, `PUT /b/k?policy` overwrote the object)."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    r = signed_request(server, method, f"/{bucket}/k", query=query, body=b'{"Version":"2012-10-17"}' if method == "PUT" else b"")
    assert_s3_error(r, 501, "NotImplemented")
    assert b"original" not in r.body
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"
