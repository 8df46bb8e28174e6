"""S3 object versioning on the local store, driven with boto3 and aws-cli (issue 12).

AWS's pages these tests follow:
- "Using versioning in S3 buckets": https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html
- "Working with delete markers": https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeleteMarker.html
- "Restoring previous versions": https://docs.aws.amazon.com/AmazonS3/latest/userguide/RestoringPreviousVersions.html
- API_ListObjectVersions.html, API_DeleteObject.html, API_DeleteObjects.html, API_GetObject.html,
  API_PutBucketVersioning.html, API_GetBucketVersioning.html
- "Actions, resources, and condition keys for Amazon S3" (s3:GetObjectVersion,
  s3:DeleteObjectVersion, s3:ListBucketVersions, s3:versionid)

Versioning is the local store's: an upstream bucket answers NotImplemented (docs/STATUS.md), so
this module runs on the local backend only.
"""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import make_client, read_trail, wait_for_events
from test_iam import error_code, iam_client, new_user


def headers(e: ClientError) -> dict[str, str]:
    return e.response["ResponseMetadata"]["HTTPHeaders"]


@pytest.fixture
def vbucket(s3, bucket) -> str:
    """A fresh bucket with versioning enabled (emptied of every version afterwards)."""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def versions_of(s3, bucket: str, **kw) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is delete marker, is latest) of every version and delete marker (boto3
    answers versions and markers in two lists, so the order between them is not kept)."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **kw):
        entries = [(v, False) for v in page.get("Versions", [])] + [(d, True) for d in page.get("DeleteMarkers", [])]
        out.extend((e["Key"], e["VersionId"], marker, e["IsLatest"]) for e, marker in entries)
    return out


def test_versioning_states_and_mfa_delete(server, s3, bucket):
    """API_GetBucketVersioning: a bucket never versioned answers no Status; once enabled it can
    only be suspended. MFA delete needs an MFA device keyhole does not have: refused."""
    got = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in got and "MFADelete" not in got
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Disabled"})
    assert error_code(e.value) == "IllegalVersioningConfigurationException"
    for kw in ({}, {"MFA": "arn:aws:iam::123456789012:mfa/root 123456"}):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled",
                                                                             "MFADelete": "Enabled"}, **kw)
        assert error_code(e.value) == "AccessDenied"
        assert "MfaDelete" in e.value.response["Error"]["Message"]
    # The refusal is a recorded denial (review 18: the trail said Allow for it).
    def refusals(ev):
        return [e for e in ev if e["eventName"] == "PutBucketVersioning" and e["stage"] == "completed"
                and e.get("httpStatus") == 403 and e["requestParameters"].get("bucketName") == bucket]
    events = wait_for_events(server.data_dir, lambda ev: len(refusals(ev)) == 2)
    assert all(e["decision"] == "Deny" for e in refusals(events)), refusals(events)
    # MFADelete Disabled is the state every bucket is in: accepted.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Disabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket=f"nope-{uuid.uuid4().hex[:8]}")
    assert error_code(e.value) == "NoSuchBucket"


