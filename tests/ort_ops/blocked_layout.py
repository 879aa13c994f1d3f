"""The channel-blocked layout (src/ops/blocked_layout.cpp) against ONNX Runtime: one model
with every rewrite the pass makes — convolutions with plain and blocked inputs and outputs
(3x3 strided stem, 1x1, strided 1x1, 3x3 by Winograd's F(2x2, 3x3) (blocked, and plain with padded channels) and directly, depthwise, too few output
channels to block, a 7x7 strided one from a plain input to a model output), batch norm as
scale/shift, residual add, max and average pools, per-channel and scalar constants, a
squeeze-excite product broadcasting a 1x1 map, a global pool — on a batch of 2 non-square
images, with graph outputs taken from the middle of the chain and a value read both blocked
and plain. Checks that the blocked operators were used and that the outputs match ORT and
kiln's plain layout, with Winograd on and off. Usage: blocked_layout.py KILN WORK_DIR"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

kiln, work = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(work, "in"), exist_ok=True)
rng = np.random.default_rng(0)
inits = []


def const(name, a):
    inits.append(numpy_helper.from_array(np.asarray(a, dtype=np.float32), name))
    return name


def weights(name, *shape):
    return const(name, rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:])))


def bn(x, y, c):
    return helper.make_node("BatchNormalization", [x, const(y + "_s", rng.uniform(0.5, 1.5, c)),
                                                   const(y + "_b", rng.standard_normal(c) * 0.1),
                                                   const(y + "_m", rng.standard_normal(c) * 0.1),
                                                   const(y + "_v", rng.uniform(0.5, 1.5, c))], [y], epsilon=1e-5)


N, H, W = 2, 36, 56  # 9x14 after the stem and pool: an odd and an even extent for Winograd's 2x2 tiles
nodes = [
    helper.make_node("Conv", ["x", weights("w0", 32, 3, 3, 3), const("b0", rng.standard_normal(32) * 0.1)], ["c0"],
                     kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    bn("c0", "n0", 32),
    helper.make_node("Relu", ["n0"], ["r0"]),
    helper.make_node("MaxPool", ["r0"], ["p0"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node("Conv", ["p0", weights("w1", 32, 32, 1, 1)], ["c1"], kernel_shape=[1, 1]),
    bn("c1", "n1", 32),
    helper.make_node("Add", ["n1", "p0"], ["a1"]),
    helper.make_node("Relu", ["a1"], ["r1"]),
    helper.make_node("Conv", ["r1", weights("wg", 32, 32, 3, 3), const("bg", rng.standard_normal(32) * 0.1)], ["cg"],
                     kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    bn("cg", "ng", 32),
    helper.make_node("Add", ["ng", "r1"], ["ag"]),
    helper.make_node("Relu", ["ag"], ["rg"]),
    helper.make_node("Conv", ["rg", weights("w2", 32, 1, 3, 3)], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                     group=32),
    helper.make_node("Clip", ["c2", const("lo", 0.0), const("hi", 6.0)], ["k2"]),
    helper.make_node("Conv", ["k2", weights("w3", 24, 32, 1, 1), const("b3", rng.standard_normal(24) * 0.1)], ["c3"],
                     kernel_shape=[1, 1]),
    helper.make_node("Conv", ["c3", weights("w4", 32, 24, 3, 3)], ["c4"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    helper.make_node("HardSigmoid", ["c4"], ["h4"], alpha=0.2, beta=0.5),
    helper.make_node("GlobalAveragePool", ["h4"], ["g4"]),
    helper.make_node("Conv", ["g4", weights("w5", 32, 32, 1, 1)], ["c5"], kernel_shape=[1, 1]),
    helper.make_node("Sigmoid", ["c5"], ["s5"]),
    helper.make_node("Mul", ["h4", "s5"], ["m5"]),
    helper.make_node("AveragePool", ["m5"], ["p5"], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Conv", ["m5", weights("wd", 32, 32, 1, 1)], ["d5"], kernel_shape=[1, 1], strides=[2, 2]),
    helper.make_node("Relu", ["d5"], ["rd5"]),
    helper.make_node("Mul", ["p5", const("scale", rng.standard_normal((32, 1, 1)))], ["m6"]),
    helper.make_node("Add", ["m6", const("one", [1.0])], ["a6"]),
    helper.make_node("Transpose", ["r1"], ["t1"], perm=[0, 2, 3, 1]),  # r1 read plain and blocked
    # Winograd from a plain input (a Concat's) to a plain output of 24 channels (padded to 32).
    helper.make_node("Concat", ["r1", "r1"], ["cat"], axis=1),
    helper.make_node("Conv", ["cat", weights("wp", 24, 64, 3, 3)], ["cw"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    # A plain input to a model output of 16 channels: computed on blocks, converted once at the end.
    helper.make_node("Conv", ["cat", weights("ws", 16, 64, 7, 7), const("bs", rng.standard_normal(16) * 0.1)], ["cs"],
                     kernel_shape=[7, 7], strides=[2, 2], pads=[3, 3, 3, 3]),
]
outputs = {"a6": [N, 32, 4, 7], "t1": [N, 9, 14, 32], "c3": [N, 24, 9, 14], "rd5": [N, 32, 5, 7], "cw": [N, 24, 9, 14],
           "cs": [N, 16, 5, 7]}
graph = helper.make_graph(nodes, "blocked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [N, 3, H, W])],
                          [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in outputs.items()], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
path = os.path.join(work, "model.onnx")
onnx.save(model, path)
x = rng.standard_normal((N, 3, H, W)).astype(np.float32)
with open(os.path.join(work, "in", "input_0.pb"), "wb") as f:
    f.write(numpy_helper.from_array(x, "x").SerializeToString())
ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})


def run(layout, winograd):
    out = os.path.join(work, f"out_{layout}_{winograd}")
    r = subprocess.run([kiln, "run", path, "--inputs", os.path.join(work, "in"), "--save-outputs", out,
                        "--layout", layout, "--winograd", winograd, "--dump-ir", "final"], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        sys.exit(1)
    got = []
    for k in range(len(outputs)):
        t = onnx.TensorProto()
        with open(os.path.join(out, f"output_{k}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        got.append(numpy_helper.to_array(t))
    return got, r.stderr


failed = 0
for layout, winograd in (("blocked", "on"), ("blocked", "off"), ("plain", "on")):
    got, log = run(layout, winograd)
    used = {op: log.count(op) for op in ("ConvBlocked", "PoolBlocked", "FromBlocked", "ConvWinograd")}
    print(f"{layout} layout, winograd {winograd}: blocked operators in the final graph: {used}")
    expected = {op: layout == "blocked" for op in used}
    expected["ConvWinograd"] = layout == "blocked" and winograd == "on"
    if any(bool(used[op]) != expected[op] for op in used):
        print(f"FAIL: expected these operators used: {expected}")
        failed += 1
    for name, g, r in zip(outputs, got, ref):
        diff = float(np.abs(g - r).max()) if g.shape == r.shape else float("inf")
        print(f"  {name} {list(r.shape)}: max abs diff {diff:.3g}")
        if g.shape != r.shape or not np.allclose(g, r, rtol=1e-4, atol=1e-4):
            print(f"FAIL: {name} differs from ONNX Runtime (rtol 1e-4, atol 1e-4)")
            failed += 1
print("passed" if not failed else f"{failed} failed")
sys.exit(1 if failed else 0)
