#!/usr/bin/env python3
"""Writes the ONNX backend node tests of the installed `onnx` wheel to DIR/node/<case>/.

Recent onnx wheels no longer ship onnx/backend/test/data/node; they ship the test-case
generators instead (onnx/backend/test/case/node). This runs them with ONNX's own writer
(onnx.backend.test.cmd_tools.generate_data), so the layout is exactly the shipped one:
model.onnx + test_data_set_N/{input,output}_K.pb.

usage: gen_node_data.py DIR        (skips the work when DIR/node was written by this onnx version)
"""
import argparse
import os
import sys
import types
import warnings

sys.dont_write_bytecode = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    args = ap.parse_args()

    import onnx
    from onnx.backend.test import cmd_tools
    import onnx.backend.test.case.node as node_cases

    stamp = os.path.join(args.out, "node", ".onnx-version")
    if os.path.exists(stamp) and open(stamp).read() == onnx.__version__:
        print(f"{args.out}/node: up to date (onnx {onnx.__version__})")
        return
    warnings.simplefilter("ignore")  # the generators divide by zero on purpose (inf/nan cases)
    # generate_data writes what model_test.collect_testcases() returns: hand it the node cases.
    cmd_tools.model_test = types.SimpleNamespace(collect_testcases=lambda: node_cases.collect_testcases(None))
    cmd_tools.generate_data(argparse.Namespace(output=args.out))
    with open(stamp, "w") as f:
        f.write(onnx.__version__)
    print(f"{args.out}/node: {len(os.listdir(os.path.join(args.out, 'node'))) - 1} cases from onnx {onnx.__version__}")


if __name__ == "__main__":
    main()
