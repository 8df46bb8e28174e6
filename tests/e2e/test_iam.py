"""IAM users, access keys and policies through `aws iam` and boto3, and their enforcement on S3
requests by the policy engine (issue 4, first slice).

AWS pages the cases follow:
- https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
- https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html (s3:prefix)
- https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html (aws:SourceIp)
"""

from __future__ import annotations

import http.client
import json
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, AwsCli, make_client, remember_secrets, sign, status_from

SHARED = Path(__file__).resolve().parents[3] / "shared" / "test-data" / "policies"


def iam_client(server, ak=None, sk=None):
    return boto3.session.Session().client(
        "iam",
        endpoint_url=server.endpoint,
        aws_access_key_id=ak or server.access_key,
        aws_secret_access_key=sk or server.secret_key,
        region_name=REGION,
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def new_user(iam, policy: dict | None = None, name: str | None = None):
    """A user with one access key (and an inline policy); returns (name, ak, sk)."""
    name = name or f"u-{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    remember_secrets(key["SecretAccessKey"])
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    return name, key["AccessKeyId"], key["SecretAccessKey"]


def error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_aws_cli_user_lifecycle(aws, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = json.loads(aws.ok("iam", "create-user", "--user-name", name).stdout)["User"]
    assert created["UserName"] == name and created["UserId"].startswith("AIDA")
    assert created["Arn"].endswith(f":user/{name}")
    again = aws("iam", "create-user", "--user-name", name)
    assert again.returncode != 0 and "EntityAlreadyExists" in again.stderr

    key = json.loads(aws.ok("iam", "create-access-key", "--user-name", name).stdout)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    listed = json.loads(aws.ok("iam", "list-access-keys", "--user-name", name).stdout)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    assert "SecretAccessKey" not in listed[0]

    bad = tmp_path / "bad.json"
    bad.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}')
    cp = aws("iam", "put-user-policy", "--user-name", name, "--policy-name", "p", "--policy-document", f"file://{bad}")
    assert cp.returncode != 0 and "MalformedPolicyDocument" in cp.stderr, cp.stderr

    policy = SHARED / "slm-readonly.json"
    aws.ok("iam", "put-user-policy", "--user-name", name, "--policy-name", "slm", "--policy-document", f"file://{policy}")
    got = json.loads(aws.ok("iam", "get-user-policy", "--user-name", name, "--policy-name", "slm").stdout)
    assert got["PolicyDocument"] == json.loads(policy.read_text())

    cp = aws("iam", "delete-user", "--user-name", name)
    assert cp.returncode != 0 and "DeleteConflict" in cp.stderr
    aws.ok("iam", "delete-user-policy", "--user-name", name, "--policy-name", "slm")
    aws.ok("iam", "delete-access-key", "--user-name", name, "--access-key-id", key["AccessKeyId"])
    aws.ok("iam", "delete-user", "--user-name", name)
    cp = aws("iam", "get-user", "--user-name", name)
    assert cp.returncode != 0 and "NoSuchEntity" in cp.stderr


def test_slm_readonly_prefix_listing(server, s3):
    """The s3:prefix case: listing inside the granted prefixes works, the bucket root or another
    prefix is denied (shared/test-data/policies/slm-readonly.json, adapted to a fresh bucket)."""
    bucket = f"slm-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for k in ["prompts/a.txt", "embeddings/e.bin", "private/secret.txt"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    policy = json.loads((SHARED / "slm-readonly.json").read_text().replace("acmeco-slm-data", bucket))
    _, ak, sk = new_user(iam_client(server), policy)
    user = make_client(server.endpoint, ak, sk)

    listed = user.list_objects_v2(Bucket=bucket, Prefix="prompts/")
    assert [o["Key"] for o in listed["Contents"]] == ["prompts/a.txt"]
    assert user.get_object(Bucket=bucket, Key="embeddings/e.bin")["Body"].read() == b"x"
    for kwargs in [{}, {"Prefix": "private/"}, {"Prefix": ""}]:
        with pytest.raises(ClientError) as e:
            user.list_objects_v2(Bucket=bucket, **kwargs)
        assert error_code(e.value) == "AccessDenied"
        assert "because no identity-based policy allows the s3:ListBucket action" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        user.get_object(Bucket=bucket, Key="private/secret.txt")
    assert error_code(e.value) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        user.put_object(Bucket=bucket, Key="prompts/new.txt", Body=b"y")
    assert error_code(e.value) == "AccessDenied"
    assert "s3:PutObject" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="prompts/new.txt")


def test_explicit_deny_beats_allow_and_managed_policies(server, s3):
    bucket = f"deny-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    iam = iam_client(server)
    allow_all = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
    pol = iam.create_policy(PolicyName=f"all-{bucket}", PolicyDocument=json.dumps(allow_all))["Policy"]
    deny_delete = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    name, ak, sk = new_user(iam, deny_delete)
    user = make_client(server.endpoint, ak, sk)
    with pytest.raises(ClientError) as e:
        user.get_object(Bucket=bucket, Key="k")
    assert error_code(e.value) == "AccessDenied", "nothing allows before the managed policy is attached"

    iam.attach_user_policy(UserName=name, PolicyArn=pol["Arn"])
    assert user.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    user.put_object(Bucket=bucket, Key="k2", Body=b"w")
    with pytest.raises(ClientError) as e:
        user.delete_object(Bucket=bucket, Key="k")
    assert error_code(e.value) == "AccessDenied"
    assert "with an explicit deny in an identity-based policy" in e.value.response["Error"]["Message"]
    # DeleteObjects checks every key: each is refused, nothing is deleted.
    out = user.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}, {"Key": "k2"}]})
    assert sorted(err["Key"] for err in out["Errors"]) == ["k", "k2"]
    assert all(err["Code"] == "AccessDenied" for err in out["Errors"])
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 1

    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=pol["Arn"])
    assert error_code(e.value) == "DeleteConflict"
    attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [pol["Arn"]]
    iam.detach_user_policy(UserName=name, PolicyArn=pol["Arn"])
    with pytest.raises(ClientError):
        user.get_object(Bucket=bucket, Key="k")


