#!/usr/bin/env bash
# `make cluster N=3`: N local Mafalda nodes for a developer, one room that
# can span them, each with the browser demo at its own URL.
#
# Each node runs in a network namespace of its own (mafalda-n1..N) with an
# address 198.18.0.i (the range reserved for network benchmarks) on a
# private bridge (mafalda-br, 198.18.0.254 on this host), so this host's
# browser reaches every node and nothing is routed anywhere else. A fresh
# cluster CA and one certificate per node are made in a temporary folder.
# Ctrl-C stops the nodes and removes the namespaces, the bridge and the
# folder. Needs root (network namespaces).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/netns.sh
source "$ROOT/scripts/lib/netns.sh"
# shellcheck source=lib/cluster.sh
source "$ROOT/scripts/lib/cluster.sh"

N="${N:-3}"
BIN="${MAFALDA_BIN:-${CARGO_TARGET_DIR:-/var/cache/mafalda/target}/debug/mafalda}"
NETNS_BRIDGE=mafalda-br
(( N >= 1 && N <= 200 )) || { echo "cluster: N must be 1..200" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "cluster: needs root (network namespaces)" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "cluster: no node binary at $BIN (make build)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/mafalda-cluster.XXXXXX)"
PIDS=()
cleanup() {
  trap - EXIT INT TERM
  echo "cluster: stopping"
  # SIGINT stops a node at once (SIGTERM would drain it first, and every
  # node is going away anyway).
  kill -INT "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  for i in $(seq "$N"); do ip netns del "mafalda-n$i" 2>/dev/null || true; done
  ip link del "$NETNS_BRIDGE" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip link add "$NETNS_BRIDGE" type bridge
ip link set "$NETNS_BRIDGE" type bridge stp_state 0 forward_delay 0 2>/dev/null || true
ip addr add 198.18.0.254/24 dev "$NETNS_BRIDGE"
ip link set "$NETNS_BRIDGE" up
names=()
for i in $(seq "$N"); do names+=("mafalda-$i"); done
cluster_certs "$BIN" "$WORK/certs" "${names[@]}"
# Up to three seeds (nodes 1-3): a node restarted by hand finds the others.
SEEDS="$(for i in $(seq "$(( N < 3 ? N : 3 ))"); do echo "198.18.0.$i:7000"; done | paste -sd,)"
for i in $(seq "$N"); do
  netns_add_host "mafalda-n$i" "198.18.0.$i/24"
  cluster_node_config "$WORK/n$i.toml" "mafalda-$i" "198.18.0.$i" "$WORK/certs" \
    "$SEEDS" "$ROOT/web/dist"
  ip netns exec "mafalda-n$i" "$BIN" node --config "$WORK/n$i.toml" >"$WORK/n$i.log" 2>&1 &
  PIDS+=($!)
done
for i in $(seq "$N"); do
  netns_wait_tcp "" "198.18.0.$i" 3000 20 || { echo "cluster: node $i did not start:"; tail "$WORK/n$i.log"; exit 1; }
done
echo "cluster: $N nodes up (logs in $WORK); one demo URL per node:"
for i in $(seq "$N"); do echo "  http://198.18.0.$i:3000/   (status: http://198.18.0.$i:3000/api/status)"; done
echo "cluster: the cluster dashboard (any node's): http://198.18.0.1:3000/dashboard"
echo "cluster: the nodes run [auth] mode = \"dev\": each page fetches its token from its node's /api/dev-token"
echo "cluster: open the same room on several nodes; Ctrl-C stops everything"
wait
