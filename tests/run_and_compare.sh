#!/usr/bin/env bash
# Runs `kiln run` on a model folder's test_data_set_0 at 1 and at 2 threads and compares the
# outputs with the stored ones (ONNX Runtime's) with kiln_compare (rtol 1e-3, atol 1e-4): the
# schedules differ with the thread count (parallel loops, their order), so both are checked.
#   run_and_compare.sh BUILD_DIR MODEL_DIR OUT_DIR
set -uo pipefail
build=$1 model=$2 out=$3
name=$(basename "$model")
if [ ! -f "$model/model.onnx" ] || [ ! -d "$model/test_data_set_0" ]; then
  echo "FAIL $name: $model has no model.onnx and test_data_set_0/"
  exit 1
fi
for threads in 1 2; do
  dir=$out/threads$threads
  rm -rf "$dir" && mkdir -p "$dir"
  if ! "$build/kiln" run "$model/model.onnx" --inputs "$model/test_data_set_0" --threads $threads \
      --save-outputs "$dir" >"$dir/run.log" 2>&1; then
    echo "FAIL $name ($threads threads): kiln could not compile or run the model:"
    tail -n 5 "$dir/run.log" | sed 's/^/  /'
    exit 1
  fi
  grep -E '^(compiled|ran in)' "$dir/run.log"
  if ! "$build/kiln_compare" --rtol 1e-3 --atol 1e-4 "$dir" "$model/test_data_set_0"; then
    echo "FAIL $name ($threads threads): outputs differ from ONNX Runtime's"
    exit 1
  fi
done
echo "PASS $name"
