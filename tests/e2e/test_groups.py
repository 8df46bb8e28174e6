"""IAM groups and managed policy versions through `aws iam` and boto3, and what they change on S3
requests (issue 4).

AWS pages the cases follow:
- https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
  (a user's identity-based policies include those of its groups; an explicit deny wins)
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteGroup.html
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteUser.html (group memberships first)
- https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html (10 groups per user)
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreatePolicyVersion.html (5 versions)
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeletePolicyVersion.html
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeletePolicy.html
- https://docs.aws.amazon.com/IAM/latest/APIReference/API_SetDefaultPolicyVersion.html
"""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import make_client, read_trail, wait_for_events
from test_iam import error_code, iam_client, new_user


def uid() -> str:
    return uuid.uuid4().hex[:10]


def allow(actions, bucket: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}


def denied(call) -> ClientError:
    with pytest.raises(ClientError) as e:
        call()
    assert error_code(e.value) == "AccessDenied", e.value.response
    return e.value


def iam_error(call, code: str) -> ClientError:
    with pytest.raises(ClientError) as e:
        call()
    assert error_code(e.value) == code, e.value.response
    return e.value


@pytest.fixture
def data_bucket(s3) -> str:
    name = f"grp-{uid()}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    return name


def test_group_policy_grants_to_members_and_removal_revokes(server, data_bucket):
    """A user with no policy of its own reads through its group's inline policy, and stops the
    moment it leaves the group."""
    iam = iam_client(server)
    group = f"readers-{uid()}"
    created = iam.create_group(GroupName=group)["Group"]
    assert created["GroupId"].startswith("AGPA") and created["Arn"].endswith(f":group/{group}")
    iam.put_group_policy(GroupName=group, PolicyName="read",
                         PolicyDocument=json.dumps(allow("s3:GetObject", data_bucket)))
    name, ak, sk = new_user(iam)
    user = make_client(server.endpoint, ak, sk)
    err = denied(lambda: user.get_object(Bucket=data_bucket, Key="k"))
    assert "because no identity-based policy allows the s3:GetObject action" in err.response["Error"]["Message"]

    iam.add_user_to_group(GroupName=group, UserName=name)
    assert user.get_object(Bucket=data_bucket, Key="k")["Body"].read() == b"v"
    denied(lambda: user.put_object(Bucket=data_bucket, Key="k2", Body=b"w"))
    got = iam.get_group(GroupName=group)
    assert got["Group"]["GroupName"] == group
    assert [u["UserName"] for u in got["Users"]] == [name]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]] == [group]
    assert group in [g["GroupName"] for page in iam.get_paginator("list_groups").paginate() for g in page["Groups"]]

    iam.remove_user_from_group(GroupName=group, UserName=name)
    denied(lambda: user.get_object(Bucket=data_bucket, Key="k"))
    assert iam.get_group(GroupName=group)["Users"] == []
    iam_error(lambda: iam.remove_user_from_group(GroupName=group, UserName=name), "NoSuchEntity")


