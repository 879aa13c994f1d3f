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

}  // namespace kiln::ops
