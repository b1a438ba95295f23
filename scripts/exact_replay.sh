#!/usr/bin/env bash
# scripts/exact_replay.sh — does a recorded run replay to exactly its bytes
# moved? (docs/replay.md, "Exact replay"). Records the out-of-core sweep
# (bench/sweep_bench spillway: one thread, next-use hints, prefetch of the
# next blocks, the default proactive band) RUNS times in the default mode and
# RUNS times with `spillway record --deterministic`, replays every log with
# its own options, and prints one line per run: the bytes the run moved (its
# footer), what the replay moved, and whether the replay called itself exact.
#
#   scripts/exact_replay.sh [RUNS]         # default 5
#   EXACT_WS=128M EXACT_BUDGET=24M EXACT_BLOCK=256K EXACT_PASSES=3 EXACT_POLICY=lookahead
#
# Needs build/release with spillway_cli and sweep_bench built.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
ws=${EXACT_WS:-128M}
budget=${EXACT_BUDGET:-24M}
block=${EXACT_BLOCK:-256K}
passes=${EXACT_PASSES:-3}
policy=${EXACT_POLICY:-lookahead}
cli=build/release/tools/spillway
bench=build/release/bench/sweep_bench
[[ -x $cli ]] || cli=build/release/spillway
for b in "$cli" "$bench"; do
  [[ -x $b ]] || { echo "exact_replay.sh: $b is not built (cmake --build build/release --target spillway_cli sweep_bench)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

total() {  # the "total" of a bytes-moved object in the replay's JSON
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j[sys.argv[2]]["total"])' "$1" "$2"
}
field() {
  python3 -c 'import json,sys; print(str(json.load(open(sys.argv[1]))[sys.argv[2]]).lower())' "$1" "$2"
}

echo "sweep: working set $ws, budget $budget, block $block, $passes passes, $policy; $runs runs per mode"
printf '%-14s %4s %14s %14s %8s %8s %10s\n' mode run recorded replayed match exact run_s
for mode in default deterministic; do
  flag=()
  [[ $mode == deterministic ]] && flag=(--deterministic)
  for ((i = 1; i <= runs; ++i)); do
    log=$work/$mode.$i.swlog
    t0=$(date +%s.%N)
    "$cli" record "${flag[@]}" --out "$log" -- "$bench" spillway --dir "$work" --working-set "$ws" \
      --budget "$budget" --block "$block" --passes "$passes" --policy "$policy" >/dev/null
    t1=$(date +%s.%N)
    "$cli" replay "$log" --disk-dir "$work" --json >"$work/r.json"
    printf '%-14s %4d %14s %14s %8s %8s %10.2f\n' "$mode" "$i" "$(total "$work/r.json" recorded_bytes_moved)" \
      "$(total "$work/r.json" bytes_moved)" "$(field "$work/r.json" matches_recorded)" \
      "$(field "$work/r.json" exact_expected)" "$(echo "$t1 - $t0" | bc)"
    rm -f "$log"
  done
done
