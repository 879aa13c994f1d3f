#!/usr/bin/env bash
# Runs `kiln run` on a model folder's test_data_set_0 and compares the outputs with the stored
# ones (ONNX Runtime's) with kiln_compare (rtol 1e-3, atol 1e-4).
#   run_and_compare.sh BUILD_DIR MODEL_DIR OUT_DIR
set -uo pipefail
build=$1 model=$2 out=$3
name=$(basename "$model")
if [ ! -f "$model/model.onnx" ] || [ ! -d "$model/test_data_set_0" ]; then
  echo "FAIL $name: $model has no model.onnx and test_data_set_0/"
  exit 1
fi
rm -rf "$out" && mkdir -p "$out"
if ! "$build/kiln" run "$model/model.onnx" --inputs "$model/test_data_set_0" --save-outputs "$out" >"$out/run.log" 2>&1; then
  echo "FAIL $name: kiln could not compile or run the model:"
  tail -n 5 "$out/run.log" | sed 's/^/  /'
  exit 1
fi
grep -E '^(compiled|ran in)' "$out/run.log"
if ! "$build/kiln_compare" --rtol 1e-3 --atol 1e-4 "$out" "$model/test_data_set_0"; then
  echo "FAIL $name: outputs differ from ONNX Runtime's"
  exit 1
fi
echo "PASS $name"
