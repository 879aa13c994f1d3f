"""Reshapes index their input directly where the shapes agree up to dims of extent 1
(ops/shape_ops.cpp, reshape_to): [1, 128, 96] -> [128, 96] followed by Erf must read x[0, i, j]
(no floordiv / floormod in the kernel, which would keep the read from vectorizing: the quantized
BERT's GELU chains ran 2x slower so), while dims that regroup ([128, 96] -> [128, 12, 8]) still
split. Outputs must match ONNX Runtime.
Usage: reshape_index.py KILN WORK_DIR"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

kiln, work = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
cases = [  # name, input shape, target shape, whether the kernel may divide indices
    ("drop_leading_one", [1, 128, 96], [128, 96], False),
    ("add_ones", [128, 96], [1, 128, 1, 96], False),
    ("regroup_last", [128, 96], [128, 12, 8], True),
    ("merge_with_ones", [1, 12, 1, 8, 5], [96, 5], True),
]
failed = 0
for name, shape, target, may_divide in cases:
    case = os.path.join(work, name)
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Erf", ["r"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, target)],
                              [numpy_helper.from_array(np.array(target, dtype=np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = os.path.join(case, "model.onnx")
    onnx.save(model, path)
    x = rng.standard_normal(shape).astype(np.float32)
    with open(os.path.join(case, "in", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    run = subprocess.run([kiln, "run", path, "--inputs", os.path.join(case, "in"), "--save-outputs",
                          os.path.join(case, "out"), "--dump-ir", "tir"], capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stderr)
        sys.exit(1)
    divides = "floordiv" in run.stderr or "floormod" in run.stderr
    t = onnx.TensorProto()
    with open(os.path.join(case, "out", "output_0.pb"), "rb") as f:
        t.ParseFromString(f.read())
    got = numpy_helper.to_array(t)
    diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
    ok = diff <= 1e-6 and (may_divide or not divides)
    print(f"{name}: {shape} -> {target}, index division {'yes' if divides else 'no'}, max abs diff {diff:.3g}"
          + ("" if ok else "  FAIL"))
    failed += not ok
print(f"{len(cases) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
