#!/usr/bin/env bash
# Latency added by one cross-node pipe hop, side by side in one run.
#
# Three nodes on loopback (127.0.0.11-13, one worker each, pipe_fanout 1),
# joined over the fabric (QUIC + mTLS), and one `mafalda loadgen` room of 1
# publisher (audio + video) and BENCH_SUBS subscribers, measured for
# BENCH_WINDOW seconds, alternated BENCH_ROUNDS times:
#   local    every participant on node 1: no pipe;
#   one-hop  the publisher on node 1, the subscribers on node 2: each
#            stream crosses one cross-node pipe (1 -> 2);
#   two-hop  the publisher on node 1, subscribers on nodes 2 and 3: with a
#            fan-out of 1 node 3 gets the streams through node 2 (1 -> 2 -> 3).
# One-way latency comes from the send timestamps loadgen puts in every
# packet (same clock: one machine). The added latency per hop is the
# difference of the medians, and its loss is the loss of the run.
# Everything runs in a private network namespace with only loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-/var/cache/mafalda/target}/release/mafalda}"
[[ "$BIN" = /* ]] || BIN="$PWD/$BIN"
ROUNDS="${BENCH_ROUNDS:-3}"
WINDOW="${BENCH_WINDOW:-5}"
SUBS="${BENCH_SUBS:-8}"

if [[ "${BENCH_CLUSTER_INNER:-0}" != 1 ]]; then
  export BENCH_CLUSTER_INNER=1 BIN ROUNDS WINDOW SUBS
  exec unshare -n -p -f --mount-proc -- bash "$0" "$@"
fi
ip link set lo up

WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
# shellcheck source=lib/cluster.sh
source scripts/lib/cluster.sh
cluster_certs "$BIN" "$WORK" bench-1 bench-2 bench-3
for i in 1 2 3; do
  cluster_node_config "$WORK/n$i.toml" "bench-$i" "127.0.0.1$i" "$WORK" "127.0.0.11:7000" \
    /nonexistent warn $'[placement]\npipe_fanout = 1'
  RUST_LOG=warn "$BIN" node --config "$WORK/n$i.toml" > "$WORK/n$i.log" 2>&1 &
done
for i in 1 2 3; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1$i:3000/healthz" >/dev/null && break
    sleep 0.1
  done
done
# Every node sees the other two alive.
for i in 1 2 3; do
  for _ in $(seq 100); do
    n=$(curl -sf "http://127.0.0.1$i:3000/api/status" \
      | python3 -c 'import json,sys; print(sum(m["state"]=="alive" for m in json.load(sys.stdin)["cluster"]["members"]))' || echo 0)
    [[ "$n" == 2 ]] && break
    sleep 0.1
  done
done

url() { echo "ws://127.0.0.1$1:3000/ws"; }
run() { # NAME TARGETS
  "$BIN" loadgen --target "$2" --room "bench-$1-$RANDOM" --publishers 1 --subscribers "$SUBS" \
    --settle 2 --duration "$WINDOW" --loss-limit 100 --json 2>/dev/null \
    | python3 -c 'import json,sys; w=json.load(sys.stdin); print("%.3f %.3f %.3f %d" % (w["loss_pct"], w["latency_p50_ms"], w["latency_p99_ms"], w["received"]))'
}
RESULTS="$WORK/results"
: > "$RESULTS"
for r in $(seq "$ROUNDS"); do
  l="$(run local "$(url 1)")"
  o="$(run one "$(url 1),$(url 2)")"
  t="$(run two "$(url 1),$(url 2),$(url 3)")"
  printf 'local %s\none %s\ntwo %s\n' "$l" "$o" "$t" >> "$RESULTS"
  echo "round $r: local $l | one-hop $o | two-hop $t  (loss% p50ms p99ms packets)"
done
python3 - "$ROUNDS" "$RESULTS" <<'PY'
import statistics, sys
rounds, path = int(sys.argv[1]), sys.argv[2]
res = {}
for line in open(path):
    name, *vals = line.split()
    res.setdefault(name, []).append([float(x) for x in vals])
def med(name, i):
    return statistics.median(x[i] for x in res[name])
print(f"\nmedians over {rounds} rounds:")
print("| path | loss % | p50 ms | p99 ms |")
print("| --- | --- | --- | --- |")
for name, label in [("local", "same node"), ("one", "one cross-node hop"), ("two", "subscribers on nodes 2 and 3 (fan-out 1: 1 -> 2 -> 3)")]:
    print(f"| {label} | {med(name,0):.3f} | {med(name,1):.3f} | {med(name,2):.3f} |")
print(f"\nadded by one cross-node hop: p50 {med('one',1)-med('local',1):+.3f} ms, p99 {med('one',2)-med('local',2):+.3f} ms")
PY
