"""The smaller S3 differences of issue 12 that ceph/s3-tests showed (scripts/s3-tests.sh): a
repeated CompleteMultipartUpload, Content-Encoding as sent, ListBuckets pagination, bucket
tagging, object tag sets answered in key order. Local store only: what an upstream answers to
these is the upstream's. (Re-creating one's own bucket is in test_buckets.py.)"""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import empty_and_delete_bucket
from e2e_helpers import assert_s3_error, make_client, multipart_etag, signed_request
from test_iam import iam_client, new_user

MIB = 1024 * 1024


def err(excinfo) -> tuple[str, int]:
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def user_client(server, actions: list[str], resource: str = "*"):
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]}
    _, ak, sk = new_user(iam_client(server), policy)
    return make_client(server.endpoint, ak, sk)


# --- CompleteMultipartUpload repeated -------------------------------------------------------


def test_repeated_complete_multipart_upload_answers_the_same_result(s3, bucket):
    # A client whose first CompleteMultipartUpload answer was lost sends it again; S3 answers
    # 200 with the same result (ceph/s3-tests test_multipart_upload, which AWS passes).
    p1, p2 = b"a" * (5 * MIB), b"tail"
    uid = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    parts = [
        {"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=n, Body=b)["ETag"]}
        for n, b in ((1, p1), (2, p2))
    ]
    first = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={"Parts": parts})
    again = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={"Parts": parts})
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert again["ETag"] == first["ETag"] == multipart_etag([p1, p2])
    assert (again["Bucket"], again["Key"]) == (bucket, "big")
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == p1 + p2
    # Other parts than the ones it completed with: that upload is gone.
    with pytest.raises(ClientError) as ei:
        s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={"Parts": parts[:1]})
    assert err(ei) == ("NoSuchUpload", 404)
    # Once the key holds another object, the upload is gone for every parts list.
    s3.put_object(Bucket=bucket, Key="big", Body=b"newer")
    with pytest.raises(ClientError) as ei:
        s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={"Parts": parts})
    assert err(ei) == ("NoSuchUpload", 404)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"newer"


def test_repeated_complete_needs_put_object_like_the_first(server, s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"x")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload=parts)
    reader = user_client(server, ["s3:GetObject", "s3:ListBucket"])
    with pytest.raises(ClientError) as ei:
        reader.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload=parts)
    assert err(ei) == ("AccessDenied", 403)


# --- Content-Encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("gzip", "gzip"),
        ("deflate, gzip", "deflate, gzip"),
        ("deflate,gzip", "deflate,gzip"),
        ("gzip, aws-chunked", "gzip"),
        ("aws-chunked, gzip", "gzip"),
        ("aws-chunked", None),
    ],
)
def test_content_encoding_is_kept_as_sent_without_aws_chunked(s3, bucket, sent, kept):
    s3.put_object(Bucket=bucket, Key="enc", Body=b"x", ContentEncoding=sent)
    head = s3.head_object(Bucket=bucket, Key="enc")
    assert head.get("ContentEncoding") == kept


# --- ListBuckets pagination ------------------------------------------------------------------


