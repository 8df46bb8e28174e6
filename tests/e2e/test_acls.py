"""ACLs disabled, as AWS does for every new bucket (S3 Object Ownership `BucketOwnerEnforced`,
issue 12): ACLs can be read and always show the owner with FULL_CONTROL; an ACL can be "set" only
to that same owner-only ACL; anything else is 400 AccessControlListNotSupported (or AccessDenied
first, under Block Public Access); ownership controls read BucketOwnerEnforced.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-ownership-error-responses.html
https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import keyhole_bin, make_client
from test_iam import error_code, iam_client, new_user

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def owner_only(acl: dict, owner_id: str) -> bool:
    grants = acl["Grants"]
    return (acl["Owner"]["ID"] == owner_id and len(grants) == 1
            and grants[0]["Permission"] == "FULL_CONTROL"
            and grants[0]["Grantee"] == {"ID": owner_id, "DisplayName": acl["Owner"].get("DisplayName"),
                                         "Type": "CanonicalUser"})


def test_acls_read_as_the_owners_full_control(server, s3, bucket, aws):
    owner = s3.list_buckets()["Owner"]["ID"]
    s3.put_object(Bucket=bucket, Key="data/a", Body=b"a")
    assert owner_only(s3.get_bucket_acl(Bucket=bucket), owner)
    assert owner_only(s3.get_object_acl(Bucket=bucket, Key="data/a"), owner)
    cli = json.loads(aws.ok("s3api", "get-object-acl", "--bucket", bucket, "--key", "data/a").stdout)
    assert cli["Grants"][0]["Permission"] == "FULL_CONTROL" and cli["Owner"]["ID"] == owner
    with pytest.raises(ClientError) as e:
        s3.get_object_acl(Bucket=bucket, Key="data/missing")
    assert error_code(e.value) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_acl(Bucket=bucket + "-missing")
    assert error_code(e.value) == "NoSuchBucket"


def test_only_the_owner_only_acl_can_be_set(server, s3, bucket, aws):
    owner = s3.list_buckets()["Owner"]["ID"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    # The forms that keep the owner's full control and nothing else are accepted (no change).
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="bucket-owner-full-control")
    mine = {"Owner": {"ID": owner}, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"}]}
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=mine)
    aws.ok("s3api", "put-bucket-acl", "--bucket", bucket, "--acl", "private")
    s3.put_object(Bucket=bucket, Key="k2", Body=b"v", ACL="bucket-owner-full-control")

    # Anything else: not supported, and nothing changes.
    others = [
        lambda: s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={
            "Owner": {"ID": owner}, "Grants": mine["Grants"] + [
                {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"}]}),
        lambda: s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={
            "Owner": {"ID": owner}, "Grants": [
                {"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "READ"}]}),
        lambda: s3.put_bucket_acl(Bucket=bucket, GrantRead=f'id="{owner}"'),
        lambda: s3.put_object(Bucket=bucket, Key="k3", Body=b"v", GrantFullControl='id="someone-else"'),
    ]
    for call in others:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "AccessControlListNotSupported", e.value.response
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "k3" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    cp = aws("s3api", "put-object-acl", "--bucket", bucket, "--key", "k", "--grant-read", f"uri={ALL_USERS}")
    assert cp.returncode != 0 and "AccessControlListNotSupported" in cp.stderr, cp.stderr
    # Block Public Access (on by default) refuses a public canned ACL before anything else.
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert error_code(e.value) == "AccessDenied"
    assert owner_only(s3.get_object_acl(Bucket=bucket, Key="k"), owner)
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="missing", ACL="private")
    assert error_code(e.value) == "NoSuchKey"


def test_public_acls_without_block_public_access_are_not_supported(fresh_server_factory):
    """With BlockPublicAcls off, a public canned ACL is still refused, now because the bucket
    does not allow ACLs (the AWS CLI example on the troubleshooting page: put-object with
    --acl public-read fails with AccessControlListNotSupported)."""
    kp = fresh_server_factory()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(kp.creds_path), AWS_CONFIG_FILE="/dev/null",
               KEYHOLE_ENDPOINT=kp.endpoint)
    put = subprocess.run([str(keyhole_bin()), "admin", "public-access-block", "put", "--block-public-acls", "false",
                          "--ignore-public-acls", "false"], capture_output=True, text=True, env=env, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert put.returncode == 0, put.stderr
    s3 = make_client(kp.endpoint, *kp.credentials())
    s3.create_bucket(Bucket="acl-open")
    for call in (lambda: s3.put_object(Bucket="acl-open", Key="k", Body=b"v", ACL="public-read"),
                 lambda: s3.put_bucket_acl(Bucket="acl-open", ACL="public-read-write")):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "AccessControlListNotSupported", e.value.response
        assert e.value.response["Error"]["Message"] == "The bucket does not allow ACLs"
    assert "Contents" not in s3.list_objects_v2(Bucket="acl-open")


def test_ownership_controls_are_bucket_owner_enforced(server, s3, bucket):
    got = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert got == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=got)
    for setting in ("ObjectWriter", "BucketOwnerPreferred"):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
                "Rules": [{"ObjectOwnership": setting}]})
        assert error_code(e.value) == "NotImplemented"
    with pytest.raises(ClientError) as e:
        s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert error_code(e.value) == "NotImplemented"
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"] == got


def test_acl_operations_are_authorized_by_their_own_actions(server, s3, bucket):
    """GetObjectAcl needs s3:GetObjectAcl, not s3:GetObject; GetBucketAcl s3:GetBucketAcl."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetBucketAcl"],
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]})
    user = make_client(server.endpoint, ak, sk)
    assert user.get_bucket_acl(Bucket=bucket)["Grants"][0]["Permission"] == "FULL_CONTROL"
    for call in (lambda: user.get_object_acl(Bucket=bucket, Key="k"),
                 lambda: user.put_object_acl(Bucket=bucket, Key="k", ACL="private"),
                 lambda: user.get_bucket_ownership_controls(Bucket=bucket)):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "AccessDenied"


def test_a_write_naming_an_acl_needs_the_acl_action(server, s3, bucket):
    """PutObject with an ACL needs s3:PutObjectAcl too, whatever the ACL (API_PutObject.html,
    Permissions): a policy denying the ACL action keeps refusing it with ACLs disabled."""
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    writer = make_client(server.endpoint, ak, sk)
    writer.put_object(Bucket=bucket, Key="plain", Body=b"v")
    with pytest.raises(ClientError) as e:
        writer.put_object(Bucket=bucket, Key="with-acl", Body=b"v", ACL="bucket-owner-full-control")
    assert error_code(e.value) == "AccessDenied" and "s3:PutObjectAcl" in str(e.value)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:PutObjectAcl"], "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    make_client(server.endpoint, ak, sk).put_object(Bucket=bucket, Key="with-acl", Body=b"v",
                                                    ACL="bucket-owner-full-control")
