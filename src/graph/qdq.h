// Quantized models in QDQ form (QuantizeLinear / DequantizeLinear around float operators, as
// onnxruntime.quantization writes them) compute their products in integers.
//
// A Conv or MatMul whose operands are dequantized 8-bit values and whose only reader
// quantizes its result is the integer operator ONNX defines for exactly that:
//   Q(Conv(DQ(x), DQ(w), DQ(b_int32)))  ->  QLinearConv(x, w, b_int32)
//   Q(MatMul(DQ(a), DQ(b)))             ->  QLinearMatMul(a, b)
//   Q(Gemm(DQ(a), DQ(b), DQ(c_int32)))  ->  QLinearMatMul(a, b, c_int32)  (kiln's bias input)
// with the scales and zero points moved over. This is what ONNX Runtime runs for the same
// model, so results agree with it (int32 accumulation, one requantization) instead of
// differing by rounding in a float product. Products that do not match stay float; the
// dequantize nodes the fused ones no longer read are left to dead-code elimination.
// Before that, an operator that only moves or selects values (Reshape, Transpose, Flatten,
// Squeeze, Unsqueeze, MaxPool, GlobalMaxPool) between a DequantizeLinear and a QuantizeLinear
// of one scale and zero point runs on the 8-bit values: Q(op(DQ(x))) -> op(x), exactly.
#pragma once
#include "graph/graph.h"

namespace kiln::graph {

Graph fuse_quantized_products(Graph g);

}  // namespace kiln::graph
