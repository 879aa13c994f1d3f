// Mixed precision: which operands of a node run in a narrower type than the model's.
//
// In bf16 mode the matrix products (MatMul, Gemm, Conv, ConvTranspose) read their two data
// operands as bf16 and accumulate and return f32, as the AMX tile multiply `tdpbf16ps` does;
// everything else (bias, softmax, normalizations, reductions) stays f32. The rewrite needs the
// operands' types, so the compiler applies it node by node while it types the graph.
#pragma once
#include <optional>

#include "graph/graph.h"
#include "kiln/kiln.h"

namespace kiln::graph {

// Attribute kiln sets on a node whose narrow operands still give an f32 result.
inline constexpr const char* kF32ResultAttr = "kiln_f32_result";

// For a matrix product with f32 data operands in bf16 mode: the Cast nodes to insert before
// it, followed by the node itself, reading the casts and marked kF32ResultAttr. Each operand
// `x` is rounded to "<x>_bf16"; with `storage` f32 (targets without bf16 arithmetic) a second
// Cast widens it back to "<x>_bf16_f32", so the product computes with bf16 values at f32
// speed. Constant operands (weights) are rounded here instead, into a new constant value. An
// operand whose cast `g` already has reuses it. The casts' values are added to `g`,
// untyped. std::nullopt when the node stays as it is.
std::optional<std::vector<Node>> narrow_operands(const Node& n, Graph& g, Precision p, DType storage);

}  // namespace kiln::graph