def test_list_buckets_pages_with_max_buckets_and_a_continuation_token(server, s3):
    prefix = f"lbp-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i}" for i in range(5)]
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        seen, token, pages = [], None, 0
        while True:
            kw = {"MaxBuckets": 2, "Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            page = s3.list_buckets(**kw)
            pages += 1
            assert len(page["Buckets"]) <= 2
            assert page["Prefix"] == prefix
            seen += [b["Name"] for b in page["Buckets"]]
            token = page.get("ContinuationToken")
            if not token:
                break
        assert (seen, pages) == (names, 3)
        # boto3's paginator walks the same pages.
        paged = [b["Name"] for p in s3.get_paginator("list_buckets").paginate(Prefix=prefix, PaginationConfig={"PageSize": 2}) for b in p["Buckets"]]
        assert paged == names
        # Without parameters every bucket is listed at once, with no token.
        everything = s3.list_buckets()
        assert "ContinuationToken" not in everything
        assert set(names) <= {b["Name"] for b in everything["Buckets"]}
        # botocore refuses these itself; sent raw they are InvalidArgument naming max-buckets.
        for bad in ("0", "10001", "x"):
            resp = signed_request(server, "GET", "/", query=f"max-buckets={bad}")
            assert_s3_error(resp, 400, "InvalidArgument")
            assert b"max-buckets" in resp.body
        with pytest.raises(ClientError) as ei:
            s3.list_buckets(ContinuationToken="not base64!")
        assert err(ei) == ("InvalidArgument", 400)
    finally:
        for n in names:
            empty_and_delete_bucket(s3, n)


def test_list_buckets_pages_still_need_list_all_my_buckets(server, s3):
    other = user_client(server, ["s3:GetObject"])
    with pytest.raises(ClientError) as ei:
        other.list_buckets(MaxBuckets=1)
    assert err(ei) == ("AccessDenied", 403)


# --- Bucket tagging --------------------------------------------------------------------------


def test_bucket_tagging_put_get_delete(s3, bucket, aws):
    with pytest.raises(ClientError) as ei:
        s3.get_bucket_tagging(Bucket=bucket)
    assert err(ei) == ("NoSuchTagSet", 404)
    tags = [{"Key": "team", "Value": "ml"}, {"Key": "cost-center", "Value": " 42 "}, {"Key": "empty", "Value": ""}]
    resp = s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert got == sorted(tags, key=lambda t: t["Key"])
    # aws-cli reads the same set.
    out = json.loads(aws.ok("s3api", "get-bucket-tagging", "--bucket", bucket).stdout)
    assert {t["Key"]: t["Value"] for t in out["TagSet"]} == {t["Key"]: t["Value"] for t in tags}
    # A put replaces the whole set.
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "only", "Value": "one"}]
    assert s3.delete_bucket_tagging(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.get_bucket_tagging(Bucket=bucket)
    assert err(ei) == ("NoSuchTagSet", 404)


def test_bucket_tagging_limits_and_missing_bucket(s3, bucket):
    fifty = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": fifty})
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    for bad in (
        fifty + [{"Key": "k50", "Value": "v"}],
        [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],
        [{"Key": "aws:reserved", "Value": "1"}],
        [{"Key": "k" * 129, "Value": "1"}],
    ):
        with pytest.raises(ClientError) as ei:
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": bad})
        assert err(ei) == ("InvalidTag", 400)
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    missing = f"nosuch-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClientError) as ei:
        s3.put_bucket_tagging(Bucket=missing, Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    assert err(ei) == ("NoSuchBucket", 404)


def test_bucket_tags_go_with_the_bucket(s3):
    name = f"tagsgone-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    try:
        with pytest.raises(ClientError) as ei:
            s3.get_bucket_tagging(Bucket=name)
        assert err(ei) == ("NoSuchTagSet", 404)
    finally:
        empty_and_delete_bucket(s3, name)


def test_bucket_tagging_is_authorized_as_get_and_put_bucket_tagging(server, s3, bucket):
    arn = f"arn:aws:s3:::{bucket}"
    reader = user_client(server, ["s3:GetBucketTagging"], arn)
    writer = user_client(server, ["s3:PutBucketTagging"], arn)
    object_tagger = user_client(server, ["s3:PutObjectTagging", "s3:GetObjectTagging"])
    tagset = {"TagSet": [{"Key": "a", "Value": "1"}]}
    for client in (reader, object_tagger):
        with pytest.raises(ClientError) as ei:
            client.put_bucket_tagging(Bucket=bucket, Tagging=tagset)
        assert err(ei) == ("AccessDenied", 403)
    writer.put_bucket_tagging(Bucket=bucket, Tagging=tagset)
    for client in (writer, object_tagger):
        with pytest.raises(ClientError) as ei:
            client.get_bucket_tagging(Bucket=bucket)
        assert err(ei) == ("AccessDenied", 403)
    assert reader.get_bucket_tagging(Bucket=bucket)["TagSet"] == tagset["TagSet"]
    # DeleteBucketTagging is authorized as s3:PutBucketTagging (AWS has no delete action).
    with pytest.raises(ClientError) as ei:
        reader.delete_bucket_tagging(Bucket=bucket)
    assert err(ei) == ("AccessDenied", 403)
    writer.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as ei:
        reader.get_bucket_tagging(Bucket=bucket)
    assert err(ei) == ("NoSuchTagSet", 404)


# --- Object tag sets -------------------------------------------------------------------------


def test_object_tags_are_answered_in_key_order(s3, bucket):
    # ceph/s3-tests test_put_obj_with_tags: `x-amz-tagging: foo=bar&bar` reads back as bar, foo.
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="foo=bar&bar")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [
        {"Key": "bar", "Value": ""},
        {"Key": "foo", "Value": "bar"},
    ]
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "z", "Value": " 1 "}, {"Key": "a", "Value": "2"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [
        {"Key": "a", "Value": "2"},
        {"Key": "z", "Value": " 1 "},
    ]


# --- A part number listed twice in CompleteMultipartUpload ------------------------------------


def test_a_part_sent_again_and_listed_twice_completes_with_its_last_entry(s3, bucket):
    # ceph/s3-tests test_multipart_resend_first_finishes_last: part 1 uploaded twice, both
    # answers listed; the part is the one uploaded last, and its entry is the last one.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="twice")["UploadId"]
    first = s3.upload_part(Bucket=bucket, Key="twice", UploadId=uid, PartNumber=1, Body=b"B" * 100)["ETag"]
    last = s3.upload_part(Bucket=bucket, Key="twice", UploadId=uid, PartNumber=1, Body=b"A" * 100)["ETag"]
    # The last entry naming a replaced upload of the part is InvalidPart; the upload stays.
    with pytest.raises(ClientError) as ei:
        s3.complete_multipart_upload(Bucket=bucket, Key="twice", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": last}, {"PartNumber": 1, "ETag": first}]})
    assert err(ei) == ("InvalidPart", 400)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="twice", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first}, {"PartNumber": 1, "ETag": last}]})
    assert done["ETag"] == multipart_etag([b"A" * 100])
    assert s3.get_object(Bucket=bucket, Key="twice")["Body"].read() == b"A" * 100


