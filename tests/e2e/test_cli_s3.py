"""aws-cli (v1) against the gateway: `aws s3` high-level commands (multipart included, through a
20 MiB file) and `aws s3api` for multipart, tagging, copy and ranges; `aws s3 presign`."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from e2e_helpers import md5_etag, multipart_etag, unique_bucket_name

MIB = 1024 * 1024


def sha256_file(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.digest()


def ls_names(stdout: str) -> list[str]:
    """Names from `aws s3 ls` output (last column; `PRE name/` lines for prefixes)."""
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("PRE "):
            out.append(line[4:])
        else:
            out.append(line.split(None, 3)[3])
    return out


def test_mb_ls_rb(aws, s3):
    name = unique_bucket_name("climb")
    cp = aws.ok("s3", "mb", f"s3://{name}")
    assert f"make_bucket: {name}" in cp.stdout
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    listed = aws.ok("s3", "ls").stdout
    assert any(line.split()[-1] == name for line in listed.splitlines())
    aws.ok("s3", "rb", f"s3://{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_cp_ls_rm(aws, s3, bucket, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello keyhole\n")
    aws.ok("s3", "cp", str(src), f"s3://{bucket}/greetings/hello.txt")
    assert s3.get_object(Bucket=bucket, Key="greetings/hello.txt")["Body"].read() == b"hello keyhole\n"

    assert ls_names(aws.ok("s3", "ls", f"s3://{bucket}/").stdout) == ["greetings/"]
    assert ls_names(aws.ok("s3", "ls", f"s3://{bucket}/greetings/").stdout) == ["hello.txt"]

    dst = tmp_path / "back.txt"
    aws.ok("s3", "cp", f"s3://{bucket}/greetings/hello.txt", str(dst))
    assert dst.read_bytes() == b"hello keyhole\n"

    # s3 -> s3 copy goes through CopyObject.
    aws.ok("s3", "cp", f"s3://{bucket}/greetings/hello.txt", f"s3://{bucket}/copy.txt")
    assert s3.get_object(Bucket=bucket, Key="copy.txt")["Body"].read() == b"hello keyhole\n"

    aws.ok("s3", "rm", f"s3://{bucket}/greetings/hello.txt")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["copy.txt"]


def test_ls_missing_bucket_fails(aws):
    cp = aws("s3", "ls", f"s3://{unique_bucket_name('absent')}/")
    assert cp.returncode != 0
    assert "NoSuchBucket" in cp.stderr


def test_recursive_cp_ls_rm(aws, s3, bucket, tmp_path):
    tree = tmp_path / "tree"
    files = {"a.txt": b"A", "sub/b.txt": b"BB", "sub/deeper/c.bin": os.urandom(1000), "sp ace/ü.txt": b"unicode"}
    for rel, data in files.items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    aws.ok("s3", "cp", "--recursive", str(tree), f"s3://{bucket}/t/")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"t/{k}" for k in files)

    out = aws.ok("s3", "ls", "--recursive", f"s3://{bucket}/").stdout
    assert sorted(ls_names(out)) == keys

    down = tmp_path / "down"
    aws.ok("s3", "cp", "--recursive", f"s3://{bucket}/t/", str(down))
    for rel, data in files.items():
        assert (down / rel).read_bytes() == data

    aws.ok("s3", "rm", "--recursive", f"s3://{bucket}/t/sub/")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["t/a.txt", "t/sp ace/ü.txt"]
    aws.ok("s3", "rm", "--recursive", f"s3://{bucket}/")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_sync_both_ways_with_delete(aws, s3, bucket, tmp_path):
    local = tmp_path / "local"
    (local / "d").mkdir(parents=True)
    (local / "one.txt").write_bytes(b"1")
    (local / "d" / "two.txt").write_bytes(b"22")
    # sync compares sizes and modification times; S3 times have one-second resolution, so files
    # written this very second would look newer than their uploads. Date them an hour back.
    hour_ago = time.time() - 3600
    for p in (local / "one.txt", local / "d" / "two.txt"):
        os.utime(p, (hour_ago, hour_ago))
    out = aws.ok("s3", "sync", str(local), f"s3://{bucket}/sync").stdout
    assert out.count("upload:") == 2
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == [
        "sync/d/two.txt",
        "sync/one.txt",
    ]
    # A second sync with no change uploads nothing (sizes and times compare equal).
    assert "upload:" not in aws.ok("s3", "sync", str(local), f"s3://{bucket}/sync").stdout

    (local / "one.txt").unlink()
    (local / "three.txt").write_bytes(b"333")
    out = aws.ok("s3", "sync", "--delete", str(local), f"s3://{bucket}/sync").stdout
    assert "delete: s3://" in out
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == [
        "sync/d/two.txt",
        "sync/three.txt",
    ]

    back = tmp_path / "back"
    aws.ok("s3", "sync", f"s3://{bucket}/sync", str(back))
    assert sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file()) == ["d/two.txt", "three.txt"]
    assert (back / "three.txt").read_bytes() == b"333"


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not implement ListMultipartUploads (NotImplemented)")
def test_large_file_multipart(aws, s3, bucket, tmp_path):
    # aws-cli's defaults: multipart_threshold = multipart_chunksize = 8 MiB -> parts 8 + 8 + 4 MiB.
    data = os.urandom(20 * MIB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    aws.ok("s3", "cp", str(src), f"s3://{bucket}/big.bin")
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 20 * MIB
    expected = multipart_etag([data[0 : 8 * MIB], data[8 * MIB : 16 * MIB], data[16 * MIB :]])
    assert head["ETag"] == expected, "aws-cli uploaded 20 MiB in 3 parts; ETag must be the S3 multipart ETag"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    dst = tmp_path / "big.down"
    aws.ok("s3", "cp", f"s3://{bucket}/big.bin", str(dst))
    assert sha256_file(dst) == hashlib.sha256(data).digest()


def test_presign_then_fetch(aws, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="shared/report.txt", Body=b"presigned body")
    # aws-cli v1's `s3 presign` signs with SigV2 unless told s3.signature_version = s3v4.
    cfg = tmp_path / "config"
    cfg.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
    url = aws.ok(
        "s3", "presign", f"s3://{bucket}/shared/report.txt", "--expires-in", "300",
        extra_env={"AWS_CONFIG_FILE": str(cfg)},
    ).stdout.strip()
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url, url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.read() == b"presigned body"
    # Tampering with the signed URL breaks it.
    tampered = url.replace("shared/report.txt", "shared/other.txt")
    try:
        urllib.request.urlopen(tampered, timeout=10)
        raise AssertionError("tampered presigned URL was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403
        assert b"<Code>SignatureDoesNotMatch</Code>" in e.read()


def test_presign_sigv2_default_is_refused_not_served(aws, s3, bucket):
    # Without the s3v4 setting aws-cli v1 emits a SigV2 URL (AWSAccessKeyId=, Signature=, Expires=).
    # keyhole verifies SigV4 only: the URL must be refused with an S3 error, never served.
    s3.put_object(Bucket=bucket, Key="v2.txt", Body=b"secret")
    url = aws.ok("s3", "presign", f"s3://{bucket}/v2.txt").stdout.strip()
    assert "AWSAccessKeyId=" in url, url
    try:
        urllib.request.urlopen(url, timeout=10)
        raise AssertionError("SigV2 presigned URL was served")
    except urllib.error.HTTPError as e:
        assert e.code in (400, 403)
        body = e.read()
        assert b"<Error>" in body and b"<Code>" in body, body[:300]
        assert b"secret" not in body


def s3api_json(aws, *args, cwd=None) -> dict:
    out = aws.ok("s3api", *args, "--output", "json", cwd=cwd).stdout
    return json.loads(out) if out.strip() else {}


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 lists objects and parts without their ETags")
def test_s3api_multipart(aws, s3, bucket, tmp_path):
    p1, p2 = os.urandom(5 * MIB), b"last part"
    (tmp_path / "p1").write_bytes(p1)
    (tmp_path / "p2").write_bytes(p2)
    uid = s3api_json(aws, "create-multipart-upload", "--bucket", bucket, "--key", "mp")["UploadId"]
    e1 = s3api_json(
        aws, "upload-part", "--bucket", bucket, "--key", "mp", "--upload-id", uid, "--part-number", "1",
        "--body", str(tmp_path / "p1"),
    )["ETag"]
    e2 = s3api_json(
        aws, "upload-part", "--bucket", bucket, "--key", "mp", "--upload-id", uid, "--part-number", "2",
        "--body", str(tmp_path / "p2"),
    )["ETag"]
    parts = s3api_json(aws, "list-parts", "--bucket", bucket, "--key", "mp", "--upload-id", uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, e1), (2, e2)]
    (tmp_path / "parts.json").write_text(
        json.dumps({"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    )
    done = s3api_json(
        aws, "complete-multipart-upload", "--bucket", bucket, "--key", "mp", "--upload-id", uid,
        "--multipart-upload", f"file://{tmp_path / 'parts.json'}",
    )
    assert done["ETag"] == multipart_etag([p1, p2])
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == p1 + p2


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not implement ListMultipartUploads (NotImplemented)")
def test_s3api_abort_and_list_uploads(aws, bucket):
    uid = s3api_json(aws, "create-multipart-upload", "--bucket", bucket, "--key", "ab")["UploadId"]
    ups = s3api_json(aws, "list-multipart-uploads", "--bucket", bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in ups] == [("ab", uid)]
    aws.ok("s3api", "abort-multipart-upload", "--bucket", bucket, "--key", "ab", "--upload-id", uid)
    assert s3api_json(aws, "list-multipart-uploads", "--bucket", bucket).get("Uploads", []) == []


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not implement object tagging (NotImplemented)")
def test_s3api_tagging_copy_range(aws, s3, bucket, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"0123456789")
    put = s3api_json(
        aws, "put-object", "--bucket", bucket, "--key", "obj", "--body", str(body), "--tagging", "team=ml",
        "--metadata", "source=cli",
    )
    assert put["ETag"] == md5_etag(b"0123456789")
    tags = s3api_json(aws, "get-object-tagging", "--bucket", bucket, "--key", "obj")["TagSet"]
    assert tags == [{"Key": "team", "Value": "ml"}]
    aws.ok(
        "s3api", "put-object-tagging", "--bucket", bucket, "--key", "obj",
        "--tagging", "TagSet=[{Key=stage,Value=eval}]",
    )
    tags = s3api_json(aws, "get-object-tagging", "--bucket", bucket, "--key", "obj")["TagSet"]
    assert tags == [{"Key": "stage", "Value": "eval"}]
    aws.ok("s3api", "delete-object-tagging", "--bucket", bucket, "--key", "obj")
    assert s3api_json(aws, "get-object-tagging", "--bucket", bucket, "--key", "obj")["TagSet"] == []

    s3api_json(aws, "copy-object", "--bucket", bucket, "--key", "obj-copy", "--copy-source", f"{bucket}/obj")
    head = s3api_json(aws, "head-object", "--bucket", bucket, "--key", "obj-copy")
    assert head["Metadata"] == {"source": "cli"}

    out = tmp_path / "range.out"
    got = s3api_json(aws, "get-object", "--bucket", bucket, "--key", "obj", "--range", "bytes=2-5", str(out))
    assert got["ContentRange"] == "bytes 2-5/10"
    assert out.read_bytes() == b"2345"


def test_s3api_error_is_reported(aws, bucket):
    cp = aws("s3api", "get-object", "--bucket", bucket, "--key", "missing", "/dev/null")
    assert cp.returncode != 0
    assert "NoSuchKey" in cp.stderr


def test_sync_many_small_files(aws, s3, bucket, tmp_path):
    # aws-cli runs 10 transfers at a time: the gateway sees concurrent PUTs, then concurrent GETs.
    src = tmp_path / "many"
    files = {f"d{i % 7}/f{i:03d}.txt": os.urandom(100 + i) for i in range(150)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    aws.ok("s3", "sync", str(src), f"s3://{bucket}/many")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    assert sorted(o["Key"] for p in pages for o in p.get("Contents", [])) == sorted(f"many/{k}" for k in files)
    dst = tmp_path / "back"
    aws.ok("s3", "sync", f"s3://{bucket}/many", str(dst))
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data


def test_mv_and_cp_with_headers(aws, s3, bucket, tmp_path):
    f = tmp_path / "doc.json"
    f.write_text('{"a": 1}')
    aws.ok("s3", "cp", str(f), f"s3://{bucket}/doc.json", "--content-type", "application/json",
           "--metadata", "origin=cli,step=1", "--cache-control", "no-cache")
    head = s3.head_object(Bucket=bucket, Key="doc.json")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"origin": "cli", "step": "1"}
    assert head["CacheControl"] == "no-cache"
    aws.ok("s3", "mv", f"s3://{bucket}/doc.json", f"s3://{bucket}/moved/doc.json")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["moved/doc.json"]
    assert s3.head_object(Bucket=bucket, Key="moved/doc.json")["Metadata"] == {"origin": "cli", "step": "1"}
