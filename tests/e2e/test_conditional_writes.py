"""S3 conditional writes (issue 12, first item): `If-None-Match: *` and `If-Match: ETAG` on
PutObject, CopyObject, CompleteMultipartUpload and DeleteObject, with aws-cli and boto3.

AWS's rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html and
the PutObject API reference): an existing key with `If-None-Match: *` is 412 PreconditionFailed;
an ETag that does not match `If-Match` is 412; `If-Match` needs s3:GetObject as well as
s3:PutObject; a conflicting write during the upload is 409 ConditionalRequestConflict; bucket
policies can require the headers with `s3:if-none-match` / `s3:if-match` and
`s3:ObjectCreationOperation`
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
"""

from __future__ import annotations

import json
import threading

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import make_client, signed_request, wait_for_events
from test_iam import iam_client, new_user

MiB = 1024 * 1024


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def status(e: ClientError) -> int:
    return e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_if_none_match_refuses_to_overwrite_with_aws_cli(aws, s3, bucket, tmp_path):
    """The issue's repro: `put-object --if-none-match '*'` overwrote an existing key with 200."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"checkpoint-1")
    second.write_bytes(b"checkpoint-2")
    aws.ok("s3api", "put-object", "--bucket", bucket, "--key", "ckpt", "--body", str(first), "--if-none-match", "*")
    r = aws("s3api", "put-object", "--bucket", bucket, "--key", "ckpt", "--body", str(second), "--if-none-match", "*")
    assert r.returncode != 0 and "PreconditionFailed" in r.stderr, r.stderr
    assert s3.get_object(Bucket=bucket, Key="ckpt")["Body"].read() == b"checkpoint-1"


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 answers PreconditionFailed, not NoSuchKey, to If-Match on a missing key")
def test_if_match_is_compare_and_swap(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert (code(e.value), status(e.value)) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"
    new = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    # Unquoted ETags are the same ETag; the old one no longer matches.
    s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=new.strip('"'))
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v4", IfMatch=etag)
    assert code(e.value) == "PreconditionFailed"
    # No object to match: NoSuchKey, and nothing is created.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=etag)
    assert (code(e.value), status(e.value)) == ("NoSuchKey", 404)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="absent")


def test_unsupported_condition_forms_are_refused_not_ignored(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    for headers in ({"If-None-Match": '"abc"'}, {"If-None-Match": "*", "If-Match": "*"}):
        r = signed_request(server, "PUT", f"/{bucket}/k", headers=headers, body=b"v2")
        assert r.status == 501 and b"NotImplemented" in r.body, (headers, r.status, r.body)
    r = signed_request(server, "DELETE", f"/{bucket}/k", headers={"x-amz-if-match-size": "2"})
    assert r.status == 501, r.body
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 keeps a checksum that does not match the object a conditional completion wrote")
def test_conditional_multipart_completion(s3, bucket):
    s3.put_object(Bucket=bucket, Key="big", Body=b"old")
    up = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=1, Body=b"p" * 1000)
    parts = {"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up, MultipartUpload=parts, IfNoneMatch="*")
    assert code(e.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"old"
    # The upload stays open, as in S3: completing it without the condition works.
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up, MultipartUpload=parts)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"p" * 1000
    up = s3.create_multipart_upload(Bucket=bucket, Key="new")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="new", UploadId=up, PartNumber=1, Body=b"q" * 10)
    s3.complete_multipart_upload(Bucket=bucket, Key="new", UploadId=up, IfNoneMatch="*",
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not enforce If-Match/If-None-Match on CopyObject and DeleteObject")
@pytest.mark.upstream_gap(["moto"], "moto 5.2.5 does not enforce If-Match/If-None-Match on CopyObject and DeleteObject")
def test_conditional_copy_and_delete(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    etag = s3.put_object(Bucket=bucket, Key="dst", Body=b"dest")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*")
    assert code(e.value) == "PreconditionFailed"
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source"
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="dst", IfMatch=etag)
    assert code(e.value) == "PreconditionFailed"
    current = s3.head_object(Bucket=bucket, Key="dst")["ETag"]
    s3.delete_object(Bucket=bucket, Key="dst", IfMatch=current)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="dst")


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 checks If-None-Match apart from the write, so racing writers can both win", strict=False)
def test_concurrent_create_only_writes_let_exactly_one_win(server, s3, bucket, backend):
    """Checkpoint writers racing on one key with If-None-Match: exactly one 200; the others get
    412 (the object was there when they started) or 409 (it appeared while they uploaded).

    In front of an upstream, a loser may also get 503: the upstream may refuse the write and close
    the connection before it has read the body the gateway is still sending, and the gateway,
    which then never sees the upstream's answer, cannot claim 412 and answers "try again"
    (the write did not happen: exactly one winner is still checked)."""
    results: list[object] = []

    def writer(i: int) -> None:
        c = make_client(server.endpoint, server.access_key, server.secret_key)
        try:
            c.put_object(Bucket=bucket, Key="race", Body=bytes([i]) * (2 * MiB), IfNoneMatch="*")
            results.append(("ok", i))
        except ClientError as e:
            results.append((code(e), i))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [i for c, i in results if c == "ok"]
    assert len(wins) == 1, results
    allowed = {"ok", "PreconditionFailed", "ConditionalRequestConflict"}
    if backend != "local":
        allowed.add("ServiceUnavailable")
    assert all(c in allowed for c, _ in results), results
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == bytes([wins[0]]) * (2 * MiB)


def test_if_match_needs_get_object_permission(server, s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    writer = make_client(server.endpoint, ak, sk)
    writer.put_object(Bucket=bucket, Key="k2", Body=b"x", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        writer.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)
    assert code(e.value) == "AccessDenied" and "s3:GetObject" in str(e.value)


def test_conditional_delete_needs_get_object_permission(server, s3, bucket):
    """A delete with If-Match compares the object's ETag, so it reveals the object: "conditional
    deletes with a specific ETag value require both s3:DeleteObject and s3:GetObject permissions"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-delete-enforce.html)."""
    etag = s3.put_object(Bucket=bucket, Key="d", Body=b"v1")["ETag"]
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    deleter = make_client(server.endpoint, ak, sk)
    for guess in ('"00000000000000000000000000000000"', etag):
        with pytest.raises(ClientError) as e:
            deleter.delete_object(Bucket=bucket, Key="d", IfMatch=guess)
        assert code(e.value) == "AccessDenied" and "s3:GetObject" in str(e.value)
        with pytest.raises(ClientError) as e:
            deleter.delete_object(Bucket=bucket, Key="missing", IfMatch=guess)
        assert code(e.value) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="d")["Body"].read() == b"v1"
    deleter.delete_object(Bucket=bucket, Key="d")  # unconditional: s3:DeleteObject is enough


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not enforce If-Match/If-None-Match on CopyObject and DeleteObject")
def test_delete_objects_with_per_object_etags(s3, bucket):
    """DeleteObjects' per-object `ETag` is a conditional delete of that key
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html): a key
    whose object has another ETag is an `Error` (PreconditionFailed) and stays; the others go."""
    a = s3.put_object(Bucket=bucket, Key="a", Body=b"a1")["ETag"]
    b = s3.put_object(Bucket=bucket, Key="b", Body=b"b1")["ETag"]
    s3.put_object(Bucket=bucket, Key="c", Body=b"c1")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "ETag": a},
        {"Key": "b", "ETag": a},  # b's object has another ETag
        {"Key": "c"},
    ]})
    assert sorted(d["Key"] for d in r.get("Deleted", [])) == ["a", "c"], r
    assert [(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("b", "PreconditionFailed")], r
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"b1"
    for k in ("a", "c"):
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key=k)
    # An ETag names an object: none there is NoSuchKey for that key, as DeleteObject's If-Match.
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a", "ETag": a}, {"Key": "b", "ETag": b}]})
    assert [d["Key"] for d in r.get("Deleted", [])] == ["b"], r
    assert [(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("a", "NoSuchKey")], r
    # The conditions S3 keeps for directory buckets are refused, not ignored.
    s3.put_object(Bucket=bucket, Key="s", Body=b"s1")
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "s", "Size": 3}]})
    assert code(e.value) == "NotImplemented"
    assert s3.get_object(Bucket=bucket, Key="s")["Body"].read() == b"s1"


