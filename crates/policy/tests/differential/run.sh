#!/bin/sh
# Differential test against @cloud-copilot/iam-simulate (npm), used only as an external oracle:
# installed here into a directory outside git, none of its code or data copied.
# Usage: crates/policy/tests/differential/run.sh [CASES]   (default 2000; seed via DIFF_SEED)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
oracle_dir=${KEYHOLE_ORACLE_DIR:-/work/target-policy-oracle}
mkdir -p "$oracle_dir"
if [ ! -d "$oracle_dir/node_modules/@cloud-copilot/iam-simulate" ]; then
  npm install --prefix "$oracle_dir" --no-audit --no-fund --silent @cloud-copilot/iam-simulate@0.1.173
fi
cp "$here/oracle.mjs" "$oracle_dir/oracle.mjs"
KEYHOLE_ORACLE_DIR=$oracle_dir DIFF_CASES=${1:-2000} \
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-policy} \
  cargo test -p keyhole-policy --test differential -- --ignored --nocapture --test-threads 1
