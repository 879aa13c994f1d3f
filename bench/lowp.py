"""kiln in reduced precision (issue 4): bf16 and int8 against ONNX Runtime and oneDNN, same run.

- Whole models, batch 1: kiln --precision bf16 against ONNX Runtime fp32 (with kiln's error
  against its own fp32 model), and the model quantized to int8 by onnxruntime.quantization
  (QDQ, static, per-channel, reduce_range) in kiln against ONNX Runtime running the same file,
  with how far their outputs are apart.
- int8 GEMM: one-node MatMulInteger models (u8 x s8 -> s32, constant B) in kiln against oneDNN's
  u8s8s32 matmul with B prepacked (`dnnl_bench matmul s8 any` from ../shared/anchors).
Writes its tables into docs/performance.md between the LOWP markers (bench/run.sh calls it
after bench.py); `--out FILE` writes them alone.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Kiln, ort_session, read_inputs, run_cmd)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- LOWP BEGIN (bench/lowp.py) -->", "<!-- LOWP END -->"
GEMMS = [(512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (128, 768, 768), (128, 3072, 768)]


def log(msg):
    print(f"  {msg}", file=sys.stderr, flush=True)


def quantize(src_dir, dst_dir):
    """The model of src_dir quantized to int8 QDQ (cached), calibrated on 4 inputs like its test input."""
    dst = os.path.join(dst_dir, "model.onnx")
    if os.path.exists(dst):
        return dst
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    os.makedirs(dst_dir, exist_ok=True)
    pre = os.path.join(dst_dir, "preprocessed.onnx")
    quant_pre_process(os.path.join(src_dir, "model.onnx"), pre)
    sess = bench.ort_session(pre, 1)
    test = bench.read_inputs(sess, os.path.join(src_dir, "test_data_set_0"))
    rng = np.random.default_rng(0)

    def sample():
        # Float inputs: noise of the test input's scale; integer inputs (token ids, masks): the test input.
        return {k: (v + 0.1 * rng.standard_normal(v.shape).astype(v.dtype)) if v.dtype == np.float32 else v
                for k, v in test.items()}

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([sample() for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.remove(pre)
    shutil.copytree(os.path.join(src_dir, "test_data_set_0"), os.path.join(dst_dir, "test_data_set_0"))
    return dst


def ort_ms(model, feeds, threads, budget_s=3.0):
    sess = bench.ort_session(model, threads)
    sess.run(None, feeds)
    times, end = [], time.perf_counter() + budget_s
    while len(times) < 5 or (time.perf_counter() < end and len(times) < 200):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)), sess


def kiln_json(kiln, model, threads, inputs, est_ms, extra=()):
    iters = max(3, min(100, int(3000 / max(est_ms, 1))))
    cmd = [kiln, "bench", model, "--threads", str(threads), "--iters", str(iters), "--warmup", "1", "--json", *extra]
    if inputs:
        cmd += ["--inputs", inputs]
    try:
        return bench.json.loads(bench.run_cmd(cmd, timeout=1800).strip().splitlines()[-1])
    except bench.BenchError as e:  # reported in the table as failed, the other rows still measured
        log(f"FAILED: {' '.join(cmd[1:3] + list(extra))}: {e}")
        return {"median_ms": None, "min_ms": None, "error": str(e)}


def output_steps(model, kiln, inputs, sess, feeds):
    """Largest difference between kiln's and ONNX Runtime's outputs, in quantization steps of the
    DequantizeLinear that produces each output (plain absolute difference where none does)."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(model, load_external_data=False)
    init = {i.name: i for i in m.graph.initializer}
    scale_of = {}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[1] in init:
            scale_of[n.output[0]] = float(numpy_helper.to_array(init[n.input[1]]).max())
    out_dir = os.path.join(os.path.dirname(model), "kiln_outputs")
    bench.run_cmd([kiln, "run", model, "--inputs", inputs, "--save-outputs", out_dir], timeout=1800)
    worst = 0.0
    for k, (o, ref) in enumerate(zip(sess.get_outputs(), sess.run(None, feeds))):
        t = onnx.TensorProto()
        with open(os.path.join(out_dir, f"output_{k}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        diff = float(np.abs(numpy_helper.to_array(t).astype(np.float64) - ref).max())
        worst = max(worst, diff / scale_of.get(o.name, 1.0))
    return worst


def models_table(kiln, models_dir, names, threads_list, rounds=3):
    rows = []
    for name in names:
        src = os.path.join(models_dir, name)
        if not os.path.exists(os.path.join(src, "model.onnx")):
            log(f"{name}: not generated, skipped")
            continue
        log(f"{name}: quantizing (cached in {name}_int8/)")
        q = quantize(src, os.path.join(models_dir, name + "_int8"))
        fp32, inputs = os.path.join(src, "model.onnx"), os.path.join(src, "test_data_set_0")
        for threads in threads_list:
            log(f"{name} {threads}T")
            sess = bench.ort_session(fp32, 1)
            feeds = bench.read_inputs(sess, inputs)
            # Rounds of ORT and kiln back to back: this shared machine's speed drifts by tens of
            # percent within minutes, so the ratios are taken per round (then their median)
            # rather than between medians measured minutes apart.
            per = {k: [] for k in ("ort32", "kiln32", "kiln16", "ort8", "kiln8")}
            for _ in range(rounds):
                ort32, _ = ort_ms(fp32, feeds, threads)
                k32 = kiln_json(kiln, fp32, threads, inputs, ort32)
                # Without --inputs: kiln bench then compares bf16 with fp32 on 8 random inputs.
                k16 = kiln_json(kiln, fp32, threads, None, ort32, ["--precision", "bf16"])
                ort8, qsess = ort_ms(q, feeds, threads)
                k8 = kiln_json(kiln, q, threads, inputs, ort8)
                for k, v in (("ort32", ort32), ("kiln32", k32["median_ms"]), ("kiln16", k16["median_ms"]),
                             ("ort8", ort8), ("kiln8", k8["median_ms"])):
                    per[k].append(v)
            steps = None
            if threads == threads_list[0] and k8["median_ms"] is not None:
                try:
                    steps = output_steps(q, kiln, inputs, qsess, feeds)
                except bench.BenchError as e:
                    log(f"FAILED: kiln run {q}: {e}")
            def med(key):
                vals = [v for v in per[key] if v is not None]
                return float(np.median(vals)) if len(vals) == rounds else None

            def round_ratio(num, den):
                pairs = [a / b for a, b in zip(per[num], per[den]) if a is not None and b]
                return float(np.median(pairs)) if len(pairs) == rounds else None
            rows.append(dict(model=name, threads=threads, ort32=med("ort32"), kiln32=med("kiln32"), kiln16=med("kiln16"),
                             err_abs=k16.get("max_abs_err"), err_rel=k16.get("max_rel_err"),
                             top1=f'{k16.get("top1_agree")}/{k16.get("top1_total")}' if k16.get("top1_total") else "-",
                             ort8=med("ort8"), kiln8=med("kiln8"), steps=steps,
                             ratio16=round_ratio("kiln16", "ort32"), ratio8=round_ratio("kiln8", "ort8")))
            log("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()))
    return rows


def write_gemm_model(path, m, n, k, prec):
    """One-node GEMM with a constant B: MatMulInteger u8 x s8 -> s32 for int8, else an f32 MatMul
    (kiln runs it in bf16 with --precision bf16)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(1)
    if prec == "int8":
        b = numpy_helper.from_array(rng.integers(-8, 8, (k, n)).astype(np.int8), "b")
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        b = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "b")
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a_type = y_type = TensorProto.FLOAT
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", a_type, [m, k])],
                          [helper.make_tensor_value_info("y", y_type, [m, n])], [b])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)


# precision -> (oneDNN data type of `dnnl_bench matmul`, kiln flags, model file prefix)
GEMM_KINDS = {"bf16": ("bf16", ["--precision", "bf16"], "f32_gemm"), "int8": ("s8", [], "int8_gemm"),
              "fp32": ("f32", [], "f32_gemm")}


def gemm_table(kiln, anchors, work, threads_list, precisions):
    rows = []
    for prec in precisions:
        dnnl_type, flags, prefix = GEMM_KINDS[prec]
        dnnl = {}  # (shape, threads) -> best ms
        for threads in threads_list:
            try:
                out = bench.run_cmd([os.path.join(anchors, "dnnl_bench"), "matmul", dnnl_type, "any"],
                                    env=dict(os.environ, OMP_NUM_THREADS=str(threads)), timeout=1200)
            except bench.BenchError as e:
                log(f"oneDNN {prec}: {e}")
                out = ""
            for line in out.splitlines():
                f = line.split(",")
                if line.startswith("RES,") and len(f) > 9:
                    dnnl[(f[4], int(f[5]))] = (float(f[8]), f[10] if len(f) > 10 else f[3])
        for (m, n, k) in GEMMS:
            path = os.path.join(work, f"{prefix}_{m}x{n}x{k}", "model.onnx")
            if not os.path.exists(path):
                write_gemm_model(path, m, n, k, prec)
            for threads in threads_list:
                log(f"{prec} GEMM {m}x{n}x{k} {threads}T")
                r = kiln_json(kiln, path, threads, None, 600, flags)  # 5 timed runs
                d = dnnl.get((f"{m}x{n}x{k}", threads))
                log(f"  kiln {r['min_ms']} ms, oneDNN {d[0] if d else '-'} ms")
                rows.append(dict(prec=prec, shape=f"{m}x{n}x{k}", threads=threads, kiln=r["min_ms"],
                                 dnnl=d[0] if d else None, impl=d[1] if d else "-", gop=2.0 * m * n * k / 1e9))
    return rows


def amx_peaks(binary):
    """{"bf16": GFLOP/s, "int8": GOP/s} of one core's tile unit (bench/amx_peak.c), {} without AMX."""
    try:
        out = bench.run_cmd([binary], timeout=120)
    except (bench.BenchError, OSError):
        return {}
    return {f[1]: float(f[2]) for f in (line.split(",") for line in out.splitlines()) if len(f) == 3}


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def failed(v, spec=".1f"):
    """A kiln time, or 'failed' where its run did not complete (the log names the reason)."""
    return "failed" if v is None else format(v, spec)


def git_head():
    r = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def render(model_rows, gemm_rows, peak, isa, amx):
    if amx:
        machine = (f"It has **AMX** (one core's tile unit measured by `bench/amx_peak.c`: bf16 {amx['bf16']:.0f} GFLOP/s, "
                   f"int8 {amx['int8']:.0f} GOP/s): bf16 and int8 tile products (MatMul/Gemm, attention products, 1x1 and "
                   "stride-1 window convolutions with 32-/64-multiple channels) run as generated AMX tile code.")
    else:
        machine = ("It has **no AMX**" + ("" if "AVX-512" in isa else " and no AVX-512") + ", so nothing here runs on tile "
                   "hardware: bf16 products run as f32 arithmetic on bf16-rounded operands (the numerics of AMX's "
                   "`tdpbf16ps`), int8 products as vector code (tile products — MatMul/Gemm, 1x1 and stride-1 window "
                   "convolutions with 64-multiple channels — as `vpmaddubsw` kernels where the weights lie in [-64, 64], "
                   "`vpmaddwd` ones otherwise; i32 register tiles elsewhere, exact f32 sums for 8-bit convolutions "
                   "too small for tiles such as the C = 3 stem). The AMX targets of issue 4 cannot be measured here.")
    L = [BEGIN, "", "## Reduced precision: bf16 and int8 (issue 4)", "",
         f"Measured by `bench/lowp.py` (run by `bench/run.sh`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"kiln git {git_head()}, on this machine: {isa}. {machine}", "",
         "### Whole models (batch 1; ms, medians)", "",
         "bf16: kiln `--precision bf16` against ONNX Runtime fp32, error of kiln bf16 against kiln fp32 "
         "on 8 random inputs (relative error |d| / max(|ref|, 1e-3 max|ref|); top-1: rows of a 2-D "
         "[rows, classes] output whose argmax agrees). int8: the model quantized by "
         "`onnxruntime.quantization` (QDQ, static, per-channel s8 weights, u8 activations, reduce_range) run "
         "by both; 'steps' is the largest output difference in units of the output's quantization scale. "
         "Each time is the median over rounds that run ONNX Runtime and kiln back to back; each ratio is the "
         "median of the per-round ratios (the machine's speed drifts between rounds).", "",
         "| model | threads | ORT fp32 | kiln fp32 | kiln bf16 | bf16 / ORT fp32 | bf16 max abs err | bf16 max rel err "
         "| top-1 | ORT int8 | kiln int8 | int8 / ORT int8 | int8 output steps |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in model_rows:
        L.append(f"| {r['model']} | {r['threads']} | {r['ort32']:.1f} | {failed(r['kiln32'])} | {failed(r['kiln16'])} | "
                 f"{fmt(r['ratio16'], '.2f')} | {fmt(r['err_abs'], '.3g')} | "
                 f"{fmt(r['err_rel'], '.3g')} | {r['top1']} | {r['ort8']:.1f} | {failed(r['kiln8'])} | "
                 f"{fmt(r['ratio8'], '.2f')} | "
                 f"{fmt(r['steps'], '.1f')} |")

    def peak_of(prec):  # per core, and what it is
        if prec in amx:
            return amx[prec], "AMX " + prec
        return peak, "fp32 FMA"
    L += ["", "### GEMM (constant B; best of 5 runs)", "",
          "bf16: bf16 x bf16 -> f32 (kiln: an f32 MatMul compiled with `--precision bf16`); int8: u8 x s8 -> s32 "
          "(MatMulInteger); fp32 where listed. oneDNN: `dnnl_bench matmul <type> any` (B prepacked), its "
          "implementation as oneDNN names it. '% peak' is against the peak named (per core, times the threads): "
          + (f"the measured AMX peaks above for bf16/int8" if amx else f"this machine's measured fp32 FMA peak "
             f"({peak:.0f} GFLOP/s per core), as it has no tile unit") + ".", "",
          "| precision | M x N x K | threads | kiln ms | kiln G(FL)OP/s | % peak (of) | oneDNN ms | oneDNN G(FL)OP/s "
          "| oneDNN impl | kiln / oneDNN time |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in gemm_rows:
        if r["kiln"] is None:
            L.append(f"| {r['prec']} | {r['shape']} | {r['threads']} | failed | - | - | {fmt(r['dnnl'], '.3f')} | - | "
                     f"{r['impl']} | - |")
            continue
        rel = r["kiln"] / r["dnnl"] if r["dnnl"] else None
        gops = r["gop"] / r["kiln"] * 1e3
        dgops = r["gop"] / r["dnnl"] * 1e3 if r["dnnl"] else None
        pk, what = peak_of(r["prec"])
        pct = 100 * gops / (pk * r["threads"]) if pk else None
        L.append(f"| {r['prec']} | {r['shape']} | {r['threads']} | {r['kiln']:.3f} | {gops:.0f} | {fmt(pct, '.0f')} "
                 f"({what}) | {fmt(r['dnnl'], '.3f')} | {fmt(dgops, '.0f')} | {r['impl']} | {fmt(rel, '.2f')} |")
    if not any(r["dnnl"] for r in gemm_rows if r["prec"] == "bf16"):
        L += ["", "oneDNN gave no bf16 matmul here (2.6 has none without AVX-512), so the bf16 rows have no peer."]
    L += ["", END]
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", default=os.path.join(REPO, "build", "kiln"))
    ap.add_argument("--anchors", default=os.path.join(REPO, "build", "anchors"))
    ap.add_argument("--models", default=os.path.join(REPO, "build", "bench-models"))
    ap.add_argument("--work", default=os.path.join(REPO, "build", "bench-kernels"))
    ap.add_argument("--amx-peak", default=os.path.join(REPO, "build", "amx_peak"), help="built bench/amx_peak.c")
    ap.add_argument("--fma-peak", default=os.path.join(REPO, "build", "fma_peak"), help="built bench/fma_peak.c")
    ap.add_argument("--gemm-precisions", default="bf16,int8", help="GEMM tables to measure (bf16, int8, fp32)")
    ap.add_argument("--models-list", default="resnet50_v1,bert_base", help="models to measure")
    ap.add_argument("--quick", action="store_true", help="resnet50_v1 and 512/128x768 GEMMs at 1 thread")
    ap.add_argument("--rounds", type=int, default=3, help="back-to-back rounds per model row (default 3; --quick: 1)")
    ap.add_argument("--out", help="write the section to this file instead of docs/performance.md")
    a, _ = ap.parse_known_args()
    threads = [1] if a.quick else [1, 2]
    names = ["resnet50_v1"] if a.quick else [n for n in a.models_list.split(",") if n]
    if a.quick:
        del GEMMS[1:3], GEMMS[-1]
    model_rows = models_table(a.kiln, a.models, names, threads, 1 if a.quick else a.rounds)
    gemm_rows = gemm_table(a.kiln, a.anchors, a.work, threads, [p for p in a.gemm_precisions.split(",") if p])
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True)
    flags = open("/proc/cpuinfo").read()
    isa = cpu.stdout.strip() + (", AVX-512" if "avx512f" in flags else ", AVX2") + (", AMX" if "amx_tile" in flags else "")
    probe = bench.measured_peak(a.fma_peak)
    text = render(model_rows, gemm_rows, probe[1] if probe else 0, isa, amx_peaks(a.amx_peak))
    print(text)
    out = a.out or os.path.join(REPO, "docs", "performance.md")
    if a.out:
        open(out, "w").write(text)
        return
    doc = open(out).read() if os.path.exists(out) else ""
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) + 1:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    open(out, "w").write(doc)
    log(f"wrote {os.path.relpath(out, REPO)}")


if __name__ == "__main__":
    main()
