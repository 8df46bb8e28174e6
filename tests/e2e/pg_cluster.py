"""A private PostgreSQL cluster for the e2e tests (issue 14): `initdb` into a temporary
directory and `postgres` on a free loopback port, as the `postgres` user when the suite runs as
root (PostgreSQL refuses root). Stopped by the postmaster's PID.

PostgreSQL's server binaries come from KEYHOLE_PG_BINDIR, Debian's /usr/lib/postgresql/*/bin or
the PATH; when none is found and the suite runs as root, Debian's `postgresql` package is
installed with apt-get. Otherwise the test fails, saying what is missing: it never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from e2e_helpers import free_port


def bindir() -> Path | None:
    if os.environ.get("KEYHOLE_PG_BINDIR"):
        return Path(os.environ["KEYHOLE_PG_BINDIR"])
    debian = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1]
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "postgres").exists():
        return Path(initdb).parent
    return None


def apt_install(package: str, found) -> None:
    """Installs Debian's `package` with apt-get (as root), failing the test with apt's output
    when that is not possible; `found()` says whether it is there already."""
    if found():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(
            f"`{package}` is not installed and cannot be installed here (not root, or no apt-get): "
            f"install Debian's `{package}` package",
            pytrace=False,
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
        if r.returncode != 0:
            pytest.fail(f"cannot install {package} ({' '.join(cmd)}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}", pytrace=False)
    if not found():
        pytest.fail(f"apt-get installed `{package}` but it is still not found", pytrace=False)


def install_postgres() -> Path:
    if bindir() is None and not os.environ.get("KEYHOLE_PG_BINDIR"):
        apt_install("postgresql", lambda: bindir() is not None)
    found = bindir()
    if not found:
        pytest.fail(
            "PostgreSQL's server binaries (initdb, postgres) are not installed: install Debian's "
            "`postgresql` package or set KEYHOLE_PG_BINDIR",
            pytrace=False,
        )
    return found


def as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


class PgCluster:
    """One running cluster. `settings` are extra `-c NAME=VALUE` server settings; `hba` replaces
    pg_hba.conf; `files` (name -> bytes) are written into the cluster's directory, owned by the
    server's user and private (certificates and keys)."""

    def __init__(self, settings: list[str] | None = None, hba: str | None = None,
                 files: dict[str, bytes] | None = None, listen: str = "127.0.0.1"):
        self.bindir = install_postgres()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres" if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0 else "nobody"
        self.base = Path(tempfile.mkdtemp(prefix="keyhole-pg-e2e-"))
        if self.user:
            self._chown(self.base)
        self.data = self.base / "data"
        self.port = free_port()
        self.listen = listen
        self.settings = list(settings or [])
        self.server: subprocess.Popen | None = None
        self.pid: int | None = None
        r = subprocess.run(
            self.as_user([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "keyhole", "--auth=trust",
                          "-E", "UTF8", "--no-sync"]),
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
        )
        if r.returncode != 0:
            pytest.fail(f"initdb failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
        for name, content in (files or {}).items():
            path = self.base / name
            path.write_bytes(content)
            path.chmod(0o600)
            if self.user:
                self._chown(path)
        if hba is not None:
            (self.data / "pg_hba.conf").write_text(hba)
        self.log = open(self.base / "postgres.log", "ab")
        self.start()
        self.sql("CREATE DATABASE keyhole", db="postgres")

    def _chown(self, path: Path) -> None:
        shutil.chown(path, user=self.user, group=self.user if self.user == "postgres" else "nogroup")

    def as_user(self, argv: list[str]) -> list[str]:
        return as_user(self.user, argv)

    def url(self, host: str = "127.0.0.1", db: str = "keyhole", user: str = "keyhole", query: str = "") -> str:
        return f"postgres://{user}@{host}:{self.port}/{db}" + (f"?{query}" if query else "")

    def sql(self, statement: str, db: str = "keyhole") -> str:
        """Runs `statement` with psql over the cluster's Unix socket; its output, unaligned."""
        r = subprocess.run(
            self.as_user([str(self.bindir / "psql"), "-h", str(self.base), "-p", str(self.port), "-U", "keyhole",
                          "-d", db, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement]),
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
        )
        assert r.returncode == 0, f"psql {statement!r}: {r.stderr}"
        return r.stdout.strip()

    def start(self) -> None:
        """Starts the cluster on its port and data directory and waits until it is ready."""
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.base),
                "-c", f"listen_addresses={self.listen}", "-c", "fsync=off"]
        for s in self.settings:
            argv += ["-c", s]
        self.server = subprocess.Popen(self.as_user(argv), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.wait_ready()

    def wait_ready(self) -> None:
        """Waits for the cluster to accept connections; records the postmaster's PID."""
        deadline = time.monotonic() + 30
        while True:
            ok = subprocess.run(
                self.as_user([str(self.bindir / "pg_isready"), "-h", str(self.base), "-p", str(self.port), "-U", "keyhole"]),
                capture_output=True,
            ).returncode == 0
            if ok:
                break
            if self.server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"postgres did not start (exit {self.server.poll()}):\n{self.log_tail()}", pytrace=False)
            time.sleep(0.1)
        # The postmaster's own PID (the child of runuser when run as another user).
        self.pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def log_tail(self) -> str:
        return (self.base / "postgres.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Fast shutdown by the postmaster's PID: every session ends, new connections are refused."""
        pid, server = self.pid, self.server
        if pid is not None:
            os.kill(pid, signal.SIGINT)
            self.pid = None
        if server is None:
            return
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            server.kill()
            server.wait()

    def destroy(self) -> None:
        self.stop()
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)
