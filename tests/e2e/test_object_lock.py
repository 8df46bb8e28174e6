"""S3 Object Lock (issue 12), through boto3 and aws-cli: buckets created with Object Lock,
PutObjectLockConfiguration (versioning first, default retention), retention and legal holds on
versions, deletions refused for protected versions, the governance bypass and its permission,
compliance mode, and the errors S3 answers.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html
"""

from __future__ import annotations

import datetime
import json
import uuid

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import make_client
from test_iam import iam_client, new_user

UTC = datetime.timezone.utc
FAR = datetime.datetime(2030, 1, 1, tzinfo=UTC)


def err(excinfo) -> tuple[str, int]:
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def _cleanup(s3, name):
    """Removes every version (governance ones with the bypass; compliance ones cannot be)."""
    try:
        versions = s3.list_object_versions(Bucket=name)
    except ClientError:
        return
    for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        try:
            s3.put_object_legal_hold(Bucket=name, Key=v["Key"], VersionId=v["VersionId"],
                                     LegalHold={"Status": "OFF"})
        except ClientError:
            pass
        try:
            s3.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"],
                             BypassGovernanceRetention=True)
        except ClientError:
            pass
    try:
        s3.delete_bucket(Bucket=name)
    except ClientError:
        pass


@pytest.fixture
def locked(s3):
    name = f"lock-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    _cleanup(s3, name)


def test_a_bucket_created_with_object_lock_is_versioned_and_locked(s3, locked):
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    conf = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert conf == {"ObjectLockEnabled": "Enabled"}, conf
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=locked, VersioningConfiguration={"Status": "Suspended"})
    assert err(e) == ("InvalidBucketState", 409)


def test_object_lock_is_enabled_later_only_on_a_versioned_bucket(s3, bucket):
    conf = {"ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}
    with pytest.raises(ClientError) as e:
        s3.get_object_lock_configuration(Bucket=bucket)
    assert err(e) == ("ObjectLockConfigurationNotFoundError", 404)
    with pytest.raises(ClientError) as e:
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=conf)
    assert err(e) == ("InvalidBucketState", 409)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=conf)
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == conf
    # The default retention applies to new versions.
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ObjectLockMode"] == "GOVERNANCE", head
    assert head["ObjectLockRetainUntilDate"] > datetime.datetime.now(UTC) + datetime.timedelta(hours=23)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=put["VersionId"], BypassGovernanceRetention=True)
    # Bad configurations, with S3's codes (ceph/s3-tests test_object_lock_put_obj_lock_*).
    for rule, code in [
        ({"Mode": "GOVERNANCE", "Days": 1, "Years": 1}, "MalformedXML"),
        ({"Mode": "governance", "Years": 1}, "MalformedXML"),
        ({"Mode": "GOVERNANCE", "Days": 0}, "InvalidRetentionPeriod"),
        ({"Mode": "GOVERNANCE", "Years": -1}, "InvalidRetentionPeriod"),
    ]:
        with pytest.raises(ClientError) as e:
            s3.put_object_lock_configuration(
                Bucket=bucket,
                ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": rule}})
        assert err(e) == (code, 400), rule
    # Turn the default off again so the bucket can be emptied by the shared cleanup.
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})


def test_governance_retention_protects_a_version_until_bypassed(s3, locked):
    put = s3.put_object(Bucket=locked, Key="ckpt", Body=b"weights", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=FAR)
    v = put["VersionId"]
    head = s3.head_object(Bucket=locked, Key="ckpt")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", FAR)
    assert s3.get_object_retention(Bucket=locked, Key="ckpt")["Retention"] == {
        "Mode": "GOVERNANCE", "RetainUntilDate": FAR}
    # A plain delete only adds a delete marker; the version itself cannot go.
    marker = s3.delete_object(Bucket=locked, Key="ckpt")
    assert marker["DeleteMarker"] is True
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=locked, Key="ckpt", VersionId=v)
    assert err(e) == ("AccessDenied", 403)
    # Shortening needs the bypass; extending does not.
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=locked, Key="ckpt", VersionId=v,
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR - datetime.timedelta(days=1)})
    assert err(e) == ("AccessDenied", 403)
    s3.put_object_retention(Bucket=locked, Key="ckpt", VersionId=v,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR + datetime.timedelta(days=1)})
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=locked, Key="ckpt", VersionId=v,
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": FAR + datetime.timedelta(days=2)})
    assert err(e) == ("AccessDenied", 403)
    # DeleteObjects without the bypass reports the version as AccessDenied.
    out = s3.delete_objects(Bucket=locked, Delete={"Objects": [{"Key": "ckpt", "VersionId": v}]})
    assert [x["Code"] for x in out.get("Errors", [])] == ["AccessDenied"], out
    gone = s3.delete_object(Bucket=locked, Key="ckpt", VersionId=v, BypassGovernanceRetention=True)
    assert gone["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_the_bypass_needs_its_own_permission(server, s3, locked):
    v = s3.put_object(Bucket=locked, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=FAR)["VersionId"]
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:GetObjectRetention"],
         "Resource": f"arn:aws:s3:::{locked}/*"}]})
    user = make_client(server.endpoint, ak, sk)
    with pytest.raises(ClientError) as e:
        user.delete_object(Bucket=locked, Key="k", VersionId=v, BypassGovernanceRetention=True)
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        user.put_object_retention(Bucket=locked, Key="k", VersionId=v, BypassGovernanceRetention=True,
                                  Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR - datetime.timedelta(days=1)})
    assert err(e) == ("AccessDenied", 403)
    assert user.get_object_retention(Bucket=locked, Key="k", VersionId=v)["Retention"]["Mode"] == "GOVERNANCE"
    # Writing a lock needs s3:PutObjectRetention (here the user has no s3:PutObject at all).
    with pytest.raises(ClientError) as e:
        user.put_object(Bucket=locked, Key="new", Body=b"x", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=FAR)
    assert err(e) == ("AccessDenied", 403)


