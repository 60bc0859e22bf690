# shellcheck shell=bash
# Steps of scripts/e2e-cluster.sh about load and failures, run through
# `mafalda loadgen` (sourced by it; uses its helpers: say, record,
# restart_nodes, status_json, node_ip, ...).
#
#   spill-load  a loadgen broadcast room grows through node 1 past its
#               capacity (40 producers + consumers per worker, one worker
#               per node): later subscribers land on a second node and,
#               once it is full, on the third; under 1% loss; the room
#               holds more consumers than any node's capacity

# "PEERS CLIENT_CONSUMERS" of node i (pipe consumers not counted), from
# one status; "0 0" when it does not answer.
node_counts() {
  status_json "$1" 2>/dev/null | node -e '
    const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const pipes = (s.workerDetails || []).reduce((n, w) => n + (w.pipeConsumers || 0), 0);
    console.log(`${s.peers} ${s.consumers - pipes}`);' 2>/dev/null || echo "0 0"
}

step_spill_load() {
local cap=40 subs="${E2E_SPILL_SUBSCRIBERS:-45}"
say "----- spill-load: $cap producers + consumers per worker; $subs loadgen subscribers through $(node_name 1) -----"
local t0 rc=0 lg i c p total max_total=0 first="" second="" first_peers_then=0
local -A peers=()
t0=$(date +%s)
restart_nodes "$BASE_EXTRA"$'\n'"worker_capacity = $cap"$'\nwatermark = 1.0' || rc=94
if (( rc == 0 )); then
  "$MAFALDA_BIN" loadgen --target "ws://$(node_ip 1):$HTTP_PORT/ws" --room "spill-$RANDOM" \
    --publishers 1 --subscribers "$subs" --settle 2 --duration 4 --ip "$CLIENT_IP" --loss-limit 1 \
    >"$WORK/spill-load.log" 2>&1 &
  lg=$!
  # Which peer node serves subscribers first, and how full it was when the
  # other one got its first.
  while kill -0 "$lg" 2>/dev/null; do
    total=0
    for i in $(seq "$NODES"); do
      read -r p c <<<"$(node_counts "$i")"
      total=$((total + c))
      peers[$i]=$p
    done
    (( total > max_total )) && max_total=$total
    for i in 2 3; do
      if (( ${peers[$i]:-0} > 0 )); then
        if [[ -z "$first" ]]; then first=$i
        elif [[ -z "$second" && "$i" != "$first" ]]; then second=$i; first_peers_then=${peers[$first]}
        fi
      fi
    done
    sleep 0.3
  done
  wait "$lg"
  rc=$?
  tail -n 6 "$WORK/spill-load.log" | sed 's/^/  /'
  say "spill-load: at most $max_total client consumers in the room (capacity $cap per node);" \
    "first spilled to $(node_name "${first:-0}"), then to $(node_name "${second:-0}") once the first held ${first_peers_then} subscribers"
  if [[ -z "$first" || -z "$second" ]]; then
    say "spill-load: the room did not spill to both other nodes"; [[ "$rc" == 0 ]] && rc=93
  elif (( first_peers_then < (cap - 2) / 2 - 2 )); then
    # The first peer holds 2 pipe producers and 2 consumers per subscriber:
    # full at (cap - 2) / 2 subscribers (one poll of slack).
    say "spill-load: the second peer was used before the first was full"; [[ "$rc" == 0 ]] && rc=92
  fi
  if (( max_total <= cap )); then
    say "spill-load: the room never held more consumers than one node's capacity"; [[ "$rc" == 0 ]] && rc=91
  fi
fi
nodes_up || { [[ "$rc" == 0 ]] && rc=98; }
record spill-load "$rc" "$(( $(date +%s) - t0 ))"
}

# ---------------------------------------------------------------- soak helpers
# The soak steps run on the default fan-out (4): every stream goes straight
# from its publisher's node to each subscriber's node, none through a third
# node. (With a relay tree, a stream relayed through a lost node stops until
# SWIM declares that node down; see docs/operations.md.)
SOAK_EXTRA=""

