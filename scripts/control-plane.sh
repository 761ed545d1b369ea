#!/usr/bin/env bash
# Runs this machine's cluster as the systemd unit skiff.service (`skiff up`: the control
# plane and this machine as its first node), waits until the API server is ready, and
# optionally writes a join command for other nodes. Run as root, after scripts/install.sh.
#
#   scripts/control-plane.sh [--advertise-address IP] [--node-ip IP] [--port PORT]
#                            [--data-dir DIR] [--join-file FILE] [--token-ttl TTL]
#                            [--no-wait] [--print]
#
# --advertise-address: the address other nodes reach the API server at (published in
# cluster-info, hence in the join command); also this node's address unless --node-ip.
# --join-file FILE: create a bootstrap token (`skiff token create --ttl TTL`, default 24h)
# and write its `skiff join ...` line to FILE (mode 0600), for scripts/join-node.sh.
# --print: print the unit, install nothing.
set -euo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

advertise="" node_ip="" port=6443 data_dir=/var/lib/skiff join_file="" ttl=24h
wait=true print=false
while [ $# -gt 0 ]; do
  case "$1" in
    --advertise-address) advertise="${2:?}"; shift 2 ;;
    --node-ip) node_ip="${2:?}"; shift 2 ;;
    --port) port="${2:?}"; shift 2 ;;
    --data-dir) data_dir="${2:?}"; shift 2 ;;
    --join-file) join_file="${2:?}"; shift 2 ;;
    --token-ttl) ttl="${2:?}"; shift 2 ;;
    --no-wait) wait=false; shift ;;
    --print) print=true; shift ;;
    -h|--help) usage ;;
    *) echo "$0: unknown argument $1" >&2; usage ;;
  esac
done
if [ -n "$join_file" ] && ! "$wait"; then
  echo "$0: --join-file needs the API server, so it cannot go with --no-wait" >&2
  exit 2
fi

skiff_bin="${SKIFF_BIN:-/usr/local/bin/skiff}"
args=(up --data-dir "$data_dir" --port "$port")
[ -n "$advertise" ] && args+=(--advertise-address "$advertise")
[ -n "$node_ip" ] && args+=(--node-ip "$node_ip")

unit_file=/etc/systemd/system/skiff.service
# KillMode=process and Delegate=yes as containerd.service has them: stopping the unit stops
# skiff (which stops its containerd), while the runc shims, and so the pods, keep running.
unit_text="[Unit]
Description=skiff (control plane and this machine's node)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$skiff_bin ${args[*]}
Restart=always
RestartSec=5
KillMode=process
Delegate=yes
LimitNOFILE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target"

if "$print"; then
  printf '# %s\n%s\n' "$unit_file" "$unit_text"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "$0: run as root (it writes $unit_file)" >&2
  exit 1
fi
# Run again with the same settings, the running cluster is left alone.
if [ "$(cat "$unit_file" 2>/dev/null)" != "$unit_text" ]; then
  printf '%s\n' "$unit_text" >"$unit_file"
  systemctl daemon-reload
  systemctl enable skiff.service
  systemctl restart skiff.service
else
  systemctl enable --now skiff.service
fi

if ! "$wait"; then
  exit 0
fi
# /readyz answers anonymous requests; the CA is not needed to know it is up.
ready=false
for _ in $(seq 1 300); do
  if curl -ksf --max-time 2 "https://127.0.0.1:$port/readyz" >/dev/null &&
    [ -s "$data_dir/admin.kubeconfig" ]; then
    ready=true
    break
  fi
  sleep 1
done
if ! "$ready"; then
  echo "$0: the API server did not get ready; see: journalctl -u skiff.service" >&2
  journalctl -u skiff.service -n 30 --no-pager >&2 || true
  exit 1
fi
echo "skiff.service is running: kubeconfig $data_dir/admin.kubeconfig"

if [ -n "$join_file" ]; then
  out="$("$skiff_bin" token create --data-dir "$data_dir" --ttl "$ttl" \
    --description "written to $join_file by scripts/control-plane.sh")"
  line="$(printf '%s\n' "$out" | grep -m1 '^skiff join ')"
  install -d "$(dirname "$join_file")"
  (umask 077 && printf '%s\n' "$line" >"$join_file")
  echo "join command (valid for $ttl) written to $join_file"
fi
