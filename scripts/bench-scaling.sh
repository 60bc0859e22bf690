#!/usr/bin/env bash
# Capacity benchmark of vertical scaling, side by side in one run:
#   - one plain mediasoup router, no Mafalda (the baseline),
#   - plain mediasoup on N workers (N = cores): a router on each,
#     participants in turn, mediasoup's own pipe_producer_to_router,
#   - a Mafalda room on 1 worker,
#   - a Mafalda room spread over N workers,
# for a broadcast room (1 publisher, audio + video, many subscribers) and a
# mesh room (everyone publishes audio + video and receives everyone).
# Each is a `mafalda loadgen --ramp`: the room grows until a size fails twice
# in a row (loss over 1%, or a median one-way latency over 50 ms: queueing),
# the second time after a 10 s pause (the keyframes a step's joins ask for
# go to every subscriber: near capacity that burst takes seconds to drain);
# "sustained" is the largest room within both limits.
# The four targets are run one after the other, BENCH_ROUNDS times (default
# 3), interleaved, and the medians are compared: single ramps on a shared
# machine vary by 10-20%.
# Loadgen shares the machine with the workers, so it measures one subscriber
# in BENCH_MEASURE_ONE_IN (default 32; the first four always) and lets the
# kernel drop the packets of the others into sockets nobody reads
# (`--measure-one-in`): the workers forward to every subscriber alike, while
# loadgen's own CPU stays small.
# With BENCH_PARTS="ramps fixed", it then also compares worker CPU per
# delivered packet of plain mediasoup and Mafalda on 1 worker at a fixed
# load, alternated three times.
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
SAMPLE="${BENCH_MEASURE_ONE_IN:-32}"
ROUNDS="${BENCH_ROUNDS:-3}"
PARTS="${BENCH_PARTS:-ramps}"

run() {
  local name=$1; shift
  echo "== $(date -u +%H:%M:%S) $name: mafalda loadgen $*" >&2
  unshare -n -- bash -c 'ip link set lo up && exec "$@"' isolated \
    "$BIN" loadgen --json --measure-one-in "$SAMPLE" "$@" > "$OUT/$name.json"
}

if [[ " $PARTS " == *" ramps "* ]]; then
  rm -f "$OUT"/ramp-*.json
  for round in $(seq 1 "$ROUNDS"); do
    for shape in $SHAPES; do
      if [ "$shape" = broadcast ]; then
        ramp=(--shape broadcast --publishers 1 --ramp 100 --subscribers 9000)
      else
        ramp=(--shape mesh --ramp 4 --subscribers 120)
      fi
      ramp+=(--duration "$WINDOW" --settle "$SETTLE")
      run "ramp-$shape-baseline-1-$round" --target baseline --workers 1 "${ramp[@]}"
      run "ramp-$shape-baseline-$N-$round" --target baseline --workers "$N" "${ramp[@]}"
      run "ramp-$shape-mafalda-1-$round" --workers 1 "${ramp[@]}"
      run "ramp-$shape-mafalda-$N-$round" --workers "$N" --placement spread "${ramp[@]}"
    done
  done
fi

FIXED="${BENCH_FIXED_SUBSCRIBERS:-400}"
if [[ " $PARTS " == *" fixed "* ]]; then
  rm -f "$OUT"/fixed-*.json
  for i in 1 2 3; do
    run "fixed-baseline-$i" --target baseline --subscribers "$FIXED" --duration 5 --settle 2
    run "fixed-mafalda-1-$i" --workers 1 --subscribers "$FIXED" --duration 5 --settle 2
  done
fi

python3 - "$OUT" "$N" "$PARTS" $SHAPES <<'PY'
import glob, json, os, statistics, sys
out, n, parts, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
targets = (("baseline-1", "plain mediasoup", 1), (f"baseline-{n}", "plain mediasoup", n),
           ("mafalda-1", "Mafalda", 1), (f"mafalda-{n}", "Mafalda", n))

def sustained_window(r):
    c = r["config"]
    ok = [w for w in r["windows"] if w["subscribers"] == r["sustained"]
          and w["loss_pct"] <= c["loss_limit_pct"] and w["latency_p50_ms"] <= c["latency_p50_limit_ms"]]
    return ok[-1] if ok else None

def rounds(shape, name):
    files = sorted(glob.glob(f"{out}/ramp-{shape}-{name}-*.json"),
                   key=lambda f: int(f.rsplit("-", 1)[1].split(".")[0]))
    return [json.load(open(f)) for f in files]

if "ramps" in parts:
    print()
    print("| room | target | workers | round | sustained (<1% loss, p50 < 50 ms) | streams (measured) | delivered pkt/s | p99 latency ms | worker CPU % | loadgen CPU % | failed at |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    medians = {}
    for shape in shapes:
        unit = "subscribers" if shape == "broadcast" else "participants"
        for name, label, workers in targets:
            streams = []
            for i, r in enumerate(rounds(shape, name), 1):
                w = sustained_window(r)
                # Capacity in consumer streams (a mesh grows quadratically).
                streams.append(w["streams"] if w else 0)
                cpu = " + ".join(f"{c:.0f}" for c in w["worker_cpu_pct"]) if w else "-"
                failed = r["windows"][-1]["subscribers"] if r["stopped_because"].startswith("loss") else r["stopped_because"]
                print(f"| {shape} | {label} | {workers} | {i} | {r['sustained']} {unit} | "
                      f"{w['streams'] if w else '-'} ({w['measured_streams'] if w else '-'}) | "
                      f"{r['sustained_pps']:.0f} | {w['latency_p99_ms'] if w else float('nan'):.1f} | "
                      f"{cpu} | {w['loadgen_cpu_pct'] if w else float('nan'):.0f} | {failed} |")
            medians[(shape, name)] = statistics.median(streams) if streams else 0
    print()
    print("Medians over the rounds, in consumer streams:")
    print()
    for shape in shapes:
        b, bn, m1, mn = (medians[(shape, name)] for name, _, _ in targets)
        print(f"- {shape}: plain mediasoup {b:g} (1 worker), {bn:g} ({n} workers); "
              f"Mafalda {m1:g} (1 worker), {mn:g} ({n} workers)")
        if b:
            print(f"  - per-worker capacity, Mafalda 1 worker / plain mediasoup 1 worker = {m1 / b:.3f}")
            print(f"  - plain mediasoup's own scaling, {n} workers / ({n} x 1 worker) = {bn / (n * b):.3f}")
        if m1:
            print(f"  - Mafalda's scaling ratio, {n} workers / ({n} x 1 worker) = {mn / (n * m1):.3f}")
        if bn:
            print(f"  - {n} workers, Mafalda / plain mediasoup with pipe_producer_to_router = {mn / bn:.3f}")

if "fixed" in parts:
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
