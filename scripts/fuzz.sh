#!/usr/bin/env bash
# Fuzzes kiln's model loader with libFuzzer (coverage-guided, AddressSanitizer), in a separate
# clang build (build-fuzz/). The regular test suite runs a deterministic replay instead (ctest
# fuzz_loader), which needs no clang.
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]      (default 60 s)
# Needs clang-19 and libclang-rt-19-dev (scripts/install_deps.sh installs them when available).
# Findings go to build-fuzz/artifacts/; the grown corpus stays in build-fuzz/corpus/ (copy
# interesting inputs to tests/fuzz_corpus/ to keep them).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-60}
shift || true

for tool in clang-19 clang++-19; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (apt-get install clang-19 libclang-rt-19-dev)" >&2; exit 1; }
done
# Instrument all of kiln for coverage and ASan; the fuzz target alone gets libFuzzer's main.
CC=clang-19 CXX=clang++-19 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKILN_BUILD_FUZZ=ON -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address" >/dev/null
ninja -C "$build" -j "$(nproc)" fuzz_loader

mkdir -p "$build/corpus" "$build/artifacts"
cp -n "$root"/tests/fuzz_corpus/*.onnx "$build/corpus/" 2>/dev/null || true
# Protobuf allocates freely on hostile lengths; keep its own leak reports out of the findings.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} "$build/tests/fuzz_loader" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
  -artifact_prefix="$build/artifacts/" "$@" "$build/corpus"