def test_version_ids_on_put_copy_multipart_and_delete(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and len(v1) == 32
    copied = s3.copy_object(Bucket=vbucket, Key="copy", CopySource={"Bucket": vbucket, "Key": "k", "VersionId": v1})
    assert copied["CopySourceVersionId"] == v1 and copied["VersionId"]
    assert s3.get_object(Bucket=vbucket, Key="copy")["Body"].read() == b"one"
    up = s3.create_multipart_upload(Bucket=vbucket, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=vbucket, Key="mp", UploadId=up, PartNumber=1, Body=b"m")
    done = s3.complete_multipart_upload(Bucket=vbucket, Key="mp", UploadId=up,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["VersionId"]
    head = s3.head_object(Bucket=vbucket, Key="mp")
    assert head["VersionId"] == done["VersionId"]
    deleted = s3.delete_object(Bucket=vbucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] not in (v1, v2)
    # A bucket never versioned gives no version ids at all.
    plain = f"plain-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=plain)
    try:
        assert "VersionId" not in s3.put_object(Bucket=plain, Key="k", Body=b"x")
        assert "DeleteMarker" not in s3.delete_object(Bucket=plain, Key="k")
    finally:
        s3.delete_bucket(Bucket=plain)


def test_reads_by_version_and_delete_markers(s3, vbucket):
    """GetObject/HeadObject by versionId; a current delete marker is 404 NoSuchKey with
    `x-amz-delete-marker: true`; a delete marker named by its id is 405 MethodNotAllowed with its
    Last-Modified (API_GetObject.html, x-amz-delete-marker)."""
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"two")["VersionId"]
    assert s3.get_object(Bucket=vbucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    got = s3.get_object(Bucket=vbucket, Key="k")
    assert (got["Body"].read(), got["VersionId"]) == (b"two", v2)
    assert s3.head_object(Bucket=vbucket, Key="k", VersionId=v1)["ContentLength"] == 3
    marker = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k")
    assert error_code(e.value) == "NoSuchKey"
    h = headers(e.value)
    assert h["x-amz-delete-marker"] == "true" and h["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=vbucket, Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert headers(e.value)["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert error_code(e.value) == "MethodNotAllowed"
    h = headers(e.value)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
    assert h["x-amz-delete-marker"] == "true" and "last-modified" in h
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId="0" * 16 + "f" * 16)
    assert error_code(e.value) == "NoSuchVersion"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId="not-a-version")
    assert error_code(e.value) == "InvalidArgument"
    # ListObjects does not see the key; the old versions are still there.
    assert "Contents" not in s3.list_objects_v2(Bucket=vbucket)
    # Deleting the marker by its id brings v2 back.
    d = s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert d["DeleteMarker"] is True and d["VersionId"] == marker
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"two"
    # Conditional writes see the current version; a delete marker counts as absent.
    s3.delete_object(Bucket=vbucket, Key="k")
    s3.put_object(Bucket=vbucket, Key="k", Body=b"three", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=vbucket, Key="k", Body=b"four", IfNoneMatch="*")
    assert error_code(e.value) == "PreconditionFailed"


def test_list_object_versions_paginates(s3, vbucket):
    """ListObjectVersions: keys in order, each key's versions newest first, IsLatest on the
    current one; max-keys pages continue at NextKeyMarker/NextVersionIdMarker; a delimiter rolls
    keys up into CommonPrefixes (API_ListObjectVersions.html)."""
    made: dict[str, list[str]] = {}
    for key in ("a", "d/1", "d/2", "z"):
        made[key] = [s3.put_object(Bucket=vbucket, Key=key, Body=f"{key}{i}".encode())["VersionId"]
                     for i in range(3)]
    marker = s3.delete_object(Bucket=vbucket, Key="z")["VersionId"]
    pages, seen = 0, []
    kw = {"Bucket": vbucket, "MaxKeys": 2}
    while True:
        page = s3.list_object_versions(**kw)
        pages += 1
        entries = page.get("Versions", []) + page.get("DeleteMarkers", [])
        assert len(entries) <= 2
        seen.extend((e["Key"], e["VersionId"], e["IsLatest"]) for e in entries)
        if not page["IsTruncated"]:
            break
        kw.update(KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"])
    assert pages == 7
    want = []
    for key in ("a", "d/1", "d/2"):
        want += [(key, v, i == 0) for i, v in enumerate(reversed(made[key]))]
    want += [("z", marker, True)] + [("z", v, False) for v in reversed(made["z"])]
    assert sorted(seen) == sorted(want)
    # Within one key the order is newest first.
    assert [v for k, v, _ in seen if k == "a"] == list(reversed(made["a"]))
    rolled = s3.list_object_versions(Bucket=vbucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["d/"]
    assert {v["Key"] for v in rolled["Versions"]} == {"a", "z"}
    assert [d["Key"] for d in rolled["DeleteMarkers"]] == ["z"]
    only = s3.list_object_versions(Bucket=vbucket, Prefix="d/")
    assert len(only["Versions"]) == 6 and "DeleteMarkers" not in only
    enc = s3.list_object_versions(Bucket=vbucket, Prefix="d/", EncodingType="url")
    assert enc["EncodingType"] == "url"
    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket=vbucket, VersionIdMarker=made["a"][0])
    assert error_code(e.value) == "InvalidArgument"


def test_permanent_deletes_and_bucket_not_empty(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"one")["VersionId"]
    s3.delete_object(Bucket=vbucket, Key="k")
    # Versions and delete markers keep a bucket from being deleted.
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=vbucket)
    assert error_code(e.value) == "BucketNotEmpty"
    # DeleteObjects by version id answers VersionId, DeleteMarker, DeleteMarkerVersionId.
    entries = versions_of(s3, vbucket)
    marker = next(v for _, v, is_marker, _ in entries if is_marker)
    out = s3.delete_objects(Bucket=vbucket, Delete={"Objects": [
        {"Key": "k", "VersionId": v1}, {"Key": "k", "VersionId": marker}, {"Key": "fresh"}]})
    by = {(d["Key"], d.get("VersionId")): d for d in out["Deleted"]}
    assert by[("k", v1)].get("DeleteMarker") is None
    assert by[("k", marker)]["DeleteMarker"] is True and by[("k", marker)]["DeleteMarkerVersionId"] == marker
    assert by[("fresh", None)]["DeleteMarker"] is True and by[("fresh", None)]["DeleteMarkerVersionId"]
    assert [e[0] for e in versions_of(s3, vbucket)] == ["fresh"]
    # An empty VersionId is refused, not read as "no version" (review 12).
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=vbucket, Delete={"Objects": [{"Key": "fresh", "VersionId": ""}]})
    assert error_code(e.value) == "InvalidArgument"