def test_an_empty_etag_or_if_match_is_refused_not_read_as_no_condition(server, s3, bucket):
    """Review 20, M2: an empty `ETag` element or `If-Match` header names no object; read as no
    condition (as an upstream may), it let a delete past a policy requiring conditional deletes."""
    s3.put_object(Bucket=bucket, Key="e", Body=b"kept")
    for etag in ("", "   "):
        with pytest.raises(ClientError) as e:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "e", "ETag": etag}]})
        assert code(e.value) == "InvalidArgument", e.value.response
    for value in ("", "  "):
        r = signed_request(server, "DELETE", f"/{bucket}/e", headers={"If-Match": value})
        assert r.status == 400 and b"InvalidArgument" in r.body, (value, r.status, r.body)
        r = signed_request(server, "PUT", f"/{bucket}/e", headers={"If-Match": value}, body=b"over")
        assert r.status == 400 and b"InvalidArgument" in r.body, (value, r.status, r.body)
    assert s3.get_object(Bucket=bucket, Key="e")["Body"].read() == b"kept"


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not enforce If-Match/If-None-Match on CopyObject and DeleteObject")
def test_delete_objects_decides_keys_in_the_order_the_body_names_them(s3, bucket):
    """Review 20, L2: a key named twice, first without and then with its ETag, is deleted by the
    first mention; the second finds no object (NoSuchKey), in front of an upstream too."""
    etag = s3.put_object(Bucket=bucket, Key="twice", Body=b"t")["ETag"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "twice"}, {"Key": "twice", "ETag": etag}]})
    assert [d["Key"] for d in r.get("Deleted", [])] == ["twice"], r
    assert [(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("twice", "NoSuchKey")], r


def test_delete_objects_etag_needs_get_object_permission(server, s3, bucket):
    """A key with an `ETag` compares the object's, so it needs s3:GetObject as DeleteObject's
    If-Match does ("you must have the s3:DeleteObject and s3:GetObject permissions",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html)."""
    etag = s3.put_object(Bucket=bucket, Key="g1", Body=b"v1")["ETag"]
    s3.put_object(Bucket=bucket, Key="g2", Body=b"v2")
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    deleter = make_client(server.endpoint, ak, sk)
    r = deleter.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "g1", "ETag": etag}, {"Key": "g1", "ETag": '"00000000000000000000000000000000"'}, {"Key": "g2"}]})
    assert [d["Key"] for d in r.get("Deleted", [])] == ["g2"], r
    assert [(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("g1", "AccessDenied")] * 2, r
    assert s3.get_object(Bucket=bucket, Key="g1")["Body"].read() == b"v1"


def test_a_bucket_policy_can_require_conditional_deletes(server, s3, bucket):
    """AWS's enforcement example (conditional-delete-enforce.html): deny s3:DeleteObject unless
    `s3:if-match` is present, which DeleteObject's `If-Match` and DeleteObjects' per-object
    `ETag` set."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"Null": {"s3:if-match": "true"}}}]}))
    try:
        c = make_client(server.endpoint, ak, sk)
        etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"] for k in ("p1", "p2", "p3", "p4")}
        with pytest.raises(ClientError) as e:
            c.delete_object(Bucket=bucket, Key="p1")
        assert code(e.value) == "AccessDenied"
        c.delete_object(Bucket=bucket, Key="p1", IfMatch=etags["p1"])
        r = c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "p2"}, {"Key": "p3", "ETag": etags["p3"]}]})
        assert [d["Key"] for d in r.get("Deleted", [])] == ["p3"], r
        assert [(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("p2", "AccessDenied")], r
        assert s3.get_object(Bucket=bucket, Key="p2")["Body"].read() == b"p2"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


def test_a_bucket_policy_can_require_create_only_writes(server, s3, bucket):
    """AWS's enforcement example: deny PutObject without If-None-Match when it creates an
    object (the multipart steps before completion are exempt)."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}}]}))
    c = make_client(server.endpoint, ak, sk)
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert code(e.value) == "AccessDenied"
    c.put_object(Bucket=bucket, Key="guarded", Body=b"x", IfNoneMatch="*")
    up = c.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = c.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"y")
    parts = {"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
    with pytest.raises(ClientError) as e:
        c.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload=parts)
    assert code(e.value) == "AccessDenied"
    c.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload=parts, IfNoneMatch="*")
    s3.delete_bucket_policy(Bucket=bucket)


