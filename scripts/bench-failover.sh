#!/usr/bin/env bash
# Node-loss figures: how long SWIM takes to declare a killed node down, and
# how long the participants of the lost node take to receive again.
#
# Runs the `kill` step of scripts/e2e-cluster.sh (3 namespace hosts, one
# `mafalda loadgen --soak` room with a publisher and a subscriber per node,
# the room's home node SIGKILLed) BENCH_ROUNDS times (default 3) and prints,
# per round: the time from the signal until every survivor's /api/status
# shows the node down (polled every 0.3 s), the longest gap of the streams
# between survivors, and the longest gap of the streams to or from the lost
# node's participants (its publisher republishes and its subscriber rejoins
# through another node: their recovery). SWIM settings are those of
# scripts/lib/cluster.sh: probe_period_ms 300, suspect_to_down_ms 900.
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${BENCH_ROUNDS:-3}"
BIN="${MAFALDA_BIN:-${CARGO_TARGET_DIR:-/var/cache/mafalda/target}/debug/mafalda}"
echo "round  declared down   gap between survivors   recovery of the lost node's participants"
for r in $(seq "$ROUNDS"); do
  out="$(MAFALDA_BIN="$BIN" E2E_SKIP_SETUP=1 E2E_STEPS=kill scripts/e2e-cluster.sh 2>&1)"
  down="$(grep -o 'declared down by every survivor [0-9]* ms' <<<"$out" | grep -o '[0-9]* ms')"
  gaps="$(grep -o 'longest gap between survivors [0-9.]* ms' <<<"$out" | grep -o '[0-9.]* ms')"
  rec="$(grep -o '(longest gap of their streams) [0-9.]* ms' <<<"$out" | grep -o '[0-9.]* ms')"
  pass="$(grep -c 'PASS kill' <<<"$out")"
  printf '%-6s %-15s %-23s %s%s\n' "$r" "${down:-?}" "${gaps:-?}" "${rec:-?}" "$( ((pass)) || echo '   (the kill step FAILED)')"
done