def test_suspended_versioning_keeps_one_null_version(s3, bucket):
    """Written before versioning: the null version. While suspended, writes replace the null
    version and a delete makes a null delete marker; versions with ids stay."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"old"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    # A write makes the null version and names no version id in its answer, as S3 does
    # (API_PutObject's "Versioning suspended" example response has no x-amz-version-id; so do
    # a copy's and a completed multipart upload's); reads name the version `null`.
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"s1")
    assert "VersionId" not in put, put
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == "null"
    assert s3.get_object(Bucket=bucket, Key="k")["VersionId"] == "null"
    copied = s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"})
    assert "VersionId" not in copied and copied["CopySourceVersionId"] == "null", copied
    up = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=b"m")["ETag"]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]})
    assert "VersionId" not in done, done
    assert s3.head_object(Bucket=bucket, Key="m")["VersionId"] == "null"
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c", "VersionId": "null"},
                                                         {"Key": "m", "VersionId": "null"}]})
    s3.put_object(Bucket=bucket, Key="k", Body=b"s2")
    assert sorted(v for _, v, _, _ in versions_of(s3, bucket)) == sorted([v1, "null"])
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"s2"
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    entries = versions_of(s3, bucket)
    assert ("k", "null", True, True) in entries and ("k", v1, False, False) in entries and len(entries) == 2


def test_aws_cli_rolls_back_an_overwritten_checkpoint(aws, s3, bucket, tmp_path):
    """The rollback an ML user makes with aws-cli: enable versioning, overwrite, list the
    versions, read the old one by id, copy it over the current one ("Restoring previous
    versions")."""
    aws.ok("s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
    got = json.loads(aws.ok("s3api", "get-bucket-versioning", "--bucket", bucket).stdout)
    assert got["Status"] == "Enabled"
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    good.write_bytes(b"good weights")
    bad.write_bytes(b"poisoned")
    v_good = json.loads(aws.ok("s3api", "put-object", "--bucket", bucket, "--key", "ckpt/model.pt",
                               "--body", str(good)).stdout)["VersionId"]
    aws.ok("s3api", "put-object", "--bucket", bucket, "--key", "ckpt/model.pt", "--body", str(bad))
    listed = json.loads(aws.ok("s3api", "list-object-versions", "--bucket", bucket, "--prefix", "ckpt/").stdout)
    assert [v["IsLatest"] for v in listed["Versions"]] == [True, False]
    assert listed["Versions"][1]["VersionId"] == v_good
    out = tmp_path / "old.pt"
    aws.ok("s3api", "get-object", "--bucket", bucket, "--key", "ckpt/model.pt", "--version-id", v_good, str(out))
    assert out.read_bytes() == b"good weights"
    restored = json.loads(aws.ok("s3api", "copy-object", "--bucket", bucket, "--key", "ckpt/model.pt",
                                 "--copy-source", f"{bucket}/ckpt/model.pt?versionId={v_good}").stdout)
    assert restored["CopySourceVersionId"] == v_good
    assert s3.get_object(Bucket=bucket, Key="ckpt/model.pt")["Body"].read() == b"good weights"
    assert len(json.loads(aws.ok("s3api", "list-object-versions", "--bucket", bucket).stdout)["Versions"]) == 3
    # `aws s3 rm` then leaves a delete marker; the versions stay readable.
    aws.ok("s3", "rm", f"s3://{bucket}/ckpt/model.pt")
    listed = json.loads(aws.ok("s3api", "list-object-versions", "--bucket", bucket).stdout)
    assert listed["DeleteMarkers"][0]["IsLatest"] is True


def test_version_actions_are_separate_permissions(server, s3, vbucket):
    """AWS requires s3:GetObjectVersion (not s3:GetObject) to read a version by id, and
    s3:DeleteObjectVersion (not s3:DeleteObject) to delete one; s3:ListBucketVersions to list
    them; s3:versionid is in the context."""
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"two")["VersionId"]
    iam = iam_client(server)
    arn = f"arn:aws:s3:::{vbucket}/*"
    _, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:DeleteObject", "s3:ListBucket"], "Resource": [
            arn, f"arn:aws:s3:::{vbucket}"]}]})
    plain = make_client(server.endpoint, ak, sk)
    assert plain.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"two"
    for call in (lambda: plain.get_object(Bucket=vbucket, Key="k", VersionId=v1),
                 lambda: plain.head_object(Bucket=vbucket, Key="k", VersionId=v1),
                 lambda: plain.delete_object(Bucket=vbucket, Key="k", VersionId=v1),
                 lambda: plain.list_object_versions(Bucket=vbucket),
                 lambda: plain.get_object_tagging(Bucket=vbucket, Key="k", VersionId=v1)):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) in ("AccessDenied", "403"), e.value
    out = plain.delete_objects(Bucket=vbucket, Delete={"Objects": [{"Key": "k", "VersionId": v1}]})
    assert out["Errors"][0]["Code"] == "AccessDenied" and "Deleted" not in out
    # s3:DeleteObject alone makes a delete marker, and removes nothing.
    assert plain.delete_object(Bucket=vbucket, Key="k")["DeleteMarker"] is True
    assert s3.get_object(Bucket=vbucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    # s3:GetObjectVersion limited to one version with s3:versionid.
    _, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObjectVersion", "s3:DeleteObjectVersion"], "Resource": arn,
         "Condition": {"StringEquals": {"s3:versionid": v1}}}]})
    one = make_client(server.endpoint, ak, sk)
    assert one.get_object(Bucket=vbucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    with pytest.raises(ClientError) as e:
        one.get_object(Bucket=vbucket, Key="k", VersionId=v2)
    assert error_code(e.value) == "AccessDenied"
    out = one.delete_objects(Bucket=vbucket, Delete={"Objects": [{"Key": "k", "VersionId": v2},
                                                                 {"Key": "k", "VersionId": v1}]})
    assert [d["VersionId"] for d in out["Deleted"]] == [v1]
    assert [(x["VersionId"], x["Code"]) for x in out["Errors"]] == [(v2, "AccessDenied")]
    # The audit trail names the version each request named.
    events = wait_for_events(server.data_dir, lambda evs: any(
        e["eventName"] == "GetObject" and e["requestParameters"].get("versionId") == v2 for e in evs))
    denied = [e for e in events if e["eventName"] == "GetObject" and e["requestParameters"].get("versionId") == v2]
    assert denied[-1]["decision"] == "Deny"
    assert denied[-1]["authorization"][0]["action"] == "s3:GetObjectVersion"


def test_existing_object_tag_is_read_from_the_version_named(server, s3, vbucket):
    """s3:ExistingObjectTag with a versionId judges that version's tags, and the read is held to
    it: v1 tagged public is readable by id while the current version, tagged secret, is not."""
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"pub", Tagging="classification=public")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"sec", Tagging="classification=secret")["VersionId"]
    iam = iam_client(server)
    _, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectVersionTagging"],
         "Resource": f"arn:aws:s3:::{vbucket}/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}}}]})
    user = make_client(server.endpoint, ak, sk)
    assert user.get_object(Bucket=vbucket, Key="k", VersionId=v1)["Body"].read() == b"pub"
    assert user.get_object_tagging(Bucket=vbucket, Key="k", VersionId=v1)["TagSet"] == [
        {"Key": "classification", "Value": "public"}]
    for kw in ({}, {"VersionId": v2}):
        with pytest.raises(ClientError) as e:
            user.get_object(Bucket=vbucket, Key="k", **kw)
        assert error_code(e.value) == "AccessDenied", kw
    # Retagging one version by id changes the decision on that version only.
    s3.put_object_tagging(Bucket=vbucket, Key="k", VersionId=v1,
                          Tagging={"TagSet": [{"Key": "classification", "Value": "secret"}]})
    with pytest.raises(ClientError) as e:
        user.get_object(Bucket=vbucket, Key="k", VersionId=v1)
    assert error_code(e.value) == "AccessDenied"
    assert s3.get_object_tagging(Bucket=vbucket, Key="k", VersionId=v2)["TagSet"][0]["Value"] == "secret"
    attrs = s3.get_object_attributes(Bucket=vbucket, Key="k", VersionId=v1, ObjectAttributes=["ObjectSize"])
    assert attrs["ObjectSize"] == 3 and attrs["VersionId"] == v1


