#!/usr/bin/env bash
# scripts/bench.sh — builds the release preset, runs the Google Benchmark
# programs (bench/*.cpp), keeps their JSON in build/release/bench-results/,
# prints a summary and regenerates docs/performance.md from this run.
#
#   scripts/bench.sh                          # all three programs, 5 repetitions (median)
#   SPILLWAY_BENCH_REPETITIONS=1 scripts/bench.sh
#   SPILLWAY_SPILL_DIR=/mnt/nvme scripts/bench.sh   # where spill files (and the raw baseline file) go
#   SPILLWAY_BENCH_FILTER='spill/none' scripts/bench.sh   # passed to --benchmark_filter
#
# About 18 minutes on 2 cores (2026-12-07; alloc_bench runs 60
# benchmarks, the sweep 22 runs over 1 GiB). The spill benchmarks write up to 64 MiB at a
# time into the spill directory parent ($SPILLWAY_SPILL_DIR, else $TMPDIR,
# else /var/tmp); nothing is left behind (the files are unlinked at once).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== configure (release)"
cmake --preset release >/dev/null
echo "== build (release)"
cmake --build --preset release

# One BLAS thread: the graph benchmark's matrices are small and the machine
# has two cores, which the pool's IO workers use.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

out=build/release/bench-results
mkdir -p "$out"
rm -f "$out"/*.json "$out"/commands.txt
reps=${SPILLWAY_BENCH_REPETITIONS:-5}
filter=${SPILLWAY_BENCH_FILTER:-}

# The exact invocation, for docs/performance.md.
{
  for v in SPILLWAY_BENCH_REPETITIONS SPILLWAY_BENCH_FILTER SPILLWAY_SPILL_DIR TMPDIR; do
    [[ -n ${!v:-} ]] && printf '%s=%q ' "$v" "${!v}"
  done
  echo "scripts/bench.sh"
} >"$out/commands.txt"

for prog in pin_bench alloc_bench spill_bench graph_bench; do
  cmd=("build/release/bench/$prog"
       --benchmark_repetitions="$reps"
       --benchmark_report_aggregates_only=true
       --benchmark_out="$out/$prog.json"
       --benchmark_out_format=json)
  [[ -n $filter ]] && cmd+=(--benchmark_filter="$filter")
  line=$(printf '%q ' "${cmd[@]}")
  echo "${line% }" >>"$out/commands.txt"
  echo "== $prog"
  echo "\$ ${line% }"
  "${cmd[@]}"
done

echo "== out-of-core sweep (memory cgroup; needs root)"
echo "\$ scripts/bench_sweep.sh $out" >>"$out/commands.txt"
scripts/bench_sweep.sh "$out"

echo "== summary"
python3 scripts/bench_table.py "$out" docs/performance.md
echo "results: $out/*.json"