# The soak room of the kill, abort and rolling steps: 3 publishers (audio +
# video) and 3 subscribers over the three nodes (participant i through node
# i mod 3 + 1: pub-0 and sub-0 on node 1, ...), for `secs` seconds.
SOAK_PID=""
start_soak() { # name secs [extra loadgen flags...]
  local name="$1" secs="$2"; shift 2
  local urls
  urls="$(for i in $(seq "$NODES"); do echo "ws://$(node_ip "$i"):$HTTP_PORT/ws"; done | paste -sd,)"
  rm -f "$WORK/$name.ready" "$WORK/$name.json"
  SOAK_ROOM="$name-$RANDOM"
  "$MAFALDA_BIN" loadgen --soak "$secs" --target "$urls" --room "$SOAK_ROOM" \
    --publishers 3 --subscribers 3 --ip "$CLIENT_IP" --report "$WORK/$name.json" \
    --ready-file "$WORK/$name.ready" "$@" >"$WORK/$name.log" 2>&1 &
  SOAK_PID=$!
}
soak_ready() { [[ -s "$WORK/$1.ready" ]]; }
# "role:home" of room $2 in node status $1, or "none".
room_role() {
  node -e '
    const [json, room] = process.argv.slice(1);
    const r = (JSON.parse(json).roomDetails || []).find((r) => r.room === room);
    console.log(r ? `${r.role}:${r.home ?? ""}` : "none");
  ' "$1" "$2"
}
wait_soak() { # -> the soak's exit status
  wait "$SOAK_PID"
  local rc=$?
  SOAK_PID=""
  return $rc
}
# The node (index) that is the home of room $1, or nothing.
home_of() {
  local i r
  for i in $(seq "$NODES"); do
    node_alive "$i" || continue
    r="$(room_role "$(status_json "$i" 2>/dev/null || echo '{}')" "$1")"
    [[ "$r" == "home:$(node_name "$i")" ]] && { echo "$i"; return 0; }
  done
  return 1
}
# Exactly one of the given nodes is the room's home and every other one
# that has the room is its shard; each node's status is asked once, and
# LAST_ROLES says what each node answered.
one_home_among() { # room node-indices...
  local room="$1" i homes=0 home="" all=(); shift
  local -A role=()
  for i in "$@"; do
    role[$i]="$(room_role "$(status_json "$i" 2>/dev/null || echo '{}')" "$room")"
    all+=("$(node_name "$i")=${role[$i]}")
    [[ "${role[$i]}" == home:* ]] && homes=$((homes + 1)) && home="$(node_name "$i")"
  done
  LAST_ROLES="${all[*]}"
  (( homes == 1 )) || return 1
  for i in "$@"; do
    [[ "${role[$i]}" == "home:$home" || "${role[$i]}" == "shard:$home" || "${role[$i]}" == none ]] || return 1
  done
}
# On node i: no pipe link to or from node `dead` in any room, and as many
# client consumers as its subscribers need (each subscriber consumes the
# 6 streams of the 3 publishers; a node's subscribers are its peers minus
# its publishers, which have 2 producers each).
settled_without() { # dead i...
  local dead="$1" i s; shift
  for i in "$@"; do
    s="$(status_json "$i" 2>/dev/null)" || return 1
    node -e '
      const [json, dead] = process.argv.slice(1);
      const s = JSON.parse(json);
      const w = s.workerDetails || [];
      const pipeConsumers = w.reduce((n, x) => n + (x.pipeConsumers || 0), 0);
      const pipeProducers = w.reduce((n, x) => n + (x.pipeProducers || 0), 0);
      const clientConsumers = s.consumers - pipeConsumers;
      const publishers = (s.producers - pipeProducers) / 2;
      const subscribers = s.peers - publishers;
      const links = (s.roomDetails || []).flatMap((r) => [...(r.linksIn || []), ...(r.linksOut || [])]);
      const stale = links.filter((l) => `${l.from} ${l.to}`.includes(dead + "/"));
      process.exit(stale.length === 0 && clientConsumers === 6 * subscribers ? 0 : 1);
    ' "$s" "$(node_name "$dead")" || return 1
  done
}
# Checks a soak report after node `dead` was lost: the streams between
# participants that were not on it never stopped for `limit` ms or more;
# its participants rejoined elsewhere and receive again, and its
# publisher's stream reached everyone again. Prints the longest gap between
# survivors and the longest of the streams to or from the lost node's
# participants (their recovery: from the last packet before the loss to
# the first after the rejoin).
check_loss_report() { # report dead-index limit-ms
  node -e '
    const fs = require("fs");
    const [file, dead, limit] = process.argv.slice(1);
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    const deadTarget = Number(dead) - 1;
    const by = Object.fromEntries(r.participants.map((p) => [p.name, p]));
    const onDead = (name) => by[name].joins[0].target === deadTarget;
    const bad = [];
    let worst = 0;
    let recovery = 0;
    for (const p of r.pairs) {
      const pub = p.stream.split("/")[0];
      if (onDead(p.subscriber) || onDead(pub)) {
        recovery = Math.max(recovery, p.max_gap_ms ?? Infinity);
      } else {
        worst = Math.max(worst, p.max_gap_ms ?? Infinity);
        if (!(p.max_gap_ms < Number(limit))) bad.push(`${p.subscriber} <- ${p.stream}: gap ${p.max_gap_ms} ms`);
      }
      // Everything flows again by the end (moved participants included).
      if (!(p.last_ms > r.duration_ms - 3000)) bad.push(`${p.subscriber} <- ${p.stream}: nothing after ${p.last_ms} ms`);
    }
    for (const p of r.participants) {
      if (onDead(p.name) && p.rejoins < 1) bad.push(`${p.name} (on the lost node) did not rejoin`);
    }
    const moved = r.participants.filter((p) => onDead(p.name)).map((p) =>
      `${p.name}: ${p.joins.map((j) => `${j.at_ms}ms ${j.url}`).join(" -> ")}`);
    console.log(`longest gap between survivors ${worst} ms (limit ${limit}); recovery of the participants of the lost node (longest gap of their streams) ${recovery} ms; moved: ${moved.join("; ")}`);
    if (bad.length) { console.log(bad.join("\n")); process.exit(1); }
  ' "$1" "$2" "$3"
}

