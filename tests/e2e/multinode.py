"""What the multi-node tests (test_postgres.py, test_nodes.py) share besides the PostgreSQL
cluster (pg_cluster.py): boto3 clients that try once, "in force within a second" polling,
/healthz, and a TCP relay that cuts one node off from the database."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import REGION

# A change made on one node is in force on every other within this (issue 14).
PROPAGATION_S = 1.0


def client(service: str, endpoint: str, ak: str, sk: str, token: str | None = None):
    """A boto3 client that tries once (a refusal is an answer here, not something to retry)."""
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=ak, aws_secret_access_key=sk, aws_session_token=token,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def http_status(e: ClientError) -> int:
    return e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


def within(what: str, check, limit: float = PROPAGATION_S) -> float:
    """Polls `check` (True once the change took effect) and returns how long it took; fails past
    `limit` seconds."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            pytest.fail(f"{what}: not in effect on the other node within {limit}s", pytrace=False)
        time.sleep(0.02)


def refused(call, codes: set[str]) -> bool:
    """True when `call` is refused with one of `codes` (any other refusal fails the test)."""
    try:
        call()
    except ClientError as e:
        assert error_code(e) in codes, e.response
        return True
    return False


def works(call) -> bool:
    try:
        call()
        return True
    except ClientError:
        return False


def healthz(node) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{node.endpoint}/healthz", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Relay:
    """A TCP relay to PostgreSQL that the test can cut (every connection closed, new ones closed
    as they come) and restore: one node loses the database while the others keep it."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                conn.close()
                continue
            with self.lock:
                self.sockets += [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()
