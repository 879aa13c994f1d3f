// Affine facts about index expressions, shared by the schedules and their legality checks.
#pragma once
#include <optional>

#include "tir/expr.h"

namespace kiln::tir {

bool uses_var(const Expr& e, const VarNode* v);

// Coefficient of `v` in `e` when `e` is affine in it (sums, differences, products with a
// constant); nullopt otherwise. 0 when `e` does not use `v`.
std::optional<int64_t> coefficient(const Expr& e, const VarNode* v);

// Indices with each adjacent pair (x / k, x % k) over a dimension of extent k merged into x,
// and the shape with those dimensions merged: the form fused loops produce, one element per
// value of x, affine in x.
std::vector<Expr> merge_index_pairs(const std::vector<Expr>& indices, const Shape& shape, Shape* merged_shape = nullptr);

}  // namespace kiln::tir