# ---------------------------------------------------------------- kill / abort
# A node is lost under a soak room with participants on every node: `sig`
# KILL (the home node) or ABRT (what a C++ abort in a mediasoup worker
# raises: the worker is a thread of the node, so it takes the whole node).
# The survivors must see it down, the room must re-home among them, the
# streams between them must not stop for 1 s, its participants must rejoin
# elsewhere, and the survivors' counts must settle to what the remaining
# participants need. The lost node is started again afterwards.
node_loss_step() { # step-name signal which(home|other)
  local step="$1" sig="$2" which="$3"
  say "----- $step: SIG$sig to a node ($which: the soak room's home or another) -----"
  local t0 rc=0 room victim i survivors=() t_lost seen_ms
  t0=$(date +%s)
  restart_nodes "$SOAK_EXTRA" || rc=94
  if (( rc == 0 )); then
    start_soak "$step" 30
    wait_until 30 "the soak room to be ready" soak_ready "$step" || rc=90
    room="$SOAK_ROOM"
    sleep 3 # media flowing steadily before the loss
  fi
  if (( rc == 0 )); then
    victim="$(home_of "$room")"
    if [[ -z "$victim" ]]; then
      say "$step: the room has no home"; rc=89
    elif [[ "$which" != home ]]; then
      victim=$(( victim % NODES + 1 ))
    fi
  fi
  if (( rc == 0 )); then
    for i in $(seq "$NODES"); do (( i == victim )) || survivors+=("$i"); done
    t_lost=$(date +%s%3N)
    local vpid="${NODE_PID[$victim]}" role="the room's home" st
    kill "-$sig" "$vpid"
    wait "$vpid" 2>/dev/null
    st=$?
    unset "NODE_PID[$victim]"
    [[ "$which" == home ]] || role="not the room's home"
    say "$step: $(node_name "$victim") ($role) got SIG$sig (exit status $st)"
    down() { local i s; for i in "${survivors[@]}"; do s="$(status_json "$i")" && sees "$s" "$(node_name "$victim")" down || return 1; done; }
    wait_until 15 "the survivors to see $(node_name "$victim") down" down || rc=88
    seen_ms=$(( $(date +%s%3N) - t_lost ))
    say "$step: declared down by every survivor ${seen_ms} ms after the signal"
    wait_until 20 "one home among the survivors" one_home_among "$room" "${survivors[@]}" || rc=87
    say "$step: roles now ${LAST_ROLES:-?}"
    wait_until 20 "the survivors' pipes and consumers to settle" settled_without "$victim" "${survivors[@]}" || rc=86
  fi
  if [[ -n "$SOAK_PID" ]]; then
    wait_soak || { say "$step: the soak failed:"; tail -n 5 "$WORK/$step.log"; [[ "$rc" == 0 ]] && rc=85; }
  fi
  tail -n 3 "$WORK/$step.log" | sed 's/^/  /'
  if (( rc == 0 )); then
    check_loss_report "$WORK/$step.json" "$victim" 1000 || rc=84
  fi
  [[ -n "${victim:-}" ]] && ! node_alive "$victim" && start_node "$victim"
  wait_until 30 "the cluster to re-form" all_alive || { [[ "$rc" == 0 ]] && rc=83; }
  record "$step" "$rc" "$(( $(date +%s) - t0 ))"
}
step_kill() { node_loss_step kill KILL home; }
step_abort() { node_loss_step abort ABRT other; }

