#!/usr/bin/env bash
# scripts/main.sh — sets up everything, builds, and runs the main job: a demo
# that spills a working set through device, host and disk and prints what
# moved. Extra arguments go to `spillway demo` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
exec build/release/tools/spillway demo "$@"