def test_compliance_and_legal_holds_cannot_be_bypassed(s3, locked):
    until = datetime.datetime.now(UTC) + datetime.timedelta(seconds=5)
    c = s3.put_object(Bucket=locked, Key="c", Body=b"x", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=until)["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=locked, Key="c", VersionId=c, BypassGovernanceRetention=True)
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=locked, Key="c", VersionId=c, BypassGovernanceRetention=True,
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
    assert err(e) == ("AccessDenied", 403)
    h = s3.put_object(Bucket=locked, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=locked, Key="h")["LegalHold"] == {"Status": "ON"}
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=locked, Key="h", VersionId=h, BypassGovernanceRetention=True)
    assert err(e) == ("AccessDenied", 403)
    s3.put_object_legal_hold(Bucket=locked, Key="h", VersionId=h, LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=locked, Key="h", VersionId=h)
    with pytest.raises(ClientError) as e:
        s3.get_object_retention(Bucket=locked, Key="h")  # the marker-less key is gone
    assert err(e)[1] in (404, 405)


def test_lock_requests_on_a_bucket_without_object_lock(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=bucket, Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR})
    assert err(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.get_object_legal_hold(Bucket=bucket, Key="k")
    assert err(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="j", Body=b"x", ObjectLockLegalHoldStatus="ON")
    assert err(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="j")
    assert err(e)[1] == 404
    # Malformed lock headers and documents.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="j", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=datetime.datetime(2020, 1, 1, tzinfo=UTC))
    assert err(e) == ("InvalidArgument", 400)


def test_aws_cli_object_lock_round_trip(aws, s3, locked):
    aws.ok("s3api", "put-object-lock-configuration", "--bucket", locked, "--object-lock-configuration",
           json.dumps({"ObjectLockEnabled": "Enabled",
                       "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}}))
    got = json.loads(aws.ok("s3api", "get-object-lock-configuration", "--bucket", locked).stdout)
    assert got["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 2}
    s3.put_object(Bucket=locked, Key="run-1/model.bin", Body=b"m")
    ret = json.loads(aws.ok("s3api", "get-object-retention", "--bucket", locked, "--key", "run-1/model.bin").stdout)
    assert ret["Retention"]["Mode"] == "GOVERNANCE"
    aws.ok("s3api", "put-object-legal-hold", "--bucket", locked, "--key", "run-1/model.bin",
           "--legal-hold", "Status=ON")
    hold = json.loads(aws.ok("s3api", "get-object-legal-hold", "--bucket", locked, "--key", "run-1/model.bin").stdout)
    assert hold["LegalHold"]["Status"] == "ON"
    aws.ok("s3api", "put-object-legal-hold", "--bucket", locked, "--key", "run-1/model.bin",
           "--legal-hold", "Status=OFF")
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})


def test_object_lock_condition_keys_are_decided(server, s3, locked):
    # "Actions, resources, and condition keys for Amazon S3": PutObject, PutObjectRetention and
    # PutObjectLegalHold take s3:object-lock-mode, -retain-until-date,
    # -remaining-retention-days and -legal-hold; a bucket policy on the remaining days is how
    # S3's guide caps retention (review 12: the keys were never set, so such Denies never applied).
    s3.put_bucket_policy(Bucket=locked, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject", "s3:PutObjectRetention"],
         "Resource": f"arn:aws:s3:::{locked}/*",
         "Condition": {"StringEquals": {"s3:object-lock-mode": "COMPLIANCE"}}},
        {"Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject", "s3:PutObjectRetention"],
         "Resource": f"arn:aws:s3:::{locked}/*",
         "Condition": {"NumericGreaterThan": {"s3:object-lock-remaining-retention-days": "30"}}},
        {"Effect": "Deny", "Principal": "*", "Action": ["s3:PutObjectLegalHold"],
         "Resource": f"arn:aws:s3:::{locked}/*",
         "Condition": {"StringEquals": {"s3:object-lock-legal-hold": "ON"}}}]}))
    soon = datetime.datetime.now(UTC) + datetime.timedelta(days=10)
    far = datetime.datetime.now(UTC) + datetime.timedelta(days=365)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=locked, Key="c", Body=b"x", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=soon)
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=locked, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=far)
    assert err(e) == ("AccessDenied", 403)
    v = s3.put_object(Bucket=locked, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=soon)["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=locked, Key="g", VersionId=v,
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": far})
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=locked, Key="g", VersionId=v,
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon},
                                BypassGovernanceRetention=True)
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3.put_object_legal_hold(Bucket=locked, Key="g", VersionId=v, LegalHold={"Status": "ON"})
    assert err(e) == ("AccessDenied", 403)
    s3.put_object_legal_hold(Bucket=locked, Key="g", VersionId=v, LegalHold={"Status": "OFF"})
    s3.delete_bucket_policy(Bucket=locked)
    # A default retention beyond 100 years is refused (review 12: dates past year 9999).
    with pytest.raises(ClientError) as e:
        s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Years": 100000}}})
    assert err(e) == ("InvalidRetentionPeriod", 400)


