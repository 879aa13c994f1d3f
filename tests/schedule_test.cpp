// Schedule steps (tir/schedule_steps.h) and the default reduction schedules: every scheduled
// kernel is compiled and run against a plain C++ reference; illegal steps must be refused
// with a message naming the step, the loop and the reason.
#include <cmath>
#include <gtest/gtest.h>

#include <random>

#include "codegen/jit.h"
#include "kiln/error.h"
#include "runtime/thread_pool.h"
#include "tir/lower.h"
#include "tir/schedule_steps.h"

using namespace kiln;
using namespace kiln::tir;

namespace {

std::vector<float> test_data(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void run(const PrimFunc& f, std::vector<void*> args) {
  codegen::CodegenOptions co;
  co.runtime_symbols = {{"kiln_parallel_for", reinterpret_cast<void*>(&kiln_parallel_for)}};  // serial here
  auto lib = codegen::JitLibrary::compile({f}, co);
  lib->lookup(f.name)(args.data());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// out[i, j] = a[i, j] * 2 + 1 over 5 x 10.
struct Elementwise {
  Tensor a = placeholder({5, 10}, DType::F32, "a");
  Tensor out = compute({5, 10}, [&](const std::vector<Var>& i) { return a(i[0], i[1]) * make_const(DType::F32, 2.0) + make_const(DType::F32, 1.0); }, "out");
  PrimFunc lowered() { return lower("ew", {a}, {out}); }
};

// c[i, j] = sum_k a[i, k] * b[k, j].
struct Matmul {
  int64_t m, n, k;
  Tensor a, b, c;
  IterVar r;
  Matmul(int64_t m_, int64_t n_, int64_t k_) : m(m_), n(n_), k(k_) {
    a = placeholder({m, k}, DType::F32, "a");
    b = placeholder({k, n}, DType::F32, "b");
    r = reduce_axis(k, "k");
    c = compute({m, n}, [&](const std::vector<Var>& i) { return sum(a(i[0], r.var) * b(r.var, i[1]), {r}); }, "c");
  }
  void check(const PrimFunc& f) const {
    std::vector<float> A = test_data(m * k, 1), B = test_data(k * n, 2), C(m * n, -7.0f);
    run(f, {A.data(), B.data(), C.data()});
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double want = 0;
        for (int64_t t = 0; t < k; ++t) want += double(A[i * k + t]) * B[t * n + j];
        ASSERT_NEAR(C[i * n + j], want, 1e-4 * (1 + std::abs(want))) << "at " << i << ", " << j;
      }
  }
};

}  // namespace

TEST(ScheduleSteps, ParseAndPrintRoundTrip) {
  auto steps = parse_schedule("split(x, 8);  vectorize(x_i)\nreorder(a, b, c); fuse(a, b); unroll(y); parallel(x_o)");
  ASSERT_EQ(steps.size(), 6u);
  EXPECT_EQ(to_string(steps), "split(x, 8); vectorize(x_i); reorder(a, b, c); fuse(a, b); unroll(y); parallel(x_o)");
  EXPECT_EQ(steps[0].factor, 8);
}

TEST(ScheduleSteps, ParseErrorsNameTheText) {
  EXPECT_NE(error_of([] { parse_schedule("split(x)"); }).find("takes a loop and a factor"), std::string::npos);
  EXPECT_NE(error_of([] { parse_schedule("split(x, eight)"); }).find("'eight' is not an integer"), std::string::npos);
  EXPECT_NE(error_of([] { parse_schedule("tile(x, y)"); }).find("unknown step 'tile'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_schedule("vectorize x"); }).find("is not a step"), std::string::npos);
  EXPECT_NE(error_of([] { parse_schedule("reorder(x)"); }).find("two or more loops"), std::string::npos);
}

TEST(ScheduleSteps, SplitWithTailVectorizeReorderFuseRun) {
  Elementwise e;
  PrimFunc f = e.lowered();
  f.body = apply_schedule(f.body, parse_schedule("split(out_i1, 4); vectorize(out_i1_i)"));
  std::string ir = to_string(f);
  EXPECT_NE(ir.find("vectorized out_i1_i in [0, 0 + 4)"), std::string::npos) << ir;
  EXPECT_NE(ir.find("for out_i1_t in [8, 8 + 2)"), std::string::npos) << ir;  // 10 = 2 * 4 + 2
  std::vector<float> A = test_data(50, 3), O(50);
  run(f, {A.data(), O.data()});
  for (int i = 0; i < 50; ++i) ASSERT_FLOAT_EQ(O[i], A[i] * 2 + 1) << i;

  PrimFunc r = e.lowered();
  r.body = apply_schedule(r.body, parse_schedule("split(out_i1, 5); reorder(out_i1_o, out_i0, out_i1_i); vectorize(out_i1_i)"));
  ir = to_string(r);
  EXPECT_LT(ir.find("for out_i1_o"), ir.find("for out_i0 in")) << ir;
  std::fill(O.begin(), O.end(), 0.0f);
  run(r, {A.data(), O.data()});
  for (int i = 0; i < 50; ++i) ASSERT_FLOAT_EQ(O[i], A[i] * 2 + 1) << i;

  PrimFunc g = e.lowered();
  g.body = apply_schedule(g.body, parse_schedule("fuse(out_i0, out_i1); parallel(out_i0_out_i1)"));
  EXPECT_NE(to_string(g).find("parallel out_i0_out_i1 in [0, 0 + 50)"), std::string::npos) << to_string(g);
  std::fill(O.begin(), O.end(), 0.0f);
  run(g, {A.data(), O.data()});
  for (int i = 0; i < 50; ++i) ASSERT_FLOAT_EQ(O[i], A[i] * 2 + 1) << i;
}

TEST(ScheduleSteps, IllegalStepsNameLoopAndReason) {
  Matmul mm(2, 2, 3);  // plain nest: c_i0, c_i1, then k over the scalar accumulator c_acc
  PrimFunc f = lower("mm", {mm.a, mm.b}, {mm.c});
  auto refuse = [&](const std::string& steps) { return error_of([&] { apply_schedule(f.body, parse_schedule(steps)); }); };
  EXPECT_NE(refuse("vectorize(k)").find("loop k: every iteration writes the same element of c_acc"), std::string::npos)
      << refuse("vectorize(k)");
  EXPECT_NE(refuse("parallel(k)").find("schedule step 'parallel(k)': loop k:"), std::string::npos);
  EXPECT_NE(refuse("vectorize(c_i0)").find("not an innermost loop"), std::string::npos);
  EXPECT_NE(refuse("split(nope, 2)").find("no loop named nope"), std::string::npos);
  EXPECT_NE(refuse("reorder(c_i1, k)").find("directly nested"), std::string::npos) << refuse("reorder(c_i1, k)");
  EXPECT_NE(refuse("parallel(c_i0); parallel(c_i1)").find("inside a parallel loop"), std::string::npos);
  EXPECT_NE(refuse("split(c_i0, 0)").find("at least 1"), std::string::npos);
  Matmul wide(2, 100, 3);
  PrimFunc w = lower("mm", {wide.a, wide.b}, {wide.c});
  EXPECT_NE(error_of([&] { apply_schedule(w.body, parse_schedule("unroll(c_i1)")); }).find("more than 64"),
            std::string::npos);
  // Legal steps on the same kernel still compute the product.
  PrimFunc ok = f;
  ok.body = apply_schedule(f.body, parse_schedule("reorder(c_i1, c_i0); parallel(c_i1)"));
  mm.check(ok);
}

TEST(ScheduleSteps, DefaultVectorizesInnerElementwiseLoops) {
  Elementwise e;
  PrimFunc f = e.lowered();
  auto steps = vectorize_inner_loops(&f.body, 8);
  EXPECT_EQ(to_string(steps), "split(out_i1, 8); vectorize(out_i1_i)");
  std::vector<float> A = test_data(50, 4), O(50);
  run(f, {A.data(), O.data()});
  for (int i = 0; i < 50; ++i) ASSERT_FLOAT_EQ(O[i], A[i] * 2 + 1) << i;
}

// A long dependence chain per element (an erf and three divisions, as a quantized GELU has)
// takes twice the lanes, so each instruction has two independent halves; a short one keeps 8.
TEST(ScheduleSteps, LongChainsGetTwiceTheLanes) {
  Tensor a = placeholder({5, 40}, DType::F32, "a");
  auto f32 = [](double v) { return make_const(DType::F32, v); };
  Tensor out = compute({5, 40}, [&](const std::vector<Var>& i) {
    return unary(UnOp::Erf, a(i[0], i[1]) / f32(1.5)) / f32(3.0) / f32(0.25);
  }, "out");
  PrimFunc f = lower("chain", {a}, {out});
  EXPECT_EQ(to_string(vectorize_inner_loops(&f.body, 8)), "split(out_i1, 16); vectorize(out_i1_i)");
  std::vector<float> A = test_data(200, 4), O(200);
  run(f, {A.data(), O.data()});
  for (int i = 0; i < 200; ++i) ASSERT_NEAR(O[i], std::erf(A[i] / 1.5f) / 3.0f / 0.25f, 1e-6) << i;
  Elementwise e;
  PrimFunc g = e.lowered();
  EXPECT_EQ(to_string(vectorize_inner_loops(&g.body, 8)), "split(out_i1, 8); vectorize(out_i1_i)");
}

// A loop that moves bytes only (an 8-bit transpose, copy or pad) takes 4 times the lanes of
// a 32-bit one where they divide it: 64 bytes a row go as 2 x 32; a 56-byte row keeps 7 x 8
// rather than 32 and a scalar tail; a loop that also reads f32 keeps 8.
TEST(ScheduleSteps, ByteLoopsGetFourTimesTheLanes) {
  for (int64_t width : {64, 56}) {
    Tensor a = placeholder({3, width}, DType::U8, "a");
    Tensor out = compute({3, width}, [&](const std::vector<Var>& i) { return a(i[0], width - 1 - i[1]); }, "out");
    PrimFunc f = lower("bytes", {a}, {out});
    EXPECT_EQ(to_string(vectorize_inner_loops(&f.body, 8)),
              width == 64 ? "split(out_i1, 32); vectorize(out_i1_i)" : "split(out_i1, 8); vectorize(out_i1_i)");
    std::vector<uint8_t> A(3 * width), O(3 * width);
    for (size_t k = 0; k < A.size(); ++k) A[k] = uint8_t(k * 7);
    run(f, {A.data(), O.data()});
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t c = 0; c < width; ++c) ASSERT_EQ(O[r * width + c], A[r * width + width - 1 - c]) << r << "," << c;
  }
  Tensor a = placeholder({3, 64}, DType::F32, "a");
  Tensor out = compute({3, 64}, [&](const std::vector<Var>& i) { return cast(DType::U8, a(i[0], i[1])); }, "out");
  PrimFunc f = lower("to_bytes", {a}, {out});
  EXPECT_EQ(to_string(vectorize_inner_loops(&f.body, 8)), "split(out_i1, 8); vectorize(out_i1_i)");
}

// The register-tiled GEMM with cache blocking: K = 1200 runs in reduction blocks (partial sums
// through the output), 13 rows = 6 + 4 + 3 (the 1-row remainder would run at half rate), 40
// columns a one-vector band.
TEST(ReductionSchedule, BlockedTiledMatmulMatchesReference) {
  Matmul mm(13, 40, 1200);
  PrimFunc f = lower("mm", {mm.a, mm.b}, {mm.c}, VectorTarget{32, 16});
  std::string ir = to_string(f);
  EXPECT_NE(ir.find("rolled k_b in [0, 0 + 3)"), std::string::npos) << ir;  // 1200 = 3 blocks of 400
  EXPECT_NE(ir.find("c_tile: f32[6x16]"), std::string::npos) << ir;
  EXPECT_NE(ir.find("c_tile: f32[4x16]"), std::string::npos) << ir;
  EXPECT_NE(ir.find("c_tile: f32[3x16]"), std::string::npos) << ir;
  EXPECT_EQ(ir.find("c_tile: f32[1x16]"), std::string::npos) << ir;
  mm.check(f);
}

// A reduction of exactly two blocks (K = 1024) is blocked too: unblocked, every row tile
// streamed all of B's panels from beyond L2 (GEMM 1024^3 at 83 GFLOP/s on AVX-512).
TEST(ReductionSchedule, TwoBlockReductionIsBlocked) {
  Matmul mm(7, 16, 1024);
  PrimFunc f = lower("mm", {mm.a, mm.b}, {mm.c}, VectorTarget{32, 16});
  std::string ir = to_string(f);
  EXPECT_NE(ir.find("rolled k_b in [0, 0 + 2)"), std::string::npos) << ir;
  mm.check(f);
}

// Blocked products whose rows exceed L2 stream them from L3 once per panel group: with 2 MiB of
// L2 the groups take 512 KiB (all 4 panels of 128 KiB here, so no group loop), with 512 KiB
// they keep 256 KiB (2 groups of 2 panels). (The schedule only: the groups' results are
// checked by the tests around this one.)
TEST(ReductionSchedule, LargerL2TakesLargerPanelGroups) {
  Matmul mm(1100, 256, 1024);
  VectorTarget big{64, 32}, small{64, 32};
  big.l2_bytes = 2 << 20;
  small.l2_bytes = 512 << 10;
  std::string with_big = to_string(lower("mm", {mm.a, mm.b}, {mm.c}, big, {mm.b.buffer().get()}));
  std::string with_small = to_string(lower("mm", {mm.a, mm.b}, {mm.c}, small, {mm.b.buffer().get()}));
  EXPECT_NE(with_big.find("rolled k_b in [0, 0 + 2)"), std::string::npos) << with_big;
  EXPECT_EQ(with_big.find("c_i1_g in"), std::string::npos) << with_big;
  EXPECT_NE(with_small.find("c_i1_g in [0, 0 + 2)"), std::string::npos) << with_small;
}

// 128 rows by 12 constant panels of B: the panels go in groups (B exceeds the group budget while
// A fits L2), and both segments of rows (20 tiles of 6, 2 of 4) run inside one pass over the
// groups, so the last rows find each group's panels still in cache.
TEST(ReductionSchedule, RowSegmentsShareOnePassOverPanelGroups) {
  Matmul mm(128, 192, 768);
  PrimFunc f = lower("mm", {mm.a, mm.b}, {mm.c}, VectorTarget{32, 16}, {mm.b.buffer().get()});
  std::string ir = to_string(f);
  size_t group = ir.find("c_i1_g in [0, 0 + 3)");
  ASSERT_NE(group, std::string::npos) << ir;
  EXPECT_EQ(ir.find("c_i1_g in", group + 1), std::string::npos) << "a second pass over the groups:\n" << ir;
  EXPECT_GT(ir.find("c_tile: f32[6x16]"), group) << ir;
  EXPECT_GT(ir.find("c_tile: f32[4x16]"), group) << ir;
  mm.check(f);
}

// out[c, p] = sum_k w[c, k] * x[k, p] with w known at compile time and 7 positions: the
// channel axis is vectorized over a packed copy of w; without the constant, it is not. Both
// segments of positions run inside one pass over w's panels.
TEST(ReductionSchedule, ChannelVectorsOnlyOverConstantWeights) {
  Tensor w = placeholder({32, 24}, DType::F32, "w"), x = placeholder({24, 7}, DType::F32, "x");
  IterVar k = reduce_axis(24, "k");
  Tensor out = compute({32, 7}, [&](const std::vector<Var>& i) { return sum(w(i[0], k.var) * x(k.var, i[1]), {k}); }, "out");
  PrimFunc plain = lower("cv", {w, x}, {out}, VectorTarget{32, 16});
  EXPECT_EQ(to_string(plain).find("_packed"), std::string::npos) << to_string(plain);
  PrimFunc f = lower("cv", {w, x}, {out}, VectorTarget{32, 16}, {w.buffer().get()});
  std::string ir = to_string(f);
  EXPECT_NE(ir.find("out_packed: f32[2x24x16]"), std::string::npos) << ir;
  EXPECT_NE(ir.find("vectorized out_i0_l"), std::string::npos) << ir;
  // Both segments of positions (4 + 3) inside one pass over the 2 panels of w.
  size_t panels = ir.find("out_i0_o in [0, 0 + 2)");
  ASSERT_NE(panels, std::string::npos) << ir;
  EXPECT_EQ(ir.find("out_i0_o in", panels + 1), std::string::npos) << ir;
  std::vector<float> W = test_data(32 * 24, 5), X = test_data(24 * 7, 6), O(32 * 7);
  run(f, {W.data(), X.data(), O.data()});
  for (int c = 0; c < 32; ++c)
    for (int p = 0; p < 7; ++p) {
      double want = 0;
      for (int t = 0; t < 24; ++t) want += double(W[c * 24 + t]) * X[t * 7 + p];
      ASSERT_NEAR(O[c * 7 + p], want, 1e-4) << c << ", " << p;
    }
}

// A channel-blocked 1x1 convolution over `blocks` output blocks and `pixels` pixels with two
// input blocks: out[cb, p, l] = sum w[cb, kb, kl, l] * x[kb, p, kl], 16-channel blocks.
struct BlockedPointwise {
  int64_t blocks, pixels;
  Tensor w, x, out;
  IterVar kb = reduce_axis(2, "kb"), kl = reduce_axis(16, "kl");
  BlockedPointwise(int64_t blocks_, int64_t pixels_) : blocks(blocks_), pixels(pixels_) {
    w = placeholder({blocks, 2, 16, 16}, DType::F32, "w");
    x = placeholder({2, pixels, 16}, DType::F32, "x");
    out = compute({blocks, pixels, 16}, [&](const std::vector<Var>& i) {
      return sum(w(i[0], kb.var, kl.var, i[2]) * x(kb.var, i[1], kl.var), {kb, kl});
    }, "out");
  }
  PrimFunc lowered(const VectorTarget& t) { return lower("blocks", {w, x}, {out}, t); }
  void check(const PrimFunc& f) {
    std::vector<float> W = test_data(blocks * 2 * 16 * 16, 11), X = test_data(2 * pixels * 16, 12), O(blocks * pixels * 16);
    run(f, {W.data(), X.data(), O.data()});
    for (int64_t cb = 0; cb < blocks; ++cb)
      for (int64_t p = 0; p < pixels; ++p)
        for (int64_t l = 0; l < 16; ++l) {
          double want = 0;
          for (int64_t b = 0; b < 2; ++b)
            for (int64_t k = 0; k < 16; ++k)
              want += double(W[((cb * 2 + b) * 16 + k) * 16 + l]) * X[(b * pixels + p) * 16 + k];
          ASSERT_NEAR(O[(cb * pixels + p) * 16 + l], want, 1e-4) << cb << " " << p << " " << l;
        }
  }
};

// On AVX-512 a 16-channel block is one vector, so a tile spans 3 neighbouring output blocks (6
// of them: 3 divides, 4 does not), each input broadcast once for all three, rather than 6
// pixels x 1 vector (6 accumulators, FMA latency bound). On AVX2 a block is two vectors and
// the tile stays within it.
TEST(ReductionSchedule, OneVectorTilesSpanOutputBlocks) {
  BlockedPointwise conv(6, 13);
  PrimFunc avx2 = conv.lowered(VectorTarget{32, 16});
  EXPECT_NE(to_string(avx2).find("out_tile: f32[6x16]"), std::string::npos) << to_string(avx2);
  PrimFunc f = conv.lowered(VectorTarget{64, 32});
  std::string ir = to_string(f);
  EXPECT_NE(ir.find("out_tile: f32[6x48]"), std::string::npos) << ir;
  EXPECT_NE(ir.find("out_i0_o in [0, 0 + 2)"), std::string::npos) << ir;
  conv.check(f);
}

// 9 blocks in 3 groups of 3 on 2 threads would leave a thread idle: with weights this small the
// group loop goes inside the row tiles, which then split over the threads.
TEST(ReductionSchedule, FewBlockGroupsGoInsideTheRowTiles) {
  BlockedPointwise conv(9, 40);
  VectorTarget two_threads{64, 32};
  two_threads.threads = 2;
  PrimFunc f = conv.lowered(two_threads);
  std::string ir = to_string(f);
  size_t rows = ir.find("out_i1_o in [0, 0 + 6)");
  ASSERT_NE(rows, std::string::npos) << ir;
  EXPECT_NE(ir.find("out_i0_o in [0, 0 + 3)", rows), std::string::npos) << ir;
  conv.check(f);
}

// Row sums and maxima over two reduction axes, the inner one contiguous (5 x 75: 75 = 4 x 16
// terms in two vectors of lanes + an 11-term tail): partial results in lanes, folded after the loop.
// The sum is reassociated, so it is checked within rounding; the max exactly.
TEST(ReductionSchedule, InnermostReductionsInVectorLanes) {
  Tensor x = placeholder({3, 5, 75}, DType::F32, "x");
  IterVar a = reduce_axis(5, "a"), b = reduce_axis(75, "b"), a2 = reduce_axis(5, "a2"), b2 = reduce_axis(75, "b2");
  Tensor s = compute({3}, [&](const std::vector<Var>& i) { return sum(x(i[0], a.var, b.var), {a, b}); }, "s");
  Tensor m = compute({3}, [&](const std::vector<Var>& i) { return reduce_max(x(i[0], a2.var, b2.var), {a2, b2}); }, "m");
  PrimFunc f = lower("rows", {x}, {s, m}, VectorTarget{32, 16});
  std::string ir = to_string(f);
  EXPECT_NE(ir.find("s_lanes: f32[16]"), std::string::npos) << ir;
  EXPECT_NE(ir.find("m_lanes: f32[16]"), std::string::npos) << ir;
  EXPECT_NE(ir.find("vectorized b_l"), std::string::npos) << ir;
  std::vector<float> X = test_data(3 * 5 * 75, 9), S(3), M(3);
  run(f, {X.data(), S.data(), M.data()});
  for (int r = 0; r < 3; ++r) {
    double want = 0;
    float top = -INFINITY;
    for (int t = 0; t < 5 * 75; ++t) {
      want += X[r * 375 + t];
      top = std::max(top, X[r * 375 + t]);
    }
    EXPECT_NEAR(S[r], want, 1e-5 * 375) << r;
    EXPECT_EQ(M[r], top) << r;
  }
}

// A plain-layout 1x1 convolution (channels vectorized over packed weights) over many pixels
// (4.6 MB of input): the small weights stay in L2 while the pixels go in strips, each strip
// passing under every panel of weights, instead of each panel streaming all pixels from memory
// again (96 -> 96 channels over 150 x 150 pixels: 43.7 -> 14.0 ms).
TEST(ReductionSchedule, PixelStripsUnderSmallWeights) {
  Tensor w = placeholder({32, 24}, DType::F32, "w"), x = placeholder({24, 320, 150}, DType::F32, "x");
  IterVar k = reduce_axis(24, "k");
  Tensor out = compute({32, 320, 150}, [&](const std::vector<Var>& i) {
    return sum(w(i[0], k.var) * x(k.var, i[1], i[2]), {k});
  }, "out");
  PrimFunc f = lower("strips", {w, x}, {out}, VectorTarget{32, 16}, {w.buffer().get()});
  std::string ir = to_string(f);
  // Here a strip is a row of 150 pixels (25 tiles): the panel loop runs inside the row loop.
  size_t rows = ir.find("out_i1 in [0, 0 + 320)");
  ASSERT_NE(rows, std::string::npos) << ir;
  size_t panels = ir.find("out_i0_o in [0, 0 + 2)", rows);
  ASSERT_NE(panels, std::string::npos) << "the panels inside the strips:\n" << ir;
  EXPECT_EQ(ir.find("out_i0_o in", panels + 1), std::string::npos) << ir;
  std::vector<float> W = test_data(32 * 24, 7), X = test_data(24 * 320 * 150, 8), O(32 * 320 * 150);
  run(f, {W.data(), X.data(), O.data()});
  for (int c = 0; c < 32; c += 5)
    for (int p = 0; p < 320 * 150; p += 97) {
      double want = 0;
      for (int kk = 0; kk < 24; ++kk) want += double(W[c * 24 + kk]) * X[kk * 320 * 150 + p];
      EXPECT_NEAR(O[c * 320 * 150 + p], want, 1e-4) << c << " " << p;
    }
}
