#!/usr/bin/env bash
# keyhole's one test command: installs what the tests need, builds, runs every test.
#   ./scripts/test.sh                 everything
#   ./scripts/test.sh -k multipart    extra arguments go to pytest (the end-to-end suite)
# Works unattended (no stdin, CI=true). Exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv"
REQS="$ROOT/tests/e2e/requirements.txt"
started=$SECONDS

section() { printf '\n==== %s ====\n' "$*"; }

section "python venv ($VENV)"
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || { echo "error: $PY not found; install Python 3.10+ with venv" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
# Reinstall only when the pins changed (the stamp holds a copy of the requirements file).
if ! cmp -s "$REQS" "$VENV/.keyhole-requirements" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$REQS"
    cp "$REQS" "$VENV/.keyhole-requirements"
fi
# s3fs needs an older botocore than boto3's: its own venv, used by the jobs guide's s3fs test.
S3FS_VENV="$ROOT/.venv-s3fs"
S3FS_REQS="$ROOT/tests/e2e/requirements-s3fs.txt"
if [ ! -x "$S3FS_VENV/bin/python" ]; then
    "$PY" -m venv "$S3FS_VENV"
fi
if ! cmp -s "$S3FS_REQS" "$S3FS_VENV/.keyhole-requirements" 2>/dev/null; then
    "$S3FS_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$S3FS_REQS"
    cp "$S3FS_REQS" "$S3FS_VENV/.keyhole-requirements"
fi
export KEYHOLE_S3FS_PYTHON="$S3FS_VENV/bin/python"
"$VENV/bin/aws" --version
"$VENV/bin/python" -c 'import boto3, pytest; print("boto3", boto3.__version__, "pytest", pytest.__version__)'

# PostgreSQL's server binaries for the shared-state tests (Rust and e2e start a private cluster
# of their own on loopback; nothing is started here). Installed from Debian's packages when
# missing; the tests fail, saying so, if they still are.
section "PostgreSQL server binaries"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
    else
        echo "warning: PostgreSQL is not installed and cannot be installed here; its tests will fail" >&2
    fi
fi
ls -d /usr/lib/postgresql/*/bin 2>/dev/null || command -v initdb || true

section "cargo build -p keyhole"
cargo build -p keyhole

# An S3 server no one here wrote, for the upstream tests (keyhole in front of it): s3s-fs from
# crates.io, built once into target/ (outside git) and reused while its version stays.
S3S_FS_VERSION=0.14.1
S3S_FS_ROOT="${CARGO_TARGET_DIR:-$ROOT/target}/s3s-fs"
section "s3s-fs $S3S_FS_VERSION ($S3S_FS_ROOT)"
if ! "$S3S_FS_ROOT/bin/s3s-fs" --version 2>/dev/null | grep -qx "s3s-fs $S3S_FS_VERSION"; then
    cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked \
        --root "$S3S_FS_ROOT" --target-dir "$S3S_FS_ROOT-build"
fi
export KEYHOLE_S3S_FS="$S3S_FS_ROOT/bin/s3s-fs"
"$KEYHOLE_S3S_FS" --version

section "cargo test --workspace"
cargo test --workspace

# The policy engine against an external oracle, @cloud-copilot/iam-simulate from npm (installed
# under target/, outside git; none of its code or data is copied): 2,000 seeded random S3 cases,
# zero unexplained disagreements allowed.
section "policy differential test (2000 cases against iam-simulate)"
command -v npm >/dev/null || { echo "error: npm not found; install Node.js 18+ with npm" >&2; exit 1; }
KEYHOLE_ORACLE_DIR="$ROOT/target/iam-oracle" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" \
    sh crates/policy/tests/differential/run.sh 2000

section "end-to-end tests (pytest tests/e2e $*), after $((SECONDS - started))s of setup, build and Rust tests"
export KEYHOLE_BIN="${KEYHOLE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/keyhole}"
# pytest's summary stays the last line of the output (CI reads the closing line).
exec "$VENV/bin/pytest" -q tests/e2e "$@"
