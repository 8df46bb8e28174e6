"""Issue 11, items 3 and 4: a private data directory, and startup failures that change nothing.

- The data directory is 0700 and every file in it 0600 whatever the umask (here 000, the widest):
  state.db with its -wal and -shm, object bodies, multipart parts, the store index, master.key,
  root-credentials, the audit trail's files and digest logs, the audit signing key.
- A data directory that other users can read is refused, with the chmod that fixes it, unless
  --allow-shared-data-dir.
- A second `serve` on a busy port creates and changes nothing in the data directory.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
from pathlib import Path

import boto3

from e2e_helpers import KeyholeProcess, free_port, keyhole_bin, make_client


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under `root`: (mode, size, mtime, content hash) by relative path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(root))] = (stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out


def serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    return subprocess.run([str(keyhole_bin()), "serve", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_data_dir_and_every_file_are_private_whatever_the_umask(tmp_path):
    kp = KeyholeProcess(data_dir=tmp_path / "data", port=free_port(), log_dir=tmp_path / "logs", cwd=tmp_path,
                        umask=0o000)
    kp.start()
    try:
        ak, sk = kp.credentials()
        s3 = make_client(kp.endpoint, ak, sk)
        s3.create_bucket(Bucket="private")
        s3.put_object(Bucket="private", Key="secret.txt", Body=b"not for other users")
        # Bodies of at most 64 KiB live in the index (STORAGE.md): this one gets a file.
        s3.put_object(Bucket="private", Key="secret.bin", Body=b"s" * (100 * 1024))
        up = s3.create_multipart_upload(Bucket="private", Key="parts")
        s3.upload_part(Bucket="private", Key="parts", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 1024)
        iam = boto3.session.Session().client("iam", endpoint_url=kp.endpoint, aws_access_key_id=ak,
                                             aws_secret_access_key=sk, region_name="us-east-1")
        iam.create_user(UserName="someone")
        iam.create_access_key(UserName="someone")
        data = kp.data_dir
        names = {str(p.relative_to(data)) for p in data.rglob("*")}
        for expected in ("state.db", "state.db-wal", "state.db-shm", "master.key", "root-credentials",
                         "account.json"):
            assert expected in names, sorted(names)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        wide = []
        for p in [data, *data.rglob("*")]:
            rel = p.relative_to(data)
            mode = stat.S_IMODE(p.stat().st_mode)
            if p.is_dir():
                if mode != 0o700:
                    wide.append(f"{rel}/ {mode:04o}")
            elif mode != 0o600:
                wide.append(f"{rel} {mode:04o}")
        assert any(p.name.startswith("audit-") for p in (data / "audit").iterdir()), "the trail is checked too"
        files = [p for p in data.rglob("*") if p.is_file() and p.relative_to(data).parts[0] == "store"]
        assert len(files) >= 3, "an object body, a part and the index"
        assert not wide, f"created wider than 0700/0600 with umask 000: {wide}"
    finally:
        kp.kill()


def test_a_shared_data_dir_is_refused_with_the_fix(tmp_path):
    kp = KeyholeProcess(data_dir=tmp_path / "data", port=free_port(), log_dir=tmp_path / "logs", cwd=tmp_path)
    kp.start()
    assert kp.stop() == 0
    data = kp.data_dir
    data.chmod(0o755)
    before = tree(data)
    r = serve("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data))
    said = "".join(r.stderr.split())  # the report is wrapped to the terminal width, even in paths
    assert r.returncode != 0
    assert "mode0755" in said and f"chmod700{data}" in said and "--allow-shared-data-dir" in said, r.stderr
    assert tree(data) == before, "a refused start changed the data directory"
    # Sharing it on purpose is allowed (new files are still private).
    kp.extra_args = ["--allow-shared-data-dir"]
    kp.start()
    try:
        ak, sk = kp.credentials()
        make_client(kp.endpoint, ak, sk).create_bucket(Bucket="shared")
    finally:
        assert kp.stop() == 0
    data.chmod(0o700)
    kp.extra_args = []
    kp.start()
    assert kp.stop() == 0


def test_a_second_serve_on_a_busy_port_creates_and_changes_nothing(tmp_path):
    first = KeyholeProcess(data_dir=tmp_path / "data", port=free_port(), log_dir=tmp_path / "logs", cwd=tmp_path)
    first.start()
    assert first.stop() == 0
    before = tree(first.data_dir)
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        # A fresh data directory is not created at all...
        fresh = tmp_path / "fresh" / "data"
        r = serve("--listen", f"127.0.0.1:{port}", "--data-dir", str(fresh))
        assert r.returncode != 0 and str(port) in r.stderr, r.stderr
        assert not (tmp_path / "fresh").exists(), sorted(p.name for p in (tmp_path / "fresh").rglob("*"))
        # ...and an existing one is not touched.
        r = serve("--listen", f"127.0.0.1:{port}", "--data-dir", str(first.data_dir))
        assert r.returncode != 0 and str(port) in r.stderr, r.stderr
    assert tree(first.data_dir) == before
