"""Quantized models in QDQ form, as onnxruntime.quantization writes them (static, per-channel
int8 weights, uint8 activations, reduce_range as ONNX Runtime advises for CPUs without VNNI),
against ONNX Runtime running the same model: kiln must compile the quantized products to
integer kernels (QLinearConv / QLinearMatMul, src/graph/qdq.cpp; Gemm too) and every quantized value
must agree with ONNX Runtime's within one quantization step, almost all exactly.
Usage: qdq_int8.py KILN WORK_DIR"""
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

kiln, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(0)


def const(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def conv_net():
    """Conv 3x3 + Relu, Conv 3x3 stride 2, a residual Add, pooling, a MatMul classifier."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("Relu", ["s"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "wc"], ["logits"]),
    ]
    inits = [const("w1", 16, 8, 3, 3), const("b1", 16), const("w2", 16, 16, 3, 3), const("b2", 16),
             const("w3", 32, 16, 3, 3), const("b3", 32), const("wc", 32, 10)]
    return nodes, inits, [1, 8, 14, 14], [1, 10]


def attention():
    """A projection with a constant weight, then the product of two activations."""
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "xt"], ["scores"]),
    ]
    return nodes, [const("wq", 24, 24)], [2, 16, 24], [2, 16, 16]


def gemms():
    """Gemm with transB and a bias (BERT's projections after ONNX Runtime's pre-processing)."""
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"]),
    ]
    return nodes, [const("w1", 16, 24), const("b1", 16), const("w2", 16, 12), const("b2", 12)], [8, 24], [8, 12]


def projections():
    """Two projections whose K fills AMX tile rows (64 int8 values): the tile path's shapes."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    return nodes, [const("w1", 128, 64, scale=0.1), const("w2", 64, 40, scale=0.2)], [2, 20, 128], [2, 20, 40]


def pointwise():
    """1x1 convolutions (ResNet's bottlenecks): per image a tile product of the weights and the
    image, 100 pixels (a partial 8-column group)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"]),
    ]
    return nodes, [const("w1", 64, 64, 1, 1, scale=0.1), const("b1", 64), const("w2", 16, 64, 1, 1, scale=0.1),
                   const("b2", 16)], [1, 64, 10, 10], [1, 16, 10, 10]


def windows():
    """A 3x3 convolution as nine shifted tile products over one packed image (9 x 9 pixels:
    padded rows of 11, partial column groups), then a strided 1x1 convolution whose packing
    gathers every second pixel."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], strides=[2, 2]),
    ]
    return nodes, [const("w1", 64, 64, 3, 3, scale=0.05), const("b1", 64), const("w2", 16, 64, 1, 1, scale=0.1),
                   const("b2", 16)], [1, 64, 9, 9], [1, 16, 5, 5]


def deep_windows():
    """A 3x3 convolution from 64 to 512 channels over a 7 x 7 image (ResNet-50's last stage in
    small): its weights outweigh the packed image, so the sums go in two blocks of 256 output
    channels over all rows (src/tir/tile_schedule.cpp, window_conv_tiles)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["y"]),
    ]
    return nodes, [const("w1", 512, 64, 3, 3, scale=0.05), const("b1", 512)], [1, 64, 7, 7], [1, 512, 7, 7]


def residual():
    """A 1x1 convolution whose epilogue adds a residual (the quantized input, dequantized in
    the epilogue) and requantizes, block by block after each tile product, as in ResNet."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    return nodes, [const("w1", 64, 64, 1, 1, scale=0.1), const("b1", 64), const("w2", 64, 64, 1, 1, scale=0.1),
                   const("b2", 64)], [1, 64, 10, 10], [1, 64, 10, 10]


def two_branches():
    """A residual Add of two quantized branches (ResNet's projection shortcut: a 1x1 convolution
    on each side): the Add joins one branch's kernel and dequantizes the other branch's 8-bit
    result as it reads it, so no kernel reads a dequantized f32 copy of either branch."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"]),
        helper.make_node("Conv", ["x", "w2", "b2"], ["c2"]),
        helper.make_node("Add", ["c1", "c2"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    return nodes, [const("w1", 32, 64, 1, 1, scale=0.1), const("b1", 32), const("w2", 32, 64, 1, 1, scale=0.1),
                   const("b2", 32)], [1, 64, 10, 10], [1, 32, 10, 10]


def balanced_rows():
    """A 3x3 convolution of 128 channels over 28 x 28 pixels (ResNet-50's second stage) compiled
    for 2 threads: its output rows go in 14 blocks of 2, which split 7 + 7 over the threads,
    rather than the 7 blocks of 4 that the sums' 64 KiB allow (4 + 3)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["y"]),
    ]
    return nodes, [const("w1", 128, 128, 3, 3, scale=0.03), const("b1", 128)], [1, 128, 28, 28], [1, 128, 28, 28]


