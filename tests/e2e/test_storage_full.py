"""A full data directory is an honest failure: writes are refused with 507 InsufficientStorage
(not a 500 that SDKs retry), nothing half-written stays, the log names the cause, and writes work
again once space is freed.

The data directory is a small tmpfs, so the test needs root to mount it (CI runs as root)."""

from __future__ import annotations

import os
import shutil
import subprocess

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION


def sdk_client(kp):
    ak, sk = kp.credentials()
    # The SDK's own retry policy (standard mode retries 500, 502, 503, 504): a full disk must not
    # be answered with a status it retries.
    return boto3.session.Session().client(
        "s3", endpoint_url=kp.endpoint, region_name=REGION, aws_access_key_id=ak, aws_secret_access_key=sk,
        config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 3},
                                      s3={"addressing_style": "path"}))


@pytest.fixture
def small_data_dir(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs for the data directory needs root")
    data = tmp_path / "full" / "data"
    data.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(data)], check=True)
    yield tmp_path / "full"
    subprocess.run(["umount", "-l", str(data)], check=False)


def test_a_full_data_directory_refuses_writes_with_507_and_recovers(fresh_server_factory, small_data_dir):
    kp = fresh_server_factory(base=small_data_dir)
    try:
        s3 = sdk_client(kp)
        s3.create_bucket(Bucket="full")
        body = os.urandom(4 << 20)
        stored, refused = [], None
        for i in range(12):
            try:
                s3.put_object(Bucket="full", Key=f"o{i}", Body=body)
                stored.append(f"o{i}")
            except ClientError as e:
                refused = (f"o{i}", e.response)
                break
        assert stored and refused is not None, f"stored {stored} without running out of space"
        key, response = refused
        assert response["Error"]["Code"] == "InsufficientStorage", response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 507, response
        assert response["ResponseMetadata"]["RetryAttempts"] == 0, response
        assert "storage is full" in response["Error"]["Message"], response
        # Nothing of the refused object is visible, and what was stored reads back whole.
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="full").get("Contents", [])]
        assert key not in listed and set(stored) <= set(listed), listed
        assert s3.get_object(Bucket="full", Key=stored[0])["Body"].read() == body
        # Smaller and smaller writes (a file body, then bodies kept in the index) are refused the
        # same way before the disk is full to the last byte: the index keeps room to commit, so
        # a failed write never leaves it refusing every later one (review 37, F1: it did, until
        # a restart).
        for size in (512 << 10, 64 << 10, 4 << 10):
            for i in range(2000):
                try:
                    s3.put_object(Bucket="full", Key=f"s{size}-{i}", Body=os.urandom(size))
                    stored.append(f"s{size}-{i}")
                except ClientError as e:
                    assert e.response["Error"]["Code"] == "InsufficientStorage", e.response
                    break
            else:
                raise AssertionError(f"{size}-byte writes never ran out of space")
        # The operator's log says why.
        log = kp.stderr_text() + kp.stdout_text()
        assert "No space left on device" in log or "kept in reserve" in log, kp.logs()
        # Space freed: writes work again.
        for k in stored[:3]:
            s3.delete_object(Bucket="full", Key=k)
        s3.put_object(Bucket="full", Key="after", Body=b"x" * (1 << 20))
        assert s3.head_object(Bucket="full", Key="after")["ContentLength"] == 1 << 20
        # Something else fills the file system to the last byte: the audit trail cannot record a
        # write, which is refused with 507 too (not a 503 that SDKs retry), reads go on, and
        # writes work again once the space is back.
        filler = small_data_dir / "data" / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (64 << 10))
                    f.flush()
            except OSError:
                pass
        messages = []
        for i in range(200):  # the trail's records fill what its last page had left
            with pytest.raises(ClientError) as e:
                s3.put_object(Bucket="full", Key=f"while-full-{i}", Body=b"y")
            assert e.value.response["Error"]["Code"] == "InsufficientStorage", e.value.response
            assert e.value.response["ResponseMetadata"]["RetryAttempts"] == 0, e.value.response
            messages.append(e.value.response["Error"]["Message"])
            if "audit trail" in messages[-1]:
                break
        assert "audit trail" in messages[-1], messages[-3:]
        assert s3.get_object(Bucket="full", Key="after")["ContentLength"] == 1 << 20
        filler.unlink()
        s3.put_object(Bucket="full", Key="after-filler", Body=b"z")
        assert s3.get_object(Bucket="full", Key="after-filler")["Body"].read() == b"z"
    finally:
        kp.kill()
