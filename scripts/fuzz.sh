#!/usr/bin/env bash
# scripts/fuzz.sh — builds the libFuzzer targets (the `fuzz` preset: clang,
# ASan + UBSan) and runs each for FUZZ_SECONDS (default 30), all at once, on a
# copy of its seed corpus in fuzz/corpus/. Exits non-zero, keeping the crashing input in
# build/fuzz/artifacts/, when a target finds a crash, a leak or a timeout.
#   scripts/fuzz.sh                     # every target, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh record_decoder
# New seeds worth keeping can be merged into fuzz/corpus/ with libFuzzer's
# -merge=1. The corpora were made by build/fuzz/fuzz/fuzz_make_seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(record_decoder options_env access_log)
command -v clang++ >/dev/null || { echo "fuzz: clang++ is needed (scripts/setup.sh installs clang)" >&2; exit 1; }
cmake --preset fuzz >/dev/null
cmake --build build/fuzz
mkdir -p build/fuzz/artifacts
# The targets run side by side (one libFuzzer process each, one core each).
declare -A pids works
for t in "${targets[@]}"; do
  works[$t]=$(mktemp -d)
  cp fuzz/corpus/"$t"/* "${works[$t]}"/
  echo "== fuzz $t for $seconds s"
  build/fuzz/fuzz/"${t}"_fuzz -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/artifacts/"$t"- -print_final_stats=1 "${works[$t]}" \
    >build/fuzz/artifacts/"$t".log 2>&1 &
  pids[$t]=$!
done
failed=()
for t in "${targets[@]}"; do
  rc=0
  wait "${pids[$t]}" || rc=$?
  echo "== fuzz $t (exit $rc)"
  tail -n 12 build/fuzz/artifacts/"$t".log
  rm -rf "${works[$t]}"
  [[ $rc -eq 0 ]] || failed+=("$t")
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: ${failed[*]} failed; the input is in build/fuzz/artifacts/, the log in build/fuzz/artifacts/<target>.log" >&2
  exit 1
fi
echo "fuzz: no crash in ${targets[*]}"
