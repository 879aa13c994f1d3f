"""Markdown report for bench/bench.py: machine and versions, whole-model table, kernel table."""
import math
import os
import subprocess
from dataclasses import dataclass

import kernels


@dataclass
class Context:
    mode: object
    started: str
    load_start: float
    load_end: float
    nominal_peak: float       # GFLOP/s per core
    measured_peak: tuple      # (isa, GFLOP/s per core) or None
    versions: dict
    command: str
    anchor_headers: tuple = ()
    peer_errors: dict = None

    def as_dict(self):
        """Everything but the mode (rebuilt from the quick flag) and the nominal peak (a constant)."""
        d = {k: v for k, v in vars(self).items() if k not in ("mode", "nominal_peak")}
        return dict(d, quick=self.mode.quick)

    @staticmethod
    def from_dict(d, mode, nominal_peak):
        d = {k: v for k, v in d.items() if k != "quick"}
        peak = d.pop("measured_peak", None)
        peak = tuple(peak) if peak else None
        return Context(mode=mode, nominal_peak=nominal_peak, measured_peak=peak,
                       **dict(d, anchor_headers=tuple(d.get("anchor_headers", ()))))


def _sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _dpkg(pkg):
    return _sh(["dpkg-query", "-W", "-f=${Version}", pkg]) or "not installed"


def versions(repo):
    """Versions of everything measured, as {component: text}."""
    compiler = ["--", "src", "include", "tools", "CMakeLists.txt"]  # what the measured kiln is built from
    head = _sh(["git", "-C", repo, "rev-parse", "--short", "HEAD"]) or "unknown"
    last = _sh(["git", "-C", repo, "log", "-1", "--format=%h, %cs"] + compiler)
    dirty = _sh(["git", "-C", repo, "status", "--porcelain"] + compiler)
    try:
        import onnxruntime
        ort = onnxruntime.__version__
    except ImportError:
        ort = "not installed"
    cpu = next((ln.split(":", 1)[1].strip() for ln in _sh(["lscpu"]).splitlines() if ln.startswith("Model name")),
               "unknown")
    flags = open("/proc/cpuinfo").read()
    isa = "AVX-512" if " avx512f" in flags else ("AVX2+FMA, no AVX-512" if " avx2" in flags else "no AVX2")
    return {
        "cpu": f"{cpu} ({os.cpu_count()} cores, {isa})",
        "kiln": f"git {head}{' + uncommitted compiler changes' if dirty else ''} (compiler sources as of {last}), "
                f"LLVM {_sh(['llvm-config-19', '--version']) or '19'}, Release build",
        "ort": f"{ort} (PyPI onnxruntime, CPU execution provider)",
        "onednn": f"libdnnl-dev {_dpkg('libdnnl-dev')}",
        "openblas": f"libopenblas0-pthread {_dpkg('libopenblas0-pthread')}",
        "cc": _sh(["gcc", "--version"]).splitlines()[0] if _sh(["gcc", "--version"]) else "gcc unknown",
    }


def _fmt(v, digits=2):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}" if v >= 0.1 else f"{v:.3f}"


def _geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _pct(gflops, peak_per_core, threads):
    return f"{100 * gflops / (peak_per_core * threads):.0f}%" if gflops and peak_per_core else "—"


def _others(row):
    vals = [v for v in (row.peers_others, row.kiln_others) if v is not None]
    return f"{max(vals):.1f}" if vals else "—"


def _cell_error(msg):
    return "error: " + msg.replace("|", "/")[:140]


