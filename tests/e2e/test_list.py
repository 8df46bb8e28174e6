"""ListObjects (V1) and ListObjectsV2: prefix, delimiter, pagination, encoding-type, fetch-owner."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_plus

import pytest

from e2e_helpers import S3_NS, md5_etag, signed_request

KEYS = ["a.txt", "dir1/a", "dir1/b", "dir1/sub/c", "dir2/d", "e/f/g", "z"]


@pytest.fixture
def filled(s3, bucket):
    for k in KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def v2_keys(resp) -> list[str]:
    return [o["Key"] for o in resp.get("Contents", [])]


def prefixes(resp) -> list[str]:
    return [p["Prefix"] for p in resp.get("CommonPrefixes", [])]


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 lists objects and parts without their ETags")
def test_list_v2_all(s3, filled):
    resp = s3.list_objects_v2(Bucket=filled)
    assert v2_keys(resp) == KEYS
    assert resp["KeyCount"] == len(KEYS)
    assert resp["IsTruncated"] is False
    first = resp["Contents"][0]
    assert first["Size"] == len(b"a.txt")
    assert first["ETag"] == md5_etag(b"a.txt")
    assert first["StorageClass"] == "STANDARD"
    assert first["LastModified"] is not None
    assert "Owner" not in first, "V2 lists owners only with fetch-owner=true"


def test_list_empty_bucket(s3, bucket):
    resp = s3.list_objects_v2(Bucket=bucket)
    assert resp["KeyCount"] == 0
    assert "Contents" not in resp
    assert resp["IsTruncated"] is False


def test_prefix(s3, filled):
    assert v2_keys(s3.list_objects_v2(Bucket=filled, Prefix="dir1/")) == ["dir1/a", "dir1/b", "dir1/sub/c"]
    assert v2_keys(s3.list_objects_v2(Bucket=filled, Prefix="dir")) == ["dir1/a", "dir1/b", "dir1/sub/c", "dir2/d"]
    assert v2_keys(s3.list_objects_v2(Bucket=filled, Prefix="nothing")) == []


def test_delimiter_common_prefixes(s3, filled):
    resp = s3.list_objects_v2(Bucket=filled, Delimiter="/")
    assert v2_keys(resp) == ["a.txt", "z"]
    assert prefixes(resp) == ["dir1/", "dir2/", "e/"]
    assert resp["KeyCount"] == 5, "KeyCount counts keys and common prefixes"
    resp = s3.list_objects_v2(Bucket=filled, Prefix="dir1/", Delimiter="/")
    assert v2_keys(resp) == ["dir1/a", "dir1/b"]
    assert prefixes(resp) == ["dir1/sub/"]
    resp = s3.list_objects_v2(Bucket=filled, Delimiter="1")
    assert prefixes(resp) == ["dir1"]
    assert v2_keys(resp) == ["a.txt", "dir2/d", "e/f/g", "z"]


def test_v1_delimiter_and_owner(s3, filled):
    resp = s3.list_objects(Bucket=filled, Delimiter="/")
    assert [o["Key"] for o in resp["Contents"]] == ["a.txt", "z"]
    assert prefixes(resp) == ["dir1/", "dir2/", "e/"]
    assert resp["Contents"][0]["Owner"]["ID"], "V1 always lists the owner"


def paginate_v2(s3, bucket, **kw):
    pages, token = [], None
    while True:
        args = dict(kw)
        if token:
            args["ContinuationToken"] = token
        resp = s3.list_objects_v2(Bucket=bucket, **args)
        pages.append(resp)
        if not resp["IsTruncated"]:
            return pages
        token = resp["NextContinuationToken"]
        assert token
        assert len(pages) < 100, "pagination does not terminate"


def test_v2_max_keys_pagination(s3, filled):
    pages = paginate_v2(s3, filled, MaxKeys=2)
    assert [v2_keys(p) for p in pages] == [KEYS[0:2], KEYS[2:4], KEYS[4:6], KEYS[6:7]]
    for p in pages:
        assert p["MaxKeys"] == 2
        assert p["KeyCount"] == len(v2_keys(p))
    assert "NextContinuationToken" not in pages[-1]


def test_v2_pagination_with_delimiter(s3, filled):
    pages = paginate_v2(s3, filled, MaxKeys=2, Delimiter="/")
    entries = []
    for p in pages:
        assert len(v2_keys(p)) + len(prefixes(p)) <= 2
        entries += v2_keys(p) + prefixes(p)
    assert sorted(entries) == ["a.txt", "dir1/", "dir2/", "e/", "z"]
    assert len(entries) == 5, "no entry is repeated across pages"


def test_v2_start_after(s3, filled):
    assert v2_keys(s3.list_objects_v2(Bucket=filled, StartAfter="dir1/b")) == ["dir1/sub/c", "dir2/d", "e/f/g", "z"]
    assert v2_keys(s3.list_objects_v2(Bucket=filled, StartAfter="dir1/bb")) == ["dir1/sub/c", "dir2/d", "e/f/g", "z"]
    assert v2_keys(s3.list_objects_v2(Bucket=filled, StartAfter="zz")) == []
    resp = s3.list_objects_v2(Bucket=filled, StartAfter="dir1/a", MaxKeys=1)
    assert v2_keys(resp) == ["dir1/b"]
    assert resp["StartAfter"] == "dir1/a"


def test_v1_marker_pagination(s3, filled):
    seen, marker = [], ""
    for _ in range(10):
        resp = s3.list_objects(Bucket=filled, MaxKeys=3, Marker=marker)
        keys = [o["Key"] for o in resp.get("Contents", [])]
        assert len(keys) <= 3
        seen += keys
        if not resp["IsTruncated"]:
            break
        marker = keys[-1]
    assert seen == KEYS
    assert [o["Key"] for o in s3.list_objects(Bucket=filled, Marker="dir2/d")["Contents"]] == ["e/f/g", "z"]


def test_v1_next_marker_with_delimiter(s3, filled):
    resp = s3.list_objects(Bucket=filled, MaxKeys=2, Delimiter="/")
    assert resp["IsTruncated"] is True
    # With a delimiter S3 returns NextMarker (the last key or common prefix of the page).
    assert resp["NextMarker"] == "dir1/"
    resp2 = s3.list_objects(Bucket=filled, MaxKeys=10, Delimiter="/", Marker=resp["NextMarker"])
    assert prefixes(resp2) == ["dir2/", "e/"]
    assert [o["Key"] for o in resp2["Contents"]] == ["z"]


def test_fetch_owner(server, s3, filled):
    resp = s3.list_objects_v2(Bucket=filled, FetchOwner=True)
    owner = resp["Contents"][0]["Owner"]
    assert owner["ID"]
    listed_owner = s3.list_buckets()["Owner"]["ID"]
    assert owner["ID"] == listed_owner


ODD_KEYS = [
    "plain",
    "sp ace",
    "plus+sign",
    "pct%41",
    "amp&and<lt>",
    "ünïcødé/日本",
    "tab\tkey",
    "ctrl\x01char",
    "q?uery#frag",
]


def test_encoding_type_url(s3, bucket):
    for k in ODD_KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    resp = s3.list_objects_v2(Bucket=bucket, EncodingType="url")
    assert resp["EncodingType"] == "url"
    raw = v2_keys(resp)
    for r in raw:
        assert re.fullmatch(r"[A-Za-z0-9%+._~/*!'()-]*", r), f"key not URL-encoded in listing: {r!r}"
    assert sorted(unquote_plus(r) for r in raw) == sorted(ODD_KEYS)
    # boto3's default (it sets encoding-type=url itself and decodes) gives back the exact keys.
    assert sorted(v2_keys(s3.list_objects_v2(Bucket=bucket))) == sorted(ODD_KEYS)
    assert sorted(o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]) == sorted(ODD_KEYS)


def test_encoding_type_url_prefix_and_delimiter(s3, bucket):
    for k in ["d ir/a b", "d ir/sub dir/c", "other"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    resp = s3.list_objects_v2(Bucket=bucket, Prefix="d ir/", Delimiter="/", EncodingType="url")
    assert [unquote_plus(k) for k in v2_keys(resp)] == ["d ir/a b"]
    assert [unquote_plus(p) for p in prefixes(resp)] == ["d ir/sub dir/"]
    assert " " not in "".join(v2_keys(resp) + prefixes(resp))
    assert unquote_plus(resp["Prefix"]) == "d ir/"


def test_v1_listing_answers_its_prefix_unencoded(s3, bucket):
    """botocore asks for encoding-type=url on every listing and decodes V2's Prefix but not V1's:
    V1 answers the prefix as given (ceph/s3-tests test_bucket_list_prefix_unreadable)."""
    for k in ["foo/bar", "quux", "a b/c"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    for prefix in ["\n", "a b/", "q+x"]:
        assert s3.list_objects(Bucket=bucket, Prefix=prefix)["Prefix"] == prefix
        assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Prefix"] == prefix
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket, Prefix="a b/")["Contents"]] == ["a b/c"]


def test_raw_xml_listing_escapes_keys(server, s3, bucket):
    key = "amp&and<lt>\"quote'"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    resp = signed_request(server, "GET", f"/{bucket}", query="list-type=2")
    assert resp.status == 200, resp.body[:500]
    root = ET.fromstring(resp.body)
    assert root.tag == f"{S3_NS}ListBucketResult"
    assert [e.text for e in root.iter(f"{S3_NS}Key")] == [key]


def test_default_max_keys_is_1000(s3, bucket):
    keys = [f"many/{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    resp = s3.list_objects_v2(Bucket=bucket)
    assert resp["KeyCount"] == 1000
    assert resp["IsTruncated"] is True
    rest = s3.list_objects_v2(Bucket=bucket, ContinuationToken=resp["NextContinuationToken"])
    assert v2_keys(resp) + v2_keys(rest) == keys
    resp = s3.list_objects_v2(Bucket=bucket, MaxKeys=5000)
    assert resp["KeyCount"] == 1000, "max-keys is capped at 1000"


@pytest.mark.parametrize(
    "query",
    [
        "list-type=2&max-keys=-1",
        "list-type=2&max-keys=abc",
        "list-type=2&continuation-token=not-a-token",
        "list-type=2&encoding-type=bogus",
        "max-keys=-5",
    ],
)
def test_invalid_list_arguments(server, bucket, query):
    from e2e_helpers import assert_s3_error

    resp = signed_request(server, "GET", f"/{bucket}", query=query)
    assert_s3_error(resp, 400, "InvalidArgument")


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 answers a GET of a key that is only a prefix of other keys with 500")
def test_prefix_is_not_an_object(s3, filled):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=filled, Key="dir1/")
    assert ei.value.response["Error"]["Code"] == "NoSuchKey"


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 keeps keys as file names and refuses (500) keys a file name cannot be")
def test_order_is_utf8_binary(s3, bucket):
    keys = ["Z", "a", "é", "\uff5e", "\ufffd", "\U0001f600", "a/b", "a-b", "a.b"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    expected = sorted(keys, key=lambda k: k.encode("utf-8"))
    assert v2_keys(s3.list_objects_v2(Bucket=bucket)) == expected
    pages = paginate_v2(s3, bucket, MaxKeys=2)
    assert [k for p in pages for k in v2_keys(p)] == expected


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not roll keys up at a delimiter of more than one character")
def test_multi_character_delimiter(s3, bucket):
    for k in ["logs--2025--a", "logs--2025--b", "logs--2026--a", "logs-single", "other"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    resp = s3.list_objects_v2(Bucket=bucket, Prefix="logs--", Delimiter="--")
    assert prefixes(resp) == ["logs--2025--", "logs--2026--"]
    assert v2_keys(resp) == []
    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="--")
    assert prefixes(resp) == ["logs--"]
    assert v2_keys(resp) == ["logs-single", "other"]


@pytest.mark.upstream_gap(["s3s-fs"], "s3s-fs 0.14.1 does not implement ListMultipartUploads (NotImplemented)")
@pytest.mark.upstream_gap(["moto"], "moto 5.2.5 ignores delimiter in ListMultipartUploads")
def test_list_multipart_uploads_delimiter_and_pagination(s3, bucket):
    keys = ["a/1", "a/2", "b", "c/x/1"]
    ids = {k: s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys}
    try:
        resp = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
        assert [u["Key"] for u in resp.get("Uploads", [])] == ["b"]
        assert prefixes(resp) == ["a/", "c/"]
        seen, kw = [], {}
        for _ in range(10):
            page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=1, **kw)
            seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
            assert len(page.get("Uploads", [])) <= 1
            if not page["IsTruncated"]:
                break
            kw = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
        assert seen == [(k, ids[k]) for k in keys]
    finally:
        for k, v in ids.items():
            s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=v)


def test_prefix_and_start_after_with_special_characters(s3, bucket):
    keys = ["plus+sign/a", "plus sign/b", "pct%20/c", "ünï/d", "amp&/e"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    for prefix, want in [("plus+", ["plus+sign/a"]), ("plus ", ["plus sign/b"]), ("pct%", ["pct%20/c"]),
                         ("ünï", ["ünï/d"]), ("amp&", ["amp&/e"])]:
        assert v2_keys(s3.list_objects_v2(Bucket=bucket, Prefix=prefix)) == want, prefix
    assert v2_keys(s3.list_objects_v2(Bucket=bucket, StartAfter="plus+sign/a")) == ["ünï/d"]
