// Exact GELU as exporters decompose it, x * 0.5 * (1 + erf(x / sqrt(2))) in five nodes
// (Div, Erf, Add, Mul, Mul, the products in any order), becomes one Gelu node (ONNX opset 20).
// The decomposed form reads x twice, so it could not join the kernel that makes x (a
// MatMul + bias, whose epilogue it becomes as one node) and took a kernel and a round trip
// through memory of its own. Results are bit-identical: halving is exact, so every order of
// the two products rounds the same, and the divisor must be sqrt(2) rounded to f32.
#pragma once
#include "graph/graph.h"

namespace kiln::graph {

Graph fuse_gelu(Graph g);

}  // namespace kiln::graph
