"""Stored object checksums (issue 12), through boto3 and aws-cli: what a write stores (the
client's verified checksum, else CRC64NVME), what GET/HEAD return with ChecksumMode, multipart
uploads created with an algorithm (composite and full-object), what CompleteMultipartUpload
checks, ListParts, GetObjectAttributes' Checksum and ObjectParts, and copies that change the
algorithm. AWS's rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity-upload.html
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


MIB = 1024 * 1024


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sha256_b64(data: bytes) -> str:
    return b64(hashlib.sha256(data).digest())


def crc32_b64(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def _crc64nvme_table() -> list[int]:
    poly = 0x9A6C9329AC4BC9B5  # CRC-64/NVME, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_T64 = _crc64nvme_table()


def crc64nvme_b64(data: bytes) -> str:
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = _T64[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return b64((crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big"))


def test_crc64nvme_reference_matches_the_published_check_value():
    # The catalogue's check value of CRC-64/NVME over "123456789".
    assert base64.b64decode(crc64nvme_b64(b"123456789")).hex() == "ae8b14860a799888"


def err(excinfo) -> tuple[str, int]:
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def s3_plain(server):
    """A client that sends no checksum unless told to (botocore's `when_required`)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


# ---------------------------------------------------------------- single-request uploads


def test_put_stores_the_clients_checksum_and_returns_it_only_when_asked(s3, bucket):
    data = b"A" * 1024
    # ceph/s3-tests' test_object_checksum_sha256 value for 1 KiB of "A".
    want = "arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="
    assert sha256_b64(data) == want
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=want)
    assert put["ChecksumSHA256"] == want and put["ChecksumType"] == "FULL_OBJECT", put
    plain = s3.head_object(Bucket=bucket, Key="k")
    assert "ChecksumSHA256" not in plain
    for resp in (
        s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED"),
        s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED"),
    ):
        assert resp["ChecksumSHA256"] == want and resp["ChecksumType"] == "FULL_OBJECT", resp
    # Not for a range: it would not be the checksum of the bytes sent.
    ranged = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in ranged and ranged["Body"].read() == data[:10]
    # A wrong checksum is BadDigest and leaves the stored object as it was.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"B" * 1024, ChecksumAlgorithm="SHA256", ChecksumSHA256=want)
    assert err(e) == ("BadDigest", 400)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data


def test_crc64nvme_sent_by_the_client_is_stored(s3, bucket):
    data = b"A" * 1024
    want = "Qeh8oXvGiSo="  # ceph/s3-tests' test_object_checksum_crc64nvme
    assert crc64nvme_b64(data) == want
    put = s3.put_object(Bucket=bucket, Key="n", Body=data, ChecksumAlgorithm="CRC64NVME", ChecksumCRC64NVME=want)
    assert put["ChecksumCRC64NVME"] == want
    assert s3.head_object(Bucket=bucket, Key="n", ChecksumMode="ENABLED")["ChecksumCRC64NVME"] == want


def test_sdk_default_trailer_checksum_is_stored(s3, bucket):
    # boto3's default (when_supported) sends a CRC32 in an aws-chunked trailer or a header.
    data = b"trailing checksum " * 1000
    s3.put_object(Bucket=bucket, Key="t", Body=data)
    head = s3.head_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32_b64(data), head


def test_an_upload_without_a_checksum_gets_crc64nvme_as_in_s3(s3_plain, bucket):
    data = bytes(range(256)) * 40
    put = s3_plain.put_object(Bucket=bucket, Key="plain", Body=data)
    assert put["ChecksumCRC64NVME"] == crc64nvme_b64(data), put
    head = s3_plain.head_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == crc64nvme_b64(data) and head["ChecksumType"] == "FULL_OBJECT"


def test_copy_can_change_the_checksum_algorithm(s3, bucket):
    data = b"copy me " * 500
    s3.put_object(Bucket=bucket, Key="src", Body=data, ChecksumAlgorithm="SHA256")
    # Onto itself with another algorithm: S3's way to change an object's checksum.
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"}, ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket=bucket, Key="src", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32_b64(data) and "ChecksumSHA256" not in head, head
    # Without one, the copy keeps the source's algorithm.
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")["ChecksumCRC32"] == crc32_b64(data)


# ---------------------------------------------------------------- multipart


