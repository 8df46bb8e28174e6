"""Streaming uploads as SDKs send them (aws-chunked with chunk signatures, with and without
checksum trailers, and unsigned with a trailer), flexible checksums, bounded server memory for
large bodies, and crash safety (kill -9 in the middle of a write).

Chunk signing follows https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html and
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
import re
import shutil
import signal
import socket
import time
import zlib
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION, make_client, md5_etag, multipart_etag, object_path, sign, signed_request

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def signing_key(secret: str, date: str, region: str = REGION) -> bytes:
    k = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def hmac_hex(key: bytes, msg: str) -> str:
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def keys_of(s3, bucket) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def send_raw(port: int, head: bytes, body: bytes) -> tuple[int, bytes]:
    """Send a request byte for byte and return (status, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.1 (\d{3})", header)
        assert m, f"no HTTP status line in {data[:200]!r}"
        status = int(m.group(1))
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", header)
        want = int(length.group(1)) if length else 0
        while len(rest) < want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest


def streaming_put(
    server,
    bucket: str,
    key: str,
    chunks: list[bytes],
    mode: str,
    trailer_crc: str | None = None,
    tamper=None,
    decoded_length: int | None = None,
    extra_headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """PUT with Content-Encoding aws-chunked.

    mode: "signed" (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), "signed-trailer"
    (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER) or "unsigned-trailer"
    (STREAMING-UNSIGNED-PAYLOAD-TRAILER). `tamper(body) -> body` alters the encoded body after signing.
    """
    declared = {
        "signed": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "signed-trailer": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "unsigned-trailer": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }[mode]
    data = b"".join(chunks)
    crc = trailer_crc if trailer_crc is not None else crc32_b64(data)
    now = utcnow().replace(microsecond=0)
    ts, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{date}/{REGION}/s3/aws4_request"
    key_bytes = signing_key(server.secret_key, date)

    headers = {
        "Host": f"127.0.0.1:{server.port}",
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data) if decoded_length is None else decoded_length),
        "Content-Length": "0",
    }
    if mode != "signed":
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    headers.update(extra_headers or {})

    # The encoded length must be signed (Content-Length is a signed header for botocore only if
    # present); compute the body first with dummy signatures of the right size, then sign.
    def encode(seed: str | None) -> bytes:
        parts: list[bytes] = []
        prev = seed
        for c in chunks + [b""]:
            if mode == "unsigned-trailer":
                parts.append(f"{len(c):x}\r\n".encode())
            else:
                sts = "\n".join(
                    ["AWS4-HMAC-SHA256-PAYLOAD", ts, scope, prev or "0" * 64, EMPTY_SHA256,
                     hashlib.sha256(c).hexdigest()]
                )
                sig = hmac_hex(key_bytes, sts) if seed else "0" * 64
                prev = sig
                parts.append(f"{len(c):x};chunk-signature={sig}\r\n".encode())
            if c:
                parts.append(c + b"\r\n")
        if mode == "signed":
            parts.append(b"\r\n")
        else:
            trailer = f"x-amz-checksum-crc32:{crc}"
            parts.append(trailer.encode() + b"\r\n")
            if mode == "signed-trailer":
                sts = "\n".join(
                    ["AWS4-HMAC-SHA256-TRAILER", ts, scope, prev or "0" * 64,
                     hashlib.sha256((trailer + "\n").encode()).hexdigest()]
                )
                tsig = hmac_hex(key_bytes, sts) if seed else "0" * 64
                parts.append(f"x-amz-trailer-signature:{tsig}\r\n".encode())
            parts.append(b"\r\n")
        return b"".join(parts)

    headers["Content-Length"] = str(len(encode(None)))
    path = object_path(bucket, key)
    signed = sign("PUT", f"{server.endpoint}{path}", server.access_key, server.secret_key, headers, b"",
                  now=now, payload_hash=declared)
    assert signed["X-Amz-Date"] == ts
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    body = encode(seed)
    assert len(body) == int(headers["Content-Length"])
    if tamper is not None:
        body = tamper(body)
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"
    return send_raw(server.port, head.encode(), body)


CHUNKS = [os.urandom(64 * 1024), os.urandom(64 * 1024), b"tail" * 25]
DATA = b"".join(CHUNKS)


@pytest.mark.parametrize("mode", ["signed", "signed-trailer", "unsigned-trailer"])
def test_aws_chunked_upload(server, s3, bucket, mode):
    status, body = streaming_put(server, bucket, "chunked", CHUNKS, mode)
    assert status == 200, body[:500]
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["ContentLength"] == len(DATA)
    assert got["Body"].read() == DATA
    assert got["ETag"] == md5_etag(DATA)
    assert got.get("ContentEncoding") in (None, ""), "aws-chunked is a transfer detail, not stored"


