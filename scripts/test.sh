#!/usr/bin/env bash
# The test command (CI runs it through .ci/run): installs dependencies, builds, runs every ctest.
#   scripts/test.sh [ctest args...]     e.g. scripts/test.sh -R conformance
# The model tests read ../shared/models (override with -DKILN_SHARED_DIR=... via KILN_CMAKE_ARGS).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
"$root/scripts/install_deps.sh" --python
# shellcheck disable=SC2086
KILN_BUILD_DIR=$build "$root/scripts/build.sh" ${KILN_CMAKE_ARGS:-}
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
