#!/usr/bin/env python3
"""kiln benchmark driver: whole models against ONNX Runtime, single kernels against oneDNN and OpenBLAS.

Called by bench/run.sh after it has installed the dependencies, built kiln, the anchor binaries and the
models; it can also be run on its own:

    python3 bench/bench.py [--quick] [--kiln build/kiln] [--anchors build/anchors] [--out FILE]

Everything is measured in this one process run so that kiln and its peers see the same machine state.
A model or kernel that kiln (or a peer) fails on becomes an error row; the script keeps going.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernels  # noqa: E402
import report  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
NOMINAL_PEAK_PER_CORE = 216.0  # GFLOP/s, AVX-512 fp32 FMA on the Sapphire Rapids dev VM (the team's target)
QUIET_LOAD = 1.5  # 1-minute load average below which the 2-core machine counts as quiet


@dataclass
class Mode:
    """How long and how much to measure; --quick trades statistics for a run of a few minutes."""
    quick: bool
    threads: tuple = (1, 2)
    rounds: int = 5            # kiln/ORT alternations per (model, threads)
    kiln_budget_s: float = 2.0  # timed kiln runs per round (at least kiln_min_iters)
    kiln_min_iters: int = 3
    ort_budget_s: float = 1.0
    ort_min_iters: int = 5
    anchor_reps: int = 5
    anchor_min_rep_s: float = 0.05
    kernel_rounds: int = 3      # peers/kiln alternations per (kernel thread count)
    settle_s: float = 20.0      # per measurement, wait this long at most for other work to stop
    models: tuple = ("resnet50_v1", "mobilenet_v2", "bert_base_2l", "bert_base")
    gemm_shapes: tuple = kernels.GEMM_SHAPES
    conv_layers: tuple = tuple(c.name for c in kernels.CONV_LAYERS)
    real_models: bool = True

    @staticmethod
    def make(quick):
        if not quick:
            return Mode(quick=False)
        return Mode(quick=True, threads=(1,), rounds=1, kiln_budget_s=0.5, kiln_min_iters=2, ort_budget_s=0.3,
                    ort_min_iters=3, anchor_reps=3, anchor_min_rep_s=0.02, kernel_rounds=1, settle_s=0.0, models=("mobilenet_v2", "resnet50_v1"),
                    gemm_shapes=((256, 256, 256), (512, 512, 512)), conv_layers=("res2_1x1_256to64",),
                    real_models=False)


class BenchError(Exception):
    pass


def load1():
    return os.getloadavg()[0]


def others_running(samples=10, gap_s=0.05):
    """Mean number of other runnable threads right now (from /proc/loadavg, minus this process).

    The 1-minute load average also counts this script's own previous runs, so it cannot tell whether
    someone else competed for the 2 cores; this instantaneous count, taken between runs, can."""
    counts = []
    for _ in range(samples):
        with open("/proc/loadavg") as f:
            counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        time.sleep(gap_s)
    return sum(counts) / len(counts)


def settle(mode):
    """Wait (at most mode.settle_s) until no other thread is runnable; return the last count.

    Called before each measurement: with 2 cores, one competing thread halves a 2-thread run's resources."""
    deadline = time.time() + mode.settle_s
    busy = others_running()
    while busy >= 0.5 and time.time() < deadline:
        time.sleep(2)
        busy = others_running()
    return busy


def wait_for_quiet(max_wait_s):
    """The machine is shared: give other work up to max_wait_s to finish before measuring."""
    deadline = time.time() + max_wait_s
    while load1() >= QUIET_LOAD and time.time() < deadline:
        print(f"  load {load1():.2f} >= {QUIET_LOAD}, waiting ...", file=sys.stderr)
        time.sleep(20)
    if load1() >= QUIET_LOAD:
        print(f"  WARNING: measuring under load {load1():.2f}", file=sys.stderr)


def run_cmd(cmd, env=None, timeout=600):
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"timed out after {timeout} s: {' '.join(cmd[:2])}")
    except OSError as e:
        raise BenchError(f"cannot run {cmd[0]}: {e.strerror}")
    if p.returncode != 0:
        lines = [ln for ln in (p.stderr + p.stdout).strip().splitlines() if ln.strip()]
        raise BenchError(f"exit {p.returncode}: {lines[-1] if lines else '(no output)'}")
    return p.stdout


