#!/usr/bin/env python3
"""Generates tests/corpus/*.jsonl (the golden corpus). Each case names the AWS documentation page
whose rule it checks; expectations are written by hand from those pages, never from the engine.
Run: python3 crates/policy/tests/corpus/generate.py"""
import json, os
OUT = os.path.dirname(os.path.abspath(__file__))
IAM = "https://docs.aws.amazon.com/IAM/latest/UserGuide/"
EVAL = IAM + "reference_policies_evaluation-logic.html"
DENYALLOW = IAM + "reference_policies_evaluation-logic_policy-eval-denyallow.html"
CROSS = IAM + "reference_policies_evaluation-logic-cross-account.html"
BOUNDARY = IAM + "access_policies_boundaries.html"
SESSION = IAM + "access_policies.html#policies_session"
CONDOPS = IAM + "reference_policies_elements_condition_operators.html"
COND = IAM + "reference_policies_elements_condition.html"
MULTI = IAM + "reference_policies_condition-single-vs-multi-valued-context-keys.html"
VARS = IAM + "reference_policies_variables.html"
RES = IAM + "reference_policies_elements_resource.html"
NOTRES = IAM + "reference_policies_elements_notresource.html"
ACT = IAM + "reference_policies_elements_action.html"
NOTACT = IAM + "reference_policies_elements_notaction.html"
PRIN = IAM + "reference_policies_elements_principal.html"
NOTPRIN = IAM + "reference_policies_elements_notprincipal.html"
GRAMMAR = IAM + "reference_policies_grammar.html"
VERSION = IAM + "reference_policies_elements_version.html"
GLOBALKEYS = IAM + "reference_policies_condition-keys.html"
S3 = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html"
S3DELPOL = "https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketPolicy.html"
S3PREFIX = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html"

ACCT = "111122223333"
OTHER = "444455556666"
USER = f"arn:aws:iam::{ACCT}:user/alice"
ROLE = f"arn:aws:iam::{ACCT}:role/worker"
SESS = f"arn:aws:sts::{ACCT}:assumed-role/worker/job-1"
ROOT = f"arn:aws:iam::{ACCT}:root"
XUSER = f"arn:aws:iam::{OTHER}:user/bob"
OBJ = "arn:aws:s3:::data/train/part-0001.parquet"
BKT = "arn:aws:s3:::data"

def st(effect, action, resource="*", cond=None, sid=None, principal=None, notaction=False, notresource=False, notprincipal=False):
    s = {}
    if sid: s["Sid"] = sid
    s["Effect"] = effect
    if principal is not None: s["NotPrincipal" if notprincipal else "Principal"] = principal
    s["NotAction" if notaction else "Action"] = action
    if resource is not None: s["NotResource" if notresource else "Resource"] = resource
    if cond: s["Condition"] = cond
    return s

def pol(*stmts, version="2012-10-17"):
    d = {"Statement": list(stmts)}
    if version: d = {"Version": version, **d}
    return d

files = {}
def case(file, name, doc, action, resource, expect, principal=USER, context=None, identity=None, resource_policy=None,
         boundaries=None, session=None, resource_account=None, sids=None, missing=None, identity_files=None, failed=None, bpa=False,
         trust=None):
    req = {"action": action, "resource": resource}
    if principal is not None: req["principal"] = principal
    if resource_account: req["resourceAccount"] = resource_account
    if context: req["context"] = context
    inp = {"request": req}
    if identity is not None: inp["identityPolicies"] = identity
    if resource_policy is not None: inp["resourcePolicy"] = resource_policy
    if trust is not None: inp["trustPolicy"] = trust
    if boundaries is not None: inp["permissionBoundaries"] = boundaries
    if session is not None: inp["sessionPolicy"] = session
    if bpa: inp["blockPublicAccess"] = True
    c = {"name": name, "doc": doc, "input": inp, "expect": {"decision": expect}}
    if sids is not None: c["expect"]["matchedSids"] = sids
    if missing is not None: c["expect"]["missingContextKeys"] = missing
    if failed is not None: c["expect"]["failedContains"] = failed
    if identity_files: c["identityPolicyFiles"] = identity_files
    files.setdefault(file, []).append(c)

def verr(name, doc, text, path):
    files.setdefault("validation", []).append({"name": name, "doc": doc, "validate": text, "expect": {"errorPath": path}})