def test_deactivated_key_is_refused_at_once(server, s3):
    bucket = f"keys-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]}
    iam = iam_client(server)
    name, ak, sk = new_user(iam, policy)
    user = make_client(server.endpoint, ak, sk)
    user.list_objects_v2(Bucket=bucket)
    iam.update_access_key(UserName=name, AccessKeyId=ak, Status="Inactive")
    with pytest.raises(ClientError) as e:
        user.list_objects_v2(Bucket=bucket)
    assert error_code(e.value) == "InvalidAccessKeyId"
    iam.update_access_key(UserName=name, AccessKeyId=ak, Status="Active")
    user.list_objects_v2(Bucket=bucket)
    iam.delete_access_key(UserName=name, AccessKeyId=ak)
    with pytest.raises(ClientError) as e:
        user.list_objects_v2(Bucket=bucket)
    assert error_code(e.value) == "InvalidAccessKeyId"


def test_iam_actions_are_authorized_too(server):
    iam = iam_client(server)
    _, ak, sk = new_user(iam)
    as_user = iam_client(server, ak, sk)
    with pytest.raises(ClientError) as e:
        as_user.create_user(UserName=f"x-{uuid.uuid4().hex[:6]}")
    assert error_code(e.value) == "AccessDenied"
    assert "iam:CreateUser" in e.value.response["Error"]["Message"]
    # A user may be granted exactly the IAM actions it needs.
    name2, ak2, sk2 = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:GetUser", "iam:ListAccessKeys"], "Resource": "arn:aws:iam::*:user/${aws:username}"}]})
    self_client = iam_client(server, ak2, sk2)
    assert self_client.get_user()["User"]["UserName"] == name2
    assert len(self_client.list_access_keys()["AccessKeyMetadata"]) == 1
    with pytest.raises(ClientError):
        self_client.list_users()


def test_get_user_without_a_name_answers_the_caller_root_included(server, aws):
    """GetUser without UserName "defaults to the user making the request"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetUser.html): the root user gets
    its own `:root` ARN with the account id as its id (no name or path: it is no IAM user)."""
    root = iam_client(server).get_user()["User"]
    assert root["Arn"] == f"arn:aws:iam::{server.account_id}:root", root
    assert root["UserId"] == server.account_id and "UserName" not in root, root
    assert root["CreateDate"].year >= 2026
    out = json.loads(aws.ok("iam", "get-user", "--output", "json").stdout)
    assert out["User"]["Arn"] == f"arn:aws:iam::{server.account_id}:root", out
    # Naming a user still answers that user, for root as for anyone allowed.
    name, _, _ = new_user(iam_client(server))
    assert iam_client(server).get_user(UserName=name)["User"]["UserName"] == name
    with pytest.raises(ClientError) as e:
        iam_client(server).get_user(UserName="no-such-user-xyz")
    assert error_code(e.value) == "NoSuchEntity"
    # An empty UserName is not "the caller" (its minimum length is 1), nor an empty PathPrefix "/".
    unchecked = boto3.session.Session().client(
        "iam", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name=REGION,
        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))
    for call in (lambda: unchecked.get_user(UserName=""), lambda: unchecked.list_access_keys(UserName=""),
                 lambda: unchecked.list_users(PathPrefix="")):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "ValidationError"


def test_list_users_and_roles_honour_path_prefix_in_name_order(server):
    """ListUsers/ListRoles/ListGroups `PathPrefix`: those whose path starts with it
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListUsers.html), listed by name
    without regard to case; a prefix that does not begin with `/` is refused."""
    iam = iam_client(server)
    base = f"/lp-{uuid.uuid4().hex[:8]}/"
    names = [f"lp-{x}-{uuid.uuid4().hex[:4]}" for x in ("aa", "Ab", "ac", "Ad")]
    trust_doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                            "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"}}]})
    for n, sub in zip(reversed(names), ("w/", "x/", "y/", "z/")):
        iam.create_user(UserName=n, Path=base + sub)
        iam.create_role(RoleName=n, Path=base + sub, AssumeRolePolicyDocument=trust_doc)
        iam.create_group(GroupName=n, Path=base + sub)
    assert [u["UserName"] for u in iam.list_users(PathPrefix=base)["Users"]] == names
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix=base)["Roles"]] == names
    assert [g["GroupName"] for g in iam.list_groups(PathPrefix=base)["Groups"]] == names
    # The prefix is a prefix of the path: `…/x` matches the path `…/x/` only.
    assert [u["UserName"] for u in iam.list_users(PathPrefix=base + "x")["Users"]] == [names[2]]
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix=base + "z/")["Roles"]] == [names[0]]
    assert iam.list_users(PathPrefix=base + "none/")["Users"] == []
    everyone = [u["UserName"] for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    assert set(names) <= set(everyone) and everyone == sorted(everyone, key=lambda n: (n.lower(), n))
    with pytest.raises(ClientError) as e:
        iam.list_users(PathPrefix="no-slash")
    assert error_code(e.value) == "ValidationError"


def test_get_and_create_answer_the_principal_s_tags(server):
    """CreateUser, GetUser, CreateRole and GetRole answer the entity's `Tags` (API_User.html,
    API_Role.html); the lists do not ("this operation does not return tags",
    API_ListUsers.html). Review 29, F2."""
    iam = iam_client(server)
    name = f"tagged-{uuid.uuid4().hex[:8]}"
    tags = [{"Key": "team", "Value": "ml"}]
    assert iam.create_user(UserName=name, Tags=tags)["User"]["Tags"] == tags
    assert iam.get_user(UserName=name)["User"]["Tags"] == tags
    listed = [u for p in iam.get_paginator("list_users").paginate() for u in p["Users"] if u["UserName"] == name]
    assert listed and "Tags" not in listed[0]
    plain = f"untagged-{uuid.uuid4().hex[:8]}"
    assert "Tags" not in iam.create_user(UserName=plain)["User"]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"}}]})
    assert iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, Tags=tags)["Role"]["Tags"] == tags
    assert iam.get_role(RoleName=name)["Role"]["Tags"] == tags
    iam.delete_role(RoleName=name)
    for n in (name, plain):
        iam.delete_user(UserName=n)


