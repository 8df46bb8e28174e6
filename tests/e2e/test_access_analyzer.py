"""IAM Access Analyzer's ValidatePolicy against the gateway (issue 17, item 2): the same findings
as `keyhole policy lint`, in Access Analyzer's response shape, for aws-cli and boto3, authorized
as `access-analyzer:ValidatePolicy`
(https://docs.aws.amazon.com/access-analyzer/latest/APIReference/API_ValidatePolicy.html)."""

from __future__ import annotations

import json

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, read_trail, wait_for_events
from test_iam import iam_client, new_user

# The three mistakes of the issue: a misspelt action, a misspelt condition key, and a bucket
# action on an object ARN.
MISTAKES = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "arn:aws:s3:::data/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data/*",
     "Condition": {"StringLike": {"s3:prefx": "a/*"}}}]}


def analyzer(server, ak: str | None = None, sk: str | None = None):
    return boto3.session.Session().client(
        "accessanalyzer", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=ak or server.access_key, aws_secret_access_key=sk or server.secret_key,
        config=botocore.config.Config(retries={"max_attempts": 1}))


def test_validate_policy_reports_the_linters_findings(server, aws, tmp_path):
    doc = tmp_path / "policy.json"
    doc.write_text(json.dumps(MISTAKES))
    out = json.loads(aws.ok("accessanalyzer", "validate-policy", "--policy-type", "IDENTITY_POLICY",
                            "--policy-document", f"file://{doc}").stdout)
    codes = {f["issueCode"] for f in out["findings"]}
    assert {"INVALID_ACTION", "INVALID_SERVICE_CONDITION_KEY"} <= codes, out
    assert any(f["findingType"] == "ERROR" and "s3:GetObject" in f["findingDetails"] for f in out["findings"])
    for f in out["findings"]:
        assert f["learnMoreLink"].startswith("https://docs.aws.amazon.com/")
        assert f["locations"] and f["locations"][0]["path"][0] == {"value": "Statement"}, f
        assert f["locations"][0]["span"]["start"]["line"] >= 1
    # The bucket action on an object ARN can never match.
    listing = [f for f in out["findings"] if any(p.get("index") == 1 for p in f["locations"][0]["path"])]
    assert listing, out
    # The same document through boto3, and a clean one.
    got = analyzer(server).validate_policy(policyDocument=json.dumps(MISTAKES), policyType="IDENTITY_POLICY")
    assert {f["issueCode"] for f in got["findings"]} == codes
    clean = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]}
    assert analyzer(server).validate_policy(policyDocument=json.dumps(clean),
                                            policyType="IDENTITY_POLICY")["findings"] == []


def test_resource_and_trust_policies_and_bad_requests(server):
    aa = analyzer(server)
    public = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]}
    got = aa.validate_policy(policyDocument=json.dumps(public), policyType="RESOURCE_POLICY",
                             validatePolicyResourceType="AWS::S3::Bucket")
    assert any(f["findingType"] == "SECURITY_WARNING" for f in got["findings"]), got["findings"]
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    got = aa.validate_policy(policyDocument=json.dumps(trust), policyType="RESOURCE_POLICY",
                             validatePolicyResourceType="AWS::IAM::AssumeRolePolicyDocument")
    assert any(f["findingType"] == "SECURITY_WARNING" for f in got["findings"]), got["findings"]
    got = aa.validate_policy(policyDocument="{not json", policyType="IDENTITY_POLICY")
    assert [f["findingType"] for f in got["findings"]] == ["ERROR"], got["findings"]
    for kwargs in ({"policyType": "SERVICE_CONTROL_POLICY"}, {"policyType": "NOT_A_TYPE"}):
        with pytest.raises(ClientError) as e:
            aa.validate_policy(policyDocument=json.dumps(public), **kwargs)
        assert e.value.response["Error"]["Code"] == "ValidationException", e.value.response


def test_validate_policy_needs_its_action_and_is_audited(server):
    iam = iam_client(server)
    _, ak, sk = new_user(iam)
    with pytest.raises(ClientError) as e:
        analyzer(server, ak, sk).validate_policy(policyDocument=json.dumps(MISTAKES), policyType="IDENTITY_POLICY")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    name, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "access-analyzer:ValidatePolicy", "Resource": "*"}]})
    got = analyzer(server, ak, sk).validate_policy(policyDocument=json.dumps(MISTAKES), policyType="IDENTITY_POLICY")
    assert got["findings"]
    events = wait_for_events(server.data_dir, lambda evs: sum(
        1 for ev in evs if ev.get("eventName") == "ValidatePolicy"
        and (ev.get("userIdentity") or {}).get("arn", "").endswith(f"user/{name}")) >= 1)
    mine = [ev for ev in events if ev.get("eventName") == "ValidatePolicy"]
    assert {ev.get("eventSource") for ev in mine} == {"access-analyzer.amazonaws.com"}
    assert {ev.get("decision") for ev in mine} >= {"Allow", "Deny"}
    assert all(json.dumps(MISTAKES) not in json.dumps(ev) for ev in read_trail(server.data_dir))
