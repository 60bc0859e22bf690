#!/usr/bin/env bash
# End-to-end test of a 3-node Mafalda cluster with real WebRTC clients: one
# room spanning the nodes, media crossing them through cross-node pipes.
#
#   scripts/e2e-cluster.sh                  # setup (apt/npm/pip, needs the registries), then the test
#   E2E_SKIP_SETUP=1 scripts/e2e-cluster.sh
#   MAFALDA_BIN=target/debug/mafalda E2E_SKIP_SETUP=1 scripts/e2e-cluster.sh
#   E2E_STEPS="spill failover" E2E_SKIP_SETUP=1 scripts/e2e-cluster.sh   # some steps only
#
# Everything runs inside one private network + mount + PID namespace (the
# script re-executes itself under `unshare -n -m -p -f --mount-proc`), where
# scripts/lib/netns.sh builds a bridge br0 (198.18.0.254/24, the "client"
# side: Chromium, aiortc and curl run there) and three host namespaces n1..n3
# (198.18.0.1..3/24) on it. No namespace has a default route and these are the
# only addresses, so nothing can leave the machine. Then:
#
#   network     the namespaces are up and sealed
#   certs       a fresh cluster CA and one certificate per node (`mafalda cluster ca/cert`)
#   cluster-up  node i (`mafalda-i`) runs in n<i> on 198.18.0.i (HTTP :3000,
#               QUIC :7000, WebRTC and pipes on the same address, 1 worker);
#               each answers /healthz and lists the other two as alive
#   media       tests/e2e/browser.mjs: 3 headless Chromium instances, browser i
#               on node i, plus the Python aiortc participant on node
#               $E2E_AIORTC_NODE, all in one room; everyone must receive every
#               other participant's video (decoded) and audio, and while media
#               flows the nodes' /api/status must show pipe producers and pipe
#               consumers on >= $E2E_PIPE_NODES nodes
#   dashboard   a `mafalda loadgen --soak` room with its publisher on node 1
#               and its subscriber on node 2; one headless Chromium loads
#               node 1's /dashboard (tests/e2e/dashboard.mjs): both nodes
#               drawn live, the room's router on each, the pipe link from
#               node 1 to node 2, the room's participants and one home, and
#               every node's status stream going on; a screenshot is saved
#               as dashboard.png in the work dir
#   loadgen     `mafalda loadgen` over the nodes: 1 publisher on node 1, 6
#               subscribers on nodes 2 and 3, under 1% loss; with
#               pipe_fanout = 1, node 3 takes the streams from node 2
#   partition   node 3 cut off the bridge; the room opens on both sides (two
#               homes); once healed it converges to one home, and both
#               sides' loadgen rooms keep delivering under 1% loss
#   spill-load  the nodes restart with 40 producers + consumers per worker;
#               `mafalda loadgen` grows one broadcast room (1 publisher,
#               audio + video, $E2E_SPILL_SUBSCRIBERS = 45 subscribers) all
#               through node 1: another node serves subscribers once node 1
#               is full, the third once that one is, under 1% loss, and
#               the room holds more consumers than one node's capacity
#               (scripts/lib/e2e-resilience.sh)
#   spill       the nodes restart with room for 2 participants each
#               (placement.worker_max_peers = 2, the steps after keep it);
#               4 Chromium join one room all through node 1: node 1 serves
#               two, the others spill over to another node (their pages
#               got its ICE candidates, hook `servedBy`); >= 1 must be
#               served by another node, every browser must decode every
#               other's video and receive its audio, and >= 2 nodes must
#               show pipes
#   failover    a Chromium page and the aiortc participant join a room
#               through node 2, which is killed (SIGKILL) once media flows:
#               both must rejoin through another node by themselves (the
#               page from /api/nodes, aiortc from its --url list) and
#               decode each other again; then that node gets SIGTERM and
#               drains: both must move to the URL of its `reconnect` event
#               and decode each other again, and it must exit 0; the
#               stopped nodes are started again
#   kill        the nodes restart (base configuration); a `mafalda loadgen
#               --soak` room (3 publishers, 3 subscribers, one of each per
#               node); the room's home node is killed (SIGKILL): the
#               survivors see it down, the room re-homes to one of them,
#               the streams between survivors never stop for 1 s, the lost
#               node's participants rejoin elsewhere and receive again, the
#               survivors' pipes and consumers settle to what is left; the
#               node is started again (scripts/lib/e2e-resilience.sh)
#   abort       the same with SIGABRT to a node that is not the home: what
#               a C++ abort in a mediasoup worker (a thread of the node)
#               does, handled as a node loss
#   rolling     under a soak room, each node in turn drains (SIGTERM),
#               exits 0 by itself and starts again: no subscriber's stream
#               stops for 2 s or more, and some node holds the room at
#               every moment
#   cleanup     after everyone left, every node's peers, transports, producers,
#               consumers and pipe transports/producers/consumers are 0 (and
#               rooms, routers), within $E2E_CLEANUP_TIMEOUT s
#   nodes-exit  every node stops on SIGTERM within 15 s, and no log shows a panic
#
# Prints `e2e-cluster: N passed, M failed`, exits non-zero on any failure, and
# then shows every node log's WARN/ERROR lines and last lines, and keeps the
# work dir (configs, certificates, logs).
#
# env: MAFALDA_BIN, MAFALDA_CACHE, E2E_SKIP_SETUP as for scripts/e2e.sh;
#   E2E_STEPS ("media dashboard loadgen partition spill-load spill failover kill abort rolling")  the steps to run, of
#                             those; always in the order above; network, certs,
#                             cluster-up, cleanup and nodes-exit always run
#   E2E_MEDIA_TIMEOUT (120)   seconds for media to flow once joined
#   E2E_AIORTC_NODE (2)       the node the aiortc participant joins through
#   E2E_PIPE_NODES (3)        nodes that must show pipe producers and consumers
#   E2E_JOIN_STAGGER (0)      ms: browsers join one after another instead of at once
#   E2E_CLEANUP_TIMEOUT (30)  seconds for every count to return to zero
#   E2E_FAILOVER_TIMEOUT (60) seconds for each phase of the failover step
#   E2E_MEDIA_LIMIT, E2E_SPILL_LIMIT, E2E_FAILOVER_LIMIT (360, 300, 300)  hard
#                             limits of the media, spill and failover drivers
#   E2E_LOG_LEVEL (info), E2E_LOG_LINES (80), E2E_BROWSER_ARGS (extra browser.mjs options)
#   E2E_KEEP_WORK (0)         1: keep the work dir after a passing run too (e.g.
#                             for the dashboard's screenshot)
set -uo pipefail

