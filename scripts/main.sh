#!/usr/bin/env bash
# scripts/main.sh — sets up everything, builds, and runs the main job: the
# session-growth experiment on its embedded defaults (about a minute on a
# 2-core machine; no GPU needed). It trains the same perceptron twice — in a
# TF1-style graph that keeps growing, and with clear_session() every epoch —
# and writes session-growth-out/session_growth.{csv,svg} and a summary table.
# Extra arguments go to `spillway session-growth` (see --help), e.g.
#   scripts/main.sh --epochs 40 --trace session-growth-out/trace.json
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== configure (release)"
cmake --preset release >/dev/null
echo "== build (release)"
cmake --build --preset release
tool=build/release/tools/spillway
if [[ ! -x $tool ]]; then
  echo "main: $tool was not built" >&2
  exit 1
fi
echo "== $tool session-growth $*"
exec "$tool" session-growth "$@"