def _upload(s3, bucket, key, parts, algorithm=None, ctype=None, **create):
    args = {}
    if algorithm:
        args["ChecksumAlgorithm"] = algorithm
    if ctype:
        args["ChecksumType"] = ctype
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **args, **create)
    if algorithm:
        assert up["ChecksumAlgorithm"] == algorithm
    uid = up["UploadId"]
    listed = []
    for n, body in enumerate(parts, start=1):
        kw = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=body, **kw)
        entry = {"ETag": r["ETag"], "PartNumber": n}
        if algorithm:
            entry[f"Checksum{algorithm}"] = r[f"Checksum{algorithm}"]
        listed.append(entry)
    return uid, listed


def test_composite_sha256_multipart_upload(s3, bucket):
    parts = [b"A" * (5 * MIB), b"B" * (5 * MIB), b"C" * 1000]
    uid, listed = _upload(s3, bucket, "mp", parts, "SHA256")
    assert [p["ChecksumSHA256"] for p in listed] == [sha256_b64(p) for p in parts]
    composite = b64(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()) + "-3"

    lp = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert lp["ChecksumAlgorithm"] == "SHA256" and lp["ChecksumType"] == "COMPOSITE", lp
    assert [p["ChecksumSHA256"] for p in lp["Parts"]] == [sha256_b64(p) for p in parts]

    # A wrong whole-object checksum is BadDigest; a wrong part checksum is InvalidPart; the
    # upload stays open after both.
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, ChecksumSHA256="bad",
                                     MultipartUpload={"Parts": listed})
    assert err(e) == ("BadDigest", 400)
    tampered = [dict(listed[0], ChecksumSHA256=sha256_b64(b"other")), *listed[1:]]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": tampered})
    assert err(e) == ("InvalidPart", 400)

    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, ChecksumSHA256=composite,
                                        MultipartUpload={"Parts": listed})
    assert done["ChecksumSHA256"] == composite and done["ChecksumType"] == "COMPOSITE", done
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == composite and head["ChecksumType"] == "COMPOSITE"

    attrs = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["Checksum", "ObjectParts", "ObjectSize"])
    assert attrs["Checksum"] == {"ChecksumSHA256": composite, "ChecksumType": "COMPOSITE"}, attrs
    op = attrs["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and op["IsTruncated"] is False, op
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in op["Parts"]] == [
        (n, len(b), sha256_b64(b)) for n, b in enumerate(parts, start=1)
    ]
    page = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                    MaxParts=1, PartNumberMarker=1)["ObjectParts"]
    assert page["IsTruncated"] is True and page["NextPartNumberMarker"] == 2, page
    assert [p["PartNumber"] for p in page["Parts"]] == [2]


def test_full_object_crc32_multipart_upload_is_the_crc_of_the_whole(s3, bucket):
    parts = [bytes(range(256)) * (5 * MIB // 256), b"tail" * 100]
    uid, listed = _upload(s3, bucket, "full", parts, "CRC32", "FULL_OBJECT")
    whole = crc32_b64(b"".join(parts))
    done = s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=uid, ChecksumCRC32=whole,
                                        MultipartUpload={"Parts": listed})
    assert done["ChecksumCRC32"] == whole and done["ChecksumType"] == "FULL_OBJECT", done
    got = s3.get_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == whole
    assert zlib.crc32(got["Body"].read()).to_bytes(4, "big") == base64.b64decode(whole)


def test_multipart_without_an_algorithm_gets_a_full_object_crc64nvme(s3_plain, bucket):
    parts = [b"x" * (5 * MIB), b"y" * 10]
    uid, listed = _upload(s3_plain, bucket, "plainmp", parts)
    done = s3_plain.complete_multipart_upload(Bucket=bucket, Key="plainmp", UploadId=uid,
                                              MultipartUpload={"Parts": listed})
    whole = crc64nvme_b64(b"".join(parts))
    assert done["ChecksumCRC64NVME"] == whole and done["ChecksumType"] == "FULL_OBJECT", done


def test_upload_specs_and_parts_of_another_algorithm_are_refused(s3, bucket):
    for algorithm, ctype in (("SHA256", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE")):
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm=algorithm, ChecksumType=ctype)
        assert err(e) == ("InvalidRequest", 400), (algorithm, ctype)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm="SHA256")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="x", UploadId=uid, PartNumber=1, Body=b"data", ChecksumAlgorithm="CRC32")
    assert err(e) == ("InvalidRequest", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="x", UploadId=uid)


