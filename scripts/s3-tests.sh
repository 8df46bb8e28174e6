#!/usr/bin/env bash
# Runs ceph/s3-tests (the core subset of issue 12) against a fresh keyhole with default settings
# and prints passed/failed per area, the total, and where the failing test names are.
#
#   S3TESTS_REPO=/path/to/s3-tests scripts/s3-tests.sh [PYTEST ARGS...]
#
# S3TESTS_REPO    a checkout or a bare git directory of ceph/s3-tests holding S3TESTS_COMMIT
#                 (required; the suite is never fetched from the network)
# S3TESTS_COMMIT  the suite's commit (default: the pinned one below)
# S3TESTS_CACHE   where the exported suite and its venv live (default: <target dir>/s3-tests,
#                 inside the gitignored target directory)
# S3TESTS_OUT     where this run's files go (default: a new directory under S3TESTS_CACHE)
# KEYHOLE_BIN     the gateway binary; without it `cargo build --release --bin keyhole` is run
#                 and <target dir>/release/keyhole is used
# PYTEST ARGS are added to the suite's pytest command line (e.g. `-k test_bucket_list`).
#
# The gateway runs on a free 127.0.0.1 port with a fresh temporary data directory and no
# options beyond --listen and --data-dir; the users are created through its IAM API with the
# root credentials it writes (scripts/s3_tests.py does that, runs pytest and makes the table).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PINNED=8f0ae7b404a3a2fcf7038bf1e6bf29544fe9b6a3
COMMIT=${S3TESTS_COMMIT:-$PINNED}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${S3TESTS_CACHE:-$TARGET/s3-tests}
: "${S3TESTS_REPO:?set S3TESTS_REPO to a checkout or bare git directory of ceph/s3-tests (commit $PINNED)}"

git -C "$S3TESTS_REPO" cat-file -e "$COMMIT^{commit}" 2>/dev/null || {
    echo "S3TESTS_REPO=$S3TESTS_REPO does not hold commit $COMMIT (git -C DIR fetch it, or point S3TESTS_REPO elsewhere)" >&2
    exit 1
}

# The suite's tree at the commit, exported once (from a checkout or a bare directory alike).
mkdir -p "$CACHE"
SUITE="$CACHE/suite-$COMMIT"
if [ ! -f "$SUITE/pytest.ini" ]; then
    rm -rf "$SUITE.tmp"
    mkdir -p "$SUITE.tmp"
    git -C "$S3TESTS_REPO" archive "$COMMIT" | tar -x -C "$SUITE.tmp"
    rm -rf "$SUITE"
    mv "$SUITE.tmp" "$SUITE"
fi

# The suite's own dependencies in their own venv, plus pytest-timeout so that one hanging test
# cannot stop the run. Reinstalled when the requirements change.
VENV="$CACHE/venv"
STAMP="$(sha256sum "$SUITE/requirements.txt" | cut -d' ' -f1)+pytest-timeout"
if [ "$(cat "$VENV/.keyhole-stamp" 2>/dev/null)" != "$STAMP" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$SUITE/requirements.txt" pytest-timeout
    echo "$STAMP" >"$VENV/.keyhole-stamp"
fi

if [ -n "${KEYHOLE_BIN:-}" ]; then
    BIN=$KEYHOLE_BIN
else
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release --bin keyhole)
    BIN=$TARGET/release/keyhole
fi
[ -x "$BIN" ] || { echo "no keyhole binary at $BIN (set KEYHOLE_BIN)" >&2; exit 1; }

OUT=${S3TESTS_OUT:-$(mktemp -d "$CACHE/run-$(date -u +%Y%m%dT%H%M%SZ)-XXXX")}
mkdir -p "$OUT"
exec "$VENV/bin/python" "$ROOT/scripts/s3_tests.py" --suite "$SUITE" --bin "$BIN" --out "$OUT" \
    --commit "$COMMIT" -- "$@"
