#!/usr/bin/env python3
"""Writes the seed corpus of the model-loader fuzzer (tests/fuzz/fuzz_loader.cpp) next to this file:
tiny valid models that exercise the importer's paths (initializers in raw and typed fields,
attributes of every kind, a Constant, an If with subgraphs, symbolic dims, a custom domain,
opset 18) and broken ones (cycle, missing producer, bad tensor sizes, external data, truncation).

usage: python3 tests/fuzz_corpus/gen_corpus.py       (needs numpy and onnx; output is deterministic)
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=13, extra_opsets=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])
    m.ir_version = 8
    return m


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def seeds():
    x, y = vi("x", [2, 3]), vi("y", [2, 3])
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    w_typed = helper.make_tensor("w", F, [2, 3], [0.5] * 6)  # float_data instead of raw_data
    yield "relu", model([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y])
    yield "add_raw_initializer", model([helper.make_node("Add", ["x", "w"], ["y"], name="a")], [x], [y], [w])
    yield "add_typed_initializer", model([helper.make_node("Add", ["x", "w"], ["y"], name="a")], [x], [y], [w_typed])
    yield "symbolic_dims", model([helper.make_node("Sigmoid", ["x"], ["y"])], [vi("x", ["batch", 3])], [vi("y", ["batch", 3])])
    yield "attributes", model([
        helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", F, [3], [1, 2, 3])),
        helper.make_node("LeakyRelu", ["x"], ["t"], alpha=0.2),
        helper.make_node("Add", ["t", "c"], ["u"]),
        helper.make_node("Transpose", ["u"], ["v"], perm=[1, 0]),
        helper.make_node("Cast", ["v"], ["y"], to=TensorProto.DOUBLE),
    ], [x], [vi("y", [3, 2], TensorProto.DOUBLE)])
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [vi("t", [2, 3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [vi("e", [2, 3])])
    yield "if_subgraphs", model([helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)],
                                [vi("cond", [], TensorProto.BOOL), x], [y])
    yield "int64_ops", model([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Mul", ["s", "s"], ["y"])],
                             [x], [vi("y", [2], TensorProto.INT64)])
    yield "opset18", model([helper.make_node("Abs", ["x"], ["y"])], [x], [y], opset=18)
    yield "custom_domain", model([helper.make_node("Fancy", ["x"], ["y"], domain="com.example")], [x], [y],
                                 extra_opsets=[helper.make_opsetid("com.example", 1)])
    # broken models
    yield "bad_cycle", model([helper.make_node("Add", ["x", "z"], ["y"]), helper.make_node("Relu", ["y"], ["z"])], [x], [y], opset=18)
    yield "bad_missing_producer", model([helper.make_node("Add", ["x", "ghost"], ["y"])], [x], [y], opset=18)
    short = numpy_helper.from_array(np.zeros(6, np.float32), "w")
    short.raw_data = short.raw_data[:10]
    yield "bad_short_raw_data", model([helper.make_node("Add", ["x", "w"], ["y"])], [x], [y], [short])
    ext = helper.make_tensor("w", F, [2, 3], [0.0] * 6)
    del ext.float_data[:]
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="../x")
    yield "bad_external_data", model([helper.make_node("Add", ["x", "w"], ["y"])], [x], [y], [ext])
    yield "bad_huge_dims", model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [10**12, 10**12])], [vi("y", [10**12, 10**12])])
    yield "bad_string_input", model([helper.make_node("Identity", ["x"], ["y"])], [vi("x", [2], TensorProto.STRING)],
                                    [vi("y", [2], TensorProto.STRING)])


def main():
    for name, m in seeds():
        data = m.SerializeToString()
        with open(os.path.join(HERE, name + ".onnx"), "wb") as f:
            f.write(data)
        if name == "attributes":
            with open(os.path.join(HERE, "bad_truncated.onnx"), "wb") as f:
                f.write(data[: len(data) // 2])
    with open(os.path.join(HERE, "bad_empty.onnx"), "wb") as f:
        pass
    print(f"wrote {len(os.listdir(HERE)) - 1} files to {HERE}")


if __name__ == "__main__":
    main()
