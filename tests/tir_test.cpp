#include <gtest/gtest.h>

#include <sstream>

#include "codegen/jit.h"
#include "tir/equivalence.h"
#include "tir/lower.h"
#include "tir/partition.h"
#include "tir/schedule.h"
#include "tir/schedule_steps.h"
#include "tir/simplify.h"

using namespace kiln;
using namespace kiln::tir;

TEST(Tir, MatmulLowersAndRuns) {
  Tensor a = placeholder({2, 3}, DType::F32, "a");
  Tensor b = placeholder({3, 2}, DType::F32, "b");
  IterVar k = reduce_axis(3, "k");
  Tensor c = compute({2, 2}, [&](const std::vector<Var>& i) { return sum(a(i[0], k.var) * b(k.var, i[1]), {k}); }, "c");
  PrimFunc f = lower("mm", {a, b}, {c});
  // A 2-wide output is too narrow for a tile or a row: the plain form, one accumulator each.
  EXPECT_EQ(to_string(f),
            "func mm(a: f32[2x3], b: f32[3x2], c: f32[2x2]):\n"
            "  for c_i0 in [0, 0 + 2):\n"
            "    for c_i1 in [0, 0 + 2):\n"
            "      allocate c_acc: f32[]\n"
            "      c_acc[] = 0f\n"
            "      for k in [0, 0 + 3):\n"
            "        c_acc[] = (c_acc[] + (a[c_i0, k]*b[k, c_i1]))\n"
            "      c[c_i0, c_i1] = c_acc[]\n");
  auto lib = codegen::JitLibrary::compile({f});
  float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4] = {};
  void* args[] = {A, B, C};
  lib->lookup("mm")(args);
  EXPECT_FLOAT_EQ(C[0], 1 + 3);
  EXPECT_FLOAT_EQ(C[1], 2 + 3);
  EXPECT_FLOAT_EQ(C[2], 4 + 6);
  EXPECT_FLOAT_EQ(C[3], 5 + 6);
}

// Kernels that differ only in names are one class (compiled once); any change of shape,
// operator or constant separates them.
TEST(Tir, EquivalenceIgnoresNamesOnly) {
  auto kernel = [](const std::string& prefix, int64_t n, double scale) {
    Tensor a = placeholder({n, 8}, DType::F32, prefix + "_a");
    Tensor b = compute({n, 8}, [&](const std::vector<Var>& i) { return a(i[0], i[1]) * make_const(DType::F32, scale); },
                       prefix + "_b");
    return lower(prefix + "_k", {a}, {b}, VectorTarget{32, 16});
  };
  PrimFunc base = kernel("x", 4, 2.0);
  EXPECT_TRUE(equivalent(base, kernel("layer7", 4, 2.0)));
  EXPECT_EQ(equivalence_key(base), equivalence_key(kernel("layer7", 4, 2.0)));
  EXPECT_FALSE(equivalent(base, kernel("x", 5, 2.0)));
  EXPECT_FALSE(equivalent(base, kernel("x", 4, 3.0)));
}