def test_lists_are_paged_by_max_items_and_marker(server, aws):
    """IAM list paging (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListUsers.html):
    `MaxItems` bounds a page, `IsTruncated` and `Marker` say where the next starts; without
    `MaxItems` a page holds at most 100 ("the number of items defaults to 100"). boto3's
    paginators and aws-cli's automatic paging follow the markers to the whole list."""
    iam = iam_client(server)
    base = f"/pg-{uuid.uuid4().hex[:8]}/"
    names = sorted(f"pg-{i:03d}-{uuid.uuid4().hex[:4]}" for i in range(103))
    for n in names:
        iam.create_user(UserName=n, Path=base)
    # MaxItems and Marker by hand.
    seen, marker, pages = [], None, 0
    while True:
        kw = {"PathPrefix": base, "MaxItems": 40}
        if marker:
            kw["Marker"] = marker
        page = iam.list_users(**kw)
        pages += 1
        assert len(page["Users"]) <= 40
        seen += [u["UserName"] for u in page["Users"]]
        if not page["IsTruncated"]:
            assert "Marker" not in page
            break
        marker = page["Marker"]
    assert seen == names and pages == 3
    # The default page is 100 items.
    first = iam.list_users(PathPrefix=base)
    assert len(first["Users"]) == 100 and first["IsTruncated"] and first["Marker"]
    # boto3's paginator and aws-cli (which pages by itself) see the whole list.
    paged = [u["UserName"] for p in iam.get_paginator("list_users").paginate(
        PathPrefix=base, PaginationConfig={"PageSize": 7}) for u in p["Users"]]
    assert paged == names
    listed = json.loads(aws.ok("iam", "list-users", "--path-prefix", base).stdout)
    assert [u["UserName"] for u in listed["Users"]] == names
    capped = json.loads(aws.ok("iam", "list-users", "--path-prefix", base, "--max-items", "5").stdout)
    assert [u["UserName"] for u in capped["Users"]] == names[:5] and capped.get("NextToken")
    # Bad values are refused by the gateway (not only by boto3's own checks), naming the parameter.
    unchecked = boto3.session.Session().client(
        "iam", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name=REGION,
        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))
    for kw in ({"MaxItems": 0}, {"MaxItems": 1001}, {"Marker": "not-a-marker"}):
        with pytest.raises(ClientError) as e:
            unchecked.list_users(PathPrefix=base, **kw)
        assert error_code(e.value) == "ValidationError"
        assert next(iter(kw)) in e.value.response["Error"]["Message"]
    # GetGroup's members, and a user's groups, are paged the same way.
    group = f"pg-{uuid.uuid4().hex[:8]}"
    iam.create_group(GroupName=group)
    for n in names[:5]:
        iam.add_user_to_group(GroupName=group, UserName=n)
    got = iam.get_group(GroupName=group, MaxItems=2)
    assert len(got["Users"]) == 2 and got["IsTruncated"]
    members = [u["UserName"] for p in iam.get_paginator("get_group").paginate(
        GroupName=group, PaginationConfig={"PageSize": 2}) for u in p["Users"]]
    assert sorted(members) == names[:5]
    for n in names[:5]:
        iam.remove_user_from_group(GroupName=group, UserName=n)
    iam.delete_group(GroupName=group)
    for n in names:
        iam.delete_user(UserName=n)


def test_list_policies_filters_by_path_attachment_and_scope(server):
    """ListPolicies' `PathPrefix`, `OnlyAttached` and `Scope`, and ListAttached*Policies'
    `PathPrefix` (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListPolicies.html,
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListAttachedUserPolicies.html)."""
    iam = iam_client(server)
    base = f"/lpol-{uuid.uuid4().hex[:8]}/"
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})
    arns = {}
    for name, path in (("a", base), ("b", base + "sub/"), ("c", base)):
        arns[name] = iam.create_policy(PolicyName=f"{name}-{base.strip('/')}", Path=path, PolicyDocument=doc)["Policy"]["Arn"]
    user = f"lpol-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn=arns["b"])
    iam.attach_user_policy(UserName=user, PolicyArn=arns["c"])

    def listed(**kw):
        return sorted(p["Arn"] for page in iam.get_paginator("list_policies").paginate(**kw) for p in page["Policies"])

    assert listed(PathPrefix=base) == sorted(arns.values())
    assert listed(PathPrefix=base + "sub/") == [arns["b"]]
    assert listed(PathPrefix=base, OnlyAttached=True) == sorted([arns["b"], arns["c"]])
    assert listed(PathPrefix=base, Scope="Local") == sorted(arns.values())
    assert listed(PathPrefix=base, Scope="AWS") == []
    assert listed(PathPrefix=base, PolicyUsageFilter="PermissionsPolicy") == sorted([arns["b"], arns["c"]])
    assert listed(PathPrefix=base, PolicyUsageFilter="PermissionsBoundary") == []
    iam.put_user_permissions_boundary(UserName=user, PermissionsBoundary=arns["a"])
    assert listed(PathPrefix=base, PolicyUsageFilter="PermissionsBoundary") == [arns["a"]]
    iam.delete_user_permissions_boundary(UserName=user)
    with pytest.raises(ClientError) as e:
        iam.list_policies(Scope="Everything")
    assert error_code(e.value) == "ValidationError"
    attached = iam.list_attached_user_policies(UserName=user, PathPrefix=base + "sub/")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arns["b"]]
    page = iam.list_attached_user_policies(UserName=user, MaxItems=1)
    assert len(page["AttachedPolicies"]) == 1 and page["IsTruncated"]
    rest = iam.list_attached_user_policies(UserName=user, Marker=page["Marker"])
    assert {p["PolicyArn"] for p in page["AttachedPolicies"] + rest["AttachedPolicies"]} == {arns["b"], arns["c"]}
    for a in ("b", "c"):
        iam.detach_user_policy(UserName=user, PolicyArn=arns[a])
    iam.delete_user(UserName=user)
    for a in arns.values():
        iam.delete_policy(PolicyArn=a)