# ---------------------------------------------------------------- rolling restart
# Every node in turn drains (SIGTERM), exits by itself, and starts again,
# under a soak room: no subscriber's stream may stop for 2 s or more, and
# some node must hold the room at every moment.
step_rolling() {
  say "----- rolling: drain, stop and start each node in turn under a soak room -----"
  local t0 rc=0 room i st watch_pid
  t0=$(date +%s)
  restart_nodes "$SOAK_EXTRA" || rc=94
  if (( rc == 0 )); then
    start_soak rolling 50 --max-gap-ms 2000
    wait_until 30 "the soak room to be ready" soak_ready rolling || rc=90
    room="$SOAK_ROOM"
  fi
  if (( rc == 0 )); then
    # The room exists somewhere throughout: polled every 0.3 s.
    ( while :; do
        found=0
        for j in $(seq "$NODES"); do
          r="$(room_role "$(status_json "$j" 2>/dev/null || echo '{}')" "$room")"
          [[ "$r" == home:* || "$r" == shard:* ]] && { found=1; break; }
        done
        (( found )) || echo "no node holds the room at $(date +%T.%N)" >>"$WORK/rolling.gone"
        sleep 0.3
      done ) &
    watch_pid=$!
    for i in $(seq "$NODES"); do
      say "rolling: draining $(node_name "$i")"
      kill -TERM "${NODE_PID[$i]}"
      local waited=0
      while node_alive "$i" && (( waited < 150 )); do sleep 0.2; waited=$((waited + 1)); done
      if node_alive "$i"; then
        say "rolling: $(node_name "$i") still running 30 s after SIGTERM"; rc=82
        kill -KILL "${NODE_PID[$i]}"
      fi
      wait "${NODE_PID[$i]}" 2>/dev/null
      st=$?
      unset "NODE_PID[$i]"
      say "rolling: $(node_name "$i") drained and exited (status $st) after $((waited / 5)) s"
      [[ "$st" == 0 ]] || { [[ "$rc" == 0 ]] && rc=81; }
      start_node "$i"
      wait_until 30 "$(node_name "$i") to be back in the cluster" all_alive || { [[ "$rc" == 0 ]] && rc=80; }
    done
    kill "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null
    if [[ -s "$WORK/rolling.gone" ]]; then
      say "rolling: the room was gone: $(head -n 3 "$WORK/rolling.gone")"; [[ "$rc" == 0 ]] && rc=79
    fi
  fi
  if [[ -n "$SOAK_PID" ]]; then
    wait_soak || { say "rolling: a subscriber lost media for 2 s or more (or the soak failed)"; [[ "$rc" == 0 ]] && rc=78; }
  fi
  tail -n 4 "$WORK/rolling.log" | sed 's/^/  /'
  record rolling "$rc" "$(( $(date +%s) - t0 ))"
}
