#!/usr/bin/env bash
# Runs every test: the unit tests, and the end-to-end tests against the whole stack
# (LocalStack with the functions as real processes) deployed from infra/template.yaml.
# From a fresh clone it installs what it needs (infra/local/install.sh, via up.sh).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
source "$REPO/infra/local/stack.sh"

echo "[test] checking formatting and lints (cargo fmt, cargo clippy -D warnings)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Once more without the tests: the Lambda binaries are built without the test doubles.
cargo clippy --workspace --lib --bins --locked -- -D warnings
echo "[test] building the workspace (the function binaries the local stack runs)"
cargo build --workspace --bins --locked
echo "[test] checking that the benchmarks compile (cargo bench -p vulnflow-shared runs them)"
cargo check -p vulnflow-shared --benches --locked
start_local_stack
echo "[test] running the tests"
cargo test --workspace --locked --no-fail-fast
