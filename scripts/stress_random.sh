#!/usr/bin/env bash
# scripts/stress_random.sh — many short `spillway stress` runs, each with a
# random configuration (workload, threads, tier budgets, buffer sizes, disk
# quota, fault rates, when faults stop, policy, compression, waits, seed),
# each under a timeout; then how each ended:
#   completed   exit 0: every byte verified, invariants held, no hang
#               (documented exceptions — OutOfMemory, IoError, CorruptionError
#               from injected faults — are counted, they do not fail a run)
#   refused     exit 2: the configuration was rejected with a message (a
#               documented exception at setup, e.g. invalid_argument)
#   violation   exit 1: wrong bytes, a lost buffer, a broken invariant, an
#               undocumented exception
#   hang        exit 3 (the watchdog fired) or killed by the per-run timeout
#   crash       anything else (a signal, an abort)
# Every run is reproducible: the command line is printed for each run that
# did not complete, and the whole sequence follows from --seed.
#
#   scripts/stress_random.sh [-n RUNS] [-j PARALLEL] [--seed S] [--bin PATH] [--out DIR]
# Defaults: 1000 runs, one at a time, seed 1, build/release/tools/spillway,
# results in stress-random-out/ (runs.tsv, one JSON per run, logs of the
# runs that did not complete, summary.txt). Exit status 0 when no run hung,
# crashed or found a violation.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1000 jobs=1 seed=1 bin=build/release/tools/spillway out=stress-random-out
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n) runs=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "stress_random.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "stress_random.sh: no spillway binary at $bin (build first, or --bin PATH)" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out"/run-*.json "$out"/run-*.log
: > "$out/runs.tsv"
spill_parent=$(mktemp -d "${TMPDIR:-/tmp}/spillway-stress-random-XXXXXX")
trap 'rm -rf "$spill_parent"' EXIT

RANDOM=$seed
# Functions set variables (no $(...) subshells, which would not advance
# $RANDOM in this shell: the sequence must follow from the seed).
pick() { local -n _into=$1; shift; local a=("$@"); _into=${a[RANDOM % ${#a[@]}]}; }

# One random configuration, into $cfg_args and $cfg_limit (seconds).
make_config() {
  local workload threads device host smallest size_max size_min disk oversub faults stop dur pw iot
  local cap policy codec k
  pick workload uniform zipf sweep chain pinheavy thrash
  threads=$(( 1 + RANDOM % 8 ))
  pick device 0 262144 524288 1048576 2097152 4194304 8388608 1048576 2097152 4194304
  pick host 524288 1048576 2097152 4194304 8388608 16777216
  smallest=$host
  (( device > 0 && device < host )) && smallest=$device
  size_max=$(( smallest / 2 ))
  pick cap 4096 16384 65536 262144 1048576 2097152
  (( cap < size_max )) && size_max=$cap
  pick size_min 1 512 4096 $(( size_max / 4 )) "$size_max"
  (( size_min < 1 )) && size_min=1
  (( size_min > size_max )) && size_min=$size_max
  disk=unlimited
  (( RANDOM % 4 == 0 )) && disk=$(( (device + host) * (2 + RANDOM % 6) ))
  oversub=0
  (( RANDOM % 2 == 0 )) && oversub=$(( 1 + RANDOM % 6 ))
  case $(( RANDOM % 10 )) in
    0|1|2) faults=none ;;
    3|4|5) faults=default ;;
    *)
      faults=""
      for k in write-eio write-enospc read-eio short-write short-read latency write-flip read-flip device-alloc; do
        if (( RANDOM % 2 == 0 )); then
          faults+="${faults:+,}$k=0.$(printf '%03d' $(( RANDOM % 60 )))"
        fi
      done
      faults+="${faults:+,}latency-ms=$(( RANDOM % 30 ))"
      ;;
  esac
  dur=$(( 5 + RANDOM % 16 ))   # tenths of a second: 0.5 .. 2.0 s
  stop=0
  (( RANDOM % 3 == 0 )) && stop=$(( dur / 2 ))
  pw=$(( 100 + RANDOM % 900 ))
  iot=$(( 2000 + RANDOM % 3000 ))
  pick policy lru lookahead
  pick codec adaptive lz4 none
  cfg_args="--workload $workload --threads $threads --duration $(( dur / 10 )).$(( dur % 10 ))"
  cfg_args+=" --device $(( device / 1024 ))K --host $(( host / 1024 ))K --size-min $size_min --size-max $size_max"
  cfg_args+=" --disk $disk --oversub $oversub --faults $faults --faults-stop $(( stop / 10 )).$(( stop % 10 ))"
  cfg_args+=" --pressure-wait-ms $pw --io-timeout-ms $iot --io-threads $(( 1 + RANDOM % 4 ))"
  cfg_args+=" --policy $policy --compression $codec --seed $(( RANDOM * 32768 + RANDOM ))"
  # The watchdog's bound is 2 x io-timeout + pressure-wait, and the harness
  # waits up to 2 x bound + 10 s for its threads to come back: a run past
  # that (plus a margin) is a hang.
  cfg_limit=$(( dur / 10 + 2 * (2 * iot + pw) / 1000 + 60 ))
}

run_one() {
  local i=$1 args=$2 limit=$3 t0 rc outcome
  t0=$(date +%s%N)
  set +e
  # shellcheck disable=SC2086
  timeout -k 5 "$limit" "$bin" stress $args --quiet --spill-dir "$spill_parent" \
    --json "$out/run-$i.json" > "$out/run-$i.log" 2>&1
  rc=$?
  set -e
  case $rc in
    0) outcome=completed ;;
    1) outcome=violation ;;
    2) outcome=refused ;;
    3|124|137) outcome=hang ;;
    *) outcome=crash ;;
  esac
  [[ $outcome == completed ]] && rm -f "$out/run-$i.log"
  printf '%d\t%s\t%d\t%d\t%s\n' "$i" "$outcome" "$rc" $(( ($(date +%s%N) - t0) / 1000000 )) "$args" \
    >> "$out/runs.tsv"
  if [[ $outcome != completed ]]; then
    echo "run $i: $outcome (exit $rc): $bin stress $args" >&2
  fi
}

