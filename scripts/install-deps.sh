#!/usr/bin/env bash
# Installs what building and testing skiff needs on a fresh Debian 12 machine.
# Idempotent: packages already present are left alone.
#
# --for-install: only what building and running skiff needs (scripts/install.sh), without
# the tools its own tests use, and without the check for cargo and kubectl, which
# install.sh provides itself.
set -euo pipefail

for_install=false
case "${1:-}" in
  --for-install) for_install=true ;;
  "") ;;
  *) echo "usage: $0 [--for-install]" >&2; exit 2 ;;
esac

packages=(
  build-essential pkg-config curl ca-certificates
  protobuf-compiler libprotobuf-dev   # containerd-client and etcd-client generate gRPC code (with the well-known types)
  etcd-server         # the distributed store backend and its tests
  iproute2 nftables iptables   # the kernel suites create netns, links and rules
  containernetworking-plugins  # the reference CNI plugins skiff's are compared with
  containerd runc              # the agent runs pods through containerd
  busybox-static               # test images are built from it, locally
  docker-registry              # a local OCI registry for the agent's pull tests
  bsdutils                     # `script`: a terminal for the `kubectl exec -it` test
  bind9-dnsutils               # dig, the resolver client the cluster DNS tests ask with
  conntrack                    # the proxy deletes stale UDP conntrack entries with it
  ipset                        # the IPVS mode's companion rules match ipsets
  dnsmasq-base                 # the reference resolver `skiff bench proxy` compares cluster DNS with (binary only, no system service)
)

test_tools=(
  vagrant                      # `vagrant validate` checks vagrant/Vagrantfile
  shellcheck                   # lints scripts/*.sh
)
if ! "$for_install"; then
  packages+=("${test_tools[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts etcd as a service on install; skiff starts its own when it needs one.
if systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi

if "$for_install"; then
  exit 0
fi
if ! command -v kubectl >/dev/null; then
  echo "kubectl is not on PATH: install kubectl 1.32 (the tests drive the real kubectl)" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is not on PATH: install Rust (rustup) first" >&2
  exit 1
fi
