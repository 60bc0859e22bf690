#!/usr/bin/env bash
# Capacity benchmark of vertical scaling, side by side in one run:
#   - one plain mediasoup router, no Mafalda (the baseline),
#   - a Mafalda room on 1 worker,
#   - a Mafalda room spread over N workers (N = cores),
# for a broadcast room (1 publisher, audio + video, many subscribers) and a
# mesh room (everyone publishes audio + video and receives everyone).
# Each is a `mafalda loadgen --ramp`: the room grows until two windows in a
# row lose more than 1%; "sustained" is the largest room under that.
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
    "$BIN" loadgen --json --duration "$WINDOW" --settle "$SETTLE" "$@" > "$OUT/$name.json"
}

for shape in $SHAPES; do
  if [ "$shape" = broadcast ]; then
    ramp=(--shape broadcast --publishers 1 --ramp 100 --subscribers 9000)
  else
    ramp=(--shape mesh --ramp 4 --subscribers 120)
  fi
  run "$shape-baseline" --target baseline "${ramp[@]}"
  run "$shape-mafalda-1" --workers 1 "${ramp[@]}"
  run "$shape-mafalda-$N" --workers "$N" --placement spread "${ramp[@]}"
done

python3 - "$OUT" "$N" $SHAPES <<'PY'
import json, sys
out, n, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print()
print("| room | target | workers | sustained (<1% loss) | streams | delivered pkt/s | p99 latency ms | worker µs/packet | stopped because |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
ratios = []
for shape in shapes:
    got = {}
    for name, workers in (("baseline", 1), ("mafalda-1", 1), (f"mafalda-{n}", n)):
        r = json.load(open(f"{out}/{shape}-{name}.json"))
        ok = [w for w in r["windows"] if w["subscribers"] == r["sustained"] and w["loss_pct"] <= r["config"]["loss_limit_pct"]]
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
PY
