#!/usr/bin/env bash
# Capacity benchmark of vertical scaling, side by side in one run:
#   - one plain mediasoup router, no Mafalda (the baseline),
#   - a Mafalda room on 1 worker,
#   - a Mafalda room spread over N workers (N = cores),
# for a broadcast room (1 publisher, audio + video, many subscribers) and a
# mesh room (everyone publishes audio + video and receives everyone).
# Each is a `mafalda loadgen --ramp`: the room grows until two windows in a
# row lose more than 1% or queue (median one-way latency over 50 ms);
# "sustained" is the largest room within both.
# Then, at a fixed load below saturation, worker CPU per delivered packet of
# plain mediasoup and of Mafalda on 1 worker, alternated three times: the
# per-worker overhead, less noisy than capacity thresholds.
# Everything runs in a private network namespace with only loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CARGO_TARGET_DIR:?set by the Makefile}"
: "${MAFALDA_CACHE:?set by the Makefile}"
BIN="$CARGO_TARGET_DIR/release/mafalda"
OUT="$MAFALDA_CACHE/bench"
mkdir -p "$OUT"
N="${BENCH_WORKERS:-$(nproc)}"
WINDOW="${BENCH_WINDOW:-3}"
SETTLE="${BENCH_SETTLE:-1}"
SHAPES="${BENCH_SHAPES:-broadcast mesh}"

run() {
  local name=$1; shift
  echo "== $name: mafalda loadgen $*" >&2
  unshare -n -- bash -c 'ip link set lo up && exec "$@"' isolated \
    "$BIN" loadgen --json "$@" > "$OUT/$name.json"
}

# BENCH_PARTS="ramps fixed" (default both); the summary reads what is there.
PARTS="${BENCH_PARTS:-ramps fixed}"
[[ " $PARTS " == *" ramps "* ]] && for shape in $SHAPES; do
  if [ "$shape" = broadcast ]; then
    ramp=(--shape broadcast --publishers 1 --ramp 100 --subscribers 9000)
  else
    ramp=(--shape mesh --ramp 4 --subscribers 120)
  fi
  ramp+=(--duration "$WINDOW" --settle "$SETTLE")
  run "$shape-baseline" --target baseline "${ramp[@]}"
  run "$shape-mafalda-1" --workers 1 "${ramp[@]}"
  run "$shape-mafalda-$N" --workers "$N" --placement spread "${ramp[@]}"
done

FIXED="${BENCH_FIXED_SUBSCRIBERS:-400}"
[[ " $PARTS " == *" fixed "* ]] && for i in 1 2 3; do
  run "fixed-baseline-$i" --target baseline --subscribers "$FIXED" --duration 5 --settle 2
  run "fixed-mafalda-1-$i" --workers 1 --subscribers "$FIXED" --duration 5 --settle 2
done

python3 - "$OUT" "$N" $SHAPES <<'PY'
import json, sys
out, n, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print()
print("| room | target | workers | sustained (<1% loss, p50 < 50 ms) | streams | delivered pkt/s | p99 latency ms | worker µs/packet | stopped because |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
ratios = []
for shape in shapes:
    got = {}
    for name, workers in (("baseline", 1), ("mafalda-1", 1), (f"mafalda-{n}", n)):
        r = json.load(open(f"{out}/{shape}-{name}.json"))
        c = r["config"]
        ok = [w for w in r["windows"] if w["subscribers"] == r["sustained"]
              and w["loss_pct"] <= c["loss_limit_pct"] and w["latency_p50_ms"] <= c["latency_p50_limit_ms"]]
        w = ok[-1] if ok else None
        # Capacity in consumer streams (a mesh grows quadratically).
        got[name] = w["streams"] if w else 0
        unit = "subscribers" if shape == "broadcast" else "participants"
        print(f"| {shape} | {name} | {workers} | {r['sustained']} {unit} | {w['streams'] if w else '-'} | "
              f"{r['sustained_pps']:.0f} | {w['latency_p99_ms'] if w else float('nan'):.1f} | "
              f"{w['worker_us_per_packet'] if w else float('nan'):.2f} | {r['stopped_because']} |")
    if got["baseline"] and got["mafalda-1"]:
        ratios.append(f"{shape}: per-worker capacity, Mafalda 1 worker / plain mediasoup = {got['mafalda-1']} / {got['baseline']} streams = {got['mafalda-1'] / got['baseline']:.3f}")
    if got["mafalda-1"]:
        ratios.append(f"{shape}: scaling ratio, {n} workers / ({n} x 1 worker) = {got[f'mafalda-{n}']} / ({n} x {got['mafalda-1']}) streams = {got[f'mafalda-{n}'] / (n * got['mafalda-1']):.3f}")
print()
for r in ratios:
    print(f"- {r}")
print()
print("Fixed load (broadcast, 1 publisher), worker CPU per delivered packet:")
print()
print("| round | plain mediasoup µs/packet | Mafalda 1 worker µs/packet | ratio |")
print("| --- | --- | --- | --- |")
tot = [0.0, 0.0]
for i in (1, 2, 3):
    b = json.load(open(f"{out}/fixed-baseline-{i}.json"))
    m = json.load(open(f"{out}/fixed-mafalda-1-{i}.json"))
    tot[0] += b["worker_us_per_packet"]; tot[1] += m["worker_us_per_packet"]
    print(f"| {i} ({b['subscribers']} subscribers, {b['delivered_pps']:.0f} / {m['delivered_pps']:.0f} pkt/s) | "
          f"{b['worker_us_per_packet']:.3f} | {m['worker_us_per_packet']:.3f} | {m['worker_us_per_packet'] / b['worker_us_per_packet']:.3f} |")
print(f"| all | {tot[0] / 3:.3f} | {tot[1] / 3:.3f} | {tot[1] / tot[0]:.3f} |")
PY
