#!/usr/bin/env bash
# Configures (CMake, Ninja, Release) and builds kiln with its tests.
#   scripts/build.sh [extra cmake args...]
# KILN_BUILD_DIR chooses the build folder (default: build/ in the repository).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
ninja -C "$build" -j "$(nproc)"
