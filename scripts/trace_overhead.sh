#!/usr/bin/env bash
# scripts/trace_overhead.sh — what the event recorder costs, in one run:
#
#   off: pin+unpin of a resident host buffer (bench/pin_bench) on this tree
#        beside the same benchmark built from BASE, the last commit without
#        the recorder (default 04ede5f), run alternately ROUNDS times;
#   on:  the same pin+unpin on a pool that records (two events per
#        iteration, Pin and Unpin): (traced - untraced) / 2 is the cost of
#        one recorded event.
#
#   scripts/trace_overhead.sh            # ROUNDS=5 by default; about 2 minutes
#   ROUNDS=9 scripts/trace_overhead.sh 04ede5f
#
# The baseline is built in build/trace-baseline/ from a detached worktree.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-04ede5f}
rounds=${ROUNDS:-5}
cmake --preset release >/dev/null
cmake --build --preset release --target pin_bench >/dev/null
src=build/trace-baseline/src
if [[ ! -d $src ]]; then
  mkdir -p build/trace-baseline
  git worktree add --detach "$src" "$base" >/dev/null
fi
cmake -S "$src" -B build/trace-baseline/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSPILLWAY_BUILD_TESTS=OFF >/dev/null
cmake --build build/trace-baseline/build --target pin_bench >/dev/null
out=build/release/trace-overhead
mkdir -p "$out"
run() {  # binary, json
  "$1" --benchmark_filter='^BM_PinUnpin(Traced)?_Host_Read/min' --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true --benchmark_out="$2" --benchmark_out_format=json >/dev/null
}
for ((i = 1; i <= rounds; ++i)); do
  echo "round $i/$rounds"
  run build/release/bench/pin_bench "$out/now-$i.json"
  run build/trace-baseline/build/bench/pin_bench "$out/base-$i.json"
done
python3 - "$out" "$rounds" "$base" <<'PY'
import json, statistics, sys
out, rounds, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def med(prefix, name):
    xs = []
    for i in range(1, rounds + 1):
        for b in json.load(open(f"{out}/{prefix}-{i}.json"))["benchmarks"]:
            if b["run_name"].startswith(name) and b.get("aggregate_name") == "median":
                xs.append(b["cpu_time"])
    return statistics.median(xs), xs
now, now_xs = med("now", "BM_PinUnpin_Host_Read")
old, old_xs = med("base", "BM_PinUnpin_Host_Read")
traced, _ = med("now", "BM_PinUnpinTraced_Host_Read")
print(f"pin+unpin, recorder off: {now:.1f} ns; at {base} (no recorder): {old:.1f} ns; "
      f"off costs {100 * (now / old - 1):+.1f}% (target <= 2%)")
print(f"  per round, this tree: {', '.join(f'{x:.1f}' for x in now_xs)}")
print(f"  per round, {base}:   {', '.join(f'{x:.1f}' for x in old_xs)}")
print(f"pin+unpin, recorder on: {traced:.1f} ns -> {(traced - now) / 2:.0f} ns per recorded event "
      f"(target <= 1000 ns)")
PY
