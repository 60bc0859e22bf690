# shellcheck shell=bash
# Steps of scripts/e2e-cluster.sh about load and failures, run through
# `mafalda loadgen` (sourced by it; uses its helpers: say, record,
# restart_nodes, status_json, node_ip, ...).
#
#   spill-load  a loadgen broadcast room grows through node 1 past its
#               capacity (40 producers + consumers per worker, one worker
#               per node): later subscribers land on node 2, then node 3;
#               under 1% loss; the room holds more consumers than any node's
#               capacity

# Client consumers (pipe consumers not counted) on node i, or 0.
client_consumers() {
  status_json "$1" 2>/dev/null | node -e '
    const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const pipes = (s.workerDetails || []).reduce((n, w) => n + (w.pipeConsumers || 0), 0);
    console.log(s.consumers - pipes);' 2>/dev/null || echo 0
}

node_peers() {
  status_json "$1" 2>/dev/null | node -e '
    console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).peers);' 2>/dev/null || echo 0
}

step_spill_load() {
local cap=40 subs="${E2E_SPILL_SUBSCRIBERS:-45}"
say "----- spill-load: $cap producers + consumers per worker; $subs loadgen subscribers through $(node_name 1) -----"
local t0 rc=0 lg i c total max_total=0 first2="" first3="" now
t0=$(date +%s)
restart_nodes "$BASE_EXTRA"$'\n'"worker_capacity = $cap"$'\nwatermark = 1.0' || rc=94
if (( rc == 0 )); then
  "$MAFALDA_BIN" loadgen --target "ws://$(node_ip 1):$HTTP_PORT/ws" --room "spill-$RANDOM" \
    --publishers 1 --subscribers "$subs" --settle 2 --duration 4 --ip "$CLIENT_IP" --loss-limit 1 \
    >"$WORK/spill-load.log" 2>&1 &
  lg=$!
  while kill -0 "$lg" 2>/dev/null; do
    now=$(date +%s.%N)
    total=0
    for i in $(seq "$NODES"); do
      c="$(client_consumers "$i")"
      total=$((total + c))
      if (( i == 2 )) && [[ -z "$first2" ]] && (( $(node_peers 2) > 0 )); then first2="$now"; fi
      if (( i == 3 )) && [[ -z "$first3" ]] && (( $(node_peers 3) > 0 )); then first3="$now"; fi
    done
    (( total > max_total )) && max_total=$total
    sleep 0.3
  done
  wait "$lg"
  rc=$?
  tail -n 6 "$WORK/spill-load.log" | sed 's/^/  /'
  say "spill-load: at most $max_total client consumers in the room (capacity $cap per node);" \
    "$(node_name 2) first served at ${first2:-never}, $(node_name 3) at ${first3:-never}"
  if [[ -z "$first2" || -z "$first3" ]]; then
    say "spill-load: a node never served a subscriber"; [[ "$rc" == 0 ]] && rc=93
  elif awk -v a="$first2" -v b="$first3" 'BEGIN { exit !(a > b) }'; then
    say "spill-load: $(node_name 3) was used before $(node_name 2)"; [[ "$rc" == 0 ]] && rc=92
  fi
  if (( max_total <= cap )); then
    say "spill-load: the room never held more consumers than one node's capacity"; [[ "$rc" == 0 ]] && rc=91
  fi
fi
nodes_up || { [[ "$rc" == 0 ]] && rc=98; }
record spill-load "$rc" "$(( $(date +%s) - t0 ))"
}
