#!/bin/bash
# Device check (issue 4): kiln's AMX / AVX-512 code on the device machine's Intel CPU. Binaries come
# prebuilt with their own loader and libraries (.dev/, made by bench/device/make_bundle.sh); the
# Python peers (ONNX Runtime, onnx, numpy) are the device's. Everything printed lands in $OUT/log.txt,
# the GEMM and model tables in $OUT/gemm.md and $OUT/models.md (bench/lowp.py's format).
#   device tool: run `bash bench/device/run.sh`, carry [".dev"], timeout_s 560 (took 257 s)
# STAGES (tests,gemm,models,profile), GEMM_PRECISIONS (bf16,int8,fp32) and MODELS pick less.
set -u
O=${OUT:-/tmp/out}; mkdir -p "$O"
R=$(cd "$(dirname "$0")/../.." && pwd); D=$R/.dev
exec > >(tee "$O/log.txt") 2>&1
T0=$(date +%s); el() { echo; echo "==== [t=$(( $(date +%s) - T0 ))s] $*"; }
STAGES=${STAGES:-tests,gemm,models,profile}
el cpu
lscpu | grep -E 'Model name|Socket|Core|Thread|MHz|L1d|L2|L3|NUMA node0' ; nproc
grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx512|amx|avx_vnni' | tr '\n' ' '; echo
python3 -c "import onnxruntime, onnx, numpy, sys; print(sys.version.split()[0], 'ort', onnxruntime.__version__, 'onnx', onnx.__version__)"
K=/tmp/k; mkdir -p $K; B=$D/boot
$B/ld-linux-x86-64.so.2 --library-path $B $B/zstd -d -q -c "$D/bundle.tar.zst" | tar xf - -C $K || { echo unpack failed; exit 1; }
for b in kiln all_tests dnnl_bench fma_peak amx_peak; do
  printf '#!/bin/sh\nexec %s/lib/ld-linux-x86-64.so.2 --library-path %s/lib %s/bin/%s "$@"\n' $K $K $K $b > $K/$b; chmod +x $K/$b
done
export PYTHONUNBUFFERED=1
el peaks; $K/amx_peak; OMP_NUM_THREADS=1 $K/fma_peak
if [[ $STAGES == *tests* ]]; then
  el unit tests; timeout 150 $K/all_tests --gtest_brief=1 2>&1 | tail -60
fi
M=/tmp/models; W=/tmp/work; mkdir -p $M $W
if [[ $STAGES == *gemm* ]]; then
  el gemm; cd "$R" && timeout 240 python3 bench/lowp.py --kiln $K/kiln --anchors $K --amx-peak $K/amx_peak \
    --fma-peak $K/fma_peak --models $M --work $W --models-list "" --gemm-precisions ${GEMM_PRECISIONS:-bf16,int8,fp32} \
    --out "$O/gemm.md" >/dev/null; cat "$O/gemm.md"
  el asm; f=$W/f32_gemm_1024x1024x1024/model.onnx
  [[ -f $f ]] && timeout 60 $K/kiln run $f --precision bf16 --emit /tmp/bf16.s >/dev/null &&
    { grep -cE 'tdpbf16ps' /tmp/bf16.s; grep -cE 'ldtilecfg' /tmp/bf16.s; grep -cE 'tilerelease' /tmp/bf16.s; \
      grep -m1 -B2 -A40 'tdpbf16ps' /tmp/bf16.s | head -60; cp /tmp/bf16.s "$O/bf16_gemm1024.s"; }
fi
if [[ $STAGES == *models* ]]; then
  el generate models; timeout 120 python3 "$D/models/make_models.py" --out $M --only ${MODELS:-resnet50_v1,bert_base} | tail -3
  el models; cd "$R" && timeout ${MODELS_TIMEOUT:-330} python3 bench/lowp.py --kiln $K/kiln --anchors $K --amx-peak $K/amx_peak \
    --fma-peak $K/fma_peak --models $M --work $W --models-list ${MODELS:-resnet50_v1,bert_base} --gemm-precisions "" \
    --out "$O/models.md" >/dev/null; cat "$O/models.md"
fi
if [[ $STAGES == *profile* ]]; then
  el profile
  for m in resnet50_v1 bert_base; do
    [[ -f $M/$m/model.onnx ]] && timeout 60 $K/kiln bench $M/$m/model.onnx --threads 1 --iters 5 --warmup 1 --profile --top 12 2>&1 | tail -20
    [[ -f $M/$m/model.onnx ]] && timeout 60 $K/kiln bench $M/$m/model.onnx --precision bf16 --threads 1 --iters 5 --warmup 1 --profile --top 12 2>&1 | tail -20
    [[ -f $M/${m}_int8/model.onnx ]] && timeout 60 $K/kiln bench $M/${m}_int8/model.onnx --threads 1 --iters 5 --warmup 1 --profile --top 12 2>&1 | tail -20
  done
fi
el done