def test_expected_bucket_owner_is_checked_not_ignored(server, s3, bucket):
    """ExpectedBucketOwner names the account the caller believes owns the bucket; a mismatch is
    403 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-owner-condition.html)."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ExpectedBucketOwner=server.account_id)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"other", ExpectedBucketOwner="111122223333")
    assert status(e.value) == 403
    put_rid = e.value.response["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"},
                       ExpectedSourceBucketOwner="111122223333")
    assert status(e.value) == 403
    copy_rid = e.value.response["ResponseMetadata"]["RequestId"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    # Both refusals are recorded denials of what they asked of the bucket the header is about
    # (reviews 18 and 19): the write of the destination, the read of the copy's source.
    events = wait_for_events(server.data_dir, lambda ev: sum(
        1 for x in ev if x["requestID"] in (put_rid, copy_rid) and x["stage"] == "completed") == 2)
    done = {x["requestID"]: x for x in events if x["stage"] == "completed"}
    assert done[put_rid]["decision"] == done[copy_rid]["decision"] == "Deny"
    assert (done[put_rid]["authorization"][-1]["action"], done[put_rid]["authorization"][-1]["resource"]) == (
        "s3:PutObject", f"arn:aws:s3:::{bucket}/k")
    assert (done[copy_rid]["authorization"][-1]["action"], done[copy_rid]["authorization"][-1]["resource"]) == (
        "s3:GetObject", f"arn:aws:s3:::{bucket}/k")