def test_a_job_writing_run_1_cannot_touch_other_versions(server, s3, vbucket, tmp_path):
    """A job's write grant (s3:PutObject on run-1/) writes new versions and nothing else: it
    cannot delete, read or retag any version, its own or another's."""
    from test_jobs import session_client, start_job

    other = s3.put_object(Bucket=vbucket, Key="run-0/ckpt.pt", Body=b"keep")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="run-1/ckpt.pt", Body=b"first")
    created = start_job(server, "--name", "versions", "--write", f"s3://{vbucket}/run-1/", "--for", "10m")
    job = session_client(server, created["Credentials"])
    mine = job.put_object(Bucket=vbucket, Key="run-1/ckpt.pt", Body=b"second")["VersionId"]
    earlier = [v for k, v, _, latest in versions_of(s3, vbucket) if k == "run-1/ckpt.pt" and not latest]
    for call in (lambda: job.delete_object(Bucket=vbucket, Key="run-0/ckpt.pt", VersionId=other),
                 lambda: job.delete_object(Bucket=vbucket, Key="run-1/ckpt.pt", VersionId=earlier[0]),
                 lambda: job.delete_object(Bucket=vbucket, Key="run-1/ckpt.pt", VersionId=mine),
                 lambda: job.get_object(Bucket=vbucket, Key="run-1/ckpt.pt", VersionId=earlier[0]),
                 lambda: job.put_object_tagging(Bucket=vbucket, Key="run-1/ckpt.pt", VersionId=earlier[0],
                                                Tagging={"TagSet": []}),
                 lambda: job.list_object_versions(Bucket=vbucket, Prefix="run-1/")):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "AccessDenied"
    out = job.delete_objects(Bucket=vbucket, Delete={"Objects": [{"Key": "run-0/ckpt.pt", "VersionId": other}]})
    assert out["Errors"][0]["Code"] == "AccessDenied"
    assert s3.get_object(Bucket=vbucket, Key="run-0/ckpt.pt", VersionId=other)["Body"].read() == b"keep"
    assert len([1 for k, *_ in versions_of(s3, vbucket) if k == "run-1/ckpt.pt"]) == 2


