#!/usr/bin/env bash
# Joins this machine to a skiff cluster as a node that survives reboots: `skiff join` as the
# systemd unit skiff-node.service. Run as root, after scripts/install.sh.
#
#   scripts/join-node.sh --join-file FILE [options]     # FILE holds `skiff token create`'s
#                                                        # output, or just its join line
#   scripts/join-node.sh --server URL --token T --ca-cert-hash sha256:H [options]
#
# options: --node-ip IP (the address other nodes reach this one at; needed when the default
# route's interface is not that one, as on a VM's NAT link), --node-name NAME (default: the
# hostname), --data-dir DIR (default /var/lib/skiff), --no-wait (do not wait for the node's
# credentials), --print (print the unit and its environment file, install nothing).
#
# The token goes into /etc/skiff/skiff-node.env (mode 0600), not into the unit. Once the node
# has its credentials, restarts reuse them and need no token.
set -euo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

join_file="" server="" token="" hashes=() node_ip="" node_name=""
data_dir=/var/lib/skiff wait=true print=false
while [ $# -gt 0 ]; do
  case "$1" in
    --join-file) join_file="${2:?}"; shift 2 ;;
    --server) server="${2:?}"; shift 2 ;;
    --token) token="${2:?}"; shift 2 ;;
    --ca-cert-hash) hashes+=("${2:?}"); shift 2 ;;
    --node-ip) node_ip="${2:?}"; shift 2 ;;
    --node-name) node_name="${2:?}"; shift 2 ;;
    --data-dir) data_dir="${2:?}"; shift 2 ;;
    --no-wait) wait=false; shift ;;
    --print) print=true; shift ;;
    -h|--help) usage ;;
    *) echo "$0: unknown argument $1" >&2; usage ;;
  esac
done

if [ -n "$join_file" ]; then
  line="$(grep -m1 '^skiff join ' "$join_file" || true)"
  if [ -z "$line" ]; then
    echo "$0: no 'skiff join ...' line in $join_file" >&2
    exit 1
  fi
  read -r -a words <<<"$line"
  for ((i = 2; i < ${#words[@]}; i++)); do
    case "${words[i]}" in
      --server) server="${words[i + 1]:-}"; i=$((i + 1)) ;;
      --token) token="${words[i + 1]:-}"; i=$((i + 1)) ;;
      --ca-cert-hash) hashes+=("${words[i + 1]:-}"); i=$((i + 1)) ;;
    esac
  done
fi
if [ -z "$server" ] || [ -z "$token" ] || [ "${#hashes[@]}" -eq 0 ]; then
  echo "$0: need the server, a token and a CA hash (--join-file, or --server, --token and --ca-cert-hash)" >&2
  exit 2
fi

skiff_bin="${SKIFF_BIN:-/usr/local/bin/skiff}"
args=(join --server "$server" --data-dir "$data_dir")
for h in "${hashes[@]}"; do args+=(--ca-cert-hash "$h"); done
[ -n "$node_ip" ] && args+=(--node-ip "$node_ip")
[ -n "$node_name" ] && args+=(--node-name "$node_name")

env_file=/etc/skiff/skiff-node.env
unit_file=/etc/systemd/system/skiff-node.service
env_text="SKIFF_JOIN_TOKEN=$token"
# KillMode=process and Delegate=yes as containerd.service has them: stopping the unit stops
# skiff (which stops its containerd), while the runc shims, and so the pods, keep running.
unit_text="[Unit]
Description=skiff node (agent and proxy) joined to $server
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=$env_file
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
  printf '# %s\n%s\n# %s\n%s\n' "$env_file" "SKIFF_JOIN_TOKEN=<token>" "$unit_file" "$unit_text"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "$0: run as root (it writes $unit_file)" >&2
  exit 1
fi
install -d -m 0700 /etc/skiff
(umask 077 && printf '%s\n' "$env_text" >"$env_file")
# Run again with the same settings, the running node is left alone.
if [ "$(cat "$unit_file" 2>/dev/null)" != "$unit_text" ]; then
  printf '%s\n' "$unit_text" >"$unit_file"
  systemctl daemon-reload
  systemctl enable skiff-node.service
  systemctl restart skiff-node.service
else
  systemctl enable --now skiff-node.service
fi

if "$wait"; then
  # The unit has joined once the node's credentials are written (the CSR was issued).
  for _ in $(seq 1 300); do
    if [ -s "$data_dir/node.kubeconfig" ]; then
      echo "skiff-node.service is running: this machine is a node of $server"
      exit 0
    fi
    sleep 1
  done
  echo "$0: the node did not get its credentials; see: journalctl -u skiff-node.service" >&2
  journalctl -u skiff-node.service -n 30 --no-pager >&2 || true
  exit 1
fi