def test_list_entities_for_policy(server, aws):
    """ListEntitiesForPolicy names the groups, users and roles a managed policy is attached to,
    and the users and roles it bounds, filtered by EntityFilter, PathPrefix and PolicyUsageFilter
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListEntitiesForPolicy.html)."""
    iam = iam_client(server)
    tag = uuid.uuid4().hex[:8]
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})
    arn = iam.create_policy(PolicyName=f"ents-{tag}", PolicyDocument=doc)["Policy"]["Arn"]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"}}]})
    user_a = iam.create_user(UserName=f"ents-a-{tag}", Path="/team/")["User"]
    user_b = iam.create_user(UserName=f"ents-b-{tag}")["User"]
    group = iam.create_group(GroupName=f"ents-g-{tag}")["Group"]
    role = iam.create_role(RoleName=f"ents-r-{tag}", AssumeRolePolicyDocument=trust)["Role"]
    iam.attach_user_policy(UserName=user_a["UserName"], PolicyArn=arn)
    iam.attach_group_policy(GroupName=group["GroupName"], PolicyArn=arn)
    iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
    iam.put_user_permissions_boundary(UserName=user_b["UserName"], PermissionsBoundary=arn)

    got = iam.list_entities_for_policy(PolicyArn=arn)
    assert [g["GroupName"] for g in got["PolicyGroups"]] == [group["GroupName"]]
    assert got["PolicyGroups"][0]["GroupId"] == group["GroupId"]
    assert [(u["UserName"], u["UserId"]) for u in got["PolicyUsers"]] == [
        (user_a["UserName"], user_a["UserId"]), (user_b["UserName"], user_b["UserId"])]
    assert [(r["RoleName"], r["RoleId"]) for r in got["PolicyRoles"]] == [(role["RoleName"], role["RoleId"])]
    assert got["IsTruncated"] is False

    only_users = iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="User")
    assert only_users["PolicyGroups"] == [] and only_users["PolicyRoles"] == [] and len(only_users["PolicyUsers"]) == 2
    attached = iam.list_entities_for_policy(PolicyArn=arn, PolicyUsageFilter="PermissionsPolicy")
    assert [u["UserName"] for u in attached["PolicyUsers"]] == [user_a["UserName"]]
    bounded = iam.list_entities_for_policy(PolicyArn=arn, PolicyUsageFilter="PermissionsBoundary")
    assert [u["UserName"] for u in bounded["PolicyUsers"]] == [user_b["UserName"]]
    assert bounded["PolicyGroups"] == [] and bounded["PolicyRoles"] == []
    pathed = iam.list_entities_for_policy(PolicyArn=arn, PathPrefix="/team/")
    assert [u["UserName"] for u in pathed["PolicyUsers"]] == [user_a["UserName"]] and pathed["PolicyRoles"] == []
    # Paged over the three lists together.
    first = iam.list_entities_for_policy(PolicyArn=arn, MaxItems=2)
    assert first["IsTruncated"] and len(first["PolicyGroups"] + first["PolicyUsers"] + first["PolicyRoles"]) == 2
    rest = iam.list_entities_for_policy(PolicyArn=arn, Marker=first["Marker"])
    assert len(rest["PolicyGroups"] + rest["PolicyUsers"] + rest["PolicyRoles"]) == 2 and not rest["IsTruncated"]
    # aws-cli reads it too.
    listed = json.loads(aws.ok("iam", "list-entities-for-policy", "--policy-arn", arn, "--entity-filter", "Role").stdout)
    assert [r["RoleName"] for r in listed["PolicyRoles"]] == [role["RoleName"]]
    with pytest.raises(ClientError) as e:
        iam.list_entities_for_policy(PolicyArn=arn + "-missing")
    assert error_code(e.value) == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.list_entities_for_policy(PolicyArn=arn, PathPrefix="team")
    assert error_code(e.value) == "ValidationError"
    # Authorized on the policy's ARN like any IAM call.
    denied_name, dak, dsk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:ListEntitiesForPolicy", "Resource": arn + "-other"}]})
    with pytest.raises(ClientError) as e:
        iam_client(server, dak, dsk).list_entities_for_policy(PolicyArn=arn)
    assert error_code(e.value) == "AccessDenied"


