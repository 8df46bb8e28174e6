"""keyhole in front of another S3 store (issue 13): least privilege through the gateway while the
upstream sees only what was allowed, multipart uploads landing intact, buckets mapped onto
prefixes that cannot be escaped, local and upstream buckets side by side, a slow or refusing
upstream, and configurations that are refused before anything is created.

The S3 suites (objects, listing, multipart, ranges, copy, tags, conditional writes, jobs, bucket
policies, reports) run against the upstream configurations too: see BACKEND_MODULES in conftest.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import subprocess
import threading
import time
import types
import uuid
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from conftest import start_server, upstream_args
from e2e_helpers import (
    KeyholeProcess,
    UpstreamProcess,
    keyhole_bin,
    make_client,
    read_trail,
    wait_for_events,
)
from test_iam import error_code, iam_client, new_user

MIB = 1024 * 1024


def root_client(kp: KeyholeProcess):
    ak, sk = kp.credentials()
    return make_client(kp.endpoint, ak, sk)


def as_server(kp: KeyholeProcess):
    """What the IAM helpers need to know about a gateway."""
    ak, sk = kp.credentials()
    return types.SimpleNamespace(endpoint=kp.endpoint, access_key=ak, secret_key=sk)


def direct_client(up):
    """boto3 straight to the upstream, with the credentials keyhole uses."""
    if isinstance(up, UpstreamProcess):
        return up.client()
    return root_client(up)


def gateway(tmp_path: Path, up, config: str | None = None, extra: list[str] | None = None) -> KeyholeProcess:
    """A keyhole in front of `up` (flags), with an optional TOML config file."""
    args = upstream_args(up) + list(extra or [])
    if config is not None:
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(config)
        args += ["--config", str(cfg)]
    return start_server(tmp_path / "gw", extra_args=args)


def upstream_events(up: KeyholeProcess) -> list[dict]:
    return read_trail(up.data_dir)


# ------------------------------------------------------------------ least privilege


def test_denied_requests_never_reach_the_upstream(upstream_keyhole, tmp_path):
    """The issue's scenario: a reader limited to one prefix reads and lists it, is denied
    elsewhere, and the denied requests do not appear in the upstream keyhole's own audit trail."""
    gw = gateway(tmp_path, upstream_keyhole)
    try:
        root = root_client(gw)
        bucket = f"lp-{uuid.uuid4().hex[:10]}"
        root.create_bucket(Bucket=bucket)
        for key in ("team/a.txt", "team/sub/b.txt", "other/c.txt"):
            root.put_object(Bucket=bucket, Key=key, Body=key.encode())
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/team/*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": ["team/*"]}}}]}
        _, ak, sk = new_user(iam_client(as_server(gw)), policy=policy)
        reader = make_client(gw.endpoint, ak, sk)

        assert reader.get_object(Bucket=bucket, Key="team/a.txt")["Body"].read() == b"team/a.txt"
        listed = reader.list_objects_v2(Bucket=bucket, Prefix="team/")
        assert [o["Key"] for o in listed["Contents"]] == ["team/a.txt", "team/sub/b.txt"]

        denied = [
            lambda: reader.get_object(Bucket=bucket, Key="other/c.txt"),
            lambda: reader.head_object(Bucket=bucket, Key="other/c.txt"),
            lambda: reader.list_objects_v2(Bucket=bucket, Prefix="other/"),
            lambda: reader.list_objects_v2(Bucket=bucket),
            lambda: reader.put_object(Bucket=bucket, Key="team/new.txt", Body=b"x"),
            lambda: reader.delete_object(Bucket=bucket, Key="team/a.txt"),
            lambda: reader.copy_object(Bucket=bucket, Key="team/copy.txt",
                                       CopySource={"Bucket": bucket, "Key": "other/c.txt"}),
        ]
        for call in denied:
            with pytest.raises(ClientError) as e:
                call()
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

        gw_events = wait_for_events(gw.data_dir, lambda ev: sum(
            1 for e in ev if e.get("decision") == "Deny" and e["stage"] == "completed") >= len(denied))
        assert sum(1 for e in gw_events if e.get("decision") == "Deny" and e["stage"] == "completed") >= len(denied)

        # What reached the upstream, by its own trail: the allowed read did (so counting works),
        # nothing the gateway denied did.
        events = wait_for_events(upstream_keyhole.data_dir, lambda ev: any(
            e["eventName"] == "GetObject" and e["requestParameters"].get("key") == "team/a.txt"
            and e["requestParameters"].get("bucketName") == bucket for e in ev))
        mine = [e for e in events if e["requestParameters"].get("bucketName") == bucket]
        assert any(e["eventName"] == "ListObjectsV2" and e["requestParameters"].get("prefix") == "team/" for e in mine)
        reached = [(e["eventName"], e["requestParameters"].get("key"), e["requestParameters"].get("prefix"))
                   for e in mine]
        assert not any(key == "other/c.txt" and op != "PutObject" for op, key, _ in reached), reached
        assert not any(prefix == "other/" for _, _, prefix in reached), reached
        assert not any(key in ("team/new.txt", "team/copy.txt") for _, key, _ in reached), reached
        assert not any(op == "DeleteObject" for op, _, _ in reached), reached
        assert sum(1 for op, _, p in reached if op == "ListObjectsV2" and not p) == 0, reached
        # The upstream saw only the gateway's own identity, never the reader's key.
        up_ak, _ = upstream_keyhole.credentials()
        assert {e["userIdentity"].get("accessKeyId") for e in mine} == {up_ak}
    finally:
        gw.kill()


def test_tags_are_read_upstream_only_for_requests_that_could_be_allowed(upstream_keyhole, tmp_path):
    """s3:ExistingObjectTag needs the object's tags from the upstream, but only a request the
    policies could allow pays for that read: a request denied whatever the tags (another prefix,
    an action no statement allows) causes no upstream call at all. One that could be allowed has
    its tags read and is decided on them
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html)."""
    gw = gateway(tmp_path, upstream_keyhole)
    try:
        root = root_client(gw)
        bucket = f"tg-{uuid.uuid4().hex[:10]}"
        root.create_bucket(Bucket=bucket)
        for key, cls in (("team/pub.txt", "public"), ("team/secret.txt", "secret"), ("other/c.txt", "public")):
            root.put_object(Bucket=bucket, Key=key, Body=key.encode(), Tagging=f"class={cls}")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/team/*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "public"}}},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "embargoed"}}}]}
        _, ak, sk = new_user(iam_client(as_server(gw)), policy=policy)
        reader = make_client(gw.endpoint, ak, sk)

        assert reader.get_object(Bucket=bucket, Key="team/pub.txt")["Body"].read() == b"team/pub.txt"
        for key in ("team/secret.txt", "other/c.txt"):
            with pytest.raises(ClientError) as e:
                reader.get_object(Bucket=bucket, Key=key)
            assert error_code(e.value) == "AccessDenied"
        with pytest.raises(ClientError) as e:
            reader.get_object_tagging(Bucket=bucket, Key="team/pub.txt")
        assert error_code(e.value) == "AccessDenied"

        events = wait_for_events(upstream_keyhole.data_dir, lambda ev: sum(
            1 for e in ev if e["eventName"] == "GetObjectTagging"
            and e["requestParameters"].get("bucketName") == bucket) >= 2)
        # (CreateBucket first asks the upstream whether the bucket exists: a HeadBucket.)
        after_puts = [e for e in events if e["requestParameters"].get("bucketName") == bucket
                      and e["eventName"] not in ("PutObject", "CreateBucket", "HeadBucket")]
        reached = sorted((e["eventName"], e["requestParameters"].get("key")) for e in after_puts
                         if e["eventName"] != "HeadObject")
        # team/pub.txt's tags are read twice: for the decision, and again before its body is
        # answered (an unversioned upstream's check that the version served is the one judged).
        assert reached == [("GetObject", "team/pub.txt"), ("GetObjectTagging", "team/pub.txt"),
                           ("GetObjectTagging", "team/pub.txt"), ("GetObjectTagging", "team/secret.txt")], reached
        # The tag reads are pinned to a version by HEADs of the same objects, and only those.
        heads = {e["requestParameters"].get("key") for e in after_puts if e["eventName"] == "HeadObject"}
        assert heads == {"team/pub.txt", "team/secret.txt"}, heads

        # A tag variable in the Resource of an Allow bounds the request to that bucket and its
        # literal parts: another bucket's objects are not even looked at (review 8, F4).
        other = f"tg-{uuid.uuid4().hex[:10]}"
        root.create_bucket(Bucket=other)
        root.put_object(Bucket=other, Key="x/y", Body=b"y", Tagging="dir=x")
        _, ak2, sk2 = new_user(iam_client(as_server(gw)), policy={"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::{bucket}/${{s3:ExistingObjectTag/dir}}/*"}]})
        by_dir = make_client(gw.endpoint, ak2, sk2)
        with pytest.raises(ClientError) as e:
            by_dir.get_object(Bucket=other, Key="x/y")
        assert error_code(e.value) == "AccessDenied"
        time.sleep(0.5)
        assert not any(e["eventName"] == "GetObjectTagging" and e["requestParameters"].get("bucketName") == other
                       for e in upstream_events(upstream_keyhole)), "a tag read for a request no tag could allow"
    finally:
        gw.kill()


# ------------------------------------------------------------------ multipart


@pytest.mark.parametrize("upstream", ["s3s-fs", "moto", "keyhole"])
def test_a_40_mib_multipart_upload_lands_upstream_intact(request, upstream, tmp_path):
    up = request.getfixturevalue("upstream_" + upstream.replace("-", "_"))
    gw = gateway(tmp_path, up)
    try:
        bucket = f"mp-{uuid.uuid4().hex[:10]}"
        root = root_client(gw)
        root.create_bucket(Bucket=bucket)
        data = os.urandom(40 * MIB)
        root.upload_fileobj(io.BytesIO(data), bucket, "big/model.bin",
                            Config=TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB))
        head = root.head_object(Bucket=bucket, Key="big/model.bin")
        assert head["ContentLength"] == len(data)
        assert head["ETag"].endswith('-5"'), head["ETag"]
        # Straight from the upstream, bypassing keyhole: the same bytes under the same name.
        direct = direct_client(up).get_object(Bucket=bucket, Key="big/model.bin")
        assert hashlib.sha256(direct["Body"].read()).digest() == hashlib.sha256(data).digest()
        assert direct["ETag"] == head["ETag"]
        got = root.get_object(Bucket=bucket, Key="big/model.bin", Range="bytes=20971520-20971535")
        assert got["Body"].read() == data[20 * MIB:20 * MIB + 16]
    finally:
        gw.kill()


# ------------------------------------------------------------------ mapped buckets


@pytest.fixture(params=["keyhole", "s3s-fs"])
def mapped(request, tmp_path):
    """A gateway whose `datasets` and `models` buckets are prefixes of one upstream bucket, and
    whose `scratch` bucket is local; s3s-fs keeps keys as files, so escapes would show there."""
    up = request.getfixturevalue("upstream_" + request.param.replace("-", "_"))
    shared = f"acme-{uuid.uuid4().hex[:10]}"
    direct = direct_client(up)
    direct.create_bucket(Bucket=shared)
    direct.put_object(Bucket=shared, Key="outside/secret.txt", Body=b"not yours")
    config = f'[buckets]\ndatasets = "{shared}/datasets"\nmodels = "{shared}/models/"\nscratch = "local"\n'
    gw = gateway(tmp_path, up, config=config)
    yield gw, direct, shared, request.param
    gw.kill()


def upstream_keys(direct, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in direct.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_a_mapped_bucket_is_its_prefix_translated_both_ways(mapped):
    gw, direct, shared, upstream = mapped
    s3 = root_client(gw)
    s3.put_object(Bucket="datasets", Key="wiki/part-1", Body=b"1")
    s3.put_object(Bucket="datasets", Key="wiki/part 2", Body=b"2")
    s3.put_object(Bucket="models", Key="base/w.bin", Body=b"w")
    assert upstream_keys(direct, shared) == [
        "datasets/wiki/part 2", "datasets/wiki/part-1", "models/base/w.bin", "outside/secret.txt"]
    listed = s3.list_objects_v2(Bucket="datasets", Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["wiki/"]
    listed = s3.list_objects_v2(Bucket="datasets", Prefix="wiki/")
    assert [o["Key"] for o in listed["Contents"]] == ["wiki/part 2", "wiki/part-1"]
    assert s3.list_objects(Bucket="models")["Contents"][0]["Key"] == "base/w.bin"
    assert s3.get_object(Bucket="datasets", Key="wiki/part 2")["Body"].read() == b"2"
    # Pages continue where they stopped, in keyhole's names.
    first = s3.list_objects_v2(Bucket="datasets", MaxKeys=1)
    assert first["IsTruncated"] and [o["Key"] for o in first["Contents"]] == ["wiki/part 2"]
    second = s3.list_objects_v2(Bucket="datasets", MaxKeys=1, ContinuationToken=first["NextContinuationToken"])
    assert [o["Key"] for o in second["Contents"]] == ["wiki/part-1"] and not second["IsTruncated"]
    # The upstream bucket itself is reachable only through its mapped names.
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "datasets" in names and "models" in names and shared not in names
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=shared)
    assert error_code(e.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=shared)
    assert error_code(e.value) == "BucketAlreadyExists"
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="datasets")
    assert error_code(e.value) == "InvalidRequest"


HOSTILE_KEYS = ["../outside/secret.txt", "../models/base/w.bin", "a/../../outside/x", "./x", "a/./b", "..", "x/.."]


def test_hostile_keys_never_leave_the_prefix(mapped):
    gw, direct, shared, upstream = mapped
    s3 = root_client(gw)
    s3.put_object(Bucket="models", Key="base/w.bin", Body=b"w")
    before = upstream_keys(direct, shared)
    for key in HOSTILE_KEYS:
        for call in (lambda: s3.put_object(Bucket="datasets", Key=key, Body=b"evil"),
                     lambda: s3.get_object(Bucket="datasets", Key=key),
                     lambda: s3.delete_object(Bucket="datasets", Key=key),
                     lambda: s3.copy_object(Bucket="datasets", Key="copied", CopySource={"Bucket": "datasets", "Key": key}),
                     lambda: s3.create_multipart_upload(Bucket="datasets", Key=key)):
            with pytest.raises(ClientError) as e:
                call()
            assert error_code(e.value) == "InvalidArgument", key
    result = s3.delete_objects(Bucket="datasets", Delete={"Objects": [{"Key": k} for k in HOSTILE_KEYS] + [{"Key": "fine"}]})
    assert {e["Key"] for e in result.get("Errors", [])} == set(HOSTILE_KEYS)
    assert [d["Key"] for d in result.get("Deleted", [])] == ["fine"]
    assert upstream_keys(direct, shared) == before
    assert direct.get_object(Bucket=shared, Key="outside/secret.txt")["Body"].read() == b"not yours"
    assert direct.get_object(Bucket=shared, Key="models/base/w.bin")["Body"].read() == b"w"
    # Keys that only look like paths are ordinary keys, under the prefix.
    for key in ("...", "a..b/c", "%2e%2e/x", "/lead", "a//b"):
        s3.put_object(Bucket="datasets", Key=key, Body=b"ok")
        assert s3.get_object(Bucket="datasets", Key=key)["Body"].read() == b"ok"
    assert all(k.startswith(("datasets/", "models/", "outside/")) for k in upstream_keys(direct, shared))


def test_listing_tricks_stay_inside_the_prefix(mapped):
    gw, direct, shared, upstream = mapped
    s3 = root_client(gw)
    s3.put_object(Bucket="datasets", Key="d/1", Body=b"1")
    s3.put_object(Bucket="models", Key="m/1", Body=b"m")
    mine = {"d/1", "d/"}
    attempts = [
        dict(Prefix="../"), dict(Prefix="../models/"), dict(Prefix="..", Delimiter="/"),
        dict(StartAfter="../outside/"), dict(StartAfter="\u0000"), dict(Prefix="", Delimiter="s/"),
        dict(Delimiter="datasets"), dict(Prefix="/"),
        dict(ContinuationToken=base64.urlsafe_b64encode(b"../models/").decode().rstrip("=")),
        dict(ContinuationToken=base64.urlsafe_b64encode(b"../outside/a").decode().rstrip("=")),
    ]
    for kw in attempts:
        try:
            page = s3.list_objects_v2(Bucket="datasets", **kw)
        except ClientError as e:
            assert error_code(e) in ("InvalidArgument",), kw
            continue
        seen = {o["Key"] for o in page.get("Contents", [])} | {p["Prefix"] for p in page.get("CommonPrefixes", [])}
        assert seen <= mine, (kw, seen)
    for kw in (dict(Marker="../"), dict(Marker="../models/m"), dict(Prefix="../", Delimiter="/")):
        page = s3.list_objects(Bucket="datasets", **kw)
        seen = {o["Key"] for o in page.get("Contents", [])} | {p["Prefix"] for p in page.get("CommonPrefixes", [])}
        assert seen <= mine, (kw, seen)
    if upstream == "keyhole":  # s3s-fs 0.14.1 has no ListMultipartUploads
        s3.create_multipart_upload(Bucket="models", Key="m/up")
        for kw in (dict(Prefix="../"), dict(KeyMarker="../models/"), dict(Prefix="../models/m")):
            uploads = s3.list_multipart_uploads(Bucket="datasets", **kw)
            assert not uploads.get("Uploads"), kw
        assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="models")["Uploads"]] == ["m/up"]


def test_copies_between_mapped_and_local_buckets(mapped):
    gw, direct, shared, upstream = mapped
    s3 = root_client(gw)
    s3.put_object(Bucket="datasets", Key="src.bin", Body=b"payload", Metadata={"k": "v"})
    # Within the upstream: a server-side copy between two mapped prefixes.
    s3.copy_object(Bucket="models", Key="copy.bin", CopySource={"Bucket": "datasets", "Key": "src.bin"})
    assert direct.get_object(Bucket=shared, Key="models/copy.bin")["Body"].read() == b"payload"
    # Upstream to local and back: the bytes stream through the gateway.
    s3.create_bucket(Bucket="scratch")
    try:
        s3.copy_object(Bucket="scratch", Key="local.bin", CopySource={"Bucket": "datasets", "Key": "src.bin"})
        got = s3.get_object(Bucket="scratch", Key="local.bin")
        assert got["Body"].read() == b"payload" and got["Metadata"] == {"k": "v"}
        s3.put_object(Bucket="scratch", Key="up.bin", Body=b"from local")
        s3.copy_object(Bucket="datasets", Key="from-local.bin", CopySource={"Bucket": "scratch", "Key": "up.bin"})
        assert direct.get_object(Bucket=shared, Key="datasets/from-local.bin")["Body"].read() == b"from local"
        uid = s3.create_multipart_upload(Bucket="datasets", Key="parts.bin")["UploadId"]
        part = s3.upload_part_copy(Bucket="datasets", Key="parts.bin", UploadId=uid, PartNumber=1,
                                   CopySource={"Bucket": "scratch", "Key": "up.bin"}, CopySourceRange="bytes=5-9")
        s3.complete_multipart_upload(Bucket="datasets", Key="parts.bin", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
        assert s3.get_object(Bucket="datasets", Key="parts.bin")["Body"].read() == b"local"
        # The local bucket is the local store's: the upstream never hears of it.
        assert "scratch" not in [b["Name"] for b in direct.list_buckets()["Buckets"]]
    finally:
        for k in ("local.bin", "up.bin"):
            s3.delete_object(Bucket="scratch", Key=k)
        s3.delete_bucket(Bucket="scratch")


# ------------------------------------------------------------------ a slow or refusing upstream


class BlackHole:
    """A TCP server that accepts connections and never answers (a stalled upstream)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def close(self):
        self.stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


def test_a_stalled_upstream_times_out_without_stalling_local_buckets(tmp_path):
    hole = BlackHole()
    creds = tmp_path / "creds"
    creds.write_text("[default]\naws_access_key_id = AKIASTALL\naws_secret_access_key = stallstall\n")
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[buckets]\nscratch = "local"\n')
    gw = start_server(tmp_path / "gw", extra_args=[
        "--upstream-endpoint", f"http://127.0.0.1:{hole.port}", "--upstream-credentials-file", str(creds),
        "--upstream-timeout-secs", "3", "--upstream-retries", "0", "--config", str(cfg)])
    try:
        s3 = root_client(gw)
        s3.create_bucket(Bucket="scratch")
        outcome = {}

        def slow():
            t = time.monotonic()
            try:
                s3.get_object(Bucket="remote-bucket", Key="k")
                outcome["code"] = "ok"
            except ClientError as e:
                outcome["code"] = error_code(e)
                outcome["body"] = json.dumps(e.response)
            outcome["secs"] = time.monotonic() - t

        threads = [threading.Thread(target=slow) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        s3.put_object(Bucket="scratch", Key="k", Body=b"local is fine")
        assert s3.get_object(Bucket="scratch", Key="k")["Body"].read() == b"local is fine"
        local_secs = time.monotonic() - t0
        for t in threads:
            t.join(30)
        assert local_secs < 2, f"a local bucket waited {local_secs:.1f}s behind a stalled upstream"
        assert outcome["code"] == "ServiceUnavailable", outcome
        assert 2.5 <= outcome["secs"] < 15, outcome
        assert str(hole.port) not in outcome["body"] and "127.0.0.1" not in outcome["body"]
        s3.delete_object(Bucket="scratch", Key="k")
        s3.delete_bucket(Bucket="scratch")
    finally:
        gw.kill()
        hole.close()


def test_refused_upstream_credentials_are_not_the_clients_problem(upstream_keyhole, tmp_path):
    creds = tmp_path / "wrong"
    ak, _ = upstream_keyhole.credentials()
    creds.write_text(f"[default]\naws_access_key_id = {ak}\naws_secret_access_key = {'w' * 40}\n")
    gw = start_server(tmp_path / "gw", extra_args=[
        "--upstream-endpoint", upstream_keyhole.endpoint, "--upstream-credentials-file", str(creds)])
    try:
        with pytest.raises(ClientError) as e:
            root_client(gw).list_objects_v2(Bucket="anything-here")
        assert error_code(e.value) == "ServiceUnavailable"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        text = json.dumps(e.value.response)
        assert "SignatureDoesNotMatch" not in text and str(upstream_keyhole.port) not in text
    finally:
        gw.kill()


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize("args,named", [
    (["--upstream-endpoint", "ftp://127.0.0.1:1"], "upstream_endpoint"),
    (["--upstream-endpoint", "http://127.0.0.1:1/bucket"], "upstream_endpoint"),
    (["--upstream-region", "eu-west-1"], "upstream_endpoint"),
    (["--upstream-endpoint", "http://127.0.0.1:1", "--upstream-credentials-file", "/nonexistent/creds"],
     "/nonexistent/creds"),
    (["--upstream-endpoint", "http://127.0.0.1:1", "--upstream-max-concurrency", "0"], "upstream_max_concurrency"),
    (["--default-backend", "upstream"], "default_backend"),
])
def test_bad_upstream_settings_are_refused_and_change_nothing(tmp_path, args, named):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent/shared", AWS_CONFIG_FILE="/dev/null")
    r = subprocess.run([str(keyhole_bin()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), *args],
                       capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert named in r.stderr, r.stderr
    assert not data.exists(), "a refused start created the data directory"


def test_a_bucket_table_entry_must_name_an_upstream_bucket_safely(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('upstream_endpoint = "http://127.0.0.1:1"\n[buckets]\ndatasets = "acme/../other"\n')
    r = subprocess.run([str(keyhole_bin()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                        "--config", str(cfg)], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "buckets" in r.stderr and ".." in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ streaming


def test_large_objects_stream_through_with_bounded_memory(upstream_keyhole, tmp_path):
    from test_streaming import vm_hwm_kib

    gw = gateway(tmp_path, upstream_keyhole)
    try:
        s3 = root_client(gw)
        bucket = f"big-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(Bucket=bucket)
        size = 256 * MIB
        path = tmp_path / "big.bin"
        block = os.urandom(MIB)
        with open(path, "wb") as f:
            for _ in range(size // MIB):
                f.write(block)
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key="big", Body=f, ContentLength=size)
        body = s3.get_object(Bucket=bucket, Key="big")["Body"]
        got = 0
        for chunk in iter(lambda: body.read(4 * MIB), b""):
            got += len(chunk)
        assert got == size
        peak = vm_hwm_kib(gw.proc.pid)
        assert peak < 100 * 1024, f"gateway peak RSS {peak / 1024:.1f} MiB for a {size // MIB} MiB object"
        s3.delete_object(Bucket=bucket, Key="big")
        s3.delete_bucket(Bucket=bucket)
    finally:
        gw.kill()


# ------------------------------------------------------------------ keyhole's own credentials


def test_upstream_credentials_from_web_identity_and_container_credentials(tmp_path):
    """keyhole runs where only the platform proves who it is (EKS with a role, a job's container
    credentials): its upstream credentials come from AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE
    (exchanged at the upstream's STS) or from AWS_CONTAINER_CREDENTIALS_FULL_URI, with no key
    anywhere in its environment (https://docs.aws.amazon.com/sdkref/latest/guide/feature-assume-role-credentials.html,
    https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html)."""
    from test_web_identity import CLIENT_ID, Issuer

    issuer = Issuer("https://oidc.cluster.example/gw")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    up = start_server(tmp_path / "up", extra_args=["--oidc-jwks", f"{issuer.url}={jwks}"])
    gws = []
    try:
        admin = root_client(up)
        admin.create_bucket(Bucket="wid-up")
        admin.put_object(Bucket="wid-up", Key="data/a", Body=b"A")
        ak, sk = up.credentials()
        iam = boto3.session.Session().client("iam", endpoint_url=up.endpoint, region_name="us-east-1",
                                             aws_access_key_id=ak, aws_secret_access_key=sk)
        iam.create_open_id_connect_provider(Url=issuer.url, ClientIDList=[CLIENT_ID])
        acct = up.account_id()
        name = issuer.url[len("https://"):]
        role = iam.create_role(RoleName="gateway", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{acct}:oidc-provider/{name}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{name}:sub": "system:serviceaccount:keyhole:gateway"}}}]}))["Role"]["Arn"]
        iam.put_role_policy(RoleName="gateway", PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                                                   "Resource": ["arn:aws:s3:::wid-up", "arn:aws:s3:::wid-up/*"]}]}))
        token = tmp_path / "token"
        token.write_text(issuer.token("system:serviceaccount:keyhole:gateway"))
        gw = start_server(tmp_path / "gw-wid", extra_args=["--upstream-endpoint", up.endpoint],
                          env={"AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
                               "AWS_ROLE_SESSION_NAME": "gateway", "HOME": str(tmp_path)})
        gws.append(gw)
        assert root_client(gw).get_object(Bucket="wid-up", Key="data/a")["Body"].read() == b"A"
        events = wait_for_events(up.data_dir, lambda evs: any(
            e.get("eventName") == "GetObject" and "assumed-role/gateway/" in (e.get("userIdentity") or {}).get("arn", "")
            for e in evs))
        assert any("assumed-role/gateway/gateway" in (e.get("userIdentity") or {}).get("arn", "") for e in events)

        # Container credentials: a job of the upstream keyhole hands the gateway its session.
        creds = tmp_path / "admin-creds"
        creds.write_text(f"[default]\naws_access_key_id = {ak}\naws_secret_access_key = {sk}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
        env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_CONFIG_FILE="/dev/null", AWS_REGION="us-east-1",
                   KEYHOLE_ENDPOINT=up.endpoint)
        r = subprocess.run([str(keyhole_bin()), "job", "start", "--output", "json", "--name", "gw",
                            "--read", "s3://wid-up/data/", "--for", "10m"], env=env, capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        job = json.loads(r.stdout)
        gw2 = start_server(tmp_path / "gw-ctr", extra_args=["--upstream-endpoint", up.endpoint], env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{up.endpoint}/_keyhole/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": job["CredentialsToken"], "HOME": str(tmp_path)})
        gws.append(gw2)
        assert root_client(gw2).get_object(Bucket="wid-up", Key="data/a")["Body"].read() == b"A"
        fed = f"federated-user/{job['Job']['JobId']}"
        wait_for_events(up.data_dir, lambda evs: any(
            e.get("eventName") == "GetObject" and fed in (e.get("userIdentity") or {}).get("arn", "") for e in evs))
    finally:
        for g in gws:
            g.kill()
        up.kill()


class FakeImds:
    """An EC2 instance metadata service on loopback, as the SDK reference describes it
    (https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html): IMDSv2
    session tokens from `PUT /latest/api/token`, the role's name and credentials under
    `/latest/meta-data/iam/security-credentials/`. `v1_only` refuses tokens with 405 (an old
    service); otherwise every read without the token is refused with 401, as with
    HttpTokens=required. `role` None: no instance profile (404)."""

    def __init__(self, creds: dict, role: str | None = "keyhole-gateway", v1_only: bool = False,
                 role_list: bytes | None = None):
        import http.server
        import socketserver

        outer = self
        self.requests: list[tuple[str, str, bool]] = []
        self.token = uuid.uuid4().hex

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes = b""):
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                outer.requests.append(("PUT", self.path, False))
                if v1_only:
                    return self._send(405)
                if self.path != "/latest/api/token" or not self.headers.get("x-aws-ec2-metadata-token-ttl-seconds"):
                    return self._send(400)
                self._send(200, outer.token.encode())

            def do_GET(self):
                with_token = self.headers.get("x-aws-ec2-metadata-token") == outer.token
                outer.requests.append(("GET", self.path, with_token))
                if not v1_only and not with_token:
                    return self._send(401)
                base = "/latest/meta-data/iam/security-credentials/"
                if role is None and self.path.startswith(base):
                    return self._send(404)
                if self.path == base:
                    return self._send(200, role_list if role_list is not None else role.encode())
                if self.path == base + role:
                    return self._send(200, json.dumps({"Code": "Success", "Type": "AWS-HMAC", **creds}).encode())
                self._send(404)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_upstream_credentials_from_ec2_instance_metadata(tmp_path):
    """keyhole on an EC2 instance with a role: with no key anywhere, its upstream credentials are
    the instance role's, from the metadata service (IMDSv2 with a session token; IMDSv1 only when
    the service refuses tokens and AWS_EC2_METADATA_V1_DISABLED is not set); an instance with no
    role is refused at start, naming the metadata service
    (https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html)."""
    up = start_server(tmp_path / "up")
    servers, gws = [], []
    try:
        admin = root_client(up)
        admin.create_bucket(Bucket="imds-up")
        admin.put_object(Bucket="imds-up", Key="data/a", Body=b"A")
        ak, sk = up.credentials()
        creds_file = tmp_path / "admin-creds"
        creds_file.write_text(f"[default]\naws_access_key_id = {ak}\naws_secret_access_key = {sk}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
        env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds_file), AWS_CONFIG_FILE="/dev/null",
                   AWS_REGION="us-east-1", KEYHOLE_ENDPOINT=up.endpoint)
        # The instance role's temporary credentials: a job's session on the upstream keyhole.
        r = subprocess.run([str(keyhole_bin()), "job", "start", "--output", "json", "--name", "ec2",
                            "--read", "s3://imds-up/data/", "--for", "10m"], env=env, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        job = json.loads(r.stdout)
        import urllib.request
        req = urllib.request.Request(f"{up.endpoint}/_keyhole/credentials",
                                     headers={"Authorization": job["CredentialsToken"]})
        session = json.loads(urllib.request.urlopen(req, timeout=10).read())
        creds = {k: session[k] for k in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")}
        home = tmp_path / "home"
        home.mkdir()
        fed = f"federated-user/{job['Job']['JobId']}"

        for v1_only in (False, True):
            imds = FakeImds(creds, v1_only=v1_only)
            servers.append(imds)
            gw = start_server(tmp_path / f"gw-imds-{v1_only}", extra_args=["--upstream-endpoint", up.endpoint],
                              env={"AWS_EC2_METADATA_DISABLED": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint,
                                   "HOME": str(home)})
            gws.append(gw)
            assert root_client(gw).get_object(Bucket="imds-up", Key="data/a")["Body"].read() == b"A"
            wait_for_events(up.data_dir, lambda evs: any(
                e.get("eventName") == "GetObject" and fed in (e.get("userIdentity") or {}).get("arn", "")
                for e in evs))
            gets = [(path, tok) for (m, path, tok) in imds.requests if m == "GET"]
            assert gets and all(tok != v1_only for _, tok in gets), imds.requests
            assert ("PUT", "/latest/api/token", False) in imds.requests

        def refused(imds: FakeImds, extra_env: dict) -> str:
            data = tmp_path / f"refused-{uuid.uuid4().hex}"
            run_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
            run_env.update(HOME=str(home), AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint, **extra_env)
            r = subprocess.run([str(keyhole_bin()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data),
                                "--upstream-endpoint", up.endpoint], capture_output=True, text=True, timeout=30,
                               env=run_env, stdin=subprocess.DEVNULL)
            assert r.returncode != 0
            assert not data.exists(), "a refused start created the data directory"
            assert creds["SecretAccessKey"] not in r.stderr and creds["Token"] not in r.stderr
            return r.stderr

        no_role = FakeImds(creds, role=None)
        servers.append(no_role)
        err = refused(no_role, {})
        assert "instance metadata" in err and "no role" in err, err
        old = FakeImds(creds, v1_only=True)
        servers.append(old)
        err = refused(old, {"AWS_EC2_METADATA_V1_DISABLED": "true"})
        assert "AWS_EC2_METADATA_V1_DISABLED" in err, err
        assert not any(m == "GET" for m, _, _ in old.requests), old.requests
        asked = len(old.requests)
        err = refused(old, {"AWS_EC2_METADATA_DISABLED": "true"})
        assert "AWS_EC2_METADATA_DISABLED" in err and len(old.requests) == asked, err
        # A hostile answer is bounded and never echoed (review 8, F7): a 4 MiB "role name".
        huge = FakeImds(creds, role_list=b"r" * (4 * 1024 * 1024))
        servers.append(huge)
        err = refused(huge, {})
        assert "larger than" in err and len(err) < 4096, err[:500]
        for name in (b"a/../b", b"bad rolename", b"x" * 65):
            bad = FakeImds(creds, role_list=name)
            servers.append(bad)
            err = refused(bad, {})
            assert "not an IAM role name" in err and name.decode() not in err, err
    finally:
        for g in gws:
            g.kill()
        for s in servers:
            s.close()
        up.kill()


# ------------------------------------------------------------------ a misbehaving upstream


class ShimProxy:
    """A transparent HTTP proxy between the gateway and an upstream keyhole that can misbehave on
    demand (`mode`): `tag429` answers tag reads with 429 SlowDown (as throttling S3-compatible
    stores do), `chunked` sends objects without a Content-Length."""

    def __init__(self, upstream_port: int):
        import http.client
        import http.server
        import socketserver

        outer = self
        self.mode = "pass"

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                query = self.path.split("?", 1)[1] if "?" in self.path else ""
                if outer.mode in ("tag429", "tag404") and self.command == "GET" and "tagging" in query.split("&"):
                    if outer.mode == "tag404":
                        msg = b"<Error><Code>NoSuchTagSet</Code><Message>The TagSet does not exist</Message></Error>"
                        self.send_response(404)
                    else:
                        msg = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                        self.send_response(429)
                    self.send_header("content-length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
                headers["content-length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                if outer.mode == "chunked" and self.command == "GET" and not query and r.status == 200:
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n")
                    return
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_misbehaving_upstream_never_turns_into_a_wrong_success(upstream_keyhole, tmp_path):
    """Review of the upstream path: a throttled tag read let a Deny on s3:ExistingObjectTag fail
    open (F1), and an object answered without Content-Length came back as an empty 200 (F3). Both
    must fail instead (https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html)."""
    proxy = ShimProxy(upstream_keyhole.port)
    gw = start_server(tmp_path / "gw", extra_args=[
        "--upstream-endpoint", f"http://127.0.0.1:{proxy.port}",
        "--upstream-credentials-file", str(upstream_keyhole.creds_path)])
    try:
        admin = root_client(gw)
        bucket = f"shim-{uuid.uuid4().hex[:8]}"
        admin.create_bucket(Bucket=bucket)
        admin.put_object(Bucket=bucket, Key="secret", Body=b"TOP SECRET", Tagging="class=secret")
        iam = iam_client(as_server(gw))
        _, ak, sk = new_user(iam, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}}]})
        user = make_client(gw.endpoint, ak, sk)
        with pytest.raises(ClientError) as e:
            user.get_object(Bucket=bucket, Key="secret")
        assert error_code(e.value) == "AccessDenied"
        proxy.mode = "tag429"
        with pytest.raises(ClientError) as e:
            user.get_object(Bucket=bucket, Key="secret")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (429, 503), e.value.response
        # A 404 to the tag read of an object that exists is not "no tags" (review 8, F5).
        proxy.mode = "tag404"
        with pytest.raises(ClientError) as e:
            user.get_object(Bucket=bucket, Key="secret")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.value.response
        assert error_code(e.value) == "NoSuchTagSet", e.value.response
        proxy.mode = "pass"
        # Tag values are kept exactly as the upstream has them: "public " is not "public"
        # (review 8, F6).
        admin.put_object(Bucket=bucket, Key="spaced", Body=b"S", Tagging="class=public%20")
        assert admin.get_object_tagging(Bucket=bucket, Key="spaced")["TagSet"] == [{"Key": "class", "Value": "public "}]
        _, ak2, sk2 = new_user(iam, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "public"}}}]})
        with pytest.raises(ClientError) as e:
            make_client(gw.endpoint, ak2, sk2).get_object(Bucket=bucket, Key="spaced")
        assert error_code(e.value) == "AccessDenied"
        proxy.mode = "chunked"
        admin.put_object(Bucket=bucket, Key="plain", Body=b"0123456789")
        try:
            got = admin.get_object(Bucket=bucket, Key="plain")["Body"].read()
            assert got == b"0123456789", got
        except ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] >= 500
    finally:
        gw.kill()
        proxy.close()
