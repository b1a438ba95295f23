#!/usr/bin/env bash
# scripts/setup.sh — installs what spillway needs from Debian packages.
#
# As root (or with passwordless sudo) it installs the missing packages; as
# anyone else it prints the exact apt-get command and exits non-zero. Quick
# and silent when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates python3
  libboost-dev            # Boost.Interprocess (live stats in shared memory)
  liblz4-dev libxxhash-dev
  liburing-dev            # io_uring: payload writes in flight while hashing
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libopenblas-dev         # the host BLAS
  libcli11-dev nlohmann-json3-dev
  liblemon-dev            # network simplex: the offline bound's min-cost flow
  gnuplot-nox             # plots
  libjemalloc-dev libmimalloc-dev   # allocator baselines in bench/
  prometheus              # promtool, to check the metrics output
  hyperfine
  clang libclang-rt-14-dev          # libFuzzer targets (scripts/fuzz.sh)
  python3-dev             # Python headers: the extension module in python/
  pybind11-dev python3-pybind11     # C++ <-> Python bindings (CMake config and the Python helper)
  python3-numpy           # zero-copy views of pins (buffer protocol, DLPack) in the Python tests
  python3-pytest          # the Python test suite (ctest runs it)
  python3-torch           # DLPack into torch; phase 2: activation offload
  python3-dask python3-distributed python3-zict   # phase 2: the dask worker store and its zict baseline
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: ${#missing[@]} Debian packages missing: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo)
  else
    echo "setup: not root and no passwordless sudo. Run this as root, then re-run the command:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing them with ${sudo[*]:-}${sudo:+ }apt-get"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CMake >= 3.25 (Debian 12 ships 3.25.1).
ver=$(cmake --version | head -n1 | awk '{print $3}')
if ! printf '3.25.0\n%s\n' "$ver" | sort -V -C; then
  echo "setup: CMake $ver is too old; spillway needs 3.25 or newer (Debian 12 or later)" >&2
  exit 1
fi
echo "setup: all dependencies present (cmake $ver)"
