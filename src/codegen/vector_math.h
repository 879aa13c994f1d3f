// Vector f32 exp and erf as straight-line IR. LLVM lowers llvm.exp on vectors (and libm calls)
// to one scalar call per lane; softmax, GELU and sigmoid are dominated by those calls.
#pragma once
#include <llvm/IR/IRBuilder.h>

namespace kiln::codegen {

// exp(x) for a float vector: range reduction x = n ln2 + r, a degree-7 polynomial on r, and
// 2^n applied in two halves so that results near FLT_MAX and subnormals stay exact.
// Max relative error 8e-8 on normal results; +inf above 88.72, 0 below -103.97, NaN kept.
llvm::Value* emit_exp_f32(llvm::IRBuilder<>& b, llvm::Value* x);

// erf(x) for a float vector: a rational approximation on [-4, 4] (odd degree-13 numerator,
// even degree-8 denominator), +-1 outside. Max absolute error 4.2e-7; NaN kept.
llvm::Value* emit_erf_f32(llvm::IRBuilder<>& b, llvm::Value* x);

}  // namespace kiln::codegen
