"""A Reduce* node takes in its wholly elementwise producer (compile.cpp, fuse_into_producer):
x -> Pow 2 -> ReduceMean (LayerNorm's variance as exporters write it) and x -> Sigmoid * x ->
ReduceSum compile to one kernel each, while a Conv after an elementwise producer (which would
recompute it for every window and output channel) keeps two. Outputs must match ONNX Runtime.
Usage: reduce_fusion.py KILN WORK_DIR"""
import os
import re
import sys

import numpy as np
from onnx import helper, numpy_helper

from one_input_case import run_kiln, write_case

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
    _, ref = write_case(case, nodes, shape, out_shape, inits, rng)
    run, got = run_kiln(kiln, case, ["--layout", "plain", "--dump-ir", "tir"])
    if got is None:
        print(run.stderr)
        sys.exit(1)
    kernels = len(re.findall(r"^func ", run.stdout + run.stderr, re.M))
    diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
    print(f"{name}: {kernels} kernel(s), max abs diff {diff:.3g}")
    if kernels != want_kernels:
        print(f"FAIL: expected {want_kernels} kernel(s)")
        sys.exit(1)
    if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-5, atol=1e-5):
        print("FAIL: kiln differs from ONNX Runtime (rtol 1e-5, atol 1e-5)")
        sys.exit(1)
print(f"{len(cases)} passed, 0 failed")