namespace {

Expr in_range(const Expr& x, int64_t n) { return ge(x, make_int(0)) && lt(x, make_int(n)); }
Expr clamp(const Expr& x, int64_t n) { return binary(BinOp::Max, make_int(0), binary(BinOp::Min, make_int(n - 1), x)); }

// A zero-padded copy of a [c, n, n] tensor, one element of padding on each side of the
// spatial dimensions, written as ops/conv does: guarded reads at clamped positions.
Tensor padded(const Tensor& a, bool materialized) {
  int64_t n = a.dim(1);
  auto f = [&](const std::vector<Var>& i) {
    Expr y = Expr(i[1]) - make_int(1), x = Expr(i[2]) - make_int(1);
    return select(in_range(y, n) && in_range(x, n), a(i[0], clamp(y, n), clamp(x, n)), make_const(DType::F32, 0));
  };
  Shape s{a.dim(0), n + 2, n + 2};
  return materialized ? compute_materialized(s, f, "p") : compute(s, f, "p");
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

// The rows and columns of a padded copy split into border and interior: the interior is a
// plain copy (no test, no clamp), the border stores zeros, and the values do not change.
TEST(Tir, PartitionSplitsPaddedCopyIntoBorderAndInterior) {
  Tensor a = placeholder({2, 9, 9}, DType::F32, "a");
  PrimFunc f = lower("pad", {a}, {padded(a, false)});
  PrimFunc g = f;
  g.body = partition_loops(f.body);
  std::string text = to_string(g);
  EXPECT_EQ(count(to_string(f), "select"), 1);
  EXPECT_EQ(count(text, "select"), 0) << text;
  EXPECT_EQ(count(text, "max("), 0) << text;
  EXPECT_NE(text.find("for p_i2 in [1, 1 + 9):"), std::string::npos) << text;  // the interior columns
  EXPECT_NE(text.find("p[p_i0, p_i1, p_i2] = a[p_i0, (p_i1 - 1), (p_i2 - 1)]"), std::string::npos) << text;

  f.name = "pad_whole";
  auto lib = codegen::JitLibrary::compile({f, g});
  std::vector<float> A(2 * 9 * 9), P0(2 * 11 * 11, -1), P1(2 * 11 * 11, -2);
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(i + 1);
  void* args0[] = {A.data(), P0.data()};
  void* args1[] = {A.data(), P1.data()};
  lib->lookup("pad_whole")(args0);
  lib->lookup("pad")(args1);
  EXPECT_EQ(P0, P1);
  EXPECT_EQ(P1[0], 0.0f);
  EXPECT_EQ(P1[1 * 11 + 1], A[0]);
}

// A loop whose tests depend on a variable it cannot bound (an inner loop's, with a data
// dependent value) stays whole.
TEST(Tir, PartitionLeavesUndecidableLoopsAlone) {
  Tensor a = placeholder({8}, DType::I64, "a");
  Tensor b = compute({8}, [&](const std::vector<Var>& i) { return select(lt(a(i[0]), make_int(3)), a(i[0]), make_int(0)); }, "b");
  PrimFunc f = lower("k", {a}, {b});
  EXPECT_EQ(to_string(partition_loops(f.body)), to_string(f.body));
}

// A depthwise window over a padded copy: each channel's outputs read only that channel of
// the copy, so the copy becomes one channel made inside the channel loop.
TEST(Tir, FusesPerChannelCopyIntoItsConsumer) {
  const int64_t C = 3, N = 5;
  Tensor a = placeholder({C, N, N}, DType::F32, "a");
  Tensor w = placeholder({C, 3, 3}, DType::F32, "w");
  Tensor p = padded(a, true);
  IterVar kh = reduce_axis(3, "kh"), kw = reduce_axis(3, "kw");
  Tensor out = compute({C, N, N}, [&](const std::vector<Var>& i) {
    return sum(p(i[0], Expr(i[1]) + kh.var, Expr(i[2]) + kw.var) * w(i[0], kh.var, kw.var), {kh, kw});
  }, "out");
  PrimFunc f = lower("dw", {a, w}, {out}, VectorTarget{32, 16});
  std::string text = to_string(f);
  EXPECT_EQ(text.find("allocate p: f32[3x7x7]"), std::string::npos) << text;
  EXPECT_NE(text.find("  for out_i0 in [0, 0 + 3):\n    allocate p: f32[1x7x7]"), std::string::npos) << text;

  std::vector<float> A(C * N * N), W(C * 9), O(C * N * N);
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(i % 7) - 3;
  for (size_t i = 0; i < W.size(); ++i) W[i] = float(i % 5) * 0.5f - 1;
  auto lib = codegen::JitLibrary::compile({f});
  void* args[] = {A.data(), W.data(), O.data()};
  lib->lookup("dw")(args);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < N; ++y)
      for (int64_t x = 0; x < N; ++x) {
        float want = 0;
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 3; ++j) {
            int64_t yy = y + i - 1, xx = x + j - 1;
            if (yy >= 0 && yy < N && xx >= 0 && xx < N) want += A[(c * N + yy) * N + xx] * W[c * 9 + i * 3 + j];
          }
        EXPECT_FLOAT_EQ(O[(c * N + y) * N + x], want) << c << " " << y << " " << x;
      }
}

// A full convolution reads every channel of the copy for each output channel: no fusion.
TEST(Tir, KeepsCopyReadAcrossChannelsWhole) {
  const int64_t C = 3, N = 5;
  Tensor a = placeholder({C, N, N}, DType::F32, "a");
  Tensor w = placeholder({4, C, 3, 3}, DType::F32, "w");
  Tensor p = padded(a, true);
  IterVar ci = reduce_axis(C, "ci"), kh = reduce_axis(3, "kh"), kw = reduce_axis(3, "kw");
  Tensor out = compute({4, N, N}, [&](const std::vector<Var>& i) {
    return sum(p(ci.var, Expr(i[1]) + kh.var, Expr(i[2]) + kw.var) * w(i[0], ci.var, kh.var, kw.var), {ci, kh, kw});
  }, "out");
  std::string text = to_string(lower("conv", {a, w}, {out}, VectorTarget{32, 16}));
  EXPECT_NE(text.find("allocate p: f32[3x7x7]"), std::string::npos) << text;
}

