#!/usr/bin/env bash
# scripts/main.sh — sets up everything, builds, and runs the main job: a demo
# that spills a working set through device, host and disk and prints what
# moved. Extra arguments go to `spillway demo` (see `spillway demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== configure (release)"
cmake --preset release >/dev/null
echo "== build (release)"
cmake --build --preset release
tool=build/release/tools/spillway
if [[ ! -x $tool ]]; then
  echo "main: $tool was not built (no tools/*.cpp yet?)" >&2
  exit 1
fi
echo "== $tool demo $*"
exec "$tool" demo "$@"