ALL_STEPS="media dashboard loadgen partition spill-load spill failover kill abort rolling"
STEPS="${E2E_STEPS:-$ALL_STEPS}"
for step in $STEPS; do
  [[ " $ALL_STEPS " == *" $step "* ]] || { echo "e2e-cluster: unknown step '$step' in E2E_STEPS (steps: $ALL_STEPS)"; exit 2; }
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MAFALDA_CACHE:-/var/cache/mafalda}"
export MAFALDA_CACHE="$CACHE"
MAFALDA_BIN="${MAFALDA_BIN:-${CARGO_TARGET_DIR:-/var/cache/mafalda/target}/debug/mafalda}"
[[ "$MAFALDA_BIN" = /* ]] || MAFALDA_BIN="$ROOT/$MAFALDA_BIN"
export MAFALDA_BIN
# shellcheck source=lib/netns.sh
source "$ROOT/scripts/lib/netns.sh"
# shellcheck source=lib/cluster.sh
source "$ROOT/scripts/lib/cluster.sh"
# shellcheck source=lib/e2e-resilience.sh
source "$ROOT/scripts/lib/e2e-resilience.sh"

say() { echo "e2e-cluster: $*"; }

# ---------------------------------------------------------------- outer phase
if ! netns_inside MAFALDA_E2E_CLUSTER_INNER; then
  if [[ "${E2E_SKIP_SETUP:-0}" != 1 ]]; then
    "$ROOT/scripts/setup-web.sh" || { say "setup-web failed"; exit 1; }
    "$ROOT/scripts/setup-python.sh" || { say "setup-python failed"; exit 1; }
  fi
  if [[ ! -x "$MAFALDA_BIN" ]]; then
    say "node binary not found: $MAFALDA_BIN (build it: cargo build, or set MAFALDA_BIN)"
    echo "e2e-cluster: 0 passed, 1 failed"
    exit 1
  fi
  netns_reexec MAFALDA_E2E_CLUSTER_INNER "$0" "$@"
  say "could not enter private namespaces"
  echo "e2e-cluster: 0 passed, 1 failed"
  exit 1
fi

# ---------------------------------------------------------------- inner phase
NODES=3
NET="198.18.0"
CLIENT_IP="$NET.254"
HTTP_PORT=3000
FABRIC_PORT=7000
AIORTC_NODE="${E2E_AIORTC_NODE:-2}"
PIPE_NODES="${E2E_PIPE_NODES:-3}"
MEDIA_TIMEOUT="${E2E_MEDIA_TIMEOUT:-120}"
CLEANUP_TIMEOUT="${E2E_CLEANUP_TIMEOUT:-30}"
LOG_LINES="${E2E_LOG_LINES:-80}"

WORK="$(mktemp -d /tmp/mafalda-e2e-cluster.XXXXXX)"
PASSED=0
FAILED=0
FAILED_NAMES=()
T_START=$(date +%s)
declare -A NODE_PID=()
MEDIA_PID=""

node_name() { echo "mafalda-$1"; }
node_ip() { echo "$NET.$1"; }
node_url() { echo "http://$NET.$1:$HTTP_PORT"; }
node_log() { echo "$WORK/n$1.log"; }

record() { # name rc seconds
  if [[ "$2" == 0 ]]; then
    PASSED=$((PASSED + 1)); say "PASS $1 (${3}s)"
  else
    FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); say "FAIL $1 (rc $2, ${3}s)"
  fi
}

# Stops every node still running: SIGTERM to all, then up to 15 s, then SIGKILL.
# Leaves each exit status in NODE_EXIT[i].
declare -A NODE_EXIT=()
stop_nodes() {
  local i pid
  for i in "${!NODE_PID[@]}"; do kill -TERM "${NODE_PID[$i]}" 2>/dev/null; done
  for _ in $(seq 75); do
    local left=0
    for i in "${!NODE_PID[@]}"; do node_alive "$i" && left=1; done
    ((left)) || break
    sleep 0.2
  done
  for i in "${!NODE_PID[@]}"; do
    pid="${NODE_PID[$i]}"
    if node_alive "$i"; then
      say "$(node_name "$i") did not exit 15 s after SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null
      NODE_EXIT[$i]="killed"
      wait "$pid" 2>/dev/null
    else
      wait "$pid" 2>/dev/null
      local rc=$?
      [[ -n "${NODE_EXIT[$i]:-}" ]] || NODE_EXIT[$i]=$rc
    fi
    unset "NODE_PID[$i]"
  done
}

plain() { sed 's/\x1b\[[0-9;]*m//g' "$@"; } # without the log's colours

show_logs() {
  local i
  for i in $(seq "$NODES"); do
    echo "----- $(node_name "$i"): WARN/ERROR lines of $(node_log "$i") (first 40) -----"
    plain "$(node_log "$i")" 2>/dev/null | grep -E ' (WARN|ERROR) |panicked' | head -n 40
    echo "----- $(node_name "$i"): last $LOG_LINES lines of $(node_log "$i") -----"
    plain "$(node_log "$i")" 2>/dev/null | tail -n "$LOG_LINES"
  done
  echo "----- end of node logs -----"
}

# Membership changes each node logged (a flapping member can move room homes).
membership_summary() {
  local i line
  for i in $(seq "$NODES"); do
    line="$(plain "$(node_log "$i")" 2>/dev/null | grep -oE 'member (suspect|down|alive again)|rejoined the cluster' \
      | sort | uniq -c | awk '{c=$1; $1=""; printf "%s%s x%d", sep, substr($0, 2), c; sep=", "}')"
    say "$(node_name "$i") membership changes: ${line:-none}"
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # The clients first (timeout passes the TERM on to the driver), then the nodes.
  [[ -n "$MEDIA_PID" ]] && kill -TERM "$MEDIA_PID" 2>/dev/null
  stop_nodes
  # Any other child still around (a driver killed mid-way, chromium, python);
  # the PID namespace ends the rest when this script (its init) exits.
  local kids
  kids="$(jobs -p)"
  [[ -n "$kids" ]] && kill -TERM $kids 2>/dev/null
  if (( FAILED > 0 || rc != 0 )); then
    show_logs
    say "work dir kept: $WORK"
  elif [[ "${E2E_KEEP_WORK:-0}" == 1 ]]; then
    say "work dir kept (E2E_KEEP_WORK=1): $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; FAILED=$((FAILED+1)); FAILED_NAMES+=(interrupted)
      echo "e2e-cluster: $PASSED passed, $FAILED failed"; exit 130' INT TERM

finish() {
  (( FAILED > 0 )) && say "failed: ${FAILED_NAMES[*]}"
  say "total $(( $(date +%s) - T_START ))s"
  echo "e2e-cluster: $PASSED passed, $FAILED failed"
  (( FAILED == 0 ))
  exit $?
}

# A node that exited stays a zombie until waited for: check its state too.
node_alive() {
  local pid="${NODE_PID[$1]:-}" st
  [[ -n "$pid" ]] || return 1
  st="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
  [[ -n "$st" && "$st" != Z ]]
}

# CPU seconds used so far by a node (mediasoup workers are threads of it).
node_cpu() {
  awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); printf "%.2f", (f[12] + f[13]) / 100 }' \
    "/proc/${NODE_PID[$1]}/stat" 2>/dev/null || echo "?"
}

status_json() { curl -fsS --max-time 5 "$(node_url "$1")/api/status"; }

# ---------------------------------------------------------------- network
t0=$(date +%s)
say "work dir $WORK; building the network: br0 $CLIENT_IP/24, hosts n1..n$NODES"
build_network() {
  netns_base "$CLIENT_IP/24" || return 1
  local i
  for i in $(seq "$NODES"); do netns_add_host "n$i" "$(node_ip "$i")/24" || return 1; done
}
net_ok=0
build_network || net_ok=1
if (( net_ok == 0 )); then
  seal=()
  for i in $(seq "$NODES"); do seal+=("n$i" "$(node_ip "$i")"); done
  netns_seal_check "$CLIENT_IP" -- "${seal[@]}" || net_ok=1
fi
record network "$net_ok" "$(( $(date +%s) - t0 ))"
(( net_ok == 0 )) || finish

# ---------------------------------------------------------------- certificates
t0=$(date +%s)
CERTS="$WORK/certs"
certs_ok=0
names=()
for i in $(seq "$NODES"); do names+=("$(node_name "$i")"); done
cluster_certs "$MAFALDA_BIN" "$CERTS" "${names[@]}" >"$WORK/certs.log" 2>&1 || certs_ok=1
(( certs_ok == 0 )) || cat "$WORK/certs.log"
record certs "$certs_ok" "$(( $(date +%s) - t0 ))"
(( certs_ok == 0 )) || finish

# ---------------------------------------------------------------- nodes
# Each router forwards a stream to one other at most: fan-out across the
# nodes is then a chain (the loadgen step checks node 3 gets it via node 2).
BASE_EXTRA=$'[placement]\npipe_fanout = 1'
# Every node lists every node as a seed (it skips its own address): a
# restarted node finds the cluster through any of the others.
SEEDS="$(for i in $(seq "$NODES"); do echo "$(node_ip "$i"):$FABRIC_PORT"; done | paste -sd,)"
write_configs() { # extra TOML for every node
  local i
  for i in $(seq "$NODES"); do
    cluster_node_config "$WORK/n$i.toml" "$(node_name "$i")" "$(node_ip "$i")" "$CERTS" \
      "$SEEDS" "$ROOT/web/dist" "${E2E_LOG_LEVEL:-info}" "$1"
  done
}

# Starts node i in n<i>; its log goes on in the same file across restarts.
start_node() {
  local i="$1"
  say "starting $(node_name "$i") in n$i: $MAFALDA_BIN node --config $WORK/n$i.toml (log $(node_log "$i"))"
  echo "===== e2e-cluster: $(node_name "$i") starts at $(date +%T) =====" >>"$(node_log "$i")"
  ip netns exec "n$i" "$MAFALDA_BIN" node --config "$WORK/n$i.toml" >>"$(node_log "$i")" 2>&1 &
  NODE_PID[$i]=$!
}

# Every node sees every other one alive (up to 30 s).
members_ok() { # i status-json
  node -e '
    const [me, want, json] = process.argv.slice(1);
    const s = JSON.parse(json);
    const alive = new Set((s.cluster?.members || []).filter((m) => m.state === "alive").map((m) => m.node));
    const missing = want.split(",").filter((n) => n !== me && !alive.has(n));
    if (missing.length) { console.log(missing.join(",")); process.exit(1); }
  ' "$(node_name "$1")" "$(for j in $(seq "$NODES"); do node_name "$j"; done | paste -sd,)" "$2"
}

# Waits until every node answers /healthz (30 s), then until each lists
# every other alive (30 s); says what is wrong and returns 1 otherwise.
cluster_up() {
  local i s missing deadline
  deadline=$(( $(date +%s) + 30 ))
  for i in $(seq "$NODES"); do
    while :; do
      if ! node_alive "$i"; then say "$(node_name "$i") exited during start-up"; return 1; fi
      [[ "$(curl -fsS --max-time 2 "$(node_url "$i")/healthz" 2>/dev/null)" == ok* ]] && break
      if (( $(date +%s) > deadline )); then say "$(node_name "$i") not healthy within 30 s"; return 1; fi
      sleep 0.2
    done
  done
  deadline=$(( $(date +%s) + 30 ))
  for i in $(seq "$NODES"); do
    while :; do
      s="$(status_json "$i" 2>/dev/null)"
      if [[ -n "$s" ]] && missing="$(members_ok "$i" "$s")"; then break; fi
      if ! node_alive "$i"; then say "$(node_name "$i") exited while joining"; return 1; fi
      if (( $(date +%s) > deadline )); then
        say "$(node_name "$i") does not see ${missing:-?} alive within 30 s: ${s:-<no status>}"
        return 1
      fi
      sleep 0.3
    done
  done
}

# Stops every node (SIGTERM: each drains, empty, and exits) and starts them
# again with `extra` TOML; fails unless each exited 0 and the cluster is up.
restart_nodes() { # extra
  local i rc=0
  stop_nodes
  for i in $(seq "$NODES"); do
    if [[ "${NODE_EXIT[$i]:-?}" != 0 ]]; then
      say "$(node_name "$i") exit status ${NODE_EXIT[$i]:-?} after SIGTERM (restart)"; rc=1
    fi
    unset "NODE_EXIT[$i]"
  done
  write_configs "$1"
  for i in $(seq "$NODES"); do start_node "$i"; done
  cluster_up || rc=1
  return $rc
}

write_configs "$BASE_EXTRA"
t0=$(date +%s)
cd "$ROOT"
for i in $(seq "$NODES"); do start_node "$i"; done
up_ok=0
cluster_up || up_ok=1
if (( up_ok == 0 )); then
  for i in $(seq "$NODES"); do
    say "$(node_name "$i"): $(status_json "$i" | node -e '
      const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
      console.log(`${s.workers} worker(s), members: ${s.cluster.members.map((m) => `${m.node}@${m.addr} ${m.state}`).join(", ")}`);')"
    curl -fsS --max-time 5 "$(node_url "$i")/" | grep -q '<title>Mafalda' \
      || say "$(node_name "$i"): GET / did not serve the demo page (static_dir $ROOT/web/dist)"
  done
fi
record cluster-up "$up_ok" "$(( $(date +%s) - t0 ))"
(( up_ok == 0 )) || finish

# Helpers of the steps below.
URLS="$(for i in $(seq "$NODES"); do node_url "$i"; done | paste -sd,)"
status_in() { # i: node i's status, asked from inside its own namespace
  ip netns exec "n$1" curl -fsS --max-time 5 "$(node_url "$1")/api/status"
}
sees() { # json node state -> rc 0 when the status lists node in state
  node -e '
    const [json, who, want] = process.argv.slice(1);
    const m = (JSON.parse(json).cluster?.members || []).find((m) => m.node === who);
    process.exit(m && m.state === want ? 0 : 1);
  ' "$1" "$2" "$3"
}
wait_until() { # seconds description command...
  local secs="$1" what="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@"; do
    if (( $(date +%s) > deadline )); then say "not within ${secs} s: $what"; return 1; fi
    sleep 0.3
  done
}
# Every node sees every other alive.
all_alive() {
  local i j s
  for i in $(seq "$NODES"); do
    s="$(status_json "$i" 2>/dev/null)" || return 1
    for j in $(seq "$NODES"); do
      (( i == j )) && continue
      sees "$s" "$(node_name "$j")" alive || return 1
    done
  done
}
# A driver in the background, waited for, so that an interrupt is handled at once.
run_driver() { # limit-seconds command...
  local limit="$1"; shift
  timeout --kill-after=15 "$limit" "$@" &
  MEDIA_PID=$!
  wait "$MEDIA_PID"
  local rc=$?
  MEDIA_PID=""
  return $rc
}
want_step() { [[ " $STEPS " == *" $1 "* ]]; }
# Fails, naming them, if any node is gone.
nodes_up() {
  local i up=0
  for i in $(seq "$NODES"); do
    node_alive "$i" || { say "$(node_name "$i") is gone"; up=1; }
  done
  return $up
}

# ---------------------------------------------------------------- media
step_media() {
say "----- media: 3 chromium (browser-i on node i) + aiortc on $(node_name "$AIORTC_NODE"), one room -----"
local t0 rc i
t0=$(date +%s)
run_driver "${E2E_MEDIA_LIMIT:-360}" \
  node "$ROOT/tests/e2e/browser.mjs" --urls "$URLS" --browsers "$NODES" \
    --aiortc-url "$(node_url "$AIORTC_NODE")" --host-ip "$CLIENT_IP" \
    --expect-pipe-nodes "$PIPE_NODES" --timeout "$MEDIA_TIMEOUT" --join-stagger "${E2E_JOIN_STAGGER:-0}" \
    ${E2E_BROWSER_ARGS:-}
rc=$?
nodes_up || { [[ "$rc" == 0 ]] && rc=98; }
record media "$rc" "$(( $(date +%s) - t0 ))"
membership_summary
say "node CPU so far: $(for i in $(seq "$NODES"); do printf '%s %ss  ' "$(node_name "$i")" "$(node_cpu "$i")"; done)"
}

# ---------------------------------------------------------------- dashboard
# The cluster dashboard in one headless Chromium (tests/e2e/dashboard.mjs):
# a soak room spans nodes 1 and 2 (its publisher joins through node 1, its
# subscriber through node 2), and node 1's /dashboard must draw both nodes
# live, the room's router on each and the pipe link between them, list the
# room's participants and its one home, and keep receiving every node's
# status stream. The screenshot stays in the work dir.
step_dashboard() {
say "----- dashboard: a room on $(node_name 1) and $(node_name 2); /dashboard of $(node_name 1) in chromium -----"
local t0 rc=0 room targets lg
t0=$(date +%s)
room="dash-$RANDOM"
targets="ws://$(node_ip 1):$HTTP_PORT/ws,ws://$(node_ip 2):$HTTP_PORT/ws"
rm -f "$WORK/dashboard.ready"
"$MAFALDA_BIN" loadgen --soak "${E2E_DASHBOARD_SOAK:-15}" --target "$targets" --room "$room" \
  --publishers 1 --subscribers 1 --ip "$CLIENT_IP" --ready-file "$WORK/dashboard.ready" \
  >"$WORK/dashboard-loadgen.log" 2>&1 &
lg=$!
wait_until 20 "the dashboard's room to carry media" test -s "$WORK/dashboard.ready" || rc=90
if (( rc == 0 )); then
  run_driver 90 node "$ROOT/tests/e2e/dashboard.mjs" --url "$(node_url 1)" --room "$room" \
    --nodes "$(node_name 1),$(node_name 2)" --participants 2 --screenshot "$WORK/dashboard.png"
  rc=$?
fi
if ! wait "$lg"; then
  say "dashboard: the loadgen room failed:"; tail -n 5 "$WORK/dashboard-loadgen.log"
  [[ "$rc" == 0 ]] && rc=89
fi
nodes_up || { [[ "$rc" == 0 ]] && rc=98; }
record dashboard "$rc" "$(( $(date +%s) - t0 ))"
}

# ---------------------------------------------------------------- loadgen
# `mafalda loadgen` across the nodes: 1 publisher (audio + video) on node 1,
# 6 subscribers on nodes 2 and 3 in turn, under 1% loss; while it runs,
# node 3 must take the streams from node 2, not from node 1 (fan-out 1).
step_loadgen() {
say "----- loadgen: 1 publisher on $(node_name 1), subscribers on the others -----"
local t0 rc tree_ok last_node s LG_URLS LG_PID
t0=$(date +%s)
LG_URLS="$(for i in $(seq "$NODES"); do echo "ws://$(node_ip "$i"):$HTTP_PORT/ws"; done | paste -sd,)"
"$MAFALDA_BIN" loadgen --target "$LG_URLS" --room "loadgen-$RANDOM" --publishers 1 --subscribers 6 \
  --settle 2 --duration 4 --ip "$CLIENT_IP" --loss-limit 1 >"$WORK/loadgen.log" 2>&1 &
LG_PID=$!
tree_ok=1
last_node="$(node_name "$NODES")"
for _ in $(seq 60); do
  if s="$(status_json "$NODES" 2>/dev/null)" && node -e '
      const [via, origin, json] = process.argv.slice(1);
      const rooms = JSON.parse(json).roomDetails || [];
      const ok = rooms.some((r) => r.linksIn.some((l) => l.from.startsWith(via + "/"))
        && !r.linksIn.some((l) => l.from.startsWith(origin + "/")));
      process.exit(ok ? 0 : 1);
    ' "$(node_name $((NODES - 1)))" "$(node_name 1)" "$s"; then
    tree_ok=0; break
  fi
  sleep 0.25
done
wait "$LG_PID"
rc=$?
tail -n 8 "$WORK/loadgen.log" | sed 's/^/  /'
if (( tree_ok != 0 )); then
  say "$last_node never took the streams from $(node_name $((NODES - 1))) alone: $(status_json "$NODES" 2>/dev/null)"
  [[ "$rc" == 0 ]] && rc=97
fi
(( rc == 0 )) && say "loadgen: under 1% loss across the nodes; $last_node fed through $(node_name $((NODES - 1)))"
record loadgen "$rc" "$(( $(date +%s) - t0 ))"
}

# ---------------------------------------------------------------- partition
# Split brain: node 3 is cut off the bridge, the same room opens on both
# sides (a loadgen room through node 1 from here, another through node 3
# from inside n3), so each side has a home of it; the partition heals, and
# the room must converge to one home with the other nodes its shards, while
# both loadgen rooms keep delivering under 1% loss.
step_partition() {
say "----- partition: $(node_name 3) cut off, one room opened on both sides, healed -----"
local t0 part_ok SPLIT1 SPLIT3
t0=$(date +%s)
part_ok=0
ROOM_P="split-$RANDOM"
apart() {
  s1="$(status_json 1 2>/dev/null)" && s3="$(status_in 3 2>/dev/null)" \
    && sees "$s1" "$(node_name 3)" down && sees "$s3" "$(node_name 1)" down
}
two_homes() { # node 3 hosts the room, and the other side has its own home
  local r1 r3
  r1="$(room_role "$(status_json 1 2>/dev/null || echo '{}')" "$ROOM_P")"
  r3="$(room_role "$(status_in 3 2>/dev/null || echo '{}')" "$ROOM_P")"
  [[ "$r3" == "home:$(node_name 3)" ]] && [[ "$r1" == home:* || "$r1" == shard:* ]] \
    && [[ "$r1" != *":$(node_name 3)" ]]
}
netns_cut n3
wait_until 20 "nodes 1 and 3 to see each other down" apart || part_ok=1
if (( part_ok == 0 )); then
  "$MAFALDA_BIN" loadgen --target "ws://$(node_ip 1):$HTTP_PORT/ws" --room "$ROOM_P" --publishers 1 \
    --subscribers 2 --settle 2 --duration 20 --ip "$CLIENT_IP" --loss-limit 1 >"$WORK/split-1.log" 2>&1 &
  SPLIT1=$!
  ip netns exec n3 "$MAFALDA_BIN" loadgen --target "ws://$(node_ip 3):$HTTP_PORT/ws" --room "$ROOM_P" \
    --publishers 1 --subscribers 2 --settle 2 --duration 20 --ip "$(node_ip 3)" --loss-limit 1 \
    >"$WORK/split-3.log" 2>&1 &
  SPLIT3=$!
  wait_until 15 "the room to have a home on each side" two_homes || part_ok=1
  say "during the partition: $(node_name 1) $(room_role "$(status_json 1)" "$ROOM_P"), $(node_name 3) $(room_role "$(status_in 3)" "$ROOM_P")"
  netns_heal n3
  wait_until 25 "the room to converge to one home" one_home_among "$ROOM_P" $(seq "$NODES") || part_ok=1
  say "after healing: ${LAST_ROLES:-?}"
  wait "$SPLIT1" || { say "loadgen through $(node_name 1) failed:"; tail -n 5 "$WORK/split-1.log"; part_ok=1; }
  wait "$SPLIT3" || { say "loadgen through $(node_name 3) failed:"; tail -n 5 "$WORK/split-3.log"; part_ok=1; }
else
  netns_heal n3
fi
# Every node sees every other alive again before going on.
wait_until 30 "the cluster to re-form" all_alive || part_ok=1
record partition "$part_ok" "$(( $(date +%s) - t0 ))"
}

# ---------------------------------------------------------------- spill
# Spill-over with real browsers: room for 2 participants per node (one
# worker each, placement.worker_max_peers = 2; a node is full at the
# watermark, 0.6, so once it holds 2), and 4 Chromium joining one room one
# after another, all through node 1. Node 1 serves the first two; the next
# ones must be placed on another node (their signalling stays on node 1,
# their ICE candidates are the other node's). The nodes keep this
# configuration for the steps after this one.
step_spill() {
say "----- spill: 2 participants per node; 4 chromium all through $(node_name 1), one room -----"
local t0 rc=0
t0=$(date +%s)
restart_nodes "$BASE_EXTRA"$'\nworker_max_peers = 2' || rc=94
if (( rc == 0 )); then
  run_driver "${E2E_SPILL_LIMIT:-300}" \
    node "$ROOT/tests/e2e/browser.mjs" --url "$(node_url 1)" --browsers 4 --join-stagger 200 \
      --status-urls "$URLS" --expect-pipe-nodes 2 --expect-spilled 1 --timeout "$MEDIA_TIMEOUT" \
      ${E2E_BROWSER_ARGS:-}
  rc=$?
fi
nodes_up || { [[ "$rc" == 0 ]] && rc=98; }
record spill "$rc" "$(( $(date +%s) - t0 ))"
}

# ---------------------------------------------------------------- failover
# Participants move between nodes (tests/e2e/failover.mjs): a Chromium page
# and the aiortc participant join one room through node 2; once they decode
# each other, node 2 is killed (SIGKILL), and each must rejoin through
# another node by itself and decode the other again; then that node gets
# SIGTERM (a drain): both must move where its `reconnect` event says and
# decode each other again, and the drained node must exit 0. The stopped
# nodes are then started again, and the cluster must re-form.
step_failover() {
local victim=2
say "----- failover: chromium + aiortc through $(node_name $victim), which is killed; then the next one drains -----"
local t0 rc i st pids=()
t0=$(date +%s)
for i in $(seq "$NODES"); do pids+=("${NODE_PID[$i]}"); done
run_driver "${E2E_FAILOVER_LIMIT:-300}" \
  node "$ROOT/tests/e2e/failover.mjs" --urls "$URLS" --pids "$(IFS=,; echo "${pids[*]}")" \
    --victim "$(node_url $victim)" --host-ip "$CLIENT_IP" --timeout "${E2E_FAILOVER_TIMEOUT:-60}"
rc=$?
# The victim was killed, the node drained must have exited 0 by itself.
for i in $(seq "$NODES"); do
  node_alive "$i" && continue
  wait "${NODE_PID[$i]}" 2>/dev/null
  st=$?
  unset "NODE_PID[$i]"
  if (( i == victim )); then
    say "$(node_name "$i") killed (status $st)"
  else
    say "$(node_name "$i") drained and exited (status $st)"
    [[ "$st" == 0 ]] || { [[ "$rc" == 0 ]] && rc=96; }
  fi
  start_node "$i"
done
wait_until 30 "the cluster to re-form with the stopped nodes started again" all_alive || { [[ "$rc" == 0 ]] && rc=95; }
record failover "$rc" "$(( $(date +%s) - t0 ))"
}

want_step media && step_media
want_step dashboard && step_dashboard
want_step loadgen && step_loadgen
want_step partition && step_partition
want_step spill-load && step_spill_load
want_step spill && step_spill
want_step failover && step_failover
want_step kill && step_kill
want_step abort && step_abort
want_step rolling && step_rolling

# ---------------------------------------------------------------- cleanup
# Every count back to zero on every node (bounded wait).
zero_check() { # status-json -> prints what is not zero; rc 1 if any
  node -e '
    const s = JSON.parse(process.argv[1]);
    const sum = (k) => (s.workerDetails || []).reduce((n, w) => n + (w[k] ?? NaN), 0);
    const v = {
      rooms: s.rooms, routers: s.routers, peers: s.peers, transports: s.transports,
      producers: s.producers, consumers: s.consumers,
      pipeTransports: sum("pipeTransports"), pipeProducers: sum("pipeProducers"), pipeConsumers: sum("pipeConsumers"),
    };
    const bad = Object.entries(v).filter(([, n]) => n !== 0).map(([k, n]) => `${k}=${n}`);
    if (bad.length) { console.log(bad.join(" ")); process.exit(1); }
  ' "$1"
}
t0=$(date +%s)
clean_ok=1
declare -A LEFT=()
deadline=$(( $(date +%s) + CLEANUP_TIMEOUT ))
while :; do
  all=0
  for i in $(seq "$NODES"); do
    if ! node_alive "$i"; then LEFT[$i]="node gone"; all=1; continue; fi
    s="$(status_json "$i" 2>/dev/null)" || { LEFT[$i]="no /api/status answer"; all=1; continue; }
    if LEFT[$i]="$(zero_check "$s")"; then LEFT[$i]=""; else all=1; fi
  done
  if (( all == 0 )); then clean_ok=0; break; fi
  (( $(date +%s) >= deadline )) && break
  sleep 0.5
done
for i in $(seq "$NODES"); do
  if [[ -n "${LEFT[$i]:-}" ]]; then
    say "$(node_name "$i") still holds resources $CLEANUP_TIMEOUT s after the clients left: ${LEFT[$i]}"
    say "  $(status_json "$i" 2>/dev/null || echo '<no status>')"
  fi
done
(( clean_ok == 0 )) && say "every node back to zero (rooms, routers, peers, transports, producers, consumers, pipes)"
record cleanup "$clean_ok" "$(( $(date +%s) - t0 ))"

# ---------------------------------------------------------------- stop
t0=$(date +%s)
exit_ok=0
gone=()
for i in $(seq "$NODES"); do node_alive "$i" || gone+=("$i"); done
stop_nodes
for i in $(seq "$NODES"); do
  st="${NODE_EXIT[$i]:-?}"
  if [[ " ${gone[*]} " == *" $i "* ]]; then
    say "$(node_name "$i") had exited before the stop (status $st)"; exit_ok=1
  elif [[ "$st" != 0 ]]; then
    say "$(node_name "$i") exit status $st after SIGTERM"; exit_ok=1
  fi
  if grep -n -m 5 -E 'panicked at|RUST_BACKTRACE' "$(node_log "$i")"; then
    say "$(node_name "$i") log shows a panic"; exit_ok=1
  fi
done
record nodes-exit "$exit_ok" "$(( $(date +%s) - t0 ))"

finish
