#include <gtest/gtest.h>

#include "codegen/jit.h"
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
