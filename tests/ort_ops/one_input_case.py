"""Shared by the ort_ops tests: a one-input, one-output f32 model written to a case folder with a
random input, ONNX Runtime's output for it, and kiln's run of it (outputs saved, IR dumped)."""
import os
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def write_case(case, nodes, in_shape, out_shape, inits, rng):
    """Saves case/model.onnx (input x, output y) and case/in/input_0.pb; returns (path, ORT's y)."""
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = os.path.join(case, "model.onnx")
    onnx.save(model, path)
    x = rng.standard_normal(in_shape).astype(np.float32)
    with open(os.path.join(case, "in", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    return path, ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def run_kiln(kiln, case, extra):
    """kiln run on the case's model and input; returns (the CompletedProcess, kiln's y), or
    (the process, None) when kiln failed."""
    run = subprocess.run([kiln, "run", os.path.join(case, "model.onnx"), "--inputs", os.path.join(case, "in"),
                          "--save-outputs", os.path.join(case, "out")] + extra, capture_output=True, text=True)
    if run.returncode != 0:
        return run, None
    t = onnx.TensorProto()
    with open(os.path.join(case, "out", "output_0.pb"), "rb") as f:
        t.ParseFromString(f.read())
    return run, numpy_helper.to_array(t)
