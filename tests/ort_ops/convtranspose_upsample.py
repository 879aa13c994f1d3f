"""ConvTranspose with kernel == stride (the non-overlapping upsampling path of
src/ops/conv.cpp) against ONNX Runtime: 1-D and 2-D, with and without bias, batch 2,
non-square kernels. Usage: convtranspose_upsample.py KILN WORK_DIR"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

kiln, work = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
cases = [((1, 5, 4, 6), (2, 2), True), ((1, 3, 7), (3,), True), ((2, 4, 3, 5), (2, 3), False)]
worst = 0.0
for n, (shape, kernel, bias) in enumerate(cases):
    channels, out_channels = shape[1], 6
    w = rng.standard_normal((channels, out_channels) + kernel).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")] + ([numpy_helper.from_array(b, "b")] if bias else [])
    node = helper.make_node("ConvTranspose", ["x", "w"] + (["b"] if bias else []), ["y"], strides=list(kernel))
    out = [shape[0], out_channels] + [s * k for s, k in zip(shape[2:], kernel)]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    case = os.path.join(work, f"convtranspose_{n}")
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    onnx.save(model, os.path.join(case, "model.onnx"))
    x = rng.standard_normal(shape).astype(np.float32)
    with open(os.path.join(case, "in", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    ref = ort.InferenceSession(os.path.join(case, "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    subprocess.run([kiln, "run", os.path.join(case, "model.onnx"), "--inputs", os.path.join(case, "in"),
                    "--save-outputs", os.path.join(case, "out")], check=True, capture_output=True)
    t = onnx.TensorProto()
    with open(os.path.join(case, "out", "output_0.pb"), "rb") as f:
        t.ParseFromString(f.read())
    got = numpy_helper.to_array(t)
    diff = float(np.abs(got - ref).max())
    worst = max(worst, diff)
    print(f"{shape} kernel={kernel} bias={bias}: max abs diff {diff:.3g}")
    if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-4, atol=1e-5):
        print("FAIL: kiln differs from ONNX Runtime (rtol 1e-4, atol 1e-5)")
        sys.exit(1)
print(f"{len(cases)} passed, 0 failed")