def test_get_account_authorization_details(fresh_server_factory):
    """GetAccountAuthorizationDetails: every user, group, role and managed policy with the
    policies that apply to it, filtered by `Filter` and paged
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountAuthorizationDetails.html)."""
    kp = fresh_server_factory()
    root_ak, root_sk = kp.credentials()
    iam = boto3.session.Session().client(
        "iam", endpoint_url=kp.endpoint, aws_access_key_id=root_ak, aws_secret_access_key=root_sk,
        region_name=REGION, config=botocore.config.Config(retries={"max_attempts": 1}))
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    doc2 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": f"arn:aws:iam::{kp.account_id()}:root"}}]}
    pol = iam.create_policy(PolicyName="mp", Path="/p/", PolicyDocument=json.dumps(doc))["Policy"]
    iam.create_policy_version(PolicyArn=pol["Arn"], PolicyDocument=json.dumps(doc2), SetAsDefault=True)
    user = iam.create_user(UserName="alice", Path="/eng/", Tags=[{"Key": "team", "Value": "ml"}])["User"]
    iam.put_user_policy(UserName="alice", PolicyName="inline", PolicyDocument=json.dumps(doc))
    iam.attach_user_policy(UserName="alice", PolicyArn=pol["Arn"])
    iam.put_user_permissions_boundary(UserName="alice", PermissionsBoundary=pol["Arn"])
    iam.create_group(GroupName="devs")
    iam.add_user_to_group(GroupName="devs", UserName="alice")
    iam.put_group_policy(GroupName="devs", PolicyName="g-inline", PolicyDocument=json.dumps(doc))
    role = iam.create_role(RoleName="trainer", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.attach_role_policy(RoleName="trainer", PolicyArn=pol["Arn"])

    got = iam.get_account_authorization_details()
    assert got["IsTruncated"] is False
    users = {u["UserName"]: u for u in got["UserDetailList"]}
    alice = users["alice"]
    assert alice["UserId"] == user["UserId"] and alice["Arn"] == user["Arn"] and alice["Path"] == "/eng/"
    assert alice["UserPolicyList"] == [{"PolicyName": "inline", "PolicyDocument": doc}]
    assert alice["GroupList"] == ["devs"]
    assert alice["AttachedManagedPolicies"] == [{"PolicyName": "mp", "PolicyArn": pol["Arn"]}]
    assert alice["PermissionsBoundary"]["PermissionsBoundaryArn"] == pol["Arn"]
    assert alice["Tags"] == [{"Key": "team", "Value": "ml"}]
    [devs] = got["GroupDetailList"]
    assert devs["GroupName"] == "devs" and devs["GroupPolicyList"] == [{"PolicyName": "g-inline", "PolicyDocument": doc}]
    trainer = {r["RoleName"]: r for r in got["RoleDetailList"]}["trainer"]
    assert trainer["RoleId"] == role["RoleId"] and trainer["AssumeRolePolicyDocument"] == trust
    assert trainer["AttachedManagedPolicies"] == [{"PolicyName": "mp", "PolicyArn": pol["Arn"]}]
    assert trainer["InstanceProfileList"] == [] and trainer["RolePolicyList"] == []
    [mp] = [p for p in got["Policies"] if p["Arn"] == pol["Arn"]]
    assert mp["DefaultVersionId"] == "v2" and mp["AttachmentCount"] == 2 and mp["PermissionsBoundaryUsageCount"] == 1
    versions = {v["VersionId"]: v for v in mp["PolicyVersionList"]}
    assert versions["v2"]["IsDefaultVersion"] and versions["v2"]["Document"] == doc2
    assert versions["v1"]["Document"] == doc and not versions["v1"]["IsDefaultVersion"]

    only_roles = iam.get_account_authorization_details(Filter=["Role"])
    assert only_roles["UserDetailList"] == [] and only_roles["Policies"] == [] and only_roles["RoleDetailList"]
    assert iam.get_account_authorization_details(Filter=["AWSManagedPolicy"])["Policies"] == []
    # Paged over the four lists: boto3's paginator and aws-cli put the pages back together.
    first = iam.get_account_authorization_details(MaxItems=1)
    assert first["IsTruncated"] and first["Marker"]
    assert len(first["UserDetailList"] + first["GroupDetailList"] + first["RoleDetailList"] + first["Policies"]) == 1
    names = []
    for page in iam.get_paginator("get_account_authorization_details").paginate(PaginationConfig={"PageSize": 1}):
        names += [u["UserName"] for u in page["UserDetailList"]] + [r["RoleName"] for r in page["RoleDetailList"]]
    assert "alice" in names and "trainer" in names
    cli = json.loads(AwsCli(kp.endpoint, kp.creds_path).ok("iam", "get-account-authorization-details", "--filter", "User").stdout)
    assert [u["UserName"] for u in cli["UserDetailList"]] == sorted(users)
    # A user without iam:GetAccountAuthorizationDetails is refused.
    name, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]})
    other = boto3.session.Session().client(
        "iam", endpoint_url=kp.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk, region_name=REGION,
        config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        other.get_account_authorization_details()
    assert error_code(e.value) == "AccessDenied"


def test_iam_names_are_not_distinguished_by_case(server):
    """"Names are not distinguished by case" (API_CreateUser.html): `BOB` names the user `Bob`,
    for lookups, changes and deletion alike, and answers name the entity as stored; policies
    decide on the stored ARN, so a Deny on `user/Bob` binds a request for `BOB`."""
    iam = iam_client(server)
    tag = uuid.uuid4().hex[:6]
    user, role, group = f"CaseUser-{tag}", f"CaseRole-{tag}", f"CaseGroup-{tag}"
    iam.create_user(UserName=user)
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName=user.lower())
    assert error_code(e.value) == "EntityAlreadyExists"
    assert iam.get_user(UserName=user.upper())["User"]["UserName"] == user
    iam.put_user_policy(UserName=user.lower(), PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}))
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["p"]
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"}}]}))
    assert iam.get_role(RoleName=role.lower())["Role"]["RoleName"] == role
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group.upper(), UserName=user.lower())
    assert [u["UserName"] for u in iam.get_group(GroupName=group.lower())["Users"]] == [user]
    # An admin allowed everything but deleting `user/CaseUser-…` cannot delete it as `CASEUSER-…`.
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["iam:DeleteUser", "iam:DeleteUserPolicy", "iam:RemoveUserFromGroup"],
         "Resource": [f"arn:aws:iam::{server.account_id}:user/{user}", f"arn:aws:iam::{server.account_id}:group/{group}"]}]})
    admin = iam_client(server, ak, sk)
    for call in (lambda: admin.delete_user_policy(UserName=user.upper(), PolicyName="p"),
                 lambda: admin.remove_user_from_group(GroupName=group.lower(), UserName=user.upper()),
                 lambda: admin.delete_user(UserName=user.swapcase())):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "AccessDenied", e.value
    assert iam.get_user(UserName=user)["User"]["UserName"] == user
    # A caller without rights learns nothing from a case variant: the refusal names the user as
    # sent, as it does a user that does not exist (review 22, L1).
    _, nak, nsk = new_user(iam)
    nobody = iam_client(server, nak, nsk)
    for asked in (user.upper(), f"ghost-{tag}"):
        with pytest.raises(ClientError) as e:
            nobody.get_user(UserName=asked)
        assert error_code(e.value) == "AccessDenied" and f"user/{asked}" in str(e.value), e.value
        assert user not in str(e.value)
    iam.remove_user_from_group(GroupName=group.lower(), UserName=user.upper())
    iam.delete_user_policy(UserName=user.upper(), PolicyName="p")
    iam.delete_user(UserName=user.lower())
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName=user)
    assert error_code(e.value) == "NoSuchEntity"


