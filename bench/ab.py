#!/usr/bin/env python3
"""A/B comparison of two kiln binaries on one model, kernel by kernel.

Runs `kiln bench MODEL --profile` with each binary in balanced order (A B, B A, A B, ...), so
that whatever the machine does between runs falls on both sides alike: on the shared 2-core
dev machine the binary run first in every round measured up to 15% slower than the same binary
run second. Reports each binary's per-run medians and the sum of its per-kernel minima, then the
kernels whose minima differ most. Kernels are matched by the nodes they compute, so the two
binaries may number their kernels differently.

Usage: bench/ab.py OLD_KILN NEW_KILN MODEL.onnx [--rounds 4] [--threads 1] [--top 12]
Build the old binary from a clean checkout of the old commit (a second build directory), not by
stashing and relinking the working tree's: an interrupted link leaves the new binary in place."""
import argparse
import re
import subprocess
import sys

ROW = re.compile(r"^\s*([0-9.]+)\s+[0-9.]+%\s+\S+\s+\S+\s+\S+\s+(\S+)\s+(.*)$")


def profile(kiln, model, threads):
    out = subprocess.run([kiln, "bench", model, "--threads", str(threads), "--iters", "5", "--warmup", "1", "--profile",
                          "--top", "0"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{kiln} failed on {model}:\n{out.stderr}")
    kernels, median = {}, None
    for line in out.stdout.splitlines() + out.stderr.splitlines():
        m = ROW.match(line)
        if m:
            kernels[m.group(3)] = kernels.get(m.group(3), 0) + float(m.group(1))
        m = re.search(r"median ([0-9.]+) ms", line)
        if m:
            median = float(m.group(1))
    return kernels, median


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=4, help="runs of each binary (default 4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=12, help="kernels to list (default 12)")
    a = ap.parse_args()
    best = {a.old: {}, a.new: {}}
    medians = {a.old: [], a.new: []}
    for r in range(a.rounds):
        for kiln in (a.old, a.new) if r % 2 == 0 else (a.new, a.old):
            kernels, median = profile(kiln, a.model, a.threads)
            medians[kiln].append(median)
            for k, ms in kernels.items():
                best[kiln][k] = min(best[kiln].get(k, float("inf")), ms)
    for name, kiln in (("old", a.old), ("new", a.new)):
        runs = ", ".join(f"{m:.1f}" for m in medians[kiln])
        print(f"{name}: sum of per-kernel minima {sum(best[kiln].values()):.2f} ms; run medians {runs} ms ({kiln})")
    keys = set(best[a.old]) | set(best[a.new])
    keys = sorted(keys, key=lambda k: -abs(best[a.new].get(k, 0) - best[a.old].get(k, 0)))
    print(f"{'old ms':>8} {'new ms':>8}  kernel (0: not in that binary)")
    for k in keys[:a.top]:
        print(f"{best[a.old].get(k, 0):8.3f} {best[a.new].get(k, 0):8.3f}  {k[:140]}")


if __name__ == "__main__":
    main()
