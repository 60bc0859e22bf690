#!/usr/bin/env bash
# End-to-end tests of a Mafalda node with real WebRTC clients.
#
#   scripts/e2e.sh                 # setup (apt/npm/pip, needs the registries), then the tests
#   E2E_SKIP_SETUP=1 scripts/e2e.sh
#   E2E_TESTS="browser" scripts/e2e.sh   # subset: browser aiortc auth cleanup, or features
#   E2E_WORKERS=2 E2E_PLACEMENT=spread scripts/e2e.sh   # peers spread over 2 workers
#   E2E_WORKERS=2 E2E_PLACEMENT=spread E2E_TESTS="features cleanup" scripts/e2e.sh
#
# Everything runs inside a private network namespace with only loopback
# (re-exec under `unshare -n` unless already isolated): a node from
# $MAFALDA_BIN (default ${CARGO_TARGET_DIR:-/var/cache/mafalda/target}/debug/mafalda),
# 3 headless Chromium instances (tests/e2e/browser.mjs), a Chromium + aiortc
# pair (tests/e2e/aiortc_pair.mjs), access tokens as clients see them
# (tests/e2e/auth.mjs: refused joins, grants, the page's `token=`), then a
# check that the node released every peer/transport/producer/consumer. `features` (tests/e2e/features.mjs, not
# in the default list; `make test` runs it on 2 workers with spread
# placement): simulcast layers, chat over DataChannels and the active
# speaker with 3 Chromium. The node runs with `[rooms] active_speaker = true`
# and `[auth] mode = "dev"`: every client fetches its access token from the
# node's GET /api/dev-token.
# Prints `e2e: N passed, M failed`.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MAFALDA_CACHE:-/var/cache/mafalda}"
export MAFALDA_CACHE="$CACHE"
MAFALDA_BIN="${MAFALDA_BIN:-${CARGO_TARGET_DIR:-/var/cache/mafalda/target}/debug/mafalda}"
[[ "$MAFALDA_BIN" = /* ]] || MAFALDA_BIN="$ROOT/$MAFALDA_BIN"
export MAFALDA_BIN
PORT="${E2E_PORT:-3000}"
TESTS="${E2E_TESTS:-browser aiortc auth cleanup}"

say() { echo "e2e: $*"; }

isolated() {
  # Only `lo` visible: we are already in a private network namespace.
  [[ "$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | sort -u | tr '\n' ' ')" == "lo " ]]
}

# ---------------------------------------------------------------- outer phase
if [[ "${MAFALDA_E2E_INNER:-0}" != 1 ]]; then
  if [[ "${E2E_SKIP_SETUP:-0}" != 1 ]]; then
    "$ROOT/scripts/setup-web.sh" || { say "setup-web failed"; exit 1; }
    "$ROOT/scripts/setup-python.sh" || { say "setup-python failed"; exit 1; }
  fi
  if [[ ! -x "$MAFALDA_BIN" ]]; then
    say "node binary not found: $MAFALDA_BIN (build it: cargo build, or set MAFALDA_BIN)"
    echo "e2e: 0 passed, 1 failed"
    exit 1
  fi
  if ! isolated; then
    command -v unshare >/dev/null || { say "unshare not found"; exit 1; }
    export MAFALDA_E2E_INNER=1
    # A private PID namespace too: when this script ends, every process it
    # started (chromium, python, the node) ends with it.
    exec unshare -n -p -f --mount-proc -- bash "$0" "$@"
  fi
fi

# ---------------------------------------------------------------- inner phase
export MAFALDA_E2E_INNER=1
ip link set lo up 2>/dev/null || true
if ! isolated; then
  say "refusing to run: not in a loopback-only network namespace"
  exit 1
fi

WORK="$(mktemp -d /tmp/mafalda-e2e.XXXXXX)"
NODE_LOG="$WORK/node.log"
CONFIG="$WORK/node.toml"
NODE_PID=""
PASSED=0
FAILED=0
FAILED_NAMES=()
T_START=$(date +%s)

cat > "$CONFIG" <<EOF
[node]
name = "e2e"

[http]
listen = "127.0.0.1:$PORT"
static_dir = "$ROOT/web/dist"

[rtc]
listen_ip = "127.0.0.1"
port_min = 40000
port_max = 40999

[workers]
count = ${E2E_WORKERS:-1}

[rooms]
active_speaker = true

# The test clients get their tokens from GET /api/dev-token (a loopback-only
# namespace: nobody else can reach it).
[auth]
mode = "dev"

[log]
level = "${E2E_LOG_LEVEL:-info}"
EOF
if [[ -n "${E2E_PLACEMENT:-}" ]]; then
  printf '\n[placement]\nmode = "%s"\n' "$E2E_PLACEMENT" >> "$CONFIG"
fi

stop_node() {
  [[ -n "$NODE_PID" ]] || return 0
  if kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$NODE_PID" 2>/dev/null; then
      say "node did not exit 10 s after SIGTERM; killing it"
      kill -KILL "$NODE_PID" 2>/dev/null
    fi
  fi
  wait "$NODE_PID" 2>/dev/null
  NODE_PID=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_node
  # Any other child still around (a test driver killed mid-way, chromium, python).
  local kids
  kids="$(jobs -p)"
  [[ -n "$kids" ]] && kill -TERM $kids 2>/dev/null
  pkill -TERM -P $$ 2>/dev/null
  if (( FAILED > 0 || rc != 0 )); then
    echo "----- node log ($NODE_LOG, last 400 lines) -----"
    tail -n 400 "$NODE_LOG" 2>/dev/null
    echo "----- end of node log -----"
    say "work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; FAILED=$((FAILED+1)); exit 130' INT TERM

record() { # name rc seconds
  if [[ "$2" == 0 ]]; then
    PASSED=$((PASSED + 1)); say "PASS $1 (${3}s)"
  else
    FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); say "FAIL $1 (rc $2, ${3}s)"
  fi
}

NODE_STATUS=""
node_alive() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then return 0; fi
  if [[ -z "$NODE_STATUS" && -n "$NODE_PID" ]]; then
    wait "$NODE_PID" 2>/dev/null
    NODE_STATUS=$?
    if (( NODE_STATUS > 128 )); then
      NODE_STATUS="$NODE_STATUS (killed by signal $(kill -l $((NODE_STATUS - 128)) 2>/dev/null || echo $((NODE_STATUS - 128))))"
    fi
    NODE_PID=""
  fi
  say "the node process is gone (exit status ${NODE_STATUS:-unknown})"
  return 1
}

tree_cpu() { # CPU seconds used so far by a process and its live descendants
  local root="$1" total=0 pid ppid ticks
  declare -A kids=() t=()
  for f in /proc/[0-9]*/stat; do
    read -r pid ppid ticks < <(sed 's/.*) //' "$f" 2>/dev/null | awk -v p="${f//[^0-9]/}" '{print p, $2, $12 + $13}') || continue
    [[ -n "$pid" ]] || continue
    kids[$ppid]+="$pid "; t[$pid]=$ticks
  done
  local stack=("$root")
  while ((${#stack[@]})); do
    pid=${stack[-1]}; unset 'stack[-1]'
    total=$((total + ${t[$pid]:-0}))
    for c in ${kids[$pid]:-}; do stack+=("$c"); done
  done
  echo "$((total / 100)).$(printf '%02d' $((total % 100)))"
}

status_json() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT/api/status"; }

# ---------------------------------------------------------------- start the node
say "starting $MAFALDA_BIN node --config $CONFIG (log $NODE_LOG)"
cd "$ROOT"
"$MAFALDA_BIN" node --config "$CONFIG" >"$NODE_LOG" 2>&1 &
NODE_PID=$!

healthy=0
for _ in $(seq 150); do   # up to 30 s
  if ! kill -0 "$NODE_PID" 2>/dev/null; then break; fi
  if [[ "$(curl -fsS --max-time 2 "http://127.0.0.1:$PORT/healthz" 2>/dev/null)" == ok* ]]; then healthy=1; break; fi
  sleep 0.2
done
if [[ $healthy != 1 ]]; then
  say "node did not become healthy within 30 s"
  FAILED=$((FAILED + 1))
  echo "e2e: $PASSED passed, $FAILED failed"
  exit 1
fi
say "node healthy after $(( $(date +%s) - T_START ))s: $(status_json)"

if ! curl -fsS --max-time 5 "http://127.0.0.1:$PORT/" | grep -q '<title>Mafalda'; then
  say "GET / did not serve the demo page (static_dir $ROOT/web/dist)"
fi

# ---------------------------------------------------------------- tests
run_test() { # name timeout cmd...
  local name="$1" limit="$2"; shift 2
  if ! node_alive; then record "$name" 99 0; return; fi
  say "----- $name -----"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=15 "$limit" "$@"
  rc=$?
  record "$name" "$rc" "$(( $(date +%s) - t0 ))"
  node_alive >/dev/null && say "node CPU so far: $(tree_cpu "$NODE_PID") s (node + mediasoup worker)"
}

check_cleanup() {
  # Every peer, transport, producer and consumer must be released (bounded).
  local s last=""
  for _ in $(seq 60); do  # up to ~30 s
    s="$(status_json 2>/dev/null)" || { sleep 0.5; continue; }
    last="$s"
    if node -e '
      const s = JSON.parse(process.argv[1]);
      const keys = ["peers", "transports", "producers", "consumers"];
      const bad = keys.filter((k) => typeof s[k] !== "number" || s[k] !== 0);
      process.exit(bad.length ? 1 : 0);
    ' "$s"; then
      say "status after tests: $s"
      return 0
    fi
    sleep 0.5
  done
  say "node still holds resources 30 s after the clients left: ${last:-<no /api/status answer>}"
  return 1
}

for t in $TESTS; do
  case "$t" in
    browser)
      run_test browser "${E2E_BROWSER_LIMIT:-360}" node "$ROOT/tests/e2e/browser.mjs" --url "http://127.0.0.1:$PORT" \
        --timeout "${E2E_MEDIA_TIMEOUT:-120}" ${E2E_BROWSER_ARGS:-} ;;
    features)
      # Simulcast layers, chat over DataChannels, active speaker (3 Chromium).
      features_args=()
      [[ "${E2E_PLACEMENT:-}" == spread ]] && features_args+=(--expect-workers "${E2E_WORKERS:-1}")
      run_test features "${E2E_FEATURES_LIMIT:-360}" node "$ROOT/tests/e2e/features.mjs" --url "http://127.0.0.1:$PORT" \
        "${features_args[@]}" ${E2E_FEATURES_ARGS:-} ;;
    aiortc)
      run_test aiortc "${E2E_AIORTC_LIMIT:-360}" node "$ROOT/tests/e2e/aiortc_pair.mjs" --url "http://127.0.0.1:$PORT" \
        --timeout "${E2E_MEDIA_TIMEOUT:-120}" ;;
    auth)
      run_test auth "${E2E_AUTH_LIMIT:-240}" node "$ROOT/tests/e2e/auth.mjs" --url "http://127.0.0.1:$PORT" ;;
    cleanup)
      if node_alive; then
        say "----- cleanup -----"
        t0=$(date +%s); check_cleanup; record cleanup $? "$(( $(date +%s) - t0 ))"
      else
        record cleanup 99 0
      fi ;;
    *) say "unknown test $t"; record "$t" 2 0 ;;
  esac
done

# ---------------------------------------------------------------- stop the node
if node_alive; then
  stop_node
else
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("node-exited-early")
fi

(( FAILED > 0 )) && say "failed: ${FAILED_NAMES[*]}"
say "total $(( $(date +%s) - T_START ))s"
echo "e2e: $PASSED passed, $FAILED failed"
(( FAILED == 0 ))