A, D = "Allow", "Deny"
# ---------------- evaluation logic ----------------
E = "evaluation"
case(E, "no policies: implicit deny", DENYALLOW, "s3:GetObject", OBJ, "ImplicitlyDenied", identity=[])
case(E, "identity allow grants", DENYALLOW, "s3:GetObject", OBJ, "Allowed", identity=[pol(st(A, "s3:GetObject", OBJ, sid="R"))], sids=["R"])
case(E, "explicit deny overrides allow in same policy", DENYALLOW, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*", sid="All"), st(D, "s3:GetObject", OBJ, sid="NoGet"))], sids=["NoGet"])
case(E, "explicit deny in another identity policy wins", DENYALLOW, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*", sid="All")), pol(st(D, "s3:Get*", "*", sid="NoGet"))], sids=["NoGet"])
case(E, "deny on other action does not apply", DENYALLOW, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "s3:*", "*", sid="All"), st(D, "s3:PutObject", "*", sid="NoPut"))], sids=["All"])
case(E, "allow for other resource: implicit deny", DENYALLOW, "s3:GetObject", OBJ, "ImplicitlyDenied",
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::other/*"))], failed="resource")
case(E, "allow for other action: implicit deny", DENYALLOW, "s3:PutObject", OBJ, "ImplicitlyDenied",
     identity=[pol(st(A, "s3:GetObject", "*"))])
case(E, "deny with failing condition does not apply", DENYALLOW, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "s3:*", "*", sid="All"), st(D, "s3:*", "*", {"Bool": {"aws:SecureTransport": "false"}}, sid="TLS"))],
     context={"aws:SecureTransport": "true"}, sids=["All"])
case(E, "deny with matching condition applies", DENYALLOW, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*", sid="All"), st(D, "s3:*", "*", {"Bool": {"aws:SecureTransport": "false"}}, sid="TLS"))],
     context={"aws:SecureTransport": "false"}, sids=["TLS"])
case(E, "same account: resource policy alone grants IAM user", EVAL, "s3:GetObject", OBJ, "Allowed", identity=[],
     resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": USER}, sid="BP")), sids=["BP"])
case(E, "same account: identity alone grants (no resource policy statement)", EVAL, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "s3:GetObject", OBJ, sid="ID"))], resource_policy=pol(st(A, "s3:ListBucket", BKT, principal="*")), sids=["ID"])
case(E, "resource policy deny overrides identity allow", EVAL, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:GetObject", OBJ, principal="*", sid="BPDeny")), sids=["BPDeny"])
case(E, "resource policy deny for another principal does not apply", EVAL, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "s3:*", "*", sid="ID"))], resource_policy=pol(st(D, "s3:GetObject", OBJ, principal={"AWS": f"arn:aws:iam::{ACCT}:user/mallory"})), sids=["ID"])
case(E, "resource policy naming the account delegates to identity policies (none)", EVAL, "s3:GetObject", OBJ, "ImplicitlyDenied",
     identity=[], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": ACCT})))
case(E, "resource policy naming the account plus identity allow", EVAL, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "s3:GetObject", "*", sid="ID"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": ROOT})))
case(E, "resource deny naming the account applies to its users", EVAL, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:GetObject", OBJ, principal={"AWS": ACCT}, sid="AcctDeny")), sids=["AcctDeny"])
case(E, "cross-account: identity allow alone is not enough", CROSS, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=XUSER,
     resource_account=ACCT, identity=[pol(st(A, "s3:GetObject", "*"))])
case(E, "cross-account: resource allow alone is not enough", CROSS, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=XUSER,
     resource_account=ACCT, identity=[], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": XUSER})))
case(E, "cross-account: both allow", CROSS, "s3:GetObject", OBJ, "Allowed", principal=XUSER, resource_account=ACCT,
     identity=[pol(st(A, "s3:GetObject", "*", sid="ID"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": XUSER}, sid="BP")), sids=["ID", "BP"])
case(E, "cross-account: resource policy naming the other account plus identity allow", CROSS, "s3:GetObject", OBJ, "Allowed", principal=XUSER,
     resource_account=ACCT, identity=[pol(st(A, "s3:GetObject", "*"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": OTHER})))
case(E, "cross-account: resource deny wins", CROSS, "s3:GetObject", OBJ, "ExplicitlyDenied", principal=XUSER, resource_account=ACCT,
     identity=[pol(st(A, "s3:GetObject", "*"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal="*"), st(D, "s3:GetObject", OBJ, principal={"AWS": OTHER}, sid="X")), sids=["X"])
case(E, "cross-account: resource policy for a different account", CROSS, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=XUSER,
     resource_account=ACCT, identity=[pol(st(A, "s3:GetObject", "*"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": "999999999999"})))
case(E, "boundary: identity allow outside boundary is denied", BOUNDARY, "s3:PutObject", OBJ, "ImplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], boundaries=[pol(st(A, "s3:GetObject", "*"))])
case(E, "boundary: inside both is allowed", BOUNDARY, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "s3:*", "*", sid="ID"))], boundaries=[pol(st(A, "s3:GetObject", "*", sid="B"))], sids=["ID", "B"])
case(E, "boundary alone grants nothing", BOUNDARY, "s3:GetObject", OBJ, "ImplicitlyDenied",
     identity=[], boundaries=[pol(st(A, "s3:*", "*"))])
case(E, "boundary explicit deny", BOUNDARY, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], boundaries=[pol(st(A, "*", "*"), st(D, "s3:GetObject", "*", sid="BD"))], sids=["BD"])
case(E, "boundary does not limit resource policy grant to IAM user ARN", BOUNDARY, "s3:GetObject", OBJ, "Allowed",
     identity=[], boundaries=[pol(st(A, "ec2:*", "*"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": USER})))
case(E, "boundary limits resource policy grant to role ARN (session caller)", BOUNDARY, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=SESS,
     identity=[], boundaries=[pol(st(A, "ec2:*", "*"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": ROLE})))
case(E, "resource policy grant to role ARN stands in for identity allow within boundary", BOUNDARY, "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[], boundaries=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": ROLE})))
case(E, "boundary does not limit resource policy grant to exact session ARN", BOUNDARY, "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[], boundaries=[pol(st(A, "ec2:*", "*"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": SESS})))
case(E, "session policy: intersection with identity", SESSION, "s3:PutObject", OBJ, "ImplicitlyDenied", principal=SESS,
     identity=[pol(st(A, "s3:*", "*"))], session=pol(st(A, "s3:GetObject", "*")))
case(E, "session policy: allowed in both", SESSION, "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[pol(st(A, "s3:*", "*", sid="ID"))], session=pol(st(A, "s3:GetObject", "*", sid="SP")), sids=["ID", "SP"])
case(E, "session policy alone grants nothing", SESSION, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=SESS,
     identity=[], session=pol(st(A, "s3:*", "*")))
case(E, "session policy explicit deny", SESSION, "s3:GetObject", OBJ, "ExplicitlyDenied", principal=SESS,
     identity=[pol(st(A, "s3:*", "*"))], session=pol(st(A, "*", "*"), st(D, "s3:GetObject", "*", sid="SD")), sids=["SD"])
case(E, "session policy limits resource grant to role ARN", SESSION, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=SESS,
     identity=[], session=pol(st(A, "ec2:*", "*")), resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": ROLE})))
case(E, "session policy does not limit resource grant to session ARN", SESSION, "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[], session=pol(st(A, "ec2:*", "*")), resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": SESS})))
case(E, "Principal * grant to a role session is not limited by the boundary", BOUNDARY, "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[], boundaries=[pol(st(A, "ec2:*", "*"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal="*")))
case(E, "Principal * grant to a role session still needs the session policy", SESSION, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=SESS,
     identity=[], session=pol(st(A, "ec2:*", "*")), resource_policy=pol(st(A, "s3:GetObject", OBJ, principal="*")))
case(E, "Principal * grant to a role session within the session policy", SESSION, "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[], session=pol(st(A, "s3:Get*", "*")), resource_policy=pol(st(A, "s3:GetObject", OBJ, principal="*")))
case(E, "session: resource policy naming role ARN allows with no boundary or session policy", EVAL, "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": ROLE})))
case(E, "session: resource deny naming role ARN applies to its sessions", EVAL, "s3:GetObject", OBJ, "ExplicitlyDenied", principal=SESS,
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:GetObject", OBJ, principal={"AWS": ROLE}, sid="RD")), sids=["RD"])
case(E, "root: allowed without identity policies in own account", DENYALLOW, "s3:GetObject", OBJ, "Allowed", principal=ROOT, identity=[])
case(E, "root: bucket policy explicit deny applies", EVAL, "s3:GetObject", OBJ, "ExplicitlyDenied", principal=ROOT,
     resource_policy=pol(st(D, "s3:GetObject", OBJ, principal="*", sid="DenyAll")), sids=["DenyAll"])
case(E, "root: can always delete the bucket policy", S3DELPOL, "s3:DeleteBucketPolicy", BKT, "Allowed", principal=ROOT,
     resource_policy=pol(st(D, "s3:*", [BKT, BKT + "/*"], principal="*")))
case(E, "root: can always put the bucket policy", S3DELPOL, "s3:PutBucketPolicy", BKT, "Allowed", principal=ROOT,
     resource_policy=pol(st(D, "s3:*", [BKT, BKT + "/*"], principal="*")))
case(E, "root: can always get the bucket policy", S3DELPOL, "s3:GetBucketPolicy", BKT, "Allowed", principal=ROOT,
     resource_policy=pol(st(D, "s3:*", [BKT, BKT + "/*"], principal="*")))
case(E, "non-root user cannot bypass bucket policy deny on DeleteBucketPolicy", S3DELPOL, "s3:DeleteBucketPolicy", BKT, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:*", [BKT], principal="*")))
case(E, "root of another account needs the resource policy", CROSS, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=f"arn:aws:iam::{OTHER}:root",
     resource_account=ACCT)
case(E, "root of another account granted by resource policy naming its account", CROSS, "s3:GetObject", OBJ, "Allowed", principal=f"arn:aws:iam::{OTHER}:root",
     resource_account=ACCT, resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": OTHER})))
case(E, "anonymous: public-read bucket policy allows", PRIN + "#principal-anonymous", "s3:GetObject", OBJ, "Allowed", principal="anonymous",
     resource_policy=pol(st(A, "s3:GetObject", BKT + "/*", principal="*", sid="Public")), sids=["Public"])
case(E, "anonymous: AWS * principal also allows", PRIN + "#principal-anonymous", "s3:GetObject", OBJ, "Allowed", principal="anonymous",
     resource_policy=pol(st(A, "s3:GetObject", BKT + "/*", principal={"AWS": "*"})))
case(E, "anonymous: no resource policy", PRIN, "s3:GetObject", OBJ, "ImplicitlyDenied", principal="anonymous", identity=[pol(st(A, "*", "*"))])
case(E, "anonymous: policy for an account does not admit anonymous", PRIN, "s3:GetObject", OBJ, "ImplicitlyDenied", principal="anonymous",
     resource_policy=pol(st(A, "s3:GetObject", BKT + "/*", principal={"AWS": ACCT})))
case(E, "service principal granted by the bucket policy", PRIN + "#principal-services", "s3:PutObject", "arn:aws:s3:::logs/AWSLogs/x", "Allowed",
     principal="cloudtrail.amazonaws.com", resource_account=ACCT,
     resource_policy=pol(st(A, "s3:PutObject", "arn:aws:s3:::logs/AWSLogs/*", principal={"Service": "cloudtrail.amazonaws.com"}, sid="Trail")), sids=["Trail"])
case(E, "service principal not named by the bucket policy", PRIN + "#principal-services", "s3:PutObject", "arn:aws:s3:::logs/AWSLogs/x", "ImplicitlyDenied",
     principal="config.amazonaws.com", resource_account=ACCT,
     resource_policy=pol(st(A, "s3:PutObject", "arn:aws:s3:::logs/AWSLogs/*", principal={"Service": "cloudtrail.amazonaws.com"})))
case(E, "public principal grants same-account IAM user", PRIN, "s3:GetObject", OBJ, "Allowed", identity=[],
     resource_policy=pol(st(A, "s3:GetObject", BKT + "/*", principal="*")))
case(E, "resource policy for another user does not grant", PRIN, "s3:GetObject", OBJ, "ImplicitlyDenied", identity=[],
     resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": f"arn:aws:iam::{ACCT}:user/bob"})), failed="principal")
case(E, "NotPrincipal deny spares the listed user", NOTPRIN, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": [USER, ROOT]}, notprincipal=True)))
case(E, "NotPrincipal deny applies to everyone else", NOTPRIN, "s3:GetObject", OBJ, "ExplicitlyDenied", principal=f"arn:aws:iam::{ACCT}:user/carol",
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": [USER, ROOT]}, notprincipal=True, sid="NP")), sids=["NP"])
case(E, "NotPrincipal naming only the role does not spare its sessions", NOTPRIN, "s3:GetObject", OBJ, "ExplicitlyDenied", principal=SESS,
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": [ROLE]}, notprincipal=True)))
case(E, "NotPrincipal naming the session ARN spares it", NOTPRIN, "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": [SESS, ROLE, ROOT]}, notprincipal=True)))
case(E, "NotPrincipal listing the user but not its account does not spare it", NOTPRIN, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": [USER]}, notprincipal=True)))
case(E, "NotPrincipal listing only the account does not spare its users", NOTPRIN, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": ACCT}, notprincipal=True)))
# "When you specify an assumed-role session in a NotPrincipal element, you cannot use a wildcard
# (*) to mean 'all sessions'. Principals must always name a specific session": the role and its
# account do not spare the role's sessions (this case expected Allowed before review round 5).
case(E, "NotPrincipal listing the role and its account does not spare the role's sessions", NOTPRIN, "s3:GetObject", OBJ, "ExplicitlyDenied", principal=SESS,
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": [ROLE, ROOT]}, notprincipal=True)))
case(E, "NotPrincipal listing the account spares the root user", NOTPRIN, "s3:GetObject", OBJ, "Allowed", principal=ROOT,
     resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": ACCT}, notprincipal=True)))
case(E, "NotPrincipal deny always applies to a principal with a permissions boundary", NOTPRIN, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], boundaries=[pol(st(A, "s3:*", "*"))],
     resource_policy=pol(st(D, "s3:*", "*", principal={"AWS": [USER, ROOT]}, notprincipal=True)))
case(E, "several allows: all granting statements reported", DENYALLOW, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "s3:GetObject", "*", sid="A1"), st(A, "s3:Get*", OBJ, sid="A2"))], sids=["A1", "A2"])
case(E, "several denies: all reported", DENYALLOW, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "*", "*"), st(D, "s3:GetObject", "*", sid="D1"), st(D, "*", OBJ, sid="D2"))], sids=["D1", "D2"])
case(E, "deny in identity, allow in resource: deny", DENYALLOW, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(D, "s3:GetObject", "*", sid="ID"))], resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": USER})), sids=["ID"])

# ---------------- action / resource elements ----------------
R = "elements"
case(R, "action matching is case-insensitive", ACT, "S3:getobject", OBJ, "Allowed", identity=[pol(st(A, "s3:GetObject", OBJ))])
case(R, "action wildcard prefix", ACT, "s3:GetObjectTagging", OBJ, "Allowed", identity=[pol(st(A, "s3:Get*", OBJ))])
case(R, "action wildcard does not match other service", ACT, "ec2:GetConsoleOutput", "*", "ImplicitlyDenied", identity=[pol(st(A, "s3:Get*", "*"))])
case(R, "action ? wildcard", ACT, "s3:GetObject", OBJ, "Allowed", identity=[pol(st(A, "s3:G?tObject", OBJ))])
case(R, "action * alone", ACT, "iam:CreateUser", f"arn:aws:iam::{ACCT}:user/x", "Allowed", identity=[pol(st(A, "*", "*"))])
case(R, "action list", ACT, "s3:PutObject", OBJ, "Allowed", identity=[pol(st(A, ["s3:GetObject", "s3:PutObject"], OBJ))])
case(R, "action in middle wildcard", ACT, "s3:PutObjectAcl", OBJ, "Allowed", identity=[pol(st(A, "s3:*Object*", OBJ))])
case(R, "NotAction allows everything else", NOTACT, "s3:GetObject", OBJ, "Allowed", identity=[pol(st(A, "iam:*", "*", notaction=True))])
case(R, "NotAction excludes listed", NOTACT, "iam:CreateUser", "*", "ImplicitlyDenied", identity=[pol(st(A, "iam:*", "*", notaction=True))])
case(R, "Deny with NotAction denies everything else", NOTACT, "s3:DeleteObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "*", "*"), st(D, ["s3:Get*", "s3:List*"], "*", notaction=True))])
case(R, "Deny with NotAction spares listed", NOTACT, "s3:ListBucket", BKT, "Allowed",
     identity=[pol(st(A, "*", "*"), st(D, ["s3:Get*", "s3:List*"], "*", notaction=True))])
case(R, "NotAction match is case-insensitive", NOTACT, "S3:GETOBJECT", OBJ, "Allowed",
     identity=[pol(st(A, "*", "*"), st(D, ["s3:getobject"], "*", notaction=True))])
case(R, "resource matching is case-sensitive", RES, "s3:GetObject", "arn:aws:s3:::Data/train/x", "ImplicitlyDenied", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::data/*"))])
case(R, "resource * crosses slashes", RES, "s3:GetObject", OBJ, "Allowed", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::data/*"))])
case(R, "resource bucket ARN does not match objects", RES, "s3:GetObject", OBJ, "ImplicitlyDenied", identity=[pol(st(A, "s3:GetObject", BKT))])
case(R, "resource object ARN does not match bucket", RES, "s3:ListBucket", BKT, "ImplicitlyDenied", identity=[pol(st(A, "s3:ListBucket", BKT + "/*"))])
case(R, "resource ? matches one character", RES, "s3:GetObject", "arn:aws:s3:::data/a1", "Allowed", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::data/a?"))])
case(R, "resource ? does not match two", RES, "s3:GetObject", "arn:aws:s3:::data/a12", "ImplicitlyDenied", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::data/a?"))])
case(R, "resource ? matches one multibyte character", RES, "s3:GetObject", "arn:aws:s3:::data/é", "Allowed", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::data/?"))])
case(R, "resource * matches colons in the resource part", RES, "s3:GetObject", "arn:aws:s3:::data/a:b:c", "Allowed", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::data/*"))])
case(R, "resource wildcard in account segment", RES, "iam:GetRole", ROLE, "Allowed", identity=[pol(st(A, "iam:GetRole", "arn:aws:iam::*:role/worker"))])
case(R, "resource wildcard does not span segments", RES, "iam:GetRole", ROLE, "ImplicitlyDenied", identity=[pol(st(A, "iam:GetRole", "arn:aws:iam:*:role/worker:::"))])
case(R, "resource * alone", RES, "s3:GetObject", OBJ, "Allowed", identity=[pol(st(A, "s3:GetObject", "*"))])
case(R, "resource list", RES, "s3:ListBucket", BKT, "Allowed", identity=[pol(st(A, "s3:ListBucket", ["arn:aws:s3:::x", BKT]))])
case(R, "NotResource allows other resources", NOTRES, "s3:GetObject", OBJ, "Allowed", identity=[pol(st(A, "s3:*", "arn:aws:s3:::secret/*", notresource=True))])
case(R, "NotResource excludes listed", NOTRES, "s3:GetObject", "arn:aws:s3:::secret/k", "ImplicitlyDenied", identity=[pol(st(A, "s3:*", "arn:aws:s3:::secret/*", notresource=True))])
case(R, "Deny with NotResource denies everything outside", NOTRES, "s3:GetObject", "arn:aws:s3:::other/k", "ExplicitlyDenied",
     identity=[pol(st(A, "*", "*"), st(D, "s3:*", ["arn:aws:s3:::data", "arn:aws:s3:::data/*"], notresource=True))])
case(R, "Deny with NotResource spares listed", NOTRES, "s3:GetObject", OBJ, "Allowed",
     identity=[pol(st(A, "*", "*"), st(D, "s3:*", ["arn:aws:s3:::data", "arn:aws:s3:::data/*"], notresource=True))])
case(R, "statement object instead of array", GRAMMAR, "s3:GetObject", OBJ, "Allowed", identity=[{"Version": "2012-10-17", "Statement": st(A, "s3:GetObject", OBJ)}])
case(R, "NotAction with NotResource", NOTACT, "s3:GetObject", OBJ, "Allowed", identity=[pol(st(A, "iam:*", "arn:aws:s3:::secret/*", notaction=True, notresource=True))])

# ---------------- conditions ----------------
C = "conditions"
def cc(name, op, key, vals, ctx, expect, doc=CONDOPS, action="s3:GetObject", resource=OBJ, missing=None, failed=None):
    case(C, name, doc, action, resource, expect, context=ctx, identity=[pol(st(A, action, resource, {op: {key: vals}}, sid="C"))], missing=missing, failed=failed)
AL, ID_ = "Allowed", "ImplicitlyDenied"
cc("StringEquals match", "StringEquals", "aws:PrincipalTag/team", "ml", {"aws:PrincipalTag/team": "ml"}, AL)
cc("StringEquals is case-sensitive", "StringEquals", "aws:PrincipalTag/team", "ML", {"aws:PrincipalTag/team": "ml"}, ID_, failed="StringEquals")
cc("StringEquals several values are ORed", "StringEquals", "aws:PrincipalTag/team", ["a", "ml"], {"aws:PrincipalTag/team": "ml"}, AL)
cc("StringEquals has no wildcards", "StringEquals", "aws:PrincipalTag/team", "m*", {"aws:PrincipalTag/team": "ml"}, ID_)
cc("StringNotEquals match", "StringNotEquals", "aws:PrincipalTag/team", "ops", {"aws:PrincipalTag/team": "ml"}, AL)
cc("StringNotEquals is NOT any of the values", "StringNotEquals", "aws:PrincipalTag/team", ["ops", "ml"], {"aws:PrincipalTag/team": "ml"}, ID_)
cc("StringEqualsIgnoreCase", "StringEqualsIgnoreCase", "aws:PrincipalTag/team", "ML", {"aws:PrincipalTag/team": "ml"}, AL)
cc("StringNotEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "aws:PrincipalTag/team", "ML", {"aws:PrincipalTag/team": "ml"}, ID_)
cc("StringLike with *", "StringLike", "s3:prefix", "home/*", {"s3:prefix": "home/alice/"}, AL, action="s3:ListBucket", resource=BKT)
cc("StringLike with ?", "StringLike", "s3:prefix", "a?c", {"s3:prefix": "abc"}, AL, action="s3:ListBucket", resource=BKT)
cc("StringLike is case-sensitive", "StringLike", "s3:prefix", "Home/*", {"s3:prefix": "home/x"}, ID_, action="s3:ListBucket", resource=BKT)
cc("StringLike without wildcard is exact", "StringLike", "s3:prefix", "home", {"s3:prefix": "home/"}, ID_, action="s3:ListBucket", resource=BKT)
cc("StringNotLike", "StringNotLike", "s3:prefix", "secret/*", {"s3:prefix": "home/"}, AL, action="s3:ListBucket", resource=BKT)
cc("StringNotLike match fails", "StringNotLike", "s3:prefix", ["x/*", "secret/*"], {"s3:prefix": "secret/a"}, ID_, action="s3:ListBucket", resource=BKT)
cc("missing key: StringEquals false", "StringEquals", "aws:PrincipalTag/team", "ml", {}, ID_, missing=["aws:principaltag/team"], failed="key missing")
cc("missing key: StringNotEquals true", "StringNotEquals", "aws:PrincipalTag/team", "ml", {}, AL, missing=["aws:principaltag/team"])
cc("missing key: StringNotLike true", "StringNotLike", "s3:prefix", "a*", {}, AL)
cc("missing key: ArnNotLike true", "ArnNotLike", "aws:SourceArn", "arn:aws:sns:*:*:*", {}, AL)
cc("missing key: NumericLessThan false", "NumericLessThan", "s3:max-keys", "10", {}, ID_)
cc("missing key: NotIpAddress true", "NotIpAddress", "aws:SourceIp", "10.0.0.0/8", {}, AL)
cc("IfExists: missing key is true", "StringEqualsIfExists", "aws:PrincipalTag/team", "ml", {}, AL)
cc("IfExists: present key is checked", "StringEqualsIfExists", "aws:PrincipalTag/team", "ml", {"aws:PrincipalTag/team": "ops"}, ID_)
cc("IfExists: present matching key", "StringEqualsIfExists", "aws:PrincipalTag/team", "ml", {"aws:PrincipalTag/team": "ml"}, AL)
cc("NumericLessThanIfExists present", "NumericLessThanIfExists", "s3:max-keys", "10", {"s3:max-keys": "5"}, AL, action="s3:ListBucket", resource=BKT)
cc("condition key names are case-insensitive", "StringEquals", "AWS:principaltag/TEAM", "ml", {"aws:PrincipalTag/team": "ml"}, AL, doc=COND)
cc("condition values are case-sensitive", "StringEquals", "aws:username", "Alice", {"aws:username": "alice"}, ID_, doc=COND)
cc("NumericEquals", "NumericEquals", "s3:max-keys", "10", {"s3:max-keys": "10"}, AL, action="s3:ListBucket", resource=BKT)
cc("NumericEquals decimal", "NumericEquals", "s3:max-keys", "10.0", {"s3:max-keys": "10"}, AL, action="s3:ListBucket", resource=BKT)
cc("NumericNotEquals", "NumericNotEquals", "s3:max-keys", ["10", "20"], {"s3:max-keys": "10"}, ID_, action="s3:ListBucket", resource=BKT)
cc("NumericLessThan true", "NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "9"}, AL, action="s3:ListBucket", resource=BKT)
cc("NumericLessThan boundary", "NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "10"}, ID_, action="s3:ListBucket", resource=BKT)
cc("NumericLessThanEquals boundary", "NumericLessThanEquals", "s3:max-keys", "10", {"s3:max-keys": "10"}, AL, action="s3:ListBucket", resource=BKT)
cc("NumericGreaterThan", "NumericGreaterThan", "s3:max-keys", "10", {"s3:max-keys": "11"}, AL, action="s3:ListBucket", resource=BKT)
cc("NumericGreaterThanEquals false", "NumericGreaterThanEquals", "s3:max-keys", "10", {"s3:max-keys": "9"}, ID_, action="s3:ListBucket", resource=BKT)
cc("Numeric non-number request value does not match", "NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "ten"}, ID_, action="s3:ListBucket", resource=BKT)
cc("Numeric JSON number policy value", "NumericLessThanEquals", "s3:max-keys", 100, {"s3:max-keys": 50}, AL, action="s3:ListBucket", resource=BKT)
cc("DateGreaterThan ISO", "DateGreaterThan", "aws:CurrentTime", "2025-07-16T01:00:00Z", {"aws:CurrentTime": "2025-07-16T02:00:00Z"}, AL)
cc("DateLessThan ISO false", "DateLessThan", "aws:CurrentTime", "2025-07-16T01:00:00Z", {"aws:CurrentTime": "2025-07-16T02:00:00Z"}, ID_)
cc("DateLessThan epoch policy value", "DateLessThan", "aws:CurrentTime", "1752634800", {"aws:CurrentTime": "2025-07-16T02:00:00Z"}, AL)
cc("DateEquals", "DateEquals", "aws:CurrentTime", "2025-07-16T02:00:00Z", {"aws:CurrentTime": "2025-07-16T02:00:00Z"}, AL)
cc("DateNotEquals", "DateNotEquals", "aws:CurrentTime", "2025-07-16T02:00:00Z", {"aws:CurrentTime": "2025-07-16T02:00:00Z"}, ID_)
cc("DateLessThanEquals boundary", "DateLessThanEquals", "aws:CurrentTime", "2025-07-16T02:00:00Z", {"aws:CurrentTime": "2025-07-16T02:00:00Z"}, AL)
cc("DateGreaterThanEquals with epoch request", "DateGreaterThanEquals", "aws:EpochTime", "2025-07-16T01:00:00Z", {"aws:EpochTime": "1752627600"}, AL)
cc("Date with offset", "DateGreaterThan", "aws:CurrentTime", "2025-07-16T03:00:00+02:00", {"aws:CurrentTime": "2025-07-16T01:30:00Z"}, AL)
cc("Date date-only form", "DateLessThan", "aws:CurrentTime", "2025-07-17", {"aws:CurrentTime": "2025-07-16T23:59:59Z"}, AL)
cc("Date garbage request value does not match", "DateLessThan", "aws:CurrentTime", "2025-07-17", {"aws:CurrentTime": "soon"}, ID_)
cc("Bool true", "Bool", "aws:SecureTransport", "true", {"aws:SecureTransport": "true"}, AL)
cc("Bool false mismatch", "Bool", "aws:SecureTransport", "false", {"aws:SecureTransport": "true"}, ID_)
cc("Bool JSON boolean value", "Bool", "aws:SecureTransport", True, {"aws:SecureTransport": True}, AL)
cc("Bool case-insensitive values", "Bool", "aws:SecureTransport", "TRUE", {"aws:SecureTransport": "true"}, AL)
cc("Bool missing key false", "Bool", "aws:SecureTransport", "true", {}, ID_)
cc("BinaryEquals", "BinaryEquals", "k:bin", "QmluYXJ5VmFsdWU=", {"k:bin": "QmluYXJ5VmFsdWU="}, AL)
cc("BinaryEquals mismatch", "BinaryEquals", "k:bin", "QmluYXJ5VmFsdWU=", {"k:bin": "b3RoZXI="}, ID_)
cc("IpAddress CIDR v4", "IpAddress", "aws:SourceIp", "203.0.113.0/24", {"aws:SourceIp": "203.0.113.42"}, AL)
cc("IpAddress outside", "IpAddress", "aws:SourceIp", "203.0.113.0/24", {"aws:SourceIp": "198.51.100.1"}, ID_)
cc("IpAddress several ranges", "IpAddress", "aws:SourceIp", ["10.0.0.0/8", "203.0.113.0/24"], {"aws:SourceIp": "10.9.8.7"}, AL)
cc("IpAddress single host", "IpAddress", "aws:SourceIp", "203.0.113.42", {"aws:SourceIp": "203.0.113.42"}, AL)
cc("IpAddress IPv6", "IpAddress", "aws:SourceIp", "2001:DB8:1234:5678::/64", {"aws:SourceIp": "2001:db8:1234:5678::9"}, AL)
cc("IpAddress IPv6 outside", "IpAddress", "aws:SourceIp", "2001:DB8:1234:5678::/64", {"aws:SourceIp": "2001:db8:1234:5679::9"}, ID_)
cc("IpAddress v4 range vs v6 address", "IpAddress", "aws:SourceIp", "0.0.0.0/0", {"aws:SourceIp": "2001:db8::1"}, ID_)
cc("NotIpAddress inside range false", "NotIpAddress", "aws:SourceIp", "203.0.113.0/24", {"aws:SourceIp": "203.0.113.9"}, ID_)
cc("NotIpAddress outside range true", "NotIpAddress", "aws:SourceIp", "203.0.113.0/24", {"aws:SourceIp": "192.0.2.1"}, AL)
cc("ArnEquals", "ArnEquals", "aws:SourceArn", "arn:aws:sns:us-east-1:111122223333:topic", {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:topic"}, AL)
cc("ArnLike wildcard region", "ArnLike", "aws:SourceArn", "arn:aws:sns:*:111122223333:*", {"aws:SourceArn": "arn:aws:sns:eu-west-1:111122223333:t"}, AL)
cc("ArnLike segment mismatch", "ArnLike", "aws:SourceArn", "arn:aws:sns:*:111122223333:*", {"aws:SourceArn": "arn:aws:sqs:eu-west-1:111122223333:t"}, ID_)
cc("ArnNotEquals", "ArnNotEquals", "aws:SourceArn", "arn:aws:sns:us-east-1:111122223333:topic", {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:other"}, AL)
cc("ArnNotLike matching value false", "ArnNotLike", "aws:SourceArn", "arn:aws:sns:*:*:*", {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}, ID_)
cc("ArnLike non-ARN request value", "ArnLike", "aws:SourceArn", "arn:aws:sns:*:*:*", {"aws:SourceArn": "nope"}, ID_)
cc("Null true: key absent", "Null", "aws:TokenIssueTime", "true", {}, AL)
cc("Null true: key present", "Null", "aws:TokenIssueTime", "true", {"aws:TokenIssueTime": "2025-07-16T01:00:00Z"}, ID_)
cc("Null false: key present", "Null", "aws:TokenIssueTime", "false", {"aws:TokenIssueTime": "2025-07-16T01:00:00Z"}, AL)
cc("Null false: key absent", "Null", "aws:TokenIssueTime", "false", {}, ID_)
cc("ForAnyValue match one", "ForAnyValue:StringEquals", "aws:TagKeys", ["env", "team"], {"aws:TagKeys": ["team", "x"]}, AL, doc=MULTI)
cc("ForAnyValue no match", "ForAnyValue:StringEquals", "aws:TagKeys", ["env"], {"aws:TagKeys": ["team", "x"]}, ID_, doc=MULTI)
cc("ForAnyValue missing key false", "ForAnyValue:StringEquals", "aws:TagKeys", ["env"], {}, ID_, doc=MULTI)
cc("ForAnyValue empty set false", "ForAnyValue:StringEquals", "aws:TagKeys", ["env"], {"aws:TagKeys": []}, ID_, doc=MULTI)
cc("ForAllValues subset", "ForAllValues:StringEquals", "aws:TagKeys", ["env", "team"], {"aws:TagKeys": ["team"]}, AL, doc=MULTI)
cc("ForAllValues not subset", "ForAllValues:StringEquals", "aws:TagKeys", ["env"], {"aws:TagKeys": ["team", "env"]}, ID_, doc=MULTI)
cc("ForAllValues missing key true", "ForAllValues:StringEquals", "aws:TagKeys", ["env"], {}, AL, doc=MULTI)
cc("ForAllValues empty set true", "ForAllValues:StringEquals", "aws:TagKeys", ["env"], {"aws:TagKeys": []}, AL, doc=MULTI)
cc("ForAllValues StringLike", "ForAllValues:StringLike", "aws:TagKeys", ["Created*"], {"aws:TagKeys": ["CreatedBy", "CreatedAt"]}, AL, doc=MULTI)
cc("ForAnyValue StringNotEquals: some value outside", "ForAnyValue:StringNotEquals", "aws:TagKeys", ["a"], {"aws:TagKeys": ["a", "b"]}, AL, doc=MULTI)
cc("ForAllValues StringNotEquals: one forbidden value", "ForAllValues:StringNotEquals", "aws:TagKeys", ["a"], {"aws:TagKeys": ["a", "b"]}, ID_, doc=MULTI)
cc("single-valued operator on a multi-valued key does not match", "StringEquals", "aws:TagKeys", ["a", "b"], {"aws:TagKeys": ["a"]}, ID_, doc=MULTI)
cc("negated single-valued operator on a multi-valued key does not match either", "StringNotEquals", "aws:TagKeys", ["z"], {"aws:TagKeys": ["a"]}, ID_, doc=MULTI)
cc("ForAnyValue with IfExists: missing key is true", "ForAnyValue:StringEqualsIfExists", "aws:TagKeys", ["a"], {}, AL, doc=CONDOPS + "#Conditions_IfExists")
cc("ForAllValues with IfExists missing", "ForAllValues:StringEqualsIfExists", "aws:TagKeys", ["a"], {}, AL, doc=MULTI)
case(C, "several operators are ANDed", COND, "s3:GetObject", OBJ, "ImplicitlyDenied",
     context={"aws:SecureTransport": "true", "aws:SourceIp": "192.0.2.1"},
     identity=[pol(st(A, "s3:GetObject", OBJ, {"Bool": {"aws:SecureTransport": "true"}, "IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}))], failed="IpAddress")
case(C, "several keys in one operator are ANDed", COND, "s3:GetObject", OBJ, "ImplicitlyDenied",
     context={"aws:PrincipalTag/a": "1", "aws:PrincipalTag/b": "x"},
     identity=[pol(st(A, "s3:GetObject", OBJ, {"StringEquals": {"aws:PrincipalTag/a": "1", "aws:PrincipalTag/b": "2"}}))])
case(C, "several keys all true", COND, "s3:GetObject", OBJ, "Allowed",
     context={"aws:PrincipalTag/a": "1", "aws:PrincipalTag/b": "2"},
     identity=[pol(st(A, "s3:GetObject", OBJ, {"StringEquals": {"aws:PrincipalTag/a": "1", "aws:PrincipalTag/b": "2"}}))])
case(C, "missing keys reported for all matched statements", COND, "s3:GetObject", OBJ, "ImplicitlyDenied", context={},
     identity=[pol(st(A, "s3:GetObject", OBJ, {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}, "Bool": {"aws:SecureTransport": "true"}}))],
     missing=["aws:secureTransport".lower(), "aws:sourceip"])
case(C, "deny unless TLS: deny when false", "https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html", "s3:GetObject", OBJ, "ExplicitlyDenied",
     context={"aws:SecureTransport": "false"}, identity=[pol(st(A, "s3:*", "*"))],
     resource_policy=pol(st(D, "s3:*", [BKT, BKT + "/*"], {"Bool": {"aws:SecureTransport": "false"}}, principal="*")))
case(C, "deny unless TLS: missing key does not trigger Bool false", CONDOPS, "s3:GetObject", OBJ, "Allowed",
     context={}, identity=[pol(st(A, "s3:*", "*"))],
     resource_policy=pol(st(D, "s3:*", [BKT, BKT + "/*"], {"Bool": {"aws:SecureTransport": "false"}}, principal="*")))

# ---------------- policy variables ----------------
V = "variables"
HOME = {"Version": "2012-10-17", "Statement": [st(A, "s3:GetObject", "arn:aws:s3:::home/${aws:username}/*", sid="Home")]}
case(V, "aws:username in resource", VARS, "s3:GetObject", "arn:aws:s3:::home/alice/notes.txt", "Allowed", identity=[HOME], sids=["Home"])
case(V, "aws:username in resource: other user's folder", VARS, "s3:GetObject", "arn:aws:s3:::home/bob/notes.txt", "ImplicitlyDenied", identity=[HOME])
case(V, "variable missing: resource does not match", VARS, "s3:GetObject", "arn:aws:s3:::t/x", "ImplicitlyDenied", principal=SESS,
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::t/${aws:PrincipalTag/team}/*"))], missing=["aws:principaltag/team"])
case(V, "principal tag variable", VARS, "s3:GetObject", "arn:aws:s3:::t/ml/x", "Allowed", principal=SESS, context={"aws:PrincipalTag/team": "ml"},
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::t/${aws:PrincipalTag/team}/*"))])
case(V, "default value used when key missing", VARS, "s3:GetObject", "arn:aws:s3:::t/shared/x", "Allowed", principal=SESS,
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::t/${aws:PrincipalTag/team, 'shared'}/*"))])
case(V, "default value ignored when key present", VARS, "s3:GetObject", "arn:aws:s3:::t/shared/x", "ImplicitlyDenied", principal=SESS,
     context={"aws:PrincipalTag/team": "ml"}, identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::t/${aws:PrincipalTag/team, 'shared'}/*"))])
case(V, "${*} is a literal asterisk", VARS, "s3:GetObject", "arn:aws:s3:::b/a*b", "Allowed", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::b/a${*}b"))])
case(V, "${*} is not a wildcard", VARS, "s3:GetObject", "arn:aws:s3:::b/axxb", "ImplicitlyDenied", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::b/a${*}b"))])
case(V, "${?} is a literal question mark", VARS, "s3:GetObject", "arn:aws:s3:::b/a?", "Allowed", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::b/a${?}"))])
case(V, "${?} is not a wildcard", VARS, "s3:GetObject", "arn:aws:s3:::b/ax", "ImplicitlyDenied", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::b/a${?}"))])
case(V, "${$} is a literal dollar", VARS, "s3:GetObject", "arn:aws:s3:::b/$x", "Allowed", identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::b/${$}x"))])
case(V, "no variables in 2008-10-17: text is literal", VERSION, "s3:GetObject", "arn:aws:s3:::home/alice/x", "ImplicitlyDenied",
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::home/${aws:username}/*"), version="2008-10-17")])
case(V, "no variables without Version: text is literal", VERSION, "s3:GetObject", "arn:aws:s3:::home/${aws:username}/x", "Allowed",
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::home/${aws:username}/*"), version=None)])
case(V, "variable in StringLike condition (s3:prefix)", VARS, "s3:ListBucket", BKT, "Allowed", context={"s3:prefix": "home/alice/photos/"},
     identity=[pol(st(A, "s3:ListBucket", BKT, {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}}))])
case(V, "variable in StringLike condition: other prefix", VARS, "s3:ListBucket", BKT, "ImplicitlyDenied", context={"s3:prefix": "home/bob/"},
     identity=[pol(st(A, "s3:ListBucket", BKT, {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}}))])
case(V, "variable in StringEquals condition", VARS, "s3:GetObject", OBJ, "Allowed", context={"aws:PrincipalTag/owner": "alice"},
     identity=[pol(st(A, "s3:GetObject", OBJ, {"StringEquals": {"aws:PrincipalTag/owner": "${aws:username}"}}))])
case(V, "variable in ArnLike condition", VARS, "s3:GetObject", OBJ, "Allowed", context={"aws:SourceArn": f"arn:aws:iam::{ACCT}:user/alice"},
     identity=[pol(st(A, "s3:GetObject", OBJ, {"ArnLike": {"aws:SourceArn": "arn:aws:iam::*:user/${aws:username}"}}))])
case(V, "variable value is literal, not a wildcard", VARS, "s3:GetObject", "arn:aws:s3:::t/x/y", "ImplicitlyDenied", principal=SESS,
     context={"aws:PrincipalTag/team": "*"}, identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::t/${aws:PrincipalTag/team}/*"))])
case(V, "variable key is case-insensitive", VARS, "s3:GetObject", "arn:aws:s3:::home/alice/x", "Allowed",
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::home/${AWS:UserName}/*"))])
case(V, "aws:userid variable", VARS, "s3:GetObject", "arn:aws:s3:::u/AIDAEXAMPLE/x", "Allowed", context={"aws:userid": "AIDAEXAMPLE"},
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::u/${aws:userid}/*"))])
case(V, "unresolvable variable in NotResource makes the Deny statement invalid", VARS + "#policy-vars-no-value", "s3:GetObject", OBJ, "Allowed", principal=SESS,
     identity=[pol(st(A, "s3:*", "*", sid="All"), st(D, "s3:*", "arn:aws:s3:::home/${aws:username}/*", notresource=True, sid="OnlyHome"))], sids=["All"])
case(V, "resolvable variable in NotResource: the Deny applies", VARS, "s3:GetObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"), st(D, "s3:*", "arn:aws:s3:::home/${aws:username}/*", notresource=True, sid="OnlyHome"))], sids=["OnlyHome"])
case(V, "unresolvable variable in a negated condition makes the statement invalid", VARS + "#policy-vars-no-value", "s3:GetObject", OBJ, "Allowed", principal=SESS,
     context={"aws:PrincipalTag/owner": "x"},
     identity=[pol(st(A, "s3:*", "*"), st(D, "s3:*", "*", {"StringNotEquals": {"aws:PrincipalTag/owner": "${aws:username}"}}))])
case(V, "multi-valued key cannot be a variable", MULTI, "s3:GetObject", "arn:aws:s3:::t/a/x", "ImplicitlyDenied", context={"aws:TagKeys": ["a"]},
     identity=[pol(st(A, "s3:GetObject", "arn:aws:s3:::t/${aws:TagKeys}/*"))])

# ---------------- S3 specifics ----------------
S = "s3"
BPA = "https://docs.aws.amazon.com/AmazonS3/latest/API/API_PublicAccessBlockConfiguration.html"
PUBLIC = pol(st(A, "s3:GetObject", BKT + "/*", principal="*", sid="Public"))
case(S, "RestrictPublicBuckets: anonymous access through a public policy is blocked", BPA, "s3:GetObject", OBJ, "ImplicitlyDenied", principal="anonymous",
     resource_policy=PUBLIC, bpa=True)
case(S, "RestrictPublicBuckets off: anonymous access through a public policy", BPA, "s3:GetObject", OBJ, "Allowed", principal="anonymous",
     resource_policy=PUBLIC)
case(S, "RestrictPublicBuckets: other accounts blocked from a public bucket", BPA, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=XUSER,
     resource_account=ACCT, identity=[pol(st(A, "s3:*", "*"))], resource_policy=PUBLIC, bpa=True)
case(S, "RestrictPublicBuckets: same-account users still granted by a public policy", BPA, "s3:GetObject", OBJ, "Allowed",
     resource_policy=PUBLIC, bpa=True)
case(S, "RestrictPublicBuckets: a policy pinned to source IPs is not public", BPA, "s3:GetObject", OBJ, "Allowed", principal="anonymous",
     context={"aws:SourceIp": "203.0.113.9"}, bpa=True,
     resource_policy=pol(st(A, "s3:GetObject", BKT + "/*", {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, principal="*")))
case(S, "RestrictPublicBuckets: a policy pinned to a VPC endpoint is not public", BPA, "s3:GetObject", OBJ, "Allowed", principal="anonymous",
     context={"aws:SourceVpce": "vpce-1a2b3c4d"}, bpa=True,
     resource_policy=pol(st(A, "s3:GetObject", BKT + "/*", {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}, principal="*")))
case(S, "RestrictPublicBuckets: a 0.0.0.0/0 source IP condition is still public", BPA, "s3:GetObject", OBJ, "ImplicitlyDenied", principal="anonymous",
     context={"aws:SourceIp": "203.0.113.9"}, bpa=True,
     resource_policy=pol(st(A, "s3:GetObject", BKT + "/*", {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}, principal="*")))
case(S, "RestrictPublicBuckets: cross-account grant blocked when another statement is public", BPA, "s3:GetObject", OBJ, "ImplicitlyDenied", principal=XUSER,
     resource_account=ACCT, identity=[pol(st(A, "s3:*", "*"))], bpa=True,
     resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": XUSER}), st(A, "s3:ListBucket", BKT, principal="*")))
case(S, "RestrictPublicBuckets: cross-account grant allowed when the policy is not public", BPA, "s3:GetObject", OBJ, "Allowed", principal=XUSER,
     resource_account=ACCT, identity=[pol(st(A, "s3:*", "*"))], bpa=True,
     resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": XUSER})))
# Catalogue-driven: whether a statement grants a "bad action" (s3:Get*, s3:List*, s3:Put*, s3:Delete*, ...)
# is decided by expanding its Action patterns over the S3 action catalogue, so actions AWS added recently
# (annotations, ABAC; S3 page) must be in it for a public grant of them to count as public.
PUBLIC_ANN = pol(st(A, "s3:GetObjectAnnotation", BKT + "/*", principal="*", sid="PublicAnnotations"))
case(S, "RestrictPublicBuckets: a public grant of s3:GetObjectAnnotation is public (Get* is a bad action)", BPA, "s3:GetObjectAnnotation", OBJ,
     "ImplicitlyDenied", principal="anonymous", resource_policy=PUBLIC_ANN, bpa=True)
case(S, "RestrictPublicBuckets off: anonymous s3:GetObjectAnnotation through a public policy", BPA, "s3:GetObjectAnnotation", OBJ,
     "Allowed", principal="anonymous", resource_policy=PUBLIC_ANN)
case(S, "RestrictPublicBuckets: a public grant of s3:Put*Annotation is public (Put* is a bad action)", BPA, "s3:PutObjectVersionAnnotation", OBJ,
     "ImplicitlyDenied", principal="anonymous", bpa=True,
     resource_policy=pol(st(A, "s3:Put*Annotation", BKT + "/*", principal="*")))
case(S, "RestrictPublicBuckets: a public grant of s3:PutBucketAbac is public", BPA, "s3:PutBucketAbac", BKT,
     "ImplicitlyDenied", principal="anonymous", bpa=True, resource_policy=pol(st(A, "s3:PutBucketAbac", BKT, principal="*")))
case(S, "RestrictPublicBuckets: cross-account grant blocked when another statement publicly grants s3:ListObjectAnnotations", BPA, "s3:GetObject", OBJ,
     "ImplicitlyDenied", principal=XUSER, resource_account=ACCT, identity=[pol(st(A, "s3:*", "*"))], bpa=True,
     resource_policy=pol(st(A, "s3:GetObject", OBJ, principal={"AWS": XUSER}), st(A, "s3:ListObjectAnnotations", BKT + "/*", principal="*")))
case(S, "ListBucket on bucket with prefix condition", S3PREFIX, "s3:ListBucket", BKT, "Allowed", context={"s3:prefix": "train/"},
     identity=[pol(st(A, "s3:ListBucket", BKT, {"StringLike": {"s3:prefix": ["train/*"]}}))])
case(S, "ListBucket with other prefix", S3PREFIX, "s3:ListBucket", BKT, "ImplicitlyDenied", context={"s3:prefix": "eval/"},
     identity=[pol(st(A, "s3:ListBucket", BKT, {"StringLike": {"s3:prefix": ["train/*"]}}))])
case(S, "ListBucket without prefix when condition requires it", S3PREFIX, "s3:ListBucket", BKT, "ImplicitlyDenied",
     identity=[pol(st(A, "s3:ListBucket", BKT, {"StringLike": {"s3:prefix": ["train/*"]}}))], missing=["s3:prefix"])
case(S, "ListBucket empty prefix allowed by explicit empty value", S3PREFIX, "s3:ListBucket", BKT, "Allowed", context={"s3:prefix": ""},
     identity=[pol(st(A, "s3:ListBucket", BKT, {"StringEquals": {"s3:prefix": ["", "train/"]}}))])
case(S, "max-keys limit", S3, "s3:ListBucket", BKT, "ImplicitlyDenied", context={"s3:max-keys": "1000"},
     identity=[pol(st(A, "s3:ListBucket", BKT, {"NumericLessThanEquals": {"s3:max-keys": "100"}}))])
case(S, "x-amz-acl condition", S3, "s3:PutObject", OBJ, "Allowed", context={"s3:x-amz-acl": "bucket-owner-full-control"},
     identity=[pol(st(A, "s3:PutObject", BKT + "/*", {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}))])
case(S, "deny unencrypted uploads", S3, "s3:PutObject", OBJ, "ExplicitlyDenied", context={"s3:x-amz-server-side-encryption": "AES256"},
     identity=[pol(st(A, "s3:*", "*"), st(D, "s3:PutObject", "*", {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}))])
case(S, "deny unencrypted uploads: kms passes", S3, "s3:PutObject", OBJ, "Allowed", context={"s3:x-amz-server-side-encryption": "aws:kms"},
     identity=[pol(st(A, "s3:*", "*"), st(D, "s3:PutObject", "*", {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}))])
case(S, "deny unencrypted uploads: header missing is denied (negated operator)", CONDOPS, "s3:PutObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"), st(D, "s3:PutObject", "*", {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}))])
case(S, "deny unencrypted uploads with IfExists: header missing still denies (missing key is true)", CONDOPS, "s3:PutObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"), st(D, "s3:PutObject", "*", {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}))])
case(S, "deny with positive IfExists operator: missing key makes the deny apply", CONDOPS, "s3:PutObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"), st(D, "s3:PutObject", "*", {"StringEqualsIfExists": {"s3:x-amz-acl": "public-read"}}))])
case(S, "deny with positive IfExists operator: other value passes", CONDOPS, "s3:PutObject", OBJ, "Allowed", context={"s3:x-amz-acl": "private"},
     identity=[pol(st(A, "s3:*", "*"), st(D, "s3:PutObject", "*", {"StringEqualsIfExists": {"s3:x-amz-acl": "public-read"}}))])
case(S, "version-specific read needs GetObjectVersion", S3, "s3:GetObjectVersion", OBJ, "ImplicitlyDenied", identity=[pol(st(A, "s3:GetObject", "*"))])
case(S, "signature age limit", "https://docs.aws.amazon.com/AmazonS3/latest/API/bucket-policy-s3-sigv4-conditions.html", "s3:GetObject", OBJ, "ExplicitlyDenied",
     context={"s3:signatureAge": "700000"}, identity=[pol(st(A, "s3:*", "*"), st(D, "s3:*", "*", {"NumericGreaterThan": {"s3:signatureAge": "600000"}}))])
case(S, "authType REST-HEADER required", "https://docs.aws.amazon.com/AmazonS3/latest/API/bucket-policy-s3-sigv4-conditions.html", "s3:GetObject", OBJ, "ExplicitlyDenied",
     context={"s3:authType": "REST-QUERY-STRING"}, identity=[pol(st(A, "s3:*", "*"), st(D, "s3:*", "*", {"StringNotEquals": {"s3:authType": "REST-HEADER"}}))])
case(S, "existing object tag condition", S3, "s3:GetObject", OBJ, "Allowed", context={"s3:ExistingObjectTag/classification": "public"},
     identity=[pol(st(A, "s3:GetObject", "*", {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}}))])
case(S, "request object tag keys ForAllValues", S3, "s3:PutObject", OBJ, "ImplicitlyDenied", context={"s3:RequestObjectTagKeys": ["project", "secret"]},
     identity=[pol(st(A, "s3:PutObject", "*", {"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["project", "owner"]}}))])
case(S, "ListAllMyBuckets on *", S3, "s3:ListAllMyBuckets", "*", "Allowed", identity=[pol(st(A, "s3:ListAllMyBuckets", "*"))])
case(S, "DeleteObject denied by bucket policy for everyone", EVAL, "s3:DeleteObject", OBJ, "ExplicitlyDenied",
     identity=[pol(st(A, "s3:*", "*"))], resource_policy=pol(st(D, "s3:DeleteObject", BKT + "/*", principal={"AWS": "*"})))
case(S, "source IP in bucket policy", "https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies.html", "s3:GetObject", OBJ, "ExplicitlyDenied",
     context={"aws:SourceIp": "198.51.100.7"}, identity=[pol(st(A, "s3:*", "*"))],
     resource_policy=pol(st(D, "s3:*", [BKT, BKT + "/*"], {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, principal="*")))
case(S, "source IP in bucket policy: inside range", "https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies.html", "s3:GetObject", OBJ, "Allowed",
     context={"aws:SourceIp": "203.0.113.7"}, identity=[pol(st(A, "s3:*", "*"))],
     resource_policy=pol(st(D, "s3:*", [BKT, BKT + "/*"], {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, principal="*")))

# ---------------- seed policies ----------------
T = "seed"
TJ = ["training-job.json"]
SLM = ["slm-readonly.json"]
JOB = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_examples_aws-dates.html"
IN = {"aws:CurrentTime": "2025-07-16T02:30:00Z", "aws:SourceIp": "203.0.113.42"}
def tj(name, action, resource, ctx, expect, sids=None, doc=JOB, failed=None, missing=None):
    case(T, name, doc, action, resource, expect, context=ctx, identity=[], identity_files=TJ, sids=sids, failed=failed, missing=missing)
FT = "arn:aws:s3:::acmeco-finetuned-models/finetune-wiki-42/model.safetensors"
tj("training-job: write in window and from the job IP", "s3:PutObject", FT, IN, "Allowed", sids=["FinetunedModelsWrite"])
tj("training-job: write before the window", "s3:PutObject", FT, {**IN, "aws:CurrentTime": "2025-07-16T00:59:59Z"}, "ImplicitlyDenied", failed="DateGreaterThan")
tj("training-job: write at window start is outside (DateGreaterThan is strict)", "s3:PutObject", FT, {**IN, "aws:CurrentTime": "2025-07-16T01:00:00Z"}, "ImplicitlyDenied")
tj("training-job: write just inside the window start", "s3:PutObject", FT, {**IN, "aws:CurrentTime": "2025-07-16T01:00:01Z"}, "Allowed")
tj("training-job: write just before window end", "s3:PutObject", FT, {**IN, "aws:CurrentTime": "2025-07-16T03:59:59Z"}, "Allowed")
tj("training-job: write at window end", "s3:PutObject", FT, {**IN, "aws:CurrentTime": "2025-07-16T04:00:00Z"}, "ImplicitlyDenied", failed="DateLessThan")
tj("training-job: write after the window", "s3:PutObject", FT, {**IN, "aws:CurrentTime": "2025-07-17T02:00:00Z"}, "ImplicitlyDenied")
tj("training-job: write from another IP", "s3:PutObject", FT, {**IN, "aws:SourceIp": "203.0.113.43"}, "ImplicitlyDenied", failed="IpAddress", doc=CONDOPS)
tj("training-job: write from IPv6", "s3:PutObject", FT, {**IN, "aws:SourceIp": "2001:db8::42"}, "ImplicitlyDenied", doc=CONDOPS)
tj("training-job: write with no context", "s3:PutObject", FT, {}, "ImplicitlyDenied", missing=["aws:currenttime", "aws:sourceip"])
tj("training-job: epoch time in window", "s3:PutObject", FT, {**IN, "aws:CurrentTime": "1752633000"}, "Allowed")
tj("training-job: multipart complete in window", "s3:CompleteMultipartUpload", FT, IN, "Allowed")
tj("training-job: abort multipart in window", "s3:AbortMultipartUpload", FT, IN, "Allowed")
tj("training-job: list parts out of window", "s3:ListMultipartUploadParts", FT, {**IN, "aws:CurrentTime": "2025-07-18T00:00:00Z"}, "ImplicitlyDenied")
tj("training-job: delete not granted", "s3:DeleteObject", FT, IN, "ImplicitlyDenied")
tj("training-job: read dataset at any time", "s3:GetObject", "arn:aws:s3:::acmeco-training-datasets-wikipedia-2025-07-01/shard-0001.jsonl",
   {"aws:CurrentTime": "2030-01-01T00:00:00Z", "aws:SourceIp": "192.0.2.1"}, "Allowed", sids=["WikipediaReadOnly"])
tj("training-job: list dataset bucket", "s3:ListBucket", "arn:aws:s3:::acmeco-training-datasets-wikipedia-2025-07-01", {}, "Allowed")
tj("training-job: write to dataset denied", "s3:PutObject", "arn:aws:s3:::acmeco-training-datasets-wikipedia-2025-07-01/x", IN, "ImplicitlyDenied")
tj("training-job: read base model", "s3:GetObject", "arn:aws:s3:::acmeco-base-models/llama-3-8b/config.json", {}, "Allowed", sids=["BaseModelsReadOnly"])
tj("training-job: base model bucket name prefix does not match other bucket", "s3:GetObject", "arn:aws:s3:::acmeco-base-models-private/x", {}, "ImplicitlyDenied", doc=RES)
tj("training-job: action case-insensitive", "S3:PUTOBJECT", FT, IN, "Allowed", doc=ACT)
tj("training-job: read finetuned out of window", "s3:GetObject", FT, {**IN, "aws:CurrentTime": "2025-07-15T00:00:00Z"}, "ImplicitlyDenied")
tj("training-job: PutObjectAcl in window", "s3:PutObjectAcl", FT, IN, "Allowed")
tj("training-job: other bucket", "s3:GetObject", "arn:aws:s3:::acmeco-secrets/x", IN, "ImplicitlyDenied")
def slm(name, action, resource, ctx, expect, doc=S3PREFIX, sids=None):
    case(T, name, doc, action, resource, expect, context=ctx, identity=[], identity_files=SLM, sids=sids)
slm("slm: list prompts prefix", "s3:ListBucket", "arn:aws:s3:::acmeco-slm-data", {"s3:prefix": "prompts/2025/"}, "Allowed", sids=["ListPromptsPrefix"])
slm("slm: list embeddings prefix", "s3:ListBucket", "arn:aws:s3:::acmeco-slm-data", {"s3:prefix": "embeddings/"}, "Allowed")
slm("slm: list other prefix", "s3:ListBucket", "arn:aws:s3:::acmeco-slm-data", {"s3:prefix": "secrets/"}, "ImplicitlyDenied")
slm("slm: list whole bucket without prefix", "s3:ListBucket", "arn:aws:s3:::acmeco-slm-data", {}, "ImplicitlyDenied")
slm("slm: list prefix without trailing part", "s3:ListBucket", "arn:aws:s3:::acmeco-slm-data", {"s3:prefix": "prompts"}, "ImplicitlyDenied")
slm("slm: read prompt", "s3:GetObject", "arn:aws:s3:::acmeco-slm-data/prompts/a.txt", {}, "Allowed", sids=["ReadPromptsAndEmbeddings"])
slm("slm: read outside prefixes", "s3:GetObject", "arn:aws:s3:::acmeco-slm-data/raw/a.txt", {}, "ImplicitlyDenied", doc=RES)
slm("slm: write prompt denied", "s3:PutObject", "arn:aws:s3:::acmeco-slm-data/prompts/a.txt", {}, "ImplicitlyDenied", doc=ACT)
slm("slm: prefix case matters", "s3:GetObject", "arn:aws:s3:::acmeco-slm-data/Prompts/a.txt", {}, "ImplicitlyDenied", doc=RES)

# ---------------- validation ----------------
verr("unknown top-level element", GRAMMAR, '{"Version": "2012-10-17", "Statements": []}', "$.Statements")
verr("bad version", VERSION, '{"Version": "2012-10-18", "Statement": []}', "$.Version")
verr("missing effect", GRAMMAR, '{"Statement": [{"Action": "s3:*", "Resource": "*"}]}', "$.Statement[0]")
verr("lowercase effect", GRAMMAR, '{"Statement": [{"Effect": "allow", "Action": "s3:*", "Resource": "*"}]}', "$.Statement[0].Effect")
verr("action without service", ACT, '{"Statement": [{"Effect": "Allow", "Action": "GetObject", "Resource": "*"}]}', "$.Statement[0].Action")
verr("empty action array", GRAMMAR, '{"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}', "$.Statement[0].Action")
verr("Action and NotAction together", NOTACT, '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "NotAction": "iam:*", "Resource": "*"}]}', "$.Statement[0].NotAction")
verr("resource not an ARN", RES, '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "my-bucket"}]}', "$.Statement[0].Resource")
verr("resource ARN with too few parts", RES, '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": ["*", "arn:aws:s3:bucket"]}]}', "$.Statement[0].Resource[1]")
verr("principal account id wrong length", PRIN, '{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "1234"}, "Action": "s3:*", "Resource": "*"}]}', "$.Statement[0].Principal.AWS")
verr("unknown principal type", PRIN, '{"Statement": [{"Effect": "Allow", "Principal": {"User": "x"}, "Action": "s3:*", "Resource": "*"}]}', "$.Statement[0].Principal.User")
verr("unknown condition operator", CONDOPS, '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEqualz": {"a:b": "c"}}}]}', "$.Statement[0].Condition.StringEqualz")
verr("invalid CIDR", CONDOPS, '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/33"}}}]}', "$.Statement[0].Condition.IpAddress.aws:SourceIp")
verr("invalid date", CONDOPS, '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"DateLessThan": {"aws:CurrentTime": ["2025-07-16T01:00:00Z", "noon"]}}}]}', "$.Statement[0].Condition.DateLessThan.aws:CurrentTime[1]")
verr("NullIfExists is not an operator", CONDOPS, '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"NullIfExists": {"a:b": "true"}}}]}', "$.Statement[0].Condition.NullIfExists")
files.setdefault("validation", []).append({"name": "NotPrincipal with Allow is rejected", "doc": NOTPRIN,
    "input": {"request": {"principal": USER, "action": "s3:GetObject", "resource": OBJ},
              "resourcePolicy": pol(st(A, "s3:GetObject", OBJ, principal={"AWS": ROOT}, notprincipal=True))},
    "expect": {"simulateError": "resourcePolicy"}})
files.setdefault("validation", []).append({"name": "Principal in an identity-based policy is rejected", "doc": PRIN,
    "input": {"request": {"principal": USER, "action": "s3:GetObject", "resource": OBJ},
              "identityPolicies": [pol(st(A, "s3:GetObject", OBJ, principal="*"))]},
    "expect": {"simulateError": "identityPolicies[0]"}})
files.setdefault("validation", []).append({"name": "resource-based policy statement without Principal is rejected", "doc": PRIN,
    "input": {"request": {"principal": USER, "action": "s3:GetObject", "resource": OBJ},
              "resourcePolicy": pol(st(A, "s3:GetObject", OBJ))},
    "expect": {"simulateError": "resourcePolicy"}})
verr("empty statement array", GRAMMAR, '{"Version": "2012-10-17", "Statement": []}', "$.Statement")

# ---------------- role trust policies ----------------
# A trust policy is required and must itself allow the caller; naming the account delegates to the
# caller's identity policies; the caller's boundary and session policies must allow too.
TRUSTEVAL = EVAL  # "IAM role trust policies and KMS key policies are exceptions to this logic"
ASSUME = "https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html"
UPDTRUST = IAM + "id_roles_update-role-trust-policy.html"
TAGS = IAM + "id_session-tags.html#id_session-tags_permissions-required"
T = "trust"
ADMIN = f"arn:aws:iam::{ACCT}:role/admin"
ASSUME_ANY = pol(st(A, "sts:AssumeRole", "*", sid="MayAssume"))
def trust(*stmts): return pol(*stmts)
def tp(principal, action="sts:AssumeRole", cond=None, sid="Trust", effect=A):
    return st(effect, action, None, cond, sid=sid, principal=principal)
case(T, "identity allows sts:AssumeRole on *, trust admits only a service: denied", TRUSTEVAL, "sts:AssumeRole", ADMIN,
     "ImplicitlyDenied", identity=[ASSUME_ANY], trust=trust(tp({"Service": "ec2.amazonaws.com"})))
case(T, "no identity policy, trust names the user: allowed", ASSUME, "sts:AssumeRole", ADMIN, "Allowed",
     identity=[], trust=trust(tp({"AWS": USER})), sids=["Trust"])
case(T, "no identity policy, trust names the account: denied", ASSUME, "sts:AssumeRole", ADMIN, "ImplicitlyDenied",
     identity=[], trust=trust(tp({"AWS": ROOT})))
case(T, "identity allow, trust names the account: allowed", ASSUME, "sts:AssumeRole", ADMIN, "Allowed",
     identity=[ASSUME_ANY], trust=trust(tp({"AWS": ROOT})))
case(T, "identity allow, trust names the bare account id: allowed", ASSUME, "sts:AssumeRole", ADMIN, "Allowed",
     identity=[ASSUME_ANY], trust=trust(tp({"AWS": ACCT})))
case(T, "identity allow for another role, trust names the account: denied", ASSUME, "sts:AssumeRole", ADMIN, "ImplicitlyDenied",
     identity=[pol(st(A, "sts:AssumeRole", f"arn:aws:iam::{ACCT}:role/other"))], trust=trust(tp({"AWS": ROOT})))
case(T, "trust names another user: denied even with identity allow", TRUSTEVAL, "sts:AssumeRole", ADMIN, "ImplicitlyDenied",
     identity=[ASSUME_ANY], trust=trust(tp({"AWS": f"arn:aws:iam::{ACCT}:user/dave"})))
case(T, "trust names the user, boundary does not allow sts:AssumeRole: denied", UPDTRUST, "sts:AssumeRole", ADMIN,
     "ImplicitlyDenied", identity=[], trust=trust(tp({"AWS": USER})), boundaries=[pol(st(A, "s3:*", "*"))])
case(T, "trust names the user, boundary allows sts:AssumeRole: allowed", UPDTRUST, "sts:AssumeRole", ADMIN,
     "Allowed", identity=[], trust=trust(tp({"AWS": USER})), boundaries=[pol(st(A, "sts:AssumeRole", "*"))])
case(T, "explicit deny in the caller's identity policy wins over the trust policy", DENYALLOW, "sts:AssumeRole", ADMIN,
     "ExplicitlyDenied", identity=[pol(st(D, "sts:AssumeRole", ADMIN, sid="NoAdmin"))], trust=trust(tp({"AWS": USER})), sids=["NoAdmin"])
case(T, "explicit deny in the caller's boundary wins", DENYALLOW, "sts:AssumeRole", ADMIN, "ExplicitlyDenied",
     identity=[], trust=trust(tp({"AWS": USER})), boundaries=[pol(st(A, "*", "*"), st(D, "sts:*", "*", sid="BNo"))], sids=["BNo"])
case(T, "explicit deny in the trust policy wins", DENYALLOW, "sts:AssumeRole", ADMIN, "ExplicitlyDenied",
     identity=[ASSUME_ANY], trust=trust(tp({"AWS": ROOT}), tp({"AWS": USER}, effect=D, sid="NotAlice")), sids=["NotAlice"])
case(T, "trust condition sts:RoleSessionName unmet: denied", ASSUME, "sts:AssumeRole", ADMIN, "ImplicitlyDenied",
     identity=[ASSUME_ANY], trust=trust(tp({"AWS": USER}, cond={"StringEquals": {"sts:RoleSessionName": "svc"}})),
     context={"sts:RoleSessionName": "esc"}, failed="sts:RoleSessionName")
case(T, "trust condition sts:RoleSessionName met: allowed", ASSUME, "sts:AssumeRole", ADMIN, "Allowed",
     identity=[], trust=trust(tp({"AWS": USER}, cond={"StringEquals": {"sts:RoleSessionName": "svc"}})),
     context={"sts:RoleSessionName": "svc"})
case(T, "trust condition sts:ExternalId missing: denied", ASSUME, "sts:AssumeRole", ADMIN, "ImplicitlyDenied",
     identity=[ASSUME_ANY], trust=trust(tp({"AWS": ROOT}, cond={"StringEquals": {"sts:ExternalId": "x-42"}})))
case(T, "trust condition aws:SourceIp unmet: denied", ASSUME, "sts:AssumeRole", ADMIN, "ImplicitlyDenied",
     identity=[], trust=trust(tp({"AWS": USER}, cond={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
     context={"aws:SourceIp": "192.0.2.7"})
case(T, "trust condition aws:PrincipalTag unmet: denied", ASSUME, "sts:AssumeRole", ADMIN, "ImplicitlyDenied",
     identity=[], trust=trust(tp({"AWS": USER}, cond={"StringEquals": {"aws:PrincipalTag/team": "ml"}})),
     context={"aws:PrincipalTag/team": "web"})
case(T, "a session re-assuming its own role: trust names only a user, denied", UPDTRUST, "sts:AssumeRole", ROLE,
     "ImplicitlyDenied", principal=SESS, identity=[ASSUME_ANY], trust=trust(tp({"AWS": USER})))
case(T, "a session re-assuming its own role: trust names the role, allowed", UPDTRUST, "sts:AssumeRole", ROLE,
     "Allowed", principal=SESS, identity=[], trust=trust(tp({"AWS": ROLE})))
case(T, "a session re-assuming its own role: trust names the account and the role policy allows", UPDTRUST, "sts:AssumeRole", ROLE,
     "Allowed", principal=SESS, identity=[ASSUME_ANY], trust=trust(tp({"AWS": ROOT})))
case(T, "a session's session policy must allow sts:AssumeRole too", IAM + "access_policies.html#policies_session", "sts:AssumeRole",
     ADMIN, "ImplicitlyDenied", principal=SESS, identity=[ASSUME_ANY], trust=trust(tp({"AWS": ROLE})),
     session=pol(st(A, "s3:GetObject", "*")))
case(T, "trust to everyone admits a same-account caller", PRIN, "sts:AssumeRole", ADMIN, "Allowed",
     identity=[], trust=trust(tp("*")))
case(T, "cross-account: trust names the user but its identity policy does not allow", CROSS, "sts:AssumeRole", ADMIN,
     "ImplicitlyDenied", principal=XUSER, resource_account=ACCT, identity=[], trust=trust(tp({"AWS": XUSER})))
case(T, "cross-account: trust names the user and its identity policy allows", CROSS, "sts:AssumeRole", ADMIN,
     "Allowed", principal=XUSER, resource_account=ACCT, identity=[ASSUME_ANY], trust=trust(tp({"AWS": XUSER})))
case(T, "no trust statement for sts:TagSession: tags refused", TAGS, "sts:TagSession", ADMIN, "ImplicitlyDenied",
     identity=[pol(st(A, ["sts:AssumeRole", "sts:TagSession"], "*"))], trust=trust(tp({"AWS": USER})),
     context={"aws:RequestTag/team": "secret", "aws:TagKeys": ["team"]})
case(T, "trust allows sts:TagSession for team=ml: team=ml admitted", TAGS, "sts:TagSession", ADMIN, "Allowed",
     identity=[], trust=trust(tp({"AWS": USER}), tp({"AWS": USER}, "sts:TagSession", {"StringEquals": {"aws:RequestTag/team": "ml"}}, sid="Tags")),
     context={"aws:RequestTag/team": "ml", "aws:TagKeys": ["team"]}, sids=["Tags"])
case(T, "trust allows sts:TagSession for team=ml: team=secret refused", TAGS, "sts:TagSession", ADMIN, "ImplicitlyDenied",
     identity=[], trust=trust(tp({"AWS": USER}), tp({"AWS": USER}, "sts:TagSession", {"StringEquals": {"aws:RequestTag/team": "ml"}}, sid="Tags")),
     context={"aws:RequestTag/team": "secret", "aws:TagKeys": ["team"]})

os.makedirs(OUT, exist_ok=True)
total = 0
for name, cases in files.items():
    with open(os.path.join(OUT, name + ".jsonl"), "w") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    total += len(cases)
print(total, {k: len(v) for k, v in files.items()})
