"""The exporters' decomposed exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))), after a MatMul + bias,
in the three orders of its products: kiln must fold it into one Gelu node (graph/gelu.cpp; seen
in --dump-ir gelu) that joins the product's kernel, and match ONNX Runtime. A variant whose Erf
result is also a graph output must stay decomposed and still match.
Usage: gelu_pattern.py KILN WORK_DIR"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

kiln, work = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
M, K, N = 6, 40, 48


def const(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.float32), name)


def model(form, erf_is_output):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["h"]),
             helper.make_node("Div", ["h", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["one", "e"], ["a"])]
    if form == 0:  # (h * a) * 0.5
        nodes += [helper.make_node("Mul", ["h", "a"], ["m"]), helper.make_node("Mul", ["m", "half"], ["y"])]
    elif form == 1:  # (0.5 * a) * h
        nodes += [helper.make_node("Mul", ["half", "a"], ["m"]), helper.make_node("Mul", ["h", "m"], ["y"])]
    else:  # (h * 0.5) * a
        nodes += [helper.make_node("Mul", ["h", "half"], ["m"]), helper.make_node("Mul", ["a", "m"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32) * 0.3, "w"),
             numpy_helper.from_array(rng.standard_normal(N).astype(np.float32), "b"),
             const("sqrt2", 1.4142135381698608), const("one", 1.0), const("half", 0.5)]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])]
    if erf_is_output:
        outs.append(helper.make_tensor_value_info("e", TensorProto.FLOAT, [M, N]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])], outs,
                              inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


cases = [(0, False), (1, False), (2, False), (0, True)]
for n, (form, erf_is_output) in enumerate(cases):
    case = os.path.join(work, f"gelu_{n}")
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    path = os.path.join(case, "model.onnx")
    onnx.save(model(form, erf_is_output), path)
    x = rng.standard_normal((M, K)).astype(np.float32)
    with open(os.path.join(case, "in", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    refs = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    run = subprocess.run([kiln, "run", path, "--inputs", os.path.join(case, "in"), "--save-outputs",
                          os.path.join(case, "out"), "--dump-ir", "gelu"], capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stderr)
        sys.exit(1)
    after = run.stderr[run.stderr.find("// after gelu"):]
    fused = "Gelu" in after and "Erf" not in after
    if fused == erf_is_output:
        print(f"FAIL: form {form}, erf output {erf_is_output}: expected the pattern "
              f"{'kept' if erf_is_output else 'fused'}; graph after the pass:\n{after}")
        sys.exit(1)
    for i, ref in enumerate(refs):
        t = onnx.TensorProto()
        with open(os.path.join(case, "out", f"output_{i}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        got = numpy_helper.to_array(t)
        diff = float(np.abs(got - ref).max())
        print(f"form {form} erf output {erf_is_output} output {i}: fused {fused}, max abs diff {diff:.3g}")
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-5, atol=1e-6):
            print("FAIL: kiln differs from ONNX Runtime (rtol 1e-5, atol 1e-6)")
            sys.exit(1)
print(f"{len(cases)} passed, 0 failed")
