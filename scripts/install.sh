#!/usr/bin/env bash
# Installs skiff on a fresh Debian 12 machine (run as root): the Debian packages it needs,
# Rust and kubectl when they are missing, a release build, and the binaries in
# $PREFIX/bin (default /usr/local/bin).
#
# Rust comes from rustup and kubectl from dl.k8s.io (checked against its published
# SHA-256): these two are downloaded from the network when they are not already installed.
# CARGO_TARGET_DIR is honoured (the Vagrant VMs build outside the synced source tree).
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="${PREFIX:-/usr/local}"
KUBECTL_VERSION="${KUBECTL_VERSION:-v1.32.4}"

if [ "$(id -u)" -ne 0 ]; then
  echo "$0: run as root (it installs packages and writes to $PREFIX/bin)" >&2
  exit 1
fi

scripts/install-deps.sh --for-install

# Rust: the one on PATH, else rustup's in ~/.cargo, else a new rustup install.
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck source=/dev/null
  . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null; then
  echo "installing Rust with rustup (from https://sh.rustup.rs)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --default-toolchain stable --no-modify-path
  # shellcheck source=/dev/null
  . "$HOME/.cargo/env"
fi

if ! command -v kubectl >/dev/null; then
  arch="$(dpkg --print-architecture)"
  url="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}/kubectl"
  echo "installing kubectl ${KUBECTL_VERSION} (from $url)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  curl -fsSL -o "$tmp/kubectl" "$url"
  echo "$(curl -fsSL "$url.sha256")  $tmp/kubectl" | sha256sum --check --quiet
  install -m 0755 "$tmp/kubectl" "$PREFIX/bin/kubectl"
fi

cargo build --release --bins
target="${CARGO_TARGET_DIR:-target}/release"
# Every binary of the workspace: skiff, skiff-controlplane, skiff-agent, skiff-proxy and
# the CNI plugins (the agent finds skiff-bridge and skiff-ipam beside itself).
bins=()
for f in "$target"/*; do
  if [ -f "$f" ] && [ -x "$f" ] && [[ "$(basename "$f")" == skiff* ]]; then
    bins+=("$f")
  fi
done
if [ "${#bins[@]}" -eq 0 ]; then
  echo "$0: no skiff binaries in $target" >&2
  exit 1
fi
install -d "$PREFIX/bin"
install -m 0755 "${bins[@]}" "$PREFIX/bin/"
echo "installed in $PREFIX/bin: $(for b in "${bins[@]}"; do basename "$b"; done | tr '\n' ' ')"
