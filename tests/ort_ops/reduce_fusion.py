"""A Reduce* node takes in its wholly elementwise producer (compile.cpp, fuse_into_producer):
x -> Pow 2 -> ReduceMean (LayerNorm's variance as exporters write it) and x -> Sigmoid * x ->
ReduceSum compile to one kernel each, while a Conv after an elementwise producer (which would
recompute it for every window and output channel) keeps two. Outputs must match ONNX Runtime.
Usage: reduce_fusion.py KILN WORK_DIR"""
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

kiln, work = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
w = numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w")
cases = [
    ("pow_mean", [4, 6, 40], [helper.make_node("Pow", ["x", "two"], ["p"]),
                              helper.make_node("ReduceMean", ["p"], ["y"], axes=[-1], keepdims=1)], [4, 6, 1], [two], 1),
    ("silu_sum", [4, 6, 40], [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["m"]),
                              helper.make_node("ReduceSum", ["m", "axes"], ["y"], keepdims=0)], [4, 40],
     [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")], 1),
    ("sigmoid_conv", [1, 4, 9, 9], [helper.make_node("Sigmoid", ["x"], ["s"]),
                                    helper.make_node("Conv", ["s", "w"], ["y"], pads=[1, 1, 1, 1])], [1, 8, 9, 9], [w], 2),
]
for name, shape, nodes, out_shape, inits, want_kernels in cases:
    case = os.path.join(work, name)
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = os.path.join(case, "model.onnx")
    onnx.save(model, path)
    x = rng.standard_normal(shape).astype(np.float32)
    with open(os.path.join(case, "in", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    run = subprocess.run([kiln, "run", path, "--inputs", os.path.join(case, "in"), "--save-outputs",
                          os.path.join(case, "out"), "--layout", "plain", "--dump-ir", "tir"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stderr)
        sys.exit(1)
    kernels = len(re.findall(r"^func ", run.stdout + run.stderr, re.M))
    t = onnx.TensorProto()
    with open(os.path.join(case, "out", "output_0.pb"), "rb") as f:
        t.ParseFromString(f.read())
    got = numpy_helper.to_array(t)
    diff = float(np.abs(got - ref).max())
    print(f"{name}: {kernels} kernel(s), max abs diff {diff:.3g}")
    if kernels != want_kernels:
        print(f"FAIL: expected {want_kernels} kernel(s)")
        sys.exit(1)
    if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-5, atol=1e-5):
        print("FAIL: kiln differs from ONNX Runtime (rtol 1e-5, atol 1e-5)")
        sys.exit(1)
print(f"{len(cases)} passed, 0 failed")