// Vector lanes reading every 2nd / 3rd element become one masked contiguous load and a
// shuffle (no gather), every 5th / 12th one scalar load per lane: same values, and nothing
// read past the last lane's element.
TEST(Tir, StridedVectorLoads) {
  for (int64_t stride : {2, 3, 5, 12}) {
    const int64_t n = 19;  // two vectors of 8 and a tail of 3
    Tensor a = placeholder({(n - 1) * stride + 1}, DType::F32, "a");
    Tensor b = compute({n}, [&](const std::vector<Var>& i) { return a(Expr(i[0]) * make_int(stride)); }, "b");
    PrimFunc f = lower("strided", {a}, {b});
    EXPECT_EQ(to_string(vectorize_inner_loops(&f.body, 8)), "split(b_i0, 8); vectorize(b_i0_i)");
    auto lib = codegen::JitLibrary::compile({f});
    std::vector<float> A(size_t(a.dim(0))), B(n);
    for (size_t i = 0; i < A.size(); ++i) A[i] = float(i) * 0.25f;
    void* args[] = {A.data(), B.data()};
    lib->lookup("strided")(args);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(B[i], A[i * stride]) << "stride " << stride << " element " << i;
  }
}

// Lanes alternating between two contiguous runs — the 2x interleave of phase planes that
// ConvTranspose (kernel = stride = 2) ends with, and a 2x nearest upsample — are two
// half-width loads and one shuffle, not a gather: same values, no gather in the code.
// (Without it LLVM scalarizes the gather here into per-lane vmovss / vinsertps.)
TEST(Tir, InterleavedVectorLoads) {
  const int64_t n = 40;  // five vectors of 8
  Tensor a = placeholder({2, n / 2}, DType::F32, "a");
  Tensor planes = compute({n}, [&](const std::vector<Var>& i) {
    return a(floormod(Expr(i[0]), make_int(2)), floordiv(Expr(i[0]), make_int(2)));
  }, "planes");
  Tensor upsampled = compute({n}, [&](const std::vector<Var>& i) {
    return a(make_int(1), floordiv(Expr(i[0]), make_int(2)));
  }, "upsampled");
  for (const Tensor& out : {planes, upsampled}) {
    PrimFunc f = lower("interleave", {a}, {out});
    EXPECT_EQ(to_string(vectorize_inner_loops(&f.body, 8)), "split(" + out.name() + "_i0, 8); vectorize(" +
                                                                  out.name() + "_i0_i)");
    std::string as = codegen::emit_string({f}, codegen::FileKind::Assembly);
    // Neither a gather instruction nor the per-lane inserts LLVM scalarizes one into.
    EXPECT_EQ(as.find("gather"), std::string::npos) << as;
    EXPECT_EQ(as.find("vinsertps"), std::string::npos) << as;
    auto lib = codegen::JitLibrary::compile({f});
    std::vector<float> A(static_cast<size_t>(n)), B(static_cast<size_t>(n));
    for (size_t i = 0; i < A.size(); ++i) A[i] = float(i) * 0.5f;
    void* args[] = {A.data(), B.data()};
    lib->lookup("interleave")(args);
    for (int64_t i = 0; i < n; ++i) {
      float want = out.name() == "planes" ? A[size_t(i % 2 * n / 2 + i / 2)] : A[size_t(n / 2 + i / 2)];
      EXPECT_EQ(B[size_t(i)], want) << out.name() << " element " << i;
    }
  }
}

// Four rows of bytes interleaved (the VNNI packing of an 8-bit operand, tir/tile_schedule.cpp):
// per 32 lanes one 8-byte load of each row and shuffles, no per-byte inserts. A loop of bytes
// gets 32 lanes from the default's 8 lanes of 32 bits (AVX2).
TEST(Tir, FourWayInterleavedByteLoads) {
  const int64_t n = 256;
  Tensor a = placeholder({4, n / 4}, DType::U8, "a");
  Tensor packed = compute({n}, [&](const std::vector<Var>& i) {
    return a(floormod(Expr(i[0]), make_int(4)), floordiv(Expr(i[0]), make_int(4)));
  }, "packed");
  PrimFunc f = lower("vnni", {a}, {packed});
  EXPECT_EQ(to_string(vectorize_inner_loops(&f.body, 8)), "split(packed_i0, 32); vectorize(packed_i0_i)");
  std::string as = codegen::emit_string({f}, codegen::FileKind::Assembly);
  EXPECT_EQ(as.find("gather"), std::string::npos) << as;
  EXPECT_EQ(as.find("vpinsrb"), std::string::npos) << as;
  EXPECT_NE(as.find("punpck"), std::string::npos) << as;
  auto lib = codegen::JitLibrary::compile({f});
  std::vector<uint8_t> A(static_cast<size_t>(n)), B(static_cast<size_t>(n));
  for (size_t i = 0; i < A.size(); ++i) A[i] = uint8_t(i * 7 + 3);
  void* args[] = {A.data(), B.data()};
  lib->lookup("vnni")(args);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(B[size_t(i)], A[size_t(i % 4 * n / 4 + i / 4)]) << "element " << i;
}