def _flip_byte_in_second_chunk(body: bytes) -> bytes:
    i = body.index(CHUNKS[1][:32]) + 10
    return body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1 :]


@pytest.mark.parametrize("mode", ["signed", "signed-trailer"])
def test_aws_chunked_tampered_chunk(server, s3, bucket, mode):
    status, body = streaming_put(server, bucket, "tampered", CHUNKS, mode, tamper=_flip_byte_in_second_chunk)
    assert status == 403, body[:500]
    assert b"<Code>SignatureDoesNotMatch</Code>" in body
    assert "tampered" not in keys_of(s3, bucket)


def test_aws_chunked_wrong_trailer_checksum(server, s3, bucket):
    status, body = streaming_put(server, bucket, "badcrc", CHUNKS, "unsigned-trailer", trailer_crc=crc32_b64(b"x"))
    assert status == 400, body[:500]
    assert b"<Code>BadDigest</Code>" in body, body[:500]
    assert "badcrc" not in keys_of(s3, bucket)


def test_aws_chunked_bad_trailer_signature(server, s3, bucket):
    def tamper(body: bytes) -> bytes:
        return re.sub(rb"x-amz-trailer-signature:([0-9a-f])", lambda m: b"x-amz-trailer-signature:"
                      + (b"0" if m.group(1) != b"0" else b"1"), body)

    status, body = streaming_put(server, bucket, "badtrailersig", CHUNKS, "signed-trailer", tamper=tamper)
    assert status == 403, body[:500]
    assert b"<Code>SignatureDoesNotMatch</Code>" in body
    assert "badtrailersig" not in keys_of(s3, bucket)


def test_aws_chunked_decoded_length_mismatch(server, s3, bucket):
    status, body = streaming_put(server, bucket, "badlen", CHUNKS, "signed", decoded_length=len(DATA) + 1)
    assert status == 400, body[:500]
    assert b"<Error>" in body
    assert "badlen" not in keys_of(s3, bucket)


def test_checksum_header_mismatch(s3, bucket):
    # boto3 sends x-amz-checksum-crc32 itself; a wrong value must be refused.
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="crc", Body=b"hello", ChecksumCRC32=crc32_b64(b"other"))
    assert ei.value.response["Error"]["Code"] == "BadDigest"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "crc" not in keys_of(s3, bucket)
    s3.put_object(Bucket=bucket, Key="crc", Body=b"hello", ChecksumCRC32=crc32_b64(b"hello"))
    assert s3.get_object(Bucket=bucket, Key="crc")["Body"].read() == b"hello"


