"""Reshapes index their input directly where the shapes agree up to dims of extent 1
(ops/shape_ops.cpp, reshape_to): [1, 128, 96] -> [128, 96] followed by Erf must read x[0, i, j]
(no floordiv / floormod in the kernel, which would keep the read from vectorizing: the quantized
BERT's GELU chains ran 2x slower so), while dims that regroup ([128, 96] -> [128, 12, 8]) still
split. Outputs must match ONNX Runtime.
Usage: reshape_index.py KILN WORK_DIR"""
import os
import sys

import numpy as np
from onnx import helper, numpy_helper

from one_input_case import run_kiln, write_case

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
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Erf", ["r"], ["y"])]
    _, ref = write_case(case, nodes, shape, target, [numpy_helper.from_array(np.array(target, dtype=np.int64), "shape")],
                        rng)
    run, got = run_kiln(kiln, case, ["--dump-ir", "tir"])
    if got is None:
        print(run.stderr)
        sys.exit(1)
    divides = "floordiv" in run.stderr or "floormod" in run.stderr
    diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
    ok = diff <= 1e-6 and (may_divide or not divides)
    print(f"{name}: {shape} -> {target}, index division {'yes' if divides else 'no'}, max abs diff {diff:.3g}"
          + ("" if ok else "  FAIL"))
    failed += not ok
print(f"{len(cases) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
