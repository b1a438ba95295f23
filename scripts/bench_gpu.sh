#!/usr/bin/env bash
# scripts/bench_gpu.sh — runs the CUDA tier's benchmarks and GPU tests on a
# GPU machine and keeps what they printed, with the device, driver and date,
# under docs/results/. Without a GPU it says so and writes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "bench_gpu: no GPU here (nvidia-smi finds none); nothing measured"
  exit 0
fi
stamp=$(date -u +%Y-%m-%dT%H%MZ)
out=docs/results/gpu-$stamp.md
{
  echo "# GPU run $stamp"
  echo
  echo "Command: \`scripts/bench_gpu.sh\` at commit \`$(git rev-parse --short HEAD)\`"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo '```'
  echo
  echo "## GPU tests"
  echo '```'
  ctest --preset release -L cuda 2>&1 | tail -n 15
  echo '```'
  echo
  echo "## cuda_bench"
  echo '```'
  build/release/bench/cuda_bench --benchmark_min_time=0.2 2>&1
  echo '```'
  echo
  echo "## session-growth on the GPU (MatMul on cuBLAS), default budgets"
  echo '```'
  build/release/tools/spillway session-growth --backend cuda --out "build/session-growth-gpu" 2>&1
  echo '```'
} | tee "$out"
echo "bench_gpu: wrote $out"