# ------------------------------------------------------------------------------------------ kiln
class Kiln:
    def __init__(self, binary):
        self.binary = binary

    def bench(self, model, threads, iters, warmup, inputs=None):
        cmd = [self.binary, "bench", model, "--threads", str(threads), "--iters", str(iters),
               "--warmup", str(warmup), "--json"]
        if inputs:
            cmd += ["--inputs", inputs]
        out = run_cmd(cmd)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BenchError(f"kiln printed no JSON: {out[-200:]!r}")

    def probe(self, model, threads, inputs=None):
        """One compile + one timed run: sizes the later rounds and gives the compile time."""
        return self.bench(model, threads, iters=1, warmup=1, inputs=inputs)

    def round(self, model, threads, est_ms, mode, inputs=None):
        iters = max(mode.kiln_min_iters, min(200, int(mode.kiln_budget_s * 1000 / max(est_ms, 1e-3))))
        return self.bench(model, threads, iters=iters, warmup=1, inputs=inputs)


# ------------------------------------------------------------------------------------- ONNX Runtime
def ort_session(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def read_inputs(sess, inputs_dir):
    """test_data_set_0/input_<i>.pb in graph-input order (matched by name when the file names its tensor)."""
    import onnx
    from onnx import numpy_helper
    names = [i.name for i in sess.get_inputs()]
    feeds = {}
    for i, name in enumerate(names):
        t = onnx.TensorProto()
        with open(os.path.join(inputs_dir, f"input_{i}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        feeds[t.name if t.name in names else name] = numpy_helper.to_array(t)
    return feeds


_RSS_PROBE = r"""
import sys
sys.path.insert(0, sys.argv[4])
import bench
import onnxruntime
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])  # kB
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
base = status("VmRSS:")
sess = bench.ort_session(sys.argv[1], int(sys.argv[3]))
feeds = bench.read_inputs(sess, sys.argv[2])
for _ in range(3):
    sess.run(None, feeds)
print(status("VmHWM:") - base)
"""


def ort_rss_growth_mb(model, inputs, threads):
    """ORT's peak RSS growth for the model, in a fresh process: from before the session is
    built to after three runs (its weights, prepacked weights and activation arena)."""
    try:
        out = run_cmd([sys.executable, "-c", _RSS_PROBE, model, inputs, str(threads),
                       os.path.dirname(os.path.abspath(__file__))])
        return int(out.strip().splitlines()[-1]) / 1e3
    except (BenchError, ValueError, IndexError):
        return None


def ort_round(sess, feeds, mode):
    sess.run(None, feeds)  # warm-up
    times, t_end = [], time.perf_counter() + mode.ort_budget_s
    while len(times) < mode.ort_min_iters or (time.perf_counter() < t_end and len(times) < 1000):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------ models
@dataclass
class ModelResult:
    model: str
    threads: int
    kiln_ms: float = None
    ort_ms: float = None
    compile_ms: float = None
    kiln_error: str = None
    ort_error: str = None
    others: float = None  # other runnable threads when the row started (see others_running)
    kiln_mem_mb: float = None  # kiln's planned intermediates (one arena per run)
    ort_mem_mb: float = None   # ORT's peak RSS growth over its runs (after the session was built)
    rounds: list = field(default_factory=list)  # (kiln_ms, ort_ms) per round

    @property
    def ratio(self):
        """Median of the per-round ratios: kiln and ORT timed back to back in each round see the
        same machine state, which drifts by tens of percent between rounds on a shared host."""
        paired = [k / o for k, o in self.rounds if k and o]
        if paired and self.kiln_ms and self.ort_ms:
            return statistics.median(paired)
        return self.kiln_ms / self.ort_ms if self.kiln_ms and self.ort_ms else None


def bench_models(kiln, model_list, mode):
    results = []
    for name, path, inputs in model_list:
        for threads in mode.threads:
            r = ModelResult(name, threads, others=settle(mode))
            print(f"[model] {name} threads={threads} (others running {r.others:.1f}, load {load1():.2f})",
                  file=sys.stderr)
            results.append(r)
            measure_model(kiln, path, inputs, threads, mode, r)
            print(f"        kiln {r.kiln_ms or r.kiln_error} ms, ORT {r.ort_ms or r.ort_error} ms", file=sys.stderr)
    return results


def _describe(e):
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"


def measure_model(kiln, path, inputs, threads, mode, r):
    """Alternate kiln and ORT rounds so that load drift on the shared machine hits both alike."""
    try:
        sess = ort_session(path, threads)
        feeds = read_inputs(sess, inputs)
    except Exception as e:  # noqa: BLE001  (any ORT failure becomes an error row)
        sess, r.ort_error = None, _describe(e)
    try:
        probe = kiln.probe(path, threads, inputs)
        r.compile_ms = probe["compile_ms"]
        r.kiln_mem_mb = probe.get("intermediate_bytes", 0) / 1e6
        est = probe["median_ms"]
    except BenchError as e:
        r.kiln_error = str(e)
    kiln_rounds, ort_rounds = [], []
    for _ in range(mode.rounds):
        if r.kiln_error is None:
            try:
                kiln_rounds.append(kiln.round(path, threads, est, mode, inputs)["median_ms"])
            except BenchError as e:
                r.kiln_error = str(e)
        if sess is not None:
            try:
                ort_rounds.append(ort_round(sess, feeds, mode))
            except Exception as e:  # noqa: BLE001
                sess, r.ort_error = None, _describe(e)
    if sess is not None:
        r.ort_mem_mb = ort_rss_growth_mb(path, inputs, threads)
    r.rounds = list(zip(kiln_rounds, ort_rounds))
    if kiln_rounds and r.kiln_error is None:
        r.kiln_ms = statistics.median(kiln_rounds)
    if ort_rounds:
        r.ort_ms = statistics.median(ort_rounds)


def synthetic_models(models_dir, names):
    return [(n, os.path.join(models_dir, n, "model.onnx"), os.path.join(models_dir, n, "test_data_set_0"))
            for n in names]


def real_models(real_dir):
    """The trained models listed in ../shared/models/real/manifest.tsv (inputs: their test_data_set_0)."""
    manifest = os.path.join(real_dir, "manifest.tsv")
    if not os.path.exists(manifest):
        return []
    with open(manifest) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    out = []
    for row in rows:
        model = os.path.join(real_dir, row[2])
        out.append((row[0], model, os.path.join(os.path.dirname(model), "test_data_set_0")))
    return out


# ----------------------------------------------------------------------------------------- kernels
def bench_kernels(kiln, anchors_dir, work_dir, mode):
    """Per thread count, mode.kernel_rounds rounds of: the anchor binaries (all their shapes, filtered here) and
    kiln on each shape, the peers first in the first, third, ... round and kiln first in the others, so that
    neither side always runs in the other's wake. Returns (rows, {"<threads>T <command>": error} for anchor binaries that failed, their
    header lines)."""
    rows, peer_errors, headers = [], {}, []
    specs = kernels.selected(mode.gemm_shapes, mode.conv_layers)
    for threads in mode.threads:
        row_of = {spec.label: kernels.KernelRow(spec, threads) for spec in specs}
        for rnd in range(mode.kernel_rounds):
            peers, kiln_ms = {}, {}

            def run_peers():
                busy = settle(mode)
                print(f"[kernels] round {rnd + 1}/{mode.kernel_rounds}: peers, threads={threads} "
                      f"(others running {busy:.1f})", file=sys.stderr)
                found, errors, head = kernels.run_anchors(anchors_dir, threads, mode.anchor_reps,
                                                          mode.anchor_min_rep_s, run_cmd)
                peers.update(found)
                headers.extend(h for h in head if h not in headers)
                peer_errors.update({f"{threads}T {cmd}": msg for cmd, msg in errors.items()})
                for row in row_of.values():
                    row.peers_others = max(busy, row.peers_others or 0)

            def run_kiln():
                for spec in specs:
                    row = row_of[spec.label]
                    print(f"[kernels] round {rnd + 1}/{mode.kernel_rounds}: kiln {spec.label} threads={threads}",
                          file=sys.stderr)
                    try:
                        model = kernels.write_model(spec, work_dir)
                        busy = settle(mode)
                        row.kiln_others = max(busy, row.kiln_others or 0)
                        probe = kiln.probe(model, threads)
                        kiln_ms[spec.label] = kiln.round(model, threads, probe["median_ms"], mode)["median_ms"]
                    except (BenchError, OSError, ValueError) as e:
                        row.kiln_error = str(e)

            for step in (run_peers, run_kiln) if rnd % 2 == 0 else (run_kiln, run_peers):
                step()
            for spec in specs:
                row_of[spec.label].add_round(kiln_ms.get(spec.label), peers.get(spec.anchor_shape, {}))
        for row in row_of.values():
            row.finish()
        rows += row_of.values()
    return rows, peer_errors, headers


# -------------------------------------------------------------------------------------------- main
def measured_peak(binary):
    """(isa, per-core fp32 FMA GFLOP/s) of this machine, 1 thread, or None when the probe is missing."""
    try:
        out = run_cmd([binary], env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
        isa, _, gf = out.strip().split(",")[1:4]
        return isa, float(gf)
    except (BenchError, OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations, GEMM 256/512, mobilenet+resnet at 1 thread")
    ap.add_argument("--kiln", default=os.path.join(REPO, "build", "kiln"))
    ap.add_argument("--anchors", default=os.path.join(REPO, "build", "anchors"), help="built anchor binaries")
    ap.add_argument("--fma-peak", default=os.path.join(REPO, "build", "fma_peak"), help="built bench/fma_peak.c")
    ap.add_argument("--models", default=os.path.join(REPO, "build", "bench-models"))
    ap.add_argument("--work", default=os.path.join(REPO, "build", "bench-kernels"), help="one-node kernel models")
    ap.add_argument("--out", help="markdown report (default: docs/performance.md; --quick: build/bench-results/)")
    ap.add_argument("--wait-load", type=float, help="seconds to wait for load < 1.5 first (default 600, quick 0)")
    ap.add_argument("--command", default="bench/run.sh", help="command line to record in the report")
    ap.add_argument("--render", metavar="RESULTS_JSON", help="measure nothing: rewrite the report from a saved run")
    args = ap.parse_args()
    if args.render:
        ctx, model_rows, kernel_rows = load_results(args.render)
        write_report(args.out or os.path.join(REPO, "docs", "performance.md"), ctx, model_rows, kernel_rows)
        return
    mode = Mode.make(args.quick)
    results_dir = os.path.join(REPO, "build", "bench-results")
    out = args.out or (os.path.join(results_dir, "performance-quick.md") if mode.quick
                       else os.path.join(REPO, "docs", "performance.md"))
    wait_for_quiet(args.wait_load if args.wait_load is not None else (0 if mode.quick else 600))

    started, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load1()
    peak = measured_peak(args.fma_peak)
    kiln = Kiln(args.kiln)
    model_list = synthetic_models(args.models, mode.models)
    if mode.real_models:
        model_list += real_models(os.path.join(SHARED, "models", "real"))
    model_rows = bench_models(kiln, model_list, mode)
    kernel_rows, peer_errors, headers = bench_kernels(kiln, args.anchors, args.work, mode)

    ctx = report.Context(mode=mode, started=started, load_start=load_start, load_end=load1(),
                         nominal_peak=NOMINAL_PEAK_PER_CORE, measured_peak=peak, versions=report.versions(REPO),
                         command=args.command + (" --quick" if mode.quick else ""), anchor_headers=tuple(headers),
                         peer_errors=peer_errors)
    os.makedirs(results_dir, exist_ok=True)
    raw = os.path.join(results_dir, "results-quick.json" if mode.quick else "results.json")
    save_results(raw, ctx, model_rows, kernel_rows)
    write_report(out, ctx, model_rows, kernel_rows)
    print(f"(raw numbers: {os.path.relpath(raw, REPO)})", file=sys.stderr)


def save_results(path, ctx, model_rows, kernel_rows):
    with open(path, "w") as f:
        json.dump({"context": ctx.as_dict(), "models": [vars(r) for r in model_rows],
                   "kernels": [r.as_dict() for r in kernel_rows]}, f, indent=1)


def load_results(path):
    """The inverse of save_results: (context, model rows, kernel rows)."""
    with open(path) as f:
        d = json.load(f)
    ctx = report.Context.from_dict(d["context"], Mode.make(d["context"]["quick"]), NOMINAL_PEAK_PER_CORE)
    return ctx, [ModelResult(**m) for m in d["models"]], [kernels.KernelRow.from_dict(k) for k in d["kernels"]]


def write_report(out, ctx, model_rows, kernel_rows):
    text = report.render(ctx, model_rows, kernel_rows)
    # The reduced-precision section that bench/lowp.py keeps in the same page stays.
    begin, end = "<!-- LOWP BEGIN (bench/lowp.py) -->", "<!-- LOWP END -->"
    if os.path.exists(out):
        with open(out) as f:
            old = f.read()
        if begin in old and end in old:
            text = text.rstrip("\n") + "\n\n" + old[old.index(begin):old.index(end) + len(end)] + "\n"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print(text)
    print(f"(report: {os.path.relpath(out, REPO)})", file=sys.stderr)


if __name__ == "__main__":
    main()