// A consumer reading the reduction at its own position, a batch dimension of one written as
// the constant 0 (as broadcasting does), is the reduction's epilogue: nothing is stored
// between them.
TEST(Tir, EpilogueAcceptsBatchIndexZero) {
  Tensor a = placeholder({1, 4, 8}, DType::F32, "a");
  Tensor b = placeholder({8, 16}, DType::F32, "b");
  IterVar k = reduce_axis(8, "k");
  Tensor r = compute({1, 4, 16}, [&](const std::vector<Var>& i) { return sum(a(i[0], i[1], k.var) * b(k.var, i[2]), {k}); }, "r");
  Tensor c = compute({1, 4, 16}, [&](const std::vector<Var>& i) {
    return binary(BinOp::Max, r(make_int(0), Expr(i[1]), Expr(i[2])), make_const(DType::F32, 0));
  }, "c");
  std::string text = to_string(lower("mm_relu", {a, b}, {c}, VectorTarget{32, 16}));
  EXPECT_EQ(text.find("allocate r:"), std::string::npos) << text;
  EXPECT_NE(text.find("max("), std::string::npos) << text;
}

// Three outer iterations on two threads leave one idle for a third of the time: the outer
// loop is fused with the one inside it (3 x 21 = 63 iterations); on one thread it stays.
TEST(Tir, ParallelLoopFusedForBalance) {
  Tensor a = placeholder({3, 21, 64}, DType::F32, "a");
  Tensor b = compute({3, 21, 64}, [&](const std::vector<Var>& i) { return a(i) * make_const(DType::F32, 2); }, "b");
  PrimFunc f = lower("scale", {a}, {b});
  std::string two = to_string(parallelize_outer_loops(f.body, 1, 2));
  EXPECT_NE(two.find("parallel b_i0_b_i1 in [0, 0 + 63):"), std::string::npos) << two;
  std::string one = to_string(parallelize_outer_loops(f.body, 1, 1));
  EXPECT_NE(one.find("parallel b_i0 in [0, 0 + 3):"), std::string::npos) << one;
  Tensor c = placeholder({4, 21, 64}, DType::F32, "c");  // 4 iterations split evenly
  Tensor d = compute({4, 21, 64}, [&](const std::vector<Var>& i) { return c(i); }, "d");
  std::string even = to_string(parallelize_outer_loops(lower("copy", {c}, {d}).body, 1, 2));
  EXPECT_NE(even.find("parallel d_i0 in [0, 0 + 4):"), std::string::npos) << even;
}

// A product of 4 rows is one register tile with no loop around it: the first serial loop is
// the reduction, which accumulates into the tile allocated outside it, so it must stay serial
// (in parallel each thread summed part of the terms and one part was lost).
TEST(Tir, ReductionLoopsStaySerial) {
  Tensor a = placeholder({4, 256}, DType::F32, "a"), b = placeholder({256, 64}, DType::F32, "b");
  IterVar k = reduce_axis(256, "k");
  Tensor c = compute({4, 64}, [&](const std::vector<Var>& i) { return sum(a(i[0], k.var) * b(k.var, i[1]), {k}); }, "c");
  PrimFunc f = lower("one_tile", {a, b}, {c}, VectorTarget{64, 32});
  std::string text = to_string(f.body);
  ASSERT_NE(text.find("for k in [0, 0 + 256)"), std::string::npos) << text;
  std::string two = to_string(parallelize_outer_loops(f.body, 1, 2));
  // The packing of b before it is parallel (each k writes its own row); the product's k is not.
  EXPECT_NE(two.find("parallel k in [0, 0 + 256):\n  for pack_t"), std::string::npos) << two;
  EXPECT_NE(two.find("for k in [0, 0 + 256):\n  unrolled c_i0_t"), std::string::npos) << two;
}

