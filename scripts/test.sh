#!/usr/bin/env bash
# scripts/test.sh — sets up everything, builds, and runs the test suite.
#   SPILLWAY_PRESET=asan-ubsan scripts/test.sh   # another preset
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${SPILLWAY_PRESET:-release}
scripts/setup.sh
echo "== configure ($preset)"
cmake --preset "$preset" >/dev/null
echo "== build ($preset)"
cmake --build --preset "$preset"
echo "== test ($preset)"
ctest --preset "$preset"