def test_the_trail_records_version_ids(server, s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="audited", Body=b"one")["VersionId"]
    s3.get_object(Bucket=vbucket, Key="audited", VersionId=v1)["Body"].read()
    marker = s3.delete_object(Bucket=vbucket, Key="audited")["VersionId"]
    events = wait_for_events(server.data_dir, lambda evs: any(
        e["eventName"] == "GetObject" and e["requestParameters"].get("versionId") == v1 for e in evs))
    put = [e for e in events if e["eventName"] == "PutObject" and e["stage"] == "completed"
           and e["requestParameters"].get("key") == "audited"]
    assert put[-1]["responseElements"]["x-amz-version-id"] == v1
    deleted = [e for e in read_trail(server.data_dir) if e["eventName"] == "DeleteObject"
               and e["stage"] == "completed" and e["requestParameters"].get("key") == "audited"]
    assert deleted[-1]["responseElements"] == {"x-amz-version-id": marker, "x-amz-delete-marker": "true"}


def test_a_browser_post_makes_a_version(s3, vbucket):
    """PostObject into a versioned bucket adds a version and answers its id (API_PostObject.html,
    x-amz-version-id)."""
    from test_post_upload import post

    v1 = s3.put_object(Bucket=vbucket, Key="form.txt", Body=b"first")["VersionId"]
    r = post(s3.generate_presigned_post(vbucket, "form.txt", ExpiresIn=300), b"posted")
    assert r.status_code == 204, r.text
    v2 = r.headers["x-amz-version-id"]
    assert v2 != v1
    assert s3.get_object(Bucket=vbucket, Key="form.txt", VersionId=v2)["Body"].read() == b"posted"
    assert s3.get_object(Bucket=vbucket, Key="form.txt", VersionId=v1)["Body"].read() == b"first"


