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
  std::string text = to_string(f);
  EXPECT_NE(text.find("sum") , std::string::npos - 1);
  auto lib = codegen::JitLibrary::compile({f});
  float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4] = {};
  void* args[] = {A, B, C};
  lib->lookup("mm")(args);
  EXPECT_FLOAT_EQ(C[0], 1 + 3);
  EXPECT_FLOAT_EQ(C[1], 2 + 3);
  EXPECT_FLOAT_EQ(C[2], 4 + 6);
  EXPECT_FLOAT_EQ(C[3], 5 + 6);
}
