"""Single-kernel benchmarks: the shapes, kiln's one-node ONNX models for them, and the anchor binaries' results.

The peers are the anchor kit in ../shared/anchors (built out of tree by bench/run.sh): gemm_openblas
(cblas_sgemm) and dnnl_bench (oneDNN matmul with plain or pre-packed B, direct conv with format_tag::any).
They print one line per shape: RES,lib,op,dtype,shape,threads,best_gflops,median_gflops,best_ms,median_ms,impl,...
"""
import os
import statistics
from dataclasses import dataclass, field

import numpy as np

# The shapes the anchor kit measures (anchors/common.h GEMM_SHAPES and dnnl_bench.cpp CONVS).
GEMM_SHAPES = ((256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
               (128, 768, 768), (128, 3072, 768))


@dataclass(frozen=True)
class ConvLayer:
    name: str
    C: int
    H: int
    K: int
    R: int
    stride: int
    pad: int

    @property
    def anchor_shape(self):  # how dnnl_bench names it (square images and kernels)
        return f"{self.name}:C{self.C}-H{self.H}-K{self.K}-{self.R}x{self.R}s{self.stride}p{self.pad}"

    @property
    def out_hw(self):
        return (self.H + 2 * self.pad - self.R) // self.stride + 1


CONV_LAYERS = (ConvLayer("conv1_7x7s2", 3, 224, 64, 7, 2, 3), ConvLayer("res2_3x3", 64, 56, 64, 3, 1, 1),
               ConvLayer("res2_1x1_256to64", 256, 56, 64, 1, 1, 0), ConvLayer("res3_3x3", 128, 28, 128, 3, 1, 1),
               ConvLayer("res5_3x3", 512, 7, 512, 3, 1, 1))


@dataclass(frozen=True)
class KernelSpec:
    kind: str            # "gemm" or "conv"
    label: str           # shown in the table
    anchor_shape: str    # the RES line's shape field
    flops: float
    gemm: tuple = None   # (M, N, K)
    conv: ConvLayer = None


def gemm_spec(m, n, k):
    shape = f"{m}x{n}x{k}"
    return KernelSpec("gemm", f"GEMM {shape}", shape, 2.0 * m * n * k, gemm=(m, n, k))


def conv_spec(c):
    flops = 2.0 * c.K * c.out_hw ** 2 * c.C * c.R * c.R
    return KernelSpec("conv", f"conv {c.anchor_shape}", c.anchor_shape, flops, conv=c)


def selected(gemm_shapes, conv_names):
    return [gemm_spec(*s) for s in gemm_shapes] + [conv_spec(c) for c in CONV_LAYERS if c.name in conv_names]


def write_model(spec, work_dir):
    """One-node ONNX model (opset 13) with the weights as an initializer, so kiln sees them as constants."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    if spec.kind == "gemm":
        m, n, k = spec.gemm
        name, x_shape, y_shape = f"gemm_{m}x{n}x{k}", [m, k], [m, n]
        w = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
    else:
        c = spec.conv
        name, x_shape, y_shape = f"conv_{c.name}", [1, c.C, c.H, c.H], [1, c.K, c.out_hw, c.out_hw]
        w = rng.uniform(-1, 1, (c.K, c.C, c.R, c.R)).astype(np.float32)
        node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[c.R, c.R], strides=[c.stride] * 2,
                                pads=[c.pad] * 4, dilations=[1, 1], group=1)
    graph = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    path = os.path.join(work_dir, name, "model.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)
    return path


# The peers, as (column, binary, arguments, thread environment). oneDNN is OpenMP (bound one thread per core,
# as the anchor kit's run.sh does); OpenBLAS is its pthreads build.
def _omp(t):
    return {"OMP_NUM_THREADS": str(t), "OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}


PEERS = (("OpenBLAS", "gemm_openblas", [], lambda t: {"OPENBLAS_NUM_THREADS": str(t), "OMP_NUM_THREADS": str(t)}),
         ("oneDNN", "dnnl_bench", ["matmul", "f32", "ab"], _omp),
         ("oneDNN B packed", "dnnl_bench", ["matmul", "f32", "any"], _omp),
         ("oneDNN", "dnnl_bench", ["conv"], _omp))
PEER_COLUMNS = ("OpenBLAS", "oneDNN", "oneDNN B packed")


@dataclass
class PeerResult:
    gflops: float   # from the median time
    ms: float       # median
    impl: str


def run_anchors(anchors_dir, threads, reps, min_rep_s, run_cmd):
    """({anchor shape: {column: PeerResult}}, {command: error message} for binaries that failed,
    [the binaries' "# ..." header lines: library version, ISA, threads])."""
    results, errors, headers = {}, {}, []
    for column, binary, argv, env_of in PEERS:
        env = dict(os.environ, BENCH_REPS=str(reps), BENCH_MIN_REP_S=str(min_rep_s), **env_of(threads))
        env.pop("OPENBLAS_CORETYPE", None)
        try:
            out = run_cmd([os.path.join(anchors_dir, binary)] + argv, env=env, timeout=600)
        except Exception as e:  # noqa: BLE001  (a missing or crashing peer is a note in the report, not a crash)
            errors[" ".join([binary] + argv)] = str(e)
            continue
        headers += [line for line in out.splitlines() if line.startswith("# ") and line not in headers]
        for line in out.splitlines():
            if line.startswith("RES,"):
                f = line.split(",")
                results.setdefault(f[4], {})[column] = PeerResult(float(f[7]), float(f[9]), f[10])
    return results, errors, headers


@dataclass
class KernelRow:
    """One kernel at one thread count, measured in rounds (add_round), each of which runs the peers and kiln
    back to back; finish() then sets the medians. A lone kiln or peer time says little on the shared dev
    machine, whose speed drifts by tens of percent between minutes (GEMM 1024^3 at 2 threads: 26.5 ms in
    one run of this script, 16.3 ms an hour later), so the ratio is the median of the per-round ratios."""
    spec: KernelSpec
    threads: int
    kiln_ms: float = None
    kiln_error: str = None
    peers: dict = field(default_factory=dict)  # column -> PeerResult (median over rounds)
    peers_others: float = None  # other runnable threads before the peers / kiln ran (bench.others_running)
    kiln_others: float = None
    rounds: list = field(default_factory=list)  # per round: (kiln ms, {column: PeerResult})

    def add_round(self, kiln_ms, peers):
        self.rounds.append((kiln_ms, dict(peers)))

    def finish(self):
        times = [k for k, _ in self.rounds if k]
        self.kiln_ms = statistics.median(times) if times else None
        for column in sorted({c for _, p in self.rounds for c in p}):
            ms = statistics.median(p[column].ms for _, p in self.rounds if column in p)
            impl = next(p[column].impl for _, p in self.rounds if column in p)
            self.peers[column] = PeerResult(self.spec.flops / ms * 1e-6, ms, impl)

    @property
    def kiln_gflops(self):
        return self.spec.flops / self.kiln_ms * 1e-6 if self.kiln_ms else None

    @property
    def best_peer(self):
        """(column, PeerResult) of the fastest peer by median time, or None."""
        return max(self.peers.items(), key=lambda kv: kv[1].gflops, default=None)

    @property
    def round_ratios(self):
        """kiln time / the fastest peer's time, per round in which both ran."""
        return [k / min(r.ms for r in p.values()) for k, p in self.rounds if k and p]

    @property
    def ratio(self):
        """Median of the per-round ratios (kiln and the peers back to back see the same machine state); for a
        saved run without rounds, the ratio of the medians."""
        if self.round_ratios:
            return statistics.median(self.round_ratios)
        best = self.best_peer
        return self.kiln_ms / best[1].ms if best and self.kiln_ms else None

    @staticmethod
    def from_dict(d):
        """The inverse of as_dict (for re-rendering a saved run)."""
        specs = {s.label: s for s in selected(GEMM_SHAPES, [c.name for c in CONV_LAYERS])}
        others = d.get("others_running", {})
        rounds = [(r["kiln_ms"], {k: PeerResult(**v) for k, v in r["peers"].items()}) for r in d.get("rounds", [])]
        return KernelRow(specs[d["kernel"]], d["threads"], kiln_ms=d["kiln_ms"], kiln_error=d["kiln_error"],
                         peers={k: PeerResult(**v) for k, v in d["peers"].items()},
                         peers_others=others.get("peers"), kiln_others=others.get("kiln"), rounds=rounds)

    def as_dict(self):
        return {"kernel": self.spec.label, "threads": self.threads, "gflop": self.spec.flops * 1e-9,
                "kiln_ms": self.kiln_ms, "kiln_error": self.kiln_error, "ratio": self.ratio,
                "others_running": {"peers": self.peers_others, "kiln": self.kiln_others},
                "peers": {k: vars(v) for k, v in self.peers.items()},
                "rounds": [{"kiln_ms": k, "peers": {c: vars(v) for c, v in p.items()}} for k, p in self.rounds]}