def test_deny_in_a_group_policy_wins(server, data_bucket):
    """The user's own policy allows everything on the bucket; a managed policy attached to its
    group denies deletes, and the deny wins."""
    iam = iam_client(server)
    group = f"nodelete-{uid()}"
    iam.create_group(GroupName=group)
    deny = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{data_bucket}/*"}]}
    pol = iam.create_policy(PolicyName=f"deny-{group}", PolicyDocument=json.dumps(deny))["Policy"]
    iam.attach_group_policy(GroupName=group, PolicyArn=pol["Arn"])
    assert [p["PolicyArn"] for p in iam.list_attached_group_policies(GroupName=group)["AttachedPolicies"]] \
        == [pol["Arn"]]
    assert iam.get_policy(PolicyArn=pol["Arn"])["Policy"]["AttachmentCount"] == 1
    name, ak, sk = new_user(iam, allow("s3:*", data_bucket))
    user = make_client(server.endpoint, ak, sk)
    user.put_object(Bucket=data_bucket, Key="doomed", Body=b"x")

    iam.add_user_to_group(GroupName=group, UserName=name)
    err = denied(lambda: user.delete_object(Bucket=data_bucket, Key="doomed"))
    assert "with an explicit deny in an identity-based policy" in err.response["Error"]["Message"]
    assert user.get_object(Bucket=data_bucket, Key="doomed")["Body"].read() == b"x", "the allow still works"
    iam_error(lambda: iam.delete_policy(PolicyArn=pol["Arn"]), "DeleteConflict")

    iam.detach_group_policy(GroupName=group, PolicyArn=pol["Arn"])
    user.delete_object(Bucket=data_bucket, Key="doomed")
    iam_error(lambda: iam.detach_group_policy(GroupName=group, PolicyArn=pol["Arn"]), "NoSuchEntity")


def test_aws_cli_group_lifecycle(aws, server, tmp_path):
    group, user = f"cli-g-{uid()}", f"cli-u-{uid()}"
    created = json.loads(aws.ok("iam", "create-group", "--group-name", group, "--path", "/team/").stdout)["Group"]
    assert created["Path"] == "/team/" and created["Arn"].endswith(f":group/team/{group}")
    cp = aws("iam", "create-group", "--group-name", group.upper())
    assert cp.returncode != 0 and "EntityAlreadyExists" in cp.stderr, cp.stderr
    cp = aws("iam", "create-group", "--group-name", "no spaces")
    assert cp.returncode != 0 and "ValidationError" in cp.stderr, cp.stderr
    aws.ok("iam", "create-user", "--user-name", user)
    aws.ok("iam", "add-user-to-group", "--group-name", group, "--user-name", user)
    listed = json.loads(aws.ok("iam", "list-groups", "--path-prefix", "/team/").stdout)["Groups"]
    assert group in [g["GroupName"] for g in listed]
    mine = json.loads(aws.ok("iam", "list-groups-for-user", "--user-name", user).stdout)["Groups"]
    assert [g["GroupName"] for g in mine] == [group]
    got = json.loads(aws.ok("iam", "get-group", "--group-name", group).stdout)
    assert [u["UserName"] for u in got["Users"]] == [user]

    bad = tmp_path / "bad.json"
    bad.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}')
    cp = aws("iam", "put-group-policy", "--group-name", group, "--policy-name", "p",
             "--policy-document", f"file://{bad}")
    assert cp.returncode != 0 and "MalformedPolicyDocument" in cp.stderr, cp.stderr
    doc = allow(["s3:GetObject"], "somewhere")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    aws.ok("iam", "put-group-policy", "--group-name", group, "--policy-name", "p", "--policy-document", f"file://{good}")
    got = json.loads(aws.ok("iam", "get-group-policy", "--group-name", group, "--policy-name", "p").stdout)
    assert got["PolicyDocument"] == doc and got["GroupName"] == group
    names = json.loads(aws.ok("iam", "list-group-policies", "--group-name", group).stdout)["PolicyNames"]
    assert names == ["p"]

    cp = aws("iam", "delete-group", "--group-name", group)
    assert cp.returncode != 0 and "DeleteConflict" in cp.stderr, "it has a member"
    cp = aws("iam", "delete-user", "--user-name", user)
    assert cp.returncode != 0 and "DeleteConflict" in cp.stderr, "the user is in a group"
    aws.ok("iam", "remove-user-from-group", "--group-name", group, "--user-name", user)
    aws.ok("iam", "delete-user", "--user-name", user)
    cp = aws("iam", "delete-group", "--group-name", group)
    assert cp.returncode != 0 and "DeleteConflict" in cp.stderr, "it has an inline policy"
    aws.ok("iam", "delete-group-policy", "--group-name", group, "--policy-name", "p")
    aws.ok("iam", "delete-group", "--group-name", group)
    cp = aws("iam", "get-group", "--group-name", group)
    assert cp.returncode != 0 and "NoSuchEntity" in cp.stderr, cp.stderr


def test_update_group_renames_and_moves_a_group_with_its_members_and_policies(server, data_bucket, aws):
    """UpdateGroup (https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateGroup.html,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_groups_manage_rename.html): the group
    keeps its unique id, members and policies under the new name and path, so its members' access
    is unchanged; the requester must be allowed on both the old and the new name."""
    iam = iam_client(server)
    old, new, taken = f"old-{uid()}", f"new-{uid()}", f"taken-{uid()}"
    group = iam.create_group(GroupName=old)["Group"]
    iam.create_group(GroupName=taken)
    iam.put_group_policy(GroupName=old, PolicyName="read", PolicyDocument=json.dumps(allow("s3:GetObject", data_bucket)))
    doc = json.dumps(allow("s3:ListBucket", data_bucket))
    managed = iam.create_policy(PolicyName=f"list-{uid()}", PolicyDocument=doc)["Policy"]["Arn"]
    iam.attach_group_policy(GroupName=old, PolicyArn=managed)
    name, ak, sk = new_user(iam)
    iam.add_user_to_group(GroupName=old, UserName=name)
    member = make_client(server.endpoint, ak, sk)
    assert member.get_object(Bucket=data_bucket, Key="k")["Body"].read() == b"v"

    iam.update_group(GroupName=old, NewGroupName=new, NewPath="/teams/")
    got = iam.get_group(GroupName=new)
    assert got["Group"]["GroupId"] == group["GroupId"] and got["Group"]["Path"] == "/teams/"
    assert got["Group"]["Arn"].endswith(f":group/teams/{new}")
    assert [u["UserName"] for u in got["Users"]] == [name]
    assert iam.list_group_policies(GroupName=new)["PolicyNames"] == ["read"]
    assert [p["PolicyArn"] for p in iam.list_attached_group_policies(GroupName=new)["AttachedPolicies"]] == [managed]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]] == [new]
    iam_error(lambda: iam.get_group(GroupName=old), "NoSuchEntity")
    # The members' access through the group is the same under the new name.
    assert member.get_object(Bucket=data_bucket, Key="k")["Body"].read() == b"v"
    member.list_objects_v2(Bucket=data_bucket)
    # A name taken (in any case) is refused; a missing group is NoSuchEntity.
    iam_error(lambda: iam.update_group(GroupName=new, NewGroupName=taken.upper()), "EntityAlreadyExists")
    iam_error(lambda: iam.update_group(GroupName=f"none-{uid()}", NewGroupName=f"x-{uid()}"), "NoSuchEntity")
    # aws-cli, a path alone.
    aws.ok("iam", "update-group", "--group-name", new, "--new-path", "/")
    assert iam.get_group(GroupName=new)["Group"]["Path"] == "/"

    # Allowed on the old name only: refused, and nothing changes.
    arn = lambda g: f"arn:aws:iam::{server.account_id}:group/{g}"
    renamer, rak, rsk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:UpdateGroup", "Resource": arn(new)}]})
    renamer_iam = iam_client(server, rak, rsk)
    final = f"final-{uid()}"
    denied(lambda: renamer_iam.update_group(GroupName=new, NewGroupName=final))
    assert iam.get_group(GroupName=new)["Group"]["GroupName"] == new
    iam.put_user_policy(UserName=renamer, PolicyName="both", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iam:UpdateGroup", "Resource": [arn(new), arn(final)]}]}))
    renamer_iam.update_group(GroupName=new, NewGroupName=final)
    assert iam.get_group(GroupName=final)["Group"]["GroupId"] == group["GroupId"]
    # The record names the new name (review 30, F3), for the refused attempt too.
    events = wait_for_events(server.data_dir, lambda ev: sum(
        e["eventName"] == "UpdateGroup" and e["requestParameters"].get("newGroupName") == final
        and e["stage"] == "completed" for e in ev) >= 2)
    decisions = {e.get("decision") for e in events if e["eventName"] == "UpdateGroup" and e["stage"] == "completed"
                 and e["requestParameters"].get("newGroupName") == final}
    assert decisions == {"Allow", "Deny"}, decisions
    # A path AWS's pattern refuses is refused before authorization: no write-ahead record is
    # decided on an ARN that cannot exist (review 31, L3).
    # (A write-ahead record is on disk before its request is answered, so counting them right
    # after the answers is enough.)
    def authorized_updates() -> int:
        return sum(e["eventName"] == "UpdateGroup" and e["stage"] == "authorized" for e in read_trail(server.data_dir))

    before = authorized_updates()
    for bad in ("//", "no-slash/", "/a b/"):
        iam_error(lambda: iam.update_group(GroupName=final, NewPath=bad), "ValidationError")
    assert authorized_updates() == before


def test_a_user_belongs_to_at_most_ten_groups(server):
    iam = iam_client(server)
    name, _, _ = new_user(iam)
    tag = uid()
    for i in range(10):
        iam.create_group(GroupName=f"many-{tag}-{i}")
        iam.add_user_to_group(GroupName=f"many-{tag}-{i}", UserName=name)
    iam.create_group(GroupName=f"many-{tag}-10")
    err = iam_error(lambda: iam.add_user_to_group(GroupName=f"many-{tag}-10", UserName=name), "LimitExceeded")
    assert "GroupsPerUser" in err.response["Error"]["Message"]
    iam.add_user_to_group(GroupName=f"many-{tag}-0", UserName=name)  # already a member: no change
    assert len(iam.list_groups_for_user(UserName=name)["Groups"]) == 10
    iam_error(lambda: iam.add_user_to_group(GroupName=f"nope-{tag}", UserName=name), "NoSuchEntity")


def test_group_actions_are_authorized_on_the_group(server):
    """iam:AddUserToGroup is checked against the group's ARN: a user allowed it on one group
    cannot add members to another."""
    iam = iam_client(server)
    mine, other = f"mine-{uid()}", f"other-{uid()}"
    iam.create_group(GroupName=mine)
    iam.create_group(GroupName=other)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:AddUserToGroup", "Resource": f"arn:aws:iam::*:group/{mine}"}]})
    member, _, _ = new_user(iam)
    manager = iam_client(server, ak, sk)
    manager.add_user_to_group(GroupName=mine, UserName=member)
    err = denied(lambda: manager.add_user_to_group(GroupName=other, UserName=member))
    assert "iam:AddUserToGroup" in err.response["Error"]["Message"]
    assert f"group/{other}" in err.response["Error"]["Message"]


def test_policy_version_switch_changes_the_decision_at_once(server, data_bucket):
    iam = iam_client(server)
    pol = iam.create_policy(PolicyName=f"ver-{data_bucket}",
                            PolicyDocument=json.dumps(allow("s3:GetObject", data_bucket)))["Policy"]
    arn = pol["Arn"]
    assert pol["DefaultVersionId"] == "v1"
    group = f"ver-{uid()}"
    iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    name, ak, sk = new_user(iam)
    iam.add_user_to_group(GroupName=group, UserName=name)
    user = make_client(server.endpoint, ak, sk)
    assert user.get_object(Bucket=data_bucket, Key="k")["Body"].read() == b"v"

    v2 = iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(allow("s3:PutObject", data_bucket)),
                                   SetAsDefault=False)["PolicyVersion"]
    assert v2["VersionId"] == "v2" and v2["IsDefaultVersion"] is False and "Document" not in v2
    assert user.get_object(Bucket=data_bucket, Key="k")["Body"].read() == b"v", "v2 is not in force yet"
    denied(lambda: user.put_object(Bucket=data_bucket, Key="new", Body=b"n"))

    iam.set_default_policy_version(PolicyArn=arn, VersionId="v2")
    user.put_object(Bucket=data_bucket, Key="new", Body=b"n")
    denied(lambda: user.get_object(Bucket=data_bucket, Key="k"))
    got = iam.get_policy(PolicyArn=arn)["Policy"]
    assert got["DefaultVersionId"] == "v2"
    assert got["UpdateDate"] >= got["CreateDate"]
    v1 = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert v1["Document"] == allow("s3:GetObject", data_bucket) and v1["IsDefaultVersion"] is False
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert [(v["VersionId"], v["IsDefaultVersion"]) for v in versions] == [("v2", True), ("v1", False)]

    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    assert user.get_object(Bucket=data_bucket, Key="k")["Body"].read() == b"v"
    denied(lambda: user.put_object(Bucket=data_bucket, Key="new2", Body=b"n"))
    iam_error(lambda: iam.set_default_policy_version(PolicyArn=arn, VersionId="v7"), "NoSuchEntity")
    iam_error(lambda: iam.get_policy_version(PolicyArn=arn, VersionId="v2x"), "ValidationError")


def test_aws_cli_policy_versions_limits_and_deletion(aws, server, tmp_path):
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(allow("s3:GetObject", f"cli-{uid()}")))
    name = f"cli-ver-{uid()}"
    arn = json.loads(aws.ok("iam", "create-policy", "--policy-name", name,
                            "--policy-document", f"file://{doc}").stdout)["Policy"]["Arn"]
    for n in range(2, 6):
        out = json.loads(aws.ok("iam", "create-policy-version", "--policy-arn", arn,
                                "--policy-document", f"file://{doc}", *(["--set-as-default"] if n == 5 else [])).stdout)
        assert out["PolicyVersion"]["VersionId"] == f"v{n}"
        assert out["PolicyVersion"]["IsDefaultVersion"] is (n == 5)
    cp = aws("iam", "create-policy-version", "--policy-arn", arn, "--policy-document", f"file://{doc}")
    assert cp.returncode != 0 and "LimitExceeded" in cp.stderr, cp.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cp = aws("iam", "create-policy-version", "--policy-arn", arn, "--policy-document", f"file://{bad}")
    assert cp.returncode != 0 and "MalformedPolicyDocument" in cp.stderr, cp.stderr

    listed = json.loads(aws.ok("iam", "list-policy-versions", "--policy-arn", arn).stdout)["Versions"]
    assert [v["VersionId"] for v in listed] == ["v5", "v4", "v3", "v2", "v1"]
    assert [v["VersionId"] for v in listed if v["IsDefaultVersion"]] == ["v5"]
    got = json.loads(aws.ok("iam", "get-policy", "--policy-arn", arn).stdout)["Policy"]
    assert got["DefaultVersionId"] == "v5"

    cp = aws("iam", "delete-policy-version", "--policy-arn", arn, "--version-id", "v5")
    assert cp.returncode != 0 and "DeleteConflict" in cp.stderr, "the default version"
    cp = aws("iam", "delete-policy", "--policy-arn", arn)
    assert cp.returncode != 0 and "DeleteConflict" in cp.stderr, "non-default versions must go first"
    aws.ok("iam", "delete-policy-version", "--policy-arn", arn, "--version-id", "v2")
    out = json.loads(aws.ok("iam", "create-policy-version", "--policy-arn", arn,
                            "--policy-document", f"file://{doc}").stdout)
    assert out["PolicyVersion"]["VersionId"] == "v6", "version ids are never reused"
    for v in ["v1", "v3", "v4", "v6"]:
        aws.ok("iam", "delete-policy-version", "--policy-arn", arn, "--version-id", v)
    cp = aws("iam", "delete-policy-version", "--policy-arn", arn, "--version-id", "v6")
    assert cp.returncode != 0 and "NoSuchEntity" in cp.stderr, cp.stderr
    aws.ok("iam", "delete-policy", "--policy-arn", arn)
    cp = aws("iam", "get-policy", "--policy-arn", arn)
    assert cp.returncode != 0 and "NoSuchEntity" in cp.stderr, cp.stderr
    cp = aws("iam", "list-policy-versions", "--policy-arn", arn)
    assert cp.returncode != 0 and "NoSuchEntity" in cp.stderr, cp.stderr
