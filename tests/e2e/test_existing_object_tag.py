"""`s3:ExistingObjectTag/KEY`: the object's own tags in the condition context, for the actions that
accept the key (GetObject, GetObjectTagging, ...), read only when a policy in play refers to them.

AWS: https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html
"""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import make_client
from test_iam import error_code, iam_client, new_user


@pytest.fixture
def tagged(server, s3):
    bucket = f"tags-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="public.txt", Body=b"p", Tagging="classification=public")
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"s", Tagging="classification=secret")
    s3.put_object(Bucket=bucket, Key="untagged.txt", Body=b"u")
    return bucket


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not implement object tagging (NotImplemented): the tags a policy needs cannot be read, so the request fails closed")
def test_identity_policy_on_existing_object_tag(server, s3, tagged):
    iam = iam_client(server)
    _, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{tagged}/*",
        "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}}}]})
    user = make_client(server.endpoint, ak, sk)
    assert user.get_object(Bucket=tagged, Key="public.txt")["Body"].read() == b"p"
    for key in ("secret.txt", "untagged.txt"):
        with pytest.raises(ClientError) as e:
            user.get_object(Bucket=tagged, Key=key)
        assert error_code(e.value) == "AccessDenied", key
    # PutObject does not accept the key (AWS supplies it only to the actions that list it), so the
    # condition is false even for an object tagged public.
    with pytest.raises(ClientError) as e:
        user.put_object(Bucket=tagged, Key="public.txt", Body=b"x")
    assert error_code(e.value) == "AccessDenied"
    # Retagging changes the decision at once.
    s3.put_object_tagging(Bucket=tagged, Key="secret.txt",
                          Tagging={"TagSet": [{"Key": "classification", "Value": "public"}]})
    assert user.get_object(Bucket=tagged, Key="secret.txt")["Body"].read() == b"s"


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not implement object tagging (NotImplemented): the tags a policy needs cannot be read, so the request fails closed")
def test_bucket_policy_deny_on_existing_object_tag_binds_other_grants(server, s3, tagged):
    iam = iam_client(server)
    name, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{tagged}/*"}]})
    deny = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:user/{name}"},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{tagged}/*",
        "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "secret"}}}]}
    s3.put_bucket_policy(Bucket=tagged, Policy=json.dumps(deny))
    try:
        user = make_client(server.endpoint, ak, sk)
        assert user.get_object(Bucket=tagged, Key="public.txt")["Body"].read() == b"p"
        assert user.get_object(Bucket=tagged, Key="untagged.txt")["Body"].read() == b"u"
        with pytest.raises(ClientError) as e:
            user.get_object(Bucket=tagged, Key="secret.txt")
        assert error_code(e.value) == "AccessDenied"
        assert "explicit deny in a resource-based policy" in e.value.response["Error"]["Message"]
    finally:
        s3.delete_bucket_policy(Bucket=tagged)