# ------------------------------------------------------------------------------------------- models
def model_table(rows, mode):
    out = ["| model | threads | kiln ms | ORT ms | kiln/ORT | kiln compile s | kiln intermediates MB | ORT RSS growth MB | others running |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        kiln = _cell_error(r.kiln_error) if r.kiln_error else _fmt(r.kiln_ms)
        ort = _cell_error(r.ort_error) if r.ort_error else _fmt(r.ort_ms, 3)
        ratio = f"{r.ratio:.2f}x" if r.ratio else "—"
        comp = f"{r.compile_ms / 1000:.1f}" if r.compile_ms else "—"
        out.append(f"| {r.model} | {r.threads} | {kiln} | {ort} | {ratio} | {comp} | {_fmt(r.kiln_mem_mb)} | "
                   f"{_fmt(r.ort_mem_mb)} | {r.others:.1f} |")
    for t in mode.threads:
        ok = [r for r in rows if r.threads == t and r.ratio]
        if ok:
            out.append(f"| **geomean** ({len(ok)} models) | {t} | {_fmt(_geomean(r.kiln_ms for r in ok))} | "
                       f"{_fmt(_geomean(r.ort_ms for r in ok), 3)} | **{_geomean(r.ratio for r in ok):.2f}x** | | | | |")
    return "\n".join(out)


def model_headline(rows, mode):
    parts = []
    for t in mode.threads:
        ok = [r for r in rows if r.threads == t and r.ratio]
        if ok:
            parts.append(f"{_geomean(r.ratio for r in ok):.2f}x ORT's latency at {t} thread{'s' if t > 1 else ''} "
                         f"(geomean of {len(ok)} models)")
    failed = sorted({r.model for r in rows if r.kiln_error})
    text = "kiln takes " + "; ".join(parts) if parts else "no model ran in both kiln and ORT"
    return text + (f"; kiln failed on: {', '.join(failed)}" if failed else "")


# ------------------------------------------------------------------------------------------ kernels
def kernel_table(rows, ctx):
    peak = ctx.measured_peak[1] if ctx.measured_peak else None
    cols = " | ".join(f"{c} GF/s" for c in kernels.PEER_COLUMNS)
    out = [f"| kernel | threads | GFLOP | kiln ms | kiln GF/s | {cols} | kiln %pk (216/core) | best peer %pk (216/core) "
           f"| kiln %pk (measured) | best peer %pk (measured) | kiln time / best peer time | others running |",
           "|---|---:|---:|---:|---:|" + "---:|" * len(kernels.PEER_COLUMNS) + "---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        best = r.best_peer
        best_gf = best[1].gflops if best else None
        peer_cells = " | ".join(_fmt(r.peers[c].gflops, 1) if c in r.peers else
                                ("n/a" if r.spec.kind == "conv" and c != "oneDNN" else "—")
                                for c in kernels.PEER_COLUMNS)
        kiln_ms = _cell_error(r.kiln_error) if r.kiln_error else _fmt(r.kiln_ms)
        ratio = f"{r.ratio:.2f}x ({best[0]})" if best and r.ratio else "—"
        out.append(f"| {r.spec.label} | {r.threads} | {r.spec.flops * 1e-9:.3g} | {kiln_ms} | {_fmt(r.kiln_gflops)} | "
                   f"{peer_cells} | {_pct(r.kiln_gflops, ctx.nominal_peak, r.threads)} | "
                   f"{_pct(best_gf, ctx.nominal_peak, r.threads)} | {_pct(r.kiln_gflops, peak, r.threads)} | "
                   f"{_pct(best_gf, peak, r.threads)} | {ratio} | {_others(r)} |")
    return "\n".join(out)


def kernel_headline(rows):
    ratios = [r.ratio for r in rows if r.ratio]
    gf = [r.kiln_gflops / r.threads for r in rows if r.kiln_ms]
    if not ratios:
        return "no kernel ran in both kiln and a peer library"
    return (f"on single GEMM/conv kernels kiln takes {_geomean(ratios):.2f}x the best peer's time (geomean of "
            f"{len(ratios)} kernel x thread cases; kiln reaches {min(gf):.1f}-{max(gf):.1f} GFLOP/s per core)")


# ------------------------------------------------------------------------------------------ reading
def reading_notes(model_rows, kernel_rows, ctx):
    """What a reader must know before trusting a number, derived from the run's own data."""
    notes = []
    busy = [r for r in model_rows if r.others is not None and r.others >= 0.5]
    busy += [r for r in kernel_rows if max(v for v in (r.peers_others, r.kiln_others, 0) if v is not None) >= 0.5]
    if busy:
        notes.append(f"{len(busy)} of {len(model_rows) + len(kernel_rows)} rows started while other work was "
                     "runnable (`others running` >= 0.5): the machine is shared, so those rows are slower than "
                     "an idle machine would give, for kiln and for its peers alike.")
    one = {r.model: r.ort_ms for r in model_rows if r.threads == 1 and r.ort_ms}
    slower = [r.model for r in model_rows if r.threads == 2 and r.ort_ms and r.model in one and r.ort_ms > one[r.model]]
    if slower:
        notes.append("ONNX Runtime was *slower* with 2 threads than with 1 on " + ", ".join(slower) + ". On an idle "
                     "machine it is not (../shared/models/README.md records 2-thread ORT at about half its 1-thread "
                     "latency), so a neighbour held a core during those 2-thread rows and their kiln/ORT "
                     "ratios are unreliable. The 1-thread rows are the more trustworthy comparison.")
    if ctx.measured_peak and ctx.measured_peak[0] != "avx512":
        notes.append(f"This CPU has no AVX-512: the nominal 216 GFLOP/s per core cannot be reached here; the "
                     f"measured {ctx.measured_peak[1]:.0f} GFLOP/s ({ctx.measured_peak[0]} FMA) is the real ceiling. "
                     "The peers use their non-AVX-512 kernels here (see the lines the anchor binaries report).")
    worst = sorted((r for r in model_rows if r.ratio), key=lambda r: -r.ratio)[:3]
    if worst:
        notes.append("Largest model gaps: " + ", ".join(f"{r.model} at {r.threads}T ({r.ratio:.2f}x)" for r in worst)
                     + ".")
    gaps = sorted(((r.ratio, r) for r in kernel_rows if r.ratio), key=lambda x: -x[0])[:3]
    if gaps:
        notes.append("Largest kernel gaps: " + ", ".join(f"{r.spec.label} at {r.threads}T ({g:.2f}x)" for g, r in gaps)
                     + ".")
    failed = [f"{r.model} ({r.threads}T)" for r in model_rows if r.kiln_error]
    failed += [f"{r.spec.label} ({r.threads}T)" for r in kernel_rows if r.kiln_error]
    if failed:
        notes.append("kiln failed on: " + ", ".join(failed) + " (error rows above).")
    return notes


# ------------------------------------------------------------------------------------------- report
def render(ctx, model_rows, kernel_rows):
    mode, v = ctx.mode, ctx.versions
    peak = (f"measured on this machine: **{ctx.measured_peak[1]:.1f} GFLOP/s per core** "
            f"({ctx.measured_peak[0]} FMA loop, `bench/fma_peak.c`, 1 thread)" if ctx.measured_peak
            else "measured peak: unavailable (bench/fma_peak.c not built)")
    threads = " and ".join(str(t) for t in mode.threads)
    no_avx512_note = ("; this CPU has no AVX-512, so the nominal peak is out of reach here and the measured "
                      "one is the fair yardstick" if ctx.measured_peak and ctx.measured_peak[0] != "avx512" else "")
    errors = [f"* {where}: {msg}" for where, msg in (ctx.peer_errors or {}).items()]
    lines = [
        "# kiln performance" + (" (quick run)" if mode.quick else ""),
        "",
        f"Generated by `{ctx.command}` on {ctx.started}. What kiln does today, all by default heuristics with no",
        "tuning: register-tiled reductions (6 rows x 2 vectors of FMA accumulators with AVX2) over the innermost",
        "axis or, for convolutions, over output channels, with weight panels packed at compile time; cache blocking",
        "(reduction blocks with partial sums, panel groups held in L2); row maxima and sums (Softmax, LayerNorm) in",
        "vector lanes; Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions; elementwise chains fused into their",
        "producer (conv + batch norm + add + relu, MatMul + bias + GELU in one kernel); vector exp/erf; zero padding",
        "split into a plain interior and a constant border; phase planes or im2col for windows; a channel-blocked",
        "layout (NCHW16c, channels padded to whole blocks) through chains of convolutions, batch norms, elementwise",
        "ops and pools, converted back once where a plain tensor is needed; outermost loops on a spinning thread",
        "pool, fused until they split evenly over the threads; shared intermediate memory. The kernel table below",
        "times one-node models with plain (NCHW) input and output: the 3x3 stride-1 convolutions run inside as in a",
        "model (channel-blocked, Winograd, the layout conversions included in the time), the 1x1 and the 7x7/2",
        "stem plain and direct. Missing: depthwise-specific tiles, fusion across the layers of a block (MobileNetV2's first",
        "layers are bound by memory traffic), AVX-512 / AMX paths measured on this CPU (one run on an Intel Xeon",
        "with AMX: docs/performance-device.md).",
        "",
        "**Headline:** " + model_headline(model_rows, mode) + "; " + kernel_headline(kernel_rows) + ".",
        "",
        "## Machine and versions",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {v['cpu']} |",
        f"| fp32 peak | nominal 216 GFLOP/s per core (AVX-512 FMA on the team's Sapphire Rapids VM); {peak}"
        f"{no_avx512_note} |",
        f"| 1-min load average | {ctx.load_start:.2f} at start, {ctx.load_end:.2f} at end (2 cores, shared machine) |",
        f"| kiln | {v['kiln']} |",
        f"| ONNX Runtime | {v['ort']} |",
        f"| oneDNN | {v['onednn']} |",
        f"| OpenBLAS | {v['openblas']} |",
        f"| anchor binaries | built from ../shared/anchors with {v['cc']}, -O3 -march=native |",
    ]
    if ctx.anchor_headers:
        lines += ["", "The anchor binaries report:", "", "```"] + list(ctx.anchor_headers) + ["```"]
    lines += [
        "",
        "## Whole models",
        "",
        f"Batch 1, inputs from each model's `test_data_set_0`, {threads} thread(s). kiln: `kiln bench MODEL --inputs DIR "
        "--threads N --json` (one probe run sizes the iteration count, then each round compiles and times "
        f"~{mode.kiln_budget_s:g} s of runs, at least {mode.kiln_min_iters}, after 1 warm-up). ONNX Runtime: "
        "intra_op_num_threads=N, inter_op_num_threads=1, sequential, all graph optimizations, same inputs, "
        f"~{mode.ort_budget_s:g} s of runs per round after 1 warm-up. {mode.rounds} round(s) alternate kiln and ORT; "
        "each time column is the median over rounds of the per-round median latency, and kiln/ORT the median of "
        "the per-round ratios (kiln and ORT back to back see the same machine state). Before each row the script waits "
        f"up to {mode.settle_s:g} s for other work to stop; `others running` is then the mean number of other "
        "runnable threads on the machine (from /proc/loadavg): 0 means kiln and ORT had the cores to themselves "
        "when the row started; 1 or more means a neighbour took a core for at least part of the row, which hurts "
        "2-thread rows most (ORT's spinning worker threads in particular). Synthetic models come from ../shared/models/make_models.py (random "
        "weights), real ones from ../shared/models/real. Memory: `kiln intermediates MB` is kiln's planned arena "
        "for intermediates (`kiln bench --json` intermediate_bytes; weights are not in it); `ORT RSS growth MB` is "
        "ONNX Runtime's peak resident-memory growth in a fresh process from before its session is built to after "
        "three runs (weights, prepacked weights and its arena), the comparison the issue asks for.",
        "",
        model_table(model_rows, mode),
        "",
        "## Kernels (fp32)",
        "",
        "GEMM is row-major C = A·B; kiln compiles a one-node ONNX model (MatMul with B an initializer, Conv with "
        "the weights an initializer, batch 1, no bias) and times it with `kiln bench --json`; GFLOP/s use the "
        "median time. The peers run in the same script run, from the anchor kit in ../shared/anchors "
        "(`gemm_openblas`: cblas_sgemm; `dnnl_bench matmul f32 ab` (plain B) and `any` (B pre-packed, packing "
        f"untimed); `dnnl_bench conv`: direct conv, format_tag::any), BENCH_REPS={mode.anchor_reps}, "
        f"their median time per run. {getattr(mode, 'kernel_rounds', 1)} round(s) per thread count run the peers "
        "(all shapes) and kiln (each shape) back to back, peers first in odd rounds and kiln first in even ones; "
        "each time and GF/s column is from the median over rounds, and `kiln time / best peer time` is the median "
        "of the per-round ratios of kiln's time to the fastest peer's in that round (the column named is the peer "
        "fastest by median). OpenBLAS has no convolution (n/a). %pk = GFLOP/s / (threads x per-core peak), "
        "against the nominal 216 GFLOP/s and against the peak measured on this machine. `others running`: the "
        "largest of the counts taken before the peers' runs (per thread count and round) and before kiln's runs "
        "of the row.",
        "",
        kernel_table(kernel_rows, ctx),
    ]
    if errors:
        lines += ["", "Peer binaries that failed:", ""] + errors
    notes = reading_notes(model_rows, kernel_rows, ctx)
    if notes:
        lines += ["", "## Reading these numbers", ""] + [f"* {n}" for n in notes]
    lines += [
        "",
        "## Reproduce",
        "",
        "```sh",
        "bench/run.sh           # full run (installs libdnnl-dev libopenblas-dev and the Python packages if missing)",
        "bench/run.sh --quick   # a few minutes: mobilenet_v2 + resnet50_v1 at 1 thread, GEMM 256/512, one conv",
        "python3 bench/bench.py --render build/bench-results/results.json   # rewrite this page from the saved run",
        "```",
        "",
        "Run it when the machine is quiet: the script waits up to 10 minutes for a 1-minute load below 1.5, "
        "then measures anyway and records how busy the machine was (`others running`).",
        "",
    ]
    return "\n".join(lines)