// Each buffer of a kernel is its own alias scope (codegen/emitter.h, annotate_aliasing): a
// store to the u8 output cannot clobber the f32 scale, so the scale's load leaves the loop
// instead of being repeated after every store. The result is checked too.
TEST(Tir, BuffersDoNotAliasSoInvariantLoadsLeaveLoops) {
  Tensor a = placeholder({64, 1000}, DType::F32, "a");
  Tensor s = placeholder({}, DType::F32, "s");
  Tensor q = compute({64, 1000}, [&](const std::vector<Var>& i) { return cast(DType::U8, a(i) / s(std::vector<Expr>{})); }, "q");
  PrimFunc f = lower("quant", {a, s}, {q});
  std::string ir = codegen::emit_string({f}, codegen::FileKind::LLVMIR);
  EXPECT_NE(ir.find("!alias.scope"), std::string::npos) << ir;
  EXPECT_NE(ir.find("!noalias"), std::string::npos) << ir;
  // The loops' blocks (those with a phi) that store to q load no scalar float.
  std::istringstream lines(ir);
  std::vector<std::string> block;
  int store_blocks = 0;
  auto check = [&] {
    bool stores = false, loads_scalar = false, loops = false;
    for (auto& l : block) {
      loops |= l.find(" = phi ") != std::string::npos;
      stores |= l.find("store <") != std::string::npos || l.find("store i8") != std::string::npos;
      loads_scalar |= l.find("load float, ptr") != std::string::npos;
    }
    if (!stores || !loops) return;
    ++store_blocks;
    std::string text;
    for (auto& l : block) text += l + "\n";
    EXPECT_FALSE(loads_scalar) << "the scale is loaded again in a storing block:\n" << text;
  };
  for (std::string l; std::getline(lines, l);) {
    bool label = !l.empty() && l[0] != ' ' && l.find(':') != std::string::npos && l.find("define") == std::string::npos;
    if (label || l == "}") {
      check();
      block.clear();
    }
    block.push_back(l);
  }
  EXPECT_GT(store_blocks, 0) << ir;
  auto lib = codegen::JitLibrary::compile({f});
  std::vector<float> A(64 * 1000);
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(i % 200);
  float S = 2;
  std::vector<uint8_t> Q(A.size());
  void* args[] = {A.data(), &S, Q.data()};
  lib->lookup("quant")(args);
  for (size_t i = 0; i < A.size(); ++i) ASSERT_EQ(Q[i], uint8_t(A[i] / 2)) << i;
}

// A quantized value dequantized in the same kernel (QuantizeLinear then DequantizeLinear, fused
// into one epilogue) needs no trip through its 8-bit type: f32(u8(clamp(round(v) + zp))) is the
// clamped float itself, and round() of an integer is that integer. Int8 ResNet-50's residual
// epilogues lost their pack/unpack and NaN blends (a fused 1x1 convolution + residual Add
// 2.49 -> 1.43 ms median). Neither applies where the value may not be an integer or may not fit.
TEST(Simplify, QuantizeThenDequantizeKeepsTheFloat) {
  Buffer x = make_buffer("x", DType::F32, {8});
  Buffer zp = make_buffer("zp", DType::U8, {});
  Expr v = load(x, {make_int(0)});
  Expr q = unary(UnOp::Round, v) + cast(DType::F32, load(zp, {}));
  auto clamp = [&](Expr e, int lo, int hi) {
    return min(max(e, cast(DType::F32, make_int(lo, DType::U8))), cast(DType::F32, make_int(hi, DType::U8)));
  };
  Expr clamped = simplify(clamp(q, 0, 255));
  EXPECT_EQ(to_string(simplify(cast(DType::F32, cast(DType::U8, clamp(q, 0, 255))))), to_string(clamped));
  EXPECT_EQ(to_string(simplify(unary(UnOp::Round, q))), to_string(q));
  // Not an integer: the conversion truncates.
  Expr frac = simplify(cast(DType::F32, cast(DType::U8, clamp(v, 0, 255))));
  EXPECT_NE(to_string(frac).find("u8("), std::string::npos) << to_string(frac);
  // Not clamped into u8's range: the conversion wraps or saturates.
  Expr wide = min(max(q, make_const(DType::F32, 0)), make_const(DType::F32, 300));
  EXPECT_NE(to_string(simplify(cast(DType::F32, cast(DType::U8, wide)))).find("u8("), std::string::npos);
  EXPECT_NE(to_string(simplify(unary(UnOp::Round, v))).find("round("), std::string::npos);
}