@pytest.mark.parametrize("mode", ["signed", "unsigned-trailer"])
def test_a_checksum_header_is_checked_on_an_aws_chunked_body_too(server, s3, bucket, mode):
    """An SDK that signs chunks (or sends a trailer) may still give a checksum as a header; S3
    validates a supplied checksum and answers BadDigest when it differs
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html). It
    was ignored on aws-chunked bodies (a conformance sweep)."""
    wrong = {"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(b"other").digest()).decode()}
    status, body = streaming_put(server, bucket, "hdr", CHUNKS, mode, extra_headers=wrong)
    assert status == 400 and b"<Code>BadDigest</Code>" in body, body[:500]
    assert "hdr" not in keys_of(s3, bucket)
    right = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    status, body = streaming_put(server, bucket, "hdr", CHUNKS, mode, extra_headers={"x-amz-checksum-sha256": right})
    assert status == 200, body[:500]
    got = s3.head_object(Bucket=bucket, Key="hdr", ChecksumMode="ENABLED")
    if mode == "signed":
        # The only checksum sent is the header's: it is the one kept, as S3 keeps the client's.
        assert got["ChecksumSHA256"] == right, got


def test_checksum_headers_must_be_one_and_match_the_sdk_algorithm(server, s3, bucket):
    """"Expecting a single x-amz-checksum- header"; and an x-amz-sdk-checksum-algorithm needs
    its checksum as a header or a trailer, else 400
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html)."""
    body = b"hello"
    crc = crc32_b64(body)
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    cases = [
        ({"x-amz-checksum-crc32": crc, "x-amz-checksum-sha256": sha}, "single x-amz-checksum"),
        ({"x-amz-sdk-checksum-algorithm": "SHA256", "x-amz-checksum-crc32": crc}, "names SHA256"),
        ({"x-amz-sdk-checksum-algorithm": "SHA256"}, "no x-amz-checksum-sha256"),
        ({"x-amz-sdk-checksum-algorithm": "MD5", "x-amz-checksum-crc32": crc}, "is invalid"),
    ]
    for headers, says in cases:
        resp = signed_request(server, "PUT", f"/{bucket}/many", body=body, headers=headers)
        data = resp.body
        assert resp.status == 400 and b"<Code>InvalidRequest</Code>" in data and says.encode() in data, (headers, data)
    assert "many" not in keys_of(s3, bucket)
    resp = signed_request(server, "PUT", f"/{bucket}/many", body=body,
                          headers={"x-amz-sdk-checksum-algorithm": "crc32", "x-amz-checksum-crc32": crc})
    assert resp.status == 200, resp.body


def crc64nvme_b64(data: bytes) -> str:
    """CRC-64/NVME as the AWS SDKs compute it (reflected, polynomial 0xAD93D23594C93659, all-ones
    init and xorout), big-endian, base64. Bitwise: for the test's few bytes only."""
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
    return base64.b64encode((crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")).decode()


def test_crc64nvme_checksum_header_is_checked(s3, bucket):
    """x-amz-checksum-crc64nvme, the SDKs' full-object checksum, is checked against the body like
    the others (it was accepted unchecked before)."""
    assert crc64nvme_b64(b"123456789") == "rosUhgp5mIg="  # the algorithm's check value
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="crc64", Body=b"hello", ChecksumCRC64NVME=crc64nvme_b64(b"other"))
    assert ei.value.response["Error"]["Code"] == "BadDigest"
    assert "crc64" not in keys_of(s3, bucket)
    s3.put_object(Bucket=bucket, Key="crc64", Body=b"hello", ChecksumCRC64NVME=crc64nvme_b64(b"hello"))
    assert s3.get_object(Bucket=bucket, Key="crc64")["Body"].read() == b"hello"


# ---------------------------------------------------------------- memory and crashes


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _pattern(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest() * (1024 * 1024 // 32)  # 1 MiB


def test_large_body_streams_with_bounded_memory(fresh_server_factory):
    """A 1 GiB PUT and GET keep the server's peak RSS under 100 MiB (issue 2, item 5)."""
    kp = fresh_server_factory()
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="big")
    size_mib = 1024
    path = object_path("big", "1gib")
    headers = sign("PUT", f"{kp.endpoint}{path}", ak, sk,
                   {"Host": f"127.0.0.1:{kp.port}", "Content-Length": str(size_mib * 1024 * 1024)},
                   unsigned_payload=True)
    md5 = hashlib.md5()
    with socket.create_connection(("127.0.0.1", kp.port), timeout=120) as sock:
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        for i in range(size_mib):
            block = _pattern(i % 16)
            md5.update(block)
            sock.sendall(block)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert kp.proc is not None
    after_put = vm_hwm_kib(kp.proc.pid)

    got = s3.get_object(Bucket="big", Key="1gib")
    assert got["ContentLength"] == size_mib * 1024 * 1024
    check = hashlib.md5()
    for block in iter(lambda: got["Body"].read(1024 * 1024), b""):
        check.update(block)
    assert check.hexdigest() == md5.hexdigest()
    after_get = vm_hwm_kib(kp.proc.pid)
    print(f"peak RSS after PUT {after_put} KiB, after GET {after_get} KiB")
    assert after_put < 100 * 1024, f"peak RSS {after_put} KiB after a 1 GiB PUT"
    assert after_get < 100 * 1024, f"peak RSS {after_get} KiB after a 1 GiB GET"
    # Do not keep a 1 GiB object in pytest's retained temp dirs.
    assert kp.stop() == 0
    shutil.rmtree(kp.data_dir)


def du_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_kill9_during_put_leaves_nothing(fresh_server_factory, tmp_path):
    base = tmp_path / "crash"
    kp = fresh_server_factory(base)
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="crash")
    s3.put_object(Bucket="crash", Key="victim", Body=b"old version")
    baseline = du_bytes(kp.data_dir)

    path = object_path("crash", "victim")
    total = 64 * 1024 * 1024
    headers = sign("PUT", f"{kp.endpoint}{path}", ak, sk,
                   {"Host": f"127.0.0.1:{kp.port}", "Content-Length": str(total)}, unsigned_payload=True)
    sock = socket.create_connection(("127.0.0.1", kp.port), timeout=60)
    try:
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        for i in range(32):
            sock.sendall(_pattern(i))
        time.sleep(0.5)
        assert kp.proc is not None
        kp.proc.send_signal(signal.SIGKILL)
        kp.proc.wait(timeout=10)
    finally:
        sock.close()

    kp2 = fresh_server_factory(base)
    s3b = make_client(kp2.endpoint, ak, sk)
    assert s3b.get_object(Bucket="crash", Key="victim")["Body"].read() == b"old version"
    assert keys_of(s3b, "crash") == ["victim"]
    leftover = du_bytes(kp2.data_dir) - baseline
    assert leftover < 4 * 1024 * 1024, f"{leftover} bytes of a crashed upload are still in the data dir"


def test_kill9_during_part_upload(fresh_server_factory, tmp_path):
    base = tmp_path / "crashmpu"
    kp = fresh_server_factory(base)
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="crash")
    uid = s3.create_multipart_upload(Bucket="crash", Key="mp")["UploadId"]
    part1 = os.urandom(5 * 1024 * 1024)
    e1 = s3.upload_part(Bucket="crash", Key="mp", UploadId=uid, PartNumber=1, Body=part1)["ETag"]

    path = object_path("crash", "mp")
    query = f"partNumber=2&uploadId={uid}"
    total = 32 * 1024 * 1024
    headers = sign("PUT", f"{kp.endpoint}{path}?{query}", ak, sk,
                   {"Host": f"127.0.0.1:{kp.port}", "Content-Length": str(total)}, unsigned_payload=True)
    sock = socket.create_connection(("127.0.0.1", kp.port), timeout=60)
    try:
        head = f"PUT {path}?{query} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        for i in range(16):
            sock.sendall(_pattern(i))
        time.sleep(0.5)
        assert kp.proc is not None
        kp.proc.send_signal(signal.SIGKILL)
        kp.proc.wait(timeout=10)
    finally:
        sock.close()

    kp2 = fresh_server_factory(base)
    s3b = make_client(kp2.endpoint, ak, sk)
    parts = s3b.list_parts(Bucket="crash", Key="mp", UploadId=uid).get("Parts", [])
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, e1, len(part1))]
    done = s3b.complete_multipart_upload(
        Bucket="crash", Key="mp", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]}
    )
    assert done["ETag"].endswith('-1"')
    assert s3b.get_object(Bucket="crash", Key="mp")["Body"].read() == part1


