"""Bucket operations: create (naming rules, LocationConstraint), head, location, delete, list,
and virtual-host style addressing."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import empty_and_delete_bucket
from e2e_helpers import assert_s3_error, make_client, signed_request, unique_bucket_name
from test_iam import iam_client, new_user


def client_error(excinfo) -> tuple[str, int]:
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def test_create_head_delete(s3):
    name = unique_bucket_name("chd")
    resp = s3.create_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.head_bucket(Bucket=name)
    # HEAD has no body: botocore reports the status as the code.
    assert client_error(ei) == ("404", 404)


def test_create_existing_bucket_is_owned_by_you(s3, bucket):
    # In us-east-1 the owner re-creating its bucket gets 200 ("for legacy compatibility") and
    # the bucket is left as it was; every other region answers 409 BucketAlreadyOwnedByYou
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html, Errors).
    s3.put_object(Bucket=bucket, Key="kept", Body=b"still here")
    resp = s3.create_bucket(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"still here"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]].count(bucket) == 1


def test_create_existing_bucket_outside_us_east_1_is_409(fresh_server_factory):
    kp = fresh_server_factory(region="eu-west-1")
    client = make_client(kp.endpoint, *kp.credentials(), region="eu-west-1")
    client.create_bucket(Bucket="again", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(ClientError) as ei:
        client.create_bucket(Bucket="again", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert client_error(ei) == ("BucketAlreadyOwnedByYou", 409)


def test_recreating_a_bucket_needs_create_bucket(server, s3, bucket):
    # The 200 is an answer to an allowed CreateBucket, not a way around its authorization.
    _, ak, sk = new_user(iam_client(server), {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]})
    with pytest.raises(ClientError) as ei:
        make_client(server.endpoint, ak, sk).create_bucket(Bucket=bucket)
    assert client_error(ei) == ("AccessDenied", 403)


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "UpperCase",
        "under_score",
        "-leading-hyphen",
        "trailing-hyphen-",
        "192.168.5.4",  # formatted as an IP address
        "double..dot",
        "xn--prefixed",
        "suffixed-s3alias",
        "sthree-prefixed",
        "object-lambda--ol-s3",
        "dash-.dot",  # a hyphen next to a period (cloudtrail-s3-bucket-naming-requirements.html)
        "dot.-dash",
    ],
)
def test_invalid_bucket_names(server, s3, name):
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    resp = signed_request(server, "PUT", f"/{name}")
    assert_s3_error(resp, 400, "InvalidBucketName")
    listed = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert name not in listed


def test_a_bucket_named_metrics_is_listed_like_any_other(fresh_server_factory):
    """`GET /metrics` with no query is the gateway's metrics page; with a query it is S3's, so a
    bucket named `metrics` lists (ListObjectsV2 sends `list-type=2`) instead of answering the
    metrics page to boto3 (review 30, F5)."""
    import urllib.request

    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="metrics")
    s3.put_object(Bucket="metrics", Key="k", Body=b"v")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="metrics")["Contents"]] == ["k"]
    assert "keyhole_" in urllib.request.urlopen(f"{kp.endpoint}/metrics", timeout=10).read().decode()
    # `//metrics` names no bucket (an empty name): InvalidBucketName, not a request decided on
    # `arn:aws:s3:::/metrics` (review 31, L4).
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", kp.port, timeout=10)
    conn.request("GET", "//metrics")
    answer = conn.getresponse()
    assert answer.status == 400 and b"InvalidBucketName" in answer.read()
    conn.close()


def test_create_bucket_object_ownership(s3):
    """`x-amz-object-ownership` at CreateBucket (API_CreateBucket.html): BucketOwnerEnforced,
    AWS's default, is what every bucket here is; the settings that enable ACLs are refused (501,
    as PutBucketOwnershipControls refuses them) and create nothing, instead of a bucket that
    silently differs from the one asked for."""
    enforced = unique_bucket_name("own")
    s3.create_bucket(Bucket=enforced, ObjectOwnership="BucketOwnerEnforced")
    rules = s3.get_bucket_ownership_controls(Bucket=enforced)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    for setting in ("BucketOwnerPreferred", "ObjectWriter"):
        name = unique_bucket_name("own")
        with pytest.raises(ClientError) as ei:
            s3.create_bucket(Bucket=name, ObjectOwnership=setting)
        assert client_error(ei) == ("NotImplemented", 501)
        assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.delete_bucket(Bucket=enforced)


def test_valid_edge_names(s3):
    for name in ["abc", "a" * 63, "with.dots.ok", "0-digits-first"]:
        s3.create_bucket(Bucket=name)
        try:
            assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
        finally:
            s3.delete_bucket(Bucket=name)


def test_get_bucket_location_default(s3, bucket):
    # us-east-1 buckets report an empty LocationConstraint, which boto3 turns into None.
    assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") is None


def test_create_with_location_constraint(fresh_server_factory):
    kp = fresh_server_factory(region="eu-west-1")
    ak, sk = kp.credentials()
    client = make_client(kp.endpoint, ak, sk, region="eu-west-1")
    client.create_bucket(Bucket="located", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert client.get_bucket_location(Bucket="located")["LocationConstraint"] == "eu-west-1"
    assert client.head_bucket(Bucket="located")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_create_with_bogus_location_constraint(server, s3):
    name = unique_bucket_name("bogusloc")
    body = (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LocationConstraint>not-a-region</LocationConstraint></CreateBucketConfiguration>"
    )
    resp = signed_request(server, "PUT", f"/{name}", body=body)
    assert_s3_error(resp, 400, "InvalidLocationConstraint")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # Another region's name is S3's IllegalLocationConstraintException (the region-specific
    # endpoint does not serve it); `us-east-1` spelled out stays InvalidLocationConstraint.
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert e.value.response["Error"]["Code"] == "IllegalLocationConstraintException"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert e.value.response["Error"]["Code"] == "InvalidLocationConstraint"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_with_malformed_configuration(server, s3):
    name = unique_bucket_name("badxml")
    resp = signed_request(server, "PUT", f"/{name}", body=b"<CreateBucketConfiguration><Loc")
    assert_s3_error(resp, 400, "MalformedXML")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_delete_non_empty_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    with pytest.raises(ClientError) as ei:
        s3.delete_bucket(Bucket=bucket)
    assert client_error(ei) == ("BucketNotEmpty", 409)
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"


def test_delete_bucket_with_only_pending_multipart_upload(s3):
    # AWS deletes a bucket whose only content is an unfinished multipart upload, and the upload
    # goes with it (ceph/ceph#15630 and scality/cloudserver#1591 record the observed behaviour).
    name = unique_bucket_name("pendingmpu")
    s3.create_bucket(Bucket=name)
    s3.create_multipart_upload(Bucket=name, Key="pending")
    assert s3.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.create_bucket(Bucket=name)
    try:
        assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    finally:
        empty_and_delete_bucket(s3, name)


def test_missing_bucket_errors(s3):
    name = unique_bucket_name("missing")
    with pytest.raises(ClientError) as ei:
        s3.delete_bucket(Bucket=name)
    assert client_error(ei) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as ei:
        s3.list_objects_v2(Bucket=name)
    assert client_error(ei) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=name, Key="k", Body=b"x")
    assert client_error(ei) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as ei:
        s3.get_bucket_location(Bucket=name)
    assert client_error(ei) == ("NoSuchBucket", 404)


def test_list_buckets(server, s3):
    names = sorted(unique_bucket_name(f"lb{i}") for i in range(3))
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        resp = s3.list_buckets()
        listed = [b["Name"] for b in resp["Buckets"]]
        for n in names:
            assert n in listed
        assert listed == sorted(listed), "ListBuckets is ordered by name"
        for b in resp["Buckets"]:
            assert b["CreationDate"] is not None
        assert resp["Owner"]["ID"], "ListBuckets names the owner"
    finally:
        for n in names:
            s3.delete_bucket(Bucket=n)
    listed = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    for n in names:
        assert n not in listed


def test_virtual_host_style(s3, s3_vhost, bucket):
    # boto3 sends Host: <bucket>.localhost:PORT and path /<key>; the server must take the
    # bucket from the Host header (--domain localhost).
    assert s3_vhost.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    s3_vhost.put_object(Bucket=bucket, Key="dir/vhost.txt", Body=b"via vhost")
    assert s3.get_object(Bucket=bucket, Key="dir/vhost.txt")["Body"].read() == b"via vhost"
    s3.put_object(Bucket=bucket, Key="path.txt", Body=b"via path")
    assert s3_vhost.get_object(Bucket=bucket, Key="path.txt")["Body"].read() == b"via path"
    keys = [o["Key"] for o in s3_vhost.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["dir/vhost.txt", "path.txt"]
    s3_vhost.delete_object(Bucket=bucket, Key="dir/vhost.txt")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["path.txt"]


def test_virtual_host_bucket_create_and_delete(s3, s3_vhost):
    name = unique_bucket_name("vhcreate")
    s3_vhost.create_bucket(Bucket=name)
    try:
        assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        empty_and_delete_bucket(s3_vhost, name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_virtual_host_raw_requests(server, s3):
    # Host: <bucket>.localhost:PORT with the key as the whole path, dotted bucket names included.
    for name in (unique_bucket_name("vhraw"), "with.dots." + unique_bucket_name("x")):
        s3.create_bucket(Bucket=name)
        try:
            host = {"Host": f"{name}.localhost:{server.port}"}
            put = signed_request(server, "PUT", "/dir/obj.txt", headers=host, body=b"raw vhost")
            assert put.status == 200, put.body[:300]
            assert s3.get_object(Bucket=name, Key="dir/obj.txt")["Body"].read() == b"raw vhost"
            got = signed_request(server, "GET", "/dir/obj.txt", headers=host)
            assert got.status == 200 and got.body == b"raw vhost"
            listing = signed_request(server, "GET", "/", query="list-type=2", headers=host)
            assert listing.status == 200 and b"<Key>dir/obj.txt</Key>" in listing.body
        finally:
            empty_and_delete_bucket(s3, name)


def test_virtual_host_missing_bucket(server):
    name = unique_bucket_name("vhmissing")
    resp = signed_request(server, "GET", "/", query="list-type=2", headers={"Host": f"{name}.localhost:{server.port}"})
    assert_s3_error(resp, 404, "NoSuchBucket")


def test_virtual_host_presigned_url(s3, s3_vhost, bucket):
    import urllib.request

    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"vhost presigned")
    url = s3_vhost.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=60)
    assert url.startswith(f"http://{bucket}.localhost:"), url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == b"vhost presigned"


def test_concurrent_create_same_bucket(s3):
    from concurrent.futures import ThreadPoolExecutor

    name = unique_bucket_name("racecreate")

    def create():
        try:
            return s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"]
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [f.result() for f in [pool.submit(create) for _ in range(6)]]
    try:
        assert 200 in results
        assert all(r in (200, "BucketAlreadyOwnedByYou") for r in results), results
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]].count(name) == 1
    finally:
        empty_and_delete_bucket(s3, name)


def test_delete_bucket_racing_put_never_loses_an_acknowledged_object(s3):
    """DeleteBucket and PutObject racing: if the PUT was acknowledged, the object (and so the
    bucket) must still exist; if the bucket is gone, the PUT must have failed."""
    from concurrent.futures import ThreadPoolExecutor

    for i in range(10):
        name = unique_bucket_name(f"racedel{i}")
        s3.create_bucket(Bucket=name)

        def put():
            try:
                s3.put_object(Bucket=name, Key="k", Body=b"acknowledged")
                return "ok"
            except ClientError as e:
                return e.response["Error"]["Code"]

        def delete():
            try:
                s3.delete_bucket(Bucket=name)
                return "deleted"
            except ClientError as e:
                return e.response["Error"]["Code"]

        with ThreadPoolExecutor(max_workers=2) as pool:
            fp, fd = pool.submit(put), pool.submit(delete)
            rp, rd = fp.result(), fd.result()
        exists = name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        try:
            if rp == "ok":
                assert rd == "BucketNotEmpty", (rp, rd)
                assert exists and s3.get_object(Bucket=name, Key="k")["Body"].read() == b"acknowledged"
            else:
                assert rp == "NoSuchBucket" and rd == "deleted", (rp, rd)
                assert not exists
        finally:
            if exists:
                empty_and_delete_bucket(s3, name)