def _get_from(source: str, server, bucket: str, key: str, ak: str, sk: str) -> int:
    """GET signed with the user's keys over a connection bound to `source`."""
    return status_from(source, server.port, "GET", f"/{bucket}/{key}", ak, sk)


def test_source_ip_condition_uses_the_tcp_peer(server, s3):
    bucket = f"ip-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.2/32"}}}]}
    _, ak, sk = new_user(iam_client(server), policy)
    assert _get_from("127.0.0.2", server, bucket, "k", ak, sk) == 200
    assert _get_from("127.0.0.1", server, bucket, "k", ak, sk) == 403
    # A forged X-Forwarded-For from an untrusted peer changes nothing.
    user = make_client(server.endpoint, ak, sk)
    user.meta.events.register("before-sign.s3.GetObject",
                              lambda request, **_: request.headers.__setitem__("X-Forwarded-For", "127.0.0.2"))
    with pytest.raises(ClientError) as e:
        user.get_object(Bucket=bucket, Key="k")
    assert error_code(e.value) == "AccessDenied"


def test_aws_deny_by_source_address_example_applies(server, s3):
    """AWS's own guardrail "Deny access to AWS based on the source IP"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_examples_aws_deny-ip.html)
    denies unless `aws:ViaAWSService` is false, a key "always included" in a request's context;
    `aws:PrincipalIsAWSService` is false on every signed request, and `aws:ResourceAccount` /
    `s3:ResourceAccount` name the bucket's account
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html).
    Those keys were missing, so the guardrail never denied (a policy-evaluation sweep)."""
    bucket = f"via-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:ResourceAccount": server.account_id,
                                        "aws:ResourceAccount": server.account_id}}},
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.2/32"]},
                       "Bool": {"aws:ViaAWSService": "false"}}},
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.3/32"]},
                       "Bool": {"aws:PrincipalIsAWSService": "false"}}}]}
    _, ak, sk = new_user(iam_client(server), policy)
    assert _get_from("127.0.0.2", server, bucket, "k", ak, sk) == 200
    assert _get_from("127.0.0.1", server, bucket, "k", ak, sk) == 403
    assert _get_from("127.0.0.3", server, bucket, "k", ak, sk) == 403


def test_iam_refuses_sids_that_repeat_or_are_not_alphanumeric(server, aws):
    """"In IAM, the Sid value must be unique within a JSON policy", of A-Z, a-z and 0-9
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html)."""
    iam = iam_client(server)
    name, _, _ = new_user(iam)

    def doc(a: str, b: str) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": a, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Sid": b, "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]})

    for a, b in (("Same", "Same"), ("has space", "B"), ("A", "dash-ed")):
        with pytest.raises(ClientError) as e:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=doc(a, b))
        assert error_code(e.value) == "MalformedPolicyDocument" and "SID" in str(e.value), (a, b)
    cp = aws("iam", "create-policy", "--policy-name", f"sid-{uuid.uuid4().hex[:6]}", "--policy-document", doc("X", "X"))
    assert cp.returncode != 0 and "MalformedPolicyDocument" in cp.stderr, cp.stderr
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=doc("Read", "Write2"))
    # A bucket policy is S3's: any characters, but unique (review 34, L3).
    s3 = make_client(server.endpoint, server.access_key, server.secret_key)
    bucket = f"sid-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)

    def bucket_doc(a: str, b: str) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"},
             "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"} for sid in (a, b)]})

    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=bucket_doc("same", "same"))
    assert e.value.response["Error"]["Code"] == "MalformedPolicy"
    s3.put_bucket_policy(Bucket=bucket, Policy=bucket_doc("read-one", "read two"))
    # A session policy follows IAM's rules too (review 34, L2).
    role = f"sid-role-{uuid.uuid4().hex[:6]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"}, "Action": "sts:AssumeRole"}]}))
    sts = boto3.session.Session().client("sts", endpoint_url=server.endpoint, region_name=REGION,
                                         aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=f"arn:aws:iam::{server.account_id}:role/{role}", RoleSessionName="sid",
                        Policy=doc("Same", "Same"))
    assert error_code(e.value) == "MalformedPolicyDocument", e.value.response