def test_list_bucket_versions_takes_the_listing_keys(server, s3, vbucket):
    """s3:ListBucketVersions accepts s3:prefix (as s3:ListBucket does): a user may list the
    versions under one prefix only."""
    s3.put_object(Bucket=vbucket, Key="mine/a", Body=b"a")
    s3.put_object(Bucket=vbucket, Key="theirs/b", Body=b"b")
    iam = iam_client(server)
    _, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucketVersions", "Resource": f"arn:aws:s3:::{vbucket}",
         "Condition": {"StringEquals": {"s3:prefix": "mine/"}}}]})
    user = make_client(server.endpoint, ak, sk)
    assert [v["Key"] for v in user.list_object_versions(Bucket=vbucket, Prefix="mine/")["Versions"]] == ["mine/a"]
    for prefix in ("theirs/", ""):
        with pytest.raises(ClientError) as e:
            user.list_object_versions(Bucket=vbucket, Prefix=prefix)
        assert error_code(e.value) == "AccessDenied", prefix


def test_versions_around_the_inline_limit(s3, vbucket):
    """Bodies kept in the index (at most 64 KiB) and bodies in files, as versions of one key: each
    reads back by its id, a delete marker keeps them, deleting one by id leaves the others."""
    import os

    bodies = [os.urandom(n) for n in (10, 64 * 1024 + 1, 64 * 1024, 0)]
    ids = [s3.put_object(Bucket=vbucket, Key="k", Body=b)["VersionId"] for b in bodies]
    marker = s3.delete_object(Bucket=vbucket, Key="k")
    assert marker["DeleteMarker"]
    for vid, b in zip(ids, bodies):
        assert s3.get_object(Bucket=vbucket, Key="k", VersionId=vid)["Body"].read() == b
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=ids[0])
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=ids[1])
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=ids[0])
    assert error_code(e.value) in ("NoSuchVersion", "404")
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker["VersionId"])
    got = s3.get_object(Bucket=vbucket, Key="k")
    assert got["VersionId"] == ids[3] and got["Body"].read() == b""
    assert s3.get_object(Bucket=vbucket, Key="k", VersionId=ids[2])["Body"].read() == bodies[2]
    copied = s3.copy_object(Bucket=vbucket, Key="copy", CopySource={"Bucket": vbucket, "Key": "k", "VersionId": ids[2]})
    assert s3.get_object(Bucket=vbucket, Key="copy", VersionId=copied["VersionId"])["Body"].read() == bodies[2]