def test_a_part_without_a_checksum_gets_one_in_the_uploads_algorithm(s3, s3_plain, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="p", ChecksumAlgorithm="SHA256")["UploadId"]
    body = b"no checksum sent with this part"
    r = s3_plain.upload_part(Bucket=bucket, Key="p", UploadId=uid, PartNumber=1, Body=body)
    assert r["ChecksumSHA256"] == sha256_b64(body), r
    lp = s3.list_parts(Bucket=bucket, Key="p", UploadId=uid)
    assert lp["Parts"][0]["ChecksumSHA256"] == sha256_b64(body)
    s3.abort_multipart_upload(Bucket=bucket, Key="p", UploadId=uid)


# ---------------------------------------------------------------- aws-cli


def test_aws_cli_put_and_head_with_checksum_mode(aws, bucket, tmp_path):
    f = tmp_path / "f.bin"
    data = b"cli checksum " * 4000
    f.write_bytes(data)
    aws.ok("s3api", "put-object", "--bucket", bucket, "--key", "cli", "--body", str(f), "--checksum-algorithm", "SHA256")
    head = json.loads(aws.ok("s3api", "head-object", "--bucket", bucket, "--key", "cli", "--checksum-mode", "ENABLED").stdout)
    assert head["ChecksumSHA256"] == sha256_b64(data), head
    # A multipart upload by `aws s3 cp` (20 MiB, 8 MiB parts): the stored checksum is the
    # object's, whatever algorithm the CLI chose.
    big = tmp_path / "big.bin"
    payload = bytes(range(256)) * (20 * MIB // 256)
    big.write_bytes(payload)
    aws.ok("s3", "cp", str(big), f"s3://{bucket}/big")
    head = json.loads(aws.ok("s3api", "head-object", "--bucket", bucket, "--key", "big", "--checksum-mode", "ENABLED").stdout)
    sums = {k: v for k, v in head.items() if k.startswith("Checksum") and k != "ChecksumType"}
    assert len(sums) == 1, head
    (name, value), = sums.items()
    if head["ChecksumType"] == "FULL_OBJECT":
        if name == "ChecksumCRC32":
            assert value == crc32_b64(payload), head
        else:  # CRC64NVME: 8 bytes (the pure-Python reference is too slow for 20 MiB)
            assert name == "ChecksumCRC64NVME" and len(base64.b64decode(value)) == 8, head
    else:
        assert head["ChecksumType"] == "COMPOSITE" and value.endswith("-3"), head


# ---------------------------------------------------------------- GetObject by partNumber


def test_get_and_head_by_part_number(s3, bucket, aws, tmp_path):
    # "partNumber ... Effectively performs a 'ranged' GET request for the part specified"
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
    parts = [b"A" * (5 * MIB), b"B" * (5 * MIB), b"C" * 1000]
    uid, listed = _upload(s3, bucket, "parts", parts, "SHA256")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="parts", UploadId=uid,
                                        MultipartUpload={"Parts": listed})
    for n, body in enumerate(parts, start=1):
        got = s3.get_object(Bucket=bucket, Key="parts", PartNumber=n, ChecksumMode="ENABLED")
        assert got["Body"].read() == body
        assert (got["ContentLength"], got["PartsCount"], got["ETag"]) == (len(body), 3, done["ETag"])
        assert got["ChecksumSHA256"] == sha256_b64(body), got
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        head = s3.head_object(Bucket=bucket, Key="parts", PartNumber=n)
        assert (head["ContentLength"], head["PartsCount"]) == (len(body), 3)
    for bad in (4, 10000):
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="parts", PartNumber=bad)
        assert err(e) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="parts", PartNumber=1, Range="bytes=0-1")
    assert err(e) == ("InvalidRequest", 400)
    # Part 1 of an object not made in parts is the whole object; there is no part 2.
    s3.put_object(Bucket=bucket, Key="single", Body=b"body")
    assert s3.get_object(Bucket=bucket, Key="single", PartNumber=1)["Body"].read() == b"body"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="single", PartNumber=2)
    assert err(e) == ("InvalidPartNumber", 416)
    out = tmp_path / "part3"
    meta = json.loads(aws.ok("s3api", "get-object", "--bucket", bucket, "--key", "parts",
                             "--part-number", "3", str(out)).stdout)
    assert out.read_bytes() == parts[2] and meta["PartsCount"] == 3
