#!/usr/bin/env bash
# kiln benchmarks: whole models against ONNX Runtime, fp32 GEMM/conv kernels against oneDNN and OpenBLAS,
# then bf16 / int8 (bench/lowp.py: models against ONNX Runtime, int8 GEMM against oneDNN).
#   bench/run.sh           full run (~15-25 min on 2 cores); writes docs/performance.md and prints it
#   bench/run.sh --quick   a few minutes: mobilenet_v2 + resnet50_v1 at 1 thread, GEMM 256/512, one conv layer;
#                          writes build/bench-results/performance-quick.md
# Further arguments go to bench/bench.py (e.g. --wait-load 0). Everything it builds or generates lives in
# build/ (KILN_BUILD_DIR): kiln, anchors/ (the ../shared/anchors kit built out of tree), bench-models/,
# bench-kernels/ (one-node models), bench-results/ (raw JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(cd .. && pwd)/shared
BUILD=${KILN_BUILD_DIR:-build}
PY=${PYTHON:-python3}
QUICK=0
for a in "$@"; do [[ $a == --quick ]] && QUICK=1; done
log() { echo "== $*" >&2; }

# ---- dependencies (each step only when something is missing)
missing=()
for pkg in libdnnl-dev libopenblas-dev g++ make cmake ninja-build; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi
if ! "$PY" -c 'import onnxruntime, onnx, numpy' 2>/dev/null; then
  log "pip install onnxruntime onnx numpy"
  "$PY" -m pip install --quiet onnxruntime onnx numpy
fi

# ---- kiln (Release; ninja rebuilds only what changed)
log "building kiln (Release) in $BUILD"
if [[ ! -f $BUILD/build.ninja ]] || ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$BUILD/CMakeCache.txt"; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
ninja -C "$BUILD" -j"$(nproc)" kiln >/dev/null

# ---- peers: the anchor kit, built into $BUILD/anchors (its sources stay in ../shared/anchors)
log "building the anchor binaries and the FMA peak probe"
mkdir -p "$BUILD/anchors"
ANCHORS=$(cd "$BUILD/anchors" && pwd)
make -s -C "$SHARED/anchors" B="$ANCHORS" "$ANCHORS/gemm_openblas" "$ANCHORS/dnnl_bench"
[[ $BUILD/fma_peak -nt bench/fma_peak.c ]] || gcc -O2 -fopenmp bench/fma_peak.c -o "$BUILD/fma_peak"
[[ $BUILD/amx_peak -nt bench/amx_peak.c ]] || gcc -O2 -mamx-tile -mamx-bf16 -mamx-int8 bench/amx_peak.c -o "$BUILD/amx_peak"

# ---- models: synthetic ones generated once (deterministic seed), real ones used in place
MODELS=$BUILD/bench-models
want=(resnet50_v1 mobilenet_v2)
((QUICK)) || want+=(bert_base_2l bert_base)
todo=()
for m in "${want[@]}"; do [[ -f $MODELS/$m/test_data_set_0/input_0.pb ]] || todo+=("$m"); done
if ((${#todo[@]})); then
  log "generating models: ${todo[*]}"
  (IFS=,; "$PY" "$SHARED/models/make_models.py" --out "$MODELS" --only "${todo[*]}" >&2)
fi

log "measuring fp32 (progress on stderr, report on stdout)"
"$PY" bench/bench.py --kiln "$BUILD/kiln" --anchors "$ANCHORS" --fma-peak "$BUILD/fma_peak" \
  --models "$MODELS" --work "$BUILD/bench-kernels" "$@"
log "measuring bf16 and int8"
lowp_args=()
((QUICK)) && lowp_args=(--quick --out "$BUILD/bench-results/performance-lowp-quick.md")
exec "$PY" bench/lowp.py --kiln "$BUILD/kiln" --anchors "$ANCHORS" --models "$MODELS" \
  --fma-peak "$BUILD/fma_peak" --amx-peak "$BUILD/amx_peak" \
  --work "$BUILD/bench-kernels" "${lowp_args[@]}"
