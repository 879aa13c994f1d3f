#!/usr/bin/env bash
# The demo: installs dependencies, builds, then compiles and runs the bundled MNIST-style CNN
# (models/demo) on its stored input, compares with ONNX Runtime's stored output, and benchmarks it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
model=$root/models/demo
"$root/scripts/install_deps.sh"
KILN_BUILD_DIR=$build "$root/scripts/build.sh"
kiln=$build/kiln
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo
echo "== kiln info"
"$kiln" info "$model/model.onnx"
echo
echo "== kiln run (input: $model/test_data_set_0/input_0.pb)"
"$kiln" run "$model/model.onnx" --inputs "$model/test_data_set_0" --save-outputs "$out" --timing
echo
echo "== compare with ONNX Runtime's output (rtol 1e-3, atol 1e-4)"
"$build/kiln_compare" "$out/output_0.pb" "$model/test_data_set_0/output_0.pb"
echo
echo "== kiln bench"
"$kiln" bench "$model/model.onnx" --inputs "$model/test_data_set_0" --iters 200 --warmup 10