def test_lock_headers_are_shown_only_to_callers_allowed_to_read_the_lock(server, s3, locked):
    # "x-amz-object-lock-legal-hold ... returned only if the requester has the
    # s3:GetObjectLegalHold permission", the mode and date likewise with s3:GetObjectRetention
    # (API_HeadObject.html; review 12).
    s3.put_object(Bucket=locked, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                  ObjectLockRetainUntilDate=FAR, ObjectLockLegalHoldStatus="ON")
    iam = iam_client(server)
    _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{locked}/*"}]})
    reader = make_client(server.endpoint, ak, sk)
    head = reader.head_object(Bucket=locked, Key="k")
    assert not any(k.startswith("ObjectLock") for k in head), head
    _, ak2, sk2 = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectRetention"],
         "Resource": f"arn:aws:s3:::{locked}/*"}]})
    head = make_client(server.endpoint, ak2, sk2).get_object(Bucket=locked, Key="k")
    assert head["ObjectLockMode"] == "GOVERNANCE" and "ObjectLockLegalHoldStatus" not in head, head
    full = s3.head_object(Bucket=locked, Key="k")
    assert (full["ObjectLockMode"], full["ObjectLockLegalHoldStatus"]) == ("GOVERNANCE", "ON")
    s3.put_object_legal_hold(Bucket=locked, Key="k", LegalHold={"Status": "OFF"})


def test_the_trail_records_which_lock_was_set(server, s3, locked):
    from e2e_helpers import wait_for_events

    put = s3.put_object(Bucket=locked, Key="a", Body=b"x", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=FAR)
    s3.put_object_legal_hold(Bucket=locked, Key="a", VersionId=put["VersionId"], LegalHold={"Status": "ON"})
    s3.put_object_legal_hold(Bucket=locked, Key="a", VersionId=put["VersionId"], LegalHold={"Status": "OFF"})
    events = wait_for_events(server.data_dir, lambda es: sum(
        1 for e in es if e.get("eventName") == "PutObjectLegalHold" and e.get("stage") == "completed"
        and (e.get("requestParameters") or {}).get("bucketName") == locked) >= 2)
    mine = [e for e in events if (e.get("requestParameters") or {}).get("bucketName") == locked
            and e.get("stage") == "completed"]
    put_event = next(e for e in mine if e["eventName"] == "PutObject")
    assert put_event["responseElements"]["objectLockMode"] == "GOVERNANCE", put_event
    assert put_event["responseElements"]["objectLockRetainUntilDate"].startswith("2030-01-01")
    assert put_event["responseElements"]["x-amz-version-id"] == put["VersionId"]
    holds = [e["responseElements"]["objectLockLegalHoldStatus"] for e in mine if e["eventName"] == "PutObjectLegalHold"]
    assert holds == ["ON", "OFF"], holds
