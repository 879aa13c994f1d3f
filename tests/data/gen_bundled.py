#!/usr/bin/env python3
"""Generates the bundled demo model, models/demo/: a small MNIST-style CNN with seeded random
weights, one input (a drawn digit-like image) and ONNX Runtime's output for it.

  Conv(1->8, 3x3, pad 1) Relu MaxPool(2)  -> 8x14x14
  Conv(8->16, 3x3, pad 1) Relu MaxPool(2) -> 16x7x7
  Flatten Gemm(784->32) Relu Gemm(32->10) Softmax -> 1x10 class probabilities

usage: python3 tests/data/gen_bundled.py [--out models/demo]    (needs numpy, onnx, onnxruntime)
The output is deterministic for a given onnx/onnxruntime version; the files are committed so that
the demo needs no Python.
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.dont_write_bytecode = True
SEED = 20261129
OPSET = 13


def build_model(rng):
    inits, nodes = [], []

    def weight(name, shape, fan_in):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name))
        return name

    def bias(name, n):
        inits.append(numpy_helper.from_array((rng.standard_normal(n) * 0.05).astype(np.float32), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv_block(x, cin, cout, tag):
        y = node("Conv", [x, weight(f"{tag}_w", (cout, cin, 3, 3), cin * 9), bias(f"{tag}_b", cout)], f"{tag}",
                 kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
        y = node("Relu", [y], f"{tag}_relu")
        return node("MaxPool", [y], f"{tag}_pool", kernel_shape=[2, 2], strides=[2, 2])

    x = conv_block("image", 1, 8, "conv1")
    x = conv_block(x, 8, 16, "conv2")
    x = node("Flatten", [x], "flatten", axis=1)
    x = node("Gemm", [x, weight("fc1_w", (32, 784), 784), bias("fc1_b", 32)], "fc1", transB=1)
    x = node("Relu", [x], "fc1_relu")
    x = node("Gemm", [x, weight("fc2_w", (10, 32), 32), bias("fc2_b", 10)], "fc2", transB=1)
    node("Softmax", [x], "probs", axis=1)

    graph = helper.make_graph(nodes, "kiln_demo_cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 28, 28])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, producer_name="kiln tests/data/gen_bundled.py",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def draw_digit():
    """A 28x28 image of a '7' with a little seeded noise, values in [0, 1]."""
    img = np.zeros((28, 28), np.float32)
    img[6:9, 6:22] = 1.0                      # top bar
    for r in range(9, 24):                    # diagonal stroke
        c = 21 - (r - 9) * 10 // 15
        img[r, c - 1:c + 2] = 1.0
    img += np.random.default_rng(SEED + 1).uniform(0, 0.1, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)[None, None]


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "models", "demo"))
    args = ap.parse_args()

    model = build_model(np.random.default_rng(SEED))
    image = draw_digit()
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (probs,) = sess.run(None, {"image": image})

    data = os.path.join(args.out, "test_data_set_0")
    os.makedirs(data, exist_ok=True)
    onnx.save(model, os.path.join(args.out, "model.onnx"))
    for path, name, array in [("input_0.pb", "image", image), ("output_0.pb", "probs", probs)]:
        with open(os.path.join(data, path), "wb") as f:
            f.write(numpy_helper.from_array(array, name).SerializeToString())
    print(f"{args.out}: {os.path.getsize(os.path.join(args.out, 'model.onnx'))} bytes, "
          f"onnxruntime {ort.__version__} probs {np.array2string(probs[0], precision=4)}")


if __name__ == "__main__":
    main()
