#!/usr/bin/env bash
# The kiln CLI on bad input: it must exit with status 1 and explain on stderr (never crash).
#   cli_error_test.sh KILN DEMO_MODEL_DIR CASE
# CASE names one bad invocation (see the table below); ctest runs each case as its own test.
set -uo pipefail
kiln=$1 demo=$2 case_name=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

: >"$tmp/empty.onnx"
printf 'this is not an ONNX model\n' >"$tmp/text.onnx"
head -c 4096 "$demo/model.onnx" >"$tmp/truncated.onnx"
mkdir -p "$tmp/inputs_wrong_type"
# A TensorProto int64[1] = {5} (dims: field 1, data_type: field 2 = INT64, int64_data: field 7)
# where the demo model takes a float image.
printf '\x08\x01\x10\x07\x38\x05' >"$tmp/inputs_wrong_type/input_0.pb"
printf 'k11_probs: vectorize(probs_out0_sum_r1)\n' >"$tmp/illegal.schedule"
printf 'k99_nothing: unroll(x)\n' >"$tmp/unknown_kernel.schedule"

# case -> the kiln arguments, and a word the error message must contain
case $case_name in
  missing_file)     args=(run "$tmp/no_such.onnx");                        want=no_such.onnx ;;
  empty_file)       args=(run "$tmp/empty.onnx");                          want=empty.onnx ;;
  text_file)        args=(info "$tmp/text.onnx");                          want=text.onnx ;;
  truncated_file)   args=(bench "$tmp/truncated.onnx");                    want=truncated.onnx ;;
  missing_inputs)   args=(run "$demo/model.onnx" --inputs "$tmp/none");    want=none ;;
  wrong_input_type) args=(run "$demo/model.onnx" --inputs "$tmp/inputs_wrong_type"); want=input_0.pb ;;
  bad_shape_flag)   args=(run "$demo/model.onnx" --shape image=1xAx3);     want=--shape ;;
  unknown_flag)     args=(run "$demo/model.onnx" --no-such-flag);          want=no-such-flag ;;
  unknown_command)  args=(frobnicate "$demo/model.onnx");                  want=frobnicate ;;
  no_model)         args=(run);                                            want=model ;;
  illegal_schedule) args=(run "$demo/model.onnx" --schedule "$tmp/illegal.schedule"); want=probs_out0_sum_r1 ;;
  schedule_unknown_kernel) args=(run "$demo/model.onnx" --schedule "$tmp/unknown_kernel.schedule"); want=k99_nothing ;;
  missing_schedule) args=(run "$demo/model.onnx" --schedule "$tmp/none.schedule"); want=none.schedule ;;
  unknown_precision) args=(run "$demo/model.onnx" --precision fp8); want=fp8 ;;
  negative_top) args=(bench "$demo/model.onnx" --profile --top -3); want=--top ;;
  unknown_layout) args=(run "$demo/model.onnx" --layout nhwc); want=nhwc ;;
  unknown_winograd) args=(run "$demo/model.onnx" --winograd maybe); want=maybe ;;
  *) echo "cli_error_test.sh: unknown case '$case_name'"; exit 2 ;;
esac

"$kiln" "${args[@]}" >"$tmp/stdout" 2>"$tmp/stderr"
rc=$?
echo "kiln ${args[*]}"
echo "exit status: $rc"
echo "stderr: $(cat "$tmp/stderr")"
if [ "$rc" -ne 1 ]; then echo "FAIL: expected exit status 1"; exit 1; fi
if [ ! -s "$tmp/stderr" ]; then echo "FAIL: nothing on stderr"; exit 1; fi
if ! grep -qF -- "$want" "$tmp/stderr"; then echo "FAIL: the message does not mention '$want'"; exit 1; fi
echo PASS