def value_preserving():
    """A max pool between two quantized convolutions and a reshape and transpose between two
    quantized products: quantize_static gives them one scale for input and output, so kiln runs
    them on the 8-bit values (src/graph/qdq.cpp), as ONNX Runtime does, with no requantization."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"]),
        helper.make_node("Reshape", ["c2", "shape"], ["m"]),
        helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["t", "w3"], ["y"]),
    ]
    shape = numpy_helper.from_array(np.array([1, 16, 25], dtype=np.int64), "shape")
    return nodes, [const("w1", 16, 8, 3, 3), const("b1", 16), const("w2", 16, 16, 1, 1), const("b2", 16), shape,
                   const("w3", 16, 12)], [1, 8, 10, 10], [1, 25, 12]


class Reader(CalibrationDataReader):
    def __init__(self, shape):
        self.data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self.data, None)


def check(name, build, fused_ops, tiles=0, tir_has=None, every_value=True, threads=1, final_has=(), no_f32_read=None):
    nodes, inits, in_shape, out_shape = build()
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    case = os.path.join(work, name)
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    float_path, q_path = os.path.join(case, "float.onnx"), os.path.join(case, "int8.onnx")
    onnx.save(model, float_path)
    quantize_static(float_path, q_path, Reader(in_shape), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
    # Every quantized value becomes an output, so each integer kernel is compared on its own
    # (only the last where the case is about fusing them: a value with two readers is stored).
    q = onnx.load(q_path)
    quantized = [n.output[0] for n in q.graph.node if n.op_type == "QuantizeLinear"]
    if not every_value:
        quantized = quantized[-1:]
    inferred = onnx.shape_inference.infer_shapes(q)
    types = {v.name: v for v in inferred.graph.value_info}
    q.graph.output.extend(types[v] for v in quantized)
    onnx.save(q, q_path)

    dump = subprocess.run([kiln, "run", q_path, "--dump-ir", "final"], capture_output=True, text=True, check=True)
    for pattern in final_has:
        if not re.search(pattern, dump.stdout + dump.stderr):
            print(f"FAIL {name}: nothing matches '{pattern}' in the compiled graph")
            return False
    for op, want in fused_ops.items():
        got = dump.stdout.count(f"= {op}[") + dump.stderr.count(f"= {op}[")
        if got != want:
            print(f"FAIL {name}: {got} {op} nodes after compilation, expected {want}")
            return False
    # The AMX path (tile products, run here as loops when the CPU has no AMX) must give the same values.
    threads_arg = ["--threads", str(threads)]
    dump = subprocess.run([kiln, "run", q_path, "--emulate-amx", "--dump-ir", "tir"] + threads_arg, capture_output=True,
                          text=True, check=True)
    kernels = [k for k in (dump.stdout + dump.stderr).split("\nfunc ") if "tile_matmul" in k]
    if len(kernels) != tiles:
        print(f"FAIL {name}: {len(kernels)} kernels with tile products under --emulate-amx, expected {tiles}")
        return False
    if tir_has and not any(tir_has in k for k in kernels):
        print(f"FAIL {name}: no '{tir_has}' in a kernel with tile products")
        return False
    if tir_has and tir_has not in dump.stdout + dump.stderr:
        print(f"FAIL {name}: no '{tir_has}' in the loop IR")
        return False
    # A kernel's last parameter is its output; the ones before it are what it reads.
    for line in (dump.stdout + dump.stderr).splitlines():
        if no_f32_read and line.startswith("func ") and f"f32[{no_f32_read}]" in line.rsplit(", ", 1)[0]:
            print(f"FAIL {name}: a kernel reads an f32 [{no_f32_read}] tensor: {line[:200]}")
            return False

    x = rng.standard_normal(in_shape).astype(np.float32)
    with open(os.path.join(case, "in", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    sess = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
    refs = sess.run(None, {"x": x})
    ok = True
    for mode, extra in (("vector", []), ("amx", ["--emulate-amx"])):
        out_dir = os.path.join(case, "out_" + mode)
        subprocess.run([kiln, "run", q_path, "--inputs", os.path.join(case, "in"), "--save-outputs", out_dir] + extra +
                       threads_arg, check=True, capture_output=True)
        for k, (out, ref) in enumerate(zip(sess.get_outputs(), refs)):
            if ref.dtype == np.float32:  # the dequantized result of a quantized output checked below
                continue
            t = onnx.TensorProto()
            with open(os.path.join(out_dir, f"output_{k}.pb"), "rb") as f:
                t.ParseFromString(f.read())
            steps = np.abs(numpy_helper.to_array(t).astype(np.int64) - ref.astype(np.int64))
            exact = float((steps == 0).mean())
            print(f"{name} [{mode}] {out.name}: max {steps.max()} steps, {100 * exact:.2f}% exact")
            if steps.max() > 1 or exact < 0.99:
                print(f"FAIL {name}: {out.name} differs from ONNX Runtime by more than one step (or too often)")
                ok = False
    return ok


results = [check("conv_net", conv_net, {"QLinearConv": 3, "QLinearMatMul": 1}),
           check("attention", attention, {"QLinearMatMul": 2}),
           check("gemms", gemms, {"QLinearMatMul": 2}),
           check("projections", projections, {"QLinearMatMul": 2}, tiles=2),
           check("pointwise", pointwise, {"QLinearConv": 2}, tiles=2),
           check("windows", windows, {"QLinearConv": 2}, tiles=2),
           check("residual", residual, {"QLinearConv": 2}, tiles=2, tir_has="y_QuantizeLinear(", every_value=False),
           check("deep_windows", deep_windows, {"QLinearConv": 1}, tiles=1, tir_has="_channel_block in [0, 0 + 2)"),
           check("value_preserving", value_preserving, {"QLinearConv": 2, "QLinearMatMul": 1, "QuantizeLinear": 1},
                 final_has=(r":u8\[1x16x5x5\] = MaxPool\[", r":u8\[1x16x25\] = Reshape\[",
                            r":u8\[1x25x16\] = Transpose\[")),
           check("two_branches", two_branches, {"QLinearConv": 2}, tiles=2, every_value=False, no_f32_read="1x32x10x10"),
           check("balanced_rows", balanced_rows, {"QLinearConv": 1}, tiles=1, tir_has="_row_block in [0, 0 + 14)",
                 threads=2)]
print(f"{results.count(True)} passed, {results.count(False)} failed")
sys.exit(0 if all(results) else 1)
