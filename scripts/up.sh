#!/usr/bin/env bash
# Builds skiff and brings up a one-node cluster on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bins
exec ./target/release/skiff up "$@"
