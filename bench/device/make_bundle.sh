#!/usr/bin/env bash
# Packs kiln for a machine that has neither LLVM nor this Debian's libraries (the device machine of
# the workplace's `device` tool, an Intel Xeon with AMX): kiln and one binary of the JIT-running
# unit tests, linked against LLVM's static libraries, with the oneDNN anchor, the peak probes and
# every shared library they need, including this machine's loader and libc, so they run anywhere
# x86-64 by `lib/ld-linux-x86-64.so.2 --library-path lib BINARY`. bench/device/run.sh unpacks and
# uses it. Output (about 45 MB, git-ignored): .dev/bundle.tar.zst, .dev/boot/ (zstd to unpack it),
# .dev/models/ (../shared/models/make_models.py, to generate ResNet-50 and BERT-base there).
#   bench/device/make_bundle.sh        # after bench/run.sh --quick or a Release build in build/
# Then, with the device tool: run `bash bench/device/run.sh` with carry [".dev"] (~5 min there).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${KILN_BUILD_DIR:-build}
SHARED=$(cd .. && pwd)/shared
STAGE=$(mktemp -d); trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" .dev/boot .dev/models
ninja -C "$BUILD" kiln tir_tests schedule_tests runtime_tests precision_tests tile_tests >/dev/null
[[ -x $BUILD/anchors/dnnl_bench ]] || make -s -C "$SHARED/anchors" B="$(cd "$BUILD" && pwd)/anchors" "$(cd "$BUILD" && pwd)/anchors/dnnl_bench"
gcc -O2 -fopenmp bench/fma_peak.c -o "$STAGE/bin/fma_peak"
gcc -O2 -mamx-tile -mamx-bf16 -mamx-int8 bench/amx_peak.c -o "$STAGE/bin/amx_peak"
cp "$BUILD/anchors/dnnl_bench" "$STAGE/bin/"

# Relink ninja's own link lines with LLVM's static libraries in place of libLLVM.so (which, with its
# dependencies z3, ICU and libxml2, would not fit the 64 MiB the device tool carries).
LLVM_STATIC="-L/usr/lib/llvm-19/lib -Wl,--as-needed $(llvm-config-19 --link-static --libs orcjit x86 native passes) -lrt -ldl -lm -lz -lzstd -ltinfo -Wl,--no-as-needed"
relink() {  # relink OUTPUT TARGET...: one binary from the objects of the targets' link lines
  local out=$1; shift
  local objs=() cmd=""
  for t in "$@"; do
    cmd=$(ninja -C "$BUILD" -t commands "$t" | tail -1)
    for w in $cmd; do [[ $w == *.o ]] && objs+=("$BUILD/$w"); done
  done
  local libs=()
  for w in $cmd; do [[ $w == *.a || $w == *.so* ]] && [[ $w != */libLLVM.so* ]] && libs+=("$([[ $w == /* ]] && echo "$w" || echo "$BUILD/$w")"); done
  c++ -O3 -o "$out" "${objs[@]}" "${libs[@]}" $LLVM_STATIC
  strip "$out"
}
relink "$STAGE/bin/kiln" kiln
relink "$STAGE/bin/all_tests" tests/tir_tests tests/schedule_tests tests/runtime_tests tests/precision_tests tests/tile_tests

for b in "$STAGE"/bin/*; do ldd "$b" | awk '/=> \//{print $3}'; done | sort -u | xargs -I{} cp -L {} "$STAGE/lib/"
cp -L /lib64/ld-linux-x86-64.so.2 "$STAGE/lib/"
tar -C "$STAGE" -cf - bin lib | zstd -T0 -15 -q -f -o .dev/bundle.tar.zst
cp -L /usr/bin/zstd /lib64/ld-linux-x86-64.so.2 .dev/boot/
ldd /usr/bin/zstd | awk '/=> \//{print $3}' | xargs -I{} cp -L {} .dev/boot/
cp "$SHARED/models/make_models.py" "$SHARED/models/model_info.py" .dev/models/
du -sh .dev