echo "stress_random.sh: $runs runs, $jobs at a time, seed $seed, results in $out/" >&2
start=$(date +%s)
for (( i = 1; i <= runs; i++ )); do
  make_config
  run_one "$i" "$cfg_args" "$cfg_limit" &
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
  if (( i % 50 == 0 )); then
    echo "  ... $i runs started, $(( $(date +%s) - start )) s" >&2
  fi
done
wait

# The tally, and the totals over every run's JSON summary.
python3 - "$out" "$runs" "$(( $(date +%s) - start ))" "$seed" <<'EOF' | tee "$out/summary.txt"
import collections, json, os, sys
out, runs, secs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(out, "runs.tsv"))]
by = collections.Counter(r[1] for r in rows)
tot = collections.Counter()
faults = collections.Counter()
workloads = collections.Counter()
for r in rows:
    p = os.path.join(out, f"run-{r[0]}.json")
    if not os.path.exists(p):
        continue
    j = json.load(open(p))
    workloads[j["workload"]] += 1
    for k in ("ops", "pins_verified", "bytes_verified"):
        tot[k] += j[k]
    for k, v in j["outcomes"].items():
        tot[k] += v
    tot["corrupted_reported"] += j["final"]["corrupted_reported"]
    tot["lost"] += j["final"]["lost"]
    tot["invariant_checks"] += j["invariant_checks"]
    tot["documented_runs"] += 1 if sum(j["outcomes"].values()) > 0 else 0
    for k, v in j["faults_injected"].items():
        faults[k] += v["injected"]
print(f"spillway stress, {len(rows)} random runs (seed {seed}) in {secs} s")
for k in ("completed", "refused", "violation", "hang", "crash"):
    print(f"  {k:10s} {by.get(k, 0)}")
print(f"  of the completed runs, {tot['documented_runs']} saw documented exceptions: "
      f"OutOfMemory {tot['out_of_memory']}, IoError from pin {tot['fetch_io_errors']}, "
      f"IoError from evict {tot['evict_io_errors']}, CorruptionError {tot['corruption_damaged'] + tot['corruption_read_flip']}")
print(f"  workloads: " + ", ".join(f"{k} {v}" for k, v in sorted(workloads.items())))
print(f"  operations {tot['ops']}, pins verified {tot['pins_verified']}, "
      f"bytes verified {tot['bytes_verified'] / 2**30:.1f} GiB, invariant checks {tot['invariant_checks']}")
print(f"  faults injected: " + (", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "none"))
print(f"  buffers corrupted and reported (CorruptionError) at the end: {tot['corrupted_reported']}; lost: {tot['lost']}")
EOF
bad=$(awk -F'\t' '$2 == "violation" || $2 == "hang" || $2 == "crash"' "$out/runs.tsv" | wc -l)
exit $(( bad > 0 ? 1 : 0 ))
