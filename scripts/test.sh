#!/usr/bin/env bash
# Runs every check and test skiff has: formatting, lints, unit, kernel and kubectl suites.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end suites run the workspace's binaries (skiff, skiff-agent, the CNI plugins).
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
