#include <gtest/gtest.h>

#include "codegen/jit.h"
#include "tir/equivalence.h"
#include "tir/lower.h"

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