def test_time_window_condition(server, s3):
    """aws:CurrentTime windows: a window around now allows, one that ended or has not begun denies."""
    import datetime as dt
    bucket = f"tw-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    now = dt.datetime.now(dt.timezone.utc)
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    iam = iam_client(server)
    for start, end, expected in [
        (now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=5), True),
        (now - dt.timedelta(minutes=10), now - dt.timedelta(minutes=1), False),
        (now + dt.timedelta(minutes=1), now + dt.timedelta(minutes=10), False),
    ]:
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
             "Condition": {"DateGreaterThan": {"aws:CurrentTime": fmt(start)},
                           "DateLessThan": {"aws:CurrentTime": fmt(end)}}}]}
        _, ak, sk = new_user(iam, policy)
        user = make_client(server.endpoint, ak, sk)
        if expected:
            assert user.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
        else:
            with pytest.raises(ClientError) as e:
                user.get_object(Bucket=bucket, Key="k")
            assert error_code(e.value) == "AccessDenied"


def test_readme_admin_quickstart_runs(fresh_server_factory, tmp_path):
    """README's "stop using the root credentials" block, run as written."""
    import os
    import subprocess

    from e2e_helpers import REPO_ROOT, aws_bin
    from test_readme import DOC_ENDPOINT, block_commands

    commands = block_commands((REPO_ROOT / "README.md").read_text(encoding="utf-8"), "<!-- admin-quickstart -->")
    assert any(" iam create-user " in c for c in commands), commands
    kp = fresh_server_factory()
    work = tmp_path / "work"
    work.mkdir()
    (work / "keyhole-data").symlink_to(kp.data_dir)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), PATH=f"{Path(aws_bin()).parent}{os.pathsep}{env.get('PATH', '')}")
    script = "set -euxo pipefail\n" + "\n".join(c.replace(DOC_ENDPOINT, kp.endpoint) for c in commands) + "\n"
    cp = subprocess.run(["bash", "-c", script], env=env, cwd=work, capture_output=True, text=True, timeout=300,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"script:\n{script}\nstdout: {cp.stdout[-3000:]}\nstderr: {cp.stderr[-3000:]}"
    assert '"UserName": "admin"' in cp.stdout, "get-user ran with the admin's key"
    assert "make_bucket: acmeco-slm-data" in cp.stdout


def _get_with_xff(source: str, kp, bucket: str, key: str, ak: str, sk: str, xff: str) -> int:
    """GET from `source`, signed by the user, carrying an X-Forwarded-For header."""
    return status_from(source, kp.port, "GET", f"/{bucket}/{key}", ak, sk, unsigned_headers={"X-Forwarded-For": xff})


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path):
    """`--trusted-proxy 127.0.0.1/32`: behind that proxy the client address comes from
    X-Forwarded-For; from any other peer the header is ignored."""
    from e2e_helpers import KeyholeProcess, free_port

    kp = KeyholeProcess(data_dir=tmp_path / "data", port=free_port(), log_dir=tmp_path / "logs",
                        extra_args=["--trusted-proxy", "127.0.0.1/32"], cwd=tmp_path)
    kp.start()
    try:
        ak_root, sk_root = kp.credentials()

        class Srv:
            endpoint, access_key, secret_key = kp.endpoint, ak_root, sk_root

        s3 = make_client(kp.endpoint, ak_root, sk_root)
        s3.create_bucket(Bucket="xff")
        s3.put_object(Bucket="xff", Key="k", Body=b"v")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::xff/*",
             "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.42/32"}}}]}
        _, ak, sk = new_user(iam_client(Srv), policy)
        assert _get_with_xff("127.0.0.1", kp, "xff", "k", ak, sk, "203.0.113.42") == 200
        assert _get_with_xff("127.0.0.1", kp, "xff", "k", ak, sk, "203.0.113.42, 198.51.100.1") == 403, \
            "the right-most untrusted hop is the client"
        assert _get_with_xff("127.0.0.2", kp, "xff", "k", ak, sk, "203.0.113.42") == 403, \
            "an untrusted peer's header is ignored"
    finally:
        kp.kill()


def test_permissions_boundary_caps_a_user(server, s3):
    """Identity policy ∩ permissions boundary
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html)."""
    bucket = f"pb-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    iam = iam_client(server)
    everything = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
    read_only = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}
    boundary = iam.create_policy(PolicyName=f"ro-{bucket}", PolicyDocument=json.dumps(read_only))["Policy"]["Arn"]
    name, ak, sk = new_user(iam, everything)
    user = make_client(server.endpoint, ak, sk)
    user.put_object(Bucket=bucket, Key="before", Body=b"x")

    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=boundary)
    assert user.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        user.put_object(Bucket=bucket, Key="after", Body=b"x")
    assert error_code(e.value) == "AccessDenied"
    assert "because no permissions boundary allows the s3:PutObject action" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=boundary)
    assert error_code(e.value) == "DeleteConflict", "a policy in use as a boundary"

    iam.delete_user_permissions_boundary(UserName=name)
    user.put_object(Bucket=bucket, Key="after", Body=b"x")
    with pytest.raises(ClientError) as e:
        iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=boundary + "-nope")
    assert error_code(e.value) == "NoSuchEntity"


def abac_user(server, s3, prefix: str, keys: tuple[str, ...]):
    """A bucket holding `keys`, and a user allowed to read `BUCKET/${aws:PrincipalTag/team}/*`:
    (bucket, root IAM client, the user's name, an S3 client of the user with `.ak`/`.sk`)."""
    bucket = f"{prefix}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    iam = iam_client(server)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/${{aws:PrincipalTag/team}}/*"}]}
    name, ak, sk = new_user(iam, policy)
    user = make_client(server.endpoint, ak, sk)
    user.ak, user.sk = ak, sk
    return bucket, iam, name, user


def test_principal_tags_drive_abac_policies(server, s3):
    """`${aws:PrincipalTag/team}` in a Resource: the user's tag chooses its prefix
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/introduction_attribute-based-access-control.html)."""
    bucket, iam, name, user = abac_user(server, s3, "abac", ("ml/a.txt", "finance/b.txt"))
    with pytest.raises(ClientError):
        user.get_object(Bucket=bucket, Key="ml/a.txt")
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": "ml"}])
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "team", "Value": "ml"}]
    assert user.get_object(Bucket=bucket, Key="ml/a.txt")["Body"].read() == b"x"
    with pytest.raises(ClientError):
        user.get_object(Bucket=bucket, Key="finance/b.txt")
    iam.untag_user(UserName=name, TagKeys=["team"])
    with pytest.raises(ClientError):
        user.get_object(Bucket=bucket, Key="ml/a.txt")
    with pytest.raises(ClientError) as e:
        iam.tag_user(UserName=name, Tags=[{"Key": "aws:team", "Value": "x"}])
    assert error_code(e.value) == "ValidationError"


def test_tag_keys_of_a_user_differ_not_by_case(server, s3):
    """IAM compares a user's tag keys without case and keeps the latest spelling: "If you have
    tagged a user with the Department=finance tag and you add the department=hr tag, it replaces
    the first tag" (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html, "Case
    sensitivity"). Two spellings would give `aws:PrincipalTag/team` two values to choose from."""
    bucket, iam, name, user = abac_user(server, s3, "abac-case", ("ml/a.txt", "web/b.txt"))
    ak, sk = user.ak, user.sk
    iam.tag_user(UserName=name, Tags=[{"Key": "Team", "Value": "ml"}])
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": "web"}])
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "team", "Value": "web"}]
    assert user.get_object(Bucket=bucket, Key="web/b.txt")["Body"].read() == b"x"
    with pytest.raises(ClientError):
        user.get_object(Bucket=bucket, Key="ml/a.txt")
    with pytest.raises(ClientError) as e:
        iam.tag_user(UserName=name, Tags=[{"Key": "TEAM", "Value": "ml"}, {"Key": "team", "Value": "x"}])
    assert error_code(e.value) == "InvalidInput"
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "team", "Value": "web"}]
    iam.untag_user(UserName=name, TagKeys=["TEAM"])
    assert iam.list_user_tags(UserName=name)["Tags"] == []
    # Review 29, F1: case is folded as conditions fold it (ASCII only). A key with the Kelvin
    # sign (U+212A, which Unicode lowercases to `k`) is another tag: it cannot replace or remove
    # `risk`, which a Deny on aws:TagKeys protects from the user itself.
    iam.tag_user(UserName=name, Tags=[{"Key": "risk", "Value": "high"}])
    iam.put_user_policy(UserName=name, PolicyName="self-tag", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iam:TagUser", "iam:UntagUser", "iam:ListUserTags"],
             "Resource": f"arn:aws:iam::{server.account_id}:user/{name}"},
            {"Effect": "Deny", "Action": ["iam:TagUser", "iam:UntagUser"], "Resource": "*",
             "Condition": {"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": ["risk"]}}}]}))
    self_iam = iam_client(server, ak, sk)
    for call in (lambda: self_iam.tag_user(UserName=name, Tags=[{"Key": "RISK", "Value": "low"}]),
                 lambda: self_iam.untag_user(UserName=name, TagKeys=["Risk"])):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "AccessDenied"
    self_iam.tag_user(UserName=name, Tags=[{"Key": "ris\u212a", "Value": "low"}])
    self_iam.untag_user(UserName=name, TagKeys=["ris\u212a"])
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "risk", "Value": "high"}]
    role = f"case-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"}}]}
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust),
                        Tags=[{"Key": "k", "Value": "1"}, {"Key": "K", "Value": "2"}])
    assert error_code(e.value) == "InvalidInput"
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName=role)
    assert error_code(e.value) == "NoSuchEntity"


def test_attached_role_policies_are_listed(server, aws):
    """ListAttachedRolePolicies (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListAttachedRolePolicies.html)."""
    iam = iam_client(server)
    role = f"attached-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"}}]}
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
    arn = iam.create_policy(PolicyName=f"p-{role}", PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    listed = json.loads(aws.ok("iam", "list-attached-role-policies", "--role-name", role).stdout)
    assert listed["AttachedPolicies"] == [{"PolicyName": f"p-{role}", "PolicyArn": arn}]
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    with pytest.raises(ClientError) as e:
        iam.list_attached_role_policies(RoleName="no-such-role")
    assert error_code(e.value) == "NoSuchEntity"


def test_iam_actions_on_an_entity_are_authorized_against_its_path(server):
    """IAM ARNs carry the entity's path (arn:aws:iam::ACCOUNT:user/team-a/NAME); a policy that names
    the path governs actions on it
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns)."""
    iam = iam_client(server)
    inside, outside = f"in-{uuid.uuid4().hex[:6]}", f"out-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=inside, Path="/team-a/")
    iam.create_user(UserName=outside, Path="/team-b/")
    _, ak, sk = new_user(iam, policy={"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "iam:TagUser",
        "Resource": f"arn:aws:iam::{server.account_id}:user/team-a/*"}]})
    admin = boto3.session.Session().client(
        "iam", endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=ak, aws_secret_access_key=sk)
    admin.tag_user(UserName=inside, Tags=[{"Key": "k", "Value": "v"}])
    with pytest.raises(ClientError) as e:
        admin.tag_user(UserName=outside, Tags=[{"Key": "k", "Value": "v"}])
    assert error_code(e.value) == "AccessDenied"
    assert f"user/team-b/{outside}" in e.value.response["Error"]["Message"]
