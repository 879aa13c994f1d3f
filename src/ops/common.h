// Helpers shared by operator definitions: broadcasting, axis handling, type checks.
#pragma once
#include "ops/op_context.h"

namespace kiln::ops {

using tir::Expr;
using tir::Tensor;
using tir::Var;

// Numpy-style multidirectional broadcast of the shapes; errors name the node.
Shape broadcast_shapes(const OpContext& ctx, const std::vector<Shape>& shapes);
// Element of `t` read at output index `out_idx` of a broadcast result of rank out_idx.size().
Expr broadcast_read(const Tensor& t, const std::vector<Var>& out_idx);
// Elementwise op over broadcast inputs.
Tensor broadcast_compute(const OpContext& ctx, const std::vector<Tensor>& ins,
                         const std::function<Expr(const std::vector<Expr>&)>& f,
                         const std::string& name);
// Requires input dtypes to be one of `allowed` (error naming the node otherwise).
void check_float(const OpContext& ctx, const Tensor& t);
// Index vector helper: vars as exprs.
std::vector<Expr> as_exprs(const std::vector<Var>& v);

// The dimensions one group of a normalization (softmax, layer norm, ...) spans. Reduction
// stages over a span keep the input's rank, with the spanned dimensions of extent 1.
struct Span {
  Shape shape;
  std::vector<bool> spanned;

  static Span from(const Shape& shape, int64_t first, int64_t end);  // dims [first, end)
  Shape reduced_shape() const;
  int64_t count() const;  // elements per group
  // Index into a reduced stage for element index `i` of the input.
  std::vector<Expr> group_of(const std::vector<Var>& i) const;
  // Row-major position of an element within its group, from its indices along the spanned dims.
  Expr position(const std::vector<Expr>& idx) const;
  // Reduction stage: `op` over each group of `term(input index, group index)`.
  Tensor fold(tir::ReduceOp op, const std::function<Expr(const std::vector<Expr>&, const std::vector<Var>&)>& term,
              const std::string& name) const;
};

}  // namespace kiln::ops
