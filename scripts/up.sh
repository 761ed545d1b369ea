#!/usr/bin/env bash
# Builds and installs skiff (scripts/install.sh) and brings up a one-node cluster on this
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec "${PREFIX:-/usr/local}/bin/skiff" up "$@"