# --- Presigned URLs with a negative X-Amz-Expires ---------------------------------------------


def test_a_negative_x_amz_expires_is_403_request_has_expired(s3, bucket):
    import urllib.error
    import urllib.request

    s3.put_object(Bucket=bucket, Key="p", Body=b"x")
    ok = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60)
    assert urllib.request.urlopen(ok, timeout=10).read() == b"x"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=-7)
    assert "X-Amz-Expires=-7" in url
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(url, timeout=10)
    assert ei.value.code == 403
    body = ei.value.read()
    assert b"<Code>AccessDenied</Code>" in body and b"Request has expired" in body


# --- User metadata outside US-ASCII -----------------------------------------------------------


def test_non_ascii_metadata_is_stored_decoded_and_answered_rfc2047_encoded(s3, bucket):
    # S3 decodes RFC 2047 words before storing and encodes non-ASCII values as RFC 2047 when
    # answering (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html).
    import base64

    word = "=?UTF-8?B?" + base64.b64encode("Hello World\u00e9".encode()).decode() + "?="

    def raw_latin1(params, **_kw):
        # What ceph/s3-tests test_object_set_get_unicode_metadata sends: the header as a Python
        # str, which the HTTP client writes as ISO-8859-1 bytes.
        params["headers"]["x-amz-meta-raw"] = "Hello World\u00e9"

    s3.meta.events.register("before-call.s3.PutObject", raw_latin1)
    try:
        s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"word": word, "ascii": "plain =?x?= text"})
    finally:
        s3.meta.events.unregister("before-call.s3.PutObject", raw_latin1)
    meta = s3.head_object(Bucket=bucket, Key="m")["Metadata"]
    assert meta == {"raw": word, "word": word, "ascii": "plain =?x?= text"}
    assert s3.get_object(Bucket=bucket, Key="m")["Metadata"]["raw"] == word
    # A copy that keeps the metadata keeps the decoded value.
    s3.copy_object(Bucket=bucket, Key="m2", CopySource={"Bucket": bucket, "Key": "m"})
    assert s3.head_object(Bucket=bucket, Key="m2")["Metadata"]["word"] == word