def test_kill9_during_complete_multipart(fresh_server_factory, tmp_path):
    """kill -9 while CompleteMultipartUpload assembles: after restart the object is either whole
    (with the multipart ETag) or absent with the upload still there; never partial."""
    base = tmp_path / "crashcomplete"
    kp = fresh_server_factory(base)
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk)
    s3.create_bucket(Bucket="crash")
    parts = [os.urandom(24 * 1024 * 1024) for _ in range(3)]
    uid = s3.create_multipart_upload(Bucket="crash", Key="big")["UploadId"]
    etags = [s3.upload_part(Bucket="crash", Key="big", UploadId=uid, PartNumber=n, Body=p)["ETag"]
             for n, p in enumerate(parts, start=1)]
    body = ("<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, start=1)
    ) + "</CompleteMultipartUpload>").encode()
    path = object_path("crash", "big")
    query = f"uploadId={uid}"
    headers = sign("POST", f"{kp.endpoint}{path}?{query}", ak, sk,
                   {"Host": f"127.0.0.1:{kp.port}", "Content-Length": str(len(body))}, body)
    head = f"POST {path}?{query} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", kp.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        time.sleep(0.05)
        assert kp.proc is not None
        kp.proc.send_signal(signal.SIGKILL)
        kp.proc.wait(timeout=10)

    kp2 = fresh_server_factory(base)
    s3b = make_client(kp2.endpoint, ak, sk)
    print("completed before the kill:", "big" in keys_of(s3b, "crash"))
    if "big" in keys_of(s3b, "crash"):
        got = s3b.get_object(Bucket="crash", Key="big")
        assert got["ETag"] == multipart_etag(parts)
        assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(b"".join(parts)).digest()
    else:
        listed = s3b.list_parts(Bucket="crash", Key="big", UploadId=uid)["Parts"]
        assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(n, e) for n, e in enumerate(etags, start=1)]
        done = s3b.complete_multipart_upload(
            Bucket="crash", Key="big", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
        )
        assert done["ETag"] == multipart_etag(parts)
        assert s3b.head_object(Bucket="crash", Key="big")["ContentLength"] == sum(len(p) for p in parts)
